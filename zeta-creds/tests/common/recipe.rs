//! A blob made from chosen ingredients (file key, salt and payload nonce,
//! instead of fresh random ones) through the public API: how the vector
//! and kit generators make the same bytes on every run. Each generator
//! adds its own constructor and its own, independent, payload key.

use std::io::Write;

use secrecy::SecretString;
use zeta_creds::envelope::{FileKey, Header, HeaderFields};

use super::layout::Layout;

/// Everything a blob is made from, apart from its plaintext.
#[derive(Clone)]
pub struct Recipe {
    pub fields: HeaderFields,
    pub passphrase: String,
    pub file_key: [u8; 32],
    pub salt: [u8; 16],
    pub nonce: [u8; 16],
}

impl Recipe {
    pub fn secret(&self) -> SecretString {
        SecretString::from(self.passphrase.as_str())
    }

    fn writer<W: Write>(&self, out: W) -> zeta_creds::envelope::StreamWriter<W> {
        Header::seal_with(
            out,
            &self.secret(),
            &self.fields,
            FileKey::from_bytes_for_vectors(self.file_key),
            self.salt,
            self.nonce,
        )
        .unwrap()
    }

    /// The header and its MAC, as `Header::seal_with` writes them.
    pub fn header(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Dropped without `finish`: nothing of the payload is written.
        drop(self.writer(&mut out));
        assert_eq!(out.len(), Layout::of(&self.fields).payload());
        out
    }

    /// A whole blob: the header, then `plain` (any bytes, not necessarily
    /// an entry stream) through the returned `StreamWriter`.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut writer = self.writer(Vec::new());
        // Odd-sized writes, to exercise the writer's buffering.
        for piece in plain.chunks(7919) {
            writer.write_all(piece).unwrap();
        }
        writer.finish().unwrap()
    }
}
