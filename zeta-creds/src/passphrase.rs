//! Where the passphrase comes from.
//!
//! `zeta-creds restore` usually runs as a systemd oneshot early in boot. Such
//! a unit has no terminal, no operator at a shell and a journal that keeps
//! whatever is printed, so the usual "prompt on the tty" is the last resort
//! here, not the default. The sources, in the order DESIGN.md ("CLI
//! contract", PASSPHRASE SOURCE) fixes, first match wins:
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
//! 3. **`--passphrase-file F`** — *consumed*: read once, then unlinked right
//!    after reading, and again by a guard on drop, so it is gone on every exit
//!    path that unwinds (errors, a missing blob, a panic — the workspace keeps
//!    `panic = "unwind"` for this). It is opened with `O_NOFOLLOW`, so what is
//!    read and what is unlinked are the same directory entry. `--keep-passphrase-file`
//!    opts out. A signal that kills the process skips every destructor; `main`
//!    is responsible for turning SIGTERM/SIGINT into an orderly exit.
//! 4. **`--ask-password`** — `systemd-ask-password --no-tty --id=… --timeout=…`:
//!    the password-agent protocol, answered on the console by
//!    `systemd-tty-ask-password-agent`, by Plymouth or remotely. The boot
//!    oneshot has no controlling tty, so this path never opens `/dev/tty`
//!    (stdin is `/dev/null`, and `--no-tty` tells the tool the same).
//! 5. **`ZETA_CREDS_PASSPHRASE`** — for the installer only. The environment
//!    leaks to children and to `/proc/PID/environ`; `main` removes the
//!    variable first thing (see [`crate::sys::take_env_passphrase`]) and this
//!    module warns when it is used.
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

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::IntoRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Attempts allowed for an interactive source (ask-password, tty).
pub const MAX_TRIES: u32 = 3;

/// Longest passphrase accepted, in bytes (after stripping one newline).
pub const MAX_PASSPHRASE_LEN: usize = 4096;

/// Default `--timeout=` handed to `systemd-ask-password`, in seconds. Longer
/// than systemd's own 90 s default, which drops a slow operator into the
/// emergency shell (USER-ASKS.md, item 13). `0` waits forever.
pub const DEFAULT_ASK_TIMEOUT_SECS: u64 = 300;

/// The program `--ask-password` runs by default, looked up on `PATH`.
pub const DEFAULT_ASK_PASSWORD_PROGRAM: &str = "systemd-ask-password";

/// The credential name looked up in `$CREDENTIALS_DIRECTORY`.
pub const CREDENTIAL_NAME: &str = "passphrase";

/// The warning printed when the environment source is chosen.
pub const ENV_WARNING: &str = "zeta-creds: warning: reading the passphrase from \
    ZETA_CREDS_PASSPHRASE; prefer --passphrase-fd or a systemd credential";

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

/// Unlinks the consumed `--passphrase-file` once, now or on drop.
#[derive(Debug)]
struct ConsumedFile {
    path: PathBuf,
    removed: bool,
}

impl ConsumedFile {
    fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => warn(&format!(
                "could not remove the passphrase file {}: {e}; delete it by hand",
                self.path.display()
            )),
        }
    }
}

impl Drop for ConsumedFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Print a warning to stderr. Never panics: a closed stderr must not turn a
/// warning into an abort that skips the passphrase-file guard.
fn warn(message: &str) {
    let _ = writeln!(io::stderr(), "zeta-creds: warning: {message}");
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
    consumed_file: Option<ConsumedFile>,
}

