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
//! * the installer step's table (`zeta-creds install-step --help`, what
//!   `installer/zeta-creds-step.sh --help` prints): its codes come from
//!   the enum (`StepExit::exit`), checked here against the binary.

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

/// The text after `marker` in `file`'s text, or a failure naming both.
fn after<'t>(text: &'t str, marker: &str, file: &str) -> &'t str {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("{file} no longer has {marker:?}"));
    &text[at + marker.len()..]
}

/// The codes of the statuses `keep` selects.
fn codes(keep: impl Fn(Exit) -> bool) -> BTreeSet<u8> {
    Exit::ALL
        .into_iter()
        .filter(|&e| keep(e))
        .map(Exit::code)
        .collect()
}

#[test]
fn every_status_is_listed_once_with_its_own_code_and_name() {
    // Exhaustive: a new variant does not compile until it is named here,
    // and then this fails until it is in Exit::ALL too.
    let in_all = |e: Exit| match e {
        Exit::Success
        | Exit::Failure
        | Exit::Usage
        | Exit::WrongPassphrase
        | Exit::OtherUsb
        | Exit::Corrupt
        | Exit::InputMissing
        | Exit::Incomplete
        | Exit::Rollback
        | Exit::Differs => Exit::ALL.contains(&e),
    };
    for e in Exit::ALL {
        assert!(in_all(e));
        assert!(!e.meaning().is_empty() && !e.meaning().contains('\n'));
    }
    let all = codes(|_| true);
    let names: BTreeSet<&str> = Exit::ALL.iter().map(|e| e.name()).collect();
    assert_eq!(all.len(), Exit::ALL.len(), "two statuses share a code");
    assert_eq!(names.len(), Exit::ALL.len(), "two statuses share a name");
    // Above 127 a status reads as "killed by a signal".
    assert!(all.iter().all(|&c| c < 128), "{all:?}");
    assert_eq!(Exit::Success.code(), 0);
    assert_eq!(Exit::Usage.code(), 2, "clap exits 2 on a usage error");
}

/// The README's table is exactly the enum's, in its order.
#[test]
fn readme_exit_table_is_the_enum() {
    let readme = repo_file("README.md");
    let table: String = after(&readme, "\n## Exit codes\n", "README.md")
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
    let list = after(&unit, "noRestartExitStatuses = [", "nixos-modules/unit.nix");
    let listed: BTreeSet<u8> = list[..list.find(']').expect("the list ends")]
        .split_whitespace()
        .map(|n| n.parse().unwrap_or_else(|_| panic!("not a status: {n:?}")))
        .collect();
    let mut expected = codes(|e| e.is_failure() && !e.retry_may_help());
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

/// The installer step reuses zeta-creds's statuses: the table its
/// `--help` prints (`zeta-creds install-step --help`, which
/// installer/zeta-creds-step.sh runs) lists only codes of the enum, with
/// the meaning the step gives them (its `StepExit` takes each code from
/// an `Exit`), and a failed child's status passes through.
#[test]
fn installer_exit_table_uses_the_enum_codes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zeta-creds"))
        .args(["install-step", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "install-step --help");
    let help = String::from_utf8(out.stdout).unwrap();
    let block = after(&help, "\nExit status:\n", "install-step --help");
    let rows: BTreeSet<u8> = block
        .lines()
        .take_while(|l| l.starts_with("  ") && !l.trim_start().starts_with("other:"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(!rows.is_empty(), "no rows in the installer's exit table");
    let ours = codes(|_| true);
    assert!(
        rows.is_subset(&ours),
        "the installer's table lists {:?}, which zeta-creds's Exit enum does not have",
        rows.difference(&ours).collect::<Vec<_>>()
    );
    assert!(block.contains("other: the exit status of the zeta-creds command that failed"));
    let shim = repo_file("installer/zeta-creds-step.sh");
    assert!(
        shim.contains("install-step"),
        "installer/zeta-creds-step.sh no longer runs zeta-creds install-step"
    );
}
