//! The rescue scan through its public API (`zeta_creds::rescue`): `--from`
//! directories and files as any user, and, as root (tests named `root_*`,
//! which fail when not root), real read-only loop mounts of ext4 image
//! files and tmpfs rescue directories. This host's kernel has no vfat, so
//! the vfat ESP path is exercised by the VM end-to-end test; the mount
//! code does not depend on the filesystem type.

mod common;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use secrecy::SecretString;
use sha2::{Digest, Sha256};
use zeta_creds::envelope::{Header, HeaderFields, UsbUuid};
use zeta_creds::rescue::{self, Error, Outcome, Request, SystemMounter};

/// A blob at work factor 10 whose plaintext is `plain_len` bytes (a
/// rescue reads only the header, so the plaintext need not be entries).
fn blob(uuid: &str, generation: u64, plain_len: usize) -> Vec<u8> {
    let fields = HeaderFields {
        usb_uuid: UsbUuid::parse(uuid).unwrap(),
        log_n: 10,
        generation,
        created: 1_780_000_000,
        tool_version: "0.1.0".into(),
        persona: "work".into(),
        host: Some(zeta_creds::envelope::Host::parse("node-a").unwrap()),
    };
    let mut w = Header::seal(Vec::new(), &SecretString::from("pass"), &fields).unwrap();
    w.write_all(&vec![7u8; plain_len]).unwrap();
    w.finish().unwrap()
}

fn name_of(bytes: &[u8], uuid: &str, generation: u64) -> String {
    let h = hex::encode(Sha256::digest(bytes));
    format!("{uuid}-g{generation}-{}.enc", &h[..8])
}

