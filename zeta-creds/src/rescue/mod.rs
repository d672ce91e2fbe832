//! Rescue before the wipe: copy every blob found on the machine's disks
//! into a directory in RAM, before an installer reformats the ESP.
//!
//! `zeta-creds install-step rescue` runs before partitioning and needs no
//! passphrase. It reads only the unauthenticated header of what it finds
//! (to name and describe the copy), changes nothing on the disks it reads
//! (every mount is read-only, through a read-only loop device), and leaves
//! no partial file anywhere: each copy is a temporary file, fsynced, then
//! renamed.
//!
//! Sources ([`Request`]):
//! * by default, every EFI system partition of the machine's disks, and
//!   every vfat filesystem (an ESP without the partition type), from
//!   `lsblk` ([`scan::candidates`]); the live stick is skipped;
//! * `--device DEV`: a partition or an image file;
//! * `--from PATH`: a directory holding `zeta-creds.enc`, or a blob file;
//! * the stash on the stick: a directory of one blob per host
//!   (`<host>.enc`, and the `<host>.enc.prev` the step keeps), named with
//!   `--stash DIR` ([`Request::stash_dirs`]) or the stick's partition
//!   labelled `ZETA-CREDS`, mounted read-only like any other device
//!   ([`Request::stash_devices`]). Every host's blob is copied: one stick
//!   serves a fleet, and the step picks the blob of the host it installs.
//!
//! A device already mounted is read where it is mounted; any other is
//! mounted in a private directory and unmounted after ([`mount::Mounted`]).
//! The result is a typed [`Report`] (one [`SourceReport`] per file looked
//! at) that the binary prints; its `Display` impls are the messages.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod copy;
pub mod mount;
pub mod oldroot;
mod report;
pub mod scan;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};

pub use copy::RescueDir;
pub use mount::{Mounter, SystemMounter};
pub use report::{BlobInfo, Outcome, Report, SameStick, Source, SourceReport};

use crate::{cleanup, fsx};

/// The names a blob has in a source directory: the blob, and the one the
/// install step keeps when it replaces it.
pub const BLOB_NAMES: [&str; 2] = ["zeta-creds.enc", "zeta-creds.enc.prev"];

/// The default rescue directory (the binary lets `ZETA_CREDS_RESCUE_DIR`
/// override it).
pub const DEFAULT_RESCUE_DIR: &str = "/run/zeta-creds/rescued";

/// The environment variable that overrides [`DEFAULT_RESCUE_DIR`]; read by
/// the binary, never by this module.
pub const RESCUE_DIR_ENV: &str = "ZETA_CREDS_RESCUE_DIR";

/// The largest file the rescue copies: 1 GiB. The format does not bound a
/// blob in practice (up to 100 000 entries of up to 64 GiB each), but the
/// copy goes to RAM, and a credentials blob is kilobytes to megabytes. A
/// larger file is reported and left where it is.
pub const MAX_BLOB_BYTES: u64 = 1 << 30;

/// What to rescue, and where to.
#[derive(Debug, Clone)]
pub struct Request {
    /// `--device`: partitions or image files. Any of `devices`, `from` and
    /// `stash_dirs` replaces the default scan of the machine's ESPs; all
    /// empty means scan. A
    /// partition mounted already is read where it is mounted; an image file
    /// is always mounted anew (read-only, on its own loop device).
    pub devices: Vec<PathBuf>,
    /// `--from`: directories holding a blob, or blob files.
    pub from: Vec<PathBuf>,
    /// Stash directories (`--stash DIR`): every `*.enc` and `*.enc.prev`
    /// in them is copied, whatever host it is for.
    pub stash_dirs: Vec<PathBuf>,
    /// Stash partitions (the stick's filesystem labelled `ZETA-CREDS`),
    /// read as [`Request::stash_dirs`] are: where they are mounted
    /// already, else mounted read-only while read. Read in addition to the
    /// default scan, which does not list them again (they are on the live
    /// stick, which it skips).
    pub stash_devices: Vec<PathBuf>,
    /// Where copies go (created 0700 if missing).
    pub rescue_dir: PathBuf,
    /// Accept a rescue directory that is not on tmpfs or ramfs.
    pub allow_disk: bool,
    /// Where private mount directories are made ([`default_mount_base`]).
    pub mount_base: PathBuf,
    /// The largest file copied ([`MAX_BLOB_BYTES`]).
    pub max_blob_bytes: u64,
}

