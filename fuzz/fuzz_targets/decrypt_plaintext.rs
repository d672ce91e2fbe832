//! Fuzz the whole decrypt-and-parse path with the entry-stream parser in
//! reach: the input is a *plaintext*. It is sealed with a fixed, known file
//! key, salt and nonce at work factor 10 through `Header::seal_with` and
//! its `StreamWriter`, then decrypted through `Header::read`,
//! `Header::unlock` and the `StreamReader` into an `EntryReader`, exactly
//! as `restore` does.
//!
//! * No panic.
//! * The sealed blob always unlocks and authenticates: only an entries
//!   failure is possible.
//! * Differential: the outcome through the envelope (entries, bodies, or
//!   the error message) is the outcome of parsing the plaintext directly.
//!
//! Each run costs two scrypt calls at N = 2^10 (seal and unlock).
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use zeta_creds::envelope::{Binding, ErrorClass, FileKey, Header, HeaderFields, Host, UsbUuid};
use zeta_creds_fuzz::{Stream, read_stream};

const PASS: &str = "correct horse battery staple";

fn fields() -> HeaderFields {
    HeaderFields {
        usb_uuid: UsbUuid::parse("abcd-1234").unwrap(),
        log_n: 10,
        generation: 1,
        created: 1_700_000_000,
        tool_version: "fuzz".into(),
        persona: String::new(),
        host: Some(Host::parse("alpha").unwrap()),
    }
}

type Parsed = Result<Stream, String>;

fn parse(input: impl std::io::Read) -> Parsed {
    read_stream(input, 4096).map_err(|e| {
        assert_eq!(e.class(), ErrorClass::Entries, "{e}");
        e.to_string()
    })
}

fuzz_target!(|plain: &[u8]| {
    let pass = SecretString::from(PASS);
    let mut w = Header::seal_with(
        Vec::new(),
        &pass,
        &fields(),
        FileKey::from_bytes_for_vectors([7; 32]),
        [8; 16],
        [9; 16],
    )
    .unwrap();
    // Uneven writes, to exercise the writer's buffering.
    let split = plain.first().map_or(1, |b| *b as usize + 1);
    for piece in plain.chunks(split) {
        w.write_all(piece).unwrap();
    }
    let blob = w.finish().unwrap();

    let mut input = &blob[..];
    let header = Header::read(&mut input).unwrap();
    let f = fields();
    let binding = Binding {
        usb_uuid: Some(&f.usb_uuid),
        host: f.host.as_ref(),
    };
    let unlocked = header.unlock(&pass, &binding, 10).unwrap();
    let through_envelope = parse(unlocked.payload_reader(input));
    let direct = parse(plain);
    assert_eq!(through_envelope, direct);
});
