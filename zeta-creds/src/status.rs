//! `status`: is the blob still fresh? The state record against the disk,
//! with no passphrase.
//!
//! The restore's state record ([`crate::state`]) holds the size, mtime,
//! ctime and inode of every file it left in place, each exactly as the
//! blob holds it. A file whose metadata still matches is what the blob
//! carries; one whose metadata moved was rewritten since (a tool refreshed
//! its login: an OAuth refresh token that rotates on every use is dead in
//! the blob from then on). Nothing here reads a file's contents or hashes
//! a secret: a change is seen in metadata alone, as the restore itself
//! tells "changed locally" from "still what zeta-creds wrote".
//!
//! The core, [`compare`] and [`report`], is pure: what the record says and
//! what was observed in, one state per file out. [`observe`] is the only
//! I/O: an `lstat` through directory descriptors opened one component at
//! a time without following a symlink, so a symlink planted over a
//! recorded file (or over a directory above it) is reported, never
//! followed.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::os::fd::AsFd;

use rustix::fs::FileType;
use rustix::io::Errno;
use serde::{Serialize, Serializer};

use crate::fsx;
use crate::state::FileRecord;

/// What is at a recorded path now, as [`observe`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// Nothing: the file or a directory above it is gone.
    Absent,
    /// A regular file, with its metadata now.
    File(FileRecord),
    /// Something else than a regular file (`lstat`: a symlink, a
    /// directory, a fifo, ...), named as [`fsx::kind_name`] does.
    NotAFile(&'static str),
    /// A directory above it is now a symlink or not a directory; not
    /// followed.
    ParentNotDir,
    /// Its metadata cannot be read (why).
    Unreadable(String),
}

/// One way a file differs from its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// Its size (bytes), recorded and now.
    Size {
        /// In the record.
        recorded: u64,
        /// On disk.
        now: u64,
    },
    /// Its modification time.
    Mtime,
    /// Its inode: the file was replaced (a new file renamed over it).
    Inode,
    /// Its status-change time (a write, chmod, chown or link; no user can
    /// set it back).
    Ctime,
    /// It is no longer a regular file (what it is now).
    Kind(&'static str),
    /// A directory above it is now a symlink or not a directory.
    ParentNotDir,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Size { recorded, now } => write!(f, "size {recorded} -> {now} bytes"),
            Difference::Mtime => f.write_str("mtime"),
            Difference::Inode => f.write_str("inode"),
            Difference::Ctime => f.write_str("ctime"),
            Difference::Kind("symlink") => f.write_str("now a symlink, not followed"),
            Difference::Kind(kind) => write!(f, "now a {kind}"),
            Difference::ParentNotDir => f.write_str(
                "a directory above it is now a symlink or not a directory, not followed",
            ),
        }
    }
}

/// JSON: the same words as the text.
impl Serialize for Difference {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum FileState {
    /// As the last restore left it: what the blob carries.
    Unchanged,
    /// Rewritten, replaced or changed in kind since the last restore.
    Changed {
        /// How, in the order size, mtime, inode, ctime (or its kind).
        what: Vec<Difference>,
    },
    /// Gone from the disk.
    Vanished,
    /// Picked by the manifest but not in the record: the blob does not
    /// carry it.
    New,
    /// Its metadata could not be read: fresh or not is unknown.
    Unreadable {
        /// Why.
        reason: String,
    },
}

impl FileState {
    /// The word for this state, as the text and the counts use it.
    pub fn word(&self) -> &'static str {
        match self {
            FileState::Unchanged => "unchanged",
            FileState::Changed { .. } => "changed",
            FileState::Vanished => "vanished",
            FileState::New => "new",
            FileState::Unreadable { .. } => "unreadable",
        }
    }
}

/// One file and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileStatus {
    /// Its path on the system (`/home/zeta/.config/gh/hosts.yml`), as the
    /// record keys it.
    pub path: String,
    /// What became of it.
    #[serde(flatten)]
    pub state: FileState,
}

