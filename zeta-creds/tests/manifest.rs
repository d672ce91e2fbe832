//! Manifest v1 (issue 6): every refusal names its line and the fix; globs,
//! excludes, personas, overrides, `max_size` and missing optional versus
//! required entries against real trees, through `manifest check` and
//! `bundle`; and the default manifest end to end on a realistic fake home.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;
use predicates::prelude::*;

const HEAD: &str = "version = 1\nuser = \"zeta\"\n";

/// Write `text` as the manifest and run `manifest check` on it.
fn check(w: &World, text: &str, extra: &[&str]) -> std::process::Output {
    fs::write(w.manifest(), text).unwrap();
    w.cmd()
        .args(["manifest", "check"])
        .arg(w.manifest())
        .arg("--source-root")
        .arg(w.src())
        .args(extra)
        .output()
        .unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `verify --list` of the world's blob.
fn listing(w: &World) -> String {
    let pf = w.pass_file(PASS);
    let out = w
        .cmd()
        .args(["verify", "--list", "--blob"])
        .arg(w.blob())
        .arg("--passphrase-file")
        .arg(&pf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

// ---- every refusal names the line and the fix ----

/// Each manifest mistake, with the line it is on and the words of the fix.
/// Run through the binary, so the operator's exact message is pinned.
#[test]
fn every_manifest_error_names_its_line_and_the_fix() {
    let w = World::new();
    w.populate();
    let cases: &[(&str, &str, usize, &str)] = &[
        // (what, manifest, line, fix)
        (
            "version",
            "version = 2\nuser = \"zeta\"\n",
            1,
            "write `version = 1`",
        ),
        (
            "unknown top-level key",
            "version = 1\nuser = \"zeta\"\nusers = \"x\"\n",
            3,
            "unknown field `users`",
        ),
        (
            "unknown entry key",
            "version = 1\nuser = \"zeta\"\n\n[[entry]]\npath = \"/etc/zeta\"\nrequierd = true\n",
            6,
            "check the spelling, or remove the key",
        ),
        (
            "missing user",
            "version = 1\n[[entry]]\npath = \"/etc/zeta\"\n",
            1,
            "missing field `user`",
        ),
        (
            "relative path",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"etc/ssh/ssh_host_ed25519_key\"\n",
            4,
            "write it absolute (\"/etc/ssh/ssh_host_ed25519_key\") or in the manifest user's home",
        ),
        (
            "another user's home",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"~root/.ssh\"\n",
            4,
            "write ~/... for the manifest user",
        ),
        (
            "root directory",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"/\"\n",
            4,
            "whole root directory; name what to carry",
        ),
        (
            "whole home",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"~\"\n",
            4,
            "whole home; name what to carry inside it",
        ),
        (
            "whole home by glob",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"~/*\"\n",
            4,
            "the whole home; name what to carry inside it",
        ),
        (
            "dot-dot",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"/etc/zeta/../shadow\"\n",
            4,
            "without empty, \".\" or \"..\" components",
        ),
        (
            "bad glob",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"/etc/ssh/ssh_host_[ab_key\"\n",
            4,
            "bad glob \"ssh_host_[ab_key\"",
        ),
        (
            "recursive glob",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"/etc/**/key\"\n",
            4,
            "use `exclude` for what to leave out",
        ),
        (
            "bad exclude glob",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"~/.config/gh\"\nexclude = [\"ok\", \"{a,b\"]\n",
            5,
            "bad exclude glob \"{a,b\"",
        ),
        (
            "absolute exclude",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"~/.config/gh\"\nexclude = [\"/cache\"]\n",
            5,
            "relative to the matched directory: write \"cache\"",
        ),
        (
            "duplicate",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"/etc/zeta\"\n\n[[entry]]\npath = \"/etc/zeta/\"\n",
            7,
            "duplicates the entry at line 4; remove one of the two",
        ),
        (
            "mode as an integer",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"/etc/zeta\"\nmode = 600\n",
            5,
            "like mode = \"0600\" (a bare 600 would be decimal)",
        ),
        (
            "mode above 7777",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"/etc/zeta\"\nmode = \"17777\"\n",
            5,
            "at most \"7777\"",
        ),
        (
            "owner and uid",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"/etc/zeta\"\nowner = \"root\"\nuid = 0\n",
            6,
            "keep one: `owner` (a name resolved on the target) or `uid`",
        ),
        (
            "group and gid",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"/etc/zeta\"\ngid = 7\ngroup = \"root\"\n",
            5,
            "keep one: `group`",
        ),
        (
            "numeric owner name",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"/etc/zeta\"\nowner = \"4242\"\n",
            5,
            "write `uid = 4242`",
        ),
        (
            "bad persona",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"/etc/zeta\"\npersonas = [\"Ops\"]\n",
            5,
            "use up to 64 of a-z, 0-9, _ and -",
        ),
        (
            "bad max_size",
            "version = 1\nuser = \"zeta\"\n[[entry]]\npath = \"/etc/zeta\"\nmax_size = \"16MB\"\n",
            5,
            "units B, KiB, MiB, GiB",
        ),
        (
            "TOML syntax",
            "version = 1\nuser = \"zeta\"\n[[entry]\npath = \"/etc/zeta\"\n",
            3,
            "fix the TOML syntax",
        ),
    ];
    for (what, text, line, fix) in cases {
        let out = check(&w, text, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        let prefix = format!(
            "zeta-creds: error: manifest {}, line {line}: ",
            w.manifest().display()
        );
        assert!(
            err.starts_with(&prefix),
            "{what}: expected {prefix:?} in\n{err}"
        );
        assert!(
            err.contains(fix),
            "{what}: expected the fix {fix:?} in\n{err}"
        );
        assert!(
            stdout(&out).is_empty(),
            "{what}: nothing printed as a result"
        );
    }
}

/// Refusals that need the source root: an absolute path that is (or holds)
/// a user's home, and two entries picking the same file. Both name the
/// manifest line(s) and the fix; bundle refuses them too, before asking
/// for a passphrase.
#[test]
fn whole_home_and_overlap_are_refused_with_their_lines() {
    let w = World::new();
    w.populate();
    let out = check(
        &w,
        &format!("{HEAD}\n[[entry]]\npath = \"/etc/zeta\"\n\n[[entry]]\npath = \"/home\"\n"),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("entry /home (manifest ")
            && err.contains(", line 8) matches /home, which is or holds the whole home of user zeta (/home/zeta); name what to carry inside it"),
        "{err}"
    );

    let text = format!(
        "{HEAD}\n[[entry]]\npath = \"/etc/zeta\"\n\n[[entry]]\npath = \"/etc/zeta/operator-authorized-keys\"\nmode = \"0600\"\n"
    );
    let out = check(&w, &text, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/etc/zeta/operator-authorized-keys is picked by the entries at lines 5 and 8 of manifest")
            && stderr(&out).contains("remove one of them, or exclude it from one"),
        "{}",
        stderr(&out)
    );
    let out = w.bundle_with(PASS, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!w.blob().exists());
    // The fix the message names works: exclude it from the directory entry.
    fs::write(
        w.manifest(),
        text.replace(
            "path = \"/etc/zeta\"\n",
            "path = \"/etc/zeta\"\nexclude = [\"operator-authorized-keys\"]\n",
        ),
    )
    .unwrap();
    let out = w.bundle_with(PASS, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(listing(&w).contains("- 0600"));
}

// ---- globs, excludes, personas, max_size, missing ----

/// A tree with three host key pairs, a hidden file, a backup and a
/// symlinked directory.
fn ssh_tree(w: &World) {
    let root = Some((0, 0));
    w.mkdir("etc/ssh", 0o755, root);
    for alg in ["ecdsa", "ed25519", "rsa"] {
        w.put(
            &format!("etc/ssh/ssh_host_{alg}_key"),
            format!("PRIVATE {alg}\n").as_bytes(),
            0o640,
            root,
        );
        w.put(
            &format!("etc/ssh/ssh_host_{alg}_key.pub"),
            format!("PUBLIC {alg}\n").as_bytes(),
            0o600,
            root,
        );
    }
    w.put("etc/ssh/ssh_host_rsa_key.bak", b"old\n", 0o600, root);
    w.put("etc/ssh/.hidden_key", b"hidden\n", 0o600, root);
    w.put("etc/ssh/sshd_config", b"Port 22\n", 0o644, root);
    std::os::unix::fs::symlink("ssh", w.src().join("etc/sshlink")).unwrap();
}

#[test]
fn globs_match_per_component_skip_dot_names_and_never_follow_symlinks() {
    let w = World::new();
    w.populate();
    ssh_tree(&w);
    let text = format!(
        "{HEAD}\n[[entry]]\npath = \"/etc/ssh/ssh_host_*_key\"\nmode = \"0600\"\n\n[[entry]]\npath = \"/etc/ssh/ssh_host_*_key.pub\"\nmode = \"0644\"\n\n[[entry]]\npath = \"/etc/ssh/.*\"\n\n[[entry]]\npath = \"/etc/sshlink/*\"\n\n[[entry]]\npath = \"/e?c/ss[h]/sshd_{{config,x}}\"\n"
    );
    let out = check(&w, &text, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stdout(&out);
    assert!(
        s.contains("3 matches, 3 files, 0 directories, 42 bytes")
            && s.contains("  /etc/ssh/ssh_host_ecdsa_key\n")
            && s.contains("  /etc/ssh/ssh_host_rsa_key\n"),
        "{s}"
    );
    assert!(!s.contains("  /etc/ssh/ssh_host_rsa_key.bak"), "{s}");
    // `.*` matches the hidden file and never `.` or `..` (which would
    // carry /etc/ssh itself, or /etc).
    assert!(
        s.contains("1 match, 1 file, 0 directories, 7 bytes")
            && s.contains("  /etc/ssh/.hidden_key\n"),
        "{s}"
    );
    // `*` alone does not match the hidden file.
    assert_eq!(s.matches("/etc/ssh/.hidden_key").count(), 1, "{s}");
    // A symlinked directory in the path is reported, not followed.
    assert!(
        s.contains(
            "skipped /etc/sshlink: a parent directory is a symlink or not a directory; not followed"
        ),
        "{s}"
    );
    assert!(
        stderr(&out).contains("warning: skipped /etc/sshlink:"),
        "{}",
        stderr(&out)
    );
    assert!(s.contains("  /etc/ssh/sshd_config\n"), "{s}");

    // The bundle carries exactly those, with the overridden modes.
    fs::write(
        w.manifest(),
        text.replace("\n[[entry]]\npath = \"/etc/sshlink/*\"\n", ""),
    )
    .unwrap();
    let out = w.bundle_with(PASS, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = listing(&w);
    for alg in ["ecdsa", "ed25519", "rsa"] {
        let line = list
            .lines()
            .find(|l| l.ends_with(&format!("  /etc/ssh/ssh_host_{alg}_key")))
            .unwrap_or_else(|| panic!("{alg}: {list}"));
        assert!(line.starts_with("- 0600 "), "{line}");
        assert!(
            list.contains(&format!("/etc/ssh/ssh_host_{alg}_key.pub\n")),
            "{list}"
        );
    }
    assert!(list.contains("- 0644") && !list.contains(".bak"), "{list}");
    assert!(list.contains("is intact: 8 entries"), "{list}");
}

/// Excludes: a bare name at any depth, a pattern with a slash relative to
/// the matched directory, a glob on file names.
#[test]
fn excludes_leave_caches_logs_and_sockets_behind() {
    let w = World::new();
    w.populate();
    let z = Some((source_ids().zeta_uid, source_ids().zeta_gid));
    w.mkdir("home/zeta/.config/tool/cache/deep", 0o700, z);
    w.put(
        "home/zeta/.config/tool/cache/deep/blob",
        &[1; 100],
        0o600,
        z,
    );
    w.put(
        "home/zeta/.config/tool/sub/cache",
        b"file named cache",
        0o600,
        z,
    );
    w.put(
        "home/zeta/.config/tool/auth.json",
        b"{\"token\":1}",
        0o600,
        z,
    );
    w.put("home/zeta/.config/tool/logs/a.log", b"log", 0o600, z);
    w.put("home/zeta/.config/tool/logs/keep.txt", b"keep", 0o600, z);
    w.put(
        "home/zeta/.config/tool/sub/logs/b.log",
        b"nested log",
        0o600,
        z,
    );
    w.put("home/zeta/.config/tool/debug.log", b"x", 0o600, z);
    let text = format!(
        "{HEAD}\n[[entry]]\npath = \"~/.config/tool\"\nexclude = [\"cache\", \"logs/*.log\", \"*.sock\", \"debug.log\"]\n"
    );
    let out = check(&w, &text, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stdout(&out);
    assert!(
        s.contains("skipped ~/.config/tool/cache: excluded by the manifest (\"cache\")"),
        "{s}"
    );
    assert!(
        s.contains("skipped ~/.config/tool/sub/cache: excluded by the manifest (\"cache\")"),
        "{s}"
    );
    assert!(
        s.contains("skipped ~/.config/tool/logs/a.log: excluded by the manifest (\"logs/*.log\")"),
        "{s}"
    );
    assert!(
        s.contains("skipped ~/.config/tool/debug.log: excluded"),
        "{s}"
    );
    assert!(
        !s.contains("cache/deep"),
        "an excluded directory is skipped whole: {s}"
    );
    // "logs/*.log" has a slash: it is relative to the matched directory.
    assert!(!s.contains("sub/logs/b.log: excluded"), "{s}");
    let out = w.bundle_with(PASS, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = listing(&w);
    for kept in ["auth.json", "logs/keep.txt", "sub/logs/b.log"] {
        assert!(
            list.contains(&format!("~/.config/tool/{kept}\n")),
            "{kept}: {list}"
        );
    }
    for gone in ["cache", "a.log", "debug.log"] {
        assert!(!list.contains(gone), "{gone}: {list}");
    }
}

#[test]
fn personas_pick_their_entries_and_restore_refuses_another_persona() {
    let w = World::new();
    w.populate();
    let team = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifest/personas/team.toml");
    fs::copy(&team, w.manifest()).unwrap();
    w.put("etc/ssh/ssh_host_rsa_key", b"rsa", 0o600, Some((0, 0)));
    w.mkdir("home/zeta/.codex", 0o700, None);
    let out = w
        .cmd()
        .args(["manifest", "check"])
        .arg(w.manifest())
        .arg("--source-root")
        .arg(w.src())
        .args(["--persona", "reviewer"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stdout(&out);
    assert!(
        s.contains("~/.codex  [personas: ops]") && s.contains("not picked: only for personas ops"),
        "{s}"
    );
    assert!(s.contains("summary: 4 of 9 entries apply"), "{s}");

    let out = w.bundle_with(PASS, &["--persona", "reviewer"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = listing(&w);
    assert!(
        list.contains("~/.config/gh/hosts.yml") && list.contains("/etc/ssh/ssh_host_rsa_key\n"),
        "{list}"
    );
    assert!(
        !list.contains(".codex"),
        "reviewer carries no codex login: {list}"
    );
    assert!(list.contains(", persona reviewer"), "{list}");

    let pf = w.pass_file(PASS);
    w.restore()
        .args(["--persona", "ops", "--passphrase-file"])
        .arg(&pf)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "was bundled for persona \"reviewer\", not \"ops\"",
        ));

    // A persona no entry names: a warning, and only the shared entries.
    let out = w
        .cmd()
        .args(["manifest", "check"])
        .arg(w.manifest())
        .arg("--source-root")
        .arg(w.src())
        .args(["--persona", "revieuwer"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("no entry of")
            && stderr(&out).contains("names persona \"revieuwer\"")
    );
}

#[test]
fn max_size_refuses_a_swept_cache_with_the_fix() {
    let w = World::new();
    w.populate();
    let text = format!(
        "{HEAD}\n[[entry]]\npath = \"~/.config/gh\"\n\n[[entry]]\npath = \"~/.codex\"\nmax_size = \"512KiB\"\n"
    );
    // ~/.codex holds a 1 MiB file.
    let out = check(&w, &text, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("over max_size: bundle would fail; raise max_size or add an exclude")
    );
    fs::write(w.manifest(), &text).unwrap();
    let out = w.bundle_with(PASS, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("entry ~/.codex (manifest ")
            && err.contains(", line 8) picks 1048576 bytes, more than its max_size of 512 KiB; raise max_size for that entry, or add an exclude"),
        "{err}"
    );
    assert!(!w.blob().exists(), "nothing written");
    // Default 16 MiB: a 17 MiB cache is refused too.
    let z = Some((source_ids().zeta_uid, source_ids().zeta_gid));
    w.put(
        "home/zeta/.config/gh/cache.db",
        &vec![0u8; 17 << 20],
        0o600,
        z,
    );
    let out = check(
        &w,
        &format!("{HEAD}\n[[entry]]\npath = \"~/.config/gh\"\n"),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("more than its max_size of 16 MiB"),
        "{}",
        stderr(&out)
    );
    // Both fixes work.
    let out = check(
        &w,
        &format!("{HEAD}\n[[entry]]\npath = \"~/.config/gh\"\nmax_size = \"32MiB\"\n"),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = check(
        &w,
        &format!("{HEAD}\n[[entry]]\npath = \"~/.config/gh\"\nexclude = [\"*.db\"]\n"),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn missing_optional_is_reported_and_missing_required_is_exit_6() {
    let w = World::new();
    w.populate();
    let text = format!(
        "{HEAD}\n[[entry]]\npath = \"~/.config/gh\"\n\n[[entry]]\npath = \"~/.gemini\"\n\n[[entry]]\npath = \"/etc/ssh/ssh_host_nope_*\"\n"
    );
    let out = check(&w, &text, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stdout(&out);
    assert_eq!(
        s.matches("matches nothing (optional: skipped)").count(),
        2,
        "{s}"
    );
    assert!(
        s.contains("summary: 3 of 3 entries apply, 1 match, 2 missing (0 required)"),
        "{s}"
    );
    let out = w.bundle_with(PASS, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("~/.gemini") && stdout(&out).contains("missing (optional)"));

    let required = text.replace(
        "path = \"/etc/ssh/ssh_host_nope_*\"\n",
        "path = \"/etc/ssh/ssh_host_nope_*\"\nrequired = true\n",
    );
    let out = check(&w, &required, &[]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stdout(&out).contains("matches nothing: REQUIRED, bundle would fail (exit 6)"));
    assert!(stderr(&out).contains("required path /etc/ssh/ssh_host_nope_* is missing under"));
    fs::write(w.manifest(), &required).unwrap();
    let before = fs::read(w.blob()).unwrap();
    let out = w.bundle_with(PASS, &[]);
    assert_eq!(out.status.code(), Some(6));
    assert!(
        stderr(&out).contains(
            ", line 11); log in to that tool first, or mark the entry `required = false`"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(w.blob()).unwrap(), before, "the blob is untouched");
}

/// `owner`/`group` names travel as written (they need not exist on the
/// source); `uid`/`gid` travel as digits and are applied as is; `mode`
/// gives files the mode and directories the mode plus search bits.
#[test]
fn root_overrides_travel_in_the_blob_and_numeric_ids_apply_as_is() {
    let w = World::new();
    w.populate();
    let z = Some((source_ids().zeta_uid, source_ids().zeta_gid));
    w.put("var/lib/svc/token", b"tok", 0o644, z);
    w.put("var/lib/svc/sub/more", b"more", 0o644, z);
    let text = format!(
        "{HEAD}\n[[entry]]\npath = \"/var/lib/svc\"\nmode = \"0640\"\nuid = 4242\ngid = 4343\n\n[[entry]]\npath = \"~/.config/gh/hosts.yml\"\nowner = \"root\"\ngroup = \"onlyontarget\"\n"
    );
    fs::write(w.manifest(), &text).unwrap();
    let out = w.bundle_with(PASS, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = listing(&w);
    assert!(
        list.contains("d 0750         4242:4343          0  /var/lib/svc\n"),
        "{list}"
    );
    assert!(
        list.contains("- 0640         4242:4343          3  /var/lib/svc/token\n"),
        "{list}"
    );
    assert!(
        list.contains("d 0750         4242:4343          0  /var/lib/svc/sub\n"),
        "{list}"
    );
    assert!(list.contains("root:onlyontarget"), "{list}");
    require_root("applying numeric ids at restore");
    fs::write(
        w.manifest(),
        text.replace("\n[[entry]]\npath = \"~/.config/gh/hosts.yml\"\nowner = \"root\"\ngroup = \"onlyontarget\"\n", ""),
    )
    .unwrap();
    let out = w.bundle_with(PASS, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    w.restore_ok(&[]);
    for p in ["var/lib/svc", "var/lib/svc/token", "var/lib/svc/sub/more"] {
        let md = fs::metadata(w.dst().join(p)).unwrap();
        assert_eq!((md.uid(), md.gid()), (4242, 4343), "{p}");
    }
    assert_eq!(mode_of(&w.dst().join("var/lib/svc/token")), 0o640);
    assert_eq!(mode_of(&w.dst().join("var/lib/svc/sub")), 0o750);
}

/// The manifests we ship parse, and `--syntax-only` checks a manifest
/// without a system to match against (a NixOS checkPhase).
#[test]
fn shipped_manifests_are_valid() {
    let w = World::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifest");
    for rel in [
        "default.toml",
        "personas/team.toml",
        "personas/reviewer.toml",
    ] {
        w.cmd()
            .args(["manifest", "check", "--syntax-only"])
            .arg(dir.join(rel))
            .assert()
            .success()
            .stdout(predicate::str::contains("is valid:"));
    }
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo-manifest.toml");
    w.cmd()
        .args(["manifest", "check", "--syntax-only"])
        .arg(examples)
        .assert()
        .success();
}

// ---- the default manifest, end to end ----

/// Issue 6: the default manifest bundles and restores a realistic fake
/// home with the right modes. gh's hosts.yml, a claude config dir whose
/// cache must stay behind, codex with session history, three SSH host key
/// pairs whose source modes are wrong (the manifest fixes them), the
/// operator keys and the sops-nix age key.
#[test]
fn default_manifest_bundles_and_restores_a_realistic_home() {
    let w = World::new();
    let s = source_ids();
    let z = Some((s.zeta_uid, s.zeta_gid));
    let root = Some((0, 0));
    w.mkdir("home/zeta", 0o700, z);
    w.mkdir("home/zeta/.config", 0o755, z);
    w.mkdir("home/zeta/.config/gh", 0o700, z);
    w.put(
        "home/zeta/.config/gh/hosts.yml",
        b"github.com:\n    user: zeta\n    oauth_token: gho_FAKEFAKEFAKE\n",
        0o600,
        z,
    );
    w.put(
        "home/zeta/.config/gh/config.yml",
        b"git_protocol: ssh\n",
        0o644,
        z,
    );
    w.mkdir("home/zeta/.config/claude", 0o700, z);
    w.put(
        "home/zeta/.config/claude/.credentials.json",
        b"{\"claudeAiOauth\":\"FAKE\"}",
        0o600,
        z,
    );
    w.put("home/zeta/.config/claude/settings.json", b"{}", 0o644, z);
    w.mkdir("home/zeta/.config/claude/cache", 0o700, z);
    w.put(
        "home/zeta/.config/claude/cache/models.bin",
        &vec![9u8; 300_000],
        0o600,
        z,
    );
    w.put(
        "home/zeta/.config/claude/logs/session.log",
        b"log line\n",
        0o600,
        z,
    );
    w.put(
        "home/zeta/.config/claude/projects/x/history.jsonl",
        b"{}\n",
        0o600,
        z,
    );
    w.put(
        "home/zeta/.claude.json",
        b"{\"oauthAccount\":\"FAKE\"}",
        0o600,
        z,
    );
    w.mkdir("home/zeta/.codex", 0o700, z);
    w.put(
        "home/zeta/.codex/auth.json",
        b"{\"tokens\":\"FAKE\"}",
        0o600,
        z,
    );
    w.put("home/zeta/.codex/config.toml", b"model = \"x\"\n", 0o644, z);
    w.put(
        "home/zeta/.codex/sessions/2026/rollout.jsonl",
        b"{}\n",
        0o600,
        z,
    );
    w.put("home/zeta/.codex/history.jsonl", b"{}\n", 0o600, z);
    w.mkdir("etc/ssh", 0o755, root);
    for alg in ["ecdsa", "ed25519", "rsa"] {
        // Wrong modes on purpose: the manifest's overrides set them.
        w.put(
            &format!("etc/ssh/ssh_host_{alg}_key"),
            format!("FAKE {alg} private\n").as_bytes(),
            0o644,
            root,
        );
        w.put(
            &format!("etc/ssh/ssh_host_{alg}_key.pub"),
            format!("ssh-{alg} FAKE\n").as_bytes(),
            0o600,
            root,
        );
    }
    w.put("etc/ssh/sshd_config", b"Port 22\n", 0o644, root);
    w.put(
        "etc/zeta/operator-authorized-keys",
        b"ssh-ed25519 FAKEOPERATOR op\n",
        0o644,
        root,
    );
    w.put(
        "var/lib/sops-nix/key.txt",
        b"AGE-SECRET-KEY-1FAKE\n",
        0o644,
        root,
    );
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifest/default.toml");
    fs::copy(&default, w.manifest()).unwrap();

    let out = w.bundle_with(PASS, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(
        summary.contains("skipped ~/.config/claude/cache: excluded by the manifest (\"cache\")"),
        "{summary}"
    );
    assert!(
        summary.contains("skipped ~/.codex/sessions: excluded"),
        "{summary}"
    );
    let restored = w.restore_ok(&[]);
    assert!(
        restored.contains("created       /home/zeta/.config/gh/hosts.yml"),
        "{restored}"
    );

    let t = target_ids();
    let home = |p: &str| w.dst().join("home/zeta").join(p);
    let want: &[(&str, u32, (u32, u32))] = &[
        (
            "home/zeta/.config/gh/hosts.yml",
            0o600,
            (t.zeta_uid, t.zeta_gid),
        ),
        (
            "home/zeta/.config/gh/config.yml",
            0o644,
            (t.zeta_uid, t.zeta_gid),
        ),
        ("home/zeta/.config/gh", 0o700, (t.zeta_uid, t.zeta_gid)),
        (
            "home/zeta/.config/claude/.credentials.json",
            0o600,
            (t.zeta_uid, t.zeta_gid),
        ),
        ("home/zeta/.claude.json", 0o600, (t.zeta_uid, t.zeta_gid)),
        (
            "home/zeta/.codex/auth.json",
            0o600,
            (t.zeta_uid, t.zeta_gid),
        ),
        ("etc/ssh/ssh_host_ecdsa_key", 0o600, (0, 0)),
        ("etc/ssh/ssh_host_ed25519_key", 0o600, (0, 0)),
        ("etc/ssh/ssh_host_rsa_key", 0o600, (0, 0)),
        ("etc/ssh/ssh_host_ecdsa_key.pub", 0o644, (0, 0)),
        ("etc/ssh/ssh_host_ed25519_key.pub", 0o644, (0, 0)),
        ("etc/ssh/ssh_host_rsa_key.pub", 0o644, (0, 0)),
        ("etc/zeta/operator-authorized-keys", 0o644, (0, 0)),
        ("var/lib/sops-nix/key.txt", 0o600, (0, 0)),
    ];
    for (rel, mode, owner) in want {
        let d = w.dst().join(rel);
        assert_eq!(mode_of(&d), *mode, "{rel} mode");
        if d.is_file() {
            assert_eq!(
                fs::read(&d).unwrap(),
                fs::read(w.src().join(rel)).unwrap(),
                "{rel} bytes"
            );
        }
        if is_root() {
            let md = fs::metadata(&d).unwrap();
            assert_eq!((md.uid(), md.gid()), *owner, "{rel} owner");
        }
    }
    for gone in [
        ".config/claude/cache",
        ".config/claude/logs",
        ".config/claude/projects",
        ".codex/sessions",
        ".codex/history.jsonl",
    ] {
        assert!(!home(gone).exists(), "{gone} must stay behind");
    }
    assert!(home(".config/claude/settings.json").exists());
    assert!(
        !w.dst().join("etc/ssh/sshd_config").exists(),
        "only host keys are carried from /etc/ssh"
    );
    assert_eq!(
        fs::metadata(w.src().join("etc/ssh/ssh_host_rsa_key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644,
        "the source is never changed"
    );
}
