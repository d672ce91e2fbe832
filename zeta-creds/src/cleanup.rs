//! Cleanup that must happen even when a signal ends the process.
//!
//! Destructors (the passphrase-file guard, the restore's rollback) cover
//! every exit that unwinds: errors, `return`, a panic. A SIGINT, SIGTERM or
//! SIGHUP (systemd stopping the unit, a timeout, an operator's ^C) does not
//! unwind, so everything that a destructor would remove is also recorded
//! here, and a dedicated thread removes it before exiting with 128 + signo.
//!
//! The commit phase of a restore runs inside [`commit_section`]: a signal
//! that arrives then waits until every rename is done, so a signal never
//! leaves half of a commit behind. (`kill -9` cannot be handled; the next
//! run removes stale temporary files, see `restore`.)
#![forbid(unsafe_code)]

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::fs::AtFlags;

/// What to remove if a signal arrives now.
struct Registry {
    /// Consumed passphrase files: `--passphrase-file`, and `rekey`'s
    /// `--new-passphrase-file`.
    passphrase_files: Vec<PathBuf>,
    temp_files: Vec<Below>,
    created_dirs: Vec<Below>,
}

/// A name in the directory `components` below `base`. Held by name, not by
/// descriptor, so that registering many does not hold many open files; the
/// directory is opened again one component at a time without following
/// symlinks when it is needed.
struct Below {
    base: Arc<OwnedFd>,
    components: Vec<String>,
    name: String,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    passphrase_files: Vec::new(),
    temp_files: Vec::new(),
    created_dirs: Vec::new(),
});

/// Held for the whole commit phase; the signal thread takes it first.
static COMMIT: Mutex<()> = Mutex::new(());

fn registry() -> MutexGuard<'static, Registry> {
    // A poisoned lock only means a panic elsewhere; the data is still the
    // list of things to remove.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Start the thread that turns SIGINT, SIGTERM and SIGHUP into cleanup and
/// `exit(128 + signo)`. Call once, early in `main`, after the environment
/// has been cleaned (it starts a thread).
pub fn install_signal_handler() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("zeta-creds-signals".into())
        .spawn(move || {
            if let Some(signo) = signals.forever().next() {
                let _commit = COMMIT.lock().unwrap_or_else(|e| e.into_inner());
                remove_everything();
                crate::error!(
                    "interrupted by signal {signo}; temporary files removed, nothing committed"
                );
                std::process::exit(128 + signo);
            }
        })?;
    Ok(())
}

/// Remove everything registered. Safe to call more than once.
fn remove_everything() {
    let mut r = registry();
    let temp_files = std::mem::take(&mut r.temp_files);
    let created_dirs = std::mem::take(&mut r.created_dirs);
    // Consecutive names usually share a directory: open each one once.
    let mut last: Option<(Vec<String>, OwnedFd)> = None;
    let mut unlink = |b: Below, flags: AtFlags| {
        if last.as_ref().is_none_or(|(c, _)| *c != b.components) {
            let components: Vec<&str> = b.components.iter().map(String::as_str).collect();
            last = crate::fsx::open_dir_path(&*b.base, &components)
                .ok()
                .map(|fd| (b.components, fd));
        }
        if let Some((_, dir)) = &last {
            let _ = rustix::fs::unlinkat(dir, b.name.as_str(), flags);
        }
    };
    for b in temp_files.into_iter().rev() {
        unlink(b, AtFlags::empty());
    }
    for b in created_dirs.into_iter().rev() {
        unlink(b, AtFlags::REMOVEDIR);
    }
    for path in r.passphrase_files.drain(..) {
        let _ = std::fs::remove_file(path);
    }
}

/// Record a consumed passphrase file (`--passphrase-file`,
/// `--new-passphrase-file`) to delete if a signal arrives. Each call adds
/// one; registering the same path twice is harmless.
pub fn register_passphrase_file(path: PathBuf) {
    let mut r = registry();
    if !r.passphrase_files.contains(&path) {
        r.passphrase_files.push(path);
    }
}

/// Record a temporary file `name` in `dir`.
pub fn register_temp_file(dir: &Arc<OwnedFd>, name: &str) {
    register_temp_file_below(dir, &[], name);
}

/// Record a temporary file `name` in the directory `components` below
/// `base` (opened again without following symlinks to remove it).
pub fn register_temp_file_below(base: &Arc<OwnedFd>, components: &[String], name: &str) {
    registry().temp_files.push(Below {
        base: Arc::clone(base),
        components: components.to_vec(),
        name: name.to_owned(),
    });
}

/// Record a directory `name` that this run created in the directory
/// `components` below `base` (removed if empty on a signal).
pub fn register_created_dir_below(base: &Arc<OwnedFd>, components: &[String], name: &str) {
    registry().created_dirs.push(Below {
        base: Arc::clone(base),
        components: components.to_vec(),
        name: name.to_owned(),
    });
}

/// Forget every temporary file and created directory: they were committed
/// or rolled back by the code that made them.
pub fn forget_staging() {
    let mut r = registry();
    r.temp_files.clear();
    r.created_dirs.clear();
}

/// Run `f` with signals held off: a signal that arrives meanwhile is acted
/// on only when `f` returns.
pub fn commit_section<T>(f: impl FnOnce() -> T) -> T {
    let _guard = COMMIT.lock().unwrap_or_else(|e| e.into_inner());
    f()
}
