//! The restore's safety (issue 19 #1, #2, #3, #11, #15): nothing a failed
//! run did not write is forgotten; a local user racing a root restore in
//! the directories the user owns can only make an entry fail; a valid blob
//! writes only what the host's manifest allows, never a set-id bit, never
//! two entries to one place; a restore that cannot work says why before it
//! writes anything.
//!
//! The races are made deterministic with the debug-only test faults
//! (`src/msg.rs`): the restore pauses at a named point until the test has
//! changed the tree and created the resume file.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use zeta_creds::envelope::{Anchor, EntryKind, EntryMeta, Header, HeaderFields, UsbUuid};

const USER: &str = "zeta";
/// Long enough for a restore at work factor 10; a hang becomes a failure.
const TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Running a restore that pauses
// ---------------------------------------------------------------------------

/// Restore the world's blob (with `extra` arguments), pausing at the test
/// fault `point`; `change` runs while it is paused. The run must finish
/// within [`TIMEOUT`] of being resumed: a restore that blocks (on a FIFO)
/// is killed and the test fails.
fn restore_pausing_at(w: &World, point: &str, extra: &[&str], change: impl FnOnce()) -> Output {
    let resume = w.path("resume");
    let _ = fs::remove_file(&resume);
    let mut cmd = w.restore_process(UUID);
    cmd.args(extra)
        .env("ZETA_CREDS_TEST_FAULT", point)
        .env("ZETA_CREDS_TEST_RESUME", &resume)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let marker = format!("zeta-creds: test fault: {point}");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).unwrap();
        seen.push_str(&line);
        if line.contains(&marker) {
            break;
        }
        if n == 0 {
            let _ = child.kill();
            panic!("the restore never paused at {point}:\n{seen}");
        }
    }
    change();
    fs::write(&resume, b"").unwrap();
    // Read the rest of stderr on a thread, so that a blocked restore can
    // be noticed and killed.
    let reader = std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        rest
    });
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("the restore blocked after {point} and was killed after {TIMEOUT:?}:\n{seen}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = child.wait_with_output().unwrap();
    seen.push_str(&reader.join().unwrap());
    out.stderr = seen.into_bytes();
    out
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stderr ---\n{}--- stdout ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

/// A restore of the world's blob with a passphrase file and `extra`
/// arguments.
fn restore(w: &World, extra: &[&str]) -> Output {
    let pf = w.pass_file(PASS);
    w.restore()
        .args(extra)
        .arg("--passphrase-file")
        .arg(&pf)
        .timeout(TIMEOUT)
        .output()
        .unwrap()
}

/// Some stderr line holds every needle.
fn said(out: &Output, needles: &[&str]) -> bool {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .any(|l| needles.iter().all(|n| l.contains(n)))
}

/// The temporary files in `dir` (not below it).
fn temps_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".zeta-creds-tmp.")
        })
        .collect();
    v.sort();
    v
}

fn state_record(w: &World) -> serde_json::Value {
    serde_json::from_slice(&fs::read(w.dst().join("var/lib/zeta-creds/state.json")).unwrap())
        .unwrap()
}

const HOSTS: &str = "home/zeta/.config/gh/hosts.yml";
const HOSTS_BYTES: &[u8] = b"github.com:\n  oauth_token: gho_FAKE\n";

// ---------------------------------------------------------------------------
// #1: a failed restore forgets nothing
// ---------------------------------------------------------------------------

