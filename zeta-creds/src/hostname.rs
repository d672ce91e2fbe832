//! Which host a root belongs to: the name a blob is sealed for (`bundle`,
//! the installer step) and the one `restore` expects (FORMAT.md §2.2).
//!
//! For a root other than the running system's (`/mnt` at install time),
//! the truth is the root's own `etc/hostname`. On NixOS that file is a
//! symlink into the store (`/etc/hostname -> /etc/static/hostname`,
//! `/etc/static -> /nix/store/...-etc/etc`, and on to
//! `/nix/store/...-hostname`), and its targets are absolute paths *of the
//! installed system*. So the path is resolved here one component at a
//! time from a descriptor of the root, each symlink read with `readlinkat`
//! and its target walked again from the root (absolute) or from the
//! current directory (relative), never by the kernel's path walk from the
//! live root. A `..` above the root is refused, not clamped, and at most
//! [`MAX_LINKS`] symlinks are followed.
//!
//! For the running system's own root (`/`, at boot), the kernel's host
//! name (`uname -n`) is the truth: `/etc/hostname` may not even exist
//! there, and the kernel's name is what the system calls itself.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::envelope::{self, Host};
use crate::fsx;

/// At most this many symlinks are followed while resolving `etc/hostname`
/// (the kernel's own limit for a path walk).
pub const MAX_LINKS: usize = 40;

/// A host name file is one short line; more than this is refused.
const MAX_FILE_LEN: u64 = 4096;

/// Why a root's host name cannot be known. The messages name the file;
/// which option overrides it is the caller's to say.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The root cannot be opened.
    #[error("cannot open root {root}: {source}")]
    Root {
        /// The root as given.
        root: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `etc/hostname` is not there (or is empty).
    #[error("no host name for root {root}: {file} {why}")]
    Missing {
        /// The root as given.
        root: PathBuf,
        /// The file looked at (`ROOT/etc/hostname`).
        file: PathBuf,
        /// What was found instead.
        why: String,
    },
    /// A symlink on the way leads out of the root, or too many symlinks.
    #[error("{file} is not resolvable inside root {root}: {why}")]
    Unresolvable {
        /// The root as given.
        root: PathBuf,
        /// The file looked at.
        file: PathBuf,
        /// Which link and why.
        why: String,
    },
    /// The file cannot be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The file looked at.
        file: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The name found is not a valid host name.
    #[error("{file}: {source}")]
    Invalid {
        /// Where the name came from (`ROOT/etc/hostname`, or `uname`).
        file: PathBuf,
        /// What is wrong with it.
        #[source]
        source: envelope::Error,
    },
}

