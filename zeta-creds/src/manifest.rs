//! Manifest v1: which paths a bundle carries, for whom, with which
//! overrides (`manifest/README.md` is the operator's reference).
//!
//! ```toml
//! version = 1
//! user = "zeta"                   # whose home "~" means, at bundle and restore
//! description = "what this manifest is for"
//!
//! [[entry]]
//! path = "/etc/ssh/ssh_host_*_key" # absolute or ~/...; globs per component
//! required = false                 # missing: reported and skipped; true: bundle exits 6
//! personas = []                    # empty: every persona
//! exclude = ["*.sock", "cache"]    # globs inside a matched directory
//! mode = "0600"                    # octal string; files get it, directories get it plus x
//! owner = "root"                   # or uid = 4242 (applied as is on the target)
//! group = "root"                   # or gid = 4242
//! max_size = "16MiB"               # bytes or "512KiB"/"16MiB"/"1GiB"; default 16 MiB
//! description = "what it is"
//! ```
//!
//! Everything wrong with a manifest is an [`Error::Invalid`] that names the
//! file, the line (from toml's spans) and the fix. Unknown keys are errors,
//! so a typo cannot silently drop a credential.
//!
//! Globs are matched one path component at a time by the picker
//! (`bundle`), so `*` never crosses a `/`, a glob never matches `.` or
//! `..`, and, as in the shell, a name starting with `.` is matched only by
//! a pattern component that starts with `.` too.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;
use toml::Spanned;

use crate::envelope::{Anchor, MAX_ENTRY_SIZE, entries_validate_name, entries_validate_path};

/// The only manifest version this zeta-creds reads.
pub const VERSION: i64 = 1;

/// `max_size` when an entry does not set one: 16 MiB, far above any
/// credential and far below a cache swept up by mistake.
pub const DEFAULT_MAX_SIZE: u64 = 16 << 20;

/// Where the keys are documented, for hints.
const REFERENCE: &str = "manifest/README.md";

/// Problems with a manifest file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read.
    #[error("cannot read manifest {path}: {source}")]
    Read {
        /// The manifest.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `message` says what is wrong and how to fix it.
    #[error("manifest {path}, line {line}: {message}")]
    Invalid {
        /// The manifest.
        path: PathBuf,
        /// The line the mistake is on (1-based).
        line: usize,
        /// What is wrong and the fix.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    version: Spanned<toml::Value>,
    user: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    entry: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    path: Spanned<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    personas: Vec<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    mode: Option<Spanned<toml::Value>>,
    owner: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    uid: Option<Spanned<i64>>,
    gid: Option<Spanned<i64>>,
    max_size: Option<Spanned<toml::Value>>,
    description: Option<String>,
}

/// A parsed, validated manifest.
#[derive(Debug)]
pub struct Manifest {
    /// The file it was read from, for messages.
    pub path: PathBuf,
    /// Whose home `~` means.
    pub user: String,
    /// The manifest's `description`, free text.
    pub description: Option<String>,
    /// Its `[[entry]]` tables, in file order.
    pub entries: Vec<Entry>,
}

/// One `[[entry]]`.
#[derive(Debug)]
pub struct Entry {
    /// The line of its `path` key, for messages.
    pub line: usize,
    /// The path as written in the manifest (`~/.config/gh`).
    pub display: String,
    /// Whether the path is absolute or in the user's home.
    pub anchor: Anchor,
    /// The path's components below the root or the home, each a literal
    /// name or a glob.
    pub components: Vec<Component>,
    /// `required = true`: a bundle fails when the entry matches nothing.
    pub required: bool,
    /// What not to carry from inside a matched directory.
    pub exclude: Exclude,
    /// Empty: every persona.
    pub personas: Vec<String>,
    /// Mode of the files it carries (directories get it plus search bits).
    pub mode: Option<u32>,
    /// Owner recorded in the blob: a name, or the digits of a `uid`.
    pub owner: Option<String>,
    /// Group recorded in the blob: a name, or the digits of a `gid`.
    pub group: Option<String>,
    /// Most bytes of file content this entry may carry, all matches
    /// together.
    pub max_size: u64,
    /// The entry's `description`, shown by `manifest check`.
    pub description: Option<String>,
}

impl Entry {
    /// Whether this entry belongs in a bundle for `persona` ("" for none):
    /// an entry without personas belongs to every bundle; one with
    /// personas only to bundles for one of them.
    pub fn applies_to(&self, persona: &str) -> bool {
        self.personas.is_empty() || self.personas.iter().any(|p| p == persona)
    }

    /// Whether any component is a glob.
    pub fn is_glob(&self) -> bool {
        self.components
            .iter()
            .any(|c| matches!(c, Component::Glob(_)))
    }

    /// The mode a carried directory gets under a `mode` override: the
    /// override plus a search (x) bit wherever it grants read, so that
    /// `mode = "0600"` gives files 0600 and directories 0700.
    pub fn dir_mode(mode: u32) -> u32 {
        mode | ((mode & 0o444) >> 2)
    }
}

/// One component of an entry's path.
#[derive(Debug, Clone)]
pub enum Component {
    /// A name matched as it is.
    Literal(String),
    /// A glob matched against each name in the directory.
    Glob(Pattern),
}

/// A glob for one path component.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    matcher: GlobMatcher,
}

