//! Bundle and restore benchmarks (docs/PERFORMANCE.md): a typical
//! credential set (30 files, 1 MiB) and a large one (1000 files, 128 MiB),
//! through the same library calls the `bundle` and `restore` commands make,
//! with the source, the blob and the target root on tmpfs (`/dev/shm`).
//!
//! ```sh
//! cargo bench -p zeta-creds --bench bundle_restore
//! ```
//!
//! The blobs use work factor 10, so these numbers are everything *but* the
//! KDF: add `kdf/unlock/log_n=18` from the envelope bench for the total at
//! the default work factor (tests/perf/compare.sh times that end to end).

use std::fs;
use std::hint::black_box;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use secrecy::SecretString;
use tempfile::TempDir;
use zeta_creds::envelope::{self, Binding, EntryReader, Header, Host, UsbUuid};
use zeta_creds::{bundle, restore};

const LOG_N: u8 = 10;

/// A tmpfs directory when there is one, else the default temp dir.
fn scratch() -> TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::Builder::new().prefix("zc-bench").tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

fn pass() -> SecretString {
    SecretString::from("correct horse battery staple".to_owned())
}

/// `etc/passwd` and `etc/group` naming the current ids (root and zeta).
fn write_accounts(root: &Path) {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let (zu, zg) = if uid == 0 { (1000, 1000) } else { (uid, gid) };
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(
        root.join("etc/passwd"),
        format!("root:x:0:0::/root:/bin/sh\nzeta:x:{zu}:{zg}::/home/zeta:/bin/sh\n"),
    )
    .unwrap();
    fs::write(root.join("etc/group"), format!("root:x:0:\nzeta:x:{zg}:\n")).unwrap();
    fs::create_dir_all(root.join("home/zeta")).unwrap();
}

/// A data set: `files` files totalling `total` bytes under
/// `~/.config/bench/dNN/`, 100 files per directory.
struct Set {
    name: &'static str,
    files: usize,
    total: usize,
}

const SETS: [Set; 2] = [
    Set {
        name: "typical-30x1MiB",
        files: 30,
        total: 1 << 20,
    },
    Set {
        name: "large-1000x128MiB",
        files: 1000,
        total: 128 << 20,
    },
];

struct World {
    _dir: TempDir,
    src: PathBuf,
    manifest: PathBuf,
    blob: PathBuf,
    base: PathBuf,
}

fn world(set: &Set) -> World {
    let dir = scratch();
    let src = dir.path().join("src");
    write_accounts(&src);
    let size = set.total / set.files;
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..set.files {
        let d = src.join(format!("home/zeta/.config/bench/d{:02}", i / 100));
        fs::create_dir_all(&d).unwrap();
        let body: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        fs::write(d.join(format!("f{i:04}")), body).unwrap();
    }
    let manifest = dir.path().join("manifest.toml");
    fs::write(
        &manifest,
        "version = 1\nuser = \"zeta\"\n\n[[entry]]\npath = \"~/.config/bench\"\nmax_size = \"1GiB\"\n",
    )
    .unwrap();
    let base = dir.path().join("targets");
    fs::create_dir_all(&base).unwrap();
    World {
        blob: dir.path().join("blob.enc"),
        src,
        manifest,
        base,
        _dir: dir,
    }
}

fn bundle_opts(w: &World) -> bundle::Options {
    bundle::Options {
        manifest: w.manifest.clone(),
        source_root: w.src.clone(),
        out: w.blob.clone(),
        usb_uuid: UsbUuid::parse("abcd-1234").unwrap(),
        host: Host::parse("node-a").unwrap(),
        persona: String::new(),
        log_n: LOG_N,
        force: true,
        backup: false,
        user: None,
        allow_other_host: false,
    }
}

/// What `zeta-creds bundle` does after the passphrase is known.
fn run_bundle(opts: &bundle::Options, pass: &SecretString) {
    let plan = bundle::plan(opts).unwrap();
    bundle::write(opts, &plan, pass).unwrap();
}

/// What `zeta-creds restore` does: parse, unlock, stream, stage, commit.
fn run_restore(blob: &Path, target: &Path, pass: &SecretString) -> restore::Report {
    let mut file = fs::File::open(blob).unwrap();
    let header = Header::read(&mut file).unwrap();
    let uuid = UsbUuid::parse("abcd-1234").unwrap();
    let host = Host::parse("node-a").unwrap();
    let binding = Binding {
        usb_uuid: Some(&uuid),
        host: Some(&host),
    };
    let unlocked = header
        .unlock(pass, &binding, envelope::DEFAULT_MAX_LOG_N)
        .unwrap();
    let generation = unlocked.fields().generation;
    let mut entries = EntryReader::new(unlocked.payload_reader(BufReader::new(file))).unwrap();
    let opts = restore::Options {
        target_root: target.to_owned(),
        user: None,
        dry_run: false,
        on_conflict: restore::OnConflict::default(),
        allow_rollback: false,
        allow_any_path: false,
        generation,
        blob: None,
    };
    let report = restore::restore(&mut entries, &opts).unwrap();
    assert_eq!(report.failed().count(), 0);
    report
}

/// A restored target root, removed when dropped (outside the timing).
struct Target(PathBuf);

impl Drop for Target {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn bundle_restore(c: &mut Criterion) {
    let pass = pass();
    for set in &SETS {
        let w = world(set);
        let opts = bundle_opts(&w);
        let mut g = c.benchmark_group(set.name);
        g.throughput(Throughput::Bytes(set.total as u64));
        g.sampling_mode(SamplingMode::Flat);
        if set.total > 16 << 20 {
            g.sample_size(10);
            g.measurement_time(Duration::from_secs(10));
        }
        g.bench_function("bundle", |b| b.iter(|| run_bundle(&opts, &pass)));

        // Every iteration restores into a fresh, empty target root.
        let mut n = 0u64;
        g.bench_function("restore", |b| {
            b.iter_batched(
                || {
                    n += 1;
                    let t = w.base.join(format!("t{n}"));
                    write_accounts(&t);
                    Target(t)
                },
                |t| {
                    black_box(run_restore(&w.blob, &t.0, &pass));
                    t
                },
                BatchSize::PerIteration,
            )
        });
        let _ = fs::remove_dir_all(&w.base);
        g.finish();
    }
}

criterion_group!(benches, bundle_restore);
criterion_main!(benches);
