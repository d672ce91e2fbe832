//! Bundle: seal what the picker ([`crate::pick`]) collected into a blob.
//!
//! Order of work, so that nothing is asked or written for a bundle that
//! cannot succeed: parse the manifest; expand its globs and walk the source
//! root ([`pick`]: no symlink followed, every owner resolved to a name,
//! overrides applied); check the picked set (required entries present,
//! `max_size` respected, no path picked twice, no whole home); check the
//! blob being replaced and the room in its directory ([`plan`]); only then
//! ask for the passphrase (the caller does, between [`plan`] and
//! [`write()`]); write the blob to a temporary file beside `--out`, fsync,
//! keep the previous blob as `BLOB.prev`, rename, fsync the directory;
//! then raise the state record of the system bundled ([`crate::state`]:
//! the newest sealed blob and the files it carries), so that `BLOB.prev`
//! put back over the blob is refused there as a rollback.
//!
//! The same [`pick`] serves `manifest check` (which prints it) and `diff`
//! (which compares it with a blob), so all three agree on what a manifest
//! means. It lives in [`crate::pick`] and is re-exported here, as is
//! [`AtomicFile`] (from [`crate::fsx`]), so the paths `bundle::pick`,
//! `bundle::Pick`, `bundle::AtomicFile` and `bundle::PREV_SUFFIX` keep
//! working.
#![forbid(unsafe_code)]

pub use crate::fsx::{AtomicFile, PREV_SUFFIX};
pub use crate::pick::{EntryReport, Item, Pick, SkipKind, Skipped, pick};

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::envelope::{
    self, CHUNK_SIZE, EntryKind, EntryMeta, EntryWriter, Header, HeaderFields, Host, TAG_LEN,
    UsbUuid,
};
use crate::fsx;
use crate::manifest::{self, Manifest, human_size};

