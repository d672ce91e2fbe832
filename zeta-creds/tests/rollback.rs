//! Rollback to `.prev` (issue 19, item 8): a bundle on the system it
//! bundles raises that system's state record (the newest sealed blob and
//! the files it carries), so a restore there refuses any older blob, the
//! `BLOB.prev` a re-bundle keeps included, with exit 8 and nothing
//! written. Here the source root is also the target root: the running
//! system that bundles is the one that restores at its next boot.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use predicates::prelude::*;

const HOSTS: &str = "home/zeta/.config/gh/hosts.yml";

fn record(root: &Path) -> serde_json::Value {
    let text = fs::read(root.join("var/lib/zeta-creds/state.json")).unwrap();
    serde_json::from_slice(&text).unwrap()
}

fn generation_of(w: &World, blob: &Path) -> u64 {
    let out = w
        .cmd()
        .args(["inspect", "--json"])
        .arg(blob)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["generation"].as_u64().unwrap()
}

/// `status --target-root SRC`: the system that bundled.
fn status_of_source(w: &World) -> std::process::Output {
    w.cmd()
        .arg("status")
        .arg("--target-root")
        .arg(w.src())
        .output()
        .unwrap()
}

/// The attack of issue 19, item 8: after a re-bundle, the ESP writer
/// renames `zeta-creds.enc.prev` back over `zeta-creds.enc`. The restore
/// on that system opens it (right passphrase, authentic header) and then
/// refuses it as a rollback: exit 8, both generations and the override
/// named, nothing written, not even the state record.
#[test]
fn prev_renamed_over_the_blob_after_a_rebundle_is_refused_and_nothing_is_written() {
    let w = World::new();
    w.populate();
    w.bundle_ok(); // generation 1, sealed from src
    fs::write(w.src().join(HOSTS), "rotated token\n").unwrap();
    w.rebundle(); // generation 2, generation 1 kept as .prev
    let prev = w.path("esp/zeta-creds.enc.prev");
    assert_eq!(generation_of(&w, &w.blob()), 2);
    assert_eq!(generation_of(&w, &prev), 1);
    assert_eq!(record(&w.src())["sealed_blob"]["generation"], 2);

    fs::rename(&prev, w.blob()).unwrap();
    let before = snapshot(&w.src());
    let pf = w.pass_file(PASS);
    w.cmd()
        .arg("restore")
        .arg("--blob")
        .arg(w.blob())
        .arg("--target-root")
        .arg(w.src())
        .args(["--usb-uuid", UUID, "--on-conflict", "overwrite"])
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .code(8)
        .stderr(predicate::str::contains(
            "rollback refused: the blob has generation 1, older than generation 2, the newest this system has sealed or restored",
        ))
        .stderr(predicate::str::contains("--allow-rollback"));
    assert_eq!(
        before,
        snapshot(&w.src()),
        "a refused rollback wrote something"
    );
    assert_eq!(
        fs::read_to_string(w.src().join(HOSTS)).unwrap(),
        "rotated token\n"
    );
}

/// The record a bundle raises is what `status` compares with: fresh right
/// after the bundle (exit 0, the new generation), stale once a carried
/// file is rewritten (exit 10), fresh again after the next re-bundle.
#[test]
fn a_bundle_on_the_system_makes_its_status_fresh() {
    let w = World::new();
    w.populate();
    w.bundle_ok();
    let out = status_of_source(&w);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    fs::write(w.src().join(HOSTS), "rotated token\n").unwrap();
    let out = status_of_source(&w);
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/home/zeta/.config/gh/hosts.yml"),
        "{out:?}"
    );
    w.rebundle();
    let out = status_of_source(&w);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = record(&w.src());
    assert_eq!(v["sealed_blob"]["generation"], 2);
    assert!(v["files"]["/home/zeta/.config/gh/hosts.yml"]["size"] == 14);
}

