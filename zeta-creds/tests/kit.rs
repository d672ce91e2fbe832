//! The conformance kit of issue 9: a corpus of bad (and good) blobs, each
//! run through the real CLI.
//!
//! `tests/kit/` holds one file per case, in the layout of C2SP CCTV's age
//! vectors: `key: value` lines stating the expectation (outcome, exit code,
//! the error text the CLI must print, the passphrase, the USB UUID, the
//! work-factor cap, the entries an `ok` case writes with their digests, a
//! comment), a blank line, then the raw blob. `tests/kit/README.md`
//! describes the keys. The files are *generated data*; this file is their
//! generator and their runner:
//!
//! * `all_cases` builds every case from fixed seeds (a SplitMix64 stream
//!   gives the file keys, salts, nonces and file bodies), through the public
//!   API (`Header::seal_with`, `EntryWriter`), and, for what the API never
//!   writes, through a test-side entry encoder (`common/entry_stream.rs`)
//!   and chunk sealer written from FORMAT.md §5 and §4. The generator checks every expectation
//!   against the library before it writes a file, so a case that does not
//!   test what its comment says cannot be written.
//!
//! It runs as a `harness = false` binary (`common/corpus.rs`, the parser
//! it shares with `vectors.rs`), one test case per kit file, so a failure
//! names the file:
//!
//! * `generator_agrees_with_library::<case>`: the library gives the class
//!   and error text the case states (a case that does not test what it
//!   says is never written: regeneration checks this first).
//! * `kit_matches_generator::<file>` is the reproducibility check: the
//!   on-disk file must be what the generator produces now, byte for byte,
//!   and a file the generator does not know fails too. With
//!   `ZETA_CREDS_REGEN_KIT=1` the files are (re)written first, and the fuzz
//!   seeds under `fuzz/seeds/` with them; `fuzz_seeds_match_generator`
//!   checks those.
//! * `every_kit_case_through_the_cli::<file>` reads the file alone (not the
//!   generator) and runs it as
//!   `zeta-creds restore --passphrase-file` into a fresh target root (a
//!   `common::World`), asserting the exit code, the error text on stderr,
//!   that a failure left the target root exactly as it was (and consumed
//!   the passphrase file if the run got as far as reading it: not for a
//!   header or binding failure), and that an `ok` case wrote exactly its
//!   entries, with their digests, modes and owners.
//! * `kit_covers_what_issue_9_asks` and `at_least_80_files`.
//!
//! Everything is sealed at work factor 10 (1 MiB of scrypt memory) except
//! the cases about the work factor, so the whole kit runs in seconds.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use chacha20poly1305::aead::Aead;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use common::World;
use common::corpus::{self, Corpus, Schema};
use common::entry_stream::{self, RawEntry, RawStream};
use common::layout::{Layout, chunk_ranges};
use common::recipe::Recipe;
use hkdf::Hkdf;
use libtest_mimic::Trial;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use zeta_creds::envelope::{
    Anchor, Binding, CHUNK_SIZE, EntryKind, EntryMeta, EntryReader, ErrorClass, Header,
    HeaderFields, Host, TAG_LEN, UsbUuid,
};

// ---------------------------------------------------------------------------
// Fixed inputs. Every case is a pure function of these.
// ---------------------------------------------------------------------------

const PASSPHRASE: &str = "correct horse battery staple";
const UUID: &str = "abcd-1234";
/// The host every case is restored on (`--host`) and sealed for.
const HOST: &str = "alpha";
const OTHER_UUID: &str = "ef01-5678";
const LOG_N: u8 = 10;
/// The CLI's default `--max-work-factor` (FORMAT.md §3.2).
const CAP: u8 = 20;
const CREATED: u64 = 1_700_000_000;
const MTIME: i64 = 1_699_990_000;
const TOOL: &str = "0.1.0";
/// The manifest user. `common::World`'s target root knows `zeta` (and
/// `root`); every entry is owned by zeta:zeta so that the kit runs the same
/// as root and as a normal user.
const USER: &str = "zeta";

/// Seed of blob A, the blob most cases are made from.
const SEED_A: u64 = 0x7a65_7461_6b69_7401;
/// Seed of blob B: another bundle under the same passphrase and stick (a
/// fresh file key, salt and nonce), the source of spliced chunks.
const SEED_B: u64 = 0x7a65_7461_6b69_7402;
/// Seed of the file bodies.
const SEED_BODIES: u64 = 0x7a65_7461_6b69_7403;

fn corpus() -> Corpus {
    Corpus::new("kit", "ZETA_CREDS_REGEN_KIT")
}

/// The keys of a kit file (tests/kit/README.md); `entry` repeats.
const SCHEMA: Schema = Schema {
    single: &[
        "expect",
        "exit code",
        "error",
        "passphrase",
        "usb uuid",
        "host",
        "max work factor",
        "comment",
    ],
    repeated: &["entry"],
};

fn fuzz_seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fuzz")
        .join("seeds")
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fully specified PRNG, so
/// the kit can be regenerated from its seeds by anyone.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let x = self.next_u64().to_be_bytes();
            chunk.copy_from_slice(&x[..chunk.len()]);
        }
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.fill(&mut out);
        out
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        self.fill(&mut out);
        out
    }
}

/// `n` body bytes from the body seed, distinct per `label`.
fn body(label: u64, n: usize) -> Vec<u8> {
    Rng(SEED_BODIES ^ label.wrapping_mul(0x1000_0000_01b3)).bytes(n)
}

// ---------------------------------------------------------------------------
// The case file format.
// ---------------------------------------------------------------------------

/// The `expect:` values: `ok`, or a failure class of FORMAT.md §8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Ok,
    Header,
    Binding,
    NoMatch,
    Hmac,
    Payload,
    Entries,
    /// `--usb-uuid` is not a UUID after normalization (FORMAT.md §2.1):
    /// a usage error, before the blob is unlocked.
    BadUsbUuid,
}

impl Expect {
    const ALL: [Expect; 8] = [
        Expect::Ok,
        Expect::Header,
        Expect::Binding,
        Expect::NoMatch,
        Expect::Hmac,
        Expect::Payload,
        Expect::Entries,
        Expect::BadUsbUuid,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Expect::Ok => "ok",
            Expect::Header => "header failure",
            Expect::Binding => "binding failure",
            Expect::NoMatch => "no match",
            Expect::Hmac => "hmac failure",
            Expect::Payload => "payload failure",
            Expect::Entries => "entries failure",
            Expect::BadUsbUuid => "bad usb uuid",
        }
    }

    fn parse(s: &str) -> Option<Expect> {
        Expect::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The CLI's exit code for this outcome (FORMAT.md §8, README).
    fn exit_code(self) -> i32 {
        match self {
            Expect::Ok => 0,
            Expect::BadUsbUuid => 2,
            Expect::NoMatch => 3,
            Expect::Binding => 4,
            Expect::Header | Expect::Hmac | Expect::Payload | Expect::Entries => 5,
        }
    }

    fn of_class(class: ErrorClass) -> Option<Expect> {
        Some(match class {
            ErrorClass::Header => Expect::Header,
            ErrorClass::Binding => Expect::Binding,
            ErrorClass::NoMatch => Expect::NoMatch,
            ErrorClass::Hmac => Expect::Hmac,
            ErrorClass::Payload => Expect::Payload,
            ErrorClass::Entries => Expect::Entries,
            ErrorClass::Other => return None,
        })
    }
}

/// What an `ok` case must have written: `entry: KIND MODE OWNER:GROUP
/// SHA256|- PATH`, the path as the CLI shows it (`~/x` or `/x`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    kind: EntryKind,
    mode: u32,
    owner: String,
    group: String,
    sha256: Option<[u8; 32]>,
    shown: String,
}

impl Written {
    fn encode(&self) -> String {
        format!(
            "{} {:04o} {}:{} {} {}",
            match self.kind {
                EntryKind::File => "file",
                EntryKind::Dir => "dir",
            },
            self.mode,
            self.owner,
            self.group,
            self.sha256.map_or("-".to_string(), hex::encode),
            self.shown
        )
    }

    fn parse(s: &str) -> Result<Written, String> {
        let mut it = s.splitn(5, ' ');
        let mut next = || {
            it.next()
                .ok_or_else(|| format!("entry {s:?}: too few fields"))
        };
        let kind = match next()? {
            "file" => EntryKind::File,
            "dir" => EntryKind::Dir,
            k => return Err(format!("entry {s:?}: kind {k:?}")),
        };
        let mode = u32::from_str_radix(next()?, 8).map_err(|e| format!("entry {s:?}: {e}"))?;
        let (owner, group) = next()?
            .split_once(':')
            .ok_or_else(|| format!("entry {s:?}: owner:group"))?;
        let sha256 = match next()? {
            "-" => None,
            h => Some(corpus::hex32(h)?),
        };
        let shown = next()?.to_string();
        Ok(Written {
            kind,
            mode,
            owner: owner.into(),
            group: group.into(),
            sha256,
            shown,
        })
    }
}

/// One generated case.
struct Case {
    name: String,
    expect: Expect,
    /// A substring of the CLI's `error:` line; empty for `ok`.
    error: String,
    passphrase: String,
    usb_uuid: String,
    host: String,
    max_work_factor: u8,
    written: Vec<Written>,
    comment: String,
    blob: Vec<u8>,
}

impl Case {
    fn encode(&self) -> Vec<u8> {
        assert_eq!(
            self.error.is_empty(),
            self.expect == Expect::Ok,
            "{}: `error` is given exactly for failures",
            self.name
        );
        let mut lines = vec![
            ("expect", self.expect.as_str().to_string()),
            ("exit code", self.expect.exit_code().to_string()),
        ];
        if !self.error.is_empty() {
            lines.push(("error", self.error.clone()));
        }
        lines.push(("passphrase", self.passphrase.clone()));
        lines.push(("usb uuid", self.usb_uuid.clone()));
        lines.push(("host", self.host.clone()));
        lines.push(("max work factor", self.max_work_factor.to_string()));
        for w in &self.written {
            lines.push(("entry", w.encode()));
        }
        lines.push(("comment", self.comment.clone()));
        corpus::encode(&self.name, &lines, &self.blob)
    }
}

// ---------------------------------------------------------------------------
// Building blobs.
// ---------------------------------------------------------------------------

impl Recipe {
    fn new(seed: u64) -> Recipe {
        let mut rng = Rng(seed);
        Recipe {
            fields: HeaderFields {
                usb_uuid: UsbUuid::parse(UUID).unwrap(),
                log_n: LOG_N,
                generation: 1,
                created: CREATED,
                tool_version: TOOL.into(),
                persona: String::new(),
                host: Some(Host::parse(HOST).unwrap()),
            },
            passphrase: PASSPHRASE.into(),
            file_key: rng.array(),
            salt: rng.array(),
            nonce: rng.array(),
        }
    }

    fn a() -> Recipe {
        Recipe::new(SEED_A)
    }

