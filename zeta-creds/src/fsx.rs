//! Confined filesystem access: every operation is relative to a directory
//! file descriptor, and no path component is followed if it is a symlink.
//!
//! A root the operator names on the command line (`--target-root`,
//! `--source-root`) is opened as given; below it, nothing is resolved by
//! the kernel's path walk with symlinks allowed. A planted
//! `~/.config -> /etc` therefore fails with `ELOOP`/`ENOTDIR` instead of
//! redirecting a write.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use crate::cleanup::Guard;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Open a root directory named by the operator.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Open the directory `name` inside `dir`, refusing a symlink.
pub fn open_dir(dir: impl AsFd, name: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())?)
}

/// Open `dir/a/b/c` one component at a time, refusing symlinks.
pub fn open_dir_path(dir: impl AsFd, components: &[&str]) -> io::Result<OwnedFd> {
    let mut current = rustix::fs::openat(dir, ".", DIR_FLAGS, Mode::empty())?;
    for c in components {
        current = open_dir(&current, c)?;
    }
    Ok(current)
}

/// Open a regular file `name` in `dir` for reading, refusing a symlink.
///
/// The open never blocks: it is `O_NONBLOCK`, so a FIFO swapped in for a
/// file (while a passphrase is typed, say) opens at once instead of
/// waiting for a writer, and is then refused by the type of the open
/// descriptor (`fstat`), not by an earlier `lstat` of the name. The flag is
/// cleared again on the regular file that is returned.
pub fn open_file(dir: impl AsFd, name: &str) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is a {}, not a regular file", kind_name(kind)),
        ));
    }
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags - OFlags::NONBLOCK)?;
    Ok(File::from(fd))
}

/// `lstat` of `name` in `dir`; `Ok(None)` if it does not exist.
pub fn lstat(dir: impl AsFd, name: &str) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The kind of an `lstat` result.
pub fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// The word for a file type in messages ("symlink", "fifo", ...).
pub fn kind_name(t: FileType) -> &'static str {
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

/// Read a whole small file at `components` below `root`, at most `limit`
/// bytes (more is an error), refusing symlinks on the way.
pub fn read_small_file(root: impl AsFd, components: &[&str], limit: u64) -> io::Result<Vec<u8>> {
    let (name, parents) = components
        .split_last()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty path"))?;
    let dir = open_dir_path(root, parents)?;
    let file = open_file(&dir, name)?;
    let mut out = Vec::new();
    file.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(out)
}

/// Prefix of every temporary file zeta-creds creates; the full reserved
/// name is this and 16 lowercase hex digits.
pub const TMP_PREFIX: &str = ".zeta-creds-tmp.";

/// Create a fresh temporary file (0600, `O_EXCL`, no symlink followed) in
/// `dir`, returning its name.
pub fn create_temp(dir: impl AsFd) -> io::Result<(String, OwnedFd)> {
    for _ in 0..16 {
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).map_err(|e| io::Error::other(e.to_string()))?;
        let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("{TMP_PREFIX}{hex}");
        match rustix::fs::openat(
            &dir,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => return Ok((name, fd)),
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not pick a temporary file name",
    ))
}

