//! Manifest v1: which paths a bundle carries (DESIGN.md "Manifest v1").
//!
//! ```toml
//! version = 1
//! user = "zeta"                 # whose home "~" means, at bundle and restore
//!
//! [[entry]]
//! path = "~/.config/gh"         # absolute or ~/...
//! required = false              # a missing optional path is reported and skipped
//! exclude = ["*.sock"]          # globs inside a matched directory
//! personas = []                 # empty: every persona
//! ```
//!
//! Unknown keys are errors, so a typo cannot silently drop a credential.
//! This first version takes plain paths; globs in `path` are refused with a
//! message until the manifest issue adds them.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::envelope::{Anchor, entries_validate_name, entries_validate_path};

/// Problems with a manifest file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("manifest {path}, entry {index} ({entry:?}): {message}")]
    Entry {
        path: PathBuf,
        index: usize,
        entry: String,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    version: u32,
    user: String,
    #[serde(default)]
    entry: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    path: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    personas: Vec<String>,
}

/// A parsed, validated manifest.
#[derive(Debug)]
pub struct Manifest {
    /// Whose home `~` means.
    pub user: String,
    pub entries: Vec<Entry>,
}

/// One `[[entry]]`.
#[derive(Debug)]
pub struct Entry {
    /// The path as written in the manifest, for messages.
    pub display: String,
    pub anchor: Anchor,
    /// Relative to the root (`etc/ssh/...`) or to the home (`.config/gh`).
    pub rel: String,
    pub required: bool,
    pub exclude: GlobSet,
    pub personas: Vec<String>,
}

impl Entry {
    /// Whether this entry belongs in a bundle for `persona` ("" for none).
    pub fn applies_to(&self, persona: &str) -> bool {
        self.personas.is_empty() || self.personas.iter().any(|p| p == persona)
    }
}

impl Manifest {
    /// Read and validate a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Manifest::parse(&text, path)
    }

    /// Validate manifest text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, Error> {
        let parse_err = |message: String| Error::Parse {
            path: path.to_owned(),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        if raw.version != 1 {
            return Err(parse_err(format!(
                "version {} is not supported (this zeta-creds reads version 1)",
                raw.version
            )));
        }
        entries_validate_name(&raw.user).map_err(|m| parse_err(format!("user: {m}")))?;
        let mut entries: Vec<Entry> = Vec::with_capacity(raw.entry.len());
        for (i, e) in raw.entry.into_iter().enumerate() {
            let index = i + 1;
            let entry_err = |message: String| Error::Entry {
                path: path.to_owned(),
                index,
                entry: e.path.clone(),
                message,
            };
            let (anchor, rest) = if let Some(rest) = e.path.strip_prefix("~/") {
                (Anchor::Home, rest)
            } else if let Some(rest) = e.path.strip_prefix('/') {
                (Anchor::Root, rest)
            } else {
                return Err(entry_err(
                    "path must be absolute (/etc/...) or in the user's home (~/...)".into(),
                ));
            };
            let rel = rest.trim_end_matches('/');
            if rel.is_empty() {
                return Err(entry_err(match anchor {
                    Anchor::Root => "refusing to carry the whole root directory".into(),
                    Anchor::Home => {
                        "refusing to carry a whole home directory; name what to carry inside it"
                            .into()
                    }
                }));
            }
            if rel.contains(['*', '?', '[', ']', '{', '}']) {
                return Err(entry_err(
                    "glob patterns in `path` are not supported yet; list each path".into(),
                ));
            }
            entries_validate_path(rel).map_err(|e| entry_err(e.to_string()))?;
            if entries.iter().any(|x| x.anchor == anchor && x.rel == rel) {
                return Err(entry_err("duplicate path".into()));
            }
            let mut set = GlobSetBuilder::new();
            for pattern in &e.exclude {
                let glob = Glob::new(pattern)
                    .map_err(|err| entry_err(format!("bad exclude glob {pattern:?}: {err}")))?;
                set.add(glob);
            }
            let exclude = set
                .build()
                .map_err(|err| entry_err(format!("bad exclude globs: {err}")))?;
            for p in &e.personas {
                crate::envelope::validate_persona(p).map_err(|err| entry_err(err.to_string()))?;
            }
            entries.push(Entry {
                display: e.path.clone(),
                anchor,
                rel: rel.to_owned(),
                required: e.required,
                exclude,
                personas: e.personas.clone(),
            });
        }
        Ok(Manifest {
            user: raw.user,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, Error> {
        Manifest::parse(text, Path::new("m.toml"))
    }

    #[test]
    fn accepts_the_core_keys() {
        let m = parse(
            r#"
version = 1
user = "zeta"
[[entry]]
path = "~/.config/gh/"
required = true
exclude = ["*.sock"]
personas = ["ops"]
[[entry]]
path = "/etc/zeta/operator-authorized-keys"
"#,
        )
        .unwrap();
        assert_eq!(m.entries.len(), 2);
        assert_eq!(m.entries[0].rel, ".config/gh");
        assert_eq!(m.entries[0].anchor, Anchor::Home);
        assert!(m.entries[0].exclude.is_match("a/b.sock"));
        assert!(m.entries[0].applies_to("ops") && !m.entries[0].applies_to("dev"));
        assert!(m.entries[1].applies_to(""));
    }

    #[test]
    fn refuses_what_would_lose_or_overreach() {
        for (text, needle) in [
            ("version = 2\nuser = \"z\"", "version 2"),
            ("version = 1\nuser = \"z\"\ntypo = 1", "unknown field"),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"etc/x\"",
                "absolute",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/\"",
                "whole root",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"~/\"",
                "whole home",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/etc/../x\"",
                "\"..\"",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/etc/ssh/*\"",
                "glob",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/a\"\n[[entry]]\npath = \"/a/\"",
                "duplicate",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/a\"\nexclude = [\"[\"]",
                "bad exclude",
            ),
            ("version = 1\nuser = \"\"", "user"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
