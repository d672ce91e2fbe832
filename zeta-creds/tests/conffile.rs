//! Local changes are not clobbered (README.md, restore; issue 5):
//! the five per-entry cases, each --on-conflict policy, idempotence, the
//! state record, and rollback refusal.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use predicates::prelude::*;

const HOSTS: &str = "home/zeta/.config/gh/hosts.yml";

fn line_for<'a>(stdout: &'a str, dest: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == dest))
        .unwrap_or_else(|| panic!("no line for {dest} in:\n{stdout}"))
}

fn mtime_ns(p: &Path) -> (i64, i64, u64) {
    let md = fs::metadata(p).unwrap();
    (md.mtime(), md.mtime_nsec(), md.ino())
}

/// Case 1 (missing → written) and case 5 (no record: the blob's version
/// wins even over a different local file) on a first restore.
#[test]
fn first_restore_writes_missing_files_and_takes_the_blob_over_unrecorded_ones() {
    let w = World::bundled();
    // An unrecorded, different file already in the target.
    fs::create_dir_all(w.dst().join("etc/ssh")).unwrap();
    fs::write(
        w.dst().join("etc/ssh/ssh_host_ed25519_key"),
        "installer-generated",
    )
    .unwrap();
    let out = w.restore_ok(&[]);
    assert!(line_for(&out, "/home/zeta/.config/gh/hosts.yml").starts_with("created"));
    assert!(line_for(&out, "/etc/ssh/ssh_host_ed25519_key").starts_with("updated"));
    assert_eq!(
        fs::read(w.dst().join("etc/ssh/ssh_host_ed25519_key")).unwrap(),
        fs::read(w.src().join("etc/ssh/ssh_host_ed25519_key")).unwrap()
    );
}

/// Case 2 (identical → unchanged, mtime untouched) and idempotence: two
/// restores in a row, the second changes nothing.
#[test]
fn a_second_restore_changes_nothing_and_touches_no_mtime() {
    let w = World::bundled();
    w.restore_ok(&[]);
    let before: Vec<_> = [HOSTS, "etc/zeta/hook.sh", "home/zeta/.codex/auth.json"]
        .iter()
        .map(|p| mtime_ns(&w.dst().join(p)))
        .collect();
    let out = w.restore_ok(&["--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e["outcome"] == "unchanged"), "{out}");
    let after: Vec<_> = [HOSTS, "etc/zeta/hook.sh", "home/zeta/.codex/auth.json"]
        .iter()
        .map(|p| mtime_ns(&w.dst().join(p)))
        .collect();
    assert_eq!(before, after, "mtime and inode untouched");
}

/// Case 3: the file is still exactly what zeta-creds wrote and the blob is
/// newer → updated.
#[test]
fn a_file_still_as_written_is_updated_from_a_newer_blob() {
    let w = World::bundled();
    w.restore_ok(&[]);
    fs::write(
        w.src().join(HOSTS),
        "github.com:\n  oauth_token: gho_ROTATED\n",
    )
    .unwrap();
    w.rebundle();
    let out = w.restore_ok(&[]);
    assert!(
        line_for(&out, "/home/zeta/.config/gh/hosts.yml").starts_with("updated"),
        "{out}"
    );
    assert_eq!(
        fs::read_to_string(w.dst().join(HOSTS)).unwrap(),
        "github.com:\n  oauth_token: gho_ROTATED\n"
    );
}

/// Case 4: the operator rotated a login after the last restore → kept, and
/// reported "changed locally; re-bundle to carry it".
#[test]
fn a_file_changed_locally_is_kept_and_reported() {
    let w = World::bundled();
    w.restore_ok(&[]);
    fs::write(w.dst().join(HOSTS), "rotated on the machine\n").unwrap();
    fs::write(w.src().join(HOSTS), "an older token from the stick\n").unwrap();
    w.rebundle();
    let out = w.restore_ok(&[]);
    let line = line_for(&out, "/home/zeta/.config/gh/hosts.yml");
    assert!(line.starts_with("kept"), "{line}");
    assert!(line.contains("changed locally"), "{line}");
    assert!(line.contains("re-bundle"), "{line}");
    assert!(out.contains("1 kept"), "{out}");
    assert_eq!(
        fs::read_to_string(w.dst().join(HOSTS)).unwrap(),
        "rotated on the machine\n"
    );
    // Still kept on the next run: the record keeps describing what we
    // wrote, not the local change.
    let out = w.restore_ok(&[]);
    assert!(line_for(&out, "/home/zeta/.config/gh/hosts.yml").starts_with("kept"));
}

#[test]
fn on_conflict_overwrite_lets_the_blob_win() {
    let w = World::bundled();
    w.restore_ok(&[]);
    fs::write(w.dst().join(HOSTS), "local\n").unwrap();
    let out = w.restore_ok(&["--on-conflict", "overwrite"]);
    assert!(line_for(&out, "/home/zeta/.config/gh/hosts.yml").starts_with("updated"));
    assert_eq!(
        fs::read(w.dst().join(HOSTS)).unwrap(),
        fs::read(w.src().join(HOSTS)).unwrap()
    );
    assert!(!w.dst().join(format!("{HOSTS}.zeta-creds-bak")).exists());
}

#[test]
fn on_conflict_backup_keeps_the_local_file_with_its_owner_and_mode() {
    let w = World::bundled();
    w.restore_ok(&[]);
    let dst = w.dst().join(HOSTS);
    fs::write(&dst, "local\n").unwrap();
    let local_md = fs::metadata(&dst).unwrap();
    let out = w.restore_ok(&["--on-conflict", "backup"]);
    assert!(line_for(&out, "/home/zeta/.config/gh/hosts.yml").starts_with("updated"));
    assert_eq!(
        fs::read(&dst).unwrap(),
        fs::read(w.src().join(HOSTS)).unwrap()
    );
    let bak = w.dst().join(format!("{HOSTS}.zeta-creds-bak"));
    assert_eq!(fs::read_to_string(&bak).unwrap(), "local\n");
    let bak_md = fs::metadata(&bak).unwrap();
    assert_eq!(
        (bak_md.mode(), bak_md.uid(), bak_md.gid()),
        (local_md.mode(), local_md.uid(), local_md.gid())
    );
}

#[test]
fn dry_run_reports_kept_without_writing() {
    let w = World::bundled();
    w.restore_ok(&[]);
    fs::write(w.dst().join(HOSTS), "local\n").unwrap();
    let before = snapshot(&w.dst());
    let out = w.restore_ok(&["--dry-run"]);
    assert!(line_for(&out, "/home/zeta/.config/gh/hosts.yml").starts_with("kept"));
    assert_eq!(before, snapshot(&w.dst()));
}

/// The record: root-only, no secret and no content hash in it.
#[test]
fn the_state_record_is_private_and_holds_no_hash() {
    let w = World::bundled();
    w.restore_ok(&[]);
    let p = w.dst().join("var/lib/zeta-creds/state.json");
    let md = fs::metadata(&p).unwrap();
    assert_eq!(md.mode() & 0o777, 0o600);
    assert_eq!(
        fs::metadata(p.parent().unwrap()).unwrap().mode() & 0o777,
        0o700
    );
    let text = fs::read_to_string(&p).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["generation"], 1);
    assert!(v["files"]["/home/zeta/.config/gh/hosts.yml"]["ino"].is_u64());
    let hosts_digest = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(fs::read(w.src().join(HOSTS)).unwrap()))
    };
    assert!(!text.contains(&hosts_digest));
    assert!(!text.contains("gho_FAKE"));
    assert!(!text.to_lowercase().contains("sha"));
}