/// A restore keeps what this system sealed: after restoring an older blob
/// deliberately (--allow-rollback), the record still refuses anything
/// below the newest sealed generation without the override.
#[test]
fn a_restore_keeps_the_newest_sealed_generation() {
    let w = World::new();
    w.populate();
    w.bundle_ok(); // 1
    let old = w.path("esp/old.enc");
    fs::copy(w.blob(), &old).unwrap();
    w.rebundle(); // 2
    w.rebundle(); // 3
    let restore = |blob: &Path, extra: &[&str]| {
        let pf = w.pass_file(PASS);
        let out = w
            .cmd()
            .arg("restore")
            .arg("--blob")
            .arg(blob)
            .arg("--target-root")
            .arg(w.src())
            .args(["--usb-uuid", UUID])
            .args(extra)
            .arg("--passphrase-file")
            .arg(&pf)
            .output()
            .unwrap();
        out.status.code()
    };
    assert_eq!(restore(&old, &["--allow-rollback"]), Some(0));
    let v = record(&w.src());
    assert_eq!(v["generation"], 1);
    assert_eq!(v["sealed_blob"]["generation"], 3);
    assert_eq!(restore(&old, &[]), Some(8));
}

/// A bundle sealed for another host (`--host`) from a system with no
/// record leaves it without one: that blob is not this system's.
#[test]
fn a_bundle_for_another_host_does_not_create_a_record() {
    let w = World::new();
    w.populate();
    let pf = w.pass_file(PASS);
    w.bundle()
        .args(["--host", "node-b", "--passphrase-file"])
        .arg(&pf)
        .assert()
        .success();
    assert!(!w.src().join("var/lib/zeta-creds/state.json").exists());
}

/// A bundle for another host from a system that has a record still
/// raises it (the record exists: the system restores from this ESP).
/// And a bundle from a system whose record is raised gets a generation
/// above it, so it is never refused there as a rollback.
#[test]
fn a_bundle_continues_above_the_newest_sealed_generation() {
    let w = World::new();
    w.populate();
    fs::create_dir_all(w.src().join("var/lib/zeta-creds")).unwrap();
    fs::write(
        w.src().join("var/lib/zeta-creds/state.json"),
        r#"{"version":1,"generation":3,"files":{},"sealed_blob":{"id":"00","generation":41,"sealed":0}}"#,
    )
    .unwrap();
    // Another passphrase: the blob on the ESP does not open, so only the
    // record can carry the generation on.
    let pf = w.pass_file("another long passphrase for this test");
    w.bundle()
        .args([
            "--host",
            "node-b",
            "--allow-weak-passphrase",
            "--passphrase-file",
        ])
        .arg(&pf)
        .assert()
        .success();
    assert_eq!(generation_of(&w, &w.blob()), 42);
    let v = record(&w.src());
    assert_eq!(v["sealed_blob"]["generation"], 42);
    assert_eq!(v["generation"], 3);
}

/// Unmounts a read-only bind mount when dropped (also when the test
/// fails).
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    fn bind(dir: &Path) -> ReadOnly {
        let run = |args: &[&str]| {
            let st = std::process::Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .status()
                .unwrap();
            assert!(st.success(), "mount {args:?} {}", dir.display());
        };
        run(&["--bind"]);
        let guard = ReadOnly(dir.to_owned());
        run(&["-o", "remount,bind,ro"]);
        guard
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A source root mounted read-only (an old root bundled from a rescue
/// system) cannot restore either: the bundle succeeds and leaves its
/// record alone, instead of failing after the blob was written. Any
/// other failure to raise the record is an error (exit 1) that says the
/// blob was written and what `.prev` then means.
#[test]
fn root_a_read_only_source_root_is_bundled_without_a_record() {
    require_root("a read-only bind mount");
    let w = World::new();
    w.populate();
    let _ro = ReadOnly::bind(&w.src());
    w.bundle_ok();
    assert_eq!(generation_of(&w, &w.blob()), 1);
    assert!(!w.src().join("var/lib/zeta-creds/state.json").exists());
}

/// A record that cannot be raised on a writable root is an error after
/// the blob was written: exit 1, naming the blob, its generation, the
/// record and what `.prev` means until it is raised.
#[test]
fn a_record_that_cannot_be_raised_is_an_error_that_says_the_blob_was_written() {
    let w = World::new();
    w.populate();
    fs::create_dir_all(w.src().join("var/lib")).unwrap();
    fs::write(w.src().join("var/lib/zeta-creds"), b"not a directory").unwrap();
    let pf = w.pass_file(PASS);
    let out = w
        .bundle()
        .arg("--passphrase-file")
        .arg(&pf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "sealed {} (generation 1), but cannot raise the state record {}",
            w.blob().display(),
            w.src().join("var/lib/zeta-creds/state.json").display()
        )) && err.contains(".prev put back over the blob is not refused here as a rollback"),
        "{err}"
    );
    assert_eq!(generation_of(&w, &w.blob()), 1);
}