impl Passphrases {
    /// Set up the sources. Chooses nothing and reads nothing yet, but from
    /// here on the `--passphrase-file` (if any, and unless kept) is removed
    /// when this value drops — even if another source wins or the program
    /// fails before reading it: the operator handed it over to be consumed.
    ///
    /// `env_passphrase` is what [`crate::sys::take_env_passphrase`] returned.
    #[must_use]
    pub fn new(opts: SourceOptions, env_passphrase: Option<SecretString>) -> Passphrases {
        let consumed_file = match (&opts.passphrase_file, opts.keep_passphrase_file) {
            (Some(path), false) => Some(ConsumedFile {
                path: path.clone(),
                removed: false,
            }),
            _ => None,
        };
        Passphrases {
            opts,
            env_passphrase,
            source: None,
            remaining: 0,
            consumed_file,
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
            SourceKind::File => self.read_file()?,
            SourceKind::AskPassword => self.ask(prompt, confirm, Self::run_ask_password)?,
            SourceKind::Env => self.take_env()?,
            SourceKind::Tty => self.ask(prompt, confirm, Self::read_tty)?,
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

    /// Unlink the `--passphrase-file` now, unless it is kept. Idempotent; a
    /// file that is already gone is fine; a failure is a warning on stderr.
    /// Also run on drop.
    pub fn scrub(&mut self) {
        if let Some(file) = &mut self.consumed_file {
            file.remove();
        }
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
            let _ = writeln!(
                io::stderr(),
                "{}{ENV_WARNING}",
                crate::msg::prefix(crate::msg::Level::Warning)
            );
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

    fn read_file(&mut self) -> Result<SecretString, Error> {
        let from = SourceKind::File;
        let path = self
            .opts
            .passphrase_file
            .clone()
            .expect("chosen only with a file");
        // O_NOFOLLOW: a symlink is refused, so the entry we read is the one
        // the guard unlinks (unlinking a symlink would leave its target).
        let read = OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .and_then(read_bounded);
        // Consumed right after reading, whether or not that worked.
        self.scrub();
        let buf = read.map_err(|err| read_error(from, &path, err))?;
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

    /// One try of an interactive source: ask, and with `confirm` ask again
    /// and compare in constant time.
    fn ask(
        &self,
        prompt: &Prompt<'_>,
        confirm: bool,
        read: fn(&Self, &str, &str) -> Result<SecretString, Error>,
    ) -> Result<SecretString, Error> {
        let first = read(self, prompt.id, prompt.message)?;
        if confirm {
            let second = read(self, prompt.id, CONFIRM_MESSAGE)?;
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

    /// `<program> --no-tty --id=<id> --timeout=<secs> <message>`: stdin is
    /// `/dev/null`, stdout is the answer, stderr goes to the journal. Never
    /// `/dev/tty`: the boot oneshot has none, and the agents answer instead.
    fn run_ask_password(&self, id: &str, message: &str) -> Result<SecretString, Error> {
        let program = &self.opts.ask_password_program;
        let secs = self.opts.ask_timeout_secs;
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

    /// rpassword opens the terminal itself; only reached when stdin is one.
    fn read_tty(&self, _id: &str, message: &str) -> Result<SecretString, Error> {
        let from = SourceKind::Tty;
        let text = if message.ends_with(char::is_whitespace) {
            message.to_owned()
        } else {
            format!("{message} ")
        };
        let typed =
            Zeroizing::new(rpassword::prompt_password(text).map_err(|err| Error::Read {
                from,
                what: "/dev/tty".to_owned(),
                err,
            })?);
        check_len(from, typed.as_bytes())?;
        // Exact-size copy; `typed` is zeroized on drop.
        Ok(SecretString::from(typed.as_str()))
    }
}

impl Drop for Passphrases {
    fn drop(&mut self) {
        self.scrub();
    }
}

fn read_error(from: SourceKind, path: &Path, err: io::Error) -> Error {
    Error::Read {
        from,
        what: path.display().to_string(),
        err,
    }
}

fn spawn_failure(program: &Path, e: &io::Error) -> String {
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

/// Read to EOF, at most [`READ_LIMIT`] bytes, into a zeroizing buffer
/// allocated once (no reallocation, so no stray unzeroed copies).
fn read_bounded<R: Read>(mut reader: R) -> io::Result<Zeroizing<Vec<u8>>> {
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
fn strip_one_newline(bytes: &[u8]) -> &[u8] {
    bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .unwrap_or(bytes)
}

fn check_len(from: SourceKind, bytes: &[u8]) -> Result<(), Error> {
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
fn finish_stripped(from: SourceKind, raw: &[u8]) -> Result<SecretString, Error> {
    let bytes = strip_one_newline(raw);
    check_len(from, bytes)?;
    let text = std::str::from_utf8(bytes).map_err(|_| Error::NotUtf8 { from })?;
    Ok(SecretString::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::fd::AsRawFd;
    use std::sync::Mutex;

    use tempfile::TempDir;

    /// Held by every test that writes an executable or spawns a process.
    /// Writing a script while another test thread forks lets the child
    /// inherit the write descriptor until it execs; exec'ing the script in
    /// that window fails with ETXTBSY. Serialising the two avoids the race.
    static SPAWN_LOCK: Mutex<()> = Mutex::new(());

    const PROMPT: Prompt<'static> = Prompt {
        id: "zeta-creds:abcd-1234",
        message: "Passphrase for zeta-creds (stick abcd-1234):",
    };

    fn expose(p: &SecretString) -> &str {
        p.expose_secret()
    }

    fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    fn credentials(dir: &TempDir, bytes: &[u8]) -> PathBuf {
        let creds = dir.path().join("creds");
        fs::create_dir(&creds).unwrap();
        fs::write(creds.join(CREDENTIAL_NAME), bytes).unwrap();
        creds
    }

    /// A pipe holding `bytes`, writer closed; returns the read end.
    fn pipe_with(bytes: &[u8]) -> io::PipeReader {
        let (reader, mut writer) = io::pipe().unwrap();
        writer.write_all(bytes).unwrap();
        drop(writer);
        reader
    }

    /// The fake agent plus a per-test wrapper that points it at an answers
    /// file (the tests never touch their own environment).
    struct FakeAsk {
        _dir: TempDir,
        wrapper: PathBuf,
        answers: PathBuf,
    }

    impl FakeAsk {
        fn new(answers: &str) -> FakeAsk {
            let dir = TempDir::new().unwrap();
            let answers_path = dir.path().join("answers");
            fs::write(&answers_path, answers).unwrap();
            let fixture =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-ask-password");
            let wrapper = dir.path().join("ask");
            let script = format!(
                "#!/bin/sh\nFAKE_ASK_ANSWERS='{}'\nexport FAKE_ASK_ANSWERS\nexec '{}' \"$@\"\n",
                answers_path.display(),
                fixture.display()
            );
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o755)
                .open(&wrapper)
                .unwrap();
            file.write_all(script.as_bytes()).unwrap();
            drop(file);
            FakeAsk {
                _dir: dir,
                wrapper,
                answers: answers_path,
            }
        }

        fn options(&self) -> SourceOptions {
            SourceOptions {
                ask_password: true,
                ask_timeout_secs: 7,
                ask_password_program: self.wrapper.clone(),
                ..SourceOptions::default()
            }
        }

        fn log(&self) -> Vec<String> {
            let mut log = self.answers.clone().into_os_string();
            log.push(".log");
            fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    fn lock() -> std::sync::MutexGuard<'static, ()> {
        SPAWN_LOCK.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn credential_beats_fd_file_ask_and_env() {
        let dir = TempDir::new().unwrap();
        let creds = credentials(&dir, b"from-credential\n");
        let file = write(&dir, "pw", b"from-file\n");
        // Not taken: the credential wins, so the reader stays ours to close.
        let reader = pipe_with(b"from-fd\n");
        let opts = SourceOptions {
            credentials_dir: Some(creds),
            passphrase_fd: Some(reader.as_raw_fd()),
            passphrase_file: Some(file.clone()),
            ask_password: true,
            ask_password_program: PathBuf::from("/nonexistent/ask"),
            stdin_is_tty: true,
            ..SourceOptions::default()
        };
        let mut p = Passphrases::new(opts, Some(SecretString::from("from-env")));
        let got = p.next(&PROMPT, false).unwrap().unwrap();
        assert_eq!(expose(&got), "from-credential");
        assert_eq!(p.source(), Some(SourceKind::Credential));
        assert_eq!(p.tries_left(), 0);
        assert!(p.next(&PROMPT, false).unwrap().is_none());
        // The handed-over file is consumed even though another source won.
        assert!(file.exists());
        drop(p);
        assert!(!file.exists());
    }

    #[test]
    fn missing_credential_falls_through() {
        let dir = TempDir::new().unwrap();
        let creds = dir.path().join("creds");
        fs::create_dir(&creds).unwrap();
        fs::write(creds.join("usb-uuid"), b"abcd-1234\n").unwrap();
        let file = write(&dir, "pw", b"from-file\n");
        let opts = SourceOptions {
            credentials_dir: Some(creds),
            passphrase_file: Some(file),
            ..SourceOptions::default()
        };
        let mut p = Passphrases::new(opts, None);
        assert_eq!(
            expose(&p.next(&PROMPT, false).unwrap().unwrap()),
            "from-file"
        );
        assert_eq!(p.source(), Some(SourceKind::File));
    }

    #[test]
    fn fd_beats_file() {
        let dir = TempDir::new().unwrap();
        let file = write(&dir, "pw", b"from-file\n");
        let fd = pipe_with(b"from-fd\n").into_raw_fd();
        let opts = SourceOptions {
            passphrase_fd: Some(fd),
            passphrase_file: Some(file.clone()),
            ..SourceOptions::default()
        };
        let mut p = Passphrases::new(opts, None);
        assert_eq!(expose(&p.next(&PROMPT, false).unwrap().unwrap()), "from-fd");
        assert_eq!(p.source(), Some(SourceKind::Fd));
        assert!(p.next(&PROMPT, false).unwrap().is_none());
        drop(p);
        assert!(!file.exists());
    }

    #[test]
    fn file_beats_ask_password_and_env() {
        let dir = TempDir::new().unwrap();
        let file = write(&dir, "pw", b"from-file\r\n");
        let opts = SourceOptions {
            passphrase_file: Some(file),
            ask_password: true,
            ask_password_program: PathBuf::from("/nonexistent/ask"),
            ..SourceOptions::default()
        };
        let mut p = Passphrases::new(opts, Some(SecretString::from("from-env")));
        assert_eq!(
            expose(&p.next(&PROMPT, false).unwrap().unwrap()),
            "from-file"
        );
        assert_eq!(p.source(), Some(SourceKind::File));
        assert!(p.next(&PROMPT, false).unwrap().is_none());
    }

    #[test]
    fn ask_password_beats_env() {
        let _guard = lock();
        let fake = FakeAsk::new("from-agent\n");
        let mut p = Passphrases::new(fake.options(), Some(SecretString::from("from-env")));
        assert_eq!(
            expose(&p.next(&PROMPT, false).unwrap().unwrap()),
            "from-agent"
        );
        assert_eq!(p.source(), Some(SourceKind::AskPassword));
    }

    #[test]
    fn env_beats_tty_and_yields_once() {
        let opts = SourceOptions {
            stdin_is_tty: true,
            ..SourceOptions::default()
        };
        let mut p = Passphrases::new(opts, Some(SecretString::from("from-env\n")));
        // Taken as it is: no newline stripping for the environment.
        assert_eq!(
            expose(&p.next(&PROMPT, true).unwrap().unwrap()),
            "from-env\n"
        );
        assert_eq!(p.source(), Some(SourceKind::Env));
        assert_eq!(p.tries_left(), 0);
        assert!(p.next(&PROMPT, true).unwrap().is_none());
        assert!(p.next(&PROMPT, true).unwrap().is_none());
    }

    #[test]
    fn empty_env_is_refused() {
        let mut p = Passphrases::new(SourceOptions::default(), Some(SecretString::from("")));
        assert!(matches!(
            p.next(&PROMPT, false),
            Err(Error::Empty {
                from: SourceKind::Env
            })
        ));
        assert!(p.next(&PROMPT, false).unwrap().is_none());
    }

    #[test]
    fn strips_exactly_one_newline() {
        assert_eq!(strip_one_newline(b"pw\n"), b"pw");
        assert_eq!(strip_one_newline(b"pw\r\n"), b"pw");
        assert_eq!(strip_one_newline(b"pw\n\n"), b"pw\n");
        assert_eq!(strip_one_newline(b"pw\r\n\r\n"), b"pw\r\n");
        assert_eq!(strip_one_newline(b"pw\r"), b"pw\r");
        assert_eq!(strip_one_newline(b"pw"), b"pw");
        assert_eq!(strip_one_newline(b" pw \n"), b" pw ");
    }

    fn from_file(bytes: &[u8]) -> Result<Option<SecretString>, Error> {
        let dir = TempDir::new().unwrap();
        let file = write(&dir, "pw", bytes);
        let opts = SourceOptions {
            passphrase_file: Some(file),
            ..SourceOptions::default()
        };
        Passphrases::new(opts, None).next(&PROMPT, false)
    }

    fn from_fd(bytes: &[u8]) -> Result<Option<SecretString>, Error> {
        let opts = SourceOptions {
            passphrase_fd: Some(pipe_with(bytes).into_raw_fd()),
            ..SourceOptions::default()
        };
        Passphrases::new(opts, None).next(&PROMPT, false)
    }

    fn from_credential(bytes: &[u8]) -> Result<Option<SecretString>, Error> {
        let dir = TempDir::new().unwrap();
        let opts = SourceOptions {
            credentials_dir: Some(credentials(&dir, bytes)),
            ..SourceOptions::default()
        };
        Passphrases::new(opts, None).next(&PROMPT, false)
    }

    #[test]
    fn newline_stripping_per_source() {
        for read in [from_file, from_fd, from_credential] {
            assert_eq!(expose(&read(b"pw\n").unwrap().unwrap()), "pw");
            assert_eq!(expose(&read(b"pw\r\n").unwrap().unwrap()), "pw");
            assert_eq!(expose(&read(b"pw\n\n").unwrap().unwrap()), "pw\n");
            assert_eq!(expose(&read(b"pw").unwrap().unwrap()), "pw");
        }
    }

    #[test]
    fn empty_is_refused() {
        assert!(matches!(
            from_file(b"\n"),
            Err(Error::Empty {
                from: SourceKind::File
            })
        ));
        assert!(matches!(
            from_fd(b""),
            Err(Error::Empty {
                from: SourceKind::Fd
            })
        ));
        assert!(matches!(
            from_credential(b"\r\n"),
            Err(Error::Empty {
                from: SourceKind::Credential
            })
        ));
    }

    #[test]
    fn length_limit() {
        let mut at_limit = vec![b'a'; MAX_PASSPHRASE_LEN];
        at_limit.extend_from_slice(b"\r\n");
        let got = from_file(&at_limit).unwrap().unwrap();
        assert_eq!(got.expose_secret().len(), MAX_PASSPHRASE_LEN);

        let over = vec![b'a'; MAX_PASSPHRASE_LEN + 1];
        assert!(matches!(
            from_file(&over),
            Err(Error::TooLong {
                from: SourceKind::File
            })
        ));
        // Over the limit even after stripping: MAX + 1 bytes then "\r\n".
        let mut over_crlf = vec![b'a'; MAX_PASSPHRASE_LEN + 1];
        over_crlf.extend_from_slice(b"\r\n");
        assert!(matches!(from_file(&over_crlf), Err(Error::TooLong { .. })));
        // Far larger than the limit: refused after a bounded read.
        let huge = vec![b'a'; 1 << 20];
        assert!(matches!(from_file(&huge), Err(Error::TooLong { .. })));
        let env = "b".repeat(MAX_PASSPHRASE_LEN + 1);
        let mut p = Passphrases::new(SourceOptions::default(), Some(SecretString::from(env)));
        assert!(matches!(
            p.next(&PROMPT, false),
            Err(Error::TooLong {
                from: SourceKind::Env
            })
        ));
    }

    #[test]
    fn non_utf8_is_refused() {
        assert!(matches!(
            from_file(b"\xff\xfe\n"),
            Err(Error::NotUtf8 {
                from: SourceKind::File
            })
        ));
    }

    #[test]
    fn file_is_unlinked_right_after_reading() {
        let dir = TempDir::new().unwrap();
        let file = write(&dir, "pw", b"secret\n");
        let opts = SourceOptions {
            passphrase_file: Some(file.clone()),
            ..SourceOptions::default()
        };
        let mut p = Passphrases::new(opts, None);
        assert_eq!(expose(&p.next(&PROMPT, false).unwrap().unwrap()), "secret");
        assert!(!file.exists());
        p.scrub();
        p.scrub();
    }

    #[test]
    fn file_is_unlinked_after_a_failed_read() {
        let dir = TempDir::new().unwrap();
        let file = write(&dir, "pw", b"\n");
        let opts = SourceOptions {
            passphrase_file: Some(file.clone()),
            ..SourceOptions::default()
        };
        let mut p = Passphrases::new(opts, None);
        assert!(matches!(p.next(&PROMPT, false), Err(Error::Empty { .. })));
        assert!(!file.exists());
    }

    #[test]
    fn file_is_unlinked_on_drop_when_never_read() {
        let dir = TempDir::new().unwrap();
        let file = write(&dir, "pw", b"secret\n");
        let opts = SourceOptions {
            passphrase_file: Some(file.clone()),
            ..SourceOptions::default()
        };
        let p = Passphrases::new(opts, None);
        assert!(file.exists());
        drop(p);
        assert!(!file.exists());
    }

    #[test]
    fn scrub_tolerates_a_missing_file() {
        let dir = TempDir::new().unwrap();
        let opts = SourceOptions {
            passphrase_file: Some(dir.path().join("never-there")),
            ..SourceOptions::default()
        };
        let mut p = Passphrases::new(opts, None);
        p.scrub();
        assert!(matches!(
            p.next(&PROMPT, false),
            Err(Error::Read {
                from: SourceKind::File,
                ..
            })
        ));
    }

    #[test]
    fn file_is_kept_with_keep_flag() {
        let dir = TempDir::new().unwrap();
        let file = write(&dir, "pw", b"secret\n");
        let opts = SourceOptions {
            passphrase_file: Some(file.clone()),
            keep_passphrase_file: true,
            ..SourceOptions::default()
        };
        let mut p = Passphrases::new(opts, None);
        assert_eq!(expose(&p.next(&PROMPT, false).unwrap().unwrap()), "secret");
        p.scrub();
        assert!(file.exists());
        drop(p);
        assert!(file.exists());
    }

    #[test]
    fn symlinked_file_is_refused() {
        let dir = TempDir::new().unwrap();
        let target = write(&dir, "target", b"secret\n");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let opts = SourceOptions {
            passphrase_file: Some(link.clone()),
            ..SourceOptions::default()
        };
        let mut p = Passphrases::new(opts, None);
        assert!(matches!(
            p.next(&PROMPT, false),
            Err(Error::Read {
                from: SourceKind::File,
                ..
            })
        ));
        // The link is consumed; the file it pointed at is left alone.
        assert!(fs::symlink_metadata(&link).is_err());
        assert!(target.exists());
    }

    #[test]
    fn fd_source_reads_a_pipe() {
        let reader = pipe_with(b"from-fd\n");
        let fd = reader.into_raw_fd();
        let opts = SourceOptions {
            passphrase_fd: Some(fd),
            ..SourceOptions::default()
        };
        let mut p = Passphrases::new(opts, None);
        assert_eq!(expose(&p.next(&PROMPT, false).unwrap().unwrap()), "from-fd");
        assert_eq!(p.source(), Some(SourceKind::Fd));
        assert_eq!(p.tries_left(), 0);
        assert!(p.next(&PROMPT, false).unwrap().is_none());
    }

    #[test]
    fn bad_fd_is_a_read_error() {
        let opts = SourceOptions {
            passphrase_fd: Some(-1),
            ..SourceOptions::default()
        };
        let mut p = Passphrases::new(opts, None);
        let err = p.next(&PROMPT, false).unwrap_err();
        assert!(matches!(
            err,
            Error::Read {
                from: SourceKind::Fd,
                ..
            }
        ));
        assert!(err.to_string().contains("fd -1"), "{err}");
    }

    #[test]
    fn ask_password_three_tries() {
        let _guard = lock();
        let fake = FakeAsk::new("wrong\nwrong\nright\n");
        let mut p = Passphrases::new(fake.options(), None);
        assert_eq!(p.tries_left(), 0);
        assert_eq!(expose(&p.next(&PROMPT, false).unwrap().unwrap()), "wrong");
        assert_eq!(p.source(), Some(SourceKind::AskPassword));
        assert_eq!(p.tries_left(), 2);
        assert_eq!(expose(&p.next(&PROMPT, false).unwrap().unwrap()), "wrong");
        assert_eq!(p.tries_left(), 1);
        assert_eq!(expose(&p.next(&PROMPT, false).unwrap().unwrap()), "right");
        assert_eq!(p.tries_left(), 0);
        assert!(p.next(&PROMPT, false).unwrap().is_none());
        let log = fake.log();
        assert_eq!(log.len(), 3, "{log:?}");
        for line in &log {
            assert_eq!(
                line,
                "--no-tty --id=zeta-creds:abcd-1234 --timeout=7 \
                 Passphrase for zeta-creds (stick abcd-1234):"
            );
        }
    }

    #[test]
    fn ask_password_confirm_match() {
        let _guard = lock();
        let fake = FakeAsk::new("same\nsame\n");
        let mut p = Passphrases::new(fake.options(), None);
        assert_eq!(expose(&p.next(&PROMPT, true).unwrap().unwrap()), "same");
        let log = fake.log();
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(log[1].ends_with(CONFIRM_MESSAGE), "{log:?}");
    }

    #[test]
    fn ask_password_confirm_mismatch() {
        let _guard = lock();
        let fake = FakeAsk::new("first\nsecond\nthird\nthird\n");
        let mut p = Passphrases::new(fake.options(), None);
        assert!(matches!(p.next(&PROMPT, true), Err(Error::Mismatch)));
        assert_eq!(p.tries_left(), 2);
        // The failed try is used up; the next one asks again.
        assert_eq!(expose(&p.next(&PROMPT, true).unwrap().unwrap()), "third");
        assert_eq!(p.tries_left(), 1);
    }

    #[test]
    fn ask_password_without_answer_names_program_and_status() {
        let _guard = lock();
        let fake = FakeAsk::new("");
        let mut p = Passphrases::new(fake.options(), None);
        let err = p.next(&PROMPT, false).unwrap_err();
        let Error::AskPassword { reason } = &err else {
            panic!("{err:?}");
        };
        assert!(
            reason.contains(&fake.wrapper.display().to_string()),
            "{reason}"
        );
        assert!(reason.contains("exit status: 1"), "{reason}");
        assert!(reason.contains("within 7 s"), "{reason}");
    }

    #[test]
    fn ask_password_not_installed() {
        let _guard = lock();
        let opts = SourceOptions {
            ask_password: true,
            ask_password_program: PathBuf::from("/nonexistent/systemd-ask-password"),
            ..SourceOptions::default()
        };
        let mut p = Passphrases::new(opts, None);
        let err = p.next(&PROMPT, false).unwrap_err();
        let Error::AskPassword { reason } = &err else {
            panic!("{err:?}");
        };
        assert!(reason.contains("is systemd installed?"), "{reason}");
        assert!(
            reason.contains("/nonexistent/systemd-ask-password"),
            "{reason}"
        );
    }

    #[test]
    fn ask_password_output_is_stripped_and_checked() {
        let _guard = lock();
        let fake = FakeAsk::new("\nété\r\n");
        let mut p = Passphrases::new(fake.options(), None);
        assert!(matches!(
            p.next(&PROMPT, false),
            Err(Error::Empty {
                from: SourceKind::AskPassword
            })
        ));
        assert_eq!(expose(&p.next(&PROMPT, false).unwrap().unwrap()), "été");
    }

    #[test]
    fn no_source_without_a_terminal() {
        let mut p = Passphrases::new(SourceOptions::default(), None);
        let err = p.next(&PROMPT, false).unwrap_err();
        assert!(matches!(err, Error::NoSource));
        assert_eq!(p.source(), None);
        let message = err.to_string();
        for needle in [
            "$CREDENTIALS_DIRECTORY/passphrase",
            "LoadCredential=",
            "--passphrase-fd N",
            "--passphrase-file FILE",
            "--ask-password",
            "ZETA_CREDS_PASSPHRASE",
            "terminal",
        ] {
            assert!(message.contains(needle), "{needle} missing from {message}");
        }
    }

    #[test]
    fn messages_are_lowercase_without_final_period() {
        let errors = [
            Error::NoSource,
            Error::Empty {
                from: SourceKind::Tty,
            },
            Error::TooLong {
                from: SourceKind::Fd,
            },
            Error::Read {
                from: SourceKind::File,
                what: "/x".to_owned(),
                err: io::Error::from(io::ErrorKind::NotFound),
            },
            Error::AskPassword {
                reason: spawn_failure(
                    Path::new("systemd-ask-password"),
                    &io::ErrorKind::NotFound.into(),
                ),
            },
            Error::Mismatch,
            Error::NotUtf8 {
                from: SourceKind::Credential,
            },
        ];
        for err in errors {
            let message = err.to_string();
            assert!(message.starts_with(char::is_lowercase), "{message}");
            assert!(!message.ends_with('.'), "{message}");
        }
    }
}
