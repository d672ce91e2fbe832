//! The previous installation, when it is still on the disk: find its root
//! filesystem, recognise it by its state record, `etc/zeta/usb-uuid` and
//! host name, and seal a fresh blob from its *current* credential files
//! into the rescue directory (issue 18, item 4).
//!
//! A blob is sealed once, at install time; rotating logins (OAuth refresh
//! tokens) make it stale within hours. At a reinstall the old root is
//! usually still there when `install-step rescue` runs, holding the live
//! tokens. [`reseal`] seals them under the passphrase of the rescued blob
//! (which must open that blob first, so the operator keeps the same one),
//! for the same stick and host, at generation `old + 1`, under a name
//! starting with [`RESEALED_PREFIX`], so that the step after the install
//! picks it (the newest generation for the host) and says what it is.
//!
//! Nothing here writes to a disk: the old root is mounted read-only
//! ([`mount_options`]: `ro`, on a read-only loop device, no journal or log
//! replay, `nosuid,nodev,noexec`) in a private directory and unmounted
//! after ([`super::mount::Mounted`]); the only file written is the fresh
//! blob, atomically, in the rescue directory. What can be decided without
//! a disk ([`classify`], [`candidates`], [`find_root_dir`], [`identify`],
//! [`matching_blob`]) is a pure function, unit-tested.
#![forbid(unsafe_code)]

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use rustix::fs::FileType;
use secrecy::SecretString;

use super::mount::{Mounter, run};
use super::scan::{BlockDevice, descendants, live_reason};
use super::{BlobInfo, Outcome, Report};
use crate::bundle;
use crate::cleanup::Guard;
use crate::envelope::{self, Binding, Header, Host, UsbUuid};
use crate::{fsx, hostname, state};

/// The fresh blob's name in the rescue directory starts with this:
/// `resealed-<host>-g<generation>.enc`. The install step says a blob so
/// named is the fresh re-seal.
pub const RESEALED_PREFIX: &str = "resealed-";

/// The old system's manifest, below its root.
pub const MANIFEST_PATH: &str = "etc/zeta/creds-manifest.toml";

/// The file the install step wrote: the stick the old system restores
/// from, below its root.
pub const USB_UUID_PATH: &str = "etc/zeta/usb-uuid";

/// The subvolumes a btrfs root is commonly in, when the default subvolume
/// is the top level (`@` from Ubuntu-style layouts, `root` from Fedora and
/// many NixOS guides), looked at in this order after the top itself.
pub const BTRFS_ROOT_SUBVOLUMES: [&str; 2] = ["@", "root"];

/// The largest manifest read from an old root (the manifest format's own
/// bound is far above any real one).
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// A root filesystem type the rescue can mount read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    /// ext4 (and ext2/ext3, which the ext4 driver mounts).
    Ext4,
    /// XFS.
    Xfs,
    /// Btrfs: its default subvolume, then [`BTRFS_ROOT_SUBVOLUMES`].
    Btrfs,
}

impl FsKind {
    /// The `mount -t` name.
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Ext4 => "ext4",
            FsKind::Xfs => "xfs",
            FsKind::Btrfs => "btrfs",
        }
    }
}

/// What the filesystem type `fstype` (as `blkid`/`lsblk` print it) means
/// for the search: a root the rescue mounts, or why it is not looked at.
/// `Ok(None)`: not a root filesystem at all (vfat, swap, …), said nothing
/// about.
pub fn classify(fstype: &str) -> Result<Option<FsKind>, String> {
    match fstype {
        "ext4" | "ext3" | "ext2" => Ok(Some(FsKind::Ext4)),
        "xfs" => Ok(Some(FsKind::Xfs)),
        "btrfs" => Ok(Some(FsKind::Btrfs)),
        "crypto_LUKS" => Err(
            "it is LUKS-encrypted: the rescue does not unlock it (open it with cryptsetup and pass the mapping with --old-root, or re-seal on the running system before the reinstall)".into(),
        ),
        "zfs_member" => Err(
            "it is a ZFS pool member: the rescue does not import pools (import it read-only and pass its root directory's device, or re-seal on the running system before the reinstall)".into(),
        ),
        _ => Ok(None),
    }
}

