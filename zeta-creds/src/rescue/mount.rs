//! Read-only mounts in a private temporary directory, undone after.
//!
//! The scan talks to the system through [`Mounter`], so that its logic is
//! tested with a fake that copies a directory in place of a mount; the real
//! one, [`SystemMounter`], runs `mount` and `umount` (never through a
//! shell). [`Mounted`] is the RAII guard: its `Drop` unmounts and removes
//! the directory on every path that unwinds (errors, `?`, panics). Signals
//! do not unwind: the caller holds `cleanup::commit_section` while a
//! device is mounted, so a SIGINT/SIGTERM/SIGHUP waits until the guard has
//! unmounted (see `rescue::run`). When the crate gains a general
//! `cleanup::Guard`, this guard is the piece to fold into it.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::fs::{AtFlags, FileType, Mode};

use super::scan::{LSBLK_ARGS, mountpoints_of};
use crate::fsx;

/// Options of every rescue mount. `loop` puts a read-only loop device
/// between the filesystem and the source, so no filesystem driver can write
/// to it, not even one that replays a journal on a read-only mount (ext4
/// does); `ro` alone would be enough for vfat. Nothing is ever checked or
/// repaired (no fsck).
pub const MOUNT_OPTIONS: &str = "ro,loop,nosuid,nodev,noexec";

/// Prefix of the private mount directories, followed by 16 hex digits.
pub const MOUNT_DIR_PREFIX: &str = "zeta-creds-rescue.";

/// How the rescue sees and changes the system's mounts.
pub trait Mounter {
    /// `lsblk` output made with [`LSBLK_ARGS`], for the default scan.
    fn block_devices(&self) -> Result<String, String>;
    /// Where the filesystem on the block device `device` is mounted
    /// already, if it is (`None` for an image file or an unmounted device).
    fn mounted_at(&self, device: &Path) -> Option<PathBuf>;
    /// Mount `source` (a block device or an image file) read-only on the
    /// empty directory `dir`. The error says what failed, for the report.
    fn mount_ro(&self, source: &Path, dir: &Path) -> Result<(), String>;
    /// Unmount `dir`.
    fn unmount(&self, dir: &Path) -> Result<(), String>;
}

/// The real system: `/proc/self/mountinfo`, `mount`, `umount`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemMounter;

/// Run `program` with `args` (stdin closed); the error names it and
/// carries its exit status and stderr, for a report line.
pub(super) fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "{program} failed ({}): {}",
        out.status,
        stderr.trim()
    ))
}

impl Mounter for SystemMounter {
    fn block_devices(&self) -> Result<String, String> {
        let out = Command::new("lsblk")
            .args(LSBLK_ARGS)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run lsblk: {e}"))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(format!("lsblk failed ({}): {}", out.status, stderr.trim()));
        }
        String::from_utf8(out.stdout).map_err(|_| "lsblk printed non-UTF-8 output".into())
    }

    fn mounted_at(&self, device: &Path) -> Option<PathBuf> {
        let st = rustix::fs::stat(device).ok()?;
        if FileType::from_raw_mode(st.st_mode) != FileType::BlockDevice {
            return None;
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let (major, minor) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
        mountpoints_of(&mountinfo, major, minor).into_iter().next()
    }

    fn mount_ro(&self, source: &Path, dir: &Path) -> Result<(), String> {
        run(
            "mount",
            &[
                "-o".as_ref(),
                MOUNT_OPTIONS.as_ref(),
                "--".as_ref(),
                source.as_os_str(),
                dir.as_os_str(),
            ],
        )
    }

    fn unmount(&self, dir: &Path) -> Result<(), String> {
        run("umount", &["--".as_ref(), dir.as_os_str()])
    }
}

/// A source mounted read-only on a private directory (0700, a fresh random
/// name under a base directory). Dropping it unmounts and removes the
/// directory; [`Mounted::release`] does the same and says what failed.
pub struct Mounted<'m> {
    mounter: &'m dyn Mounter,
    base: OwnedFd,
    name: String,
    path: PathBuf,
    /// Still to undo: (mounted, directory exists).
    pending: (bool, bool),
}

impl<'m> Mounted<'m> {
    /// Create a private directory under `base` and mount `source` on it.
    /// On a failure nothing is left behind.
    pub fn mount(mounter: &'m dyn Mounter, base: &Path, source: &Path) -> Result<Self, String> {
        let base_fd = fsx::open_root(base)
            .map_err(|e| format!("cannot open {} for a mount point: {e}", base.display()))?;
        let mut created = None;
        for _ in 0..16 {
            let mut rnd = [0u8; 8];
            getrandom::fill(&mut rnd).map_err(|e| format!("random name: {e}"))?;
            let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
            let name = format!("{MOUNT_DIR_PREFIX}{hex}");
            match rustix::fs::mkdirat(&base_fd, name.as_str(), Mode::from_raw_mode(0o700)) {
                Ok(()) => {
                    created = Some(name);
                    break;
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => {
                    return Err(format!(
                        "cannot create a mount point in {}: {e}",
                        base.display()
                    ));
                }
            }
        }
        let name = created
            .ok_or_else(|| format!("could not pick a mount point name in {}", base.display()))?;
        let mut guard = Mounted {
            mounter,
            base: base_fd,
            path: base.join(&name),
            name,
            pending: (false, true),
        };
        // On an error the guard's Drop removes the directory.
        mounter.mount_ro(source, &guard.path)?;
        guard.pending.0 = true;
        Ok(guard)
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmount and remove the directory now. On an unmount failure the
    /// directory stays (it is still a mount point) and the error names it.
    pub fn release(mut self) -> Result<(), String> {
        self.undo()
    }

    fn undo(&mut self) -> Result<(), String> {
        if self.pending.0 {
            self.mounter.unmount(&self.path).map_err(|e| {
                format!(
                    "{e}; {} is still mounted read-only: run `umount {}`",
                    self.path.display(),
                    self.path.display()
                )
            })?;
            self.pending.0 = false;
        }
        if self.pending.1 {
            self.pending.1 = false;
            rustix::fs::unlinkat(&self.base, self.name.as_str(), AtFlags::REMOVEDIR)
                .map_err(|e| format!("cannot remove {}: {e}", self.path.display()))?;
        }
        Ok(())
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = self.undo();
    }
}
