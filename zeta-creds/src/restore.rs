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
//!    beside the destination (`.zeta-creds-tmp.*`, 0600, root).
//!    An entry that cannot be placed (symlinked parent, unknown owner, a
//!    file where a directory should be) is refused by name and its body is
//!    still read, so the payload is still verified to its end.
//! 3. Only once the entry stream's end marker has been read and the STREAM
//!    reader has authenticated the final chunk and seen end of input: make
//!    every staged file durable (`syncfs` of each filesystem written to,
//!    which does for all of them what an `fsync` of each would); then
//!    fchown, fchmod and set the mtime of each temporary file and rename it
//!    over its destination; set the mode and owner of directory entries;
//!    and make all of that durable the same way.
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
        dirs: Dirs::new(root),
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
    let result = run.stage_all(entries, &accounts, &home).and_then(|()| {
        if opts.dry_run {
            Ok(())
        } else {
            run.flush_staged()
        }
    });
    match result {
        Ok(()) if opts.dry_run => Ok(run.into_report(user, true)),
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
    dir: DirId,
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
    dir: DirId,
    mode: u32,
    uid: u32,
    gid: u32,
}

struct Run {
    dirs: Dirs,
    /// Directories this run created (parent, name), in creation order, for
    /// rollback.
    created_dirs: Vec<(DirId, String)>,
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

/// A directory below the target root that this run has checked, by index.
type DirId = usize;

/// How many directory descriptors a restore holds open at once.
const OPEN_DIRS: usize = 64;

/// The directories a run works in, named by their components below the
/// target root, with a bounded set of open descriptors.
///
/// A blob may span more directories than the process may hold open
/// (`LIMIT_NOFILE` is often 1024), so a staged file remembers its directory
/// by name, not by descriptor. A directory whose descriptor was let go is
/// opened again from the root one component at a time, never following a
/// symlink (`fsx::open_dir`): a directory swapped for a symlink between
/// staging and commit fails its entries, it never redirects them.
struct Dirs {
    root: Arc<OwnedFd>,
    /// Every directory checked (and, unless dry-running, created) so far.
    ids: HashMap<Vec<String>, DirId>,
    /// By id: its components, and whether it exists (`false`: not yet,
    /// dry run only).
    known: Vec<(Vec<String>, bool)>,
    /// At most [`OPEN_DIRS`] open descriptors.
    open: HashMap<DirId, Arc<OwnedFd>>,
}

impl Dirs {
    /// The root itself is [`Dirs::ROOT`].
    const ROOT: DirId = 0;

    fn new(root: OwnedFd) -> Dirs {
        Dirs {
            root: Arc::new(root),
            ids: HashMap::from([(Vec::new(), Dirs::ROOT)]),
            known: vec![(Vec::new(), true)],
            open: HashMap::new(),
        }
    }

    fn id(&self, components: &[String]) -> Option<DirId> {
        self.ids.get(components).copied()
    }

    fn exists(&self, id: DirId) -> bool {
        self.known[id].1
    }

    fn components(&self, id: DirId) -> &[String] {
        &self.known[id].0
    }

    /// Remember a checked directory (with its descriptor if it exists).
    fn insert(&mut self, components: &[String], fd: Option<OwnedFd>) -> DirId {
        let id = self.known.len();
        self.known.push((components.to_vec(), fd.is_some()));
        self.ids.insert(components.to_vec(), id);
        if let Some(fd) = fd {
            self.keep_open(id, Arc::new(fd));
        }
        id
    }

    fn keep_open(&mut self, id: DirId, fd: Arc<OwnedFd>) {
        if self.open.len() >= OPEN_DIRS {
            // Runs touch directories in stream order, so forgetting all of
            // them at once costs little and keeps this simple.
            self.open.clear();
        }
        self.open.insert(id, fd);
    }

    /// The descriptor of a checked directory, opened again without
    /// following symlinks if it was let go.
    fn fd(&mut self, id: DirId) -> io::Result<Arc<OwnedFd>> {
        if id == Dirs::ROOT {
            return Ok(Arc::clone(&self.root));
        }
        if let Some(fd) = self.open.get(&id) {
            return Ok(Arc::clone(fd));
        }
        let components: Vec<&str> = self.known[id].0.iter().map(String::as_str).collect();
        let fd = Arc::new(fsx::open_dir_path(&*self.root, &components)?);
        self.keep_open(id, Arc::clone(&fd));
        Ok(fd)
    }

