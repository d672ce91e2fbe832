//! Where the passphrase comes from.
//!
//! `zeta-creds restore` usually runs as a systemd oneshot early in boot. Such
//! a unit has no terminal, no operator at a shell and a journal that keeps
//! whatever is printed, so the usual "prompt on the tty" is the last resort
//! here, not the default. The sources, in the order README.md
//! ("Passphrase sources") documents, first match wins:
//!
//! 1. **`$CREDENTIALS_DIRECTORY/passphrase`** — a systemd credential
//!    (`LoadCredential=`, `LoadCredentialEncrypted=`, `ImportCredential=`).
//!    systemd puts it on a ramfs readable only by the service and removes it
//!    when the unit stops; sealed with `systemd-creds encrypt` to the TPM it
//!    gives a headless boot. It wins because the unit file, not the command
//!    line, is where an administrator states intent. `main` reads the
//!    variable and passes it in, so this module never touches the
//!    environment.
//! 2. **`--passphrase-fd N`** — a pipe from a parent process; nothing on disk.
//! 3. **`--passphrase-file F`** — *consumed*: unlinked right after this run
//!    read it as its passphrase (also when what it held was refused), by a
//!    [`crate::cleanup::Guard`] registered with the signal thread just before
//!    the read, so a signal mid-read removes it too. Only a file this run
//!    read is consumed: one another source won over, one a failure before
//!    the read left unread, and one the `O_NOFOLLOW` open refused (a
//!    symlink such as `/dev/stdin`) stay where they are, and so does
//!    anything but a regular file or a FIFO. `--keep-passphrase-file` opts
//!    out. See [`file`](mod@file).
//! 4. **`--ask-password`** — `systemd-ask-password --no-tty --id=… --timeout=…`:
//!    the password-agent protocol, answered on the console by
//!    `systemd-tty-ask-password-agent`, by Plymouth or remotely. The boot
//!    oneshot has no controlling tty, so this path never opens `/dev/tty`
//!    (stdin is `/dev/null`, and `--no-tty` tells the tool the same).
//! 5. **`ZETA_CREDS_PASSPHRASE`** — for the installer only. The environment
//!    leaks to children and to `/proc/PID/environ`, which shows the
//!    environment a process *started* with for as long as it runs, whatever
//!    it unsets. So `main`, first thing, restarts the program without the
//!    variable, handing the passphrase over on a pipe (see
//!    [`crate::sys::take_env_passphrase`]); this module warns when it is
//!    used. Whoever set the variable (a shell, a script) still holds it in
//!    its own environment.
//! 6. **A terminal prompt** (rpassword), only when stdin is a terminal; with no
//!    terminal and no source the error lists every source and how to use it.
//!
//! A passphrase is never taken from argv: the command line is world-readable
//! in `/proc` and lands in the journal.
//!
//! Rules every source follows:
//!
//! * Reads are bounded to [`MAX_PASSPHRASE_LEN`] + 3 bytes (room for `\r\n`
//!   and one byte to detect overflow), so a wrong fd or a huge file cannot
//!   make us read without end.
//! * Exactly one trailing `\n` or `\r\n` is stripped from the credential, the
//!   fd, the file and the ask-password output (editors and `echo` add one);
//!   the environment and the tty prompt are taken as they are. An empty
//!   passphrase is refused, and so is one that is not UTF-8.
//! * Secret bytes only ever live in [`Zeroizing`] buffers and
//!   [`SecretString`]s; a `String` is copied into an exact-size allocation
//!   so that no reallocation leaves an unzeroed copy behind.
//! * No error or warning contains passphrase bytes or the passphrase's
//!   length.
//! * Interactive sources (ask-password, tty) allow [`MAX_TRIES`] attempts;
//!   the caller loops on [`Passphrases::next`] and checks each one against
//!   the envelope. Non-interactive sources yield exactly one passphrase: a
//!   wrong one in a file will not become right by reading it again.
#![forbid(unsafe_code)]

mod ask;
pub mod file;
#[cfg(test)]
mod tests;
mod tty;

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::IntoRawFd;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// Attempts allowed for an interactive source (ask-password, tty).
pub const MAX_TRIES: u32 = 3;

