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
pub fn open_file(dir: impl AsFd, name: &str) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
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

/// Split a relative `a/b/c` path into components (validated elsewhere).
pub fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}
