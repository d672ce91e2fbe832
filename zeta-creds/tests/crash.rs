//! Crash consistency: `kill -9` at a random moment of a restore never leaves
//! a partial or missing destination file, and the next restore removes the
//! stale `.zeta-creds-tmp.*` files and converges.
//!
//! The target starts with OLD versions of every file of a many-file bundle.
//! Each iteration spawns a restore, waits a random time between zero and
//! the length of one full run, SIGKILLs it, and checks that every
//! destination file is byte for byte its OLD or its NEW content. Whenever
//! every file is NEW, the OLD contents are put back and the state record
//! removed (a fresh install), so that later kills still land in a commit.
//! Stale temporary files are left for the tool to clean up. A final restore
//! must then succeed, leave only NEW content and no temporary file.
//!
//! The delays come from a fixed-seed xorshift generator: a failure names the
//! seed, the iteration and the delay, and reruns the same way (up to the
//! scheduler).
//!
//! Sizes: a debug build decrypts and hashes at only 2 to 3 MB/s (scrypt alone
//! is optimised), so a 15 MiB bundle takes ~6 s per run and 200 runs would
//! take ~10 minutes. The bundle is therefore 120 files of about 400 KB in
//! all: many small files (which is what makes the commit phase, one rename
//! and two fsyncs per file, long) plus a few that span two 64 KiB chunks.

mod common;

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rustix::process::{Pid, Signal, kill_process};

const SEED: u64 = 0x5eed_c4a5_4d0f_2025;
const ITERATIONS: usize = 200;
/// Small files, and how many.
const SMALL_FILES: usize = 117;
const SMALL_SIZE: (usize, usize) = (512, 2 * 1024);
/// Files larger than one 64 KiB chunk.
const LARGE_FILES: usize = 3;
const LARGE_SIZE: (usize, usize) = (66 * 1024, 100 * 1024);
/// Directories the files are spread over (relative to the source root).
const DIRS: [&str; 6] = [
    "etc/big/a",
    "etc/big/b",
    "etc/big/c/deeper",
    "home/zeta/.cachex/one",
    "home/zeta/.cachex/two",
    "home/zeta/.cachex/two/three",
];
/// A single run (or the final one) still going after this is a failure.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// xorshift64*: small, deterministic, good enough to spread delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn range(&mut self, (lo, hi): (usize, usize)) -> usize {
        lo + self.below((hi - lo + 1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// One carried file: its path below the root and both versions.
struct Item {
    rel: String,
    old: Vec<u8>,
    new: Vec<u8>,
}

fn std_cmd(w: &World) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("zeta-creds"));
    c.env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("ZETA_CREDS_PASSPHRASE")
        .env_remove("JOURNAL_STREAM")
        .env_remove("ZETA_CREDS_TEST_FAULT")
        .current_dir(w.dir.path())
        .stdin(Stdio::null());
    c
}

