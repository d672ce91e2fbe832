//! The picker: what a manifest picks from a source root, for one persona.
//!
//! It expands the manifest's globs and walks the source root without
//! following a symlink, resolves every owner to a name and applies the
//! overrides; nothing is read but directory entries and metadata. One
//! picker serves `bundle` (which seals the pick), `diff` (which compares
//! it with a blob) and `manifest check` (which prints it), so all three
//! agree on what a manifest means. Its failures are [`crate::bundle::Error`]s.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::FileType;
use sha2::{Digest, Sha256};

use crate::bundle::{Error, WholeHome};
use crate::envelope::{Anchor, CHUNK_SIZE, EntryKind, MAX_PATH_LEN};
use crate::fsx;
use crate::manifest::{self, Component, Manifest};
use crate::msg;
use crate::passwd::{self, Accounts};

/// Deepest path the picker walks to, in components below its anchor (`~`
/// or `/`). A blob path is at most [`MAX_PATH_LEN`] bytes, which already
/// bounds the depth to about 2048; this lower bound also bounds the
/// directory descriptors the walk holds at once (one per level) well below
/// the usual soft limit of 1024 open files.
pub const MAX_DEPTH: usize = 512;

/// Longest path shown in a message before it is cut with `...`.
const SHOWN_PATH_LEN: usize = 256;

/// One path to carry, found on disk.
#[derive(Debug, Clone)]
pub struct Item {
    /// Whether `rel` is below the user's home or the root.
    pub anchor: Anchor,
    /// Path inside the blob, relative to its anchor.
    pub rel: String,
    /// Path relative to the source root, as components.
    pub(crate) source: Vec<String>,
    /// File or directory.
    pub kind: EntryKind,
    /// The mode recorded in the blob (overrides applied).
    pub mode: u32,
    /// Owner and group recorded in the blob: names, or the digits of a
    /// manifest `uid`/`gid`.
    pub owner: String,
    /// See [`Item::owner`].
    pub group: String,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Bytes (0 for a directory).
    pub size: u64,
    /// Inode number when picked; the bundle refuses a file that changed.
    pub(crate) ino: u64,
    /// Index of the manifest entry that picked it.
    pub entry: usize,
}

impl Item {
    /// `~/x` or `/x`.
    pub fn display(&self) -> String {
        display(self.anchor, &self.rel)
    }

    /// The path under the source root, for messages (`/home/zeta/x`).
    pub fn source_display(&self) -> String {
        format!("/{}", self.source.join("/"))
    }
}

fn display(anchor: Anchor, rel: &str) -> String {
    match anchor {
        Anchor::Root => format!("/{rel}"),
        Anchor::Home => format!("~/{rel}"),
    }
}

/// Why a path was not carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipKind {
    /// An optional entry that matched nothing.
    Missing,
    /// Matched an `exclude` pattern (the pattern).
    Excluded(String),
    /// A symlink: never followed, never carried.
    Symlink,
    /// A parent of the entry's path is a symlink or not a directory.
    ParentNotDir,
    /// A socket, fifo or device.
    Special(&'static str),
    /// A name that is not UTF-8 (the format stores UTF-8 paths).
    NotUtf8,
    /// A path longer than [`MAX_PATH_LEN`] bytes or deeper than
    /// [`MAX_DEPTH`] components below its anchor: a blob cannot carry it,
    /// so nothing below it is walked, and [`Pick::check`] refuses the pick.
    TooLong,
}

/// A path that is not carried, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// The path, as shown to the operator.
    pub path: String,
    /// Why it is not carried.
    pub kind: SkipKind,
    /// Index of the manifest entry.
    pub entry: usize,
}

impl Skipped {
    /// Whether the operator should be warned (rather than only told in
    /// the summary): something on disk that the manifest points at is not
    /// carried.
    pub fn is_warning(&self) -> bool {
        matches!(
            self.kind,
            SkipKind::Symlink
                | SkipKind::ParentNotDir
                | SkipKind::Special(_)
                | SkipKind::NotUtf8
                | SkipKind::TooLong
        )
    }