/// The `mount -o` options of an old root: read-only on a read-only loop
/// device, nothing replayed (`noload`: no ext4 journal replay;
/// `norecovery`: no XFS log recovery; `rescue=nologreplay`: no btrfs log
/// replay), and nothing on it runnable or a device.
pub fn mount_options(kind: FsKind) -> String {
    let replay = match kind {
        FsKind::Ext4 => "noload",
        FsKind::Xfs => "norecovery",
        FsKind::Btrfs => "rescue=nologreplay",
    };
    format!("ro,loop,nosuid,nodev,noexec,{replay}")
}

/// A device the default search looks at for an old root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The device node.
    pub device: PathBuf,
    /// Its filesystem: mountable, or why it is skipped.
    pub kind: Result<FsKind, String>,
}

/// The devices of `lsblk`'s tree that may hold an old root: every
/// partition, disk, LVM volume or open LUKS mapping holding ext4, xfs or
/// btrfs, plus LUKS and ZFS ones listed with why they are skipped. Loop
/// devices, optical drives and the live stick are not the machine's disks.
pub fn candidates(devices: &[BlockDevice]) -> Vec<Candidate> {
    let mut out = Vec::new();
    for top in devices {
        if top.kind == "loop" || top.kind == "rom" || live_reason(top).is_some() {
            continue;
        }
        for d in descendants(top) {
            if !matches!(d.kind.as_str(), "part" | "disk" | "lvm" | "crypt") {
                continue;
            }
            let Some(fstype) = d.fstype.as_deref() else {
                continue;
            };
            let kind = match classify(fstype) {
                Ok(Some(k)) => Ok(k),
                Ok(None) => continue,
                Err(why) => Err(why),
            };
            let device = PathBuf::from(&d.path);
            if !out.iter().any(|c: &Candidate| c.device == device) {
                out.push(Candidate { device, kind });
            }
        }
    }
    out
}

/// The filesystem type of `device` (a partition or an image file), probed
/// with `blkid -p` (no cache), for `--old-root`.
pub fn probe_fstype(device: &Path) -> Result<String, String> {
    let out = Command::new("blkid")
        .args(["-p", "-o", "value", "-s", "TYPE", "--"])
        .arg(device)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run blkid: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || text.is_empty() {
        return Err("blkid finds no filesystem on it".into());
    }
    Ok(text)
}

/// Mounts an old root read-only with [`mount_options`] for its type.
#[derive(Debug, Clone, Copy)]
pub struct RootMounter {
    /// The filesystem type.
    pub kind: FsKind,
}

impl Mounter for RootMounter {
    fn block_devices(&self) -> Result<String, String> {
        Err("not used for an old root".into())
    }

    fn mounted_at(&self, _device: &Path) -> Option<PathBuf> {
        None
    }

    fn mount_ro(&self, source: &Path, dir: &Path) -> Result<(), String> {
        let options = mount_options(self.kind);
        run(
            "mount",
            &[
                "-t".as_ref(),
                self.kind.name().as_ref(),
                "-o".as_ref(),
                options.as_ref(),
                "--".as_ref(),
                source.as_os_str(),
                dir.as_os_str(),
            ],
        )
    }

    fn unmount(&self, dir: &Path) -> Result<(), String> {
        run("umount", &["--".as_ref(), dir.as_os_str()])
    }
}

fn is_dir_at(dir: &OwnedFd, name: &str) -> bool {
    matches!(fsx::lstat(dir, name), Ok(Some(st)) if fsx::file_type(&st) == FileType::Directory)
}