/// Longest passphrase accepted, in bytes (after stripping one newline).
pub const MAX_PASSPHRASE_LEN: usize = 4096;

/// Default `--timeout=` handed to `systemd-ask-password`, in seconds. Longer
/// than systemd's own 90 s default, which drops a slow operator into the
/// emergency shell. `0` waits forever.
pub const DEFAULT_ASK_TIMEOUT_SECS: u64 = 300;

/// The program `--ask-password` runs by default, looked up on `PATH`.
pub const DEFAULT_ASK_PASSWORD_PROGRAM: &str = "systemd-ask-password";

/// The credential name looked up in `$CREDENTIALS_DIRECTORY`.
pub const CREDENTIAL_NAME: &str = "passphrase";

/// The warning printed (through [`crate::msg`], as `zeta-creds: warning:
/// ...`) when the environment source is chosen.
pub const ENV_WARNING: &str = "reading the passphrase from ZETA_CREDS_PASSPHRASE; \
    prefer --passphrase-fd or a systemd credential";

/// The message of the second prompt when a passphrase must be confirmed.
pub const CONFIRM_MESSAGE: &str = "Repeat the passphrase:";

/// Bytes read at most from any source: the longest passphrase, a `\r\n`, and
/// one more byte to tell "too long" from "exactly at the limit".
const READ_LIMIT: usize = MAX_PASSPHRASE_LEN + 3;

/// What the command line asked for, resolved by `main`. Nothing here reads
/// the process environment or argv.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Value of `$CREDENTIALS_DIRECTORY`, read by `main`.
    pub credentials_dir: Option<PathBuf>,
    /// `--passphrase-fd N`: an inherited descriptor; this module takes
    /// ownership of it (and closes it, unless it is 0, 1 or 2).
    pub passphrase_fd: Option<i32>,
    /// `--passphrase-file F`: consumed (unlinked) unless
    /// [`keep_passphrase_file`](Self::keep_passphrase_file).
    pub passphrase_file: Option<PathBuf>,
    /// `--keep-passphrase-file`.
    pub keep_passphrase_file: bool,
    /// `--ask-password`.
    pub ask_password: bool,
    /// `--timeout=` handed to the ask-password program, in seconds.
    pub ask_timeout_secs: u64,
    /// The ask-password program; [`DEFAULT_ASK_PASSWORD_PROGRAM`] unless a
    /// test passes a stand-in.
    pub ask_password_program: PathBuf,
    /// Whether stdin is a terminal (`rustix::termios::isatty`), computed by
    /// `main`; gates the tty prompt.
    pub stdin_is_tty: bool,
}

impl Default for SourceOptions {
    /// No source chosen, the default ask-password program and timeout, no tty.
    fn default() -> Self {
        SourceOptions {
            credentials_dir: None,
            passphrase_fd: None,
            passphrase_file: None,
            keep_passphrase_file: false,
            ask_password: false,
            ask_timeout_secs: DEFAULT_ASK_TIMEOUT_SECS,
            ask_password_program: PathBuf::from(DEFAULT_ASK_PASSWORD_PROGRAM),
            stdin_is_tty: false,
        }
    }
}

/// Which source a passphrase came from. Its `Display` is what the operator
/// typed or configured, so messages can point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `$CREDENTIALS_DIRECTORY/passphrase`.
    Credential,
    /// `--passphrase-fd`.
    Fd,
    /// `--passphrase-file`.
    File,
    /// `--ask-password`.
    AskPassword,
    /// `ZETA_CREDS_PASSPHRASE`.
    Env,
    /// The rpassword prompt on the terminal.
    Tty,
}

impl SourceKind {
    /// Whether the source asks a person, and so allows [`MAX_TRIES`].
    #[must_use]
    pub fn is_interactive(self) -> bool {
        matches!(self, SourceKind::AskPassword | SourceKind::Tty)
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Credential => "$CREDENTIALS_DIRECTORY/passphrase",
            SourceKind::Fd => "--passphrase-fd",
            SourceKind::File => "--passphrase-file",
            SourceKind::AskPassword => "--ask-password",
            SourceKind::Env => "ZETA_CREDS_PASSPHRASE",
            SourceKind::Tty => "terminal prompt",
        })
    }
}