/// Why a bundle (or the pick behind `manifest check` and `diff`) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest cannot be read or is invalid.
    #[error(transparent)]
    Manifest(#[from] manifest::Error),
    /// The source root cannot be opened.
    #[error("cannot open source root {root}: {source}")]
    SourceRoot {
        /// The source root as given.
        root: PathBuf,
        /// Why it cannot be opened.
        #[source]
        source: io::Error,
    },
    /// The source root's `etc/passwd` or `etc/group` cannot be read.
    #[error(
        "cannot read the accounts of source root {root} ({source}); owners are stored by name, so bundle needs etc/passwd and etc/group there"
    )]
    Accounts {
        /// The source root as given.
        root: PathBuf,
        /// Why they cannot be read.
        #[source]
        source: io::Error,
    },
    /// The manifest's user (or `--user`) has no account on the source.
    #[error(
        "user {user:?} is not in {root}/etc/passwd ({}); pass --user NAME to choose one, fix `user` in the manifest, or create the account",
        normal_users_text(.normal)
    )]
    UnknownUser {
        /// The user asked for.
        user: String,
        /// The source root.
        root: PathBuf,
        /// The source's normal users (uid 1000 to 59999), in file order.
        normal: Vec<String>,
    },
    /// The user's home on the source is unusable (why).
    #[error("{0}")]
    BadHome(String),
    /// A required entry matched nothing.
    #[error(
        "required path {path} is missing under {root} (manifest {manifest}, line {line}); log in to that tool first, or mark the entry `required = false`"
    )]
    RequiredMissing {
        /// The entry as written in the manifest.
        path: String,
        /// The source root.
        root: PathBuf,
        /// The manifest.
        manifest: PathBuf,
        /// Its line in the manifest.
        line: usize,
    },
    /// A required entry matched something it does not carry (a symlink,
    /// a special file, a name that is not UTF-8): required means present
    /// and carried.
    #[error(
        "required path {path} under {root} is not carried: {why} (manifest {manifest}, line {line}); put the file itself there, or mark the entry `required = false`"
    )]
    RequiredNotCarried {
        /// The path matched, as shown to the operator.
        path: String,
        /// Why it is not carried.
        why: String,
        /// The source root.
        root: PathBuf,
        /// The manifest.
        manifest: PathBuf,
        /// The entry's line in the manifest.
        line: usize,
    },
    /// A picked path is too long or too deep for a blob.
    #[error(
        "{path} (manifest {manifest}, line {line}) is longer than {max_len} bytes or deeper than {max_depth} directories, which a blob cannot carry; move it, or add an exclude for it"
    )]
    PathTooLong {
        /// The path, as shown to the operator (cut if very long).
        path: String,
        /// The manifest.
        manifest: PathBuf,
        /// The line of the entry that reached it.
        line: usize,
        /// The longest path a blob carries, in bytes.
        max_len: usize,
        /// The deepest path the picker walks to.
        max_depth: usize,
    },
    /// An entry picks more than its `max_size`.
    #[error(
        "entry {path} (manifest {manifest}, line {line}) picks {size} bytes, more than its max_size of {limit}; raise max_size for that entry, or add an exclude for what should not travel (caches, logs)",
        limit = human_size(*.limit)
    )]
    TooLarge {
        /// The entry as written in the manifest.
        path: String,
        /// The manifest.
        manifest: PathBuf,
        /// Its line in the manifest.
        line: usize,
        /// Bytes it picks.
        size: u64,
        /// Its `max_size`.
        limit: u64,
    },
    /// Two entries pick the same path.
    #[error(
        "{path} is picked by the entries at lines {first} and {second} of manifest {manifest}; remove one of them, or exclude it from one (a blob holds each path once)"
    )]
    Overlap {
        /// The path picked twice.
        path: String,
        /// The manifest.
        manifest: PathBuf,
        /// Line of the first entry.
        first: usize,
        /// Line of the second entry.
        second: usize,
    },
    /// An entry would carry a whole home.
    #[error(
        "entry {} (manifest {}, line {}) matches {}, which is or holds the whole home of user {} ({}); name what to carry inside it, e.g. ~/.config/gh",
        .0.entry, .0.manifest.display(), .0.line, .0.path, .0.user, .0.home
    )]
    WholeHome(Box<WholeHome>),
    /// A picked path's owner or group has no name on the source.
    #[error(
        "{path} is owned by {what} {id}, which has no name in {root}/etc/{db}; owners are carried by name: chown it, add the account, or set `{key}` on its manifest entry"
    )]
    UnnamedOwner {
        /// The path, as shown to the operator.
        path: String,
        /// `uid` or `gid`.
        what: &'static str,
        /// The numeric id.
        id: u32,
        /// The source root.
        root: PathBuf,
        /// `passwd` or `group`.
        db: &'static str,
        /// The manifest key that would name it (`owner` or `group`).
        key: &'static str,
    },
    /// A picked file cannot be read.
    #[error("cannot read {path}: {source}")]
    ReadSource {
        /// The path, as shown to the operator.
        path: String,
        /// Why it cannot be read.
        #[source]
        source: io::Error,
    },
    /// A picked file changed between the pick and the seal.
    #[error("{path} changed while it was being bundled; run bundle again")]
    Changed {
        /// The path, as shown to the operator.
        path: String,
    },
    /// The blob at `--out` was sealed for another host (and no
    /// `--allow-other-host`): replacing it would lose that host's
    /// credentials. Decided from its unauthenticated header, before any
    /// passphrase is asked; nothing is written.
    #[error(
        "{out} was sealed for host {found}, not for {wanted}: not replacing another host's blob; nothing was written. Pass --host {found} if the blob is for that host, write this host's blob elsewhere with --out, or pass --allow-other-host to replace it on purpose (it is kept as {out}.prev unless --no-backup)"
    )]
    OtherHost {
        /// The blob path.
        out: PathBuf,
        /// The host its header names.
        found: String,
        /// The host this bundle is sealed for.
        wanted: String,
    },
    /// The blob at `--out` is bound to another stick (and no `--force`).
    #[error(
        "{out} is bound to USB {found}, not to {wanted}; pass --force to replace it (it is kept as {out}.prev unless --no-backup), or `zeta-creds rekey --new-usb-uuid` to move it to this stick"
    )]
    OtherStick {
        /// The blob path.
        out: PathBuf,
        /// The stick it is bound to.
        found: String,
        /// The stick asked for.
        wanted: String,
    },
    /// The blob cannot be written.
    #[error("cannot write {out}: {source}")]
    WriteOut {
        /// The blob path.
        out: PathBuf,
        /// Why it cannot be written.
        #[source]
        source: io::Error,
    },
    /// The blob at `--out` cannot be read (and no `--force`).
    #[error(
        "existing blob {out} cannot be read ({source}); move it away or pass --force to replace it"
    )]
    ExistingBlob {
        /// The blob path.
        out: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: envelope::Error,
    },
    /// Not enough free space beside `--out`.
    #[error(
        "not enough room for {out}: it needs about {needed} bytes and {dir} has {available} free; free some space there (old kernels on an ESP), or pass --no-backup to skip the {out}.prev copy"
    )]
    NoRoom {
        /// The blob path.
        out: PathBuf,
        /// Its directory.
        dir: PathBuf,
        /// Bytes needed (the blob and its `.prev` copy).
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// The blob was written, but the state record could not be raised.
    #[error(
        "sealed {out} (generation {generation}), but cannot raise the state record {record}: {source}; until it is raised, {out}.prev put back over the blob is not refused here as a rollback, and `status` compares the disk with the older blob: fix the cause and run bundle again"
    )]
    RaiseRecord {
        /// The blob written.
        out: PathBuf,
        /// Its generation.
        generation: u64,
        /// The state record.
        record: PathBuf,
        /// Why it cannot be written.
        #[source]
        source: io::Error,
    },
    /// `rebundle`: the blob is not the one the state record names.
    #[error(
        "{out} is not the blob this system last restored or sealed (state record {record}); a restore may be pending, or the blob was replaced: not re-bundled; restore it first, or run `zeta-creds bundle` by hand"
    )]
    NotThisSystemsBlob {
        /// The blob.
        out: PathBuf,
        /// The state record.
        record: PathBuf,
    },
    /// Sealing failed.
    #[error("cannot seal {out}: {source}")]
    Seal {
        /// The blob path.
        out: PathBuf,
        /// What the envelope reported.
        #[source]
        source: envelope::Error,
    },
}

