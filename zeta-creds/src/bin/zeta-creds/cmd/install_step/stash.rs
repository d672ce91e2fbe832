//! The stash on the stick: one blob per host, `DIR/<host>.enc`, so that
//! credentials follow the stick to a brand-new machine and one stick
//! serves a fleet. `DIR` is `--stash DIR`, or a filesystem labelled
//! `ZETA-CREDS` on the live stick's own disk ([`find_partition`], a pure
//! function of `lsblk`'s JSON), mounted read-write in a private directory
//! only while the step reads from it or writes to it ([`Partition`]), each
//! time inside `cleanup::commit_section` so that a signal waits for the
//! unmount.
//!
//! Every write is a temporary file, fsynced, renamed over `<host>.enc`,
//! the previous one kept as `<host>.enc.prev` the same way; a write that
//! fails (a read-only or full stash) leaves no partial file there.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::fs::{AtFlags, Mode, OFlags};
use zeta_creds::bundle::AtomicFile;
use zeta_creds::cleanup::{self, Guard};
use zeta_creds::fsx;
use zeta_creds::rescue::scan::{BlockDevice, LSBLK_ARGS, descendants, parse_lsblk};
use zeta_creds::rescue::{MAX_BLOB_BYTES, default_mount_base};

/// The filesystem label of a stash partition.
pub const STASH_LABEL: &str = "ZETA-CREDS";

/// Mount options of a stash partition: read-write, nothing executable.
pub const MOUNT_OPTIONS: &str = "rw,nosuid,nodev,noexec";

/// `<host>.enc`.
pub fn file_name(host: &str) -> String {
    format!("{host}.enc")
}

/// The stash filesystem found on the live stick's disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its device node.
    pub device: PathBuf,
    /// Where it is mounted already, if it is.
    pub mounted_at: Option<PathBuf>,
}

/// The filesystem labelled [`STASH_LABEL`] on the same disk as `stick`
/// (the live stick's partition, or the whole disk for an ISO written to
/// it): the first such node below the top-level device that holds
/// `stick`. `None` when there is none.
pub fn find_partition(devices: &[BlockDevice], stick: &Path) -> Option<Found> {
    let stick = stick.to_str()?;
    let top = devices
        .iter()
        .find(|top| descendants(top).iter().any(|d| d.path == stick))?;
    descendants(top)
        .into_iter()
        .find(|d| d.path != stick && d.label.as_deref() == Some(STASH_LABEL))
        .map(|d| Found {
            device: PathBuf::from(&d.path),
            mounted_at: d.mountpoints.iter().flatten().next().map(PathBuf::from),
        })
}

/// Run `lsblk` and look for the stash partition of `stick` (a block
/// device; an image file has none). Errors are `None`: the stash is an
/// extra, its absence is said by the caller.
pub fn discover(stick: &Path) -> Option<Found> {
    use std::os::unix::fs::FileTypeExt;
    let dev = std::fs::canonicalize(stick).ok()?;
    if !std::fs::metadata(&dev).ok()?.file_type().is_block_device() {
        return None;
    }
    let out = Command::new("lsblk")
        .args(LSBLK_ARGS)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let devices = parse_lsblk(std::str::from_utf8(&out.stdout).ok()?).ok()?;
    find_partition(&devices, &dev)
}

/// The stash partition mounted read-write on a private directory (0700, a
/// fresh name under `/run` or the temporary directory); dropping it
/// unmounts and removes the directory. Hold `cleanup::commit_section`
/// while it lives, so that a signal waits for the unmount.
pub struct Partition {
    base: OwnedFd,
    name: String,
    path: PathBuf,
    mounted: bool,
}