/// What an interactive source shows.
#[derive(Debug, Clone, Copy)]
pub struct Prompt<'a> {
    /// `--id=` for systemd-ask-password, `subsystem:object`, e.g.
    /// `"zeta-creds:abcd-1234"`.
    pub id: &'a str,
    /// The question, e.g. `"Passphrase for zeta-creds (stick abcd-1234):"`.
    /// Passed to systemd-ask-password as its last argument, so it must not
    /// start with `-`. The tty prompt adds a space after it.
    pub message: &'a str,
}

/// Why no passphrase could be had. Messages say what happened and the next
/// step; none contains passphrase bytes or a passphrase length.
///
/// [`Error::Read`] keeps the I/O error as its `source()`: print the chain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No source was configured and stdin is not a terminal.
    #[error(
        "no passphrase source: use $CREDENTIALS_DIRECTORY/passphrase (systemd LoadCredential=), \
         --passphrase-fd N, --passphrase-file FILE, --ask-password, or ZETA_CREDS_PASSPHRASE; \
         or run it on a terminal"
    )]
    NoSource,
    /// The passphrase was empty (after stripping one newline).
    #[error("the passphrase from {from} is empty; an empty passphrase is refused, give a real one")]
    Empty {
        /// Where it came from.
        from: SourceKind,
    },
    /// The passphrase was longer than [`MAX_PASSPHRASE_LEN`].
    #[error(
        "the passphrase from {from} is longer than {MAX_PASSPHRASE_LEN} bytes; use a shorter one"
    )]
    TooLong {
        /// Where it came from.
        from: SourceKind,
    },
    /// The source could not be opened or read.
    #[error("cannot read the passphrase from {from} ({what}); {}", read_hint(*.from))]
    Read {
        /// Where it came from.
        from: SourceKind,
        /// The path or `fd N` that failed.
        what: String,
        /// The underlying error.
        #[source]
        err: io::Error,
    },
    /// The ask-password program could not be run or gave no answer.
    #[error("cannot ask for the passphrase: {reason}")]
    AskPassword {
        /// What went wrong, naming the program and its exit status, and
        /// what to do instead.
        reason: String,
    },
    /// The two answers of a confirmed prompt differ.
    #[error("the two passphrases do not match; type the same passphrase twice")]
    Mismatch,
    /// The passphrase is not UTF-8.
    #[error("the passphrase from {from} is not valid utf-8; store it as utf-8 text")]
    NotUtf8 {
        /// Where it came from.
        from: SourceKind,
    },
}

fn read_hint(from: SourceKind) -> &'static str {
    match from {
        SourceKind::Credential => "check the unit's LoadCredential= line and that it names a file",
        SourceKind::Fd => "check that the descriptor is open for reading in this process",
        SourceKind::File => {
            "check that it exists, is readable and is not a symlink (symlinks are refused)"
        }
        SourceKind::Tty => "run it on a terminal or use another passphrase source",
        SourceKind::AskPassword | SourceKind::Env => "use another passphrase source",
    }
}

/// The passphrases to try, from the one source the options select.
///
/// Typical use:
///
/// ```no_run
/// # use zeta_creds::passphrase::{Passphrases, Prompt, SourceOptions};
/// # fn check(_: &secrecy::SecretString) -> bool { true }
/// # fn main() -> Result<(), zeta_creds::passphrase::Error> {
/// let mut passphrases = Passphrases::new(SourceOptions::default(), None);
/// let prompt = Prompt { id: "zeta-creds:abcd-1234", message: "Passphrase:" };
/// while let Some(p) = passphrases.next(&prompt, false)? {
///     if check(&p) {
///         break;
///     }
///     eprintln!("zeta-creds: wrong passphrase, {} tries left", passphrases.tries_left());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Passphrases {
    opts: SourceOptions,
    env_passphrase: Option<SecretString>,
    source: Option<SourceKind>,
    remaining: u32,
}