/// An entry that would carry a whole home ([`Error::WholeHome`]).
#[derive(Debug)]
pub struct WholeHome {
    /// The entry as written in the manifest.
    pub entry: String,
    /// The manifest.
    pub manifest: PathBuf,
    /// The entry's line in the manifest.
    pub line: usize,
    /// The path it matches, as shown to the operator.
    pub path: String,
    /// The manifest's user.
    pub user: String,
    /// That user's home on the source.
    pub home: String,
}

/// What `bundle` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The manifest to read.
    pub manifest: PathBuf,
    /// The root the manifest's paths are taken from (`/` on a running system).
    pub source_root: PathBuf,
    /// The blob to write (`--out`).
    pub out: PathBuf,
    /// The USB stick the blob is bound to.
    pub usb_uuid: UsbUuid,
    /// The host the blob is sealed for (`--host`, else the source root's
    /// host name: [`crate::hostname::of_root`]).
    pub host: Host,
    /// The persona whose entries are picked (empty: the default).
    pub persona: String,
    /// The scrypt work factor (log2 N) sealed into the blob.
    pub log_n: u8,
    /// Replace a blob bound to another stick, or one that cannot be read.
    pub force: bool,
    /// Keep the blob being replaced as `BLOB.prev`.
    pub backup: bool,
    /// Whose home `~` means (`--user`), instead of the manifest's `user`.
    pub user: Option<String>,
    /// Replace a blob at `out` sealed for another host (`--allow-other-host`).
    pub allow_other_host: bool,
}

