//! `zeta-creds status` (issue 18): is the blob still fresh? Over a real
//! restore: changed, unchanged, vanished and new files, each with its exact
//! line; a fresh restore exits 0, a changed disk 10; a missing or corrupt
//! state record exits 6 with its message and never panics; a symlink over
//! a recorded file (or a directory above one) is reported, never followed.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, UNIX_EPOCH};

use common::*;

const HOSTS: &str = "home/zeta/.config/gh/hosts.yml";

/// `status --target-root DST` with `extra` arguments.
fn status(w: &World, extra: &[&str]) -> Output {
    w.cmd()
        .arg("status")
        .arg("--target-root")
        .arg(w.dst())
        .args(extra)
        .output()
        .unwrap()
}

/// `status` with the world's manifest.
fn status_with_manifest(w: &World, extra: &[&str]) -> Output {
    let manifest = w.manifest();
    let mut args = vec!["--manifest", manifest.to_str().unwrap()];
    args.extend_from_slice(extra);
    status(w, &args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// The standard tree bundled and restored into the target root.
fn restored() -> World {
    let w = World::bundled();
    w.restore_ok(&[]);
    w
}

/// The summary's `blob generation G, sealed DATE`, from the record itself:
/// a record that names the blob it was restored from (with its sealed
/// date) must have that date shown.
fn blob(w: &World) -> String {
    let record = fs::read(w.dst().join("var/lib/zeta-creds/state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&record).unwrap();
    let generation = v["generation"].as_u64().unwrap();
    match v["restored_blob"]["sealed"].as_u64() {
        Some(sealed) => format!(
            "blob generation {generation}, sealed {}",
            zeta_creds::msg::utc(sealed)
        ),
        None => format!("blob generation {generation}, sealed date not recorded"),
    }
}

/// The end of a stale summary.
fn stale_tail(w: &World) -> String {
    format!(
        "since the blob was sealed ({}); run `zeta-creds bundle` to carry them",
        blob(w)
    )
}

#[test]
fn a_fresh_restore_is_exit_0() {
    let w = restored();
    let out = status_with_manifest(&w, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "fresh: 8 carried files unchanged since the blob was sealed ({}); nothing to re-bundle\n",
            blob(&w)
        )
    );
    assert_eq!(stderr(&out), "");
}

/// The issue's four cases in one run: one file rewritten in place, one
/// deleted, one new file the manifest picks, the rest untouched.
#[test]
fn changed_vanished_and_new_are_named_and_exit_10() {
    let w = restored();
    let hosts = w.dst().join(HOSTS);
    let before = fs::metadata(&hosts).unwrap().len();
    fs::write(&hosts, "github.com:\n  oauth_token: gho_ROTATED_TOKEN\n").unwrap();
    let after = fs::metadata(&hosts).unwrap().len();
    fs::remove_file(w.dst().join("home/zeta/.codex/auth.json")).unwrap();
    // Picked by the manifest's optional `~/.claude.json` entry, which
    // matched nothing at bundle time.
    fs::write(w.dst().join("home/zeta/.claude.json"), "{}").unwrap();
    let out = status_with_manifest(&w, &[]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let tail = stale_tail(&w);
    assert_eq!(
        stdout(&out),
        format!(
            "new        /home/zeta/.claude.json\n\
             vanished   /home/zeta/.codex/auth.json\n\
             changed    /home/zeta/.config/gh/hosts.yml  (size {before} -> {after} bytes, mtime, ctime)\n\
             stale: 1 changed, 1 vanished, 1 new, 6 unchanged {tail}\n"
        )
    );
    assert_eq!(stderr(&out), "");
}

/// A tool that writes a new file and renames it over the old one (most
/// do), with the same size and mtime: the inode and ctime still tell.
#[test]
fn a_file_replaced_by_rename_with_the_same_size_and_mtime_is_changed() {
    let w = restored();
    let hosts = w.dst().join(HOSTS);
    let md = fs::metadata(&hosts).unwrap();
    let same_size = "x".repeat(md.len() as usize);
    let tmp = w.dst().join("home/zeta/.config/gh/hosts.yml.tmp");
    fs::write(&tmp, same_size).unwrap();
    let mtime = UNIX_EPOCH + Duration::from_secs(md.mtime() as u64);
    fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    fs::rename(&tmp, &hosts).unwrap();
    let out = status(&w, &[]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let tail = stale_tail(&w);
    assert_eq!(
        stdout(&out),
        format!(
            "changed    /home/zeta/.config/gh/hosts.yml  (inode, ctime)\n\
             stale: 1 changed, 7 unchanged {tail}\n"
        )
    );
    // Without a manifest it says that new files were not looked for.
    assert_eq!(
        stderr(&out),
        format!(
            "zeta-creds: warning: no manifest (--manifest, or {}): files the blob does not carry yet were not looked for\n",
            w.dst().join("etc/zeta/creds-manifest.toml").display()
        )
    );
}

/// A symlink planted over a recorded file, and one over a directory above
/// a recorded file, pointing at the very file that was there (moved): a
/// status that followed them would find the old file and call it
/// unchanged (the moved directory's files keep inode, size, mtime and
/// ctime). It reports both as changed and follows neither.
#[test]
fn a_symlink_over_a_recorded_file_or_its_directory_is_changed_not_followed() {
    let w = restored();
    let hosts = w.dst().join(HOSTS);
    let moved = w.dst().join("home/zeta/hosts.yml.moved");
    fs::rename(&hosts, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &hosts).unwrap();
    let codex = w.dst().join("home/zeta/.codex");
    let codex_moved = w.dst().join("home/zeta/codex.moved");
    fs::rename(&codex, &codex_moved).unwrap();
    std::os::unix::fs::symlink(&codex_moved, &codex).unwrap();
    let out = status(&w, &[]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let tail = stale_tail(&w);
    assert_eq!(
        stdout(&out),
        format!(
            "changed    /home/zeta/.codex/auth.json  (a directory above it is now a symlink or not a directory, not followed)\n\
             changed    /home/zeta/.config/gh/hosts.yml  (now a symlink, not followed)\n\
             stale: 2 changed, 6 unchanged {tail}\n"
        )
    );
}

/// `--json`: the same report, counts included, valid JSON.
#[test]
fn json_has_the_counts_and_one_object_per_file() {
    let w = restored();
    fs::remove_file(w.dst().join("etc/zeta/hook.sh")).unwrap();
    fs::write(w.dst().join("home/zeta/.claude.json"), "{}").unwrap();
    let out = status_with_manifest(&w, &["--json"]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["fresh"], false);
    assert_eq!(v["generation"], 1);
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(w.dst().join("var/lib/zeta-creds/state.json")).unwrap())
            .unwrap();
    assert!(record["restored_blob"]["sealed"].is_u64());
    let rfc3339 = v["sealed"]
        .as_str()
        .expect("RFC 3339, null when not recorded");
    let shape: String = rfc3339
        .chars()
        .map(|c| if c.is_ascii_digit() { '0' } else { c })
        .collect();
    assert_eq!(shape, "0000-00-00T00:00:00Z", "{rfc3339}");
    assert_eq!(
        v["state_record"],
        w.dst()
            .join("var/lib/zeta-creds/state.json")
            .display()
            .to_string()
    );
    assert_eq!(
        v["counts"],
        serde_json::json!({"unchanged": 7, "changed": 0, "vanished": 1, "new": 1, "unreadable": 0})
    );
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 9, "every recorded file and the new one");
    let state_of = |path: &str| {
        files
            .iter()
            .find(|f| f["destination"] == path)
            .unwrap_or_else(|| panic!("{path} not in {v}"))["state"]
            .clone()
    };
    assert_eq!(state_of("/etc/zeta/hook.sh"), "vanished");
    assert_eq!(state_of("/home/zeta/.claude.json"), "new");
    assert_eq!(state_of("/etc/ssh/ssh_host_ed25519_key"), "unchanged");

    // Fresh, in JSON too.
    let w = restored();
    let out = status_with_manifest(&w, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["fresh"], true);
    assert_eq!(v["counts"]["unchanged"], 8);
}

/// Without --manifest, the host's manifest under the target root is used
/// when it exists (here it carries /etc/zeta, so it is new itself).
#[test]
fn the_hosts_manifest_is_the_default() {
    let w = restored();
    fs::copy(w.manifest(), w.dst().join("etc/zeta/creds-manifest.toml")).unwrap();
    let out = status(&w, &[]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let tail = stale_tail(&w);
    assert_eq!(
        stdout(&out),
        format!("new        /etc/zeta/creds-manifest.toml\nstale: 1 new, 8 unchanged {tail}\n")
    );
    assert_eq!(stderr(&out), "", "no warning: a manifest was found");
}

#[test]
fn no_state_record_is_exit_6_and_says_to_restore_first() {
    let w = World::bundled();
    let out = status(&w, &[]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        format!(
            "zeta-creds: error: no state record at {}: nothing was restored on this system yet; run `zeta-creds restore` first\n",
            w.dst().join("var/lib/zeta-creds/state.json").display()
        )
    );
}

fn corrupt_record(contents: &[u8], reason: &str) {
    let w = restored();
    let record = w.dst().join("var/lib/zeta-creds/state.json");
    fs::write(&record, contents).unwrap();
    let out = status_with_manifest(&w, &["--json"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exit_code"], 6);
    assert_eq!(v["exit_name"], "input-missing");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("state record {} cannot be used", record.display())),
        "{v}"
    );
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "zeta-creds: error: state record {} cannot be used ({reason}",
            record.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("status cannot tell what changed since the blob was restored"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_corrupt_record_is_exit_6_and_named_never_a_panic() {
    corrupt_record(b"{garbage", "key must be a string");
    corrupt_record(b"", "EOF while parsing");
    corrupt_record(
        br#"{"version": 2, "generation": 1, "files": {}}"#,
        "unknown version 2",
    );
    corrupt_record(
        br#"{"version": 1, "generation": 1, "files": {"/x": {"size": "big"}}}"#,
        "invalid type",
    );
}

/// A record whose path climbs out of the target root is not looked at
/// there: that entry is unreadable, and with nothing else changed the
/// status is unknown (exit 1), not fresh.
#[test]
fn a_record_path_with_dot_dot_is_not_followed_out_of_the_root() {
    let w = restored();
    let record = w.dst().join("var/lib/zeta-creds/state.json");
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&record).unwrap()).unwrap();
    let files = v["files"].as_object_mut().unwrap();
    let any = files.values().next().unwrap().clone();
    files.insert("/../src/etc/passwd".into(), any);
    fs::write(&record, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = status(&w, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "unreadable /../src/etc/passwd  (a path with . or .. in the state record)\n\
             unknown: 1 unreadable, 8 unchanged ({})\n",
            blob(&w)
        )
    );
    assert!(
        stderr(&out).contains(
            "1 recorded file(s) could not be checked (named above): whether the blob is fresh is unknown"
        ),
        "{}",
        stderr(&out)
    );
    assert!(Path::new(&w.src().join("etc/passwd")).exists());
}
