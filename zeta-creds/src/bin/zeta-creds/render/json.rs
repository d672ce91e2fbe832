//! `--json`: each report as its document in [`super::schema`], and the
//! document a failure prints. One JSON object on stdout per run, whatever
//! the exit status.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use zeta_creds::bundle::SkipKind;
use zeta_creds::diff::Kind;
use zeta_creds::envelope::HeaderFields;
use zeta_creds::restore::Outcome;
use zeta_creds::status::FileState;

use super::schema::*;
use crate::cmd::bundle::BundleReport;
use crate::cmd::diff::DiffReport;
use crate::cmd::inspect::InspectReport;
use crate::cmd::manifest_check::ManifestCheckReport;
use crate::cmd::rekey::RekeyReport;
use crate::cmd::restore::RestoreRun;
use crate::cmd::status::StatusReport;
use crate::cmd::verify::VerifyReport;
use crate::error::CliError;
use crate::exit::Exit;

/// How a run ended, as every document starts.
pub struct Head {
    /// The exit status.
    pub exit: Exit,
    /// The failure it ends with, if any.
    pub error: Option<ErrorDoc>,
}

/// A report that has a `--json` document.
pub trait Json {
    /// The document.
    type Doc: Serialize;
    /// The document for this report, for a run that ends as `head` says.
    fn doc(&self, head: Head) -> Self::Doc;
}

/// What a failure says in JSON: the message `error:` prints (its causes
/// included) and the hint.
pub fn error_doc(err: &CliError) -> ErrorDoc {
    ErrorDoc {
        message: err.full_message(),
        hint: err.hint().map(str::to_owned),
    }
}

/// The document of a run that failed before it had a report.
pub fn failure_doc(exit: Exit, error: ErrorDoc) -> FailureDoc {
    FailureDoc {
        version: JSON_VERSION,
        exit_code: exit.code(),
        exit_name: exit.name().to_owned(),
        error,
    }
}

/// Write `doc` on stdout, pretty, with a final newline.
pub fn print<T: Serialize>(doc: &T) -> io::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, doc).map_err(io::Error::from)?;
    writeln!(out)?;
    out.flush()
}

/// A path as a JSON string (lossy for a name that is not UTF-8).
fn path(p: &Path) -> String {
    p.display().to_string()
}

/// `None` for an empty name (persona, user).
fn name(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn count(n: usize) -> u64 {
    n as u64
}

/// Seconds since the epoch, unsigned, as RFC 3339.
fn date(secs: u64) -> String {
    rfc3339(i64::try_from(secs).unwrap_or(i64::MAX))
}

impl Json for InspectReport {
    type Doc = InspectDoc;
    fn doc(&self, head: Head) -> InspectDoc {
        InspectDoc {
            version: JSON_VERSION,
            exit_code: head.exit.code(),
            exit_name: head.exit.name().to_owned(),
            error: head.error,
            blob: path(&self.blob),
            authenticated: self.authenticated,
            note: self.note.to_owned(),
            format_version: self.format_version,
            usb_uuid: self.usb_uuid.clone(),
            host: self.host.clone(),
            work_factor: self.work_factor,
            kdf_memory_bytes: self.kdf_memory_bytes,
            generation: self.generation,
            created: date(self.created),
            tool_version: self.tool_version.clone(),
            persona: name(&self.persona),
            header_bytes: count(self.header_bytes),
            payload_bytes: self.payload_bytes,
        }
    }
}

impl Json for VerifyReport {
    type Doc = VerifyDoc;
    fn doc(&self, head: Head) -> VerifyDoc {
        VerifyDoc {
            version: JSON_VERSION,
            exit_code: head.exit.code(),
            exit_name: head.exit.name().to_owned(),
            error: head.error,
            blob: path(&self.blob),
            authenticated: self.authenticated,
            usb_uuid: self.usb_uuid.clone(),
            host: self.host.clone(),
            work_factor: self.work_factor,
            generation: self.generation,
            created: date(self.created),
            tool_version: self.tool_version.clone(),
            persona: name(&self.persona),
            user: name(&self.user),
            counts: VerifyCounts {
                entries: count(self.entry_count),
            },
            entries: self.entries.as_ref().map(|entries| {
                entries
                    .iter()
                    .map(|e| VerifyEntryDoc {
                        path: e.path.clone(),
                        kind: e.kind.to_owned(),
                        mode: e.mode.clone(),
                        owner: e.owner.clone(),
                        group: e.group.clone(),
                        size: e.size,
                        mtime: rfc3339(e.mtime),
                    })
                    .collect()
            }),
        }
    }
}

/// The word for an outcome, as the JSON spells it.
fn outcome(o: &Outcome) -> &'static str {
    match o {
        Outcome::Created => "created",
        Outcome::Updated => "updated",
        Outcome::Unchanged => "unchanged",
        Outcome::Kept => "kept",
        Outcome::Failed => "failed",
    }
}

