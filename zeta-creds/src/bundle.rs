//! The picker: collect a manifest's paths from a source root and seal them
//! into a blob.
//!
//! Order of work, so that nothing is asked or written for a bundle that
//! cannot succeed: parse the manifest; walk the source root (no symlink
//! followed) and resolve every owner to a name; only then ask for the
//! passphrase (the caller does, between [`plan`] and [`write`]); write the
//! blob to a temporary file beside `--out`, fsync, rename, fsync the
//! directory.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::envelope::{
    self, Anchor, EntryKind, EntryMeta, EntryWriter, Header, HeaderFields, UsbUuid,
};
use crate::fsx;
use crate::manifest::{self, Manifest};
use crate::passwd::{self, Accounts};

/// Why a bundle failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Manifest(#[from] manifest::Error),
    #[error("cannot open source root {root}: {source}")]
    SourceRoot {
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot read the accounts of source root {root} ({source}); owners are stored by name, so bundle needs etc/passwd and etc/group there"
    )]
    Accounts {
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "manifest user {user:?} is not in {root}/etc/passwd; fix `user` in the manifest or create the account"
    )]
    UnknownUser { user: String, root: PathBuf },
    #[error("{0}")]
    BadHome(String),
    #[error(
        "required path {path} is missing under {root}; log in to that tool first, or mark the entry `required = false`"
    )]
    RequiredMissing { path: String, root: PathBuf },
    #[error(
        "{path} is owned by {what} {id}, which has no name in {root}/etc/{db}; owners are carried by name: chown it or add the account"
    )]
    UnnamedOwner {
        path: String,
        what: &'static str,
        id: u32,
        root: PathBuf,
        db: &'static str,
    },
    #[error("cannot read {path}: {source}")]
    ReadSource {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} changed while it was being bundled; run bundle again")]
    Changed { path: String },
    #[error(
        "{out} already exists; pass --force to replace it (the new blob gets a higher generation)"
    )]
    OutExists { out: PathBuf },
    #[error("cannot write {out}: {source}")]
    WriteOut {
        out: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "existing blob {out} cannot be read ({source}); move it away or pass --force to replace it"
    )]
    ExistingBlob {
        out: PathBuf,
        #[source]
        source: envelope::Error,
    },
    #[error("cannot seal {out}: {source}")]
    Seal {
        out: PathBuf,
        #[source]
        source: envelope::Error,
    },
}

/// What `bundle` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub manifest: PathBuf,
    pub source_root: PathBuf,
    pub out: PathBuf,
    pub usb_uuid: UsbUuid,
    pub persona: String,
    pub log_n: u8,
    pub force: bool,
}

/// One path to carry, found on disk.
#[derive(Debug, Clone)]
pub struct Item {
    pub anchor: Anchor,
    /// Path inside the blob, relative to its anchor.
    pub rel: String,
    /// Path relative to the source root, as components.
    source: Vec<String>,
    pub kind: EntryKind,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub mtime: i64,
    pub size: u64,
    ino: u64,
}

impl Item {
    /// `~/x` or `/x`.
    pub fn display(&self) -> String {
        match self.anchor {
            Anchor::Root => format!("/{}", self.rel),
            Anchor::Home => format!("~/{}", self.rel),
        }
    }
}

/// A manifest path that is not carried, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// Everything a bundle will contain, found before any passphrase is asked.
#[derive(Debug)]
pub struct Plan {
    pub user: String,
    pub items: Vec<Item>,
    pub skipped: Vec<Skipped>,
    pub generation: u64,
    root: OwnedFd,
}

impl Plan {
    /// Total bytes of file contents.
    pub fn total_size(&self) -> u64 {
        self.items.iter().map(|i| i.size).sum()
    }
}

