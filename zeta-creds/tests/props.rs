//! Property tests of the envelope and restore together.
//!
//! * Any entry set, with bodies on and around the 64 KiB chunk boundary,
//!   comes back exactly.
//! * Flipping any single bit of a valid blob makes it fail with a typed
//!   error, and a restore from it leaves the target exactly as it was.

mod common;

use std::sync::OnceLock;

use proptest::prelude::*;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use zeta_creds::envelope::{
    Anchor, CHUNK_SIZE, EntryKind, EntryMeta, EntryReader, EntryWriter, Error, ErrorClass, Header,
    HeaderFields, UsbUuid,
};
use zeta_creds::restore;

const PASS: &str = "correct horse battery staple";

/// What a reader on the blob's own stick and host expects.
fn binding(f: &HeaderFields) -> zeta_creds::envelope::Binding<'_> {
    zeta_creds::envelope::Binding {
        usb_uuid: Some(&f.usb_uuid),
        host: f.host.as_ref(),
    }
}

fn fields() -> HeaderFields {
    HeaderFields {
        usb_uuid: UsbUuid::parse("abcd-1234").unwrap(),
        log_n: 10,
        generation: 1,
        created: 1_700_000_000,
        tool_version: "test".into(),
        persona: String::new(),
        host: Some(zeta_creds::envelope::Host::parse("node-a").unwrap()),
    }
}

fn body(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn meta(anchor: Anchor, path: String, kind: EntryKind, mode: u32, data: &[u8]) -> EntryMeta {
    EntryMeta {
        anchor,
        kind,
        path,
        mode,
        owner: "zeta".into(),
        group: "zeta".into(),
        mtime: 1_600_000_000,
        size: if kind == EntryKind::File {
            data.len() as u64
        } else {
            0
        },
        sha256: if kind == EntryKind::File {
            Sha256::digest(data).into()
        } else {
            [0; 32]
        },
    }
}

fn seal(entries: &[(EntryMeta, Vec<u8>)]) -> Vec<u8> {
    let stream = Header::seal(Vec::new(), &SecretString::from(PASS), &fields()).unwrap();
    let mut w = EntryWriter::new(stream, "zeta").unwrap();
    for (m, b) in entries {
        w.add(m, &mut &b[..]).unwrap();
    }
    w.finish().unwrap().finish().unwrap()
}

/// Decrypt a whole blob into (meta, body) pairs.
fn open(blob: &[u8]) -> Result<Vec<(EntryMeta, Vec<u8>)>, Error> {
    let mut r = blob;
    let header = Header::read(&mut r)?;
    let unlocked = header.unlock(&SecretString::from(PASS), &binding(&fields()), 20)?;
    let mut entries = EntryReader::new(unlocked.payload_reader(r))?;
    let mut out = Vec::new();
    while let Some(m) = entries.next_entry()? {
        let mut b = Vec::new();
        let mut buf = vec![0u8; 7000];
        loop {
            let n = entries.read_body(&mut buf)?;
            if n == 0 {
                break;
            }
            b.extend_from_slice(&buf[..n]);
        }
        out.push((m, b));
    }
    Ok(out)
}

fn size_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(CHUNK_SIZE - 1),
        Just(CHUNK_SIZE),
        Just(CHUNK_SIZE + 1),
        Just(2 * CHUNK_SIZE),
        0usize..3 * CHUNK_SIZE,
    ]
}

