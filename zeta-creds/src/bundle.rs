//! The picker: collect a manifest's paths from a source root and seal them
//! into a blob.
//!
//! Order of work, so that nothing is asked or written for a bundle that
//! cannot succeed: parse the manifest; expand its globs and walk the source
//! root ([`pick`]: no symlink followed, every owner resolved to a name,
//! overrides applied); check the picked set (required entries present,
//! `max_size` respected, no path picked twice, no whole home); check the
//! blob being replaced and the room in its directory ([`plan`]); only then
//! ask for the passphrase (the caller does, between [`plan`] and
//! [`write()`]); write the blob to a temporary file beside `--out`, fsync,
//! keep the previous blob as `BLOB.prev`, rename, fsync the directory.
//!
//! The same [`pick`] serves `manifest check` (which prints it) and `diff`
//! (which compares it with a blob), so all three agree on what a manifest
//! means.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::envelope::{
    self, Anchor, CHUNK_SIZE, EntryKind, EntryMeta, EntryWriter, Header, HeaderFields, TAG_LEN,
    UsbUuid,
};
use crate::fsx;
use crate::manifest::{self, Component, Manifest, human_size};
use crate::passwd::{self, Accounts};

/// Why a bundle (or the pick behind `manifest check` and `diff`) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Manifest(#[from] manifest::Error),
    #[error("cannot open source root {root}: {source}")]
    SourceRoot {
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot read the accounts of source root {root} ({source}); owners are stored by name, so bundle needs etc/passwd and etc/group there"
    )]
    Accounts {
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "manifest user {user:?} is not in {root}/etc/passwd; fix `user` in the manifest or create the account"
    )]
    UnknownUser { user: String, root: PathBuf },
    #[error("{0}")]
    BadHome(String),
    #[error(
        "required path {path} is missing under {root} (manifest {manifest}, line {line}); log in to that tool first, or mark the entry `required = false`"
    )]
    RequiredMissing {
        path: String,
        root: PathBuf,
        manifest: PathBuf,
        line: usize,
    },
    #[error(
        "entry {path} (manifest {manifest}, line {line}) picks {size} bytes, more than its max_size of {limit}; raise max_size for that entry, or add an exclude for what should not travel (caches, logs)",
        limit = human_size(*.limit)
    )]
    TooLarge {
        path: String,
        manifest: PathBuf,
        line: usize,
        size: u64,
        limit: u64,
    },
    #[error(
        "{path} is picked by the entries at lines {first} and {second} of manifest {manifest}; remove one of them, or exclude it from one (a blob holds each path once)"
    )]
    Overlap {
        path: String,
        manifest: PathBuf,
        first: usize,
        second: usize,
    },
    #[error(
        "entry {} (manifest {}, line {}) matches {}, which is or holds the whole home of user {} ({}); name what to carry inside it, e.g. ~/.config/gh",
        .0.entry, .0.manifest.display(), .0.line, .0.path, .0.user, .0.home
    )]
    WholeHome(Box<WholeHome>),
    #[error(
        "{path} is owned by {what} {id}, which has no name in {root}/etc/{db}; owners are carried by name: chown it, add the account, or set `{key}` on its manifest entry"
    )]
    UnnamedOwner {
        path: String,
        what: &'static str,
        id: u32,
        root: PathBuf,
        db: &'static str,
        key: &'static str,
    },
    #[error("cannot read {path}: {source}")]
    ReadSource {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} changed while it was being bundled; run bundle again")]
    Changed { path: String },
    #[error(
        "{out} is bound to USB {found}, not to {wanted}; pass --force to replace it (it is kept as {out}.prev unless --no-backup), or `zeta-creds rekey --new-usb-uuid` to move it to this stick"
    )]
    OtherStick {
        out: PathBuf,
        found: String,
        wanted: String,
    },
    #[error("cannot write {out}: {source}")]
    WriteOut {
        out: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "existing blob {out} cannot be read ({source}); move it away or pass --force to replace it"
    )]
    ExistingBlob {
        out: PathBuf,
        #[source]
        source: envelope::Error,
    },
    #[error(
        "not enough room for {out}: it needs about {needed} bytes and {dir} has {available} free; free some space there (old kernels on an ESP), or pass --no-backup to skip the {out}.prev copy"
    )]
    NoRoom {
        out: PathBuf,
        dir: PathBuf,
        needed: u64,
        available: u64,
    },
    #[error("cannot seal {out}: {source}")]
    Seal {
        out: PathBuf,
        #[source]
        source: envelope::Error,
    },
}

