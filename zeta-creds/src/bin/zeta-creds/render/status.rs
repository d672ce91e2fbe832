//! `status`: one line per file that is not as the blob carries it, then a
//! summary that says fresh or stale.
#![forbid(unsafe_code)]

use std::io::{self, Write};

use zeta_creds::msg::escape;
use zeta_creds::status::FileState;
use zeta_creds::warning;

use super::{Text, plural};
use crate::cmd::status::StatusReport;

impl Text for StatusReport {
    fn messages_before(&self) {
        if self.manifest.is_none() {
            warning!(
                "no manifest (--manifest, or {}): files the blob does not carry yet were not looked for",
                self.target_root
                    .join("etc/zeta/creds-manifest.toml")
                    .display()
            );
        }
    }

    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        for f in &self.report.files {
            let detail = match &f.state {
                FileState::Unchanged => continue,
                FileState::Changed { what } => what
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                FileState::Vanished | FileState::New => String::new(),
                FileState::Unreadable { reason } => reason.clone(),
            };
            let path = escape(&f.path);
            if detail.is_empty() {
                writeln!(out, "{:<10} {path}", f.state.word())?;
            } else {
                let detail = escape(&detail);
                writeln!(out, "{:<10} {path}  ({detail})", f.state.word())?;
            }
        }
        let blob = match &self.sealed_utc {
            Some(date) => format!("blob generation {}, sealed {date}", self.generation),
            None => format!(
                "blob generation {}, sealed date not recorded",
                self.generation
            ),
        };
        let c = &self.report.counts;
        if self.fresh {
            return writeln!(
                out,
                "fresh: {} unchanged since the blob was sealed ({blob}); nothing to re-bundle",
                plural(c.unchanged, "carried file", "carried files")
            );
        }
        let parts: Vec<String> = [
            (c.changed, "changed"),
            (c.vanished, "vanished"),
            (c.new, "new"),
            (c.unreadable, "unreadable"),
            (c.unchanged, "unchanged"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, word)| format!("{n} {word}"))
        .collect();
        if c.changed + c.vanished + c.new == 0 {
            // Only unreadable files: the error after this report says so.
            return writeln!(out, "unknown: {} ({blob})", parts.join(", "));
        }
        writeln!(
            out,
            "stale: {} since the blob was sealed ({blob}); run `zeta-creds bundle` to carry them",
            parts.join(", ")
        )
    }
}
