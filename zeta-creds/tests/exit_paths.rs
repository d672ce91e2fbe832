//! The exit-path matrix of `zeta-creds restore --passphrase-file F`.
//!
//! Every row runs the real (debug) binary and checks, whatever the way out:
//!
//! * F is gone afterwards if the run read it as its passphrase (unless
//!   `--keep-passphrase-file`), and left exactly as it was if the run ended
//!   before reading it (a missing blob, another stick);
//! * no `.zeta-creds-tmp.*` file is left anywhere under the test world;
//! * except on success, the target root is exactly as it was before.
//!
//! Rows: success, each documented error (3, 4, 5, 6, 7, 8), SIGTERM while
//! the passphrase file (a FIFO) is still being read, SIGTERM, SIGINT and
//! SIGHUP while scrypt would run (`stall-before-kdf`), a signal while staged
//! files exist (`stall-after-staging`), a panic between staging and commit
//! (`panic-after-staging`), SIGTERM while bundle's temporary blob exists
//! (`stall-after-blob-temp`), and `--keep-passphrase-file` on two error paths. The fault hooks are selected with `ZETA_CREDS_TEST_FAULT` and only
//! exist in debug builds, which is what `cargo test` runs.
//!
//! A row collects every broken invariant before it fails, so one run shows
//! everything that is wrong with that exit path.

mod common;

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use rustix::process::{Pid, Signal, kill_process};

/// A child still running this long after it was spawned is killed with
/// SIGKILL and the row fails.
const TIMEOUT: Duration = Duration::from_secs(30);

const FAULT_ENV: &str = "ZETA_CREDS_TEST_FAULT";
const STALL_BEFORE_KDF: &str = "zeta-creds: test fault: stall-before-kdf";
const STALL_AFTER_STAGING: &str = "zeta-creds: test fault: stall-after-staging";
const PANIC_AFTER_STAGING: &str = "test fault: panic-after-staging";
const STALL_AFTER_BLOB_TEMP: &str = "zeta-creds: test fault: stall-after-blob-temp";

// ---------------------------------------------------------------------------
// Running the binary.

/// A spawned `zeta-creds` whose stderr is read line by line as it comes.
/// Dropped while still running (a failed assertion), it is killed with
/// SIGKILL and reaped.
struct Running {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
}

/// How a run ended.
struct Finished {
    status: ExitStatus,
    stderr: String,
    stdout: String,
}

impl Finished {
    fn describe(&self) -> String {
        format!(
            "exit status {:?} (code {:?}, signal {:?})\n--- stderr ---\n{}--- stdout ---\n{}",
            self.status,
            self.status.code(),
            self.status.signal(),
            self.stderr,
            self.stdout
        )
    }
}

fn spawn(w: &World, args: &[OsString], fault: Option<&str>) -> Running {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("zeta-creds"));
    cmd.args(args)
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("ZETA_CREDS_PASSPHRASE")
        .env_remove("JOURNAL_STREAM")
        .env_remove(FAULT_ENV)
        .current_dir(w.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(f) = fault {
        cmd.env(FAULT_ENV, f);
    }
    let mut child = cmd.spawn().expect("spawn zeta-creds");
    let started = Instant::now();
    let (tx, lines) = mpsc::channel();
    let stderr = Arc::new(Mutex::new(String::new()));
    let stdout = Arc::new(Mutex::new(String::new()));
    let err_pipe = child.stderr.take().unwrap();
    let err_acc = Arc::clone(&stderr);
    let err_reader = std::thread::spawn(move || {
        for line in BufReader::new(err_pipe).lines() {
            let Ok(line) = line else { break };
            let mut acc = err_acc.lock().unwrap();
            acc.push_str(&line);
            acc.push('\n');
            drop(acc);
            // The receiver may be gone; the text is kept in `stderr`.
            let _ = tx.send(line);
        }
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let out_acc = Arc::clone(&stdout);
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        out_acc.lock().unwrap().push_str(&s);
    });
    Running {
        child,
        lines,
        stderr,
        stdout,
        readers: vec![err_reader, out_reader],
        started,
    }
}

