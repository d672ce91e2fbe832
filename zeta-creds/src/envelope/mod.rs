//! Envelope format v2 (and v1, still read): the sealed blob zeta-creds
//! writes to the ESP.
//!
//! This module is *pure*: bytes in, bytes out, through `impl Read` and
//! `impl Write`. It never touches the filesystem, the environment, a
//! process, a thread, a clock, a tty or clap (`tests/envelope_pure.rs`
//! fails if it names them), so that the part an auditor must read is small
//! and all of it is reachable from the test vectors and the fuzzers. Times
//! (`created`) come in from the caller. The one operating-system call is the
//! random number generator, behind one function (`os_random`), for the file
//! key, salt and payload nonce; [`Header::seal`] and
//! [`UnlockedHeader::rewrap`] draw from it. With the `test-vectors` feature
//! (tests, vectors, benches and fuzzing only), `Header::seal_with`,
//! `UnlockedHeader::rewrap_with_salt` and `FileKey::from_bytes_for_vectors`
//! take that randomness from the caller instead. Error messages name no
//! flag or tool: the binary adds that advice. `docs/FORMAT.md` is the
//! normative description; every constant below names the section it comes
//! from.
//!
//! The design follows age v1 (C2SP `age.md`) with our own labels, so a
//! zeta-creds blob and an age file can never be confused or share a derived
//! key:
//!
//! ```text
//! file key    = 32 random bytes, fresh for every bundle
//! s           = scrypt(P = passphrase, S = "zeta-creds/v2/scrypt" || salt,
//!                      N = 2^log_n, r = 8, p = 1, dkLen = 32)
//! KEK         = HKDF-SHA-256(ikm = s, salt = "",
//!                            info = "zeta-creds/v2/kek" || 0x00 || uuid || 0x00 || host)
//! wrapped key = ChaCha20-Poly1305(key = KEK, nonce = 0^96, aad = "", file key)
//! MAC key     = HKDF-SHA-256(ikm = file key, salt = "", info = "zeta-creds/v2/header")
//! MAC         = HMAC-SHA-256(MAC key, header bytes as received)
//! payload key = HKDF-SHA-256(ikm = file key, salt = payload nonce, info = "zeta-creds/v1/payload")
//! payload     = STREAM(payload key, entry stream), 64 KiB chunks
//! ```
//!
//! Version 1 blobs (no host; every `v2` label above reads `v1` and the KEK
//! info ends at the UUID) are still read, so that `rekey` can move them to
//! version 2; the payload label is `v1` in both versions, so the payload
//! key does not change (FORMAT.md §12).
//!
//! The only way to obtain a payload reader is [`Header::unlock`], which
//! checks the binding (stick and host) and the work-factor cap before
//! scrypt runs, unwraps
//! the file key, and verifies the header MAC before the payload key exists.
#![forbid(unsafe_code)]

mod entries;
mod header;
mod keys;
mod stream;

pub use entries::{
    Anchor, EntriesError, EntryKind, EntryMeta, EntryReader, EntryWriter, MAX_ENTRIES,
    MAX_ENTRY_SIZE, MAX_NAME_LEN, MAX_PATH_LEN, NameError, validate_name as entries_validate_name,
    validate_path as entries_validate_path,
};
pub use header::{Binding, Header, HeaderFields, UnlockedHeader};
pub use keys::{FileKey, scrypt_memory};
/// The stream tests' reader, for the read-ahead's tests.
#[cfg(test)]
pub(crate) use stream::tests::read_in_pieces;
pub use stream::{FirstError, StreamReader, StreamWriter, hand_out};

use std::fmt;

