//! The CLI end to end: bundle → inspect → verify → restore, the documented
//! exit codes, and every passphrase source.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::*;
use predicates::prelude::*;

/// Issue 4: a tree with nested dirs, an empty file, a 1 MiB file, modes
/// 0600/0644/0640/0700/0755, home and /etc entries, restored into a target
/// whose accounts map the same names to other uids.
#[test]
fn root_round_trip_restores_bytes_modes_and_owners_by_name() {
    let w = World::bundled();

    let pf = w.pass_file(PASS);
    w.restore()
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "created       /home/zeta/.config/gh/hosts.yml",
        ));
    assert!(!pf.exists(), "passphrase file must be consumed");

    let t = target_ids();
    let cases: &[(&str, &str, u32, u32, u32)] = &[
        (
            "home/zeta/.config/gh",
            "home/zeta/.config/gh",
            0o700,
            t.zeta_uid,
            t.zeta_gid,
        ),
        (
            "home/zeta/.config/gh/hosts.yml",
            "home/zeta/.config/gh/hosts.yml",
            0o600,
            t.zeta_uid,
            t.zeta_gid,
        ),
        (
            "home/zeta/.config/gh/nested/deeper/state.json",
            "home/zeta/.config/gh/nested/deeper/state.json",
            0o640,
            t.zeta_uid,
            t.zeta_gid,
        ),
        (
            "home/zeta/.config/gh/nested/empty",
            "home/zeta/.config/gh/nested/empty",
            0o644,
            t.zeta_uid,
            t.zeta_gid,
        ),
        (
            "home/zeta/.codex/auth.json",
            "home/zeta/.codex/auth.json",
            0o600,
            t.zeta_uid,
            t.zeta_gid,
        ),
        (
            "etc/ssh/ssh_host_ed25519_key",
            "etc/ssh/ssh_host_ed25519_key",
            0o600,
            0,
            0,
        ),
        (
            "etc/ssh/ssh_host_ed25519_key.pub",
            "etc/ssh/ssh_host_ed25519_key.pub",
            0o644,
            0,
            0,
        ),
        ("etc/zeta", "etc/zeta", 0o755, 0, 0),
        (
            "etc/zeta/operator-authorized-keys",
            "etc/zeta/operator-authorized-keys",
            0o644,
            0,
            t.ssh_gid,
        ),
        ("etc/zeta/hook.sh", "etc/zeta/hook.sh", 0o755, 0, 0),
    ];
    for (src, dst, mode, uid, gid) in cases {
        let s = w.src().join(src);
        let d = w.dst().join(dst);
        let md = fs::symlink_metadata(&d).unwrap_or_else(|e| panic!("{dst}: {e}"));
        assert_eq!(md.mode() & 0o7777, *mode, "{dst} mode");
        if md.is_file() {
            assert_eq!(fs::read(&s).unwrap(), fs::read(&d).unwrap(), "{dst} bytes");
            assert_eq!(md.mtime(), fs::metadata(&s).unwrap().mtime(), "{dst} mtime");
        }
        if is_root() {
            assert_eq!((md.uid(), md.gid()), (*uid, *gid), "{dst} owner");
        }
    }
    assert_eq!(
        fs::metadata(w.dst().join("home/zeta/.codex/auth.json"))
            .unwrap()
            .len(),
        1 << 20
    );
    if is_root() {
        // ~/.codex did not exist in the target: created as the user, 0700.
        let md = fs::metadata(w.dst().join("home/zeta/.codex")).unwrap();
        assert_eq!(
            (md.uid(), md.gid(), md.mode() & 0o7777),
            (t.zeta_uid, t.zeta_gid, 0o700)
        );
        // /etc/ssh did not exist in the target: created as root, 0755.
        let md = fs::metadata(w.dst().join("etc/ssh")).unwrap();
        assert_eq!((md.uid(), md.mode() & 0o7777), (0, 0o755));
    } else {
        require_root("owner remapping checks (uids differ between source and target only as root)");
    }
    // No temporary file is left anywhere.
    assert!(
        !snapshot(&w.dst())
            .iter()
            .any(|l| l.contains(".zeta-creds-tmp."))
    );
}

/// A second restore with the same blob changes nothing and says so.
#[test]
fn second_restore_is_a_no_op() {
    let w = World::bundled();
    let pf = w.pass_file(PASS);
    w.restore()
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success();
    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    w.restore()
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to do"));
    assert_eq!(before, snapshot(&w.dst()));
}

