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
    CompletionsReport { script }
}