/// FORMAT.md §1: the first bytes of every blob.
pub const MAGIC: &[u8; 10] = b"zeta-creds";
/// FORMAT.md §1: the envelope version this code writes (and reads).
pub const VERSION: u8 = 2;
/// FORMAT.md §12: the older version this code still reads (no host field);
/// never written except by the `test-vectors` constructors.
pub const VERSION_1: u8 = 1;
/// FORMAT.md §3: lowest work factor (log2 of scrypt's N) a blob may carry.
pub const MIN_LOG_N: u8 = 10;
/// FORMAT.md §3: highest work factor a blob may carry (4 GiB of memory).
pub const MAX_LOG_N: u8 = 22;
/// FORMAT.md §3: the work factor `bundle` writes unless told otherwise.
pub const DEFAULT_LOG_N: u8 = 18;
/// FORMAT.md §3: the work factor `restore` accepts unless told otherwise
/// (1 GiB of scrypt memory). Checked before any scrypt work, because the
/// header is not authenticated until the passphrase has been tried.
pub const DEFAULT_MAX_LOG_N: u8 = 20;
/// FORMAT.md §2: length of the scrypt salt.
pub const SALT_LEN: usize = 16;
/// FORMAT.md §2: length of the random file key.
pub const FILE_KEY_LEN: usize = 32;
/// FORMAT.md §2: file key plus Poly1305 tag.
pub const WRAPPED_KEY_LEN: usize = FILE_KEY_LEN + TAG_LEN;
/// FORMAT.md §2: length of the payload nonce (the payload key's HKDF salt).
pub const PAYLOAD_NONCE_LEN: usize = 16;
/// FORMAT.md §2: length of the header MAC.
pub const MAC_LEN: usize = 32;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// FORMAT.md §4: plaintext bytes per STREAM chunk. A constant, not a field.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// FORMAT.md §2: longest USB UUID (normalized).
pub const MAX_UUID_LEN: usize = 64;
/// FORMAT.md §2: longest tool version string.
pub const MAX_TOOL_VERSION_LEN: usize = 64;
/// FORMAT.md §2: longest persona name.
pub const MAX_PERSONA_LEN: usize = 64;
/// FORMAT.md §2.2: longest host name (normalized).
pub const MAX_HOST_LEN: usize = 64;

/// FORMAT.md §3.8: scrypt salt label of version 2, prefixed to the 16
/// random salt bytes.
pub const LABEL_SCRYPT: &[u8] = b"zeta-creds/v2/scrypt";
/// FORMAT.md §3.8: HKDF info label of version 2's key-encryption key.
pub const LABEL_KEK: &[u8] = b"zeta-creds/v2/kek";
/// FORMAT.md §3.8: HKDF info label of version 2's header MAC key.
pub const LABEL_HEADER: &[u8] = b"zeta-creds/v2/header";
/// FORMAT.md §3.8: HKDF info label of the payload key, in both versions
/// (the payload is the same, so a rekey from v1 to v2 copies it).
pub const LABEL_PAYLOAD: &[u8] = b"zeta-creds/v1/payload";
/// FORMAT.md §12: version 1's scrypt salt label.
pub const LABEL_SCRYPT_V1: &[u8] = b"zeta-creds/v1/scrypt";
/// FORMAT.md §12: version 1's HKDF info label of the key-encryption key.
pub const LABEL_KEK_V1: &[u8] = b"zeta-creds/v1/kek";
/// FORMAT.md §12: version 1's HKDF info label of the header MAC key.
pub const LABEL_HEADER_V1: &[u8] = b"zeta-creds/v1/header";