impl Pattern {
    /// Whether `name` (one directory entry) matches: never `.` or `..`,
    /// and a leading `.` only when the pattern starts with one.
    pub fn matches(&self, name: &str) -> bool {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return false;
        }
        if name.starts_with('.') && !self.text.starts_with('.') {
            return false;
        }
        self.matcher.is_match(name)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// An entry's `exclude` globs, gitignore-style: a pattern without `/`
/// matches a name at any depth inside the matched directory (`cache`,
/// `*.sock`); a pattern with `/` matches the path relative to it
/// (`sessions/*.jsonl`, `**/tmp`).
#[derive(Debug, Clone, Default)]
pub struct Exclude {
    patterns: Vec<(String, GlobMatcher, bool)>,
}

impl Exclude {
    /// The first pattern that excludes `sub` (a path relative to the
    /// matched directory, like `logs/today.log`), if any.
    pub fn matching(&self, sub: &str) -> Option<&str> {
        let base = sub.rsplit('/').next().unwrap_or(sub);
        self.patterns
            .iter()
            .find(|(_, m, has_slash)| {
                if *has_slash {
                    m.is_match(sub)
                } else {
                    m.is_match(base)
                }
            })
            .map(|(text, _, _)| text.as_str())
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

impl Manifest {
    /// Whether some entry carries the file or directory at `path`
    /// (`/`-separated, below the root or the home, as `anchor` says): the
    /// same anchor, the entry's components (literal or glob) match the
    /// first components of `path`, and the rest, inside a carried
    /// directory, is not excluded. Personas are not considered: this says
    /// whether the manifest names the path at all (the restore's policy,
    /// and whether a vanished file is still carried).
    pub fn carries(&self, anchor: Anchor, path: &str) -> bool {
        let path: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        self.entries.iter().any(|e| {
            e.anchor == anchor
                && e.components.len() <= path.len()
                && e.components.iter().zip(&path).all(|(c, name)| match c {
                    Component::Literal(l) => l == name,
                    Component::Glob(g) => g.matches(name),
                })
                && (e.components.len() == path.len()
                    || e.exclude
                        .matching(&path[e.components.len()..].join("/"))
                        .is_none())
        })
    }

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
        let at = |span: Range<usize>, message: String| Error::Invalid {
            path: path.to_owned(),
            line: line_of(text, span.start),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            at(
                e.span().unwrap_or(0..0),
                format!("{}; {}", e.message().trim_end(), toml_hint(e.message())),
            )
        })?;
        match raw.version.get_ref() {
            toml::Value::Integer(VERSION) => {}
            other => {
                return Err(at(
                    raw.version.span(),
                    format!(
                        "version {other} is not supported; this zeta-creds reads manifest version 1: write `version = 1` (see {REFERENCE})"
                    ),
                ));
            }
        }
        entries_validate_name(raw.user.get_ref()).map_err(|m| {
            at(
                raw.user.span(),
                format!("user: {m}; set `user` to the account whose home \"~\" means, e.g. user = \"zeta\""),
            )
        })?;

        let mut entries: Vec<Entry> = Vec::with_capacity(raw.entry.len());
        for e in raw.entry {
            let entry = parse_entry(e, &at, text)?;
            if let Some(first) = entries
                .iter()
                .find(|x| x.anchor == entry.anchor && same_components(x, &entry))
            {
                return Err(Error::Invalid {
                    path: path.to_owned(),
                    line: entry.line,
                    message: format!(
                        "path {:?} duplicates the entry at line {}; remove one of the two (merge their keys into the one you keep)",
                        entry.display, first.line
                    ),
                });
            }
            entries.push(entry);
        }
        Ok(Manifest {
            path: path.to_owned(),
            user: raw.user.into_inner(),
            description: raw.description,
            entries,
        })
    }

