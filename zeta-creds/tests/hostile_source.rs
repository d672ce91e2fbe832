//! What the user whose files are bundled can do to `bundle`, `diff`,
//! `manifest check` and every human-readable output (issue 19, items 4 to
//! 7): a FIFO swapped in for a picked file while the passphrase is typed,
//! names with control characters or bytes that are not UTF-8, trees too
//! deep or paths too long for a blob, a required entry that is a symlink.
//! docs/THREAT-MODEL.md names each test.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// `zeta-creds ARGS` as a plain process with a clean environment (for
/// tests that spawn it and talk to it while it runs).
fn spawnable(w: &World) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zeta-creds"));
    c.env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("ZETA_CREDS_PASSPHRASE")
        .env_remove("JOURNAL_STREAM")
        .current_dir(w.path(""));
    c
}

/// Wait for `child` at most `limit`; kill it and fail if it is still
/// running (it blocked).
fn wait_or_fail(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} still running after {limit:?}: it blocked\nstderr: {}",
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Item 4: a FIFO put in place of a picked file after the pick, while
/// bundle waits for the passphrase, neither blocks bundle (the open is
/// `O_NONBLOCK`) nor is read: the file is refused by name, by the type of
/// the open descriptor, and no blob is written.
#[test]
fn bundle_refuses_a_fifo_swapped_in_while_the_passphrase_is_read_without_blocking() {
    let w = World::new();
    w.populate();
    let mut child = spawnable(&w)
        .arg("bundle")
        .arg("--manifest")
        .arg(w.manifest())
        .arg("--source-root")
        .arg(w.src())
        .arg("--out")
        .arg(w.blob())
        .args(["--usb-uuid", UUID, "--work-factor", "10"])
        .args(["--passphrase-fd", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The summary is printed once the pick is done, before the passphrase
    // is read: that is the window.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("total:") {
        line.clear();
        assert_ne!(stdout.read_line(&mut line).unwrap(), 0, "no summary");
    }
    let hosts = w.src().join("home/zeta/.config/gh/hosts.yml");
    fs::remove_file(&hosts).unwrap();
    mkfifo(&hosts);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{PASS}").unwrap();
    drop(stdin);
    let out = wait_or_fail(child, Duration::from_secs(60), "bundle");
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(
        se.contains(
            "zeta-creds: error: cannot read ~/.config/gh/hosts.yml: it is a fifo, not a regular file\n"
        ),
        "{se}"
    );
    assert!(!w.blob().exists(), "no blob is written");
}

/// Item 4: `diff` opens a picked file the same way: a FIFO swapped in
/// after the pick is reported for that path alone ("unreadable", exit 10),
/// never waited on, and the rest of the diff is made.
#[test]
fn diff_reports_a_fifo_swapped_in_after_the_pick_per_entry_without_blocking() {
    let w = World::bundled();
    let resume = w.path("resume");
    let pf = w.pass_file(PASS);
    let mut child = spawnable(&w)
        .arg("diff")
        .arg("--blob")
        .arg(w.blob())
        .arg("--manifest")
        .arg(w.manifest())
        .arg("--source-root")
        .arg(w.src())
        .arg("--passphrase-file")
        .arg(&pf)
        .env("ZETA_CREDS_TEST_FAULT", "pause-after-pick")
        .env("ZETA_CREDS_TEST_RESUME", &resume)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("test fault: pause-after-pick") {
        line.clear();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "no pause");
    }
    let hosts = w.src().join("home/zeta/.config/gh/hosts.yml");
    fs::remove_file(&hosts).unwrap();
    mkfifo(&hosts);
    fs::write(&resume, b"").unwrap();
    let out = wait_or_fail(child, Duration::from_secs(60), "diff");
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(10), "{so}");
    assert!(
        so.starts_with(
            "unreadable  ~/.config/gh/hosts.yml  (cannot read /home/zeta/.config/gh/hosts.yml: it is a fifo, not a regular file)\n"
        ),
        "{so}"
    );
    assert!(
        so.contains(
            "0 added, 0 removed, 0 changed content, 0 changed mode or owner, 1 unreadable now; re-bundle"
        ),
        "{so}"
    );
}

/// A name with a newline, a journal priority prefix and an ANSI escape,
/// as it is on disk, and as every human-readable output shows it.
const EVIL: &str = "evil\n<0>zeta-creds: forged\u{1b}[31m";
const EVIL_SHOWN: &str = "evil\\n<0>zeta-creds: forged\\u{1b}[31m";