    /// Why, in words.
    pub fn reason(&self) -> String {
        match &self.kind {
            SkipKind::Missing => "not present (optional)".into(),
            SkipKind::Excluded(p) => format!("excluded by the manifest ({p:?})"),
            SkipKind::Symlink => "a symlink; not followed and not carried".into(),
            SkipKind::ParentNotDir => {
                "a parent directory is a symlink or not a directory; not followed".into()
            }
            SkipKind::Special(kind) => {
                format!("a {kind} is not a regular file or directory; not carried")
            }
            SkipKind::NotUtf8 => "its name is not UTF-8; not carried (rename it)".into(),
            SkipKind::TooLong => format!(
                "longer than {MAX_PATH_LEN} bytes or deeper than {MAX_DEPTH} directories; a blob cannot carry it (move it, or exclude it)"
            ),
        }
    }
}

/// What one manifest entry picks now.
#[derive(Debug, Clone)]
pub struct EntryReport {
    /// The entry's line in the manifest.
    pub line: usize,
    /// The path as written in the manifest.
    pub display: String,
    /// Whether the entry must match something.
    pub required: bool,
    /// The personas the entry belongs to (empty: every one).
    pub personas: Vec<String>,
    /// Whether the entry applies to the persona being bundled.
    pub picked: bool,
    /// The existing paths its pattern matched (before walking into them).
    pub matches: Vec<String>,
    /// Those of [`EntryReport::matches`] that are not carried (a symlink,
    /// a special file, a name that is not UTF-8, a path too long).
    pub uncarried: Vec<String>,
    /// Files it picks.
    pub files: usize,
    /// Directories it picks.
    pub dirs: usize,
    /// Bytes of file content it carries.
    pub bytes: u64,
    /// Paths under it that are not carried.
    pub skipped: usize,
    /// Its `max_size` in bytes.
    pub max_size: u64,
    /// The entry's `description`, if any.
    pub description: Option<String>,
}

impl EntryReport {
    /// Applies, but matched nothing.
    pub fn missing(&self) -> bool {
        self.picked && self.matches.is_empty()
    }

    /// Carries more than its `max_size`.
    pub fn too_large(&self) -> bool {
        self.bytes > self.max_size
    }
}

/// What a manifest picks from a source root, for one persona.
#[derive(Debug)]
pub struct Pick {
    /// The manifest it came from.
    pub manifest: PathBuf,
    /// The source root it was taken from.
    pub source_root: PathBuf,
    /// The manifest's user.
    pub user: String,
    /// The persona picked for.
    pub persona: String,
    /// What is carried, in blob order.
    pub items: Vec<Item>,
    /// What is not carried, and why.
    pub skipped: Vec<Skipped>,
    /// One per manifest entry, in manifest order.
    pub entries: Vec<EntryReport>,
    /// The source root, opened once.
    pub(crate) root: OwnedFd,
}

impl Pick {
    /// Total bytes of file contents.
    pub fn total_size(&self) -> u64 {
        self.items.iter().map(|i| i.size).sum()
    }

    /// Number of regular files.
    pub fn file_count(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.kind == EntryKind::File)
            .count()
    }

    /// Refuse what a bundle must not carry: a required entry that matched
    /// nothing (the first one), a required entry that matched something it
    /// does not carry (a symlink: required means present *and* carried), a
    /// path too long or too deep for a blob, then an entry over its
    /// `max_size`. All of it is known from the walk, so a bundle refuses
    /// before it asks for a passphrase.
    pub fn check(&self) -> Result<(), Error> {
        if let Some(e) = self.entries.iter().find(|e| e.required && e.missing()) {
            return Err(Error::RequiredMissing {
                path: e.display.clone(),
                root: self.source_root.clone(),
                manifest: self.manifest.clone(),
                line: e.line,
            });
        }
        for (index, e) in self.entries.iter().enumerate() {
            let Some(path) = e.uncarried.first().filter(|_| e.required && e.picked) else {
                continue;
            };
            let why = self
                .skipped
                .iter()
                .find(|s| s.entry == index && &s.path == path)
                .map_or_else(|| "not carried".to_owned(), Skipped::reason);
            return Err(Error::RequiredNotCarried {
                path: path.clone(),
                why,
                root: self.source_root.clone(),
                manifest: self.manifest.clone(),
                line: e.line,
            });
        }
        if let Some(s) = self.skipped.iter().find(|s| s.kind == SkipKind::TooLong) {
            return Err(Error::PathTooLong {
                path: s.path.clone(),
                manifest: self.manifest.clone(),
                line: self.entries[s.entry].line,
                max_len: MAX_PATH_LEN,
                max_depth: MAX_DEPTH,
            });
        }
        if let Some(e) = self.entries.iter().find(|e| e.too_large()) {
            return Err(Error::TooLarge {
                path: e.display.clone(),
                manifest: self.manifest.clone(),
                line: e.line,
                size: e.bytes,
                limit: e.max_size,
            });
        }
        Ok(())
    }

    /// SHA-256 of a picked file as it is on disk now (no symlink followed).
    pub fn sha256(&self, item: &Item) -> io::Result<[u8; 32]> {
        let mut file = self.open(item)?;
        let mut buf = zeroize::Zeroizing::new(vec![0u8; CHUNK_SIZE]);
        Ok(hash_reader(&mut file, &mut buf)?.1)
    }

    /// Open a picked file again (no symlink followed).
    pub(crate) fn open(&self, item: &Item) -> io::Result<File> {
        let (name, parents) = item.source.split_last().expect("non-empty");
        let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
        let dir = fsx::open_dir_path(&self.root, &parents)?;
        fsx::open_file(&dir, name)
    }
}