/// A fresh passphrase file at `name` in the world (each run consumes one).
fn pass_file_at(w: &World, name: &str) -> PathBuf {
    let p = w.path(name);
    fs::write(&p, format!("{PASS}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// Spawn `restore` into `target`, output to `log`.
fn spawn_restore(w: &World, target: &Path, log: &Path) -> Child {
    let pf = pass_file_at(w, "crash-passphrase");
    let log = File::create(log).unwrap();
    std_cmd(w)
        .arg("restore")
        .arg("--blob")
        .arg(w.blob())
        .arg("--target-root")
        .arg(target)
        .args(["--usb-uuid", UUID, "--passphrase-file"])
        .arg(&pf)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn zeta-creds")
}

fn wait_with_timeout(child: &mut Child, what: &str, log: &Path) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: still running after {RUN_TIMEOUT:?}; killed\n--- output ---\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Write the OLD version of every item under `root` (directories as a
/// system would have them: root's under etc, the user's under the home).
fn put_old(root: &Path, items: &[Item]) {
    let t = target_ids();
    for d in DIRS {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for it in items {
        let p = root.join(&it.rel);
        fs::write(&p, &it.old).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    }
    if is_root() {
        for entry in walk(&root.join("home/zeta")) {
            std::os::unix::fs::lchown(&entry, Some(t.zeta_uid), Some(t.zeta_gid)).unwrap();
        }
    }
}

/// Sleep for `delay`, or less if the child exits first.
fn sleep_unless_exited(child: &mut Child, delay: Duration) {
    let start = Instant::now();
    while start.elapsed() < delay && child.try_wait().unwrap().is_none() {
        let left = delay.saturating_sub(start.elapsed());
        std::thread::sleep(left.min(Duration::from_millis(1)));
    }
}

/// Put the OLD contents back and remove the state record: the target looks
/// like a fresh install again, where the blob's version wins.
fn reset_to_old(root: &Path, items: &[Item]) {
    for it in items {
        fs::write(root.join(&it.rel), &it.old).unwrap();
    }
    let state = root.join("var/lib/zeta-creds/state.json");
    if state.exists() {
        fs::remove_file(state).unwrap();
    }
}

/// Every path under `dir`, `dir` included.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    if fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        for e in fs::read_dir(dir).unwrap() {
            out.extend(walk(&e.unwrap().path()));
        }
    }
    out
}

/// Check every destination under `root`: OLD or NEW (only NEW with
/// `require_new`), nothing else beside them but temporary files. Returns
/// how many are NEW, or the problems found.
fn check_files(root: &Path, items: &[Item], require_new: bool) -> Result<usize, Vec<String>> {
    let mut problems = Vec::new();
    let mut new = 0;
    for it in items {
        let p = root.join(&it.rel);
        match fs::read(&p) {
            Ok(bytes) if bytes == it.new => new += 1,
            Ok(bytes) if bytes == it.old && !require_new => {}
            Ok(bytes) => problems.push(format!(
                "{}: {} bytes, neither OLD ({} bytes) nor NEW ({} bytes){}",
                it.rel,
                bytes.len(),
                it.old.len(),
                it.new.len(),
                if bytes == it.old {
                    " — still OLD"
                } else {
                    ""
                },
            )),
            Err(e) => problems.push(format!("{}: {e} (it existed before)", it.rel)),
        }
    }
    // Nothing else may appear beside the destinations but temporary files.
    let known: Vec<PathBuf> = items.iter().map(|it| root.join(&it.rel)).collect();
    for d in DIRS {
        for e in fs::read_dir(root.join(d)).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_file() && !known.contains(&p) && !name.starts_with(".zeta-creds-tmp.") {
                problems.push(format!("unexpected file {}", p.display()));
            }
        }
    }
    if problems.is_empty() {
        Ok(new)
    } else {
        Err(problems)
    }
}

fn temp_bytes(temps: &[PathBuf]) -> u64 {
    temps
        .iter()
        .filter_map(|t| fs::symlink_metadata(t).ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn kill_9_never_leaves_a_partial_destination() {
    let w = World::new();
    let mut rng = Rng(SEED);
    let s = source_ids();

    // The NEW versions, in the source root; OLD ones differ in bytes and
    // (usually) in length.
    for d in DIRS {
        fs::create_dir_all(w.src().join(d)).unwrap();
    }
    let mut items = Vec::new();
    for i in 0..SMALL_FILES + LARGE_FILES {
        let size = if i < LARGE_FILES {
            LARGE_SIZE
        } else {
            SMALL_SIZE
        };
        let dir = DIRS[i % DIRS.len()];
        let rel = format!("{dir}/file-{i:03}.bin");
        let (new_len, old_len) = (rng.range(size), rng.range(size));
        let new = rng.bytes(new_len);
        let old = rng.bytes(old_len);
        assert_ne!(new, old);
        items.push(Item { rel, old, new });
    }
    for it in &items {
        let p = w.src().join(&it.rel);
        fs::write(&p, &it.new).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    }
    if is_root() {
        for entry in walk(&w.src().join("home/zeta")) {
            std::os::unix::fs::lchown(&entry, Some(s.zeta_uid), Some(s.zeta_gid)).unwrap();
        }
    }
    fs::write(
        w.manifest(),
        "version = 1\nuser = \"zeta\"\n\n[[entry]]\npath = \"/etc/big\"\n\n[[entry]]\npath = \"~/.cachex\"\n",
    )
    .unwrap();
    w.bundle_ok();
    let total: usize = items.iter().map(|it| it.new.len()).sum();

    put_old(&w.dst(), &items);

    // Full runs on a scratch copy measure how long a restore takes (the
    // median of three, so that one slow start does not stretch the delays).
    let scratch = w.path("scratch");
    let log = w.path("restore.log");
    let mut runs = Vec::new();
    for _ in 0..3 {
        write_accounts(&scratch, &target_ids());
        put_old(&scratch, &items);
        let start = Instant::now();
        let mut child = spawn_restore(&w, &scratch, &log);
        let status = wait_with_timeout(&mut child, "measuring run", &log);
        runs.push(start.elapsed());
        assert_eq!(
            status.code(),
            Some(0),
            "measuring run failed\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        check_files(&scratch, &items, true).unwrap_or_else(|p| {
            panic!("measuring run: {p:#?}");
        });
        fs::remove_dir_all(&scratch).unwrap();
    }
    runs.sort();
    let full = runs[1];
    let full_ms = full.as_millis().max(1) as u64;
    eprintln!(
        "crash: {} files, {total} bytes; one full restore takes {full_ms} ms; {ITERATIONS} iterations, seed {SEED:#x}",
        items.len()
    );

    let loop_start = Instant::now();
    let (mut killed, mut completed) = (0, 0);
    // Where the kills landed: before the commit (all OLD), inside it (some
    // OLD, some NEW), after it (all NEW).
    let (mut all_old, mut mixed, mut all_new) = (0, 0, 0);
    let mut max_stale = (0, 0);
    for iteration in 0..ITERATIONS {
        let delay = rng.below(full_ms + 1);
        let mut child = spawn_restore(&w, &w.dst(), &log);
        sleep_unless_exited(&mut child, Duration::from_millis(delay));
        // The child may have finished; a zombie still accepts the signal.
        let _ = kill_process(Pid::from_raw(child.id() as i32).unwrap(), Signal::KILL);
        let status = wait_with_timeout(&mut child, "killed run", &log);
        let context = || {
            format!(
                "seed {SEED:#x}, iteration {iteration}, delay {delay} ms of {full_ms} ms, exit {status:?}\n--- output ---\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            )
        };
        match (status.signal(), status.code()) {
            (Some(9), _) => killed += 1,
            (None, Some(0)) => completed += 1,
            _ => panic!("run ended other than by SIGKILL or success: {}", context()),
        }
        let new = match check_files(&w.dst(), &items, false) {
            Ok(new) => new,
            Err(problems) => panic!(
                "partial or missing destination after kill -9:\n  {}\n{}",
                problems.join("\n  "),
                context()
            ),
        };
        match new {
            0 => all_old += 1,
            n if n == items.len() => {
                all_new += 1;
                // Back to OLD, as on a fresh install (no state record), so
                // the next runs have something to replace again.
                reset_to_old(&w.dst(), &items);
            }
            _ => mixed += 1,
        }
        // Stale temporary files are removed by a later run (checked after
        // the loop); here only guard the disk against an unbounded pile.
        let temps = temp_files_under(w.dir.path());
        let bytes = temp_bytes(&temps);
        max_stale = max_stale.max((temps.len(), bytes as usize));
        assert!(
            bytes < 1 << 30,
            "stale temporary files pile up: {} files, {bytes} bytes\n{}",
            temps.len(),
            context()
        );
    }
    let loop_time = loop_start.elapsed();
    eprintln!(
        "crash: {ITERATIONS} iterations in {:.1} s ({killed} killed, {completed} completed before the kill); afterwards all OLD {all_old}, mixed OLD/NEW {mixed}, all NEW {all_new}; most temporary files at once: {} files, {} bytes",
        loop_time.as_secs_f64(),
        max_stale.0,
        max_stale.1
    );

    // A clean run converges: every file NEW, no temporary file anywhere.
    let mut child = spawn_restore(&w, &w.dst(), &log);
    let status = wait_with_timeout(&mut child, "final restore", &log);
    let output = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        (status.signal(), status.code()),
        (None, Some(0)),
        "final restore failed\n{output}"
    );
    if let Err(p) = check_files(&w.dst(), &items, true) {
        panic!("after the final restore:\n  {}\n{output}", p.join("\n  "));
    }
    let temps = temp_files_under(w.dir.path());
    assert!(
        temps.is_empty(),
        "temporary files left after a clean restore: {} of them, e.g. {:?}\n{output}",
        temps.len(),
        &temps[..temps.len().min(5)]
    );
    assert!(
        !w.path("crash-passphrase").exists(),
        "passphrase file not consumed"
    );
}
