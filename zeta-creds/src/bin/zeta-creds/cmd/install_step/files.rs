//! What the step writes into the target besides the blob: the stick's
//! UUID (`TARGET/etc/zeta/usb-uuid`, through the library's [`AtomicFile`]),
//! and the helpers the TPM2 credential shares with it.

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Gid, Uid};
use zeta_creds::bundle::AtomicFile;
use zeta_creds::passwd::Accounts;

use super::exit::{Fail, StepExit};
use super::ui;

/// Whether the step runs as root (files it writes are then owned by root).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The name of the user the step runs as, for "not root" warnings.
pub fn user_name() -> String {
    let uid = rustix::process::geteuid().as_raw();
    rustix::fs::open(
        "/",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .ok()
    .and_then(|root| Accounts::load(root).ok())
    .and_then(|a| a.user_name(uid).map(str::to_owned))
    .unwrap_or_else(|| uid.to_string())
}

/// Give `fd` to root:root when running as root; else warn that `what` is
/// owned by this user.
pub fn chown_root(fd: impl rustix::fd::AsFd, what: &Path) -> io::Result<()> {
    if is_root() {
        rustix::fs::fchown(fd, Some(Uid::ROOT), Some(Gid::ROOT))?;
    } else {
        ui::warn(format!(
            "not root: {} is owned by {}, not root",
            what.display(),
            user_name()
        ));
    }
    Ok(())
}

/// An I/O failure while writing `what` (exit 1, as the step's `set -e` had it).
pub fn write_failed(what: &Path, e: &io::Error) -> Fail {
    Fail::new(
        StepExit::Failed,
        format!("cannot write {}: {e}", what.display()),
    )
}

/// Write `TARGET/etc/zeta/usb-uuid`: the UUID as blkid printed it and a
/// newline, 0644 root, by a temporary file, fsync and rename; the
/// directory is created 0755 when missing. Returns the directory.
pub fn write_usb_uuid(target: &Path, uuid: &str) -> Result<PathBuf, Fail> {
    let dir = target.join("etc/zeta");
    let path = dir.join("usb-uuid");
    let fail = |e: io::Error| write_failed(&path, &e);
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).map_err(fail)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).map_err(fail)?;
    }
    let mut file = AtomicFile::create(&path).map_err(fail)?;
    writeln!(file.file(), "{uuid}").map_err(fail)?;
    file.file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(fail)?;
    chown_root(&*file.file(), &path).map_err(fail)?;
    file.commit().map_err(fail)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn usb_uuid_is_written_whole_with_its_mode_and_nothing_else() {
        let t = tempfile::tempdir().unwrap();
        let dir = write_usb_uuid(t.path(), "DEAD-BEEF").unwrap();
        assert_eq!(dir, t.path().join("etc/zeta"));
        let f = dir.join("usb-uuid");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "DEAD-BEEF\n");
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o7777, 0o644);
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o755);
        write_usb_uuid(t.path(), "CAFE-F00D").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "CAFE-F00D\n");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["usb-uuid"]);
    }
}
