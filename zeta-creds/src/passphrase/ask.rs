//! The `systemd-ask-password` child: the password-agent protocol, answered
//! on the console by `systemd-tty-ask-password-agent`, by Plymouth or
//! remotely. Never `/dev/tty`: the boot oneshot has none.
#![forbid(unsafe_code)]

use std::io;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use secrecy::SecretString;

use super::{Error, SourceKind, finish_stripped, read_bounded};

/// `<program> --no-tty --id=<id> --timeout=<secs> <message>`: stdin is
/// `/dev/null`, stdout is the answer, stderr goes to the journal.
pub(super) fn run(
    program: &Path,
    secs: u64,
    id: &str,
    message: &str,
) -> Result<SecretString, Error> {
    let mut child = Command::new(program)
        .arg("--no-tty")
        .arg(format!("--id={id}"))
        .arg(format!("--timeout={secs}"))
        .arg(message)
        // Belt and braces: main already removed it from our environment.
        .env_remove(crate::sys::PASSPHRASE_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::AskPassword {
            reason: spawn_failure(program, &e),
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    // Bounded; dropping the pipe afterwards makes a chatty child get
    // EPIPE instead of blocking us in wait().
    let read = read_bounded(stdout);
    let status = child.wait().map_err(|e| Error::AskPassword {
        reason: format!(
            "cannot wait for {}: {e}; use a credential or --passphrase-file instead",
            program.display()
        ),
    })?;
    if !status.success() {
        return Err(Error::AskPassword {
            reason: exit_failure(program, status, secs),
        });
    }
    let buf = read.map_err(|err| Error::Read {
        from: SourceKind::AskPassword,
        what: format!("the output of {}", program.display()),
        err,
    })?;
    finish_stripped(SourceKind::AskPassword, &buf)
}

pub(super) fn spawn_failure(program: &Path, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::NotFound {
        format!(
            "{} not found; is systemd installed? use --passphrase-file or a credential instead",
            program.display()
        )
    } else {
        format!(
            "cannot run {}: {e}; use --passphrase-file or a credential instead",
            program.display()
        )
    }
}

fn exit_failure(program: &Path, status: ExitStatus, secs: u64) -> String {
    let why = if secs == 0 {
        "the prompt was cancelled or no agent answered".to_owned()
    } else {
        format!("no answer within {secs} s, or the prompt was cancelled")
    };
    format!(
        "{} failed ({status}): {why}; answer it on the console \
         (systemd-tty-ask-password-agent) or use a credential or --passphrase-file",
        program.display()
    )
}