/// Size and SHA-256 of what `r` yields, read through `buf` (a caller's
/// buffer, reused across files: one allocation and one wipe, not one each).
pub(crate) fn hash_reader(r: &mut impl Read, buf: &mut [u8]) -> io::Result<(u64, [u8; 32])> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = r.read(buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hasher.finalize().into()))
}

/// Expand the manifest's entries for `persona` under `source_root` and
/// walk what they match. Nothing is read but directory entries and
/// metadata.
pub fn pick(manifest: &Manifest, source_root: &Path, persona: &str) -> Result<Pick, Error> {
    let root = fsx::open_root(source_root).map_err(|source| Error::SourceRoot {
        root: source_root.to_owned(),
        source,
    })?;
    let accounts = Accounts::load(&root).map_err(|source| Error::Accounts {
        root: source_root.to_owned(),
        source,
    })?;
    let any_home = manifest
        .entries
        .iter()
        .any(|e| e.applies_to(persona) && e.anchor == Anchor::Home);
    let home = if any_home {
        let user = accounts
            .user(&manifest.user)
            .ok_or_else(|| Error::UnknownUser {
                user: manifest.user.clone(),
                root: source_root.to_owned(),
                normal: passwd::normal_users(&accounts),
            })?;
        passwd::home_components(user).map_err(Error::BadHome)?
    } else {
        Vec::new()
    };
    // Every account's home, for the whole-home refusal; "/" and odd homes
    // are left out (a home of "/" is refused where it is used).
    let homes: Vec<(String, Vec<String>)> = accounts
        .users()
        .iter()
        .filter_map(|u| passwd::home_components(u).ok().map(|h| (u.name.clone(), h)))
        .collect();

    let mut walker = Walker {
        root: &root,
        root_path: source_root,
        accounts: &accounts,
        items: Vec::new(),
        skipped: Vec::new(),
    };
    let mut reports = Vec::with_capacity(manifest.entries.len());
    for (index, entry) in manifest.entries.iter().enumerate() {
        let mut report = EntryReport {
            line: entry.line,
            display: entry.display.clone(),
            required: entry.required,
            personas: entry.personas.clone(),
            picked: entry.applies_to(persona),
            matches: Vec::new(),
            uncarried: Vec::new(),
            files: 0,
            dirs: 0,
            bytes: 0,
            skipped: 0,
            max_size: entry.max_size,
            description: entry.description.clone(),
        };
        if !report.picked {
            reports.push(report);
            continue;
        }
        let base = match entry.anchor {
            Anchor::Root => Vec::new(),
            Anchor::Home => home.clone(),
        };
        let items_before = walker.items.len();
        let skipped_before = walker.skipped.len();
        for m in walker.expand(entry, index, &base)? {
            if let Some((user, h)) = homes.iter().find(|(_, h)| h.starts_with(&m.source)) {
                return Err(Error::WholeHome(Box::new(WholeHome {
                    entry: entry.display.clone(),
                    manifest: manifest.path.clone(),
                    line: entry.line,
                    path: format!("/{}", m.source.join("/")),
                    user: user.clone(),
                    home: format!("/{}", h.join("/")),
                })));
            }
            let rel = m.source[base.len()..].join("/");
            let items_before_match = walker.items.len();
            if walker.visit(&m.dir, &m.name, m.source.clone(), rel.clone(), entry, index)? {
                let shown = display(entry.anchor, &rel);
                if walker.items.len() == items_before_match {
                    report.uncarried.push(shown.clone());
                }
                report.matches.push(shown);
            }
        }
        for item in &walker.items[items_before..] {
            match item.kind {
                EntryKind::File => {
                    report.files += 1;
                    report.bytes += item.size;
                }
                EntryKind::Dir => report.dirs += 1,
            }
        }
        report.skipped = walker.skipped.len() - skipped_before;
        if report.matches.is_empty() && report.skipped == 0 {
            walker.skipped.push(Skipped {
                path: entry.display.clone(),
                kind: SkipKind::Missing,
                entry: index,
            });
            report.skipped = 1;
        }
        reports.push(report);
    }

    // A blob holds each path once (the reader refuses duplicates): two
    // entries picking the same file is a manifest error, not a choice.
    let mut seen: HashMap<&[String], usize> = HashMap::new();
    for item in &walker.items {
        if let Some(&first) = seen.get(item.source.as_slice()) {
            return Err(Error::Overlap {
                path: item.source_display(),
                manifest: manifest.path.clone(),
                first: manifest.entries[first].line,
                second: manifest.entries[item.entry].line,
            });
        }
        seen.insert(&item.source, item.entry);
    }

    let items = walker.items;
    let skipped = walker.skipped;
    Ok(Pick {
        manifest: manifest.path.clone(),
        source_root: source_root.to_owned(),
        user: manifest.user.clone(),
        persona: persona.to_owned(),
        items,
        skipped,
        entries: reports,
        root,
    })
}

