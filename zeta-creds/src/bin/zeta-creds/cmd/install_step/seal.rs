//! `--seal-tpm2`: the verified passphrase sealed to this machine's TPM2
//! with `systemd-creds encrypt --with-key=tpm2`, for a headless first boot.
//!
//! `--with-key=tpm2`, never `auto` or `host`: the host key of the live
//! system is not the installed system's, so only the TPM, which both boot
//! on, can open it. `--name=passphrase` is the credential id the unit
//! loads. The passphrase reaches systemd-creds on its stdin (a pipe: no
//! argv, no file). Any failure here leaves the blob alone and falls back to
//! the console prompt: the credentials are sealed either way.

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use secrecy::{ExposeSecret, SecretString};
use zeta_creds::{cleanup, fsx};

use super::exit::Fail;
use super::files::{chown_root, write_failed};
use super::ui::{say, warn};
use super::zc::{status_code, which};

/// The credential's file name in `TARGET/etc/credstore.encrypted`.
pub const CREDENTIAL_NAME: &str = "zeta-creds-passphrase";

/// Prefix of the temporary file systemd-creds writes into.
const TMP_PREFIX: &str = ".zeta-creds-passphrase.";

/// Whether `systemd-creds has-tpm2` reports a TPM2 that can seal: success,
/// or a "partial" report that has the kernel driver and systemd's support
/// (`+driver`, `+system`), as on a live system booted in BIOS mode.
pub fn tpm2_usable(exit_ok: bool, report: &str) -> bool {
    exit_ok || (report.contains("+driver") && report.contains("+system"))
}

fn fallback(why: &str, hint: &str) {
    warn(format!("the passphrase was NOT sealed to the TPM2: {why}"));
    say(
        "the installed system will ask for the passphrase on the console instead (passphrase.mode = \"interactive\")",
    );
    say(format!("hint: {hint}"));
}

/// A temporary file in the credential directory, removed unless renamed
/// (its guard removes it on drop and on a signal).
struct Temp {
    dir: Arc<OwnedFd>,
    name: String,
    guard: cleanup::Guard,
}

impl Temp {
    fn create(dir: &Arc<OwnedFd>) -> io::Result<Temp> {
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        for _ in 0..16 {
            let mut rnd = [0u8; 6];
            getrandom::fill(&mut rnd).map_err(|e| io::Error::other(e.to_string()))?;
            let suffix: String = rnd
                .iter()
                .map(|b| char::from(ALNUM[usize::from(*b) % ALNUM.len()]))
                .collect();
            let name = format!("{TMP_PREFIX}{suffix}");
            match rustix::fs::openat(
                &**dir,
                name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(_) => {
                    let guard = cleanup::Guard::temp_file(dir, &[], &name);
                    return Ok(Temp {
                        dir: Arc::clone(dir),
                        name,
                        guard,
                    });
                }
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "could not pick a temporary file name",
        ))
    }

    /// Mode 0600, root's, synced, renamed to `final_name`; the directory
    /// synced. Refuses an empty file (systemd-creds wrote nothing).
    fn commit(self, final_name: &str, cred_file: &Path) -> io::Result<bool> {
        let fd = rustix::fs::openat(
            &*self.dir,
            self.name.as_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if rustix::fs::fstat(&fd)?.st_size == 0 {
            return Ok(false);
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600))?;
        chown_root(&fd, cred_file)?;
        if super::files::is_root() {
            rustix::fs::fchown(
                &*self.dir,
                Some(rustix::fs::Uid::ROOT),
                Some(rustix::fs::Gid::ROOT),
            )?;
        }
        rustix::fs::fsync(&fd)?;
        let Temp { dir, name, guard } = self;
        cleanup::commit_section(|| {
            rustix::fs::renameat(&*dir, name.as_str(), &*dir, final_name)?;
            guard.disarm();
            rustix::fs::fsync(&*dir)
        })?;
        Ok(true)
    }
}

