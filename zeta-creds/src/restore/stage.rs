//! Staging: walk to each destination without following a symlink, create
//! missing parents, and write each file's bytes to a temporary file beside
//! its destination. Nothing here replaces a destination; that is the
//! commit's ([`super::commit`]).
//!
//! In a dry run this module only looks: the walk creates nothing and sweeps
//! nothing, and no body is written (the plan is the whole dry run).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{FileType, Mode};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use super::plan::{self, Action, Found, Owners};
use super::{DirFix, Error, Home, Outcome, Refusal, Run, Staged};
use crate::envelope::{EntryKind, EntryMeta, EntryReader};
use crate::passwd::Accounts;
use crate::state::FileRecord;
use crate::{cleanup, fsx};

/// A directory below the target root that this run has checked, by index.
pub(super) type DirId = usize;

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
pub(super) struct Dirs {
    pub(super) root: Arc<OwnedFd>,
    /// Every directory checked (and, unless dry-running, created) so far.
    ids: HashMap<Vec<String>, DirId>,
    /// By id: its components, and the identity (device, inode) of the
    /// directory checked there (`None`: not there yet, dry run only).
    known: Vec<(Vec<String>, Option<Identity>)>,
    /// At most [`OPEN_DIRS`] open descriptors.
    open: HashMap<DirId, Arc<OwnedFd>>,
}

impl Dirs {
    /// The root itself is [`Dirs::ROOT`].
    pub(super) const ROOT: DirId = 0;

    pub(super) fn new(root: OwnedFd) -> Dirs {
        Dirs {
            root: Arc::new(root),
            ids: HashMap::from([(Vec::new(), Dirs::ROOT)]),
            known: vec![(Vec::new(), None)],
            open: HashMap::new(),
        }
    }

    pub(super) fn id(&self, components: &[String]) -> Option<DirId> {
        self.ids.get(components).copied()
    }

    pub(super) fn exists(&self, id: DirId) -> bool {
        id == Dirs::ROOT || self.known[id].1.is_some()
    }

    pub(super) fn components(&self, id: DirId) -> &[String] {
        &self.known[id].0
    }

    /// Remember a checked directory (with its descriptor if it exists),
    /// and its identity: opened again later, it must be the same one.
    pub(super) fn insert(
        &mut self,
        components: &[String],
        fd: Option<OwnedFd>,
    ) -> io::Result<DirId> {
        let identity = match &fd {
            Some(fd) => Some(Identity::of(&rustix::fs::fstat(fd)?)),
            None => None,
        };
        let id = self.known.len();
        self.known.push((components.to_vec(), identity));
        self.ids.insert(components.to_vec(), id);
        if let Some(fd) = fd {
            self.keep_open(id, Arc::new(fd));
        }
        Ok(id)
    }

    pub(super) fn keep_open(&mut self, id: DirId, fd: Arc<OwnedFd>) {
        if self.open.len() >= OPEN_DIRS {
            // Runs touch directories in stream order, so forgetting all of
            // them at once costs little and keeps this simple.
            self.open.clear();
        }
        self.open.insert(id, fd);
    }

    /// The descriptor of a checked directory, opened again without
    /// following symlinks if it was let go, and refused unless it is the
    /// very directory checked before (device and inode): one moved away
    /// and replaced by another fails its entries.
    pub(super) fn fd(&mut self, id: DirId) -> io::Result<Arc<OwnedFd>> {
        if id == Dirs::ROOT {
            return Ok(Arc::clone(&self.root));
        }
        if let Some(fd) = self.open.get(&id) {
            return Ok(Arc::clone(fd));
        }
        let components: Vec<&str> = self.known[id].0.iter().map(String::as_str).collect();
        let fd = fsx::open_dir_path(&*self.root, &components)?;
        let now = Identity::of(&rustix::fs::fstat(&fd)?);
        if self.known[id].1 != Some(now) {
            return Err(io::Error::other(
                "it is another directory than the one checked (replaced since)",
            ));
        }
        let fd = Arc::new(fd);
        self.keep_open(id, Arc::clone(&fd));
        Ok(fd)
    }

    /// Let every descriptor go (the root's excepted).
    pub(super) fn close_all(&mut self) {
        self.open.clear();
    }
}

