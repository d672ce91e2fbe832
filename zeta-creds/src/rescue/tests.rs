//! Unit tests of the rescue over fake mounters.
use super::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;

use secrecy::SecretString;

use crate::envelope::{Header, HeaderFields, Host, UsbUuid};

/// A blob at work factor 10 (the payload is not checked by a rescue).
fn blob(uuid: &str, generation: u64) -> Vec<u8> {
    blob_for(uuid, generation, "node-a")
}

/// The same, sealed for `host`.
fn blob_for(uuid: &str, generation: u64, host: &str) -> Vec<u8> {
    let fields = HeaderFields {
        usb_uuid: UsbUuid::parse(uuid).unwrap(),
        log_n: 10,
        generation,
        created: 1_780_000_000,
        tool_version: "0.1.0".into(),
        persona: String::new(),
        host: Some(Host::parse(host).unwrap()),
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
fn default_scan_mounts_each_unmounted_esp_once_reads_mounted_ones_in_place_and_skips_the_stick() {
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

/// A stash on the stick serves a fleet: every host's blob is rescued (and
/// the `.prev` the step keeps), whatever host is installed next; what is
/// not a blob, or a blob cut short, is a line of its own and not copied;
/// the step's hidden temporary files and other names are not looked at.
/// The stash partition is mounted read-only like any device.
#[test]
fn a_stash_keeps_every_hosts_blob_and_says_what_is_not_one() {
    let w = World::new();
    let stash = w.p("stash");
    std::fs::create_dir(&stash).unwrap();
    let a2 = blob_for("abcd-1234", 2, "node-a");
    let a1 = blob_for("abcd-1234", 1, "node-a");
    let b5 = blob_for("abcd-1234", 5, "node-b");
    std::fs::write(stash.join("node-a.enc"), &a2).unwrap();
    std::fs::write(stash.join("node-a.enc.prev"), &a1).unwrap();
    std::fs::write(stash.join("node-b.enc"), &b5).unwrap();
    std::fs::write(stash.join("notes.enc"), b"shopping list").unwrap();
    // Cut inside the first chunk's tag.
    let header_len = Header::read(&mut &b5[..]).unwrap().len();
    std::fs::write(stash.join("node-c.enc"), &b5[..header_len + 5]).unwrap();
    std::fs::write(stash.join(".zeta-creds-tmp.0123456789abcdef"), &a2).unwrap();
    std::fs::write(stash.join("README.txt"), b"x").unwrap();
    let part = w.device("sdb3");
    std::fs::create_dir(w.p("part")).unwrap();
    std::fs::write(w.p("part/node-d.enc"), blob_for("abcd-1234", 7, "node-d")).unwrap();
    let empty = w.device("sdb4");
    std::fs::create_dir(w.p("empty")).unwrap();
    let fake = Fake {
        lsblk: String::new(),
        contents: HashMap::from([(part.clone(), w.p("part")), (empty.clone(), w.p("empty"))]),
        mounted: HashMap::new(),
        log: RefCell::default(),
    };
    let req = Request {
        stash_dirs: vec![stash.clone()],
        stash_devices: vec![part.clone(), empty.clone()],
        ..w.request()
    };
    let report = run(&req, &fake).unwrap();
    assert_eq!(
        *fake.log.borrow(),
        vec![
            format!("mount {}", part.display()),
            "umount".into(),
            format!("mount {}", empty.display()),
            "umount".into(),
        ],
        "the default scan is replaced; each partition is mounted once"
    );
    assert!(w.mount_base_is_empty());
    let got: Vec<(String, Option<&str>, &str)> = report
        .sources
        .iter()
        .map(|s| {
            let what = match &s.outcome {
                Outcome::Copied { blob, .. } => blob.host.as_deref().unwrap_or("?"),
                Outcome::NotABlob { .. } => "not a blob",
                Outcome::Truncated { .. } => "truncated",
                Outcome::NoBlob => "none",
                other => panic!("{other:?}"),
            };
            (s.source.to_string(), s.file.as_deref(), what)
        })
        .collect();
    let (st, p, e) = (
        format!("stash {}", stash.display()),
        format!("stash {}", part.display()),
        format!("stash {}", empty.display()),
    );
    assert_eq!(
        got,
        vec![
            (st.clone(), Some("node-a.enc"), "node-a"),
            (st.clone(), Some("node-a.enc.prev"), "node-a"),
            (st.clone(), Some("node-b.enc"), "node-b"),
            (st.clone(), Some("node-c.enc"), "truncated"),
            (st.clone(), Some("notes.enc"), "not a blob"),
            (p.clone(), Some("node-d.enc"), "node-d"),
            (e.clone(), None, "none"),
        ]
    );
    assert_eq!(w.rescued().len(), 4, "{:?}", w.rescued());
    assert!(
        report.sources[6]
            .to_string()
            .ends_with(": no <host>.enc here; nothing to rescue"),
        "{}",
        report.sources[6]
    );
    assert!(
        report.sources[3]
            .to_string()
            .contains("node-c.enc: a truncated zeta-creds blob (its payload is")
    );
    // Two generations for node-a: both kept, the newest named.
    assert_eq!(report.same_stick.len(), 1);
    assert_eq!(report.same_stick[0].host.as_deref(), Some("node-a"));
    assert_eq!(
        report.same_stick[0]
            .copies
            .iter()
            .map(|c| c.0)
            .collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert!(
        report.has_failures(),
        "a bad file in the stash is a failure to look at"
    );
    // The stash is only read.
    assert_eq!(std::fs::read_dir(&stash).unwrap().count(), 7);
    assert_eq!(std::fs::read(stash.join("node-a.enc")).unwrap(), a2);
}

#[test]
fn a_stash_that_cannot_be_opened_is_a_line() {
    let w = World::new();
    let fake = Fake {
        lsblk: String::new(),
        contents: HashMap::new(),
        mounted: HashMap::new(),
        log: RefCell::default(),
    };
    let req = Request {
        stash_dirs: vec![w.p("no-such-stash")],
        ..w.request()
    };
    let report = run(&req, &fake).unwrap();
    assert_eq!(report.sources.len(), 1);
    assert!(matches!(
        report.sources[0].outcome,
        Outcome::Unreadable { .. }
    ));
    assert!(
        report.sources[0]
            .to_string()
            .ends_with("nothing copied from it; check the path"),
        "{}",
        report.sources[0]
    );
    assert!(fake.log.borrow().is_empty(), "no default scan");
}

/// The stick's stash partition is read in addition to the default scan of
/// the machine's ESPs (which skips the live stick, and does not list the
/// stash partition as skipped); one already mounted is read in place.
#[test]
fn the_default_scan_and_the_sticks_stash_partition_together() {
    let w = World::new();
    let (stash_part, esp, mounted, root) = (
        w.device("sda2"),
        w.device("nvme0n1p1"),
        w.device("nvme0n1p2"),
        w.device("nvme0n1p3"),
    );
    std::fs::write(
        w.p("esp-a/zeta-creds.enc"),
        blob_for("abcd-1234", 3, "node-a"),
    )
    .unwrap();
    std::fs::create_dir(w.p("stash")).unwrap();
    std::fs::write(w.p("stash/node-b.enc"), blob_for("abcd-1234", 9, "node-b")).unwrap();
    let fake = Fake {
        lsblk: lsblk(&stash_part, &esp, &mounted, &root),
        contents: HashMap::from([(esp.clone(), w.p("esp-a"))]),
        mounted: HashMap::from([
            (stash_part.clone(), w.p("stash")),
            (mounted.clone(), w.p("already")),
        ]),
        log: RefCell::default(),
    };
    let req = Request {
        stash_devices: vec![stash_part.clone()],
        ..w.request()
    };
    let report = run(&req, &fake).unwrap();
    assert_eq!(
        *fake.log.borrow(),
        vec![format!("mount {}", esp.display()), "umount".into()],
        "the ESP is mounted; the stash, mounted already, is read in place"
    );
    let got: Vec<(String, Option<&str>, Option<&str>)> = report
        .sources
        .iter()
        .map(|s| {
            let host = match &s.outcome {
                Outcome::Copied { blob, .. } => blob.host.as_deref(),
                _ => None,
            };
            (s.source.to_string(), s.file.as_deref(), host)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                esp.display().to_string(),
                Some("zeta-creds.enc"),
                Some("node-a")
            ),
            (mounted.display().to_string(), None, None),
            (
                format!("stash {}", stash_part.display()),
                Some("node-b.enc"),
                Some("node-b")
            ),
        ],
        "the stash partition is not also a skipped line of the scan"
    );
    assert_eq!(w.rescued().len(), 2);
    assert!(!report.has_failures());
}
