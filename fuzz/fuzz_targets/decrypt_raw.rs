//! Fuzz the whole decrypt path with raw bytes: any input is a blob, opened
//! as `restore` opens it (`Header::read`, `Header::unlock` with the stick
//! `abcd-1234`, the kit's passphrase and a cap of 10, the STREAM reader,
//! the entry reader). Seeded with kit blobs, so mutations start from valid
//! headers and payloads; a cap of 10 keeps scrypt at 1 MiB.
//!
//! * No panic, no hang, no allocation driven by a declared size.
//! * Every error is one of the envelope's failure classes (FORMAT.md §8),
//!   never `Other`: a slice reader has no I/O error to report.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use zeta_creds::envelope::{Binding, EntryReader, Error, ErrorClass, Header, Host, UsbUuid};

fn open(data: &[u8]) -> Result<usize, Error> {
    let mut input = data;
    let header = Header::read(&mut input)?;
    let uuid = UsbUuid::parse("abcd-1234").unwrap();
    // The kit's host: the seeds come from tests/kit.
    let host = Host::parse("alpha").unwrap();
    let unlocked = header.unlock(
        &SecretString::from("correct horse battery staple"),
        &Binding {
            usb_uuid: Some(&uuid),
            host: Some(&host),
        },
        10,
    )?;
    let mut entries = EntryReader::new(unlocked.payload_reader(input))?;
    let mut n = 0;
    while entries.next_entry()?.is_some() {
        entries.skip_body()?;
        n += 1;
    }
    Ok(n)
}

fuzz_target!(|data: &[u8]| {
    if let Err(e) = open(data) {
        assert_ne!(e.class(), ErrorClass::Other, "{e}");
        let _ = e.to_string();
    }
});