impl Run {
    /// Plan every entry and, unless dry-running, stage it. Every body is
    /// read to its end, refused entries' too, so the whole payload is
    /// verified before anything is committed.
    pub(super) fn stage_all<R: Read>(
        &mut self,
        entries: &mut EntryReader<R>,
        accounts: &Accounts,
        home: &Result<Home, String>,
    ) -> Result<(), Error> {
        while let Some(meta) = entries.next_entry()? {
            let destination = plan::destination(&meta, home);
            let index = self.reports.len();
            self.reports.push(super::EntryReport {
                entry: meta.display_path(),
                destination: format!("/{}", destination.join("/")),
                kind: match meta.kind {
                    EntryKind::File => "file",
                    EntryKind::Dir => "dir",
                },
                outcome: Outcome::Failed,
                reason: None,
            });
            let outcome = match self
                .policy
                .check(&meta)
                .and_then(|()| plan::owners(&meta, home, accounts))
            {
                Err(r) => Err(r),
                Ok((home, owners)) => {
                    if let Err(first) =
                        self.policy
                            .claim(&destination, meta.kind, &self.reports[index].entry)
                    {
                        return Err(Error::Conflict {
                            first,
                            second: self.reports[index].entry.clone(),
                            destination: self.reports[index].destination.clone(),
                        });
                    }
                    self.entry(entries, &meta, home, owners, &destination, index)?
                }
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

    /// Look at one entry's destination, plan it, and stage what the plan
    /// writes. The outer error aborts the restore; the inner one refuses
    /// this entry only.
    fn entry<R: Read>(
        &mut self,
        entries: &mut EntryReader<R>,
        meta: &EntryMeta,
        home: Option<&Home>,
        owners: Owners,
        destination: &[String],
        index: usize,
    ) -> Result<Result<Outcome, Refusal>, Error> {
        let (name, parents) = destination.split_last().expect("entry paths are non-empty");
        let parent = match self.parent_dir(parents, home) {
            Ok(d) => d,
            Err(r) => return Ok(Err(r)),
        };
        let display = self.reports[index].destination.clone();
        // `None`: a dry run below a directory that does not exist yet.
        let (dir, (found, seen)) = match parent {
            None => (None, (Found::Absent, None)),
            Some(parent) => {
                let dir = match self.dirs.fd(parent) {
                    Ok(fd) => fd,
                    Err(e) => {
                        return Ok(Err(Refusal(format!(
                            "cannot open its directory again: {e}"
                        ))));
                    }
                };
                // Whatever is there may change under us (a local user
                // owns the directory): a surprise refuses this entry only.
                let found = match self.observe(&dir, name, meta, owners) {
                    Ok(observed) => observed,
                    Err(e) => return Ok(Err(Refusal(format!("cannot inspect it: {e}")))),
                };
                (Some((parent, dir)), found)
            }
        };
        let recorded = self.old_state.files.get(&display).copied();
        let action = plan::action(meta, owners, &found, recorded, self.on_conflict);
        let outcome = action.outcome();
        match action {
            Action::Refuse(why) => Ok(Err(Refusal(why))),
            Action::Unchanged(record) | Action::Kept(record) => {
                if meta.kind == EntryKind::File {
                    entries.skip_body()?;
                }
                if let Some(r) = record {
                    self.records.insert(display, r);
                }
                if outcome == Outcome::Kept {
                    self.reports[index].reason = Some(plan::KEPT_REASON.into());
                }
                // Only a successfully opened directory is remembered; one
                // remembered as absent means "not there yet" (dry run).
                if meta.kind == EntryKind::Dir
                    && self.dirs.id(destination).is_none()
                    && let Some((_, dir)) = &dir
                    && let Ok(fd) = fsx::open_dir(&**dir, name)
                    && let Err(e) = self.check_in(destination, Some(fd))
                {
                    return Ok(Err(Refusal(format!("cannot inspect it: {e}"))));
                }
                Ok(Ok(outcome))
            }
            _ if self.dry_run => {
                if meta.kind == EntryKind::File {
                    entries.skip_body()?;
                }
                Ok(Ok(outcome))
            }
            Action::FixDir { created } => {
                let (parent, dir) = dir.expect("a real run creates every parent");
                if created && let Err(e) = self.mkdir(parent, &dir, name, 0o700, None) {
                    return Ok(Err(Refusal(format!("cannot create the directory: {e}"))));
                }
                let id = match self.dirs.id(destination) {
                    Some(id) => id,
                    // Replaced by something else since it was looked at
                    // (a file, a symlink): this entry only.
                    None => match fsx::open_dir(&*dir, name)
                        .and_then(|fd| self.check_in(destination, Some(fd)))
                    {
                        Ok(id) => id,
                        Err(e) => {
                            return Ok(Err(Refusal(format!(
                                "cannot open the directory: {e} (changed since it was looked at?)"
                            ))));
                        }
                    },
                };
                self.dir_fixes.push(DirFix {
                    report: index,
                    dir: id,
                    mode: meta.mode,
                    owners,
                });
                Ok(Ok(outcome))
            }
            Action::WriteFile { backup, .. } => {
                let (parent, dir) = dir.expect("a real run creates every parent");
                let staged = |tmp: cleanup::Guard, tmp_name: String, identity: Identity| Staged {
                    report: index,
                    dir: parent,
                    tmp: Some(tmp),
                    tmp_name,
                    identity,
                    final_name: name.clone(),
                    mode: meta.mode,
                    owners,
                    mtime: meta.mtime,
                    // The file a backup keeps is the one looked at here.
                    backup: if backup { seen } else { None },
                };
                Ok(self
                    .stage_file(entries, &dir, parent, staged)?
                    .map(|()| outcome))
            }
        }
    }

    /// What is at `name` in `dir` now, hashed only if the plan needs it,
    /// and its identity.
    fn observe(
        &mut self,
        dir: &OwnedFd,
        name: &str,
        meta: &EntryMeta,
        owners: Owners,
    ) -> io::Result<(Found, Option<Identity>)> {
        let Some(st) = fsx::lstat(dir, name)? else {
            return Ok((Found::Absent, None));
        };
        crate::msg::test_fault("pause-after-observe");
        let kind = fsx::file_type(&st);
        let mode = st.st_mode & 0o7777;
        let seen = Owners {
            uid: st.st_uid,
            gid: st.st_gid,
        };
        let size = st.st_size as u64;
        let same_contents = plan::needs_contents(meta, owners, kind, mode, seen, size)
            && same_contents(dir, name, &st, &meta.sha256, &mut self.buf)?;
        let found = Found::Present {
            kind,
            mode,
            owners: seen,
            size,
            record: FileRecord::of(&st),
            same_contents,
        };
        Ok((found, Some(Identity::of(&st))))
    }

    /// Write an entry's body to a fresh temporary file in `dir`, guarded
    /// from the moment it exists. A file that cannot be staged here
    /// (read-only or full filesystem, immutable directory) refuses this
    /// entry only; its body is still read to the end, so the stream stays
    /// in step and is still verified.
    fn stage_file<R: Read>(
        &mut self,
        entries: &mut EntryReader<R>,
        dir: &OwnedFd,
        dir_id: DirId,
        staged: impl FnOnce(cleanup::Guard, String, Identity) -> Staged,
    ) -> Result<Result<(), Refusal>, Error> {
        let (tmp_name, fd) = match fsx::create_temp(dir) {
            Ok(t) => t,
            Err(e) => {
                return Ok(Err(Refusal(format!(
                    "cannot create a temporary file in its directory: {e}"
                ))));
            }
        };
        let guard =
            cleanup::Guard::temp_file(&self.dirs.root, self.dirs.components(dir_id), &tmp_name);
        // What the commit checks the temporary name still leads to.
        let identity = match rustix::fs::fstat(&fd) {
            Ok(st) => Identity::of(&st),
            Err(e) => {
                drop(guard);
                return Ok(Err(Refusal(format!(
                    "cannot inspect its temporary file: {e}"
                ))));
            }
        };
        let staged = staged(guard, tmp_name, identity);
        let mut file = File::from(fd);
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
        // Made durable with every other staged file, in one `syncfs` per
        // filesystem before the commit (flush_staged). Closed now: a large
        // restore must not hold one descriptor per file until the commit.
        drop(file);
        if let Some(e) = write_error {
            // Its guard removes the temporary file.
            return Ok(Err(Refusal(format!("cannot write it: {e}"))));
        }
        self.staged.push(staged);
        Ok(Ok(()))
    }

    /// Walk to the parent directory given by `components` below the root,
    /// never following a symlink, creating missing directories unless
    /// dry-running: at or below the home owned by the user, mode 0700;
    /// elsewhere by root, mode 0755. `None`: it does not exist yet (dry
    /// run only).
    fn parent_dir(
        &mut self,
        components: &[String],
        home: Option<&Home>,
    ) -> Result<Option<DirId>, Refusal> {
        let home_len = home.map(|h| h.components.len());
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
                        fsx::kind_name(fsx::file_type(&st))
                    )));
                }
                Ok(None) => {
                    if self.dry_run {
                        self.check_in(key, None)
                            .map_err(|e| Refusal(format!("cannot inspect {shown}: {e}")))?;
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
            current = self
                .check_in(key, Some(fd))
                .map_err(|e| Refusal(format!("cannot inspect {shown}: {e}")))?;
        }
        Ok(Some(current))
    }

