//! A test-side encoder of the entry stream (FORMAT.md §5), with every field
//! free: for the malformed-but-validly-sealed payloads that the crate's
//! `EntryWriter` refuses to write. Shared by the generators of tests/kit
//! and tests/vectors and by the hostile and bounds suites. `valid_stream`
//! checks it against `EntryWriter`, so a malformed stream differs from a
//! valid one only where it means to.

use zeta_creds::envelope::{Anchor, EntryKind, EntryMeta, EntryWriter};

/// One entry record as bytes.
#[derive(Clone)]
pub struct RawEntry {
    pub tag: u8,
    pub anchor: u8,
    pub kind: u8,
    /// The declared path length; `None` is the true one.
    pub path_len: Option<u16>,
    pub path: Vec<u8>,
    pub mode: u16,
    pub owner: Vec<u8>,
    pub group: Vec<u8>,
    pub mtime: i64,
    pub size: u64,
    pub sha256: [u8; 32],
    pub body: Vec<u8>,
}

impl RawEntry {
    /// The record `EntryWriter` writes for `meta` and `body`.
    pub fn of(meta: &EntryMeta, body: &[u8]) -> RawEntry {
        RawEntry {
            tag: 0x01,
            anchor: match meta.anchor {
                Anchor::Root => 0,
                Anchor::Home => 1,
            },
            kind: match meta.kind {
                EntryKind::File => 0,
                EntryKind::Dir => 1,
            },
            path_len: None,
            path: meta.path.as_bytes().to_vec(),
            mode: meta.mode as u16,
            owner: meta.owner.as_bytes().to_vec(),
            group: meta.group.as_bytes().to_vec(),
            mtime: meta.mtime,
            size: meta.size,
            sha256: meta.sha256,
            body: body.to_vec(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, self.anchor, self.kind];
        let len = self.path_len.unwrap_or(self.path.len() as u16);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.path);
        out.extend_from_slice(&self.mode.to_be_bytes());
        out.push(self.owner.len() as u8);
        out.extend_from_slice(&self.owner);
        out.push(self.group.len() as u8);
        out.extend_from_slice(&self.group);
        out.extend_from_slice(&self.mtime.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.sha256);
        out.extend_from_slice(&self.body);
        out
    }
}

/// An entry stream as bytes: preamble, records (encoded, or any bytes),
/// end marker, trailing bytes.
pub struct RawStream {
    pub user: Vec<u8>,
    pub records: Vec<Vec<u8>>,
    /// The end marker's count; `None` leaves the end marker out.
    pub end_count: Option<u64>,
    pub trailing: Vec<u8>,
}

impl RawStream {
    /// A well-formed stream of `records`: the end marker counts them.
    pub fn new(user: &str, records: Vec<Vec<u8>>) -> RawStream {
        RawStream {
            user: user.as_bytes().to_vec(),
            end_count: Some(records.len() as u64),
            records,
            trailing: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.user.len() as u8];
        out.extend_from_slice(&self.user);
        for r in &self.records {
            out.extend_from_slice(r);
        }
        if let Some(count) = self.end_count {
            out.push(0x00);
            out.extend_from_slice(&count.to_be_bytes());
        }
        out.extend_from_slice(&self.trailing);
        out
    }
}

/// A valid stream written by the crate's `EntryWriter`, after checking that
/// `RawStream` encodes the same entries to the same bytes.
pub fn valid_stream<'a>(
    user: &str,
    entries: impl IntoIterator<Item = (EntryMeta, &'a [u8])>,
) -> Vec<u8> {
    let mut w = EntryWriter::new(Vec::new(), user).unwrap();
    let mut records = Vec::new();
    for (meta, body) in entries {
        w.add(&meta, &mut &body[..]).unwrap();
        records.push(RawEntry::of(&meta, body).encode());
    }
    let bytes = w.finish().unwrap();
    assert_eq!(
        bytes,
        RawStream::new(user, records).encode(),
        "test-side entry encoder disagrees with EntryWriter"
    );
    bytes
}