/// Issue 19 #1: a restore that exits 7 (the user is missing, so every home
/// entry fails) rewrote the state record without those entries; the next
/// restore then took the operator's rotated hosts.yml for a first restore
/// and overwrote it with the blob's stale copy. The record must keep every
/// entry the failed run did not write, and a run that fails before its
/// commit must leave the record as it was.
#[test]
fn a_failed_restore_keeps_the_record_of_every_entry_it_did_not_write() {
    let w = World::bundled();
    let first = restore(&w, &[]);
    assert!(first.status.success(), "{}", describe(&first));
    let key = format!("/{HOSTS}");
    assert!(state_record(&w)["files"].get(&key).is_some());

    // The operator rotates the login.
    let rotated = b"github.com:\n  oauth_token: gho_ROTATED\n";
    fs::write(w.dst().join(HOSTS), rotated).unwrap();

    // A run whose home entries all fail (no such user): exit 7, committed.
    let failed = restore(&w, &["--user", "nosuchuser"]);
    assert_eq!(failed.status.code(), Some(7), "{}", describe(&failed));
    assert!(
        state_record(&w)["files"].get(&key).is_some(),
        "the failed run dropped the record of {key}: {}",
        state_record(&w)
    );

    // A run that fails before its commit (the payload's last byte flipped)
    // leaves the record byte for byte.
    let record = fs::read(w.dst().join("var/lib/zeta-creds/state.json")).unwrap();
    let mut blob = fs::read(w.blob()).unwrap();
    *blob.last_mut().unwrap() ^= 1;
    let broken = w.path("esp/broken.enc");
    fs::write(&broken, &blob).unwrap();
    let pf = w.pass_file(PASS);
    let out = w
        .restore_blob(&broken)
        .args(["--usb-uuid", UUID, "--passphrase-file"])
        .arg(&pf)
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    assert_eq!(
        fs::read(w.dst().join("var/lib/zeta-creds/state.json")).unwrap(),
        record
    );

    // The next good restore still sees the local change and keeps it.
    let again = restore(&w, &[]);
    assert_eq!(
        fs::read(w.dst().join(HOSTS)).unwrap(),
        rotated,
        "{}",
        describe(&again)
    );
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("kept"),
        "{}",
        describe(&again)
    );
}

// ---------------------------------------------------------------------------
// #2: staged files are touched only through a checked descriptor
// ---------------------------------------------------------------------------

