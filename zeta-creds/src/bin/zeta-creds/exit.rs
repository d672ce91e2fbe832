//! The exit statuses of `zeta-creds`: one enum, the only source of the
//! table in `--help`, the man pages and the README, and of the statuses the
//! NixOS unit must not restart on (`tests/exit_table.rs` checks the README,
//! `nixos-modules/unit.nix` and the installer's table against it).
//!
//! Which error ends in which status is decided in `error.rs`; this file
//! knows nothing of errors, so `cargo xtask man` can include it.
#![forbid(unsafe_code)]

/// How a run of `zeta-creds` ended, as its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command did what was asked (or found nothing to do).
    Success,
    /// An error no other status names (I/O, a weak passphrase, ...).
    Failure,
    /// The command line is wrong (clap exits with it too).
    Usage,
    /// No passphrase tried unlocked the blob.
    WrongPassphrase,
    /// The blob is bound to another USB stick or host, or the stick is
    /// absent.
    OtherUsb,
    /// The blob cannot be trusted or read as format v1.
    Corrupt,
    /// An input the command needs is not there.
    InputMissing,
    /// A restore wrote some entries but not all.
    Incomplete,
    /// A restore refused a blob older than the last one restored.
    Rollback,
    /// `diff` or `status` found the blob and the disk differ; `restore
    /// --if-new --check` found a blob that is not the one last restored.
    Differs,
}

impl Exit {
    /// Every status, in table order.
    pub const ALL: [Exit; 10] = [
        Exit::Success,
        Exit::Failure,
        Exit::Usage,
        Exit::WrongPassphrase,
        Exit::OtherUsb,
        Exit::Corrupt,
        Exit::InputMissing,
        Exit::Incomplete,
        Exit::Rollback,
        Exit::Differs,
    ];

    /// The numeric exit status.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::WrongPassphrase => 3,
            Exit::OtherUsb => 4,
            Exit::Corrupt => 5,
            Exit::InputMissing => 6,
            Exit::Incomplete => 7,
            Exit::Rollback => 8,
            Exit::Differs => 10,
        }
    }

    /// A short stable name, for tests and scripts that talk about a status.
    #[allow(
        dead_code,
        reason = "read by tests/exit_table.rs, which includes this file"
    )]
    pub const fn name(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Failure => "failure",
            Exit::Usage => "usage",
            Exit::WrongPassphrase => "wrong-passphrase",
            Exit::OtherUsb => "other-usb",
            Exit::Corrupt => "corrupt",
            Exit::InputMissing => "input-missing",
            Exit::Incomplete => "incomplete",
            Exit::Rollback => "rollback",
            Exit::Differs => "differs",
        }
    }

    /// What the status means, one line, as `--help` and the README show it.
    pub const fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "success (also: nothing to do; diff, status: no difference)",
            Exit::Failure => "other/internal error",
            Exit::Usage => "usage error",
            Exit::WrongPassphrase => "wrong passphrase",
            Exit::OtherUsb => "blob is bound to another USB stick or host",
            Exit::Corrupt => {
                "blob corrupt, tampered, truncated, or not for this restore (version, parameters, persona)"
            }
            Exit::InputMissing => {
                "required input missing (blob, UUID file, passphrase source, manifest path, state record)"
            }
            Exit::Incomplete => {
                "restore incomplete: some entries could not be written (each one named)"
            }
            Exit::Rollback => {
                "rollback refused: blob older than the newest this system sealed or restored"
            }
            Exit::Differs => {
                "status, diff: the blob and the disk differ; restore --if-new --check: a restore is needed"
            }
        }
    }

    /// Whether the boot-time unit should run `restore` again after this
    /// status. Only an unexpected error (an I/O error, say) may go away on
    /// a retry; every other failure would fail again the same way (a
    /// wrong passphrase, a corrupt blob, a missing input) or would ask the
    /// passphrase again for the same result (an incomplete restore).
    /// `Success` and `Differs` are not failures and are never retried.
    #[allow(
        dead_code,
        reason = "read by tests/exit_table.rs, which includes this file"
    )]
    pub const fn retry_may_help(self) -> bool {
        matches!(self, Exit::Failure)
    }

    /// Whether this status reports a failure (not 0, not `diff`'s 10).
    #[allow(
        dead_code,
        reason = "read by tests/exit_table.rs, which includes this file"
    )]
    pub const fn is_failure(self) -> bool {
        !matches!(self, Exit::Success | Exit::Differs)
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> std::process::ExitCode {
        std::process::ExitCode::from(exit.code())
    }
}

/// The passphrase sources paragraph that follows the table in `--help`.
const PASSPHRASE_SOURCES: &str = "\
Passphrase sources, first match wins: $CREDENTIALS_DIRECTORY/passphrase,
--passphrase-fd, --passphrase-file (consumed), --ask-password,
ZETA_CREDS_PASSPHRASE (discouraged), a terminal prompt. A passphrase is
never accepted as a command-line argument.";

/// The epilogue of every `--help` and of the man pages: the exit status
/// table, then where the passphrase comes from.
pub fn help_epilogue() -> String {
    let mut text = String::from("Exit status:\n");
    for exit in Exit::ALL {
        text.push_str(&format!("{:>4}  {}\n", exit.code(), exit.meaning()));
    }
    text.push('\n');
    text.push_str(PASSPHRASE_SOURCES);
    text
}
