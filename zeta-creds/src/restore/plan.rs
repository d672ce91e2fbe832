//! Planning: what a restore does with each entry, decided by a pure
//! function of the entry's metadata, the target's accounts, the state
//! record and what staging observed at the destination.
//!
//! Nothing here touches the filesystem, so `--dry-run` is exactly this
//! plan, printed; staging ([`super::stage`]) carries it out.
#![forbid(unsafe_code)]

use rustix::fs::FileType;

use super::{Home, OnConflict, Outcome, Refusal};
use crate::envelope::{Anchor, EntryKind, EntryMeta};
use crate::fsx;
use crate::passwd::Accounts;
use crate::state::FileRecord;

/// The owner and group an entry gets on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Owners {
    pub uid: u32,
    pub gid: u32,
}

/// What staging found at an entry's destination (`lstat`, no symlink
/// followed), reduced to what the plan needs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Found {
    /// Nothing there (or its parent does not exist yet).
    Absent,
    /// Something there.
    Present {
        kind: FileType,
        /// Permission bits, set-id and sticky bits included.
        mode: u32,
        owners: Owners,
        size: u64,
        /// The record a restore would keep for it as it is now.
        record: FileRecord,
        /// Whether its contents hash to the entry's SHA-256; looked at only
        /// when [`needs_contents`] said so.
        same_contents: bool,
    },
}

/// What to do with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// Already as the blob has it; a file keeps this record.
    Unchanged(Option<FileRecord>),
    /// Changed locally since the last restore: left alone, its old record
    /// kept (if there was one).
    Kept(Option<FileRecord>),
    /// Stage the file and rename it over the destination at commit;
    /// `backup` keeps the replaced file as `NAME.zeta-creds-bak`.
    WriteFile { created: bool, backup: bool },
    /// Create the directory (if `created`), then set its mode and owner
    /// at commit.
    FixDir { created: bool },
    /// Refused: reported as failed, with why.
    Refuse(String),
}

impl Action {
    /// The outcome reported for this action.
    pub fn outcome(&self) -> Outcome {
        match self {
            Action::Unchanged(_) => Outcome::Unchanged,
            Action::Kept(_) => Outcome::Kept,
            Action::WriteFile { created: true, .. } | Action::FixDir { created: true } => {
                Outcome::Created
            }
            Action::WriteFile { .. } | Action::FixDir { .. } => Outcome::Updated,
            Action::Refuse(_) => Outcome::Failed,
        }
    }
}

/// The reason reported with [`Action::Kept`].
pub(super) const KEPT_REASON: &str = "changed locally since the last restore; re-bundle to carry it, or pass --on-conflict overwrite|backup";

/// Where an entry goes, as components below the target root. A home entry
/// whose home could not be resolved gets its bare path (it is refused by
/// [`owners`]).
pub(super) fn destination(meta: &EntryMeta, home: &Result<Home, String>) -> Vec<String> {
    let mut destination = match (meta.anchor, home) {
        (Anchor::Home, Ok(h)) => h.components.clone(),
        _ => Vec::new(),
    };
    destination.extend(fsx::components(&meta.path).into_iter().map(str::to_owned));
    destination
}

/// The home an entry lives in (`None` for a root entry), and its owner and
/// group resolved on the target; or why the entry is refused.
pub(super) fn owners<'h>(
    meta: &EntryMeta,
    home: &'h Result<Home, String>,
    accounts: &Accounts,
) -> Result<(Option<&'h Home>, Owners), Refusal> {
    let home = match (meta.anchor, home) {
        (Anchor::Home, Err(why)) => return Err(Refusal(why.clone())),
        (Anchor::Home, Ok(h)) => Some(h),
        (Anchor::Root, _) => None,
    };
    let uid = resolve_id(&meta.owner, |n| accounts.uid(n)).ok_or_else(|| {
        Refusal(format!(
            "owner {:?} is not in the target's etc/passwd; create the user first",
            meta.owner
        ))
    })?;
    let gid = resolve_id(&meta.group, |n| accounts.gid(n)).ok_or_else(|| {
        Refusal(format!(
            "group {:?} is not in the target's etc/group; create the group first",
            meta.group
        ))
    })?;
    Ok((home, Owners { uid, gid }))
}

/// Whether the destination's contents decide the plan: a regular file with
/// the entry's mode, owners and size may be unchanged, so staging hashes it.
pub(super) fn needs_contents(
    meta: &EntryMeta,
    owners: Owners,
    kind: FileType,
    mode: u32,
    found: Owners,
    size: u64,
) -> bool {
    meta.kind == EntryKind::File
        && kind == FileType::RegularFile
        && mode == meta.mode
        && found == owners
        && size == meta.size
}

