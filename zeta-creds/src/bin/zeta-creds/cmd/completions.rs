//! `zeta-creds completions SHELL`: a completion script from the clap
//! definition in `cli.rs`.
#![forbid(unsafe_code)]

use super::Status;
use crate::cli::{self, CompletionsArgs, Shell};

/// The completion script to print.
pub struct CompletionsReport {
    /// The script, as clap_complete wrote it.
    pub script: Vec<u8>,
}

impl Status for CompletionsReport {}

/// Run `completions`.
pub fn run(args: &CompletionsArgs) -> CompletionsReport {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cli::command(), "zeta-creds", &mut script);
    if shell == clap_complete::Shell::Bash {
        script = bash_case_labels_fixed(&script);
    }
    CompletionsReport { script }
}

/// clap_complete's bash script builds its state as `zeta__creds__subcmd__X`
/// but spells the case labels for it `zeta__subcmd__creds__subcmd__X`, so
/// nothing after a subcommand ever completed for a binary whose name has a
/// hyphen (clap-rs/clap#6421, still in clap_complete 4.6.12). Spell the
/// labels the way the state is built; a no-op once clap_complete does.
/// `tests/completions.rs` runs the script in bash.
fn bash_case_labels_fixed(script: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(script)
        .replace("zeta__subcmd__creds", "zeta__creds")
        .into_bytes()
}