    /// Every persona some entry names.
    pub fn personas(&self) -> BTreeSet<&str> {
        self.entries
            .iter()
            .flat_map(|e| e.personas.iter().map(String::as_str))
            .collect()
    }
}

fn same_components(a: &Entry, b: &Entry) -> bool {
    a.components.len() == b.components.len()
        && a.components
            .iter()
            .zip(&b.components)
            .all(|(x, y)| component_text(x) == component_text(y))
}

fn component_text(c: &Component) -> &str {
    match c {
        Component::Literal(s) => s,
        Component::Glob(p) => &p.text,
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    1 + text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// The fix for a TOML or serde error, from its message.
fn toml_hint(message: &str) -> String {
    if message.starts_with("unknown field") {
        format!("check the spelling, or remove the key (the keys are listed in {REFERENCE})")
    } else if message.starts_with("missing field") {
        format!("add it (see the commented example in {REFERENCE})")
    } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
        format!("give the value the type {REFERENCE} documents")
    } else {
        "fix the TOML syntax at that line".to_owned()
    }
}

/// Characters that make a path component a glob.
const GLOB_CHARS: [char; 4] = ['*', '?', '[', '{'];

fn parse_entry(
    e: RawEntry,
    at: &impl Fn(Range<usize>, String) -> Error,
    text: &str,
) -> Result<Entry, Error> {
    let span = e.path.span();
    let display = e.path.get_ref().clone();
    let line = line_of(text, span.start);
    let err = |message: String| at(span.clone(), message);

    let (anchor, rest) = if display == "~" {
        (Anchor::Home, "")
    } else if let Some(rest) = display.strip_prefix("~/") {
        (Anchor::Home, rest)
    } else if display.starts_with('~') {
        return Err(err(format!(
            "path {display:?}: only \"~/\" (the manifest user's home) is understood; write ~/... for the manifest user, or an absolute path"
        )));
    } else if let Some(rest) = display.strip_prefix('/') {
        (Anchor::Root, rest)
    } else {
        return Err(err(format!(
            "path {display:?} is relative; write it absolute (\"/{display}\") or in the manifest user's home (\"~/{display}\")"
        )));
    };
    let rel = rest.trim_end_matches('/');
    if rel.is_empty() {
        return Err(err(match anchor {
            Anchor::Root => format!(
                "path {display:?} is the whole root directory; name what to carry, e.g. \"/etc/ssh/ssh_host_*_key\""
            ),
            Anchor::Home => format!(
                "path {display:?} is the user's whole home; name what to carry inside it, e.g. \"~/.config/gh\""
            ),
        }));
    }
    entries_validate_path(rel).map_err(|e| {
        err(format!(
            "path {display:?}: {}; write a plain path without empty, \".\" or \"..\" components",
            e.to_string()
                .trim_start_matches("entry stream is invalid: ")
        ))
    })?;

    let mut components = Vec::new();
    for c in rel.split('/') {
        if !c.contains(GLOB_CHARS) {
            components.push(Component::Literal(c.to_owned()));
            continue;
        }
        if c.contains("**") {
            return Err(err(format!(
                "path {display:?}: \"**\" is not supported in a path; name the directory (it is carried whole) and use `exclude` for what to leave out"
            )));
        }
        let matcher = GlobBuilder::new(c)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|g| {
                err(format!(
                    "path {display:?}: bad glob {c:?} ({}); fix the pattern (* ? [abc] {{a,b}}), or escape a literal character with a backslash",
                    glob_kind(&g)
                ))
            })?
            .compile_matcher();
        components.push(Component::Glob(Pattern {
            text: c.to_owned(),
            matcher,
        }));
    }
    if let [Component::Glob(p)] = components.as_slice()
        && p.text
            .trim_start_matches('.')
            .chars()
            .all(|ch| ch == '*' || ch == '?')
    {
        return Err(err(match anchor {
            Anchor::Root => format!(
                "path {display:?} matches every top-level directory, i.e. the whole root; name what to carry, e.g. \"/etc/ssh/ssh_host_*_key\""
            ),
            Anchor::Home => format!(
                "path {display:?} matches everything in the user's home, i.e. the whole home; name what to carry inside it, e.g. \"~/.config/gh\""
            ),
        }));
    }

    let mut patterns = Vec::new();
    for x in &e.exclude {
        let p = x.get_ref();
        let xerr = |message: String| at(x.span(), message);
        if p.is_empty() {
            return Err(xerr(format!(
                "entry {display:?}: an empty exclude pattern matches nothing; remove it"
            )));
        }
        if p.starts_with('/') || p.starts_with("~/") {
            return Err(xerr(format!(
                "entry {display:?}: exclude {p:?} is not relative; exclude globs are relative to the matched directory: write {:?}",
                p.trim_start_matches('~').trim_start_matches('/')
            )));
        }
        let matcher = GlobBuilder::new(p)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|g| {
                xerr(format!(
                    "entry {display:?}: bad exclude glob {p:?} ({}); fix the pattern (* ? [abc] {{a,b}} **), or escape a literal character with a backslash",
                    glob_kind(&g)
                ))
            })?
            .compile_matcher();
        patterns.push((p.clone(), matcher, p.contains('/')));
    }