impl Partition {
    /// Mount `device` read-write on a new private directory.
    pub fn mount(device: &Path) -> Result<Partition, String> {
        let base_path = default_mount_base();
        let base = fsx::open_root(&base_path)
            .map_err(|e| format!("cannot open {}: {e}", base_path.display()))?;
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).map_err(|e| format!("random name: {e}"))?;
        let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("zeta-creds-stash.{hex}");
        rustix::fs::mkdirat(&base, name.as_str(), Mode::from_raw_mode(0o700)).map_err(|e| {
            format!(
                "cannot create a mount point in {}: {e}",
                base_path.display()
            )
        })?;
        let mut p = Partition {
            base,
            path: base_path.join(&name),
            name,
            mounted: false,
        };
        let out = Command::new("mount")
            .args(["-o", MOUNT_OPTIONS, "--"])
            .arg(device)
            .arg(&p.path)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount {} failed: {}",
                device.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        p.mounted = true;
        Ok(p)
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        if self.mounted {
            let ok = Command::new("umount")
                .arg("--")
                .arg(&self.path)
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                super::ui::warn(format!(
                    "cannot unmount the stash at {}: run `umount {}`",
                    self.path.display(),
                    self.path.display()
                ));
                return;
            }
        }
        let _ = rustix::fs::unlinkat(&self.base, self.name.as_str(), AtFlags::REMOVEDIR);
    }
}

/// Open `src` (no symlink followed) and check it is a regular file of at
/// most [`MAX_BLOB_BYTES`].
fn open_blob(src: &Path) -> io::Result<File> {
    let fd = rustix::fs::open(
        src,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    let file = File::from(fd);
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_BLOB_BYTES {
        return Err(io::Error::other(format!(
            "{} bytes, more than the {MAX_BLOB_BYTES} a blob may have",
            meta.len()
        )));
    }
    Ok(file)
}

/// Copy the blob `src` to `dst` whole: a temporary file beside `dst`,
/// fsynced, renamed over it (the previous one kept as `dst.prev` when
/// `keep_previous`). On any failure `dst` is as it was and no temporary
/// file is left. Returns whether a `.prev` was written.
pub fn place(src: &Path, dst: &Path, keep_previous: bool) -> io::Result<bool> {
    let mut from = open_blob(src)?.take(MAX_BLOB_BYTES);
    let mut out = AtomicFile::create(dst)?;
    io::copy(&mut from, out.file())?;
    out.file().flush()?;
    out.commit_keeping_previous(keep_previous)
}

/// Whether `a` and `b` hold the same bytes (both readable).
fn same_bytes(a: &Path, b: &Path) -> bool {
    let read = |p: &Path| -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        open_blob(p)?.read_to_end(&mut v)?;
        Ok(v)
    };
    matches!((read(a), read(b)), (Ok(x), Ok(y)) if x == y)
}

/// What writing the stash did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wrote {
    /// Written; the previous one kept as `.prev` if there was one.
    Written {
        /// Whether a `.prev` was kept.
        kept_previous: bool,
    },
    /// The stash already held these bytes.
    Unchanged,
}

/// Why the stash was not written, in words for the operator.
pub fn explain(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(c) if c == rustix::io::Errno::NOSPC.raw_os_error() => {
            "the stash is full (no space left on it)".to_owned()
        }
        Some(c)
            if c == rustix::io::Errno::ROFS.raw_os_error()
                || c == rustix::io::Errno::ACCESS.raw_os_error()
                || c == rustix::io::Errno::PERM.raw_os_error() =>
        {
            format!("the stash is not writable ({e})")
        }
        _ => e.to_string(),
    }
}

/// Write the verified blob `blob` to `DIR/<host>.enc` (see [`place`]),
/// unless it holds the same bytes already.
pub fn write(dir: &Path, host: &str, blob: &Path) -> io::Result<Wrote> {
    let dst = dir.join(file_name(host));
    if same_bytes(blob, &dst) {
        return Ok(Wrote::Unchanged);
    }
    place(blob, &dst, true).map(|kept_previous| Wrote::Written { kept_previous })
}

/// A private copy of the stash partition's `<host>.enc`, made while the
/// partition was mounted (a private 0700 directory in the temporary
/// directory); removed on drop and on a signal.
pub struct Staged {
    path: PathBuf,
    _file: Guard,
    _dir: Guard,
}

