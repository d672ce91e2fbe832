//! `diff`: one line per difference, then a summary.
#![forbid(unsafe_code)]

use std::io::{self, Write};

use zeta_creds::diff::Kind;
use zeta_creds::msg::escape;

use super::Text;
use crate::cmd::diff::DiffReport;

impl Text for DiffReport {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let report = &self.report;
        if let Some((was, now)) = &report.user_changed {
            writeln!(out, "{:<11} {} -> {}", "user", escape(was), escape(now))?;
        }
        for c in &report.changes {
            let path = escape(&c.path);
            if c.detail.is_empty() {
                writeln!(out, "{:<11} {path}", c.kind.word())?;
            } else {
                let detail = escape(&c.detail);
                writeln!(out, "{:<11} {path}  ({detail})", c.kind.word())?;
            }
        }
        let (blob, manifest, root) = (
            escape(&self.blob.to_string_lossy()).into_owned(),
            escape(&self.manifest.to_string_lossy()).into_owned(),
            escape(&self.source_root.to_string_lossy()).into_owned(),
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
            "blob {blob} differs from what manifest {manifest} picks under {root}: {} added, {} removed, {} changed content, {} changed mode or owner{}{}; re-bundle to carry them",
            report.count(Kind::Added),
            report.count(Kind::Removed),
            report.count(Kind::Content),
            report.count(Kind::Meta),
            match report.count(Kind::Unreadable) {
                0 => String::new(),
                n => format!(", {n} unreadable now"),
            },
            if report.user_changed.is_some() {
                ", another user"
            } else {
                ""
            }
        )
    }
}
