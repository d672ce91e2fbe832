//! Which of the machine's block devices may hold a blob: a pure function of
//! `lsblk`'s JSON, and of `/proc/self/mountinfo` for "is it mounted
//! already". Both are text in, values out, so they are tested over
//! captured samples without any disk.

use std::path::PathBuf;

use serde::Deserialize;

/// The GPT partition type GUID of an EFI system partition (UEFI spec
/// §5.3.3), as `lsblk -o PARTTYPE` prints it.
pub const ESP_TYPE_GUID: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

/// The MBR partition type of an EFI system partition, as `lsblk` prints it.
pub const ESP_TYPE_MBR: &str = "0xef";

/// The arguments `lsblk` is run with (no shell); [`parse_lsblk`] reads
/// its output. `MOUNTPOINTS` needs util-linux 2.37 or later. `NAME` is
/// the column lsblk draws its tree in: without it lsblk prints a flat list
/// (partitions beside their disk, no `children`), and neither the live
/// stick nor the stash partition on the stick's disk can be told apart.
pub const LSBLK_ARGS: &[&str] = &[
    "--json",
    "--bytes",
    "-o",
    "NAME,PATH,TYPE,PARTTYPE,FSTYPE,UUID,LABEL,MOUNTPOINTS",
];

/// One node of `lsblk --json`'s tree.
#[derive(Debug, Clone, Deserialize)]
pub struct BlockDevice {
    /// The device node, e.g. `/dev/nvme0n1p1`.
    pub path: String,
    /// `disk`, `part`, `loop`, `rom`, `crypt`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The partition type: a GPT GUID or an MBR `0x..` byte.
    pub parttype: Option<String>,
    /// The filesystem type blkid sees, e.g. `vfat`.
    pub fstype: Option<String>,
    /// The filesystem UUID (a FAT serial for vfat).
    pub uuid: Option<String>,
    /// The filesystem label.
    pub label: Option<String>,
    /// Where it is mounted; `[null]` when it is not.
    #[serde(default)]
    pub mountpoints: Vec<Option<String>>,
    /// Partitions and holders below it.
    #[serde(default)]
    pub children: Vec<BlockDevice>,
}

#[derive(Deserialize)]
struct Lsblk {
    blockdevices: Vec<BlockDevice>,
}

/// Parse `lsblk` output made with [`LSBLK_ARGS`].
pub fn parse_lsblk(json: &str) -> Result<Vec<BlockDevice>, serde_json::Error> {
    Ok(serde_json::from_str::<Lsblk>(json)?.blockdevices)
}

/// Why a device is a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Why {
    /// Its partition type is the ESP's ([`ESP_TYPE_GUID`], [`ESP_TYPE_MBR`]).
    EspType,
    /// It holds a vfat filesystem (an ESP or `/boot` without the type).
    Vfat,
}

/// A device the default rescue looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The device node.
    pub device: PathBuf,
    /// Why it was picked.
    pub why: Why,
    /// `Some(reason)` when it is on the live stick and is therefore not
    /// read (the stick's own boot partition holds no installed blob).
    pub skip: Option<String>,
}

fn is_esp_type(parttype: Option<&str>) -> bool {
    parttype.is_some_and(|t| {
        t.eq_ignore_ascii_case(ESP_TYPE_GUID) || t.eq_ignore_ascii_case(ESP_TYPE_MBR)
    })
}

/// `dev` and every device below it (partitions, and what they hold),
/// breadth first.
pub fn descendants(dev: &BlockDevice) -> Vec<&BlockDevice> {
    let mut out = vec![dev];
    let mut i = 0;
    while i < out.len() {
        out.extend(out[i].children.iter());
        i += 1;
    }
    out
}

/// Why a whole top-level device is the live stick, if it is: it holds an
/// ISO 9660 filesystem (the NixOS installer image written to a stick, or
/// a CD) or something mounted at `/iso`, where the NixOS installer mounts
/// its image.
pub(crate) fn live_reason(top: &BlockDevice) -> Option<String> {
    descendants(top).into_iter().find_map(|d| {
        if d.fstype.as_deref() == Some("iso9660") {
            Some(format!(
                "{} is the live stick ({} holds the ISO 9660 image)",
                top.path, d.path
            ))
        } else if d.mountpoints.iter().flatten().any(|m| m == "/iso") {
            Some(format!(
                "{} is the live stick ({} is mounted at /iso)",
                top.path, d.path
            ))
        } else {
            None
        }
    })
}

