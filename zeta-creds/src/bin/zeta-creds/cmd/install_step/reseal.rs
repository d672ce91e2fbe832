//! `install-step rescue`, after the copies: re-seal from the old system
//! when it is still on the disk (issue 18, item 4), else say how old the
//! rescued blob is. The work is the library's
//! `zeta_creds::rescue::oldroot`; this is its dialogue.
//!
//! * `--no-reseal`: no old root is looked at.
//! * `--reseal`: re-seal without asking, the passphrase from
//!   `ZETA_CREDS_PASSPHRASE` (else the terminal); a failure exits 1.
//! * neither: on a terminal, ask (default yes); without one, say that
//!   `--reseal` does it and go on with the rescued blob (no old root is
//!   mounted then).
//!
//! Each old root is mounted read-only twice at most, never across a
//! question: once to recognise it, once to seal from it, each time inside
//! `cleanup::commit_section` so that a signal waits for the unmount.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use zeta_creds::cleanup;
use zeta_creds::fsx;
use zeta_creds::msg::utc;
use zeta_creds::passphrase;
use zeta_creds::rescue::mount::Mounted;
use zeta_creds::rescue::oldroot::{
    self, Candidate, FsKind, OldRoot, Reseal, ResealError, RootMounter,
};
use zeta_creds::rescue::{BlobInfo, Mounter, Report, SystemMounter, default_mount_base, scan};

use super::exit::StepExit;
use super::secret;
use super::ui::{have_tty, say, tty_say, warn};

/// `--reseal` / `--no-reseal`, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--reseal`: without asking.
    Yes,
    /// `--no-reseal`: no old root is looked at.
    No,
    /// Ask on a terminal; without one, do not.
    Ask,
}

/// Where the old roots are.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--reseal` / `--no-reseal`.
    pub mode: Mode,
    /// `--old-root DEV`: these only; empty with `scan` set: the machine's disks.
    pub old_roots: Vec<PathBuf>,
    /// Search the machine's disks (the rescue's default scan).
    pub scan: bool,
}

/// What the installer script hands over before `rescue`: the passphrase
/// (its pipe, `--env-passphrase-fd`, else `ZETA_CREDS_PASSPHRASE` as the
/// binary took it; read only when a re-seal needs it) and the script's
/// path (`--shim`, beside which the packaged manifest is).
pub struct Handover {
    fd: Option<i32>,
    env: Option<SecretString>,
    shim: Option<PathBuf>,
}

impl Handover {
    /// From the step's whole argv and the binary's environment passphrase.
    pub fn new(argv: &[OsString], env: Option<SecretString>) -> Handover {
        let (mut fd, mut shim) = (None, None);
        let mut i = 0;
        while i < argv.len() {
            let a = argv[i].to_string_lossy();
            let next = argv.get(i + 1);
            if a == "rescue" {
                break;
            } else if a == "--env-passphrase-fd" {
                fd = next.and_then(|v| v.to_str()?.parse().ok());
                i += 2;
            } else if let Some(v) = a.strip_prefix("--env-passphrase-fd=") {
                fd = v.parse().ok();
                i += 1;
            } else if a == "--shim" {
                shim = next.map(PathBuf::from);
                i += 2;
            } else if let Some(v) = a.strip_prefix("--shim=") {
                shim = Some(PathBuf::from(v));
                i += 1;
            } else {
                i += 1;
            }
        }
        Handover { fd, env, shim }
    }

    fn take(&mut self) -> Result<Option<SecretString>, String> {
        if let Some(fd) = self.fd.take() {
            return secret::from_env_fd(fd).map_err(|f| f.message);
        }
        Ok(self
            .env
            .take()
            .filter(|p| !secrecy::ExposeSecret::expose_secret(p).is_empty()))
    }
}

/// An old root that is this machine's previous installation, with the
/// rescued blob it belongs to.
struct Found {
    device: PathBuf,
    kind: FsKind,
    sub: &'static str,
    old: OldRoot,
    blob: PathBuf,
    info: BlobInfo,
}