/// The host name of the system under `root`: the kernel's when `root` is
/// the running system's own root directory, else `root/etc/hostname`
/// resolved inside `root`.
pub fn of_root(root: &Path) -> Result<Host, Error> {
    let fd = fsx::open_root(root).map_err(|source| Error::Root {
        root: root.to_owned(),
        source,
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::Root {
        root: root.to_owned(),
        source: e.into(),
    })?;
    let live = rustix::fs::stat("/").map_err(|e| Error::Root {
        root: root.to_owned(),
        source: e.into(),
    })?;
    if (st.st_dev, st.st_ino) == (live.st_dev, live.st_ino) {
        return kernel_host();
    }
    from_file(&fd, root)
}

/// The kernel's host name (`uname -n`).
pub fn kernel_host() -> Result<Host, Error> {
    let uname = rustix::system::uname();
    let name = String::from_utf8_lossy(uname.nodename().to_bytes()).into_owned();
    Host::parse(&name).map_err(|source| Error::Invalid {
        file: PathBuf::from("the kernel's host name (uname -n)"),
        source,
    })
}

/// `root/etc/hostname`, resolved inside the root open as `root_fd`.
pub fn from_file(root_fd: &OwnedFd, root: &Path) -> Result<Host, Error> {
    let file = root.join("etc/hostname");
    let text = read_inside(root_fd, "etc/hostname", MAX_FILE_LEN).map_err(|e| match e {
        Resolve::NotFound(why) | Resolve::Missing(why) => Error::Missing {
            root: root.to_owned(),
            file: file.clone(),
            why,
        },
        Resolve::Escapes(why) => Error::Unresolvable {
            root: root.to_owned(),
            file: file.clone(),
            why,
        },
        Resolve::Io(source) => Error::Read {
            file: file.clone(),
            source,
        },
    })?;
    // hostname(5): one line; systemd also skips comments and blank lines.
    let text = String::from_utf8_lossy(&text).into_owned();
    let line = text
        .lines()
        .map(str::trim_ascii)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    let Some(line) = line else {
        return Err(Error::Missing {
            root: root.to_owned(),
            file,
            why: "holds no host name".into(),
        });
    };
    Host::parse(line).map_err(|source| Error::Invalid { file, source })
}

/// Why [`read_inside`] failed.
#[derive(Debug)]
pub(crate) enum Resolve {
    /// A component does not exist.
    NotFound(String),
    /// A component is not what the path needs (a file where a directory
    /// must be, a directory or a FIFO where the file must be).
    Missing(String),
    /// A link leads above the root, or there are too many.
    Escapes(String),
    /// Anything else.
    Io(io::Error),
}

impl From<rustix::io::Errno> for Resolve {
    fn from(e: rustix::io::Errno) -> Resolve {
        Resolve::Io(e.into())
    }
}

/// Read another file of a root the running system does not own (an old
/// installation's `etc/zeta/creds-manifest.toml`, a store symlink on
/// NixOS), resolved inside the root as `etc/hostname` is: at most `limit`
/// bytes; the error says why, for a message that names the file.
pub fn read_file_inside(root_fd: &OwnedFd, path: &str, limit: u64) -> Result<Vec<u8>, String> {
    read_inside(root_fd, path, limit).map_err(|e| match e {
        Resolve::NotFound(why) | Resolve::Missing(why) | Resolve::Escapes(why) => why,
        Resolve::Io(e) => e.to_string(),
    })
}

/// Read the regular file at `path` (relative, `/`-separated) below
/// `root_fd`, at most `limit` bytes, following symlinks as the system
/// under the root would see them: an absolute target starts again at the
/// root, a relative one at the directory holding the link, and `..` never
/// goes above the root. Done by hand, one component at a time, rather than
/// with `openat2(RESOLVE_IN_ROOT)`: the restore unit's system call filter
/// refuses `openat2` (ENOSYS) on the systemd versions we boot. The file is
/// opened without blocking and its type checked on the descriptor.
pub(crate) fn read_inside(root_fd: &OwnedFd, path: &str, limit: u64) -> Result<Vec<u8>, Resolve> {
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let reopen_root = || rustix::fs::openat(root_fd, ".", dir_flags, Mode::empty());
    // The directories from the root down to the current one: `..` pops.
    let mut stack: Vec<OwnedFd> = vec![reopen_root()?];
    let mut todo: VecDeque<OsString> = split(path.as_bytes());
    let mut links = 0;
    let mut walked = String::new();
    while let Some(name) = todo.pop_front() {
        let name_str = name.to_string_lossy().into_owned();
        if name.as_bytes() == b"." {
            continue;
        }
        if name.as_bytes() == b".." {
            if stack.len() == 1 {
                return Err(Resolve::Escapes(format!("{walked}.. leads above the root")));
            }
            stack.pop();
            walked = parent_of(&walked);
            continue;
        }
        let here = stack.last().expect("the root is never popped");
        let st = match rustix::fs::statat(here, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => {
                return Err(Resolve::NotFound(format!(
                    "does not exist (/{walked}{name_str} is missing)"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Resolve::Escapes(format!("more than {MAX_LINKS} symlinks")));
                }
                let target = rustix::fs::readlinkat(here, &name, Vec::new())?;
                let target = target.into_bytes();
                if target.first() == Some(&b'/') {
                    stack.truncate(1);
                    walked.clear();
                }
                let mut rest = split(&target);
                rest.extend(todo);
                todo = rest;
            }
            FileType::Directory if !todo.is_empty() => {
                let fd = rustix::fs::openat(here, &name, dir_flags, Mode::empty())?;
                stack.push(fd);
                walked.push_str(&name_str);
                walked.push('/');
            }
            FileType::RegularFile if todo.is_empty() => {
                let fd = rustix::fs::openat(
                    here,
                    &name,
                    OFlags::RDONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC
                        | OFlags::NOCTTY
                        | OFlags::NONBLOCK,
                    Mode::empty(),
                )?;
                let st = rustix::fs::fstat(&fd)?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    return Err(Resolve::Missing(format!(
                        "is not a regular file (/{walked}{name_str} changed while read)"
                    )));
                }
                let mut out = Vec::new();
                std::fs::File::from(fd)
                    .take(limit + 1)
                    .read_to_end(&mut out)
                    .map_err(Resolve::Io)?;
                if out.len() as u64 > limit {
                    return Err(Resolve::Io(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("larger than {limit} bytes"),
                    )));
                }
                return Ok(out);
            }
            other => {
                return Err(Resolve::Missing(format!(
                    "is not a regular file (/{walked}{name_str} is a {})",
                    fsx::kind_name(other)
                )));
            }
        }
    }
    Err(Resolve::Missing("resolves to a directory".into()))
}