struct World {
    t: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let w = World {
            t: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(w.p("mnt")).unwrap();
        std::fs::create_dir(w.p("src")).unwrap();
        w
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.t.path().join(rel)
    }
    fn request(&self, from: &[PathBuf]) -> Request {
        Request {
            from: from.to_vec(),
            allow_disk: true,
            mount_base: self.p("mnt"),
            ..Request::new(self.p("rescued"))
        }
    }
    fn rescued(&self) -> Vec<String> {
        listing(&self.p("rescued"))
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn outcomes(report: &rescue::Report) -> Vec<Outcome> {
    report.sources.iter().map(|s| s.outcome.clone()).collect()
}

#[test]
fn a_directory_and_a_file_are_copied_whole_under_a_name_that_says_which_blob() {
    let w = World::new();
    let b = blob("ABCD-1234", 7, 100);
    std::fs::write(w.p("src/zeta-creds.enc"), &b).unwrap();
    let other = blob("feed-0001", 2, 70_000);
    std::fs::write(w.p("other.enc"), &other).unwrap();
    let report = rescue::run(&w.request(&[w.p("src"), w.p("other.enc")]), &SystemMounter).unwrap();

    let (n1, n2) = (name_of(&b, "abcd-1234", 7), name_of(&other, "feed-0001", 2));
    let mut want = vec![n1.clone(), n2.clone()];
    want.sort();
    assert_eq!(w.rescued(), want);
    assert_eq!(std::fs::read(w.p("rescued").join(&n1)).unwrap(), b);
    assert_eq!(std::fs::read(w.p("rescued").join(&n2)).unwrap(), other);
    let dir_mode = std::fs::metadata(w.p("rescued")).unwrap().mode() & 0o7777;
    let file_mode = std::fs::metadata(w.p("rescued").join(&n1)).unwrap().mode() & 0o7777;
    assert_eq!((dir_mode, file_mode), (0o700, 0o600));

    let Outcome::Copied { stored, blob: info } = &report.sources[0].outcome else {
        panic!("{:?}", report.sources[0]);
    };
    assert_eq!(stored, &w.p("rescued").join(&n1));
    assert_eq!(
        (
            info.usb_uuid.as_str(),
            info.host.as_deref(),
            info.generation
        ),
        ("abcd-1234", Some("node-a"), 7)
    );
    assert_eq!(
        (
            info.created,
            info.persona.as_str(),
            info.tool_version.as_str()
        ),
        (1_780_000_000, "work", "0.1.0")
    );
    assert_eq!((info.format_version, info.size), (2, b.len() as u64));
    assert_eq!(
        report.sources[0].to_string(),
        format!(
            "{}: zeta-creds.enc: rescued (host node-a, stick abcd-1234, generation 7, sealed 2026-05-28 20:26:40 UTC, persona work, zeta-creds 0.1.0, format 2) to {}",
            w.p("src").display(),
            stored.display()
        )
    );
    assert_eq!(report.sources[1].file, None);
    assert!(!report.has_failures());
    assert_eq!(report.copied().count(), 2);
    assert!(report.same_stick.is_empty());
}

#[test]
fn the_same_bytes_are_stored_once_in_this_run_and_across_runs() {
    let w = World::new();
    let b = blob("abcd-1234", 1, 10);
    std::fs::write(w.p("src/zeta-creds.enc"), &b).unwrap();
    std::fs::write(w.p("copy.enc"), &b).unwrap();
    let req = w.request(&[w.p("src"), w.p("copy.enc")]);
    let first = rescue::run(&req, &SystemMounter).unwrap();
    let stored = w.p("rescued").join(name_of(&b, "abcd-1234", 1));
    assert!(matches!(&first.sources[0].outcome, Outcome::Copied { .. }));
    assert!(
        matches!(&first.sources[1].outcome, Outcome::Duplicate { stored: s, .. } if *s == stored)
    );
    let again = rescue::run(&req, &SystemMounter).unwrap();
    assert!(
        again
            .sources
            .iter()
            .all(|s| matches!(&s.outcome, Outcome::Duplicate { stored: p, .. } if *p == stored)),
        "{again:?}"
    );
    assert_eq!(w.rescued().len(), 1);
    assert!(!again.has_failures());
}

#[test]
fn two_generations_of_one_stick_are_both_kept_and_the_newer_is_named() {
    let w = World::new();
    let (old, new) = (blob("abcd-1234", 4, 10), blob("abcd-1234", 9, 10));
    std::fs::write(w.p("src/zeta-creds.enc"), &old).unwrap();
    std::fs::write(w.p("newer.enc"), &new).unwrap();
    let report = rescue::run(&w.request(&[w.p("src"), w.p("newer.enc")]), &SystemMounter).unwrap();
    let (po, pn) = (
        w.p("rescued").join(name_of(&old, "abcd-1234", 4)),
        w.p("rescued").join(name_of(&new, "abcd-1234", 9)),
    );
    assert_eq!(report.same_stick.len(), 1);
    assert_eq!(
        report.same_stick[0].copies,
        vec![(9, pn.clone()), (4, po.clone())]
    );
    assert_eq!(
        report.same_stick[0].to_string(),
        format!(
            "2 blobs for stick abcd-1234 and host node-a are all kept: generation 9 at {}, generation 4 at {}; the newest is {}",
            pn.display(),
            po.display(),
            pn.display()
        )
    );
    assert_eq!(w.rescued().len(), 2);
}

#[test]
fn what_is_not_a_whole_blob_is_reported_and_nothing_is_left_in_the_rescue_dir() {
    let w = World::new();
    let good = blob("abcd-1234", 1, 200_000);
    let header_len = good.len() - (200_000 + 4 * 16);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("magic.enc", b"\x7fELF not a blob at all".to_vec()),
        ("empty.enc", Vec::new()),
        ("header-cut.enc", good[..40].to_vec()),
        (
            "payload-cut.enc",
            good[..header_len + 65_536 + 16 + 5].to_vec(),
        ),
        ("v9.enc", {
            let mut v = blob("abcd-1234", 1, 10);
            v[10] = 9;
            v
        }),
    ];
    let mut from = Vec::new();
    for (name, bytes) in &cases {
        std::fs::write(w.p(name), bytes).unwrap();
        from.push(w.p(name));
    }
    std::os::unix::fs::symlink(w.p("magic.enc"), w.p("link.enc")).unwrap();
    from.push(w.p("link.enc"));
    from.push(w.p("missing.enc"));
    std::fs::write(w.p("big.enc"), &good).unwrap();
    from.push(w.p("big.enc"));
    let req = Request {
        max_blob_bytes: 100_000,
        ..w.request(&from)
    };
    let report = rescue::run(&req, &SystemMounter).unwrap();
    let lines: Vec<String> = report.sources.iter().map(|s| s.to_string()).collect();
    let d = |n: &str| w.p(n).display().to_string();
    assert_eq!(
        lines,
        vec![
            format!(
                "{}: not a zeta-creds blob (it does not start with the zeta-creds magic bytes); not copied, the source is left as it is",
                d("magic.enc")
            ),
            format!(
                "{}: not a zeta-creds blob (it is empty); not copied, the source is left as it is",
                d("empty.enc")
            ),
            format!(
                "{}: a truncated zeta-creds blob (it ends inside the header); not copied, a restore would refuse it; look for a whole copy (zeta-creds.enc.prev, a stash)",
                d("header-cut.enc")
            ),
            format!(
                "{}: a truncated zeta-creds blob (its payload is 65557 bytes, which ends inside an encrypted chunk: the blob was cut short); not copied, a restore would refuse it; look for a whole copy (zeta-creds.enc.prev, a stash)",
                d("payload-cut.enc")
            ),
            format!(
                "{}: not a zeta-creds blob (it has the zeta-creds magic, but unsupported envelope version 9 (this zeta-creds reads versions 1 and 2)); not copied, the source is left as it is",
                d("v9.enc")
            ),
            format!(
                "{}: cannot be read (it is a symbolic link, which the rescue does not follow); nothing copied from it; check the path",
                d("link.enc")
            ),
            format!(
                "{}: cannot be read (No such file or directory (os error 2)); nothing copied from it; check the path",
                d("missing.enc")
            ),
            format!(
                "{}: {} bytes, more than the 100000 bytes a rescue copies; not copied, check it with `zeta-creds inspect` and copy it by hand if it is a blob",
                d("big.enc"),
                good.len()
            ),
        ]
    );
    assert!(report.has_failures());
    assert_eq!(w.rescued(), Vec::<String>::new());
    // The sources are as they were.
    for (name, bytes) in &cases {
        assert_eq!(&std::fs::read(w.p(name)).unwrap(), bytes, "{name}");
    }
}

#[test]
fn a_fifo_named_as_a_blob_does_not_block_the_rescue() {
    let w = World::new();
    let status = Command::new("mkfifo")
        .arg(w.p("src/zeta-creds.enc"))
        .status()
        .unwrap();
    assert!(status.success());
    let req = w.request(&[w.p("src")]);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(rescue::run(&req, &SystemMounter).map(|r| outcomes(&r))));
    let got = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the rescue blocked on a FIFO")
        .unwrap();
    assert_eq!(
        got,
        vec![Outcome::Unreadable {
            reason: "it is not a regular file (it is a FIFO)".into()
        }]
    );
    assert_eq!(w.rescued(), Vec::<String>::new());
}