/// The devices a default rescue reads, in `lsblk` order: every partition or
/// disk whose partition type is the ESP's or that holds a vfat filesystem.
/// Loop devices (images, the live system's squashfs) and optical drives
/// are not the machine's disks and are left out; candidates on the live
/// stick are listed with [`Candidate::skip`] set.
pub fn candidates(devices: &[BlockDevice]) -> Vec<Candidate> {
    let mut out = Vec::new();
    for top in devices {
        if top.kind == "loop" || top.kind == "rom" {
            continue;
        }
        let live = live_reason(top);
        for d in descendants(top) {
            if d.kind != "part" && d.kind != "disk" {
                continue;
            }
            let why = if is_esp_type(d.parttype.as_deref()) {
                Why::EspType
            } else if d.fstype.as_deref() == Some("vfat") {
                Why::Vfat
            } else {
                continue;
            };
            out.push(Candidate {
                device: PathBuf::from(&d.path),
                why,
                skip: live.clone(),
            });
        }
    }
    out
}

/// Where the filesystem on the block device `major:minor` is mounted, from
/// `/proc/self/mountinfo` text: the mount points whose root is the
/// filesystem's root (a bind mount of a subdirectory does not show the
/// blob's directory).
pub fn mountpoints_of(mountinfo: &str, major: u32, minor: u32) -> Vec<PathBuf> {
    let want = format!("{major}:{minor}");
    mountinfo
        .lines()
        .filter_map(|line| {
            let mut f = line.split(' ');
            let (_id, _parent, dev, root, point) =
                (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
            (dev == want && root == "/").then(|| PathBuf::from(unescape(point)))
        })
        .collect()
}

/// Undo mountinfo's octal escapes (`\040` for a space, `\134` for `\`).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A NixOS installer booted from a stick on a machine with an NVMe disk
    /// (ESP + root), a second SATA disk with a FAT data partition, the
    /// stick (the ISO image, its El Torito ESP, and a ZETA-CREDS stash),
    /// the live system's squashfs on a loop device, and an empty DVD drive
    /// with a disc: `lsblk` 2.39 output with LSBLK_ARGS.
    const NIXOS_LIVE: &str = r#"{
   "blockdevices": [
      {"path":"/dev/loop0", "type":"loop", "parttype":null, "fstype":"squashfs", "uuid":null, "label":null, "mountpoints":["/nix/.ro-store"]},
      {"path":"/dev/sda", "type":"disk", "parttype":null, "fstype":"iso9660", "uuid":"2025-05-27-10-31-45-00", "label":"nixos-minimal-25.05-x86_64", "mountpoints":[null],
         "children": [
            {"path":"/dev/sda1", "type":"part", "parttype":"0x0", "fstype":"iso9660", "uuid":"2025-05-27-10-31-45-00", "label":"nixos-minimal-25.05-x86_64", "mountpoints":["/iso"]},
            {"path":"/dev/sda2", "type":"part", "parttype":"0xef", "fstype":"vfat", "uuid":"1234-ABCD", "label":"EFIBOOT", "mountpoints":[null]},
            {"path":"/dev/sda3", "type":"part", "parttype":"0x83", "fstype":"vfat", "uuid":"5E7A-0001", "label":"ZETA-CREDS", "mountpoints":[null]}
         ]
      },
      {"path":"/dev/sdb", "type":"disk", "parttype":null, "fstype":null, "uuid":null, "label":null, "mountpoints":[null],
         "children": [
            {"path":"/dev/sdb1", "type":"part", "parttype":"ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", "fstype":"vfat", "uuid":"0AB1-22CD", "label":"DATA", "mountpoints":[null]},
            {"path":"/dev/sdb2", "type":"part", "parttype":"0fc63daf-8483-4772-8e79-3d69d8477de4", "fstype":"ext4", "uuid":"8f1c9a3e-2b4d-4a51-9e0f-1c2d3e4f5a6b", "label":null, "mountpoints":[null]}
         ]
      },
      {"path":"/dev/sr0", "type":"rom", "parttype":null, "fstype":"vfat", "uuid":"0000-0001", "label":null, "mountpoints":[null]},
      {"path":"/dev/nvme0n1", "type":"disk", "parttype":null, "fstype":null, "uuid":null, "label":null, "mountpoints":[null],
         "children": [
            {"path":"/dev/nvme0n1p1", "type":"part", "parttype":"C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "fstype":"vfat", "uuid":"7C1E-3A2B", "label":"ESP", "mountpoints":[null]},
            {"path":"/dev/nvme0n1p2", "type":"part", "parttype":"0fc63daf-8483-4772-8e79-3d69d8477de4", "fstype":"ext4", "uuid":"3b2f6f7e-4a5e-4a8f-9d21-6f0e7a8b9c0d", "label":"nixos", "mountpoints":[null]}
         ]
      }
   ]
}"#;

    fn c(device: &str, why: Why, skip: Option<&str>) -> Candidate {
        Candidate {
            device: device.into(),
            why,
            skip: skip.map(str::to_owned),
        }
    }

    #[test]
    fn picks_the_machines_esps_and_fat_partitions_and_skips_the_live_stick() {
        let devices = parse_lsblk(NIXOS_LIVE).unwrap();
        let live = "/dev/sda is the live stick (/dev/sda holds the ISO 9660 image)";
        assert_eq!(
            candidates(&devices),
            vec![
                c("/dev/sda2", Why::EspType, Some(live)),
                c("/dev/sda3", Why::Vfat, Some(live)),
                c("/dev/sdb1", Why::Vfat, None),
                c("/dev/nvme0n1p1", Why::EspType, None),
            ]
        );
    }

    #[test]
    fn a_stick_found_by_its_iso_mount_alone_is_skipped_too() {
        // A stick whose image lsblk does not label iso9660 (a hybrid image
        // seen through its partition table only), but mounted at /iso.
        let json = r#"{"blockdevices":[
            {"path":"/dev/sdc","type":"disk","parttype":null,"fstype":null,"uuid":null,"label":null,"mountpoints":[null],"children":[
              {"path":"/dev/sdc1","type":"part","parttype":"0x0","fstype":"udf","uuid":null,"label":null,"mountpoints":["/iso"]},
              {"path":"/dev/sdc2","type":"part","parttype":"c12a7328-f81f-11d2-ba4b-00a0c93ec93b","fstype":"vfat","uuid":"AAAA-BBBB","label":null,"mountpoints":[null]}]},
            {"path":"/dev/vda","type":"disk","parttype":null,"fstype":"vfat","uuid":"CCCC-DDDD","label":null,"mountpoints":["/boot"]}
        ]}"#;
        let devices = parse_lsblk(json).unwrap();
        assert_eq!(
            candidates(&devices),
            vec![
                c(
                    "/dev/sdc2",
                    Why::EspType,
                    Some("/dev/sdc is the live stick (/dev/sdc1 is mounted at /iso)")
                ),
                c("/dev/vda", Why::Vfat, None),
            ]
        );
    }

    #[test]
    fn a_machine_without_esp_has_no_candidate_and_bad_json_is_an_error() {
        let json = r#"{"blockdevices":[{"path":"/dev/vda","type":"disk","parttype":null,"fstype":null,"uuid":null,"label":null,"mountpoints":["/"]}]}"#;
        assert_eq!(candidates(&parse_lsblk(json).unwrap()), vec![]);
        assert!(parse_lsblk("lsblk: unknown column: MOUNTPOINTS").is_err());
        assert!(parse_lsblk(r#"{"blockdevices":[{"type":"disk"}]}"#).is_err());
    }

    #[test]
    fn lsblk_is_asked_for_its_tree_column() {
        let columns = LSBLK_ARGS.last().unwrap();
        assert!(columns.split(',').any(|c| c == "NAME"), "{columns}");
    }

    #[test]
    fn mountinfo_gives_the_whole_filesystem_mounts_of_one_device() {
        let mountinfo = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
35 22 259:1 / /mnt/boot rw,relatime shared:9 - vfat /dev/nvme0n1p1 rw,fmask=0077
36 22 259:1 /EFI /srv/efi rw,relatime shared:10 - vfat /dev/nvme0n1p1 rw
37 22 259:1 / /run/my\\040esp rw,relatime shared:11 - vfat /dev/nvme0n1p1 rw
38 22 259:10 / /other rw - ext4 /dev/nvme0n1p10 rw
";
        assert_eq!(
            mountpoints_of(mountinfo, 259, 1),
            vec![PathBuf::from("/mnt/boot"), PathBuf::from("/run/my esp")]
        );
        assert_eq!(mountpoints_of(mountinfo, 8, 1), Vec::<PathBuf>::new());
        assert_eq!(unescape("a\\134b\\04"), "a\\b\\04");
    }
}