/// Everything that can go wrong reading or writing an envelope.
///
/// The variants fall into the failure classes of [`ErrorClass`], which the
/// test vectors name and the binary maps to exit codes. Messages say what is
/// wrong with the blob and name no flag, tool or program version: advice of
/// that kind is the binary's to add (as rage's `DecryptError` leaves it to
/// the `rage` binary).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The blob does not start with [`MAGIC`].
    #[error("not a zeta-creds blob (bad magic bytes)")]
    BadMagic,
    #[error(
        "unsupported envelope version {0} (this zeta-creds reads versions {VERSION_1} and {VERSION})"
    )]
    /// The version byte is not [`VERSION`] (the binary suggests a newer
    /// zeta-creds).
    UnsupportedVersion(u8),
    /// The blob ends inside the header or its MAC.
    #[error("header is truncated")]
    TruncatedHeader,
    /// A header field breaks a rule of FORMAT.md §2.
    #[error("header field `{field}` is invalid: {reason}")]
    InvalidHeader {
        /// The field's name in FORMAT.md §2.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    #[error(
        "work factor {log_n} is outside the range this format allows ({MIN_LOG_N}..={MAX_LOG_N})"
    )]
    /// The work factor is outside [`MIN_LOG_N`]..=[`MAX_LOG_N`].
    WorkFactorOutOfRange {
        /// The work factor as read.
        log_n: u8,
    },
    #[error(
        "work factor {log_n} exceeds the cap {cap} (scrypt would need {} MiB)",
        (1u64 << log_n) / 1024
    )]
    /// The (unauthenticated) work factor is above the caller's cap; refused
    /// before any scrypt work (the binary suggests `--max-work-factor`).
    WorkFactorTooHigh {
        /// The work factor as read.
        log_n: u8,
        /// The caller's cap.
        cap: u8,
    },
    #[error(
        "work factor {log_n} needs {} MiB of memory for scrypt and this machine would not give it",
        bytes / (1024 * 1024)
    )]
    /// This process could not reserve scrypt's memory for the work factor
    /// (the binary suggests where to restore, or which limit to lift).
    InsufficientMemory {
        /// The work factor.
        log_n: u8,
        /// The bytes scrypt needs for it ([`scrypt_memory`]).
        bytes: u64,
    },
    /// The blob is bound to another USB stick than the caller's.
    #[error("blob is bound to USB {blob}, not to {expected}")]
    UsbUuidMismatch {
        /// The UUID in the header.
        blob: String,
        /// The UUID the caller holds.
        expected: String,
    },
    /// The blob records another host than the caller's, or (version 1)
    /// none at all.
    #[error("{}", host_mismatch(blob.as_deref(), expected))]
    HostMismatch {
        /// The host in the header; `None` for a version 1 blob, which has
        /// no host field.
        blob: Option<String>,
        /// The host the caller is.
        expected: String,
    },
    /// A new header must record a host (only version 2 is written).
    #[error("a new blob must record the host it is sealed for")]
    MissingHost,
    /// The passphrase (with the UUID) did not unwrap the file key.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The file key unwrapped but the header MAC did not verify.
    #[error("header MAC does not match: the blob was tampered with or corrupted")]
    HeaderMac,
    /// The payload ends before a final chunk.
    #[error("payload is truncated (no final chunk)")]
    PayloadTruncated,
    /// Bytes follow the final chunk.
    #[error("payload has trailing data after the final chunk")]
    PayloadTrailingData,
    /// A chunk did not authenticate as a middle or as the final chunk.
    #[error("payload chunk {index} failed to authenticate")]
    PayloadChunk {
        /// The chunk's index, from 0.
        index: u64,
    },
    /// The final chunk is empty although chunks came before it.
    #[error("payload ends in an empty final chunk after data")]
    PayloadLastChunkEmpty,
    /// The authenticated plaintext is not a valid entry stream.
    #[error("entry stream is invalid: {0}")]
    Entries(EntriesError),
    #[error(
        "invalid USB UUID {0:?}: expected 1 to {MAX_UUID_LEN} characters of [0-9a-z-] after trimming and lower-casing"
    )]
    /// A USB UUID given by the caller is not one ([`UsbUuid::parse`]).
    InvalidUsbUuid(String),
    /// A host name given by the caller is not one ([`Host::parse`]).
    #[error(
        "invalid host name {raw:?}: {why}; expected 1 to {MAX_HOST_LEN} characters of [a-z0-9.-] after trimming and lower-casing"
    )]
    InvalidHost {
        /// The name as given.
        raw: String,
        /// What is wrong: the characters outside the set, or the length.
        why: String,
    },
    /// A persona name given by the caller is not one ([`validate_persona`]).
    #[error("invalid persona {0:?}: expected up to {MAX_PERSONA_LEN} characters of [a-z0-9_-]")]
    InvalidPersona(String),
    /// The operating system's random number generator failed.
    #[error("operating system random number generator failed: {0}")]
    Random(String),
    /// The caller's reader or writer failed.
    #[error(transparent)]
    Io(std::io::Error),
}

/// The failure classes of the test vectors (after C2SP CCTV's age vectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The header could not be parsed or is out of bounds.
    Header,
    /// The blob is bound to another USB UUID.
    Binding,
    /// The passphrase did not unwrap the file key.
    NoMatch,
    /// The file key unwrapped but the header MAC did not verify.
    Hmac,
    /// A STREAM rule was broken or a chunk did not authenticate.
    Payload,
    /// The authenticated plaintext is not a valid entry stream.
    Entries,
    /// An I/O error from the underlying reader or writer, or bad caller input.
    Other,
}

