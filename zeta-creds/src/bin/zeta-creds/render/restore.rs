//! `restore`: one line per entry, then a summary; the notes and each
//! failed entry on stderr first.
#![forbid(unsafe_code)]

use std::io::{self, Write};

use zeta_creds::msg::escape;
use zeta_creds::restore::Outcome;
use zeta_creds::{error, notice, warning};

use super::Text;
use crate::cmd::restore::{IfNewReport, RestoreReport, RestoreRun, printable};

impl Text for RestoreReport {
    fn messages_before(&self) {
        if let Some(note) = &self.report.unrestricted {
            notice!("{note}");
        }
        for note in &self.report.notes {
            warning!("{note}");
        }
        // One line per reason: an unknown user fails every home entry for
        // the same reason, which is said once, with the entries it held.
        let mut reasons: Vec<(&str, Vec<String>)> = Vec::new();
        for e in self.report.failed() {
            let reason = e.reason.as_deref().unwrap_or("failed");
            let entry = format!("{} ({})", e.entry, e.destination);
            match reasons.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, entries)) => entries.push(entry),
                None => reasons.push((reason, vec![entry])),
            }
        }
        for (reason, entries) in reasons {
            match entries.as_slice() {
                [one] => error!("{one}: {reason}"),
                many => error!(
                    "{} entries not written: {reason}: {}",
                    many.len(),
                    many.join(", ")
                ),
            }
        }
    }

    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let report = &self.report;
        let verb = |o: &Outcome| match (o, report.dry_run) {
            (Outcome::Created, false) => "created",
            (Outcome::Created, true) => "would create",
            (Outcome::Updated, false) => "updated",
            (Outcome::Updated, true) => "would update",
            (Outcome::Unchanged, _) => "unchanged",
            (Outcome::Kept, _) => "kept",
            (Outcome::Failed, _) => "FAILED",
        };
        for e in &report.entries {
            let destination = escape(&e.destination);
            match (&e.outcome, &e.reason) {
                (Outcome::Kept, Some(why)) => writeln!(
                    out,
                    "{:<13} {destination}  ({})",
                    verb(&e.outcome),
                    escape(why)
                )?,
                _ => writeln!(out, "{:<13} {destination}", verb(&e.outcome))?,
            }
        }
        let count = |o: Outcome| report.entries.iter().filter(|e| e.outcome == o).count();
        if report.changed() == 0 && count(Outcome::Failed) == 0 && count(Outcome::Kept) == 0 {
            return writeln!(
                out,
                "nothing to do: all {} entries of {} are already in place",
                report.entries.len(),
                self.blob.display()
            );
        }
        writeln!(
            out,
            "{}{} entries from {} (generation {}): {} created, {} updated, {} unchanged, {} kept, {} failed",
            if report.dry_run {
                "dry run, nothing written: "
            } else {
                ""
            },
            report.entries.len(),
            self.blob.display(),
            self.generation,
            count(Outcome::Created),
            count(Outcome::Updated),
            count(Outcome::Unchanged),
            count(Outcome::Kept),
            count(Outcome::Failed),
        )
    }
}

impl Text for RestoreRun {
    fn messages_before(&self) {
        match self {
            RestoreRun::Restored(r) => r.messages_before(),
            RestoreRun::IfNew(r) => r.messages_before(),
        }
    }

    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        match self {
            RestoreRun::Restored(r) => r.text(out),
            RestoreRun::IfNew(r) => r.text(out),
        }
    }
}

impl Text for IfNewReport {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        match &self.reason {
            None => writeln!(
                out,
                "already restored: generation {}, sealed {}",
                self.generation, self.sealed_utc
            ),
            Some(why) => writeln!(
                out,
                "restore needed: {} is generation {}, sealed {}; {why}",
                printable(&self.blob.display().to_string()),
                self.generation,
                self.sealed_utc
            ),
        }
    }
}