#[test]
fn dry_run_writes_nothing() {
    let w = World::bundled();
    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    w.restore()
        .arg("--dry-run")
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "would create  /home/zeta/.codex/auth.json",
        ));
    assert_eq!(before, snapshot(&w.dst()));
}

#[test]
fn inspect_shows_the_header_marked_unauthenticated() {
    let w = World::bundled();
    w.cmd()
        .arg("inspect")
        .arg(w.blob())
        .assert()
        .success()
        .stdout(predicate::str::contains("UNAUTHENTICATED"))
        .stdout(predicate::str::contains("usb uuid        abcd-1234"))
        .stdout(predicate::str::contains(
            "work factor     10 (scrypt N = 2^10: 1 MiB of memory to decrypt)",
        ))
        .stdout(predicate::str::contains("generation      1"));
    let out = w
        .cmd()
        .arg("inspect")
        .arg("--json")
        .arg(w.blob())
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["authenticated"], false);
    assert_eq!(v["usb_uuid"], "abcd-1234");
    assert_eq!(v["work_factor"], 10);
    assert_eq!(v["kdf_memory_bytes"], 1024 * 1024);
    assert_eq!(v["generation"], 1);
    // inspect never needs or consumes a passphrase.
    assert!(!String::from_utf8_lossy(&out.stdout).contains(PASS));
}

#[test]
fn verify_lists_entries_and_writes_nothing() {
    let w = World::bundled();
    let before = snapshot(w.dir.path());
    let pf = w.pass_file(PASS);
    let before_with_pass = snapshot(w.dir.path());
    w.cmd()
        .args([
            "verify",
            "--list",
            "--keep-passphrase-file",
            "--passphrase-file",
        ])
        .arg(&pf)
        .arg("--blob")
        .arg(w.blob())
        .assert()
        .success()
        .stdout(predicate::str::contains("- 0600"))
        .stdout(predicate::str::contains("~/.config/gh/hosts.yml"))
        .stdout(predicate::str::contains(
            "/etc/ssh/ssh_host_ed25519_key.pub",
        ))
        .stdout(predicate::str::contains(
            "is intact: 12 entries for user zeta, generation 1",
        ));
    assert_eq!(
        before_with_pass,
        snapshot(w.dir.path()),
        "--keep-passphrase-file keeps it"
    );
    fs::remove_file(&pf).unwrap();
    assert_eq!(before, snapshot(w.dir.path()));
}

/// Issue 6: over a blob bound to the same stick, bundle replaces it
/// without --force (a re-bundle after rotating a login), keeps the old one
/// as BLOB.prev and raises the generation; a blob bound to another stick
/// is replaced only with --force.
#[test]
fn bundle_replaces_a_blob_of_the_same_stick_and_needs_force_for_another() {
    let w = World::bundled();
    let first = fs::read(w.blob()).unwrap();
    let pf = w.pass_file(PASS);
    w.bundle()
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "(generation 2, bound to USB abcd-1234",
        ))
        .stdout(predicate::str::contains(format!(
            "previous blob kept as {}.prev (generation 1)",
            w.blob().display()
        )));
    assert!(!pf.exists());
    let prev = w.path("esp/zeta-creds.enc.prev");
    assert_eq!(
        fs::read(&prev).unwrap(),
        first,
        "the replaced blob, byte for byte"
    );
    w.cmd()
        .arg("inspect")
        .arg(w.blob())
        .assert()
        .stdout(predicate::str::contains("generation      2"));

    // Another stick: refused without --force, nothing touched.
    let before = fs::read(w.blob()).unwrap();
    let pf = w.pass_file(PASS);
    let mut other = w.cmd();
    other
        .arg("bundle")
        .arg("--manifest")
        .arg(w.manifest())
        .arg("--source-root")
        .arg(w.src())
        .arg("--out")
        .arg(w.blob())
        .args(["--usb-uuid", "FEED-0001", "--work-factor", "10"])
        .arg("--passphrase-file")
        .arg(&pf);
    other
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "{} is bound to USB abcd-1234, not to feed-0001; pass --force to replace it",
            w.blob().display()
        )));
    assert!(pf.exists(), "refused before the passphrase was read: kept");
    assert_eq!(fs::read(w.blob()).unwrap(), before);
    let pf = w.pass_file(PASS);
    other
        .arg("--force")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "bound to USB abcd-1234, with a blob bound to USB feed-0001 (--force)",
        ))
        .stdout(predicate::str::contains(
            "(generation 3, bound to USB feed-0001",
        ));
    assert!(!pf.exists());
    assert_eq!(fs::read(&prev).unwrap(), before);
}

