//! The rescue's typed report: one [`SourceReport`] per file looked at,
//! whose `Display` impls are the messages the binary prints.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::scan;
use crate::msg::{escape, utc};

/// Where a source came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Source {
    /// Found by the default scan.
    Esp {
        /// The partition (or disk).
        device: PathBuf,
        /// Why it was picked.
        why: scan::Why,
    },
    /// Named with `--device`.
    Device {
        /// The partition or image file.
        device: PathBuf,
    },
    /// Named with `--from`.
    Path {
        /// The directory or file.
        path: PathBuf,
    },
    /// A stash directory (`--stash`).
    Stash {
        /// The directory.
        path: PathBuf,
    },
    /// The stick's stash partition (labelled `ZETA-CREDS`).
    StashPartition {
        /// The partition.
        device: PathBuf,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Esp { device, .. } => write!(f, "{}", device.display()),
            Source::Device { device } => write!(f, "{}", device.display()),
            Source::Path { path } => write!(f, "{}", path.display()),
            Source::Stash { path } => write!(f, "stash {}", path.display()),
            Source::StashPartition { device } => write!(f, "stash {}", device.display()),
        }
    }
}

/// What the header of a rescued blob says. **Unauthenticated**: anyone who
/// could write the source could have forged it; the passphrase checks it
/// later (`zeta-creds verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobInfo {
    /// The USB stick the blob is bound to.
    pub usb_uuid: String,
    /// The host it was sealed for; `None` for a blob of format version 1,
    /// which records none.
    pub host: Option<String>,
    /// Its generation.
    pub generation: u64,
    /// When it was sealed, seconds since the Unix epoch.
    pub created: u64,
    /// Its persona, empty for none.
    pub persona: String,
    /// The zeta-creds version that wrote it.
    pub tool_version: String,
    /// Its format version.
    pub format_version: u8,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
}

impl BlobInfo {
    /// The copy's name: `<usb-uuid>-g<generation>-<8 hex of sha256>.enc`,
    /// so that blobs of several sticks, generations and hosts coexist. The
    /// UUID comes from an unauthenticated header, but `Header::read`
    /// admits only `[0-9a-z-]`, so it cannot hold `/` or `..`.
    pub fn file_name(&self) -> String {
        format!(
            "{}-g{}-{}.enc",
            self.usb_uuid,
            self.generation,
            &self.sha256[..8]
        )
    }
}

impl fmt::Display for BlobInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host {}, stick {}, generation {}, sealed {}",
            self.host.as_deref().unwrap_or("(not recorded)"),
            self.usb_uuid,
            self.generation,
            utc(self.created)
        )?;
        if !self.persona.is_empty() {
            write!(f, ", persona {}", self.persona)?;
        }
        write!(
            f,
            ", zeta-creds {}, format {}",
            self.tool_version, self.format_version
        )
    }
}

/// What happened to one file (or one source without a file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Outcome {
    /// Copied to `stored`.
    Copied {
        /// The copy in the rescue directory.
        stored: PathBuf,
        /// Its header.
        blob: BlobInfo,
    },
    /// The same bytes are already in the rescue directory (this run or an
    /// earlier one); stored once.
    Duplicate {
        /// The copy already there.
        stored: PathBuf,
        /// Its header.
        blob: BlobInfo,
    },
    /// The source holds no file named `zeta-creds.enc` (a stash: no
    /// `*.enc` file).
    NoBlob,
    /// Not read: it is on the live stick.
    Skipped {
        /// Why.
        reason: String,
    },
    /// The file is not a blob (or of a format this version cannot read).
    NotABlob {
        /// What was found.
        reason: String,
    },
    /// The file is a blob cut short.
    Truncated {
        /// Where it ends.
        reason: String,
    },
    /// The file is larger than the limit.
    TooLarge {
        /// Its size (at least).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The device or file cannot be read.
    Unreadable {
        /// Why.
        reason: String,
    },
    /// The device could not be mounted read-only.
    MountFailed {
        /// Why.
        reason: String,
    },
    /// The rescue directory is full.
    NoSpace,
    /// Writing the copy failed otherwise.
    WriteFailed {
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// Whether this is a problem the operator should look at (not a copy,
    /// a duplicate, an empty source or the live stick).
    pub fn is_failure(&self) -> bool {
        !matches!(
            self,
            Outcome::Copied { .. }
                | Outcome::Duplicate { .. }
                | Outcome::NoBlob
                | Outcome::Skipped { .. }
        )
    }
}

/// One line of the report: a source, the file looked at, and the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceReport {
    /// Where from.
    pub source: Source,
    /// The file's name in a source directory or filesystem
    /// (`zeta-creds.enc`, `zeta-creds.enc.prev`); `None` for a `--from`
    /// file (its path says it) and for a source without a file.
    pub file: Option<String>,
    /// Where the device was mounted already, when it was read there.
    pub mounted_at: Option<PathBuf>,
    /// What happened.
    pub outcome: Outcome,
}

