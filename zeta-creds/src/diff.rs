//! `zeta-creds diff`: what a re-bundle would change.
//!
//! Compares the entries of an unlocked blob with what the manifest picks
//! from the source root now ([`crate::pick::pick`], overrides applied, so
//! a mode override shows as no change), path by path:
//!
//! * **added** — picked now, not in the blob (a new login, a new entry);
//! * **removed** — in the blob, not picked now (deleted, excluded, or the
//!   entry was removed);
//! * **content** — a file whose SHA-256 differs (the blob stores each
//!   file's digest; the file on disk is hashed), or a file that became a
//!   directory or the reverse;
//! * **meta** — the same content, another mode, owner or group;
//! * **unreadable** — a picked file that cannot be read now (its
//!   permissions, or a FIFO swapped in for it after the pick: the open
//!   never blocks, [`crate::fsx::open_file`]). It is refused for that path
//!   alone, named with why; the rest of the diff goes on.
//!
//! Modification times are not compared: a file rewritten with the same
//! bytes is not a change worth a re-bundle.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::Read;

use serde::Serialize;

use crate::envelope::{self, Anchor, EntryKind, EntryMeta, EntryReader};
use crate::pick::{Item, Pick};

/// Why a diff could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The blob's payload (corrupt, tampered, truncated).
    #[error(transparent)]
    Envelope(#[from] envelope::Error),
}

/// The kinds of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// On disk, not in the blob.
    Added,
    /// In the blob, not on disk.
    Removed,
    /// Different contents.
    Content,
    /// Same contents, different mode, owner or group.
    Meta,
    /// Picked, but its contents cannot be read now (the detail says why).
    Unreadable,
}

impl Kind {
    /// The word printed at the start of its line.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Added => "added",
            Kind::Removed => "removed",
            Kind::Content => "content",
            Kind::Meta => "mode/owner",
            Kind::Unreadable => "unreadable",
        }
    }
}

/// One difference.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// What differs.
    pub kind: Kind,
    /// `~/x` or `/x`.
    pub path: String,
    /// What changed, blob → disk, when there is more to say.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The result of a diff.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// In path order (home entries after root entries).
    pub changes: Vec<Change>,
    /// Entries in the blob.
    pub in_blob: usize,
    /// Entries picked now.
    pub on_disk: usize,
    /// `(blob, manifest)` when the manifest's user is not the blob's.
    pub user_changed: Option<(String, String)>,
}

impl Report {
    /// Whether nothing differs.
    pub fn is_identical(&self) -> bool {
        self.changes.is_empty() && self.user_changed.is_none()
    }

    /// How many changes of `kind`.
    pub fn count(&self, kind: Kind) -> usize {
        self.changes.iter().filter(|c| c.kind == kind).count()
    }
}

/// Compare every entry of `entries` (a verified payload: the reader checks
/// each body's digest, and the stream's end) with `pick`.
pub fn diff<R: Read>(entries: &mut EntryReader<R>, pick: &Pick) -> Result<Report, Error> {
    let mut on_disk: BTreeMap<(Anchor, String), &Item> = pick
        .items
        .iter()
        .map(|i| ((i.anchor, i.rel.clone()), i))
        .collect();
    let mut report = Report {
        on_disk: pick.items.len(),
        ..Report::default()
    };
    if entries.user() != pick.user {
        report.user_changed = Some((entries.user().to_owned(), pick.user.clone()));
    }
    let mut changes = Vec::new();
    while let Some(meta) = entries.next_entry()? {
        if meta.kind == EntryKind::File {
            entries.skip_body()?;
        }
        report.in_blob += 1;
        let Some(item) = on_disk.remove(&key_of(&meta)) else {
            changes.push((
                key_of(&meta),
                Change {
                    kind: Kind::Removed,
                    path: meta.display_path(),
                    detail: String::new(),
                },
            ));
            continue;
        };
        if let Some(change) = compare(&meta, item, pick) {
            changes.push((key_of(&meta), change));
        }
    }
    for (key, item) in on_disk {
        changes.push((
            key,
            Change {
                kind: Kind::Added,
                path: item.display(),
                detail: String::new(),
            },
        ));
    }
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    report.changes = changes.into_iter().map(|(_, c)| c).collect();
    Ok(report)
}

fn key_of(meta: &EntryMeta) -> (Anchor, String) {
    (meta.anchor, meta.path.clone())
}

fn kind_word(k: EntryKind) -> &'static str {
    match k {
        EntryKind::File => "file",
        EntryKind::Dir => "directory",
    }
}

fn compare(meta: &EntryMeta, item: &Item, pick: &Pick) -> Option<Change> {
    let path = item.display();
    if meta.kind != item.kind {
        return Some(Change {
            kind: Kind::Content,
            path,
            detail: format!("{} -> {}", kind_word(meta.kind), kind_word(item.kind)),
        });
    }
    if item.kind == EntryKind::File {
        let differs = meta.size != item.size || {
            let digest = match pick.sha256(item) {
                Ok(digest) => digest,
                Err(e) => {
                    return Some(Change {
                        kind: Kind::Unreadable,
                        path,
                        detail: format!("cannot read {}: {e}", item.source_display()),
                    });
                }
            };
            digest != meta.sha256
        };
        if differs {
            return Some(Change {
                kind: Kind::Content,
                path,
                detail: format!("{} -> {} bytes", meta.size, item.size),
            });
        }
    }
    let mut detail = Vec::new();
    if meta.mode != item.mode {
        detail.push(format!("mode {:04o} -> {:04o}", meta.mode, item.mode));
    }
    if (meta.owner.as_str(), meta.group.as_str()) != (item.owner.as_str(), item.group.as_str()) {
        detail.push(format!(
            "owner {}:{} -> {}:{}",
            meta.owner, meta.group, item.owner, item.group
        ));
    }
    (!detail.is_empty()).then(|| Change {
        kind: Kind::Meta,
        path,
        detail: detail.join(", "),
    })
}