#[test]
fn required_entry_missing_is_exit_6_and_writes_no_blob() {
    let w = World::new();
    w.populate();
    fs::remove_dir_all(w.src().join("home/zeta/.config/gh")).unwrap();
    let pf = w.pass_file(PASS);
    w.bundle()
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .code(6)
        .stderr(predicate::str::contains(
            "required path ~/.config/gh is missing",
        ));
    assert!(!w.blob().exists());
    assert!(pf.exists(), "refused before the passphrase was read: kept");
    assert_eq!(
        fs::read_dir(w.path("esp")).unwrap().count(),
        0,
        "no temp file left"
    );
}

// ---- exit codes 3, 4, 5, 6: nothing written; the passphrase file is gone
// ---- if it was read, and untouched if the refusal came first

fn assert_refused(w: &World, code: i32, stderr: &str, extra: &[&str], read: bool) {
    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    w.restore()
        .args(extra)
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .code(code)
        .stderr(predicate::str::contains(stderr));
    if read {
        assert!(
            !pf.exists(),
            "passphrase file must be gone after exit {code}"
        );
    } else {
        assert_eq!(
            fs::read(&pf).unwrap(),
            format!("{PASS}\n").into_bytes(),
            "a passphrase file never read must be left as it was after exit {code}"
        );
    }
    assert_eq!(
        before,
        snapshot(&w.dst()),
        "nothing may be written on exit {code}"
    );
}

#[test]
fn exit_3_wrong_passphrase() {
    let w = World::bundled();
    let before = snapshot(&w.dst());
    let pf = w.pass_file("not the passphrase");
    w.restore()
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .code(3)
        .stderr(predicate::str::contains(format!(
            "zeta-creds: error: wrong passphrase for blob {} (bound to USB abcd-1234)",
            w.blob().display()
        )));
    assert!(!pf.exists());
    assert_eq!(before, snapshot(&w.dst()));
}

#[test]
fn exit_4_other_stick() {
    let w = World::bundled();
    // --usb-uuid may be given once: start from the builder without one.
    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    w.restore_blob(&w.blob())
        .args(["--usb-uuid", "DEAD-BEEF", "--passphrase-file"])
        .arg(&pf)
        .assert()
        .code(4)
        .stderr(predicate::str::contains(
            "blob is bound to USB abcd-1234, not to dead-beef",
        ));
    assert!(pf.exists(), "refused before the passphrase was read: kept");
    assert_eq!(before, snapshot(&w.dst()));
}

#[test]
fn exit_4_from_a_uuid_file_with_whitespace_is_normalized() {
    let w = World::bundled();
    let uuid_file = w.path("usb-uuid");
    fs::write(&uuid_file, "  abcd-1234 \n").unwrap();
    let pf = w.pass_file(PASS);
    w.restore_blob(&w.blob())
        .arg("--usb-uuid-file")
        .arg(&uuid_file)
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success();
}

#[test]
fn exit_5_tampered_blob() {
    let w = World::bundled();
    let mut bytes = fs::read(w.blob()).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0x01; // inside the last chunk
    fs::write(w.blob(), &bytes).unwrap();
    assert_refused(&w, 5, "payload chunk", &[], true);
}

#[test]
fn exit_5_tampered_header_field() {
    let w = World::bundled();
    let mut bytes = fs::read(w.blob()).unwrap();
    // generation: after magic(10) version(1) uuid_len(1) uuid(9) log_n(1) salt(16) wrapped(48)
    bytes[10 + 1 + 1 + 9 + 1 + 16 + 48 + 7] ^= 0x01;
    fs::write(w.blob(), &bytes).unwrap();
    assert_refused(&w, 5, "header MAC does not match", &[], true);
}

#[test]
fn exit_5_truncated_blob() {
    let w = World::bundled();
    let bytes = fs::read(w.blob()).unwrap();
    fs::write(w.blob(), &bytes[..bytes.len() - 1]).unwrap();
    assert_refused(&w, 5, "payload", &[], true);
}