fn entry_strategy() -> impl Strategy<Value = (EntryMeta, Vec<u8>)> {
    (
        prop::bool::ANY,
        prop::collection::vec("[a-zA-Z0-9._-]{1,12}", 1..4),
        prop::bool::ANY,
        0u32..=0o7777,
        size_strategy(),
        any::<u8>(),
    )
        .prop_filter("no . or .. components", |(_, parts, ..)| {
            parts.iter().all(|p| p != "." && p != "..")
        })
        .prop_map(|(home, parts, is_dir, mode, size, seed)| {
            let anchor = if home { Anchor::Home } else { Anchor::Root };
            let kind = if is_dir {
                EntryKind::Dir
            } else {
                EntryKind::File
            };
            let data = if is_dir { Vec::new() } else { body(seed, size) };
            (meta(anchor, parts.join("/"), kind, mode, &data), data)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_entry_set_round_trips(entries in prop::collection::vec(entry_strategy(), 0..6)) {
        // Duplicate paths are refused by the reader by design; dedupe.
        let mut seen = std::collections::HashSet::new();
        let entries: Vec<_> = entries
            .into_iter()
            .filter(|(m, _)| seen.insert((m.anchor, m.path.clone())))
            .collect();
        let blob = seal(&entries);
        let back = open(&blob).unwrap();
        prop_assert_eq!(back, entries);
    }
}

/// A small valid blob (two chunks) and a target root to restore it into.
fn fixture_blob() -> &'static Vec<u8> {
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    BLOB.get_or_init(|| {
        let a = body(1, CHUNK_SIZE - 200);
        let b = body(2, 300);
        seal(&[
            (
                meta(
                    Anchor::Home,
                    ".config/gh".into(),
                    EntryKind::Dir,
                    0o700,
                    &[],
                ),
                Vec::new(),
            ),
            (
                meta(
                    Anchor::Home,
                    ".config/gh/hosts.yml".into(),
                    EntryKind::File,
                    0o600,
                    &a,
                ),
                a.clone(),
            ),
            (
                meta(
                    Anchor::Root,
                    "etc/zeta/keys".into(),
                    EntryKind::File,
                    0o644,
                    &b,
                ),
                b.clone(),
            ),
        ])
    })
}

/// The same pipeline as `zeta-creds restore`.
fn restore_from(blob: &[u8], target: &std::path::Path) -> Result<restore::Report, ErrorClass> {
    let mut r = blob;
    let header = Header::read(&mut r).map_err(|e| e.class())?;
    header
        .check_binding(&binding(&fields()))
        .map_err(|e| e.class())?;
    let unlocked = header
        .unlock(&SecretString::from(PASS), &binding(&fields()), 20)
        .map_err(|e| e.class())?;
    let mut entries = EntryReader::new(unlocked.payload_reader(r)).map_err(|e| e.class())?;
    let opts = restore::Options {
        target_root: target.to_owned(),
        user: None,
        dry_run: false,
        on_conflict: restore::OnConflict::KeepModified,
        allow_rollback: false,
        allow_any_path: false,
        generation: 1,
        blob: None,
    };
    restore::restore(&mut entries, &opts).map_err(|e| match e {
        restore::Error::Envelope(e) => e.class(),
        other => panic!("unexpected restore error {other}"),
    })
}

fn target() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let ids = common::Ids {
        zeta_uid: common::uid(),
        zeta_gid: common::gid(),
        ssh_gid: common::gid(),
    };
    common::write_accounts(t.path(), &ids);
    std::fs::create_dir_all(t.path().join("home/zeta")).unwrap();
    t
}

#[test]
fn the_unflipped_fixture_restores() {
    let t = target();
    let report = restore_from(fixture_blob(), t.path()).unwrap();
    assert_eq!(report.entries.len(), 3);
    assert_eq!(report.failed().count(), 0, "{report:?}");
    assert_eq!(
        std::fs::read(t.path().join("etc/zeta/keys")).unwrap(),
        body(2, 300)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_single_bit_flip_fails_and_restores_nothing(bit in 0usize..fixture_blob().len() * 8) {
        let mut blob = fixture_blob().clone();
        blob[bit / 8] ^= 1 << (bit % 8);
        let t = target();
        let before = common::snapshot(t.path());
        let result = restore_from(&blob, t.path());
        prop_assert!(result.is_err(), "bit {} flipped and the restore succeeded", bit);
        prop_assert_ne!(result.unwrap_err(), ErrorClass::Other);
        prop_assert_eq!(before, common::snapshot(t.path()), "bit {} changed the target", bit);
    }
}

/// A cut after the first chunk: that chunk authenticates and is staged
/// (directories created, a temporary file written) before the missing
/// final chunk is noticed; everything staged must be rolled back.
#[test]
fn truncation_at_every_chunk_boundary_fails_and_rolls_back() {
    let blob = fixture_blob();
    let header_len = Header::read(&mut &blob[..]).unwrap().len();
    for cut in [
        header_len,
        header_len + 16,
        header_len + CHUNK_SIZE + 16,
        blob.len() - 1,
    ] {
        let t = target();
        let before = common::snapshot(t.path());
        assert_eq!(
            restore_from(&blob[..cut], t.path()).unwrap_err(),
            ErrorClass::Payload,
            "cut at {cut}"
        );
        assert_eq!(before, common::snapshot(t.path()), "cut at {cut}");
    }
}
