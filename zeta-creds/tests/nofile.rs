//! A blob spanning many directories restores with a low soft open-file
//! limit (zeta-creds raises its soft limit to the hard one at start, and a
//! restore holds a bounded number of directories open; with a *hard* limit
//! of 1024: tests/bounds.rs).

mod common;

use std::fs;
use std::time::Duration;

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
    let (out, _) = w.restore_under_ulimit("-Sn 256", UUID, &[], Duration::from_secs(120));
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
