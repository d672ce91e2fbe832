//! The order in which a restore makes its writes durable, read off the system calls it makes (`strace`): every
//! staged file reaches the disk before the first rename exposes one of
//! them, so a power loss can never leave an empty or partial credential at
//! its destination; the renames, owners and modes reach it after; and the
//! number of sync calls does not grow with the number of files (one
//! `syncfs` per filesystem, not an `fsync` per file and directory: at boot
//! on a real disk those add up).

mod common;

use std::fs;
use std::process::{Command, Stdio};

use common::*;

const FILES: usize = 200;

#[test]
fn staged_files_reach_the_disk_before_the_first_rename_with_a_constant_number_of_syncs() {
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "strace is not installed; scripts/setup-debian.sh installs it (apt-get install strace)"
    );
    let w = World::new();
    for i in 0..FILES {
        let owner = Some((0, 0));
        w.put(
            &format!("etc/many/d{:02}/f{i:03}", i / 10),
            b"k\n",
            0o600,
            owner,
        );
    }
    fs::write(
        w.manifest(),
        "version = 1\nuser = \"zeta\"\n\n[[entry]]\npath = \"/etc/many\"\n",
    )
    .unwrap();
    w.bundle_ok();

    let trace = w.path("trace");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=fsync,fdatasync,syncfs,sync,rename,renameat,renameat2",
        ])
        .arg(env!("CARGO_BIN_EXE_zeta-creds"));
    w.restore_args(&mut cmd, UUID);
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in [0, FILES / 2, FILES - 1] {
        let path = w.dst().join(format!("etc/many/d{:02}/f{i:03}", i / 10));
        assert_eq!(fs::read(&path).unwrap(), b"k\n", "{}", path.display());
    }

    let lines: Vec<String> = fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let calls = |name: &str| -> Vec<usize> {
        let call = format!(" {name}(");
        (0..lines.len())
            .filter(|&i| lines[i].contains(&call))
            .collect()
    };
    let syncfs = calls("syncfs");
    // Staged files put into place (the state record, written last with its
    // own fsync, is not one of them).
    let renames: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            lines[i].contains("rename")
                && lines[i].contains(".zeta-creds-tmp.")
                && !lines[i].contains("state.json")
        })
        .collect();
    let shown = lines.join("\n");
    assert_eq!(renames.len(), FILES, "one rename per staged file:\n{shown}");
    // One target filesystem: one syncfs before the commit and one after.
    assert_eq!(syncfs.len(), 2, "{shown}");
    assert!(
        syncfs.first() < renames.first(),
        "the staged files are not flushed before the first rename:\n{shown}"
    );
    assert!(
        syncfs.last() > renames.last(),
        "the renames are not flushed after the last one:\n{shown}"
    );
    // What is left is the state record's own temp file and directory.
    let fsyncs = calls("fsync").len() + calls("fdatasync").len();
    assert!(
        fsyncs <= 4,
        "{fsyncs} fsync calls for {FILES} files: the count grows with the files:\n{shown}"
    );
}
