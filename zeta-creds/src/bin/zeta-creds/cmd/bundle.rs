//! `zeta-creds bundle`: pick, show what was picked, ask for a new
//! passphrase, seal.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use zeta_creds::envelope::{self, Host, UsbUuid};
use zeta_creds::{bundle, warning};

use super::Status;
use crate::cli::BundleArgs;
use crate::error::CliError;
use crate::input::{manifest_path, read_host, read_uuid};
use crate::render::progress::Progress;
use crate::render::{self, PickSummary, warn_skipped, warn_test_work_factor};
use crate::unlock;

/// What `bundle` sealed.
pub struct BundleReport {
    /// Entries picked.
    pub entries: usize,
    /// Regular files among them.
    pub files: usize,
    /// Bytes of file content.
    pub bytes: u64,
    /// The blob written.
    pub out: PathBuf,
    /// Its generation.
    pub generation: u64,
    /// The stick it is bound to.
    pub usb_uuid: UsbUuid,
    /// The host it is sealed for.
    pub host: Host,
    /// Its work factor.
    pub work_factor: u8,
    /// How long the key derivation took here.
    pub kdf_time: Duration,
    /// The generation of the replaced blob, when it was kept as `.prev`.
    pub kept_previous: Option<u64>,
}

impl Status for BundleReport {}

/// Run `bundle`.
pub fn run(args: &BundleArgs, env_pass: Option<SecretString>) -> Result<BundleReport, CliError> {
    let sources = unlock::sources(&args.passphrase, env_pass);
    let usb_uuid = read_uuid(&args.uuid)?;
    let host = read_host("--host", args.host.as_deref(), &args.source_root)?;
    let persona = args.persona.clone().unwrap_or_default();
    envelope::validate_persona(&persona).map_err(|e| CliError::Usage(e.to_string()))?;
    warn_test_work_factor(args.work_factor);
    let opts = bundle::Options {
        manifest: manifest_path(args.manifest.as_deref(), &args.source_root),
        source_root: args.source_root.clone(),
        out: args.out.clone(),
        usb_uuid: usb_uuid.clone(),
        host: host.clone(),
        persona,
        log_n: args.work_factor,
        force: args.force,
        backup: !args.new_blob.no_backup,
        user: args.user.clone(),
        allow_other_host: args.allow_other_host,
    };
    let plan = bundle::plan(&opts)?;
    warn_skipped(&plan.pick);
    // What is about to be sealed, before the passphrase is asked.
    render::text(&PickSummary(&plan.pick))?;
    if let Some(bundle::Existing {
        usb_uuid: Some(old),
        ..
    }) = &plan.existing
        && old != usb_uuid.as_str()
    {
        warning!(
            "replacing {}, bound to USB {old}, with a blob bound to USB {usb_uuid} (--force)",
            args.out.display()
        );
    }
    if let Some(bundle::Existing {
        host: Some(old), ..
    }) = &plan.existing
        && old != host.as_str()
    {
        warning!(
            "replacing {}, sealed for host {old}, with a blob sealed for host {host} (--allow-other-host)",
            args.out.display()
        );
    }
    let context = [plan.pick.user.as_str(), usb_uuid.as_str()];
    let pass = unlock::new_passphrase(
        sources,
        &args.out,
        &usb_uuid,
        &context,
        args.new_blob.allow_weak_passphrase,
    )?;
    render::deriving_key(args.work_factor);
    // A progress line on a terminal, for a bundle over a second: each
    // file is read twice (hashed, then sealed).
    let progress = Progress::new("sealing", 2 * plan.pick.total_size());
    let written = bundle::write_with_progress(&opts, &plan, &pass, &mut |n| progress.add(n));
    progress.finish();
    let written = written?;
    if let Some(claimed) = written.unverified_previous {
        warning!(
            "the blob replaced at {} did not open with this passphrase, so its generation ({claimed}, unauthenticated) was not continued: the new blob has generation {}; a copy of the old blob (kept as {}{}) still opens with the old passphrase: delete it if the old passphrase must not bring it back",
            args.out.display(),
            written.generation,
            args.out.display(),
            bundle::PREV_SUFFIX
        );
    }
    Ok(BundleReport {
        entries: plan.pick.items.len(),
        files: plan.pick.file_count(),
        bytes: plan.pick.total_size(),
        out: args.out.clone(),
        generation: written.generation,
        usb_uuid,
        host,
        work_factor: args.work_factor,
        kdf_time: written.kdf_time,
        kept_previous: plan
            .existing
            .as_ref()
            .filter(|_| written.kept_previous)
            .map(|e| e.generation),
    })
}