/// Issue 19 #2: between staging and commit, the local user (who owns
/// ~/.config/gh) replaces the staged hosts.yml by a hard link to a
/// root-owned file of the target. The commit chowned it by name, giving
/// the user `etc/shadow` where `fs.protected_hardlinks=0`. Now that entry
/// fails by name (exit 7), the linked file keeps its owner, mode and
/// bytes, and the rest commits.
#[test]
fn root_a_staged_file_swapped_for_a_hard_link_is_refused_and_the_linked_file_untouched() {
    require_root("the linked file is root's and the home the user's");
    let w = World::bundled();
    let shadow = w.dst().join("etc/shadow");
    fs::write(&shadow, b"root:SECRET:19000::::::\n").unwrap();
    fs::set_permissions(&shadow, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let gh = w.dst().join("home/zeta/.config/gh");
    let out = restore_pausing_at(&w, "pause-after-staging", &[], || {
        let temps = temps_in(&gh);
        assert_eq!(temps.len(), 1, "hosts.yml is staged in {}", gh.display());
        fs::remove_file(&temps[0]).unwrap();
        fs::hard_link(&shadow, &temps[0]).unwrap();
    });
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    assert!(
        said(&out, &["~/.config/gh/hosts.yml", "replaced"]),
        "the entry and why are not named: {}",
        describe(&out)
    );
    let st = fs::symlink_metadata(&shadow).unwrap();
    assert_eq!((st.uid(), st.gid(), st.mode() & 0o7777), (0, 0, 0o600));
    assert_eq!(fs::read(&shadow).unwrap(), b"root:SECRET:19000::::::\n");
    assert!(!w.dst().join(HOSTS).exists(), "{}", describe(&out));
    assert_eq!(temp_files_under(&w.dst()), Vec::<std::path::PathBuf>::new());
    // The rest was committed.
    assert!(w.dst().join("home/zeta/.codex/auth.json").is_file());
    assert!(w.dst().join("etc/ssh/ssh_host_ed25519_key").is_file());
}

/// Issue 19 #2: a FIFO in place of the staged file made root block in the
/// commit's open, with SIGTERM deferred by the commit section: host keys
/// unplaced, no state saved, only SIGKILL ended it. Now the open never
/// blocks, the entry fails by name and the rest commits.
#[test]
fn a_staged_file_swapped_for_a_fifo_fails_its_entry_without_blocking() {
    let w = World::bundled();
    let gh = w.dst().join("home/zeta/.config/gh");
    let out = restore_pausing_at(&w, "pause-after-staging", &[], || {
        let temps = temps_in(&gh);
        assert_eq!(temps.len(), 1, "hosts.yml is staged in {}", gh.display());
        fs::remove_file(&temps[0]).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &temps[0],
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    });
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    assert!(
        said(&out, &["~/.config/gh/hosts.yml", "fifo"]),
        "the entry and why are not named: {}",
        describe(&out)
    );
    assert!(!w.dst().join(HOSTS).exists());
    assert!(w.dst().join("etc/ssh/ssh_host_ed25519_key").is_file());
    assert!(w.dst().join("var/lib/zeta-creds/state.json").is_file());
}

/// Issue 19 #2, the destination side: `--on-conflict backup` keeps the
/// file the plan looked at as NAME.zeta-creds-bak, by a link made from a
/// checked descriptor. A destination swapped between staging and commit
/// fails the entry: no backup of something else, nothing replaced.
#[test]
fn a_backup_keeps_only_the_file_the_plan_looked_at() {
    let w = World::bundled();
    let first = restore(&w, &[]);
    assert!(first.status.success(), "{}", describe(&first));
    let hosts = w.dst().join(HOSTS);
    fs::write(&hosts, b"edited locally\n").unwrap();
    let out = restore_pausing_at(
        &w,
        "pause-after-staging",
        &["--on-conflict", "backup"],
        || {
            fs::rename(&hosts, w.dst().join("home/zeta/.config/gh/hosts.yml.moved")).unwrap();
            fs::write(&hosts, b"swapped in\n").unwrap();
        },
    );
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    assert!(
        said(&out, &["~/.config/gh/hosts.yml", "replaced"]),
        "{}",
        describe(&out)
    );
    assert_eq!(fs::read(&hosts).unwrap(), b"swapped in\n");
    assert!(
        !w.dst()
            .join("home/zeta/.config/gh/hosts.yml.zeta-creds-bak")
            .exists()
    );
}

// ---------------------------------------------------------------------------
// #3: a file/directory swap while staging is one entry's problem
// ---------------------------------------------------------------------------

/// The standard world, its manifest entry for `first` moved to the front
/// (so that the restore's first look at an existing destination is at
/// it), bundled and restored once.
fn restored_world_starting_with(first: &str) -> World {
    let w = World::new();
    w.populate();
    let block = format!("[[entry]]\npath = \"{first}\"\n\n");
    let manifest = fs::read_to_string(w.manifest()).unwrap();
    assert!(manifest.contains(&block), "{manifest}");
    let rest = manifest.replacen(&block, "", 1);
    let (head, entries) = rest.split_once("[[entry]]").unwrap();
    fs::write(w.manifest(), format!("{head}{block}[[entry]]{entries}")).unwrap();
    w.bundle_ok();
    let out = restore(&w, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    w
}

/// Issue 19 #3: flipping a destination from a file to a directory between
/// the restore's look at it and its open made a `?` roll back every entry
/// with exit 1. Now it refuses that entry (exit 7) and the rest commits.
#[test]
fn a_file_swapped_for_a_directory_while_staging_refuses_that_entry_only() {
    let w = restored_world_starting_with("~/.codex/auth.json");
    let auth = w.dst().join("home/zeta/.codex/auth.json");
    let out = restore_pausing_at(&w, "pause-after-observe", &[], || {
        fs::rename(&auth, w.dst().join("home/zeta/.codex/auth.json.moved")).unwrap();
        fs::create_dir(&auth).unwrap();
    });
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    assert!(
        said(&out, &["~/.codex/auth.json", "replaced"]),
        "{}",
        describe(&out)
    );
    assert!(auth.is_dir(), "the swapped-in directory is left alone");
    assert_eq!(fs::read(w.dst().join(HOSTS)).unwrap(), HOSTS_BYTES);
}

/// The same the other way round: a directory entry (the blob's first,
/// ~/.config/gh) whose directory becomes a file before staging opens it
/// to fix its mode. Its entries fail; the root entries commit.
#[test]
fn a_directory_swapped_for_a_file_while_staging_refuses_its_entries_only() {
    // ~/.config/gh is the standard manifest's first entry already.
    let w = World::bundled();
    let first = restore(&w, &[]);
    assert!(first.status.success(), "{}", describe(&first));
    let gh = w.dst().join("home/zeta/.config/gh");
    // A mode to fix, so that staging opens the directory.
    fs::set_permissions(&gh, std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
    let out = restore_pausing_at(&w, "pause-after-observe", &[], || {
        fs::rename(&gh, w.dst().join("home/zeta/.config/gh.moved")).unwrap();
        fs::write(&gh, b"now a file\n").unwrap();
    });
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    assert!(
        said(&out, &["~/.config/gh ", "directory"]),
        "{}",
        describe(&out)
    );
    assert_eq!(fs::read(&gh).unwrap(), b"now a file\n");
    assert!(w.dst().join("etc/ssh/ssh_host_ed25519_key").is_file());
}

// ---------------------------------------------------------------------------
// #11: what a valid blob may write
// ---------------------------------------------------------------------------

/// One entry of a hand-made blob.
fn entry(
    anchor: Anchor,
    kind: EntryKind,
    path: &str,
    mode: u32,
    body: &[u8],
) -> (EntryMeta, Vec<u8>) {
    let (owner, group) = match anchor {
        Anchor::Home => (USER, USER),
        Anchor::Root => ("root", "root"),
    };
    let (size, sha256) = match kind {
        EntryKind::File => (body.len() as u64, Sha256::digest(body).into()),
        EntryKind::Dir => (0, [0; 32]),
    };
    (
        EntryMeta {
            anchor,
            kind,
            path: path.into(),
            mode,
            owner: owner.into(),
            group: group.into(),
            mtime: 1_700_000_000,
            size,
            sha256,
        },
        body.to_vec(),
    )
}

fn file(anchor: Anchor, path: &str, mode: u32, body: &[u8]) -> (EntryMeta, Vec<u8>) {
    entry(anchor, EntryKind::File, path, mode, body)
}

/// Seal `entries` into the world's blob, as bundle would (valid, bound to
/// the world's stick and host, work factor 10).
fn seal(w: &World, entries: &[(EntryMeta, Vec<u8>)]) {
    let plain =
        common::entry_stream::valid_stream(USER, entries.iter().map(|(m, b)| (m.clone(), &b[..])));
    let fields = HeaderFields {
        usb_uuid: UsbUuid::parse("abcd-1234").unwrap(),
        log_n: 10,
        generation: 1,
        created: 1_700_000_000,
        tool_version: "0.1.0".into(),
        persona: String::new(),
        host: Some(zeta_creds::envelope::Host::parse(HOST).unwrap()),
    };
    let mut out = Header::seal(Vec::new(), &SecretString::from(PASS), &fields).unwrap();
    out.write_all(&plain).unwrap();
    fs::write(w.blob(), out.finish().unwrap()).unwrap();
}

/// Issue 19 #11: a valid blob (an old passphrase, a leaked file key) could
/// write any path under the target root, `etc/passwd` included. With the
/// host's manifest installed (as NixOS does: a symlink into /etc/static,
/// resolved inside the target root) only what it carries is written; the
/// rest is refused by name; `--allow-any-path` overrides.
#[test]
fn root_the_host_manifest_limits_what_a_valid_blob_may_write() {
    require_root("root entries are written owned by root");
    let w = World::new();
    let passwd = fs::read(w.dst().join("etc/passwd")).unwrap();
    let real = w.dst().join("etc/static/zeta/creds-manifest.toml");
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::write(
        &real,
        "version = 1\nuser = \"zeta\"\n\n[[entry]]\npath = \"~/.config/gh\"\n\n[[entry]]\npath = \"/etc/ssh/ssh_host_*_key\"\n",
    )
    .unwrap();
    fs::create_dir_all(w.dst().join("etc/zeta")).unwrap();
    symlink(
        "/etc/static/zeta/creds-manifest.toml",
        w.dst().join("etc/zeta/creds-manifest.toml"),
    )
    .unwrap();
    seal(
        &w,
        &[
            file(Anchor::Home, ".config/gh/hosts.yml", 0o600, HOSTS_BYTES),
            file(
                Anchor::Root,
                "etc/passwd",
                0o644,
                b"root::0:0::/root:/bin/sh\n",
            ),
            file(
                Anchor::Root,
                "etc/ssh/ssh_host_ed25519_key",
                0o600,
                b"KEY\n",
            ),
        ],
    );
    let out = restore(&w, &[]);
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    assert!(
        said(&out, &["/etc/passwd", "manifest", "--allow-any-path"]),
        "{}",
        describe(&out)
    );
    assert_eq!(fs::read(w.dst().join("etc/passwd")).unwrap(), passwd);
    assert_eq!(fs::read(w.dst().join(HOSTS)).unwrap(), HOSTS_BYTES);
    assert_eq!(
        fs::read(w.dst().join("etc/ssh/ssh_host_ed25519_key")).unwrap(),
        b"KEY\n"
    );

    let out = restore(&w, &["--allow-any-path"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        fs::read(w.dst().join("etc/passwd")).unwrap(),
        b"root::0:0::/root:/bin/sh\n"
    );
}

/// With no manifest installed, paths are not restricted, and the run says
/// so (the NixOS module installs one only when `zeta.credsRestore.manifest`
/// is set).
#[test]
fn without_a_host_manifest_the_restore_says_paths_are_not_restricted() {
    let w = World::bundled();
    let out = restore(&w, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        said(
            &out,
            &["no manifest is installed", "etc/zeta/creds-manifest.toml"]
        ),
        "{}",
        describe(&out)
    );
    let out = restore(&w, &["--allow-any-path"]);
    assert!(
        !said(&out, &["no manifest is installed"]),
        "{}",
        describe(&out)
    );
}

/// A host manifest that is there but unusable stops the restore before it
/// writes anything (exit 6), rather than letting every path through.
#[test]
fn an_invalid_host_manifest_stops_the_restore_before_anything_is_written() {
    let w = World::bundled();
    fs::create_dir_all(w.dst().join("etc/zeta")).unwrap();
    fs::write(
        w.dst().join("etc/zeta/creds-manifest.toml"),
        "version = 1\n[[entry]\n",
    )
    .unwrap();
    let before = snapshot(&w.dst());
    let out = restore(&w, &[]);
    assert_eq!(out.status.code(), Some(6), "{}", describe(&out));
    assert!(
        said(&out, &["creds-manifest.toml", "--allow-any-path"]),
        "{}",
        describe(&out)
    );
    assert_eq!(snapshot(&w.dst()), before);
}

/// Issue 19 #11: a setuid-root file is refused, by name; the rest is
/// written.
#[test]
fn set_id_bits_are_refused_per_entry() {
    let w = World::new();
    seal(
        &w,
        &[
            file(Anchor::Home, ".config/gh/hosts.yml", 0o600, HOSTS_BYTES),
            file(Anchor::Home, "bin/setuid", 0o4755, b"#!/bin/sh\n"),
            file(Anchor::Home, "bin/setgid", 0o2755, b"#!/bin/sh\n"),
        ],
    );
    let out = restore(&w, &[]);
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    for name in ["~/bin/setuid", "~/bin/setgid"] {
        assert!(
            said(&out, &[name, "setuid or setgid"]),
            "{}",
            describe(&out)
        );
        assert!(!w.dst().join("home/zeta").join(&name[2..]).exists());
    }
    assert_eq!(fs::read(w.dst().join(HOSTS)).unwrap(), HOSTS_BYTES);
}

/// Issue 19 #11: two entries resolving to one destination (a home entry
/// and a root entry into the home; a file and an entry below it) are
/// refused as a whole before anything is written (exit 5).
#[test]
fn two_entries_for_one_destination_are_refused_before_anything_is_written() {
    for entries in [
        vec![
            file(Anchor::Home, ".x", 0o600, b"home\n"),
            file(Anchor::Root, "home/zeta/.x", 0o600, b"root\n"),
        ],
        vec![
            file(Anchor::Root, "etc/q", 0o600, b"file\n"),
            file(Anchor::Root, "etc/q/r", 0o600, b"below\n"),
        ],
    ] {
        let w = World::new();
        seal(&w, &entries);
        let before = snapshot(&w.dst());
        let out = restore(&w, &[]);
        assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
        assert!(said(&out, &["both resolve to"]), "{}", describe(&out));
        assert_eq!(snapshot(&w.dst()), before, "{}", describe(&out));
    }
}

// ---------------------------------------------------------------------------
// #15: operator mistakes
// ---------------------------------------------------------------------------

/// Issue 19 #15: as a normal user every entry failed one by one, and
/// directories and a state record were left owned by that user. Now the
/// restore says "run as root" before it reads anything, and writes
/// nothing.
#[test]
fn root_a_restore_not_run_as_root_says_so_and_writes_nothing() {
    require_root("the test drops to another uid with setpriv");
    let w = World::bundled();
    // Let the unprivileged run reach everything, as an operator's would.
    for p in [w.dir.path().to_path_buf(), w.path("esp"), w.blob(), w.dst()] {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let pf = w.pass_file(PASS);
    fs::set_permissions(&pf, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let before = snapshot(&w.dst());
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_zeta-creds"))
        .arg("restore")
        .arg("--blob")
        .arg(w.blob())
        .arg("--target-root")
        .arg(w.dst())
        .args(["--usb-uuid", UUID, "--passphrase-file"])
        .arg(&pf)
        .env_remove("ZETA_CREDS_PASSPHRASE")
        .env_remove("CREDENTIALS_DIRECTORY")
        .current_dir(w.dir.path())
        .output()
        .expect("setpriv (util-linux) runs");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(said(&out, &["run as root"]), "{}", describe(&out));
    let errors = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("error"))
        .count();
    assert_eq!(
        errors,
        1,
        "one error line, not one per entry: {}",
        describe(&out)
    );
    assert_eq!(snapshot(&w.dst()), before);
    assert!(
        pf.exists(),
        "the passphrase file was not read, so not consumed"
    );
}

/// Issue 19 #15: a target root with no etc/passwd (not mounted) exits 6
/// (an input missing) saying so, not 7 (some entries written).
#[test]
fn a_target_root_without_accounts_exits_6_asking_whether_it_is_mounted() {
    let w = World::bundled();
    fs::remove_file(w.dst().join("etc/passwd")).unwrap();
    let before = snapshot(&w.dst());
    let out = restore(&w, &[]);
    assert_eq!(out.status.code(), Some(6), "{}", describe(&out));
    assert!(
        said(&out, &["etc/passwd", "is it mounted?"]),
        "{}",
        describe(&out)
    );
    assert_eq!(snapshot(&w.dst()), before);
}