/// An entry that would carry a whole home ([`Error::WholeHome`]).
#[derive(Debug)]
pub struct WholeHome {
    pub entry: String,
    pub manifest: PathBuf,
    pub line: usize,
    pub path: String,
    pub user: String,
    pub home: String,
}

/// What `bundle` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub manifest: PathBuf,
    pub source_root: PathBuf,
    pub out: PathBuf,
    pub usb_uuid: UsbUuid,
    pub persona: String,
    pub log_n: u8,
    /// Replace a blob bound to another stick, or one that cannot be read.
    pub force: bool,
    /// Keep the blob being replaced as `BLOB.prev`.
    pub backup: bool,
}

/// One path to carry, found on disk.
#[derive(Debug, Clone)]
pub struct Item {
    pub anchor: Anchor,
    /// Path inside the blob, relative to its anchor.
    pub rel: String,
    /// Path relative to the source root, as components.
    source: Vec<String>,
    pub kind: EntryKind,
    /// The mode recorded in the blob (overrides applied).
    pub mode: u32,
    /// Owner and group recorded in the blob: names, or the digits of a
    /// manifest `uid`/`gid`.
    pub owner: String,
    pub group: String,
    pub mtime: i64,
    pub size: u64,
    ino: u64,
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
}

/// A path that is not carried, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: String,
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
            SkipKind::Symlink | SkipKind::ParentNotDir | SkipKind::Special(_) | SkipKind::NotUtf8
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
        }
    }
}