    /// FORMAT.md §3.7, computed here (not by the crate):
    /// `HKDF(ikm = file key, salt = payload_nonce, info = "zeta-creds/v1/payload")`.
    fn payload_key(&self) -> [u8; 32] {
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&self.nonce), &self.file_key)
            .expand(b"zeta-creds/v1/payload", &mut okm)
            .unwrap();
        okm
    }

    /// One STREAM chunk with a chosen counter and final flag (FORMAT.md §4),
    /// for the chunks the API never writes.
    fn chunk(&self, counter: u64, last: bool, plain: &[u8]) -> Vec<u8> {
        let mut n = [0u8; 12];
        n[3..11].copy_from_slice(&counter.to_be_bytes());
        n[11] = u8::from(last);
        ChaCha20Poly1305::new(&self.payload_key().into())
            .encrypt(&Nonce::from(n), plain)
            .unwrap()
    }
}

fn patched(blob: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = blob.to_vec();
    f(&mut b);
    b
}

// ---------------------------------------------------------------------------
// Entry streams (FORMAT.md §5).
// ---------------------------------------------------------------------------

/// An entry of a valid stream.
#[derive(Clone)]
struct Item {
    anchor: Anchor,
    kind: EntryKind,
    path: String,
    mode: u32,
    body: Vec<u8>,
}

impl Item {
    fn file(anchor: Anchor, path: &str, mode: u32, body: &[u8]) -> Item {
        Item {
            anchor,
            kind: EntryKind::File,
            path: path.into(),
            mode,
            body: body.to_vec(),
        }
    }

    fn dir(anchor: Anchor, path: &str, mode: u32) -> Item {
        Item {
            kind: EntryKind::Dir,
            ..Item::file(anchor, path, mode, b"")
        }
    }

    fn meta(&self) -> EntryMeta {
        let (size, sha256) = match self.kind {
            EntryKind::File => (self.body.len() as u64, Sha256::digest(&self.body).into()),
            EntryKind::Dir => (0, [0; 32]),
        };
        EntryMeta {
            anchor: self.anchor,
            kind: self.kind,
            path: self.path.clone(),
            mode: self.mode,
            owner: USER.into(),
            group: USER.into(),
            mtime: MTIME,
            size,
            sha256,
        }
    }

    fn raw(&self) -> RawEntry {
        RawEntry::of(&self.meta(), &self.body)
    }

    fn written(&self) -> Written {
        let m = self.meta();
        Written {
            kind: self.kind,
            mode: self.mode,
            owner: USER.into(),
            group: USER.into(),
            sha256: (self.kind == EntryKind::File).then_some(m.sha256),
            shown: m.display_path(),
        }
    }
}

/// A valid stream through the crate's `EntryWriter`, checked against the
/// test-side encoder.
fn valid_stream(user: &str, items: &[Item]) -> Vec<u8> {
    entry_stream::valid_stream(user, items.iter().map(|i| (i.meta(), &i.body[..])))
}

fn hosts_yml() -> Item {
    Item::file(
        Anchor::Home,
        ".config/gh/hosts.yml",
        0o600,
        b"github.com:\n    user: zeta\n    oauth_token: gho_EXAMPLEONLYNOTAREALTOKEN0000000000\n    git_protocol: ssh\n",
    )
}

fn host_key() -> Item {
    Item::file(
        Anchor::Root,
        "etc/kit/ssh_host_ed25519_key",
        0o600,
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nEXAMPLE ONLY, NOT A REAL KEY\n-----END OPENSSH PRIVATE KEY-----\n",
    )
}

/// A directory, an empty file, a home file, a root directory and a file
/// in it.
fn typical_items() -> Vec<Item> {
    vec![
        Item::dir(Anchor::Home, ".ssh", 0o700),
        Item::file(Anchor::Home, ".ssh/authorized_keys", 0o644, b""),
        hosts_yml(),
        Item::dir(Anchor::Root, "etc/kit", 0o755),
        host_key(),
    ]
}

/// One home file whose body pads a valid stream to exactly `total` bytes.
fn padded_items(total: usize) -> Vec<Item> {
    let pad = |len: usize| {
        vec![Item::file(
            Anchor::Home,
            ".local/share/zeta/padding.bin",
            0o600,
            &body(total as u64, len),
        )]
    };
    let overhead = valid_stream(USER, &pad(0)).len();
    let items = pad(total - overhead);
    assert_eq!(valid_stream(USER, &items).len(), total);
    items
}

// ---------------------------------------------------------------------------
// The cases.
// ---------------------------------------------------------------------------

struct Kit {
    cases: Vec<Case>,
}

impl Kit {
    fn push(
        &mut self,
        name: &str,
        expect: Expect,
        error: &str,
        comment: &str,
        blob: Vec<u8>,
    ) -> &mut Case {
        self.cases.push(Case {
            name: name.into(),
            expect,
            error: error.into(),
            passphrase: PASSPHRASE.into(),
            usb_uuid: UUID.into(),
            host: HOST.into(),
            max_work_factor: CAP,
            written: Vec::new(),
            comment: comment.into(),
            blob,
        });
        self.cases.last_mut().unwrap()
    }

    /// An `ok` case: `items` sealed under `recipe`, restored with `uuid`.
    fn ok(&mut self, name: &str, comment: &str, recipe: &Recipe, user: &str, items: &[Item]) {
        let blob = recipe.seal(&valid_stream(user, items));
        let case = self.push(name, Expect::Ok, "", comment, blob);
        case.usb_uuid = recipe.fields.usb_uuid.to_string();
        case.written = items.iter().map(Item::written).collect();
    }

    fn header(&mut self, name: &str, error: &str, comment: &str, blob: Vec<u8>) -> &mut Case {
        self.push(name, Expect::Header, error, comment, blob)
    }

    fn payload(&mut self, name: &str, error: &str, comment: &str, blob: Vec<u8>) {
        self.push(name, Expect::Payload, error, comment, blob);
    }

    /// An entries case: `plain` sealed validly under blob A's recipe.
    fn entries(&mut self, name: &str, error: &str, comment: &str, plain: Vec<u8>) {
        let blob = Recipe::a().seal(&plain);
        self.push(name, Expect::Entries, error, comment, blob);
    }
}

fn all_cases() -> Vec<Case> {
    let mut kit = Kit { cases: Vec::new() };
    ok_cases(&mut kit);
    header_cases(&mut kit);
    work_factor_cases(&mut kit);
    unlock_cases(&mut kit);
    payload_cases(&mut kit);
    entries_cases(&mut kit);
    let mut names = HashSet::new();
    for c in &kit.cases {
        assert!(names.insert(c.name.clone()), "duplicate case {}", c.name);
        assert!(
            c.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "case name {:?}",
            c.name
        );
    }
    kit.cases
}

fn ok_cases(kit: &mut Kit) {
    let a = Recipe::a();
    kit.ok(
        "ok_typical",
        "a home directory, an empty file, a home file, a root directory and a file in it",
        &a,
        USER,
        &typical_items(),
    );
    kit.ok(
        "ok_no_entries",
        "an entry stream with zero entries: preamble and end marker only",
        &a,
        USER,
        &[],
    );
    kit.ok(
        "ok_no_user",
        "user_len 0: a stream of root entries needs no user",
        &a,
        "",
        &[host_key()],
    );
    kit.ok(
        "ok_user_len_32",
        "a manifest user of 32 bytes (the longest name) unknown on the target, with root entries only",
        &a,
        &"u".repeat(32),
        &[host_key()],
    );
    kit.ok(
        "ok_chunk_exact",
        "plaintext of exactly 65536 bytes: one full chunk that is the final chunk",
        &a,
        USER,
        &padded_items(CHUNK_SIZE),
    );
    kit.ok(
        "ok_chunk_plus_one",
        "plaintext of 65537 bytes: a full middle chunk and a one-byte final chunk",
        &a,
        USER,
        &padded_items(CHUNK_SIZE + 1),
    );
    kit.ok(
        "ok_three_chunks",
        "plaintext of 131172 bytes: two full chunks and a short final chunk (the blob the chunk cases break)",
        &a,
        USER,
        &padded_items(2 * CHUNK_SIZE + 100),
    );

    let with = |f: &dyn Fn(&mut HeaderFields)| {
        let mut r = Recipe::a();
        f(&mut r.fields);
        r
    };
    let typical = typical_items();
    let header_ok: [(&str, &str, Recipe); 12] = [
        (
            "ok_uuid_len_1",
            "uuid_len 1 (uuid \"a\"), the shortest",
            with(&|f| f.usb_uuid = UsbUuid::parse("a").unwrap()),
        ),
        (
            "ok_uuid_len_64",
            "uuid_len 64, the longest",
            with(&|f| f.usb_uuid = UsbUuid::parse(&"0123456789abcdef-".repeat(4)[..64]).unwrap()),
        ),
        (
            "ok_uuid_iso9660",
            "an ISO 9660 volume date as blkid prints it",
            with(&|f| f.usb_uuid = UsbUuid::parse("2025-05-27-10-31-45-00").unwrap()),
        ),
        (
            "ok_tool_len_1",
            "tool_version \"0\", the shortest",
            with(&|f| f.tool_version = "0".into()),
        ),
        (
            "ok_tool_len_64",
            "tool_version of 64 bytes, the longest, using 0x21 and 0x7e",
            with(&|f| f.tool_version = format!("!{}~", "v".repeat(62))),
        ),
        (
            "ok_persona_len_1",
            "persona \"a\", the shortest non-empty",
            with(&|f| f.persona = "a".into()),
        ),
        (
            "ok_persona_len_64",
            "persona of 64 bytes of [a-z0-9_-], the longest",
            with(&|f| f.persona = format!("{}_-9", "p".repeat(61))),
        ),
        (
            "ok_generation_0",
            "generation 0 on a target with no state record",
            with(&|f| f.generation = 0),
        ),
        (
            "ok_generation_max",
            "generation and created at u64::MAX",
            with(&|f| {
                f.generation = u64::MAX;
                f.created = u64::MAX;
            }),
        ),
        (
            "ok_created_0",
            "created 0 (the epoch)",
            with(&|f| f.created = 0),
        ),
        (
            "ok_work_factor_11",
            "work factor 11: log_n steers scrypt",
            with(&|f| f.log_n = 11),
        ),
        (
            "ok_work_factor_at_cap",
            "work factor 12 read with --max-work-factor 12: a cap is inclusive",
            with(&|f| f.log_n = 12),
        ),
    ];
    for (name, comment, recipe) in header_ok {
        kit.ok(name, comment, &recipe, USER, &typical);
        if name == "ok_work_factor_at_cap" {
            kit.cases.last_mut().unwrap().max_work_factor = 12;
        }
    }
    // The stick's UUID as the user may type it: normalized before use.
    kit.ok(
        "ok_usb_uuid_upper_case_on_the_command_line",
        "--usb-uuid ABCD-1234 for a blob bound to abcd-1234: the caller's UUID is normalized",
        &a,
        USER,
        &typical,
    );
    kit.cases.last_mut().unwrap().usb_uuid = "ABCD-1234".into();
    kit.ok(
        "ok_usb_uuid_ascii_whitespace_on_the_command_line",
        "--usb-uuid \"\\t ABCD-1234 \\x0c\" for a blob bound to abcd-1234: ASCII whitespace (space, tab, form feed) is trimmed (FORMAT.md §2.1)",
        &a,
        USER,
        &typical,
    );
    kit.cases.last_mut().unwrap().usb_uuid = "\t ABCD-1234 \x0c".into();
    // Other whitespace is not trimmed: the UUID is refused, exit 2,
    // before any passphrase is read and with nothing written.
    for (name, raw, what) in [
        (
            "bad_usb_uuid_vertical_tab",
            "\x0babcd-1234",
            "a leading vertical tab",
        ),
        (
            "bad_usb_uuid_no_break_space",
            "abcd-1234\u{a0}",
            "a trailing U+00A0",
        ),
        (
            "bad_usb_uuid_ideographic_space",
            "\u{3000}abcd-1234",
            "a leading U+3000",
        ),
        (
            "bad_usb_uuid_next_line",
            "abcd-1234\u{85}",
            "a trailing U+0085",
        ),
    ] {
        let blob = a.seal(&valid_stream(USER, &typical));
        let case = kit.push(
            name,
            Expect::BadUsbUuid,
            "invalid USB UUID",
            &format!("--usb-uuid with {what}: only ASCII whitespace is trimmed, so it is refused (FORMAT.md §2.1)"),
            blob,
        );
        case.usb_uuid = raw.into();
    }

    // Entry-field boundaries that must pass.
    let long_path = {
        // etc/kit/ then components of 200 bytes: exactly 4096 bytes.
        let mut p = String::from("etc/kit");
        while p.len() + 201 < 4096 {
            p.push('/');
            p.push_str(&"l".repeat(200));
        }
        p.push('/');
        let rest = 4096 - p.len();
        p.push_str(&"t".repeat(rest));
        assert_eq!(p.len(), 4096);
        p
    };
    kit.ok(
        "ok_path_len_4096",
        "a root file whose path is 4096 bytes, the longest (components of 200 bytes)",
        &a,
        USER,
        &[Item::file(Anchor::Root, &long_path, 0o600, b"deep\n")],
    );
    kit.ok(
        "ok_modes_0_and_1777",
        "modes 0o0000 and 0o1777 (sticky, rwx for all), the bounds a restore writes: set-id bits are refused (tests/restore_safety.rs)",
        &a,
        USER,
        &[
            Item::file(Anchor::Root, "etc/kit/mode-0", 0o000, b"zero\n"),
            Item::file(Anchor::Root, "etc/kit/mode-1777", 0o1777, b"all\n"),
        ],
    );
    kit.ok(
        "ok_path_odd_but_valid",
        "path components that look dangerous but are not . or ..: \"...\", \"..a\", \"a..\", \" \", \"-\"",
        &a,
        USER,
        &[
            Item::file(Anchor::Root, "etc/kit/.../..a/a../ /-", 0o600, b"odd\n"),
            Item::file(Anchor::Home, "..config", 0o600, b"odd\n"),
        ],
    );
}

