//! Shared fixtures for the CLI tests: a source root with accounts and
//! credentials, a target root with other uids, and command builders.
#![allow(dead_code)]

pub mod corpus;
pub mod entry_stream;
pub mod layout;
pub mod recipe;

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use tempfile::TempDir;

pub const PASS: &str = "correct horse battery staple";
pub const UUID: &str = "ABCD-1234";

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// For a test, or the part of one, that proves what only root can set up
/// (uids that differ between source and target, chown, `chattr +i`): it
/// fails as a normal user instead of passing unchecked. CI runs the suite
/// as root (`.ci/run`); such tests are named `root_*`, so a normal user
/// leaves them out with `cargo test -- --skip root_`.
pub fn require_root(what: &str) {
    assert!(
        is_root(),
        "needs root: {what}. CI runs the tests as root; as a normal user, \
         leave the root-only tests out with `cargo test -- --skip root_`"
    );
}

pub fn uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

pub fn gid() -> u32 {
    rustix::process::getegid().as_raw()
}

/// A test world: `src/` (the system being bundled), `dst/` (the system
/// being restored), `esp/` (where the blob goes), and scratch space.
pub struct World {
    pub dir: TempDir,
}

/// Uids used in the source and the target. As root they differ, to prove
/// owners travel by name; as a normal user both are the user's own ids.
pub struct Ids {
    pub zeta_uid: u32,
    pub zeta_gid: u32,
    pub ssh_gid: u32,
}

pub fn source_ids() -> Ids {
    if is_root() {
        Ids {
            zeta_uid: 1000,
            zeta_gid: 1000,
            ssh_gid: 990,
        }
    } else {
        Ids {
            zeta_uid: uid(),
            zeta_gid: gid(),
            ssh_gid: gid(),
        }
    }
}

pub fn target_ids() -> Ids {
    if is_root() {
        Ids {
            zeta_uid: 2001,
            zeta_gid: 2002,
            ssh_gid: 2003,
        }
    } else {
        Ids {
            zeta_uid: uid(),
            zeta_gid: gid(),
            ssh_gid: gid(),
        }
    }
}

/// The host name every test root has (`etc/hostname`): `bundle` seals
/// for it and `restore` expects it unless a test says otherwise.
pub const HOST: &str = "node-a";

/// Write a test root's `etc/passwd` and `etc/group`, and its
/// `etc/hostname` ([`HOST`]), which bundle and restore read by default.
pub fn write_accounts(root: &Path, ids: &Ids) {
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/hostname"), format!("{HOST}\n")).unwrap();
    // As a normal user, "root" must not share the user's uid, or uid->name
    // lookups at bundle time would be ambiguous.
    fs::write(
        root.join("etc/passwd"),
        format!(
            "root:x:0:0:root:/root:/bin/sh\nzeta:x:{}:{}:Zeta:/home/zeta:/bin/sh\n",
            ids.zeta_uid, ids.zeta_gid
        ),
    )
    .unwrap();
    let groups = if ids.ssh_gid == ids.zeta_gid {
        format!("root:x:0:\nzeta:x:{}:\n", ids.zeta_gid)
    } else {
        format!(
            "root:x:0:\nzeta:x:{}:\nsshkeys:x:{}:\n",
            ids.zeta_gid, ids.ssh_gid
        )
    };
    fs::write(root.join("etc/group"), groups).unwrap();
}

