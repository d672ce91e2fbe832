//! `zeta-creds restore`: check the stick, unlock, then let the library
//! restore the entries under the target root.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use zeta_creds::envelope::{self, Binding, EntryReader};
use zeta_creds::readahead::ReadAhead;
use zeta_creds::state::{self, RestoredBlob};
use zeta_creds::{fsx, notice, restore, usb};

use super::Status;
use crate::cli::RestoreArgs;
use crate::error::CliError;
use crate::exit::Exit;
use crate::input::{open_blob, read_host, read_uuid};
use crate::render::progress::Progress;
use crate::render::utc;
use crate::unlock;

/// What a restore did (or, with `--dry-run`, would do).
pub struct RestoreReport {
    /// The blob.
    pub blob: PathBuf,
    /// Its authenticated generation.
    pub generation: u64,
    /// One line per entry, and the notes.
    pub report: restore::Report,
}

impl Status for RestoreReport {
    /// Exit 7 after the report when some entries could not be written.
    fn status(&self) -> Result<Exit, CliError> {
        let failed = self.report.failed().count();
        if failed > 0 {
            return Err(CliError::Incomplete {
                failed,
                total: self.report.entries.len(),
            });
        }
        Ok(Exit::Success)
    }
}

/// Run `restore`.
pub fn run(args: &RestoreArgs, env_pass: Option<SecretString>) -> Result<RestoreRun, CliError> {
    if args.if_new
        && let Some(skip) = if_new(args)?
    {
        return Ok(RestoreRun::IfNew(skip));
    }
    restore_blob(args, env_pass).map(RestoreRun::Restored)
}

fn restore_blob(
    args: &RestoreArgs,
    env_pass: Option<SecretString>,
) -> Result<RestoreReport, CliError> {
    // Before anything is read or asked: a restore that is not root can
    // only fail entry by entry, and would leave directories and a state
    // record owned by the wrong user (issue 19 #15).
    if !args.dry_run && !rustix::process::geteuid().is_root() {
        return Err(CliError::Restore {
            blob: args.blob.clone(),
            source: restore::Error::NotRoot,
        });
    }
    let sources = unlock::sources(&args.passphrase, env_pass);
    let usb_uuid = read_uuid(&args.uuid)?;
    // The host this is, to refuse another machine's blob before anyone is
    // asked for a passphrase (the fleet swap: node B's blob on node A's
    // ESP).
    let host = if args.allow_other_host {
        None
    } else {
        Some(read_host(
            "--host",
            args.host.as_deref(),
            &args.target_root,
        )?)
    };
    // Before anyone is asked for a passphrase.
    if args.require_usb_present
        && !usb::wait_for(
            &args.usb_device_dir,
            &usb_uuid,
            Duration::from_secs(args.usb_wait),
        )
    {
        return Err(CliError::UsbAbsent {
            uuid: usb_uuid.to_string(),
            dir: args.usb_device_dir.clone(),
            waited: args.usb_wait,
        });
    }
    let blob = &args.blob;
    let (file, header) = open_blob(blob)?;
    if args.allow_other_host {
        notice!(
            "host binding not checked (--allow-other-host): blob {} claims host {}",
            blob.display(),
            header.unauthenticated_fields().host.as_ref().map_or_else(
                || "(none: format version 1)".to_owned(),
                ToString::to_string
            )
        );
    }
    let binding = Binding {
        usb_uuid: Some(&usb_uuid),
        host: host.as_ref(),
    };
    let (unlocked, _) = unlock::unlock(&header, blob, &binding, args.cap.max_work_factor, sources)?;
    if let Some(wanted) = &args.persona
        && &unlocked.fields().persona != wanted
    {
        return Err(CliError::PersonaMismatch {
            blob: blob.clone(),
            found: unlocked.fields().persona.clone(),
            wanted: wanted.clone(),
        });
    }
    let generation = unlocked.fields().generation;
    let restore_err = |source: restore::Error| CliError::Restore {
        blob: blob.clone(),
        source,
    };
    // Decrypt on a second thread while this one hashes and writes
    // (docs/PERFORMANCE.md); the release rules do not change.
    // A progress line on a terminal, for a restore over a second.
    let payload_bytes = file
        .metadata()
        .map_or(0, |m| m.len().saturating_sub(header.len() as u64));
    let progress = Progress::new("restoring", payload_bytes);
    let payload = ReadAhead::spawn(unlocked.payload_reader(progress.reader(file)))
        .map_err(|e| restore_err(envelope::Error::Io(e).into()))?;
    let mut entries = EntryReader::new(payload).map_err(|e| restore_err(e.into()))?;
    let opts = restore::Options {
        target_root: args.target_root.clone(),
        user: args.user.clone(),
        dry_run: args.dry_run,
        on_conflict: args.on_conflict.into(),
        allow_rollback: args.allow_rollback,
        allow_any_path: args.allow_any_path,
        generation,
        // The header's MAC has verified: its generation and date are
        // authentic now.
        blob: Some(RestoredBlob::of(&header)),
    };
    let report = restore::restore(&mut entries, &opts);
    progress.finish();
    let report = report.map_err(restore_err)?;
    Ok(RestoreReport {
        blob: blob.clone(),
        generation,
        report,
    })
}

