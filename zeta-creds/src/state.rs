//! The restore's state record: `var/lib/zeta-creds/state.json` under the
//! target root (root, 0600).
//!
//! It lets a restore tell "still exactly what zeta-creds wrote" from
//! "changed since" (the operator rotated a login), the way dpkg tells a
//! conffile the admin edited; and it carries the generation of the last
//! restored blob and of the newest blob sealed from this system
//! ([`State::sealed_blob`]), so a blob older than either is refused
//! (rollback: `BLOB.prev` put back over the blob by someone who can write
//! the ESP).
//!
//! It holds no secret and no hash of a secret: only the size, mtime, ctime
//! and inode of each file a restore wrote, and which blob was restored
//! ([`RestoredBlob`]: a SHA-256 of its header bytes and header MAC, both
//! on the unencrypted ESP for anyone to read, so that `restore --if-new`
//! can tell the blob it last restored without a passphrase). An attacker who reads it learns
//! which paths exist, which `ls -l` shows anyway. The ctime is the strong
//! part: a user cannot set it, and every write, chmod or chown changes it.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use rustix::fs::{Mode, Stat};
use serde::{Deserialize, Serialize};

use crate::cleanup::Guard;
use crate::envelope::Header;
use crate::fsx;

/// Where the record lives, as components below the root.
pub const STATE_DIR: [&str; 3] = ["var", "lib", "zeta-creds"];
/// The record's file name.
pub const STATE_FILE: &str = "state.json";
/// Largest record we read.
const MAX_STATE_SIZE: u64 = 64 << 20;

/// The whole record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format of this file.
    pub version: u32,
    /// Generation of the last blob restored here.
    pub generation: u64,
    /// What the last restore wrote, by destination path (`/home/zeta/...`).
    pub files: BTreeMap<String, FileRecord>,
    /// The blob the last restore wrote from. Absent in records written
    /// before it existed (they load as "no blob known": the next
    /// `restore --if-new` restores and asks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_blob: Option<RestoredBlob>,
    /// The newest blob a bundle sealed from this system (written by
    /// [`State::raised`]); `files` then holds what that bundle sealed.
    /// Absent in records no bundle raised. A restore keeps it as it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_blob: Option<RestoredBlob>,
}

impl State {
    /// The generation below which a blob is a rollback here: the newest
    /// this system has restored or sealed.
    pub fn newest_generation(&self) -> u64 {
        self.sealed_blob
            .as_ref()
            .map_or(self.generation, |b| b.generation.max(self.generation))
    }

    /// The newest blob this system restored or sealed, if the record
    /// names one (the sealed one when both have the same generation: it
    /// was sealed from what is on this disk).
    pub fn newest_blob(&self) -> Option<&RestoredBlob> {
        match (&self.sealed_blob, &self.restored_blob) {
            (Some(s), Some(r)) if r.generation > s.generation => Some(r),
            (Some(s), _) => Some(s),
            (None, r) => r.as_ref(),
        }
    }

    /// This record after a bundle sealed `blob` from this system, with
    /// `files` (by path on this system) as the bundle found them: the
    /// newest sealed blob becomes `blob` (the bundle gave it a generation
    /// above [`State::newest_generation`]), and the files become what that
    /// blob carries, so that `status` compares the disk with the newest
    /// blob. The last restored blob and its generation stay as they were.
    pub fn raised(mut self, blob: RestoredBlob, files: BTreeMap<String, FileRecord>) -> State {
        self.sealed_blob = Some(blob);
        self.version = 1;
        self.files = files;
        self
    }
}

/// Which blob a restore wrote from: enough to recognise it again from its
/// header alone, and to say what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoredBlob {
    /// [`crate::envelope::Header::id`] in lower-case hex: SHA-256 of the
    /// header bytes and the header MAC (public, on the ESP; no secret).
    pub id: String,
    /// Its generation.
    pub generation: u64,
    /// When it was sealed, seconds since the Unix epoch (its header's
    /// `created`).
    pub sealed: u64,
}

impl RestoredBlob {
    /// The record of the blob whose header is `header`. Its generation and
    /// sealed date are the header's as read: record them only once the
    /// header MAC has verified, so that they are authenticated.
    pub fn of(header: &Header) -> RestoredBlob {
        let fields = header.unauthenticated_fields();
        RestoredBlob {
            id: hex(&header.id()),
            generation: fields.generation,
            sealed: fields.created,
        }
    }

