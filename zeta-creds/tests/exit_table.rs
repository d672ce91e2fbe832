//! One source for the exit table (issue 15, item 2): the binary's `Exit`
//! enum (`src/bin/zeta-creds/exit.rs`, compiled into this test by
//! `#[path]`). Derived from it:
//!
//! * `--help` and the man pages: generated (`exit::help_epilogue`), checked
//!   here against the built binary and by xtask's man-page test;
//! * the README's "Exit codes" table: checked here, row for row;
//! * the NixOS unit's `RestartPreventExitStatus` (`noRestartExitStatuses`
//!   in `nixos-modules/unit.nix`): checked here against
//!   `Exit::retry_may_help`, plus systemd's own 243;
//! * the installer step's table (`installer/zeta-creds-step.sh --help`):
//!   checked here to use only the enum's codes, and to list every status
//!   the script itself exits with below 128.

#[allow(dead_code)]
#[path = "../src/bin/zeta-creds/exit.rs"]
mod exit;

use std::collections::BTreeSet;
use std::path::PathBuf;

use exit::Exit;

/// systemd's EXIT_CREDENTIALS: `LoadCredentialEncrypted=` failed, so
/// `ExecStart=` never ran. Not a zeta-creds status, but no retry fixes it.
const SYSTEMD_EXIT_CREDENTIALS: u8 = 243;

fn repo_file(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The position of `e` in [`Exit::ALL`]. An exhaustive match, so a new
/// variant does not compile until it is placed here and in `ALL`.
fn position(e: Exit) -> usize {
    match e {
        Exit::Success => 0,
        Exit::Failure => 1,
        Exit::Usage => 2,
        Exit::WrongPassphrase => 3,
        Exit::OtherUsb => 4,
        Exit::Corrupt => 5,
        Exit::InputMissing => 6,
        Exit::Incomplete => 7,
        Exit::Rollback => 8,
        Exit::Differs => 9,
    }
}

#[test]
fn every_status_is_listed_once_with_its_own_code_and_name() {
    for (i, e) in Exit::ALL.into_iter().enumerate() {
        assert_eq!(position(e), i, "{e:?} out of place in Exit::ALL");
        assert!(!e.meaning().is_empty() && !e.meaning().contains('\n'));
    }
    let codes: BTreeSet<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
    let names: BTreeSet<&str> = Exit::ALL.iter().map(|e| e.name()).collect();
    assert_eq!(codes.len(), Exit::ALL.len(), "two statuses share a code");
    assert_eq!(names.len(), Exit::ALL.len(), "two statuses share a name");
    // Above 127 a status reads as "killed by a signal".
    assert!(codes.iter().all(|&c| c < 128), "{codes:?}");
    assert_eq!(Exit::Success.code(), 0);
    assert_eq!(Exit::Usage.code(), 2, "clap exits 2 on a usage error");
}

/// The README's table is exactly the enum's, in its order.
#[test]
fn readme_exit_table_is_the_enum() {
    let readme = repo_file("README.md");
    let section = readme
        .split("\n## Exit codes\n")
        .nth(1)
        .expect("README.md has an \"## Exit codes\" section");
    let table: String = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut expected = String::from("| code | meaning |\n|---|---|\n");
    for e in Exit::ALL {
        expected.push_str(&format!("| {} | {} |\n", e.code(), e.meaning()));
    }
    assert_eq!(
        table, expected,
        "README.md's exit table drifted from src/bin/zeta-creds/exit.rs; replace it with:\n{expected}"
    );
}

/// `--help` (top level and a subcommand) ends with the generated table.
#[test]
fn help_shows_the_enum_table() {
    let epilogue = exit::help_epilogue();
    assert!(
        epilogue.starts_with("Exit status:\n   0  success"),
        "{epilogue}"
    );
    for args in [
        &["--help"][..],
        &["restore", "--help"],
        &["manifest", "check", "--help"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_zeta-creds"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            stdout.trim_end().ends_with(epilogue.trim_end()),
            "{args:?}: --help does not end with the exit table:\n{stdout}"
        );
    }
}

/// The statuses the boot unit must not restart on are the failures a
/// retry cannot fix, plus systemd's 243.
#[test]
fn unit_restart_prevent_list_is_the_enum() {
    let unit = repo_file("nixos-modules/unit.nix");
    let list = unit
        .split("noRestartExitStatuses = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("unit.nix defines noRestartExitStatuses = [ ... ]");
    let listed: BTreeSet<u8> = list
        .split_whitespace()
        .map(|n| n.parse().unwrap_or_else(|_| panic!("not a status: {n:?}")))
        .collect();
    let mut expected: BTreeSet<u8> = Exit::ALL
        .iter()
        .filter(|e| e.is_failure() && !e.retry_may_help())
        .map(|e| e.code())
        .collect();
    expected.insert(SYSTEMD_EXIT_CREDENTIALS);
    assert_eq!(
        listed, expected,
        "nixos-modules/unit.nix noRestartExitStatuses drifted from Exit::retry_may_help"
    );
    assert!(
        unit.contains(
            "RestartPreventExitStatus = concatStringsSep \" \" (map toString noRestartExitStatuses)"
        ),
        "RestartPreventExitStatus is no longer built from noRestartExitStatuses"
    );
}

/// The installer step reuses zeta-creds's statuses: its table lists only
/// codes of the enum, and every status below 128 the script exits with.
#[test]
fn installer_exit_table_uses_the_enum_codes() {
    let script = repo_file("installer/zeta-creds-step.sh");
    let block = script
        .split("\nExit status:\n")
        .nth(1)
        .expect("installer/zeta-creds-step.sh --help has an \"Exit status:\" table");
    let rows: BTreeSet<u8> = block
        .lines()
        .take_while(|l| l.starts_with("  ") && !l.trim_start().starts_with("other:"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(!rows.is_empty(), "no rows in the installer's exit table");
    let ours: BTreeSet<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
    assert!(
        rows.is_subset(&ours),
        "the installer's table lists {:?}, which zeta-creds's Exit enum does not have",
        rows.difference(&ours).collect::<Vec<_>>()
    );
    assert!(block.contains("other: the exit status of the zeta-creds command that failed"));
    let mut used = BTreeSet::new();
    for word in ["die ", "exit "] {
        for piece in script.split(word).skip(1) {
            let digits: String = piece.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(code) = digits.parse::<u16>()
                && code < 128
            {
                used.insert(code as u8);
            }
        }
    }
    assert!(
        used.is_subset(&rows),
        "the installer exits with {:?}, which its --help table does not list",
        used.difference(&rows).collect::<Vec<_>>()
    );
}