    /// Remember a checked directory (`None`: absent, dry run), sweeping it
    /// of stale temporary files: every directory a run writes into is
    /// checked in here, once, before anything of this run is staged there.
    fn check_in(&mut self, components: &[String], fd: Option<OwnedFd>) -> io::Result<DirId> {
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

    /// Create a directory (guarded until the commit), then give it its
    /// owner before anything is put inside.
    fn mkdir(
        &mut self,
        parent_id: DirId,
        parent: &OwnedFd,
        name: &str,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(mode))?;
        let guard =
            cleanup::Guard::created_dir(&self.dirs.root, self.dirs.components(parent_id), name);
        self.created_dirs.push(guard);
        let fd = fsx::open_dir(parent, name)?;
        if let Some((uid, gid)) = owner {
            chown(&fd, uid, gid)?;
        }
        // The umask may have removed bits; set the exact mode.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        Ok(())
    }
}

/// `fchown` to numeric ids.
pub(super) fn chown(fd: impl AsFd, uid: u32, gid: u32) -> io::Result<()> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )?;
    Ok(())
}

/// What a name must still lead to: the device, inode and type seen (or
/// created) before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Identity {
    dev: u64,
    ino: u64,
    kind: FileType,
}

impl Identity {
    pub(super) fn of(st: &rustix::fs::Stat) -> Identity {
        Identity {
            dev: st.st_dev,
            ino: st.st_ino,
            kind: fsx::file_type(st),
        }
    }
}