/// Whether `name` is one of our temporary files' reserved names.
pub fn is_temp_name(name: &str) -> bool {
    name.strip_prefix(TMP_PREFIX).is_some_and(|rest| {
        rest.len() == 16
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Remove the temporary files a killed run (`kill -9`, power loss) left in
/// `dir`. Returns how many were removed.
///
/// A temporary file is recognised by its exact reserved name and by being
/// a regular file. Not by owner: a run killed between giving a staged file
/// its final owner and renaming it leaves one owned by the user. Unlinking
/// a name in a directory the caller writes into anyway can only remove that
/// name, never a file somewhere else.
pub fn remove_stale_temps(dir: &OwnedFd) -> usize {
    let Ok(mut d) = rustix::fs::Dir::read_from(dir) else {
        return 0;
    };
    let mut stale = Vec::new();
    while let Some(Ok(entry)) = d.read() {
        if let Ok(name) = std::str::from_utf8(entry.file_name().to_bytes())
            && is_temp_name(name)
        {
            stale.push(name.to_owned());
        }
    }
    let mut removed = 0;
    for name in stale {
        if let Ok(Some(st)) = lstat(dir, &name)
            && file_type(&st) == FileType::RegularFile
            && rustix::fs::unlinkat(dir, name.as_str(), AtFlags::empty()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Split a relative `a/b/c` path into components (validated elsewhere).
pub fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

/// The directory of `path` (`.` for a bare file name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A file written beside its destination under a temporary name and
/// renamed into place only by [`AtomicFile::commit`]; dropped uncommitted,
/// the temporary file is removed.
///
/// The temporary file is held by a [`Guard`]: removed on drop and on a
/// signal, disarmed by the commit once it has its final name.
pub struct AtomicFile {
    dir: Arc<OwnedFd>,
    tmp_name: String,
    final_name: String,
    file: Option<File>,
    guard: Option<Guard>,
}

/// Suffix of the copy of the blob a bundle or rekey replaced.
pub const PREV_SUFFIX: &str = ".prev";

impl AtomicFile {
    /// Create `.zeta-creds-tmp.<random>` (mode 0600, exclusive) in the
    /// directory of `path`.
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        let final_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "output path has no UTF-8 file name",
                )
            })?
            .to_owned();
        let dir = Arc::new(open_root(parent_of(path))?);
        AtomicFile::create_in(dir, final_name)
    }

    fn create_in(dir: Arc<OwnedFd>, final_name: String) -> io::Result<AtomicFile> {
        let (tmp_name, fd) = create_temp(&*dir)?;
        let guard = Some(Guard::temp_file(&dir, &[], &tmp_name));
        Ok(AtomicFile {
            dir,
            tmp_name,
            final_name,
            file: Some(File::from(fd)),
            guard,
        })
    }

    /// The temporary file to write.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("not committed")
    }

    /// fsync, rename over the destination, fsync the directory.
    ///
    /// On FAT (the ESP) rename is not atomic against power loss: a crash at
    /// the wrong moment can still leave a damaged directory entry. The blob's
    /// MAC then makes the damage visible instead of silent.
    pub fn commit(self) -> io::Result<()> {
        self.commit_keeping_previous(false).map(|_| ())
    }

    /// [`AtomicFile::commit`], first copying the file being replaced (if
    /// `keep` and there is one) to `NAME.prev` the same way: temporary
    /// file, fsync, rename. A copy, not a hard link, because FAT (the ESP)
    /// has none; so the destination never stops existing. Returns whether
    /// a `.prev` was written.
    pub fn commit_keeping_previous(mut self, keep: bool) -> io::Result<bool> {
        let file = self.file.take().expect("not committed");
        file.sync_all()?;
        drop(file);
        let prev = if keep { self.copy_previous()? } else { None };
        let kept = prev.is_some();
        crate::cleanup::commit_section(|| {
            if let Some(mut prev) = prev {
                prev.rename()?;
            }
            self.rename()?;
            Ok::<(), io::Error>(rustix::fs::fsync(&*self.dir)?)
        })?;
        Ok(kept)
    }

    /// Give the temporary file its final name; its guard is disarmed.
    fn rename(&mut self) -> io::Result<()> {
        rustix::fs::renameat(&*self.dir, &self.tmp_name, &*self.dir, &self.final_name)?;
        if let Some(guard) = self.guard.take() {
            guard.disarm();
        }
        Ok(())
    }

    /// Copy the current destination, if it is a regular file, into a
    /// synced temporary file that will become `NAME.prev`.
    fn copy_previous(&self) -> io::Result<Option<AtomicFile>> {
        let old = match rustix::fs::openat(
            &*self.dir,
            self.final_name.as_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if file_type(&rustix::fs::fstat(&old)?) != FileType::RegularFile {
            return Ok(None);
        }
        let mut prev = AtomicFile::create_in(
            Arc::clone(&self.dir),
            format!("{}{PREV_SUFFIX}", self.final_name),
        )?;
        io::copy(&mut File::from(old), prev.file())?;
        prev.file().sync_all()?;
        Ok(Some(prev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_exact_temp_names_are_swept() {
        assert!(is_temp_name(".zeta-creds-tmp.0123456789abcdef"));
        for other in [
            ".zeta-creds-tmp.0123456789abcde",
            ".zeta-creds-tmp.0123456789abcdef0",
            ".zeta-creds-tmp.0123456789ABCDEF",
            ".zeta-creds-tmp.notours",
            "zeta-creds-tmp.0123456789abcdef",
            "hosts.yml",
        ] {
            assert!(!is_temp_name(other), "{other}");
        }
        let t = tempfile::tempdir().unwrap();
        let dir = open_root(t.path()).unwrap();
        let (name, _fd) = create_temp(&dir).unwrap();
        assert!(is_temp_name(&name), "{name}");
        std::fs::write(t.path().join(".zeta-creds-tmp.notours"), b"x").unwrap();
        std::fs::create_dir(t.path().join(".zeta-creds-tmp.00000000000000aa")).unwrap();
        assert_eq!(remove_stale_temps(&dir), 1);
        assert!(t.path().join(".zeta-creds-tmp.notours").exists());
        assert!(t.path().join(".zeta-creds-tmp.00000000000000aa").is_dir());
    }
}
