//! The step's voice: progress and errors on stderr (`zeta-creds-step: `),
//! questions on the terminal (`/dev/tty`, so the step works when the
//! installer redirects stdin and stdout). Answers are read with echo on;
//! passphrases never come through here (the library's prompt reads them).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};

use super::args::PROG;
use super::exit::{Fail, StepExit};

/// `zeta-creds-step: MESSAGE` on stderr, on one line: control characters
/// in a name it carries are escaped (`zeta_creds::msg::escape`). A note
/// of progress: not shown under `zeta-creds -q install-step`.
pub fn say(message: impl AsRef<str>) {
    if zeta_creds::msg::shown(zeta_creds::msg::Level::Notice) {
        line(message.as_ref());
    }
}

/// One escaped line on stderr, whatever the verbosity.
fn line(message: &str) {
    let message = zeta_creds::msg::escape(message);
    let _ = writeln!(io::stderr(), "{PROG}: {message}");
}

/// `zeta-creds-step: warning: MESSAGE` on stderr (shown under `-q` too).
pub fn warn(message: impl AsRef<str>) {
    line(&format!("warning: {}", message.as_ref()));
}

/// Print a failure: `error:` and its hints (shown under `-q` too).
pub fn report(fail: &Fail) {
    line(&format!("error: {}", fail.message));
    for hint in &fail.hints {
        line(&format!("hint: {hint}"));
    }
}

fn open_tty() -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open("/dev/tty")
}

/// Whether there is a terminal to ask on.
pub fn have_tty() -> bool {
    open_tty().is_ok()
}

/// One line on the terminal (ignored without one), control characters
/// escaped as every human-readable line is ([`zeta_creds::msg::escape`]).
pub fn tty_say(line: &str) {
    if let Ok(mut tty) = open_tty() {
        let _ = writeln!(tty, "{}", zeta_creds::msg::escape(line));
    }
}

/// Show `prompt` and read one line (without its newline), byte by byte so
/// nothing typed ahead for the next question is swallowed. `None` at end
/// of input.
fn read_answer(prompt: &str) -> io::Result<Option<String>> {
    let mut tty = open_tty()?;
    write!(tty, "{prompt} ")?;
    tty.flush()?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match tty.read(&mut byte) {
            Ok(0) if line.is_empty() => return Ok(None),
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if line.len() < 256 => line.push(byte[0]),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(
        String::from_utf8_lossy(&line)
            .trim_end_matches('\r')
            .to_lowercase(),
    ))
}

fn end_of_input() -> Fail {
    tty_say("");
    Fail::new(StepExit::Failed, "no answer on the terminal (end of input)")
}

/// Ask a yes/no question; `default_yes` is the answer to an empty line.
pub fn ask_yes_no(prompt: &str, default_yes: bool) -> Result<bool, Fail> {
    loop {
        let answer = read_answer(prompt)
            .ok()
            .flatten()
            .ok_or_else(end_of_input)?;
        match answer.as_str() {
            "" => return Ok(default_yes),
            "y" | "yes" => return Ok(true),
            "n" | "no" => return Ok(false),
            _ => tty_say("please answer y or n"),
        }
    }
}

/// Ask for one of `letters` (the first letter of the answer counts);
/// `default` answers an empty line.
pub fn ask_choice(prompt: &str, default: char, letters: &[char]) -> Result<char, Fail> {
    loop {
        let answer = read_answer(prompt)
            .ok()
            .flatten()
            .ok_or_else(end_of_input)?;
        let first = answer.chars().next().unwrap_or(default);
        if let Some(&letter) = letters.iter().find(|&&l| l == first) {
            return Ok(letter);
        }
        let list: Vec<String> = letters.iter().map(char::to_string).collect();
        tty_say(&format!("please answer one of: {}", list.join(" ")));
    }
}