/// No line a hostile name can forge: every line of `s` is one the program
/// wrote (no line starts with a priority prefix, no ESC byte anywhere).
fn assert_inert(what: &str, s: &str) {
    assert!(!s.contains('\u{1b}'), "{what} carries an ESC:\n{s}");
    for l in s.lines() {
        assert!(
            !l.starts_with('<') && !l.starts_with("zeta-creds: forged"),
            "{what} has a forged line {l:?}:\n{s}"
        );
    }
}

/// Item 5: control characters and bytes that are not UTF-8 in a carried
/// or skipped file's name are escaped in bundle's summary and warnings,
/// `verify --list`, `restore`, `diff` and `status`; `--json` keeps the
/// exact name.
#[test]
fn hostile_names_are_escaped_in_every_human_output_and_exact_in_json() {
    let w = World::new();
    w.populate();
    let s = source_ids();
    let gh = "home/zeta/.config/gh";
    w.put(
        &format!("{gh}/{EVIL}"),
        b"x\n",
        0o600,
        Some((s.zeta_uid, s.zeta_gid)),
    );
    let bad = w
        .src()
        .join(gh)
        .join(OsStr::from_bytes(b"bad\xff\x1b[2J.yml"));
    fs::write(&bad, b"y").unwrap();

    let out = w.bundle_with(PASS, &[]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{se}");
    assert_inert("bundle stdout", &so);
    assert_inert("bundle stderr", &se);
    let skipped = "skipped ~/.config/gh/bad\\xff\\u{1b}[2J.yml: its name is not UTF-8";
    assert!(so.contains(&format!("  {skipped}")), "{so}");
    assert!(
        se.contains(&format!("zeta-creds: warning: {skipped}")),
        "{se}"
    );

    let verify = |json: bool| {
        let pf = w.pass_file(PASS);
        let mut c = w.cmd();
        c.args(["verify", "--list", "--passphrase-file"])
            .arg(&pf)
            .arg("--blob")
            .arg(w.blob());
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let out = verify(false);
    let so = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_inert("verify --list", &so);
    assert!(
        so.contains(&format!("  ~/.config/gh/{EVIL_SHOWN}\n")),
        "{so}"
    );
    let out = verify(true);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let exact = format!("~/.config/gh/{EVIL}");
    assert!(
        json.to_string()
            .contains(&serde_json::to_string(&exact).unwrap()),
        "the JSON keeps the exact name: {json}"
    );

    let so = w.restore_ok(&[]);
    assert_inert("restore", &so);
    assert!(
        so.contains(&format!(
            "created       /home/zeta/.config/gh/{EVIL_SHOWN}\n"
        )),
        "{so}"
    );

    // A changed file under that name, for diff and status.
    w.put(
        &format!("{gh}/{EVIL}"),
        b"changed\n",
        0o600,
        Some((s.zeta_uid, s.zeta_gid)),
    );
    let pf = w.pass_file(PASS);
    let out = w
        .cmd()
        .arg("diff")
        .arg("--blob")
        .arg(w.blob())
        .arg("--manifest")
        .arg(w.manifest())
        .arg("--source-root")
        .arg(w.src())
        .arg("--passphrase-file")
        .arg(&pf)
        .output()
        .unwrap();
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(10), "{se}");
    assert_inert("diff", &so);
    assert_inert("diff stderr", &se);
    assert!(
        so.contains(&format!(
            "content     ~/.config/gh/{EVIL_SHOWN}  (2 -> 8 bytes)\n"
        )),
        "{so}"
    );

    fs::write(
        w.dst().join(format!("home/zeta/.config/gh/{EVIL}")),
        b"edited on the target\n",
    )
    .unwrap();
    let out = w
        .cmd()
        .arg("status")
        .arg("--target-root")
        .arg(w.dst())
        .output()
        .unwrap();
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(10), "{}", text(&out.stderr));
    assert_inert("status", &so);
    assert!(
        so.contains(&format!(
            "changed    /home/zeta/.config/gh/{EVIL_SHOWN}  (size 2 -> 21 bytes"
        )),
        "{so}"
    );
}

/// Make `depth` nested directories named `name` under `top`, one `openat`
/// at a time (the whole path may be longer than `PATH_MAX`).
fn deep_tree(top: &Path, name: &str, depth: usize) {
    use rustix::fs::{Mode, OFlags, mkdirat, openat};
    let mut dir = openat(
        rustix::fs::CWD,
        top,
        OFlags::RDONLY | OFlags::DIRECTORY,
        Mode::empty(),
    )
    .unwrap();
    for _ in 0..depth {
        mkdirat(&dir, name, Mode::from_raw_mode(0o755)).unwrap();
        dir = openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
    }
}