fn header_cases(kit: &mut Kit) {
    let r = Recipe::a();
    let lay = Layout::of(&r.fields);
    let base = r.seal(&valid_stream(USER, &typical_items()));
    const TRUNC: &str = "header is truncated";
    const MAGIC: &str = "not a zeta-creds blob (bad magic bytes)";
    const UUID_BAD: &str = "header field `uuid` is invalid";
    const TOOL_BAD: &str = "header field `tool_version` is invalid";
    const PERSONA_BAD: &str = "header field `persona` is invalid";

    // Magic and version (§1).
    kit.header("header_empty_file", TRUNC, "an empty file", Vec::new());
    kit.header(
        "header_magic_truncated",
        TRUNC,
        "the first 5 bytes of the magic only",
        base[..5].to_vec(),
    );
    kit.header(
        "header_magic_only",
        TRUNC,
        "the 10-byte magic and nothing else",
        base[..10].to_vec(),
    );
    kit.header(
        "header_magic_last_byte",
        MAGIC,
        "magic \"zeta-credz\"",
        patched(&base, |b| b[9] = b'z'),
    );
    kit.header(
        "header_magic_first_byte",
        MAGIC,
        "magic \"Zeta-creds\": case matters",
        patched(&base, |b| b[0] = b'Z'),
    );
    kit.header(
        "header_magic_zero",
        MAGIC,
        "ten zero bytes where the magic goes",
        patched(&base, |b| b[..10].fill(0)),
    );
    kit.header(
        "header_magic_short_garbage",
        MAGIC,
        "a 3-byte file that is not a prefix of the magic",
        b"PK\x03".to_vec(),
    );
    kit.header(
        "header_age_file",
        MAGIC,
        "an age v1 scrypt file: never mistaken for a zeta-creds blob",
        b"age-encryption.org/v1\n-> scrypt ICAhISIiIyMkJCUlJiYnJw 10\n".to_vec(),
    );
    for v in [0u8, 3, 255] {
        kit.header(
            &format!("header_version_{v}"),
            &format!("unsupported envelope version {v} (this zeta-creds reads versions 1 and 2)"),
            &format!(
                "version byte {v}: an unknown version is refused before any later byte is read"
            ),
            patched(&base, |b| b[Layout::VERSION] = v),
        );
    }
    kit.header(
        "header_version_3_then_garbage",
        "unsupported envelope version 3",
        "version 3 followed by bytes that are no header at all: nothing after the version is interpreted",
        patched(&base[..11], |b| {
            b[Layout::VERSION] = 3;
            b.extend_from_slice(&[0xff; 40]);
        }),
    );

    // Truncated inside or right after each field.
    let cuts: [(&str, usize, &str); 14] = [
        (
            "after_version",
            Layout::UUID_LEN,
            "right after the version byte",
        ),
        ("after_uuid_len", Layout::UUID, "right after uuid_len"),
        ("in_uuid", Layout::UUID + 3, "after 3 of the 9 uuid bytes"),
        ("before_log_n", lay.log_n(), "right before log_n"),
        ("in_salt", lay.salt() + 8, "in the middle of the salt"),
        (
            "in_wrapped_key",
            lay.wrapped_key() + 47,
            "one byte short of the end of the wrapped key",
        ),
        (
            "in_generation",
            lay.generation() + 4,
            "in the middle of generation",
        ),
        (
            "in_created",
            lay.created() + 7,
            "one byte short of the end of created",
        ),
        ("before_tool_len", lay.tool_len(), "right before tool_len"),
        ("in_tool", lay.tool() + 2, "in the middle of tool_version"),
        (
            "before_persona_len",
            lay.persona_len(),
            "right before persona_len",
        ),
        (
            "in_nonce",
            lay.nonce() + 8,
            "in the middle of the payload nonce",
        ),
        (
            "before_mac",
            lay.mac(),
            "after the payload nonce, with no MAC",
        ),
        (
            "in_mac",
            lay.payload() - 1,
            "one byte short of the end of the MAC",
        ),
    ];
    for (what, at, comment) in cuts {
        kit.header(
            &format!("header_truncated_{what}"),
            TRUNC,
            &format!("the blob ends {comment} (byte {at})"),
            base[..at].to_vec(),
        );
    }

    // host_len and host (§2, §2.2).
    const HOST_BAD: &str = "header field `host` is invalid";
    kit.header(
        "header_truncated_in_host",
        TRUNC,
        "the blob ends after 2 of the 5 host bytes",
        base[..lay.host() + 2].to_vec(),
    );
    kit.header(
        "header_host_len_0",
        HOST_BAD,
        "host_len 0 and no host bytes: a version 2 header names its host",
        patched(&base, |b| {
            b[lay.host_len()] = 0;
            b.drain(lay.host()..lay.nonce());
        }),
    );
    kit.header(
        "header_host_len_65",
        HOST_BAD,
        "host_len 65 followed by 65 valid host characters: one too many",
        patched(&base, |b| {
            b[lay.host_len()] = 65;
            b.splice(lay.host()..lay.nonce(), [b'a'; 65]);
        }),
    );
    kit.header(
        "header_host_bad_character",
        HOST_BAD,
        "host \"al_ha\": '_' is outside [a-z0-9.-]",
        patched(&base, |b| b[lay.host() + 2] = b'_'),
    );
    kit.header(
        "header_host_uppercase",
        HOST_BAD,
        "host \"Alpha\": a stored host must already be lower-cased",
        patched(&base, |b| b[lay.host()] = b'A'),
    );

    // uuid_len and uuid (§2, §2.1).
    kit.header(
        "header_uuid_len_0",
        UUID_BAD,
        "uuid_len 0 and no uuid bytes",
        patched(&base, |b| {
            b[Layout::UUID_LEN] = 0;
            b.drain(Layout::UUID..lay.log_n());
        }),
    );
    kit.header(
        "header_uuid_len_65",
        UUID_BAD,
        "uuid_len 65 followed by 65 valid uuid characters, one over the maximum",
        patched(&base, |b| {
            b[Layout::UUID_LEN] = 65;
            b.splice(Layout::UUID..lay.log_n(), [b'a'; 65]);
        }),
    );
    kit.header(
        "header_uuid_len_255",
        UUID_BAD,
        "uuid_len 255 followed by 255 valid uuid characters",
        patched(&base, |b| {
            b[Layout::UUID_LEN] = 255;
            b.splice(Layout::UUID..lay.log_n(), [b'a'; 255]);
        }),
    );
    kit.header(
        "header_uuid_len_plus_1",
        UUID_BAD,
        "uuid_len 10 for the 9-byte uuid: the uuid swallows log_n (0x0a), not a uuid character",
        patched(&base, |b| b[Layout::UUID_LEN] = 10),
    );
    kit.header(
        "header_uuid_len_minus_1",
        "work factor 52 is outside the range this format allows (10..=22)",
        "uuid_len 8 for the 9-byte uuid: the last uuid byte '4' (0x34 = 52) is read as log_n",
        patched(&base, |b| b[Layout::UUID_LEN] = 8),
    );
    kit.header(
        "header_uuid_upper_case",
        UUID_BAD,
        "uuid \"ABCD-1234\" in the header: a stored uuid must already be normalized",
        patched(&base, |b| {
            b[Layout::UUID..Layout::UUID + 4].copy_from_slice(b"ABCD")
        }),
    );
    kit.header(
        "header_uuid_underscore",
        UUID_BAD,
        "uuid \"abcd_1234\": '_' is outside [0-9a-z-]",
        patched(&base, |b| b[Layout::UUID + 4] = b'_'),
    );
    kit.header(
        "header_uuid_nul",
        UUID_BAD,
        "a NUL byte inside the uuid",
        patched(&base, |b| b[Layout::UUID + 4] = 0),
    );
    kit.header(
        "header_uuid_non_ascii",
        UUID_BAD,
        "a 0xff byte inside the uuid (not UTF-8)",
        patched(&base, |b| b[Layout::UUID] = 0xff),
    );
    kit.header(
        "header_uuid_space",
        UUID_BAD,
        "uuid \" bcd-1234\": a stored uuid is never trimmed",
        patched(&base, |b| b[Layout::UUID] = b' '),
    );

    // tool_len and tool_version.
    kit.header(
        "header_tool_len_0",
        TOOL_BAD,
        "tool_len 0",
        patched(&base, |b| {
            b[lay.tool_len()] = 0;
            b.drain(lay.tool()..lay.persona_len());
        }),
    );
    kit.header(
        "header_tool_len_65",
        TOOL_BAD,
        "tool_len 65 followed by 65 printable bytes, one over the maximum",
        patched(&base, |b| {
            b[lay.tool_len()] = 65;
            b.splice(lay.tool()..lay.persona_len(), [b'v'; 65]);
        }),
    );
    kit.header(
        "header_tool_len_255",
        TOOL_BAD,
        "tool_len 255 followed by 255 printable bytes",
        patched(&base, |b| {
            b[lay.tool_len()] = 255;
            b.splice(lay.tool()..lay.persona_len(), [b'v'; 255]);
        }),
    );
    kit.header(
        "header_tool_len_plus_1",
        TOOL_BAD,
        "tool_len 6 for \"0.1.0\": tool_version swallows persona_len (0x00), not printable",
        patched(&base, |b| b[lay.tool_len()] = 6),
    );
    kit.header(
        "header_tool_len_minus_1",
        PERSONA_BAD,
        "tool_len 4 for \"0.1.0\": the final '0' (48) is read as persona_len and 48 bytes of nonce, MAC and payload as the persona",
        patched(&base, |b| b[lay.tool_len()] = 4),
    );
    kit.header(
        "header_tool_space",
        TOOL_BAD,
        "tool_version \"0.1 0\": 0x20 is outside 0x21..=0x7e",
        patched(&base, |b| b[lay.tool() + 3] = b' '),
    );
    kit.header(
        "header_tool_del",
        TOOL_BAD,
        "tool_version with 0x7f, one above the printable range",
        patched(&base, |b| b[lay.tool() + 3] = 0x7f),
    );
    kit.header(
        "header_tool_non_ascii",
        TOOL_BAD,
        "tool_version with 0xc3, a UTF-8 lead byte",
        patched(&base, |b| b[lay.tool()] = 0xc3),
    );

    // persona_len and persona.
    let mut ops = Recipe::a();
    ops.fields.persona = "ops".into();
    let ops_blob = ops.seal(&valid_stream(USER, &typical_items()));
    let ol = Layout::of(&ops.fields);
    kit.header(
        "header_persona_len_65",
        PERSONA_BAD,
        "persona_len 65 followed by 65 valid persona bytes, one over the maximum",
        patched(&base, |b| {
            b[lay.persona_len()] = 65;
            b.splice(lay.persona()..lay.persona(), [b'p'; 65]);
        }),
    );
    kit.header(
        "header_persona_len_255",
        PERSONA_BAD,
        "persona_len 255: refused before 255 bytes are read",
        patched(&base, |b| b[lay.persona_len()] = 255),
    );
    kit.header(
        "header_persona_upper_case",
        PERSONA_BAD,
        "persona \"Ops\": only [a-z0-9_-]",
        patched(&ops_blob, |b| b[ol.persona()] = b'O'),
    );
    kit.header(
        "header_persona_dot",
        PERSONA_BAD,
        "persona \"o.s\": '.' is not allowed in a persona",
        patched(&ops_blob, |b| b[ol.persona() + 1] = b'.'),
    );
    kit.header(
        "header_persona_non_ascii",
        PERSONA_BAD,
        "persona with a 0xff byte (not UTF-8)",
        patched(&ops_blob, |b| b[ol.persona() + 2] = 0xff),
    );
}