/// What a `restore` run ended with.
pub enum RestoreRun {
    /// The blob was restored (or, with `--dry-run`, checked).
    Restored(RestoreReport),
    /// `--if-new` decided without a passphrase: the blob is the one last
    /// restored, or (with `--check`) it is not.
    IfNew(IfNewReport),
}

impl Status for RestoreRun {
    fn status(&self) -> Result<Exit, CliError> {
        match self {
            RestoreRun::Restored(r) => r.status(),
            RestoreRun::IfNew(r) => Ok(if r.already_restored {
                Exit::Success
            } else {
                Exit::Differs
            }),
        }
    }
}

/// What `--if-new` found, from the blob's header alone.
pub struct IfNewReport {
    /// The blob.
    pub blob: PathBuf,
    /// Whether it is the blob last restored under the target root.
    pub already_restored: bool,
    /// Its generation, as its header says (unauthenticated).
    pub generation: u64,
    /// When it was sealed, seconds since the Unix epoch (unauthenticated).
    pub sealed: u64,
    /// The same, as a UTC date.
    pub sealed_utc: String,
    /// Why a restore is needed, when it is.
    pub reason: Option<String>,
}

/// `--if-new`: compare the blob's header with the blob the state record
/// under the target root names, before any passphrase source is touched
/// (a passphrase file stays where it is) and without writing anything.
/// `Some` ends the run: the blob is the one last restored, or `--check`
/// was asked. `None`: restore as usual.
///
/// The header is not authenticated, and need not be: a match only skips
/// work, and a header can only match if it has the very bytes and MAC of
/// the blob restored last. Anything else (a re-bundled blob, a forged
/// header, no record, an unusable record) leads to the usual restore,
/// whose authenticated path decides.
fn if_new(args: &RestoreArgs) -> Result<Option<IfNewReport>, CliError> {
    let (_, header) = open_blob(&args.blob)?;
    let root = args.target_root.display();
    let why_new = match fsx::open_root(&args.target_root) {
        Err(e) => Some(format!("cannot open the target root {root} ({e})")),
        Ok(fd) => match state::load(&fd) {
            state::Loaded::Absent => Some(format!("no blob was restored under {root} yet")),
            state::Loaded::Corrupt(why) => Some(format!(
                "the state record {root}/var/lib/zeta-creds/state.json is unusable ({})",
                printable(&why)
            )),
            state::Loaded::Present(s) => match &s.restored_blob {
                None => Some(format!(
                    "the state record under {root} names no restored blob (the last restore was incomplete, or older than --if-new)"
                )),
                Some(last) if last.is(&header) => None,
                Some(last) => Some(format!(
                    "the blob last restored under {root} was generation {}, sealed {}",
                    last.generation,
                    utc(last.sealed)
                )),
            },
        },
    };
    let fields = header.unauthenticated_fields();
    let report = IfNewReport {
        blob: args.blob.clone(),
        already_restored: why_new.is_none(),
        generation: fields.generation,
        sealed: fields.created,
        sealed_utc: utc(fields.created),
        reason: why_new,
    };
    match &report.reason {
        None => Ok(Some(report)),
        Some(_) if args.check => Ok(Some(report)),
        Some(why) => {
            notice!(
                "{} is new (generation {}, sealed {}; {why}): restoring",
                printable(&args.blob.display().to_string()),
                report.generation,
                report.sealed_utc
            );
            Ok(None)
        }
    }
}

/// `s` with its control characters escaped, for a line of its own in the
/// journal: the one escape every human-readable line uses
/// (`zeta_creds::msg::escape`).
pub fn printable(s: &str) -> String {
    zeta_creds::msg::escape(s).into_owned()
}
