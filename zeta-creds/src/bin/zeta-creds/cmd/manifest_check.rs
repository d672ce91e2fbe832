//! `zeta-creds manifest check`: validate a manifest and show what each
//! entry matches now, as `bundle` would pick it.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use zeta_creds::manifest::Manifest;
use zeta_creds::{bundle, envelope, warning};

use super::Status;
use crate::cli::ManifestCheckArgs;
use crate::error::CliError;
use crate::exit::Exit;
use crate::input::manifest_path;
use crate::render::warn_skipped;

/// What `manifest check` found.
pub enum ManifestCheckReport {
    /// `--syntax-only`: the manifest parses.
    Syntax {
        /// The manifest.
        file: PathBuf,
        /// How many entries it has.
        entries: usize,
        /// Its user.
        user: String,
    },
    /// What each entry matches under the source root.
    Matched {
        /// The picker's account, per entry.
        pick: Box<bundle::Pick>,
        /// The manifest (for the overrides each entry sets).
        manifest: Box<Manifest>,
    },
}

impl Status for ManifestCheckReport {
    /// After the report: a required entry that matches nothing (exit 6),
    /// or an entry over its `max_size`, is the error a bundle would give.
    fn status(&self) -> Result<Exit, CliError> {
        if let ManifestCheckReport::Matched { pick, .. } = self {
            pick.check()?;
        }
        Ok(Exit::Success)
    }
}

/// Run `manifest check`.
pub fn run(args: &ManifestCheckArgs) -> Result<ManifestCheckReport, CliError> {
    let file = &manifest_path(args.file.as_deref(), &args.source_root);
    let loaded = Manifest::load(file)?;
    let persona = args.persona.clone().unwrap_or_default();
    envelope::validate_persona(&persona).map_err(|e| CliError::Usage(e.to_string()))?;
    if !persona.is_empty() && !loaded.personas().contains(persona.as_str()) {
        warning!(
            "no entry of {} names persona {persona:?}; only the entries for every persona apply",
            file.display()
        );
    }
    if args.syntax_only {
        return Ok(ManifestCheckReport::Syntax {
            file: file.clone(),
            entries: loaded.entries.len(),
            user: loaded.user,
        });
    }
    let pick = bundle::pick(&loaded, &args.source_root, &persona)?;
    warn_skipped(&pick);
    Ok(ManifestCheckReport::Matched {
        pick: Box::new(pick),
        manifest: Box::new(loaded),
    })
}