/// Seal `passphrase` into `TARGET/etc/credstore.encrypted/zeta-creds-passphrase`.
/// `Ok(Some(path))` when sealed; `Ok(None)` after a fallback message;
/// `Err` only when the target cannot be written at all.
pub fn seal(
    target: &Path,
    systemd_creds: &str,
    pcrs: &str,
    passphrase: &SecretString,
) -> Result<Option<PathBuf>, Fail> {
    let Some(sc) = which(systemd_creds) else {
        fallback(
            &format!(
                "systemd-creds not found ('{systemd_creds}'); it comes with systemd 250 or newer"
            ),
            "run the step on a live system with systemd-creds, or pass --systemd-creds PATH",
        );
        return Ok(None);
    };
    let has = Command::new(&sc)
        .arg("has-tpm2")
        .stdin(Stdio::null())
        .output();
    let (ok, report) = match &has {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            (out.status.success(), text)
        }
        Err(e) => (false, e.to_string()),
    };
    if !tpm2_usable(ok, &report) {
        fallback(
            &format!(
                "this machine has no usable TPM2 (systemd-creds has-tpm2 says: {})",
                report.replace('\n', " ")
            ),
            "enable the TPM (fTPM / PTT / Security Chip) in the firmware setup and run the step again, or seal later on the installed system (nixos-modules/README.md, \"Headless\")",
        );
        return Ok(None);
    }
    let dir = target.join("etc/credstore.encrypted");
    let cred_file = dir.join(CREDENTIAL_NAME);
    let fail = |e: io::Error| write_failed(&cred_file, &e);
    std::fs::create_dir_all(&dir).map_err(fail)?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(fail)?;
    let dir_fd = Arc::new(fsx::open_root(&dir).map_err(fail)?);
    let tmp = Temp::create(&dir_fd).map_err(fail)?;
    let tmp_path = dir.join(&tmp.name);
    let pcrs_shown = if pcrs.is_empty() { "none" } else { pcrs };
    say(format!(
        "sealing the passphrase to this machine's TPM2 (PCRs: {pcrs_shown}): systemd-creds encrypt --with-key=tpm2 --tpm2-pcrs={pcrs} --name=passphrase - {}",
        cred_file.display()
    ));
    // What systemd-creds creates beside its output is private too.
    let old_umask = rustix::process::umask(Mode::from_raw_mode(0o077));
    let spawned = Command::new(&sc)
        .args(["encrypt", "--with-key=tpm2"])
        .arg(format!("--tpm2-pcrs={pcrs}"))
        .args(["--name=passphrase", "-"])
        .arg(&tmp_path)
        .env_remove(zeta_creds::sys::PASSPHRASE_ENV)
        .stdin(Stdio::piped())
        .spawn();
    rustix::process::umask(old_umask);
    let status = match spawned {
        Ok(mut child) => {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(passphrase.expose_secret().as_bytes());
            }
            child.wait().map(status_code).unwrap_or(1)
        }
        Err(_) => 127,
    };
    let sealed = status == 0 && tmp.commit(CREDENTIAL_NAME, &cred_file).map_err(fail)?;
    if !sealed {
        fallback(
            &format!("systemd-creds encrypt failed (exit {status}), see above"),
            "seal it later on the installed system (nixos-modules/README.md, \"Headless\")",
        );
        return Ok(None);
    }
    let bound = if pcrs.is_empty() {
        String::new()
    } else {
        format!(", while PCRs {pcrs} keep their values")
    };
    say(format!(
        "sealed: {} (0600 root; opens only on this machine's TPM2{bound})",
        cred_file.display()
    ));
    Ok(Some(cred_file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_tpm2_reports_can_seal() {
        assert!(tpm2_usable(true, "yes\n"));
        assert!(tpm2_usable(
            false,
            "partial\n-firmware\n+driver\n+system\n+subsystem\n"
        ));
        assert!(!tpm2_usable(
            false,
            "partial\n-firmware\n-driver\n+system\n-subsystem\n"
        ));
        assert!(!tpm2_usable(false, "no\n-firmware\n+driver\n-system\n"));
    }
}