    let mut personas = Vec::new();
    for p in &e.personas {
        crate::envelope::validate_persona(p.get_ref()).map_err(|_| {
            at(
                p.span(),
                format!(
                    "entry {display:?}: persona {:?} is not a valid name; use up to 64 of a-z, 0-9, _ and -",
                    p.get_ref()
                ),
            )
        })?;
        if p.get_ref().is_empty() {
            return Err(at(
                p.span(),
                format!(
                    "entry {display:?}: an empty persona name; remove it (an empty list means every persona)"
                ),
            ));
        }
        personas.push(p.get_ref().clone());
    }

    let mode = match &e.mode {
        None => None,
        Some(m) => Some(
            parse_mode(m.get_ref())
                .map_err(|why| at(m.span(), format!("entry {display:?}: {why}")))?,
        ),
    };

    let owner = id_override(
        &display,
        e.owner.as_ref(),
        e.uid.as_ref(),
        ("owner", "uid", "user"),
        at,
    )?;
    let group = id_override(
        &display,
        e.group.as_ref(),
        e.gid.as_ref(),
        ("group", "gid", "group"),
        at,
    )?;

    let max_size = match &e.max_size {
        None => DEFAULT_MAX_SIZE,
        Some(m) => parse_size(m.get_ref())
            .map_err(|why| at(m.span(), format!("entry {display:?}: {why}")))?,
    };

    Ok(Entry {
        line,
        display,
        anchor,
        components,
        required: e.required,
        exclude: Exclude { patterns },
        personas,
        mode,
        owner,
        group,
        max_size,
        description: e.description,
    })
}

fn glob_kind(e: &globset::Error) -> String {
    e.kind().to_string()
}

