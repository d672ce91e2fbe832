//! The rescue directory, and copying one candidate file into it: checked
//! to be a blob by its unauthenticated header, streamed into a temporary
//! file, fsynced, then renamed to a name that says which blob it is.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use sha2::{Digest, Sha256};

use super::{BlobInfo, Error, Outcome};
use crate::envelope::{self, CHUNK_SIZE, Header, TAG_LEN};
use crate::fsx;

/// `statfs` magic of tmpfs (linux/magic.h).
pub const TMPFS_MAGIC: u32 = 0x0102_1994;
/// `statfs` magic of ramfs (linux/magic.h).
pub const RAMFS_MAGIC: u32 = 0x8584_58f6;

/// The directory blobs are rescued into: created 0700, owned by this
/// process's user, on tmpfs or ramfs unless the caller allowed a disk.
#[derive(Debug)]
pub struct RescueDir {
    path: PathBuf,
    fd: OwnedFd,
}

impl RescueDir {
    /// Create `path` (and missing parents, 0700) if needed, open it without
    /// following a symlink, check its owner, make it 0700, and check that it
    /// is in RAM (tmpfs or ramfs) unless `allow_disk`. Temporary files a
    /// killed earlier run left there are removed.
    pub fn prepare(path: &Path, allow_disk: bool) -> Result<RescueDir, Error> {
        let fail = |reason: String| Error::RescueDir {
            dir: path.to_owned(),
            reason,
        };
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| fail(format!("cannot create it: {e}")))?;
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            fail(format!(
                "cannot open it as a directory (a symlink is refused): {e}"
            ))
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| fail(format!("cannot stat it: {e}")))?;
        let me = rustix::process::geteuid().as_raw();
        if st.st_uid != me {
            return Err(fail(format!(
                "it is owned by uid {}, not by uid {me} that runs the rescue",
                st.st_uid
            )));
        }
        if st.st_mode & 0o077 != 0 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))
                .map_err(|e| fail(format!("cannot make it 0700: {e}")))?;
        }
        let magic = fs_magic(&fd).map_err(|e| fail(format!("cannot statfs it: {e}")))?;
        if magic != TMPFS_MAGIC && magic != RAMFS_MAGIC && !allow_disk {
            return Err(Error::NotInRam {
                dir: path.to_owned(),
                fs_magic: magic,
            });
        }
        fsx::remove_stale_temps(&fd);
        Ok(RescueDir {
            path: path.to_owned(),
            fd,
        })
    }

    /// Its path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The filesystem type magic of the filesystem holding `fd`.
fn fs_magic(fd: impl AsFd) -> io::Result<u32> {
    let st = rustix::fs::fstatfs(fd)?;
    // f_type is a C long on most targets; the magics are 32-bit.
    Ok(st.f_type as u32)
}

/// Whether a payload of `len` bytes can be a whole STREAM payload
/// (FORMAT.md §4): one empty final chunk (`TAG_LEN`), or full middle
/// chunks and a final chunk of 1 to `CHUNK_SIZE` plaintext bytes. Any
/// other length was cut short (or padded). A plausible length proves
/// nothing: only `verify`, with the passphrase, shows the blob is whole.
pub fn payload_len_is_plausible(len: u64) -> bool {
    let sealed = (CHUNK_SIZE + TAG_LEN) as u64;
    let rest = len % sealed;
    len == TAG_LEN as u64 || (len > 0 && (rest == 0 || rest > TAG_LEN as u64))
}

/// A temporary file in the rescue directory, unlinked on drop unless it
/// was renamed into place.
struct Temp<'d> {
    dir: &'d OwnedFd,
    name: Option<String>,
    file: File,
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if let Some(name) = &self.name {
            let _ = rustix::fs::unlinkat(self.dir, name.as_str(), AtFlags::empty());
        }
    }
}

/// Reads the source and, as a side effect, writes every byte read into the
/// temporary file and the hash. A write error is kept apart, so a full
/// rescue directory is not mistaken for an unreadable source.
struct Tee<'a, R> {
    src: R,
    out: &'a mut File,
    hash: Sha256,
    n: u64,
    write_err: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let got = self.src.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..got]) {
            self.write_err = Some(e);
            return Err(io::Error::other("write to the rescue directory failed"));
        }
        self.hash.update(&buf[..got]);
        self.n += got as u64;
        Ok(got)
    }
}

fn write_failure(e: io::Error) -> Outcome {
    match e.raw_os_error() {
        Some(code)
            if code == rustix::io::Errno::NOSPC.raw_os_error()
                || code == rustix::io::Errno::DQUOT.raw_os_error() =>
        {
            Outcome::NoSpace
        }
        _ => Outcome::WriteFailed {
            reason: e.to_string(),
        },
    }
}

/// "a FIFO", "a directory", …: for messages.
pub(super) fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device: name it with --device",
        _ => "of an unknown kind",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies made in this run, by SHA-256 of their bytes.
pub(super) type Seen = HashMap<String, PathBuf>;

/// Open `name` in `dir` for reading: no symlink followed, a FIFO does not
/// block (`O_NONBLOCK`), and only a regular file is accepted. `Ok(None)`
/// when there is no such file.
fn open_source(dir: impl AsFd, name: &str) -> Result<Option<(File, u64)>, String> {
    let fd = match rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(rustix::io::Errno::LOOP) => {
            return Err("it is a symbolic link, which the rescue does not follow".into());
        }
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| format!("cannot stat it: {e}"))?;
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::RegularFile {
        return Err(format!(
            "it is not a regular file (it is {})",
            kind_name(kind)
        ));
    }
    Ok(Some((File::from(fd), st.st_size as u64)))
}

