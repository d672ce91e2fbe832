//! `zeta-creds diff`: the blob against what the manifest picks now.
#![forbid(unsafe_code)]

use std::io::BufReader;
use std::path::PathBuf;

use secrecy::SecretString;

use zeta_creds::envelope::{Binding, EntryReader};
use zeta_creds::manifest::Manifest;
use zeta_creds::{bundle, diff};

use super::Status;
use crate::cli::DiffArgs;
use crate::error::CliError;
use crate::exit::Exit;
use crate::input::{manifest_path, open_blob};
use crate::render::warn_skipped;
use crate::unlock;

/// What a re-bundle would change.
pub struct DiffReport {
    /// The blob compared.
    pub blob: PathBuf,
    /// The manifest a re-bundle would use.
    pub manifest: PathBuf,
    /// Where it picks from.
    pub source_root: PathBuf,
    /// The differences.
    pub report: diff::Report,
}

impl Status for DiffReport {
    /// 0 when identical, 10 when they differ.
    fn status(&self) -> Result<Exit, CliError> {
        Ok(if self.report.is_identical() {
            Exit::Success
        } else {
            Exit::Differs
        })
    }
}

/// Run `diff`.
pub fn run(args: &DiffArgs, env_pass: Option<SecretString>) -> Result<DiffReport, CliError> {
    let sources = unlock::sources(&args.passphrase, env_pass);
    let manifest = manifest_path(args.manifest.as_deref(), &args.source_root);
    let mut loaded = Manifest::load(&manifest)?;
    if let Some(user) = &args.user {
        loaded.user.clone_from(user);
    }
    let (file, header) = open_blob(&args.blob)?;
    // Picked before the passphrase is asked, so a manifest or source
    // problem needs no passphrase. The persona read here is not yet
    // authenticated; unlock checks it under the MAC.
    let persona = header.unauthenticated_fields().persona.clone();
    let pick = bundle::pick(&loaded, &args.source_root, &persona)?;
    warn_skipped(&pick);
    zeta_creds::msg::test_fault("pause-after-pick");
    let (unlocked, _) = unlock::unlock(
        &header,
        &args.blob,
        &Binding::default(),
        args.cap.max_work_factor,
        sources,
    )?;
    let diff_err = |source: diff::Error| CliError::Diff {
        blob: args.blob.clone(),
        source,
    };
    let mut entries = EntryReader::new(unlocked.payload_reader(BufReader::new(file)))
        .map_err(|e| diff_err(e.into()))?;
    let report = diff::diff(&mut entries, &pick).map_err(diff_err)?;
    Ok(DiffReport {
        blob: args.blob.clone(),
        manifest: manifest.clone(),
        source_root: args.source_root.clone(),
        report,
    })
}