impl Request {
    /// A default scan into `rescue_dir`, with the defaults above.
    pub fn new(rescue_dir: impl Into<PathBuf>) -> Request {
        Request {
            devices: Vec::new(),
            from: Vec::new(),
            stash_dirs: Vec::new(),
            stash_devices: Vec::new(),
            rescue_dir: rescue_dir.into(),
            allow_disk: false,
            mount_base: default_mount_base(),
            max_blob_bytes: MAX_BLOB_BYTES,
        }
    }
}

/// `/run` when it is a directory and this process is root (it is a tmpfs
/// only root writes), else the temporary directory (`$TMPDIR` or `/tmp`).
pub fn default_mount_base() -> PathBuf {
    let run = Path::new("/run");
    if rustix::process::geteuid().is_root() && run.is_dir() {
        run.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// What stops the whole rescue (as opposed to one source, which is a line
/// of the [`Report`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The rescue directory cannot be made or used.
    #[error("rescue directory {}: {reason}; nothing was copied", dir.display())]
    RescueDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The rescue directory is on a disk, which may be the one about to be
    /// wiped.
    #[error(
        "rescue directory {} is not on tmpfs or ramfs (filesystem magic {fs_magic:#x}): a copy there could be wiped with the disk, so nothing was copied; point ZETA_CREDS_RESCUE_DIR at a tmpfs directory (the default /run/zeta-creds/rescued is one), or pass --allow-rescue-dir-on-disk if that disk is not going to be wiped",
        dir.display()
    )]
    NotInRam {
        /// The directory.
        dir: PathBuf,
        /// Its filesystem's `statfs` type.
        fs_magic: u32,
    },
    /// The machine's disks could not be listed for the default scan.
    #[error(
        "cannot list the machine's disks ({reason}); nothing was copied; name the sources with --device DEV or --from PATH"
    )]
    ListDisks {
        /// What failed.
        reason: String,
    },
}

/// Run the rescue. Fails as a whole only when the rescue directory is
/// unusable or, for the default scan, when the disks cannot be listed;
/// everything else is a line of the report.
///
/// Each source is read inside [`cleanup::commit_section`]: a SIGINT,
/// SIGTERM or SIGHUP that arrives meanwhile takes effect once the source
/// is done (its copies renamed or removed, its mount undone), so a signal
/// never leaves a mount or a partial copy behind. That wait is bounded by
/// one mount, a copy of at most `max_blob_bytes` and one unmount.
pub fn run(req: &Request, mounter: &dyn Mounter) -> Result<Report, Error> {
    let dir = RescueDir::prepare(&req.rescue_dir, req.allow_disk)?;
    let mut run = Run {
        req,
        mounter,
        dir: &dir,
        seen: copy::Seen::new(),
        sources: Vec::new(),
        warnings: Vec::new(),
    };
    if req.devices.is_empty() && req.from.is_empty() && req.stash_dirs.is_empty() {
        let json = mounter
            .block_devices()
            .map_err(|reason| Error::ListDisks { reason })?;
        let devices = scan::parse_lsblk(&json).map_err(|e| Error::ListDisks {
            reason: format!("unexpected lsblk output: {e}"),
        })?;
        for c in scan::candidates(&devices) {
            if req.stash_devices.contains(&c.device) {
                continue;
            }
            let source = Source::Esp {
                device: c.device.clone(),
                why: c.why,
            };
            match c.skip {
                Some(reason) => run.push(source, None, None, Outcome::Skipped { reason }),
                None => run.device(source, &c.device),
            }
        }
    }
    for device in &req.devices {
        let source = Source::Device {
            device: device.clone(),
        };
        run.device(source, device);
    }
    for path in &req.from {
        cleanup::commit_section(|| run.path(path));
    }
    for dir in &req.stash_dirs {
        let source = Source::Stash { path: dir.clone() };
        cleanup::commit_section(|| match fsx::open_root(dir) {
            Ok(root) => run.stash(&source, &root, None),
            Err(e) => run.push(
                source.clone(),
                None,
                None,
                Outcome::Unreadable {
                    reason: e.to_string(),
                },
            ),
        });
    }
    for device in &req.stash_devices {
        let source = Source::StashPartition {
            device: device.clone(),
        };
        run.device(source, device);
    }
    let same_stick = same_stick(&run.sources);
    Ok(Report {
        rescue_dir: req.rescue_dir.clone(),
        sources: run.sources,
        same_stick,
        warnings: run.warnings,
    })
}

