//! `rebundle`: keep the blob fresh on the running system (issue 18).
//!
//! A tool that rotates its login on every refresh (an OAuth refresh token
//! used once) leaves the blob sealed at install time dead within hours.
//! The NixOS module's timer runs `zeta-creds rebundle` on the system that
//! restores the blob: it compares the state record with the disk, as
//! `status` does ([`crate::status`]), and decides here, purely, what to
//! do: nothing (fresh), re-bundle (something carried changed, and the
//! passphrase is at hand: TPM2 credential mode), or only report (a human
//! must type the passphrase, or a carried file vanished).
//!
//! A carried file that vanished is never dropped from the blob by the
//! automatic run: a login file briefly missing (a tool rewriting it, a
//! logout by mistake) would otherwise be gone from the only copy that
//! survives a reinstall. Only the operator decides that: by taking its
//! entry out of the manifest (the manifest no longer carries it, so the
//! automatic run drops it), by `bundle` by hand, or `rebundle
//! --drop-vanished`.
#![forbid(unsafe_code)]

use crate::status::{Counts, FileState, FileStatus};

/// What a run does, given what changed since the blob was sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Every carried file is as the blob holds it, nothing new is picked.
    Fresh,
    /// Seal a new blob: something changed or is new, nothing vanished (or
    /// vanished files may be dropped).
    Rebundle,
    /// Something changed, but this run only reports it (no passphrase
    /// without a human).
    Report,
    /// A carried file vanished: not re-bundled, reported.
    HoldVanished,
    /// Some recorded files could not be checked, and nothing else changed:
    /// fresh or not is unknown.
    Unknown,
}

/// Decide from the counts of a [`crate::status::Report`]. `can_seal`:
/// the passphrase is at hand (credential mode); `drop_vanished`: the
/// operator accepts that vanished files leave the blob.
pub fn decide(counts: &Counts, can_seal: bool, drop_vanished: bool) -> Decision {
    let moved = counts.changed + counts.new + counts.vanished;
    if moved == 0 {
        return if counts.unreadable > 0 {
            Decision::Unknown
        } else {
            Decision::Fresh
        };
    }
    if !can_seal {
        Decision::Report
    } else if counts.vanished > 0 && !drop_vanished {
        Decision::HoldVanished
    } else {
        Decision::Rebundle
    }
}

/// The files that are not as the blob holds them, as `PATH` for a
/// changed file and `PATH (new)`, `PATH (vanished)`, `PATH (unreadable)`
/// for the others; at most `max` of them, then `and N more`. Paths are
/// shown with control characters escaped (`escape_debug`),
/// so a file name cannot forge a journal line or a terminal sequence.
pub fn list(files: &[FileStatus], max: usize) -> String {
    let moved: Vec<&FileStatus> = files
        .iter()
        .filter(|f| f.state != FileState::Unchanged)
        .collect();
    let mut parts: Vec<String> = moved
        .iter()
        .take(max)
        .map(|f| {
            let path: String = f.path.escape_debug().collect();
            match &f.state {
                FileState::Changed { .. } => path,
                other => format!("{path} ({})", other.word()),
            }
        })
        .collect();
    if moved.len() > max {
        parts.push(format!("and {} more", moved.len() - max));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(changed: usize, new: usize, vanished: usize, unreadable: usize) -> Counts {
        Counts {
            unchanged: 3,
            changed,
            vanished,
            new,
            unreadable,
        }
    }

    #[test]
    fn each_case_decides_as_documented() {
        use Decision::*;
        for can_seal in [true, false] {
            assert_eq!(decide(&counts(0, 0, 0, 0), can_seal, false), Fresh);
            assert_eq!(decide(&counts(0, 0, 0, 1), can_seal, false), Unknown);
        }
        assert_eq!(decide(&counts(1, 0, 0, 0), true, false), Rebundle);
        assert_eq!(decide(&counts(0, 1, 0, 1), true, false), Rebundle);
        assert_eq!(decide(&counts(1, 0, 0, 0), false, false), Report);
        assert_eq!(decide(&counts(1, 0, 1, 0), true, false), HoldVanished);
        assert_eq!(decide(&counts(0, 0, 1, 0), true, true), Rebundle);
        assert_eq!(decide(&counts(0, 0, 1, 0), false, true), Report);
    }

    #[test]
    fn the_list_names_each_file_escaped_and_bounded() {
        let f = |path: &str, state| FileStatus {
            path: path.into(),
            state,
        };
        let files = vec![
            f("/a", FileState::Unchanged),
            f("/b", FileState::Changed { what: vec![] }),
            f("/c\n<0>x", FileState::New),
            f("/d", FileState::Vanished),
        ];
        assert_eq!(list(&files, 5), r"/b, /c\n<0>x (new), /d (vanished)");
        assert_eq!(list(&files, 1), "/b, and 2 more");
    }
}
