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
use crate::render::{self, warn_test_work_factor};
use crate::unlock::{self, stdin_is_tty};
use zeta_creds::envelope::{Binding, Host};

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
    let new_host = args
        .new_host
        .as_deref()
        .map(Host::parse)
        .transpose()
        .map_err(|e| CliError::Usage(format!("--new-host: {e}")))?;
    if !args.same_passphrase && args.new_passphrase_file.is_none() && !stdin_is_tty() {
        return Err(CliError::NoNewPassphrase { blob: blob.clone() });
    }
    if let Some(n) = args.work_factor {
        warn_test_work_factor(n);
    }
    let (mut file, header) = open_blob(blob)?;
    // A version 1 blob records no host, and a rekey writes version 2:
    // refuse before the passphrase is asked.
    if new_host.is_none() && header.unauthenticated_fields().host.is_none() {
        return Err(CliError::NoHost { blob: blob.clone() });
    }
    let (unlocked, old_pass) = unlock::unlock(
        &header,
        blob,
        &Binding::default(),
        args.cap.max_work_factor,
        current,
    )?;
    let old = unlocked.fields().clone();
    let usb_uuid = new_uuid.unwrap_or_else(|| old.usb_uuid.clone());
    let Some(host) = new_host.or_else(|| old.host.clone()) else {
        return Err(CliError::NoHost { blob: blob.clone() });
    };
    let log_n = args.work_factor.unwrap_or(old.log_n);
    if args.same_passphrase
        && usb_uuid == old.usb_uuid
        && Some(&host) == old.host.as_ref()
        && log_n == old.log_n
    {
        return Err(CliError::Usage(format!(
            "nothing to change in {}: give a new passphrase (--new-passphrase-file, or drop --same-passphrase to type one), --new-usb-uuid, --new-host or --work-factor",
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
        host,
        log_n,
        backup: !args.new_blob.no_backup,
    };
    render::deriving_key(log_n);
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