struct Run<'a> {
    req: &'a Request,
    mounter: &'a dyn Mounter,
    dir: &'a RescueDir,
    seen: copy::Seen,
    sources: Vec<SourceReport>,
    warnings: Vec<String>,
}

impl Run<'_> {
    fn push(
        &mut self,
        source: Source,
        file: Option<String>,
        mounted_at: Option<PathBuf>,
        outcome: Outcome,
    ) {
        self.sources.push(SourceReport {
            source,
            file,
            mounted_at,
            outcome,
        });
    }

    /// Rescue [`BLOB_NAMES`] from the directory `root` of `source`.
    fn tree(&mut self, source: &Source, root: &OwnedFd, mounted_at: Option<&Path>) {
        for (i, name) in BLOB_NAMES.iter().enumerate() {
            let outcome = copy::copy_blob(
                self.dir,
                root,
                name,
                self.req.max_blob_bytes,
                &mut self.seen,
            );
            match outcome {
                Some(o) => self.push(
                    source.clone(),
                    Some((*name).to_owned()),
                    mounted_at.map(Path::to_owned),
                    o,
                ),
                // Only a missing blob is worth a line; a missing .prev is
                // the common case.
                None if i == 0 => self.push(
                    source.clone(),
                    None,
                    mounted_at.map(Path::to_owned),
                    Outcome::NoBlob,
                ),
                None => {}
            }
        }
    }

    /// Rescue what `source` holds from its directory `root`: the blob
    /// names of an ESP, or every host's blob of a stash.
    fn read(&mut self, source: &Source, root: &OwnedFd, mounted_at: Option<&Path>) {
        match source {
            Source::Stash { .. } | Source::StashPartition { .. } => {
                self.stash(source, root, mounted_at)
            }
            _ => self.tree(source, root, mounted_at),
        }
    }

    /// Rescue every blob of the stash directory `root`: each `*.enc` and
    /// `*.enc.prev` (one per host, and the previous one the step kept),
    /// sorted by name, whatever host it names. A stash without any is one
    /// [`Outcome::NoBlob`] line.
    fn stash(&mut self, source: &Source, root: &OwnedFd, mounted_at: Option<&Path>) {
        let names = match stash_names(root) {
            Ok(names) => names,
            Err(e) => {
                return self.push(
                    source.clone(),
                    None,
                    mounted_at.map(Path::to_owned),
                    Outcome::Unreadable {
                        reason: format!("cannot list it: {e}"),
                    },
                );
            }
        };
        if names.is_empty() {
            return self.push(
                source.clone(),
                None,
                mounted_at.map(Path::to_owned),
                Outcome::NoBlob,
            );
        }
        for name in names {
            let outcome = copy::copy_blob(
                self.dir,
                root,
                &name,
                self.req.max_blob_bytes,
                &mut self.seen,
            )
            // Listed a moment ago, gone now.
            .unwrap_or(Outcome::Unreadable {
                reason: "it disappeared while the stash was read".into(),
            });
            self.push(
                source.clone(),
                Some(name),
                mounted_at.map(Path::to_owned),
                outcome,
            );
        }
    }

    /// A partition or image file, with signals held off.
    fn device(&mut self, source: Source, device: &Path) {
        cleanup::commit_section(|| self.device_now(source, device));
    }

    fn device_now(&mut self, source: Source, device: &Path) {
        if let Err(reason) = probe_device(device) {
            return self.push(source, None, None, Outcome::Unreadable { reason });
        }
        if let Some(at) = self.mounter.mounted_at(device) {
            match fsx::open_root(&at) {
                Ok(root) => self.read(&source, &root, Some(&at)),
                Err(e) => self.push(
                    source,
                    None,
                    Some(at.clone()),
                    Outcome::Unreadable {
                        reason: format!("cannot open its mount point {}: {e}", at.display()),
                    },
                ),
            }
            return;
        }
        let mounted = match mount::Mounted::mount(self.mounter, &self.req.mount_base, device) {
            Ok(m) => m,
            Err(reason) => return self.push(source, None, None, Outcome::MountFailed { reason }),
        };
        match fsx::open_root(mounted.path()) {
            // The directory is closed before the unmount.
            Ok(root) => self.read(&source, &root, None),
            Err(e) => self.push(
                source.clone(),
                None,
                None,
                Outcome::Unreadable {
                    reason: format!("cannot open the mounted filesystem: {e}"),
                },
            ),
        }
        if let Err(e) = mounted.release() {
            self.warnings.push(format!("{source}: {e}"));
        }
    }

    /// A `--from` directory or file.
    fn path(&mut self, path: &Path) {
        let source = Source::Path {
            path: path.to_owned(),
        };
        match fsx::open_root(path) {
            Ok(root) => return self.tree(&source, &root, None),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {}
            Err(e) => {
                return self.push(
                    source,
                    None,
                    None,
                    Outcome::Unreadable {
                        reason: e.to_string(),
                    },
                );
            }
        }
        let (parent, name) = match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
            (Some(p), Some(n)) => (
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                },
                n,
            ),
            _ => {
                return self.push(
                    source,
                    None,
                    None,
                    Outcome::Unreadable {
                        reason: "not a directory or a file name".into(),
                    },
                );
            }
        };
        let outcome = match fsx::open_root(parent) {
            Ok(dir) => copy::copy_blob(
                self.dir,
                &dir,
                name,
                self.req.max_blob_bytes,
                &mut self.seen,
            )
            .unwrap_or(Outcome::Unreadable {
                reason: "no such file".into(),
            }),
            Err(e) => Outcome::Unreadable {
                reason: e.to_string(),
            },
        };
        // The source's path names the file already.
        self.push(source, None, None, outcome);
    }
}