/// Open `name` in `dir` for reading without following a symlink and
/// without blocking (a FIFO swapped in opens at once and is then refused),
/// and refuse it unless it is `expected`: the same device, inode and type.
/// Every later operation on it goes through the returned descriptor.
pub(super) fn open_checked(
    dir: impl AsFd,
    name: &str,
    expected: Identity,
) -> io::Result<(OwnedFd, rustix::fs::Stat)> {
    let fd = rustix::fs::openat(
        dir,
        name,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::NONBLOCK
            | rustix::fs::OFlags::NOCTTY
            | rustix::fs::OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    let found = Identity::of(&st);
    if found != expected {
        return Err(io::Error::other(format!(
            "{name} was replaced (now a {}, inode {}; expected a {}, inode {}); refusing to touch it",
            fsx::kind_name(found.kind),
            found.ino,
            fsx::kind_name(expected.kind),
            expected.ino
        )));
    }
    // Blocking from here on: reads of a regular file do not block anyway.
    Ok((fd, st))
}

/// Whether the regular file `name` in `dir`, the one `st` describes, has
/// this SHA-256.
fn same_contents(
    dir: &OwnedFd,
    name: &str,
    st: &rustix::fs::Stat,
    sha256: &[u8; 32],
    buf: &mut [u8],
) -> io::Result<bool> {
    let (fd, _) = open_checked(dir, name, Identity::of(st))?;
    let mut file = File::from(fd);
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
