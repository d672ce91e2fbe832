//! When stderr is the journal, lines carry syslog priority prefixes so
//! `journalctl -p err` finds failures (issue 5, "Reporting").

mod common;

use std::io::Read;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};

use common::*;

/// Run `restore` with stderr on a pipe whose device and inode are named by
/// `JOURNAL_STREAM` (as systemd does for a unit with StandardError=journal),
/// or by a wrong value; return stderr.
fn restore_stderr(w: &World, journal_matches: bool, passphrase: &str) -> (i32, String) {
    let (mut reader, writer) = std::io::pipe().unwrap();
    let st = rustix::fs::fstat(writer.as_fd()).unwrap();
    let value = if journal_matches {
        format!("{}:{}", st.st_dev, st.st_ino)
    } else {
        format!("{}:{}", st.st_dev, st.st_ino + 1)
    };
    let pf = w.pass_file(passphrase);
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("zeta-creds"))
        .current_dir(w.dir.path())
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("ZETA_CREDS_PASSPHRASE")
        .env("JOURNAL_STREAM", value)
        .arg("restore")
        .arg("--blob")
        .arg(w.blob())
        .arg("--target-root")
        .arg(w.dst())
        .args(["--usb-uuid", UUID, "--passphrase-file"])
        .arg(&pf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(writer)
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    reader.read_to_string(&mut err).unwrap();
    (status.code().unwrap(), err)
}

#[test]
fn failures_carry_priority_prefixes_on_the_journal_only() {
    let w = World::bundled();

    let (code, err) = restore_stderr(&w, true, "wrong passphrase");
    assert_eq!(code, 3);
    let first = err
        .lines()
        .find(|l| l.contains("wrong passphrase for blob"))
        .unwrap();
    assert!(first.starts_with("<3>zeta-creds: error: "), "{err}");
    // Every line has a priority when stderr is the journal.
    assert!(err.lines().all(|l| l.starts_with('<')), "{err}");

    let (code, err) = restore_stderr(&w, false, "wrong passphrase");
    assert_eq!(code, 3);
    assert!(err.lines().all(|l| l.starts_with("zeta-creds: ")), "{err}");
}

#[test]
fn warnings_are_priority_4() {
    let w = World::bundled();
    // A corrupt state record is a warning, not a failure.
    std::fs::create_dir_all(w.dst().join("var/lib/zeta-creds")).unwrap();
    std::fs::write(w.dst().join("var/lib/zeta-creds/state.json"), "{").unwrap();
    let (code, err) = restore_stderr(&w, true, PASS);
    assert_eq!(code, 0, "{err}");
    let line = err.lines().find(|l| l.contains("state record")).unwrap();
    assert!(line.starts_with("<4>zeta-creds: warning: "), "{err}");
}
