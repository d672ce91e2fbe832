//! What the commands print: the text and JSON of their reports, and the
//! lines for a person at a terminal (the key derivation, progress).
//!
//! Output rules (after age's `tui.go`): results go to stdout; everything
//! else goes to stderr through `zeta_creds::msg`, prefixed `zeta-creds:`,
//! lowercase, without a final period, as much of it as `-q`/`-v` ask
//! (`msg::Verbosity`). A command returns a typed report (`cmd/`); its
//! `--json` document (`schema.rs`, docs/JSON.md) is made from that report
//! in `json.rs`, and its text by the [`Text`] impl in this module's
//! per-command files, so the two cannot say different things.
#![forbid(unsafe_code)]

mod bundle;
mod diff;
mod inspect;
pub mod json;
mod manifest;
pub mod progress;
mod rebundle;
mod rekey;
mod restore;
pub mod schema;
mod status;
mod verify;

use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use zeta_creds::envelope;
use zeta_creds::msg::{self, Verbosity};
use zeta_creds::{info, warning};

use crate::error::CliError;

pub use bundle::PickSummary;

/// A report's text form.
pub trait Text {
    /// Warnings and failures for stderr, printed before the result.
    fn messages_before(&self) {}
    /// The result, for stdout.
    fn text(&self, out: &mut dyn Write) -> io::Result<()>;
    /// A note for stderr, printed after the result.
    fn messages_after(&self) {}
}

impl Text for crate::cmd::completions::CompletionsReport {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&self.script)
    }
}

/// Whether this run prints its result as JSON (`--json`): then stdout
/// holds the one JSON document, and a table printed mid-run goes to stderr.
static JSON: AtomicBool = AtomicBool::new(false);

/// Say, once, before anything is printed, that this run prints JSON.
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// Print a report as text: on stdout, or on stderr (unless `-q`) in a
/// `--json` run, where stdout is the JSON document's alone.
pub fn text<R: Text>(report: &R) -> Result<(), CliError> {
    report.messages_before();
    if JSON.load(Ordering::Relaxed) {
        if msg::verbosity() > Verbosity::Quiet {
            let mut err = io::stderr().lock();
            let _ = report.text(&mut err).and_then(|()| err.flush());
        }
    } else {
        let mut out = io::stdout().lock();
        report
            .text(&mut out)
            .and_then(|()| out.flush())
            .map_err(CliError::Output)?;
    }
    report.messages_after();
    Ok(())
}

/// Whether stderr is a terminal a person watches (not the journal, not a
/// file) and `-q` was not given: only then are the key derivation line and
/// progress shown.
pub fn stderr_is_watched() -> bool {
    msg::verbosity() > Verbosity::Quiet && io::stderr().is_terminal() && !msg::stderr_is_journal()
}

/// Before a key derivation at work factor `log_n`, on a terminal only: one
/// line saying what it costs and about how long it takes here (measured at
/// a small work factor and scaled: scrypt's time doubles with each step).
pub fn deriving_key(log_n: u8) {
    if !stderr_is_watched() {
        return;
    }
    let estimate = scrypt_estimate(log_n);
    msg::emit(
        msg::Level::Notice,
        false,
        format_args!(
            "deriving the key (work factor {log_n}, ~{:.1} s here, {} MiB)...",
            estimate.as_secs_f64(),
            kdf_memory_mib(log_n)
        ),
    );
}

/// How long scrypt at `log_n` (r = 8, p = 1) should take here: one run at
/// a work factor of at most [`CALIBRATION_LOG_N`] (a few milliseconds),
/// scaled by 2 per step above it.
fn scrypt_estimate(log_n: u8) -> Duration {
    let small = log_n.min(CALIBRATION_LOG_N);
    let started = Instant::now();
    let mut out = [0u8; 32];
    if let Ok(params) = scrypt::Params::new(small, 8, 1) {
        let _ = scrypt::scrypt(b"calibration", b"calibration", &params, &mut out);
    }
    started.elapsed() * (1u32 << (log_n - small))
}

/// The work factor [`scrypt_estimate`] measures at: 4 MiB.
const CALIBRATION_LOG_N: u8 = 12;

/// After a key derivation, with `-v` only: what the work factor cost
/// here (guidance; the journal of a boot-time restore gets it with `-v`).
pub fn derived_key(log_n: u8, took: Duration) {
    info!(
        "key derivation took {} ms and {} MiB of memory here (work factor {log_n})",
        took.as_millis(),
        kdf_memory_mib(log_n)
    );
}

/// Work factors below this print a warning: they are for tests.
const TEST_WORK_FACTOR_BELOW: u8 = 15;

/// Warn that a work factor below [`TEST_WORK_FACTOR_BELOW`] is for tests.
pub fn warn_test_work_factor(log_n: u8) {
    if log_n < TEST_WORK_FACTOR_BELOW {
        warning!(
            "work factor {log_n} is for tests: each offline guess at the passphrase costs {}x less than at the default {}; use {} or more for a real blob",
            1u64 << (envelope::DEFAULT_LOG_N - log_n.min(envelope::DEFAULT_LOG_N)),
            envelope::DEFAULT_LOG_N,
            TEST_WORK_FACTOR_BELOW
        );
    }
}

/// A warning for each path the manifest points at that is not carried for
/// a reason the operator did not choose (symlinks, sockets, devices).
pub fn warn_skipped(pick: &zeta_creds::bundle::Pick) {
    for s in pick.skipped.iter().filter(|s| s.is_warning()) {
        warning!("skipped {}: {}", s.path, s.reason());
    }
}

/// Memory scrypt needs at work factor `log_n` (r = 8: 1 KiB times N),
/// FORMAT.md §3.2.
pub fn kdf_memory_mib(log_n: u8) -> u64 {
    envelope::scrypt_memory(log_n) >> 20
}

/// What the work factor cost here, as guidance: the work factor is fixed
/// at bundle time and never calibrated (FORMAT.md §3.2), because the
/// machine that restores may be much slower than this one.
fn kdf_guidance(log_n: u8, took: Duration) -> String {
    format!(
        "key derivation took {} ms and {} MiB of memory here (work factor {log_n}); a restore needs that memory free, and a slower machine takes longer",
        took.as_millis(),
        kdf_memory_mib(log_n)
    )
}

/// `previous blob kept as BLOB.prev (generation N)`, after a bundle or a
/// rekey replaced a blob.
fn kept_previous(out: &mut dyn Write, blob: &Path, generation: u64) -> io::Result<()> {
    writeln!(
        out,
        "previous blob kept as {}{} (generation {generation})",
        blob.display(),
        zeta_creds::bundle::PREV_SUFFIX,
    )
}

/// `1 file`, `2 files`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `(none)` for an empty name (user, persona), else the name.
fn or_none(name: &str) -> &str {
    if name.is_empty() { "(none)" } else { name }
}

/// `, persona NAME`, or nothing for the empty persona.
fn persona_suffix(persona: &str) -> String {
    if persona.is_empty() {
        String::new()
    } else {
        format!(", persona {persona}")
    }
}

pub use zeta_creds::msg::utc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plural_and_none() {
        assert_eq!(plural(1, "file", "files"), "1 file");
        assert_eq!(plural(0, "file", "files"), "0 files");
        assert_eq!(or_none(""), "(none)");
        assert_eq!(persona_suffix("work"), ", persona work");
        assert_eq!(persona_suffix(""), "");
    }
}