/// `owner`/`uid` (or `group`/`gid`): a name, or a numeric id recorded as
/// its digits (the restore applies an all-digit owner as is).
fn id_override(
    display: &str,
    name: Option<&Spanned<String>>,
    id: Option<&Spanned<i64>>,
    (name_key, id_key, what): (&str, &str, &str),
    at: &impl Fn(Range<usize>, String) -> Error,
) -> Result<Option<String>, Error> {
    match (name, id) {
        (Some(_), Some(i)) => Err(at(
            i.span(),
            format!(
                "entry {display:?} sets both `{name_key}` and `{id_key}`; keep one: `{name_key}` (a name resolved on the target) or `{id_key}` (a number applied as is, for an account that exists only there)"
            ),
        )),
        (Some(n), None) => {
            let v = n.get_ref();
            if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(at(
                    n.span(),
                    format!(
                        "entry {display:?}: {name_key} {v:?} is all digits; for a numeric id write `{id_key} = {v}`"
                    ),
                ));
            }
            entries_validate_name(v).map_err(|m| {
                at(
                    n.span(),
                    format!(
                        "entry {display:?}: {name_key}: {m}; give the {what} name as it appears on the target"
                    ),
                )
            })?;
            Ok(Some(v.clone()))
        }
        (None, Some(i)) => {
            let v = *i.get_ref();
            // u32::MAX is "no change" to chown(2); never a real id.
            if !(0..i64::from(u32::MAX)).contains(&v) {
                return Err(at(
                    i.span(),
                    format!(
                        "entry {display:?}: {id_key} {v} is out of range; use 0 to {}",
                        u32::MAX - 1
                    ),
                ));
            }
            Ok(Some(v.to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// `mode = "0600"`: a string of 3 or 4 octal digits, at most 7777.
fn parse_mode(v: &toml::Value) -> Result<u32, String> {
    let s = match v {
        toml::Value::String(s) => s,
        toml::Value::Integer(i) => {
            return Err(format!(
                "mode {i} is a TOML integer; write the mode as a string of octal digits, like mode = \"0600\" (a bare 600 would be decimal)"
            ));
        }
        other => {
            return Err(format!(
                "mode {other} is not a string; write it as octal digits, like mode = \"0600\""
            ));
        }
    };
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if !(3..=4).contains(&digits.len()) || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!(
            "mode {s:?} is not 3 or 4 octal digits (at most \"7777\"); write it like mode = \"0600\""
        ));
    }
    u32::from_str_radix(digits, 8).map_err(|e| format!("mode {s:?}: {e}"))
}

/// `max_size`: an integer number of bytes, or a string with a binary unit:
/// `"512KiB"`, `"16MiB"`, `"1GiB"` (also `K`, `M`, `G`, `B`).
fn parse_size(v: &toml::Value) -> Result<u64, String> {
    let limit_hint = "write a number of bytes or a size like \"16MiB\" (units B, KiB, MiB, GiB)";
    let bytes = match v {
        toml::Value::Integer(i) => {
            u64::try_from(*i).map_err(|_| format!("max_size {i} is negative; {limit_hint}"))?
        }
        toml::Value::String(s) => {
            let t = s.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let mult: u64 = match unit.trim() {
                "" | "B" => 1,
                "K" | "KiB" => 1 << 10,
                "M" | "MiB" => 1 << 20,
                "G" | "GiB" => 1 << 30,
                other => {
                    return Err(format!(
                        "max_size {s:?}: unknown unit {other:?}; {limit_hint}"
                    ));
                }
            };
            let n: u64 = num.parse().map_err(|_| {
                format!("max_size {s:?} does not start with a number; {limit_hint}")
            })?;
            n.checked_mul(mult)
                .ok_or_else(|| format!("max_size {s:?} is too large; {limit_hint}"))?
        }
        other => return Err(format!("max_size {other} is not a size; {limit_hint}")),
    };
    if bytes == 0 {
        return Err(format!(
            "max_size 0 would refuse any file; raise it or remove the key (default 16 MiB); {limit_hint}"
        ));
    }
    if bytes > MAX_ENTRY_SIZE {
        return Err(format!(
            "max_size {bytes} exceeds what a blob can hold per entry ({} GiB); lower it",
            MAX_ENTRY_SIZE >> 30
        ));
    }
    Ok(bytes)
}

/// `16777216` as `16 MiB`, for messages (exact units only, else bytes).
pub fn human_size(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, Error> {
        Manifest::parse(text, Path::new("m.toml"))
    }

    #[test]
    fn accepts_every_key() {
        let m = parse(
            r#"
version = 1
user = "zeta"
description = "test"
[[entry]]
path = "~/.config/gh/"
required = true
exclude = ["*.sock", "logs/*.log"]
personas = ["ops"]
[[entry]]
path = "/etc/ssh/ssh_host_*_key"
mode = "0600"
owner = "root"
gid = 4242
max_size = "1MiB"
description = "host keys"
"#,
        )
        .unwrap();
        assert_eq!(m.entries.len(), 2);
        let gh = &m.entries[0];
        assert_eq!(gh.line, 6);
        assert_eq!(gh.anchor, Anchor::Home);
        assert!(!gh.is_glob());
        assert_eq!(gh.exclude.matching("a/b.sock"), Some("*.sock"));
        assert_eq!(gh.exclude.matching("logs/x.log"), Some("logs/*.log"));
        assert_eq!(gh.exclude.matching("a/logs/x.log"), None);
        assert!(gh.applies_to("ops") && !gh.applies_to("dev") && !gh.applies_to(""));
        assert_eq!(gh.max_size, DEFAULT_MAX_SIZE);
        let keys = &m.entries[1];
        assert!(keys.is_glob() && keys.applies_to(""));
        assert_eq!(keys.mode, Some(0o600));
        assert_eq!(keys.owner.as_deref(), Some("root"));
        assert_eq!(keys.group.as_deref(), Some("4242"));
        assert_eq!(keys.max_size, 1 << 20);
        let Component::Glob(p) = &keys.components[2] else {
            panic!()
        };
        assert!(p.matches("ssh_host_rsa_key"));
        assert!(!p.matches("ssh_host_rsa_key.pub"));
        assert_eq!(m.personas().into_iter().collect::<Vec<_>>(), ["ops"]);
    }

    #[test]
    fn globs_never_match_dot_entries_and_hidden_names_need_a_dot() {
        let m = parse(
            "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/a/*\"\n[[entry]]\npath = \"~/.c*\"",
        )
        .unwrap();
        let Component::Glob(star) = &m.entries[0].components[1] else {
            panic!()
        };
        assert!(star.matches("x"));
        for name in [".", "..", ".hidden", ""] {
            assert!(!star.matches(name), "{name:?}");
        }
        let Component::Glob(dot) = &m.entries[1].components[0] else {
            panic!()
        };
        assert!(dot.matches(".codex") && dot.matches(".claude.json"));
        assert!(!dot.matches("..") && !dot.matches("."));
    }

    #[test]
    fn modes_and_sizes() {
        for (v, want) in [
            ("\"0600\"", 0o600),
            ("\"644\"", 0o644),
            ("\"4755\"", 0o4755),
        ] {
            let m = parse(&format!(
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/a\"\nmode = {v}"
            ))
            .unwrap();
            assert_eq!(m.entries[0].mode, Some(want), "{v}");
        }
        for (v, want) in [
            ("100", 100),
            ("\"2K\"", 2048),
            ("\"3 MiB\"", 3 << 20),
            ("\"1GiB\"", 1 << 30),
        ] {
            let m = parse(&format!(
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/a\"\nmax_size = {v}"
            ))
            .unwrap();
            assert_eq!(m.entries[0].max_size, want, "{v}");
        }
        assert_eq!(Entry::dir_mode(0o600), 0o700);
        assert_eq!(Entry::dir_mode(0o644), 0o755);
        assert_eq!(Entry::dir_mode(0o640), 0o750);
        assert_eq!(human_size(16 << 20), "16 MiB");
        assert_eq!(human_size(1000), "1000 bytes");
    }

    /// Each refusal names the line and says what to do.
    #[test]
    fn refusals_name_the_line_and_the_fix() {
        for (text, line, needle) in [
            ("version = 2\nuser = \"z\"", 1, "write `version = 1`"),
            (
                "version = 1\nuser = \"z\"\ntypo = 1",
                3,
                "unknown field `typo`",
            ),
            (
                "version = 1\nuser = \"z\"\n\n[[entry]]\npath = \"/a\"\nrequierd = true",
                6,
                "check the spelling",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"etc/x\"",
                4,
                "write it absolute (\"/etc/x\")",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/\"",
                4,
                "whole root",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"~/\"",
                4,
                "whole home",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"~/*\"",
                4,
                "whole home",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/etc/../x\"",
                4,
                "\"..\"",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/etc/ssh/[ab\"",
                4,
                "bad glob",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/a/**/b\"",
                4,
                "\"**\" is not supported",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/a\"\n[[entry]]\npath = \"/a/\"",
                6,
                "duplicates the entry at line 4",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/a\"\nexclude = [\"[\"]",
                5,
                "bad exclude glob",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/a\"\nmode = 600",
                5,
                "mode = \"0600\"",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/a\"\nmode = \"10600\"",
                5,
                "at most \"7777\"",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/a\"\nowner = \"x\"\nuid = 3",
                6,
                "keep one",
            ),
            (
                "version = 1\nuser = \"z\"\n[[entry]]\npath = \"/a\"\nmax_size = \"9 TB\"",
                5,
                "unknown unit",
            ),
            ("version = 1\nuser = \"\"", 2, "user"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(
                err.contains(&format!("m.toml, line {line}:")),
                "{text:?}: wrong line in {err}"
            );
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