/// Walk the source root and decide what the blob will hold.
pub fn plan(opts: &Options) -> Result<Plan, Error> {
    let manifest = Manifest::load(&opts.manifest)?;
    let root = fsx::open_root(&opts.source_root).map_err(|source| Error::SourceRoot {
        root: opts.source_root.clone(),
        source,
    })?;
    let accounts = Accounts::load(&root).map_err(|source| Error::Accounts {
        root: opts.source_root.clone(),
        source,
    })?;
    let entries: Vec<&manifest::Entry> = manifest
        .entries
        .iter()
        .filter(|e| e.applies_to(&opts.persona))
        .collect();
    let home = if entries.iter().any(|e| e.anchor == Anchor::Home) {
        let user = accounts
            .user(&manifest.user)
            .ok_or_else(|| Error::UnknownUser {
                user: manifest.user.clone(),
                root: opts.source_root.clone(),
            })?;
        passwd::home_components(user).map_err(Error::BadHome)?
    } else {
        Vec::new()
    };

    let mut walker = Walker {
        root: &root,
        root_path: &opts.source_root,
        accounts: &accounts,
        items: Vec::new(),
        skipped: Vec::new(),
    };
    for entry in entries {
        let mut source: Vec<String> = match entry.anchor {
            Anchor::Root => Vec::new(),
            Anchor::Home => home.clone(),
        };
        source.extend(fsx::components(&entry.rel).into_iter().map(str::to_owned));
        let found = walker.visit_top(entry, source)?;
        if !found {
            if entry.required {
                return Err(Error::RequiredMissing {
                    path: entry.display.clone(),
                    root: opts.source_root.clone(),
                });
            }
            walker.skipped.push(Skipped {
                path: entry.display.clone(),
                reason: "not present (optional)".into(),
            });
        }
    }
    // 1 + the highest of the blob being replaced and the state record of
    // the system being re-bundled, so a re-bundle is never refused as a
    // rollback (DESIGN.md "Rollback refused").
    let recorded = match crate::state::load(&root) {
        crate::state::Loaded::Present(s) => s.generation,
        _ => 0,
    };
    let generation = next_generation(opts)?.max(recorded.saturating_add(1));
    Ok(Plan {
        user: manifest.user,
        items: walker.items,
        skipped: walker.skipped,
        generation,
        root,
    })
}

