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
//! * `--from PATH`: a directory holding `zeta-creds.enc`, or a blob file.
//!
//! A device already mounted is read where it is mounted; any other is
//! mounted in a private directory and unmounted after ([`mount::Mounted`]).
//! The result is a typed [`Report`] (one [`SourceReport`] per file looked
//! at) that the binary prints; its `Display` impls are the messages.

pub mod copy;
pub mod mount;
pub mod scan;

use std::collections::BTreeMap;
use std::fmt;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};
use serde::Serialize;

pub use copy::RescueDir;
pub use mount::{Mounter, SystemMounter};

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
    /// `--device`: partitions or image files. With `from`, replaces the
    /// default scan of the machine's ESPs; both empty means scan.
    pub devices: Vec<PathBuf>,
    /// `--from`: directories holding a blob, or blob files.
    pub from: Vec<PathBuf>,
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

/// Where a source came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Source {
    /// Found by the default scan.
    Esp {
        /// The partition (or disk).
        device: PathBuf,
        /// Why it was picked.
        why: scan::Why,
    },
    /// Named with `--device`.
    Device {
        /// The partition or image file.
        device: PathBuf,
    },
    /// Named with `--from`.
    Path {
        /// The directory or file.
        path: PathBuf,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Esp { device, .. } => write!(f, "{}", device.display()),
            Source::Device { device } => write!(f, "{}", device.display()),
            Source::Path { path } => write!(f, "{}", path.display()),
        }
    }
}

/// What the header of a rescued blob says. **Unauthenticated**: anyone who
/// could write the source could have forged it; the passphrase checks it
/// later (`zeta-creds verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobInfo {
    /// The USB stick the blob is bound to.
    pub usb_uuid: String,
    /// The host it was sealed for; `None` until the format records it.
    pub host: Option<String>,
    /// Its generation.
    pub generation: u64,
    /// When it was sealed, seconds since the Unix epoch.
    pub created: u64,
    /// Its persona, empty for none.
    pub persona: String,
    /// The zeta-creds version that wrote it.
    pub tool_version: String,
    /// Its format version.
    pub format_version: u8,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
}

impl BlobInfo {
    /// The copy's name: `<usb-uuid>-g<generation>-<8 hex of sha256>.enc`,
    /// so that blobs of several sticks, generations and hosts coexist.
    pub fn file_name(&self) -> String {
        format!(
            "{}-g{}-{}.enc",
            self.usb_uuid,
            self.generation,
            &self.sha256[..8]
        )
    }
}

impl fmt::Display for BlobInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host {}, stick {}, generation {}, sealed {}",
            self.host.as_deref().unwrap_or("(not recorded)"),
            self.usb_uuid,
            self.generation,
            utc(self.created)
        )?;
        if !self.persona.is_empty() {
            write!(f, ", persona {}", self.persona)?;
        }
        write!(
            f,
            ", zeta-creds {}, format {}",
            self.tool_version, self.format_version
        )
    }
}

/// What happened to one file (or one source without a file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Outcome {
    /// Copied to `stored`.
    Copied {
        /// The copy in the rescue directory.
        stored: PathBuf,
        /// Its header.
        blob: BlobInfo,
    },
    /// The same bytes are already in the rescue directory (this run or an
    /// earlier one); stored once.
    Duplicate {
        /// The copy already there.
        stored: PathBuf,
        /// Its header.
        blob: BlobInfo,
    },
    /// The source holds no file named `zeta-creds.enc`.
    NoBlob,
    /// Not read: it is on the live stick.
    Skipped {
        /// Why.
        reason: String,
    },
    /// The file is not a blob (or of a format this version cannot read).
    NotABlob {
        /// What was found.
        reason: String,
    },
    /// The file is a blob cut short.
    Truncated {
        /// Where it ends.
        reason: String,
    },
    /// The file is larger than the limit.
    TooLarge {
        /// Its size (at least).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The device or file cannot be read.
    Unreadable {
        /// Why.
        reason: String,
    },
    /// The device could not be mounted read-only.
    MountFailed {
        /// Why.
        reason: String,
    },
    /// The rescue directory is full.
    NoSpace,
    /// Writing the copy failed otherwise.
    WriteFailed {
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// Whether this is a problem the operator should look at (not a copy,
    /// a duplicate, an empty source or the live stick).
    pub fn is_failure(&self) -> bool {
        !matches!(
            self,
            Outcome::Copied { .. }
                | Outcome::Duplicate { .. }
                | Outcome::NoBlob
                | Outcome::Skipped { .. }
        )
    }
}

/// One line of the report: a source, the file looked at, and the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceReport {
    /// Where from.
    pub source: Source,
    /// The file's name in the source (`zeta-creds.enc`, a `--from` file's
    /// name), when a file was looked at.
    pub file: Option<String>,
    /// Where the device was mounted already, when it was read there.
    pub mounted_at: Option<PathBuf>,
    /// What happened.
    pub outcome: Outcome,
}

