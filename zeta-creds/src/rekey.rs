//! `zeta-creds rekey`: a new passphrase, a new stick, a new host or a new
//! work factor for an existing blob, without re-encrypting it
//! (docs/FORMAT.md §7). A version 1 blob comes out as version 2, with the
//! host it is given (§12).
//!
//! The file key is unwrapped with the current passphrase and wrapped again
//! under the new one (`UnlockedHeader::rewrap`, the only crypto here, all
//! of it inside the envelope module); the generation is raised, so a system
//! that restores the rekeyed blob refuses the old one as a rollback; the
//! payload bytes are copied unchanged.
//!
//! The payload is copied through a tee into the STREAM and entry readers,
//! so every byte written to the new blob is a byte that was just
//! authenticated, and a damaged blob is refused (exit 5) instead of being
//! given a new generation. The new blob replaces the old one atomically
//! (temporary file, fsync, rename), keeping it as `BLOB.prev`.
//!
//! A rekey is **not a revocation**: the file key stays the same, so anyone
//! who knew the old passphrase and kept a copy of the old blob (or learned
//! the file key) can still read the payload. After a passphrase is
//! disclosed, re-bundle, which draws a fresh file key (FORMAT.md §10).
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;

use secrecy::SecretString;

use crate::bundle::now;
use crate::envelope::{self, EntryReader, HeaderFields, Host, UnlockedHeader, UsbUuid};
use crate::fsx::AtomicFile;

/// Why a rekey failed. Nothing was replaced.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The payload did not verify, or the new header could not be made.
    #[error(transparent)]
    Envelope(#[from] envelope::Error),
    /// The generation cannot be raised any further.
    #[error(
        "generation of {blob} is at its maximum; re-bundle instead (a new blob starts at generation 1 on a new stick)"
    )]
    GenerationExhausted {
        /// The blob path.
        blob: PathBuf,
    },
    /// The new blob cannot be written.
    #[error("cannot write {blob}: {source}; the old blob is unchanged")]
    Write {
        /// The blob path.
        blob: PathBuf,
        /// Why it cannot be written.
        #[source]
        source: io::Error,
    },
}

/// What to change.
#[derive(Debug, Clone)]
pub struct Options {
    /// The blob to rewrite in place.
    pub blob: PathBuf,
    /// The stick the rekeyed blob is bound to (the old one to keep it).
    pub usb_uuid: UsbUuid,
    /// The host the rekeyed blob is sealed for (the old one to keep it; a
    /// version 1 blob has none, so its rekey must name one).
    pub host: Host,
    /// The work factor of the rekeyed blob.
    pub log_n: u8,
    /// Keep the old blob as `BLOB.prev`.
    pub backup: bool,
}

/// What a rekey did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The header before.
    pub old: HeaderFields,
    /// The header after.
    pub new: HeaderFields,
    /// Whether the old blob was kept as `BLOB.prev`.
    pub kept_previous: bool,
    /// Payload bytes copied.
    pub payload_bytes: u64,
    /// Entries verified on the way.
    pub entries: u64,
}

/// Rewrap `unlocked` under `new_passphrase` and replace `opts.blob`;
/// `payload` is the blob, positioned at its first payload byte.
pub fn rekey(
    unlocked: UnlockedHeader<'_>,
    payload: &mut File,
    new_passphrase: &SecretString,
    opts: &Options,
) -> Result<Outcome, Error> {
    let old = unlocked.fields().clone();
    let new = HeaderFields {
        usb_uuid: opts.usb_uuid.clone(),
        log_n: opts.log_n,
        generation: old
            .generation
            .checked_add(1)
            .ok_or_else(|| Error::GenerationExhausted {
                blob: opts.blob.clone(),
            })?,
        created: now(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        persona: old.persona.clone(),
        host: Some(opts.host.clone()),
    };
    let header = unlocked.rewrap(new_passphrase, &new)?;
    let write_err = |source: io::Error| Error::Write {
        blob: opts.blob.clone(),
        source,
    };
    let mut atomic = AtomicFile::create(&opts.blob).map_err(write_err)?;
    atomic.file().write_all(&header).map_err(write_err)?;

    // Copy the payload through the readers that authenticate it.
    let tee = Tee {
        input: BufReader::new(payload),
        copy: atomic.file(),
        failed: None,
    };
    let mut entries =
        EntryReader::new(unlocked.payload_reader(tee)).map_err(|e| tee_err(e, opts))?;
    let mut count = 0u64;
    let verified = (|| {
        while entries.next_entry()?.is_some() {
            entries.skip_body()?;
            count += 1;
        }
        Ok::<(), envelope::Error>(())
    })();
    verified.map_err(|e| tee_err(e, opts))?;
    drop(entries);
    let payload_bytes = atomic_len(&mut atomic, header.len()).map_err(write_err)?;
    let kept_previous = atomic
        .commit_keeping_previous(opts.backup)
        .map_err(write_err)?;
    Ok(Outcome {
        old,
        new,
        kept_previous,
        payload_bytes,
        entries: count,
    })
}

/// A failure to write the copy travels through the reader as an I/O
/// error; report it as a write error, not as a damaged blob.
fn tee_err(e: envelope::Error, opts: &Options) -> Error {
    match e {
        envelope::Error::Io(source) if source.get_ref().is_some_and(|i| i.is::<CopyFailed>()) => {
            Error::Write {
                blob: opts.blob.clone(),
                source,
            }
        }
        other => Error::Envelope(other),
    }
}

fn atomic_len(atomic: &mut AtomicFile, header_len: usize) -> io::Result<u64> {
    let len = atomic.file().metadata()?.len();
    Ok(len.saturating_sub(header_len as u64))
}

/// Reads `input` and writes every byte read to `copy`.
struct Tee<'a, R: Read> {
    input: R,
    copy: &'a mut File,
    /// Set once a write failed: every later read fails too.
    failed: Option<io::ErrorKind>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write the rekeyed copy: {0}")]
struct CopyFailed(io::Error);

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(kind) = self.failed {
            return Err(io::Error::other(CopyFailed(kind.into())));
        }
        let n = self.input.read(buf)?;
        if let Err(e) = self.copy.write_all(&buf[..n]) {
            self.failed = Some(e.kind());
            return Err(io::Error::other(CopyFailed(e)));
        }
        Ok(n)
    }
}
