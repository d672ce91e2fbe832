//! Offsets of the header fields (FORMAT.md §2), which depend on the
//! lengths of the variable fields and on the version (a version 1 header
//! has no host), and of the payload's chunks (§4).
//! Shared by the generators of tests/vectors and tests/kit, which edit
//! blobs byte by byte, and by the suites that predict what such an edit
//! does.

use zeta_creds::envelope::{CHUNK_SIZE, HeaderFields, TAG_LEN};

pub struct Layout {
    pub uuid: usize,
    pub tool: usize,
    pub persona: usize,
    /// The host's length; `None` for a version 1 header.
    pub host: Option<usize>,
}

impl Layout {
    pub const VERSION: usize = 10;
    pub const UUID_LEN: usize = 11;
    pub const UUID: usize = 12;

    pub fn of(f: &HeaderFields) -> Layout {
        Layout {
            uuid: f.usb_uuid.as_str().len(),
            tool: f.tool_version.len(),
            persona: f.persona.len(),
            host: f.host.as_ref().map(|h| h.as_str().len()),
        }
    }
    pub fn log_n(&self) -> usize {
        Self::UUID + self.uuid
    }
    pub fn salt(&self) -> usize {
        self.log_n() + 1
    }
    pub fn wrapped_key(&self) -> usize {
        self.salt() + 16
    }
    pub fn generation(&self) -> usize {
        self.wrapped_key() + 48
    }
    pub fn created(&self) -> usize {
        self.generation() + 8
    }
    pub fn tool_len(&self) -> usize {
        self.created() + 8
    }
    pub fn tool(&self) -> usize {
        self.tool_len() + 1
    }
    pub fn persona_len(&self) -> usize {
        self.tool() + self.tool
    }
    pub fn persona(&self) -> usize {
        self.persona_len() + 1
    }
    /// Version 2 only: where `host_len` is.
    pub fn host_len(&self) -> usize {
        self.persona() + self.persona
    }
    /// Version 2 only: where the host is.
    pub fn host(&self) -> usize {
        self.host_len() + 1
    }
    pub fn nonce(&self) -> usize {
        match self.host {
            Some(len) => self.host() + len,
            None => self.persona() + self.persona,
        }
    }
    pub fn mac(&self) -> usize {
        self.nonce() + 16
    }
    pub fn payload(&self) -> usize {
        self.mac() + 32
    }
}

/// The byte ranges, within the payload, of the chunks of a payload of
/// `plain_len` plaintext bytes.
pub fn chunk_ranges(plain_len: usize) -> Vec<std::ops::Range<usize>> {
    let n = plain_len.div_ceil(CHUNK_SIZE).max(1);
    (0..n)
        .map(|i| {
            let start = i * (CHUNK_SIZE + TAG_LEN);
            let len = if i + 1 == n {
                plain_len - i * CHUNK_SIZE + TAG_LEN
            } else {
                CHUNK_SIZE + TAG_LEN
            };
            start..start + len
        })
        .collect()
}
