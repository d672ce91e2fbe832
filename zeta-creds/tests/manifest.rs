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
        .code(5)
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
        "personas/service-host.toml",
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

/// A home as the tools leave it after a login on Linux (manifest/README.md,
/// "Tool logins"): each tool's login files beside the caches, logs,
/// transcripts and histories it keeps in the same directories. The second
/// field says whether the default manifest must carry the file.
const TOOL_HOME: &[(&str, bool, u32, &[u8])] = &[
    // GitHub CLI without a keyring: the token is in hosts.yml.
    (
        ".config/gh/hosts.yml",
        true,
        0o600,
        b"github.com:\n    user: zeta\n    oauth_token: gho_FAKE\n",
    ),
    (".config/gh/config.yml", true, 0o644, b"git_protocol: ssh\n"),
    // Claude Code: the token file, the account state, and what it keeps beside them.
    (
        ".claude/.credentials.json",
        true,
        0o600,
        b"{\"claudeAiOauth\":{\"refreshToken\":\"FAKE\"}}",
    ),
    (
        ".claude.json",
        true,
        0o600,
        b"{\"oauthAccount\":{\"emailAddress\":\"z@x\"}}",
    ),
    (".claude/settings.json", false, 0o644, b"{}"),
    (
        ".claude/history.jsonl",
        false,
        0o600,
        b"{\"display\":\"a prompt\"}\n",
    ),
    (
        ".claude/projects/-home-zeta-src/0b7c.jsonl",
        false,
        0o600,
        b"{}\n",
    ),
    (".claude/todos/0b7c.json", false, 0o644, b"[]"),
    (
        ".claude/shell-snapshots/snapshot-bash-1.sh",
        false,
        0o644,
        b"x=1\n",
    ),
    (
        ".claude/statsig/statsig.cached.evaluations",
        false,
        0o644,
        b"{}",
    ),
    // Gemini CLI after "Login with Google".
    (
        ".gemini/oauth_creds.json",
        true,
        0o600,
        b"{\"refresh_token\":\"1//FAKE\"}",
    ),
    (
        ".gemini/google_accounts.json",
        true,
        0o600,
        b"{\"active\":\"z@x\"}",
    ),
    (
        ".gemini/settings.json",
        true,
        0o644,
        b"{\"security\":{\"auth\":{\"selectedType\":\"oauth-personal\"}}}",
    ),
    (".gemini/installation_id", false, 0o644, b"5f0e"),
    (".gemini/tmp/5f0e/chats/session-1.json", false, 0o644, b"{}"),
    (".gemini/tmp/5f0e/logs.json", false, 0o644, b"[]"),
    (
        ".gemini/history/5f0e/.project_root",
        false,
        0o644,
        b"/home/zeta/src",
    ),
    // Codex CLI with the default file store.
    (
        ".codex/auth.json",
        true,
        0o600,
        b"{\"tokens\":{\"refresh_token\":\"FAKE\"}}",
    ),
    (".codex/config.toml", true, 0o644, b"model = \"x\"\n"),
    (".codex/history.jsonl", false, 0o600, b"{}\n"),
    (
        ".codex/sessions/2026/12/05/rollout-1.jsonl",
        false,
        0o600,
        b"{}\n",
    ),
    (".codex/log/codex-tui.log", false, 0o644, b"log line\n"),
    (".codex/models_cache.json", false, 0o644, b"{}"),
];

