//! Restore policy: what a valid blob may write on this host (issue 19
//! #11). A blob that authenticates proves only that someone knew a
//! passphrase (or a file key) once; an old passphrase or a leaked key must
//! not let an ESP writer put a setuid-root file or an `etc/passwd` on the
//! host at the next boot. So, before anything is staged:
//!
//! - a path is written only if the host's own manifest
//!   (`etc/zeta/creds-manifest.toml` under the target root, the one the
//!   NixOS module installs) carries it, unless `--allow-any-path`; with
//!   no manifest installed, paths are not restricted and the report says
//!   so ([`Paths::Unrestricted`]);
//! - no entry gets a setuid or setgid bit (the entry stream knows only
//!   regular files and directories, and staging refuses anything else at
//!   a destination);
//! - no two entries may resolve to one destination, or one be a file the
//!   other needs as a directory: the whole blob is refused
//!   ([`super::Error::Conflict`]).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io;
use std::ops::Bound;
use std::os::fd::OwnedFd;
use std::path::Path;

use super::Refusal;
use crate::envelope::{EntryKind, EntryMeta};

use crate::hostname::{self, Resolve};
use crate::manifest::{self, Manifest};

/// Where the host's manifest is, below the target root.
pub const HOST_MANIFEST: &str = "etc/zeta/creds-manifest.toml";

/// Largest host manifest read.
const MAX_MANIFEST_SIZE: u64 = 1 << 20;

/// Which paths a restore may write.
#[derive(Debug)]
pub(super) enum Paths {
    /// Only what the host's manifest carries.
    Manifest(Manifest),
    /// Any path below the target root: `--allow-any-path`, or no manifest
    /// is installed (`false`).
    Unrestricted {
        /// `--allow-any-path` was given.
        asked: bool,
    },
}

