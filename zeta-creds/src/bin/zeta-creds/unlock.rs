//! Getting passphrases from the operator: the sources a command's options
//! select, the retry loop that unlocks a blob, and the loop that asks for a
//! new passphrase (confirmed, strength-checked).
//!
//! Each loop takes its [`Passphrases`] by value: the sources are used up by
//! the loop, so whatever the library's guard must clean up (a consumed
//! `--passphrase-file`) is cleaned up when the loop returns, on success and
//! on every error, with no call to remember.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use zeta_creds::envelope::{self, Binding, Header, UnlockedHeader, UsbUuid};
use zeta_creds::passphrase::{self, Passphrases, Prompt, SourceOptions};
use zeta_creds::{msg, quality, warning};

use crate::cli::PassphraseArgs;
use crate::error::CliError;
use crate::render;

/// Whether stdin is a terminal (a prompt is possible).
pub fn stdin_is_tty() -> bool {
    rustix::termios::isatty(rustix::stdio::stdin())
}

/// The passphrase sources a command's options select. A `--passphrase-file`
/// is consumed by the library when, and only when, it is read.
pub fn sources(args: &PassphraseArgs, env_passphrase: Option<SecretString>) -> Passphrases {
    let opts = SourceOptions {
        credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
        passphrase_fd: args.passphrase_fd,
        passphrase_file: args.passphrase_file.clone(),
        keep_passphrase_file: args.keep_passphrase_file,
        ask_password: args.ask_password,
        ask_timeout_secs: args.ask_password_timeout,
        ask_password_program: PathBuf::from("systemd-ask-password"),
        stdin_is_tty: stdin_is_tty(),
    };
    Passphrases::new(opts, env_passphrase)
}

/// The sources of `rekey`'s new passphrase: only `--new-passphrase-file`
/// (consumed) or, on a terminal, a prompt. Never the credential, fd,
/// ask-password or environment sources: those carry the current one.
pub fn new_passphrase_sources(file: Option<&Path>) -> Passphrases {
    Passphrases::new(
        SourceOptions {
            passphrase_file: file.map(Path::to_owned),
            stdin_is_tty: stdin_is_tty(),
            ..SourceOptions::default()
        },
        None,
    )
}

/// Check the binding (stick and host, one check) and the work-factor
/// cap, then try passphrases until one unwraps the file key and the
/// header MAC verifies. Returns the passphrase that did (rekey
/// `--same-passphrase` wraps under it again). A refused binding asks no
/// passphrase: a `--passphrase-file` is left where it is.
pub fn unlock<'h>(
    header: &'h Header,
    blob: &Path,
    expected: &Binding<'_>,
    max_log_n: u8,
    mut sources: Passphrases,
) -> Result<(UnlockedHeader<'h>, SecretString), CliError> {
    let blob_err = |source: envelope::Error| CliError::Blob {
        blob: blob.to_owned(),
        source,
    };
    // Before asking anyone for a passphrase.
    header.check_binding(expected).map_err(blob_err)?;
    header.check_work_factor(max_log_n).map_err(blob_err)?;
    let uuid = header.unauthenticated_fields().usb_uuid.to_string();
    let message = format!(
        "Passphrase for zeta-creds blob {} (USB {uuid})",
        blob.display()
    );
    let id = format!("zeta-creds:{uuid}");
    let wrong = || CliError::WrongPassphrase {
        blob: blob.to_owned(),
        uuid: uuid.clone(),
    };
    loop {
        let Some(pass) = sources.next(
            &Prompt {
                id: &id,
                message: &message,
            },
            false,
        )?
        else {
            return Err(wrong());
        };
        msg::test_fault("stall-before-kdf");
        let log_n = header.unauthenticated_fields().log_n;
        render::deriving_key(log_n);
        let started = std::time::Instant::now();
        let result = header.unlock(&pass, expected, max_log_n);
        // The cost of the work factor on this machine, where it is paid:
        // guidance, never calibration; with -v only.
        render::derived_key(log_n, started.elapsed());
        match result {
            Ok(unlocked) => return Ok((unlocked, pass)),
            Err(envelope::Error::WrongPassphrase) => {
                let left = sources.tries_left();
                if left == 0 {
                    return Err(wrong());
                }
                warning!(
                    "wrong passphrase for blob {} (bound to USB {uuid}); {left} {} left",
                    blob.display(),
                    if left == 1 { "try" } else { "tries" }
                );
            }
            Err(e) => return Err(blob_err(e)),
        }
    }
}

/// A new passphrase for `bundle` or `rekey` for the blob `blob` bound to
/// `usb_uuid`: asked twice on a terminal, then refused if zxcvbn rates it
/// weak (asked again on a terminal while tries are left), unless
/// `allow_weak`. `context` holds words the passphrase must not lean on
/// (the user name, the UUID).
pub fn new_passphrase(
    mut sources: Passphrases,
    blob: &Path,
    usb_uuid: &UsbUuid,
    context: &[&str],
    allow_weak: bool,
) -> Result<SecretString, CliError> {
    let message = format!(
        "New passphrase for zeta-creds blob {} (USB {usb_uuid})",
        blob.display()
    );
    let id = format!("zeta-creds:{usb_uuid}");
    let prompt = Prompt {
        id: &id,
        message: &message,
    };
    let mut context = context.to_vec();
    context.extend(["zeta", "zeta-creds", "creds"]);
    loop {
        let interactive =
            |s: &Passphrases| s.source().is_some_and(|k| k.is_interactive()) && s.tries_left() > 0;
        let pass = match sources.next(&prompt, true) {
            Ok(Some(p)) => p,
            Ok(None) => return Err(passphrase::Error::NoSource.into()),
            Err(passphrase::Error::Mismatch) if interactive(&sources) => {
                warning!("the two passphrases do not match; try again");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match quality::check(&pass, &context) {
            Ok(()) => return Ok(pass),
            Err(weak) if allow_weak => {
                warning!(
                    "using a weak passphrase (strength {} of 4) because of --allow-weak-passphrase; whoever copies the blob can guess it offline",
                    weak.score
                );
                return Ok(pass);
            }
            Err(weak) if interactive(&sources) => warning!("{weak}"),
            Err(weak) => return Err(weak.into()),
        }
    }
}