/// Copy the file `name` in `src_dir` into the rescue directory if it is a
/// blob. `None` when there is no such file. Never leaves a partial file
/// in the rescue directory: the copy is a temporary file until the final
/// rename, unlinked on every error. The caller holds signals off meanwhile
/// (`rescue::run`); after a `kill -9`, the next run removes the temporary
/// file ([`RescueDir::prepare`]).
pub(super) fn copy_blob(
    rescue: &RescueDir,
    src_dir: impl AsFd,
    name: &str,
    limit: u64,
    seen: &mut Seen,
) -> Option<Outcome> {
    let (src, size) = match open_source(src_dir, name) {
        Ok(Some(found)) => found,
        Ok(None) => return None,
        Err(reason) => return Some(Outcome::Unreadable { reason }),
    };
    if size > limit {
        return Some(Outcome::TooLarge { size, limit });
    }
    Some(copy_open(rescue, src, limit, seen))
}

fn copy_open(rescue: &RescueDir, src: File, limit: u64, seen: &mut Seen) -> Outcome {
    let dir = &rescue.fd;
    let (tmp_name, tmp_fd) = match fsx::create_temp(dir) {
        Ok(t) => t,
        Err(e) => return write_failure(e),
    };
    let mut tmp = Temp {
        dir,
        name: Some(tmp_name),
        file: File::from(tmp_fd),
    };
    let mut tee = Tee {
        src: src.take(limit + 1),
        out: &mut tmp.file,
        hash: Sha256::new(),
        n: 0,
        write_err: None,
    };
    let header = Header::read(&mut tee);
    if let Some(e) = tee.write_err.take() {
        return write_failure(e);
    }
    let header = match header {
        Ok(h) => h,
        Err(_) if tee.n == 0 => {
            return Outcome::NotABlob {
                reason: "it is empty".into(),
            };
        }
        Err(e) => return header_failure(e),
    };
    if let Err(e) = io::copy(&mut tee, &mut io::sink()) {
        return match tee.write_err.take() {
            Some(w) => write_failure(w),
            None => Outcome::Unreadable {
                reason: format!("read error: {e}"),
            },
        };
    }
    let (n, digest) = (tee.n, hex(&tee.hash.finalize()));
    if n > limit {
        return Outcome::TooLarge { size: n, limit };
    }
    let payload = n - header.len() as u64;
    if !payload_len_is_plausible(payload) {
        return Outcome::Truncated {
            reason: format!(
                "its payload is {payload} bytes, which ends inside an encrypted chunk: the blob was cut short"
            ),
        };
    }
    if let Err(e) = tmp.file.sync_all() {
        return write_failure(e);
    }
    let f = header.unauthenticated_fields();
    let blob = BlobInfo {
        usb_uuid: f.usb_uuid.as_str().to_owned(),
        host: f.host.as_ref().map(ToString::to_string),
        generation: f.generation,
        created: f.created,
        persona: f.persona.clone(),
        tool_version: f.tool_version.clone(),
        format_version: f.version(),
        size: n,
        sha256: digest,
    };
    if let Some(stored) = seen.get(&blob.sha256) {
        return Outcome::Duplicate {
            stored: stored.clone(),
            blob,
        };
    }
    let final_name = blob.file_name();
    let stored = rescue.path.join(&final_name);
    let tmp_name = tmp.name.clone().unwrap_or_default();
    match rustix::fs::renameat_with(
        dir,
        tmp_name.as_str(),
        dir,
        final_name.as_str(),
        RenameFlags::NOREPLACE,
    ) {
        Ok(()) => {
            tmp.name = None;
            // tmpfs keeps nothing across a reboot anyway; on a disk (the
            // override) this makes the rename durable. A failure here
            // cannot undo the copy, which is whole and in place.
            let _ = rustix::fs::fsync(dir);
            seen.insert(blob.sha256.clone(), stored.clone());
            Outcome::Copied { stored, blob }
        }
        Err(rustix::io::Errno::EXIST) => {
            // Kept by an earlier run: the same bytes, unless the first 8
            // hex digits of two hashes collide.
            match fsx::read_small_file(dir, &[&final_name], limit) {
                Ok(bytes) if hex(&Sha256::digest(&bytes)) == blob.sha256 => {
                    seen.insert(blob.sha256.clone(), stored.clone());
                    Outcome::Duplicate { stored, blob }
                }
                _ => Outcome::WriteFailed {
                    reason: format!(
                        "{} already exists with other content and is not overwritten",
                        stored.display()
                    ),
                },
            }
        }
        Err(e) => write_failure(e.into()),
    }
}

fn header_failure(e: envelope::Error) -> Outcome {
    match e {
        envelope::Error::BadMagic => Outcome::NotABlob {
            reason: "it does not start with the zeta-creds magic bytes".into(),
        },
        envelope::Error::TruncatedHeader => Outcome::Truncated {
            reason: "it ends inside the header".into(),
        },
        envelope::Error::Io(e) => Outcome::Unreadable {
            reason: format!("read error: {e}"),
        },
        other => Outcome::NotABlob {
            reason: format!("it has the zeta-creds magic, but {other}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_lengths_that_only_a_cut_short_blob_has() {
        let sealed = (CHUNK_SIZE + TAG_LEN) as u64;
        let tag = TAG_LEN as u64;
        for ok in [
            tag,
            tag + 1,
            sealed,
            sealed + tag + 1,
            2 * sealed,
            3 * sealed - 1,
        ] {
            assert!(payload_len_is_plausible(ok), "{ok}");
        }
        for cut in [0, 1, tag - 1, sealed + 1, sealed + tag, 2 * sealed + 5] {
            assert!(!payload_len_is_plausible(cut), "{cut}");
        }
    }
}