/// After the copies: look for the old system and offer the re-seal; else
/// (or when it does not happen) say how old the rescued blob is. Returns
/// `Failed` only when an old system was found and the re-seal `--reseal`
/// (or a "yes") asked for did not end in a fresh blob.
pub fn after_rescue(report: &Report, opts: &Options, mut pass: Handover) -> StepExit {
    if opts.mode == Mode::No {
        fallback(report, "--no-reseal");
        return StepExit::Ok;
    }
    if oldroot::rescued(report).is_empty() {
        // Nothing to re-seal from: a new machine, not a failure.
        if opts.mode == Mode::Yes {
            say(
                "not re-sealed: no blob was rescued, so there is no passphrase to keep; the step after nixos-install bundles a new blob",
            );
        }
        return StepExit::Ok;
    }
    if opts.mode == Mode::Ask && !have_tty() {
        // No one to ask: no old root is mounted for nothing.
        say(
            "not re-sealing without a terminal: pass --reseal (with ZETA_CREDS_PASSPHRASE) to seal a fresh blob from the old system's current files",
        );
        fallback(report, "not re-sealed");
        return StepExit::Ok;
    }
    let found = search(report, opts);
    let Some(f) = found else {
        fallback(
            report,
            "no previous installation of a rescued blob's host was found",
        );
        return StepExit::Ok;
    };
    say(format!(
        "old system on {}{}: host {}, stick {}; its rescued blob {} is generation {}, sealed {}",
        f.device.display(),
        sub_label(f.sub),
        f.old.host,
        f.old.usb_uuid,
        f.blob.display(),
        f.info.generation,
        utc(f.info.created)
    ));
    let go = match opts.mode {
        Mode::Yes => true,
        Mode::Ask if have_tty() => {
            tty_say(&format!(
                "The old system on {} still holds its credential files as they are now; the rescued blob has them as they were on {}.",
                f.device.display(),
                utc(f.info.created)
            ));
            match super::ui::ask_yes_no(
                "Seal a fresh blob from them (same passphrase, stick and host)? [Y/n] ",
                true,
            ) {
                Ok(yes) => yes,
                Err(fail) => {
                    warn(fail.message);
                    false
                }
            }
        }
        _ => {
            say(
                "not re-sealing without a terminal: pass --reseal (with ZETA_CREDS_PASSPHRASE) to seal a fresh blob from the old system's current files",
            );
            false
        }
    };
    if !go {
        fallback(report, "not re-sealed");
        return StepExit::Ok;
    }
    let Some(opened) = open(&f, &mut pass) else {
        fallback(report, "not re-sealed");
        return StepExit::Failed;
    };
    match seal(&f, &opened, pass.shim.as_deref()) {
        Ok(done) => {
            say(format!(
                "re-sealed: {} (host {}, stick {}, generation {}, {} files and directories from the old system's current files, manifest {}); the step after nixos-install uses it",
                done.path.display(),
                f.old.host,
                f.old.usb_uuid,
                done.generation,
                done.items,
                done.manifest
            ));
            StepExit::Ok
        }
        Err(why) => {
            warn(format!("not re-sealed: {why}; nothing was written"));
            fallback(report, "not re-sealed");
            StepExit::Failed
        }
    }
}

fn sub_label(sub: &str) -> String {
    if sub.is_empty() {
        String::new()
    } else {
        format!(" (subvolume {sub})")
    }
}

/// The old roots to look at: `--old-root`, else the machine's disks.
fn candidates(opts: &Options) -> Vec<Candidate> {
    if !opts.old_roots.is_empty() {
        return opts
            .old_roots
            .iter()
            .map(|device| Candidate {
                device: device.clone(),
                kind: oldroot::probe_fstype(device).and_then(|t| match oldroot::classify(&t)? {
                    Some(k) => Ok(k),
                    None => Err(format!(
                        "its filesystem is {t}, not one the rescue reads as a root (ext4, xfs, btrfs)"
                    )),
                }),
            })
            .collect();
    }
    if !opts.scan {
        return Vec::new();
    }
    let listed = SystemMounter
        .block_devices()
        .and_then(|json| scan::parse_lsblk(&json).map_err(|e| e.to_string()));
    match listed {
        Ok(devices) => oldroot::candidates(&devices),
        Err(why) => {
            warn(format!(
                "old system: cannot list the disks ({why}); name its root with --old-root DEV"
            ));
            Vec::new()
        }
    }
}

