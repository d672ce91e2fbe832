//! Commit: once the whole payload has authenticated, make the staged files
//! durable, give each its owner, mode and mtime, rename it over its
//! destination, fix directory entries, and write the state record. A
//! failure here affects only its entry, which is reported as failed.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::io;
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, Mode, Timespec, Timestamps};
use rustix::io::Errno;

use super::stage::{DirId, Identity, chown, open_checked};
use super::{BACKUP_SUFFIX, EntryReport, Error, Outcome, Run, Staged};
use crate::state::{self, FileRecord, State};

impl Run {
    /// Put every staged file into place, then fix directory entries.
    pub(super) fn commit(&mut self) {
        let mut touched: Vec<DirId> = Vec::new();
        let mut seen = HashSet::new();
        for s in std::mem::take(&mut self.staged) {
            if seen.insert(s.dir) {
                touched.push(s.dir);
            }
            let (report, dir) = (s.report, s.dir);
            // On failure the staged file's guard removes the temporary file.
            let result = match self.dirs.fd(dir) {
                Ok(fd) => commit_file(&fd, s).map_err(|e| format!("cannot put into place: {e}")),
                Err(e) => Err(format!(
                    "its directory /{} was moved, removed or replaced since staging ({e}); nothing was written there, restore again",
                    self.dirs.components(dir).join("/")
                )),
            };
            match result {
                Ok(st) => {
                    let dest = self.reports[report].destination.clone();
                    self.records.insert(dest, FileRecord::of(&st));
                }
                Err(reason) => {
                    let r = &mut self.reports[report];
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
                chown(&*fd, d.owners.uid, d.owners.gid)?;
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
        // The directories this run created stay.
        for guard in self.created_dirs.drain(..) {
            guard.disarm();
        }
        self.dirs.close_all();
    }

    /// Make every staged file's contents durable before any of them is
    /// renamed over its destination, so that a power loss after a rename
    /// can never leave an empty or partial file in its place. One `syncfs`
    /// per filesystem written to, not an `fsync` per file: at boot on a
    /// real disk those add up to a noticeable wait. A directory that can no
    /// longer be found is skipped here; its entries fail at the commit.
    pub(super) fn flush_staged(&mut self) -> Result<(), Error> {
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
        let mut seen = HashSet::new();
        let mut devices = HashSet::new();
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

    /// Record what this restore left, for the next one. A failure to write
    /// the record is reported as a failed entry: without it, rollback
    /// protection and local-change detection would silently stop working.
    ///
    /// Written whenever the commit ran, also when some entries were refused
    /// (exit 7): the files that were committed have new inodes and ctimes,
    /// and an old record would make the next restore take them for local
    /// changes and keep stale copies. A restore that aborted before its
    /// commit never gets here, so the record is untouched then.
    ///
    /// It names `blob` as the blob last restored only when every entry was
    /// written (or deliberately kept): after exit 7 the next
    /// `restore --if-new` must try again, not skip the entries that failed.
    pub(super) fn save_state(&mut self, generation: u64, blob: Option<state::RestoredBlob>) {
        let complete = self.reports.iter().all(|r| r.outcome != Outcome::Failed);
        let state = State {
            version: 1,
            generation,
            files: std::mem::take(&mut self.records),
            restored_blob: blob.filter(|_| complete),
            // A restore never lowers what this system has sealed.
            sealed_blob: self.old_state.sealed_blob.clone(),
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
}

/// Give a staged file its owner, mode and mtime, then rename it into place
/// (made durable by the commit) and disarm its guard.
///
/// The directory may belong to a local user, who can swap the temporary
/// name for a hard link to a root-owned file, a FIFO or anything else
/// between staging and commit (issue 19 #2). So the name is opened once,
/// without following a symlink and without blocking, and refused unless it
/// is the very file staging created (device, inode, type; one link);
/// owner, mode and mtime are then set through that descriptor, never by
/// name. The rename is by name, relative to the checked directory, so
/// the destination is checked afterwards to be that file too; if it is
/// not, the entry fails and what was renamed is whatever the user put
/// there, in a directory the user could write to anyway.
fn commit_file(dir: &OwnedFd, mut s: Staged) -> io::Result<rustix::fs::Stat> {
    let tmp = s.tmp_name.as_str();
    let (fd, st) = open_checked(dir, tmp, s.identity)?;
    if st.st_nlink != 1 {
        return Err(io::Error::other(format!(
            "{tmp} has {} names, not the one it was created with; refusing to touch it",
            st.st_nlink
        )));
    }
    // Owner before mode: chown clears set-id bits.
    chown(&fd, s.owners.uid, s.owners.gid)?;
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
    if let Some(replaced) = s.backup {
        // A hard link keeps the replaced file (owner, mode, bytes) under
        // NAME.zeta-creds-bak; the destination never stops existing. The
        // link is made from a descriptor of the file planned for, so a
        // name swapped meanwhile can never get a root-made link.
        let (old, _) = open_checked(dir, s.final_name.as_str(), replaced)?;
        let bak = format!("{}{BACKUP_SUFFIX}", s.final_name);
        match rustix::fs::unlinkat(dir, bak.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        rustix::fs::linkat(&old, "", dir, bak.as_str(), AtFlags::EMPTY_PATH)?;
    }
    rustix::fs::renameat(dir, tmp, dir, s.final_name.as_str())?;
    // The temporary name is gone either way.
    if let Some(guard) = s.tmp.take() {
        guard.disarm();
    }
    let placed = rustix::fs::statat(dir, s.final_name.as_str(), AtFlags::SYMLINK_NOFOLLOW)?;
    if Identity::of(&placed) != s.identity {
        return Err(io::Error::other(format!(
            "{} is not the file staged for it after the rename (the temporary file was replaced during the commit); check it by hand",
            s.final_name
        )));
    }
    // Made durable with everything else, after all renames (commit). The
    // record is the file's as it is now, through its descriptor (the
    // rename changed its ctime).
    Ok(rustix::fs::fstat(&fd)?)
}
