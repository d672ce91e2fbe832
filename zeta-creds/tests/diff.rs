//! `zeta-creds diff` (issue 6): what a re-bundle would change. Each of the
//! four kinds of difference is detected on its own; an unchanged tree
//! exits 0; a difference exits 10; diff writes nothing.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;
use predicates::prelude::*;

/// Run `diff` against the world's blob and manifest.
fn diff(w: &World) -> std::process::Output {
    let pf = w.pass_file(PASS);
    let out = w
        .cmd()
        .arg("diff")
        .arg("--blob")
        .arg(w.blob())
        .arg("--manifest")
        .arg(w.manifest())
        .arg("--source-root")
        .arg(w.src())
        .arg("--passphrase-file")
        .arg(&pf)
        .output()
        .unwrap();
    assert!(!pf.exists(), "the passphrase file is consumed");
    out
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Assert exit 10 and exactly these change lines (in order), then the
/// summary with these counts.
fn assert_differs(w: &World, lines: &[&str], counts: (usize, usize, usize, usize)) {
    let out = diff(w);
    let s = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(10),
        "{s}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<&str> = s.lines().filter(|l| !l.starts_with("blob ")).collect();
    assert_eq!(got, lines, "{s}");
    let (a, r, c, m) = counts;
    assert!(
        s.contains(&format!(
            "differs from what manifest {} picks under {}: {a} added, {r} removed, {c} changed content, {m} changed mode or owner; re-bundle to carry them",
            w.manifest().display(),
            w.src().display()
        )),
        "{s}"
    );
}

#[test]
fn identical_tree_is_exit_0_and_diff_writes_nothing() {
    let w = World::bundled();
    let before_src = snapshot(&w.src());
    let blob = fs::read(w.blob()).unwrap();
    let out = diff(&w);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout(&out),
        format!(
            "blob {} matches what manifest {} picks under {}: 12 entries, nothing to re-bundle\n",
            w.blob().display(),
            w.manifest().display(),
            w.src().display()
        )
    );
    assert_eq!(before_src, snapshot(&w.src()));
    assert_eq!(blob, fs::read(w.blob()).unwrap());
    assert!(!w.path("esp/zeta-creds.enc.prev").exists());
}

#[test]
fn added_file_is_detected() {
    let w = World::bundled();
    let s = source_ids();
    w.put(
        "home/zeta/.config/gh/new-token.yml",
        b"token: new\n",
        0o600,
        Some((s.zeta_uid, s.zeta_gid)),
    );
    assert_differs(
        &w,
        &["added       ~/.config/gh/new-token.yml"],
        (1, 0, 0, 0),
    );
}

#[test]
fn removed_file_is_detected() {
    let w = World::bundled();
    fs::remove_file(w.src().join("etc/zeta/hook.sh")).unwrap();
    assert_differs(&w, &["removed     /etc/zeta/hook.sh"], (0, 1, 0, 0));
}

/// Same size, other bytes: only the SHA-256 can tell.
#[test]
fn changed_content_of_the_same_size_is_detected() {
    let w = World::bundled();
    let p = w.src().join("home/zeta/.config/gh/hosts.yml");
    let mut bytes = fs::read(&p).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x20;
    fs::write(&p, &bytes).unwrap();
    let n = bytes.len();
    assert_differs(
        &w,
        &[&format!(
            "content     ~/.config/gh/hosts.yml  ({n} -> {n} bytes)"
        )],
        (0, 0, 1, 0),
    );
}

#[test]
fn changed_mode_is_detected() {
    let w = World::bundled();
    fs::set_permissions(
        w.src().join("etc/zeta/operator-authorized-keys"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    assert_differs(
        &w,
        &["mode/owner  /etc/zeta/operator-authorized-keys  (mode 0644 -> 0600)"],
        (0, 0, 0, 1),
    );
}

#[test]
fn root_changed_owner_is_detected() {
    require_root("changing a file's owner");
    let w = World::bundled();
    let s = source_ids();
    std::os::unix::fs::chown(
        w.src().join("etc/zeta/hook.sh"),
        Some(s.zeta_uid),
        Some(s.zeta_gid),
    )
    .unwrap();
    assert_differs(
        &w,
        &["mode/owner  /etc/zeta/hook.sh  (owner root:root -> zeta:zeta)"],
        (0, 0, 0, 1),
    );
}

/// All four at once, in path order (root entries, then home entries), and
/// a manifest edit counts as well: an entry removed from the manifest is
/// "removed", a new entry's files are "added".
#[test]
fn all_kinds_together_and_manifest_edits() {
    let w = World::bundled();
    fs::remove_file(w.src().join("etc/zeta/hook.sh")).unwrap();
    fs::write(w.src().join("home/zeta/.codex/auth.json"), b"rotated").unwrap();
    fs::set_permissions(
        w.src().join("etc/ssh/ssh_host_ed25519_key.pub"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let s = source_ids();
    w.put(
        "home/zeta/.claude.json",
        b"{}",
        0o600,
        Some((s.zeta_uid, s.zeta_gid)),
    );
    let text = fs::read_to_string(w.manifest()).unwrap();
    fs::write(
        w.manifest(),
        text.replace("[[entry]]\npath = \"/etc/ssh/ssh_host_ed25519_key\"\n", ""),
    )
    .unwrap();
    assert_differs(
        &w,
        &[
            "removed     /etc/ssh/ssh_host_ed25519_key",
            "mode/owner  /etc/ssh/ssh_host_ed25519_key.pub  (mode 0644 -> 0640)",
            "removed     /etc/zeta/hook.sh",
            "added       ~/.claude.json",
            "content     ~/.codex/auth.json  (1048576 -> 7 bytes)",
        ],
        (1, 2, 1, 1),
    );
}

/// The passphrase is checked like everywhere else: wrong is exit 3, and a
/// manifest problem is reported before any passphrase is needed.
#[test]
fn wrong_passphrase_is_exit_3_and_a_bad_manifest_needs_no_passphrase() {
    let w = World::bundled();
    let pf = w.pass_file("not the passphrase at all");
    w.cmd()
        .arg("diff")
        .arg("--blob")
        .arg(w.blob())
        .arg("--manifest")
        .arg(w.manifest())
        .arg("--source-root")
        .arg(w.src())
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("wrong passphrase for blob"));
    assert!(!pf.exists());
    fs::write(w.manifest(), "version = 1\nuser = \"zeta\"\nbogus = 1\n").unwrap();
    w.cmd()
        .arg("diff")
        .arg("--blob")
        .arg(w.blob())
        .arg("--manifest")
        .arg(w.manifest())
        .arg("--source-root")
        .arg(w.src())
        .write_stdin("")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("line 3: unknown field `bogus`"));
}

/// A blob tampered after sealing: diff refuses it like restore (exit 5).
#[test]
fn tampered_blob_is_exit_5() {
    let w = World::bundled();
    let mut bytes = fs::read(w.blob()).unwrap();
    let n = bytes.len();
    bytes[n - 30] ^= 1;
    fs::write(w.blob(), &bytes).unwrap();
    let out = diff(&w);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