/// Mount `device` read-only (or use where it is mounted), run `f` on the
/// root directory inside, and unmount. A signal meanwhile detaches the
/// mount and removes its directory (`cleanup::Guard::mount`); `f` may
/// commit files of its own, so it does not run inside a commit section.
fn with_root<T>(
    device: &Path,
    kind: FsKind,
    f: impl FnOnce(&Path, &'static str) -> Result<T, String>,
) -> Result<T, String> {
    let at_root = |top: &Path| -> Result<T, String> {
        let fd = fsx::open_root(top).map_err(|e| format!("cannot open it: {e}"))?;
        let sub = oldroot::find_root_dir(&fd).ok_or_else(|| {
            "it does not look like a root filesystem (no etc/, nor in an @ or root subvolume)"
                .to_owned()
        })?;
        f(&top.join(sub), sub)
    };
    if let Some(at) = SystemMounter.mounted_at(device) {
        return at_root(&at);
    }
    let mounter = RootMounter { kind };
    // The mount and its guard come into being together.
    let (mounted, guard) = cleanup::commit_section(|| {
        Mounted::mount(&mounter, &default_mount_base(), device)
            .map(|m| {
                let g = cleanup::Guard::mount(m.path());
                (m, g)
            })
            .map_err(|e| format!("cannot mount it read-only: {e}"))
    })?;
    let out = at_root(mounted.path());
    let released = cleanup::commit_section(|| mounted.release());
    match released {
        Ok(()) => guard.disarm(),
        Err(e) => {
            warn(format!("old root {}: {e}", device.display()));
            // Detached lazily by the guard's drop.
            drop(guard);
        }
    }
    out
}

/// The first old root that is a rescued blob's system (the newest blob's,
/// when several are).
fn search(report: &Report, opts: &Options) -> Option<Found> {
    let mut best: Option<Found> = None;
    for c in candidates(opts) {
        let kind = match c.kind {
            Ok(kind) => kind,
            Err(why) => {
                say(format!("old root {}: skipped: {why}", c.device.display()));
                continue;
            }
        };
        let got = with_root(&c.device, kind, |root, sub| {
            let fd = fsx::open_root(root).map_err(|e| format!("cannot open it: {e}"))?;
            let old = oldroot::identify(&fd, root)?;
            let Some((blob, info)) = oldroot::matching_blob(&old, oldroot::rescued(report)) else {
                return Err(format!(
                    "host {}, stick {}: no rescued blob is that system's",
                    old.host, old.usb_uuid
                ));
            };
            Ok((sub, old, blob.clone(), info.clone()))
        });
        match got {
            Ok((sub, old, blob, info)) => {
                if best
                    .as_ref()
                    .is_none_or(|b| info.generation > b.info.generation)
                {
                    best = Some(Found {
                        device: c.device,
                        kind,
                        sub,
                        old,
                        blob,
                        info,
                    });
                }
            }
            Err(why) => say(format!(
                "old root {}: not re-sealing from it: {why}",
                c.device.display()
            )),
        }
    }
    best
}

/// The passphrase that opens the rescued blob: the script's (one try),
/// else up to three on the terminal. `None`: said why; nothing written.
fn open(f: &Found, pass: &mut Handover) -> Option<oldroot::Opened> {
    let from_env = match pass.take() {
        Ok(p) => p,
        Err(why) => {
            warn(format!("not re-sealed: {why}"));
            return None;
        }
    };
    if let Some(p) = from_env {
        return match oldroot::open_rescued(&f.blob, &f.old, p) {
            Ok(opened) => Some(opened),
            Err(e) => {
                warn(format!(
                    "not re-sealed: {e}; ZETA_CREDS_PASSPHRASE must be the passphrase of the rescued blob; nothing was written"
                ));
                None
            }
        };
    }
    if !have_tty() {
        warn(
            "not re-sealed: no passphrase (set ZETA_CREDS_PASSPHRASE, or run on a terminal); nothing was written",
        );
        return None;
    }
    let message = format!(
        "Passphrase of the rescued blob (host {}, sealed {}):",
        f.old.host,
        utc(f.info.created)
    );
    let mut tty = secret::terminal();
    let prompt = passphrase::Prompt {
        id: "zeta-creds-step",
        message: &message,
    };
    loop {
        match tty.next(&prompt, false) {
            Ok(Some(p)) => match oldroot::open_rescued(&f.blob, &f.old, p) {
                Ok(opened) => return Some(opened),
                Err(ResealError::WrongPassphrase { .. }) => {
                    tty_say("that passphrase does not open the rescued blob");
                }
                Err(e) => {
                    warn(format!("not re-sealed: {e}; nothing was written"));
                    return None;
                }
            },
            Ok(None) => {
                warn(
                    "not re-sealed: no passphrase opened the rescued blob after 3 tries; nothing was written",
                );
                return None;
            }
            Err(e) => {
                warn(format!(
                    "not re-sealed: no passphrase on the terminal ({e}); nothing was written"
                ));
                return None;
            }
        }
    }
}

/// Mount the old root again and seal from it into the rescue directory.
fn seal(
    f: &Found,
    opened: &oldroot::Opened,
    shim: Option<&Path>,
) -> Result<oldroot::Resealed, String> {
    let rescue_dir = f
        .blob
        .parent()
        .map(Path::to_owned)
        .ok_or("the rescued blob has no directory")?;
    let default_manifest = default_manifest(shim);
    with_root(&f.device, f.kind, |root, sub| {
        if sub != f.sub {
            return Err("it changed since it was looked at".into());
        }
        let fd = fsx::open_root(root).map_err(|e| format!("cannot open it: {e}"))?;
        if oldroot::identify(&fd, root)? != f.old {
            return Err("it changed since it was looked at".into());
        }
        oldroot::reseal(&Reseal {
            old: &f.old,
            root,
            opened,
            default_manifest: default_manifest.as_deref(),
            rescue_dir: &rescue_dir,
        })
        .map_err(|e| e.to_string())
    })
}

/// The step's default manifest when the old system has none of its own:
/// `$ZETA_CREDS_MANIFEST_DIR/default.toml`, else the packaged one beside
/// the installer script or the binary.
fn default_manifest(shim: Option<&Path>) -> Option<PathBuf> {
    let dir_of = |p: &Path| {
        std::fs::canonicalize(p)
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned))
    };
    let install_dirs: Vec<PathBuf> = [
        shim.and_then(dir_of),
        std::env::current_exe().ok().and_then(|p| dir_of(&p)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let manifest_dir = std::env::var("ZETA_CREDS_MANIFEST_DIR")
        .ok()
        .filter(|d| !d.is_empty());
    // No target here: the first candidate (a target's own) is left out.
    super::manifest_candidates(Path::new("/"), manifest_dir.as_deref(), &install_dirs)
        .into_iter()
        .skip(1)
        .find(|c| c.is_file())
}

/// No fresh re-seal: for each host, the rescued blob the step will use
/// (its newest generation) and how old it is.
fn fallback(report: &Report, why: &str) {
    let mut newest: BTreeMap<Option<&str>, &BlobInfo> = BTreeMap::new();
    for (_, info) in oldroot::rescued(report) {
        let e = newest.entry(info.host.as_deref()).or_insert(info);
        if info.generation > e.generation {
            *e = info;
        }
    }
    let now = zeta_creds::bundle::now();
    for (host, info) in newest {
        let days = now.saturating_sub(info.created) / 86_400;
        say(format!(
            "{why}: the step after nixos-install uses the rescued blob for host {}: generation {}, sealed {} ({days} days ago); files changed since then are not in it",
            host.unwrap_or("(not recorded)"),
            info.generation,
            utc(info.created)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_scripts_pipe_and_path_are_found_before_rescue_only() {
        let h = Handover::new(&os(&["--shim", "/i/step.sh", "rescue"]), None);
        assert_eq!(h.shim, Some(PathBuf::from("/i/step.sh")));
        assert_eq!(
            Handover::new(&os(&["--shim=/s", "rescue"]), None).shim,
            Some(PathBuf::from("/s"))
        );
        assert_eq!(
            Handover::new(&os(&["--env-passphrase-fd", "3", "rescue"]), None).fd,
            Some(3)
        );
        assert_eq!(
            Handover::new(&os(&["--env-passphrase-fd=4", "rescue"]), None).fd,
            Some(4)
        );
        assert_eq!(
            Handover::new(&os(&["rescue", "--env-passphrase-fd", "3"]), None).fd,
            None
        );
    }

    #[test]
    fn an_empty_environment_passphrase_is_none() {
        let mut p = Handover::new(&[], Some(SecretString::from("")));
        assert!(p.take().unwrap().is_none());
        let mut p = Handover::new(&[], Some(SecretString::from("x y")));
        assert!(p.take().unwrap().is_some());
        assert!(p.take().unwrap().is_none(), "read once");
    }
}