/// How many files are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// As the last restore left them.
    pub unchanged: usize,
    /// Changed since.
    pub changed: usize,
    /// Gone.
    pub vanished: usize,
    /// Picked now, not carried.
    pub new: usize,
    /// Not checkable.
    pub unreadable: usize,
}

/// Every recorded file, then every new one, each with its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// How many of each.
    pub counts: Counts,
    /// In path order: the recorded files and the new ones together.
    pub files: Vec<FileStatus>,
}

impl Report {
    /// Whether the disk still holds exactly what the blob carries: nothing
    /// changed, vanished, new or unreadable.
    pub fn is_fresh(&self) -> bool {
        self.counts.unchanged == self.files.len()
    }
}

/// The state of one recorded file, given what is at its path now. The
/// record is taken whole, as the restore takes it: any of size, mtime,
/// inode or ctime moved means the file is no longer the one it wrote.
pub fn compare(recorded: &FileRecord, observed: &Observed) -> FileState {
    let now = match observed {
        Observed::Absent => return FileState::Vanished,
        Observed::File(now) => now,
        Observed::NotAFile(kind) => {
            return FileState::Changed {
                what: vec![Difference::Kind(kind)],
            };
        }
        Observed::ParentNotDir => {
            return FileState::Changed {
                what: vec![Difference::ParentNotDir],
            };
        }
        Observed::Unreadable(reason) => {
            return FileState::Unreadable {
                reason: reason.clone(),
            };
        }
    };
    let mut what = Vec::new();
    if now.size != recorded.size {
        what.push(Difference::Size {
            recorded: recorded.size,
            now: now.size,
        });
    }
    if (now.mtime, now.mtime_nsec) != (recorded.mtime, recorded.mtime_nsec) {
        what.push(Difference::Mtime);
    }
    if now.ino != recorded.ino {
        what.push(Difference::Inode);
    }
    if (now.ctime, now.ctime_nsec) != (recorded.ctime, recorded.ctime_nsec) {
        what.push(Difference::Ctime);
    }
    if what.is_empty() {
        FileState::Unchanged
    } else {
        FileState::Changed { what }
    }
}

/// The whole comparison: each recorded file against what `observe` finds
/// at its path, and each `picked` path the record does not know as new.
/// `observe` is called once per recorded file, in path order.
pub fn report(
    recorded: &BTreeMap<String, FileRecord>,
    mut observe: impl FnMut(&str) -> Observed,
    picked: &BTreeSet<String>,
) -> Report {
    let mut files: Vec<FileStatus> = recorded
        .iter()
        .map(|(path, record)| FileStatus {
            path: path.clone(),
            state: compare(record, &observe(path)),
        })
        .collect();
    files.extend(
        picked
            .iter()
            .filter(|p| !recorded.contains_key(*p))
            .map(|p| FileStatus {
                path: p.clone(),
                state: FileState::New,
            }),
    );
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut counts = Counts::default();
    for f in &files {
        *match f.state {
            FileState::Unchanged => &mut counts.unchanged,
            FileState::Changed { .. } => &mut counts.changed,
            FileState::Vanished => &mut counts.vanished,
            FileState::New => &mut counts.new,
            FileState::Unreadable { .. } => &mut counts.unreadable,
        } += 1;
    }
    Report { counts, files }
}

/// What is at `path` (absolute, as the record keys it) below `root` now:
/// each directory on the way opened without following a symlink, then an
/// `lstat` of the last component. Reads no contents.
pub fn observe(root: impl AsFd, path: &str) -> Observed {
    let components = fsx::components(path);
    // The record is root's, but a path that could climb out of the root
    // is not looked at.
    let Some((name, parents)) = components.split_last() else {
        return Observed::Unreadable("an empty path in the state record".into());
    };
    if components.iter().any(|c| *c == "." || *c == "..") {
        return Observed::Unreadable("a path with . or .. in the state record".into());
    }
    let dir = match fsx::open_dir_path(root, parents) {
        Ok(dir) => dir,
        Err(e) => return observed_error(&e, true),
    };
    match fsx::lstat(&dir, name) {
        Ok(None) => Observed::Absent,
        Ok(Some(st)) => match fsx::file_type(&st) {
            FileType::RegularFile => Observed::File(FileRecord::of(&st)),
            other => Observed::NotAFile(fsx::kind_name(other)),
        },
        Err(e) => observed_error(&e, false),
    }
}