fn work_factor_cases(kit: &mut Kit) {
    let r = Recipe::a();
    let lay = Layout::of(&r.fields);
    let base = r.seal(&valid_stream(USER, &typical_items()));
    for n in [0u8, 9, 23, 255] {
        kit.header(
            &format!("header_work_factor_{n}"),
            &format!("work factor {n} is outside the range this format allows (10..=22)"),
            &format!("log_n {n}, outside the format's 10..=22: refused before any scrypt work"),
            patched(&base, |b| b[lay.log_n()] = n),
        );
    }
    for n in [21u8, 22] {
        kit.header(
            &format!("header_work_factor_{n}_over_default_cap"),
            &format!("work factor {n} exceeds the cap 20"),
            &format!(
                "log_n {n} is in the format's range but above the default --max-work-factor 20: refused before scrypt would take {} MiB",
                (1u64 << n) / 1024
            ),
            patched(&base, |b| b[lay.log_n()] = n),
        );
    }
    let mut eleven = Recipe::a();
    eleven.fields.log_n = 11;
    kit.header(
        "header_work_factor_11_over_cap_10",
        "work factor 11 exceeds the cap 10",
        "a genuine blob at log_n 11 read with --max-work-factor 10",
        eleven.seal(&valid_stream(USER, &typical_items())),
    )
    .max_work_factor = 10;
}

fn unlock_cases(kit: &mut Kit) {
    let r = Recipe::a();
    let lay = Layout::of(&r.fields);
    let base = r.seal(&valid_stream(USER, &typical_items()));

    // Binding (exit 4): refused before the passphrase is used.
    kit.push(
        "binding_other_stick",
        Expect::Binding,
        "blob is bound to USB abcd-1234, not to ef01-5678",
        "a genuine blob bound to abcd-1234 read on stick ef01-5678",
        base.clone(),
    )
    .usb_uuid = OTHER_UUID.into();
    kit.push(
        "binding_uuid_edited_in_the_clear",
        Expect::Binding,
        "blob is bound to USB abcd-1235, not to abcd-1234",
        "the clear uuid edited to abcd-1235, read on the stick the blob was sealed for",
        patched(&base, |b| b[lay.log_n() - 1] = b'5'),
    );
    kit.push(
        "binding_other_host",
        Expect::Binding,
        "blob was sealed for host alpha, not for this host beta",
        "the fleet swap: host alpha's genuine blob restored on host beta, same stick, same passphrase",
        base.clone(),
    )
    .host = "beta".into();
    kit.push(
        "binding_host_edited_in_the_clear",
        Expect::Binding,
        "blob was sealed for host alphb, not for this host alpha",
        "the clear host edited to alphb, restored on the host the blob was sealed for",
        patched(&base, |b| b[lay.nonce() - 1] = b'b'),
    );
    let mut v1 = Recipe::a();
    v1.fields.host = None;
    kit.push(
        "binding_v1_no_host",
        Expect::Binding,
        "blob records no host (envelope version 1)",
        "a genuine version 1 blob (no host field) restored on host alpha: refused like another host's, before the passphrase is read",
        v1.seal(&valid_stream(USER, &typical_items())),
    );
    kit.push(
        "binding_uuid_edited_longer",
        Expect::Binding,
        "blob is bound to USB abcd-12345, not to abcd-1234",
        "the clear uuid edited to abcd-12345 (uuid_len 10 and one byte inserted)",
        patched(&base, |b| {
            b[Layout::UUID_LEN] = 10;
            b.insert(lay.log_n(), b'5');
        }),
    );

    // No match (exit 3).
    const WRONG: &str = "wrong passphrase";
    let nm = |kit: &mut Kit, name: &str, comment: &str, blob: Vec<u8>| -> String {
        kit.push(name, Expect::NoMatch, WRONG, comment, blob);
        name.to_string()
    };
    nm(
        kit,
        "no_match_uuid_edited_in_the_clear",
        "the clear uuid edited to abcd-1235 and read on a stick abcd-1235: the KEK still binds abcd-1234",
        patched(&base, |b| b[lay.log_n() - 1] = b'5'),
    );
    kit.cases.last_mut().unwrap().usb_uuid = "abcd-1235".into();
    nm(
        kit,
        "no_match_host_edited_in_the_clear",
        "the clear host edited to alphb and restored with --host alphb: the KEK still binds alpha",
        patched(&base, |b| b[lay.nonce() - 1] = b'b'),
    );
    kit.cases.last_mut().unwrap().host = "alphb".into();
    nm(
        kit,
        "no_match_wrong_passphrase",
        "the passphrase \"correct horse battery stapler\"",
        base.clone(),
    );
    kit.cases.last_mut().unwrap().passphrase = "correct horse battery stapler".into();
    nm(
        kit,
        "no_match_wrapped_key_first_byte",
        "the first byte of the wrapped key XOR 0x01",
        patched(&base, |b| b[lay.wrapped_key()] ^= 0x01),
    );
    nm(
        kit,
        "no_match_wrapped_key_last_ciphertext_byte",
        "the last ciphertext byte of the wrapped key (byte 31) XOR 0x80",
        patched(&base, |b| b[lay.wrapped_key() + 31] ^= 0x80),
    );
    nm(
        kit,
        "no_match_wrapped_key_tag",
        "the last byte of the wrapped key's Poly1305 tag XOR 0x01",
        patched(&base, |b| b[lay.wrapped_key() + 47] ^= 0x01),
    );
    nm(
        kit,
        "no_match_wrapped_key_zero",
        "the wrapped key replaced by 48 zero bytes",
        patched(&base, |b| b[lay.wrapped_key()..lay.generation()].fill(0)),
    );
    nm(
        kit,
        "no_match_salt_flipped",
        "the first salt byte XOR 0x01: a different KEK",
        patched(&base, |b| b[lay.salt()] ^= 0x01),
    );
    nm(
        kit,
        "no_match_work_factor_changed",
        "log_n rewritten from 10 to 11 (within the cap): a different KEK",
        patched(&base, |b| b[lay.log_n()] = 11),
    );
    let b_blob = Recipe::new(SEED_B).seal(&valid_stream(USER, &typical_items()));
    let bl = Layout::of(&Recipe::new(SEED_B).fields);
    nm(
        kit,
        "no_match_wrapped_key_from_other_blob",
        "the wrapped key of blob B (same passphrase and stick, another salt) spliced into blob A",
        patched(&base, |b| {
            b[lay.wrapped_key()..lay.generation()]
                .copy_from_slice(&b_blob[bl.wrapped_key()..bl.generation()])
        }),
    );

    // HMAC failure (exit 5): the file key unwraps, the header MAC does not hold.
    const MAC: &str = "header MAC does not match";
    let hm = |kit: &mut Kit, name: &str, comment: &str, blob: Vec<u8>| {
        kit.push(name, Expect::Hmac, MAC, comment, blob);
    };
    hm(
        kit,
        "hmac_mac_first_byte",
        "the first MAC byte XOR 0x01",
        patched(&base, |b| b[lay.mac()] ^= 0x01),
    );
    hm(
        kit,
        "hmac_mac_last_byte",
        "the last MAC byte XOR 0x80",
        patched(&base, |b| b[lay.payload() - 1] ^= 0x80),
    );
    hm(
        kit,
        "hmac_mac_zero",
        "the MAC replaced by 32 zero bytes",
        patched(&base, |b| b[lay.mac()..lay.payload()].fill(0)),
    );
    hm(
        kit,
        "hmac_generation_raised",
        "generation rewritten from 1 to 2: a forged \"newer\" blob",
        patched(&base, |b| b[lay.generation() + 7] = 2),
    );
    hm(
        kit,
        "hmac_created_flipped",
        "the last byte of created XOR 0x01",
        patched(&base, |b| b[lay.created() + 7] ^= 0x01),
    );
    hm(
        kit,
        "hmac_tool_version_changed",
        "tool_version rewritten from 0.1.0 to 0.1.1",
        patched(&base, |b| b[lay.tool() + 4] = b'1'),
    );
    let mut ops = Recipe::a();
    ops.fields.persona = "ops".into();
    let ol = Layout::of(&ops.fields);
    hm(
        kit,
        "hmac_persona_changed",
        "persona rewritten from \"ops\" to \"dev\", still a valid name",
        patched(&ops.seal(&valid_stream(USER, &typical_items())), |b| {
            b[ol.persona()..ol.persona() + 3].copy_from_slice(b"dev")
        }),
    );
    hm(
        kit,
        "hmac_persona_removed",
        "persona \"ops\" removed (persona_len 0, 3 bytes dropped): a blob for every persona",
        patched(&ops.seal(&valid_stream(USER, &typical_items())), |b| {
            b[ol.persona_len()] = 0;
            b.drain(ol.persona()..ol.host_len());
        }),
    );
    hm(
        kit,
        "hmac_nonce_flipped",
        "the last payload nonce byte XOR 0x01: refused before the payload key exists",
        patched(&base, |b| b[lay.nonce() + 15] ^= 0x01),
    );
}

