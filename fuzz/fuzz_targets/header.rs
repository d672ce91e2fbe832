//! Fuzz `Header::read` (FORMAT.md §1, §2): any bytes.
//!
//! * No panic, and every error is a header failure (a slice reader has no
//!   I/O errors to report).
//! * Round trip: a parsed header's `len()` is exactly the bytes it consumed
//!   (143 + uuid + tool + persona, plus 1 + host in version 2), and every
//!   parsed field equals the
//!   bytes at its offset in the input, so no two inputs parse to the same
//!   fields (the MAC covers the bytes as received; FORMAT.md §9.5).
//! * Every field is within the bounds of §2; the stored UUID is already
//!   normalized; every strict prefix of the header is a truncated header;
//!   parsing the header bytes alone gives the same fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zeta_creds::envelope::{
    Binding, Error, ErrorClass, Header, Host, MAC_LEN, MAGIC, MAX_HOST_LEN, MAX_LOG_N,
    MAX_PERSONA_LEN, MAX_TOOL_VERSION_LEN, MAX_UUID_LEN, MIN_LOG_N, UsbUuid,
};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let header = match Header::read(&mut rest) {
        Ok(h) => h,
        Err(e) => {
            assert_eq!(e.class(), ErrorClass::Header, "{e}");
            let _ = e.to_string();
            return;
        }
    };
    let consumed = data.len() - rest.len();
    assert_eq!(header.len(), consumed);

    let f = header.unauthenticated_fields();
    let uuid = f.usb_uuid.as_str().as_bytes();
    let tool = f.tool_version.as_bytes();
    let persona = f.persona.as_bytes();
    assert!((1..=MAX_UUID_LEN).contains(&uuid.len()));
    assert!((MIN_LOG_N..=MAX_LOG_N).contains(&f.log_n));
    assert!((1..=MAX_TOOL_VERSION_LEN).contains(&tool.len()));
    assert!(persona.len() <= MAX_PERSONA_LEN);
    // Version 2 has `host_len` and the host after the persona; 1 has none.
    let host = f.host.as_ref().map(|h| h.as_str().as_bytes());
    let h = host.map_or(0, |h| 1 + h.len());
    if let Some(host) = host {
        assert!((1..=MAX_HOST_LEN).contains(&host.len()));
        let stored = f.host.as_ref().unwrap();
        assert_eq!(&Host::parse(stored.as_str()).unwrap(), stored);
    }
    assert_eq!(consumed, 143 + uuid.len() + tool.len() + persona.len() + h);
    assert_eq!(UsbUuid::parse(f.usb_uuid.as_str()).unwrap(), f.usb_uuid);

    // Every field is the bytes at its offset (FORMAT.md §2).
    let u = uuid.len();
    let t = tool.len();
    let q = persona.len();
    assert_eq!(&data[..10], MAGIC.as_slice());
    assert_eq!(data[10], if host.is_some() { 2 } else { 1 });
    assert_eq!(data[11] as usize, u);
    assert_eq!(&data[12..12 + u], uuid);
    assert_eq!(data[12 + u], f.log_n);
    assert_eq!(&data[13 + u..29 + u], header.salt().as_slice());
    assert_eq!(data[77 + u..85 + u], f.generation.to_be_bytes());
    assert_eq!(data[85 + u..93 + u], f.created.to_be_bytes());
    assert_eq!(data[93 + u] as usize, t);
    assert_eq!(&data[94 + u..94 + u + t], tool);
    assert_eq!(data[94 + u + t] as usize, q);
    assert_eq!(&data[95 + u + t..95 + u + t + q], persona);
    if let Some(host) = host {
        assert_eq!(data[95 + u + t + q] as usize, host.len());
        assert_eq!(&data[96 + u + t + q..95 + u + t + q + h], host);
    }
    assert_eq!(
        &data[95 + u + t + q + h..111 + u + t + q + h],
        header.payload_nonce().as_slice()
    );
    assert_eq!(111 + u + t + q + h + MAC_LEN, consumed);

    // The header bytes alone parse to the same fields; any strict prefix
    // of them is a truncated header.
    let again = Header::read(&mut &data[..consumed]).unwrap();
    assert_eq!(again.unauthenticated_fields(), f);
    for cut in [0, 10, 11, consumed / 2, consumed - MAC_LEN, consumed - 1] {
        assert!(
            matches!(Header::read(&mut &data[..cut]), Err(Error::TruncatedHeader)),
            "prefix of {cut} bytes"
        );
    }

    // The pre-scrypt checks of `unlock`.
    let own = Binding {
        usb_uuid: Some(&f.usb_uuid),
        host: f.host.as_ref(),
    };
    assert!(header.check_binding(&own).is_ok());
    assert!(header.check_work_factor(f.log_n).is_ok());
    assert!(matches!(
        header.check_work_factor(f.log_n - 1),
        Err(Error::WorkFactorTooHigh { .. })
    ));
});
