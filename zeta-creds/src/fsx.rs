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
