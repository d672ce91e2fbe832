//! Every way a command can fail, the exit status each one gets, and the
//! one hint that follows the message.
//!
//! The library's errors are typed per boundary (`envelope::Error`,
//! `restore::Error`, ...); this enum wraps them with the file the operator
//! named, and [`CliError::exit`] is the one place that decides which
//! [`Exit`] an error ends in.
#![forbid(unsafe_code)]

use std::io;
use std::path::PathBuf;

use zeta_creds::envelope::{self, ErrorClass};
use zeta_creds::{bundle, diff, hostname, manifest, msg, passphrase, quality, rekey, restore};

use crate::exit::Exit;

/// Every way a command can fail, with what [`CliError::exit`] needs to know.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `--require-usb-present` and the stick did not appear in time.
    #[error(
        "USB stick {uuid} is not attached (no such entry in {} after {waited} s); attach the stick the blob is bound to, or restore without --require-usb-present",
        dir.display()
    )]
    UsbAbsent {
        /// The stick the blob is bound to.
        uuid: String,
        /// Where attached filesystems are listed.
        dir: PathBuf,
        /// How long the run waited, in seconds.
        waited: u64,
    },
    /// The envelope refused the blob.
    #[error("blob {blob}: {source}")]
    Blob {
        /// The blob.
        blob: PathBuf,
        /// Why.
        #[source]
        source: envelope::Error,
    },
    /// The blob does not exist.
    #[error("blob {0} not found")]
    BlobMissing(PathBuf),
    /// Something other than a regular file is where the blob belongs.
    #[error("blob {blob} is {what}, not a file")]
    BlobNotAFile {
        /// The path.
        blob: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// The blob exists but cannot be read.
    #[error("cannot read blob {blob}: {source}")]
    BlobRead {
        /// The blob.
        blob: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No passphrase tried unlocked the blob.
    #[error("wrong passphrase for blob {blob} (bound to USB {uuid})")]
    WrongPassphrase {
        /// The blob.
        blob: PathBuf,
        /// The stick it is bound to (unauthenticated header field).
        uuid: String,
    },
    /// `--usb-uuid-file` cannot be read or holds no UUID.
    #[error("USB UUID file {path}: {reason}")]
    UuidFile {
        /// The file.
        path: PathBuf,
        /// Why, with the next step.
        reason: String,
    },
    /// The host name of a root cannot be known.
    #[error(transparent)]
    Hostname(hostname::Error),
    /// `rekey` of a version 1 blob, which records no host, without
    /// `--new-host`.
    #[error(
        "blob {blob} records no host (envelope version 1): pass --new-host NAME to seal it for its host"
    )]
    NoHost {
        /// The blob.
        blob: PathBuf,
    },
    /// A value clap accepted but the command refuses.
    #[error("{0}")]
    Usage(String),
    /// No passphrase could be read.
    #[error(transparent)]
    Passphrase(#[from] passphrase::Error),
    /// zxcvbn rated a new passphrase weak.
    #[error(transparent)]
    Weak(#[from] quality::Weak),
    /// `rekey` without a new passphrase, a terminal or `--same-passphrase`.
    #[error(
        "no new passphrase for {blob}: pass --new-passphrase-file FILE, run rekey on a terminal to type it, or pass --same-passphrase to keep the current one"
    )]
    NoNewPassphrase {
        /// The blob.
        blob: PathBuf,
    },
    /// Picking or sealing failed.
    #[error(transparent)]
    Bundle(#[from] bundle::Error),
    /// The restore failed as a whole.
    #[error("blob {blob}: {source}")]
    Restore {
        /// The blob.
        blob: PathBuf,
        /// Why.
        #[source]
        source: restore::Error,
    },
    /// The comparison failed.
    #[error("blob {blob}: {source}")]
    Diff {
        /// The blob.
        blob: PathBuf,
        /// Why.
        #[source]
        source: diff::Error,
    },
    /// The rekey failed.
    #[error("rekey {blob}: {source}")]
    Rekey {
        /// The blob.
        blob: PathBuf,
        /// Why.
        #[source]
        source: rekey::Error,
    },
    /// `restore --persona` and the blob is for another one.
    #[error("blob {blob} was bundled for persona {found:?}, not {wanted:?}")]
    PersonaMismatch {
        /// The blob.
        blob: PathBuf,
        /// The blob's persona (authenticated).
        found: String,
        /// The one asked for.
        wanted: String,
    },
    /// Some entries of a restore could not be written.
    #[error("restore incomplete: {failed} of {total} entries could not be written (named above)")]
    Incomplete {
        /// How many failed.
        failed: usize,
        /// How many the blob holds.
        total: usize,
    },
    /// `status`: the target root cannot be opened.
    #[error("cannot open target root {}: {source}", root.display())]
    TargetRoot {
        /// The target root as given.
        root: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `status`: there is no state record under the target root.
    #[error(
        "no state record at {}: nothing was restored on this system yet; run `zeta-creds restore` first",
        path.display()
    )]
    NoStateRecord {
        /// Where it would be.
        path: PathBuf,
    },
    /// `status`: the state record cannot be read or parsed.
    #[error(
        "state record {} cannot be used ({reason}): status cannot tell what changed since the blob was restored",
        path.display()
    )]
    StateRecordUnusable {
        /// The record.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `status`: nothing changed, but some recorded files could not be
    /// checked.
    #[error(
        "{count} recorded file(s) could not be checked (named above): whether the blob is fresh is unknown"
    )]
    StatusUnknown {
        /// How many.
        count: usize,
    },
    /// stdout could not be written.
    #[error("cannot write output: {0}")]
    Output(#[source] io::Error),
}