impl Json for RestoreRun {
    type Doc = RestoreDoc;
    fn doc(&self, head: Head) -> RestoreDoc {
        let zero = RestoreCounts {
            entries: 0,
            created: 0,
            updated: 0,
            unchanged: 0,
            kept: 0,
            failed: 0,
        };
        let mut doc = RestoreDoc {
            version: JSON_VERSION,
            exit_code: head.exit.code(),
            exit_name: head.exit.name().to_owned(),
            error: head.error,
            blob: String::new(),
            generation: 0,
            dry_run: false,
            user: None,
            if_new: None,
            counts: zero,
            entries: Vec::new(),
            notes: Vec::new(),
        };
        match self {
            RestoreRun::IfNew(r) => {
                doc.blob = path(&r.blob);
                doc.generation = r.generation;
                doc.if_new = Some(IfNewDoc {
                    already_restored: r.already_restored,
                    sealed: date(r.sealed),
                    reason: r.reason.clone(),
                });
            }
            RestoreRun::Restored(r) => {
                let report = &r.report;
                let n =
                    |o: Outcome| count(report.entries.iter().filter(|e| e.outcome == o).count());
                doc.blob = path(&r.blob);
                doc.generation = r.generation;
                doc.dry_run = report.dry_run;
                doc.user = name(&report.user);
                doc.counts = RestoreCounts {
                    entries: count(report.entries.len()),
                    created: n(Outcome::Created),
                    updated: n(Outcome::Updated),
                    unchanged: n(Outcome::Unchanged),
                    kept: n(Outcome::Kept),
                    failed: n(Outcome::Failed),
                };
                doc.entries = report
                    .entries
                    .iter()
                    .map(|e| RestoreEntryDoc {
                        path: e.entry.clone(),
                        destination: e.destination.clone(),
                        kind: e.kind.to_owned(),
                        outcome: outcome(&e.outcome).to_owned(),
                        reason: e.reason.clone(),
                    })
                    .collect();
                doc.notes = report
                    .unrestricted
                    .iter()
                    .chain(&report.notes)
                    .cloned()
                    .collect();
            }
        }
        doc
    }
}

/// The word for a kind of difference, as the JSON spells it.
fn diff_kind(k: Kind) -> &'static str {
    match k {
        Kind::Added => "added",
        Kind::Removed => "removed",
        Kind::Content => "content",
        Kind::Meta => "meta",
        Kind::Unreadable => "unreadable",
    }
}

impl Json for DiffReport {
    type Doc = DiffDoc;
    fn doc(&self, head: Head) -> DiffDoc {
        let r = &self.report;
        DiffDoc {
            version: JSON_VERSION,
            exit_code: head.exit.code(),
            exit_name: head.exit.name().to_owned(),
            error: head.error,
            blob: path(&self.blob),
            manifest: path(&self.manifest),
            source_root: path(&self.source_root),
            identical: r.is_identical(),
            user_changed: r
                .user_changed
                .as_ref()
                .map(|(blob, manifest)| UserChangedDoc {
                    blob: blob.clone(),
                    manifest: manifest.clone(),
                }),
            counts: DiffCounts {
                in_blob: count(r.in_blob),
                on_disk: count(r.on_disk),
                added: count(r.count(Kind::Added)),
                removed: count(r.count(Kind::Removed)),
                content: count(r.count(Kind::Content)),
                meta: count(r.count(Kind::Meta)),
                unreadable: count(r.count(Kind::Unreadable)),
            },
            changes: r
                .changes
                .iter()
                .map(|c| DiffChangeDoc {
                    kind: diff_kind(c.kind).to_owned(),
                    path: c.path.clone(),
                    detail: name(&c.detail),
                })
                .collect(),
        }
    }
}

impl Json for StatusReport {
    type Doc = StatusDoc;
    fn doc(&self, head: Head) -> StatusDoc {
        let c = &self.report.counts;
        StatusDoc {
            version: JSON_VERSION,
            exit_code: head.exit.code(),
            exit_name: head.exit.name().to_owned(),
            error: head.error,
            target_root: path(&self.target_root),
            state_record: path(&self.state_record),
            generation: self.generation,
            sealed: self.sealed.map(date),
            manifest: self.manifest.as_deref().map(path),
            fresh: self.fresh,
            counts: StatusCounts {
                unchanged: count(c.unchanged),
                changed: count(c.changed),
                vanished: count(c.vanished),
                new: count(c.new),
                unreadable: count(c.unreadable),
            },
            files: self
                .report
                .files
                .iter()
                .map(|f| StatusFileDoc {
                    destination: f.path.clone(),
                    state: f.state.word().to_owned(),
                    what: match &f.state {
                        FileState::Changed { what } => {
                            Some(what.iter().map(ToString::to_string).collect())
                        }
                        _ => None,
                    },
                    reason: match &f.state {
                        FileState::Unreadable { reason } => Some(reason.clone()),
                        _ => None,
                    },
                })
                .collect(),
        }
    }
}

