//! One module per subcommand. Each `run` does the work through the
//! library and returns a typed report; `main.rs` prints it (`render/`) and
//! asks it for the exit status ([`Status`]). Nothing here formats output:
//! progress goes to stderr through `zeta_creds::msg`, and the one table
//! shown mid-run (what `bundle` picked, before the passphrase is asked) is
//! printed through `render/` too.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod completions;
pub mod diff;
pub mod inspect;
pub mod install_step;
pub mod manifest_check;
pub mod rebundle;
pub mod rekey;
pub mod restore;
pub mod status;
pub mod verify;

use crate::error::CliError;
use crate::exit::Exit;

/// How a command that got as far as its report ends the run: a status,
/// or an error that is reported after the report (e.g. an incomplete
/// restore names its failures in the report, then exits 7).
pub trait Status {
    /// The exit status, or the error to report last.
    fn status(&self) -> Result<Exit, CliError> {
        Ok(Exit::Success)
    }
}
