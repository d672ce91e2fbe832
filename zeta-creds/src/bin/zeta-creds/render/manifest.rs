//! `manifest check`: per entry, what it matches now; then a summary.
#![forbid(unsafe_code)]

use std::io::{self, Write};

use zeta_creds::bundle::{EntryReport, Pick, SkipKind};
use zeta_creds::manifest::{Manifest, human_size};
use zeta_creds::msg::escape;

use super::{Text, persona_suffix, plural};
use crate::cmd::manifest_check::ManifestCheckReport;

/// Indent of the lines under an entry.
const PAD: &str = "          ";

impl Text for ManifestCheckReport {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        match self {
            ManifestCheckReport::Syntax {
                file,
                entries,
                user,
            } => writeln!(
                out,
                "manifest {} is valid: {entries} entries for user {user}",
                file.display()
            ),
            ManifestCheckReport::Matched { pick, manifest } => matched(out, pick, manifest),
        }
    }
}

fn matched(out: &mut dyn Write, pick: &Pick, m: &Manifest) -> io::Result<()> {
    writeln!(
        out,
        "manifest {}: {} entries for user {}, matched under {}{}",
        pick.manifest.display(),
        pick.entries.len(),
        pick.user,
        pick.source_root.display(),
        persona_suffix(&pick.persona)
    )?;
    if let Some(d) = &m.description {
        writeln!(out, "  {}", escape(d))?;
    }
    for (index, e) in pick.entries.iter().enumerate() {
        entry(out, pick, m, index, e)?;
    }
    let picked = pick.entries.iter().filter(|e| e.picked).count();
    let missing = pick.entries.iter().filter(|e| e.missing()).count();
    let required_missing = pick
        .entries
        .iter()
        .filter(|e| e.missing() && e.required)
        .count();
    writeln!(
        out,
        "summary: {} of {} entries apply, {} match, {} missing ({} required); {} files, {} bytes",
        picked,
        pick.entries.len(),
        picked - missing,
        missing,
        required_missing,
        pick.file_count(),
        pick.total_size()
    )
}

/// One manifest entry: its line, overrides and what it matches.
fn entry(
    out: &mut dyn Write,
    pick: &Pick,
    m: &Manifest,
    index: usize,
    e: &EntryReport,
) -> io::Result<()> {
    let mut flags = Vec::new();
    if e.required {
        flags.push("required".to_owned());
    }
    if !e.personas.is_empty() {
        flags.push(format!("personas: {}", e.personas.join(", ")));
    }
    let overrides = &m.entries[index];
    if let Some(mode) = overrides.mode {
        flags.push(format!("mode {mode:04o}"));
    }
    if let Some(o) = &overrides.owner {
        flags.push(format!("owner {o}"));
    }
    if let Some(g) = &overrides.group {
        flags.push(format!("group {g}"));
    }
    writeln!(
        out,
        "line {:<4} {}{}{}",
        e.line,
        escape(&e.display),
        if flags.is_empty() {
            String::new()
        } else {
            format!("  [{}]", flags.join("; "))
        },
        e.description
            .as_deref()
            .map(|d| format!("  # {}", escape(d)))
            .unwrap_or_default()
    )?;
    if !e.picked {
        return writeln!(
            out,
            "{PAD}not picked: only for personas {}",
            e.personas.join(", ")
        );
    }
    if e.missing() {
        if e.required {
            writeln!(
                out,
                "{PAD}matches nothing: REQUIRED, bundle would fail (exit 6)"
            )?;
        } else {
            writeln!(out, "{PAD}matches nothing (optional: skipped)")?;
        }
    } else {
        writeln!(
            out,
            "{PAD}{}, {}, {}, {} bytes (max_size {})",
            plural(e.matches.len(), "match", "matches"),
            plural(e.files, "file", "files"),
            plural(e.dirs, "directory", "directories"),
            e.bytes,
            human_size(e.max_size)
        )?;
        for p in &e.matches {
            writeln!(out, "{PAD}  {}", escape(p))?;
        }
        if e.too_large() {
            writeln!(
                out,
                "{PAD}over max_size: bundle would fail; raise max_size or add an exclude"
            )?;
        }
    }
    for s in pick
        .skipped
        .iter()
        .filter(|s| s.entry == index && s.kind != SkipKind::Missing)
    {
        writeln!(
            out,
            "{PAD}skipped {}: {}",
            escape(&s.path),
            escape(&s.reason())
        )?;
    }
    Ok(())
}
