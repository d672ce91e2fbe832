//! `zeta-creds rebundle`: keep the blob fresh on the system that restores
//! it. The state record against the disk (as `status`), then nothing, a
//! re-bundle under the blob's own passphrase, or a report.
//!
//! Order of work: the record and the blob's header (no passphrase): the
//! blob must be the one this system last restored or sealed, or a restore
//! is pending and nothing is done; the pick; the comparison; the decision
//! ([`zeta_creds::rebundle::decide`]). Only a re-bundle makes the bundle's
//! checks (required entries, sizes, room on the ESP) and reads the
//! passphrase, which must open the blob bound to this stick and this host
//! before anything is written.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use zeta_creds::envelope::{self, Anchor, Binding, EntryKind};
use zeta_creds::manifest::Manifest;
use zeta_creds::passwd::Accounts;
use zeta_creds::rebundle::{self, Decision};
use zeta_creds::status::FileState;
use zeta_creds::{bundle, fsx, pick, state, status};

use super::Status;
use crate::cli::RebundleArgs;
use crate::error::CliError;
use crate::exit::Exit;
use crate::input::{manifest_path, open_blob, read_host, read_uuid};
use crate::unlock;

/// Files named in one line at most; the rest are counted.
const LISTED: usize = 8;

/// What a `rebundle` run found and did.
pub struct RebundleReport {
    /// The blob.
    pub blob: PathBuf,
    /// What was decided.
    pub decision: Decision,
    /// Counts of the comparison.
    pub counts: status::Counts,
    /// The files that moved, as one list ([`rebundle::list`]).
    pub list: String,
    /// The sealed date of the blob compared with, if the record has it.
    pub sealed: Option<u64>,
    /// The generation compared with.
    pub generation: u64,
    /// After a re-bundle: the new blob's generation.
    pub new_generation: Option<u64>,
    /// Whether the old blob was kept as `.prev`.
    pub kept_previous: bool,
}

impl Status for RebundleReport {
    /// 0 fresh or re-bundled; 10 stale and not re-bundled (reported);
    /// an error (exit 1) when only unreadable files stand between.
    fn status(&self) -> Result<Exit, CliError> {
        match self.decision {
            Decision::Fresh | Decision::Rebundle => Ok(Exit::Success),
            Decision::Report | Decision::HoldVanished => Ok(Exit::Differs),
            Decision::Unknown => Err(CliError::StatusUnknown {
                count: self.counts.unreadable,
            }),
        }
    }
}

