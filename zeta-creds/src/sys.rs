//! The only module allowed `unsafe`: a narrow API over the few process
//! operations Rust's standard library does not offer safely.
//!
//! Each function states its safety argument where the `unsafe` block is.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::fs::File;
use std::os::fd::FromRawFd;

use secrecy::SecretString;

/// The environment variable the installer may use to pass a passphrase.
pub const PASSPHRASE_ENV: &str = "ZETA_CREDS_PASSPHRASE";

/// Take `ZETA_CREDS_PASSPHRASE` out of the environment, so that no child
/// process (such as `systemd-ask-password`) inherits it.
///
/// Must be called at the start of `main`, before any thread exists.
pub fn take_env_passphrase() -> Option<SecretString> {
    let value = std::env::var_os(PASSPHRASE_ENV)?;
    // SAFETY: `remove_var` is unsafe because another thread could read the
    // environment concurrently. This runs first thing in `main`, before the
    // program spawns any thread, so no other thread exists.
    unsafe { std::env::remove_var(PASSPHRASE_ENV) };
    let value = value.into_string().unwrap_or_default();
    Some(SecretString::from(value))
}

/// Make the process non-dumpable and disable core dumps, so a crash or a
/// same-uid debugger cannot read keys out of memory. Returns a warning for
/// each step that failed (never fatal).
pub fn harden_process() -> Vec<String> {
    let mut warnings = Vec::new();
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        warnings.push(format!("could not disable ptrace/core access (prctl): {e}"));
    }
    let zero = rustix::process::Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Core, zero) {
        warnings.push(format!("could not disable core dumps (setrlimit): {e}"));
    }
    warnings
}

/// Take ownership of an inherited file descriptor (`--passphrase-fd N`);
/// refuses negative and closed descriptors.
///
pub fn file_from_inherited_fd(fd: i32) -> std::io::Result<File> {
    if fd < 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("file descriptor {fd} is negative"),
        ));
    }
    // Check the descriptor is open before claiming it: fcntl(F_GETFD) on a
    // borrowed fd is safe to attempt and fails with EBADF if it is not.
    // SAFETY: `borrow_raw` requires the fd to stay open for the borrow's
    // lifetime; the borrow lives only for the fcntl call, during which
    // nothing in this single-threaded start-up closes it.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_getfd(borrowed).map_err(std::io::Error::from)?;
    // SAFETY: the user handed us this descriptor on the command line for
    // exactly this purpose; it is open (checked above) and nothing else in
    // the program owns or closes it, so transferring ownership to a `File`
    // (which closes it on drop) is sound.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Lock the process's memory so keys and decrypted credentials are never
/// written to swap. Only when `RLIMIT_MEMLOCK` is unlimited (the NixOS
/// module sets `LimitMEMLOCK=infinity`): with a finite limit, `MCL_FUTURE`
/// would make a later large allocation (scrypt's buffer) fail and abort the
/// process, which is worse than a warning. Returns why it did not lock.
pub fn lock_memory() -> Result<(), String> {
    use rustix::mm::{MlockAllFlags, mlockall};
    use rustix::process::{Resource, getrlimit};
    let limit = getrlimit(Resource::Memlock);
    if limit.current.is_some() {
        return Err(format!(
            "memory not locked: RLIMIT_MEMLOCK is {} bytes, not unlimited (LimitMEMLOCK=infinity); secrets could reach swap",
            limit.current.unwrap_or(0)
        ));
    }
    mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT)
        .map_err(|e| format!("memory not locked (mlockall: {e}); secrets could reach swap"))
}

/// Raise the soft limit on open files to the hard limit (systemd, and most
/// login shells, start with 1024 soft, 524288 hard). A restore holds at
/// most a few dozen descriptors whatever the blob (`restore::stage::Dirs`), but
/// bundle's glob expansion holds one for every directory a pattern matches
/// at one level (`~/.config/*/…`), which has no such bound. Returns why it
/// could not (never fatal).
pub fn raise_open_file_limit() -> Result<(), String> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return Ok(());
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .map_err(|e| format!("could not raise the open-file limit (setrlimit): {e}"))
}
