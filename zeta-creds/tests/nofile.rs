//! A restore raises its soft open-file limit to the hard limit, so a blob
//! spanning many directories restores under systemd's default
//! `LimitNOFILE=1024:524288`. (It also restores with a *hard* limit of
//! 1024, holding a bounded number of directories open: tests/bounds.rs.)

mod common;

use std::fs;
use std::process::Command;

use common::*;

#[test]
fn many_directories_restore_with_a_low_soft_open_file_limit() {
    let w = World::new();
    for d in 0..600 {
        w.put(&format!("etc/many/d{d:03}/key"), b"k", 0o600, Some((0, 0)));
    }
    fs::write(
        w.manifest(),
        "version = 1\nuser = \"zeta\"\n\n[[entry]]\npath = \"/etc/many\"\n",
    )
    .unwrap();
    w.bundle_ok();
    let pf = w.pass_file(PASS);
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -Sn 256 && exec \"$@\"")
        .arg("sh")
        .arg(assert_cmd::cargo::cargo_bin("zeta-creds"))
        .arg("restore")
        .arg("--blob")
        .arg(w.blob())
        .arg("--target-root")
        .arg(w.dst())
        .args(["--usb-uuid", UUID, "--passphrase-file"])
        .arg(&pf)
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("ZETA_CREDS_PASSPHRASE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for d in [0, 299, 599] {
        assert_eq!(
            fs::read(w.dst().join(format!("etc/many/d{d:03}/key"))).unwrap(),
            b"k"
        );
    }
}
