//! Restore: write a blob's entries under a target root, confined, staged,
//! and committed only after the whole payload has authenticated.
//!
//! The order:
//!
//! 0. A restore that writes runs as root, or stops before anything.
//! 1. Load the target root's `etc/passwd` and `etc/group` (none: is it
//!    mounted?); resolve the user's home there (a home of `/` or an
//!    unknown user is refused for every home entry, never replaced by
//!    root); read the host's manifest, the restore policy (`policy`:
//!    which paths a blob may write, no set-id bits, no two entries to
//!    one destination).
//! 2. For each entry as it is decrypted: resolve owner and group by name on
//!    the target, walk to its parent directory one component at a time with
//!    `O_NOFOLLOW` (creating missing parents: owned by the user inside the
//!    home, by root elsewhere), and stage its bytes in a temporary file
//!    beside the destination (`.zeta-creds-tmp.*`, 0600, root).
//!    An entry that cannot be placed (symlinked parent, unknown owner, a
//!    file where a directory should be) is refused by name and its body is
//!    still read, so the payload is still verified to its end.
//! 3. Only once the entry stream's end marker has been read and the STREAM
//!    reader has authenticated the final chunk and seen end of input: make
//!    every staged file durable (`syncfs` of each filesystem written to,
//!    which does for all of them what an `fsync` of each would); then
//!    fchown, fchmod and set the mtime of each temporary file through a
//!    descriptor checked to be the file staging created (device, inode,
//!    type: a local user may swap names in a home), rename it over its
//!    destination and check the result; set the mode and owner of
//!    directory entries; and make all of that durable the same way. A
//!    file or directory that is not what this run saw or created fails
//!    its entry, never the run.
//!
//! The state record left by a commit keeps every record of the last
//! restore that this run did not rewrite: a failed entry never loses the
//! record that tells a local change from a stale one.
//! 4. Any fatal error before step 3 removes every temporary file and every
//!    directory this run created: no unverified byte reaches a destination.
//!
//! The work is split three ways: `plan` decides, for each entry, what to
//! do (a pure function of the entry, the target's accounts, the state
//! record and what is at the destination; `--dry-run` stops there);
//! `stage` walks to each destination and writes temporary files;
//! `commit` renames them into place and writes the state record
//! ([`crate::state`]). Every temporary file and created directory is held
//! by a [`cleanup::Guard`] from the moment it exists: dropped, it is
//! removed (an error, a panic, a signal); the commit disarms it.
#![forbid(unsafe_code)]

mod commit;
mod plan;
mod policy;
mod stage;

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::PathBuf;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::envelope::{self, EntryReader};
use crate::manifest;
use crate::passwd::{self, Accounts};
use crate::state::{self, FileRecord, State};
use crate::{cleanup, fsx};
use stage::{DirId, Dirs};

pub use policy::HOST_MANIFEST;

