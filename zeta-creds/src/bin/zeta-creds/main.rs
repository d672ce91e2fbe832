//! The `zeta-creds` command line: parse, run one command, exit.
//!
//! This file is dispatch only. The options are defined in `cli.rs`; each
//! command's work is in `cmd/`, returning a typed report that `render/`
//! prints as text or JSON; passphrases are asked in `unlock.rs`; every
//! failure is an [`error::CliError`] whose exit status is decided
//! in `error.rs`, from the one table in `exit.rs`.
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod error;
mod exit;
mod input;
mod render;
mod unlock;

use std::process::ExitCode;

use clap::Parser;
use secrecy::SecretString;
use serde::Serialize;

use zeta_creds::{cleanup, sys, warning};

use crate::cli::{Cli, Command, ManifestCommand};
use crate::cmd::Status;
use crate::error::CliError;
use crate::exit::Exit;
use crate::render::Text;

fn main() -> ExitCode {
    // First, before any thread exists: take the passphrase out of the
    // environment so no child process inherits it.
    let env_passphrase = sys::take_env_passphrase();
    for w in sys::harden_process() {
        warning!("{w}");
    }
    if let Err(w) = sys::raise_open_file_limit() {
        warning!("{w}");
    }
    // A usage error exits 2 here, before any command has read (or
    // consumed) a passphrase file.
    let cli = Cli::parse();
    // After the environment is clean: this starts a thread.
    if let Err(e) = cleanup::install_signal_handler() {
        warning!("cannot handle signals ({e}); an interrupted run may leave temporary files");
    }
    run(cli, env_passphrase)
}

/// Run the command the operator chose; print its report, or its error;
/// say how it ended. `env` is the passphrase taken out of the environment,
/// if any.
fn run(cli: Cli, env: Option<SecretString>) -> ExitCode {
    let result = match cli.command {
        // The installer step parses its own options (clap hands them over
        // unparsed), so that its usage errors and --help are the step's.
        Command::InstallStep { args } => return cmd::install_step::main(args, env),
        Command::Bundle(args) => text(cmd::bundle::run(&args, env)),
        Command::Restore(args) => json(cmd::restore::run(&args, env), args.json),
        Command::Inspect(args) => json(cmd::inspect::run(&args), args.json),
        Command::Verify(args) => json(cmd::verify::run(&args, env), args.json),
        Command::Diff(args) => text(cmd::diff::run(&args, env)),
        Command::Status(args) => json(cmd::status::run(&args), args.json),
        Command::Rekey(args) => text(cmd::rekey::run(&args, env)),
        Command::Rebundle(args) => text(cmd::rebundle::run(&args, env)),
        Command::Manifest(ManifestCommand::Check(args)) => text(cmd::manifest_check::run(&args)),
        Command::Completions(args) => text(Ok(cmd::completions::run(&args))),
    };
    result
        .unwrap_or_else(|err| {
            err.report();
            err.exit()
        })
        .into()
}

/// Print a text-only report, then take its status.
fn text<R: Text + Status>(report: Result<R, CliError>) -> Result<Exit, CliError> {
    let report = report?;
    render::text(&report)?;
    report.status()
}

/// Print a report as JSON (`--json`) or text, then take its status.
fn json<R: Text + Serialize + Status>(
    report: Result<R, CliError>,
    json: bool,
) -> Result<Exit, CliError> {
    let report = report?;
    render::text_or_json(&report, json)?;
    report.status()
}
