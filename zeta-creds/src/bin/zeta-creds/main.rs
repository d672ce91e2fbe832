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

use zeta_creds::msg::{self, Verbosity};
use zeta_creds::{cleanup, debug, sys, warning};

use crate::cli::{Cli, Command, ManifestCommand};
use crate::cmd::Status;
use crate::error::CliError;
use crate::exit::Exit;
use crate::render::Text;
use crate::render::json::{self, Json};

fn main() -> ExitCode {
    // First, before any thread exists: take the passphrase out of the
    // environment (restarting without it, so /proc/PID/environ does not
    // keep it either), so no child process inherits it.
    let (env_passphrase, env_note) = sys::take_env_passphrase();
    if let Some(w) = env_note {
        warning!("{w}");
    }
    for w in sys::harden_process() {
        warning!("{w}");
    }
    if let Err(w) = sys::raise_open_file_limit() {
        warning!("{w}");
    }
    // A usage error exits 2 here, before any command has read (or
    // consumed) a passphrase file; with --json, as a JSON document too.
    let cli = Cli::try_parse().unwrap_or_else(|e| usage_error(&e));
    msg::set_verbosity(if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    });
    if holds_secrets(&cli.command) {
        lock_memory();
    }
    // After the environment is clean: this starts a thread.
    if let Err(e) = cleanup::install_signal_handler() {
        warning!("cannot handle signals ({e}); an interrupted run may leave temporary files");
    }
    run(cli, env_passphrase)
}

/// Whether `command` reads a passphrase, a key or plaintext: the commands
/// whose memory is locked ([`lock_memory`]), all of them alike.
fn holds_secrets(command: &Command) -> bool {
    matches!(
        command,
        Command::InstallStep { .. }
            | Command::Bundle(_)
            | Command::Restore(_)
            | Command::Verify(_)
            | Command::Diff(_)
            | Command::Rekey(_)
    )
}

/// Lock memory ([`sys::lock_memory`]). When it cannot: a warning in a
/// unit (stderr is the journal), whose module promises
/// `LimitMEMLOCK=infinity`, so a failure there is a misconfiguration; one
/// debug line (`-v`) on an interactive run, where a finite limit is the
/// normal case and a warning on every manual command would teach the
/// operator to ignore warnings.
fn lock_memory() {
    if let Err(why) = sys::lock_memory() {
        if msg::stderr_is_journal() {
            warning!("{why}");
        } else {
            debug!("{why}");
        }
    }
}

/// Run the command the operator chose; print its report, or its error;
/// say how it ended. `env` is the passphrase taken out of the environment,
/// if any.
fn run(cli: Cli, env: Option<SecretString>) -> ExitCode {
    // Before the command runs: what it prints mid-run must know.
    render::set_json(wants_json(&cli.command));
    match cli.command {
        // The installer step parses its own options (clap hands them over
        // unparsed), so that its usage errors and --help are the step's.
        Command::InstallStep { args } => return cmd::install_step::main(args, env),
        Command::Bundle(args) => report(cmd::bundle::run(&args, env), args.json),
        Command::Restore(args) => report(cmd::restore::run(&args, env), args.json),
        Command::Inspect(args) => report(cmd::inspect::run(&args), args.json),
        Command::Verify(args) => report(cmd::verify::run(&args, env), args.json),
        Command::Diff(args) => report(cmd::diff::run(&args, env), args.json),
        Command::Status(args) => report(cmd::status::run(&args), args.json),
        Command::Rekey(args) => report(cmd::rekey::run(&args, env), args.json),
        Command::Rebundle(args) => match cmd::rebundle::run(&args, env) {
            Ok(report) => text(report),
            Err(err) => fail(&err),
        },
        Command::Manifest(ManifestCommand::Check(args)) => {
            report(cmd::manifest_check::run(&args), args.json)
        }
        Command::Completions(args) => text(cmd::completions::run(&args)),
    }
    .into()
}

/// Whether the command was given `--json`.
fn wants_json(command: &Command) -> bool {
    match command {
        Command::Bundle(a) => a.json,
        Command::Restore(a) => a.json,
        Command::Inspect(a) => a.json,
        Command::Verify(a) => a.json,
        Command::Diff(a) => a.json,
        Command::Status(a) => a.json,
        Command::Rekey(a) => a.json,
        Command::Manifest(ManifestCommand::Check(a)) => a.json,
        Command::Completions(_) | Command::Rebundle(_) | Command::InstallStep { .. } => false,
    }
}

/// Print a text-only report, then take its status.
fn text<R: Text + Status>(report: R) -> Exit {
    render::text(&report)
        .and_then(|()| report.status())
        .unwrap_or_else(|err| fail(&err))
}

/// Print a report, or the error the command ended with: as text, or with
/// `--json` as the one JSON document on stdout, which says how the run
/// ended (a failure too: scripts never read stderr). Errors still go to
/// stderr, for the operator and the journal.
fn report<R: Text + Json + Status>(report: Result<R, CliError>, json: bool) -> Exit {
    if !json {
        return match report {
            Ok(report) => text(report),
            Err(err) => fail(&err),
        };
    }
    let (report, status) = match report {
        Ok(report) => {
            let status = report.status();
            (report, status)
        }
        Err(err) => {
            let exit = err.exit();
            err.report();
            return print_json(&json::failure_doc(exit, json::error_doc(&err)), exit);
        }
    };
    report.messages_before();
    let (exit, error) = match &status {
        Ok(exit) => (*exit, None),
        Err(err) => (err.exit(), Some(json::error_doc(err))),
    };
    let exit = print_json(&report.doc(json::Head { exit, error }), exit);
    report.messages_after();
    if let Err(err) = status {
        err.report();
    }
    exit
}

/// Print a JSON document on stdout; the run ends in `exit`, or in a
/// failure when stdout cannot be written.
fn print_json<T: Serialize>(doc: &T, exit: Exit) -> Exit {
    match json::print(doc) {
        Ok(()) => exit,
        Err(e) => fail(&CliError::Output(e)),
    }
}

/// Report an error on stderr; its status.
fn fail(err: &CliError) -> Exit {
    err.report();
    err.exit()
}

/// A command line clap refuses (or `--help`, `--version`): clap prints it
/// and exits as usual; a usage error in a run that asked for `--json`
/// also prints the failure document on stdout.
fn usage_error(e: &clap::Error) -> ! {
    if e.use_stderr() && std::env::args_os().any(|a| a == "--json") {
        let exit = Exit::Usage;
        let first = e.to_string();
        let message = first
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned();
        let doc = json::failure_doc(
            exit,
            render::schema::ErrorDoc {
                message,
                hint: Some("see `zeta-creds COMMAND --help`".to_owned()),
            },
        );
        let _ = json::print(&doc);
    }
    e.exit()
}