/// The blob at `--out` before this bundle, if there is one.
#[derive(Debug, Clone)]
pub struct Existing {
    /// The generation its header claims, 0 when it cannot be read
    /// (replaced with --force). **Unauthenticated**: shown, never trusted;
    /// [`write()`] continues a generation only from a header whose MAC it
    /// verified.
    pub generation: u64,
    /// Its USB UUID, if its header could be read.
    pub usb_uuid: Option<String>,
    /// The host it was sealed for, if its header could be read and
    /// records one (format version 2).
    pub host: Option<String>,
    /// Its size in bytes (the `.prev` copy needs that much room).
    pub len: u64,
}

/// Everything a bundle will contain, found before any passphrase is asked.
#[derive(Debug)]
pub struct Plan {
    /// What is carried.
    pub pick: Pick,
    /// The lowest generation the new blob gets: one above the state
    /// record of the system being bundled. [`write()`] raises it above the
    /// blob being replaced when that blob opens with the same passphrase.
    pub generation: u64,
    /// The blob being replaced, if any.
    pub existing: Option<Existing>,
    /// The blob's estimated size in bytes.
    pub estimate: u64,
    /// Whether [`write()`] raises the state record of the source root: the
    /// record exists there, or the blob is sealed for the source root's
    /// own host (not `--host` naming another).
    pub raise_record: bool,
}

/// Pick, check, and decide the generation and the room needed.
pub fn plan(opts: &Options) -> Result<Plan, Error> {
    let mut manifest = Manifest::load(&opts.manifest)?;
    if let Some(user) = &opts.user {
        manifest.user.clone_from(user);
    }
    let pick = pick(&manifest, &opts.source_root, &opts.persona)?;
    pick.check()?;
    let existing = existing_blob(opts)?;
    // 1 + the newest generation the state record of the system being
    // re-bundled knows (restored or sealed), so a re-bundle is never
    // refused there as a rollback (docs/THREAT-MODEL.md, rollback). The
    // blob being replaced can raise it only once its MAC verified
    // (write()): a header anyone can edit on the ESP must not raise a
    // counter (a forged 2^64-1 would end every later bundle).
    let record = crate::state::load(&pick.root);
    let recorded = match &record {
        crate::state::Loaded::Present(s) => s.newest_generation(),
        _ => 0,
    };
    let raise_record = matches!(record, crate::state::Loaded::Present(_))
        || crate::hostname::of_root(&opts.source_root).is_ok_and(|h| h == opts.host);
    let generation = next_generation(recorded, &opts.out)?;
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
        raise_record,
    })
}

/// One above `generation`, or the error that says the counter is spent.
fn next_generation(generation: u64, out: &Path) -> Result<u64, Error> {
    generation
        .checked_add(1)
        .ok_or_else(|| Error::ExistingBlob {
            out: out.to_owned(),
            source: envelope::Error::InvalidHeader {
                field: "generation",
                reason: "at its maximum".into(),
            },
        })
}

/// The generation of the blob at `out` if `passphrase` opens it (its
/// header MAC verified), else `None`. The work factor it may cost is
/// capped by the new blob's and zeta-creds's default cap, never raised by
/// the header.
fn authenticated_generation(out: &Path, passphrase: &SecretString, log_n: u8) -> Option<u64> {
    let mut f = File::open(out).ok()?;
    let header = Header::read(&mut f).ok()?;
    let anything = envelope::Binding {
        usb_uuid: None,
        host: None,
    };
    let cap = log_n.max(envelope::DEFAULT_MAX_LOG_N);
    let unlocked = header.unlock(passphrase, &anything, cap).ok()?;
    Some(unlocked.fields().generation)
}

