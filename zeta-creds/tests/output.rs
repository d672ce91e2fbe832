//! Quiet, ordered output (issue 20 item 3): `-q` and `-v` on every
//! command; notes only without `-q`; the key derivation's cost only with
//! `-v`; the "deriving the key" line only on a terminal.

mod common;

use std::process::Output;

use common::*;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `verify` of the world's blob with `flags`, a fresh passphrase file.
fn verify(w: &World, flags: &[&str]) -> Output {
    let pf = w.pass_file(PASS);
    w.cmd()
        .arg("verify")
        .args(flags)
        .arg("--blob")
        .arg(w.blob())
        .arg("--passphrase-file")
        .arg(&pf)
        .output()
        .unwrap()
}

#[test]
fn every_command_takes_quiet_and_verbose() {
    let w = World::new();
    for command in [
        &["bundle"][..],
        &["restore"],
        &["inspect"],
        &["verify"],
        &["diff"],
        &["status"],
        &["rekey"],
        &["rebundle"],
        &["manifest", "check"],
        &["completions"],
    ] {
        let out = w.cmd().args(command).arg("--help").output().unwrap();
        assert!(out.status.success(), "{command:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in ["-q, --quiet", "-v, --verbose"] {
            assert!(help.contains(flag), "{command:?} --help lacks {flag}");
        }
    }
    // Before the subcommand too, and never both.
    let out = w.cmd().args(["-q", "inspect", "--help"]).output().unwrap();
    assert!(out.status.success());
    let out = w
        .cmd()
        .args(["inspect", "-q", "-v", "x.enc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// A restore `--if-new` of a blob not restored yet says so in a note
/// (without -q), then restores; with -q a success prints nothing on stderr.
#[test]
fn quiet_success_prints_nothing_on_stderr() {
    let restore = |w: &World, flags: &[&str]| {
        let pf = w.pass_file(PASS);
        let out = w
            .restore()
            .args(flags)
            .args(["--if-new", "--passphrase-file"])
            .arg(&pf)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        out
    };
    let w = World::bundled();
    let out = restore(&w, &[]);
    assert!(
        stderr(&out).contains("is new (generation 1"),
        "the note, without -q: {}",
        stderr(&out)
    );
    let w = World::bundled();
    let out = restore(&w, &["-q"]);
    assert_eq!(stderr(&out), "", "-q: nothing on stderr on success");
    assert!(!out.stdout.is_empty(), "-q keeps the result on stdout");
    let out = verify(&w, &["--quiet"]);
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
    // Errors are never quiet.
    let out = w
        .cmd()
        .args(["inspect", "-q", "/nonexistent.enc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("error: blob /nonexistent.enc not found"));
}

/// "key derivation took N ms" is detail: -v only, once per try.
#[test]
fn verbose_says_what_the_key_derivation_cost() {
    let w = World::bundled();
    let out = verify(&w, &["-v"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("key derivation took ").count(),
        1,
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(" ms and 1 MiB of memory here (work factor 10)"));
    let out = verify(&w, &[]);
    assert!(out.status.success());
    assert!(!stderr(&out).contains("key derivation"), "{}", stderr(&out));
}

/// The "deriving the key" line is for a person at a terminal: never in a
/// pipe (or the journal), and shown on a pseudo-terminal (`script`).
#[test]
fn deriving_the_key_is_said_on_a_terminal_only() {
    let w = World::bundled();
    let out = verify(&w, &[]);
    assert!(
        !stderr(&out).contains("deriving the key"),
        "{}",
        stderr(&out)
    );
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("util-linux `script` is needed to run zeta-creds on a terminal");
    }
    let pf = w.pass_file(PASS);
    let line = format!(
        "'{}' verify --blob '{}' --passphrase-file '{}'",
        env!("CARGO_BIN_EXE_zeta-creds"),
        w.blob().display(),
        pf.display()
    );
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_remove("JOURNAL_STREAM")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("ZETA_CREDS_PASSPHRASE")
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{seen}");
    assert!(
        seen.contains("zeta-creds: deriving the key (work factor 10, ~")
            && seen.contains(" s here, 1 MiB)..."),
        "{seen}"
    );
    assert_eq!(seen.matches("deriving the key").count(), 1, "{seen}");
    // -q: not even on a terminal.
    let pf = w.pass_file(PASS);
    let line = format!(
        "'{}' verify -q --blob '{}' --passphrase-file '{}'",
        env!("CARGO_BIN_EXE_zeta-creds"),
        w.blob().display(),
        pf.display()
    );
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{seen}");
    assert!(!seen.contains("deriving the key"), "{seen}");
}

/// Run `zeta-creds ARGS` on a pseudo-terminal (`script`); what the
/// terminal showed.
fn on_a_terminal(args: &[&str]) -> String {
    let line = std::iter::once(env!("CARGO_BIN_EXE_zeta-creds"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_remove("JOURNAL_STREAM")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("ZETA_CREDS_PASSPHRASE")
        .env("ZETA_CREDS_TEST_PROGRESS_AFTER_MS", "0")
        .output()
        .expect("util-linux `script` runs zeta-creds on a terminal");
    let seen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{seen}");
    seen
}

/// A bundle and a restore show a progress line on a terminal once they
/// have taken a second (here, in a debug build, from the start:
/// `ZETA_CREDS_TEST_PROGRESS_AFTER_MS`), erased when done; never when
/// stderr is a pipe (as in the journal).
#[test]
fn progress_on_a_terminal_for_work_over_a_second() {
    let w = World::new();
    std::fs::create_dir_all(w.src().join("srv")).unwrap();
    std::fs::write(w.src().join("srv/big.bin"), vec![0u8; 3 << 20]).unwrap();
    let manifest = w.path("big.toml");
    std::fs::write(
        &manifest,
        "version = 1\nuser = \"zeta\"\n\n[[entry]]\npath = \"/srv/big.bin\"\nmax_size = \"64MiB\"\n",
    )
    .unwrap();
    let (m, src, blob, dst) = (
        manifest.display().to_string(),
        w.src().display().to_string(),
        w.blob().display().to_string(),
        w.dst().display().to_string(),
    );
    let bundle = |pf: &str| {
        [
            "bundle",
            "--manifest",
            &m,
            "--source-root",
            &src,
            "--out",
            &blob,
            "--usb-uuid",
            UUID,
            "--work-factor",
            "10",
            "--force",
            "--passphrase-file",
            pf,
        ]
        .map(str::to_owned)
    };
    let pf = w.pass_file(PASS).display().to_string();
    let seen = on_a_terminal(&bundle(&pf).each_ref().map(String::as_str));
    assert!(seen.contains("\rzeta-creds: sealing "), "{seen:?}");
    assert!(seen.contains(" of 6.0 MiB ("), "read twice: {seen:?}");
    assert!(seen.contains("\r\x1b[K"), "erased when done: {seen:?}");
    let pf = w.pass_file(PASS).display().to_string();
    let restore = [
        "restore",
        "--blob",
        &blob,
        "--target-root",
        &dst,
        "--usb-uuid",
        UUID,
        "--passphrase-file",
        &pf,
    ];
    let seen = on_a_terminal(&restore);
    assert!(seen.contains("\rzeta-creds: restoring "), "{seen:?}");
    assert!(seen.contains("\r\x1b[K"), "{seen:?}");
    // In a pipe: no progress, no carriage return.
    let pf = w.pass_file(PASS).display().to_string();
    let out = w
        .cmd()
        .env("ZETA_CREDS_TEST_PROGRESS_AFTER_MS", "0")
        .args(bundle(&pf).each_ref().map(String::as_str))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains('\r'), "{}", stderr(&out));
    let pf = w.pass_file(PASS).display().to_string();
    let out = w
        .cmd()
        .env("ZETA_CREDS_TEST_PROGRESS_AFTER_MS", "0")
        .args(restore.map(|a| if a == restore[8] { pf.as_str() } else { a }))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains('\r'), "{}", stderr(&out));
}

/// The installer step's progress lines are notes too: `zeta-creds -q
/// install-step` prints none, where the plain run says why it skipped.
#[test]
fn quiet_install_step_prints_no_progress() {
    let w = World::new();
    let (target, esp) = (w.path("target"), w.path("esp"));
    std::fs::create_dir_all(&target).unwrap();
    std::fs::create_dir_all(&esp).unwrap();
    let run = |flags: &[&str]| {
        w.cmd()
            .args(flags)
            .arg("install-step")
            .arg("--target")
            .arg(&target)
            .arg("--esp")
            .arg(&esp)
            .env("ZETA_CREDS_PICKER", "0")
            .output()
            .unwrap()
    };
    let plain = run(&[]);
    assert!(plain.status.success(), "{plain:?}");
    assert!(
        stderr(&plain).contains("skipped: ZETA_CREDS_PICKER=0"),
        "{}",
        stderr(&plain)
    );
    let quiet = run(&["-q"]);
    assert!(quiet.status.success(), "{quiet:?}");
    assert_eq!(stderr(&quiet), "");
}

/// An unknown `--user` (issue 20 item 4) is said once, not once per home
/// entry: one error line naming the user, the target's normal users and
/// what to do, with the entries it held; exit 7.
#[test]
fn root_an_unknown_restore_user_is_reported_once_with_the_users() {
    assert!(is_root(), "needs root: a restore that writes");
    let w = World::bundled();
    let pf = w.pass_file(PASS);
    let out = w
        .restore()
        .args(["--user", "ghost", "--passphrase-file"])
        .arg(&pf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("\"ghost\"")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("entries not written: user \"ghost\" is not in")
            && lines[0].contains("(its normal users: zeta)")
            && lines[0].contains("pass --user NAME")
            && lines[0].contains("~/.config/gh/hosts.yml"),
        "{err}"
    );
}

/// Ctrl-C at the passphrase prompt (a SIGINT while echo is off) leaves the
/// operator's terminal with echo on: the signal thread puts back what the
/// prompt changed. On a pseudo-terminal (`script`, its stdin held open so
/// the prompt waits): echo is off while it asks, on again after exit 130.
#[test]
fn an_interrupted_prompt_leaves_the_terminal_echoing() {
    use std::io::Read;
    let w = World::bundled();
    let line = format!(
        "'{bin}' verify --blob '{blob}' </dev/tty >/dev/null 2>&1 & pid=$!; \
         sleep 2; echo \"during: $(stty -a </dev/tty | tr ' ' '\\n' | grep -x -- '-\\?echo')\"; \
         kill -INT $pid; wait $pid; echo \"rc=$?\"; \
         echo \"after: $(stty -a </dev/tty | tr ' ' '\\n' | grep -x -- '-\\?echo')\"",
        bin = env!("CARGO_BIN_EXE_zeta-creds"),
        blob = w.blob().display(),
    );
    let mut child = std::process::Command::new("script")
        .args([
            "-q",
            "-e",
            "-c",
            &format!("sh -c '{}'", line.replace('\'', "'\\''")),
            "/dev/null",
        ])
        .env_remove("JOURNAL_STREAM")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("ZETA_CREDS_PASSPHRASE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs zeta-creds on a terminal");
    // Held open (never written): the prompt waits instead of reading EOF.
    let _stdin = child.stdin.take();
    let mut seen = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut seen)
        .unwrap();
    child.wait().unwrap();
    let seen = seen.replace('\r', "");
    assert!(seen.contains("during: -echo"), "{seen}");
    assert!(seen.contains("rc=130"), "{seen}");
    assert!(seen.contains("after: echo"), "{seen}");
}
