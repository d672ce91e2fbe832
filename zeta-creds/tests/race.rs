//! A directory changed between staging and commit.
//!
//! A restore stages every file beside its destination and renames it into
//! place only after the whole payload has authenticated. It remembers each
//! directory by name below the target root, not by an open descriptor (a
//! blob may span more directories than the process may hold open: see
//! `bounds.rs`), and opens it again at commit one component at a time
//! without following symlinks. These tests pause a restore between staging
//! and commit (the debug-only `pause-after-staging` fault), change the
//! tree, and check that the change can only make entries fail: it never
//! redirects a write, and the rest of the restore still completes.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const MARKER: &str = "zeta-creds: test fault: pause-after-staging";

/// Restore the world's blob, pausing after staging; `change` runs while it
/// is paused. Returns the finished run.
fn restore_with_change(w: &World, change: impl FnOnce()) -> Output {
    let resume = w.path("resume");
    let mut child = w
        .restore_process(UUID)
        .env("ZETA_CREDS_TEST_FAULT", "pause-after-staging")
        .env("ZETA_CREDS_TEST_RESUME", &resume)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).unwrap();
        seen.push_str(&line);
        if line.contains(MARKER) {
            break;
        }
        assert!(
            n > 0 && Instant::now() < deadline,
            "the restore never paused after staging:\n{seen}"
        );
    }
    change();
    fs::write(&resume, b"").unwrap();
    let mut out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    seen.push_str(&rest);
    out.stderr = seen.into_bytes();
    out
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stderr ---\n{}--- stdout ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

/// Every regular file below `dir`, as paths relative to it.
fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else {
                out.push(
                    e.path()
                        .strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_directory_swapped_for_a_symlink_before_commit_fails_its_entries_and_redirects_nothing() {
    let w = World::bundled();
    let outside = w.path("outside");
    fs::create_dir(&outside).unwrap();
    let ssh = w.dst().join("etc/ssh");
    let moved = w.dst().join("etc/ssh.moved");
    let out = restore_with_change(&w, || {
        // Staged: the host keys' temporary files are in etc/ssh now.
        assert!(
            !temp_files_under(&ssh).is_empty(),
            "nothing was staged in etc/ssh"
        );
        fs::rename(&ssh, &moved).unwrap();
        std::os::unix::fs::symlink(&outside, &ssh).unwrap();
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Exit 7: the entries under the swapped directory are named as failed.
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    assert!(
        stderr.contains("ssh_host_ed25519_key")
            && stderr
                .contains("its directory /etc/ssh was moved, removed or replaced since staging"),
        "the failed entry or its reason is not named: {}",
        describe(&out)
    );
    // Nothing went through the symlink...
    assert_eq!(files_below(&outside), Vec::<String>::new());
    // ...and nothing was put into place in the directory moved away: at
    // most the run's own temporary files (0600, root's) stay there.
    for name in files_below(&moved) {
        assert!(
            name.starts_with(".zeta-creds-tmp."),
            "{name} was put into place in the moved directory"
        );
        let st = fs::metadata(moved.join(&name)).unwrap();
        assert_eq!(st.mode() & 0o777, 0o600, "{name}");
    }
    // The entries elsewhere were committed.
    assert_eq!(
        fs::read(w.dst().join("home/zeta/.config/gh/hosts.yml")).unwrap(),
        b"github.com:\n  oauth_token: gho_FAKE\n"
    );
    assert_eq!(
        fs::read(w.dst().join("etc/zeta/hook.sh")).unwrap(),
        b"#!/bin/sh\ntrue\n"
    );
}

#[test]
fn a_directory_removed_before_commit_fails_its_entries_and_the_rest_commits() {
    let w = World::bundled();
    let nested = w.dst().join("home/zeta/.config/gh/nested/deeper");
    let out = restore_with_change(&w, || {
        fs::remove_dir_all(&nested).unwrap();
    });
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("state.json"),
        "{}",
        describe(&out)
    );
    assert!(!nested.exists(), "the removed directory came back");
    assert!(w.dst().join("etc/ssh/ssh_host_ed25519_key").is_file());
    assert!(w.dst().join("home/zeta/.codex/auth.json").is_file());
}