impl Json for BundleReport {
    type Doc = BundleDoc;
    fn doc(&self, head: Head) -> BundleDoc {
        BundleDoc {
            version: JSON_VERSION,
            exit_code: head.exit.code(),
            exit_name: head.exit.name().to_owned(),
            error: head.error,
            blob: path(&self.out),
            generation: self.generation,
            usb_uuid: self.usb_uuid.to_string(),
            host: self.host.to_string(),
            work_factor: self.work_factor,
            kdf_memory_bytes: zeta_creds::envelope::scrypt_memory(self.work_factor),
            kdf_ms: u64::try_from(self.kdf_time.as_millis()).unwrap_or(u64::MAX),
            kept_previous: self.kept_previous.map(|generation| KeptPreviousDoc {
                blob: prev_path(&self.out),
                generation,
            }),
            counts: BundleCounts {
                entries: count(self.entries),
                files: count(self.files),
                bytes: self.bytes,
            },
        }
    }
}

/// `BLOB.prev`.
fn prev_path(blob: &Path) -> String {
    format!("{}{}", blob.display(), zeta_creds::bundle::PREV_SUFFIX)
}

/// One side of a rekey.
fn rekey_header(h: &HeaderFields) -> RekeyHeaderDoc {
    RekeyHeaderDoc {
        generation: h.generation,
        usb_uuid: h.usb_uuid.to_string(),
        host: h.host.as_ref().map(ToString::to_string),
        work_factor: h.log_n,
    }
}

impl Json for RekeyReport {
    type Doc = RekeyDoc;
    fn doc(&self, head: Head) -> RekeyDoc {
        let o = &self.outcome;
        RekeyDoc {
            version: JSON_VERSION,
            exit_code: head.exit.code(),
            exit_name: head.exit.name().to_owned(),
            error: head.error,
            blob: path(&self.blob),
            same_passphrase: self.same_passphrase,
            old: rekey_header(&o.old),
            new: rekey_header(&o.new),
            kept_previous: o.kept_previous.then(|| KeptPreviousDoc {
                blob: prev_path(&self.blob),
                generation: o.old.generation,
            }),
            counts: RekeyCounts {
                entries: o.entries,
                payload_bytes: o.payload_bytes,
            },
        }
    }
}

impl Json for ManifestCheckReport {
    type Doc = ManifestCheckDoc;
    fn doc(&self, head: Head) -> ManifestCheckDoc {
        let mut doc = ManifestCheckDoc {
            version: JSON_VERSION,
            exit_code: head.exit.code(),
            exit_name: head.exit.name().to_owned(),
            error: head.error,
            manifest: String::new(),
            user: String::new(),
            syntax_only: false,
            source_root: None,
            persona: None,
            counts: ManifestCounts {
                entries: 0,
                applying: None,
                missing: None,
                required_missing: None,
                files: None,
                bytes: None,
                skipped: None,
            },
            entries: None,
        };
        match self {
            ManifestCheckReport::Syntax {
                file,
                entries,
                user,
            } => {
                doc.manifest = path(file);
                doc.user = user.clone();
                doc.syntax_only = true;
                doc.counts.entries = count(*entries);
            }
            ManifestCheckReport::Matched { pick, .. } => {
                let applying = pick.entries.iter().filter(|e| e.picked);
                doc.manifest = path(&pick.manifest);
                doc.user = pick.user.clone();
                doc.source_root = Some(path(&pick.source_root));
                doc.persona = name(&pick.persona);
                doc.counts = ManifestCounts {
                    entries: count(pick.entries.len()),
                    applying: Some(count(applying.clone().count())),
                    missing: Some(count(applying.clone().filter(|e| e.missing()).count())),
                    required_missing: Some(count(
                        applying.filter(|e| e.missing() && e.required).count(),
                    )),
                    files: Some(count(pick.file_count())),
                    bytes: Some(pick.total_size()),
                    skipped: Some(count(
                        pick.skipped
                            .iter()
                            .filter(|s| s.kind != SkipKind::Missing)
                            .count(),
                    )),
                };
                doc.entries = Some(
                    pick.entries
                        .iter()
                        .map(|e| ManifestEntryDoc {
                            line: count(e.line),
                            path: e.display.clone(),
                            required: e.required,
                            personas: e.personas.clone(),
                            applies: e.picked,
                            matches: e.matches.clone(),
                            files: count(e.files),
                            dirs: count(e.dirs),
                            bytes: e.bytes,
                            max_size: e.max_size,
                            skipped: count(e.skipped),
                            description: e.description.clone(),
                        })
                        .collect(),
                );
            }
        }
        doc
    }
}