fn payload_cases(kit: &mut Kit) {
    let a = Recipe::a();
    let b = Recipe::new(SEED_B);
    let header = a.header();
    let hl = header.len();
    let with_payload = |payload: &[u8]| [header.as_slice(), payload].concat();
    const TRUNCATED: &str = "payload is truncated (no final chunk)";
    const TRAILING: &str = "payload has trailing data after the final chunk";
    let chunk_err = |i: usize| format!("payload chunk {i} failed to authenticate");

    // The blobs broken here, all blob A (blob B: the same plaintexts under
    // the same passphrase and stick, its own file key, salt and nonce):
    // S: one short chunk. E: one full final chunk. D: a full chunk and a
    // short final one. T: two full chunks and a short final one. D and T
    // are what the multi-chunk cases need; the corpus stays about 2 MB.
    let small = valid_stream(USER, &typical_items());
    let s = a.seal(&small);
    let exact = valid_stream(USER, &padded_items(CHUNK_SIZE));
    let e = a.seal(&exact);
    let two = valid_stream(USER, &padded_items(CHUNK_SIZE + 100));
    let d = a.seal(&two);
    let three = valid_stream(USER, &padded_items(2 * CHUNK_SIZE + 100));
    let t = a.seal(&three);
    let ranges = |plain_len: usize, blob: &[u8]| -> Vec<std::ops::Range<usize>> {
        let r: Vec<_> = chunk_ranges(plain_len)
            .into_iter()
            .map(|r| hl + r.start..hl + r.end)
            .collect();
        assert_eq!(r.last().unwrap().end, blob.len());
        r
    };
    let dr = ranges(two.len(), &d);
    let tr = ranges(three.len(), &t);
    assert_eq!((dr.len(), tr.len()), (2, 3));
    let reorder = |blob: &[u8], r: &[std::ops::Range<usize>], order: &[usize]| {
        let mut out = header.clone();
        for &i in order {
            out.extend_from_slice(&blob[r[i].clone()]);
        }
        out
    };
    let d_from = |order: &[usize]| reorder(&d, &dr, order);
    let t_from = |order: &[usize]| reorder(&t, &tr, order);
    let mid = |r: &std::ops::Range<usize>| r.start + (r.end - r.start) / 2;

    kit.payload(
        "payload_no_chunks",
        TRUNCATED,
        "a valid header and nothing after it: even an empty payload has one final chunk",
        header.clone(),
    );
    kit.payload(
        "payload_shorter_than_a_tag",
        &chunk_err(0),
        "15 payload bytes, one short of a Poly1305 tag",
        s[..hl + 15].to_vec(),
    );

    // Each chunk flipped.
    kit.payload(
        "payload_chunk_0_flipped",
        &chunk_err(0),
        "the first ciphertext byte of chunk 0 of 2 XOR 0x01",
        patched(&d, |x| x[dr[0].start] ^= 0x01),
    );
    kit.payload(
        "payload_chunk_1_flipped",
        &chunk_err(1),
        "a ciphertext byte in the middle of chunk 1 of 3 (a middle chunk) XOR 0x01",
        patched(&t, |x| x[mid(&tr[1])] ^= 0x01),
    );
    kit.payload(
        "payload_final_chunk_flipped",
        &chunk_err(1),
        "the first ciphertext byte of the final chunk (1 of 2) XOR 0x01",
        patched(&d, |x| x[dr[1].start] ^= 0x01),
    );
    kit.payload(
        "payload_only_chunk_tag_flipped",
        &chunk_err(0),
        "the last tag byte of the only chunk XOR 0x80",
        patched(&s, |x| {
            let last = x.len() - 1;
            x[last] ^= 0x80
        }),
    );
    kit.payload(
        "payload_chunk_0_tag_flipped",
        &chunk_err(0),
        "the first tag byte of chunk 0 of 2 XOR 0xff",
        patched(&d, |x| x[dr[0].end - TAG_LEN] ^= 0xff),
    );
    // Each chunk dropped.
    kit.payload(
        "payload_chunk_0_dropped",
        &chunk_err(0),
        "chunk 0 of 2 removed: the final chunk is read where chunk 0 (counter 0) must be",
        d_from(&[1]),
    );
    kit.payload(
        "payload_chunk_1_dropped",
        &chunk_err(1),
        "chunk 1 of 3 (a middle chunk) removed: the final chunk is read as chunk 1",
        t_from(&[0, 2]),
    );
    kit.payload(
        "payload_final_chunk_dropped",
        TRUNCATED,
        "the final chunk of 2 removed: a middle chunk, then end of input",
        d_from(&[0]),
    );
    // Each chunk duplicated.
    kit.payload(
        "payload_chunk_0_duplicated",
        &chunk_err(1),
        "chunk 0 of 2 repeated: 0 0 1",
        d_from(&[0, 0, 1]),
    );
    kit.payload(
        "payload_final_chunk_duplicated",
        &chunk_err(1),
        "the short final chunk repeated: 0 1 1, read as one longer final chunk",
        d_from(&[0, 1, 1]),
    );
    // Swapped.
    kit.payload(
        "payload_chunks_0_1_swapped",
        &chunk_err(0),
        "the two chunks of D swapped: 1 0",
        d_from(&[1, 0]),
    );
    kit.payload(
        "payload_chunks_1_2_swapped",
        &chunk_err(1),
        "the middle and final chunks of 3 swapped: 0 2 1",
        t_from(&[0, 2, 1]),
    );
    // Truncated in the middle of each chunk.
    kit.payload(
        "payload_truncated_mid_chunk_0",
        &chunk_err(0),
        "the blob ends halfway through chunk 0 of 2, which is then read as a short final chunk",
        d[..mid(&dr[0])].to_vec(),
    );
    kit.payload(
        "payload_truncated_mid_chunk_1",
        &chunk_err(1),
        "the blob ends halfway through chunk 1 of 3 (a middle chunk)",
        t[..mid(&tr[1])].to_vec(),
    );
    kit.payload(
        "payload_truncated_mid_final_chunk",
        &chunk_err(1),
        "the blob ends halfway through the final chunk (1 of 2)",
        d[..mid(&dr[1])].to_vec(),
    );
    kit.payload(
        "payload_truncated_last_byte",
        &chunk_err(0),
        "the only chunk (short, final) loses its last byte",
        s[..s.len() - 1].to_vec(),
    );
    // Final flag missing, or on the wrong chunk.
    kit.payload(
        "payload_last_flag_missing_short",
        &chunk_err(0),
        "the only chunk is short but sealed with flag 0x00: a short chunk can only be final",
        with_payload(&a.chunk(0, false, &small)),
    );
    kit.payload(
        "payload_last_flag_missing_full",
        TRUNCATED,
        "exactly 65536 bytes sealed as a middle chunk (flag 0x00), then end of input",
        with_payload(&a.chunk(0, false, &exact)),
    );
    kit.payload(
        "payload_last_flag_missing_second",
        &chunk_err(1),
        "the final chunk of 2 (short) sealed with flag 0x00",
        [
            d[..dr[1].start].to_vec(),
            a.chunk(1, false, &two[CHUNK_SIZE..]),
        ]
        .concat(),
    );
    kit.payload(
        "payload_final_flag_on_first_chunk",
        TRAILING,
        "chunk 0 of 2 sealed with the final flag: a full final chunk, then more data",
        [
            header.clone(),
            a.chunk(0, true, &two[..CHUNK_SIZE]),
            d[dr[1].clone()].to_vec(),
        ]
        .concat(),
    );
    kit.payload(
        "payload_counter_skipped",
        &chunk_err(1),
        "the final chunk of 2 sealed with counter 2 instead of 1",
        [
            d[..dr[1].start].to_vec(),
            a.chunk(2, true, &two[CHUNK_SIZE..]),
        ]
        .concat(),
    );
    // Extra chunk after the last, and trailing bytes.
    kit.payload(
        "payload_extra_chunk_after_full_final",
        TRAILING,
        "a correctly sealed chunk with counter 1 after a full final chunk",
        [e.clone(), a.chunk(1, true, b"more")].concat(),
    );
    kit.payload(
        "payload_extra_chunk_after_short_final",
        &chunk_err(0),
        "a correctly sealed chunk with counter 1 after a short final chunk: read as part of it",
        [s.clone(), a.chunk(1, true, b"more")].concat(),
    );
    kit.payload(
        "payload_trailing_byte_after_short_final",
        &chunk_err(0),
        "one 0x00 byte after a short final chunk",
        patched(&s, |x| x.push(0)),
    );
    kit.payload(
        "payload_trailing_bytes_after_short_final",
        &chunk_err(0),
        "100 bytes after a short final chunk",
        patched(&s, |x| x.extend_from_slice(&[0x5a; 100])),
    );
    kit.payload(
        "payload_trailing_byte_after_full_final",
        TRAILING,
        "one 0x00 byte after a full final chunk",
        patched(&e, |x| x.push(0)),
    );
    kit.payload(
        "payload_last_chunk_empty_after_full",
        "payload ends in an empty final chunk after data",
        "a full middle chunk and an empty final chunk: the final chunk may be empty only if the whole payload is",
        [
            header.clone(),
            a.chunk(0, false, &exact),
            a.chunk(1, true, b""),
        ]
        .concat(),
    );
    // Spliced from blob B.
    let db = b.seal(&two);
    let tb = b.seal(&three);
    assert_eq!(b.header().len(), hl);
    kit.payload(
        "payload_chunk_0_spliced_from_other_blob",
        &chunk_err(0),
        "chunk 0 of 2 replaced by chunk 0 of blob B (same passphrase, stick and plaintext; its own file key)",
        patched(&d, |x| x[dr[0].clone()].copy_from_slice(&db[dr[0].clone()])),
    );
    kit.payload(
        "payload_chunk_1_spliced_from_other_blob",
        &chunk_err(1),
        "chunk 1 of 3 (a middle chunk) replaced by chunk 1 of blob B",
        patched(&t, |x| x[tr[1].clone()].copy_from_slice(&tb[tr[1].clone()])),
    );
    kit.payload(
        "payload_final_chunk_spliced_from_other_blob",
        &chunk_err(1),
        "the final chunk of 2 replaced by blob B's final chunk",
        patched(&d, |x| x[dr[1].clone()].copy_from_slice(&db[dr[1].clone()])),
    );
    kit.payload(
        "payload_whole_spliced_from_other_blob",
        &chunk_err(0),
        "blob A's header with blob B's whole payload",
        [header.clone(), b.seal(&small)[hl..].to_vec()].concat(),
    );
    let mut other_nonce = Recipe::a();
    other_nonce.nonce[0] ^= 0x01;
    kit.payload(
        "payload_sealed_under_other_nonce",
        &chunk_err(0),
        "the payload sealed under the payload key of a different nonce than the header's (same file key)",
        with_payload(&other_nonce.chunk(0, true, &small)),
    );
}

