//! `zeta-creds status`: is the blob still fresh? The state record the last
//! restore wrote, against the disk now; no passphrase, no blob.
//!
//! It reads only what it needs: the state record, the metadata of each
//! file it names (through directory descriptors, no symlink followed), and,
//! with a manifest, the directory entries and metadata of what the
//! manifest picks, to name the files the blob does not carry yet.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use zeta_creds::envelope::{self, EntryKind};
use zeta_creds::manifest::Manifest;
use zeta_creds::{fsx, pick, state, status};

use super::Status;
use crate::cli::StatusArgs;
use crate::error::CliError;
use crate::exit::Exit;
use crate::input::HOST_MANIFEST;
use crate::render::utc;

/// What changed on disk since the blob was restored.
pub struct StatusReport {
    /// The root checked.
    pub target_root: PathBuf,
    /// The state record read.
    pub state_record: PathBuf,
    /// Generation of the blob the record was written from.
    pub generation: u64,
    /// When that blob was sealed, seconds since the epoch, if the record
    /// says.
    pub sealed: Option<u64>,
    /// `sealed` as `YYYY-MM-DD HH:MM:SS UTC`.
    pub sealed_utc: Option<String>,
    /// The manifest new files were looked for with; none: not looked for.
    pub manifest: Option<PathBuf>,
    /// Whether every recorded file is as the restore left it and nothing
    /// new is picked.
    pub fresh: bool,
    /// Counts and one line per file.
    pub report: status::Report,
}

impl Status for StatusReport {
    /// 0 when fresh; 10 when something changed, vanished or is new; an
    /// error (exit 1) when only unreadable files stand between the two.
    fn status(&self) -> Result<Exit, CliError> {
        let c = &self.report.counts;
        if c.changed + c.vanished + c.new > 0 {
            Ok(Exit::Differs)
        } else if c.unreadable > 0 {
            Err(CliError::StatusUnknown {
                count: c.unreadable,
            })
        } else {
            Ok(Exit::Success)
        }
    }
}

/// Run `status`.
pub fn run(args: &StatusArgs) -> Result<StatusReport, CliError> {
    let root_path = &args.target_root;
    let persona = args.persona.clone().unwrap_or_default();
    envelope::validate_persona(&persona).map_err(|e| CliError::Usage(e.to_string()))?;
    let root = fsx::open_root(root_path).map_err(|source| CliError::TargetRoot {
        root: root_path.clone(),
        source,
    })?;
    let record_path = state_record_path(root_path);
    let record = match state::load(&root) {
        state::Loaded::Present(s) => s,
        state::Loaded::Absent => return Err(CliError::NoStateRecord { path: record_path }),
        state::Loaded::Corrupt(reason) => {
            return Err(CliError::StateRecordUnusable {
                path: record_path,
                reason,
            });
        }
    };
    let manifest = match &args.manifest {
        Some(path) => Some(path.clone()),
        None => Some(root_path.join(HOST_MANIFEST)).filter(|p| p.exists()),
    };
    let picked = match &manifest {
        Some(path) => picked_files(path, root_path, &persona)?,
        None => BTreeSet::new(),
    };
    let report = status::report(&record.files, |p| status::observe(&root, p), &picked);
    // The blob the record was written from, when a restore or a bundle
    // on this system named it.
    let sealed = record.newest_blob().map(|b| b.sealed);
    Ok(StatusReport {
        target_root: root_path.clone(),
        state_record: record_path,
        generation: record.newest_generation(),
        sealed,
        sealed_utc: sealed.map(utc),
        manifest,
        fresh: report.is_fresh(),
        report,
    })
}

/// The state record's path as the operator sees it.
fn state_record_path(root: &Path) -> PathBuf {
    let mut path = root.to_owned();
    path.extend(state::STATE_DIR);
    path.push(state::STATE_FILE);
    path
}

/// The files (not directories: the record holds files) the manifest picks
/// under the root for `persona`, by their path on that system.
fn picked_files(manifest: &Path, root: &Path, persona: &str) -> Result<BTreeSet<String>, CliError> {
    let loaded = Manifest::load(manifest)?;
    let pick = pick::pick(&loaded, root, persona)?;
    Ok(pick
        .items
        .iter()
        .filter(|i| i.kind == EntryKind::File)
        .map(pick::Item::source_display)
        .collect())
}