impl Running {
    fn remaining(&self) -> Duration {
        TIMEOUT.saturating_sub(self.started.elapsed())
    }

    /// Wait until a stderr line contains `needle`.
    fn wait_for_line(&mut self, needle: &str) -> Result<(), String> {
        loop {
            match self.lines.recv_timeout(self.remaining()) {
                Ok(line) if line.contains(needle) => return Ok(()),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no stderr line containing {needle:?} within {TIMEOUT:?}"
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "stderr closed without a line containing {needle:?}"
                    ));
                }
            }
        }
    }

    fn signal(&self, sig: Signal) {
        let pid = Pid::from_raw(self.child.id() as i32).unwrap();
        kill_process(pid, sig).expect("send signal");
    }

    /// Wait for the exit; past the deadline, SIGKILL the child and fail.
    fn finish(mut self) -> Finished {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if self.remaining().is_zero() {
                let _ = self.child.kill();
                let status = self.child.wait().expect("wait");
                self.join_readers();
                panic!(
                    "zeta-creds still running {TIMEOUT:?} after it was started; killed with SIGKILL ({status:?})\n--- stderr ---\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.join_readers();
        let stderr = self.stderr.lock().unwrap().clone();
        let stdout = self.stdout.lock().unwrap().clone();
        Finished {
            status,
            stderr,
            stdout,
        }
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Building commands.

fn os(s: impl AsRef<std::ffi::OsStr>) -> OsString {
    s.as_ref().to_owned()
}

/// `restore --blob BLOB --target-root dst --usb-uuid UUID --passphrase-file F`.
fn restore_args(w: &World, blob: &Path, uuid: &str, pf: &Path) -> Vec<OsString> {
    vec![
        os("restore"),
        os("--blob"),
        os(blob),
        os("--target-root"),
        os(w.dst()),
        os("--usb-uuid"),
        os(uuid),
        os("--passphrase-file"),
        os(pf),
    ]
}

/// Run `zeta-creds` to completion (with the same timeout as every row).
fn run(w: &World, args: &[OsString], fault: Option<&str>) -> Finished {
    spawn(w, args, fault).finish()
}

/// Bundle the standard manifest into `out` (a generation above any existing blob's).
fn bundle_to(w: &World, out: &Path, force: bool) {
    let pf = w.pass_file(PASS);
    let mut args = vec![
        os("bundle"),
        os("--manifest"),
        os(w.manifest()),
        os("--source-root"),
        os(w.src()),
        os("--out"),
        os(out),
        os("--usb-uuid"),
        os(UUID),
        os("--work-factor"),
        os("10"),
        os("--passphrase-file"),
        os(&pf),
    ];
    if force {
        args.push(os("--force"));
    }
    let fin = run(w, &args, None);
    assert_eq!(
        fin.status.code(),
        Some(0),
        "setup: bundle to {} failed\n{}",
        out.display(),
        fin.describe()
    );
}

/// The generation in a blob's header, read with `inspect --json`.
fn generation(w: &World, blob: &Path) -> u64 {
    let fin = run(w, &[os("inspect"), os(blob), os("--json")], None);
    assert_eq!(
        fin.status.code(),
        Some(0),
        "setup: inspect\n{}",
        fin.describe()
    );
    let v: serde_json::Value = serde_json::from_str(&fin.stdout).unwrap();
    v["generation"].as_u64().unwrap()
}

// ---------------------------------------------------------------------------
// The invariants every row checks.

struct Row {
    name: &'static str,
    problems: Vec<String>,
}

impl Row {
    fn new(name: &'static str) -> Row {
        Row {
            name,
            problems: Vec::new(),
        }
    }

    fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.problems.push(problem());
        }
    }

    /// Exited (not killed by a signal) with `code`.
    fn exit_code(&mut self, fin: &Finished, code: i32) {
        self.check(
            fin.status.signal().is_none() && fin.status.code() == Some(code),
            || {
                format!(
                    "expected exit code {code}, got code {:?} / killed by signal {:?}",
                    fin.status.code(),
                    fin.status.signal()
                )
            },
        );
    }

    /// The signal thread's line: `zeta-creds: interrupted by signal N;
    /// temporary files removed, nothing committed`. The `error: ` label of
    /// the program's other failure lines is accepted between the two.
    fn interrupted_message(&mut self, fin: &Finished, signo: i32) {
        let text =
            format!("interrupted by signal {signo}; temporary files removed, nothing committed");
        let ok = fin.stderr.lines().any(|l| {
            l == format!("zeta-creds: {text}") || l == format!("zeta-creds: error: {text}")
        });
        self.check(ok, || {
            format!("no stderr line \"zeta-creds: [error: ]{text}\"")
        });
    }

    fn stderr_has(&mut self, fin: &Finished, needle: &str) {
        self.check(fin.stderr.contains(needle), || {
            format!("stderr lacks {needle:?}")
        });
    }

    /// F gone (or kept: `--keep-passphrase-file`, or never read), no
    /// temporary file anywhere in the world, and the target unchanged when
    /// `before` is given.
    fn exit_invariants(&mut self, w: &World, pf: &Path, keep: bool, before: Option<&[String]>) {
        let exists = fs::symlink_metadata(pf).is_ok();
        if keep {
            self.check(exists, || {
                format!(
                    "{} was kept (--keep-passphrase-file) or never read, but was deleted",
                    pf.display()
                )
            });
            if exists {
                let content = fs::read_to_string(pf).unwrap_or_default();
                self.check(content == format!("{PASS}\n"), || {
                    format!("kept passphrase file was changed: {content:?}")
                });
            }
        } else {
            self.check(!exists, || {
                format!("passphrase file {} still exists", pf.display())
            });
        }
        let temps = temp_files_under(w.dir.path());
        self.check(temps.is_empty(), || {
            format!("temporary files left behind: {temps:#?}")
        });
        if let Some(before) = before {
            let after = snapshot(&w.dst());
            self.check(after == before, || {
                format!("target root changed:\n{}", diff(before, &after))
            });
        }
    }

    fn done(self, fin: &Finished) {
        if self.problems.is_empty() {
            eprintln!("ROW {}: ok", self.name);
            return;
        }
        panic!(
            "ROW {} FAILED:\n  - {}\n{}",
            self.name,
            self.problems.join("\n  - "),
            fin.describe()
        );
    }
}

fn diff(before: &[String], after: &[String]) -> String {
    let mut out = String::new();
    for l in before.iter().filter(|l| !after.contains(l)) {
        out.push_str(&format!("  - {l}\n"));
    }
    for l in after.iter().filter(|l| !before.contains(l)) {
        out.push_str(&format!("  + {l}\n"));
    }
    out
}

/// Wait for a fault hook's marker; if it never comes the hook is missing
/// (or broken): report how the run ended instead.
fn expect_marker(row: &str, r: &mut Running, marker: &str) -> Result<(), String> {
    r.wait_for_line(marker)
        .map_err(|why| format!("ROW {row}: {why}"))
}

fn fail_without_marker(why: String, r: Running) -> ! {
    let fin = r.finish();
    panic!(
        "{why}\n  (fault hook missing or broken: ZETA_CREDS_TEST_FAULT is compiled into debug builds only)\n{}",
        fin.describe()
    );
}

// ---------------------------------------------------------------------------
// The rows.

#[test]
fn row_success() {
    let w = World::bundled();
    let pf = w.pass_file(PASS);
    let fin = run(&w, &restore_args(&w, &w.blob(), UUID, &pf), None);
    let mut row = Row::new("success (0)");
    row.exit_code(&fin, 0);
    row.exit_invariants(&w, &pf, false, None);
    for rel in [
        "home/zeta/.config/gh/hosts.yml",
        "home/zeta/.codex/auth.json",
        "etc/ssh/ssh_host_ed25519_key",
        "etc/zeta/hook.sh",
    ] {
        let same = fs::read(w.src().join(rel)).ok() == fs::read(w.dst().join(rel)).ok();
        row.check(same, || format!("{rel} not restored byte for byte"));
    }
    row.done(&fin);
}

#[test]
fn row_wrong_passphrase() {
    let w = World::bundled();
    let before = snapshot(&w.dst());
    let pf = w.pass_file("not the passphrase");
    let fin = run(&w, &restore_args(&w, &w.blob(), UUID, &pf), None);
    let mut row = Row::new("wrong passphrase (3)");
    row.exit_code(&fin, 3);
    row.stderr_has(&fin, "wrong passphrase");
    row.exit_invariants(&w, &pf, false, Some(&before));
    row.done(&fin);
}

#[test]
fn row_other_usb_uuid() {
    let w = World::bundled();
    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    let fin = run(&w, &restore_args(&w, &w.blob(), "DEAD-BEEF", &pf), None);
    let mut row = Row::new("other USB UUID (4)");
    row.exit_code(&fin, 4);
    // Refused before the passphrase is read: F is not consumed.
    row.exit_invariants(&w, &pf, true, Some(&before));
    row.done(&fin);
}

#[test]
fn row_corrupt_blob() {
    let w = World::bundled();
    // Inside the last chunk: everything before it is staged (temporary files
    // exist) before the damage is found.
    let mut bytes = fs::read(w.blob()).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0x01;
    fs::write(w.blob(), &bytes).unwrap();
    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    let fin = run(&w, &restore_args(&w, &w.blob(), UUID, &pf), None);
    let mut row = Row::new("corrupt blob (5)");
    row.exit_code(&fin, 5);
    row.exit_invariants(&w, &pf, false, Some(&before));
    row.done(&fin);
}

#[test]
fn row_missing_blob() {
    let w = World::new();
    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    let fin = run(&w, &restore_args(&w, &w.blob(), UUID, &pf), None);
    let mut row = Row::new("missing blob (6)");
    row.exit_code(&fin, 6);
    // Refused before the passphrase is read: F is not consumed.
    row.exit_invariants(&w, &pf, true, Some(&before));
    row.done(&fin);
}

#[test]
fn row_rollback_refused() {
    let w = World::new();
    w.populate();
    let old = w.path("esp/old.enc");
    bundle_to(&w, &old, false);
    bundle_to(&w, &w.blob(), false);
    bundle_to(&w, &w.blob(), true);
    let (g_old, g_new) = (generation(&w, &old), generation(&w, &w.blob()));
    assert!(
        g_old < g_new,
        "setup: expected the old blob's generation below the new one's, got {g_old} and {g_new}"
    );
    let pf = w.pass_file(PASS);
    let first = run(&w, &restore_args(&w, &w.blob(), UUID, &pf), None);
    assert_eq!(
        first.status.code(),
        Some(0),
        "setup: restoring generation {g_new} failed\n{}",
        first.describe()
    );
    let state = w.dst().join("var/lib/zeta-creds/state.json");
    let state_recorded = state.exists();

    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    let fin = run(&w, &restore_args(&w, &old, UUID, &pf), None);
    let mut row = Row::new("rollback refused (8)");
    row.check(state_recorded, || {
        format!(
            "no state record at {} after restoring generation {g_new}",
            state.display()
        )
    });
    row.exit_code(&fin, 8);
    row.exit_invariants(&w, &pf, false, Some(&before));
    row.done(&fin);
}

/// Makes a target directory unwritable for the duration of a row: immutable
/// (`chattr +i`) as root, since root ignores permission bits; mode 0555
/// otherwise. Undone on drop, also when the row fails.
struct Unwritable {
    dir: PathBuf,
    immutable: bool,
}

impl Unwritable {
    fn new(dir: &Path) -> Result<Unwritable, String> {
        if is_root() {
            let out = Command::new("chattr")
                .arg("+i")
                .arg(dir)
                .output()
                .map_err(|e| format!("cannot run chattr: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "chattr +i {} failed: {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Ok(Unwritable {
                dir: dir.to_owned(),
                immutable: true,
            })
        } else {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).unwrap();
            let guard = Unwritable {
                dir: dir.to_owned(),
                immutable: false,
            };
            let probe = dir.join("probe");
            if fs::write(&probe, b"").is_ok() {
                let _ = fs::remove_file(&probe);
                return Err(format!("{} is still writable at mode 0555", dir.display()));
            }
            Ok(guard)
        }
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        if self.immutable {
            let _ = Command::new("chattr").arg("-i").arg(&self.dir).status();
        } else {
            let _ = fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o755));
        }
    }
}

#[test]
fn row_unwritable_target() {
    let w = World::bundled();
    // A target that already has /etc/ssh (as every NixOS system does), which
    // cannot be written to: the host keys cannot be staged there.
    let ssh = w.dst().join("etc/ssh");
    fs::create_dir_all(&ssh).unwrap();
    fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755)).unwrap();
    // Declared after `w`: dropped (undone) before the world is removed.
    let _guard = Unwritable::new(&ssh)
        .unwrap_or_else(|why| panic!("row unwritable target (7): cannot set it up here: {why}"));
    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    let fin = run(&w, &restore_args(&w, &w.blob(), UUID, &pf), None);
    let mut row = Row::new("unwritable target dir (7)");
    row.exit_code(&fin, 7);
    // Each entry that could not be written is named.
    row.stderr_has(&fin, "/etc/ssh/ssh_host_ed25519_key ");
    row.stderr_has(&fin, "/etc/ssh/ssh_host_ed25519_key.pub ");
    // Exit 7 is "some entries could not be written" (README.md): the other
    // entries may be in place, so the target is not compared whole. What
    // must hold: nothing that was there changed or went away, nothing at all
    // appeared in the unwritable directory, and every entry written is
    // complete.
    row.exit_invariants(&w, &pf, false, None);
    let after = snapshot(&w.dst());
    let gone: Vec<_> = before.iter().filter(|l| !after.contains(l)).collect();
    row.check(gone.is_empty(), || {
        format!("entries that existed before changed or vanished: {gone:#?}")
    });
    let in_ssh: Vec<_> = fs::read_dir(&ssh)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    row.check(in_ssh.is_empty(), || {
        format!("the unwritable directory is not empty: {in_ssh:?}")
    });
    for l in after.iter().filter(|l| !before.contains(l)) {
        let rel = l.split(' ').next().unwrap();
        let (src, dst) = (w.src().join(rel), w.dst().join(rel));
        if fs::symlink_metadata(&dst).is_ok_and(|m| m.is_file())
            && !rel.starts_with("var/lib/zeta-creds/")
        {
            row.check(fs::read(&src).ok() == fs::read(&dst).ok(), || {
                format!("{rel} was written but differs from the source")
            });
        }
    }
    let added: Vec<&str> = after
        .iter()
        .filter(|l| !before.contains(l))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    eprintln!(
        "ROW unwritable target dir (7): {} path(s) added to the target: {added:?}",
        added.len()
    );
    row.done(&fin);
}