impl World {
    pub fn new() -> World {
        let w = World {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(w.src()).unwrap();
        fs::create_dir_all(w.dst()).unwrap();
        fs::create_dir_all(w.path("esp")).unwrap();
        write_accounts(&w.src(), &source_ids());
        write_accounts(&w.dst(), &target_ids());
        fs::create_dir_all(w.dst().join("home/zeta")).unwrap();
        let t = target_ids();
        if is_root() {
            chown(
                w.dst().join("home/zeta"),
                Some(t.zeta_uid),
                Some(t.zeta_gid),
            )
            .unwrap();
        }
        w
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn src(&self) -> PathBuf {
        self.path("src")
    }
    pub fn dst(&self) -> PathBuf {
        self.path("dst")
    }
    pub fn blob(&self) -> PathBuf {
        self.path("esp/zeta-creds.enc")
    }
    pub fn manifest(&self) -> PathBuf {
        self.path("manifest.toml")
    }

    /// Write `contents` at `rel` under the source root with `mode`, owned
    /// by (uid, gid) when running as root.
    pub fn put(&self, rel: &str, contents: &[u8], mode: u32, owner: Option<(u32, u32)>) {
        let p = self.src().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, contents).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        if let (true, Some((u, g))) = (is_root(), owner) {
            chown(&p, Some(u), Some(g)).unwrap();
        }
    }

    pub fn mkdir(&self, rel: &str, mode: u32, owner: Option<(u32, u32)>) {
        let p = self.src().join(rel);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        if let (true, Some((u, g))) = (is_root(), owner) {
            chown(&p, Some(u), Some(g)).unwrap();
        }
    }

    /// The standard credential tree used by most tests.
    pub fn populate(&self) {
        let s = source_ids();
        let zeta = Some((s.zeta_uid, s.zeta_gid));
        let root = Some((0, 0));
        self.mkdir("home/zeta", 0o700, zeta);
        self.mkdir("home/zeta/.config", 0o755, zeta);
        self.mkdir("home/zeta/.config/gh", 0o700, zeta);
        self.put(
            "home/zeta/.config/gh/hosts.yml",
            b"github.com:\n  oauth_token: gho_FAKE\n",
            0o600,
            zeta,
        );
        self.mkdir("home/zeta/.config/gh/nested/deeper", 0o755, zeta);
        self.put(
            "home/zeta/.config/gh/nested/deeper/state.json",
            b"{\"a\":1}",
            0o640,
            zeta,
        );
        self.put("home/zeta/.config/gh/nested/empty", b"", 0o644, zeta);
        let big: Vec<u8> = (0..1024 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        self.put("home/zeta/.codex/auth.json", &big, 0o600, zeta);
        self.mkdir("etc/ssh", 0o755, root);
        self.put(
            "etc/ssh/ssh_host_ed25519_key",
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE\n",
            0o600,
            root,
        );
        self.put(
            "etc/ssh/ssh_host_ed25519_key.pub",
            b"ssh-ed25519 AAAAFAKE root@host\n",
            0o644,
            root,
        );
        self.mkdir("etc/zeta", 0o755, root);
        self.put(
            "etc/zeta/operator-authorized-keys",
            b"ssh-ed25519 AAAAOPERATOR op\n",
            0o644,
            Some((0, s.ssh_gid)),
        );
        self.put("etc/zeta/hook.sh", b"#!/bin/sh\ntrue\n", 0o755, root);
        fs::write(
            self.manifest(),
            r#"version = 1
user = "zeta"

[[entry]]
path = "~/.config/gh"
required = true

[[entry]]
path = "~/.codex/auth.json"

[[entry]]
path = "~/.claude.json"   # absent: optional, reported and skipped

[[entry]]
path = "/etc/ssh/ssh_host_ed25519_key"

[[entry]]
path = "/etc/ssh/ssh_host_ed25519_key.pub"

[[entry]]
path = "/etc/zeta"
"#,
        )
        .unwrap();
    }

    /// `zeta-creds` with a clean environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("zeta-creds").unwrap();
        c.env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("ZETA_CREDS_PASSPHRASE")
            .env_remove("JOURNAL_STREAM")
            .current_dir(self.dir.path());
        c
    }

    /// A fresh passphrase file (0600) holding `pass` and a newline.
    pub fn pass_file(&self, pass: &str) -> PathBuf {
        let p = self.path("passphrase");
        fs::write(&p, format!("{pass}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    pub fn bundle(&self) -> Command {
        let mut c = self.cmd();
        c.arg("bundle")
            .arg("--manifest")
            .arg(self.manifest())
            .arg("--source-root")
            .arg(self.src())
            .arg("--out")
            .arg(self.blob())
            .args(["--usb-uuid", UUID, "--work-factor", "10"]);
        c
    }

    /// A world with the standard tree ([`World::populate`]) bundled into
    /// [`World::blob`].
    pub fn bundled() -> World {
        let w = World::new();
        w.populate();
        w.bundle_ok();
        w
    }

    /// `bundle --passphrase-file` with a file holding `pass`, and `extra`
    /// arguments. The file is consumed when the run read it as the
    /// passphrase (always on success); a run refused before it asked is
    /// left untouched (removed here, so the next call starts clean).
    pub fn bundle_with(&self, pass: &str, extra: &[&str]) -> Output {
        let pf = self.pass_file(pass);
        let out = self
            .bundle()
            .args(extra)
            .arg("--passphrase-file")
            .arg(&pf)
            .output()
            .unwrap();
        if out.status.success() {
            assert!(!pf.exists(), "the passphrase file read is consumed");
        } else if let Ok(left) = fs::read(&pf) {
            assert_eq!(
                left,
                format!("{pass}\n").into_bytes(),
                "a passphrase file not consumed is left as it was"
            );
            fs::remove_file(&pf).unwrap();
        }
        out
    }

    /// `restore --passphrase-file` of the world's blob with `extra`
    /// arguments, which must succeed and consume the file; its stdout.
    pub fn restore_ok(&self, extra: &[&str]) -> String {
        let pf = self.pass_file(PASS);
        let out = self
            .restore()
            .args(extra)
            .arg("--passphrase-file")
            .arg(&pf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "restore failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!pf.exists(), "the passphrase file is consumed");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Bundle again over the world's blob (`--force`), which must succeed:
    /// a re-bundle after the source changed.
    pub fn rebundle(&self) {
        let pf = self.pass_file(PASS);
        self.bundle()
            .arg("--force")
            .arg("--passphrase-file")
            .arg(&pf)
            .assert()
            .success();
    }

    pub fn bundle_ok(&self) {
        let pf = self.pass_file(PASS);
        self.bundle()
            .arg("--passphrase-file")
            .arg(&pf)
            .assert()
            .success();
        assert!(!pf.exists());
    }

    /// `restore` of `blob` into the target root, with no USB UUID yet (for
    /// tests that pass another UUID or a UUID file).
    pub fn restore_blob(&self, blob: &Path) -> Command {
        let mut c = self.cmd();
        c.arg("restore")
            .arg("--blob")
            .arg(blob)
            .arg("--target-root")
            .arg(self.dst());
        c
    }

    /// `restore` of the world's blob, bound to [`UUID`].
    pub fn restore(&self) -> Command {
        let mut c = self.restore_blob(&self.blob());
        c.args(["--usb-uuid", UUID]);
        c
    }

    /// `restore --passphrase-file` of the world's blob, bound to `uuid`,
    /// with `extra` arguments, as `sh -c 'ulimit LIMIT && exec ...'` so
    /// that `limit` (`-v KIB`, `-n FILES`) covers the restore alone.
    /// Returns its output and how long it ran.
    pub fn restore_under_ulimit(
        &self,
        limit: &str,
        uuid: &str,
        extra: &[&str],
        timeout: Duration,
    ) -> (Output, Duration) {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit {limit} && exec \"$@\""))
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_zeta-creds"));
        self.restore_args(&mut cmd, uuid);
        cmd.args(extra);
        let mut cmd = Command::from_std(cmd);
        cmd.timeout(timeout);
        let start = Instant::now();
        let out = cmd.output().unwrap();
        (out, start.elapsed())
    }
}

impl World {
    /// `zeta-creds restore --passphrase-file` of the world's blob, bound to
    /// `uuid`, as a plain process (for tests that spawn it and watch it run),
    /// with a clean environment and a fresh passphrase file.
    pub fn restore_process(&self, uuid: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_zeta-creds"));
        self.restore_args(&mut cmd, uuid);
        cmd
    }

    /// The arguments after the binary and the clean environment of
    /// [`World::restore_process`] (for a restore run under a wrapper).
    pub fn restore_args(&self, cmd: &mut std::process::Command, uuid: &str) {
        cmd.arg("restore")
            .arg("--blob")
            .arg(self.blob())
            .arg("--target-root")
            .arg(self.dst())
            .args(["--usb-uuid", uuid, "--passphrase-file"])
            .arg(self.pass_file(PASS))
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("ZETA_CREDS_PASSPHRASE")
            .env_remove("JOURNAL_STREAM")
            .current_dir(self.dir.path());
    }
}

/// Every path under `root` with its type, mode, owner and content hash:
/// compared before and after to prove nothing changed.
pub fn snapshot(root: &Path) -> Vec<String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let digest = if md.is_file() {
                hex::encode(Sha256::digest(fs::read(&p).unwrap()))
            } else {
                String::new()
            };
            out.push(format!(
                "{rel} {:o} {}:{} {} {}",
                md.mode(),
                md.uid(),
                md.gid(),
                md.len() * u64::from(md.is_file()),
                digest
            ));
            if md.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Every `.zeta-creds-tmp.*` entry under `root`, at any depth (symlinks
/// are not followed): a temporary file left behind by a restore or bundle.
pub fn temp_files_under(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_name()
                .to_string_lossy()
                .starts_with(".zeta-creds-tmp.")
            {
                out.push(p.clone());
            }
            if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                walk(&p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

/// Like [`snapshot`], but for a tree a restore must not touch at all, so
/// stricter: every path under `root` except the top-level names in `skip`,
/// with type, mode, owner, size, mtime (ns), symlink target and content
/// hash. A write through a symlink that was later undone still moves an
/// mtime, so it shows here too.
pub fn snapshot_except(root: &Path, skip: &[&str]) -> Vec<String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    fn walk(root: &Path, dir: &Path, skip: &[&str], out: &mut Vec<String>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                dir != root
                    || !skip
                        .iter()
                        .any(|s| p.file_name() == Some(std::ffi::OsStr::new(s)))
            })
            .collect();
        names.sort();
        for p in names {
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let detail = if md.is_file() {
                hex::encode(Sha256::digest(fs::read(&p).unwrap()))
            } else if md.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else {
                String::new()
            };
            out.push(format!(
                "{rel} {:o} {}:{} {} {}.{:09} {}",
                md.mode(),
                md.uid(),
                md.gid(),
                md.len() * u64::from(md.is_file()),
                md.mtime(),
                md.mtime_nsec(),
                detail
            ));
            if md.is_dir() {
                walk(root, &p, skip, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, skip, &mut out);
    out
}
