//! The passphrase: where it comes from (`ZETA_CREDS_PASSPHRASE`, handed
//! over by the script on a pipe, or the terminal through the library's
//! prompt), and the strength check a new one must pass (the library's
//! zxcvbn check, with the words `bundle` adds, so the step refuses exactly
//! what `bundle` would). It lives in one [`SecretString`], is handed to
//! children on a pipe, and is dropped (zeroized) when the step is done.

use std::path::Path;

use secrecy::SecretString;
use zeta_creds::passphrase::{self, Passphrases, Prompt, SourceOptions};
use zeta_creds::quality;

use super::exit::{Fail, StepExit};
use super::ui::tty_say;

/// The id the library's prompt is given (systemd-ask-password style).
const PROMPT_ID: &str = "zeta-creds-step";

/// Read the passphrase the script took out of `ZETA_CREDS_PASSPHRASE` and
/// put on descriptor `fd`. An empty one counts as unset, as it always has.
pub fn from_env_fd(fd: i32) -> Result<Option<SecretString>, Fail> {
    let mut source = Passphrases::new(
        SourceOptions {
            passphrase_fd: Some(fd),
            ..SourceOptions::default()
        },
        None,
    );
    let prompt = Prompt {
        id: PROMPT_ID,
        message: "unused",
    };
    match source.next(&prompt, false) {
        Ok(p) => Ok(p),
        Err(passphrase::Error::Empty { .. }) => Ok(None),
        Err(e) => Err(Fail::new(
            StepExit::Missing,
            format!("cannot read ZETA_CREDS_PASSPHRASE from the script: {e}"),
        )),
    }
}

/// Where the passphrase comes from, and the one in hand.
pub struct Secret {
    current: Option<SecretString>,
    /// It came from `ZETA_CREDS_PASSPHRASE` (never asked again).
    pub from_env: bool,
}

impl Secret {
    /// Start with the environment's passphrase, if any.
    pub fn new(env: Option<SecretString>) -> Secret {
        let from_env = env.is_some();
        Secret {
            current: env,
            from_env,
        }
    }

    /// The passphrase in hand.
    pub fn get(&self) -> Option<&SecretString> {
        self.current.as_ref()
    }

    /// Forget it (a wrong or weak one, to be asked again).
    pub fn forget(&mut self) {
        self.current = None;
    }

    /// A new passphrase on the terminal, asked twice until both agree (three
    /// tries), unless one is in hand.
    pub fn ensure_new(&mut self, blob: &Path, uuid: &str) -> Result<&SecretString, Fail> {
        if self.current.is_none() {
            let message = format!("New passphrase for {} (USB {uuid}):", blob.display());
            let mut tty = terminal();
            loop {
                match tty.next(&prompt(&message), true) {
                    Ok(Some(p)) => {
                        self.current = Some(p);
                        break;
                    }
                    Ok(None) => {
                        return Err(Fail::new(
                            StepExit::Failed,
                            "no passphrase after 3 tries; nothing was changed",
                        ));
                    }
                    Err(passphrase::Error::Mismatch) => tty_say("the two passphrases differ"),
                    Err(passphrase::Error::Empty { .. }) => tty_say(
                        "the passphrase is empty; choose one (five or more random words is a good one)",
                    ),
                    Err(e) => return Err(tty_failure(&e)),
                }
            }
        }
        Ok(self.current.as_ref().expect("set above"))
    }

    /// The passphrase of the blob on the ESP, asked once on the terminal
    /// unless one is in hand. `tty` is shared across tries (three).
    pub fn ensure_old(
        &mut self,
        tty: &mut Passphrases,
        blob: &Path,
    ) -> Result<&SecretString, Fail> {
        if self.current.is_none() {
            let message = format!("Passphrase of the blob on the ESP ({}):", blob.display());
            match tty.next(&prompt(&message), false) {
                Ok(Some(p)) => self.current = Some(p),
                Ok(None) => {
                    return Err(Fail::new(
                        StepExit::Failed,
                        "no passphrase after 3 tries; nothing was changed",
                    ));
                }
                Err(passphrase::Error::Empty { .. }) => {
                    return Err(Fail::new(
                        StepExit::Failed,
                        "empty passphrase; nothing was changed",
                    ));
                }
                Err(e) => return Err(tty_failure(&e)),
            }
        }
        Ok(self.current.as_ref().expect("set above"))
    }
}

/// The library's terminal prompt (`/dev/tty`, no echo), three tries.
pub fn terminal() -> Passphrases {
    Passphrases::new(
        SourceOptions {
            stdin_is_tty: true,
            ..SourceOptions::default()
        },
        None,
    )
}

fn prompt(message: &str) -> Prompt<'_> {
    Prompt {
        id: PROMPT_ID,
        message,
    }
}

fn tty_failure(e: &passphrase::Error) -> Fail {
    tty_say("");
    Fail::new(
        StepExit::Failed,
        format!("no passphrase on the terminal ({e})"),
    )
}

/// The words `bundle` rates a new passphrase against: the manifest user,
/// the stick, and the tool's own names.
pub fn strength_context<'a>(user: Option<&'a str>, uuid: &'a str) -> Vec<&'a str> {
    let mut context: Vec<&str> = user.into_iter().collect();
    context.extend([uuid, "zeta", "zeta-creds", "creds"]);
    context
}

/// The library's zxcvbn check, as `bundle` runs it.
pub fn check_strength(pass: &SecretString, context: &[&str]) -> Result<(), quality::Weak> {
    quality::check(pass, context)
}

/// The line shown for a weak passphrase (no bundle option in it).
pub fn weak_message(weak: &quality::Weak) -> String {
    format!(
        "the new passphrase is too weak: an attacker who copies the blob could guess it offline (strength {} of 4, at least {} needed)",
        weak.score,
        quality::MIN_SCORE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_is_judged_as_bundle_judges_it() {
        let ctx = strength_context(Some("zeta"), "dead-beef");
        assert_eq!(ctx, ["zeta", "dead-beef", "zeta", "zeta-creds", "creds"]);
        assert_eq!(strength_context(None, "dead-beef").len(), 4);
        let weak = check_strength(&SecretString::from("hunter2"), &ctx).unwrap_err();
        assert!(weak_message(&weak).contains("too weak"));
        check_strength(&SecretString::from("correct horse battery staple"), &ctx).unwrap();
    }

    #[test]
    fn the_env_passphrase_is_never_asked_again() {
        let mut s = Secret::new(Some(SecretString::from("x")));
        assert!(s.from_env && s.get().is_some());
        s.forget();
        assert!(s.from_env && s.get().is_none());
        assert!(!Secret::new(None).from_env);
    }

    #[test]
    fn the_scripts_pipe_is_read_once_and_empty_is_unset() {
        let (r, mut w) = std::io::pipe().unwrap();
        use std::io::Write;
        w.write_all(b"tangerine submarine").unwrap();
        drop(w);
        let fd = std::os::fd::IntoRawFd::into_raw_fd(r);
        let got = from_env_fd(fd).unwrap().unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&got),
            "tangerine submarine"
        );
        let (r, w) = std::io::pipe().unwrap();
        drop(w);
        assert!(
            from_env_fd(std::os::fd::IntoRawFd::into_raw_fd(r))
                .unwrap()
                .is_none()
        );
    }
}