impl Error {
    /// Which failure class this error belongs to.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::BadMagic
            | Error::UnsupportedVersion(_)
            | Error::TruncatedHeader
            | Error::InvalidHeader { .. }
            | Error::WorkFactorOutOfRange { .. }
            | Error::WorkFactorTooHigh { .. }
            | Error::InsufficientMemory { .. } => ErrorClass::Header,
            Error::UsbUuidMismatch { .. } | Error::HostMismatch { .. } => ErrorClass::Binding,
            Error::WrongPassphrase => ErrorClass::NoMatch,
            Error::HeaderMac => ErrorClass::Hmac,
            Error::PayloadTruncated
            | Error::PayloadTrailingData
            | Error::PayloadChunk { .. }
            | Error::PayloadLastChunkEmpty => ErrorClass::Payload,
            Error::Entries(_) => ErrorClass::Entries,
            Error::InvalidUsbUuid(_)
            | Error::InvalidHost { .. }
            | Error::MissingHost
            | Error::InvalidPersona(_)
            | Error::Random(_)
            | Error::Io(_) => ErrorClass::Other,
        }
    }

    /// Recover an envelope error that travelled through `std::io::Read` as an
    /// `io::Error` (the STREAM reader can only report through that channel).
    pub fn from_io(err: std::io::Error) -> Error {
        if err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            match err.into_inner().map(|inner| inner.downcast::<Error>()) {
                Some(Ok(inner)) => *inner,
                // Unreachable: checked with `is` above.
                Some(Err(other)) => Error::Io(std::io::Error::other(other)),
                None => Error::Io(std::io::Error::other("lost I/O error")),
            }
        } else {
            Error::Io(err)
        }
    }

    /// A copy of this error, to report it again: a reader that has failed
    /// fails every later call the same way. (`Error` is not `Clone` because
    /// `std::io::Error` is not; an I/O error is copied as its kind and
    /// message.)
    pub fn replay(&self) -> Error {
        match self {
            Error::BadMagic => Error::BadMagic,
            Error::UnsupportedVersion(v) => Error::UnsupportedVersion(*v),
            Error::TruncatedHeader => Error::TruncatedHeader,
            Error::InvalidHeader { field, reason } => Error::InvalidHeader {
                field,
                reason: reason.clone(),
            },
            Error::WorkFactorOutOfRange { log_n } => Error::WorkFactorOutOfRange { log_n: *log_n },
            Error::WorkFactorTooHigh { log_n, cap } => Error::WorkFactorTooHigh {
                log_n: *log_n,
                cap: *cap,
            },
            Error::InsufficientMemory { log_n, bytes } => Error::InsufficientMemory {
                log_n: *log_n,
                bytes: *bytes,
            },
            Error::UsbUuidMismatch { blob, expected } => Error::UsbUuidMismatch {
                blob: blob.clone(),
                expected: expected.clone(),
            },
            Error::HostMismatch { blob, expected } => Error::HostMismatch {
                blob: blob.clone(),
                expected: expected.clone(),
            },
            Error::MissingHost => Error::MissingHost,
            Error::InvalidHost { raw, why } => Error::InvalidHost {
                raw: raw.clone(),
                why: why.clone(),
            },
            Error::WrongPassphrase => Error::WrongPassphrase,
            Error::HeaderMac => Error::HeaderMac,
            Error::PayloadTruncated => Error::PayloadTruncated,
            Error::PayloadTrailingData => Error::PayloadTrailingData,
            Error::PayloadChunk { index } => Error::PayloadChunk { index: *index },
            Error::PayloadLastChunkEmpty => Error::PayloadLastChunkEmpty,
            Error::Entries(e) => Error::Entries(e.clone()),
            Error::InvalidUsbUuid(s) => Error::InvalidUsbUuid(s.clone()),
            Error::InvalidPersona(s) => Error::InvalidPersona(s.clone()),
            Error::Random(s) => Error::Random(s.clone()),
            Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
        }
    }

    /// Into the `std::io::Error` that carries it through `std::io::Read`
    /// (an I/O error as itself); [`Error::from_io`] takes it back out.
    pub fn into_io(self) -> std::io::Error {
        match self {
            Error::Io(e) => e,
            other => std::io::Error::other(other),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Error {
        Error::from_io(err)
    }
}

/// A USB stick's filesystem UUID, normalized (FORMAT.md §2).
///
/// Whatever `blkid -s UUID -o value` prints is accepted: FAT serials
/// (`ABCD-1234`), ext4 and GPT UUIDs, ISO 9660 dates. Normalization trims
/// leading and trailing ASCII whitespace (space, tab, line feed, form feed,
/// carriage return; nothing else: not a vertical tab, not U+00A0 or any
/// other non-ASCII space) and lower-cases ASCII letters; then only
/// `[0-9a-z-]`, 1 to 64 characters. The UUID is a binding, not a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct UsbUuid(String);

impl UsbUuid {
    /// Normalize and validate a UUID as printed by `blkid` or typed by a user.
    pub fn parse(raw: &str) -> Result<UsbUuid, Error> {
        let normalized = raw.trim_ascii().to_ascii_lowercase();
        if Self::is_valid(normalized.as_bytes()) {
            Ok(UsbUuid(normalized))
        } else {
            Err(Error::InvalidUsbUuid(raw.to_owned()))
        }
    }

    /// Accept only an already-normalized UUID, as stored in a header.
    pub(crate) fn from_header(bytes: &[u8]) -> Option<UsbUuid> {
        if Self::is_valid(bytes) {
            // is_valid admits ASCII only.
            Some(UsbUuid(String::from_utf8_lossy(bytes).into_owned()))
        } else {
            None
        }
    }

    fn is_valid(bytes: &[u8]) -> bool {
        (1..=MAX_UUID_LEN).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || *b == b'-')
    }

    /// The normalized form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UsbUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UsbUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UsbUuid({})", self.0)
    }
}

