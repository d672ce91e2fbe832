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
#![forbid(unsafe_code)]
#![deny(missing_docs)]

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
    /// default scan of the machine's ESPs; both empty means scan. A
    /// partition mounted already is read where it is mounted; an image file
    /// is always mounted anew (read-only, on its own loop device).
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
    /// The host it was sealed for; `None` for a blob of format version 1,
    /// which records none.
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
    /// so that blobs of several sticks, generations and hosts coexist. The
    /// UUID comes from an unauthenticated header, but `Header::read`
    /// admits only `[0-9a-z-]`, so it cannot hold `/` or `..`.
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
    /// The file's name in a source directory or filesystem
    /// (`zeta-creds.enc`, `zeta-creds.enc.prev`); `None` for a `--from`
    /// file (its path says it) and for a source without a file.
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
            Outcome::Unreadable { reason } => match self.source {
                Source::Path { .. } => write!(
                    f,
                    ": cannot be read ({reason}); nothing copied from it; check the path"
                ),
                _ => write!(
                    f,
                    ": cannot be read ({reason}); nothing copied from it; check the device name (lsblk) and that it is attached"
                ),
            },
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

/// Every line of the report, then the sticks with several blobs, the
/// warnings, and a summary: what the binary prints.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.sources {
            writeln!(f, "{s}")?;
        }
        for s in &self.same_stick {
            writeln!(f, "{s}")?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        let copied = self.copied().count();
        let already = self
            .sources
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Duplicate { .. }))
            .count();
        if copied + already == 0 {
            write!(
                f,
                "no blob rescued; if one exists, name where with --device DEV or --from PATH"
            )?;
        } else {
            write!(
                f,
                "{copied} blob(s) copied to {}",
                self.rescue_dir.display()
            )?;
            if already > 0 {
                write!(f, ", {already} found again and stored once")?;
            }
        }
        if self.has_failures() {
            write!(
                f,
                "; some sources could not be rescued (see above): look at them before wiping a disk"
            )?;
        }
        writeln!(f)
    }
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
        let source = Source::Device {
            device: device.clone(),
        };
        run.device(source, device);
    }
    for path in &req.from {
        cleanup::commit_section(|| run.path(path));
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
        let mounted = match mount::Mounted::mount(self.mounter, &self.req.mount_base, device) {
            Ok(m) => m,
            Err(reason) => return self.push(source, None, None, Outcome::MountFailed { reason }),
        };
        match fsx::open_root(mounted.path()) {
            // The directory is closed before the unmount.
            Ok(root) => self.tree(&source, &root, None),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::io::Write;

    use secrecy::SecretString;

    use crate::envelope::{Header, HeaderFields, Host, UsbUuid};

    /// A blob at work factor 10 (the payload is not checked by a rescue).
    fn blob(uuid: &str, generation: u64) -> Vec<u8> {
        let fields = HeaderFields {
            usb_uuid: UsbUuid::parse(uuid).unwrap(),
            log_n: 10,
            generation,
            created: 1_780_000_000,
            tool_version: "0.1.0".into(),
            persona: String::new(),
            host: Some(Host::parse("node-a").unwrap()),
        };
        let mut w = Header::seal(Vec::new(), &SecretString::from("pass"), &fields).unwrap();
        w.write_all(b"not an entry stream, which a rescue does not look at")
            .unwrap();
        w.finish().unwrap()
    }

    /// "Mounts" by copying a prepared directory's files into the mount
    /// point and "unmounts" by removing them, logging each call.
    struct Fake {
        lsblk: String,
        contents: HashMap<PathBuf, PathBuf>,
        mounted: HashMap<PathBuf, PathBuf>,
        log: RefCell<Vec<String>>,
    }

    impl Mounter for Fake {
        fn block_devices(&self) -> Result<String, String> {
            Ok(self.lsblk.clone())
        }
        fn mounted_at(&self, device: &Path) -> Option<PathBuf> {
            self.mounted.get(device).cloned()
        }
        fn mount_ro(&self, source: &Path, dir: &Path) -> Result<(), String> {
            self.log
                .borrow_mut()
                .push(format!("mount {}", source.display()));
            let from = self
                .contents
                .get(source)
                .ok_or("wrong fs type, bad option, bad superblock")?;
            for e in std::fs::read_dir(from).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
            }
            Ok(())
        }
        fn unmount(&self, dir: &Path) -> Result<(), String> {
            self.log.borrow_mut().push("umount".into());
            for e in std::fs::read_dir(dir).unwrap() {
                std::fs::remove_file(e.unwrap().path()).unwrap();
            }
            Ok(())
        }
    }

    struct World {
        t: tempfile::TempDir,
    }

    impl World {
        fn new() -> World {
            let w = World {
                t: tempfile::tempdir().unwrap(),
            };
            for d in ["dev", "mnt-base", "already", "esp-a", "esp-bad"] {
                std::fs::create_dir(w.p(d)).unwrap();
            }
            w
        }
        fn p(&self, rel: &str) -> PathBuf {
            self.t.path().join(rel)
        }
        /// A stand-in device node: a regular file whose first sector reads.
        fn device(&self, name: &str) -> PathBuf {
            let p = self.p("dev").join(name);
            std::fs::write(&p, [0u8; 512]).unwrap();
            p
        }
        fn request(&self) -> Request {
            Request {
                allow_disk: true,
                mount_base: self.p("mnt-base"),
                ..Request::new(self.p("rescued"))
            }
        }
        fn rescued(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(self.p("rescued"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        }
        fn mount_base_is_empty(&self) -> bool {
            std::fs::read_dir(self.p("mnt-base"))
                .unwrap()
                .next()
                .is_none()
        }
    }

    fn lsblk(stick_esp: &Path, esp: &Path, mounted_esp: &Path, root: &Path) -> String {
        format!(
            r#"{{"blockdevices":[
  {{"path":"/dev/loop0","type":"loop","parttype":null,"fstype":"squashfs","uuid":null,"label":null,"mountpoints":["/nix/.ro-store"]}},
  {{"path":"/dev/sda","type":"disk","parttype":null,"fstype":"iso9660","uuid":"2025-05-27-10-31-45-00","label":"nixos","mountpoints":[null],"children":[
    {{"path":"/dev/sda1","type":"part","parttype":"0x0","fstype":"iso9660","uuid":"2025-05-27-10-31-45-00","label":"nixos","mountpoints":["/iso"]}},
    {{"path":"{}","type":"part","parttype":"0xef","fstype":"vfat","uuid":"1234-ABCD","label":"EFIBOOT","mountpoints":[null]}}]}},
  {{"path":"/dev/nvme0n1","type":"disk","parttype":null,"fstype":null,"uuid":null,"label":null,"mountpoints":[null],"children":[
    {{"path":"{}","type":"part","parttype":"c12a7328-f81f-11d2-ba4b-00a0c93ec93b","fstype":"vfat","uuid":"7C1E-3A2B","label":null,"mountpoints":[null]}},
    {{"path":"{}","type":"part","parttype":"c12a7328-f81f-11d2-ba4b-00a0c93ec93b","fstype":"vfat","uuid":"7C1E-3A2C","label":null,"mountpoints":["/mnt/boot"]}},
    {{"path":"{}","type":"part","parttype":"0fc63daf-8483-4772-8e79-3d69d8477de4","fstype":"ext4","uuid":null,"label":null,"mountpoints":[null]}}]}}
]}}"#,
            stick_esp.display(),
            esp.display(),
            mounted_esp.display(),
            root.display()
        )
    }

    #[test]
    fn default_scan_mounts_each_unmounted_esp_once_reads_mounted_ones_in_place_and_skips_the_stick()
    {
        let w = World::new();
        let (stick, esp, mounted, root) = (
            w.device("sda2"),
            w.device("nvme0n1p1"),
            w.device("nvme0n1p2"),
            w.device("nvme0n1p3"),
        );
        let (old, new) = (blob("abcd-1234", 3), blob("abcd-1234", 4));
        std::fs::write(w.p("esp-a/zeta-creds.enc"), &new).unwrap();
        std::fs::write(w.p("esp-a/zeta-creds.enc.prev"), &old).unwrap();
        std::fs::write(w.p("already/zeta-creds.enc"), &new).unwrap();
        let fake = Fake {
            lsblk: lsblk(&stick, &esp, &mounted, &root),
            contents: HashMap::from([(esp.clone(), w.p("esp-a"))]),
            mounted: HashMap::from([(mounted.clone(), w.p("already"))]),
            log: RefCell::default(),
        };
        let report = run(&w.request(), &fake).unwrap();
        assert_eq!(
            *fake.log.borrow(),
            vec![format!("mount {}", esp.display()), "umount".into()]
        );
        assert!(w.mount_base_is_empty());
        let lines: Vec<String> = report.sources.iter().map(|s| s.to_string()).collect();
        let name_new = blob_name(&new, 4);
        let name_old = blob_name(&old, 3);
        let dir = w.p("rescued");
        assert_eq!(
            lines,
            vec![
                format!(
                    "{}: not read: /dev/sda is the live stick (/dev/sda holds the ISO 9660 image)",
                    stick.display()
                ),
                format!(
                    "{}: zeta-creds.enc: rescued (host node-a, stick abcd-1234, generation 4, sealed 2026-05-28 20:26:40 UTC, zeta-creds 0.1.0, format 2) to {}",
                    esp.display(),
                    dir.join(&name_new).display()
                ),
                format!(
                    "{}: zeta-creds.enc.prev: rescued (host node-a, stick abcd-1234, generation 3, sealed 2026-05-28 20:26:40 UTC, zeta-creds 0.1.0, format 2) to {}",
                    esp.display(),
                    dir.join(&name_old).display()
                ),
                format!(
                    "{} (mounted at {}): zeta-creds.enc: same bytes as {}, already rescued (host node-a, stick abcd-1234, generation 4, sealed 2026-05-28 20:26:40 UTC, zeta-creds 0.1.0, format 2); stored once",
                    mounted.display(),
                    w.p("already").display(),
                    dir.join(&name_new).display()
                ),
            ]
        );
        assert_eq!(w.rescued(), {
            let mut v = vec![name_new.clone(), name_old.clone()];
            v.sort();
            v
        });
        assert_eq!(std::fs::read(dir.join(&name_new)).unwrap(), new);
        assert_eq!(
            report.same_stick,
            vec![SameStick {
                usb_uuid: "abcd-1234".into(),
                host: Some("node-a".into()),
                copies: vec![(4, dir.join(&name_new)), (3, dir.join(&name_old))],
            }]
        );
        assert!(report.same_stick[0].to_string().ends_with(&format!(
            "; the newest is {}",
            dir.join(&name_new).display()
        )));
        assert!(!report.has_failures());
        let text = report.to_string();
        assert_eq!(text.lines().count(), 4 + 1 + 1, "{text}");
        assert!(
            text.ends_with(&format!(
                "the newest is {}\n2 blob(s) copied to {}, 1 found again and stored once\n",
                dir.join(&name_new).display(),
                dir.display()
            )),
            "{text}"
        );
    }

    fn blob_name(bytes: &[u8], generation: u64) -> String {
        use sha2::{Digest, Sha256};
        let h = Sha256::digest(bytes);
        format!(
            "abcd-1234-g{generation}-{:02x}{:02x}{:02x}{:02x}.enc",
            h[0], h[1], h[2], h[3]
        )
    }

    #[test]
    fn a_bad_blob_or_a_mount_failure_is_a_line_and_every_mount_is_undone() {
        let w = World::new();
        let (bad, unmountable) = (w.device("bad"), w.device("zeros.img"));
        std::fs::write(w.p("esp-bad/zeta-creds.enc"), b"MZ\x90\x00 some other file").unwrap();
        let fake = Fake {
            lsblk: String::new(),
            contents: HashMap::from([(bad.clone(), w.p("esp-bad"))]),
            mounted: HashMap::new(),
            log: RefCell::default(),
        };
        let req = Request {
            devices: vec![bad.clone(), unmountable.clone(), w.p("dev/missing")],
            ..w.request()
        };
        let report = run(&req, &fake).unwrap();
        assert_eq!(
            *fake.log.borrow(),
            vec![
                format!("mount {}", bad.display()),
                "umount".into(),
                format!("mount {}", unmountable.display()),
            ]
        );
        assert!(w.mount_base_is_empty());
        assert_eq!(w.rescued(), Vec::<String>::new());
        let outcomes: Vec<&Outcome> = report.sources.iter().map(|s| &s.outcome).collect();
        assert_eq!(
            outcomes,
            vec![
                &Outcome::NotABlob {
                    reason: "it does not start with the zeta-creds magic bytes".into()
                },
                &Outcome::MountFailed {
                    reason: "wrong fs type, bad option, bad superblock".into()
                },
                &Outcome::Unreadable {
                    reason: "cannot open it: No such file or directory (os error 2)".into()
                },
            ]
        );
        assert!(report.has_failures());
        assert!(report.to_string().ends_with(
            "\nno blob rescued; if one exists, name where with --device DEV or --from PATH; some sources could not be rescued (see above): look at them before wiping a disk\n"
        ));
        assert_eq!(
            report.sources[1].to_string(),
            format!(
                "{}: cannot be mounted read-only (wrong fs type, bad option, bad superblock); nothing copied from it; if it holds a blob, mount it by hand and rescue with --from DIR",
                unmountable.display()
            )
        );
    }

    #[test]
    fn a_default_scan_that_cannot_list_the_disks_stops_with_the_next_step() {
        let w = World::new();
        let fake = Fake {
            lsblk: "lsblk: unknown column: MOUNTPOINTS".into(),
            contents: HashMap::new(),
            mounted: HashMap::new(),
            log: RefCell::default(),
        };
        let err = run(&w.request(), &fake).unwrap_err();
        assert!(matches!(err, Error::ListDisks { .. }), "{err:?}");
        assert!(
            err.to_string()
                .ends_with("nothing was copied; name the sources with --device DEV or --from PATH"),
            "{err}"
        );
    }

    /// Stands in for the signal thread: it takes `commit_section` while a
    /// device is mounted, and must get it only after the unmount.
    struct SignalDuringMount {
        log: std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>,
        signal: RefCell<Option<std::thread::JoinHandle<()>>>,
    }

    impl Mounter for SignalDuringMount {
        fn block_devices(&self) -> Result<String, String> {
            Err("not used".into())
        }
        fn mounted_at(&self, _: &Path) -> Option<PathBuf> {
            None
        }
        fn mount_ro(&self, _: &Path, _: &Path) -> Result<(), String> {
            self.log.lock().unwrap().push("mount");
            let log = std::sync::Arc::clone(&self.log);
            *self.signal.borrow_mut() = Some(std::thread::spawn(move || {
                cleanup::commit_section(|| log.lock().unwrap().push("signal handled"));
            }));
            std::thread::sleep(std::time::Duration::from_millis(200));
            Ok(())
        }
        fn unmount(&self, _: &Path) -> Result<(), String> {
            self.log.lock().unwrap().push("umount");
            Ok(())
        }
    }

    #[test]
    fn a_signal_during_a_mount_is_handled_after_the_unmount() {
        let w = World::new();
        let device = w.device("esp.img");
        let m = SignalDuringMount {
            log: Default::default(),
            signal: RefCell::default(),
        };
        let req = Request {
            devices: vec![device],
            ..w.request()
        };
        run(&req, &m).unwrap();
        m.signal.borrow_mut().take().unwrap().join().unwrap();
        assert_eq!(
            *m.log.lock().unwrap(),
            vec!["mount", "umount", "signal handled"]
        );
        assert!(w.mount_base_is_empty());
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_780_000_000), "2026-05-28 20:26:40 UTC");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
    }
}