/// Issue 17: the default manifest carries every tool's login file and
/// none of the caches, project histories, sessions or logs beside them
/// (Claude Code's `~/.claude/.credentials.json` was missing before), and
/// restores them with their modes: `manifest check` names exactly those
/// files, the blob holds exactly them, and the restore writes nothing else.
/// With the host keys (modes fixed by the manifest), the operator keys and
/// the sops-nix age key.
#[test]
fn default_manifest_carries_exactly_the_tool_logins() {
    let w = World::new();
    let s = source_ids();
    let z = Some((s.zeta_uid, s.zeta_gid));
    let root = Some((0, 0));
    w.mkdir("home/zeta", 0o700, z);
    for dir in [".config", ".config/gh", ".claude", ".gemini", ".codex"] {
        w.mkdir(&format!("home/zeta/{dir}"), 0o700, z);
    }
    for (rel, _, mode, bytes) in TOOL_HOME {
        w.put(&format!("home/zeta/{rel}"), bytes, *mode, z);
    }
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

    let carried_home: Vec<String> = TOOL_HOME
        .iter()
        .filter(|(_, carried, _, _)| *carried)
        .map(|(rel, ..)| format!("~/{rel}"))
        .collect();
    let system = [
        "/etc/ssh/ssh_host_ecdsa_key",
        "/etc/ssh/ssh_host_ed25519_key",
        "/etc/ssh/ssh_host_rsa_key",
        "/etc/ssh/ssh_host_ecdsa_key.pub",
        "/etc/ssh/ssh_host_ed25519_key.pub",
        "/etc/ssh/ssh_host_rsa_key.pub",
        "/etc/zeta/operator-authorized-keys",
        "/var/lib/sops-nix/key.txt",
    ];
    let mut expected: Vec<String> = carried_home.clone();
    expected.extend(system.iter().map(|p| p.to_string()));
    expected.sort();

    // manifest check: every login file is matched, nothing beside it.
    let checked = w
        .cmd()
        .args(["manifest", "check"])
        .arg(w.manifest())
        .arg("--source-root")
        .arg(w.src())
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", stderr(&checked));
    let report = stdout(&checked);
    for (rel, carried, ..) in TOOL_HOME {
        let shown = report.contains(&format!("~/{rel}"));
        if *carried {
            assert!(shown, "manifest check must match ~/{rel}:\n{report}");
        } else {
            assert!(!shown, "manifest check must not pick ~/{rel}:\n{report}");
        }
    }

    // The blob holds exactly the login files and the system keys.
    let out = w.bundle_with(PASS, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pf = w.pass_file(PASS);
    let verified = w
        .cmd()
        .args(["verify", "--list", "--json", "--blob"])
        .arg(w.blob())
        .arg("--passphrase-file")
        .arg(&pf)
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", stderr(&verified));
    let json: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    let mut in_blob: Vec<String> = json["entries"]
        .as_array()
        .expect("verify --list --json lists entries")
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    in_blob.sort();
    assert_eq!(
        in_blob, expected,
        "the blob carries exactly the login files"
    );

    // Restored with their modes and owners; nothing else lands.
    w.restore_ok(&[]);
    let t = target_ids();
    for (rel, carried, mode, bytes) in TOOL_HOME {
        let d = w.dst().join("home/zeta").join(rel);
        if !*carried {
            assert!(!d.exists(), "~/{rel} must stay behind");
            continue;
        }
        assert_eq!(mode_of(&d), *mode, "~/{rel} mode");
        assert_eq!(fs::read(&d).unwrap(), *bytes, "~/{rel} bytes");
        if is_root() {
            let md = fs::metadata(&d).unwrap();
            assert_eq!(
                (md.uid(), md.gid()),
                (t.zeta_uid, t.zeta_gid),
                "~/{rel} owner"
            );
        }
    }
    for dir in [
        ".claude/projects",
        ".gemini/tmp",
        ".codex/sessions",
        ".codex/log",
    ] {
        assert!(
            !w.dst().join("home/zeta").join(dir).exists(),
            "{dir} must stay behind"
        );
    }
    let want: &[(&str, u32)] = &[
        ("etc/ssh/ssh_host_ecdsa_key", 0o600),
        ("etc/ssh/ssh_host_ed25519_key", 0o600),
        ("etc/ssh/ssh_host_rsa_key", 0o600),
        ("etc/ssh/ssh_host_ecdsa_key.pub", 0o644),
        ("etc/ssh/ssh_host_ed25519_key.pub", 0o644),
        ("etc/ssh/ssh_host_rsa_key.pub", 0o644),
        ("etc/zeta/operator-authorized-keys", 0o644),
        ("var/lib/sops-nix/key.txt", 0o600),
    ];
    for (rel, mode) in want {
        let d = w.dst().join(rel);
        assert_eq!(mode_of(&d), *mode, "{rel} mode");
        assert_eq!(
            fs::read(&d).unwrap(),
            fs::read(w.src().join(rel)).unwrap(),
            "{rel} bytes"
        );
        if is_root() {
            let md = fs::metadata(&d).unwrap();
            assert_eq!((md.uid(), md.gid()), (0, 0), "{rel} owner");
        }
    }
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

/// Issue 17: bundle, diff and manifest check read the host's own manifest,
/// `SOURCE_ROOT/etc/zeta/creds-manifest.toml` (what the NixOS module
/// installs), when `--manifest` is not given; without one they say where
/// they looked and how to give one.
#[test]
fn without_manifest_the_hosts_own_is_used() {
    let w = World::new();
    w.populate();
    let installed = w.src().join("etc/zeta/creds-manifest.toml");
    fs::create_dir_all(installed.parent().unwrap()).unwrap();
    // Not there yet: exit 6, the path and the way out.
    let out = w
        .cmd()
        .args(["manifest", "check", "--source-root"])
        .arg(w.src())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&installed.display().to_string()), "{err}");
    assert!(err.contains("pass --manifest FILE"), "{err}");
    fs::copy(w.manifest(), &installed).unwrap();
    let out = w
        .cmd()
        .args(["manifest", "check", "--source-root"])
        .arg(w.src())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&installed.display().to_string()),
        "{}",
        stdout(&out)
    );
    // bundle and diff take it too.
    let pf = w.pass_file(PASS);
    let out = w
        .cmd()
        .args(["bundle", "--source-root"])
        .arg(w.src())
        .arg("--out")
        .arg(w.blob())
        .args([
            "--usb-uuid",
            UUID,
            "--work-factor",
            "10",
            "--passphrase-file",
        ])
        .arg(&pf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let pf = w.pass_file(PASS);
    let out = w
        .cmd()
        .args(["diff", "--blob"])
        .arg(w.blob())
        .arg("--source-root")
        .arg(w.src())
        .arg("--passphrase-file")
        .arg(&pf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&installed.display().to_string()),
        "{}",
        stdout(&out)
    );
}