    /// Whether `header` is this blob: the same header bytes and MAC.
    /// Unauthenticated, like the header: enough to decide to do nothing,
    /// never to trust anything.
    pub fn is(&self, header: &Header) -> bool {
        self.id == hex(&header.id())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a file looked like right after a restore wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    /// Bytes.
    pub size: u64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: i64,
    /// Status-change time, seconds (no user can set it).
    pub ctime: i64,
    /// Status-change time, nanoseconds.
    pub ctime_nsec: i64,
    /// Inode number.
    pub ino: u64,
}

impl FileRecord {
    /// The record of a file as it is now.
    pub fn of(st: &Stat) -> FileRecord {
        FileRecord {
            size: st.st_size as u64,
            mtime: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec as i64,
            ctime: st.st_ctime,
            ctime_nsec: st.st_ctime_nsec as i64,
            ino: st.st_ino,
        }
    }
}

/// What loading found.
#[derive(Debug)]
pub enum Loaded {
    /// No record: the first restore after an install.
    Absent,
    /// The record as it was saved.
    Present(State),
    /// The record exists but cannot be used; treated as absent, reported.
    Corrupt(String),
}

/// Read the record under `root` (no symlink followed).
pub fn load(root: &OwnedFd) -> Loaded {
    let mut path: Vec<&str> = STATE_DIR.to_vec();
    path.push(STATE_FILE);
    match fsx::read_small_file(root, &path, MAX_STATE_SIZE) {
        Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
            Ok(s) if s.version == 1 => Loaded::Present(s),
            Ok(s) => Loaded::Corrupt(format!("unknown version {}", s.version)),
            Err(e) => Loaded::Corrupt(e.to_string()),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Loaded::Absent,
        Err(e) => Loaded::Corrupt(e.to_string()),
    }
}

/// Write the record atomically: temporary file (0600, held by a
/// [`Guard`] until renamed), fsync, rename, fsync the directory. Creates
/// `var/lib/zeta-creds` (0700) if needed.
pub fn save(root: &Arc<OwnedFd>, state: &State) -> io::Result<()> {
    let mut dir = rustix::io::dup(&**root)?;
    for (i, name) in STATE_DIR.iter().enumerate() {
        match fsx::open_dir(&dir, name) {
            Ok(d) => dir = d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mode = if i + 1 == STATE_DIR.len() {
                    0o700
                } else {
                    0o755
                };
                rustix::fs::mkdirat(&dir, *name, Mode::from_raw_mode(mode))?;
                dir = fsx::open_dir(&dir, name)?;
                rustix::fs::fchmod(&dir, Mode::from_raw_mode(mode))?;
            }
            Err(e) => return Err(e),
        }
    }
    // A run killed while saving (kill -9) leaves its temporary file here,
    // in a directory no entry leads to: sweep it now.
    fsx::remove_stale_temps(&dir);
    let (tmp, fd) = fsx::create_temp(&dir)?;
    let components = STATE_DIR.map(str::to_owned);
    let guard = Guard::temp_file(root, &components, &tmp);
    let mut file = std::fs::File::from(fd);
    let mut json = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    json.push(b'\n');
    file.write_all(&json)?;
    file.sync_all()?;
    drop(file);
    rustix::fs::renameat(&dir, tmp.as_str(), &dir, STATE_FILE)?;
    guard.disarm();
    rustix::fs::fsync(&dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_and_is_private() {
        let t = tempfile::tempdir().unwrap();
        let root = Arc::new(fsx::open_root(t.path()).unwrap());
        assert!(matches!(load(&root), Loaded::Absent));
        let mut s = State {
            version: 1,
            generation: 7,
            restored_blob: Some(RestoredBlob {
                id: "ab".repeat(32),
                generation: 7,
                sealed: 1_700_000_000,
            }),
            sealed_blob: Some(RestoredBlob {
                id: "cd".repeat(32),
                generation: 8,
                sealed: 1_700_000_100,
            }),
            ..State::default()
        };
        s.files.insert(
            "/etc/x".into(),
            FileRecord {
                size: 1,
                mtime: 2,
                mtime_nsec: 3,
                ctime: 4,
                ctime_nsec: 5,
                ino: 6,
            },
        );
        save(&root, &s).unwrap();
        match load(&root) {
            Loaded::Present(back) => assert_eq!(back, s),
            other => panic!("{other:?}"),
        }
        use std::os::unix::fs::PermissionsExt;
        let md = std::fs::metadata(t.path().join("var/lib/zeta-creds/state.json")).unwrap();
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(t.path().join("var/lib/zeta-creds/state.json")).unwrap();
        assert!(
            !text.contains("sha"),
            "no content hash in the record: {text}"
        );
    }

    /// A record written before `restored_blob` existed still loads, with
    /// no blob known (issue 17: the record format stays compatible).
    #[test]
    fn a_record_without_the_restored_blob_loads() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("var/lib/zeta-creds")).unwrap();
        std::fs::write(
            t.path().join("var/lib/zeta-creds/state.json"),
            br#"{"version": 1, "generation": 3, "files": {"/etc/x": {"size": 1, "mtime": 2, "mtime_nsec": 0, "ctime": 4, "ctime_nsec": 0, "ino": 6}}}"#,
        )
        .unwrap();
        let root = fsx::open_root(t.path()).unwrap();
        match load(&root) {
            Loaded::Present(s) => {
                assert_eq!(s.generation, 3);
                assert_eq!(s.files.len(), 1);
                assert_eq!(s.restored_blob, None);
            }
            other => panic!("{other:?}"),
        }
    }

    /// The rollback floor is the newer of the restored and the sealed
    /// generation, and the blob shown is the one that has it.
    #[test]
    fn the_newest_of_restored_and_sealed_counts() {
        let blob = |generation, sealed| RestoredBlob {
            id: String::new(),
            generation,
            sealed,
        };
        let mut s = State {
            version: 1,
            generation: 5,
            restored_blob: Some(blob(5, 50)),
            ..State::default()
        };
        assert_eq!(s.newest_generation(), 5);
        assert_eq!(s.newest_blob().map(|b| b.sealed), Some(50));
        s = s.raised(blob(6, 60), BTreeMap::new());
        assert_eq!((s.newest_generation(), s.generation), (6, 5));
        assert_eq!(s.newest_blob().map(|b| b.sealed), Some(60));
        s.generation = 7;
        s.restored_blob = Some(blob(7, 70));
        assert_eq!(s.newest_generation(), 7);
        assert_eq!(s.newest_blob().map(|b| b.sealed), Some(70));
    }

    #[test]
    fn a_corrupt_record_is_reported_not_fatal() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("var/lib/zeta-creds")).unwrap();
        std::fs::write(t.path().join("var/lib/zeta-creds/state.json"), b"{not json").unwrap();
        let root = fsx::open_root(t.path()).unwrap();
        assert!(matches!(load(&root), Loaded::Corrupt(_)));
    }
}
