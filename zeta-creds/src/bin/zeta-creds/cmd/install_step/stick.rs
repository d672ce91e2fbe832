//! The live USB stick: which block device the live system booted from
//! (`findmnt`), and its filesystem UUID (`blkid`), checked as a
//! [`UsbUuid`].

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use zeta_creds::envelope::UsbUuid;

use super::exit::{Fail, StepExit};

/// Where live systems mount the medium they booted from: NixOS, Debian
/// live, dracut, Ubuntu.
pub const LIVE_MOUNTS: [&str; 4] = ["/iso", "/run/live/medium", "/run/initramfs/live", "/cdrom"];

const LSBLK_HINT: &str = "`lsblk -f` lists the devices and their UUIDs";

/// The stick's UUID, as blkid printed it and normalized.
#[derive(Debug, Clone)]
pub struct StickUuid {
    /// As printed (e.g. `DEAD-BEEF`): what `usb-uuid` records.
    pub raw: String,
    /// Normalized.
    pub uuid: UsbUuid,
}

/// The last line `findmnt -n -o COLUMN --mountpoint MOUNTPOINT` prints.
fn findmnt(column: &str, mountpoint: &str) -> Option<String> {
    let out = Command::new("findmnt")
        .args(["-n", "-o", column, "--mountpoint", mountpoint])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .last()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
}

fn is_block_device(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

/// The block device `SOURCE` names: a bind mount reads `/dev/sdb1[/path]`.
pub fn source_device(source: &str) -> &str {
    source.split('[').next().unwrap_or(source)
}

/// The block device mounted at `mountpoint`, if any. When the name it was
/// mounted by is gone (NixOS's stage 1 mounts /iso from a /dev/root
/// symlink), the kernel's MAJ:MIN says which device it is.
fn live_device(mountpoint: &str) -> Option<PathBuf> {
    let source = findmnt("SOURCE", mountpoint)?;
    let dev = PathBuf::from(source_device(&source));
    if is_block_device(&dev) {
        return Some(dev);
    }
    let majmin: String = findmnt("MAJ:MIN", mountpoint)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if majmin.is_empty() {
        return None;
    }
    let sys = std::fs::canonicalize(Path::new("/sys/dev/block").join(&majmin)).ok()?;
    let dev = Path::new("/dev").join(sys.file_name()?);
    is_block_device(&dev).then_some(dev)
}

/// `--usb-device`, or the device mounted at one of [`LIVE_MOUNTS`].
/// Returns the device and, when found, where it was mounted.
pub fn find(explicit: Option<&str>) -> Result<(PathBuf, Option<&'static str>), Fail> {
    let (dev, at) = match explicit {
        Some(dev) => (PathBuf::from(dev), None),
        None => LIVE_MOUNTS
            .iter()
            .find_map(|m| live_device(m).map(|d| (d, Some(*m))))
            .ok_or_else(|| {
                Fail::new(
                    StepExit::Missing,
                    format!(
                        "cannot tell which device the live system booted from (no block device is mounted at {})",
                        LIVE_MOUNTS.join(" ")
                    ),
                )
                .hint(format!("pass --usb-device DEV; {LSBLK_HINT}"))
            })?,
    };
    if !dev.exists() {
        return Err(Fail::new(
            StepExit::Missing,
            format!("USB device {} does not exist", dev.display()),
        )
        .hint(LSBLK_HINT));
    }
    Ok((dev, at))
}

/// The filesystem UUID on `dev`, from `blkid -s UUID -o value`.
pub fn uuid(dev: &Path) -> Result<StickUuid, Fail> {
    let printed = Command::new("blkid")
        .args(["-s", "UUID", "-o", "value"])
        .arg(dev)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    parse_uuid(&printed, dev)
}

/// What blkid printed, all whitespace removed, as a [`UsbUuid`].
pub fn parse_uuid(printed: &str, dev: &Path) -> Result<StickUuid, Fail> {
    let raw: String = printed.chars().filter(|c| !c.is_whitespace()).collect();
    if raw.is_empty() {
        return Err(Fail::new(
            StepExit::Missing,
            format!("blkid found no filesystem UUID on {}", dev.display()),
        )
        .hint(format!(
            "is it the live stick? {LSBLK_HINT}; pass --usb-device DEV"
        )));
    }
    let uuid = UsbUuid::parse(&raw).map_err(|_| {
        Fail::new(
            StepExit::Missing,
            format!(
                "blkid printed '{raw}' for {}, which is not a UUID zeta-creds accepts ([0-9a-z-], 1 to 64 characters)",
                dev.display()
            ),
        )
    })?;
    Ok(StickUuid { raw, uuid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_mount_sources_name_their_device() {
        assert_eq!(source_device("/dev/sdb1[/iso]"), "/dev/sdb1");
        assert_eq!(source_device("/dev/sdb1"), "/dev/sdb1");
    }

    #[test]
    fn blkid_output_is_normalized_or_refused_with_exit_6() {
        let dev = Path::new("/dev/sdz1");
        let s = parse_uuid("DEAD-BEEF\n", dev).unwrap();
        assert_eq!(
            (s.raw.as_str(), s.uuid.as_str()),
            ("DEAD-BEEF", "dead-beef")
        );
        let e = parse_uuid("\n", dev).unwrap_err();
        assert_eq!(e.exit, StepExit::Missing);
        assert_eq!(e.message, "blkid found no filesystem UUID on /dev/sdz1");
        let e = parse_uuid("ab_cd", dev).unwrap_err();
        assert_eq!(e.exit, StepExit::Missing);
        assert!(e.message.contains("not a UUID zeta-creds accepts"));
    }

    #[test]
    fn a_missing_device_is_exit_6() {
        let e = find(Some("/nonexistent/zeta-creds-stick")).unwrap_err();
        assert_eq!(e.exit, StepExit::Missing);
        assert!(e.message.ends_with("does not exist"));
    }
}