/// Why a restore stopped before committing anything.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target root cannot be opened.
    #[error("cannot open target root {root}: {source}")]
    TargetRoot {
        /// The target root as given.
        root: PathBuf,
        /// Why it cannot be opened.
        #[source]
        source: io::Error,
    },
    /// A restore that writes was not run as root.
    #[error(
        "restore must run as root: it creates files owned by other users and sets their owners; run as root (nothing was written)"
    )]
    NotRoot,
    /// The target root has no `etc/passwd` or `etc/group`: not mounted, or
    /// not a system.
    #[error(
        "target root {root} has no accounts database ({source}): is it mounted? Owners are resolved by name in its etc/passwd and etc/group (nothing was written)"
    )]
    NoAccounts {
        /// The target root as given.
        root: PathBuf,
        /// Which file is missing.
        #[source]
        source: io::Error,
    },
    /// The host's manifest (the restore policy) is there but cannot be
    /// read or is invalid.
    #[error(
        "the host's manifest decides what restore may write, and it is unusable: {0}; fix it (`zeta-creds manifest check`), or pass --allow-any-path (nothing was written)"
    )]
    HostManifest(#[source] manifest::Error),
    /// Two entries of the blob resolve to one destination, or one is a
    /// file where the other needs a directory.
    #[error(
        "the blob's entries {first} and {second} both resolve to {destination} (or one lies below the other as a file); a blob sealed by bundle never does that, so it is refused as a whole (nothing was written)"
    )]
    Conflict {
        /// The earlier entry, as the blob names it.
        first: String,
        /// The later entry.
        second: String,
        /// The destination of the later entry, below the target root.
        destination: String,
    },
    /// The target's `etc/passwd` or `etc/group` cannot be read.
    #[error(
        "cannot read the accounts of target root {root} ({source}); owners are resolved by name there, so it needs etc/passwd and etc/group"
    )]
    Accounts {
        /// The target root as given.
        root: PathBuf,
        /// Why they cannot be read.
        #[source]
        source: io::Error,
    },
    /// The payload failed to authenticate or parse.
    #[error(transparent)]
    Envelope(#[from] envelope::Error),
    /// The blob is older than the newest this system has sealed or restored.
    #[error(
        "rollback refused: the blob has generation {blob}, older than generation {recorded}, the newest this system has sealed or restored; an older blob (such as the BLOB.prev a bundle keeps, put back over the blob) can bring back a revoked key; nothing was written (pass --allow-rollback if you mean it)"
    )]
    Rollback {
        /// The blob's generation.
        blob: u64,
        /// The newest generation this system has sealed or restored.
        recorded: u64,
    },
    /// Staging failed in a way that is not one entry's (a filesystem error).
    #[error("cannot stage {path}: {source}; nothing was changed")]
    Stage {
        /// The destination, below the target root.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// How a restore was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The root to restore under (`/mnt` at install time, `/` at boot).
    pub target_root: PathBuf,
    /// Overrides the manifest user recorded in the blob.
    pub user: Option<String>,
    /// Decrypt, verify and report, but write nothing.
    pub dry_run: bool,
    /// What to do with a file changed locally since the last restore.
    pub on_conflict: OnConflict,
    /// Restore a blob older than the newest this system has sealed or
    /// restored.
    pub allow_rollback: bool,
    /// Write any path below the target root, not only those the host's
    /// manifest (`etc/zeta/creds-manifest.toml` there) carries.
    pub allow_any_path: bool,
    /// The (authenticated) generation of the blob being restored.
    pub generation: u64,
    /// Which blob this is, recorded in the state record by a restore that
    /// commits, so that `restore --if-new` knows it next time. `None`
    /// records no blob (the next `--if-new` restores again).
    pub blob: Option<state::RestoredBlob>,
}

/// What to do with a destination that differs from the blob and is not
/// what zeta-creds last wrote there (the operator changed it since).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnConflict {
    /// Keep the local file and report it ("re-bundle to carry it").
    #[default]
    KeepModified,
    /// The blob wins.
    Overwrite,
    /// The blob wins; the local file is kept as NAME.zeta-creds-bak.
    Backup,
}

/// Suffix of the copy `--on-conflict backup` keeps.
pub const BACKUP_SUFFIX: &str = ".zeta-creds-bak";

/// What happened to one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Written where nothing was.
    Created,
    /// Replaced (a file) or given the blob's mode and owner (a directory).
    Updated,
    /// Already as the blob has it.
    Unchanged,
    /// Changed locally since the last restore; left alone.
    Kept,
    /// Refused or not written; see the reason.
    Failed,
}

/// One line of the restore summary.
#[derive(Debug, Clone, Serialize)]
pub struct EntryReport {
    /// The path as stored in the blob (`~/...` or `/...`).
    pub entry: String,
    /// Where it goes, relative to the target root (`/home/zeta/...`).
    pub destination: String,
    /// `file`, `dir`, or `state` for the state record.
    pub kind: &'static str,
    /// What happened.
    pub outcome: Outcome,
    /// Why, for a failed or kept entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The summary of a restore.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The user whose home entries were restored.
    pub user: String,
    /// Whether nothing was written (`--dry-run`).
    pub dry_run: bool,
    /// One per entry, in blob order.
    pub entries: Vec<EntryReport>,
    /// Things the operator should know that are not entry failures.
    pub notes: Vec<String>,
    /// Set when no host manifest limits the paths this restore may write
    /// (none installed, no `--allow-any-path`): the sentence saying so.
    /// Not a warning: it is the state of every host that installs no
    /// manifest, said once per run at notice level.
    pub unrestricted: Option<String>,
}

