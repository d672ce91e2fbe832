//! Restore: write a blob's entries under a target root, confined, staged,
//! and committed only after the whole payload has authenticated.
//!
//! The order (DESIGN.md "Restore rules"):
//!
//! 1. Load the target root's `etc/passwd` and `etc/group`; resolve the
//!    user's home there (a home of `/` or an unknown user is refused for
//!    every home entry, never replaced by root).
//! 2. For each entry as it is decrypted: resolve owner and group by name on
//!    the target, walk to its parent directory one component at a time with
//!    `O_NOFOLLOW` (creating missing parents: owned by the user inside the
//!    home, by root elsewhere), and stage its bytes in a temporary file
//!    beside the destination (`.zeta-creds-tmp.*`, 0600, root), fsynced.
//!    An entry that cannot be placed (symlinked parent, unknown owner, a
//!    file where a directory should be) is refused by name and its body is
//!    still read, so the payload is still verified to its end.
//! 3. Only once the entry stream's end marker has been read and the STREAM
//!    reader has authenticated the final chunk and seen end of input:
//!    fchown, fchmod and set the mtime of each temporary file, rename it
//!    over its destination and fsync the directory; then set the mode and
//!    owner of directory entries.
//! 4. Any fatal error before step 3 removes every temporary file and every
//!    directory this run created: no unverified byte reaches a destination.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps};
use rustix::io::Errno;
use serde::Serialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::envelope::{self, Anchor, EntryKind, EntryMeta, EntryReader};
use crate::passwd::{self, Accounts};
use crate::state::{self, FileRecord, State};
use crate::{cleanup, fsx};

/// Why a restore stopped before committing anything.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open target root {root}: {source}")]
    TargetRoot {
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot read the accounts of target root {root} ({source}); owners are resolved by name there, so it needs etc/passwd and etc/group"
    )]
    Accounts {
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Envelope(#[from] envelope::Error),
    #[error(
        "rollback refused: the blob has generation {blob}, older than generation {recorded} last restored here; an older blob can bring back a revoked key (pass --allow-rollback if you mean it)"
    )]
    Rollback { blob: u64, recorded: u64 },
    #[error("cannot stage {path}: {source}; nothing was changed")]
    Stage {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// How a restore was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub target_root: PathBuf,
    /// Overrides the manifest user recorded in the blob.
    pub user: Option<String>,
    /// Decrypt, verify and report, but write nothing.
    pub dry_run: bool,
    /// What to do with a file changed locally since the last restore.
    pub on_conflict: OnConflict,
    /// Restore a blob older than the one last restored here.
    pub allow_rollback: bool,
    /// The (authenticated) generation of the blob being restored.
    pub generation: u64,
}

/// What to do with a destination that differs from the blob and is not
/// what zeta-creds last wrote there (the operator changed it since).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
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
    Created,
    Updated,
    Unchanged,
    /// Changed locally since the last restore; left alone.
    Kept,
    Failed,
}

/// One line of the restore summary.
#[derive(Debug, Clone, Serialize)]
pub struct EntryReport {
    /// The path as stored in the blob (`~/...` or `/...`).
    pub entry: String,
    /// Where it goes, relative to the target root (`/home/zeta/...`).
    pub destination: String,
    pub kind: &'static str,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The summary of a restore.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub user: String,
    pub dry_run: bool,
    pub entries: Vec<EntryReport>,
    /// Things the operator should know that are not entry failures.
    pub notes: Vec<String>,
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
    let root = fsx::open_root(&opts.target_root).map_err(|source| Error::TargetRoot {
        root: opts.target_root.clone(),
        source,
    })?;
    let accounts = Accounts::load(&root).map_err(|source| Error::Accounts {
        root: opts.target_root.clone(),
        source,
    })?;
    let user = opts
        .user
        .clone()
        .unwrap_or_else(|| entries.user().to_owned());
    let home = resolve_home(&accounts, &user, opts);
    let mut notes = Vec::new();
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
    if opts.generation < old_state.generation && !opts.allow_rollback {
        return Err(Error::Rollback {
            blob: opts.generation,
            recorded: old_state.generation,
        });
    }

