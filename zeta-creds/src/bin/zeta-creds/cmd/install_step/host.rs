//! The host the step installs: `--host NAME`, else `TARGET/etc/hostname`
//! read inside the target root (on NixOS it is a symlink into
//! `/etc/static` and the store, which must resolve under TARGET, not on the
//! live system). The stash names its blobs after it (`<host>.enc`) and the
//! step picks rescued blobs by it.
//!
//! Allowed: lower-cased, `[a-z0-9.-]`, 1 to 64 bytes.

use std::path::{Component, Path, PathBuf};

use super::exit::{Fail, StepExit};

/// The longest host name accepted, in bytes.
pub const MAX_HOST_LEN: usize = 64;

/// The largest `/etc/hostname` read.
const MAX_HOSTNAME_FILE: u64 = 4096;

/// Symlinks followed before giving up (as the kernel's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// `name` lower-cased, if it is 1 to 64 bytes of `[a-z0-9.-]`; else why not.
pub fn normalize(name: &str) -> Result<String, String> {
    let lower = name.to_ascii_lowercase();
    if lower.is_empty() || lower.len() > MAX_HOST_LEN {
        return Err(format!(
            "'{name}' is {} bytes; a host name is 1 to {MAX_HOST_LEN}",
            name.len()
        ));
    }
    match lower
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        Some(c) => Err(format!(
            "'{name}' holds {c:?}; a host name is letters, digits, '.' and '-' only"
        )),
        None => Ok(lower),
    }
}

/// `--host NAME`, checked; else the target's `/etc/hostname`; `None` when
/// the target has none (the stash is then not written).
pub fn of_target(option: Option<&str>, target: &Path) -> Result<Option<String>, Fail> {
    if let Some(name) = option {
        return normalize(name).map(Some).map_err(|why| {
            Fail::new(StepExit::Usage, format!("--host: {why}"))
                .hint("pass the installed system's host name (networking.hostName)")
        });
    }
    let Some(file) = resolve_in_root(target, Path::new("etc/hostname")) else {
        return Ok(None);
    };
    let text = read_bounded(&file).map_err(|e| {
        Fail::new(
            StepExit::Failed,
            format!("cannot read {}: {e}", file.display()),
        )
        .hint("pass --host NAME")
    })?;
    let name = text.trim();
    if name.is_empty() {
        return Ok(None);
    }
    normalize(name).map(Some).map_err(|why| {
        Fail::new(
            StepExit::Failed,
            format!(
                "{} (the target's /etc/hostname): {why}; nothing was written",
                file.display()
            ),
        )
        .hint("fix networking.hostName, or pass --host NAME")
    })
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_HOSTNAME_FILE)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// `rel` resolved inside `root` as if `root` were `/`: every symlink on the
/// way, absolute or relative, stays under `root` (`..` stops at it).
/// `None` when it does not exist or loops.
pub fn resolve_in_root(root: &Path, rel: &Path) -> Option<PathBuf> {
    // The path still to walk, as components, and the resolved part.
    let mut todo: Vec<String> = components(rel);
    todo.reverse();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let here: PathBuf = done.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        let next = here.join(&c);
        let meta = std::fs::symlink_metadata(&next).ok()?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return None;
            }
            let to = std::fs::read_link(&next).ok()?;
            if to.is_absolute() {
                done.clear();
            }
            let mut more = components(&to);
            more.reverse();
            todo.extend(more);
        } else {
            done.push(c);
        }
    }
    let out = done.iter().fold(root.to_path_buf(), |p, c| p.join(c));
    out.is_file().then_some(out)
}

fn components(p: &Path) -> Vec<String> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_owned()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn names_are_lower_cased_and_checked() {
        assert_eq!(normalize("Node-A.lan").unwrap(), "node-a.lan");
        assert!(normalize("").is_err());
        assert!(normalize(&"a".repeat(65)).is_err());
        assert!(normalize(&"a".repeat(64)).is_ok());
        let e = normalize("node_a").unwrap_err();
        assert!(e.contains("'_'"), "{e}");
        assert!(normalize("a/b").is_err());
        assert!(normalize("..").is_ok(), "dots alone are allowed characters");
    }

    /// NixOS: /etc/hostname -> /etc/static/hostname -> /nix/store/...;
    /// resolved under the target, never on the live system.
    #[test]
    fn the_nixos_symlink_chain_resolves_inside_the_target() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("nix/store/abc-etc/etc")).unwrap();
        std::fs::write(root.join("nix/store/abc-etc/etc/hostname"), "Node-B\n").unwrap();
        symlink("/nix/store/abc-etc/etc", root.join("etc/static")).unwrap();
        symlink("/etc/static/hostname", root.join("etc/hostname")).unwrap();
        assert_eq!(
            of_target(None, root).unwrap().as_deref(),
            Some("node-b"),
            "read through two absolute symlinks under the target"
        );
        assert_eq!(
            of_target(Some("Other"), root).unwrap().as_deref(),
            Some("other"),
            "--host wins"
        );
        // A relative link climbing out of the root stops at it.
        symlink("../../../../etc/static/hostname", root.join("etc/up")).unwrap();
        assert_eq!(
            resolve_in_root(root, Path::new("etc/up")),
            Some(root.join("nix/store/abc-etc/etc/hostname"))
        );
        // A loop is not followed for ever.
        symlink("/etc/loop", root.join("etc/loop")).unwrap();
        assert_eq!(resolve_in_root(root, Path::new("etc/loop")), None);
    }

    #[test]
    fn no_hostname_is_none_and_a_bad_one_is_refused() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(of_target(None, t.path()).unwrap(), None);
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/hostname"), "bad_name\n").unwrap();
        let e = of_target(None, t.path()).unwrap_err();
        assert!(e.message.contains("'_'"), "{}", e.message);
        assert_eq!(
            of_target(Some("a b"), t.path()).unwrap_err().exit,
            StepExit::Usage
        );
    }
}
