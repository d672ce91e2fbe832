//! Messages on stderr: `zeta-creds: ...`, lowercase, no final period.
//!
//! When stderr is connected to the journal (systemd sets `JOURNAL_STREAM`
//! to the device and inode of that stream), each line starts with a syslog
//! priority prefix such as `<3>`, so `journalctl -p err -u
//! zeta-creds-restore` finds the failures. The check compares the device and
//! inode, as systemd.exec(5) recommends, so a redirected stderr in a shell
//! started from a unit does not get prefixes.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::fmt::{self, Arguments, Write as _};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

/// Whether `c` must not reach a terminal or the journal as it is: a C0 or
/// C1 control character or DEL (a newline would start a forged line, an
/// ESC a terminal escape sequence), a line or paragraph separator, or a
/// bidirectional override that reorders what the operator reads.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
}

/// A name or path made safe for human-readable output (stdout text,
/// stderr, the journal): every control character, line separator and
/// bidirectional override is written as an escape (`\n`, `\t`, `\r`,
/// `\u{1b}`), so a file name cannot start a forged log line or send an
/// escape sequence to the operator's terminal. Everything else is kept as
/// it is. JSON output never goes through this: serde escapes it exactly.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`escape`] for bytes that may not be UTF-8 (a file name read from a
/// directory): each byte that is not part of valid UTF-8 is written as
/// `\xNN`, so the operator sees which name is meant.
pub fn escape_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return escape(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(&escape(chunk.valid()));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}

/// [`escape`] as a `Display` wrapper, for `format!("{}", Escaped(name))`.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(self.0))
    }
}

/// syslog priorities used by zeta-creds.
#[derive(Debug, Clone, Copy)]
pub enum Level {
    /// `LOG_ERR`: a failure.
    Error = 3,
    /// `LOG_WARNING`: something the operator should know.
    Warning = 4,
    /// `LOG_NOTICE`: progress worth a line.
    Notice = 5,
    /// `LOG_INFO`: detail.
    Info = 6,
    /// `LOG_DEBUG`: printed only with `-v`, like [`Level::Info`].
    Debug = 7,
}

/// How much goes to stderr, from the binary's `-q` and `-v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// `-q`: errors and warnings only.
    Quiet = 0,
    /// The default: notices too.
    Normal = 1,
    /// `-v`: detail (`info!`) too.
    Verbose = 2,
}

static VERBOSITY: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);

/// Set how much goes to stderr, once, before any message.
pub fn set_verbosity(v: Verbosity) {
    VERBOSITY.store(v as u8, Ordering::Relaxed);
}

/// How much goes to stderr.
pub fn verbosity() -> Verbosity {
    match VERBOSITY.load(Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        1 => Verbosity::Normal,
        _ => Verbosity::Verbose,
    }
}

/// Whether a line at `level` is printed at the current [`verbosity`]:
/// errors and warnings always, notices unless `-q`, detail only with `-v`.
pub fn shown(level: Level) -> bool {
    match level {
        Level::Error | Level::Warning => true,
        Level::Notice => verbosity() >= Verbosity::Normal,
        Level::Info | Level::Debug => verbosity() >= Verbosity::Verbose,
    }
}

/// Whether stderr is the journal stream named by `JOURNAL_STREAM`.
pub fn stderr_is_journal() -> bool {
    static IS_JOURNAL: OnceLock<bool> = OnceLock::new();
    *IS_JOURNAL.get_or_init(|| {
        let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
            return false;
        };
        let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
            return false;
        };
        let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
            return false;
        };
        match rustix::fs::fstat(rustix::stdio::stderr()) {
            Ok(st) => st.st_dev == dev && st.st_ino == ino,
            Err(_) => false,
        }
    })
}

/// The prefix for a line at `level`: `<N>` for the journal, else nothing.
pub fn prefix(level: Level) -> &'static str {
    if !stderr_is_journal() {
        return "";
    }
    match level {
        Level::Error => "<3>",
        Level::Warning => "<4>",
        Level::Notice => "<5>",
        Level::Info => "<6>",
        Level::Debug => "<7>",
    }
}

