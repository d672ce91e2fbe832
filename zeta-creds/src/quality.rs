//! Passphrase quality for a new blob (`bundle`, `rekey`).
//!
//! Whoever copies a blob off the ESP can guess its passphrase offline;
//! scrypt only makes each guess expensive (docs/FORMAT.md §10). So a new
//! passphrase is estimated with zxcvbn (Dropbox's estimator: dictionaries,
//! keyboard patterns, dates, repeats, l33t) and refused below
//! [`MIN_SCORE`] unless the operator passes `--allow-weak-passphrase`.
//!
//! Nothing here prints or returns the passphrase, its length or zxcvbn's
//! pattern-specific feedback (which would describe the passphrase, and
//! could end up in a journal): only the score.
#![forbid(unsafe_code)]

use secrecy::{ExposeSecret, SecretString};

/// zxcvbn's score runs 0 to 4; 3 is "safely unguessable: moderate
/// protection from an offline slow-hash scenario" (below 10^10 guesses is
/// 2), which is our case: an offline attacker against scrypt.
pub const MIN_SCORE: u8 = 3;

/// zxcvbn's cost grows faster than linearly with the length; a
/// passphrase this long is judged by its first this-many characters.
const MAX_CHARS: usize = 256;

/// A passphrase that is too easy to guess.
#[derive(Debug, thiserror::Error)]
#[error(
    "the new passphrase is too weak: an attacker who copies the blob could guess it offline (strength {score} of 4, at least {MIN_SCORE} needed); choose a longer one, e.g. five or more random words, or pass --allow-weak-passphrase (for tests)"
)]
pub struct Weak {
    /// zxcvbn's score, 0 to 4.
    pub score: u8,
}

/// zxcvbn's score for `passphrase`, 0 to 4. `context` holds words an
/// attacker would try first (the user name, the tool's name).
pub fn score(passphrase: &SecretString, context: &[&str]) -> u8 {
    let text = passphrase.expose_secret();
    let end = text
        .char_indices()
        .nth(MAX_CHARS)
        .map_or(text.len(), |(i, _)| i);
    u8::from(zxcvbn::zxcvbn(&text[..end], context).score())
}

/// Refuse a passphrase scoring below [`MIN_SCORE`].
pub fn check(passphrase: &SecretString, context: &[&str]) -> Result<(), Weak> {
    match score(passphrase, context) {
        s if s >= MIN_SCORE => Ok(()),
        score => Err(Weak { score }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(p: &str) -> SecretString {
        SecretString::from(p)
    }

    #[test]
    fn weak_ones_are_refused_and_long_phrases_pass() {
        for weak in [
            "password",
            "hunter2",
            "zeta1234",
            "qwertyuiop",
            "aaaaaaaaaaaa",
        ] {
            assert!(check(&s(weak), &["zeta"]).is_err(), "{weak} accepted");
        }
        for strong in [
            "correct horse battery staple",
            "purple monkey dishwasher tuesday",
            "u8Jq!r2Lp#0zXv",
        ] {
            assert!(check(&s(strong), &["zeta"]).is_ok(), "{strong} refused");
        }
        // The user's own name is a word an attacker tries first.
        assert!(score(&s("zetazeta2024"), &["zetazeta"]) < MIN_SCORE);
    }

    #[test]
    fn message_holds_no_secret() {
        let err = check(&s("hunter2"), &[]).unwrap_err().to_string();
        assert!(!err.contains("hunter2"));
        assert!(!err.contains(" 7 "), "no length: {err}");
        assert!(err.contains("--allow-weak-passphrase"));
    }

    #[test]
    fn very_long_passphrases_are_judged_quickly() {
        let long: String = (0..4096u32)
            .map(|i| char::from(b'a' + ((i * 7919) % 26) as u8))
            .collect();
        let t = std::time::Instant::now();
        let _ = score(&s(&long), &[]);
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }
}
