//! One owner for everything a run must remove if it does not finish: the
//! consumed passphrase file, temporary files and the directories a restore
//! created.
//!
//! Each such thing is held by a [`Guard`]. Creating a guard registers the
//! thing with the signal thread; dropping the guard removes the thing and
//! unregisters it; [`Guard::disarm`] (a commit, or a file that turned out not
//! to be ours to remove) unregisters it and leaves it alone. So every exit
//! that unwinds (errors, `return`, a panic: the workspace keeps
//! `panic = "unwind"`) removes it through `Drop`, and a SIGINT, SIGTERM or
//! SIGHUP, which does not unwind, removes whatever is still registered
//! from a dedicated thread before exiting with 128 + signo. No caller
//! removes or registers anything by hand.
//!
//! The commit phase of a restore (and the rename of an [`crate::fsx::AtomicFile`])
//! runs inside [`commit_section`]: a signal that arrives then waits until
//! every rename is done, so a signal never leaves half of a commit behind.
//! (`kill -9` cannot be handled; the next run removes stale temporary
//! files, see [`crate::fsx::remove_stale_temps`].)
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::fs::{AtFlags, FileType, Stat};

/// What a [`Guard`] removes.
enum Target {
    /// A consumed passphrase file (`--passphrase-file`,
    /// `--new-passphrase-file`), with the device and inode this run opened
    /// once it is known.
    PassphraseFile {
        path: PathBuf,
        identity: Option<(u64, u64)>,
    },
    /// A temporary file this run created.
    TempFile(Below),
    /// A directory this run created (removed only if empty).
    CreatedDir(Below),
    /// A read-only mount this run made on a directory it created.
    Mount(PathBuf),
    /// The terminal's settings before a prompt turned echo off: put back,
    /// so that a signal during the prompt does not leave the operator's
    /// terminal without echo.
    Terminal(OwnedFd, rustix::termios::Termios),
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

/// Everything registered, by the order it was registered in.
struct Registry {
    next: u64,
    targets: BTreeMap<u64, Target>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next: 0,
    targets: BTreeMap::new(),
});

/// Held for the whole commit phase; the signal thread takes it first.
static COMMIT: Mutex<()> = Mutex::new(());

fn registry() -> MutexGuard<'static, Registry> {
    // A poisoned lock only means a panic elsewhere; the data is still the
    // list of things to remove.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Owns one thing to remove unless the run commits it: registered with the
/// signal thread from [`Guard`]'s constructors on, removed on drop, left
/// alone after [`Guard::disarm`].
#[derive(Debug)]
#[must_use = "dropping a guard removes what it guards"]
pub struct Guard {
    id: u64,
    armed: bool,
}

impl Guard {
    fn register(target: Target) -> Guard {
        let mut r = registry();
        let id = r.next;
        r.next += 1;
        r.targets.insert(id, target);
        Guard { id, armed: true }
    }

    /// Guard the passphrase file at `path`, about to be read and consumed.
    /// Until [`Guard::identify`] names the file this run opened, removal
    /// (on drop or on a signal) takes only a regular file or a FIFO at
    /// `path`, never a symlink or a device; afterwards, only that file.
    pub fn passphrase_file(path: &Path) -> Guard {
        Guard::register(Target::PassphraseFile {
            path: path.to_owned(),
            identity: None,
        })
    }

    /// Guard the temporary file `name` that this run created in the
    /// directory `components` below `base`.
    pub fn temp_file(base: &Arc<OwnedFd>, components: &[String], name: &str) -> Guard {
        Guard::register(Target::TempFile(Below::new(base, components, name)))
    }

    /// Guard the directory `name` that this run created in the directory
    /// `components` below `base` (removed only if it is empty by then).
    pub fn created_dir(base: &Arc<OwnedFd>, components: &[String], name: &str) -> Guard {
        Guard::register(Target::CreatedDir(Below::new(base, components, name)))
    }

    /// Guard the read-only mount this run made on the directory `path`
    /// (which it created, empty): removal detaches it (`umount --lazy`, so
    /// files still open in it do not keep it) and removes the directory.
    /// For work that cannot run inside [`commit_section`] (it commits
    /// files of its own) while a filesystem is mounted.
    pub fn mount(path: &Path) -> Guard {
        Guard::register(Target::Mount(path.to_owned()))
    }

