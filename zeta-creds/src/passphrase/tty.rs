//! The terminal prompt, and the confirmation (ask twice, compare in
//! constant time) that every interactive source shares.
#![forbid(unsafe_code)]

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{CONFIRM_MESSAGE, Error, Prompt, SourceKind, check_len};

/// One try of an interactive source: `read` the answer to the prompt's
/// message, and with `confirm` read again with [`CONFIRM_MESSAGE`] and
/// compare in constant time.
pub(super) fn confirmed(
    prompt: &Prompt<'_>,
    confirm: bool,
    read: impl Fn(&str) -> Result<SecretString, Error>,
) -> Result<SecretString, Error> {
    let first = read(prompt.message)?;
    if confirm {
        let second = read(CONFIRM_MESSAGE)?;
        let same = first
            .expose_secret()
            .as_bytes()
            .ct_eq(second.expose_secret().as_bytes());
        if !bool::from(same) {
            return Err(Error::Mismatch);
        }
    }
    Ok(first)
}

/// rpassword opens the terminal itself; only reached when stdin is one.
pub(super) fn read(message: &str) -> Result<SecretString, Error> {
    let from = SourceKind::Tty;
    let text = if message.ends_with(char::is_whitespace) {
        message.to_owned()
    } else {
        format!("{message} ")
    };
    // rpassword turns echo off and back on; a signal meanwhile ends the
    // run from the signal thread, where only this guard puts it back.
    let terminal = crate::cleanup::Guard::terminal();
    let typed = Zeroizing::new(rpassword::prompt_password(text).map_err(|err| Error::Read {
        from,
        what: "/dev/tty".to_owned(),
        err,
    })?);
    if let Some(guard) = terminal {
        guard.disarm();
    }
    check_len(from, typed.as_bytes())?;
    // Exact-size copy; `typed` is zeroized on drop.
    Ok(SecretString::from(typed.as_str()))
}
