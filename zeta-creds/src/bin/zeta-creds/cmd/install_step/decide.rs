//! What to do about the blob already on the ESP: keep it, move it to this
//! stick, re-bundle, or refuse. Pure functions of what was found, what
//! `ZETA_CREDS_REBUNDLE` says and whether there is a terminal to ask on;
//! the questions themselves are asked by the caller.
//!
//! | on the ESP            | REBUNDLE=0 / no terminal | REBUNDLE=1 | terminal, unset        |
//! |-----------------------|--------------------------|------------|------------------------|
//! | nothing               | bundle                   | bundle     | bundle                 |
//! | bound to this stick   | keep                     | re-bundle  | ask: keep or re-bundle |
//! | bound to another      | move                     | replace    | ask: move or re-bundle |
//! | not a readable blob   | refuse (exit 5)          | replace    | ask: replace or refuse |

use super::args::RebundleEnv;

/// The blob on the ESP, as `inspect` saw it (no passphrase needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No file there.
    Nothing,
    /// A blob bound to this stick.
    ThisStick,
    /// A blob bound to another stick.
    OtherStick,
    /// A file `inspect` cannot read.
    Unreadable,
}

/// What the step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A first bundle: nothing on the ESP.
    Bundle,
    /// Keep the blob bound to this stick (checked with its passphrase).
    Keep,
    /// Move the blob to this stick (`rekey`, same passphrase).
    Move,
    /// Re-bundle over a blob bound to this stick (after `diff`).
    Rebundle,
    /// Bundle over a blob of another stick or an unreadable file (`--force`).
    Replace,
}

/// A question the terminal must answer before the step can go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    /// `[k]` keep (default) or `[r]` re-bundle.
    KeepOrRebundle,
    /// `[m]` move (default) or `[r]` re-bundle.
    MoveOrRebundle,
    /// Replace the unreadable file? Default no.
    ReplaceUnreadable,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead with this action; `said` is why, when a variable decided.
    Act(Action, Why),
    /// Ask this on the terminal.
    Ask(Question),
    /// Leave the unreadable file alone and stop (exit 5).
    Refuse,
}

/// Why an action was taken without asking (for the line the step prints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Nothing to decide.
    Only,
    /// `ZETA_CREDS_REBUNDLE=0` or `=1` said so.
    Variable,
    /// The variable is unset and there is no terminal: the default.
    Default,
}

/// The decision table (module docs).
pub fn decide(found: &Found, rebundle: RebundleEnv, interactive: bool) -> Decision {
    use Decision::{Act, Ask, Refuse};
    match (found, rebundle) {
        (Found::Nothing, _) => Act(Action::Bundle, Why::Only),
        (Found::ThisStick, RebundleEnv::Rebundle) => Act(Action::Rebundle, Why::Variable),
        (Found::ThisStick, RebundleEnv::Keep) => Act(Action::Keep, Why::Variable),
        (Found::ThisStick, RebundleEnv::Ask) if interactive => Ask(Question::KeepOrRebundle),
        (Found::ThisStick, RebundleEnv::Ask) => Act(Action::Keep, Why::Default),
        (Found::OtherStick, RebundleEnv::Rebundle) => Act(Action::Replace, Why::Variable),
        (Found::OtherStick, RebundleEnv::Keep) => Act(Action::Move, Why::Variable),
        (Found::OtherStick, RebundleEnv::Ask) if interactive => Ask(Question::MoveOrRebundle),
        (Found::OtherStick, RebundleEnv::Ask) => Act(Action::Move, Why::Default),
        (Found::Unreadable, RebundleEnv::Rebundle) => Act(Action::Replace, Why::Variable),
        (Found::Unreadable, RebundleEnv::Ask) if interactive => Ask(Question::ReplaceUnreadable),
        (Found::Unreadable, _) => Refuse,
    }
}

/// The action an answer picks: `letter` for the two-way choices, `yes`
/// for [`Question::ReplaceUnreadable`]. `None`: refuse (exit 5).
pub fn answer(question: Question, letter: char) -> Option<Action> {
    match (question, letter) {
        (Question::KeepOrRebundle, 'k') => Some(Action::Keep),
        (Question::KeepOrRebundle, _) => Some(Action::Rebundle),
        (Question::MoveOrRebundle, 'm') => Some(Action::Move),
        (Question::MoveOrRebundle, _) => Some(Action::Replace),
        (Question::ReplaceUnreadable, 'y') => Some(Action::Replace),
        (Question::ReplaceUnreadable, _) => None,
    }
}

/// What `zeta-creds diff` said before a re-bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffSaid {
    /// Exit 0: nothing changed.
    Same,
    /// Exit 10: the disk differs from the blob.
    Differs,
    /// Exit 3: the blob does not open with the new passphrase.
    WrongPassphrase,
    /// Any other failure.
    Failed(u8),
}

impl DiffSaid {
    /// From `diff`'s exit status.
    pub fn from_status(code: u8) -> DiffSaid {
        match code {
            0 => DiffSaid::Same,
            10 => DiffSaid::Differs,
            3 => DiffSaid::WrongPassphrase,
            other => DiffSaid::Failed(other),
        }
    }
}