fn signal_during_kdf(name: &'static str, sig: Signal, signo: i32) {
    let w = World::bundled();
    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    let mut r = spawn(
        &w,
        &restore_args(&w, &w.blob(), UUID, &pf),
        Some("stall-before-kdf"),
    );
    if let Err(why) = expect_marker(name, &mut r, STALL_BEFORE_KDF) {
        fail_without_marker(why, r);
    }
    r.signal(sig);
    let fin = r.finish();
    let mut row = Row::new(name);
    row.exit_code(&fin, 128 + signo);
    row.interrupted_message(&fin, signo);
    row.exit_invariants(&w, &pf, false, Some(&before));
    row.done(&fin);
}

#[test]
fn row_sigterm_during_kdf() {
    signal_during_kdf("SIGTERM during the KDF (143)", Signal::TERM, 15);
}

#[test]
fn row_sigint_during_kdf() {
    signal_during_kdf("SIGINT during the KDF (130)", Signal::INT, 2);
}

#[test]
fn row_sighup_during_kdf() {
    signal_during_kdf("SIGHUP during the KDF (129)", Signal::HUP, 1);
}

/// A signal before the passphrase has been read: F is a FIFO, so the child
/// blocks reading it, still holding F. Opening the FIFO's write end (without
/// writing) succeeds only once the child has it open for reading: from then
/// on the child waits in the read, before F is consumed, and only the signal
/// thread can delete F.
#[test]
fn row_sigterm_while_reading_the_passphrase_file() {
    let name = "SIGTERM while reading the passphrase file (143)";
    let w = World::bundled();
    let before = snapshot(&w.dst());
    let pf = w.path("passphrase.fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &pf,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    let r = spawn(&w, &restore_args(&w, &w.blob(), UUID, &pf), None);
    let writer = loop {
        let open = fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&pf);
        match open {
            Ok(f) => break Some(f),
            // ENXIO: no reader yet.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) => {}
            Err(e) => panic!("open the FIFO's write end: {e}"),
        }
        if fs::symlink_metadata(&pf).is_err() || r.remaining().is_zero() {
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let Some(writer) = writer else {
        // F was consumed (or the run ended) without ever blocking in the
        // read: this build does not read a FIFO. Check the rest, then fail.
        let fin = r.finish();
        let mut row = Row::new(name);
        row.exit_invariants(&w, &pf, false, Some(&before));
        row.done(&fin);
        panic!(
            "row {name}: the child never blocked reading a FIFO passphrase file ({:?}), \
             so the signal during that read was not tested",
            fin.status
        );
    };
    r.signal(Signal::TERM);
    let fin = r.finish();
    drop(writer);
    let mut row = Row::new(name);
    row.exit_code(&fin, 143);
    row.interrupted_message(&fin, 15);
    row.exit_invariants(&w, &pf, false, Some(&before));
    row.done(&fin);
}

fn signal_while_writing(name: &'static str, sig: Signal, signo: i32) {
    let w = World::bundled();
    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    let mut r = spawn(
        &w,
        &restore_args(&w, &w.blob(), UUID, &pf),
        Some("stall-after-staging"),
    );
    if let Err(why) = expect_marker(name, &mut r, STALL_AFTER_STAGING) {
        fail_without_marker(why, r);
    }
    // Everything is staged and nothing committed: the temporary files are
    // there, beside their destinations, 0600 and (as root) owned by root.
    let staged = temp_files_under(&w.dst());
    let mut staged_problems = Vec::new();
    if staged.is_empty() {
        staged_problems
            .push("no temporary file under dst/ at the stall-after-staging marker".into());
    }
    for t in &staged {
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        let suffix = &name[".zeta-creds-tmp.".len()..];
        if suffix.len() != 16 || !suffix.bytes().all(|b| b.is_ascii_hexdigit()) {
            staged_problems.push(format!(
                "temporary file name {name:?} is not .zeta-creds-tmp.<16 hex>"
            ));
        }
        match fs::symlink_metadata(t) {
            Ok(md) => {
                if !md.is_file() || md.mode() & 0o7777 != 0o600 {
                    staged_problems.push(format!(
                        "{} is not a regular 0600 file (mode {:o})",
                        t.display(),
                        md.mode()
                    ));
                }
                if is_root() && md.uid() != 0 {
                    staged_problems.push(format!("{} owned by uid {}", t.display(), md.uid()));
                }
            }
            Err(e) => staged_problems.push(format!("{}: {e}", t.display())),
        }
    }
    r.signal(sig);
    let fin = r.finish();
    let mut row = Row::new(name);
    row.problems.extend(staged_problems);
    row.exit_code(&fin, 128 + signo);
    row.interrupted_message(&fin, signo);
    row.exit_invariants(&w, &pf, false, Some(&before));
    row.done(&fin);
}

/// The same owner for bundle's temporary blob: a signal while it exists
/// removes it (its guard is registered with the signal thread when it is
/// created), no blob appears, and the passphrase file, already read, is
/// gone.
#[test]
fn row_sigterm_while_bundling() {
    let name = "SIGTERM while bundling (143)";
    let w = World::new();
    w.populate();
    let pf = w.pass_file(PASS);
    let args = [
        os("bundle"),
        os("--manifest"),
        os(w.manifest()),
        os("--source-root"),
        os(w.src()),
        os("--out"),
        os(w.blob()),
        os("--usb-uuid"),
        os(UUID),
        os("--work-factor"),
        os("10"),
        os("--passphrase-file"),
        os(&pf),
    ];
    let mut r = spawn(&w, &args, Some("stall-after-blob-temp"));
    if let Err(why) = expect_marker(name, &mut r, STALL_AFTER_BLOB_TEMP) {
        fail_without_marker(why, r);
    }
    let temps = temp_files_under(&w.path("esp"));
    r.signal(Signal::TERM);
    let fin = r.finish();
    let mut row = Row::new(name);
    row.check(temps.len() == 1, || {
        format!("expected the temporary blob beside --out, found {temps:?}")
    });
    row.exit_code(&fin, 143);
    row.interrupted_message(&fin, 15);
    row.check(!w.blob().exists(), || "a blob was written".into());
    row.exit_invariants(&w, &pf, false, None);
    row.done(&fin);
}

#[test]
fn row_sigint_while_writing() {
    signal_while_writing("SIGINT while writing (130)", Signal::INT, 2);
}

#[test]
fn row_sigterm_while_writing() {
    signal_while_writing("SIGTERM while writing (143)", Signal::TERM, 15);
}

#[test]
fn row_panic_after_staging() {
    let w = World::bundled();
    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    let fin = run(
        &w,
        &restore_args(&w, &w.blob(), UUID, &pf),
        Some("panic-after-staging"),
    );
    let mut row = Row::new("panic after staging (101)");
    row.stderr_has(&fin, PANIC_AFTER_STAGING);
    row.exit_code(&fin, 101);
    row.exit_invariants(&w, &pf, false, Some(&before));
    row.done(&fin);
}

#[test]
fn row_keep_passphrase_file_on_wrong_passphrase() {
    let w = World::bundled();
    let before = snapshot(&w.dst());
    // The file holds PASS, but the blob was sealed with another passphrase.
    let other = w.path("esp/other.enc");
    let pf = w.pass_file("another passphrase");
    let fin = run(
        &w,
        &[
            os("bundle"),
            os("--manifest"),
            os(w.manifest()),
            os("--source-root"),
            os(w.src()),
            os("--out"),
            os(&other),
            os("--usb-uuid"),
            os(UUID),
            os("--work-factor"),
            os("10"),
            os("--passphrase-file"),
            os(&pf),
        ],
        None,
    );
    assert_eq!(fin.status.code(), Some(0), "setup\n{}", fin.describe());
    let pf = w.pass_file(PASS);
    let mut args = restore_args(&w, &other, UUID, &pf);
    args.push(os("--keep-passphrase-file"));
    let fin = run(&w, &args, None);
    let mut row = Row::new("--keep-passphrase-file, wrong passphrase (3)");
    row.exit_code(&fin, 3);
    row.exit_invariants(&w, &pf, true, Some(&before));
    row.done(&fin);
}

#[test]
fn row_keep_passphrase_file_on_missing_blob() {
    let w = World::new();
    let before = snapshot(&w.dst());
    let pf = w.pass_file(PASS);
    let mut args = restore_args(&w, &w.blob(), UUID, &pf);
    args.push(os("--keep-passphrase-file"));
    let fin = run(&w, &args, None);
    let mut row = Row::new("--keep-passphrase-file, missing blob (6)");
    row.exit_code(&fin, 6);
    row.exit_invariants(&w, &pf, true, Some(&before));
    row.done(&fin);
}