/// The names in a stash directory that may be blobs: `*.enc` and
/// `*.enc.prev`, not hidden (the step's temporary files start with a dot),
/// sorted. What each is, [`copy::copy_blob`] checks.
fn stash_names(dir: &OwnedFd) -> rustix::io::Result<Vec<String>> {
    let mut d = rustix::fs::Dir::read_from(dir)?;
    let mut names = Vec::new();
    while let Some(entry) = d.read() {
        let entry = entry?;
        let Ok(name) = std::str::from_utf8(entry.file_name().to_bytes()) else {
            continue;
        };
        if !name.starts_with('.') && (name.ends_with(".enc") || name.ends_with(".enc.prev")) {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Check that `device` exists, is a block device or a regular file (an
/// image), and that its first sector reads, so that "cannot read the
/// device" is told apart from "cannot mount it".
fn probe_device(device: &Path) -> Result<(), String> {
    let fd = rustix::fs::open(
        device,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open it: {e}"))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| format!("cannot stat it: {e}"))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::BlockDevice | FileType::RegularFile => {}
        FileType::Directory => {
            return Err(
                "it is a directory, not a device or an image file (use --from for a directory)"
                    .into(),
            );
        }
        other => {
            return Err(format!(
                "it is not a block device or an image file (it is {})",
                copy::kind_name(other)
            ));
        }
    }
    let mut sector = [0u8; 512];
    rustix::io::pread(&fd, &mut sector, 0).map_err(|e| format!("read error: {e}"))?;
    Ok(())
}

/// Group the copies by stick (and host) and list those with more than one
/// distinct blob.
fn same_stick(sources: &[SourceReport]) -> Vec<SameStick> {
    type Stick = (String, Option<String>);
    let mut groups: BTreeMap<Stick, Vec<(u64, PathBuf)>> = BTreeMap::new();
    for s in sources {
        if let Outcome::Copied { stored, blob } | Outcome::Duplicate { stored, blob } = &s.outcome {
            let copies = groups
                .entry((blob.usb_uuid.clone(), blob.host.clone()))
                .or_default();
            if !copies.iter().any(|(_, p)| p == stored) {
                copies.push((blob.generation, stored.clone()));
            }
        }
    }
    groups
        .into_iter()
        .filter(|(_, copies)| copies.len() > 1)
        .map(|((usb_uuid, host), mut copies)| {
            copies.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            SameStick {
                usb_uuid,
                host,
                copies,
            }
        })
        .collect()
}