impl Report {
    /// Entries that could not be written.
    pub fn failed(&self) -> impl Iterator<Item = &EntryReport> {
        self.entries.iter().filter(|e| e.outcome == Outcome::Failed)
    }

    /// Entries created or updated.
    pub fn changed(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.outcome, Outcome::Created | Outcome::Updated))
            .count()
    }
}

/// Restore every entry of `entries` under `opts.target_root`.
///
/// `entries` must read from a payload reader obtained through
/// [`envelope::Header::unlock`]; this function commits only after it has
/// returned the end of the stream.
pub fn restore<R: Read>(entries: &mut EntryReader<R>, opts: &Options) -> Result<Report, Error> {
    if !opts.dry_run && !rustix::process::geteuid().is_root() {
        return Err(Error::NotRoot);
    }
    let root = fsx::open_root(&opts.target_root).map_err(|source| Error::TargetRoot {
        root: opts.target_root.clone(),
        source,
    })?;
    let accounts = Accounts::load(&root).map_err(|source| {
        let root = opts.target_root.clone();
        if source.kind() == io::ErrorKind::NotFound {
            Error::NoAccounts { root, source }
        } else {
            Error::Accounts { root, source }
        }
    })?;
    let paths = if opts.allow_any_path {
        policy::Paths::Unrestricted { asked: true }
    } else {
        match policy::host_manifest(&root, &opts.target_root).map_err(Error::HostManifest)? {
            Some(m) => policy::Paths::Manifest(m),
            None => policy::Paths::Unrestricted { asked: false },
        }
    };
    let policy = policy::Policy::new(paths);
    let user = opts
        .user
        .clone()
        .unwrap_or_else(|| entries.user().to_owned());
    let home = resolve_home(&accounts, &user, opts);
    let unrestricted = policy.note(&opts.target_root);
    let mut notes: Vec<String> = Vec::new();
    let old_state = match state::load(&root) {
        state::Loaded::Present(s) => s,
        state::Loaded::Absent => State::default(),
        state::Loaded::Corrupt(why) => {
            notes.push(format!(
                "state record {}/var/lib/zeta-creds/state.json is unusable ({why}); treating it as absent: the blob's version wins everywhere",
                opts.target_root.display()
            ));
            State::default()
        }
    };
    let newest = old_state.newest_generation();
    if opts.generation < newest && !opts.allow_rollback {
        return Err(Error::Rollback {
            blob: opts.generation,
            recorded: newest,
        });
    }

    let mut run = Run {
        dirs: Dirs::new(root),
        created_dirs: Vec::new(),
        staged: Vec::new(),
        dir_fixes: Vec::new(),
        reports: Vec::new(),
        dry_run: opts.dry_run,
        on_conflict: opts.on_conflict,
        policy,
        // Every record of the last restore stays until this run writes or
        // re-observes its entry: a failed or skipped entry keeps its record,
        // so a later restore still sees a local edit as one (issue 19 #1).
        records: old_state.files.clone(),
        old_state,
        notes,
        buf: Zeroizing::new(vec![0u8; 64 * 1024]),
    };
    let result = run.stage_all(entries, &accounts, &home).and_then(|()| {
        if opts.dry_run {
            Ok(())
        } else {
            run.flush_staged()
        }
    });
    match result {
        Ok(()) if opts.dry_run => Ok(run.into_report(user, true, unrestricted)),
        Ok(()) => {
            crate::msg::test_fault("stall-after-staging");
            crate::msg::test_fault("panic-after-staging");
            crate::msg::test_fault("pause-after-staging");
            // The commit finds every directory again by name, whatever
            // the staging left open: a directory moved or swapped for a
            // symlink meanwhile fails its entries, always the same way.
            run.dirs.close_all();
            // A signal now waits until every staged file is in place and
            // the state record is written.
            cleanup::commit_section(|| {
                run.commit();
                run.save_state(opts.generation, opts.blob.clone());
            });
            Ok(run.into_report(user, false, unrestricted))
        }
        Err(e) => {
            run.rollback();
            Err(e)
        }
    }
}

