//! The `zeta-creds` commands the step runs: `inspect`, `diff`, `bundle`,
//! `verify`, `rekey`. Each is its own process, as installers and tests have
//! always seen it (one command per job, each visible in `ps`), with the
//! passphrase on its stdin (`--passphrase-fd 0`, a pipe: never an argument,
//! a file or the environment). Outcomes are typed: the exit status, and
//! the `--json` reports parsed with serde; nothing is read from stderr.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeta_creds::msg::Verbosity;
use zeta_creds::sys::PASSPHRASE_ENV;

use super::exit::{Fail, StepExit};
use super::report::Verified;

/// Look a program up as `command -v` does: a name with a slash must be an
/// executable file; a bare name is searched on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return executable(&p).then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

/// The exit status as a shell reports it: the code, or 128 + the signal.
pub fn status_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(255),
        (None, None) => 1,
    }
}

/// How a command ended: its status and, when asked for, its stdout.
#[derive(Debug)]
pub struct Ran {
    /// 0 on success.
    pub code: u8,
    /// Captured stdout (empty unless captured).
    pub stdout: Vec<u8>,
    /// Captured stderr (empty unless captured).
    pub stderr: Vec<u8>,
}

/// The binary the step runs.
#[derive(Debug, Clone)]
pub struct ZetaCreds {
    path: PathBuf,
}

impl ZetaCreds {
    /// `--zeta-creds PATH` (looked up like `command -v`), else the binary
    /// running the step.
    pub fn resolve(option: Option<&str>) -> Result<ZetaCreds, Fail> {
        let found = match option {
            Some(name) => which(name),
            None => std::env::current_exe().ok().or_else(|| which("zeta-creds")),
        };
        let name = option.unwrap_or("zeta-creds");
        found.map(|path| ZetaCreds { path }).ok_or_else(|| {
            Fail::new(
                StepExit::Missing,
                format!("zeta-creds not found ('{name}')"),
            )
            .hint("install it on the live system, or pass --zeta-creds PATH")
        })
    }