impl Passphrases {
    /// Set up the sources. Chooses, reads and consumes nothing yet: a
    /// `--passphrase-file` is consumed only when it is read as the
    /// passphrase (see [`file`](mod@file)).
    ///
    /// `env_passphrase` is what [`crate::sys::take_env_passphrase`] returned.
    #[must_use]
    pub fn new(opts: SourceOptions, env_passphrase: Option<SecretString>) -> Passphrases {
        Passphrases {
            opts,
            env_passphrase,
            source: None,
            remaining: 0,
        }
    }

    /// The next passphrase to try, or `Ok(None)` when the chosen source has
    /// no more tries.
    ///
    /// The first call chooses the source, first match wins:
    /// 1. `credentials_dir/passphrase`, if that file exists;
    /// 2. `passphrase_fd`; 3. `passphrase_file`; 4. `ask_password`;
    /// 5. the environment passphrase (with a warning on stderr);
    /// 6. a tty prompt, only when `stdin_is_tty`; else [`Error::NoSource`].
    ///
    /// Non-interactive sources yield exactly one passphrase; ask-password and
    /// the tty yield up to [`MAX_TRIES`]. With `confirm` (a new passphrase,
    /// for `bundle` or `rekey`) an interactive source asks twice and the
    /// answers must match, else [`Error::Mismatch`]; a non-interactive source
    /// is read once regardless.
    ///
    /// An error from an interactive source uses up that try; calling again
    /// asks again while tries are left. An error from a one-shot source
    /// leaves no tries.
    pub fn next(
        &mut self,
        prompt: &Prompt<'_>,
        confirm: bool,
    ) -> Result<Option<SecretString>, Error> {
        let kind = match self.source {
            Some(kind) => kind,
            None => {
                let kind = self.choose()?;
                self.source = Some(kind);
                self.remaining = if kind.is_interactive() { MAX_TRIES } else { 1 };
                kind
            }
        };
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let passphrase = match kind {
            SourceKind::Credential => self.read_credential()?,
            SourceKind::Fd => self.read_fd()?,
            SourceKind::File => file::read_consumed(
                self.opts
                    .passphrase_file
                    .as_deref()
                    .expect("chosen only with a file"),
                !self.opts.keep_passphrase_file,
            )?,
            SourceKind::AskPassword => tty::confirmed(prompt, confirm, |message| {
                ask::run(
                    &self.opts.ask_password_program,
                    self.opts.ask_timeout_secs,
                    prompt.id,
                    message,
                )
            })?,
            SourceKind::Env => self.take_env()?,
            SourceKind::Tty => tty::confirmed(prompt, confirm, tty::read)?,
        };
        Ok(Some(passphrase))
    }

    /// Which source was chosen; `None` before the first [`next`](Self::next)
    /// or when it failed with [`Error::NoSource`].
    #[must_use]
    pub fn source(&self) -> Option<SourceKind> {
        self.source
    }

    /// Tries left after the passphrases given so far, for "2 tries left"
    /// messages. Always 0 for one-shot sources once read, and 0 before the
    /// first [`next`](Self::next).
    #[must_use]
    pub fn tries_left(&self) -> u32 {
        self.remaining
    }