/// The host a blob is sealed for, normalized (FORMAT.md §2.2).
///
/// Whatever `/etc/hostname` or `uname -n` gives is accepted after trimming
/// ASCII whitespace (as [`UsbUuid::parse`]) and lower-casing; then only
/// `[a-z0-9.-]`, 1 to 64 characters. Like the UUID it is a binding, not a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Host(String);

impl Host {
    /// Normalize and validate a host name as read from a file or typed.
    /// The error names the characters outside the allowed set.
    pub fn parse(raw: &str) -> Result<Host, Error> {
        let normalized = raw.trim_ascii().to_ascii_lowercase();
        let invalid = |why: String| Error::InvalidHost {
            raw: raw.to_owned(),
            why,
        };
        if normalized.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        let mut seen: Vec<char> = Vec::new();
        for c in normalized.chars().filter(|c| !Self::allowed(*c)) {
            if !seen.contains(&c) {
                seen.push(c);
            }
        }
        if !seen.is_empty() {
            let list: Vec<String> = seen.iter().map(|c| format!("{c:?}")).collect();
            return Err(invalid(format!(
                "it contains {} outside the allowed set",
                list.join(", ")
            )));
        }
        if normalized.len() > MAX_HOST_LEN {
            return Err(invalid(format!("it is {} bytes long", normalized.len())));
        }
        Ok(Host(normalized))
    }

    /// Accept only an already-normalized host name, as stored in a header.
    pub(crate) fn from_header(bytes: &[u8]) -> Option<Host> {
        let valid = (1..=MAX_HOST_LEN).contains(&bytes.len())
            && bytes.iter().all(|b| Self::allowed(char::from(*b)));
        // `allowed` admits ASCII only.
        valid.then(|| Host(String::from_utf8_lossy(bytes).into_owned()))
    }

    fn allowed(c: char) -> bool {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'
    }

    /// The normalized form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Host({})", self.0)
    }
}

/// The text of [`Error::HostMismatch`].
fn host_mismatch(blob: Option<&str>, expected: &str) -> String {
    match blob {
        Some(blob) => format!("blob was sealed for host {blob}, not for this host {expected}"),
        None => format!(
            "blob records no host (envelope version {VERSION_1}), so it cannot be checked against this host {expected}"
        ),
    }
}

/// Validate a persona name: empty (no persona) or up to 64 of `[a-z0-9_-]`.
pub fn validate_persona(persona: &str) -> Result<(), Error> {
    if persona.len() <= MAX_PERSONA_LEN
        && persona
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(Error::InvalidPersona(persona.to_owned()))
    }
}