/// Read the header of an existing blob at `--out` (without the
/// passphrase: only to see which stick it is bound to). One bound
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
            // A version 1 blob records no host: it may be this host's own.
            if let Some(found) = fields.host.as_ref().filter(|h| **h != opts.host)
                && !opts.allow_other_host
            {
                return Err(Error::OtherHost {
                    out: opts.out.clone(),
                    found: found.to_string(),
                    wanted: opts.host.to_string(),
                });
            }
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
                host: fields.host.as_ref().map(ToString::to_string),
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
            host: None,
            len,
        })),
    }
}

/// "its normal users: a, b", for [`Error::UnknownUser`].
fn normal_users_text(normal: &[String]) -> String {
    if normal.is_empty() {
        "it has no normal user, uid 1000 or above".to_owned()
    } else {
        format!("its normal users: {}", normal.join(", "))
    }
}

/// Bytes a blob of these items takes (FORMAT.md §2, §4, §5): the header
/// at its largest tool version, the entry stream, and one tag per chunk.
pub fn estimate_blob_size(user: &str, items: &[Item], uuid_len: usize, persona_len: usize) -> u64 {
    let header = (143
        + uuid_len
        + envelope::MAX_TOOL_VERSION_LEN
        + persona_len
        + 1
        + envelope::MAX_HOST_LEN) as u64;
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
    let dir = fsx::parent_of(out);
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

/// What [`write()`] did.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// Whether the state record of the source root was raised to the new
    /// blob ([`Plan::raise_record`]; not on a read-only source root).
    pub raised_record: bool,
    /// The new blob's generation.
    pub generation: u64,
    /// The generation the replaced blob's header claimed, when that blob
    /// did not open with this passphrase, so its generation was not
    /// continued (the caller says so).
    pub unverified_previous: Option<u64>,
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
    write_with_progress(opts, plan, passphrase, &mut |_| {})
}

/// [`write()`], calling `progress` with each item's size once it is hashed
/// (first pass) and once it is sealed (second pass): `2 *
/// plan.pick.total_size()` bytes in all, for a progress line.
pub fn write_with_progress(
    opts: &Options,
    plan: &Plan,
    passphrase: &SecretString,
    progress: &mut dyn FnMut(u64),
) -> Result<Written, Error> {
    // Continue the replaced blob's generation when it opens with this
    // passphrase (one extra key derivation, on a re-bundle only).
    let mut generation = plan.generation;
    let mut unverified_previous = None;
    if let Some(e) = plan.existing.as_ref().filter(|e| e.usb_uuid.is_some()) {
        match authenticated_generation(&opts.out, passphrase, opts.log_n) {
            Some(g) => generation = generation.max(next_generation(g, &opts.out)?),
            None => unverified_previous = Some(e.generation),
        }
    }
    let fields = HeaderFields {
        usb_uuid: opts.usb_uuid.clone(),
        log_n: opts.log_n,
        generation,
        created: now(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        persona: opts.persona.clone(),
        host: Some(opts.host.clone()),
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
    crate::msg::test_fault("stall-after-blob-temp");
    // One STREAM chunk per write(2); the header's bytes kept aside, to
    // name the new blob in the state record.
    let out = Head::new(io::BufWriter::with_capacity(
        CHUNK_SIZE + TAG_LEN,
        atomic.file(),
    ));
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
            .map(|item| {
                let hashed = hash_item(&plan.pick, item, &mut buf).map_err(|e| add_err(item, e));
                progress(item.size);
                hashed
            })
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
        progress(item.size);
    }
    let stream = entries.finish().map_err(seal_err)?;
    let Head { inner, head } = stream.finish().map_err(seal_err)?;
    inner.into_inner().map_err(|e| out_err(e.into_error()))?;
    // Our own header, as written: its generation and date are ours.
    let sealed = Header::read(&mut head.as_slice())
        .map(|h| crate::state::RestoredBlob::of(&h))
        .map_err(seal_err)?;
    let kept_previous = atomic
        .commit_keeping_previous(opts.backup)
        .map_err(out_err)?;
    // A source root mounted read-only (an old root bundled from a rescue
    // system) cannot restore either: nothing to protect there.
    let raised_record = plan.raise_record
        && match raise_record(plan, &first_pass, sealed) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::ReadOnlyFilesystem => false,
            Err(source) => {
                return Err(Error::RaiseRecord {
                    out: opts.out.clone(),
                    generation,
                    record: record_path(&opts.source_root),
                    source,
                });
            }
        };
    Ok(Written {
        raised_record,
        generation,
        unverified_previous,
        kept_previous,
        kdf_time,
    })
}