impl fmt::Display for SourceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(at) = &self.mounted_at {
            write!(f, " (mounted at {})", at.display())?;
        }
        if let Some(file) = &self.file {
            write!(f, ": {file}")?;
        }
        match &self.outcome {
            Outcome::Copied { stored, blob } => {
                write!(f, ": rescued ({blob}) to {}", stored.display())
            }
            Outcome::Duplicate { stored, blob } => write!(
                f,
                ": same bytes as {}, already rescued ({blob}); stored once",
                stored.display()
            ),
            Outcome::NoBlob => write!(f, ": no zeta-creds.enc here; nothing to rescue"),
            Outcome::Skipped { reason } => write!(f, ": not read: {reason}"),
            Outcome::NotABlob { reason } => write!(
                f,
                ": not a zeta-creds blob ({reason}); not copied, the source is left as it is"
            ),
            Outcome::Truncated { reason } => write!(
                f,
                ": a truncated zeta-creds blob ({reason}); not copied, a restore would refuse it; look for a whole copy (zeta-creds.enc.prev, a stash)"
            ),
            Outcome::TooLarge { size, limit } => write!(
                f,
                ": {size} bytes, more than the {limit} bytes a rescue copies; not copied, check it with `zeta-creds inspect` and copy it by hand if it is a blob"
            ),
            Outcome::Unreadable { reason } => write!(
                f,
                ": cannot be read ({reason}); nothing copied from it; check the name (lsblk) and that the device is attached"
            ),
            Outcome::MountFailed { reason } => write!(
                f,
                ": cannot be mounted read-only ({reason}); nothing copied from it; if it holds a blob, mount it by hand and rescue with --from DIR"
            ),
            Outcome::NoSpace => write!(
                f,
                ": the rescue directory is full; this blob was not copied and no partial file was left; make room (a larger tmpfs) and run the rescue again"
            ),
            Outcome::WriteFailed { reason } => write!(
                f,
                ": copy failed ({reason}); no partial file was left; run the rescue again"
            ),
        }
    }
}

/// Several distinct blobs rescued for the same stick (and host, once the
/// format records it): all are kept; the newest generation is the one to
/// restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SameStick {
    /// The stick.
    pub usb_uuid: String,
    /// The host, when recorded.
    pub host: Option<String>,
    /// The copies, newest generation first: (generation, stored path).
    pub copies: Vec<(u64, PathBuf)>,
}

impl fmt::Display for SameStick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} blobs for stick {}", self.copies.len(), self.usb_uuid)?;
        if let Some(host) = &self.host {
            write!(f, " and host {host}")?;
        }
        write!(f, " are all kept: ")?;
        let list: Vec<String> = self
            .copies
            .iter()
            .map(|(g, p)| format!("generation {g} at {}", p.display()))
            .collect();
        write!(f, "{}", list.join(", "))?;
        match self.copies.as_slice() {
            [(a, _), (b, _), ..] if a == b => write!(
                f,
                "; the newest generation is held by more than one blob (different hosts, or sealed apart): check each with `zeta-creds inspect`"
            ),
            [(_, newest), ..] => write!(f, "; the newest is {}", newest.display()),
            [] => Ok(()),
        }
    }
}

/// The whole result, for the binary to print (or serialize).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where copies went.
    pub rescue_dir: PathBuf,
    /// One entry per file looked at, or per source without a file.
    pub sources: Vec<SourceReport>,
    /// Sticks with several distinct blobs rescued.
    pub same_stick: Vec<SameStick>,
    /// Problems that did not stop the rescue (a mount left behind).
    pub warnings: Vec<String>,
}

impl Report {
    /// The copies made by this run.
    pub fn copied(&self) -> impl Iterator<Item = (&PathBuf, &BlobInfo)> {
        self.sources.iter().filter_map(|s| match &s.outcome {
            Outcome::Copied { stored, blob } => Some((stored, blob)),
            _ => None,
        })
    }

    /// Whether some source could not be rescued (see
    /// [`Outcome::is_failure`]) or a warning was raised.
    pub fn has_failures(&self) -> bool {
        !self.warnings.is_empty() || self.sources.iter().any(|s| s.outcome.is_failure())
    }
}

/// Run the rescue. Fails as a whole only when the rescue directory is
/// unusable or, for the default scan, when the disks cannot be listed;
/// everything else is a line of the report.
///
/// Each mount lasts while one device is read, inside
/// [`cleanup::commit_section`]: a SIGINT, SIGTERM or SIGHUP that arrives
/// meanwhile takes effect after the device is unmounted again.
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
    if req.devices.is_empty() && req.from.is_empty() {
        let json = mounter
            .block_devices()
            .map_err(|reason| Error::ListDisks { reason })?;
        let devices = scan::parse_lsblk(&json).map_err(|e| Error::ListDisks {
            reason: format!("unexpected lsblk output: {e}"),
        })?;
        for c in scan::candidates(&devices) {
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
        run.device(
            Source::Device {
                device: device.clone(),
            },
            device,
        );
    }
    for path in &req.from {
        run.path(path);
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

    /// A partition or image file.
    fn device(&mut self, source: Source, device: &Path) {
        if let Err(reason) = probe_device(device) {
            return self.push(source, None, None, Outcome::Unreadable { reason });
        }
        if let Some(at) = self.mounter.mounted_at(device) {
            match fsx::open_root(&at) {
                Ok(root) => self.tree(&source, &root, Some(&at)),
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
        cleanup::commit_section(|| {
            let mounted = match mount::Mounted::mount(self.mounter, &self.req.mount_base, device) {
                Ok(m) => m,
                Err(reason) => {
                    return self.push(source, None, None, Outcome::MountFailed { reason });
                }
            };
            match fsx::open_root(mounted.path()) {
                Ok(root) => {
                    self.tree(&source, &root, None);
                    drop(root);
                }
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
        });
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
        self.push(source, Some(name.to_owned()), None, outcome);
    }
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

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the Unix epoch.
pub fn utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