/// Fill `buf` from the operating system's random number generator.
///
/// The envelope's one call into the operating system, for the file key,
/// the scrypt salt and the payload nonce: everything else is bytes in,
/// bytes out. `tests/envelope_pure.rs` holds `getrandom` to this function.
pub(crate) fn os_random(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf).map_err(|e| Error::Random(e.to_string()))
}

/// Read until `buf` is full or the reader is at end of file; return how
/// many bytes were read. Interrupted reads are retried.
pub(crate) fn read_full<R: std::io::Read + ?Sized>(
    reader: &mut R,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FORMAT.md §2.1: only ASCII whitespace is trimmed (`str::trim_ascii`:
    /// space, tab, LF, FF, CR); a vertical tab or a non-ASCII space is
    /// refused, not trimmed, for the UUID and the host alike.
    #[test]
    fn only_ascii_whitespace_is_trimmed() {
        for raw in [" abcd-1234", "\tABCD-1234\r\n", "\x0cabcd-1234 \x0c"] {
            assert_eq!(
                UsbUuid::parse(raw).unwrap().as_str(),
                "abcd-1234",
                "{raw:?}"
            );
            assert_eq!(
                Host::parse(&raw.replace("1234", "a")).unwrap().as_str(),
                "abcd-a"
            );
        }
        for raw in [
            "\x0babcd-1234",
            "abcd-1234\u{a0}",
            "\u{3000}abcd-1234",
            "abcd-1234\u{85}",
        ] {
            assert!(
                matches!(UsbUuid::parse(raw), Err(Error::InvalidUsbUuid(_))),
                "{raw:?}"
            );
            assert!(
                matches!(Host::parse(raw), Err(Error::InvalidHost { .. })),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn usb_uuid_normalizes_blkid_output() {
        assert_eq!(
            UsbUuid::parse(" ABCD-1234\n").unwrap().as_str(),
            "abcd-1234"
        );
        assert_eq!(
            UsbUuid::parse("2025-05-27-10-31-45-00").unwrap().as_str(),
            "2025-05-27-10-31-45-00"
        );
        assert_eq!(
            UsbUuid::parse("0F3E1C2B-9A8D-4E7F-B6C5-D4E3F2A1B0C9")
                .unwrap()
                .as_str(),
            "0f3e1c2b-9a8d-4e7f-b6c5-d4e3f2a1b0c9"
        );
    }

    #[test]
    fn usb_uuid_rejects_empty_long_and_odd_characters() {
        for bad in [
            "",
            "   ",
            "abcd_1234",
            "abcd 1234",
            "ab/cd",
            "é",
            &"a".repeat(65),
        ] {
            assert!(
                matches!(UsbUuid::parse(bad), Err(Error::InvalidUsbUuid(_))),
                "{bad:?} was accepted"
            );
        }
        assert!(UsbUuid::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn host_normalizes_and_names_bad_characters() {
        assert_eq!(Host::parse(" Node-A.lan\n").unwrap().as_str(), "node-a.lan");
        assert!(Host::parse(&"a".repeat(64)).is_ok());
        let msg = |raw: &str| Host::parse(raw).unwrap_err().to_string();
        assert!(
            msg("node_a b_").contains("'_', ' ' outside the allowed set"),
            "{}",
            msg("node_a b_")
        );
        assert!(msg("").contains("it is empty"));
        assert!(msg(&"a".repeat(65)).contains("65 bytes long"));
        assert!(msg("nöde").contains("'ö'"));
        assert!(Host::from_header(b"Node").is_none());
        assert!(Host::from_header(b"").is_none());
        assert!(Host::from_header(b"node-a").is_some());
    }

    #[test]
    fn persona_names() {
        assert!(validate_persona("").is_ok());
        assert!(validate_persona("ops-2_b").is_ok());
        assert!(validate_persona("Ops").is_err());
        assert!(validate_persona("a/b").is_err());
        assert!(validate_persona(&"a".repeat(65)).is_err());
    }

    #[test]
    fn io_errors_round_trip_to_envelope_errors() {
        let io = Error::PayloadChunk { index: 7 }.into_io();
        assert!(matches!(
            Error::from_io(io),
            Error::PayloadChunk { index: 7 }
        ));
        let plain = std::io::Error::new(std::io::ErrorKind::NotFound, "x");
        assert!(matches!(Error::from_io(plain), Error::Io(_)));
    }
}