/// An error on the way to a recorded file, as an observation. `ELOOP` and
/// `ENOTDIR` on a directory mean a symlink or a file where a directory
/// was: refused by `O_NOFOLLOW | O_DIRECTORY`, so never followed.
fn observed_error(e: &io::Error, opening_parents: bool) -> Observed {
    match Errno::from_io_error(e) {
        Some(Errno::NOENT) => Observed::Absent,
        Some(Errno::LOOP | Errno::NOTDIR) if opening_parents => Observed::ParentNotDir,
        _ => Observed::Unreadable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(size: u64, mtime: i64, ino: u64, ctime: i64) -> FileRecord {
        FileRecord {
            size,
            mtime,
            mtime_nsec: 0,
            ctime,
            ctime_nsec: 0,
            ino,
        }
    }

    #[test]
    fn identical_metadata_is_unchanged() {
        let r = rec(10, 100, 7, 200);
        assert_eq!(compare(&r, &Observed::File(r)), FileState::Unchanged);
    }

    #[test]
    fn each_field_is_a_change_of_its_own_in_a_fixed_order() {
        let r = rec(10, 100, 7, 200);
        let changed = |now: FileRecord| match compare(&r, &Observed::File(now)) {
            FileState::Changed { what } => what,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            changed(rec(12, 100, 7, 200)),
            [Difference::Size {
                recorded: 10,
                now: 12
            }]
        );
        assert_eq!(changed(rec(10, 101, 7, 200)), [Difference::Mtime]);
        assert_eq!(changed(rec(10, 100, 8, 200)), [Difference::Inode]);
        // A rewrite that put the mtime back: only the ctime tells.
        assert_eq!(changed(rec(10, 100, 7, 201)), [Difference::Ctime]);
        let mut nsec = r;
        nsec.mtime_nsec = 1;
        assert_eq!(changed(nsec), [Difference::Mtime]);
        let mut nsec = r;
        nsec.ctime_nsec = 1;
        assert_eq!(changed(nsec), [Difference::Ctime]);
        assert_eq!(
            changed(rec(3, 1, 2, 3)),
            [
                Difference::Size {
                    recorded: 10,
                    now: 3
                },
                Difference::Mtime,
                Difference::Inode,
                Difference::Ctime
            ]
        );
    }

    #[test]
    fn gone_replaced_by_another_kind_or_unreadable() {
        let r = rec(10, 100, 7, 200);
        assert_eq!(compare(&r, &Observed::Absent), FileState::Vanished);
        assert_eq!(
            compare(&r, &Observed::NotAFile("symlink")),
            FileState::Changed {
                what: vec![Difference::Kind("symlink")]
            }
        );
        assert_eq!(
            compare(&r, &Observed::ParentNotDir),
            FileState::Changed {
                what: vec![Difference::ParentNotDir]
            }
        );
        assert_eq!(
            compare(&r, &Observed::Unreadable("EACCES".into())),
            FileState::Unreadable {
                reason: "EACCES".into()
            }
        );
    }

    #[test]
    fn differences_read_as_words() {
        let words: Vec<String> = [
            Difference::Size {
                recorded: 1,
                now: 2,
            },
            Difference::Mtime,
            Difference::Inode,
            Difference::Ctime,
            Difference::Kind("symlink"),
            Difference::Kind("directory"),
            Difference::ParentNotDir,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            words,
            [
                "size 1 -> 2 bytes",
                "mtime",
                "inode",
                "ctime",
                "now a symlink, not followed",
                "now a directory",
                "a directory above it is now a symlink or not a directory, not followed"
            ]
        );
    }

    #[test]
    fn report_merges_recorded_and_new_in_path_order_and_counts() {
        let mut recorded = BTreeMap::new();
        recorded.insert("/a".to_owned(), rec(1, 1, 1, 1));
        recorded.insert("/c".to_owned(), rec(1, 1, 2, 1));
        recorded.insert("/e".to_owned(), rec(1, 1, 3, 1));
        // "/c" is picked and recorded: compared, not new.
        let picked: BTreeSet<String> = ["/b", "/c"].map(String::from).into();
        let mut asked = Vec::new();
        let r = report(
            &recorded,
            |p| {
                asked.push(p.to_owned());
                match p {
                    "/a" => Observed::File(rec(1, 1, 1, 1)),
                    "/c" => Observed::File(rec(2, 1, 2, 1)),
                    _ => Observed::Absent,
                }
            },
            &picked,
        );
        assert_eq!(asked, ["/a", "/c", "/e"], "each recorded file, once");
        let states: Vec<(&str, &str)> = r
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.state.word()))
            .collect();
        assert_eq!(
            states,
            [
                ("/a", "unchanged"),
                ("/b", "new"),
                ("/c", "changed"),
                ("/e", "vanished")
            ]
        );
        assert_eq!(
            r.counts,
            Counts {
                unchanged: 1,
                changed: 1,
                vanished: 1,
                new: 1,
                unreadable: 0
            }
        );
        assert!(!r.is_fresh());
    }

    #[test]
    fn fresh_only_when_every_file_is_unchanged() {
        let mut recorded = BTreeMap::new();
        recorded.insert("/a".to_owned(), rec(1, 1, 1, 1));
        let none = BTreeSet::new();
        let fresh = report(&recorded, |_| Observed::File(rec(1, 1, 1, 1)), &none);
        assert!(fresh.is_fresh());
        let unknown = report(&recorded, |_| Observed::Unreadable("x".into()), &none);
        assert!(!unknown.is_fresh(), "unknown is not fresh");
        assert_eq!(unknown.counts.unreadable, 1);
        let empty = report(&BTreeMap::new(), |_| unreachable!(), &none);
        assert!(empty.is_fresh(), "an empty record has nothing stale");
    }

    #[test]
    fn observe_never_follows_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        std::fs::create_dir_all(p.join("home/zeta/.config")).unwrap();
        std::fs::write(p.join("home/zeta/.config/f"), b"abc").unwrap();
        std::fs::write(p.join("secret"), b"elsewhere").unwrap();
        std::os::unix::fs::symlink(p.join("secret"), p.join("home/zeta/link")).unwrap();
        std::os::unix::fs::symlink(p.join("home/zeta/.config"), p.join("home/zeta/dirlink"))
            .unwrap();
        let root = fsx::open_root(p).unwrap();
        match observe(&root, "/home/zeta/.config/f") {
            Observed::File(r) => assert_eq!(r.size, 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            observe(&root, "/home/zeta/link"),
            Observed::NotAFile("symlink")
        );
        assert_eq!(
            observe(&root, "/home/zeta/dirlink/f"),
            Observed::ParentNotDir
        );
        assert_eq!(
            observe(&root, "/home/zeta/.config/f/under-a-file"),
            Observed::ParentNotDir
        );
        assert_eq!(
            observe(&root, "/home/zeta/.config"),
            Observed::NotAFile("directory")
        );
        assert_eq!(observe(&root, "/home/zeta/gone"), Observed::Absent);
        assert_eq!(observe(&root, "/nowhere/at/all"), Observed::Absent);
        assert!(matches!(
            observe(&root, "/home/zeta/../../secret"),
            Observed::Unreadable(_)
        ));
    }
}