/// The state record's path under `root`, as the operator sees it.
pub fn record_path(root: &Path) -> PathBuf {
    let mut path = root.to_owned();
    path.extend(crate::state::STATE_DIR);
    path.push(crate::state::STATE_FILE);
    path
}

/// Raise the state record of the source root to the blob just sealed:
/// the newest sealed blob, and each sealed file as the first pass found it
/// (the second pass checked it had not changed since). Read again here, so
/// a restore that committed meanwhile keeps its part of the record.
fn raise_record(
    plan: &Plan,
    first_pass: &[Option<Hashed>],
    sealed: crate::state::RestoredBlob,
) -> io::Result<()> {
    let root = std::sync::Arc::new(rustix::io::dup(&plan.pick.root)?);
    let old = match crate::state::load(&root) {
        crate::state::Loaded::Present(s) => s,
        _ => crate::state::State::default(),
    };
    let files = plan
        .pick
        .items
        .iter()
        .zip(first_pass)
        .filter_map(|(item, hashed)| Some((item.source_display(), hashed.as_ref()?.record)))
        .collect();
    crate::state::save(&root, &old.raised(sealed, files))
}

/// The first bytes written through it (the header and a little more),
/// kept aside; everything goes on to `inner`.
struct Head<W> {
    inner: W,
    head: Vec<u8>,
}

impl<W> Head<W> {
    /// More than the largest header (FORMAT.md §2).
    const KEEP: usize = 4096;

    fn new(inner: W) -> Head<W> {
        Head {
            inner,
            head: Vec::with_capacity(Self::KEEP),
        }
    }
}

impl<W: Write> Write for Head<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let room = Self::KEEP - self.head.len();
        self.head.extend_from_slice(&buf[..n.min(room)]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
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
    /// What the state record keeps of it.
    record: crate::state::FileRecord,
    ino: u64,
    ctime: (i64, i64),
    size: u64,
    sha256: [u8; 32],
}

/// Open a picked file (no symlink followed), check it is still the file
/// the pick found, and return it with what identifies this version.
fn open_item(pick: &Pick, item: &Item) -> Result<(File, rustix::fs::Stat), AddError> {
    let file = pick.open(item).map_err(AddError::Source)?;
    let st = rustix::fs::fstat(file.as_fd()).map_err(|e| AddError::Source(e.into()))?;
    if st.st_ino != item.ino {
        return Err(AddError::Changed);
    }
    Ok((file, st))
}

/// What identifies this version of a file: inode, ctime, size.
fn identity(st: &rustix::fs::Stat) -> (u64, (i64, i64), u64) {
    (
        st.st_ino,
        (st.st_ctime, st.st_ctime_nsec as i64),
        st.st_size as u64,
    )
}

/// First pass over a file: its size and SHA-256 (`None` for a directory).
fn hash_item(pick: &Pick, item: &Item, buf: &mut [u8]) -> Result<Option<Hashed>, AddError> {
    if item.kind == EntryKind::Dir {
        return Ok(None);
    }
    let (mut file, st) = open_item(pick, item)?;
    let (ino, ctime, _) = identity(&st);
    let (size, sha256) = crate::pick::hash_reader(&mut file, buf).map_err(AddError::Source)?;
    Ok(Some(Hashed {
        record: crate::state::FileRecord::of(&st),
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
    let (mut file, st) = open_item(pick, item)?;
    if identity(&st) != (hashed.ino, hashed.ctime, hashed.size) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Anchor;
    use sha2::{Digest, Sha256};

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
                host: Some(Host::parse(&"h".repeat(64)).unwrap()),
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