/// Where the root of the installation is in the mounted filesystem `top`:
/// `""` when `top` has `etc/`, else the first of
/// [`BTRFS_ROOT_SUBVOLUMES`] that has (a btrfs whose default subvolume is
/// the top level shows its subvolumes as directories). `None`: it does not
/// look like a root.
pub fn find_root_dir(top: &OwnedFd) -> Option<&'static str> {
    if is_dir_at(top, "etc") {
        return Some("");
    }
    BTRFS_ROOT_SUBVOLUMES.into_iter().find(|sub| {
        fsx::open_dir(top, sub)
            .map(|d| is_dir_at(&d, "etc"))
            .unwrap_or(false)
    })
}

/// The old installation, as its own files describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldRoot {
    /// `etc/zeta/usb-uuid`: the stick it restores from.
    pub usb_uuid: UsbUuid,
    /// Its host name (`etc/hostname`, resolved inside it).
    pub host: Host,
    /// The generation its state record says it last restored.
    pub restored_generation: u64,
    /// Its own manifest's text, if it has one ([`MANIFEST_PATH`]).
    pub manifest: Option<String>,
}

/// Read [`OldRoot`] from the root directory `root` (shown as `shown`).
/// The error says what is missing, for the "not re-sealing" line: a root
/// without a state record was never restored by zeta-creds, one without
/// `etc/zeta/usb-uuid` never installed by its step.
pub fn identify(root: &OwnedFd, shown: &Path) -> Result<OldRoot, String> {
    let record = PathBuf::from("/")
        .join(state::STATE_DIR.join("/"))
        .join(state::STATE_FILE);
    let restored_generation = match state::load(root) {
        state::Loaded::Present(s) => s.generation,
        state::Loaded::Absent => {
            return Err(format!(
                "it has no state record ({}): zeta-creds never restored there",
                record.display()
            ));
        }
        state::Loaded::Corrupt(why) => {
            return Err(format!(
                "its state record {} is unusable: {why}",
                record.display()
            ));
        }
    };
    let uuid_text = hostname::read_file_inside(root, USB_UUID_PATH, 256)
        .map_err(|why| format!("/{USB_UUID_PATH}: {why}"))?;
    let usb_uuid = UsbUuid::parse(&String::from_utf8_lossy(&uuid_text))
        .map_err(|e| format!("/{USB_UUID_PATH}: {e}"))?;
    let host = hostname::from_file(root, shown).map_err(|e| e.to_string())?;
    let manifest = match hostname::read_file_inside(root, MANIFEST_PATH, MAX_MANIFEST_BYTES) {
        Ok(bytes) => {
            Some(String::from_utf8(bytes).map_err(|_| format!("/{MANIFEST_PATH} is not UTF-8"))?)
        }
        Err(_) if !exists_inside(root, MANIFEST_PATH) => None,
        Err(why) => return Err(format!("/{MANIFEST_PATH}: {why}")),
    };
    Ok(OldRoot {
        usb_uuid,
        host,
        restored_generation,
        manifest,
    })
}

/// Whether `path` has a directory entry (of any kind) below `root`,
/// without following the last component.
fn exists_inside(root: &OwnedFd, path: &str) -> bool {
    let parts = fsx::components(path);
    let Some((name, parents)) = parts.split_last() else {
        return false;
    };
    match fsx::open_dir_path(root, parents) {
        Ok(dir) => matches!(fsx::lstat(&dir, name), Ok(Some(_))),
        Err(_) => false,
    }
}

/// Every blob in the rescue directory this run found: copied now, or
/// found again (the same bytes stored by this run or an earlier one),
/// each copy once.
pub fn rescued(report: &Report) -> Vec<(&PathBuf, &BlobInfo)> {
    let mut out: Vec<(&PathBuf, &BlobInfo)> = Vec::new();
    for s in &report.sources {
        if let Outcome::Copied { stored, blob } | Outcome::Duplicate { stored, blob } = &s.outcome
            && !out.iter().any(|(p, _)| *p == stored)
        {
            out.push((stored, blob));
        }
    }
    out
}

