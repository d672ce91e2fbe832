//! `rebundle`: one line per run. Fresh and re-bundled on stdout (the
//! journal's info); stale and not re-bundled as a warning.
#![forbid(unsafe_code)]

use std::io::{self, Write};

use zeta_creds::rebundle::Decision;
use zeta_creds::{bundle, warning};

use super::Text;
use crate::cmd::rebundle::{RebundleReport, sealed_on};

impl Text for RebundleReport {
    fn messages_before(&self) {
        let c = &self.counts;
        let date = sealed_on(self.sealed);
        match self.decision {
            Decision::Report => warning!(
                "{} carried files changed since the blob was sealed on {date}: {}; run `zeta-creds bundle` to carry them",
                c.changed + c.new + c.vanished,
                self.list
            ),
            Decision::HoldVanished => warning!(
                "{} carried files vanished since {} was sealed on {date} ({}); not re-bundled, so the blob still carries them: bring them back, or run `zeta-creds bundle` by hand (or `zeta-creds rebundle --drop-vanished`) to drop them",
                c.vanished,
                self.blob.display(),
                self.list
            ),
            Decision::Fresh | Decision::Rebundle | Decision::Unknown => {}
        }
    }

    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let date = sealed_on(self.sealed);
        match (self.decision, self.new_generation) {
            (Decision::Fresh, _) => writeln!(
                out,
                "{} is fresh: {} carried files unchanged since it was sealed on {date} (generation {}); nothing to do",
                self.blob.display(),
                self.counts.unchanged,
                self.generation
            ),
            (Decision::Rebundle, Some(new)) => writeln!(
                out,
                "re-bundled {}: {} changed, {} new, {} vanished since it was sealed on {date} ({}); generation {} -> {new}{}",
                self.blob.display(),
                self.counts.changed,
                self.counts.new,
                self.counts.vanished,
                self.list,
                self.generation,
                if self.kept_previous {
                    format!(
                        ", previous kept as {}{}",
                        self.blob.display(),
                        bundle::PREV_SUFFIX
                    )
                } else {
                    String::new()
                }
            ),
            _ => Ok(()),
        }
    }
}