#[test]
fn a_directory_without_a_blob_and_a_device_that_is_not_one_are_told_apart() {
    let w = World::new();
    let req = Request {
        devices: vec![w.p("src"), w.p("no-such-device")],
        ..w.request(&[w.p("src")])
    };
    let report = rescue::run(&req, &SystemMounter).unwrap();
    assert_eq!(
        outcomes(&report),
        vec![
            Outcome::Unreadable {
                reason:
                    "it is a directory, not a device or an image file (use --from for a directory)"
                        .into()
            },
            Outcome::Unreadable {
                reason: "cannot open it: No such file or directory (os error 2)".into()
            },
            Outcome::NoBlob,
        ]
    );
    assert_eq!(
        report.sources[2].to_string(),
        format!(
            "{}: no zeta-creds.enc here; nothing to rescue",
            w.p("src").display()
        )
    );
    assert!(listing(&w.p("mnt")).is_empty());
}

#[test]
fn a_rescue_dir_that_is_a_symlink_is_refused_before_anything_is_read() {
    let w = World::new();
    std::fs::create_dir(w.p("real")).unwrap();
    std::os::unix::fs::symlink(w.p("real"), w.p("rescued")).unwrap();
    std::fs::write(w.p("src/zeta-creds.enc"), blob("abcd-1234", 1, 1)).unwrap();
    let err = rescue::run(&w.request(&[w.p("src")]), &SystemMounter).unwrap_err();
    assert!(matches!(err, Error::RescueDir { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "rescue directory {}: cannot open it as a directory (a symlink is refused)",
            w.p("rescued").display()
        )),
        "{err}"
    );
    assert!(listing(&w.p("real")).is_empty());
}

