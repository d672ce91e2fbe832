//! Developer tasks, run as `cargo xtask TASK` (an alias in
//! `.cargo/config.toml`).
//!
//! * `cargo xtask man` writes `man/zeta-creds.1` and one page per
//!   subcommand (`man/zeta-creds-bundle.1`, ...) from the clap definition
//!   in the binary's `cli.rs`, and removes pages of subcommands that no
//!   longer exist. The pages are committed, so that packagers and readers
//!   of the repository have them without building; the test below fails
//!   when they drift from the code, and says to run this task.
//!
//! The clap definition belongs to the binary, not the library (which has
//! no clap), and a binary cannot be a dependency. So this crate compiles
//! the binary's `cli.rs` and `exit.rs` itself, as modules at its root with
//! the same names (`cli.rs` refers to `crate::exit`): the very source the
//! binary parses with, not a copy.
#![forbid(unsafe_code)]

#[path = "../../zeta-creds/src/bin/zeta-creds/cli.rs"]
mod cli;
// Only the help epilogue is used here; the rest serves the binary.
#[allow(dead_code)]
#[path = "../../zeta-creds/src/bin/zeta-creds/exit.rs"]
mod exit;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask man    (write man/zeta-creds*.1 from the clap definition)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["man"] => match write_man(&man_dir()) {
            Ok(written) => {
                for name in written {
                    println!("wrote man/{name}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("xtask: error: cannot write the man pages: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `man/` at the root of the workspace.
fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .join("man")
}

/// Every man page, as (file name, roff bytes): the command and each
/// visible subcommand, recursively, as `clap_mangen::generate_to` would
/// write them, but in memory so the test can compare.
fn render() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, out)?;
        }
        let man = clap_mangen::Man::new(cmd);
        let mut bytes = Vec::new();
        man.render(&mut bytes)?;
        out.push((man.get_filename(), bytes));
        Ok(())
    }
    let mut cmd = cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    walk(cmd, &mut pages)?;
    pages.sort();
    Ok(pages)
}

/// The `zeta-creds*.1` files now in `dir`.
fn existing_pages(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("zeta-creds") && name.ends_with(".1") {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Write every page into `dir` and remove stale ones; returns the names
/// written.
fn write_man(dir: &Path) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let pages = render()?;
    for stale in existing_pages(dir)? {
        if !pages.iter().any(|(name, _)| *name == stale) {
            std::fs::remove_file(dir.join(&stale))?;
        }
    }
    for (name, bytes) in &pages {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(pages.into_iter().map(|(name, _)| name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed man pages are exactly what `cargo xtask man` writes
    /// now: none missing, none stale, none different.
    #[test]
    fn committed_man_pages_are_up_to_date() {
        let dir = man_dir();
        let pages = render().unwrap();
        let names: Vec<String> = pages.iter().map(|(n, _)| n.clone()).collect();
        let on_disk = existing_pages(&dir).unwrap_or_default();
        assert_eq!(
            on_disk, names,
            "man/ does not hold one page per command: run `cargo xtask man` and commit man/"
        );
        for (name, bytes) in &pages {
            let committed = std::fs::read(dir.join(name)).unwrap();
            assert!(
                committed == *bytes,
                "man/{name} is out of date with the clap definition: run `cargo xtask man` and commit man/"
            );
        }
        // Every subcommand has its page, and the top page lists the exit codes.
        for sub in [
            "bundle",
            "restore",
            "inspect",
            "verify",
            "diff",
            "rekey",
            "manifest",
            "manifest-check",
            "completions",
            "status",
            "install-step",
        ] {
            assert!(
                names.contains(&format!("zeta-creds-{sub}.1")),
                "{sub}: {names:?}"
            );
        }
        let top = String::from_utf8(
            pages
                .iter()
                .find(|(n, _)| n == "zeta-creds.1")
                .unwrap()
                .1
                .clone(),
        )
        .unwrap();
        assert!(top.contains("diff: the blob and the disk differ"), "{top}");
    }

    /// The task writes into a directory and removes a stale page.
    #[test]
    fn write_man_removes_stale_pages() {
        let dir = std::env::temp_dir().join(format!("xtask-man-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("zeta-creds-gone.1"), "stale").unwrap();
        std::fs::write(dir.join("other.1"), "not ours").unwrap();
        let written = write_man(&dir).unwrap();
        assert!(written.contains(&"zeta-creds-rekey.1".to_owned()));
        assert!(!dir.join("zeta-creds-gone.1").exists());
        assert!(dir.join("other.1").exists());
        assert_eq!(existing_pages(&dir).unwrap(), written);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
