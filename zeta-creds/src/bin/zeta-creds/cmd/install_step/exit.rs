//! The installer step's exit table, in one place: the codes, their meaning
//! (printed in `--help`), and the failure type every step function returns.
//!
//! The step's table is its own (installer/README.md "Exit codes"), not the
//! binary's: 5 and 6 mean "the blob on the ESP is unreadable" and "an input
//! of the step is missing", and a failed `zeta-creds` child passes its own
//! status through.

use std::fmt::Write as _;

use crate::exit::Exit;

/// How the step ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepExit {
    /// Sealed (or kept, or moved) and verified; or skipped.
    Ok,
    /// Failed; the message says what.
    Failed,
    /// A usage error.
    Usage,
    /// Wrong passphrase for the blob already on the ESP.
    WrongPassphrase,
    /// The file on the ESP is not a readable blob and re-bundling was not asked for.
    Unreadable,
    /// A required input is missing.
    Missing,
    /// The exit status of the `zeta-creds` command that failed.
    Child(u8),
}

impl StepExit {
    /// The fixed rows of the table, in `--help` order.
    pub const TABLE: [StepExit; 6] = [
        StepExit::Ok,
        StepExit::Failed,
        StepExit::Usage,
        StepExit::WrongPassphrase,
        StepExit::Unreadable,
        StepExit::Missing,
    ];

    /// The binary's status this row shares its code with: the step's
    /// table is its own wording of the same codes (`None` for a child's
    /// status, passed through as it is).
    pub fn exit(self) -> Option<Exit> {
        match self {
            StepExit::Ok => Some(Exit::Success),
            StepExit::Failed => Some(Exit::Failure),
            StepExit::Usage => Some(Exit::Usage),
            StepExit::WrongPassphrase => Some(Exit::WrongPassphrase),
            StepExit::Unreadable => Some(Exit::Corrupt),
            StepExit::Missing => Some(Exit::InputMissing),
            StepExit::Child(_) => None,
        }
    }

    /// The process exit status.
    pub fn code(self) -> u8 {
        match (self, self.exit()) {
            (StepExit::Child(code), _) => code,
            (_, Some(exit)) => exit.code(),
            (_, None) => Exit::Failure.code(),
        }
    }

    /// One line (wrapped for `--help`) saying what the code means.
    pub fn meaning(self) -> &'static str {
        match self {
            StepExit::Ok => "credentials sealed (or kept) and verified; or the step was skipped",
            StepExit::Failed => {
                "failed (the message says what; a weak passphrase without a terminal)"
            }
            StepExit::Usage => "usage error",
            StepExit::WrongPassphrase => "wrong passphrase for the blob already on the ESP",
            StepExit::Unreadable => {
                "the blob on the ESP cannot be read and ZETA_CREDS_REBUNDLE is not 1"
            }
            StepExit::Missing => {
                "required input missing: live stick, UUID, manifest, zeta-creds binary\n      or passphrase source"
            }
            StepExit::Child(_) => "the exit status of the zeta-creds command that failed",
        }
    }

    /// The exit status of a child that failed with `code` (never 0).
    pub fn of_child(code: u8) -> StepExit {
        StepExit::Child(code.max(1))
    }
}

/// The "Exit status:" block of `--help`.
pub fn table() -> String {
    let mut out = String::from("Exit status:\n");
    for row in StepExit::TABLE {
        let _ = writeln!(out, "{:>4}  {}", row.code(), row.meaning());
    }
    let _ = writeln!(out, "  other: {}", StepExit::Child(1).meaning());
    out
}

/// Why the step stopped: the exit status, the message and its hints.
#[derive(Debug)]
pub struct Fail {
    /// The exit status.
    pub exit: StepExit,
    /// What went wrong (printed after `error: `).
    pub message: String,
    /// What to do next, one `hint: ` line each.
    pub hints: Vec<String>,
}

impl Fail {
    /// A failure with `exit` and `message`, no hint yet.
    pub fn new(exit: StepExit, message: impl Into<String>) -> Fail {
        Fail {
            exit,
            message: message.into(),
            hints: Vec::new(),
        }
    }

    /// Add a hint line.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Fail {
        self.hints.push(hint.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_the_one_installers_were_given() {
        assert_eq!(
            table(),
            "Exit status:
   0  credentials sealed (or kept) and verified; or the step was skipped
   1  failed (the message says what; a weak passphrase without a terminal)
   2  usage error
   3  wrong passphrase for the blob already on the ESP
   5  the blob on the ESP cannot be read and ZETA_CREDS_REBUNDLE is not 1
   6  required input missing: live stick, UUID, manifest, zeta-creds binary
      or passphrase source
  other: the exit status of the zeta-creds command that failed
"
        );
    }

    /// installer/README.md's "Exit codes" table lists exactly these codes.
    #[test]
    fn the_installer_readme_lists_the_same_codes() {
        let readme =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../installer/README.md");
        let text = std::fs::read_to_string(&readme).unwrap();
        let section = text
            .split("## Exit codes")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("an Exit codes section");
        let rows: Vec<&str> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| ")?.split(' ').next())
            .filter(|c| *c != "code")
            .collect();
        let mut want: Vec<String> = StepExit::TABLE
            .iter()
            .map(|e| e.code().to_string())
            .collect();
        want.push("other".into());
        assert_eq!(rows, want, "{}", readme.display());
    }

    #[test]
    fn a_child_status_passes_through_and_is_never_success() {
        assert_eq!(StepExit::of_child(6).code(), 6);
        assert_eq!(StepExit::of_child(0).code(), 1);
        let codes: Vec<u8> = StepExit::TABLE.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 5, 6]);
    }
}