    /// The controlling terminal's settings as they are now, put back if
    /// the run stops (a signal) before the guard is dropped or disarmed:
    /// held around a prompt that turns echo off. `None` without a
    /// terminal.
    pub fn terminal() -> Option<Guard> {
        let tty = rustix::fs::open(
            "/dev/tty",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ok()?;
        let saved = rustix::termios::tcgetattr(&tty).ok()?;
        Some(Guard::register(Target::Terminal(tty, saved)))
    }

    /// Record which file a passphrase-file guard stands for (the `fstat` of
    /// the descriptor read from): only a file with that device and inode is
    /// removed. No effect on other guards.
    pub fn identify(&self, st: &Stat) {
        if let Some(Target::PassphraseFile { identity, .. }) = registry().targets.get_mut(&self.id)
        {
            *identity = Some((st.st_dev, st.st_ino));
        }
    }

    /// Leave the guarded thing where it is (it was committed, or it is not
    /// ours to remove) and unregister it.
    pub fn disarm(mut self) {
        self.armed = false;
        registry().targets.remove(&self.id);
    }
}

impl Drop for Guard {
    /// Remove the guarded thing now, then unregister it.
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Taken out first, so the signal thread cannot remove it twice.
        let target = registry().targets.remove(&self.id);
        if let Some(target) = target {
            target.remove(&mut None);
        }
    }
}

impl Below {
    fn new(base: &Arc<OwnedFd>, components: &[String], name: &str) -> Below {
        Below {
            base: Arc::clone(base),
            components: components.to_vec(),
            name: name.to_owned(),
        }
    }

    /// Unlink the name, reusing `last` (the directory of the previous call)
    /// when it is the same directory.
    fn unlink(&self, flags: AtFlags, last: &mut Option<(Vec<String>, OwnedFd)>) {
        if last.as_ref().is_none_or(|(c, _)| *c != self.components) {
            let components: Vec<&str> = self.components.iter().map(String::as_str).collect();
            *last = crate::fsx::open_dir_path(&*self.base, &components)
                .ok()
                .map(|fd| (self.components.clone(), fd));
        }
        if let Some((_, dir)) = last {
            let _ = rustix::fs::unlinkat(&*dir, self.name.as_str(), flags);
        }
    }
}

impl Target {
    fn remove(self, last: &mut Option<(Vec<String>, OwnedFd)>) {
        match self {
            Target::TempFile(b) => b.unlink(AtFlags::empty(), last),
            Target::CreatedDir(b) => b.unlink(AtFlags::REMOVEDIR, last),
            Target::Mount(path) => {
                let _ = std::process::Command::new("umount")
                    .arg("--lazy")
                    .arg("--")
                    .arg(&path)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
                let _ = std::fs::remove_dir(&path);
            }
            Target::Terminal(tty, saved) => {
                let _ =
                    rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, &saved);
            }
            Target::PassphraseFile { path, identity } => {
                if let Err(e) = remove_passphrase_file(&path, identity) {
                    crate::warning!(
                        "could not remove the passphrase file {}: {e}; delete it by hand",
                        path.display()
                    );
                }
            }
        }
    }
}