    /// Let every descriptor go (the root's excepted).
    fn close_all(&mut self) {
        self.open.clear();
    }
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
        let parent = match self.parent_dir(parents, home_len, home) {
            Ok(d) => d,
            Err(r) => return Ok(Err(r)),
        };
        let display = self.reports[index].destination.clone();
        let stage_err = |source: io::Error| Error::Stage {
            path: display.clone(),
            source,
        };
        let Some(parent) = parent else {
            // Dry run below a directory that does not exist yet.
            debug_assert!(self.dry_run);
            if meta.kind == EntryKind::File {
                entries.skip_body()?;
            }
            return Ok(Ok(Outcome::Created));
        };
        let dir = match self.dirs.fd(parent) {
            Ok(fd) => fd,
            Err(e) => {
                return Ok(Err(Refusal(format!(
                    "cannot open its directory again: {e}"
                ))));
            }
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
                    // Only a successfully opened directory is remembered;
                    // one remembered as absent means "not there yet" (dry
                    // run).
                    if self.dirs.id(destination).is_none()
                        && let Ok(fd) = fsx::open_dir(&*dir, name)
                    {
                        self.check_in(destination, Some(fd));
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
                if created && let Err(e) = self.mkdir(parent, &dir, name, 0o700, None) {
                    return Ok(Err(Refusal(format!("cannot create the directory: {e}"))));
                }
                let id = match self.dirs.id(destination) {
                    Some(id) => id,
                    None => {
                        let fd = fsx::open_dir(&*dir, name).map_err(&stage_err)?;
                        self.check_in(destination, Some(fd))
                    }
                };
                self.dir_fixes.push(DirFix {
                    report: index,
                    dir: id,
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
                cleanup::register_temp_file_below(
                    &self.dirs.root,
                    self.dirs.components(parent),
                    &tmp_name,
                );
                self.staged.push(Staged {
                    report: index,
                    dir: parent,
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
                // Made durable with every other staged file, in one
                // `syncfs` per filesystem before the commit (flush_staged).
                // Closed now: a large restore must not hold one descriptor
                // per file until the commit.
                drop(file);
                if let Some(e) = write_error {
                    let staged = self.staged.pop().expect("pushed above");
                    let _ = rustix::fs::unlinkat(&*dir, staged.tmp_name.as_str(), AtFlags::empty());
                    return Ok(Err(Refusal(format!("cannot write it: {e}"))));
                }
                Ok(Ok(outcome))
            }
        }
    }

    /// Walk to (and, unless dry-running, create) the parent directory given
    /// by `components` below the root, never following a symlink. Missing
    /// directories at or below the home (index >= home_len - 1) are created
    /// owned by the user, mode 0700; others by root, mode 0755. `None`: it
    /// does not exist yet (dry run only).
    fn parent_dir(
        &mut self,
        components: &[String],
        home_len: Option<usize>,
        home: Option<&Home>,
    ) -> Result<Option<DirId>, Refusal> {
        // The longest prefix already checked; everything below it is new.
        let mut checked = components.len();
        let mut current = loop {
            if let Some(id) = self.dirs.id(&components[..checked]) {
                if !self.dirs.exists(id) {
                    return Ok(None);
                }
                break id;
            }
            checked -= 1;
        };
        for i in checked..components.len() {
            let key = &components[..=i];
            let name = &components[i];
            let shown = format!("/{}", key.join("/"));
            let parent = self
                .dirs
                .fd(current)
                .map_err(|e| Refusal(format!("cannot open the parent of {shown} again: {e}")))?;
            match fsx::lstat(&*parent, name) {
                Ok(Some(st)) if fsx::file_type(&st) == FileType::Directory => {}
                Ok(Some(st)) => {
                    return Err(Refusal(format!(
                        "parent {shown} is a {}, not a directory; refusing to follow or replace it",
                        kind_name(fsx::file_type(&st))
                    )));
                }
                Ok(None) => {
                    if self.dry_run {
                        self.check_in(key, None);
                        return Ok(None);
                    }
                    let in_home = matches!(home_len, Some(n) if i + 1 >= n);
                    let (mode, owner) = match (in_home, home) {
                        (true, Some(h)) => (0o700, Some((h.uid, h.gid))),
                        _ => (0o755, None),
                    };
                    self.mkdir(current, &parent, name, mode, owner)
                        .map_err(|e| Refusal(format!("cannot create {shown}: {e}")))?;
                }
                Err(e) => return Err(Refusal(format!("cannot inspect {shown}: {e}"))),
            }
            let fd = fsx::open_dir(&*parent, name).map_err(|e| {
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
            current = self.check_in(key, Some(fd));
        }
        Ok(Some(current))
    }

    /// Remember a checked directory (`None`: absent, dry run), sweeping it
    /// of stale temporary files: every directory a run writes into is
    /// checked in here, once, before anything of this run is staged there.
    fn check_in(&mut self, components: &[String], fd: Option<OwnedFd>) -> DirId {
        if !self.dry_run
            && let Some(fd) = &fd
        {
            let removed = fsx::remove_stale_temps(fd);
            if removed > 0 {
                self.notes.push(format!(
                    "removed {removed} stale temporary file(s) from an interrupted run in /{}",
                    components.join("/")
                ));
            }
        }
        self.dirs.insert(components, fd)
    }

    /// Create a directory (recorded for rollback), then give it its owner
    /// before anything is put inside.
    fn mkdir(
        &mut self,
        parent_id: DirId,
        parent: &OwnedFd,
        name: &str,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(mode))?;
        self.created_dirs.push((parent_id, name.to_owned()));
        cleanup::register_created_dir_below(&self.dirs.root, self.dirs.components(parent_id), name);
        let fd = fsx::open_dir(parent, name)?;
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
        let mut touched: Vec<DirId> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for s in std::mem::take(&mut self.staged) {
            if seen.insert(s.dir) {
                touched.push(s.dir);
            }
            let result = match self.dirs.fd(s.dir) {
                Ok(dir) => commit_file(&dir, &s)
                    .inspect_err(|_| {
                        let _ = rustix::fs::unlinkat(&*dir, s.tmp_name.as_str(), AtFlags::empty());
                    })
                    .map_err(|e| format!("cannot put into place: {e}")),
                Err(e) => Err(format!(
                    "its directory /{} was moved, removed or replaced since staging ({e}); nothing was written there, restore again",
                    self.dirs.components(s.dir).join("/")
                )),
            };
            match result {
                Ok(st) => {
                    let dest = self.reports[s.report].destination.clone();
                    self.records.insert(dest, FileRecord::of(&st));
                }
                Err(reason) => {
                    let r = &mut self.reports[s.report];
                    r.outcome = Outcome::Failed;
                    r.reason = Some(reason);
                }
            }
        }
        // Reverse order: children before parents, so that a parent made
        // read-only does not block a child's metadata change.
        for d in std::mem::take(&mut self.dir_fixes).into_iter().rev() {
            if seen.insert(d.dir) {
                touched.push(d.dir);
            }
            let result = self.dirs.fd(d.dir).and_then(|fd| {
                chown(&*fd, d.uid, d.gid)?;
                Ok(rustix::fs::fchmod(&*fd, Mode::from_raw_mode(d.mode))?)
            });
            if let Err(e) = result {
                let r = &mut self.reports[d.report];
                r.outcome = Outcome::Failed;
                r.reason = Some(format!("cannot set mode and owner: {e}"));
            }
        }
        // Make the owners, modes, renames and new directories durable: once
        // per filesystem, not once per file and directory.
        if let Err((id, e)) = self.sync_filesystems(&touched, true) {
            self.notes.push(format!(
                "the restored files are in place but could not be flushed to disk ({e}, on the filesystem of /{}); run `sync` and check the disk before the next power loss",
                self.dirs.components(id).join("/")
            ));
        }
        self.created_dirs.clear();
        self.dirs.close_all();
        cleanup::forget_staging();
    }

    /// Make every staged file's contents durable before any of them is
    /// renamed over its destination, so that a power loss after a rename
    /// can never leave an empty or partial file in its place. One `syncfs`
    /// per filesystem written to, not an `fsync` per file: at boot on a
    /// real disk those add up to a noticeable wait. A directory that can no
    /// longer be found is skipped here; its entries fail at the commit.
    fn flush_staged(&mut self) -> Result<(), Error> {
        let dirs: Vec<DirId> = self.staged.iter().map(|s| s.dir).collect();
        self.sync_filesystems(&dirs, false)
            .map_err(|(id, source)| Error::Stage {
                path: format!("/{}", self.dirs.components(id).join("/")),
                source,
            })
    }

    /// `syncfs` once for each filesystem holding one of `dirs`. With
    /// `strict`, a directory that cannot be opened again is an error too.
    fn sync_filesystems(&mut self, dirs: &[DirId], strict: bool) -> Result<(), (DirId, io::Error)> {
        let mut seen = std::collections::HashSet::new();
        let mut devices = std::collections::HashSet::new();
        for &id in dirs {
            if !seen.insert(id) {
                continue;
            }
            let fd = match self.dirs.fd(id) {
                Ok(fd) => fd,
                Err(_) if !strict => continue,
                Err(e) => return Err((id, e)),
            };
            let st = rustix::fs::fstat(&*fd).map_err(|e| (id, e.into()))?;
            if devices.insert(st.st_dev) {
                rustix::fs::syncfs(&*fd).map_err(|e| (id, e.into()))?;
            }
        }
        Ok(())
    }

    /// Remove every temporary file and every directory this run created.
    fn rollback(&mut self) {
        for s in std::mem::take(&mut self.staged).into_iter().rev() {
            if let Ok(dir) = self.dirs.fd(s.dir) {
                let _ = rustix::fs::unlinkat(&*dir, s.tmp_name.as_str(), AtFlags::empty());
            }
        }
        self.dir_fixes.clear();
        // Children before parents: each parent still exists when its child
        // is removed.
        for (parent, name) in std::mem::take(&mut self.created_dirs).into_iter().rev() {
            if let Ok(dir) = self.dirs.fd(parent) {
                let _ = rustix::fs::unlinkat(&*dir, name.as_str(), AtFlags::REMOVEDIR);
            }
        }
        self.dirs.close_all();
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
        if let Err(e) = state::save(&self.dirs.root, &state) {
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
/// (made durable by the commit). The temporary name is ours (created `O_EXCL` in
/// a directory opened without following symlinks), and every call here
/// refuses to follow a symlink anyway.
fn commit_file(dir: &OwnedFd, s: &Staged) -> io::Result<rustix::fs::Stat> {
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
    // Made durable with everything else, after all renames (commit).
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