/// The host's manifest, read below the target root. Absolute symlinks
/// (NixOS links `/etc/zeta/...` to `/etc/static/...` and on to the store)
/// resolve inside the target root, never outside it
/// ([`hostname::read_inside`]):
/// at install time `/mnt/etc/...` finds `/mnt/nix/store/...`, not the live
/// system's. `Ok(None)`: none installed.
pub(super) fn host_manifest(
    root: &OwnedFd,
    target_root: &Path,
) -> Result<Option<Manifest>, manifest::Error> {
    let shown = target_root.join(HOST_MANIFEST);
    let read_error = |source: io::Error| manifest::Error::Read {
        path: shown.clone(),
        source,
    };
    let text = match hostname::read_inside(root, HOST_MANIFEST, MAX_MANIFEST_SIZE) {
        Ok(text) => text,
        Err(Resolve::NotFound(_)) => return Ok(None),
        Err(Resolve::Missing(why) | Resolve::Escapes(why)) => {
            return Err(read_error(io::Error::new(io::ErrorKind::InvalidInput, why)));
        }
        Err(Resolve::Io(e)) => return Err(read_error(e)),
    };
    let text = String::from_utf8(text)
        .map_err(|e| read_error(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    Manifest::parse(&text, &shown).map(Some)
}

/// The policy of one restore, and the destinations its entries claimed.
#[derive(Debug)]
pub(super) struct Policy {
    paths: Paths,
    /// Every destination claimed so far (components below the target
    /// root), with its kind and the entry that claimed it.
    claimed: BTreeMap<Vec<String>, (EntryKind, String)>,
}

impl Policy {
    pub(super) fn new(paths: Paths) -> Policy {
        Policy {
            paths,
            claimed: BTreeMap::new(),
        }
    }

    /// What the report says about the paths allowed, when it needs
    /// saying: no manifest installed.
    pub(super) fn note(&self, target_root: &Path) -> Option<String> {
        match self.paths {
            Paths::Unrestricted { asked: false } => Some(format!(
                "no manifest is installed at {}: restore writes every path the blob names; install one (NixOS: zeta.credsRestore.manifest) so that only the paths it carries can be written",
                target_root.join(HOST_MANIFEST).display()
            )),
            _ => None,
        }
    }

    /// Whether this entry may be written at all, whatever is on disk: its
    /// mode and, under a manifest, its path.
    pub(super) fn check(&self, meta: &EntryMeta) -> Result<(), Refusal> {
        if meta.mode & 0o6000 != 0 {
            return Err(Refusal(format!(
                "mode {:04o} has a setuid or setgid bit, which restore never writes; re-bundle without it",
                meta.mode
            )));
        }
        match &self.paths {
            Paths::Unrestricted { .. } => Ok(()),
            Paths::Manifest(m) if allows(m, meta) => Ok(()),
            Paths::Manifest(m) => Err(Refusal(format!(
                "not a path the host's manifest {} carries; add it there, or pass --allow-any-path",
                m.path.display()
            ))),
        }
    }

    /// Claim `destination` for the entry shown as `entry`; `Err` names the
    /// earlier entry it collides with: the same destination, a file the
    /// other needs as a directory, or a directory below a file.
    pub(super) fn claim(
        &mut self,
        destination: &[String],
        kind: EntryKind,
        entry: &str,
    ) -> Result<(), String> {
        if let Some((_, first)) = self.claimed.get(destination) {
            return Err(first.clone());
        }
        for n in 1..destination.len() {
            if let Some((EntryKind::File, first)) = self.claimed.get(&destination[..n]) {
                return Err(first.clone());
            }
        }
        if kind == EntryKind::File {
            // Everything below `destination` sorts right after it.
            let below = self
                .claimed
                .range::<[String], _>((Bound::Excluded(destination), Bound::Unbounded))
                .next()
                .filter(|(k, _)| k.starts_with(destination));
            if let Some((_, (_, first))) = below {
                return Err(first.clone());
            }
        }
        self.claimed
            .insert(destination.to_vec(), (kind, entry.to_owned()));
        Ok(())
    }
}

/// Whether some entry of `m` carries `meta` ([`Manifest::carries`]).
fn allows(m: &Manifest, meta: &EntryMeta) -> bool {
    m.carries(meta.anchor, &meta.path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Anchor;

    fn meta(anchor: Anchor, path: &str, mode: u32) -> EntryMeta {
        EntryMeta {
            kind: EntryKind::File,
            anchor,
            path: path.into(),
            mode,
            owner: "root".into(),
            group: "root".into(),
            mtime: 0,
            size: 0,
            sha256: [0; 32],
        }
    }

    #[test]
    fn the_host_manifest_allows_only_what_it_carries() {
        let m = Manifest::parse(
            "version = 1\nuser = \"zeta\"\n\n[[entry]]\npath = \"~/.config/gh\"\nexclude = [\"cache\"]\n\n[[entry]]\npath = \"/etc/ssh/ssh_host_*_key\"\n",
            Path::new("m.toml"),
        )
        .unwrap();
        let p = Policy::new(Paths::Manifest(m));
        for (anchor, path) in [
            (Anchor::Home, ".config/gh"),
            (Anchor::Home, ".config/gh/hosts.yml"),
            (Anchor::Root, "etc/ssh/ssh_host_ed25519_key"),
        ] {
            assert!(p.check(&meta(anchor, path, 0o600)).is_ok(), "{path}");
        }
        for (anchor, path) in [
            (Anchor::Root, "etc/passwd"),
            (Anchor::Root, "home/zeta/.config/gh/hosts.yml"),
            (Anchor::Home, ".config"),
            (Anchor::Home, ".config/gh/cache"),
            (Anchor::Home, ".config/ghx"),
            (Anchor::Root, "etc/ssh/ssh_host_ed25519_key.pub"),
        ] {
            assert!(p.check(&meta(anchor, path, 0o600)).is_err(), "{path}");
        }
    }

    #[test]
    fn set_id_bits_are_refused_whatever_the_paths() {
        let p = Policy::new(Paths::Unrestricted { asked: true });
        assert!(p.check(&meta(Anchor::Root, "usr/bin/x", 0o1777)).is_ok());
        for mode in [0o4755, 0o2755, 0o6700] {
            assert!(p.check(&meta(Anchor::Root, "usr/bin/x", mode)).is_err());
        }
    }

    #[test]
    fn two_entries_for_one_destination_collide() {
        let d = |s: &str| -> Vec<String> { s.split('/').map(str::to_owned).collect() };
        let mut p = Policy::new(Paths::Unrestricted { asked: true });
        p.claim(&d("home/zeta/.x"), EntryKind::File, "~/.x")
            .unwrap();
        assert_eq!(
            p.claim(&d("home/zeta/.x"), EntryKind::File, "/home/zeta/.x"),
            Err("~/.x".into())
        );
        p.claim(&d("etc/q"), EntryKind::File, "/etc/q").unwrap();
        assert_eq!(
            p.claim(&d("etc/q/r"), EntryKind::File, "/etc/q/r"),
            Err("/etc/q".into())
        );
        p.claim(&d("etc/d/r"), EntryKind::File, "/etc/d/r").unwrap();
        assert_eq!(
            p.claim(&d("etc/d"), EntryKind::File, "/etc/d"),
            Err("/etc/d/r".into())
        );
        // A directory and what it holds do not collide.
        p.claim(&d("etc/e"), EntryKind::Dir, "/etc/e").unwrap();
        p.claim(&d("etc/e/f"), EntryKind::File, "/etc/e/f").unwrap();
        p.claim(&d("etc/f"), EntryKind::File, "/etc/f").unwrap();
    }
}