/// The rescued blob the old root `old` belongs to: bound to its stick and
/// sealed for its host, of the highest generation (then the first path).
/// `None`: none of the rescued blobs is this system's.
pub fn matching_blob<'a>(
    old: &OldRoot,
    rescued: impl IntoIterator<Item = (&'a PathBuf, &'a BlobInfo)>,
) -> Option<(&'a PathBuf, &'a BlobInfo)> {
    let mut best: Option<(&PathBuf, &BlobInfo)> = None;
    for (path, blob) in rescued {
        if blob.usb_uuid != old.usb_uuid.as_str() || blob.host.as_deref() != Some(old.host.as_str())
        {
            continue;
        }
        if best.is_none_or(|(p, b)| {
            (blob.generation, std::cmp::Reverse(path)) > (b.generation, std::cmp::Reverse(p))
        }) {
            best = Some((path, blob));
        }
    }
    best
}

/// Why [`reseal`] did not write a blob. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResealError {
    /// The passphrase does not open the rescued blob: the caller may ask
    /// again.
    #[error("the passphrase does not open the rescued blob {}: {source}", blob.display())]
    WrongPassphrase {
        /// The rescued blob.
        blob: PathBuf,
        /// What the envelope said.
        #[source]
        source: envelope::Error,
    },
    /// The rescued blob cannot be read, is not this old system's (another
    /// stick or host), or is damaged.
    #[error("cannot read the rescued blob {}: {reason}", blob.display())]
    Blob {
        /// The rescued blob.
        blob: PathBuf,
        /// Why.
        reason: String,
    },
    /// Its generation cannot go higher.
    #[error("the rescued blob {} has the highest generation there is; re-seal on the installed system with `zeta-creds bundle` and a new passphrase", blob.display())]
    Generation {
        /// The rescued blob.
        blob: PathBuf,
    },
    /// The manifest cannot be staged in the rescue directory.
    #[error("cannot stage the old system's manifest in {}: {source}", dir.display())]
    Stage {
        /// The rescue directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Picking or sealing the old system's files failed.
    #[error(transparent)]
    Bundle(#[from] bundle::Error),
}

/// A rescued blob that opened with the passphrase: its header fields are
/// authenticated. Only [`open_rescued`] makes one.
#[derive(Debug)]
pub struct Opened {
    blob: PathBuf,
    fields: envelope::HeaderFields,
    passphrase: SecretString,
}

impl Opened {
    /// The blob's header fields (its MAC verified).
    pub fn fields(&self) -> &envelope::HeaderFields {
        &self.fields
    }

    /// The blob.
    pub fn path(&self) -> &Path {
        &self.blob
    }
}

/// Open the rescued blob `blob` with `passphrase`, bound to `old`'s stick
/// and host: the check that comes before any file of the old root is
/// sealed, so that the operator keeps the passphrase the blob has. The
/// passphrase is kept in [`Opened`] for [`reseal`] (and dropped, zeroized,
/// on an error).
pub fn open_rescued(
    blob: &Path,
    old: &OldRoot,
    passphrase: SecretString,
) -> Result<Opened, ResealError> {
    let file_err = |reason: String| ResealError::Blob {
        blob: blob.to_owned(),
        reason,
    };
    let dir = fsx::open_root(fsx::parent_of(blob)).map_err(|e| file_err(e.to_string()))?;
    let name = blob
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| file_err("no UTF-8 file name".into()))?;
    let mut file = fsx::open_file(&dir, name).map_err(|e| file_err(e.to_string()))?;
    let header = Header::read(&mut file).map_err(|e| file_err(e.to_string()))?;
    let binding = Binding {
        usb_uuid: Some(&old.usb_uuid),
        host: Some(&old.host),
    };
    let unlocked = header
        .unlock(&passphrase, &binding, envelope::DEFAULT_MAX_LOG_N)
        .map_err(|source| match source {
            // Only a key that does not unwrap is worth another try.
            envelope::Error::WrongPassphrase => ResealError::WrongPassphrase {
                blob: blob.to_owned(),
                source,
            },
            other => file_err(other.to_string()),
        })?;
    let fields = unlocked.fields().clone();
    Ok(Opened {
        blob: blob.to_owned(),
        fields,
        passphrase,
    })
}