// ---- root: real mounts ----------------------------------------------------

fn require_root() {
    assert!(
        common::is_root(),
        "this test mounts filesystems and needs root (CI runs as root); run it as root, or leave it out with --skip root_"
    );
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Unmounts on drop, so a failing test leaves no mount behind.
struct MountedHere(PathBuf);

impl MountedHere {
    fn tmpfs(dir: &Path, size: &str) -> MountedHere {
        std::fs::create_dir_all(dir).unwrap();
        sh(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
                dir.to_str().unwrap(),
            ],
        );
        MountedHere(dir.to_owned())
    }
    fn image_ro(img: &Path, dir: &Path) -> MountedHere {
        std::fs::create_dir_all(dir).unwrap();
        sh(
            "mount",
            &[
                "-o",
                "loop,ro",
                img.to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
        );
        MountedHere(dir.to_owned())
    }
}

impl Drop for MountedHere {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// An ext4 image file holding the files of `dir`.
fn ext4_image(dir: &Path, img: &Path) {
    sh(
        "mkfs.ext4",
        &[
            "-q",
            "-d",
            dir.to_str().unwrap(),
            img.to_str().unwrap(),
            "8M",
        ],
    );
}

fn sha(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

fn mounts_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.to_str().unwrap().to_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

#[test]
fn root_an_image_file_is_read_through_a_read_only_mount_that_is_undone() {
    require_root();
    let w = World::new();
    let _ram = MountedHere::tmpfs(&w.p("ram"), "4m");
    let b = blob("abcd-1234", 5, 3000);
    std::fs::write(w.p("src/zeta-creds.enc"), &b).unwrap();
    ext4_image(&w.p("src"), &w.p("esp.img"));
    let before = sha(&w.p("esp.img"));
    let req = Request {
        devices: vec![w.p("esp.img")],
        allow_disk: false,
        rescue_dir: w.p("ram/rescued"),
        ..w.request(&[])
    };
    let report = rescue::run(&req, &SystemMounter).unwrap();
    let stored = w.p("ram/rescued").join(name_of(&b, "abcd-1234", 5));
    assert_eq!(
        outcomes(&report)
            .iter()
            .map(|o| matches!(o, Outcome::Copied { stored: s, .. } if *s == stored))
            .collect::<Vec<_>>(),
        vec![true],
        "{report:?}"
    );
    assert_eq!(std::fs::read(&stored).unwrap(), b);
    assert!(report.warnings.is_empty());
    // Unmounted, its directory removed, its loop device released, and the
    // image not changed by a single byte.
    assert!(mounts_mentioning(&w.p("mnt")).is_empty());
    assert!(listing(&w.p("mnt")).is_empty());
    assert_eq!(sh("losetup", &["-j", w.p("esp.img").to_str().unwrap()]), "");
    assert_eq!(sha(&w.p("esp.img")), before);
}

#[test]
fn root_a_device_mounted_already_is_read_where_it_is() {
    require_root();
    let w = World::new();
    let b = blob("abcd-1234", 2, 10);
    std::fs::write(w.p("src/zeta-creds.enc"), &b).unwrap();
    ext4_image(&w.p("src"), &w.p("esp.img"));
    let at = w.p("boot");
    let _m = MountedHere::image_ro(&w.p("esp.img"), &at);
    let dev = sh("findmnt", &["-n", "-o", "SOURCE", at.to_str().unwrap()]);
    let dev = PathBuf::from(dev.trim());
    assert!(dev.to_str().unwrap().starts_with("/dev/loop"), "{dev:?}");
    let req = Request {
        devices: vec![dev],
        ..w.request(&[])
    };
    let report = rescue::run(&req, &SystemMounter).unwrap();
    assert_eq!(report.sources.len(), 1, "{report:?}");
    assert_eq!(report.sources[0].mounted_at.as_deref(), Some(at.as_path()));
    assert!(matches!(report.sources[0].outcome, Outcome::Copied { .. }));
    // No second mount was made.
    assert_eq!(mounts_mentioning(&w.p("mnt")), Vec::<String>::new());
    assert_eq!(mounts_mentioning(&at).len(), 1);
}

#[test]
fn root_an_image_that_does_not_mount_is_a_mount_failure_and_leaves_nothing() {
    require_root();
    let w = World::new();
    std::fs::write(w.p("zeros.img"), vec![0u8; 1 << 20]).unwrap();
    let req = Request {
        devices: vec![w.p("zeros.img")],
        ..w.request(&[])
    };
    let report = rescue::run(&req, &SystemMounter).unwrap();
    let Outcome::MountFailed { reason } = &report.sources[0].outcome else {
        panic!("{report:?}");
    };
    assert!(reason.starts_with("mount failed"), "{reason}");
    assert!(listing(&w.p("mnt")).is_empty());
    assert_eq!(
        sh("losetup", &["-j", w.p("zeros.img").to_str().unwrap()]),
        ""
    );
}

#[test]
fn root_a_rescue_dir_on_a_disk_is_refused_unless_allowed() {
    require_root();
    let w = World::new();
    std::fs::create_dir(w.p("empty")).unwrap();
    ext4_image(&w.p("empty"), &w.p("disk.img"));
    let disk = w.p("disk");
    std::fs::create_dir(&disk).unwrap();
    sh(
        "mount",
        &[
            "-o",
            "loop",
            w.p("disk.img").to_str().unwrap(),
            disk.to_str().unwrap(),
        ],
    );
    let _m = MountedHere(disk.clone());
    std::fs::write(w.p("src/zeta-creds.enc"), blob("abcd-1234", 1, 1)).unwrap();
    let req = Request {
        allow_disk: false,
        rescue_dir: disk.join("rescued"),
        ..w.request(&[w.p("src")])
    };
    let err = rescue::run(&req, &SystemMounter).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotInRam {
                fs_magic: 0xef53,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "rescue directory {} is not on tmpfs or ramfs (filesystem magic 0xef53): a copy there could be wiped with the disk, so nothing was copied; point ZETA_CREDS_RESCUE_DIR at a tmpfs directory (the default /run/zeta-creds/rescued is one), or pass --allow-rescue-dir-on-disk if that disk is not going to be wiped",
            disk.join("rescued").display()
        )
    );
    assert_eq!(listing(&disk.join("rescued")), Vec::<String>::new());
    let allowed = rescue::run(
        &Request {
            allow_disk: true,
            ..req
        },
        &SystemMounter,
    )
    .unwrap();
    assert_eq!(allowed.copied().count(), 1);
}

#[test]
fn root_a_full_rescue_dir_keeps_what_fits_and_no_partial_file() {
    require_root();
    let w = World::new();
    let ram = w.p("ram");
    let _ram = MountedHere::tmpfs(&ram, "64k");
    let (big, small) = (blob("abcd-1234", 1, 200_000), blob("abcd-1234", 2, 1000));
    std::fs::write(w.p("big.enc"), &big).unwrap();
    std::fs::write(w.p("small.enc"), &small).unwrap();
    let req = Request {
        allow_disk: false,
        rescue_dir: ram.clone(),
        ..w.request(&[w.p("big.enc"), w.p("small.enc")])
    };
    let report = rescue::run(&req, &SystemMounter).unwrap();
    assert_eq!(report.sources[0].outcome, Outcome::NoSpace);
    assert_eq!(
        report.sources[0].to_string(),
        format!(
            "{}: the rescue directory is full; this blob was not copied and no partial file was left; make room (a larger tmpfs) and run the rescue again",
            w.p("big.enc").display()
        )
    );
    assert!(matches!(report.sources[1].outcome, Outcome::Copied { .. }));
    assert_eq!(listing(&ram), vec![name_of(&small, "abcd-1234", 2)]);
    let mode = std::fs::metadata(&ram).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
}

/// The real mounter, checking after each mount that the filesystem sits on
/// a read-only loop device (what makes "changes nothing" hold for any
/// filesystem type).
struct CheckReadOnly(std::cell::RefCell<Vec<String>>);

impl rescue::Mounter for CheckReadOnly {
    fn block_devices(&self) -> Result<String, String> {
        SystemMounter.block_devices()
    }
    fn mounted_at(&self, device: &Path) -> Option<PathBuf> {
        SystemMounter.mounted_at(device)
    }
    fn mount_ro(&self, source: &Path, dir: &Path) -> Result<(), String> {
        SystemMounter.mount_ro(source, dir)?;
        let dev = sh("findmnt", &["-n", "-o", "SOURCE", dir.to_str().unwrap()]);
        let ro = sh("blockdev", &["--getro", dev.trim()]);
        let opts = sh("findmnt", &["-n", "-o", "OPTIONS", dir.to_str().unwrap()]);
        self.0.borrow_mut().push(format!(
            "{} getro={} {}",
            &dev.trim()[..9],
            ro.trim(),
            opts.trim()
        ));
        Ok(())
    }
    fn unmount(&self, dir: &Path) -> Result<(), String> {
        SystemMounter.unmount(dir)
    }
}

#[test]
fn root_an_unmounted_partition_is_mounted_on_a_read_only_loop_and_released() {
    require_root();
    let w = World::new();
    let b = blob("abcd-1234", 3, 10);
    std::fs::write(w.p("src/zeta-creds.enc"), &b).unwrap();
    ext4_image(&w.p("src"), &w.p("part.img"));
    let before = sha(&w.p("part.img"));
    // A block device standing in for a partition.
    let part = sh(
        "losetup",
        &["-f", "--show", w.p("part.img").to_str().unwrap()],
    );
    let part = PathBuf::from(part.trim());
    struct Detach(PathBuf);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
        }
    }
    let _detach = Detach(part.clone());
    let spy = CheckReadOnly(Default::default());
    let req = Request {
        devices: vec![part.clone()],
        ..w.request(&[])
    };
    let report = rescue::run(&req, &spy).unwrap();
    assert!(
        matches!(report.sources[0].outcome, Outcome::Copied { .. }),
        "{report:?}"
    );
    assert_eq!(
        *spy.0.borrow(),
        vec!["/dev/loop getro=1 ro,nosuid,nodev,noexec,relatime".to_owned()]
    );
    assert!(mounts_mentioning(&w.p("mnt")).is_empty());
    assert!(listing(&w.p("mnt")).is_empty());
    // The mount's loop device over the partition is released.
    assert_eq!(sh("losetup", &["-j", part.to_str().unwrap()]), "");
    drop(_detach);
    assert_eq!(sha(&w.p("part.img")), before);
}