    fn choose(&self) -> Result<SourceKind, Error> {
        if let Some(path) = self.credential_path() {
            match fs::metadata(&path) {
                Ok(_) => return Ok(SourceKind::Credential),
                // A unit may carry other credentials but not this one.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(Error::Read {
                        from: SourceKind::Credential,
                        what: path.display().to_string(),
                        err,
                    });
                }
            }
        }
        if self.opts.passphrase_fd.is_some() {
            return Ok(SourceKind::Fd);
        }
        if self.opts.passphrase_file.is_some() {
            return Ok(SourceKind::File);
        }
        if self.opts.ask_password {
            return Ok(SourceKind::AskPassword);
        }
        if self.env_passphrase.is_some() {
            crate::warning!("{ENV_WARNING}");
            return Ok(SourceKind::Env);
        }
        if self.opts.stdin_is_tty {
            return Ok(SourceKind::Tty);
        }
        Err(Error::NoSource)
    }

    fn credential_path(&self) -> Option<PathBuf> {
        self.opts
            .credentials_dir
            .as_deref()
            .map(|dir| dir.join(CREDENTIAL_NAME))
    }

    /// The credential lives on systemd's private ramfs and is not consumed,
    /// so it is opened plainly (following symlinks is harmless there).
    fn read_credential(&self) -> Result<SecretString, Error> {
        let from = SourceKind::Credential;
        let path = self
            .credential_path()
            .expect("chosen only with a credentials dir");
        let buf = File::open(&path)
            .and_then(read_bounded)
            .map_err(|err| read_error(from, &path, err))?;
        finish_stripped(from, &buf)
    }

    fn read_fd(&self) -> Result<SecretString, Error> {
        let from = SourceKind::Fd;
        let fd = self.opts.passphrase_fd.expect("chosen only with an fd");
        let what = || format!("fd {fd}");
        let mut file = crate::sys::file_from_inherited_fd(fd).map_err(|err| Error::Read {
            from,
            what: what(),
            err,
        })?;
        let read = read_bounded(&mut file);
        if fd <= 2 {
            // `--passphrase-fd 0` (a pipe on stdin) is fine, but closing a
            // standard stream would let the next open() reuse its number,
            // and a later child would inherit that file as its stdin/out.
            // Give the descriptor back instead of closing it.
            let _ = file.into_raw_fd();
        }
        let buf = read.map_err(|err| Error::Read {
            from,
            what: what(),
            err,
        })?;
        finish_stripped(from, &buf)
    }

    fn take_env(&mut self) -> Result<SecretString, Error> {
        let from = SourceKind::Env;
        let passphrase = self
            .env_passphrase
            .take()
            .expect("chosen only with an env passphrase");
        check_len(from, passphrase.expose_secret().as_bytes())?;
        Ok(passphrase)
    }
}

pub(super) fn read_error(from: SourceKind, path: &Path, err: io::Error) -> Error {
    Error::Read {
        from,
        what: path.display().to_string(),
        err,
    }
}

/// Read the passphrase [`crate::sys::take_env_passphrase`] handed over on
/// a pipe from `ZETA_CREDS_PASSPHRASE` to the restarted program: taken as
/// it is (no newline stripped, like the environment it came from), at
/// most [`MAX_PASSPHRASE_LEN`] + 3 bytes, so one that is too long is still
/// refused as such when it is used. Bytes that are not UTF-8 give an empty
/// passphrase, which is refused when it is used.
pub fn read_handover(file: File) -> io::Result<SecretString> {
    let buf = read_bounded(file)?;
    Ok(SecretString::from(
        std::str::from_utf8(&buf).unwrap_or_default(),
    ))
}

/// Read to EOF, at most [`READ_LIMIT`] bytes, into a zeroizing buffer
/// allocated once (no reallocation, so no stray unzeroed copies).
pub(super) fn read_bounded<R: Read>(mut reader: R) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; READ_LIMIT]);
    let mut len = 0;
    while len < READ_LIMIT {
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// Exactly one trailing `\r\n` or `\n` off, nothing else.
pub(super) fn strip_one_newline(bytes: &[u8]) -> &[u8] {
    bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .unwrap_or(bytes)
}

pub(super) fn check_len(from: SourceKind, bytes: &[u8]) -> Result<(), Error> {
    if bytes.is_empty() {
        return Err(Error::Empty { from });
    }
    if bytes.len() > MAX_PASSPHRASE_LEN {
        return Err(Error::TooLong { from });
    }
    Ok(())
}

/// Strip one newline, check, and copy into an exact-size [`SecretString`].
/// The caller's zeroizing buffer is wiped when it drops.
pub(super) fn finish_stripped(from: SourceKind, raw: &[u8]) -> Result<SecretString, Error> {
    let bytes = strip_one_newline(raw);
    check_len(from, bytes)?;
    let text = std::str::from_utf8(bytes).map_err(|_| Error::NotUtf8 { from })?;
    Ok(SecretString::from(text))
}