/// 1 + the generation of an existing blob at `--out` (read without the
/// passphrase: a forged high value can only raise ours).
fn next_generation(opts: &Options) -> Result<u64, Error> {
    match File::open(&opts.out) {
        Ok(mut f) => {
            if !opts.force {
                return Err(Error::OutExists {
                    out: opts.out.clone(),
                });
            }
            match Header::read(&mut f) {
                Ok(h) => h
                    .unauthenticated_fields()
                    .generation
                    .checked_add(1)
                    .ok_or_else(|| Error::ExistingBlob {
                        out: opts.out.clone(),
                        source: envelope::Error::InvalidHeader {
                            field: "generation",
                            reason: "at its maximum".into(),
                        },
                    }),
                // --force replaces an unreadable blob; start over.
                Err(_) => Ok(1),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(1),
        Err(source) => Err(Error::WriteOut {
            out: opts.out.clone(),
            source,
        }),
    }
}

struct Walker<'a> {
    root: &'a OwnedFd,
    root_path: &'a Path,
    accounts: &'a Accounts,
    items: Vec<Item>,
    skipped: Vec<Skipped>,
}

impl Walker<'_> {
    /// Visit a manifest entry's path; false if it does not exist.
    fn visit_top(&mut self, entry: &manifest::Entry, source: Vec<String>) -> Result<bool, Error> {
        let (name, parents) = source.split_last().expect("entry paths are non-empty");
        let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
        let dir = match fsx::open_dir_path(self.root, &parents) {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOENT.raw_os_error()) => {
                return Ok(false);
            }
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
                    || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) =>
            {
                self.skipped.push(Skipped {
                    path: entry.display.clone(),
                    reason: "a parent directory is a symlink or not a directory; not followed"
                        .into(),
                });
                return Ok(true);
            }
            Err(source) => {
                return Err(Error::ReadSource {
                    path: entry.display.clone(),
                    source,
                });
            }
        };
        let rel = entry.rel.clone();
        self.visit(&dir, name, source.clone(), entry.anchor, rel, entry, "")
    }

    /// Visit `name` in `dir`. `sub` is the path relative to the manifest
    /// entry, matched against its `exclude` globs.
    #[allow(clippy::too_many_arguments)]
    fn visit(
        &mut self,
        dir: &OwnedFd,
        name: &str,
        source: Vec<String>,
        anchor: Anchor,
        rel: String,
        entry: &manifest::Entry,
        sub: &str,
    ) -> Result<bool, Error> {
        let display = match anchor {
            Anchor::Root => format!("/{rel}"),
            Anchor::Home => format!("~/{rel}"),
        };
        if !sub.is_empty() && entry.exclude.is_match(sub) {
            self.skipped.push(Skipped {
                path: display,
                reason: "excluded by the manifest".into(),
            });
            return Ok(true);
        }
        let Some(st) = fsx::lstat(dir, name).map_err(|source| Error::ReadSource {
            path: display.clone(),
            source,
        })?
        else {
            return Ok(false);
        };
        let kind = match fsx::file_type(&st) {
            FileType::RegularFile => EntryKind::File,
            FileType::Directory => EntryKind::Dir,
            FileType::Symlink => {
                self.skipped.push(Skipped {
                    path: display,
                    reason: "symlink; not followed and not carried".into(),
                });
                return Ok(true);
            }
            other => {
                self.skipped.push(Skipped {
                    path: display,
                    reason: format!("{other:?} is not a regular file or directory; not carried"),
                });
                return Ok(true);
            }
        };
        let owner = self
            .accounts
            .user_name(st.st_uid)
            .ok_or_else(|| Error::UnnamedOwner {
                path: display.clone(),
                what: "uid",
                id: st.st_uid,
                root: self.root_path.to_owned(),
                db: "passwd",
            })?
            .to_owned();
        let group = self
            .accounts
            .group_name(st.st_gid)
            .ok_or_else(|| Error::UnnamedOwner {
                path: display.clone(),
                what: "gid",
                id: st.st_gid,
                root: self.root_path.to_owned(),
                db: "group",
            })?
            .to_owned();
        self.items.push(Item {
            anchor,
            rel: rel.clone(),
            source: source.clone(),
            kind,
            mode: st.st_mode & 0o7777,
            owner,
            group,
            mtime: st.st_mtime,
            size: if kind == EntryKind::File {
                st.st_size as u64
            } else {
                0
            },
            ino: st.st_ino,
        });
        if kind == EntryKind::Dir {
            let sub_dir = fsx::open_dir(dir, name).map_err(|source| Error::ReadSource {
                path: display.clone(),
                source,
            })?;
            let mut names = list_dir(&sub_dir).map_err(|source| Error::ReadSource {
                path: display.clone(),
                source,
            })?;
            names.sort();
            for child in names {
                let mut child_source = source.clone();
                child_source.push(child.clone());
                let child_sub = if sub.is_empty() {
                    child.clone()
                } else {
                    format!("{sub}/{child}")
                };
                self.visit(
                    &sub_dir,
                    &child,
                    child_source,
                    anchor,
                    format!("{rel}/{child}"),
                    entry,
                    &child_sub,
                )?;
            }
        }
        Ok(true)
    }
}

/// Names in a directory, without `.` and `..`. Names that are not UTF-8
/// cannot be carried (the format stores UTF-8 paths) and are an error.
fn list_dir(dir: &OwnedFd) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut d = rustix::fs::Dir::read_from(dir)?;
    while let Some(entry) = d.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = String::from_utf8(name.to_vec()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "file name {:?} is not UTF-8",
                    String::from_utf8_lossy(e.as_bytes())
                ),
            )
        })?;
        names.push(name);
    }
    Ok(names)
}

/// Seal the planned items into `opts.out` under `passphrase`.
pub fn write(opts: &Options, plan: &Plan, passphrase: &SecretString) -> Result<(), Error> {
    let fields = HeaderFields {
        usb_uuid: opts.usb_uuid.clone(),
        log_n: opts.log_n,
        generation: plan.generation,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        persona: opts.persona.clone(),
    };
    let out_err = |source: io::Error| Error::WriteOut {
        out: opts.out.clone(),
        source,
    };
    let seal_err = |source: envelope::Error| match source {
        envelope::Error::Io(source) => Error::WriteOut {
            out: opts.out.clone(),
            source,
        },
        source => Error::Seal {
            out: opts.out.clone(),
            source,
        },
    };
    let mut atomic = AtomicFile::create(&opts.out).map_err(out_err)?;
    let stream =
        Header::seal(io::BufWriter::new(atomic.file()), passphrase, &fields).map_err(seal_err)?;
    let mut entries = EntryWriter::new(stream, &plan.user).map_err(seal_err)?;
    for item in &plan.items {
        add_item(&mut entries, plan, item).map_err(|e| match e {
            AddError::Source(source) => Error::ReadSource {
                path: item.display(),
                source,
            },
            AddError::Changed => Error::Changed {
                path: item.display(),
            },
            AddError::Envelope(e) => seal_err(e),
        })?;
    }
    let stream = entries.finish().map_err(seal_err)?;
    let buffered = stream.finish().map_err(seal_err)?;
    buffered.into_inner().map_err(|e| out_err(e.into_error()))?;
    atomic.commit().map_err(out_err)
}