/// After the diff: the confirmation to ask (prompt, default yes?), or
/// `None` to go ahead. Only asked on a terminal with the variable unset.
pub fn confirm_after_diff(
    said: DiffSaid,
    rebundle: RebundleEnv,
    interactive: bool,
) -> Option<(&'static str, bool)> {
    if rebundle != RebundleEnv::Ask || !interactive {
        return None;
    }
    Some(match said {
        DiffSaid::Same => (
            "Re-bundle anyway (same contents, next generation)? [y/N]",
            false,
        ),
        DiffSaid::Differs => ("Re-bundle with these changes? [Y/n]", true),
        DiffSaid::WrongPassphrase => (
            "Re-bundle anyway (the old blob is kept as zeta-creds.enc.prev)? [y/N]",
            false,
        ),
        DiffSaid::Failed(_) => ("Re-bundle anyway? [y/N]", false),
    })
}

/// The work factor ceiling handed to `verify`, `diff` and `rekey`: 20
/// (zeta-creds's default) unless `--work-factor` asks for more. Never the
/// blob's own: its header is unauthenticated until a passphrase opens it,
/// and an ESP writer could forge 22 (4 GiB of scrypt per try) there. A
/// genuine blob sealed above 20 is opened with `--work-factor` set to its
/// factor.
pub fn max_work_factor(new: Option<u8>) -> u8 {
    new.map_or(20, |n| n.max(20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        use Action::*;
        use Decision::{Act, Ask as Q, Refuse};
        let rows: [(Found, RebundleEnv, bool, Decision); 16] = [
            (
                Found::Nothing,
                RebundleEnv::Ask,
                true,
                Act(Bundle, Why::Only),
            ),
            (
                Found::Nothing,
                RebundleEnv::Rebundle,
                false,
                Act(Bundle, Why::Only),
            ),
            (
                Found::Nothing,
                RebundleEnv::Keep,
                false,
                Act(Bundle, Why::Only),
            ),
            (
                Found::ThisStick,
                RebundleEnv::Keep,
                true,
                Act(Keep, Why::Variable),
            ),
            (
                Found::ThisStick,
                RebundleEnv::Rebundle,
                false,
                Act(Rebundle, Why::Variable),
            ),
            (
                Found::ThisStick,
                RebundleEnv::Ask,
                true,
                Q(Question::KeepOrRebundle),
            ),
            (
                Found::ThisStick,
                RebundleEnv::Ask,
                false,
                Act(Keep, Why::Default),
            ),
            (
                Found::OtherStick,
                RebundleEnv::Keep,
                true,
                Act(Move, Why::Variable),
            ),
            (
                Found::OtherStick,
                RebundleEnv::Rebundle,
                true,
                Act(Replace, Why::Variable),
            ),
            (
                Found::OtherStick,
                RebundleEnv::Ask,
                true,
                Q(Question::MoveOrRebundle),
            ),
            (
                Found::OtherStick,
                RebundleEnv::Ask,
                false,
                Act(Move, Why::Default),
            ),
            (
                Found::Unreadable,
                RebundleEnv::Rebundle,
                false,
                Act(Replace, Why::Variable),
            ),
            (
                Found::Unreadable,
                RebundleEnv::Ask,
                true,
                Q(Question::ReplaceUnreadable),
            ),
            (Found::Unreadable, RebundleEnv::Ask, false, Refuse),
            (Found::Unreadable, RebundleEnv::Keep, true, Refuse),
            (Found::Unreadable, RebundleEnv::Keep, false, Refuse),
        ];
        for (found, rebundle, tty, want) in rows {
            assert_eq!(
                decide(&found, rebundle, tty),
                want,
                "{found:?} {rebundle:?} tty={tty}"
            );
        }
    }

    #[test]
    fn answers() {
        assert_eq!(answer(Question::KeepOrRebundle, 'k'), Some(Action::Keep));
        assert_eq!(
            answer(Question::KeepOrRebundle, 'r'),
            Some(Action::Rebundle)
        );
        assert_eq!(answer(Question::MoveOrRebundle, 'm'), Some(Action::Move));
        assert_eq!(answer(Question::MoveOrRebundle, 'r'), Some(Action::Replace));
        assert_eq!(
            answer(Question::ReplaceUnreadable, 'y'),
            Some(Action::Replace)
        );
        assert_eq!(answer(Question::ReplaceUnreadable, 'n'), None);
    }

    #[test]
    fn diff_confirmation_only_on_a_terminal_with_the_variable_unset() {
        for said in [
            DiffSaid::Same,
            DiffSaid::Differs,
            DiffSaid::WrongPassphrase,
            DiffSaid::Failed(1),
        ] {
            assert_eq!(confirm_after_diff(said, RebundleEnv::Rebundle, true), None);
            assert_eq!(confirm_after_diff(said, RebundleEnv::Ask, false), None);
        }
        assert_eq!(
            confirm_after_diff(DiffSaid::from_status(10), RebundleEnv::Ask, true),
            Some(("Re-bundle with these changes? [Y/n]", true))
        );
        assert!(
            !confirm_after_diff(DiffSaid::from_status(0), RebundleEnv::Ask, true)
                .unwrap()
                .1
        );
        assert_eq!(DiffSaid::from_status(3), DiffSaid::WrongPassphrase);
        assert_eq!(DiffSaid::from_status(7), DiffSaid::Failed(7));
    }

    #[test]
    /// Issue 19 #9: an ESP writer who forges the blob's work factor (22: 4 GiB
    /// of scrypt per try) does not raise the ceiling the step opens it with.
    fn a_forged_work_factor_on_the_esp_never_raises_the_cap() {
        assert_eq!(max_work_factor(None), 20);
        assert_eq!(max_work_factor(Some(10)), 20);
        assert_eq!(max_work_factor(Some(22)), 22);
    }
}