#[test]
fn exit_5_work_factor_above_the_cap_before_any_scrypt() {
    let w = World::new();
    w.populate();
    let pf = w.pass_file(PASS);
    w.cmd()
        .arg("bundle")
        .arg("--manifest")
        .arg(w.manifest())
        .arg("--source-root")
        .arg(w.src())
        .arg("--out")
        .arg(w.blob())
        .args([
            "--usb-uuid",
            UUID,
            "--work-factor",
            "12",
            "--passphrase-file",
        ])
        .arg(&pf)
        .assert()
        .success();
    assert_refused(
        &w,
        5,
        "work factor 12 exceeds the cap 11",
        &["--max-work-factor", "11"],
        false,
    );
}

#[test]
fn exit_6_missing_blob() {
    let w = World::new();
    assert_refused(&w, 6, "not found", &[], false);
}

#[test]
fn exit_6_missing_uuid_file() {
    let w = World::bundled();
    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    w.restore_blob(&w.blob())
        .arg("--usb-uuid-file")
        .arg(w.path("no-such-uuid-file"))
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .code(6)
        .stderr(predicate::str::contains("no-such-uuid-file"));
    assert!(pf.exists(), "refused before the passphrase was read: kept");
    assert_eq!(before, snapshot(&w.dst()));
}

#[test]
fn exit_6_no_passphrase_source_lists_the_sources() {
    let w = World::bundled();
    let before = snapshot(&w.dst());
    w.restore()
        .write_stdin("") // not a terminal
        .assert()
        .code(6)
        .stderr(predicate::str::contains("--passphrase-fd"))
        .stderr(predicate::str::contains("--passphrase-file"))
        .stderr(predicate::str::contains("--ask-password"))
        .stderr(predicate::str::contains("CREDENTIALS_DIRECTORY"));
    assert_eq!(before, snapshot(&w.dst()));
}

#[test]
fn exit_2_usage_errors() {
    let w = World::new();
    w.cmd().arg("restore").assert().code(2);
    w.cmd()
        .args([
            "bundle",
            "--manifest",
            "m",
            "--out",
            "o",
            "--usb-uuid",
            "x",
            "--work-factor",
            "23",
        ])
        .assert()
        .code(2);
    // A passphrase is never accepted as an argument.
    w.cmd()
        .args([
            "restore",
            "--blob",
            "b",
            "--usb-uuid",
            "x",
            "--passphrase",
            "secret",
        ])
        .assert()
        .code(2);
}

// ---- passphrase sources ----

