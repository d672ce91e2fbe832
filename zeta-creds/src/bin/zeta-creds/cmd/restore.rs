//! `zeta-creds restore`: check the stick, unlock, then let the library
//! restore the entries under the target root.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;

use zeta_creds::envelope::{self, Binding, EntryReader};
use zeta_creds::readahead::ReadAhead;
use zeta_creds::{notice, restore, sys, usb, warning};

use super::Status;
use crate::cli::RestoreArgs;
use crate::error::CliError;
use crate::exit::Exit;
use crate::input::{open_blob, read_host, read_uuid};
use crate::unlock;

/// What a restore did (or, with `--dry-run`, would do). Its JSON is this
/// struct with the library's report flattened into it.
#[derive(Serialize)]
pub struct RestoreReport {
    /// The blob.
    pub blob: PathBuf,
    /// Its authenticated generation.
    pub generation: u64,
    /// One line per entry, and the notes.
    #[serde(flatten)]
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
pub fn run(args: &RestoreArgs, env_pass: Option<SecretString>) -> Result<RestoreReport, CliError> {
    let sources = unlock::sources(&args.passphrase, env_pass);
    if let Err(why) = sys::lock_memory() {
        warning!("{why}");
    }
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
    let payload = ReadAhead::spawn(unlocked.payload_reader(file))
        .map_err(|e| restore_err(envelope::Error::Io(e).into()))?;
    let mut entries = EntryReader::new(payload).map_err(|e| restore_err(e.into()))?;
    let opts = restore::Options {
        target_root: args.target_root.clone(),
        user: args.user.clone(),
        dry_run: args.dry_run,
        on_conflict: args.on_conflict.into(),
        allow_rollback: args.allow_rollback,
        generation,
    };
    let report = restore::restore(&mut entries, &opts).map_err(restore_err)?;
    Ok(RestoreReport {
        blob: blob.clone(),
        generation,
        report,
    })
}