    let mut run = Run {
        root: Arc::new(root),
        dirs: HashMap::new(),
        created_dirs: Vec::new(),
        staged: Vec::new(),
        dir_fixes: Vec::new(),
        reports: Vec::new(),
        dry_run: opts.dry_run,
        on_conflict: opts.on_conflict,
        old_state,
        records: Default::default(),
        notes,
        buf: Zeroizing::new(vec![0u8; 64 * 1024]),
    };
    let result = run.stage_all(entries, &accounts, &home);
    match result {
        Ok(()) if opts.dry_run => Ok(run.into_report(user, true)),
        Ok(()) => {
            crate::msg::test_fault("stall-after-staging");
            crate::msg::test_fault("panic-after-staging");
            // A signal now waits until every staged file is in place and
            // the state record is written.
            cleanup::commit_section(|| {
                run.commit();
                run.save_state(opts.generation);
            });
            Ok(run.into_report(user, false))
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
        format!(
            "user {user:?} is not in {}/etc/passwd; create the user first (or pass --user)",
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
    dir: Arc<OwnedFd>,
    tmp_name: String,
    final_name: String,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    /// Keep the file being replaced as NAME.zeta-creds-bak.
    backup: bool,
}

/// A directory entry whose mode and owner are set at commit.
struct DirFix {
    report: usize,
    fd: OwnedFd,
    mode: u32,
    uid: u32,
    gid: u32,
}

struct Run {
    root: Arc<OwnedFd>,
    /// Directory fds by components below the root, opened without
    /// following symlinks. `None`: does not exist yet (dry run only).
    dirs: HashMap<Vec<String>, Option<Arc<OwnedFd>>>,
    /// Directories this run created, in creation order, for rollback.
    created_dirs: Vec<(Arc<OwnedFd>, String)>,
    staged: Vec<Staged>,
    dir_fixes: Vec<DirFix>,
    reports: Vec<EntryReport>,
    dry_run: bool,
    on_conflict: OnConflict,
    /// The record of the last restore.
    old_state: State,
    /// The record this restore will leave, by destination path.
    records: std::collections::BTreeMap<String, FileRecord>,
    notes: Vec<String>,
    /// One zeroizing buffer for every body, not one per entry.
    buf: Zeroizing<Vec<u8>>,
}

/// A per-entry refusal: the entry is reported as failed, the run goes on.
struct Refusal(String);

impl Run {
    fn stage_all<R: Read>(
        &mut self,
        entries: &mut EntryReader<R>,
        accounts: &Accounts,
        home: &Result<Home, String>,
    ) -> Result<(), Error> {
        while let Some(meta) = entries.next_entry()? {
            let base: Vec<String> = match (meta.anchor, home) {
                (Anchor::Root, _) => Vec::new(),
                (Anchor::Home, Ok(h)) => h.components.clone(),
                (Anchor::Home, Err(_)) => Vec::new(),
            };
            let mut destination = base.clone();
            destination.extend(fsx::components(&meta.path).into_iter().map(str::to_owned));
            let index = self.reports.len();
            self.reports.push(EntryReport {
                entry: meta.display_path(),
                destination: format!("/{}", destination.join("/")),
                kind: match meta.kind {
                    EntryKind::File => "file",
                    EntryKind::Dir => "dir",
                },
                outcome: Outcome::Failed,
                reason: None,
            });
            let home_ctx = match (meta.anchor, home) {
                (Anchor::Home, Err(why)) => Err(Refusal(why.clone())),
                (Anchor::Home, Ok(h)) => Ok(Some(h)),
                (Anchor::Root, _) => Ok(None),
            };
            let outcome = match home_ctx {
                Err(r) => Err(r),
                Ok(h) => self.stage_one(entries, &meta, accounts, h, &destination, index)?,
            };
            match outcome {
                Ok(o) => self.reports[index].outcome = o,
                Err(Refusal(reason)) => {
                    // Still read (and so verify) the body.
                    entries.skip_body()?;
                    self.reports[index].reason = Some(reason);
                }
            }
        }
        Ok(())
    }

    /// Stage one entry. The outer error aborts the restore; the inner one
    /// refuses this entry only.
    fn stage_one<R: Read>(
        &mut self,
        entries: &mut EntryReader<R>,
        meta: &EntryMeta,
        accounts: &Accounts,
        home: Option<&Home>,
        destination: &[String],
        index: usize,
    ) -> Result<Result<Outcome, Refusal>, Error> {
        let Some(uid) = resolve_id(&meta.owner, |n| accounts.uid(n)) else {
            return Ok(Err(Refusal(format!(
                "owner {:?} is not in the target's etc/passwd; create the user first",
                meta.owner
            ))));
        };
        let Some(gid) = resolve_id(&meta.group, |n| accounts.gid(n)) else {
            return Ok(Err(Refusal(format!(
                "group {:?} is not in the target's etc/group; create the group first",
                meta.group
            ))));
        };
        let (name, parents) = destination.split_last().expect("entry paths are non-empty");
        let home_len = home.map(|h| h.components.len());
        let dir = match self.parent_dir(parents, home_len, home) {
            Ok(d) => d,
            Err(r) => return Ok(Err(r)),
        };
        let display = self.reports[index].destination.clone();
        let stage_err = |source: io::Error| Error::Stage {
            path: display.clone(),
            source,
        };
        let Some(dir) = dir else {
            // Dry run below a directory that does not exist yet.
            debug_assert!(self.dry_run);
            if meta.kind == EntryKind::File {
                entries.skip_body()?;
            }
            return Ok(Ok(Outcome::Created));
        };
        let existing = fsx::lstat(&*dir, name.as_str()).map_err(&stage_err)?;
        match meta.kind {
            EntryKind::Dir => {
                let created = match &existing {
                    None => true,
                    Some(st) if fsx::file_type(st) == FileType::Directory => false,
                    Some(st) => {
                        return Ok(Err(Refusal(format!(
                            "exists as a {} and the blob has a directory here; move it away",
                            kind_name(fsx::file_type(st))
                        ))));
                    }
                };
                if let Some(st) = &existing
                    && st.st_mode & 0o7777 == meta.mode
                    && st.st_uid == uid
                    && st.st_gid == gid
                {
                    // Only a successfully opened directory is cached; a
                    // cached `None` would mean "not there yet" (dry run).
                    if !self.dirs.contains_key(destination)
                        && let Ok(fd) = fsx::open_dir(&*dir, name)
                    {
                        self.cache_dir(destination, fd);
                    }
                    return Ok(Ok(Outcome::Unchanged));
                }
                if self.dry_run {
                    return Ok(Ok(if created {
                        Outcome::Created
                    } else {
                        Outcome::Updated
                    }));
                }
                if created && let Err(e) = self.mkdir(&dir, name, 0o700, None) {
                    return Ok(Err(Refusal(format!("cannot create the directory: {e}"))));
                }
                let fd = fsx::open_dir(&*dir, name).map_err(&stage_err)?;
                let fd2 = rustix::io::dup(&fd).map_err(|e| stage_err(e.into()))?;
                self.cache_dir(destination, fd2);
                self.dir_fixes.push(DirFix {
                    report: index,
                    fd,
                    mode: meta.mode,
                    uid,
                    gid,
                });
                Ok(Ok(if created {
                    Outcome::Created
                } else {
                    Outcome::Updated
                }))
            }
            EntryKind::File => {
                let mut backup = false;
                let outcome = match &existing {
                    None => Outcome::Created,
                    Some(st) if fsx::file_type(st) == FileType::RegularFile => {
                        if st.st_mode & 0o7777 == meta.mode
                            && st.st_uid == uid
                            && st.st_gid == gid
                            && st.st_size as u64 == meta.size
                            && same_contents(&dir, name, &meta.sha256, &mut self.buf)
                                .map_err(&stage_err)?
                        {
                            entries.skip_body()?;
                            self.records.insert(display.clone(), FileRecord::of(st));
                            return Ok(Ok(Outcome::Unchanged));
                        }
                        // Differs. Still what we last wrote, or never
                        // recorded (first restore): the blob wins. Changed
                        // since we wrote it: the operator's call.
                        let recorded = self.old_state.files.get(&display).copied();
                        let ours = recorded.is_none_or(|r| r == FileRecord::of(st));
                        if !ours {
                            match self.on_conflict {
                                OnConflict::KeepModified => {
                                    entries.skip_body()?;
                                    if let Some(r) = recorded {
                                        self.records.insert(display.clone(), r);
                                    }
                                    self.reports[index].reason = Some(
                                        "changed locally since the last restore; re-bundle to carry it, or pass --on-conflict overwrite|backup".into(),
                                    );
                                    return Ok(Ok(Outcome::Kept));
                                }
                                OnConflict::Overwrite => {}
                                OnConflict::Backup => backup = true,
                            }
                        }
                        Outcome::Updated
                    }
                    Some(st) => {
                        return Ok(Err(Refusal(format!(
                            "exists as a {} and the blob has a file here; refusing to replace it",
                            kind_name(fsx::file_type(st))
                        ))));
                    }
                };
                if self.dry_run {
                    entries.skip_body()?;
                    return Ok(Ok(outcome));
                }
                // A file that cannot be staged here (read-only or full
                // filesystem, immutable directory) refuses this entry only.
                // Its body is still read to the end, so the stream stays in
                // step and is still verified.
                let (tmp_name, fd) = match fsx::create_temp(&*dir) {
                    Ok(t) => t,
                    Err(e) => {
                        return Ok(Err(Refusal(format!(
                            "cannot create a temporary file in its directory: {e}"
                        ))));
                    }
                };
                let mut file = File::from(fd);
                // Register first so a failure (or a signal) below still
                // removes it.
                cleanup::register_temp_file(&dir, &tmp_name);
                self.staged.push(Staged {
                    report: index,
                    dir: Arc::clone(&dir),
                    tmp_name,
                    final_name: name.clone(),
                    mode: meta.mode,
                    uid,
                    gid,
                    mtime: meta.mtime,
                    backup,
                });
                let mut write_error = None;
                loop {
                    let n = entries.read_body(&mut self.buf)?;
                    if n == 0 {
                        break;
                    }
                    if write_error.is_none()
                        && let Err(e) = file.write_all(&self.buf[..n])
                    {
                        write_error = Some(e);
                    }
                }
                if write_error.is_none()
                    && let Err(e) = file.sync_all()
                {
                    write_error = Some(e);
                }
                // Closed now: a large restore must not hold one descriptor
                // per file until the commit.
                drop(file);
                if let Some(e) = write_error {
                    let staged = self.staged.pop().expect("pushed above");
                    let _ = rustix::fs::unlinkat(
                        &*staged.dir,
                        staged.tmp_name.as_str(),
                        AtFlags::empty(),
                    );
                    return Ok(Err(Refusal(format!("cannot write it: {e}"))));
                }
                Ok(Ok(outcome))
            }
        }
    }

    /// Walk to (and, unless dry-running, create) the parent directory given
    /// by `components` below the root, never following a symlink. Missing
    /// directories at or below the home (index >= home_len - 1) are created
    /// owned by the user, mode 0700; others by root, mode 0755.
    fn parent_dir(
        &mut self,
        components: &[String],
        home_len: Option<usize>,
        home: Option<&Home>,
    ) -> Result<Option<Arc<OwnedFd>>, Refusal> {
        let mut current = Arc::clone(&self.root);
        for i in 0..components.len() {
            let key = components[..=i].to_vec();
            if let Some(cached) = self.dirs.get(&key) {
                match cached {
                    Some(fd) => {
                        current = Arc::clone(fd);
                        continue;
                    }
                    None => return Ok(None),
                }
            }
            let name = &components[i];
            let shown = format!("/{}", key.join("/"));
            match fsx::lstat(&*current, name) {
                Ok(Some(st)) if fsx::file_type(&st) == FileType::Directory => {}
                Ok(Some(st)) => {
                    return Err(Refusal(format!(
                        "parent {shown} is a {}, not a directory; refusing to follow or replace it",
                        kind_name(fsx::file_type(&st))
                    )));
                }
                Ok(None) => {
                    if self.dry_run {
                        self.dirs.insert(key, None);
                        return Ok(None);
                    }
                    let in_home = matches!(home_len, Some(n) if i + 1 >= n);
                    let (mode, owner) = match (in_home, home) {
                        (true, Some(h)) => (0o700, Some((h.uid, h.gid))),
                        _ => (0o755, None),
                    };
                    self.mkdir(&current, name, mode, owner)
                        .map_err(|e| Refusal(format!("cannot create {shown}: {e}")))?;
                }
                Err(e) => return Err(Refusal(format!("cannot inspect {shown}: {e}"))),
            }
            let fd = fsx::open_dir(&*current, name).map_err(|e| {
                if e.raw_os_error() == Some(Errno::LOOP.raw_os_error())
                    || e.raw_os_error() == Some(Errno::NOTDIR.raw_os_error())
                {
                    Refusal(format!(
                        "parent {shown} is a symlink; refusing to follow it"
                    ))
                } else {
                    Refusal(format!("cannot open {shown}: {e}"))
                }
            })?;
            current = self.cache_dir(&key, fd);
        }
        Ok(Some(current))
    }

    /// Remember an opened directory, sweeping it of stale temporary files
    /// the first time (every directory a run writes into is opened here).
    fn cache_dir(&mut self, components: &[String], fd: OwnedFd) -> Arc<OwnedFd> {
        if !self.dry_run {
            let removed = fsx::remove_stale_temps(&fd);
            if removed > 0 {
                self.notes.push(format!(
                    "removed {removed} stale temporary file(s) from an interrupted run in /{}",
                    components.join("/")
                ));
            }
        }
        let fd = Arc::new(fd);
        self.dirs.insert(components.to_vec(), Some(Arc::clone(&fd)));
        fd
    }

    /// Create a directory (recorded for rollback), then give it its owner
    /// before anything is put inside.
    fn mkdir(
        &mut self,
        parent: &Arc<OwnedFd>,
        name: &str,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        rustix::fs::mkdirat(&**parent, name, Mode::from_raw_mode(mode))?;
        self.created_dirs
            .push((Arc::clone(parent), name.to_owned()));
        cleanup::register_created_dir(parent, name);
        let fd = fsx::open_dir(&**parent, name)?;
        if let Some((uid, gid)) = owner {
            chown(&fd, uid, gid)?;
        }
        // The umask may have removed bits; set the exact mode.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        Ok(())
    }

    /// Put every staged file into place, then fix directory entries.
    /// A failure here affects only its entry, which is reported as failed.
    fn commit(&mut self) {
        let mut touched: Vec<Arc<OwnedFd>> = Vec::new();
        for s in std::mem::take(&mut self.staged) {
            if !touched.iter().any(|d| Arc::ptr_eq(d, &s.dir)) {
                touched.push(Arc::clone(&s.dir));
            }
            match commit_file(&s) {
                Ok(st) => {
                    let dest = self.reports[s.report].destination.clone();
                    self.records.insert(dest, FileRecord::of(&st));
                }
                Err(e) => {
                    let _ = rustix::fs::unlinkat(&*s.dir, s.tmp_name.as_str(), AtFlags::empty());
                    let r = &mut self.reports[s.report];
                    r.outcome = Outcome::Failed;
                    r.reason = Some(format!("cannot put into place: {e}"));
                }
            }
        }
        // Make the renames durable: each directory once.
        for dir in touched {
            let _ = rustix::fs::fsync(&*dir);
        }
        // Reverse order: children before parents, so that a parent made
        // read-only does not block a child's metadata change.
        for d in std::mem::take(&mut self.dir_fixes).into_iter().rev() {
            let result = chown(&d.fd, d.uid, d.gid)
                .and_then(|()| Ok(rustix::fs::fchmod(&d.fd, Mode::from_raw_mode(d.mode))?))
                .and_then(|()| Ok(rustix::fs::fsync(&d.fd)?));
            if let Err(e) = result {
                let r = &mut self.reports[d.report];
                r.outcome = Outcome::Failed;
                r.reason = Some(format!("cannot set mode and owner: {e}"));
            }
        }
        self.created_dirs.clear();
        cleanup::forget_staging();
    }

    /// Remove every temporary file and every directory this run created.
    fn rollback(&mut self) {
        for s in self.staged.drain(..).rev() {
            let _ = rustix::fs::unlinkat(&*s.dir, s.tmp_name.as_str(), AtFlags::empty());
        }
        self.dir_fixes.clear();
        self.dirs.clear();
        for (parent, name) in self.created_dirs.drain(..).rev() {
            let _ = rustix::fs::unlinkat(&*parent, name.as_str(), AtFlags::REMOVEDIR);
        }
        cleanup::forget_staging();
    }

    /// Record what this restore left, for the next one. A failure to write
    /// the record is reported as a failed entry: without it, rollback
    /// protection and local-change detection would silently stop working.
    ///
    /// Written whenever the commit ran, also when some entries were refused
    /// (exit 7): the files that were committed have new inodes and ctimes,
    /// and an old record would make the next restore take them for local
    /// changes and keep stale copies. A restore that aborted before its
    /// commit never gets here, so the record is untouched then.
    fn save_state(&mut self, generation: u64) {
        let state = State {
            version: 1,
            generation,
            files: std::mem::take(&mut self.records),
        };
        if let Err(e) = state::save(&self.root, &state) {
            self.reports.push(EntryReport {
                entry: "(state record)".into(),
                destination: "/var/lib/zeta-creds/state.json".into(),
                kind: "state",
                outcome: Outcome::Failed,
                reason: Some(format!("cannot write the state record: {e}")),
            });
        }
    }

    fn into_report(mut self, user: String, dry_run: bool) -> Report {
        Report {
            user,
            dry_run,
            entries: std::mem::take(&mut self.reports),
            notes: std::mem::take(&mut self.notes),
        }
    }
}

impl Drop for Run {
    /// A panic between staging and commit still removes temporary files.
    fn drop(&mut self) {
        if !self.staged.is_empty() || !self.created_dirs.is_empty() {
            self.rollback();
        }
    }
}

/// Give a staged file its owner, mode and mtime, then rename it into place
/// and fsync the directory. The temporary name is ours (created `O_EXCL` in
/// a directory opened without following symlinks), and every call here
/// refuses to follow a symlink anyway.
fn commit_file(s: &Staged) -> io::Result<rustix::fs::Stat> {
    let dir = &*s.dir;
    let tmp = s.tmp_name.as_str();
    // Owner before mode: chown clears set-id bits.
    rustix::fs::chownat(
        dir,
        tmp,
        Some(rustix::fs::Uid::from_raw(s.uid)),
        Some(rustix::fs::Gid::from_raw(s.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    // fchmodat cannot refuse symlinks on Linux; open the file itself.
    let fd = rustix::fs::openat(
        dir,
        tmp,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(s.mode))?;
    let t = Timespec {
        tv_sec: s.mtime,
        tv_nsec: 0,
    };
    rustix::fs::futimens(
        &fd,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
    )?;
    rustix::fs::fsync(&fd)?;
    drop(fd);
    if s.backup {
        // A hard link keeps the replaced file (owner, mode, bytes) under
        // NAME.zeta-creds-bak; the destination never stops existing.
        let bak = format!("{}{BACKUP_SUFFIX}", s.final_name);
        match rustix::fs::unlinkat(dir, bak.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        rustix::fs::linkat(
            dir,
            s.final_name.as_str(),
            dir,
            bak.as_str(),
            AtFlags::empty(),
        )?;
    }
    rustix::fs::renameat(dir, tmp, dir, s.final_name.as_str())?;
    // The directory is fsynced once, after all of its renames (commit).
    Ok(rustix::fs::statat(
        dir,
        s.final_name.as_str(),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

fn chown(fd: impl AsFd, uid: u32, gid: u32) -> io::Result<()> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )?;
    Ok(())
}

/// Whether the regular file `name` in `dir` has this SHA-256.
fn same_contents(dir: &OwnedFd, name: &str, sha256: &[u8; 32], buf: &mut [u8]) -> io::Result<bool> {
    let mut file = fsx::open_file(dir, name)?;
    let mut hasher = Sha256::new();
    loop {
        let n = file.read(buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(<[u8; 32]>::from(hasher.finalize()) == *sha256)
}

/// An owner or group from the blob: a name, resolved in the target's
/// accounts, or an all-digit numeric id (the manifest's `uid`/`gid`, for an
/// account that exists only on the target, as sops-nix allows), used as
/// is. All-digit account names are refused by useradd and systemd, so the
/// two cannot be confused.
fn resolve_id(name: &str, lookup: impl Fn(&str) -> Option<u32>) -> Option<u32> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return name.parse().ok();
    }
    lookup(name)
}

fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        _ => "special file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ids_are_taken_as_is_and_names_are_looked_up() {
        let accounts = Accounts::parse("zeta:x:1000:100::/home/zeta:/bin/sh\n", "users:x:100:\n");
        assert_eq!(resolve_id("4242", |n| accounts.uid(n)), Some(4242));
        assert_eq!(resolve_id("zeta", |n| accounts.uid(n)), Some(1000));
        assert_eq!(resolve_id("nobody", |n| accounts.uid(n)), None);
        assert_eq!(resolve_id("99999999999", |n| accounts.uid(n)), None);
        assert_eq!(resolve_id("users", |n| accounts.gid(n)), Some(100));
    }
}