/// Issue 19 #13: `--passphrase-file /dev/stdin` as root deleted /dev/stdin.
/// A symlink is refused by the no-symlink open, so it is never read, and
/// neither it nor what it points at is deleted.
#[test]
fn a_refused_symlink_passphrase_file_is_not_deleted() {
    let w = World::bundled();
    let before = snapshot(&w.dst());
    let target = w.pass_file(PASS);
    let link = w.path("passphrase-link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = w
        .restore()
        .arg("--passphrase-file")
        .arg(&link)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("symlinks are refused"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        fs::symlink_metadata(&link).is_ok(),
        "the symlink was deleted"
    );
    assert!(target.exists(), "its target was deleted");
    assert_eq!(before, snapshot(&w.dst()));
}

#[test]
fn source_credentials_directory_wins() {
    let w = World::bundled();
    let creds = w.path("creds");
    fs::create_dir(&creds).unwrap();
    fs::write(creds.join("passphrase"), format!("{PASS}\n")).unwrap();
    // A wrong passphrase file is present too: the credential takes
    // precedence, and the file, never read, is not consumed.
    let pf = w.pass_file("wrong");
    w.restore()
        .env("CREDENTIALS_DIRECTORY", &creds)
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success();
    assert!(pf.exists());
    assert!(
        creds.join("passphrase").exists(),
        "systemd owns the credential"
    );
}

#[test]
fn source_fd() {
    let w = World::bundled();
    w.restore()
        .args(["--passphrase-fd", "0"])
        .write_stdin(format!("{PASS}\r\n"))
        .assert()
        .success();
}

#[test]
fn source_env_warns_and_works() {
    let w = World::bundled();
    w.restore()
        .env("ZETA_CREDS_PASSPHRASE", PASS)
        .write_stdin("")
        .assert()
        .success()
        .stderr(predicate::str::contains("warning"))
        .stderr(predicate::str::contains("ZETA_CREDS_PASSPHRASE"));
}

#[test]
fn source_ask_password_retries_wrong_twice_then_right() {
    let w = World::bundled();
    let bin = w.path("bin");
    fs::create_dir(&bin).unwrap();
    let fake =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-ask-password");
    std::os::unix::fs::symlink(&fake, bin.join("systemd-ask-password")).unwrap();
    let answers = w.path("answers");
    fs::write(&answers, format!("wrong one\nwrong two\n{PASS}\n")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    w.restore()
        .env("PATH", path)
        .env("FAKE_ASK_ANSWERS", &answers)
        .args(["--ask-password", "--ask-password-timeout", "42"])
        .write_stdin("")
        .assert()
        .success()
        .stderr(predicate::str::contains("wrong passphrase for blob"))
        .stderr(predicate::str::contains("2 tries left"))
        .stderr(predicate::str::contains("1 try left"));
    let log = fs::read_to_string(format!("{}.log", answers.display())).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");
    for line in log.lines() {
        assert!(line.contains("--no-tty"), "{line}");
        assert!(line.contains("--id=zeta-creds:abcd-1234"), "{line}");
        assert!(line.contains("--timeout=42"), "{line}");
    }
    assert!(w.dst().join("home/zeta/.config/gh/hosts.yml").exists());
}

#[test]
fn source_ask_password_three_wrong_is_exit_3() {
    let w = World::bundled();
    let bin = w.path("bin");
    fs::create_dir(&bin).unwrap();
    let fake =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-ask-password");
    std::os::unix::fs::symlink(&fake, bin.join("systemd-ask-password")).unwrap();
    let answers = w.path("answers");
    fs::write(&answers, "a\nb\nc\nd\n").unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let before = snapshot(&w.dst());
    w.restore()
        .env("PATH", path)
        .env("FAKE_ASK_ANSWERS", &answers)
        .arg("--ask-password")
        .write_stdin("")
        .assert()
        .code(3);
    let log = fs::read_to_string(format!("{}.log", answers.display())).unwrap();
    assert_eq!(log.lines().count(), 3, "exactly three tries: {log}");
    assert_eq!(before, snapshot(&w.dst()));
}

#[test]
fn empty_passphrase_is_refused() {
    let w = World::new();
    w.populate();
    let pf = w.pass_file("");
    w.bundle()
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .code(6)
        .stderr(predicate::str::contains("empty"));
    assert!(!w.blob().exists());
    assert!(!pf.exists());
}

#[test]
fn passphrase_file_mode_is_irrelevant_but_symlink_is_refused() {
    let w = World::new();
    w.populate();
    let real = w.pass_file(PASS);
    let link = w.path("pass-link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    w.bundle()
        .arg("--passphrase-file")
        .arg(&link)
        .assert()
        .code(6);
    assert!(!w.blob().exists());
}

/// `--require-usb-present`: the restore runs only with the bound stick
/// attached (listed in the by-uuid directory, FAT serials in upper case),
/// and refuses with exit 4 before asking for a passphrase otherwise.
#[test]
fn require_usb_present_needs_the_bound_stick_attached() {
    let w = World::bundled();
    let by_uuid = w.path("by-uuid");
    fs::create_dir(&by_uuid).unwrap();
    fs::write(by_uuid.join("1111-2222"), "").unwrap(); // another stick

    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    let start = std::time::Instant::now();
    w.restore()
        .args([
            "--require-usb-present",
            "--usb-wait",
            "1",
            "--usb-device-dir",
        ])
        .arg(&by_uuid)
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .code(4)
        .stderr(predicate::str::contains(
            "USB stick abcd-1234 is not attached",
        ));
    assert!(
        start.elapsed() >= std::time::Duration::from_secs(1),
        "it waited"
    );
    assert!(pf.exists(), "refused before the passphrase was read: kept");
    assert_eq!(before, snapshot(&w.dst()));

    fs::write(by_uuid.join("ABCD-1234"), "").unwrap();
    let pf = w.pass_file(PASS);
    w.restore()
        .args([
            "--require-usb-present",
            "--usb-wait",
            "1",
            "--usb-device-dir",
        ])
        .arg(&by_uuid)
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success();
    assert!(w.dst().join("home/zeta/.config/gh/hosts.yml").exists());
}

/// Issue 19, item 13: a usage error deleted whatever followed
/// `--passphrase-file`, even on `inspect`, which takes no passphrase. Only
/// a file this run actually read as its passphrase is consumed: clap
/// refuses the command line before anything is read, so the files stay.
/// (This replaces issue 7's "a usage error still consumes the passphrase
/// file", which scanned the refused arguments for files to delete.)
#[test]
fn issue_19_item_13_a_usage_error_leaves_the_passphrase_file() {
    let w = World::bundled();
    let pf = w.pass_file(PASS);
    let npf = w.path("new-pass");
    fs::write(&npf, "new one\n").unwrap();
    w.cmd()
        .args(["restore", "--blob", "b", "--usb-uuid", "x", "--bogus-flag"])
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .code(2);
    assert!(pf.exists(), "a usage error reads no passphrase file");
    w.cmd()
        .args(["rekey", "--blob", "b", "--no-such-flag"])
        .arg(format!("--new-passphrase-file={}", npf.display()))
        .assert()
        .code(2);
    assert!(npf.exists(), "a usage error reads no new passphrase file");
    let named = w.path("named");
    fs::write(&named, "not a passphrase\n").unwrap();
    w.cmd()
        .args(["inspect", "--bogus", "--passphrase-file"])
        .arg(&named)
        .assert()
        .code(2);
    assert!(
        named.exists(),
        "inspect takes no passphrase; nothing is deleted"
    );
    w.cmd()
        .args(["inspect", "--passphrase-file"])
        .arg(&pf)
        .arg(w.blob())
        .assert()
        .code(2);
    assert!(
        pf.exists(),
        "inspect takes no passphrase: the file is not its"
    );
    // --help is not an error: nothing is read or deleted.
    w.cmd()
        .args(["restore", "--help", "--passphrase-file"])
        .arg(&pf)
        .assert()
        .success();
    assert!(pf.exists());
    // The same file, actually read as the passphrase, is consumed.
    w.cmd()
        .args(["verify", "--blob"])
        .arg(w.blob())
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success();
    assert!(!pf.exists(), "a passphrase file that was read is consumed");
}

/// Work-factor guidance, never calibration (issue 10): bundle reports what
/// the key derivation cost on this machine and that a restore needs that
/// memory; restore says what it spent with -v only (issue 20: not after
/// every try of every run).
#[test]
fn bundle_and_restore_report_the_key_derivation_cost() {
    let w = World::new();
    w.populate();
    let out = w.bundle_with(PASS, &[]);
    assert!(out.status.success(), "{out:?}");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let reported = digits_between(
        &said,
        "key derivation took ",
        " ms and 1 MiB of memory here (work factor 10); a restore needs that memory free",
    );
    assert!(reported, "bundle did not report the KDF cost:\n{said}");
    let pf = w.pass_file(PASS);
    let out = w
        .restore()
        .arg("-v")
        .arg("--passphrase-file")
        .arg(&pf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        digits_between(
            &said,
            "key derivation took ",
            " ms and 1 MiB of memory here (work factor 10)"
        ),
        "restore -v did not log the KDF cost:\n{said}"
    );
    let pf = w.pass_file(PASS);
    let out = w
        .restore()
        .arg("--passphrase-file")
        .arg(&pf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !said.contains("key derivation took"),
        "the KDF cost is for -v only:\n{said}"
    );
}

/// Whether `text` has `before`, a run of digits, then `after`.
fn digits_between(text: &str, before: &str, after: &str) -> bool {
    text.match_indices(before).any(|(i, _)| {
        let rest = &text[i + before.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with(after)
    })
}

/// Issue 19 #10: what an ESP writer puts where the blob belongs must end in
/// a status the NixOS unit does not restart on (it restarted on exit 1 and
/// asked again): a directory or a FIFO is "input missing" (6), and a FIFO
/// never blocks the run.
#[test]
fn a_directory_or_fifo_in_place_of_the_blob_exits_6_without_blocking() {
    let w = World::bundled();
    let dir = w.path("esp-dir/zeta-creds.enc");
    fs::create_dir_all(&dir).unwrap();
    let fifo = w.path("zeta-creds.fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    for (path, what) in [(&dir, "a directory"), (&fifo, "a FIFO")] {
        let pf = w.pass_file(PASS);
        let out = w
            .restore_blob(path)
            .args(["--usb-uuid", UUID, "--passphrase-file"])
            .arg(&pf)
            .timeout(std::time::Duration::from_secs(20))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(6), "{what}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("is {what}, not a file")), "{err}");
        assert!(pf.exists(), "{what}: no passphrase was read");
    }
    for args in [&["inspect"][..], &["verify", "--blob"]] {
        let out = w
            .cmd()
            .args(args)
            .arg(&fifo)
            .timeout(std::time::Duration::from_secs(20))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(6), "{args:?}: {out:?}");
    }
}
