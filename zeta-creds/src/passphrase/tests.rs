//! Tests of the passphrase sources.

use super::*;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use super::ask::spawn_failure;

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

/// `--passphrase-file path` fails with a read error.
fn assert_read_error(path: PathBuf) {
    let opts = SourceOptions {
        passphrase_file: Some(path),
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
}

/// The next passphrase is `want`, from `from`.
fn assert_yields(p: &mut Passphrases, want: &str, from: SourceKind) {
    assert_eq!(expose(&p.next(&PROMPT, false).unwrap().unwrap()), want);
    assert_eq!(p.source(), Some(from));
}

/// A `--passphrase-file` holding `bytes`, and the sources reading it.
fn file_source(bytes: &[u8]) -> (TempDir, PathBuf, Passphrases) {
    let dir = TempDir::new().unwrap();
    let file = write(&dir, "pw", bytes);
    let opts = SourceOptions {
        passphrase_file: Some(file.clone()),
        ..SourceOptions::default()
    };
    (dir, file, Passphrases::new(opts, None))
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
    assert_yields(&mut p, "from-credential", SourceKind::Credential);
    assert_eq!(p.tries_left(), 0);
    assert!(p.next(&PROMPT, false).unwrap().is_none());
    // Another source won: the file was never read, so it is not consumed.
    drop(p);
    assert!(file.exists());
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
    assert_yields(&mut p, "from-file", SourceKind::File);
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
    assert_yields(&mut p, "from-fd", SourceKind::Fd);
    assert!(p.next(&PROMPT, false).unwrap().is_none());
    drop(p);
    assert!(file.exists(), "a file the fd won over is not consumed");
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
    assert_yields(&mut p, "from-file", SourceKind::File);
    assert!(p.next(&PROMPT, false).unwrap().is_none());
}

#[test]
fn ask_password_beats_env() {
    let _guard = lock();
    let fake = FakeAsk::new("from-agent\n");
    let mut p = Passphrases::new(fake.options(), Some(SecretString::from("from-env")));
    assert_yields(&mut p, "from-agent", SourceKind::AskPassword);
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
    file_source(bytes).2.next(&PROMPT, false)
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
    let (_dir, file, mut p) = file_source(b"secret\n");
    assert_eq!(expose(&p.next(&PROMPT, false).unwrap().unwrap()), "secret");
    assert!(!file.exists());
}

#[test]
fn file_is_unlinked_after_a_failed_read() {
    let (_dir, file, mut p) = file_source(b"\n");
    assert!(matches!(p.next(&PROMPT, false), Err(Error::Empty { .. })));
    assert!(!file.exists());
}

#[test]
fn only_a_file_read_as_the_passphrase_is_consumed() {
    let (_dir, file, p) = file_source(b"secret\n");
    // Set up but never asked (a failure before the passphrase is needed).
    drop(p);
    assert!(file.exists(), "a file never read is not consumed");
    let mut p = Passphrases::new(
        SourceOptions {
            passphrase_file: Some(file.clone()),
            ..SourceOptions::default()
        },
        None,
    );
    assert_eq!(expose(&p.next(&PROMPT, false).unwrap().unwrap()), "secret");
    assert!(!file.exists(), "read as the passphrase: consumed");
}

#[test]
fn a_missing_file_is_a_read_error() {
    let dir = TempDir::new().unwrap();
    assert_read_error(dir.path().join("never-there"));
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
    assert!(file.exists());
    drop(p);
    assert!(file.exists());
}

#[test]
fn a_refused_symlink_passphrase_file_is_not_deleted() {
    let dir = TempDir::new().unwrap();
    let target = write(&dir, "target", b"secret\n");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_read_error(link.clone());
    // Refused by the no-symlink open, so not read: the link and the file
    // it points at both stay (`--passphrase-file /dev/stdin` as root once
    // deleted /dev/stdin).
    assert!(fs::symlink_metadata(&link).is_ok());
    assert!(target.exists());
}

#[test]
fn a_fifo_passphrase_file_is_consumed_after_the_read() {
    let dir = TempDir::new().unwrap();
    let fifo = dir.path().join("pw.fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut w = OpenOptions::new().write(true).open(&fifo).unwrap();
            w.write_all(b"through-a-fifo\n").unwrap();
        })
    };
    let opts = SourceOptions {
        passphrase_file: Some(fifo.clone()),
        ..SourceOptions::default()
    };
    let mut p = Passphrases::new(opts, None);
    let got = p.next(&PROMPT, false).unwrap().unwrap();
    writer.join().unwrap();
    assert_eq!(expose(&got), "through-a-fifo");
    assert!(fs::symlink_metadata(&fifo).is_err(), "the FIFO is consumed");
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
    assert_yields(&mut p, "from-fd", SourceKind::Fd);
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
    assert_yields(&mut p, "wrong", SourceKind::AskPassword);
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