    /// Run `zeta-creds ARGS`: stdin the passphrase (with `--passphrase-fd
    /// 0`) or /dev/null, so it never prompts on its own; stdout and stderr
    /// shown unless captured.
    pub fn run<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        passphrase: Option<&SecretString>,
        capture_stdout: bool,
        capture_stderr: bool,
    ) -> Result<Ran, Fail> {
        let mut cmd = Command::new(&self.path);
        // `zeta-creds -q/-v install-step`: the same for each child.
        match zeta_creds::msg::verbosity() {
            Verbosity::Quiet => cmd.arg("--quiet"),
            Verbosity::Normal => &mut cmd,
            Verbosity::Verbose => cmd.arg("--verbose"),
        };
        cmd.args(args).env_remove(PASSPHRASE_ENV);
        if passphrase.is_some() {
            cmd.args(["--passphrase-fd", "0"]).stdin(Stdio::piped());
        } else {
            cmd.stdin(Stdio::null());
        }
        cmd.stdout(if capture_stdout {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
        cmd.stderr(if capture_stderr {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
        let mut child = cmd.spawn().map_err(|e| {
            Fail::new(
                StepExit::Failed,
                format!("cannot run {}: {e}", self.path.display()),
            )
            .hint("pass a working zeta-creds binary with --zeta-creds PATH")
        })?;
        if let (Some(pass), Some(mut stdin)) = (passphrase, child.stdin.take()) {
            // A child that exits before reading (a usage error) gets EPIPE
            // on our side: its exit status says what went wrong.
            let _ = stdin.write_all(pass.expose_secret().as_bytes());
        }
        let out = child.wait_with_output().map_err(|e| {
            Fail::new(
                StepExit::Failed,
                format!("cannot wait for {}: {e}", self.path.display()),
            )
        })?;
        Ok(Ran {
            code: status_code(out.status),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

/// An argument list, built with `OsString`s (paths need not be UTF-8).
#[derive(Debug, Default)]
pub struct Args(pub Vec<OsString>);

impl Args {
    /// Start with a subcommand.
    pub fn new(sub: &str) -> Args {
        Args(vec![sub.into()])
    }

    /// Add `flag value`.
    #[must_use]
    pub fn opt(mut self, flag: &str, value: impl AsRef<OsStr>) -> Args {
        self.0.push(flag.into());
        self.0.push(value.as_ref().to_owned());
        self
    }

    /// Add a bare flag.
    #[must_use]
    pub fn flag(mut self, flag: &str) -> Args {
        self.0.push(flag.into());
        self
    }

    /// As `running: zeta-creds ARGS` shows them.
    pub fn display(&self) -> String {
        let words: Vec<String> = self
            .0
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        words.join(" ")
    }
}

/// The fields of `inspect --json` the step reads (the header, no
/// passphrase needed).
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
pub struct HeaderJson {
    /// The stick the blob is bound to (normalized).
    #[serde(default)]
    pub usb_uuid: String,
    /// The host it was sealed for, when the format records it.
    #[serde(default)]
    pub host: Option<String>,
    /// The blob's generation.
    #[serde(default)]
    pub generation: Option<u64>,
    /// The persona it was bundled for (empty: none; `null` in the JSON).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub persona: String,
    /// Its scrypt work factor.
    #[serde(default)]
    pub work_factor: Option<u8>,
}

/// A string that JSON may give as `null` (docs/JSON.md: an empty persona
/// is `null`), read as the empty string.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Option::<String>::deserialize(d).map(Option::unwrap_or_default)
}

/// The fields of `verify --json` the step reads.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
pub struct VerifyJson {
    /// The stick the blob is bound to (normalized).
    #[serde(default)]
    pub usb_uuid: Option<String>,
    /// Entries in the payload (`counts.entries`).
    #[serde(default)]
    pub counts: Option<VerifyCountsJson>,
    /// The blob's generation.
    #[serde(default)]
    pub generation: Option<u64>,
    /// The manifest user.
    #[serde(default)]
    pub user: Option<String>,
    /// The persona (empty: none).
    #[serde(default)]
    pub persona: Option<String>,
    /// Its scrypt work factor.
    #[serde(default)]
    pub work_factor: Option<u64>,
}

/// The counts of `verify --json` the step reads.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
pub struct VerifyCountsJson {
    /// Entries in the payload.
    #[serde(default)]
    pub entries: Option<u64>,
}

impl VerifyJson {
    /// Parse `verify --json`'s stdout; anything unreadable is all unknown.
    pub fn parse(stdout: &[u8]) -> VerifyJson {
        serde_json::from_slice(stdout).unwrap_or_default()
    }

    /// What the summary prints.
    pub fn verified(&self) -> Verified {
        Verified {
            entries: self.counts.as_ref().and_then(|c| c.entries),
            user: self.user.clone(),
            generation: self.generation,
            persona: self.persona.clone(),
            work_factor: self.work_factor,
        }
    }
}

impl HeaderJson {
    /// Parse `inspect --json`'s stdout; `None` if it is not that.
    pub fn parse(stdout: &[u8]) -> Option<HeaderJson> {
        serde_json::from_slice(stdout).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_read_as_json_not_by_pattern() {
        let h = HeaderJson::parse(
            br#"{"blob": "/e/zeta-creds.enc", "authenticated": false, "usb_uuid": "dead-beef",
                "work_factor": 10, "generation": 3, "persona": null, "note": "x \"persona\": \"fake\""}"#,
        )
        .unwrap();
        assert_eq!(
            h,
            HeaderJson {
                usb_uuid: "dead-beef".into(),
                host: None,
                generation: Some(3),
                persona: String::new(),
                work_factor: Some(10),
            }
        );
        assert_eq!(HeaderJson::parse(b"not json"), None);
        let v = VerifyJson::parse(
            br#"{"usb_uuid": "dead-beef", "counts": {"entries": 8}, "generation": 1, "user": "zeta", "persona": "reviewer", "work_factor": 21}"#,
        );
        assert_eq!(v.usb_uuid.as_deref(), Some("dead-beef"));
        let s = v.verified();
        assert_eq!(
            (s.entries, s.generation, s.work_factor),
            (Some(8), Some(1), Some(21))
        );
        assert_eq!(VerifyJson::parse(b""), VerifyJson::default());
    }

    #[test]
    fn statuses_as_a_shell_reports_them() {
        assert_eq!(status_code(ExitStatus::from_raw(6 << 8)), 6);
        assert_eq!(status_code(ExitStatus::from_raw(15)), 143);
    }

    #[test]
    fn which_is_command_v() {
        assert!(which("/bin/sh").is_some() || which("sh").is_some());
        assert_eq!(which("/nonexistent/zeta-creds"), None);
        assert_eq!(which("zeta-creds-no-such-program-on-path"), None);
    }

    #[test]
    fn a_child_gets_the_passphrase_on_stdin_and_the_fd_flag() {
        let zc = ZetaCreds {
            path: which("sh").unwrap(),
        };
        let pass = SecretString::from("correct horse");
        // sh -c SCRIPT --passphrase-fd 0: $0 and $1 are the flag and the fd.
        let ran = zc
            .run(
                &["-c", "cat; printf '|%s|%s' \"$0\" \"$1\""],
                Some(&pass),
                true,
                false,
            )
            .unwrap();
        assert_eq!(ran.code, 0);
        assert_eq!(
            String::from_utf8(ran.stdout).unwrap(),
            "correct horse|--passphrase-fd|0"
        );
        let ran = zc.run(&["-c", "exit 7"], None, false, false).unwrap();
        assert_eq!(ran.code, 7);
    }
}