enum AddError {
    Source(io::Error),
    Changed,
    Envelope(envelope::Error),
}

fn add_item<W: Write>(
    entries: &mut EntryWriter<W>,
    plan: &Plan,
    item: &Item,
) -> Result<(), AddError> {
    let mut meta = EntryMeta {
        anchor: item.anchor,
        kind: item.kind,
        path: item.rel.clone(),
        mode: item.mode,
        owner: item.owner.clone(),
        group: item.group.clone(),
        mtime: item.mtime,
        size: 0,
        sha256: [0; 32],
    };
    if item.kind == EntryKind::Dir {
        return entries
            .add(&meta, &mut io::empty())
            .map_err(AddError::Envelope);
    }
    let (name, parents) = item.source.split_last().expect("non-empty");
    let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
    let dir = fsx::open_dir_path(&plan.root, &parents).map_err(AddError::Source)?;
    let mut file = fsx::open_file(&dir, name).map_err(AddError::Source)?;
    let st = rustix::fs::fstat(file.as_fd()).map_err(|e| AddError::Source(e.into()))?;
    if st.st_ino != item.ino {
        return Err(AddError::Changed);
    }
    // First pass: size and digest. Second pass: the bytes, which
    // EntryWriter checks against that digest.
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = zeroize::Zeroizing::new(vec![0u8; 64 * 1024]);
    loop {
        let n = file.read(&mut buf).map_err(AddError::Source)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    meta.size = size;
    meta.sha256 = hasher.finalize().into();
    file.seek(SeekFrom::Start(0)).map_err(AddError::Source)?;
    match entries.add(&meta, &mut file) {
        Ok(()) => Ok(()),
        Err(envelope::Error::Entries(_)) => Err(AddError::Changed),
        Err(e) => Err(AddError::Envelope(e)),
    }
}

/// A file written beside its destination under a temporary name and
/// renamed into place only by [`AtomicFile::commit`]; dropped uncommitted,
/// the temporary file is removed.
pub struct AtomicFile {
    dir: std::sync::Arc<OwnedFd>,
    tmp_name: String,
    final_name: String,
    file: Option<File>,
}

/// Prefix of every temporary file zeta-creds creates.
pub const TMP_PREFIX: &str = ".zeta-creds-tmp.";

impl AtomicFile {
    /// Create `.zeta-creds-tmp.<random>` (mode 0600, exclusive) in the
    /// directory of `path`.
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
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
        let dir = std::sync::Arc::new(fsx::open_root(parent)?);
        let (tmp_name, fd) = create_temp(&*dir)?;
        // Removed by the signal thread too, not only by Drop.
        crate::cleanup::register_temp_file(&dir, &tmp_name);
        Ok(AtomicFile {
            dir,
            tmp_name,
            final_name,
            file: Some(File::from(fd)),
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
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("not committed");
        file.sync_all()?;
        drop(file);
        crate::cleanup::commit_section(|| {
            rustix::fs::renameat(&*self.dir, &self.tmp_name, &*self.dir, &self.final_name)?;
            self.tmp_name.clear();
            crate::cleanup::forget_staging();
            rustix::fs::fsync(&*self.dir)
        })?;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp_name.is_empty() {
            let _ = rustix::fs::unlinkat(&*self.dir, &self.tmp_name, rustix::fs::AtFlags::empty());
        }
    }
}

/// Create a fresh temporary file (0600, O_EXCL, no symlink followed) in
/// `dir`, returning its name.
pub fn create_temp(dir: impl AsFd) -> io::Result<(String, OwnedFd)> {
    for _ in 0..16 {
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).map_err(|e| io::Error::other(e.to_string()))?;
        let name = format!("{TMP_PREFIX}{}", hex16(&rnd));
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

fn hex16(bytes: &[u8; 8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