/// Remove a tree too deep for a recursive removal on a test thread.
fn remove_deep(path: &Path) {
    let status = Command::new("rm").arg("-rf").arg(path).status().unwrap();
    assert!(status.success());
}

fn manifest_check(w: &World) -> Output {
    w.cmd()
        .args(["manifest", "check"])
        .arg(w.manifest())
        .arg("--source-root")
        .arg(w.src())
        .output()
        .unwrap()
}

/// Item 6: a path longer than a blob carries (4096 bytes below its
/// anchor, here at depth 21) is named by `manifest check` and refused by
/// bundle before the passphrase is read (the file is left unconsumed).
#[test]
fn a_path_longer_than_a_blob_carries_is_refused_before_the_passphrase() {
    let w = World::new();
    w.populate();
    let gh = w.src().join("home/zeta/.config/gh");
    deep_tree(&gh, &"n".repeat(200), 21);
    let out = manifest_check(&w);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{so}\n{se}");
    let head = format!(
        "~/.config/gh/{}",
        [&"n".repeat(200)[..], &"n".repeat(200)[..]].join("/")
    );
    assert!(
        se.contains(&format!("zeta-creds: error: {}", &head[..256])),
        "{se}"
    );
    assert!(
        se.contains(&format!(
            "(manifest {}, line 5) is longer than 4096 bytes or deeper than 512 directories, which a blob cannot carry; move it, or add an exclude for it",
            w.manifest().display()
        )),
        "{se}"
    );
    let out = w.bundle_with(PASS, &[]);
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(se.contains("which a blob cannot carry"), "{se}");
    assert!(!w.blob().exists());
    remove_deep(&gh);
}

/// Item 6: the walk is iterative: a tree 3000 levels deep is walked on a
/// 256 KiB thread stack (a recursive walk overflows it and aborts the
/// process), stops at the depth bound, and the pick is refused by name.
#[test]
fn a_deep_tree_does_not_overflow_the_stack_and_is_refused_at_the_depth_bound() {
    let w = World::new();
    w.populate();
    let gh = w.src().join("home/zeta/.config/gh");
    deep_tree(&gh, "d", 3000);
    let manifest = zeta_creds::manifest::Manifest::load(&w.manifest()).unwrap();
    let src = w.src();
    let pick = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || zeta_creds::bundle::pick(&manifest, &src, ""))
        .unwrap()
        .join()
        .unwrap()
        .unwrap();
    let too_deep: Vec<_> = pick
        .skipped
        .iter()
        .filter(|s| s.kind == zeta_creds::bundle::SkipKind::TooLong)
        .collect();
    // ~/.config/gh is 3 components deep: d at depths 4..=512 are carried,
    // the one at 513 is refused and nothing below it is walked.
    assert_eq!(too_deep.len(), 1, "{too_deep:?}");
    let deepest = pick
        .items
        .iter()
        .map(|i| i.rel.split('/').count())
        .max()
        .unwrap();
    assert_eq!(deepest, zeta_creds::pick::MAX_DEPTH);
    let err = pick.check().unwrap_err().to_string();
    assert!(err.contains("deeper than 512 directories"), "{err}");
    let out = manifest_check(&w);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    remove_deep(&gh);
}

/// Item 7: a required entry that is a symlink is not carried, so the
/// bundle fails (exit 6, named, before the passphrase is read), never
/// "sealed 0 entries" with exit 0; `manifest check` says the same.
#[test]
fn a_required_entry_that_is_a_symlink_fails_the_bundle() {
    let w = World::new();
    w.populate();
    std::os::unix::fs::symlink("/etc/shadow", w.src().join("home/zeta/.token")).unwrap();
    fs::write(
        w.manifest(),
        "version = 1\nuser = \"zeta\"\n\n[[entry]]\npath = \"~/.token\"\nrequired = true\n",
    )
    .unwrap();
    let want = format!(
        "zeta-creds: error: required path ~/.token under {} is not carried: a symlink; not followed and not carried (manifest {}, line 5); put the file itself there, or mark the entry `required = false`\n",
        w.src().display(),
        w.manifest().display()
    );
    let out = w.bundle_with(PASS, &[]);
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{se}");
    assert!(se.contains(&want), "{se}");
    assert!(!w.blob().exists());
    let out = manifest_check(&w);
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{se}");
    assert!(se.contains(&want), "{se}");
}