impl From<manifest::Error> for CliError {
    fn from(e: manifest::Error) -> CliError {
        CliError::Bundle(bundle::Error::Manifest(e))
    }
}

/// The status an envelope error ends in, wherever it surfaces.
fn envelope_exit(e: &envelope::Error) -> Exit {
    match e.class() {
        ErrorClass::NoMatch => Exit::WrongPassphrase,
        ErrorClass::Binding => Exit::OtherUsb,
        ErrorClass::Header | ErrorClass::Hmac | ErrorClass::Payload | ErrorClass::Entries => {
            Exit::Corrupt
        }
        ErrorClass::Other => Exit::Failure,
    }
}

/// Advice on flags, limits or versions for the envelope errors that call
/// for it. The library's messages say only what is wrong with the blob;
/// what to do about it from this command line is the binary's to say.
fn envelope_advice(e: &envelope::Error) -> Option<&'static str> {
    match e {
        envelope::Error::UnsupportedVersion(_) => Some("try a newer zeta-creds"),
        envelope::Error::WorkFactorTooHigh { .. } => {
            Some("raise --max-work-factor if you trust this blob")
        }
        envelope::Error::InsufficientMemory { .. } => Some(
            "restore where more memory is free, or lift the memory limit (ulimit -v, MemoryMax=)",
        ),
        _ => None,
    }
}

/// `err` as printed on its `error:` line: its message, with the
/// [`envelope_advice`] for the envelope error it carries (if any) right
/// after that error's own text, as `; advice`.
fn error_message(err: &CliError) -> String {
    let text = err.to_string();
    let source = match err {
        CliError::Blob { source, .. }
        | CliError::Restore {
            source: restore::Error::Envelope(source),
            ..
        }
        | CliError::Diff {
            source: diff::Error::Envelope(source),
            ..
        }
        | CliError::Rekey {
            source: rekey::Error::Envelope(source),
            ..
        }
        | CliError::Bundle(
            bundle::Error::ExistingBlob { source, .. } | bundle::Error::Seal { source, .. },
        ) => source,
        _ => return text,
    };
    let Some(advice) = envelope_advice(source) else {
        return text;
    };
    let inner = source.to_string();
    let end = text.rfind(&inner).map_or(text.len(), |at| at + inner.len());
    format!("{}; {advice}{}", &text[..end], &text[end..])
}