/// What one manifest entry picks now.
#[derive(Debug, Clone)]
pub struct EntryReport {
    pub line: usize,
    /// The path as written in the manifest.
    pub display: String,
    pub required: bool,
    pub personas: Vec<String>,
    /// Whether the entry applies to the persona being bundled.
    pub picked: bool,
    /// The existing paths its pattern matched (before walking into them).
    pub matches: Vec<String>,
    pub files: usize,
    pub dirs: usize,
    /// Bytes of file content it carries.
    pub bytes: u64,
    pub skipped: usize,
    pub max_size: u64,
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
    pub manifest: PathBuf,
    pub source_root: PathBuf,
    pub user: String,
    pub persona: String,
    pub items: Vec<Item>,
    pub skipped: Vec<Skipped>,
    /// One per manifest entry, in manifest order.
    pub entries: Vec<EntryReport>,
    root: OwnedFd,
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
    /// nothing (the first one), then an entry over its `max_size`.
    pub fn check(&self) -> Result<(), Error> {
        if let Some(e) = self.entries.iter().find(|e| e.required && e.missing()) {
            return Err(Error::RequiredMissing {
                path: e.display.clone(),
                root: self.source_root.clone(),
                manifest: self.manifest.clone(),
                line: e.line,
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

    fn open(&self, item: &Item) -> io::Result<File> {
        let (name, parents) = item.source.split_last().expect("non-empty");
        let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
        let dir = fsx::open_dir_path(&self.root, &parents)?;
        fsx::open_file(&dir, name)
    }
}

/// Size and SHA-256 of what `r` yields, read through `buf` (a caller's
/// buffer, reused across files: one allocation and one wipe, not one each).
fn hash_reader(r: &mut impl Read, buf: &mut [u8]) -> io::Result<(u64, [u8; 32])> {
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
            if walker.visit(
                &m.dir,
                &m.name,
                m.source.clone(),
                rel.clone(),
                entry,
                index,
                "",
            )? {
                report.matches.push(display(entry.anchor, &rel));
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

/// The blob at `--out` before this bundle, if there is one.
#[derive(Debug, Clone)]
pub struct Existing {
    /// Its generation, 0 when it cannot be read (replaced with --force).
    pub generation: u64,
    /// Its USB UUID, if its header could be read.
    pub usb_uuid: Option<String>,
    /// Its size in bytes (the `.prev` copy needs that much room).
    pub len: u64,
}

/// Everything a bundle will contain, found before any passphrase is asked.
#[derive(Debug)]
pub struct Plan {
    pub pick: Pick,
    pub generation: u64,
    pub existing: Option<Existing>,
    /// The blob's estimated size in bytes.
    pub estimate: u64,
}

/// Pick, check, and decide the generation and the room needed.
pub fn plan(opts: &Options) -> Result<Plan, Error> {
    let manifest = Manifest::load(&opts.manifest)?;
    let pick = pick(&manifest, &opts.source_root, &opts.persona)?;
    pick.check()?;
    let existing = existing_blob(opts)?;
    // 1 + the highest of the blob being replaced and the state record of
    // the system being re-bundled, so a re-bundle is never refused as a
    // rollback (DESIGN.md "Rollback refused").
    let recorded = match crate::state::load(&pick.root) {
        crate::state::Loaded::Present(s) => s.generation,
        _ => 0,
    };
    let highest = existing.as_ref().map_or(0, |e| e.generation).max(recorded);
    let generation = highest.checked_add(1).ok_or_else(|| Error::ExistingBlob {
        out: opts.out.clone(),
        source: envelope::Error::InvalidHeader {
            field: "generation",
            reason: "at its maximum".into(),
        },
    })?;
    let estimate = estimate_blob_size(
        &pick.user,
        &pick.items,
        opts.usb_uuid.as_str().len(),
        opts.persona.len(),
    );
    let prev = match (&existing, opts.backup) {
        (Some(e), true) => e.len,
        _ => 0,
    };
    check_room(&opts.out, estimate, prev)?;
    Ok(Plan {
        pick,
        generation,
        existing,
        estimate,
    })
}

/// Read the header of an existing blob at `--out` (without the
/// passphrase: a forged high generation can only raise ours). One bound
/// to this stick is replaced; one bound to another stick, or that cannot
/// be read, only with `--force`.
fn existing_blob(opts: &Options) -> Result<Option<Existing>, Error> {
    let mut f = match File::open(&opts.out) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::WriteOut {
                out: opts.out.clone(),
                source,
            });
        }
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    match Header::read(&mut f) {
        Ok(h) => {
            let fields = h.unauthenticated_fields();
            if fields.usb_uuid != opts.usb_uuid && !opts.force {
                return Err(Error::OtherStick {
                    out: opts.out.clone(),
                    found: fields.usb_uuid.to_string(),
                    wanted: opts.usb_uuid.to_string(),
                });
            }
            Ok(Some(Existing {
                generation: fields.generation,
                usb_uuid: Some(fields.usb_uuid.to_string()),
                len,
            }))
        }
        Err(source) if !opts.force => Err(Error::ExistingBlob {
            out: opts.out.clone(),
            source,
        }),
        // --force replaces an unreadable blob; start over.
        Err(_) => Ok(Some(Existing {
            generation: 0,
            usb_uuid: None,
            len,
        })),
    }
}

/// Bytes a blob of these items takes (FORMAT.md §2, §4, §5): the header
/// at its largest tool version, the entry stream, and one tag per chunk.
pub fn estimate_blob_size(user: &str, items: &[Item], uuid_len: usize, persona_len: usize) -> u64 {
    let header = (143 + uuid_len + envelope::MAX_TOOL_VERSION_LEN + persona_len) as u64;
    let mut plain: u64 = 1 + user.len() as u64 + 1 + 8;
    for i in items {
        plain +=
            (1 + 1 + 1 + 2 + i.rel.len() + 2 + 1 + i.owner.len() + 1 + i.group.len() + 8 + 8 + 32)
                as u64
                + i.size;
    }
    let chunks = plain.div_ceil(CHUNK_SIZE as u64).max(1);
    header + plain + chunks * TAG_LEN as u64
}

/// Refuse to start when the directory of `out` cannot hold the new blob
/// (and the `.prev` copy): better than failing half-way on a full ESP.
fn check_room(out: &Path, estimate: u64, prev: u64) -> Result<(), Error> {
    let dir = parent_of(out);
    let fd = fsx::open_root(dir).map_err(|source| Error::WriteOut {
        out: out.to_owned(),
        source,
    })?;
    let st = rustix::fs::fstatvfs(&fd).map_err(|e| Error::WriteOut {
        out: out.to_owned(),
        source: e.into(),
    })?;
    let block = if st.f_frsize > 0 {
        st.f_frsize
    } else {
        st.f_bsize
    }
    .max(1);
    let available = st.f_bavail.saturating_mul(block);
    // Whole blocks per file, plus one for slack (a file that grows a
    // little between the walk and the write, a directory entry).
    let round = |n: u64| n.div_ceil(block) * block;
    let needed = round(estimate) + if prev > 0 { round(prev) } else { 0 } + block;
    if needed > available {
        return Err(Error::NoRoom {
            out: out.to_owned(),
            dir: dir.to_owned(),
            needed,
            available,
        });
    }
    Ok(())
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
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
    /// below it that is not excluded). `sub` is the path relative to the
    /// entry's match, for `exclude`. False if it does not exist.
    #[allow(clippy::too_many_arguments)]
    fn visit(
        &mut self,
        dir: &OwnedFd,
        name: &str,
        source: Vec<String>,
        rel: String,
        entry: &manifest::Entry,
        index: usize,
        sub: &str,
    ) -> Result<bool, Error> {
        let shown = display(entry.anchor, &rel);
        if !sub.is_empty()
            && let Some(pattern) = entry.exclude.matching(sub)
        {
            self.skip(shown, SkipKind::Excluded(pattern.to_owned()), index);
            return Ok(true);
        }
        let Some(st) = fsx::lstat(dir, name).map_err(|source| Error::ReadSource {
            path: shown.clone(),
            source,
        })?
        else {
            return Ok(false);
        };
        let kind = match fsx::file_type(&st) {
            FileType::RegularFile => EntryKind::File,
            FileType::Directory => EntryKind::Dir,
            FileType::Symlink => {
                self.skip(shown, SkipKind::Symlink, index);
                return Ok(true);
            }
            other => {
                self.skip(shown, SkipKind::Special(kind_name(other)), index);
                return Ok(true);
            }
        };
        let owner = match &entry.owner {
            Some(o) => o.clone(),
            None => self
                .accounts
                .user_name(st.st_uid)
                .ok_or_else(|| Error::UnnamedOwner {
                    path: shown.clone(),
                    what: "uid",
                    id: st.st_uid,
                    root: self.root_path.to_owned(),
                    db: "passwd",
                    key: "owner",
                })?
                .to_owned(),
        };
        let group = match &entry.group {
            Some(g) => g.clone(),
            None => self
                .accounts
                .group_name(st.st_gid)
                .ok_or_else(|| Error::UnnamedOwner {
                    path: shown.clone(),
                    what: "gid",
                    id: st.st_gid,
                    root: self.root_path.to_owned(),
                    db: "group",
                    key: "group",
                })?
                .to_owned(),
        };
        let mode = match (entry.mode, kind) {
            (Some(m), EntryKind::File) => m,
            (Some(m), EntryKind::Dir) => manifest::Entry::dir_mode(m),
            (None, _) => st.st_mode & 0o7777,
        };
        self.items.push(Item {
            anchor: entry.anchor,
            rel: rel.clone(),
            source: source.clone(),
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
        if kind == EntryKind::Dir {
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
            for child in names {
                let mut child_source = source.clone();
                child_source.push(child.clone());
                let child_sub = if sub.is_empty() {
                    child.clone()
                } else {
                    format!("{sub}/{child}")
                };
                self.visit(
                    &sub_dir,
                    &child,
                    child_source,
                    format!("{rel}/{child}"),
                    entry,
                    index,
                    &child_sub,
                )?;
            }
        }
        Ok(true)
    }
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

fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        _ => "special file",
    }
}

/// Names in a directory, without `.` and `..`; names that are not UTF-8
/// are returned apart (lossily), since the format stores UTF-8 paths.
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
            Err(e) => odd.push(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }
    }
    Ok((names, odd))
}

/// What [`write`] did.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// Whether the previous blob was kept as `BLOB.prev`.
    pub kept_previous: bool,
    /// How long the key derivation (scrypt at the blob's work factor, then
    /// the key wrap and the header MAC) took on *this* machine. Guidance
    /// only: the machine that restores may be much slower, and the work
    /// factor is never chosen from this (FORMAT.md §3.2).
    pub kdf_time: Duration,
}

/// Seal the planned items into `opts.out` under `passphrase`.
///
/// The key derivation (scrypt: one core, memory-bound) runs on its own
/// thread while this one reads and hashes every file (the digest goes in
/// an entry's metadata, before its body), so the first pass over the files
/// costs nothing on a machine with a second core. The second pass reads
/// the files again, checks each against its first-pass digest, and encrypts
/// it. The file key is only ever held by the sealing code, as before.
pub fn write(opts: &Options, plan: &Plan, passphrase: &SecretString) -> Result<Written, Error> {
    let fields = HeaderFields {
        usb_uuid: opts.usb_uuid.clone(),
        log_n: opts.log_n,
        generation: plan.generation,
        created: now(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        persona: opts.persona.clone(),
    };
    let out_err = |source: io::Error| Error::WriteOut {
        out: opts.out.clone(),
        source,
    };
    let seal_err = |source: envelope::Error| match source {
        envelope::Error::Io(source) => Error::WriteOut {
            out: opts.out.clone(),
            source,
        },
        source => Error::Seal {
            out: opts.out.clone(),
            source,
        },
    };
    let add_err = |item: &Item, e: AddError| match e {
        AddError::Source(source) => Error::ReadSource {
            path: item.display(),
            source,
        },
        AddError::Changed => Error::Changed {
            path: item.display(),
        },
        AddError::Envelope(e) => seal_err(e),
    };
    let mut atomic = AtomicFile::create(&opts.out).map_err(out_err)?;
    // One STREAM chunk per write(2).
    let out = io::BufWriter::with_capacity(CHUNK_SIZE + TAG_LEN, atomic.file());
    let ((stream, kdf_time), first_pass) = std::thread::scope(|scope| {
        let kdf = scope.spawn(|| {
            let start = Instant::now();
            let sealed = Header::seal(out, passphrase, &fields);
            (sealed, start.elapsed())
        });
        let mut buf = zeroize::Zeroizing::new(vec![0u8; CHUNK_SIZE]);
        let first_pass: Result<Vec<Option<Hashed>>, Error> = plan
            .pick
            .items
            .iter()
            .map(|item| hash_item(&plan.pick, item, &mut buf).map_err(|e| add_err(item, e)))
            .collect();
        match kdf.join() {
            Ok(sealed) => (sealed, first_pass),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    let stream = stream.map_err(seal_err)?;
    let first_pass = first_pass?;
    let mut entries = EntryWriter::new(stream, &plan.pick.user).map_err(seal_err)?;
    for (item, hashed) in plan.pick.items.iter().zip(&first_pass) {
        add_item(&mut entries, &plan.pick, item, hashed.as_ref()).map_err(|e| add_err(item, e))?;
    }
    let stream = entries.finish().map_err(seal_err)?;
    let buffered = stream.finish().map_err(seal_err)?;
    buffered.into_inner().map_err(|e| out_err(e.into_error()))?;
    let kept_previous = atomic
        .commit_keeping_previous(opts.backup)
        .map_err(out_err)?;
    Ok(Written {
        kept_previous,
        kdf_time,
    })
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

enum AddError {
    Source(io::Error),
    Changed,
    Envelope(envelope::Error),
}

/// A file as the first pass saw it: what identifies this version of it,
/// and its size and digest.
struct Hashed {
    ino: u64,
    ctime: (i64, i64),
    size: u64,
    sha256: [u8; 32],
}

/// Open a picked file (no symlink followed), check it is still the file
/// the pick found, and return it with what identifies this version.
fn open_item(pick: &Pick, item: &Item) -> Result<(File, u64, (i64, i64), u64), AddError> {
    let file = pick.open(item).map_err(AddError::Source)?;
    let st = rustix::fs::fstat(file.as_fd()).map_err(|e| AddError::Source(e.into()))?;
    if st.st_ino != item.ino {
        return Err(AddError::Changed);
    }
    Ok((
        file,
        st.st_ino,
        (st.st_ctime, st.st_ctime_nsec as i64),
        st.st_size as u64,
    ))
}

/// First pass over a file: its size and SHA-256 (`None` for a directory).
fn hash_item(pick: &Pick, item: &Item, buf: &mut [u8]) -> Result<Option<Hashed>, AddError> {
    if item.kind == EntryKind::Dir {
        return Ok(None);
    }
    let (mut file, ino, ctime, _) = open_item(pick, item)?;
    let (size, sha256) = hash_reader(&mut file, buf).map_err(AddError::Source)?;
    Ok(Some(Hashed {
        ino,
        ctime,
        size,
        sha256,
    }))
}

/// Second pass: the entry, with the first pass's size and digest, and the
/// bytes, which EntryWriter checks against that digest. A file replaced,
/// written to or resized since the first pass is refused as changed.
fn add_item<W: Write>(
    entries: &mut EntryWriter<W>,
    pick: &Pick,
    item: &Item,
    hashed: Option<&Hashed>,
) -> Result<(), AddError> {
    let mut meta = EntryMeta {
        anchor: item.anchor,
        kind: item.kind,
        path: item.rel.clone(),
        mode: item.mode,
        owner: item.owner.clone(),
        group: item.group.clone(),
        mtime: item.mtime,
        size: 0,
        sha256: [0; 32],
    };
    let Some(hashed) = hashed else {
        return entries
            .add(&meta, &mut io::empty())
            .map_err(AddError::Envelope);
    };
    let (mut file, ino, ctime, size) = open_item(pick, item)?;
    if (ino, ctime, size) != (hashed.ino, hashed.ctime, hashed.size) {
        return Err(AddError::Changed);
    }
    meta.size = hashed.size;
    meta.sha256 = hashed.sha256;
    match entries.add(&meta, &mut file) {
        Ok(()) => Ok(()),
        Err(envelope::Error::Entries(_)) => Err(AddError::Changed),
        Err(e) => Err(AddError::Envelope(e)),
    }
}

/// A file written beside its destination under a temporary name and
/// renamed into place only by [`AtomicFile::commit`]; dropped uncommitted,
/// the temporary file is removed.
pub struct AtomicFile {
    dir: Arc<OwnedFd>,
    tmp_name: String,
    final_name: String,
    file: Option<File>,
}

/// Suffix of the copy of the blob a bundle or rekey replaced.
pub const PREV_SUFFIX: &str = ".prev";

impl AtomicFile {
    /// Create `.zeta-creds-tmp.<random>` (mode 0600, exclusive) in the
    /// directory of `path`.
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        let final_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "output path has no UTF-8 file name",
                )
            })?
            .to_owned();
        let dir = Arc::new(fsx::open_root(parent_of(path))?);
        AtomicFile::create_in(dir, final_name)
    }

    fn create_in(dir: Arc<OwnedFd>, final_name: String) -> io::Result<AtomicFile> {
        let (tmp_name, fd) = fsx::create_temp(&*dir)?;
        // Removed by the signal thread too, not only by Drop.
        crate::cleanup::register_temp_file(&dir, &tmp_name);
        Ok(AtomicFile {
            dir,
            tmp_name,
            final_name,
            file: Some(File::from(fd)),
        })
    }

    /// The temporary file to write.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("not committed")
    }

    /// fsync, rename over the destination, fsync the directory.
    ///
    /// On FAT (the ESP) rename is not atomic against power loss: a crash at
    /// the wrong moment can still leave a damaged directory entry. The blob's
    /// MAC then makes the damage visible instead of silent.
    pub fn commit(self) -> io::Result<()> {
        self.commit_keeping_previous(false).map(|_| ())
    }

    /// [`AtomicFile::commit`], first copying the file being replaced (if
    /// `keep` and there is one) to `NAME.prev` the same way: temporary
    /// file, fsync, rename. A copy, not a hard link, because FAT (the ESP)
    /// has none; so the destination never stops existing. Returns whether
    /// a `.prev` was written.
    pub fn commit_keeping_previous(mut self, keep: bool) -> io::Result<bool> {
        let file = self.file.take().expect("not committed");
        file.sync_all()?;
        drop(file);
        let prev = if keep { self.copy_previous()? } else { None };
        let kept = prev.is_some();
        crate::cleanup::commit_section(|| {
            if let Some(mut prev) = prev {
                rustix::fs::renameat(&*prev.dir, &prev.tmp_name, &*prev.dir, &prev.final_name)?;
                prev.tmp_name.clear();
            }
            rustix::fs::renameat(&*self.dir, &self.tmp_name, &*self.dir, &self.final_name)?;
            self.tmp_name.clear();
            crate::cleanup::forget_staging();
            rustix::fs::fsync(&*self.dir)
        })?;
        Ok(kept)
    }

    /// Copy the current destination, if it is a regular file, into a
    /// synced temporary file that will become `NAME.prev`.
    fn copy_previous(&self) -> io::Result<Option<AtomicFile>> {
        let old = match rustix::fs::openat(
            &*self.dir,
            self.final_name.as_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if fsx::file_type(&rustix::fs::fstat(&old)?) != FileType::RegularFile {
            return Ok(None);
        }
        let mut prev = AtomicFile::create_in(
            Arc::clone(&self.dir),
            format!("{}{PREV_SUFFIX}", self.final_name),
        )?;
        io::copy(&mut File::from(old), prev.file())?;
        prev.file().sync_all()?;
        Ok(Some(prev))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp_name.is_empty() {
            let _ = rustix::fs::unlinkat(&*self.dir, &self.tmp_name, AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The estimate is never below what `write` produces: a real blob of
    /// these items, sealed in memory, is at most the estimate.
    #[test]
    fn estimate_covers_the_real_size() {
        for sizes in [vec![], vec![0], vec![10, 70_000], vec![65_536 * 3 - 100, 1]] {
            let items: Vec<Item> = sizes
                .iter()
                .enumerate()
                .map(|(n, &size)| Item {
                    anchor: Anchor::Home,
                    rel: format!(".config/tool/file-{n}"),
                    source: vec![],
                    kind: EntryKind::File,
                    mode: 0o600,
                    owner: "zeta".into(),
                    group: "users".into(),
                    mtime: 0,
                    size,
                    ino: 0,
                    entry: 0,
                })
                .collect();
            let fields = HeaderFields {
                usb_uuid: UsbUuid::parse("abcd-1234").unwrap(),
                log_n: 10,
                generation: 1,
                created: 0,
                tool_version: env!("CARGO_PKG_VERSION").into(),
                persona: "ops".into(),
            };
            let stream =
                Header::seal(Vec::new(), &SecretString::from("pass phrase"), &fields).unwrap();
            let mut w = EntryWriter::new(stream, "zeta").unwrap();
            for i in &items {
                let body = vec![7u8; i.size as usize];
                let meta = EntryMeta {
                    anchor: i.anchor,
                    kind: i.kind,
                    path: i.rel.clone(),
                    mode: i.mode,
                    owner: i.owner.clone(),
                    group: i.group.clone(),
                    mtime: 0,
                    size: i.size,
                    sha256: Sha256::digest(&body).into(),
                };
                w.add(&meta, &mut body.as_slice()).unwrap();
            }
            let real = w.finish().unwrap().finish().unwrap().len() as u64;
            let estimate = estimate_blob_size("zeta", &items, 9, 3);
            assert!(estimate >= real, "{sizes:?}: {estimate} < {real}");
            assert!(estimate - real <= 64, "{sizes:?}: {estimate} vs {real}");
        }
    }
}