fn entries_cases(kit: &mut Kit) {
    // Every bad record comes after two valid entries (a root file and a
    // home file), so they have been staged when the bad one is read: the
    // runner checks that they were rolled back.
    let prefix = || {
        vec![
            Item::file(Anchor::Root, "etc/kit/staged-first", 0o600, b"staged\n")
                .raw()
                .encode(),
            Item::file(
                Anchor::Home,
                ".config/kit/staged-second",
                0o600,
                b"staged\n",
            )
            .raw()
            .encode(),
        ]
    };
    let bad = |record: RawEntry| {
        let mut records = prefix();
        records.push(record.encode());
        RawStream::new(USER, records).encode()
    };
    let file = hosts_yml().raw();
    let root_file = host_key().raw();
    const INVALID: &str = "entry stream is invalid: ";
    let err = |s: &str| format!("{INVALID}{s}");

    kit.entries(
        "entries_empty_plaintext",
        &err("entry stream ends early"),
        "a valid STREAM holding an empty plaintext, which is no entry stream",
        Vec::new(),
    );
    // Lengths.
    kit.entries(
        "entries_path_len_0",
        &err("path length 0 outside 1..=4096"),
        "path_len 0",
        bad(RawEntry {
            path: Vec::new(),
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_path_len_4097",
        &err("path length 4097 outside 1..=4096"),
        "path_len 4097 with 4097 path bytes, one over the maximum",
        bad(RawEntry {
            path: [b"etc/".as_slice(), &[b'p'; 4093]].concat(),
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_path_len_65535",
        &err("path length 65535 outside 1..=4096"),
        "path_len 0xffff followed by a short path: refused before the path is read",
        bad(RawEntry {
            path_len: Some(0xffff),
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_path_len_past_the_end",
        &err("entry stream ends early"),
        "the last record declares path_len 4000 and the plaintext ends after 10 path bytes",
        {
            let mut s = RawStream::new(USER, prefix()).encode();
            s.truncate(s.len() - 9); // drop the end marker
            s.extend_from_slice(&[0x01, 0x00, 0x00]);
            s.extend_from_slice(&4000u16.to_be_bytes());
            s.extend_from_slice(b"etc/kit/pa");
            s
        },
    );
    kit.entries(
        "entries_owner_len_0",
        &err("etc/kit/ssh_host_ed25519_key: owner name \"\" must be 1 to 32 bytes"),
        "owner_len 0",
        bad(RawEntry {
            owner: Vec::new(),
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_owner_len_33",
        &err(&format!(
            "etc/kit/ssh_host_ed25519_key: owner name \"{}\" must be 1 to 32 bytes",
            "o".repeat(33)
        )),
        "owner_len 33, one over the name limit",
        bad(RawEntry {
            owner: vec![b'o'; 33],
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_group_len_33",
        &err(&format!(
            "etc/kit/ssh_host_ed25519_key: group name \"{}\" must be 1 to 32 bytes",
            "g".repeat(33)
        )),
        "group_len 33, one over the name limit",
        bad(RawEntry {
            group: vec![b'g'; 33],
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_owner_len_255",
        &err(&format!(
            "etc/kit/ssh_host_ed25519_key: owner name \"{}\" must be 1 to 32 bytes",
            "o".repeat(255)
        )),
        "owner_len 255 with 255 name bytes",
        bad(RawEntry {
            owner: vec![b'o'; 255],
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_user_len_33",
        &err("user name length 33 exceeds 32"),
        "user_len 33 in the preamble: refused before the user is read",
        RawStream {
            user: vec![b'u'; 33],
            ..RawStream::new(USER, prefix())
        }
        .encode(),
    );
    kit.entries(
        "entries_user_len_past_the_end",
        &err("entry stream ends early"),
        "user_len 20 and a plaintext of 5 bytes",
        [&[20u8][..], b"zeta"].concat(),
    );
    kit.entries(
        "entries_truncated_in_digest",
        &err("entry stream ends early"),
        "the plaintext ends in the middle of the last record's SHA-256",
        {
            let mut s = RawStream::new(USER, prefix()).encode();
            s.truncate(s.len() - 9);
            let rec = root_file.encode();
            let digest_end = rec.len() - root_file.body.len();
            s.extend_from_slice(&rec[..digest_end - 16]);
            s
        },
    );
    // Paths.
    let path_cases: [(&str, &[u8], u8, &str, &str); 9] = [
        (
            "entries_path_dotdot",
            b"../../etc/shadow",
            1,
            "path \"../../etc/shadow\" has a \"..\" component",
            "a home entry \"../../etc/shadow\"",
        ),
        (
            "entries_path_inner_dotdot",
            b"etc/kit/../../../outside",
            0,
            "path \"etc/kit/../../../outside\" has a \"..\" component",
            "a root entry \"etc/kit/../../../outside\"",
        ),
        (
            "entries_path_dotdot_alone",
            b"..",
            0,
            "path \"..\" has a \"..\" component",
            "a root entry \"..\"",
        ),
        (
            "entries_path_dot",
            b"./etc/kit/x",
            0,
            "path \"./etc/kit/x\" has a \".\" component",
            "a root entry \"./etc/kit/x\"",
        ),
        (
            "entries_path_absolute",
            b"/etc/shadow",
            0,
            "path \"/etc/shadow\" is absolute",
            "a root entry \"/etc/shadow\"",
        ),
        (
            "entries_path_empty_component",
            b"etc//kit",
            0,
            "path \"etc//kit\" has an empty component",
            "a root entry \"etc//kit\"",
        ),
        (
            "entries_path_trailing_slash",
            b"etc/kit/",
            0,
            "path \"etc/kit/\" has an empty component",
            "a root entry \"etc/kit/\"",
        ),
        (
            "entries_path_nul",
            b"etc/kit/x\0.pub",
            0,
            "path \"etc/kit/x\\0.pub\" contains NUL",
            "a root entry with a NUL byte in its path",
        ),
        (
            "entries_path_not_utf8",
            b"etc/kit/\xff\xfe",
            0,
            "path is not UTF-8",
            "a root entry whose path bytes are not UTF-8",
        ),
    ];
    for (name, path, anchor, error, comment) in path_cases {
        kit.entries(
            name,
            &err(error),
            comment,
            bad(RawEntry {
                anchor,
                path: path.to_vec(),
                ..root_file.clone()
            }),
        );
    }
    // Sizes and digests.
    kit.entries(
        "entries_size_longer_than_body",
        &err("/etc/kit/ssh_host_ed25519_key: body ends before its declared size"),
        "size declares 100 bytes more than the body: the end marker is read as body, then the plaintext ends",
        bad(RawEntry {
            size: root_file.body.len() as u64 + 100,
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_size_shorter_than_body",
        &err("unknown record tag 0x58"),
        "size declares 1 byte less than the body: its last byte ('X' = 0x58) is read as the next record tag",
        bad(RawEntry {
            size: 5,
            sha256: Sha256::digest(b"abcde").into(),
            body: b"abcdeX".to_vec(),
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_size_over_limit",
        &err("etc/kit/ssh_host_ed25519_key: size 68719476737 exceeds 68719476736"),
        "size 2^36 + 1, one over the per-entry limit: refused before any body byte is read",
        bad(RawEntry {
            size: (1 << 36) + 1,
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_size_u64_max",
        &err("etc/kit/ssh_host_ed25519_key: size 18446744073709551615 exceeds 68719476736"),
        "size 2^64 - 1",
        bad(RawEntry {
            size: u64::MAX,
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_size_at_limit_short_body",
        &err("/etc/kit/ssh_host_ed25519_key: body ends before its declared size"),
        "size 2^36 exactly (allowed) with a 5-byte body: the stream ends long before; nothing of that size is allocated",
        bad(RawEntry {
            size: 1 << 36,
            body: b"short".to_vec(),
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_sha256_mismatch",
        &err("/etc/kit/ssh_host_ed25519_key: SHA-256 does not match its contents"),
        "the body's last byte changed after its digest was taken",
        bad(RawEntry {
            body: patched(&root_file.body, |b| {
                let last = b.len() - 1;
                b[last] ^= 0x01;
            }),
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_sha256_mismatch_empty_body",
        &err("/etc/kit/ssh_host_ed25519_key: SHA-256 does not match its contents"),
        "an empty file whose digest is not SHA-256(\"\")",
        bad(RawEntry {
            size: 0,
            body: Vec::new(),
            sha256: [0x42; 32],
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_sha256_zero",
        &err("/etc/kit/ssh_host_ed25519_key: SHA-256 does not match its contents"),
        "a file with an all-zero digest (a directory's)",
        bad(RawEntry {
            sha256: [0; 32],
            ..root_file.clone()
        }),
    );
    // Duplicates.
    kit.entries(
        "entries_duplicate_path",
        &err("duplicate entry ~/.config/gh/hosts.yml"),
        "the same home path twice",
        {
            let mut records = prefix();
            records.push(file.encode());
            records.push(file.encode());
            RawStream::new(USER, records).encode()
        },
    );
    kit.entries(
        "entries_duplicate_path_file_and_dir",
        &err("duplicate entry /etc/kit/staged-first"),
        "a directory entry at the path of an earlier file entry",
        bad(RawEntry {
            kind: 1,
            path: b"etc/kit/staged-first".to_vec(),
            size: 0,
            sha256: [0; 32],
            body: Vec::new(),
            mode: 0o700,
            ..root_file.clone()
        }),
    );
    // Unknown kind, anchor and tag.
    for (name, kind, comment) in [
        (
            "entries_unknown_kind_2",
            2u8,
            "kind 0x02 (say, a symlink), which v1 does not define",
        ),
        ("entries_unknown_kind_255", 255, "kind 0xff"),
    ] {
        kit.entries(
            name,
            &err(&format!("unknown entry kind 0x{kind:02x}")),
            comment,
            bad(RawEntry {
                kind,
                ..root_file.clone()
            }),
        );
    }
    kit.entries(
        "entries_unknown_anchor",
        &err("unknown anchor 0x02"),
        "anchor 0x02, which v1 does not define",
        bad(RawEntry {
            anchor: 2,
            ..root_file.clone()
        }),
    );
    for (name, tag) in [
        ("entries_unknown_tag_2", 2u8),
        ("entries_unknown_tag_255", 255),
    ] {
        kit.entries(
            name,
            &err(&format!("unknown record tag 0x{tag:02x}")),
            &format!(
                "record tag 0x{tag:02x} where an entry (0x01) or the end marker (0x00) must be"
            ),
            bad(RawEntry {
                tag,
                ..root_file.clone()
            }),
        );
    }
    // End marker.
    kit.entries(
        "entries_end_count_high",
        &err("end marker counts 1000000 entries, stream had 2"),
        "two entries and an end marker that declares 10^6",
        RawStream {
            end_count: Some(1_000_000),
            ..RawStream::new(USER, prefix())
        }
        .encode(),
    );
    kit.entries(
        "entries_end_count_low",
        &err("end marker counts 1 entries, stream had 2"),
        "two entries and an end marker that counts 1",
        RawStream {
            end_count: Some(1),
            ..RawStream::new(USER, prefix())
        }
        .encode(),
    );
    kit.entries(
        "entries_end_count_max",
        &err("end marker counts 18446744073709551615 entries"),
        "an end marker that counts 2^64 - 1",
        RawStream {
            end_count: Some(u64::MAX),
            ..RawStream::new(USER, prefix())
        }
        .encode(),
    );
    kit.entries(
        "entries_missing_end_marker",
        &err("entry stream ends early"),
        "the plaintext ends after the last entry's body",
        RawStream {
            end_count: None,
            ..RawStream::new(USER, prefix())
        }
        .encode(),
    );
    kit.entries(
        "entries_end_marker_truncated",
        &err("entry stream ends early"),
        "the end marker's count is 4 of its 8 bytes",
        {
            let mut s = RawStream::new(USER, prefix()).encode();
            s.truncate(s.len() - 4);
            s
        },
    );
    kit.entries(
        "entries_data_after_end",
        &err("data after the end marker"),
        "one 0x00 byte after the end marker",
        RawStream {
            trailing: vec![0],
            ..RawStream::new(USER, prefix())
        }
        .encode(),
    );
    kit.entries(
        "entries_entry_after_end",
        &err("data after the end marker"),
        "a whole valid entry record after the end marker",
        RawStream {
            trailing: root_file.encode(),
            ..RawStream::new(USER, prefix())
        }
        .encode(),
    );
    // Other field bounds.
    kit.entries(
        "entries_mode_over_7777",
        &err("etc/kit/ssh_host_ed25519_key: mode 100600 has bits outside 0o7777"),
        "mode 0o100600 (st_mode with the file-type bits)",
        bad(RawEntry {
            mode: 0o100600,
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_mode_10000",
        &err("etc/kit/ssh_host_ed25519_key: mode 10000 has bits outside 0o7777"),
        "mode 0o10000, one over 0o7777",
        bad(RawEntry {
            mode: 0o10000,
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_dir_with_size",
        &err("etc/kit/d: a directory must have size 0 and a zero digest"),
        "a directory with size 5 and a 5-byte body",
        bad(RawEntry {
            kind: 1,
            path: b"etc/kit/d".to_vec(),
            size: 5,
            body: b"hello".to_vec(),
            sha256: [0; 32],
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_dir_with_digest",
        &err("etc/kit/d: a directory must have size 0 and a zero digest"),
        "a directory with size 0 and the digest of \"\"",
        bad(RawEntry {
            kind: 1,
            path: b"etc/kit/d".to_vec(),
            size: 0,
            body: Vec::new(),
            sha256: Sha256::digest(b"").into(),
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_owner_leading_dash",
        &err("etc/kit/ssh_host_ed25519_key: owner name \"-root\" has characters outside [A-Za-z0-9_.-]"),
        "owner \"-root\": a name may not start with '-'",
        bad(RawEntry {
            owner: b"-root".to_vec(),
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_group_slash",
        &err("etc/kit/ssh_host_ed25519_key: group name \"../wheel\" has characters outside [A-Za-z0-9_.-]"),
        "group \"../wheel\"",
        bad(RawEntry {
            group: b"../wheel".to_vec(),
            ..root_file.clone()
        }),
    );
    kit.entries(
        "entries_user_bad_name",
        &err("user name \"ze ta\" has characters outside [A-Za-z0-9_.-]"),
        "the preamble's user \"ze ta\"",
        RawStream {
            user: b"ze ta".to_vec(),
            ..RawStream::new(USER, prefix())
        }
        .encode(),
    );
}

// ---------------------------------------------------------------------------
// The library agrees with every expectation (checked at generation time).
// ---------------------------------------------------------------------------

/// Decode a case with the crate's API and return the outcome and the
/// error's message: the generator refuses to write a case whose stated
/// class or error text the library does not give.
fn library_outcome(c: &Case) -> (Expect, String) {
    let mut input = &c.blob[..];
    let fail = |e: zeta_creds::envelope::Error| {
        let class = Expect::of_class(e.class())
            .unwrap_or_else(|| panic!("{}: an `Other` error: {e}", c.name));
        (class, e.to_string())
    };
    let header = match Header::read(&mut input) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let uuid = match UsbUuid::parse(&c.usb_uuid) {
        Ok(uuid) => uuid,
        Err(e) => return (Expect::BadUsbUuid, e.to_string()),
    };
    let host = Host::parse(&c.host).unwrap();
    let unlocked = match header.unlock(
        &SecretString::from(c.passphrase.as_str()),
        &Binding {
            usb_uuid: Some(&uuid),
            host: Some(&host),
        },
        c.max_work_factor,
    ) {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    let result = (|| {
        let mut r = EntryReader::new(unlocked.payload_reader(input))?;
        let mut buf = vec![0u8; 8192];
        while r.next_entry()?.is_some() {
            while r.read_body(&mut buf)? != 0 {}
        }
        Ok::<(), zeta_creds::envelope::Error>(())
    })();
    match result {
        Ok(()) => (Expect::Ok, String::new()),
        Err(e) => fail(e),
    }
}

/// The library gives the class and the error text the case states.
fn check_against_library(c: &Case) -> Result<(), String> {
    let (got, message) = library_outcome(c);
    // The CLI says "wrong passphrase for blob ..."; the library error is
    // "wrong passphrase". Everything else is the library's text.
    if got != c.expect || !message.contains(&c.error) {
        return Err(format!(
            "{}: states {} / {:?}, the library gives {} / {message:?}",
            c.name,
            c.expect.as_str(),
            c.error,
            got.as_str()
        ));
    }
    Ok(())
}

/// Before anything is written: every case agrees with the library.
fn check_all_against_library(cases: &[Case]) {
    let problems: Vec<String> = cases
        .iter()
        .filter_map(|c| check_against_library(c).err())
        .collect();
    assert!(
        problems.is_empty(),
        "generator cases disagree with the library:\n  {}",
        problems.join("\n  ")
    );
}

// ---------------------------------------------------------------------------
// Fuzz seeds: a few kit blobs and plaintexts, written with the kit.
// ---------------------------------------------------------------------------

/// `(target, file name, bytes)` of the seed corpus in `fuzz/seeds/`.
fn fuzz_seeds(cases: &[Case]) -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let blob_seeds = [
        "ok_typical",
        "ok_persona_len_64",
        "ok_uuid_len_1",
        "header_version_3",
        "binding_v1_no_host",
        "header_uuid_len_minus_1",
        "header_tool_len_minus_1",
        "hmac_mac_first_byte",
        "payload_last_flag_missing_short",
        "entries_path_dotdot",
        "entries_sha256_mismatch",
    ];
    for name in blob_seeds {
        let c = cases.iter().find(|c| c.name == name).unwrap();
        out.push(("header", format!("{name}.bin"), c.blob.clone()));
        out.push(("decrypt_raw", format!("{name}.bin"), c.blob.clone()));
    }
    // One multi-chunk blob, so that the raw target can reach the STREAM
    // reader's chunk boundaries (and libFuzzer allows inputs that long).
    let two = cases
        .iter()
        .find(|c| c.name == "ok_chunk_plus_one")
        .unwrap();
    out.push((
        "decrypt_raw",
        "ok_chunk_plus_one.bin".into(),
        two.blob.clone(),
    ));
    let plains: [(&str, Vec<u8>); 5] = [
        ("typical", valid_stream(USER, &typical_items())),
        ("no_entries", valid_stream(USER, &[])),
        ("no_user", valid_stream("", &[host_key()])),
        (
            "dir_and_file",
            valid_stream(
                USER,
                &[
                    Item::dir(Anchor::Root, "etc/kit", 0o755),
                    Item::file(Anchor::Root, "etc/kit/a", 0o7777, b"a"),
                ],
            ),
        ),
        (
            "bad_end_count",
            RawStream {
                end_count: Some(3),
                ..RawStream::new(USER, vec![hosts_yml().raw().encode()])
            }
            .encode(),
        ),
    ];
    for (name, plain) in plains {
        out.push(("entries", format!("{name}.bin"), plain.clone()));
        out.push(("decrypt_plaintext", format!("{name}.bin"), plain));
    }
    out.push((
        "decrypt_plaintext",
        "two_chunks.bin".into(),
        valid_stream(USER, &padded_items(CHUNK_SIZE + 100)),
    ));
    out.push((
        "manifest",
        "default.toml".into(),
        MANIFEST_SEED_DEFAULT.as_bytes().to_vec(),
    ));
    out.push((
        "manifest",
        "globs.toml".into(),
        MANIFEST_SEED_GLOBS.as_bytes().to_vec(),
    ));
    out
}

const MANIFEST_SEED_DEFAULT: &str = r#"version = 1
user = "zeta"

[[entry]]
path = "~/.config/gh"
required = true

[[entry]]
path = "~/.codex/auth.json"

[[entry]]
path = "/etc/ssh/ssh_host_ed25519_key"
mode = "0600"
owner = "root"
group = "root"

[[entry]]
path = "/etc/zeta"
"#;

const MANIFEST_SEED_GLOBS: &str = r#"version = 1
user = "zeta"
description = "globs, excludes and personas"

[[entry]]
path = "/etc/ssh/ssh_host_*_key"
personas = ["ops", "dev"]

[[entry]]
path = "~/.claude"
exclude = ["cache", "*.sock", "sessions/*.jsonl", "**/tmp"]
max_size = "10 MiB"
description = "claude code login"

[[entry]]
path = "~/.config/{gh,hub}/hosts.yml"
owner = "1000"
group = "100"
"#;

// ---------------------------------------------------------------------------
// Regeneration and the reproducibility check.
// ---------------------------------------------------------------------------

/// Every case, generated once per test process.
fn generated() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(all_cases)
}

/// With `ZETA_CREDS_REGEN_KIT=1`, before any case runs: check every case
/// against the library, then write every case and every fuzz seed and
/// remove the files the generator no longer knows.
fn regenerate(corpus: &Corpus) {
    let cases = generated();
    check_all_against_library(cases);
    corpus.regenerate(&cases.iter().map(|c| (c.name.clone(), c.encode())).collect());
    let seeds = fuzz_seeds(cases);
    let targets: BTreeSet<&str> = seeds.iter().map(|s| s.0).collect();
    for t in targets {
        let d = fuzz_seeds_dir().join(t);
        if d.exists() {
            fs::remove_dir_all(&d).unwrap();
        }
        fs::create_dir_all(&d).unwrap();
    }
    for (t, name, bytes) in seeds {
        fs::write(fuzz_seeds_dir().join(t).join(name), bytes).unwrap();
    }
}

fn fuzz_seeds_match_generator() {
    let mut problems = Vec::new();
    let seeds = fuzz_seeds(generated());
    for (t, name, bytes) in &seeds {
        let p = fuzz_seeds_dir().join(t).join(name);
        match fs::read(&p) {
            Ok(got) if got == *bytes => {}
            Ok(_) => problems.push(format!("{}: differs", p.display())),
            Err(e) => problems.push(format!("{}: {e}", p.display())),
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        corpus().regen_hint()
    );
}

fn kit_covers_what_issue_9_asks() {
    let cases = generated();
    assert!(cases.len() >= 80, "only {} cases", cases.len());
    for expect in Expect::ALL {
        assert!(
            cases.iter().any(|c| c.expect == expect),
            "no case expects {}",
            expect.as_str()
        );
    }
    for name in [
        "header_work_factor_0",
        "header_work_factor_9",
        "header_work_factor_23",
        "header_work_factor_255",
        "header_magic_last_byte",
        "header_version_0",
        "header_version_3",
        "binding_v1_no_host",
        "header_version_255",
        "hmac_mac_first_byte",
        "no_match_wrapped_key_first_byte",
        "binding_uuid_edited_in_the_clear",
        "no_match_uuid_edited_in_the_clear",
        "payload_chunk_1_flipped",
        "payload_chunk_1_dropped",
        "payload_chunk_0_duplicated",
        "payload_chunks_0_1_swapped",
        "payload_truncated_mid_chunk_1",
        "payload_last_flag_missing_full",
        "payload_extra_chunk_after_full_final",
        "payload_trailing_byte_after_full_final",
        "payload_chunk_1_spliced_from_other_blob",
        "entries_path_len_4097",
        "entries_path_dotdot",
        "entries_path_absolute",
        "entries_size_longer_than_body",
        "entries_sha256_mismatch",
        "entries_duplicate_path",
        "entries_unknown_kind_2",
    ] {
        assert!(
            cases.iter().any(|c| c.name == name),
            "issue 9 asks for {name}"
        );
    }
}

// ---------------------------------------------------------------------------
// Reading a case file, independently of the generator.
// ---------------------------------------------------------------------------

struct KitFile {
    expect: Expect,
    exit_code: i32,
    error: Option<String>,
    passphrase: String,
    usb_uuid: String,
    host: String,
    max_work_factor: u8,
    written: Vec<Written>,
    blob: Vec<u8>,
}

fn parse_case(_name: &str, bytes: &[u8]) -> Result<KitFile, String> {
    let f = corpus::parse(&SCHEMA, bytes)?;
    let written = f
        .all("entry")
        .map(Written::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let expect = Expect::parse(f.need("expect")?).ok_or("unknown `expect`")?;
    let exit_code: i32 = f
        .need("exit code")?
        .parse()
        .map_err(|_| "bad `exit code`")?;
    if exit_code != expect.exit_code() {
        return Err(format!(
            "exit code {exit_code} does not go with expect {:?}",
            expect.as_str()
        ));
    }
    let error = f.get("error").map(|s| s.to_string());
    if error.is_some() == (expect == Expect::Ok) {
        return Err("`error` must be given exactly for failures".into());
    }
    if !written.is_empty() && expect != Expect::Ok {
        return Err("`entry` lines belong to ok cases only".into());
    }
    Ok(KitFile {
        expect,
        exit_code,
        error,
        passphrase: f.need("passphrase")?.into(),
        usb_uuid: f.need("usb uuid")?.into(),
        host: f.need("host")?.into(),
        max_work_factor: f
            .need("max work factor")?
            .parse()
            .map_err(|_| "bad `max work factor`")?,
        written,
        blob: f.blob,
    })
}

// ---------------------------------------------------------------------------
// Running a case through the CLI.
// ---------------------------------------------------------------------------

/// Name → id in a target root's `etc/passwd` or `etc/group`.
fn ids(file: &Path) -> BTreeMap<String, u32> {
    fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.first()?.to_string(), f.get(2)?.parse().ok()?))
        })
        .collect()
}

/// Where an entry lands under the target root (zeta's home is /home/zeta
/// in `common::World`).
fn destination(shown: &str) -> String {
    if let Some(rest) = shown.strip_prefix("~/") {
        format!("home/zeta/{rest}")
    } else {
        shown.strip_prefix('/').unwrap().to_string()
    }
}

/// One node of a [`tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    file_type: String,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    /// SHA-256 of a regular file's contents; `None` for other types, or
    /// for a file this (non-root) test cannot read.
    sha256: Option<[u8; 32]>,
}

/// Every path under `root` (relative, `/`-separated) with its type, mode,
/// owner, size and content digest: like `common::snapshot`, but walked
/// with `openat` one directory at a time, so that it also reads paths
/// longer than PATH_MAX (case `ok_path_len_4096`).
fn tree(root: &Path) -> BTreeMap<String, Node> {
    use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, openat, statat};
    use std::ffi::CString;
    use std::io::Read;
    use std::os::fd::OwnedFd;

    const DIR: OFlags = OFlags::RDONLY
        .union(OFlags::DIRECTORY)
        .union(OFlags::NOFOLLOW)
        .union(OFlags::CLOEXEC);
    fn walk(dir: &OwnedFd, prefix: &str, out: &mut BTreeMap<String, Node>) {
        let mut names: Vec<CString> = Dir::read_from(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_owned())
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .collect();
        names.sort();
        for name in names {
            let st = statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW).unwrap();
            let ft = FileType::from_raw_mode(st.st_mode);
            let text = name.to_string_lossy();
            let rel = if prefix.is_empty() {
                text.into_owned()
            } else {
                format!("{prefix}/{text}")
            };
            let sha256 = (ft == FileType::RegularFile)
                .then(|| {
                    let fd = openat(dir, &name, OFlags::RDONLY | OFlags::NOFOLLOW, Mode::empty())
                        .ok()?;
                    let mut data = Vec::new();
                    std::fs::File::from(fd).read_to_end(&mut data).unwrap();
                    Some(<[u8; 32]>::from(Sha256::digest(&data)))
                })
                .flatten();
            out.insert(
                rel.clone(),
                Node {
                    file_type: format!("{ft:?}"),
                    mode: st.st_mode & 0o7777,
                    uid: st.st_uid,
                    gid: st.st_gid,
                    size: if ft == FileType::RegularFile {
                        st.st_size as u64
                    } else {
                        0
                    },
                    sha256,
                },
            );
            if ft == FileType::Directory {
                let sub = openat(dir, &name, DIR, Mode::empty()).unwrap();
                walk(&sub, &rel, out);
            }
        }
    }
    let fd = rustix::fs::open(root, DIR, Mode::empty()).unwrap();
    let mut out = BTreeMap::new();
    walk(&fd, "", &mut out);
    out
}

/// Paths that differ between two trees (added, removed or changed).
fn changed(before: &BTreeMap<String, Node>, after: &BTreeMap<String, Node>) -> Vec<String> {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| (*k).clone())
        .collect()
}

fn run_case(case: &KitFile) -> Result<(), String> {
    let w = World::new();
    fs::write(w.blob(), &case.blob).unwrap();
    let before = tree(&w.dst());
    let pf = w.pass_file(&case.passphrase);
    let out = w
        .restore_blob(&w.blob())
        .args(["--usb-uuid", &case.usb_uuid])
        .args(["--host", &case.host])
        .args(["--max-work-factor", &case.max_work_factor.to_string()])
        .arg("--passphrase-file")
        .arg(&pf)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let show = || {
        format!(
            "exit {:?}\n--- stderr ---\n{stderr}--- stdout ---\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
        )
    };
    if out.status.code() != Some(case.exit_code) {
        return Err(format!("expected exit {}; {}", case.exit_code, show()));
    }
    // A header or binding failure is found before the passphrase is read,
    // and only a passphrase file the run read is consumed (issue 19 #13).
    let read = !matches!(
        case.expect,
        Expect::Header | Expect::Binding | Expect::BadUsbUuid
    );
    if read && pf.exists() {
        return Err(format!("the passphrase file was not consumed; {}", show()));
    }
    if !read && !pf.exists() {
        return Err(format!(
            "the passphrase file was consumed though never read; {}",
            show()
        ));
    }
    let after = tree(&w.dst());
    if let Some(error) = &case.error {
        if !stderr
            .lines()
            .any(|l| l.starts_with("zeta-creds: error: ") && l.contains(error.as_str()))
        {
            return Err(format!(
                "no `zeta-creds: error:` line contains {error:?}; {}",
                show()
            ));
        }
        let diff = changed(&before, &after);
        if !diff.is_empty() {
            return Err(format!("the target root changed at {diff:?}; {}", show()));
        }
        return Ok(());
    }
    // ok: every entry is in place with its kind, mode, owner and digest ...
    let users = ids(&w.dst().join("etc/passwd"));
    let groups = ids(&w.dst().join("etc/group"));
    let mut expected_paths = BTreeSet::new();
    for e in &case.written {
        let rel = destination(&e.shown);
        let Some(node) = after.get(&rel) else {
            return Err(format!("{} was not written; {}", e.shown, show()));
        };
        let kind_ok = node.file_type
            == match e.kind {
                EntryKind::File => "RegularFile",
                EntryKind::Dir => "Directory",
            };
        let owner_ok =
            users.get(&e.owner) == Some(&node.uid) && groups.get(&e.group) == Some(&node.gid);
        let digest_ok = match (e.sha256, node.sha256) {
            (Some(want), Some(got)) => want == got,
            // A file this unprivileged test cannot read (mode 0).
            (Some(_), None) => !common::is_root(),
            (None, _) => true,
        };
        if !(kind_ok && node.mode == e.mode && owner_ok && digest_ok) {
            return Err(format!(
                "{}: written as {node:?}, expected {e:?} (owner ids {:?}:{:?}); {}",
                e.shown,
                users.get(&e.owner),
                groups.get(&e.group),
                show()
            ));
        }
        // ... and nothing else changed but the entries, the directories
        // above them and the state record.
        expected_paths.insert(rel.clone());
        let mut q = Path::new(&rel);
        while let Some(parent) = q.parent().filter(|p| !p.as_os_str().is_empty()) {
            expected_paths.insert(parent.display().to_string());
            q = parent;
        }
    }
    let unexpected: Vec<String> = changed(&before, &after)
        .into_iter()
        .filter(|p| !expected_paths.contains(p))
        .filter(|p| !(p == "var" || p == "var/lib" || p.starts_with("var/lib/zeta-creds")))
        .collect();
    if !unexpected.is_empty() {
        return Err(format!(
            "unexpected changes in the target root: {unexpected:?}; {}",
            show()
        ));
    }
    Ok(())
}

fn main() {
    let corpus = corpus();
    if corpus.regen_requested() {
        regenerate(&corpus);
    }
    let mut trials: Vec<Trial> = generated()
        .iter()
        .map(|c| {
            Trial::test(
                format!("generator_agrees_with_library::{}", c.name),
                move || Ok(check_against_library(c)?),
            )
        })
        .collect();
    trials.extend(
        corpus.kat_trials(
            "kit_matches_generator",
            "kit_matches_generator",
            generated()
                .iter()
                .map(|c| (c.name.clone(), c.encode()))
                .collect(),
            "tests/kit/ is not what the generator produces",
        ),
    );
    trials.push(corpus.count_trial(80));
    // Issue 9: every case of `tests/kit/`, through `zeta-creds restore`.
    trials.extend(corpus.file_trials(
        "every_kit_case_through_the_cli",
        parse_case,
        |case: &KitFile| run_case(case).map_err(|e| format!("({}) {e}", case.expect.as_str())),
    ));
    trials.push(Trial::test("fuzz_seeds_match_generator", || {
        fuzz_seeds_match_generator();
        Ok(())
    }));
    trials.push(Trial::test("kit_covers_what_issue_9_asks", || {
        kit_covers_what_issue_9_asks();
        Ok(())
    }));
    corpus::run(trials);
}
