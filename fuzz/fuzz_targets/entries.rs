//! Fuzz the entry-stream parser (FORMAT.md §5) directly: any bytes as the
//! plaintext of an authenticated payload, with no cryptography in the way,
//! so every input reaches `EntryReader`.
//!
//! * No panic; every error is an entries failure.
//! * Round trip: a stream the reader accepts, written again with
//!   `EntryWriter` from the entries it read, is the same bytes (the
//!   encoding is canonical), and every body read has its declared size and
//!   digest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use zeta_creds::envelope::{EntryKind, EntryWriter, ErrorClass};
use zeta_creds_fuzz::read_stream;

fuzz_target!(|data: &[u8]| {
    let (user, entries) = match read_stream(data, 1000) {
        Ok(x) => x,
        Err(e) => {
            assert_eq!(e.class(), ErrorClass::Entries, "{e}");
            return;
        }
    };
    let mut w = EntryWriter::new(Vec::new(), &user).expect("the reader accepted this user");
    for (meta, body) in &entries {
        assert_eq!(body.len() as u64, meta.size);
        if meta.kind == EntryKind::File {
            assert_eq!(<[u8; 32]>::from(Sha256::digest(body)), meta.sha256);
        }
        meta.validate().expect("the reader validated this entry");
        w.add(meta, &mut &body[..])
            .expect("the writer takes what the reader accepted");
    }
    assert_eq!(
        w.finish().unwrap(),
        data,
        "the entry encoding is not canonical"
    );
});