/// A match of an entry's path pattern: `name` in `dir`.
struct Match {
    dir: Arc<OwnedFd>,
    name: String,
    /// Components below the source root, `name` last.
    source: Vec<String>,
}

struct Walker<'a> {
    root: &'a OwnedFd,
    root_path: &'a Path,
    accounts: &'a Accounts,
    items: Vec<Item>,
    skipped: Vec<Skipped>,
}

impl Walker<'_> {
    /// Expand an entry's path below `base`, one component at a time, never
    /// following a symlink. Returns the candidates for the last component
    /// (a literal last component is returned whether or not it exists; the
    /// caller's `lstat` decides).
    fn expand(
        &mut self,
        entry: &manifest::Entry,
        index: usize,
        base: &[String],
    ) -> Result<Vec<Match>, Error> {
        let base_refs: Vec<&str> = base.iter().map(String::as_str).collect();
        let start = match fsx::open_dir_path(self.root, &base_refs) {
            Ok(d) => d,
            Err(e) if is_errno(&e, rustix::io::Errno::NOENT) => return Ok(Vec::new()),
            Err(e) if is_not_dir(&e) => {
                self.skip(entry.display.clone(), SkipKind::ParentNotDir, index);
                return Ok(Vec::new());
            }
            Err(source) => {
                return Err(Error::ReadSource {
                    path: entry.display.clone(),
                    source,
                });
            }
        };
        let mut frontier: Vec<(Arc<OwnedFd>, Vec<String>)> = vec![(Arc::new(start), base.to_vec())];
        let last = entry.components.len() - 1;
        for (i, component) in entry.components.iter().enumerate() {
            let mut next = Vec::new();
            let mut matches = Vec::new();
            for (dir, prefix) in frontier {
                let names: Vec<String> = match component {
                    Component::Literal(name) => vec![name.clone()],
                    Component::Glob(pattern) => {
                        let shown = show(entry.anchor, base, &prefix, "");
                        let (names, odd) = list_dir(&dir).map_err(|source| Error::ReadSource {
                            path: shown.clone(),
                            source,
                        })?;
                        for o in odd {
                            if pattern.matches(&o) {
                                self.skip(format!("{shown}{o}"), SkipKind::NotUtf8, index);
                            }
                        }
                        let mut names: Vec<String> =
                            names.into_iter().filter(|n| pattern.matches(n)).collect();
                        names.sort();
                        names
                    }
                };
                for name in names {
                    let mut source = prefix.clone();
                    source.push(name.clone());
                    if i == last {
                        matches.push(Match {
                            dir: Arc::clone(&dir),
                            name,
                            source,
                        });
                        continue;
                    }
                    let shown = show(entry.anchor, base, &source, "");
                    let shown = shown.trim_end_matches('/').to_owned();
                    match fsx::lstat(&*dir, &name).map_err(|source| Error::ReadSource {
                        path: shown.clone(),
                        source,
                    })? {
                        None => {}
                        Some(st) if fsx::file_type(&st) == FileType::Directory => {
                            let sub = fsx::open_dir(&*dir, &name).map_err(|source| {
                                Error::ReadSource {
                                    path: shown.clone(),
                                    source,
                                }
                            })?;
                            next.push((Arc::new(sub), source));
                        }
                        Some(st) if fsx::file_type(&st) == FileType::Symlink => {
                            self.skip(shown, SkipKind::ParentNotDir, index);
                        }
                        // A file where a directory is needed: nothing
                        // below it can match.
                        Some(_) => {}
                    }
                }
            }
            if i == last {
                return Ok(matches);
            }
            frontier = next;
        }
        Ok(Vec::new())
    }

    fn skip(&mut self, path: String, kind: SkipKind, entry: usize) {
        self.skipped.push(Skipped { path, kind, entry });
    }

    /// Visit `name` in `dir`: record it (and, for a directory, everything
    /// below it that is not excluded). False if it does not exist.
    ///
    /// The walk is iterative, with an explicit stack of open directories,
    /// so a deep tree cannot overflow the call stack; it goes no deeper than
    /// [`MAX_DEPTH`] components or [`MAX_PATH_LEN`] bytes below the anchor
    /// ([`SkipKind::TooLong`]), which also bounds the descriptors it holds.
    fn visit(
        &mut self,
        dir: &OwnedFd,
        name: &str,
        source: Vec<String>,
        rel: String,
        entry: &manifest::Entry,
        index: usize,
    ) -> Result<bool, Error> {
        let (sub_dir, names) = match self.record(dir, name, &source, &rel, entry, index, "")? {
            Visited::Absent => return Ok(false),
            Visited::Leaf => return Ok(true),
            Visited::Dir(sub_dir, names) => (sub_dir, names),
        };
        /// A directory being walked: its descriptor, the names in it not
        /// visited yet, and its paths (source components, blob path and
        /// path relative to the entry's match, for `exclude`).
        struct Frame {
            dir: OwnedFd,
            names: std::vec::IntoIter<String>,
            source: Vec<String>,
            rel: String,
            sub: String,
        }
        let mut stack = vec![Frame {
            dir: sub_dir,
            names: names.into_iter(),
            source,
            rel,
            sub: String::new(),
        }];
        while let Some(top) = stack.last_mut() {
            let Some(child) = top.names.next() else {
                stack.pop();
                continue;
            };
            let mut child_source = top.source.clone();
            child_source.push(child.clone());
            let child_rel = format!("{}/{child}", top.rel);
            let child_sub = if top.sub.is_empty() {
                child.clone()
            } else {
                format!("{}/{child}", top.sub)
            };
            if let Visited::Dir(dir, names) = self.record(
                &top.dir,
                &child,
                &child_source,
                &child_rel,
                entry,
                index,
                &child_sub,
            )? {
                stack.push(Frame {
                    dir,
                    names: names.into_iter(),
                    source: child_source,
                    rel: child_rel,
                    sub: child_sub,
                });
            }
        }
        Ok(true)
    }

    /// Record `name` in `dir` as an item, or as skipped and why. For a
    /// directory that is carried, returns it opened, with its names sorted
    /// (the caller walks them). `sub` is the path relative to the entry's
    /// match, for `exclude`.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        dir: &OwnedFd,
        name: &str,
        source: &[String],
        rel: &str,
        entry: &manifest::Entry,
        index: usize,
        sub: &str,
    ) -> Result<Visited, Error> {
        let shown = display(entry.anchor, rel);
        if rel.len() > MAX_PATH_LEN || rel.split('/').count() > MAX_DEPTH {
            self.skip(cut(&shown), SkipKind::TooLong, index);
            return Ok(Visited::Leaf);
        }
        if !sub.is_empty()
            && let Some(pattern) = entry.exclude.matching(sub)
        {
            self.skip(shown, SkipKind::Excluded(pattern.to_owned()), index);
            return Ok(Visited::Leaf);
        }
        let Some(st) = fsx::lstat(dir, name).map_err(|source| Error::ReadSource {
            path: shown.clone(),
            source,
        })?
        else {
            return Ok(Visited::Absent);
        };
        let kind = match fsx::file_type(&st) {
            FileType::RegularFile => EntryKind::File,
            FileType::Directory => EntryKind::Dir,
            FileType::Symlink => {
                self.skip(shown, SkipKind::Symlink, index);
                return Ok(Visited::Leaf);
            }
            other => {
                self.skip(shown, SkipKind::Special(fsx::kind_name(other)), index);
                return Ok(Visited::Leaf);
            }
        };
        // The manifest's override, else the name of the id on the source.
        let [owner, group] = [
            (
                &entry.owner,
                self.accounts.user_name(st.st_uid),
                "uid",
                st.st_uid,
                "passwd",
                "owner",
            ),
            (
                &entry.group,
                self.accounts.group_name(st.st_gid),
                "gid",
                st.st_gid,
                "group",
                "group",
            ),
        ]
        .map(|(given, found, what, id, db, key)| match given {
            Some(n) => Ok(n.clone()),
            None => found.map(str::to_owned).ok_or_else(|| Error::UnnamedOwner {
                path: shown.clone(),
                what,
                id,
                root: self.root_path.to_owned(),
                db,
                key,
            }),
        });
        let (owner, group) = (owner?, group?);
        let mode = match (entry.mode, kind) {
            (Some(m), EntryKind::File) => m,
            (Some(m), EntryKind::Dir) => manifest::Entry::dir_mode(m),
            (None, _) => st.st_mode & 0o7777,
        };
        self.items.push(Item {
            anchor: entry.anchor,
            rel: rel.to_owned(),
            source: source.to_vec(),
            kind,
            mode,
            owner,
            group,
            mtime: st.st_mtime,
            size: if kind == EntryKind::File {
                st.st_size as u64
            } else {
                0
            },
            ino: st.st_ino,
            entry: index,
        });
        if kind != EntryKind::Dir {
            return Ok(Visited::Leaf);
        }
        let sub_dir = fsx::open_dir(dir, name).map_err(|source| Error::ReadSource {
            path: shown.clone(),
            source,
        })?;
        let (mut names, odd) = list_dir(&sub_dir).map_err(|source| Error::ReadSource {
            path: shown.clone(),
            source,
        })?;
        for o in odd {
            self.skip(format!("{shown}/{o}"), SkipKind::NotUtf8, index);
        }
        names.sort();
        Ok(Visited::Dir(sub_dir, names))
    }
}