/// What [`reseal`] is to do.
#[derive(Debug, Clone)]
pub struct Reseal<'a> {
    /// The old installation.
    pub old: &'a OldRoot,
    /// Where its root is (the mounted filesystem, or a subvolume in it).
    pub root: &'a Path,
    /// The rescued blob, opened with the passphrase ([`open_rescued`]).
    pub opened: &'a Opened,
    /// The manifest when the old root has none (the step's default).
    pub default_manifest: Option<&'a Path>,
    /// The rescue directory (the fresh blob and a staged manifest go there).
    pub rescue_dir: &'a Path,
}

/// What [`reseal`] wrote.
#[derive(Debug, Clone)]
pub struct Resealed {
    /// The fresh blob.
    pub path: PathBuf,
    /// Its generation (the rescued blob's + 1, or more).
    pub generation: u64,
    /// The manifest used: the old root's, or the default one.
    pub manifest: String,
    /// How many files and directories it carries.
    pub items: usize,
}

/// Seal a fresh blob from the old root's current files into the rescue
/// directory, under the passphrase that opened the rescued blob
/// ([`Reseal::opened`]), with
/// the old system's manifest (else `default_manifest`), for the same stick,
/// host, persona and work factor, at generation `old + 1` (at least one
/// above what its state record restored). Atomic: a failure leaves no file.
pub fn reseal(r: &Reseal<'_>) -> Result<Resealed, ResealError> {
    let fields = r.opened.fields();
    let generation = fields
        .generation
        .checked_add(1)
        .ok_or_else(|| ResealError::Generation {
            blob: r.opened.blob.clone(),
        })?;
    let stage_err = |source: std::io::Error| ResealError::Stage {
        dir: r.rescue_dir.to_owned(),
        source,
    };
    // The old root's manifest is usually a store symlink of *that* system:
    // it was read resolved inside the old root, and is staged (0600, not a
    // blob name) in the rescue directory for the bundle to load.
    let mut staged: Option<Guard> = None;
    let (manifest, shown) = match (&r.old.manifest, r.default_manifest) {
        (Some(text), _) => {
            let dir = Arc::new(fsx::open_root(r.rescue_dir).map_err(stage_err)?);
            let (name, fd) = fsx::create_temp(&*dir).map_err(stage_err)?;
            staged = Some(Guard::temp_file(&dir, &[], &name));
            let mut file = std::fs::File::from(fd);
            std::io::Write::write_all(&mut file, text.as_bytes()).map_err(stage_err)?;
            (
                r.rescue_dir.join(&name),
                format!("the old system's /{MANIFEST_PATH}"),
            )
        }
        (None, Some(default)) => (default.to_owned(), default.display().to_string()),
        (None, None) => {
            return Err(ResealError::Stage {
                dir: r.rescue_dir.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "the old system has no /{MANIFEST_PATH} and no default manifest was found"
                    ),
                ),
            });
        }
    };
    let out = r
        .rescue_dir
        .join(format!("{RESEALED_PREFIX}{}-g{generation}.enc", r.old.host));
    let opts = bundle::Options {
        manifest,
        source_root: r.root.to_owned(),
        out: out.clone(),
        usb_uuid: r.old.usb_uuid.clone(),
        host: r.old.host.clone(),
        persona: fields.persona.clone(),
        log_n: fields.log_n,
        force: false,
        backup: false,
        user: None,
        allow_other_host: false,
    };
    let mut plan = bundle::plan(&opts)?;
    // Authenticated above: the rescued blob's MAC verified.
    plan.generation = plan.generation.max(generation);
    // A re-seal of an earlier run (same name, same generation) is replaced
    // by this fresher one, not continued: its generation must stay the one
    // in its name.
    plan.existing = None;
    // The old system is read, never written (it is mounted read-only, and
    // rescue changes nothing on the disks it reads): its state record is
    // not raised, whatever the bundle would do on a running system.
    plan.raise_record = false;
    let written = bundle::write(&opts, &plan, &r.opened.passphrase)?;
    drop(staged);
    Ok(Resealed {
        path: out,
        generation: written.generation,
        manifest: shown,
        items: plan.pick.items.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn ext_xfs_btrfs_are_roots_luks_and_zfs_are_skipped_with_why_others_are_not_roots() {
        assert_eq!(classify("ext4"), Ok(Some(FsKind::Ext4)));
        assert_eq!(classify("ext3"), Ok(Some(FsKind::Ext4)));
        assert_eq!(classify("xfs"), Ok(Some(FsKind::Xfs)));
        assert_eq!(classify("btrfs"), Ok(Some(FsKind::Btrfs)));
        assert!(
            classify("crypto_LUKS")
                .unwrap_err()
                .contains("LUKS-encrypted")
        );
        assert!(classify("zfs_member").unwrap_err().contains("ZFS pool"));
        for other in ["vfat", "swap", "iso9660", "squashfs", ""] {
            assert_eq!(classify(other), Ok(None), "{other}");
        }
    }

    #[test]
    fn every_mount_is_read_only_without_replay_and_runs_nothing() {
        for (kind, replay) in [
            (FsKind::Ext4, "noload"),
            (FsKind::Xfs, "norecovery"),
            (FsKind::Btrfs, "rescue=nologreplay"),
        ] {
            let o = mount_options(kind);
            let opts: Vec<&str> = o.split(',').collect();
            for want in ["ro", "loop", "nosuid", "nodev", "noexec", replay] {
                assert!(opts.contains(&want), "{kind:?}: {o} lacks {want}");
            }
            assert!(!opts.contains(&"rw"));
        }
    }

    const LSBLK: &str = r#"{"blockdevices":[
  {"path":"/dev/loop0","type":"loop","parttype":null,"fstype":"ext4","uuid":null,"label":null,"mountpoints":["/nix/.rw-store"]},
  {"path":"/dev/sda","type":"disk","parttype":null,"fstype":"iso9660","uuid":null,"label":"nixos","mountpoints":[null],"children":[
     {"path":"/dev/sda1","type":"part","parttype":"0x0","fstype":"iso9660","uuid":null,"label":"nixos","mountpoints":["/iso"]},
     {"path":"/dev/sda3","type":"part","parttype":null,"fstype":"ext4","uuid":null,"label":"persist","mountpoints":[null]}]},
  {"path":"/dev/nvme0n1","type":"disk","parttype":null,"fstype":null,"uuid":null,"label":null,"mountpoints":[null],"children":[
     {"path":"/dev/nvme0n1p1","type":"part","parttype":"c12a7328-f81f-11d2-ba4b-00a0c93ec93b","fstype":"vfat","uuid":"7C1E-3A2B","label":null,"mountpoints":[null]},
     {"path":"/dev/nvme0n1p2","type":"part","parttype":null,"fstype":"ext4","uuid":null,"label":"nixos","mountpoints":[null]},
     {"path":"/dev/nvme0n1p3","type":"part","parttype":null,"fstype":"swap","uuid":null,"label":null,"mountpoints":[null]},
     {"path":"/dev/nvme0n1p4","type":"part","parttype":null,"fstype":"crypto_LUKS","uuid":null,"label":null,"mountpoints":[null],"children":[
        {"path":"/dev/mapper/home","type":"crypt","parttype":null,"fstype":"xfs","uuid":null,"label":null,"mountpoints":[null]}]},
     {"path":"/dev/nvme0n1p5","type":"part","parttype":null,"fstype":"zfs_member","uuid":null,"label":"rpool","mountpoints":[null]},
     {"path":"/dev/nvme0n1p6","type":"part","parttype":null,"fstype":"btrfs","uuid":null,"label":null,"mountpoints":[null]}]},
  {"path":"/dev/sr0","type":"rom","parttype":null,"fstype":"ext4","uuid":null,"label":null,"mountpoints":[null]}
]}"#;

    #[test]
    fn the_search_lists_the_machines_root_filesystems_and_skips_the_stick_loops_and_roms() {
        let devices = super::super::scan::parse_lsblk(LSBLK).unwrap();
        let got: Vec<(String, Result<FsKind, bool>)> = candidates(&devices)
            .into_iter()
            .map(|c| (c.device.display().to_string(), c.kind.map_err(|_| true)))
            .collect();
        assert_eq!(
            got,
            [
                ("/dev/nvme0n1p2".to_owned(), Ok(FsKind::Ext4)),
                ("/dev/nvme0n1p4".to_owned(), Err(true)),
                ("/dev/nvme0n1p5".to_owned(), Err(true)),
                ("/dev/nvme0n1p6".to_owned(), Ok(FsKind::Btrfs)),
                ("/dev/mapper/home".to_owned(), Ok(FsKind::Xfs)),
            ]
        );
    }

    fn dir_fd(p: &Path) -> OwnedFd {
        fsx::open_root(p).unwrap()
    }

    #[test]
    fn the_root_is_the_top_or_a_common_btrfs_subvolume() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        assert_eq!(find_root_dir(&dir_fd(t.path())), Some(""));
        for sub in ["@", "root"] {
            let t = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(t.path().join(sub).join("etc")).unwrap();
            std::fs::create_dir_all(t.path().join("@home")).unwrap();
            assert_eq!(find_root_dir(&dir_fd(t.path())), Some(sub));
        }
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("home/etc")).unwrap();
        assert_eq!(find_root_dir(&dir_fd(t.path())), None, "not a root");
        // A symlinked etc is not followed out of the filesystem.
        let t = tempfile::tempdir().unwrap();
        symlink("/etc", t.path().join("etc")).unwrap();
        assert_eq!(find_root_dir(&dir_fd(t.path())), None);
    }

    /// A NixOS-like old root: host name and manifest are store symlinks.
    fn old_root(dir: &Path, state: Option<&str>, uuid: Option<&str>) {
        let store = dir.join("nix/store/0000-etc/etc");
        std::fs::create_dir_all(store.join("zeta")).unwrap();
        std::fs::create_dir_all(dir.join("etc/zeta")).unwrap();
        std::fs::write(store.join("hostname"), "Node-A\n").unwrap();
        std::fs::write(store.join("zeta/creds-manifest.toml"), "version = 1\n").unwrap();
        symlink("/nix/store/0000-etc/etc", dir.join("etc/static")).unwrap();
        symlink("/etc/static/hostname", dir.join("etc/hostname")).unwrap();
        symlink(
            "/etc/static/zeta/creds-manifest.toml",
            dir.join("etc/zeta/creds-manifest.toml"),
        )
        .unwrap();
        if let Some(uuid) = uuid {
            std::fs::write(dir.join("etc/zeta/usb-uuid"), uuid).unwrap();
        }
        if let Some(state) = state {
            std::fs::create_dir_all(dir.join("var/lib/zeta-creds")).unwrap();
            std::fs::write(dir.join("var/lib/zeta-creds/state.json"), state).unwrap();
        }
    }

    const STATE: &str = r#"{"version":1,"generation":3,"files":{}}"#;

    #[test]
    fn an_old_root_is_known_by_its_state_record_stick_and_host_read_inside_it() {
        let t = tempfile::tempdir().unwrap();
        old_root(t.path(), Some(STATE), Some("DEAD-BEEF\n"));
        let old = identify(&dir_fd(t.path()), t.path()).unwrap();
        assert_eq!(old.usb_uuid.as_str(), "dead-beef");
        assert_eq!(old.host.as_str(), "node-a");
        assert_eq!(old.restored_generation, 3);
        assert_eq!(old.manifest.as_deref(), Some("version = 1\n"));

        // Without its own manifest: None (the default is the caller's).
        std::fs::remove_file(t.path().join("etc/zeta/creds-manifest.toml")).unwrap();
        assert_eq!(
            identify(&dir_fd(t.path()), t.path()).unwrap().manifest,
            None
        );
    }

    #[test]
    fn an_old_root_without_its_record_or_stick_or_with_a_bad_one_is_not_used_and_says_why() {
        let cases: [(Option<&str>, Option<&str>, &str); 5] = [
            (None, Some("DEAD-BEEF"), "no state record"),
            (Some("{not json"), Some("DEAD-BEEF"), "is unusable"),
            (
                Some(r#"{"version":9,"generation":1,"files":{}}"#),
                Some("DEAD-BEEF"),
                "unknown version",
            ),
            (Some(STATE), None, "etc/zeta/usb-uuid"),
            (Some(STATE), Some("not/a uuid"), "etc/zeta/usb-uuid"),
        ];
        for (state, uuid, want) in cases {
            let t = tempfile::tempdir().unwrap();
            old_root(t.path(), state, uuid);
            let err = identify(&dir_fd(t.path()), t.path()).unwrap_err();
            assert!(err.contains(want), "{err} lacks {want}");
        }
        // A manifest link that leaves the root is refused, not followed.
        let t = tempfile::tempdir().unwrap();
        old_root(t.path(), Some(STATE), Some("DEAD-BEEF"));
        std::fs::remove_file(t.path().join("etc/zeta/creds-manifest.toml")).unwrap();
        symlink(
            "../../../../../../../../../../etc/passwd",
            t.path().join("etc/zeta/creds-manifest.toml"),
        )
        .unwrap();
        let err = identify(&dir_fd(t.path()), t.path()).unwrap_err();
        assert!(err.contains("creds-manifest.toml"), "{err}");
    }

    fn info(uuid: &str, host: Option<&str>, generation: u64) -> BlobInfo {
        BlobInfo {
            usb_uuid: uuid.into(),
            host: host.map(str::to_owned),
            generation,
            created: 1_780_000_000,
            persona: String::new(),
            tool_version: "0.1.0".into(),
            format_version: 2,
            size: 1000,
            sha256: "ab".repeat(32),
        }
    }

    #[test]
    fn the_matching_blob_is_this_sticks_and_hosts_newest() {
        let old = OldRoot {
            usb_uuid: UsbUuid::parse("DEAD-BEEF").unwrap(),
            host: Host::parse("node-a").unwrap(),
            restored_generation: 1,
            manifest: None,
        };
        let blobs = [
            (PathBuf::from("a1"), info("dead-beef", Some("node-a"), 1)),
            (PathBuf::from("a3"), info("dead-beef", Some("node-a"), 3)),
            (PathBuf::from("a2"), info("dead-beef", Some("node-a"), 2)),
            (PathBuf::from("b9"), info("dead-beef", Some("node-b"), 9)),
            (PathBuf::from("c9"), info("cafe-f00d", Some("node-a"), 9)),
            (PathBuf::from("v1"), info("dead-beef", None, 9)),
        ];
        let got = matching_blob(&old, blobs.iter().map(|(p, i)| (p, i))).unwrap();
        assert_eq!(got.0, &PathBuf::from("a3"));
        let others = &blobs[3..];
        assert!(matching_blob(&old, others.iter().map(|(p, i)| (p, i))).is_none());
    }
}
