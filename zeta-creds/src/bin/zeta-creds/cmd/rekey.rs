//! `zeta-creds rekey`: the same payload under a new passphrase, stick or
//! work factor.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use secrecy::SecretString;

use zeta_creds::rekey;

use super::Status;
use crate::cli::RekeyArgs;
use crate::error::CliError;
use crate::input::{open_blob, read_new_uuid};
use crate::render::warn_test_work_factor;
use crate::unlock::{self, stdin_is_tty};

/// What a rekey did.
pub struct RekeyReport {
    /// The blob, rekeyed in place.
    pub blob: PathBuf,
    /// Whether the passphrase stayed the same.
    pub same_passphrase: bool,
    /// The library's account: old and new header, bytes copied.
    pub outcome: rekey::Outcome,
}

impl Status for RekeyReport {}

/// Run `rekey`.
pub fn run(args: &RekeyArgs, env_pass: Option<SecretString>) -> Result<RekeyReport, CliError> {
    let blob = &args.blob;
    let current = unlock::sources(&args.passphrase, env_pass);
    // Built now, so its guard covers --new-passphrase-file on every exit
    // path.
    let fresh = unlock::new_passphrase_sources(args.new_passphrase_file.as_deref());
    let new_uuid = read_new_uuid(&args.new_uuid)?;
    if !args.same_passphrase && args.new_passphrase_file.is_none() && !stdin_is_tty() {
        return Err(CliError::NoNewPassphrase { blob: blob.clone() });
    }
    if let Some(n) = args.work_factor {
        warn_test_work_factor(n);
    }
    let (mut file, header) = open_blob(blob)?;
    let (unlocked, old_pass) =
        unlock::unlock(&header, blob, None, args.cap.max_work_factor, current)?;
    let old = unlocked.fields().clone();
    let usb_uuid = new_uuid.unwrap_or_else(|| old.usb_uuid.clone());
    let log_n = args.work_factor.unwrap_or(old.log_n);
    if args.same_passphrase && usb_uuid == old.usb_uuid && log_n == old.log_n {
        return Err(CliError::Usage(format!(
            "nothing to change in {}: give a new passphrase (--new-passphrase-file, or drop --same-passphrase to type one), --new-usb-uuid or --work-factor",
            blob.display()
        )));
    }
    let new_pass = if args.same_passphrase {
        old_pass
    } else {
        drop(old_pass);
        unlock::new_passphrase(
            fresh,
            blob,
            &usb_uuid,
            &[usb_uuid.as_str()],
            args.new_blob.allow_weak_passphrase,
        )?
    };
    let opts = rekey::Options {
        blob: blob.clone(),
        usb_uuid,
        log_n,
        backup: !args.new_blob.no_backup,
    };
    let outcome =
        rekey::rekey(unlocked, &mut file, &new_pass, &opts).map_err(|source| CliError::Rekey {
            blob: blob.clone(),
            source,
        })?;
    Ok(RekeyReport {
        blob: blob.clone(),
        same_passphrase: args.same_passphrase,
        outcome,
    })
}
