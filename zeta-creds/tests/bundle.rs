//! The picker and the passphrase rules of `bundle` (issue 6): the summary
//! table, sockets/fifos/symlinks refused with a warning, BLOB.prev and
//! --no-backup, an unreadable blob needing --force, the room check, weak
//! passphrases, the test work-factor warning; and shell completions.

mod common;

use std::fs;
use std::process::Command;

use common::*;
use predicates::prelude::*;

fn out_str(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The summary table names each entry with its files and bytes, the
/// missing optional one, and every skipped path with its reason; a socket,
/// a fifo and a symlink are warned about and not carried.
#[test]
fn summary_table_and_special_files_are_reported() {
    let w = World::new();
    w.populate();
    let gh = w.src().join("home/zeta/.config/gh");
    std::os::unix::fs::symlink("/etc/shadow", gh.join("escape")).unwrap();
    let status = Command::new("mkfifo")
        .arg(gh.join("pipe"))
        .status()
        .unwrap();
    assert!(status.success());
    let _sock = std::os::unix::net::UnixListener::bind(gh.join("agent.sock")).unwrap();
    let out = w.bundle_with(PASS, &[]);
    let (so, se) = (out_str(&out.stdout), out_str(&out.stderr));
    assert!(out.status.success(), "{se}");
    let table: Vec<&str> = so.lines().collect();
    let row = |entry: &str| -> Vec<String> {
        table
            .iter()
            .find(|l| l.starts_with(&format!("{entry} ")))
            .unwrap_or_else(|| panic!("no row for {entry}:\n{so}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        table[0].split_whitespace().collect::<Vec<_>>(),
        ["entry", "files", "bytes", "skipped"]
    );
    // hosts.yml (36) + state.json (7) + empty (0); three specials skipped.
    assert_eq!(row("~/.config/gh"), ["~/.config/gh", "3", "43", "3"]);
    assert_eq!(
        row("~/.codex/auth.json"),
        ["~/.codex/auth.json", "1", "1048576", "0"]
    );
    assert_eq!(
        row("~/.claude.json"),
        ["~/.claude.json", "-", "-", "missing", "(optional)"]
    );
    assert!(
        so.contains("total: 12 entries picked, 8 files, 1048734 bytes, 3 skipped\n"),
        "{so}"
    );
    for (name, why) in [
        (
            "agent.sock",
            "a socket is not a regular file or directory; not carried",
        ),
        ("escape", "a symlink; not followed and not carried"),
        (
            "pipe",
            "a fifo is not a regular file or directory; not carried",
        ),
    ] {
        let line = format!("skipped ~/.config/gh/{name}: {why}");
        assert!(so.contains(&format!("  {line}\n")), "{line} in\n{so}");
        assert!(
            se.contains(&format!("zeta-creds: warning: {line}\n")),
            "{line} in\n{se}"
        );
    }
    assert!(
        so.contains("sealed 12 entries (8 files, 1048734 bytes)"),
        "{so}"
    );
    // Nothing of the specials is in the blob.
    let pf = w.pass_file(PASS);
    w.cmd()
        .args(["verify", "--list", "--passphrase-file"])
        .arg(&pf)
        .arg("--blob")
        .arg(w.blob())
        .assert()
        .success()
        .stdout(predicate::str::contains("agent.sock").not())
        .stdout(predicate::str::contains("escape").not())
        .stdout(predicate::str::contains("pipe").not());
}

#[test]
fn no_backup_keeps_no_prev_and_an_unreadable_blob_needs_force() {
    let w = World::new();
    w.populate();
    assert!(w.bundle_with(PASS, &[]).status.success());
    let out = w.bundle_with(PASS, &["--no-backup"]);
    assert!(out.status.success(), "{}", out_str(&out.stderr));
    assert!(!w.path("esp/zeta-creds.enc.prev").exists());
    assert!(!out_str(&out.stdout).contains("previous blob kept"));

    fs::write(w.blob(), b"not a blob at all").unwrap();
    let out = w.bundle_with(PASS, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out_str(&out.stderr).contains(&format!(
            "existing blob {} cannot be read (not a zeta-creds blob (bad magic bytes)); move it away or pass --force to replace it",
            w.blob().display()
        )),
        "{}",
        out_str(&out.stderr)
    );
    assert_eq!(fs::read(w.blob()).unwrap(), b"not a blob at all");
    let out = w.bundle_with(PASS, &["--force"]);
    assert!(out.status.success(), "{}", out_str(&out.stderr));
    // The unreadable file is what .prev keeps; the new blob goes on from
    // the state record the two bundles before raised (generation 2), not
    // from the unreadable file.
    assert_eq!(
        fs::read(w.path("esp/zeta-creds.enc.prev")).unwrap(),
        b"not a blob at all"
    );
    assert!(out_str(&out.stdout).contains("(generation 3,"));
}

/// A weak passphrase is refused (exit 1, nothing written) with the fix;
/// --allow-weak-passphrase accepts it with a warning. Neither message
/// holds the passphrase or its length.
#[test]
fn weak_passphrase_is_refused_unless_allowed() {
    let w = World::new();
    w.populate();
    let out = w.bundle_with("password123", &[]);
    assert_eq!(out.status.code(), Some(1));
    let se = out_str(&out.stderr);
    assert!(
        se.contains("zeta-creds: error: the new passphrase is too weak: an attacker who copies the blob could guess it offline (strength 0 of 4, at least 3 needed); choose a longer one, e.g. five or more random words, or pass --allow-weak-passphrase (for tests)"),
        "{se}"
    );
    assert!(!se.contains("password123") && !se.contains(" 11 "), "{se}");
    assert!(!w.blob().exists());
    assert!(
        fs::read_dir(w.path("esp")).unwrap().next().is_none(),
        "no temp file"
    );

    let out = w.bundle_with("password123", &["--allow-weak-passphrase"]);
    assert!(out.status.success(), "{}", out_str(&out.stderr));
    assert!(
        out_str(&out.stderr).contains(
            "using a weak passphrase (strength 0 of 4) because of --allow-weak-passphrase"
        )
    );
    // The manifest's user is a word an attacker tries first.
    let out = w.bundle_with("zetazeta", &[]);
    assert_eq!(out.status.code(), Some(1));
}

/// On a terminal the passphrase is asked twice; a weak one or a mismatch
/// is asked again while tries are left.
#[test]
fn terminal_asks_twice_and_again_after_a_weak_passphrase_or_a_mismatch() {
    assert!(
        Command::new("script").arg("--version").output().is_ok(),
        "script(1) gives the test a terminal; scripts/setup-debian.sh installs it (bsdutils)"
    );
    let w = World::new();
    w.populate();
    let bin = assert_cmd::cargo::cargo_bin("zeta-creds");
    let cmdline = format!(
        "{} bundle --manifest {} --source-root {} --out {} --usb-uuid {UUID} --work-factor 10",
        bin.display(),
        w.manifest().display(),
        w.src().display(),
        w.blob().display()
    );
    let input = format!("hunter2\nhunter2\n{PASS}\nsomething else\n{PASS}\n{PASS}\n");
    let out = Command::new("timeout")
        .args(["60", "script", "-qfec", &cmdline, "/dev/null"])
        .env_remove("ZETA_CREDS_PASSPHRASE")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let so = out_str(&out.stdout);
    assert!(out.status.success(), "{so}");
    assert_eq!(
        so.matches("New passphrase for zeta-creds blob").count(),
        3,
        "{so}"
    );
    assert_eq!(so.matches("Repeat the passphrase:").count(), 3, "{so}");
    assert!(so.contains("the new passphrase is too weak"), "{so}");
    assert!(
        so.contains("the two passphrases do not match; try again"),
        "{so}"
    );
    assert!(so.contains("sealed 12 entries"), "{so}");
    let pf = w.pass_file(PASS);
    w.cmd()
        .args(["verify", "--passphrase-file"])
        .arg(&pf)
        .arg("--blob")
        .arg(w.blob())
        .assert()
        .success();
}

#[test]
fn low_work_factor_warns_that_it_is_for_tests() {
    let w = World::new();
    w.populate();
    let out = w.bundle_with(PASS, &[]);
    assert!(out_str(&out.stderr).contains(
        "zeta-creds: warning: work factor 10 is for tests: each offline guess at the passphrase costs 256x less than at the default 18; use 15 or more for a real blob"
    ));
    let pf = w.pass_file(PASS);
    let out = w
        .cmd()
        .arg("bundle")
        .arg("--manifest")
        .arg(w.manifest())
        .arg("--source-root")
        .arg(w.src())
        .arg("--out")
        .arg(w.path("esp/wf15.enc"))
        .args([
            "--usb-uuid",
            UUID,
            "--work-factor",
            "15",
            "--passphrase-file",
        ])
        .arg(&pf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", out_str(&out.stderr));
    assert!(
        !out_str(&out.stderr).contains("work factor"),
        "{}",
        out_str(&out.stderr)
    );
}

/// A bundle that cannot fit refuses to start (exit 1, naming the sizes and
/// the fix) instead of failing half-way: the ESP is a small tmpfs in a
/// private mount namespace. Needs root (or user namespaces) and unshare.
#[test]
fn no_room_on_the_esp_refuses_before_writing() {
    let w = World::new();
    w.populate();
    let esp = w.path("small-esp");
    fs::create_dir(&esp).unwrap();
    let pf = w.pass_file(PASS);
    let bin = assert_cmd::cargo::cargo_bin("zeta-creds");
    let script = r#"mount -t tmpfs -o size=512k tmpfs "$1" || exit 77
shift
"$@"
rc=$?
ls -A "$ESP"
exit $rc"#;
    // As root a mount namespace is enough; otherwise a user namespace maps
    // us to root in it (as root, that mapping would hide the source
    // files' owners).
    let ns: &[&str] = if is_root() { &["-m"] } else { &["-m", "-r"] };
    let out = Command::new("unshare")
        .args(ns)
        .args(["--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&esp)
        .arg(&bin)
        .arg("bundle")
        .arg("--manifest")
        .arg(w.manifest())
        .arg("--source-root")
        .arg(w.src())
        .arg("--out")
        .arg(esp.join("zeta-creds.enc"))
        .args([
            "--usb-uuid",
            UUID,
            "--work-factor",
            "10",
            "--passphrase-file",
        ])
        .arg(&pf)
        .env("ESP", &esp)
        .env_remove("ZETA_CREDS_PASSPHRASE")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output();
    let out = match out {
        Ok(o) if o.status.code() != Some(77) && !out_str(&o.stderr).contains("unshare:") => o,
        other => panic!(
            "cannot mount a small tmpfs in a private mount namespace (unshare {}): {other:?}; \
             this test needs root, or unprivileged user namespaces",
            ns.join(" ")
        ),
    };
    let se = out_str(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(
        se.contains(&format!(
            "not enough room for {}: it needs about",
            esp.join("zeta-creds.enc").display()
        )) && se.contains("free some space there (old kernels on an ESP), or pass --no-backup"),
        "{se}"
    );
    // Refused before the passphrase was asked: the file, never read, is
    // not consumed.
    assert!(pf.exists());
    assert!(
        out_str(&out.stdout).trim().is_empty(),
        "nothing left on the ESP: {}",
        out_str(&out.stdout)
    );
    assert!(!se.contains("sealed"));
}

// ---- completions ----

#[test]
fn bash_completion_loads_and_completes_subcommands() {
    let w = World::new();
    let out = w.cmd().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = w.path("zeta-creds.bash");
    fs::write(&script, &out.stdout).unwrap();
    // Source it in a real bash and ask for the completions of `zeta-creds re`.
    // Source it in a real bash, find the function it registered, and ask
    // it for the completions of `zeta-creds re`.
    let probe = format!(
        "source {}; f=$(complete -p zeta-creds | sed -E 's/.* -F ([^ ]+) .*/\\1/'); COMP_WORDS=(zeta-creds re); COMP_CWORD=1; COMP_LINE='zeta-creds re'; COMP_POINT=${{#COMP_LINE}}; \"$f\" zeta-creds re zeta-creds; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    assert!(out.status.success(), "{}", out_str(&out.stderr));
    let words: Vec<String> = out_str(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(words, ["restore", "rekey", "rebundle"], "{words:?}");
}

#[test]
fn zsh_and_fish_completions_name_every_subcommand() {
    let w = World::new();
    for shell in ["zsh", "fish"] {
        let out = w.cmd().args(["completions", shell]).output().unwrap();
        assert!(out.status.success());
        let text = out_str(&out.stdout);
        for sub in [
            "bundle",
            "restore",
            "inspect",
            "verify",
            "diff",
            "rekey",
            "manifest",
            "completions",
        ] {
            assert!(text.contains(sub), "{shell}: {sub} missing");
        }
        assert!(text.contains("new-passphrase-file"), "{shell}");
    }
    w.cmd().args(["completions", "powershell"]).assert().code(2);
}

/// The generation in the header of the blob at `path` (unauthenticated,
/// as `inspect` shows it).
fn header_generation(w: &World, path: &std::path::Path) -> u64 {
    let out = w
        .cmd()
        .args(["inspect", "--json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["generation"].as_u64().unwrap()
}

/// Issue 19 #9: bundle took the next generation from the replaced blob's
/// unauthenticated header, so an ESP writer who set it to 2^64-1 ended
/// every later bundle ("cannot be read"). Only a header whose MAC this
/// passphrase verifies is continued: the same passphrase goes on from it,
/// a forged (or foreign) header is reported and not trusted.
#[test]
fn a_forged_generation_on_the_esp_neither_ends_nor_raises_bundles() {
    let w = World::new();
    w.populate();
    w.bundle_ok();
    w.bundle_ok();
    assert_eq!(
        header_generation(&w, &w.blob()),
        2,
        "the same passphrase continues the replaced blob's generation"
    );
    // Forge the generation field (FORMAT.md §2: offset 77 + uuid_len).
    let mut bytes = fs::read(w.blob()).unwrap();
    let at = 77 + "abcd-1234".len();
    bytes[at..at + 8].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
    fs::write(w.blob(), &bytes).unwrap();
    assert_eq!(header_generation(&w, &w.blob()), u64::MAX - 1);
    let out = w.bundle_with(PASS, &[]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("did not open with this passphrase, so its generation (18446744073709551614, unauthenticated) was not continued"),
        "{err}"
    );
    assert_eq!(
        header_generation(&w, &w.blob()),
        3,
        "one above the state record the genuine bundles raised: the forged number raised nothing"
    );
    // And the next bundle goes on from the new, genuine blob.
    w.bundle_ok();
    assert_eq!(header_generation(&w, &w.blob()), 4);
}
