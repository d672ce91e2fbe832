//! What the commands print: the text and JSON of their reports.
//!
//! Output rules (after age's `tui.go`): results go to stdout; everything
//! else goes to stderr through `zeta_creds::msg`, prefixed `zeta-creds:`,
//! lowercase, without a final period. A command returns a typed report
//! (`cmd/`); its `--json` is that report serialized, and its text is
//! written from the same report by the [`Text`] impl in this module's
//! per-command files, so the two cannot say different things.
#![forbid(unsafe_code)]

mod bundle;
mod diff;
mod inspect;
mod manifest;
mod rebundle;
mod rekey;
mod restore;
mod status;
mod verify;

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use zeta_creds::envelope;
use zeta_creds::warning;

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

/// Print a report that has only a text form.
pub fn text<R: Text>(report: &R) -> Result<(), CliError> {
    report.messages_before();
    let mut out = io::stdout().lock();
    report
        .text(&mut out)
        .and_then(|()| out.flush())
        .map_err(CliError::Output)?;
    drop(out);
    report.messages_after();
    Ok(())
}

/// Print a report as pretty JSON when `json`, else as text.
pub fn text_or_json<R: Text + Serialize>(report: &R, json: bool) -> Result<(), CliError> {
    if !json {
        return text(report);
    }
    report.messages_before();
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, report)
        .map_err(io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush())
        .map_err(CliError::Output)?;
    drop(out);
    report.messages_after();
    Ok(())
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
