//! A progress line on stderr for work that takes more than a second, on a
//! terminal only: never in the journal, a file or a pipe (see
//! [`super::stderr_is_watched`]), never with `-q`. One line, redrawn in
//! place at most every [`REDRAW`], erased when the work ends, so what
//! follows it (the report) is all that stays on the screen.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Shown only for work still running after this long.
const AFTER: Duration = Duration::from_secs(1);
/// At most this often.
const REDRAW: Duration = Duration::from_millis(200);

/// A progress line for `total` bytes of `what` (`restoring`).
#[derive(Clone)]
pub struct Progress {
    state: Option<Arc<Mutex<State>>>,
}

struct State {
    what: &'static str,
    after: Duration,
    total: u64,
    done: u64,
    started: Instant,
    drawn: Option<Instant>,
    finished: bool,
}

impl Progress {
    /// A progress line, drawn only when stderr is watched.
    pub fn new(what: &'static str, total: u64) -> Progress {
        Progress::shown_if(super::stderr_is_watched(), what, total, after())
    }

    fn shown_if(shown: bool, what: &'static str, total: u64, after: Duration) -> Progress {
        Progress {
            state: shown.then(|| {
                Arc::new(Mutex::new(State {
                    what,
                    after,
                    total,
                    done: 0,
                    started: Instant::now(),
                    drawn: None,
                    finished: false,
                }))
            }),
        }
    }

    /// `n` more bytes are done.
    pub fn add(&self, n: u64) {
        let Some(state) = &self.state else { return };
        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
        s.done = s.done.saturating_add(n);
        let now = Instant::now();
        if s.finished
            || now.duration_since(s.started) < s.after
            || s.drawn.is_some_and(|at| now.duration_since(at) < REDRAW)
        {
            return;
        }
        s.drawn = Some(now);
        let line = s.line();
        let _ = write!(io::stderr(), "\r{line}\x1b[K");
    }

    /// The work is over: erase the line, if it was drawn.
    pub fn finish(&self) {
        let Some(state) = &self.state else { return };
        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
        if !s.finished && s.drawn.is_some() {
            let _ = write!(io::stderr(), "\r\x1b[K");
        }
        s.finished = true;
    }

    /// `reader`, counting what it reads into this progress line.
    pub fn reader<R: Read>(&self, reader: R) -> ProgressReader<R> {
        ProgressReader {
            inner: reader,
            progress: self.clone(),
        }
    }
}

/// [`AFTER`]; in a debug build, `ZETA_CREDS_TEST_PROGRESS_AFTER_MS` may
/// shorten it, so a test sees the line without a long run (release builds,
/// which users run, read no such variable).
#[cfg(debug_assertions)]
fn after() -> Duration {
    std::env::var("ZETA_CREDS_TEST_PROGRESS_AFTER_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(AFTER, Duration::from_millis)
}

/// [`AFTER`].
#[cfg(not(debug_assertions))]
fn after() -> Duration {
    AFTER
}

impl State {
    fn line(&self) -> String {
        let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
        let percent = (self.done.min(self.total) * 100)
            .checked_div(self.total)
            .unwrap_or(100);
        format!(
            "zeta-creds: {} {:.1} of {:.1} MiB ({percent}%)",
            self.what,
            mib(self.done),
            mib(self.total)
        )
    }
}

/// A reader that moves a [`Progress`] line.
pub struct ProgressReader<R> {
    inner: R,
    progress: Progress,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_is_read_and_says_how_far() {
        let p = Progress::shown_if(true, "restoring", 4 << 20, AFTER);
        let mut r = p.reader(&[0u8; 1 << 20][..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        let state = p.state.as_ref().unwrap().lock().unwrap();
        assert_eq!(state.done, 1 << 20);
        assert_eq!(state.line(), "zeta-creds: restoring 1.0 of 4.0 MiB (25%)");
        assert!(state.drawn.is_none(), "not drawn in its first second");
    }

    #[test]
    fn nothing_is_counted_when_not_shown() {
        let p = Progress::shown_if(false, "restoring", 10, Duration::ZERO);
        p.add(5);
        p.finish();
        assert!(p.state.is_none());
    }
}