/// Decide what to do with an entry, given what is at its destination and
/// what the last restore recorded there.
pub(super) fn action(
    meta: &EntryMeta,
    owners: Owners,
    found: &Found,
    recorded: Option<FileRecord>,
    on_conflict: OnConflict,
) -> Action {
    match (meta.kind, *found) {
        (EntryKind::Dir, Found::Absent) => Action::FixDir { created: true },
        (
            EntryKind::Dir,
            Found::Present {
                kind: FileType::Directory,
                mode,
                owners: o,
                ..
            },
        ) => {
            if mode == meta.mode && o == owners {
                Action::Unchanged(None)
            } else {
                Action::FixDir { created: false }
            }
        }
        (EntryKind::Dir, Found::Present { kind, .. }) => Action::Refuse(format!(
            "exists as a {} and the blob has a directory here; move it away",
            fsx::kind_name(kind)
        )),
        (EntryKind::File, Found::Absent) => Action::WriteFile {
            created: true,
            backup: false,
        },
        (
            EntryKind::File,
            Found::Present {
                kind,
                mode,
                owners: o,
                size,
                record,
                same_contents,
            },
        ) if kind == FileType::RegularFile => {
            if needs_contents(meta, owners, kind, mode, o, size) && same_contents {
                return Action::Unchanged(Some(record));
            }
            // Differs. Still what we last wrote, or never recorded (first
            // restore): the blob wins. Changed since we wrote it: the
            // operator's call.
            let ours = recorded.is_none_or(|r| r == record);
            let backup = match (ours, on_conflict) {
                (true, _) | (false, OnConflict::Overwrite) => false,
                (false, OnConflict::KeepModified) => return Action::Kept(recorded),
                (false, OnConflict::Backup) => true,
            };
            Action::WriteFile {
                created: false,
                backup,
            }
        }
        (EntryKind::File, Found::Present { kind, .. }) => Action::Refuse(format!(
            "exists as a {} and the blob has a file here; refusing to replace it",
            fsx::kind_name(kind)
        )),
    }
}

/// An owner or group from the blob: a name, resolved in the target's
/// accounts, or an all-digit numeric id (the manifest's `uid`/`gid`, for an
/// account that exists only on the target, as sops-nix allows), used as
/// is. All-digit account names are refused by useradd and systemd, so the
/// two cannot be confused.
fn resolve_id(name: &str, lookup: impl Fn(&str) -> Option<u32>) -> Option<u32> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return name.parse().ok();
    }
    lookup(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ids_are_taken_as_is_and_names_are_looked_up() {
        let accounts = Accounts::parse("zeta:x:1000:100::/home/zeta:/bin/sh\n", "users:x:100:\n");
        assert_eq!(resolve_id("4242", |n| accounts.uid(n)), Some(4242));
        assert_eq!(resolve_id("zeta", |n| accounts.uid(n)), Some(1000));
        assert_eq!(resolve_id("nobody", |n| accounts.uid(n)), None);
        assert_eq!(resolve_id("99999999999", |n| accounts.uid(n)), None);
        assert_eq!(resolve_id("users", |n| accounts.gid(n)), Some(100));
    }

    fn file(path: &str) -> EntryMeta {
        EntryMeta {
            kind: EntryKind::File,
            anchor: Anchor::Root,
            path: path.into(),
            mode: 0o600,
            owner: "root".into(),
            group: "root".into(),
            mtime: 0,
            size: 3,
            sha256: [0; 32],
        }
    }

    fn present(kind: FileType, ino: u64, same_contents: bool) -> Found {
        Found::Present {
            kind,
            mode: 0o600,
            owners: ROOT,
            size: 3,
            record: FileRecord {
                size: 3,
                mtime: 0,
                mtime_nsec: 0,
                ctime: 0,
                ctime_nsec: 0,
                ino,
            },
            same_contents,
        }
    }

    const ROOT: Owners = Owners { uid: 0, gid: 0 };

    #[test]
    fn a_file_changed_since_the_last_restore_is_the_operators_call() {
        let meta = file("etc/x");
        let found = present(FileType::RegularFile, 2, false);
        let Found::Present { record, .. } = found else {
            unreachable!()
        };
        let mut older = record;
        older.ino = 1;
        for (policy, want) in [
            (OnConflict::KeepModified, Action::Kept(Some(older))),
            (
                OnConflict::Overwrite,
                Action::WriteFile {
                    created: false,
                    backup: false,
                },
            ),
            (
                OnConflict::Backup,
                Action::WriteFile {
                    created: false,
                    backup: true,
                },
            ),
        ] {
            assert_eq!(action(&meta, ROOT, &found, Some(older), policy), want);
        }
        // What we wrote last time, or never recorded: the blob wins.
        for recorded in [Some(record), None] {
            assert_eq!(
                action(&meta, ROOT, &found, recorded, OnConflict::KeepModified),
                Action::WriteFile {
                    created: false,
                    backup: false
                }
            );
        }
        let same = present(FileType::RegularFile, 2, true);
        assert_eq!(
            action(&meta, ROOT, &same, Some(older), OnConflict::KeepModified),
            Action::Unchanged(Some(record))
        );
        assert!(matches!(
            action(&meta, ROOT, &present(FileType::Symlink, 2, false), None, OnConflict::Overwrite),
            Action::Refuse(r) if r == "exists as a symlink and the blob has a file here; refusing to replace it"
        ));
    }
}