/// Write one message line to stderr; `label` adds `error: ` or
/// `warning: ` after the program name; nothing when the current
/// [`verbosity`] does not show `level`.
pub fn emit(level: Level, label: bool, args: Arguments<'_>) {
    if !shown(level) {
        return;
    }
    let label = match (label, level) {
        (true, Level::Error) => "error: ",
        (true, Level::Warning) => "warning: ",
        _ => "",
    };
    // Never panics: a closed stderr must not turn a message into an abort
    // that skips the cleanup guards (a warning is printed from a `Drop`).
    //
    // The message is escaped as a whole ([`escape`]): whatever name it
    // carries, it stays one line, so it cannot forge a journal line with a
    // priority prefix of its own or reach the terminal as an escape
    // sequence.
    use std::io::Write;
    let text = args.to_string();
    let _ = writeln!(
        std::io::stderr(),
        "{}zeta-creds: {label}{}",
        prefix(level),
        escape(&text)
    );
}

/// `error!("...")`: a failure line, `zeta-creds: error: ...`.
#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::msg::emit($crate::msg::Level::Error, true, format_args!($($t)*)) };
}

/// `warning!("...")`: something the operator should know; not a failure.
#[macro_export]
macro_rules! warning {
    ($($t:tt)*) => { $crate::msg::emit($crate::msg::Level::Warning, true, format_args!($($t)*)) };
}

/// `notice!("...")`: progress worth a line.
#[macro_export]
macro_rules! notice {
    ($($t:tt)*) => { $crate::msg::emit($crate::msg::Level::Notice, false, format_args!($($t)*)) };
}

/// `debug!("...")`: detail for `-v`; silent otherwise.
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { $crate::msg::emit($crate::msg::Level::Debug, false, format_args!($($t)*)) };
}

/// `info!("...")`: detail, printed only with `-v`.
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::msg::emit($crate::msg::Level::Info, false, format_args!($($t)*)) };
}

/// Test-only fault injection, compiled into debug builds only (release
/// builds, which is what users run, contain none of it). With
/// `ZETA_CREDS_TEST_FAULT=<point>` the program panics at a `panic-*` point,
/// stalls for up to 120 s at a `stall-*` point, or waits at a `pause-*`
/// point until the file `ZETA_CREDS_TEST_RESUME` names exists, so tests can
/// deliver a signal, a panic or a change on disk at an exact moment.
#[cfg(debug_assertions)]
pub fn test_fault(point: &str) {
    if std::env::var("ZETA_CREDS_TEST_FAULT").as_deref() != Ok(point) {
        return;
    }
    eprintln!("zeta-creds: test fault: {point}");
    if point.starts_with("panic") {
        panic!("test fault: {point}");
    }
    if point.starts_with("pause") {
        // Go on once the test creates the file ZETA_CREDS_TEST_RESUME names.
        if let Some(resume) = std::env::var_os("ZETA_CREDS_TEST_RESUME") {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while !std::path::Path::new(&resume).exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            return;
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(120));
}

/// Release builds: no fault injection.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn test_fault(_point: &str) {}

/// Seconds since the epoch (negative: before 1970) as the civil date and
/// time in UTC: `(year, month, day, hour, minute, second)`, proleptic
/// Gregorian (Howard Hinnant's days-to-civil algorithm).
pub fn civil(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC` ([`civil`]).
pub fn utc(secs: u64) -> String {
    let (year, month, day, h, m, s) = civil(i64::try_from(secs).unwrap_or(i64::MAX));
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names with a newline, a priority prefix, an ANSI escape or bytes
    /// that are not UTF-8 are shown on one line, escaped (issue 19, item 5).
    #[test]
    fn escape_keeps_hostile_names_on_one_inert_line() {
        assert!(matches!(escape("~/.config/gh/hosts.yml"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\n<0>zeta-creds: forged"),
            "a\\n<0>zeta-creds: forged"
        );
        assert_eq!(
            escape("x\u{1b}[31mred\u{1b}[0m"),
            "x\\u{1b}[31mred\\u{1b}[0m"
        );
        assert_eq!(escape("t\tr\r\u{7f}\u{9b}"), "t\\tr\\r\\u{7f}\\u{9b}");
        assert_eq!(escape("rtl\u{202e}txt.exe"), "rtl\\u{202e}txt.exe");
        assert_eq!(escape("caf\u{e9} \u{2603}"), "caf\u{e9} \u{2603}");
        assert_eq!(escape_bytes(b"bad\xff\xfe\n.yml"), "bad\\xff\\xfe\\n.yml");
        assert_eq!(escape_bytes(b"plain"), "plain");
        assert_eq!(format!("{}", Escaped("a\nb")), "a\\nb");
        for s in ["a\nb", "\u{1b}[2J", "\r\n<0>x", "\u{2028}"] {
            let e = escape(s);
            assert!(!e.chars().any(needs_escape), "{e:?}");
        }
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(1_780_000_000), "2026-05-28 20:26:40 UTC");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
    }
}
