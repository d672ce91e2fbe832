//! Re-sealing from the old system (issue 18 item 4) through the library,
//! over a directory standing for the mounted old root (the read-only
//! mount of a real ext4 image is tests/installer scenario V): the
//! passphrase must open the rescued blob first; the fresh blob carries the
//! old root's current files, for the same stick and host, at generation
//! old + 1; nothing is written when it fails.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use secrecy::SecretString;
use zeta_creds::envelope::Header;
use zeta_creds::fsx;
use zeta_creds::rescue::oldroot::{self, Reseal, ResealError};

/// The world's source root made an old installation: a state record from
/// its last restore (generation 1), its usb-uuid, its own manifest; and a
/// login rotated since the blob was sealed. The blob is copied into a
/// rescue directory, as `rescue` does.
fn old_system() -> (World, tempfile::TempDir, std::path::PathBuf) {
    let w = World::bundled();
    w.put(
        "var/lib/zeta-creds/state.json",
        br#"{"version":1,"generation":1,"files":{}}"#,
        0o600,
        Some((0, 0)),
    );
    w.put(
        "etc/zeta/usb-uuid",
        format!("{UUID}\n").as_bytes(),
        0o644,
        Some((0, 0)),
    );
    fs::copy(w.manifest(), w.src().join("etc/zeta/creds-manifest.toml")).unwrap();
    let s = source_ids();
    w.put(
        "home/zeta/.config/gh/hosts.yml",
        b"github.com:\n  oauth_token: gho_ROTATED\n",
        0o600,
        Some((s.zeta_uid, s.zeta_gid)),
    );
    let rescue = tempfile::tempdir().unwrap();
    let blob = rescue.path().join("abcd-1234-g1-00000000.enc");
    fs::copy(w.blob(), &blob).unwrap();
    (w, rescue, blob)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn header(path: &Path) -> zeta_creds::envelope::HeaderFields {
    let mut f = fs::File::open(path).unwrap();
    Header::read(&mut f)
        .unwrap()
        .unauthenticated_fields()
        .clone()
}

#[test]
fn a_wrong_passphrase_writes_nothing_and_the_right_one_seals_the_current_files_at_old_plus_one() {
    let (w, rescue, blob) = old_system();
    let root = fsx::open_root(&w.src()).unwrap();
    let old = oldroot::identify(&root, &w.src()).unwrap();
    assert_eq!(old.usb_uuid.as_str(), "abcd-1234");
    assert_eq!(old.host.as_str(), HOST);
    assert!(old.manifest.is_some());

    let before = names(rescue.path());
    let err =
        oldroot::open_rescued(&blob, &old, SecretString::from("not the passphrase")).unwrap_err();
    assert!(matches!(err, ResealError::WrongPassphrase { .. }), "{err}");
    assert!(
        err.to_string().contains("does not open the rescued blob"),
        "{err}"
    );
    assert_eq!(names(rescue.path()), before, "nothing written");

    let opened = oldroot::open_rescued(&blob, &old, SecretString::from(PASS)).unwrap();
    let record = w.src().join("var/lib/zeta-creds/state.json");
    let record_before = fs::read(&record).unwrap();
    let done = oldroot::reseal(&Reseal {
        old: &old,
        root: &w.src(),
        opened: &opened,
        default_manifest: None,
        rescue_dir: rescue.path(),
    })
    .unwrap();
    assert_eq!(
        fs::read(&record).unwrap(),
        record_before,
        "the old system's state record is read, never raised"
    );
    assert_eq!(done.path, rescue.path().join("resealed-node-a-g2.enc"));
    assert_eq!(done.generation, 2);
    assert_eq!(
        done.manifest,
        "the old system's /etc/zeta/creds-manifest.toml"
    );
    // The fresh blob and the rescued one; the staged manifest is gone.
    assert_eq!(
        names(rescue.path()),
        ["abcd-1234-g1-00000000.enc", "resealed-node-a-g2.enc"]
    );
    let (old_h, new_h) = (header(&blob), header(&done.path));
    assert_eq!(new_h.generation, old_h.generation + 1);
    assert_eq!(new_h.usb_uuid, old_h.usb_uuid);
    assert_eq!(new_h.host, old_h.host);
    assert_eq!(new_h.log_n, old_h.log_n);
    assert_eq!(new_h.persona, old_h.persona);

    // Restored, it brings the login as it is on the old system now.
    let pf = w.pass_file(PASS);
    let out = w
        .restore_blob(&done.path)
        .args(["--usb-uuid", UUID])
        .arg("--passphrase-file")
        .arg(&pf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hosts = fs::read_to_string(w.dst().join("home/zeta/.config/gh/hosts.yml")).unwrap();
    assert!(hosts.contains("gho_ROTATED"), "{hosts}");

    // Run again (rescue twice): the earlier re-seal is replaced by a
    // fresher one of the same generation, as its name says.
    let first = fs::read(&done.path).unwrap();
    let again = oldroot::reseal(&Reseal {
        old: &old,
        root: &w.src(),
        opened: &opened,
        default_manifest: None,
        rescue_dir: rescue.path(),
    })
    .unwrap();
    assert_eq!(
        (again.path.as_path(), again.generation),
        (done.path.as_path(), 2)
    );
    assert_eq!(header(&again.path).generation, 2);
    assert_ne!(fs::read(&again.path).unwrap(), first, "sealed anew");
    assert_eq!(
        names(rescue.path()),
        ["abcd-1234-g1-00000000.enc", "resealed-node-a-g2.enc"]
    );
}

#[test]
fn another_hosts_or_sticks_blob_does_not_open_for_this_old_root() {
    let (w, _rescue, blob) = old_system();
    w.put("etc/hostname", b"node-b\n", 0o644, Some((0, 0)));
    let root = fsx::open_root(&w.src()).unwrap();
    let old = oldroot::identify(&root, &w.src()).unwrap();
    let err = oldroot::open_rescued(&blob, &old, SecretString::from(PASS)).unwrap_err();
    assert!(matches!(err, ResealError::Blob { .. }), "{err}");
    assert!(err.to_string().contains("node-b"), "{err}");
    w.put(
        "etc/hostname",
        format!("{HOST}\n").as_bytes(),
        0o644,
        Some((0, 0)),
    );
    w.put("etc/zeta/usb-uuid", b"CAFE-F00D\n", 0o644, Some((0, 0)));
    let old = oldroot::identify(&root, &w.src()).unwrap();
    let err = oldroot::open_rescued(&blob, &old, SecretString::from(PASS)).unwrap_err();
    assert!(matches!(err, ResealError::Blob { .. }), "{err}");
    assert!(err.to_string().contains("cafe-f00d"), "{err}");
}

#[test]
fn without_its_own_manifest_the_default_is_used_and_without_either_nothing_is_written() {
    let (w, rescue, blob) = old_system();
    fs::remove_file(w.src().join("etc/zeta/creds-manifest.toml")).unwrap();
    let root = fsx::open_root(&w.src()).unwrap();
    let old = oldroot::identify(&root, &w.src()).unwrap();
    assert!(old.manifest.is_none());
    let before = names(rescue.path());
    let opened = oldroot::open_rescued(&blob, &old, SecretString::from(PASS)).unwrap();
    let r = Reseal {
        old: &old,
        root: &w.src(),
        opened: &opened,
        default_manifest: None,
        rescue_dir: rescue.path(),
    };
    let err = oldroot::reseal(&r).unwrap_err();
    assert!(err.to_string().contains("no default manifest"), "{err}");
    assert_eq!(names(rescue.path()), before, "nothing written");

    let manifest = w.manifest();
    let done = oldroot::reseal(&Reseal {
        default_manifest: Some(&manifest),
        ..r
    })
    .unwrap();
    assert_eq!(done.manifest, manifest.display().to_string());
    assert_eq!(done.generation, 2);
}
