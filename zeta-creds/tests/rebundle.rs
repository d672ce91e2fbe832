//! `zeta-creds rebundle` (issue 18, items 2 and 3): keep the blob fresh on
//! the system that restores it. Fresh: nothing asked, nothing written.
//! Changed: a new blob under the same passphrase, stick and host, a higher
//! generation, `.prev` kept and refused as a rollback, and a reinstall-style
//! restore brings the new content. Report-only: one warning and a login
//! notice. A vanished file, a blob not yet restored, no record, a wrong
//! passphrase: refused, nothing written.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

const HOSTS: &str = "home/zeta/.config/gh/hosts.yml";

fn rebundle(w: &World, pass: Option<&Path>, extra: &[&str]) -> Output {
    let mut c = w.cmd();
    c.arg("rebundle")
        .arg("--blob")
        .arg(w.blob())
        .args(["--usb-uuid", UUID])
        .arg("--source-root")
        .arg(w.src())
        .arg("--manifest")
        .arg(w.manifest())
        .args(extra);
    if let Some(p) = pass {
        c.arg("--passphrase-file").arg(p);
    }
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn generation_of(w: &World, blob: &Path) -> u64 {
    let out = w
        .cmd()
        .args(["inspect", "--json"])
        .arg(blob)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["generation"].as_u64().unwrap()
}

fn prev(w: &World) -> PathBuf {
    w.path("esp/zeta-creds.enc.prev")
}

/// Fresh right after a bundle on the system: exit 0, one line, the
/// passphrase file not even read, the blob untouched.
#[test]
fn a_fresh_blob_is_left_alone_and_no_passphrase_is_read() {
    let w = World::bundled();
    let before = fs::read(w.blob()).unwrap();
    let pf = w.pass_file(PASS);
    let out = rebundle(&w, Some(&pf), &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("is fresh: "), "{text}");
    assert!(text.contains("(generation 1); nothing to do"), "{text}");
    assert!(pf.exists(), "the passphrase file was read");
    assert_eq!(before, fs::read(w.blob()).unwrap());
    assert!(!prev(&w).exists());
}

/// A carried file rewritten (a rotated token): re-bundled under the same
/// passphrase with the next generation, `.prev` kept; a restore into a
/// fresh root (a reinstall) brings the new content; `.prev` put back is
/// refused on the system; and the next run finds it fresh.
#[test]
fn a_changed_file_is_rebundled_and_restored_and_prev_is_a_rollback() {
    let w = World::bundled();
    fs::write(w.src().join(HOSTS), "rotated token\n").unwrap();
    let pf = w.pass_file(PASS);
    let out = rebundle(&w, Some(&pf), &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("1 changed, 0 new, 0 vanished")
            && text.contains("/home/zeta/.config/gh/hosts.yml")
            && text.contains("generation 1 -> 2, previous kept as"),
        "{text}"
    );
    assert_eq!(generation_of(&w, &w.blob()), 2);
    assert_eq!(generation_of(&w, &prev(&w)), 1);

    w.restore_ok(&[]);
    assert_eq!(
        fs::read_to_string(w.dst().join(HOSTS)).unwrap(),
        "rotated token\n"
    );

    let pf = w.pass_file(PASS);
    let out = rebundle(&w, Some(&pf), &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("is fresh"), "{out:?}");
    assert!(stdout(&out).contains("(generation 2)"), "{}", stdout(&out));

    fs::rename(prev(&w), w.blob()).unwrap();
    let pf = w.pass_file(PASS);
    let out = w
        .cmd()
        .arg("restore")
        .arg("--blob")
        .arg(w.blob())
        .arg("--target-root")
        .arg(w.src())
        .args(["--usb-uuid", UUID, "--passphrase-file"])
        .arg(&pf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{out:?}");
}

/// Report-only (interactive or file mode): exit 10, one warning naming
/// the count, the date and the file, a world-readable login notice with
/// the count and no path; nothing sealed, no passphrase read. Once fresh
/// again, the notice is removed.
#[test]
fn report_only_warns_once_and_leaves_a_login_notice() {
    let w = World::bundled();
    fs::write(w.src().join(HOSTS), "rotated token\n").unwrap();
    let before = fs::read(w.blob()).unwrap();
    let notice = w.path("run/notice");
    fs::create_dir_all(notice.parent().unwrap()).unwrap();
    let pf = w.pass_file(PASS);
    let out = rebundle(
        &w,
        Some(&pf),
        &["--report-only", "--notice", notice.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("warning: 1 carried files changed since the blob was sealed on ")
            && err.contains(
                ": /home/zeta/.config/gh/hosts.yml; run `zeta-creds bundle` to carry them"
            ),
        "{err}"
    );
    assert!(pf.exists());
    assert_eq!(before, fs::read(w.blob()).unwrap());
    let line = fs::read_to_string(&notice).unwrap();
    assert!(
        line.starts_with("zeta-creds: 1 carried files changed since the blob was sealed on ")
            && !line.contains("hosts.yml"),
        "{line}"
    );
    let mode = fs::metadata(&notice).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);

    w.rebundle();
    let out = rebundle(
        &w,
        None,
        &["--report-only", "--notice", notice.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!notice.exists());
}

/// A carried file that vanished is not dropped by the automatic run:
/// exit 10, the blob untouched; `--drop-vanished` drops it.
#[test]
fn a_vanished_file_is_never_dropped_automatically() {
    let w = World::bundled();
    fs::remove_file(w.src().join(HOSTS)).unwrap();
    let before = fs::read(w.blob()).unwrap();
    let pf = w.pass_file(PASS);
    let out = rebundle(&w, Some(&pf), &[]);
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    assert!(
        stderr(&out).contains("1 carried files vanished since")
            && stderr(&out).contains("/home/zeta/.config/gh/hosts.yml (vanished)")
            && stderr(&out).contains("not re-bundled, so the blob still carries them"),
        "{out:?}"
    );
    assert_eq!(before, fs::read(w.blob()).unwrap());
    assert!(!prev(&w).exists());
    let out = rebundle(&w, Some(&pf), &["--drop-vanished"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(generation_of(&w, &w.blob()), 2);
}

/// A blob this system has not restored (a restore still pending) is never
/// sealed over: exit 1, the blob untouched, no passphrase read.
#[test]
fn a_blob_not_yet_restored_is_not_sealed_over() {
    let w = World::bundled();
    // Another blob, sealed elsewhere (no record there), put on the ESP.
    let other = World::bundled();
    fs::copy(other.blob(), w.blob()).unwrap();
    let before = fs::read(w.blob()).unwrap();
    fs::write(w.src().join(HOSTS), "rotated token\n").unwrap();
    let pf = w.pass_file(PASS);
    let out = rebundle(&w, Some(&pf), &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("is not the blob this system last restored or sealed")
            && stderr(&out).contains("a restore may be pending"),
        "{out:?}"
    );
    assert!(pf.exists());
    assert_eq!(before, fs::read(w.blob()).unwrap());
}

/// No state record: nothing to compare with, exit 6, nothing written.
#[test]
fn no_state_record_exits_6() {
    let w = World::new();
    w.populate();
    let pf = w.pass_file(PASS);
    w.bundle()
        .args(["--host", "node-b", "--passphrase-file"])
        .arg(&pf)
        .assert()
        .success();
    let pf = w.pass_file(PASS);
    let out = rebundle(&w, Some(&pf), &[]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(stderr(&out).contains("state.json"), "{out:?}");
}

/// A passphrase that does not open the blob (a stale credential) seals
/// nothing: exit 3, the blob untouched.
#[test]
fn a_wrong_passphrase_seals_nothing() {
    let w = World::bundled();
    fs::write(w.src().join(HOSTS), "rotated token\n").unwrap();
    let before = fs::read(w.blob()).unwrap();
    let pf = w.pass_file("not the passphrase of this blob");
    let out = rebundle(&w, Some(&pf), &[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(before, fs::read(w.blob()).unwrap());
    assert!(!prev(&w).exists());
}

/// A required entry gone whole (the tool logged out) is reported as
/// vanished files, in both modes, with exit 10: the bundle's own checks
/// (which would refuse it with exit 6) are made only when it seals.
#[test]
fn a_required_entry_gone_is_reported_not_an_error() {
    let w = World::bundled();
    fs::remove_dir_all(w.src().join("home/zeta/.config/gh")).unwrap();
    let before = fs::read(w.blob()).unwrap();
    for extra in [&[][..], &["--report-only"][..]] {
        let pf = w.pass_file(PASS);
        let out = rebundle(&w, Some(&pf), extra);
        assert_eq!(out.status.code(), Some(10), "{extra:?}: {out:?}");
        assert!(
            stderr(&out).contains("/home/zeta/.config/gh/hosts.yml (vanished)"),
            "{extra:?}: {out:?}"
        );
        assert!(pf.exists());
    }
    assert_eq!(before, fs::read(w.blob()).unwrap());
}

/// `rebundle` of a changed login onto an ESP that is an 8 MiB tmpfs (room
/// for the new blob and `.prev`) in a private mount namespace, holding the
/// blob, after `setup` (shell) made
/// it unusable; returns its output, stdout ending with what the ESP held
/// after (`left: ...`) and `blob: unchanged` when the blob is the one
/// saved before. The state record must be as it was.
fn rebundle_on_a_broken_esp(setup: &str) -> (Output, String, String) {
    assert!(is_root(), "needs root: it mounts a tmpfs");
    let w = World::bundled();
    fs::write(w.src().join(HOSTS), "rotated token\n").unwrap();
    let record = w.src().join("var/lib/zeta-creds/state.json");
    let record_before = fs::read(&record).unwrap();
    let saved = w.path("blob.saved");
    fs::copy(w.blob(), &saved).unwrap();
    let pf = w.pass_file(PASS);
    let bin = assert_cmd::cargo::cargo_bin("zeta-creds");
    let script = format!(
        r#"mount -t tmpfs -o size=8m tmpfs "$ESP" || exit 77
cp "$SAVED" "$ESP/zeta-creds.enc" || exit 77
{setup}
"$@"
rc=$?
rm -f "$ESP/filler" 2>/dev/null
echo "left: $(ls -A "$ESP" | tr '\n' ' ')"
cmp -s "$SAVED" "$ESP/zeta-creds.enc" && echo "blob: unchanged"
exit $rc"#
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(&bin)
        .arg("rebundle")
        .arg("--blob")
        .arg(w.blob())
        .args(["--usb-uuid", UUID])
        .arg("--source-root")
        .arg(w.src())
        .arg("--manifest")
        .arg(w.manifest())
        .arg("--passphrase-file")
        .arg(&pf)
        .env("ESP", w.path("esp"))
        .env("SAVED", &saved)
        .output()
        .unwrap();
    assert_ne!(
        out.status.code(),
        Some(77),
        "cannot set up the tmpfs: {out:?}"
    );
    assert_eq!(
        fs::read(&record).unwrap(),
        record_before,
        "the record was raised"
    );
    let (so, se) = (stdout(&out), stderr(&out));
    (out, so, se)
}

/// A full ESP (issue 18, "Bad input"): the re-bundle refuses before it
/// writes (exit 1, naming the blob and the fix), the blob stays byte for
/// byte, no temporary file or `.prev` is left, the record is not raised,
/// so the next run tries again.
#[test]
fn root_a_full_esp_leaves_the_blob_and_the_record_as_they_were() {
    let (out, so, se) =
        rebundle_on_a_broken_esp(r#"dd if=/dev/zero of="$ESP/filler" bs=4k 2>/dev/null"#);
    assert_eq!(out.status.code(), Some(1), "{so}{se}");
    assert!(se.contains("not enough room for"), "{se}");
    assert!(so.contains("left: zeta-creds.enc \n"), "{so}");
    assert!(so.contains("blob: unchanged"), "{so}");
}

/// A read-only ESP (issue 18, "Bad input"): the re-bundle fails (exit 1)
/// naming the blob, writes nothing, the blob stays, the record is not
/// raised.
#[test]
fn root_a_read_only_esp_leaves_the_blob_and_the_record_as_they_were() {
    let (out, so, se) = rebundle_on_a_broken_esp(r#"mount -o remount,ro "$ESP" || exit 77"#);
    assert_eq!(out.status.code(), Some(1), "{so}{se}");
    assert!(se.contains("zeta-creds.enc"), "{se}");
    assert!(se.contains("Read-only file system"), "{se}");
    assert!(so.contains("left: zeta-creds.enc \n"), "{so}");
    assert!(so.contains("blob: unchanged"), "{so}");
}

/// A vanished file whose entry the operator took out of the manifest is
/// what the manifest says to drop (issue 18: "never re-bundles an entry
/// that vanished unless the manifest says so"): the automatic run
/// re-bundles without it, no flag needed, and the new blob no longer
/// carries it.
#[test]
fn a_vanished_file_the_manifest_no_longer_carries_is_dropped() {
    let w = World::bundled();
    fs::remove_file(w.src().join("home/zeta/.codex/auth.json")).unwrap();
    let text = fs::read_to_string(w.manifest()).unwrap();
    let without = text.replace("[[entry]]\npath = \"~/.codex/auth.json\"\n\n", "");
    assert_ne!(text, without, "the manifest names ~/.codex/auth.json");
    fs::write(w.manifest(), without).unwrap();
    let pf = w.pass_file(PASS);
    let out = rebundle(&w, Some(&pf), &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("1 vanished"), "{}", stdout(&out));
    assert_eq!(generation_of(&w, &w.blob()), 2);
    let pf = w.pass_file(PASS);
    let list = w
        .cmd()
        .args(["verify", "--list", "--blob"])
        .arg(w.blob())
        .arg("--passphrase-file")
        .arg(&pf)
        .output()
        .unwrap();
    assert!(list.status.success(), "{list:?}");
    let listed = stdout(&list);
    assert!(listed.contains(".config/gh/hosts.yml"), "{listed}");
    assert!(!listed.contains(".codex/auth.json"), "{listed}");
}
