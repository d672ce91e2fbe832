//! Host binding (issue 16, deliverable 4): a blob names the host it was
//! sealed for, and `restore` refuses another host's blob before it asks
//! for a passphrase. The attack it stops: one stick and one passphrase
//! serve a fleet, so node B's blob copied onto node A's ESP would restore
//! B's SSH host keys and `authorized_keys` on A with exit 0.

mod common;

use std::fs;
use std::os::unix::fs::symlink;

use common::*;
use predicates::prelude::*;
use secrecy::SecretString;
use zeta_creds::envelope::{EntryWriter, FileKey, Header, HeaderFields, UsbUuid};

/// A world whose source root is host `node-b` (the target root is
/// [`HOST`], `node-a`), bundled there: node B's blob.
fn node_b_blob() -> World {
    let w = World::new();
    w.populate();
    fs::write(w.src().join("etc/hostname"), "node-b\n").unwrap();
    w.bundle_ok();
    w
}

/// `restore` that must be refused with `code` before the passphrase is
/// read: the passphrase file is left as it was, the target root unchanged.
fn refused_unread(w: &World, extra: &[&str], code: i32, stderr: &[&str]) {
    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    let mut assert = w
        .restore()
        .args(extra)
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .code(code);
    for text in stderr {
        assert = assert.stderr(predicate::str::contains(*text));
    }
    drop(assert);
    assert_eq!(
        fs::read_to_string(&pf).unwrap(),
        format!("{PASS}\n"),
        "refused before the passphrase was read: the file is left in place"
    );
    assert_eq!(before, snapshot(&w.dst()), "nothing was written");
}

/// Issue 16: two hosts, one stick, one passphrase; B's blob restored on A.
#[test]
fn fleet_swap_node_b_blob_on_node_a_is_refused_before_the_passphrase() {
    let w = node_b_blob();
    refused_unread(
        &w,
        &[],
        4,
        &[
            "blob was sealed for host node-b, not for this host node-a",
            "--allow-other-host",
        ],
    );
    // The same with the host given on the command line.
    refused_unread(&w, &["--host", "Node-A"], 4, &["not for this host node-a"]);
}

#[test]
fn allow_other_host_restores_another_hosts_blob_on_purpose() {
    let w = node_b_blob();
    let pf = w.pass_file(PASS);
    w.restore()
        .arg("--allow-other-host")
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "host binding not checked (--allow-other-host): blob",
        ))
        .stderr(predicate::str::contains("claims host node-b"));
    assert!(w.dst().join("home/zeta/.config/gh/hosts.yml").exists());
}

#[test]
fn own_hosts_blob_restores_and_inspect_and_verify_show_the_host() {
    let w = World::bundled();
    w.restore_ok(&[]);
    w.cmd()
        .arg("inspect")
        .arg(w.blob())
        .assert()
        .success()
        .stdout(predicate::str::contains("  format version  2\n"))
        .stdout(predicate::str::contains("  host            node-a\n"));
    let out = w
        .cmd()
        .args(["inspect", "--json"])
        .arg(w.blob())
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["host"], "node-a");
    assert_eq!(json["format_version"], 2);
    let pf = w.pass_file(PASS);
    w.cmd()
        .args(["verify", "--blob"])
        .arg(w.blob())
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success()
        .stdout(predicate::str::contains("sealed for host node-a"));
}

#[test]
fn rekey_new_host_moves_a_blob_to_another_host() {
    let w = node_b_blob();
    let pf = w.pass_file(PASS);
    w.cmd()
        .args(["rekey", "--blob"])
        .arg(w.blob())
        .args([
            "--same-passphrase",
            "--new-host",
            "node-a",
            "--passphrase-file",
        ])
        .arg(&pf)
        .assert()
        .success()
        .stdout(predicate::str::contains("host node-b -> node-a"));
    w.restore_ok(&[]);
}

/// A version 1 blob (no host field), as zeta-creds wrote before the host
/// binding: zero entries for user zeta, bound to [`UUID`].
fn write_v1_blob(w: &World) {
    let fields = HeaderFields {
        usb_uuid: UsbUuid::parse(UUID).unwrap(),
        log_n: 10,
        generation: 1,
        created: 1_700_000_000,
        tool_version: "0.1.0".into(),
        persona: String::new(),
        host: None,
    };
    let stream = Header::seal_with(
        Vec::new(),
        &SecretString::from(PASS),
        &fields,
        FileKey::from_bytes_for_vectors([9; 32]),
        [1; 16],
        [2; 16],
    )
    .unwrap();
    let blob = EntryWriter::new(stream, "zeta")
        .unwrap()
        .finish()
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(blob[10], 1, "version 1");
    fs::write(w.blob(), blob).unwrap();
}