/// Unlink a consumed passphrase file: only a regular file or a FIFO, and
/// only the one this run opened once that is known. A file that is already
/// gone is fine.
fn remove_passphrase_file(path: &Path, identity: Option<(u64, u64)>) -> io::Result<()> {
    let st = match rustix::fs::lstat(path) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let kind = FileType::from_raw_mode(st.st_mode);
    let ours = matches!(kind, FileType::RegularFile | FileType::Fifo)
        && identity.is_none_or(|id| id == (st.st_dev, st.st_ino));
    if !ours {
        return Ok(());
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
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

/// Remove everything registered: temporary files, then created directories
/// (each newest first, so children go before their parents), then
/// passphrase files. Safe to call more than once.
fn remove_everything() {
    remove_targets(std::mem::take(&mut registry().targets));
}

/// Remove `targets` (taken out of the registry) in that order.
fn remove_targets(targets: BTreeMap<u64, Target>) {
    let (mut temps, mut dirs, mut files) = (Vec::new(), Vec::new(), Vec::new());
    for target in targets.into_values().rev() {
        match target {
            Target::TempFile(_) | Target::Mount(_) | Target::Terminal(..) => temps.push(target),
            Target::CreatedDir(_) => dirs.push(target),
            Target::PassphraseFile { .. } => files.push(target),
        }
    }
    // Consecutive names usually share a directory: open each one once.
    let mut last = None;
    for target in temps.into_iter().chain(dirs).chain(files) {
        target.remove(&mut last);
    }
}

thread_local! {
    /// Whether this thread is inside [`commit_section`] already.
    static IN_COMMIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` with signals held off: a signal that arrives meanwhile is acted
/// on only when `f` returns. Sections nest: one opened inside another on
/// the same thread (the install step renames a blob, an
/// [`crate::fsx::AtomicFile`], while it holds a stash partition mounted)
/// runs inside the outer one instead of waiting for it forever.
pub fn commit_section<T>(f: impl FnOnce() -> T) -> T {
    if IN_COMMIT.with(std::cell::Cell::get) {
        return f();
    }
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            IN_COMMIT.with(|c| c.set(false));
        }
    }
    let _guard = COMMIT.lock().unwrap_or_else(|e| e.into_inner());
    IN_COMMIT.with(|c| c.set(true));
    // Dropped before `_guard`: the flag is cleared while the lock is held.
    let _leave = Leave;
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_sections_nest_on_one_thread_and_hold_off_another() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let inner = commit_section(|| commit_section(|| 7));
            tx.send(inner).unwrap();
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(got, Ok(7), "a nested commit_section deadlocked");
        // Left, the section is free again; held, another thread waits.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        commit_section(|| {
            let other = std::thread::spawn(move || commit_section(|| tx.send(()).unwrap()));
            assert!(
                rx.recv_timeout(std::time::Duration::from_millis(200))
                    .is_err()
            );
            other
        })
        .join()
        .unwrap();
        assert_eq!(rx.try_recv(), Ok(()));
    }

    #[test]
    fn a_guard_removes_on_drop_and_keeps_when_disarmed() {
        let t = tempfile::tempdir().unwrap();
        let base = Arc::new(crate::fsx::open_root(t.path()).unwrap());
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("d/gone"), b"x").unwrap();
        std::fs::write(t.path().join("d/kept"), b"x").unwrap();
        let d = vec!["d".to_owned()];
        drop(Guard::temp_file(&base, &d, "gone"));
        Guard::temp_file(&base, &d, "kept").disarm();
        assert!(!t.path().join("d/gone").exists());
        assert!(t.path().join("d/kept").exists());
        let dir = Guard::created_dir(&base, &[], "d");
        drop(dir);
        assert!(t.path().join("d").is_dir(), "a non-empty directory stays");
    }

    /// What the signal thread does, for these guards only (other tests'
    /// guards live in the same registry): every temporary file before any
    /// directory, children before parents, and the passphrase file.
    #[test]
    fn a_signal_removes_what_is_registered_children_first() {
        let t = tempfile::tempdir().unwrap();
        let base = Arc::new(crate::fsx::open_root(t.path()).unwrap());
        let pw = t.path().join("pw");
        std::fs::write(&pw, b"x").unwrap();
        let mut guards = vec![Guard::passphrase_file(&pw)];
        std::fs::create_dir(t.path().join("a")).unwrap();
        guards.push(Guard::created_dir(&base, &[], "a"));
        std::fs::create_dir(t.path().join("a/b")).unwrap();
        guards.push(Guard::created_dir(&base, &["a".into()], "b"));
        std::fs::write(t.path().join("a/b/tmp"), b"x").unwrap();
        guards.push(Guard::temp_file(&base, &["a".into(), "b".into()], "tmp"));
        let mine: BTreeMap<u64, Target> = {
            let mut r = registry();
            guards
                .iter()
                .filter_map(|g| r.targets.remove(&g.id).map(|t| (g.id, t)))
                .collect()
        };
        remove_targets(mine);
        assert!(!pw.exists());
        assert!(!t.path().join("a").exists(), "a/b/tmp, a/b and a removed");
        // The guards find nothing left to do.
        drop(guards);
    }

    #[test]
    fn a_passphrase_guard_removes_only_the_file_it_identified() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("pw");
        std::fs::write(&path, b"x").unwrap();
        let guard = Guard::passphrase_file(&path);
        guard.identify(&rustix::fs::stat(&path).unwrap());
        // Replaced by another file under the same name: not ours. (The
        // first stays open, so its inode number cannot be reused.)
        let first = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(t.path().join("other"), b"y").unwrap();
        std::fs::rename(t.path().join("other"), &path).unwrap();
        let other = std::fs::File::open(&path).unwrap();
        drop(guard);
        assert!(path.exists());
        drop((first, other));
        // A symlink is never removed.
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        drop(Guard::passphrase_file(&link));
        assert!(std::fs::symlink_metadata(&link).is_ok());
        drop(Guard::passphrase_file(&path));
        assert!(!path.exists());
    }
}