/// Run `rebundle`.
pub fn run(
    args: &RebundleArgs,
    env_pass: Option<SecretString>,
) -> Result<RebundleReport, CliError> {
    let usb_uuid = read_uuid(&args.uuid)?;
    let host = read_host("--host", None, &args.source_root)?;
    let persona = args.persona.clone().unwrap_or_default();
    envelope::validate_persona(&persona).map_err(|e| CliError::Usage(e.to_string()))?;
    let root = fsx::open_root(&args.source_root).map_err(|source| CliError::TargetRoot {
        root: args.source_root.clone(),
        source,
    })?;
    let record_path = bundle::record_path(&args.source_root);
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
    // Only the blob this system restored or sealed: any other is a
    // restore still to come (or a blob put there by someone else), and
    // sealing over it would throw it away unrestored.
    let (_, header) = open_blob(&args.blob)?;
    let known = [&record.restored_blob, &record.sealed_blob]
        .into_iter()
        .flatten()
        .any(|b| b.is(&header));
    if !known {
        return Err(bundle::Error::NotThisSystemsBlob {
            out: args.blob.clone(),
            record: record_path,
        }
        .into());
    }
    let mut opts = bundle::Options {
        manifest: manifest_path(args.manifest.as_deref(), &args.source_root),
        source_root: args.source_root.clone(),
        out: args.blob.clone(),
        usb_uuid: usb_uuid.clone(),
        host: host.clone(),
        persona: persona.clone(),
        // Replaced by the authenticated one before sealing.
        log_n: header.unauthenticated_fields().log_n,
        force: false,
        backup: true,
        user: args.user.clone(),
        // Only this host's own blob is re-bundled (checked above against
        // the state record), never another host's.
        allow_other_host: false,
    };
    // What the manifest picks now, for the files the blob does not carry
    // yet. The bundle's own checks (required entries, sizes, room on the
    // ESP) are made only when it seals.
    let mut manifest = Manifest::load(&opts.manifest)?;
    if let Some(user) = &opts.user {
        manifest.user.clone_from(user);
    }
    let picked: BTreeSet<String> = pick::pick(&manifest, &opts.source_root, &persona)?
        .items
        .iter()
        .filter(|i| i.kind == EntryKind::File)
        .map(pick::Item::source_display)
        .collect();
    let compared = status::report(&record.files, |p| status::observe(&root, p), &picked);
    // A vanished file is dropped only when the manifest says so: no entry
    // carries it any more (the operator took it out). Any other vanished
    // file holds the re-bundle (or --drop-vanished).
    let home = Accounts::load(&root)
        .ok()
        .and_then(|a| a.user(&manifest.user).map(|u| u.home.clone()));
    let manifest_drops = compared.counts.vanished > 0
        && compared
            .files
            .iter()
            .filter(|f| matches!(f.state, FileState::Vanished))
            .all(|f| !still_carried(&manifest, home.as_deref(), &f.path));
    let decision = rebundle::decide(
        &compared.counts,
        !args.report_only,
        args.drop_vanished || manifest_drops,
    );
    let newest = record.newest_blob();
    let mut report = RebundleReport {
        blob: args.blob.clone(),
        decision,
        counts: compared.counts,
        list: rebundle::list(&compared.files, LISTED),
        sealed: newest.map(|b| b.sealed),
        generation: newest.map_or(record.newest_generation(), |b| b.generation),
        new_generation: None,
        kept_previous: false,
    };
    if decision == Decision::Rebundle {
        let plan = bundle::plan(&opts)?;
        let binding = Binding {
            usb_uuid: Some(&usb_uuid),
            host: Some(&host),
        };
        let sources = unlock::sources(&args.passphrase, env_pass);
        let (unlocked, pass) = unlock::unlock(
            &header,
            &args.blob,
            &binding,
            args.cap.max_work_factor,
            sources,
        )?;
        let fields = unlocked.fields();
        if fields.persona != persona {
            return Err(CliError::PersonaMismatch {
                blob: args.blob.clone(),
                found: fields.persona.clone(),
                wanted: persona,
            });
        }
        opts.log_n = fields.log_n;
        let written = bundle::write(&opts, &plan, &pass)?;
        report.new_generation = Some(written.generation);
        report.kept_previous = written.kept_previous;
    }
    if let Some(path) = &args.notice {
        let stale = matches!(decision, Decision::Report | Decision::HoldVanished);
        set_notice(path, stale.then(|| notice_line(&report)).as_deref()).map_err(|source| {
            CliError::Bundle(bundle::Error::WriteOut {
                out: path.clone(),
                source,
            })
        })?;
    }
    Ok(report)
}

/// Whether `manifest` still carries the file recorded at `dest` (a path
/// on the system, `/home/zeta/.config/gh/hosts.yml`): as a root entry, or
/// as a home entry below `home`.
fn still_carried(manifest: &Manifest, home: Option<&str>, dest: &str) -> bool {
    let in_home = home.and_then(|h| {
        dest.strip_prefix(h.trim_end_matches('/'))
            .and_then(|rest| rest.strip_prefix('/'))
    });
    manifest.carries(Anchor::Root, dest.trim_start_matches('/'))
        || in_home.is_some_and(|rest| manifest.carries(Anchor::Home, rest))
}

/// The login message: counts and date only, no path (the file is world
/// readable; `status` as root names the files).
pub fn notice_line(r: &RebundleReport) -> String {
    let c = &r.counts;
    format!(
        "zeta-creds: {} carried files changed since the blob was sealed on {}; run `zeta-creds status` as root to see which, and `zeta-creds bundle` to carry them",
        c.changed + c.new + c.vanished,
        sealed_on(r.sealed)
    )
}

/// The sealed date as the lines say it.
pub fn sealed_on(sealed: Option<u64>) -> String {
    sealed.map_or_else(|| "an unrecorded date".to_owned(), zeta_creds::msg::utc)
}

/// Write `line` to `path` atomically (mode 0644), or remove `path` when
/// there is nothing to say.
fn set_notice(path: &Path, line: Option<&str>) -> io::Result<()> {
    let Some(line) = line else {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    };
    let mut file = bundle::AtomicFile::create(path)?;
    file.file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    writeln!(file.file(), "{line}")?;
    file.commit_keeping_previous(false).map(|_| ())
}
