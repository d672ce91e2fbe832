//! The only module allowed `unsafe`: a narrow API over the few process
//! operations Rust's standard library does not offer safely.
//!
//! Each function states its safety argument where the `unsafe` block is.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;

use secrecy::SecretString;

/// The environment variable the installer may use to pass a passphrase.
pub const PASSPHRASE_ENV: &str = "ZETA_CREDS_PASSPHRASE";

/// Set by zeta-creds for itself only, when it restarts without
/// [`PASSPHRASE_ENV`]: the number of an inherited pipe that holds the
/// passphrase ([`take_env_passphrase`]). Not an interface for operators.
pub const PASSPHRASE_HANDOVER_ENV: &str = "ZETA_CREDS_HANDOVER_FD";

/// Take `ZETA_CREDS_PASSPHRASE` out of the process, environment block
/// included. Returns the passphrase, if there was one, and a warning to
/// print, if any.
///
/// `remove_var` alone is not enough: the kernel shows the environment the
/// process was started with in `/proc/PID/environ` for as long as it runs,
/// whatever the process does to its own copy. So, when the variable is
/// set, the process writes the passphrase into a pipe and executes itself
/// again (same PID, same arguments) without the variable, naming the pipe
/// in [`PASSPHRASE_HANDOVER_ENV`]; the new image reads the pipe here and
/// closes it. If that restart fails (no `/proc/self/exe`), the run goes on
/// with the passphrase and the warning says where it stays readable.
///
/// Must be called at the start of `main`, before any thread exists.
pub fn take_env_passphrase() -> (Option<SecretString>, Option<String>) {
    if let Some(fd) = std::env::var_os(PASSPHRASE_HANDOVER_ENV) {
        // SAFETY: `remove_var` is unsafe because another thread could read
        // the environment concurrently. This runs first thing in `main`,
        // before the program spawns any thread, so no other thread exists.
        unsafe { std::env::remove_var(PASSPHRASE_HANDOVER_ENV) };
        let fd = fd.to_str().and_then(|s| s.parse().ok()).unwrap_or(-1);
        return match file_from_inherited_fd(fd).and_then(crate::passphrase::read_handover) {
            Ok(passphrase) => (Some(passphrase), None),
            Err(e) => (
                None,
                Some(format!(
                    "cannot read the passphrase handed over from {PASSPHRASE_ENV} ({e})"
                )),
            ),
        };
    }
    let Some(value) = std::env::var_os(PASSPHRASE_ENV) else {
        return (None, None);
    };
    // SAFETY: as above: no other thread exists yet.
    unsafe { std::env::remove_var(PASSPHRASE_ENV) };
    let why = restart_without_env(&value);
    let note = format!(
        "{PASSPHRASE_ENV} stays readable in /proc/{}/environ while this runs: cannot restart without it ({why})",
        std::process::id()
    );
    let value = value.into_string().unwrap_or_default();
    (Some(SecretString::from(value)), Some(note))
}

/// Hand `value` to a new image of this program on a pipe and execute it
/// without [`PASSPHRASE_ENV`]. Returns only if that failed, with why.
fn restart_without_env(value: &OsStr) -> io::Error {
    let (read, mut write) = match io::pipe() {
        Ok(pipe) => pipe,
        Err(e) => return e,
    };
    // The passphrase and the bytes that tell it is too long: less than a
    // pipe holds, so the write cannot block with no reader yet.
    let bytes = value.as_bytes();
    let bytes = &bytes[..bytes.len().min(crate::passphrase::MAX_PASSPHRASE_LEN + 3)];
    if let Err(e) = write.write_all(bytes) {
        return e;
    }
    drop(write);
    // The read end must survive the exec (std opens pipes close-on-exec).
    if let Err(e) = rustix::io::fcntl_setfd(&read, rustix::io::FdFlags::empty()) {
        return e.into();
    }
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "zeta-creds".into());
    std::process::Command::new("/proc/self/exe")
        .arg0(argv0)
        .args(args)
        .env_remove(PASSPHRASE_ENV)
        .env(PASSPHRASE_HANDOVER_ENV, read.as_raw_fd().to_string())
        .exec()
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
///
/// `main` calls it once, the same way for every command that holds a
/// passphrase, a key or plaintext (`bundle`, `restore`, `verify`, `diff`,
/// `rekey`, `install-step`), before any of them is read.
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