/// The non-empty components of a `/`-separated path.
fn split(path: &[u8]) -> VecDeque<OsString> {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| OsString::from_vec(c.to_vec()))
        .collect()
}

/// `a/b/` → `a/`, for messages.
fn parent_of(walked: &str) -> String {
    let trimmed = walked.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(at) => trimmed[..=at].to_owned(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        t
    }

    fn host_of(root: &Path) -> Result<Host, Error> {
        of_root(root)
    }

    #[test]
    fn plain_file_is_trimmed_and_lower_cased() {
        let t = root();
        std::fs::write(t.path().join("etc/hostname"), "# comment\n\n Node-A\n").unwrap();
        assert_eq!(host_of(t.path()).unwrap().as_str(), "node-a");
    }

    /// FORMAT.md §2.2: only ASCII whitespace is trimmed, here as in
    /// `Host::parse`; a no-break space around the name is refused by name.
    #[test]
    fn only_ascii_whitespace_is_trimmed_from_the_file() {
        let t = root();
        std::fs::write(t.path().join("etc/hostname"), "\tnode-a \r\n").unwrap();
        assert_eq!(host_of(t.path()).unwrap().as_str(), "node-a");
        std::fs::write(t.path().join("etc/hostname"), "node-a\u{a0}\n").unwrap();
        assert!(matches!(host_of(t.path()), Err(Error::Invalid { .. })));
    }

    #[test]
    fn nixos_store_symlinks_resolve_inside_the_root() {
        let t = root();
        let r = t.path();
        std::fs::create_dir_all(r.join("nix/store/aaa-etc/etc")).unwrap();
        std::fs::write(r.join("nix/store/xxx-hostname"), "node-b\n").unwrap();
        // /etc/static -> /nix/store/aaa-etc/etc (absolute: of the target)
        symlink("/nix/store/aaa-etc/etc", r.join("etc/static")).unwrap();
        // /etc/static/hostname -> ../../../xxx-hostname (relative)
        symlink(
            "../../xxx-hostname",
            r.join("nix/store/aaa-etc/etc/hostname"),
        )
        .unwrap();
        symlink("/etc/static/hostname", r.join("etc/hostname")).unwrap();
        assert_eq!(host_of(r).unwrap().as_str(), "node-b");
    }

    #[test]
    fn a_link_above_the_root_is_refused() {
        let t = root();
        symlink(
            "../../../../../../etc/hostname",
            t.path().join("etc/hostname"),
        )
        .unwrap();
        let e = host_of(t.path()).unwrap_err();
        assert!(matches!(e, Error::Unresolvable { .. }), "{e}");
        assert!(e.to_string().contains("leads above the root"), "{e}");
    }

    #[test]
    fn a_link_loop_is_refused() {
        let t = root();
        symlink("/etc/hostname", t.path().join("etc/hostname")).unwrap();
        let e = host_of(t.path()).unwrap_err();
        assert!(e.to_string().contains("more than 40 symlinks"), "{e}");
    }

    #[test]
    fn missing_file_names_the_file_and_host_flag() {
        let t = root();
        let e = host_of(t.path()).unwrap_err();
        assert!(matches!(e, Error::Missing { .. }));
        let text = e.to_string();
        assert!(text.contains("etc/hostname does not exist"), "{text}");
    }

    #[test]
    fn bad_characters_are_named() {
        let t = root();
        std::fs::write(t.path().join("etc/hostname"), "node_a\n").unwrap();
        let text = host_of(t.path()).unwrap_err().to_string();
        assert!(text.contains("'_'"), "{text}");
    }

    #[test]
    fn the_live_root_is_the_kernels_name() {
        let kernel = kernel_host();
        let live = of_root(Path::new("/"));
        assert_eq!(
            live.map(|h| h.to_string()).map_err(|e| e.to_string()),
            kernel.map(|h| h.to_string()).map_err(|e| e.to_string())
        );
    }
}
