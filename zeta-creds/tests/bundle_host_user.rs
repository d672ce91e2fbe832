//! `bundle --out F` over another host's blob (issue 16: one stick and one
//! passphrase serve a fleet, so F may be node B's blob), and `bundle
//! --user NAME` / `diff --user NAME` (issue 17 item 7: a user not named
//! as the manifest says).

mod common;

use std::fs;

use common::*;
use predicates::prelude::*;

/// The world's blob sealed for `node-b` (its source root renamed).
fn node_b_blob_at_out() -> World {
    let w = World::new();
    w.populate();
    fs::write(w.src().join("etc/hostname"), "node-b\n").unwrap();
    w.bundle_ok();
    fs::write(w.src().join("etc/hostname"), format!("{HOST}\n")).unwrap();
    w
}

#[test]
fn bundle_over_another_hosts_blob_is_refused_before_the_passphrase_and_writes_nothing() {
    let w = node_b_blob_at_out();
    let before = fs::read(w.blob()).unwrap();
    let esp_before = snapshot(&w.path("esp"));
    let out = w.bundle_with(PASS, &[]);
    assert_eq!(out.status.code(), Some(4), "exit 4: bound to another host");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for text in [
        "was sealed for host node-b, not for node-a",
        "nothing was written",
        "--host node-b",
        "--allow-other-host",
    ] {
        assert!(stderr.contains(text), "{text:?} not in: {stderr}");
    }
    assert_eq!(
        stderr.matches("error:").count(),
        1,
        "one error line: {stderr}"
    );
    assert_eq!(fs::read(w.blob()).unwrap(), before, "the blob is unchanged");
    assert_eq!(
        esp_before,
        snapshot(&w.path("esp")),
        "no .prev, no temp file"
    );
    // --force (another stick, an unreadable blob) is not the way past it.
    let out = w.bundle_with(PASS, &["--force"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(fs::read(w.blob()).unwrap(), before);
    // The same host by name is that host's own blob: replaced as always.
    let out = w.bundle_with(PASS, &["--host", "Node-B"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn allow_other_host_replaces_it_on_purpose_and_keeps_it_as_prev() {
    let w = node_b_blob_at_out();
    let before = fs::read(w.blob()).unwrap();
    let out = w.bundle_with(PASS, &["--allow-other-host"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "sealed for host node-b, with a blob sealed for host node-a (--allow-other-host)"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prev = w.blob().with_file_name("zeta-creds.enc.prev");
    assert_eq!(fs::read(prev).unwrap(), before);
    w.cmd()
        .args(["inspect", "--json"])
        .arg(w.blob())
        .assert()
        .success()
        .stdout(predicate::str::contains("\"node-a\""));
}

/// A source whose person is `alice`, with the manifest still saying `zeta`.
fn alice_world() -> World {
    let w = World::new();
    w.populate();
    let s = source_ids();
    let passwd = fs::read_to_string(w.src().join("etc/passwd")).unwrap();
    fs::write(
        w.src().join("etc/passwd"),
        passwd
            .replace("zeta:x:", "alice:x:")
            .replace("/home/zeta", "/home/alice")
            + &format!(
                "bob:x:{}:{}::/home/bob:/bin/sh\n",
                s.zeta_uid + 1,
                s.zeta_gid
            ),
    )
    .unwrap();
    fs::rename(w.src().join("home/zeta"), w.src().join("home/alice")).unwrap();
    w
}

#[test]
fn an_unknown_manifest_user_names_the_normal_users_once_before_the_passphrase() {
    let w = alice_world();
    let out = w.bundle_with(PASS, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("is not in").count(),
        1,
        "reported once: {stderr}"
    );
    assert!(stderr.contains("user \"zeta\" is not in"), "{stderr}");
    assert!(
        stderr.contains("pass --user NAME to choose one"),
        "{stderr}"
    );
    // As a normal user the test accounts carry the user's own uid, which
    // may be below 1000 (the listing itself is unit-tested in passwd.rs).
    if is_root() {
        assert!(stderr.contains("its normal users: alice, bob"), "{stderr}");
    }
    assert!(!w.blob().exists(), "nothing written");
}

#[test]
fn bundle_and_diff_user_override_the_manifests_user() {
    let w = alice_world();
    let out = w.bundle_with(PASS, &["--user", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pf = w.pass_file(PASS);
    w.cmd()
        .args(["verify", "--json", "--blob"])
        .arg(w.blob())
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success()
        .stdout(predicate::str::contains("\"alice\""));
    let diff = |user: Option<&str>| {
        let pf = w.pass_file(PASS);
        let mut c = w.cmd();
        c.arg("diff")
            .arg("--blob")
            .arg(w.blob())
            .arg("--manifest")
            .arg(w.manifest())
            .arg("--source-root")
            .arg(w.src())
            .arg("--passphrase-file")
            .arg(&pf);
        if let Some(u) = user {
            c.args(["--user", u]);
        }
        c.output().unwrap()
    };
    let same = diff(Some("alice"));
    assert_eq!(
        same.status.code(),
        Some(0),
        "nothing changed: {}",
        String::from_utf8_lossy(&same.stderr)
    );
    let without = diff(None);
    assert_ne!(without.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("user \"zeta\" is not in"),
        "{}",
        String::from_utf8_lossy(&without.stderr)
    );
}
