//! `diff`: one line per difference, then a summary.
#![forbid(unsafe_code)]

use std::io::{self, Write};

use zeta_creds::diff::Kind;

use super::Text;
use crate::cmd::diff::DiffReport;

impl Text for DiffReport {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let report = &self.report;
        if let Some((was, now)) = &report.user_changed {
            writeln!(out, "{:<11} {was} -> {now}", "user")?;
        }
        for c in &report.changes {
            if c.detail.is_empty() {
                writeln!(out, "{:<11} {}", c.kind.word(), c.path)?;
            } else {
                writeln!(out, "{:<11} {}  ({})", c.kind.word(), c.path, c.detail)?;
            }
        }
        let (blob, manifest, root) = (
            self.blob.display(),
            self.manifest.display(),
            self.source_root.display(),
        );
        if report.is_identical() {
            return writeln!(
                out,
                "blob {blob} matches what manifest {manifest} picks under {root}: {} entries, nothing to re-bundle",
                report.in_blob
            );
        }
        writeln!(
            out,
            "blob {blob} differs from what manifest {manifest} picks under {root}: {} added, {} removed, {} changed content, {} changed mode or owner{}; re-bundle to carry them",
            report.count(Kind::Added),
            report.count(Kind::Removed),
            report.count(Kind::Content),
            report.count(Kind::Meta),
            if report.user_changed.is_some() {
                ", another user"
            } else {
                ""
            }
        )
    }
}