/// What [`Walker::record`] found.
enum Visited {
    /// Nothing by that name.
    Absent,
    /// Recorded (an item or a skip), nothing to walk below it.
    Leaf,
    /// A carried directory, opened, and the names in it.
    Dir(OwnedFd, Vec<String>),
}

/// `path`, cut to [`SHOWN_PATH_LEN`] bytes (at a character boundary) with
/// `...` when longer: a path too long to carry is too long to print whole.
fn cut(path: &str) -> String {
    if path.len() <= SHOWN_PATH_LEN {
        return path.to_owned();
    }
    let mut end = SHOWN_PATH_LEN;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &path[..end])
}

/// `~/` or `/` plus the components after the home (for messages).
fn show(anchor: Anchor, base: &[String], source: &[String], tail: &str) -> String {
    let rel = source[base.len().min(source.len())..].join("/");
    let mut s = display(anchor, &rel);
    if !rel.is_empty() {
        s.push('/');
    }
    s.push_str(tail);
    s
}

fn is_errno(e: &io::Error, errno: rustix::io::Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

fn is_not_dir(e: &io::Error) -> bool {
    is_errno(e, rustix::io::Errno::LOOP) || is_errno(e, rustix::io::Errno::NOTDIR)
}

/// Names in a directory, without `.` and `..`; names that are not UTF-8
/// are returned apart, escaped for messages ([`msg::escape_bytes`]: each
/// byte that is not UTF-8 as `\xNN`), since the format stores UTF-8 paths.
fn list_dir(dir: &OwnedFd) -> io::Result<(Vec<String>, Vec<String>)> {
    let mut names = Vec::new();
    let mut odd = Vec::new();
    let mut d = rustix::fs::Dir::read_from(dir)?;
    while let Some(entry) = d.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        match String::from_utf8(name.to_vec()) {
            Ok(n) => names.push(n),
            Err(e) => odd.push(msg::escape_bytes(e.as_bytes()).into_owned()),
        }
    }
    Ok((names, odd))
}