impl CliError {
    /// The one place an error's exit status is decided (the table is in
    /// `exit.rs`).
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Blob { source, .. } => envelope_exit(source),
            CliError::BlobMissing(_) => Exit::InputMissing,
            CliError::BlobRead { .. } => Exit::Failure,
            CliError::WrongPassphrase { .. } => Exit::WrongPassphrase,
            CliError::UuidFile { .. } => Exit::InputMissing,
            CliError::UsbAbsent { .. } => Exit::OtherUsb,
            CliError::Usage(_) => Exit::Usage,
            CliError::Hostname(e) => match e {
                hostname::Error::Missing { .. } | hostname::Error::Root { .. } => {
                    Exit::InputMissing
                }
                _ => Exit::Failure,
            },
            CliError::NoHost { .. } => Exit::Usage,
            CliError::Passphrase(passphrase::Error::Mismatch) => Exit::Failure,
            CliError::Passphrase(_) => Exit::InputMissing,
            CliError::Weak(_) => Exit::Failure,
            CliError::NoNewPassphrase { .. } => Exit::InputMissing,
            CliError::Bundle(e) => match e {
                bundle::Error::Manifest(manifest::Error::Read { .. })
                | bundle::Error::SourceRoot { .. }
                | bundle::Error::RequiredMissing { .. }
                | bundle::Error::RequiredNotCarried { .. } => Exit::InputMissing,
                bundle::Error::OtherHost { .. } => Exit::OtherUsb,
                _ => Exit::Failure,
            },
            CliError::Restore { source, .. } => match source {
                restore::Error::Envelope(e) => envelope_exit(e),
                restore::Error::TargetRoot { .. }
                | restore::Error::NoAccounts { .. }
                | restore::Error::Accounts { .. }
                | restore::Error::HostManifest(_) => Exit::InputMissing,
                restore::Error::NotRoot => Exit::Failure,
                restore::Error::Conflict { .. } => Exit::Corrupt,
                restore::Error::Stage { .. } => Exit::Failure,
                restore::Error::Rollback { .. } => Exit::Rollback,
            },
            CliError::Diff { source, .. } => match source {
                diff::Error::Envelope(e) => envelope_exit(e),
            },
            CliError::Rekey { source, .. } => match source {
                rekey::Error::Envelope(e) => envelope_exit(e),
                rekey::Error::GenerationExhausted { .. } | rekey::Error::Write { .. } => {
                    Exit::Failure
                }
            },
            // What the ESP holds, not a failure a retry could fix (issue 19
            // #10: exit 1 made the unit restart and ask again).
            CliError::BlobNotAFile { .. } => Exit::InputMissing,
            CliError::PersonaMismatch { .. } => Exit::Corrupt,
            CliError::Incomplete { .. } => Exit::Incomplete,
            CliError::TargetRoot { .. }
            | CliError::NoStateRecord { .. }
            | CliError::StateRecordUnusable { .. } => Exit::InputMissing,
            CliError::StatusUnknown { .. } => Exit::Failure,
            CliError::Output(_) => Exit::Failure,
        }
    }

    /// One hint, for the errors whose message does not already name the
    /// next step.
    pub fn hint(&self) -> Option<&'static str> {
        let envelope_hint = |source: &envelope::Error| match source {
            envelope::Error::UsbUuidMismatch { .. } => Some(
                "this blob belongs to another stick: check --usb-uuid / the UUID file, or rekey the blob to this stick",
            ),
            envelope::Error::HostMismatch { blob: None, .. } => Some(
                "record the host once with `zeta-creds rekey --blob BLOB --same-passphrase --new-host NAME`, or pass --allow-other-host to restore it anyway",
            ),
            envelope::Error::HostMismatch { blob: Some(_), .. } => Some(
                "this is another machine's blob: restore this host's own blob, or pass --allow-other-host to move that host's identity to this machine on purpose",
            ),
            e if e.class() == ErrorClass::Hmac || e.class() == ErrorClass::Payload => Some(
                "the blob was modified or damaged after it was sealed; restore from another copy or re-bundle",
            ),
            _ => None,
        };
        match self {
            CliError::Blob { source, .. }
            | CliError::Diff {
                source: diff::Error::Envelope(source),
                ..
            }
            | CliError::Rekey {
                source: rekey::Error::Envelope(source),
                ..
            } => envelope_hint(source),
            CliError::Bundle(bundle::Error::Manifest(manifest::Error::Read { path, .. }))
                if path.ends_with(crate::input::HOST_MANIFEST) =>
            {
                Some(
                    "no --manifest given, and the host has none installed: pass --manifest FILE (the package ships share/zeta-creds/manifest/default.toml), or set zeta.credsRestore.manifest in the NixOS configuration",
                )
            }
            CliError::BlobMissing(_) => Some(
                "check the path (NixOS mounts the ESP at /boot: /boot/zeta-creds.enc), or make a blob with `zeta-creds bundle`",
            ),
            CliError::Hostname(_) => {
                Some("pass --host NAME to say which host this is (the name the blob is sealed for)")
            }
            CliError::WrongPassphrase { .. } => {
                Some("the passphrase is the one given to `zeta-creds bundle` (or the last `rekey`)")
            }
            // The record is root's (0600, in a 0700 directory).
            CliError::StateRecordUnusable { .. } | CliError::StatusUnknown { .. }
                if !rustix::process::geteuid().is_root() =>
            {
                Some("the state record and many carried files are root's: run status as root")
            }
            CliError::StateRecordUnusable { .. } => Some(
                "the next restore treats an unusable record as absent (the blob's version wins everywhere): re-bundle first if you rotated a login since",
            ),
            _ => None,
        }
    }

    /// The message as `error:` prints it, followed by each cause it does
    /// not already include (`; caused by: ...`): for `--json`.
    pub fn full_message(&self) -> String {
        let mut message = error_message(self);
        let text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            if !text.contains(&s.to_string()) {
                message.push_str(&format!("; caused by: {s}"));
            }
            source = s.source();
        }
        message
    }

    /// Print the error on stderr: the message, each cause the message does
    /// not already include, then the hint.
    pub fn report(&self) {
        zeta_creds::error!("{}", error_message(self));
        let text = self.to_string();
        let mut source = std::error::Error::source(self);
        // thiserror's transparent variants already include their source.
        while let Some(s) = source {
            if !text.contains(&s.to_string()) {
                msg::emit(msg::Level::Error, false, format_args!("  caused by: {s}"));
            }
            source = s.source();
        }
        if let Some(h) = self.hint() {
            msg::emit(msg::Level::Error, false, format_args!("hint: {h}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// The advice the envelope's messages used to carry is on the same
    /// line, at the same place, word for word.
    #[test]
    fn envelope_advice_follows_the_envelope_message() {
        let blob = PathBuf::from("/esp/zeta-creds.enc");
        let cases = [
            (
                envelope::Error::WorkFactorTooHigh { log_n: 22, cap: 20 },
                "blob /esp/zeta-creds.enc: work factor 22 exceeds the cap 20 (scrypt would need 4096 MiB); raise --max-work-factor if you trust this blob",
            ),
            (
                envelope::Error::InsufficientMemory {
                    log_n: 20,
                    bytes: 1 << 30,
                },
                "blob /esp/zeta-creds.enc: work factor 20 needs 1024 MiB of memory for scrypt and this machine would not give it; restore where more memory is free, or lift the memory limit (ulimit -v, MemoryMax=)",
            ),
            (
                envelope::Error::UnsupportedVersion(3),
                "blob /esp/zeta-creds.enc: unsupported envelope version 3 (this zeta-creds reads versions 1 and 2); try a newer zeta-creds",
            ),
            (
                envelope::Error::HeaderMac,
                "blob /esp/zeta-creds.enc: header MAC does not match: the blob was tampered with or corrupted",
            ),
        ];
        for (source, text) in cases {
            let err = CliError::Blob {
                blob: blob.clone(),
                source,
            };
            assert_eq!(error_message(&err), text);
        }
        // In the middle of a message, too.
        let err = CliError::Bundle(bundle::Error::ExistingBlob {
            out: blob.clone(),
            source: envelope::Error::UnsupportedVersion(3),
        });
        assert_eq!(
            error_message(&err),
            "existing blob /esp/zeta-creds.enc cannot be read (unsupported envelope version 3 (this zeta-creds reads versions 1 and 2); try a newer zeta-creds); move it away or pass --force to replace it"
        );
        let err = CliError::Rekey {
            blob,
            source: rekey::Error::Envelope(envelope::Error::InsufficientMemory {
                log_n: 21,
                bytes: 1 << 31,
            }),
        };
        assert!(error_message(&err).ends_with(
            "needs 2048 MiB of memory for scrypt and this machine would not give it; restore where more memory is free, or lift the memory limit (ulimit -v, MemoryMax=)"
        ));
    }
}
