//! Waiting for the USB stick a blob is bound to (`--require-usb-present`).
//!
//! The UUID binding alone only says which stick a blob *was* sealed for;
//! some operators also want the restore to happen only with that stick
//! plugged in. A real stick shows up in `/dev/disk/by-uuid/` a second or
//! more after local filesystems are mounted, so the restore waits a
//! bounded time instead of failing at once. Names there are compared after
//! the same normalization as `--usb-uuid` (blkid prints FAT serials in
//! upper case: `DEAD-BEEF`).
#![forbid(unsafe_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use crate::envelope::UsbUuid;

/// How often the directory is listed while waiting.
const POLL: Duration = Duration::from_millis(250);

/// Whether `dir` has an entry whose normalized name is `uuid`.
pub fn is_present(dir: &Path, uuid: &UsbUuid) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name()
            .to_str()
            .and_then(|n| UsbUuid::parse(n).ok())
            .is_some_and(|n| &n == uuid)
    })
}

/// Wait up to `wait` for the stick to appear in `dir`; true if it did.
pub fn wait_for(dir: &Path, uuid: &UsbUuid, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if is_present(dir, uuid) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_stick_whatever_the_case_and_only_that_one() {
        let t = tempfile::tempdir().unwrap();
        let uuid = UsbUuid::parse("dead-beef").unwrap();
        assert!(!is_present(t.path(), &uuid));
        std::fs::write(t.path().join("1234-ABCD"), b"").unwrap();
        assert!(!wait_for(t.path(), &uuid, Duration::ZERO));
        std::fs::write(t.path().join("DEAD-BEEF"), b"").unwrap();
        assert!(is_present(t.path(), &uuid));
        assert!(!is_present(&t.path().join("missing"), &uuid));
    }

    #[test]
    fn waits_for_a_stick_that_shows_up_late() {
        let t = tempfile::tempdir().unwrap();
        let uuid = UsbUuid::parse("DEAD-BEEF").unwrap();
        let dir = t.path().to_owned();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            std::fs::write(dir.join("DEAD-BEEF"), b"").unwrap();
        });
        let start = Instant::now();
        assert!(wait_for(t.path(), &uuid, Duration::from_secs(10)));
        assert!(start.elapsed() < Duration::from_secs(5));
        late.join().unwrap();
    }
}
