//! `bundle`: the table of what was picked, then what was sealed.
#![forbid(unsafe_code)]

use std::io::{self, Write};

use zeta_creds::bundle::{Pick, SkipKind};
use zeta_creds::msg::escape;

use super::{Text, kdf_guidance, kept_previous};
use crate::cmd::bundle::BundleReport;

/// What the picker found, per manifest entry, shown before the passphrase
/// is asked: so the operator sees what is about to be sealed.
pub struct PickSummary<'a>(pub &'a Pick);

impl Text for PickSummary<'_> {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let pick = self.0;
        let picked = || pick.entries.iter().filter(|e| e.picked);
        let width = picked()
            .map(|e| escape(&e.display).len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            out,
            "{:<width$}  {:>6}  {:>10}  skipped",
            "entry", "files", "bytes"
        )?;
        for e in picked() {
            if e.missing() {
                writeln!(
                    out,
                    "{:<width$}  {:>6}  {:>10}  missing ({})",
                    escape(&e.display),
                    "-",
                    "-",
                    if e.required { "required" } else { "optional" }
                )?;
            } else {
                writeln!(
                    out,
                    "{:<width$}  {:>6}  {:>10}  {}",
                    escape(&e.display),
                    e.files,
                    e.bytes,
                    e.skipped
                )?;
            }
        }
        let skipped: Vec<_> = pick
            .skipped
            .iter()
            .filter(|s| s.kind != SkipKind::Missing)
            .collect();
        writeln!(
            out,
            "total: {} entries picked, {} files, {} bytes, {} skipped",
            pick.items.len(),
            pick.file_count(),
            pick.total_size(),
            skipped.len()
        )?;
        for s in skipped {
            writeln!(
                out,
                "  skipped {}: {}",
                escape(&s.path),
                escape(&s.reason())
            )?;
        }
        Ok(())
    }
}

impl Text for BundleReport {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "sealed {} entries ({} files, {} bytes) into {} (generation {}, bound to USB {}, host {}, work factor {})",
            self.entries,
            self.files,
            self.bytes,
            self.out.display(),
            self.generation,
            self.usb_uuid,
            self.host,
            self.work_factor,
        )?;
        writeln!(out, "{}", kdf_guidance(self.work_factor, self.kdf_time))?;
        if let Some(generation) = self.kept_previous {
            kept_previous(out, &self.out, generation)?;
        }
        Ok(())
    }
}
