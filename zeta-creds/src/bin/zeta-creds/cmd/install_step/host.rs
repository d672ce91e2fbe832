//! The host the step installs: `--host NAME`, else `TARGET/etc/hostname`
//! read inside the target root (on NixOS a symlink into `/etc/static` and
//! the store, which must resolve under TARGET, not on the live system; the
//! library's `hostname::of_root` does that through directory fds). The blob
//! is sealed for it, the stash names its blobs after it (`<host>.enc`) and
//! the step picks rescued blobs by it.

use std::path::Path;

use zeta_creds::envelope::Host;
use zeta_creds::hostname;

use super::exit::{Fail, StepExit};

/// `--host NAME`, checked; else the target's host name; `None` when the
/// target has none yet (no blob can then be sealed, and no stash written).
pub fn of_target(option: Option<&str>, target: &Path) -> Result<Option<String>, Fail> {
    if let Some(name) = option {
        return Host::parse(name)
            .map(|h| Some(h.to_string()))
            .map_err(|why| {
                Fail::new(StepExit::Usage, format!("--host: {why}"))
                    .hint("pass the installed system's host name (networking.hostName)")
            });
    }
    match hostname::of_root(target) {
        Ok(h) => Ok(Some(h.to_string())),
        Err(hostname::Error::Missing { .. }) => Ok(None),
        Err(e) => Err(Fail::new(
            StepExit::Failed,
            format!("cannot tell which host this is: {e}; nothing was written"),
        )
        .hint("fix networking.hostName, or pass --host NAME")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn the_option_wins_and_is_checked() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(
            of_target(Some("Node-A.lan"), t.path()).unwrap().as_deref(),
            Some("node-a.lan")
        );
        let bad = of_target(Some("node a"), t.path()).unwrap_err();
        assert_eq!(bad.exit, StepExit::Usage);
        assert!(bad.message.starts_with("--host: "), "{}", bad.message);
    }

    #[test]
    fn a_nixos_hostname_link_resolves_inside_the_target() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("etc/static")).unwrap();
        std::fs::create_dir_all(root.join("nix/store/abc-etc")).unwrap();
        std::fs::write(root.join("nix/store/abc-etc/hostname"), "node-b\n").unwrap();
        symlink(
            "/nix/store/abc-etc/hostname",
            root.join("etc/static/hostname"),
        )
        .unwrap();
        symlink("/etc/static/hostname", root.join("etc/hostname")).unwrap();
        assert_eq!(of_target(None, root).unwrap().as_deref(), Some("node-b"));
    }

    #[test]
    fn no_hostname_is_none_and_a_bad_one_fails() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        assert_eq!(of_target(None, t.path()).unwrap(), None);
        std::fs::write(t.path().join("etc/hostname"), "node_a\n").unwrap();
        let bad = of_target(None, t.path()).unwrap_err();
        assert_eq!(bad.exit, StepExit::Failed);
        assert!(bad.message.contains("etc/hostname"), "{}", bad.message);
    }
}