impl Staged {
    /// The copy.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Mount the stash partition, copy `<host>.enc` out of it (if it is
/// there), unmount: all inside `commit_section`. `Ok(None)`: no blob for
/// this host there.
pub fn stage_from_partition(device: &Path, host: &str) -> Result<Option<Staged>, String> {
    cleanup::commit_section(|| {
        let part = Partition::mount(device)?;
        let staged = stage(part.path(), host, &std::env::temp_dir());
        drop(part);
        staged
    })
}

/// Copy `dir/<host>.enc`, if it is there, into a new private directory
/// (0700) under `tmp`. `Ok(None)`: no blob for this host in `dir`.
pub fn stage(dir: &Path, host: &str, tmp: &Path) -> Result<Option<Staged>, String> {
    let src = dir.join(file_name(host));
    if std::fs::symlink_metadata(&src).is_err() {
        return Ok(None);
    }
    let base = std::sync::Arc::new(
        fsx::open_root(tmp).map_err(|e| format!("cannot open {}: {e}", tmp.display()))?,
    );
    let mut rnd = [0u8; 8];
    getrandom::fill(&mut rnd).map_err(|e| format!("random name: {e}"))?;
    let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    let dir_name = format!("zeta-creds-stash-copy.{hex}");
    rustix::fs::mkdirat(&*base, dir_name.as_str(), Mode::from_raw_mode(0o700))
        .map_err(|e| format!("cannot create a directory in {}: {e}", tmp.display()))?;
    let dir_guard = Guard::created_dir(&base, &[], &dir_name);
    let file_guard = Guard::temp_file(&base, std::slice::from_ref(&dir_name), &file_name(host));
    let path = tmp.join(&dir_name).join(file_name(host));
    place(&src, &path, false).map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
    Ok(Some(Staged {
        path,
        _file: file_guard,
        _dir: dir_guard,
    }))
}

/// Mount the stash partition and [`write`] to it, then unmount: all
/// inside `commit_section`.
pub fn write_to_partition(device: &Path, host: &str, blob: &Path) -> Result<Wrote, String> {
    cleanup::commit_section(|| {
        let part = Partition::mount(device)?;
        let wrote = write(part.path(), host, blob).map_err(|e| explain(&e));
        drop(part);
        wrote
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A NixOS ISO written to a stick (the ISO 9660 image on the whole
    /// disk, its hybrid partitions below), a ZETA-CREDS partition appended
    /// after it, and the machine's own disk with an ESP.
    const LSBLK: &str = r#"{"blockdevices": [
      {"path": "/dev/sda", "type": "disk", "parttype": null, "fstype": "iso9660", "uuid": "2024-05-01-00-00-00-00", "label": "nixos-24.05-x86_64", "mountpoints": [null],
       "children": [
         {"path": "/dev/sda1", "type": "part", "parttype": "0x0", "fstype": "iso9660", "uuid": "2024-05-01-00-00-00-00", "label": "nixos-24.05-x86_64", "mountpoints": ["/iso"]},
         {"path": "/dev/sda2", "type": "part", "parttype": "0xef", "fstype": "vfat", "uuid": "1234-ABCD", "label": "EFIBOOT", "mountpoints": [null]},
         {"path": "/dev/sda3", "type": "part", "parttype": "0xc", "fstype": "vfat", "uuid": "5678-9ABC", "label": "ZETA-CREDS", "mountpoints": [null]}
       ]},
      {"path": "/dev/nvme0n1", "type": "disk", "parttype": null, "fstype": null, "uuid": null, "label": null, "mountpoints": [null],
       "children": [
         {"path": "/dev/nvme0n1p1", "type": "part", "parttype": "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "fstype": "vfat", "uuid": "AAAA-BBBB", "label": "ZETA-CREDS", "mountpoints": ["/mnt/boot"]}
       ]}
    ]}"#;

    #[test]
    fn the_stash_partition_is_on_the_sticks_own_disk() {
        let devices = parse_lsblk(LSBLK).unwrap();
        let want = Some(Found {
            device: PathBuf::from("/dev/sda3"),
            mounted_at: None,
        });
        assert_eq!(find_partition(&devices, Path::new("/dev/sda1")), want);
        assert_eq!(
            find_partition(&devices, Path::new("/dev/sda")),
            want,
            "the ISO on the whole disk"
        );
        // The machine's disk has a partition with the same label: it is
        // not the stick's, and is found only from a device on that disk.
        assert_eq!(
            find_partition(&devices, Path::new("/dev/nvme0n1")),
            Some(Found {
                device: PathBuf::from("/dev/nvme0n1p1"),
                mounted_at: Some(PathBuf::from("/mnt/boot")),
            })
        );
        assert_eq!(find_partition(&devices, Path::new("/dev/sdz1")), None);
        // The label itself is never the stick's partition.
        assert_eq!(find_partition(&devices, Path::new("/dev/nvme0n1p1")), None);
    }

    #[test]
    fn no_labelled_partition_is_none() {
        let devices = parse_lsblk(
            r#"{"blockdevices": [{"path": "/dev/sdb", "type": "disk", "parttype": null, "fstype": null, "uuid": null, "label": null, "mountpoints": [null],
              "children": [{"path": "/dev/sdb1", "type": "part", "parttype": "0x83", "fstype": "ext4", "uuid": "u", "label": "zeta-creds", "mountpoints": ["/run/live/medium"]}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            find_partition(&devices, Path::new("/dev/sdb1")),
            None,
            "the label is matched exactly (FAT labels are upper case)"
        );
    }

    #[test]
    fn writes_are_whole_and_keep_the_previous() {
        let t = tempfile::tempdir().unwrap();
        let (stash, esp) = (t.path().join("stash"), t.path().join("esp"));
        std::fs::create_dir_all(&stash).unwrap();
        std::fs::create_dir_all(&esp).unwrap();
        let blob = esp.join("zeta-creds.enc");
        std::fs::write(&blob, b"generation one").unwrap();
        assert_eq!(
            write(&stash, "node-a", &blob).unwrap(),
            Wrote::Written {
                kept_previous: false
            }
        );
        assert_eq!(write(&stash, "node-a", &blob).unwrap(), Wrote::Unchanged);
        std::fs::write(&blob, b"generation two").unwrap();
        assert_eq!(
            write(&stash, "node-a", &blob).unwrap(),
            Wrote::Written {
                kept_previous: true
            }
        );
        let read = |n: &str| std::fs::read(stash.join(n)).unwrap();
        assert_eq!(read("node-a.enc"), b"generation two");
        assert_eq!(read("node-a.enc.prev"), b"generation one");
        let mut names: Vec<String> = std::fs::read_dir(&stash)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["node-a.enc", "node-a.enc.prev"]);
    }

    #[test]
    fn a_staged_copy_is_private_and_removed_when_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let (stash, tmp) = (t.path().join("stash"), t.path().join("tmp"));
        std::fs::create_dir_all(&stash).unwrap();
        std::fs::create_dir_all(&tmp).unwrap();
        assert!(stage(&stash, "node-a", &tmp).unwrap().is_none());
        std::fs::write(stash.join("node-a.enc"), b"node-a's blob").unwrap();
        std::fs::write(stash.join("node-b.enc"), b"node-b's blob").unwrap();
        let staged = stage(&stash, "node-a", &tmp).unwrap().unwrap();
        assert_eq!(std::fs::read(staged.path()).unwrap(), b"node-a's blob");
        let dir = staged.path().parent().unwrap().to_owned();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        drop(staged);
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
        assert_eq!(
            std::fs::read_dir(&stash).unwrap().count(),
            2,
            "the stash is only read"
        );
    }

    #[test]
    fn a_failed_write_leaves_the_stash_as_it_was() {
        let t = tempfile::tempdir().unwrap();
        let blob = t.path().join("zeta-creds.enc");
        std::fs::write(&blob, b"blob").unwrap();
        // The stash is missing: nothing is created anywhere.
        let e = write(&t.path().join("missing"), "a", &blob).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        // A source that is a symlink is refused.
        std::os::unix::fs::symlink(&blob, t.path().join("link")).unwrap();
        let stash = t.path().join("stash");
        std::fs::create_dir(&stash).unwrap();
        assert!(write(&stash, "a", &t.path().join("link")).is_err());
        assert_eq!(std::fs::read_dir(&stash).unwrap().count(), 0);
        assert_eq!(
            explain(&io::Error::from_raw_os_error(
                rustix::io::Errno::NOSPC.raw_os_error()
            )),
            "the stash is full (no space left on it)"
        );
        assert!(
            explain(&io::Error::from_raw_os_error(
                rustix::io::Errno::ROFS.raw_os_error()
            ))
            .starts_with("the stash is not writable")
        );
    }
}