/// The home of the restore's user on the target, or why home entries are
/// refused.
struct Home {
    components: Vec<String>,
    uid: u32,
    gid: u32,
}

fn resolve_home(accounts: &Accounts, user: &str, opts: &Options) -> Result<Home, String> {
    if user.is_empty() {
        return Err("the blob records no user and --user was not given".into());
    }
    let u = accounts.user(user).ok_or_else(|| {
        let normal = passwd::normal_users(accounts);
        let known = if normal.is_empty() {
            "it has no normal user (uid 1000 to 59999)".to_owned()
        } else {
            format!("its normal users: {}", normal.join(", "))
        };
        format!(
            "user {user:?} is not in {}/etc/passwd ({known}); create the user first, or pass --user NAME",
            opts.target_root.display()
        )
    })?;
    let components = passwd::home_components(u)?;
    Ok(Home {
        components,
        uid: u.uid,
        gid: u.gid,
    })
}

/// A file staged beside its destination.
struct Staged {
    report: usize,
    dir: DirId,
    /// The temporary file: removed unless the commit renames it.
    tmp: Option<cleanup::Guard>,
    tmp_name: String,
    /// What `tmp_name` must still lead to at commit: the file created.
    identity: stage::Identity,
    final_name: String,
    mode: u32,
    owners: plan::Owners,
    mtime: i64,
    /// Keep the file being replaced as NAME.zeta-creds-bak: the file seen
    /// there when the entry was planned, and only that one.
    backup: Option<stage::Identity>,
}

/// A directory entry whose mode and owner are set at commit.
struct DirFix {
    report: usize,
    dir: DirId,
    mode: u32,
    owners: plan::Owners,
}

/// One restore's bookkeeping, from the first entry to the commit. Each
/// temporary file and created directory is owned here, by its guard, and
/// nowhere else.
struct Run {
    dirs: Dirs,
    /// Directories this run created, in creation order; removed (newest
    /// first) unless the commit disarms them.
    created_dirs: Vec<cleanup::Guard>,
    staged: Vec<Staged>,
    dir_fixes: Vec<DirFix>,
    reports: Vec<EntryReport>,
    dry_run: bool,
    on_conflict: OnConflict,
    /// What this host lets a blob write, and the destinations claimed.
    policy: policy::Policy,
    /// The record of the last restore.
    old_state: State,
    /// The record this restore will leave, by destination path: the last
    /// restore's, with the entries this run wrote or looked at replaced.
    records: BTreeMap<String, FileRecord>,
    notes: Vec<String>,
    /// One zeroizing buffer for every body, not one per entry.
    buf: Zeroizing<Vec<u8>>,
}

/// A per-entry refusal: the entry is reported as failed, the run goes on.
struct Refusal(String);

impl Run {
    /// Remove every temporary file and every directory this run created:
    /// files first, then directories children before parents (each parent
    /// still exists when its child is removed).
    fn rollback(&mut self) {
        while let Some(s) = self.staged.pop() {
            drop(s);
        }
        self.dir_fixes.clear();
        while let Some(d) = self.created_dirs.pop() {
            drop(d);
        }
        self.dirs.close_all();
    }

    fn into_report(mut self, user: String, dry_run: bool, unrestricted: Option<String>) -> Report {
        Report {
            user,
            dry_run,
            entries: std::mem::take(&mut self.reports),
            notes: std::mem::take(&mut self.notes),
            unrestricted,
        }
    }
}

impl Drop for Run {
    /// A panic between staging and commit still removes temporary files.
    fn drop(&mut self) {
        self.rollback();
    }
}