#[test]
fn a_corrupt_state_record_is_reported_and_treated_as_absent() {
    let w = World::bundled();
    fs::create_dir_all(w.dst().join("var/lib/zeta-creds")).unwrap();
    fs::write(w.dst().join("var/lib/zeta-creds/state.json"), "{garbage").unwrap();
    let pf = w.pass_file(PASS);
    w.restore()
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success()
        .stderr(predicate::str::contains("state record"))
        .stderr(predicate::str::contains("unusable"));
    // And it was rewritten correctly.
    let text = fs::read_to_string(w.dst().join("var/lib/zeta-creds/state.json")).unwrap();
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
}

/// Rollback: generation 2 restored, then generation 1 → exit 8 and nothing
/// written; --allow-rollback restores it.
#[test]
fn an_older_blob_is_refused_unless_allowed() {
    let w = World::new();
    w.populate();
    w.bundle_ok(); // generation 1
    let old = w.path("esp/old.enc");
    fs::copy(w.blob(), &old).unwrap();
    fs::write(w.src().join(HOSTS), "newer\n").unwrap();
    w.rebundle(); // generation 2
    w.restore_ok(&[]);
    assert_eq!(fs::read_to_string(w.dst().join(HOSTS)).unwrap(), "newer\n");

    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    w.restore_blob(&old)
        .args(["--usb-uuid", UUID, "--passphrase-file"])
        .arg(&pf)
        .assert()
        .code(8)
        .stderr(predicate::str::contains(
            "rollback refused: the blob has generation 1, older than generation 2",
        ))
        .stderr(predicate::str::contains("--allow-rollback"));
    assert!(!pf.exists());
    assert_eq!(before, snapshot(&w.dst()));

    let pf = w.pass_file(PASS);
    w.restore_blob(&old)
        .args([
            "--usb-uuid",
            UUID,
            "--allow-rollback",
            "--on-conflict",
            "overwrite",
        ])
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success();
    assert_eq!(
        fs::read_to_string(w.dst().join(HOSTS)).unwrap(),
        "github.com:\n  oauth_token: gho_FAKE\n"
    );
}

/// bundle picks generation = 1 + max(existing blob, the source root's
/// state record), so re-bundling on a restored system never looks like a
/// rollback.
#[test]
fn bundle_generation_follows_the_source_roots_state_record() {
    let w = World::new();
    w.populate();
    fs::create_dir_all(w.src().join("var/lib/zeta-creds")).unwrap();
    fs::write(
        w.src().join("var/lib/zeta-creds/state.json"),
        r#"{"version":1,"generation":41,"files":{}}"#,
    )
    .unwrap();
    w.bundle_ok();
    w.cmd()
        .arg("inspect")
        .arg(w.blob())
        .assert()
        .stdout(predicate::str::contains("generation      42"));
}