impl fmt::Display for SourceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(at) = &self.mounted_at {
            write!(f, " (mounted at {})", at.display())?;
        }
        if let Some(file) = &self.file {
            write!(f, ": {file}")?;
        }
        match &self.outcome {
            Outcome::Copied { stored, blob } => {
                write!(f, ": rescued ({blob}) to {}", stored.display())
            }
            Outcome::Duplicate { stored, blob } => write!(
                f,
                ": same bytes as {}, already rescued ({blob}); stored once",
                stored.display()
            ),
            Outcome::NoBlob => match self.source {
                Source::Stash { .. } | Source::StashPartition { .. } => {
                    write!(f, ": no <host>.enc here; nothing to rescue")
                }
                _ => write!(f, ": no zeta-creds.enc here; nothing to rescue"),
            },
            Outcome::Skipped { reason } => write!(f, ": not read: {reason}"),
            Outcome::NotABlob { reason } => write!(
                f,
                ": not a zeta-creds blob ({reason}); not copied, the source is left as it is"
            ),
            Outcome::Truncated { reason } => write!(
                f,
                ": a truncated zeta-creds blob ({reason}); not copied, a restore would refuse it; look for a whole copy (zeta-creds.enc.prev, a stash)"
            ),
            Outcome::TooLarge { size, limit } => write!(
                f,
                ": {size} bytes, more than the {limit} bytes a rescue copies; not copied, check it with `zeta-creds inspect` and copy it by hand if it is a blob"
            ),
            Outcome::Unreadable { reason } => match self.source {
                Source::Path { .. } | Source::Stash { .. } => write!(
                    f,
                    ": cannot be read ({reason}); nothing copied from it; check the path"
                ),
                _ => write!(
                    f,
                    ": cannot be read ({reason}); nothing copied from it; check the device name (lsblk) and that it is attached"
                ),
            },
            Outcome::MountFailed { reason } => write!(
                f,
                ": cannot be mounted read-only ({reason}); nothing copied from it; if it holds a blob, mount it by hand and rescue with --from DIR"
            ),
            Outcome::NoSpace => write!(
                f,
                ": the rescue directory is full; this blob was not copied and no partial file was left; make room (a larger tmpfs) and run the rescue again"
            ),
            Outcome::WriteFailed { reason } => write!(
                f,
                ": copy failed ({reason}); no partial file was left; run the rescue again"
            ),
        }
    }
}

/// Several distinct blobs rescued for the same stick (and host, once the
/// format records it): all are kept; the newest generation is the one to
/// restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SameStick {
    /// The stick.
    pub usb_uuid: String,
    /// The host, when recorded.
    pub host: Option<String>,
    /// The copies, newest generation first: (generation, stored path).
    pub copies: Vec<(u64, PathBuf)>,
}

impl fmt::Display for SameStick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} blobs for stick {}", self.copies.len(), self.usb_uuid)?;
        if let Some(host) = &self.host {
            write!(f, " and host {host}")?;
        }
        write!(f, " are all kept: ")?;
        let list: Vec<String> = self
            .copies
            .iter()
            .map(|(g, p)| format!("generation {g} at {}", p.display()))
            .collect();
        write!(f, "{}", list.join(", "))?;
        match self.copies.as_slice() {
            [(a, _), (b, _), ..] if a == b => write!(
                f,
                "; the newest generation is held by more than one blob (different hosts, or sealed apart): check each with `zeta-creds inspect`"
            ),
            [(_, newest), ..] => write!(f, "; the newest is {}", newest.display()),
            [] => Ok(()),
        }
    }
}

/// The whole result, for the binary to print (or serialize).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where copies went.
    pub rescue_dir: PathBuf,
    /// One entry per file looked at, or per source without a file.
    pub sources: Vec<SourceReport>,
    /// Sticks with several distinct blobs rescued.
    pub same_stick: Vec<SameStick>,
    /// Problems that did not stop the rescue (a mount left behind).
    pub warnings: Vec<String>,
}

/// Every line of the report, then the sticks with several blobs, the
/// warnings, and a summary: what the binary prints.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Each line escaped: a file name on a disk being rescued must not
        // start a line of its own or reach the terminal as an escape.
        for s in &self.sources {
            writeln!(f, "{}", escape(&s.to_string()))?;
        }
        for s in &self.same_stick {
            writeln!(f, "{}", escape(&s.to_string()))?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {}", escape(w))?;
        }
        let copied = self.copied().count();
        let already = self
            .sources
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Duplicate { .. }))
            .count();
        if copied + already == 0 {
            write!(
                f,
                "no blob rescued; if one exists, name where with --device DEV or --from PATH"
            )?;
        } else {
            write!(
                f,
                "{copied} blob(s) copied to {}",
                self.rescue_dir.display()
            )?;
            if already > 0 {
                write!(f, ", {already} found again and stored once")?;
            }
        }
        if self.has_failures() {
            write!(
                f,
                "; some sources could not be rescued (see above): look at them before wiping a disk"
            )?;
        }
        writeln!(f)
    }
}

impl Report {
    /// The copies made by this run.
    pub fn copied(&self) -> impl Iterator<Item = (&PathBuf, &BlobInfo)> {
        self.sources.iter().filter_map(|s| match &s.outcome {
            Outcome::Copied { stored, blob } => Some((stored, blob)),
            _ => None,
        })
    }

    /// Whether some source could not be rescued (see
    /// [`Outcome::is_failure`]) or a warning was raised.
    pub fn has_failures(&self) -> bool {
        !self.warnings.is_empty() || self.sources.iter().any(|s| s.outcome.is_failure())
    }
}
