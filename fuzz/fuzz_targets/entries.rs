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
use zeta_creds::envelope::{EntryKind, EntryMeta, EntryReader, EntryWriter, Error, ErrorClass};

/// The manifest user and every entry with its body.
type Stream = (String, Vec<(EntryMeta, Vec<u8>)>);

/// Read a whole stream.
fn read_all(data: &[u8]) -> Result<Stream, Error> {
    let mut r = EntryReader::new(data)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 1000];
    while let Some(meta) = r.next_entry()? {
        let mut body = Vec::new();
        loop {
            let n = r.read_body(&mut buf)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
        out.push((meta, body));
    }
    Ok((r.user().to_owned(), out))
}

fuzz_target!(|data: &[u8]| {
    let (user, entries) = match read_all(data) {
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