#[test]
fn a_version_1_blob_is_read_refused_by_restore_as_host_less_and_migrated_by_rekey() {
    let w = World::new();
    write_v1_blob(&w);
    w.cmd()
        .arg("inspect")
        .arg(w.blob())
        .assert()
        .success()
        .stdout(predicate::str::contains("  format version  1\n"))
        .stdout(predicate::str::contains(
            "  host            (none: format version 1",
        ));
    let out = w
        .cmd()
        .args(["inspect", "--json"])
        .arg(w.blob())
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["host"].is_null());
    // Restore: no host recorded is another host.
    refused_unread(
        &w,
        &[],
        4,
        &[
            "blob records no host (envelope version 1)",
            "zeta-creds rekey --blob BLOB --same-passphrase --new-host NAME",
        ],
    );
    // Verify reads it (no host to check).
    let pf = w.pass_file(PASS);
    w.cmd()
        .args(["verify", "--blob"])
        .arg(w.blob())
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "sealed for host (none: format version 1)",
        ));
    // A rekey must name the host, and says so before reading a passphrase.
    let pf = w.pass_file(PASS);
    w.cmd()
        .args(["rekey", "--blob"])
        .arg(w.blob())
        .args(["--same-passphrase", "--passphrase-file"])
        .arg(&pf)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pass --new-host NAME"));
    assert!(pf.exists());
    let v1 = fs::read(w.blob()).unwrap();
    w.cmd()
        .args(["rekey", "--blob"])
        .arg(w.blob())
        .args([
            "--same-passphrase",
            "--new-host",
            "node-a",
            "--passphrase-file",
        ])
        .arg(&pf)
        .assert()
        .success()
        .stdout(predicate::str::contains("host (none) -> node-a"));
    let v2 = fs::read(w.blob()).unwrap();
    assert_eq!(v2[10], 2, "a rekey writes version 2");
    // The payload is copied unchanged: the payload key does not depend on
    // the header (FORMAT.md §12). A zero-entry payload is its last 30 bytes.
    assert_eq!(v1[v1.len() - 30..], v2[v2.len() - 30..]);
    w.restore_ok(&[]);
}

/// NixOS: `/etc/hostname -> /etc/static/hostname`, and that one a relative
/// link into the store. Resolved inside the target root: the live root has
/// no `/nix/store/xxx-hostname`.
#[test]
fn hostname_symlinks_are_resolved_inside_the_target_root() {
    let w = World::bundled();
    let dst = w.dst();
    fs::remove_file(dst.join("etc/hostname")).unwrap();
    fs::create_dir_all(dst.join("etc/static")).unwrap();
    fs::create_dir_all(dst.join("nix/store")).unwrap();
    fs::write(dst.join("nix/store/xxx-hostname"), "node-a\n").unwrap();
    symlink(
        "../../nix/store/xxx-hostname",
        dst.join("etc/static/hostname"),
    )
    .unwrap();
    symlink("/etc/static/hostname", dst.join("etc/hostname")).unwrap();
    w.restore_ok(&[]);
}

#[test]
fn a_hostname_symlink_escaping_the_target_root_is_refused() {
    let w = World::bundled();
    let dst = w.dst();
    fs::remove_file(dst.join("etc/hostname")).unwrap();
    symlink(
        "../../../../../../../../etc/hostname",
        dst.join("etc/hostname"),
    )
    .unwrap();
    refused_unread(
        &w,
        &[],
        1,
        &[
            "is not resolvable inside root",
            "leads above the root",
            "--host NAME",
        ],
    );
}

#[test]
fn no_hostname_is_exit_6_naming_the_file_and_host() {
    let w = World::bundled();
    fs::remove_file(w.dst().join("etc/hostname")).unwrap();
    refused_unread(
        &w,
        &[],
        6,
        &["etc/hostname does not exist", "pass --host NAME"],
    );
}

#[test]
fn bad_host_characters_are_refused_with_the_characters_named() {
    let w = World::new();
    w.populate();
    let out = w.bundle_with(PASS, &["--host", "node_a b"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "--host: invalid host name \"node_a b\": it contains '_', ' ' outside the allowed set"
        ),
        "{err}"
    );
    assert!(!w.blob().exists());
    // A target root whose etc/hostname is not a host name.
    let w = World::bundled();
    fs::write(w.dst().join("etc/hostname"), "node_a\n").unwrap();
    refused_unread(&w, &[], 1, &["etc/hostname: invalid host name", "'_'"]);
    refused_unread(&w, &["--host", &"a".repeat(65)], 2, &["65 bytes long"]);
}
