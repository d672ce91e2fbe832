//! Test vectors for envelope v1 (docs/FORMAT.md §11).
//!
//! `tests/vectors/` holds one file per vector in the layout of C2SP CCTV's
//! age vectors: `key: value` lines, a blank line, then the blob's bytes.
//! The files are *generated data*; this file is their generator and their
//! checker:
//!
//! * `all_vectors` builds every vector from fixed inputs, through the
//!   public API (`Header::seal_with`, `UnlockedHeader::rewrap_with_salt`,
//!   `EntryWriter`) and, for STREAM faults the API cannot produce, through a
//!   test-only chunk sealer written from FORMAT.md §3 and §4.
//!
//! It runs as a `harness = false` binary (`common/corpus.rs`, the parser
//! it shares with `kit.rs`), one test case per vector file, so a failure
//! names the file:
//!
//! * `vectors_match_generator::<file>` is the known-answer test: the code
//!   must reproduce the file byte for byte. With
//!   `ZETA_CREDS_REGEN_VECTORS=1` the files are (re)written first. A diff
//!   after regenerating means the format changed, which needs a new version
//!   (FORMAT.md §12). `no_stale_vector_files::<file>` fails for a file the
//!   generator does not know.
//! * `every_vector_gives_its_expectation::<file>` reads the file without
//!   the generator and decrypts it with the public API.
//! * `spec_decoder_agrees_with_every_vector::<file>` decrypts the file
//!   again with a small decoder written from FORMAT.md alone (no zeta-creds
//!   code), so the spec, the code and the vectors are checked against each
//!   other.
//! * `spec_encoder_reproduces_success_vectors::<file>` does the same in the
//!   encrypting direction, for each success vector (`::at_least_8` counts
//!   them).
//! * `vector_set_covers_every_class`, `at_least_40_files`, and
//!   `format_md_worked_example_is_current`, which keeps the hex
//!   walk-through in FORMAT.md §11 in step with its vector.
//!
//! Everything runs at work factor 10 (1 MiB of scrypt memory); the whole
//! file takes a few seconds in a debug build.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read};
use std::path::Path;
use std::sync::OnceLock;

use chacha20poly1305::aead::Aead;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use common::corpus::{self, Corpus, Schema};
use common::entry_stream::{RawEntry, RawStream, valid_stream};
use common::layout::{Layout, chunk_ranges};
use common::recipe::Recipe;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use libtest_mimic::Trial;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use zeta_creds::envelope::{
    Anchor, Binding, CHUNK_SIZE, EntryKind, EntryMeta, EntryReader, ErrorClass, Header,
    HeaderFields, Host, StreamReader, TAG_LEN, UsbUuid,
};

// ---------------------------------------------------------------------------
// Fixed inputs. Every vector is a pure function of these.
// ---------------------------------------------------------------------------

const PASSPHRASE: &str = "correct horse battery staple";
const NEW_PASSPHRASE: &str = "tr0ub4dor&3";
const UUID: &str = "abcd-1234";
const OTHER_UUID: &str = "ef01-5678";
const ISO_UUID: &str = "2025-05-27-10-31-45-00";
const HOST: &str = "alpha";
const OTHER_HOST: &str = "beta";
const LOG_N: u8 = 10;
const CAP: u8 = 20;
const CREATED: u64 = 1_700_000_000;
const MTIME: i64 = 1_699_990_000;
const TOOL: &str = "0.1.0";
const USER: &str = "zeta";

/// 0x00 0x01 ... 0x1f
fn file_key() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

/// 0x20 ... 0x2f
fn salt() -> [u8; 16] {
    std::array::from_fn(|i| 0x20 + i as u8)
}

/// 0x30 ... 0x3f
fn payload_nonce() -> [u8; 16] {
    std::array::from_fn(|i| 0x30 + i as u8)
}

/// 0x40 ... 0x4f: the salt of the rekeyed vector's new wrap.
fn rekey_salt() -> [u8; 16] {
    std::array::from_fn(|i| 0x40 + i as u8)
}

fn corpus() -> Corpus {
    Corpus::new("vectors", "ZETA_CREDS_REGEN_VECTORS")
}

/// The keys of a vector file (tests/vectors/README.md).
const SCHEMA: Schema = Schema {
    single: &[
        "expect",
        "passphrase",
        "usb uuid",
        "host",
        "max log_n",
        "file key",
        "payload",
        "comment",
    ],
    repeated: &[],
};

// ---------------------------------------------------------------------------
// The vector file format.
// ---------------------------------------------------------------------------

/// The `expect:` values, one per `envelope::ErrorClass` plus success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Success,
    Header,
    Binding,
    NoMatch,
    Hmac,
    Payload,
    Entries,
    /// The caller's USB UUID is not one after normalization (FORMAT.md
    /// §2.1): bad caller input, refused before the blob is looked at
    /// further; not an error class of the blob.
    BadUsbUuid,
}

impl Expect {
    const ALL: [Expect; 8] = [
        Expect::Success,
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
            Expect::Success => "success",
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

    fn from_class(class: ErrorClass) -> Option<Expect> {
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

    /// The file key is recovered (and so is stated in the file) exactly when
    /// the passphrase unwraps it.
    fn unwraps(self) -> bool {
        matches!(
            self,
            Expect::Success | Expect::Hmac | Expect::Payload | Expect::Entries
        )
    }

    /// Plaintext can be released (and `payload:` is stated) only once the
    /// header MAC holds.
    fn reaches_payload(self) -> bool {
        matches!(self, Expect::Success | Expect::Payload | Expect::Entries)
    }
}

/// One generated vector.
struct Vector {
    name: &'static str,
    expect: Expect,
    passphrase: String,
    usb_uuid: String,
    /// The host the reader is; `None`: it checks no host (as `verify`).
    host: Option<String>,
    max_log_n: u8,
    /// SHA-256 input: all plaintext a STREAM decoder releases (FORMAT.md §4).
    released: Option<Vec<u8>>,
    comment: String,
    blob: Vec<u8>,
    /// For success vectors: how to re-encode the blob from the spec alone.
    recipe: Option<(Recipe, Vec<u8>)>,
}

impl Vector {
    fn new(name: &'static str, expect: Expect, comment: &str, blob: Vec<u8>) -> Vector {
        Vector {
            name,
            expect,
            passphrase: PASSPHRASE.into(),
            usb_uuid: UUID.into(),
            host: Some(HOST.into()),
            max_log_n: CAP,
            released: None,
            comment: comment.into(),
            blob,
            recipe: None,
        }
    }

    fn passphrase(mut self, p: &str) -> Vector {
        self.passphrase = p.into();
        self
    }

    fn uuid(mut self, u: &str) -> Vector {
        self.usb_uuid = u.into();
        self
    }

    fn host(mut self, h: Option<&str>) -> Vector {
        self.host = h.map(str::to_owned);
        self
    }

    fn cap(mut self, cap: u8) -> Vector {
        self.max_log_n = cap;
        self
    }

    fn released(mut self, plain: &[u8]) -> Vector {
        self.released = Some(plain.to_vec());
        self
    }

    fn recipe(mut self, recipe: &Recipe, plain: &[u8]) -> Vector {
        self.recipe = Some((recipe.clone(), plain.to_vec()));
        self
    }

    /// The file's bytes.
    fn encode(&self) -> Vec<u8> {
        assert_eq!(
            self.released.is_some(),
            self.expect.reaches_payload(),
            "{}: `payload` must be given exactly when plaintext can be released",
            self.name
        );
        let mut lines = vec![
            ("expect", self.expect.as_str().to_string()),
            ("passphrase", self.passphrase.clone()),
            ("usb uuid", self.usb_uuid.clone()),
        ];
        if let Some(host) = &self.host {
            lines.push(("host", host.clone()));
        }
        lines.push(("max log_n", self.max_log_n.to_string()));
        if self.expect.unwraps() {
            lines.push(("file key", hex::encode(file_key())));
        }
        if let Some(released) = &self.released {
            lines.push(("payload", hex::encode(Sha256::digest(released))));
        }
        lines.push(("comment", self.comment.clone()));
        corpus::encode(self.name, &lines, &self.blob)
    }
}

// ---------------------------------------------------------------------------
// Building blobs.
// ---------------------------------------------------------------------------

impl Recipe {
    fn new() -> Recipe {
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
            file_key: file_key(),
            salt: salt(),
            nonce: payload_nonce(),
        }
    }

    /// The payload key, derived here from FORMAT.md §3 (not by the crate).
    fn payload_key(&self) -> [u8; 32] {
        spec::hkdf(&self.file_key, &self.nonce, spec::LABEL_PAYLOAD)
    }
}

/// One STREAM chunk, sealed by the test-side implementation of FORMAT.md §4,
/// with a chosen counter and final flag (the API never writes a bad one).
fn raw_chunk(key: &[u8; 32], counter: u64, last: bool, plain: &[u8]) -> Vec<u8> {
    spec::seal_chunk(key, counter, last, plain)
}

// ---------------------------------------------------------------------------
// Entry streams (FORMAT.md §5).
// ---------------------------------------------------------------------------

/// An entry to put in a valid stream through `EntryWriter`.
#[derive(Clone)]
struct Item {
    anchor: Anchor,
    kind: EntryKind,
    path: &'static str,
    mode: u32,
    owner: &'static str,
    group: &'static str,
    body: Vec<u8>,
}

impl Item {
    fn file(
        anchor: Anchor,
        path: &'static str,
        mode: u32,
        owner: &'static str,
        body: &[u8],
    ) -> Item {
        let group = if owner == "root" { "root" } else { "users" };
        Item {
            anchor,
            kind: EntryKind::File,
            path,
            mode,
            owner,
            group,
            body: body.to_vec(),
        }
    }

    fn dir(anchor: Anchor, path: &'static str, mode: u32, owner: &'static str) -> Item {
        Item {
            kind: EntryKind::Dir,
            ..Item::file(anchor, path, mode, owner, b"")
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
            path: self.path.into(),
            mode: self.mode,
            owner: self.owner.into(),
            group: self.group.into(),
            mtime: MTIME,
            size,
            sha256,
        }
    }

    fn raw(&self) -> RawEntry {
        RawEntry::of(&self.meta(), &self.body)
    }
}

/// A valid entry stream, written by the crate's `EntryWriter` and checked
/// against the test-side encoder.
fn entry_stream(user: &str, items: &[Item]) -> Vec<u8> {
    valid_stream(user, items.iter().map(|i| (i.meta(), &i.body[..])))
}

fn home_file() -> Item {
    Item::file(
        Anchor::Home,
        ".config/gh/hosts.yml",
        0o600,
        USER,
        b"github.com:\n    user: zeta\n    oauth_token: gho_EXAMPLEONLYNOTAREALTOKEN0000000000\n    git_protocol: ssh\n",
    )
}

fn etc_file() -> Item {
    Item::file(
        Anchor::Root,
        "etc/ssh/ssh_host_ed25519_key",
        0o600,
        "root",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nEXAMPLE ONLY, NOT A REAL KEY\n-----END OPENSSH PRIVATE KEY-----\n",
    )
}

fn ssh_dir() -> Item {
    Item::dir(Anchor::Home, ".ssh", 0o700, USER)
}

fn empty_file() -> Item {
    Item::file(Anchor::Home, ".ssh/authorized_keys", 0o644, USER, b"")
}

/// The typical small set: a home file, a file under /etc, a directory and
/// an empty file.
fn typical_items() -> Vec<Item> {
    vec![ssh_dir(), empty_file(), home_file(), etc_file()]
}

fn typical_plaintext() -> Vec<u8> {
    entry_stream(USER, &typical_items())
}

/// A valid entry stream of exactly `total` bytes: one home file whose body
/// pads the stream to length.
fn padded_plaintext(total: usize) -> Vec<u8> {
    let pad = |len: usize| {
        Item::file(
            Anchor::Home,
            ".local/share/zeta/padding.bin",
            0o600,
            USER,
            &(0..len).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>(),
        )
    };
    let overhead = entry_stream(USER, &[pad(0)]).len();
    let plain = entry_stream(USER, &[pad(total - overhead)]);
    assert_eq!(plain.len(), total);
    plain
}

// ---------------------------------------------------------------------------
// The vectors.
// ---------------------------------------------------------------------------

fn all_vectors() -> Vec<Vector> {
    let mut v = Vec::new();
    success_vectors(&mut v);
    header_vectors(&mut v);
    unlock_vectors(&mut v);
    payload_vectors(&mut v);
    entries_vectors(&mut v);
    usb_uuid_vectors(&mut v);
    let mut names = HashSet::new();
    for vector in &v {
        assert!(
            names.insert(vector.name),
            "duplicate vector name {}",
            vector.name
        );
        assert!(
            vector
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "vector name {:?}",
            vector.name
        );
    }
    v
}

fn success(name: &'static str, comment: &str, recipe: &Recipe, plain: &[u8]) -> Vector {
    Vector::new(name, Expect::Success, comment, recipe.seal(plain))
        .uuid(recipe.fields.usb_uuid.as_str())
        .host(recipe.fields.host.as_ref().map(Host::as_str))
        .passphrase(&recipe.passphrase)
        .released(plain)
        .recipe(recipe, plain)
}

fn success_vectors(v: &mut Vec<Vector>) {
    let r = Recipe::new();
    v.push(success(
        "success_no_entries",
        "an entry stream with zero entries: user, then the end marker with count 0 (14 bytes, one short final chunk)",
        &r,
        &entry_stream(USER, &[]),
    ));
    v.push(success(
        "success_typical",
        "a directory, an empty file, a home file and a file under /etc",
        &r,
        &typical_plaintext(),
    ));
    v.push(success(
        "success_chunk_exact",
        "plaintext of exactly 65536 bytes: one full chunk that is the final chunk (flag 0x01), no empty chunk after it",
        &r,
        &padded_plaintext(CHUNK_SIZE),
    ));
    v.push(success(
        "success_chunk_plus_one",
        "plaintext of 65537 bytes: a full middle chunk, then a final chunk of one byte",
        &r,
        &padded_plaintext(CHUNK_SIZE + 1),
    ));
    v.push(success(
        "success_two_chunks_exact",
        "plaintext of exactly 131072 bytes: a full middle chunk, then a full final chunk",
        &r,
        &padded_plaintext(2 * CHUNK_SIZE),
    ));

    let mut persona = Recipe::new();
    persona.fields.persona = "ops".into();
    persona.fields.generation = 7;
    let persona_items = vec![
        Item::file(
            Anchor::Home,
            ".codex/auth.json",
            0o600,
            USER,
            b"{\"token\":\"EXAMPLE-ONLY\"}\n",
        ),
        Item::file(
            Anchor::Home,
            ".gemini/oauth_creds.json",
            0o600,
            USER,
            b"{\"refresh_token\":\"EXAMPLE-ONLY\"}\n",
        ),
        Item::dir(Anchor::Root, "var/lib/sops-nix", 0o751, "root"),
        Item::file(
            Anchor::Root,
            "var/lib/sops-nix/key.txt",
            0o600,
            "root",
            b"# example only\nAGE-SECRET-KEY-1EXAMPLEONLYNOTAREALKEY\n",
        ),
    ];
    v.push(success(
        "success_persona",
        "persona \"ops\" and generation 7 in the header; a persona's credential set",
        &persona,
        &entry_stream(USER, &persona_items),
    ));

    let mut long = Recipe::new();
    long.fields.usb_uuid = UsbUuid::parse(&"0123456789abcdef-".repeat(4)[..64]).unwrap();
    long.fields.tool_version = "0.1.0+".to_string() + &"x".repeat(58);
    long.fields.persona = "p".repeat(64);
    long.fields.host = Some(Host::parse(&"0123456789.abcdef-".repeat(4)[..64]).unwrap());
    long.fields.created = u64::MAX;
    long.fields.generation = u64::MAX;
    v.push(success(
        "success_longest_fields",
        "uuid, tool_version, persona and host at their 64-byte maximum; generation and created at u64::MAX",
        &long,
        &typical_plaintext(),
    ));

    let mut iso = Recipe::new();
    iso.fields.usb_uuid = UsbUuid::parse(ISO_UUID).unwrap();
    v.push(success(
        "success_iso9660_uuid",
        "bound to an ISO 9660 volume date as blkid prints it (2025-05-27-10-31-45-00)",
        &iso,
        &typical_plaintext(),
    ));

    let mut slower = Recipe::new();
    slower.fields.log_n = 11;
    v.push(success(
        "success_log_n_11",
        "work factor 11: the log_n field steers scrypt (N = 2^11)",
        &slower,
        &typical_plaintext(),
    ));

    v.push(
        success(
            "success_usb_uuid_ascii_whitespace",
            "the reader's usb uuid is \"\\t ABCD-1234 \\x0c\": ASCII whitespace (space, tab, form feed) is trimmed and letters lower-cased before the comparison (FORMAT.md §2.1)",
            &r,
            &typical_plaintext(),
        )
        .uuid("\t ABCD-1234 \x0c"),
    );

    v.push(success(
        "success_user_without_home_entries",
        "the preamble names the manifest's user although every entry is root-anchored: an encoder writes the user it was given either way (FORMAT.md §5)",
        &r,
        &entry_stream(USER, &[etc_file()]),
    ));

    let user_less = vec![etc_file()];
    v.push(success(
        "success_no_user",
        "user_len 0: a stream with only root-anchored entries needs no user",
        &r,
        &entry_stream("", &user_less),
    ));

    // Rekey: unwrap with the old passphrase, rewrap the same file key for a
    // new passphrase and stick with a fresh salt, bump the generation, and
    // copy the payload bytes unchanged.
    let plain = typical_plaintext();
    let old = r.seal(&plain);
    let header = Header::read(&mut &old[..]).unwrap();
    let unlocked = header
        .unlock(&r.secret(), &binding(&r.fields), CAP)
        .unwrap();
    let mut rekeyed = Recipe::new();
    rekeyed.passphrase = NEW_PASSPHRASE.into();
    rekeyed.fields.usb_uuid = UsbUuid::parse(OTHER_UUID).unwrap();
    rekeyed.fields.generation = 2;
    rekeyed.salt = rekey_salt();
    let mut blob = unlocked
        .rewrap_with_salt(&rekeyed.secret(), &rekeyed.fields, rekeyed.salt)
        .unwrap();
    blob.extend_from_slice(&old[header.len()..]);
    assert_eq!(
        blob,
        rekeyed.seal(&plain),
        "rekey must equal a bundle with the same file key and nonce"
    );
    v.push(
        Vector::new(
            "success_rekeyed",
            Expect::Success,
            "success_typical rekeyed (new passphrase, new stick ef01-5678, fresh salt 0x40..0x4f, generation 2); payload nonce and payload bytes unchanged",
            blob.clone(),
        )
        .passphrase(NEW_PASSPHRASE)
        .uuid(OTHER_UUID)
        .released(&plain)
        .recipe(&rekeyed, &plain),
    );
    v.push(
        Vector::new(
            "no_match_rekeyed_old_passphrase",
            Expect::NoMatch,
            "success_rekeyed tried with the passphrase it was rekeyed away from",
            blob,
        )
        .uuid(OTHER_UUID),
    );

    // Version 1 (no host) is still read: with no host to check (verify,
    // rekey) it decrypts; a reader that checks its host refuses it.
    let mut v1 = Recipe::new();
    v1.fields.host = None;
    let v1_blob = v1.seal(&plain);
    assert_eq!(v1_blob[Layout::VERSION], 1);
    v.push(
        success(
            "success_v1_no_host",
            "a version 1 blob (no host_len, no host; v1 labels for scrypt, the KEK and the MAC key), read with no host check, as verify and rekey read it",
            &v1,
            &plain,
        )
        .host(None),
    );
    v.push(Vector::new(
        "binding_v1_no_host",
        Expect::Binding,
        "the version 1 blob of success_v1_no_host read by host alpha: it records no host, so it is refused like another host's, before scrypt",
        v1_blob.clone(),
    ));
    // Rekey from version 1 to version 2: the same payload, now with a host.
    let v1_header = Header::read(&mut &v1_blob[..]).unwrap();
    let unlocked = v1_header
        .unlock(&v1.secret(), &Binding::default(), CAP)
        .unwrap();
    let mut moved = Recipe::new();
    moved.fields.generation = 2;
    moved.salt = rekey_salt();
    let mut blob = unlocked
        .rewrap_with_salt(&moved.secret(), &moved.fields, moved.salt)
        .unwrap();
    blob.extend_from_slice(&v1_blob[v1_header.len()..]);
    assert_eq!(blob, moved.seal(&plain), "a v1 -> v2 rekey is a v2 bundle");
    v.push(
        Vector::new(
            "success_rekeyed_from_v1",
            Expect::Success,
            "success_v1_no_host rekeyed to version 2 for host alpha (fresh salt 0x40..0x4f, generation 2); payload nonce and payload bytes unchanged",
            blob,
        )
        .released(&plain)
        .recipe(&moved, &plain),
    );
}

/// What a reader on the recipe's own stick and host expects.
fn binding(f: &HeaderFields) -> Binding<'_> {
    Binding {
        usb_uuid: Some(&f.usb_uuid),
        host: f.host.as_ref(),
    }
}

/// Apply `f` to a copy of a valid blob.
fn patched(blob: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = blob.to_vec();
    f(&mut b);
    b
}

fn header_vectors(v: &mut Vec<Vector>) {
    let r = Recipe::new();
    let lay = Layout::of(&r.fields);
    let base = r.seal(&typical_plaintext());
    let h = |name, comment: &str, blob| Vector::new(name, Expect::Header, comment, blob);

    v.push(h(
        "header_bad_magic",
        "magic \"zeta-credz\"",
        patched(&base, |b| b[9] = b'z'),
    ));
    v.push(h(
        "header_age_file",
        "an age v1 file: a different magic, never mistaken for a zeta-creds blob",
        b"age-encryption.org/v1\n-> scrypt ICAhISIiIyMkJCUlJiYnJw 10\n".to_vec(),
    ));
    v.push(h(
        "header_version_0",
        "version byte 0x00",
        patched(&base, |b| b[Layout::VERSION] = 0),
    ));
    v.push(h(
        "header_version_3",
        "version byte 0x03: an unknown version is rejected before anything after it is read",
        patched(&base, |b| b[Layout::VERSION] = 3),
    ));
    v.push(h(
        "header_truncated_in_host",
        "ends after 2 of the 5 host bytes",
        base[..lay.host() + 2].to_vec(),
    ));
    v.push(h(
        "header_host_len_0",
        "host_len 0 and no host bytes: a version 2 header must name its host",
        patched(&base, |b| {
            b[lay.host_len()] = 0;
            b.drain(lay.host()..lay.nonce());
        }),
    ));
    v.push(h(
        "header_host_len_65",
        "host_len 65 followed by 65 valid host characters: too long",
        patched(&base, |b| {
            b[lay.host_len()] = 65;
            b.splice(lay.host()..lay.nonce(), [b'a'; 65]);
        }),
    ));
    v.push(h(
        "header_host_bad_character",
        "host \"al_ha\": '_' is outside [a-z0-9.-]",
        patched(&base, |b| b[lay.host() + 2] = b'_'),
    ));
    v.push(h(
        "header_host_uppercase",
        "host \"Alpha\" in the header: a stored host must already be lower-cased",
        patched(&base, |b| b[lay.host()] = b'A'),
    ));
    v.push(h("header_truncated_empty", "an empty file", Vec::new()));
    v.push(h(
        "header_truncated_in_magic",
        "the first 5 bytes of the magic only",
        base[..5].to_vec(),
    ));
    v.push(h(
        "header_truncated_in_uuid",
        "ends after 3 of the 9 uuid bytes",
        base[..Layout::UUID + 3].to_vec(),
    ));
    v.push(h(
        "header_truncated_in_wrapped_key",
        "ends in the middle of the wrapped key",
        base[..lay.wrapped_key() + 20].to_vec(),
    ));
    v.push(h(
        "header_truncated_in_nonce",
        "ends in the middle of the payload nonce",
        base[..lay.nonce() + 8].to_vec(),
    ));
    v.push(h(
        "header_truncated_in_mac",
        "ends one byte short of the end of the MAC",
        base[..lay.payload() - 1].to_vec(),
    ));
    v.push(h(
        "header_uuid_len_0",
        "uuid_len 0 and no uuid bytes",
        patched(&base, |b| {
            b[Layout::UUID_LEN] = 0;
            b.drain(Layout::UUID..lay.log_n());
        }),
    ));
    v.push(h(
        "header_uuid_len_65",
        "uuid_len 65 followed by 65 valid uuid characters",
        patched(&base, |b| {
            b[Layout::UUID_LEN] = 65;
            b.splice(Layout::UUID..lay.log_n(), [b'a'; 65]);
        }),
    ));
    v.push(h(
        "header_uuid_uppercase",
        "uuid \"ABCD-1234\" in the header: a stored uuid must already be normalized",
        patched(&base, |b| {
            b[Layout::UUID..Layout::UUID + 4].copy_from_slice(b"ABCD")
        }),
    ));
    v.push(h(
        "header_log_n_9",
        "log_n 9, below the minimum of 10",
        patched(&base, |b| b[lay.log_n()] = 9),
    ));
    v.push(h(
        "header_log_n_23",
        "log_n 23, above the maximum of 22",
        patched(&base, |b| b[lay.log_n()] = 23),
    ));
    v.push(
        h(
            "header_log_n_21_over_cap",
            "log_n 21 is within the format's range but above the reader's cap of 20: refused before any scrypt work (WorkFactorTooHigh)",
            patched(&base, |b| b[lay.log_n()] = 21),
        )
        .cap(20),
    );
    v.push(
        h(
            "header_log_n_11_over_cap_10",
            "an otherwise valid blob at log_n 11, read with a cap of 10",
            Recipe {
                fields: HeaderFields {
                    log_n: 11,
                    ..Recipe::new().fields
                },
                ..Recipe::new()
            }
            .seal(&typical_plaintext()),
        )
        .cap(10),
    );
    v.push(h(
        "header_tool_version_empty",
        "tool_len 0",
        patched(&base, |b| {
            b[lay.tool_len()] = 0;
            b.drain(lay.tool()..lay.persona_len());
        }),
    ));
    v.push(h(
        "header_tool_version_space",
        "tool_version \"0.1 0\": a space is outside 0x21..=0x7e",
        patched(&base, |b| b[lay.tool() + 3] = b' '),
    ));
    let mut with_persona = Recipe::new();
    with_persona.fields.persona = "ops".into();
    let persona_blob = with_persona.seal(&typical_plaintext());
    let pl = Layout::of(&with_persona.fields);
    v.push(h(
        "header_persona_uppercase",
        "persona \"Ops\": only [a-z0-9_-] is allowed",
        patched(&persona_blob, |b| b[pl.persona()] = b'O'),
    ));
    v.push(h(
        "header_persona_len_65",
        "persona_len 65, followed by 65 valid persona characters",
        patched(&base, |b| {
            b[lay.persona_len()] = 65;
            b.splice(lay.persona()..lay.persona(), [b'p'; 65]);
        }),
    ));
}

fn unlock_vectors(v: &mut Vec<Vector>) {
    let r = Recipe::new();
    let lay = Layout::of(&r.fields);
    let base = r.seal(&typical_plaintext());

    v.push(
        Vector::new(
            "binding_other_stick",
            Expect::Binding,
            "bound to abcd-1234, read with stick ef01-5678: refused before scrypt",
            base.clone(),
        )
        .uuid(OTHER_UUID),
    );

    let nm = |name, comment: &str, blob| Vector::new(name, Expect::NoMatch, comment, blob);
    v.push(
        nm(
            "no_match_wrong_passphrase",
            "the passphrase is \"correct horse battery stapler\"",
            base.clone(),
        )
        .passphrase("correct horse battery stapler"),
    );
    v.push(nm(
        "no_match_wrapped_key_flipped",
        "one bit of the wrapped key flipped: indistinguishable from a wrong passphrase",
        patched(&base, |b| b[lay.wrapped_key() + 5] ^= 0x01),
    ));
    v.push(nm(
        "no_match_wrapped_tag_flipped",
        "one bit of the wrapped key's Poly1305 tag flipped",
        patched(&base, |b| b[lay.wrapped_key() + 47] ^= 0x80),
    ));
    v.push(nm(
        "no_match_salt_flipped",
        "one bit of the scrypt salt flipped: a different KEK",
        patched(&base, |b| b[lay.salt()] ^= 0x01),
    ));
    v.push(nm(
        "no_match_log_n_changed",
        "log_n rewritten from 10 to 11 (within the cap): a different KEK",
        patched(&base, |b| b[lay.log_n()] = 11),
    ));
    v.push(
        nm(
            "no_match_uuid_forged",
            "the clear uuid rewritten to abcd-1235 to pass the cheap check on stick abcd-1235: the KEK still binds abcd-1234",
            patched(&base, |b| b[lay.log_n() - 1] = b'5'),
        )
        .uuid("abcd-1235"),
    );
    v.push(
        Vector::new(
            "binding_other_host",
            Expect::Binding,
            "sealed for host alpha, read by host beta on the same stick with the same passphrase (the fleet swap): refused before scrypt",
            base.clone(),
        )
        .host(Some(OTHER_HOST)),
    );
    v.push(
        nm(
            "no_match_host_forged",
            "the clear host rewritten from alpha to alphb to pass the cheap check on host alphb: the KEK still binds alpha",
            patched(&base, |b| b[lay.nonce() - 1] = b'b'),
        )
        .host(Some("alphb")),
    );

    let hm = |name, comment: &str, blob| Vector::new(name, Expect::Hmac, comment, blob);
    v.push(hm(
        "hmac_mac_flipped",
        "one bit of the MAC flipped",
        patched(&base, |b| b[lay.mac() + 31] ^= 0x01),
    ));
    v.push(hm(
        "hmac_generation_changed",
        "generation rewritten from 1 to 2 (a forged \"newer\" blob)",
        patched(&base, |b| b[lay.generation() + 7] = 2),
    ));
    v.push(hm(
        "hmac_created_flipped",
        "one bit of the creation time flipped",
        patched(&base, |b| b[lay.created() + 7] ^= 0x01),
    ));
    v.push(hm(
        "hmac_tool_version_changed",
        "tool_version rewritten from 0.1.0 to 0.1.1",
        patched(&base, |b| b[lay.tool() + 4] = b'1'),
    ));
    let mut with_persona = Recipe::new();
    with_persona.fields.persona = "ops".into();
    let pl = Layout::of(&with_persona.fields);
    v.push(hm(
        "hmac_persona_changed",
        "persona rewritten from \"ops\" to \"dev\" (still a valid name)",
        patched(&with_persona.seal(&typical_plaintext()), |b| {
            b[pl.persona()..pl.persona() + 3].copy_from_slice(b"dev")
        }),
    ));
    v.push(hm(
        "hmac_nonce_flipped",
        "one bit of the payload nonce flipped: the MAC fails before the payload key exists",
        patched(&base, |b| b[lay.nonce() + 15] ^= 0x01),
    ));
    v.push(hm(
        "hmac_header_swapped_tail",
        "the MAC of another blob with the same file key (persona \"ops\") spliced in",
        patched(&base, |b| {
            let other = with_persona.header();
            b[lay.mac()..lay.payload()].copy_from_slice(&other[pl.mac()..pl.payload()]);
        }),
    ));
}

fn payload_vectors(v: &mut Vec<Vector>) {
    let r = Recipe::new();
    let key = r.payload_key();
    let header = r.header();
    let hl = header.len();
    let p = |name, comment: &str, blob| Vector::new(name, Expect::Payload, comment, blob);
    let with_payload = |payload: &[u8]| {
        let mut b = header.clone();
        b.extend_from_slice(payload);
        b
    };

    let typical = typical_plaintext();
    let small = r.seal(&typical);
    let two = padded_plaintext(CHUNK_SIZE + 100);
    let two_blob = r.seal(&two);
    let two_ranges = chunk_ranges(two.len());
    let exact = padded_plaintext(CHUNK_SIZE);

    v.push(
        p(
            "payload_no_chunks",
            "a valid header and no payload at all: even an empty payload has one final chunk",
            header.clone(),
        )
        .released(b""),
    );
    v.push(
        p(
            "payload_short_of_a_tag",
            "a payload of 10 bytes, shorter than one Poly1305 tag",
            patched(&small, |b| b.truncate(hl + 10)),
        )
        .released(b""),
    );
    v.push(
        p(
            "payload_truncated_last_chunk",
            "the only (final) chunk loses its last byte",
            patched(&small, |b| {
                b.pop();
            }),
        )
        .released(b""),
    );
    v.push(
        p(
            "payload_missing_final_chunk",
            "65636 bytes of plaintext cut after the first chunk: the full middle chunk is released, then end of input before a final chunk",
            patched(&two_blob, |b| b.truncate(hl + two_ranges[0].end)),
        )
        .released(&two[..CHUNK_SIZE]),
    );
    v.push(
        p(
            "payload_full_chunk_not_final",
            "exactly 65536 bytes sealed as a middle chunk (flag 0x00) and nothing after it",
            with_payload(&raw_chunk(&key, 0, false, &exact)),
        )
        .released(&exact),
    );
    v.push(
        p(
            "payload_final_flag_missing",
            "the only chunk is short but sealed with flag 0x00: a short chunk can only be final",
            with_payload(&raw_chunk(&key, 0, false, &typical)),
        )
        .released(b""),
    );
    v.push(
        p(
            "payload_trailing_garbage",
            "one 0x00 byte after a short final chunk: it becomes part of that chunk, which no longer authenticates",
            patched(&small, |b| b.push(0)),
        )
        .released(b""),
    );
    v.push(
        p(
            "payload_trailing_garbage_after_full_final",
            "one 0x00 byte after a full final chunk: the final chunk is not released, the trailing byte is an error",
            patched(&r.seal(&exact), |b| b.push(0)),
        )
        .released(b""),
    );
    let mut two_final = raw_chunk(&key, 0, true, &exact);
    two_final.extend_from_slice(&raw_chunk(&key, 1, true, b"\x00"));
    v.push(
        p(
            "payload_two_final_chunks",
            "a full final chunk (counter 0) followed by another final chunk (counter 1)",
            with_payload(&two_final),
        )
        .released(b""),
    );
    let mut last_empty = raw_chunk(&key, 0, false, &exact);
    last_empty.extend_from_slice(&raw_chunk(&key, 1, true, b""));
    v.push(
        p(
            "payload_last_chunk_empty",
            "a full middle chunk followed by an empty final chunk: the final chunk may be empty only if the whole payload is",
            with_payload(&last_empty),
        )
        .released(&exact),
    );
    v.push(
        p(
            "payload_chunk_flipped",
            "one bit of the first (and only) chunk's ciphertext flipped",
            patched(&small, |b| b[hl + 3] ^= 0x01),
        )
        .released(b""),
    );
    v.push(
        p(
            "payload_second_chunk_flipped",
            "one bit of the second chunk's tag flipped: the first chunk is released, the second is not",
            patched(&two_blob, |b| {
                let last = b.len() - 1;
                b[last] ^= 0x01
            }),
        )
        .released(&two[..CHUNK_SIZE]),
    );
    let three = padded_plaintext(2 * CHUNK_SIZE + 100);
    let three_ranges = chunk_ranges(three.len());
    v.push(
        p(
            "payload_chunks_swapped",
            "the first two full chunks of a three-chunk payload swapped",
            patched(&r.seal(&three), |b| {
                let (c0, c1) = (three_ranges[0].clone(), three_ranges[1].clone());
                let first = b[hl + c0.start..hl + c0.end].to_vec();
                let second = b[hl + c1.start..hl + c1.end].to_vec();
                b[hl + c0.start..hl + c0.end].copy_from_slice(&second);
                b[hl + c1.start..hl + c1.end].copy_from_slice(&first);
            }),
        )
        .released(b""),
    );
    let mut skipped = raw_chunk(&key, 0, false, &two[..CHUNK_SIZE]);
    skipped.extend_from_slice(&raw_chunk(&key, 2, true, &two[CHUNK_SIZE..]));
    v.push(
        p(
            "payload_counter_skipped",
            "the second chunk sealed with counter 2 instead of 1",
            with_payload(&skipped),
        )
        .released(&two[..CHUNK_SIZE]),
    );
    let mut other_nonce = r.clone();
    other_nonce.nonce[0] ^= 0x01;
    v.push(
        p(
            "payload_key_from_other_nonce",
            "the payload sealed under a payload key derived from a different nonce than the header's",
            with_payload(&raw_chunk(&other_nonce.payload_key(), 0, true, &typical)),
        )
        .released(b""),
    );
}

fn entries_vectors(v: &mut Vec<Vector>) {
    let r = Recipe::new();
    let e = |name, comment: &str, plain: Vec<u8>| {
        Vector::new(name, Expect::Entries, comment, r.seal(&plain)).released(&plain)
    };
    let raw =
        |items: &[RawEntry]| RawStream::new(USER, items.iter().map(RawEntry::encode).collect());
    let file = home_file().raw();

    v.push(e(
        "entries_empty_plaintext",
        "a valid STREAM with an empty payload (one empty final chunk), which is not a valid entry stream",
        Vec::new(),
    ));
    v.push(e(
        "entries_path_dotdot",
        "home entry with path \"../../etc/shadow\"",
        raw(&[RawEntry {
            path: b"../../etc/shadow".to_vec(),
            ..file.clone()
        }])
        .encode(),
    ));
    v.push(e(
        "entries_path_absolute",
        "root entry with path \"/etc/shadow\"",
        raw(&[RawEntry {
            anchor: 0,
            path: b"/etc/shadow".to_vec(),
            ..file.clone()
        }])
        .encode(),
    ));
    v.push(e(
        "entries_path_nul",
        "path with a NUL byte: \".ssh/id_ed25519\\0.pub\"",
        raw(&[RawEntry {
            path: b".ssh/id_ed25519\0.pub".to_vec(),
            ..file.clone()
        }])
        .encode(),
    ));
    v.push(e(
        "entries_unknown_kind",
        "kind 0x02 (say, a symlink), which v1 does not define",
        raw(&[RawEntry {
            kind: 0x02,
            ..file.clone()
        }])
        .encode(),
    ));
    v.push(e(
        "entries_unknown_anchor",
        "anchor 0x02, which v1 does not define",
        raw(&[RawEntry {
            anchor: 0x02,
            ..file.clone()
        }])
        .encode(),
    ));
    v.push(e(
        "entries_unknown_tag",
        "record tag 0x02 where an entry (0x01) or the end marker (0x00) must be",
        raw(&[RawEntry {
            tag: 0x02,
            ..file.clone()
        }])
        .encode(),
    ));
    v.push(e(
        "entries_bad_end_count",
        "two entries, end marker counts 3",
        RawStream {
            end_count: Some(3),
            ..raw(&[file.clone(), etc_file().raw()])
        }
        .encode(),
    ));
    v.push(e(
        "entries_missing_end_marker",
        "the plaintext ends after the last entry's body, without an end marker",
        RawStream {
            end_count: None,
            ..raw(std::slice::from_ref(&file))
        }
        .encode(),
    ));
    v.push(e(
        "entries_body_shorter_than_size",
        "size declares 60 more bytes than the body has: the end marker is read as body, then the stream ends",
        raw(&[RawEntry {
            size: file.body.len() as u64 + 60,
            ..file.clone()
        }])
        .encode(),
    ));
    v.push(e(
        "entries_sha256_mismatch",
        "the body's last byte changed after its digest was taken",
        raw(&[RawEntry {
            body: patched(&file.body, |b| {
                let last = b.len() - 1;
                b[last] = b'!';
            }),
            ..file.clone()
        }])
        .encode(),
    ));
    v.push(e(
        "entries_duplicate_path",
        "the same home path twice",
        raw(&[file.clone(), file.clone()]).encode(),
    ));
    v.push(e(
        "entries_data_after_end",
        "one 0x00 byte after the end marker",
        RawStream {
            trailing: vec![0],
            ..raw(std::slice::from_ref(&file))
        }
        .encode(),
    ));
    let dir = ssh_dir().raw();
    v.push(e(
        "entries_dir_nonzero_size",
        "a directory with size 5 and a 5-byte body",
        raw(&[RawEntry {
            size: 5,
            body: b"hello".to_vec(),
            ..dir.clone()
        }])
        .encode(),
    ));
    v.push(e(
        "entries_dir_nonzero_digest",
        "a directory with size 0 but a non-zero digest",
        raw(&[RawEntry {
            sha256: Sha256::digest(b"").into(),
            ..dir
        }])
        .encode(),
    ));
    v.push(e(
        "entries_mode_too_big",
        "mode 0o100600 (st_mode with the file-type bits), above 0o7777",
        raw(&[RawEntry {
            mode: 0o100600,
            ..file.clone()
        }])
        .encode(),
    ));
    v.push(e(
        "entries_owner_empty",
        "owner_len 0",
        raw(&[RawEntry {
            owner: Vec::new(),
            ..file.clone()
        }])
        .encode(),
    ));
    v.push(e(
        "entries_size_over_limit",
        "size 2^36 + 1, above the per-entry limit; refused before any body byte is read",
        raw(&[RawEntry {
            size: (1 << 36) + 1,
            ..file.clone()
        }])
        .encode(),
    ));
    v.push(e(
        "entries_user_too_long",
        "user_len 33, above the 32-byte name limit",
        RawStream {
            user: vec![b'u'; 33],
            ..raw(&[file])
        }
        .encode(),
    ));
}

/// The reader's USB UUID with whitespace that is not ASCII whitespace
/// (FORMAT.md §2.1): not trimmed, so the UUID is refused as bad caller
/// input, whatever the blob. The blob is a good one.
fn usb_uuid_vectors(v: &mut Vec<Vector>) {
    let blob = Recipe::new().seal(&typical_plaintext());
    for (name, raw, what) in [
        (
            "bad_usb_uuid_vertical_tab",
            "\x0babcd-1234",
            "a leading vertical tab (0x0b), which is not ASCII whitespace here",
        ),
        (
            "bad_usb_uuid_no_break_space",
            "abcd-1234\u{a0}",
            "a trailing U+00A0 NO-BREAK SPACE",
        ),
        (
            "bad_usb_uuid_ideographic_space",
            "\u{3000}abcd-1234",
            "a leading U+3000 IDEOGRAPHIC SPACE",
        ),
        (
            "bad_usb_uuid_next_line",
            "abcd-1234\u{85}",
            "a trailing U+0085 NEXT LINE",
        ),
    ] {
        v.push(
            Vector::new(
                name,
                Expect::BadUsbUuid,
                &format!(
                    "the reader's usb uuid has {what}: only ASCII whitespace is trimmed, so it is refused as bad caller input (FORMAT.md §2.1)"
                ),
                blob.clone(),
            )
            .uuid(raw),
        );
    }
}

fn vector_set_covers_every_class(vectors: &[Vector]) {
    for expect in Expect::ALL {
        assert!(
            vectors.iter().any(|v| v.expect == expect),
            "no vector expects {}",
            expect.as_str()
        );
    }
}

// ---------------------------------------------------------------------------
// Reading a vector file, independently of the generator.
// ---------------------------------------------------------------------------

struct VectorFile {
    name: String,
    expect: Expect,
    passphrase: String,
    usb_uuid: String,
    host: Option<String>,
    max_log_n: u8,
    file_key: Option<[u8; 32]>,
    payload: Option<[u8; 32]>,
    blob: Vec<u8>,
}

fn parse_vector(name: &str, bytes: &[u8]) -> Result<VectorFile, String> {
    let f = corpus::parse(&SCHEMA, bytes)?;
    Ok(VectorFile {
        name: name.to_string(),
        expect: Expect::parse(f.need("expect")?).ok_or("unknown `expect` value")?,
        passphrase: f.need("passphrase")?.to_string(),
        usb_uuid: f.need("usb uuid")?.to_string(),
        host: f.get("host").map(str::to_owned),
        max_log_n: f
            .need("max log_n")?
            .parse()
            .map_err(|_| "bad `max log_n`")?,
        file_key: f.get("file key").map(corpus::hex32).transpose()?,
        payload: f.get("payload").map(corpus::hex32).transpose()?,
        blob: f.blob,
    })
}

/// What decrypting a vector with the crate's public API did.
struct Outcome {
    /// `None` for success, else the failure class.
    failure: Option<ErrorClass>,
    /// The vector's `usb uuid` was refused by `UsbUuid::parse`.
    bad_usb_uuid: bool,
    /// Every plaintext byte the STREAM reader released.
    released: Vec<u8>,
    /// Whether a payload reader was ever constructed.
    payload_reader: bool,
    /// Whether the entry reader reported the end of a complete stream.
    end_seen: bool,
    /// Entries whose body was read to the end and whose digest verified.
    completed: usize,
    /// The error's message, for `ZETA_CREDS_VECTORS_VERBOSE=1`.
    message: String,
}

/// Records every byte the inner reader hands out.
struct Tee<R> {
    inner: R,
    seen: Vec<u8>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// Read a whole entry stream the way `verify --list` or a staging restore
/// would: every entry, every body.
fn read_entries<R: Read>(input: R, out: &mut Outcome) -> Result<(), zeta_creds::envelope::Error> {
    let mut reader = EntryReader::new(input)?;
    let mut buf = vec![0u8; 4096];
    while let Some(meta) = reader.next_entry()? {
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        loop {
            let n = reader.read_body(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            len += n as u64;
        }
        assert_eq!(len, meta.size, "{}: body length", meta.display_path());
        if meta.kind == EntryKind::File {
            assert_eq!(<[u8; 32]>::from(hasher.finalize()), meta.sha256);
        }
        out.completed += 1;
    }
    out.end_seen = true;
    Ok(())
}

fn decrypt_with_api(v: &VectorFile) -> Outcome {
    let mut out = Outcome {
        failure: None,
        bad_usb_uuid: false,
        released: Vec::new(),
        payload_reader: false,
        end_seen: false,
        completed: 0,
        message: String::new(),
    };
    let mut input = &v.blob[..];
    let header = match Header::read(&mut input) {
        Ok(h) => h,
        Err(e) => {
            out.failure = Some(e.class());
            out.message = e.to_string();
            return out;
        }
    };
    let uuid = match UsbUuid::parse(&v.usb_uuid) {
        Ok(uuid) => uuid,
        Err(e) => {
            out.bad_usb_uuid = true;
            out.message = e.to_string();
            return out;
        }
    };
    let host = v
        .host
        .as_deref()
        .map(|h| Host::parse(h).expect("the vector's host is valid"));
    let passphrase = SecretString::from(v.passphrase.as_str());
    let expected = Binding {
        usb_uuid: Some(&uuid),
        host: host.as_ref(),
    };
    let unlocked = match header.unlock(&passphrase, &expected, v.max_log_n) {
        Ok(u) => u,
        Err(e) => {
            out.failure = Some(e.class());
            out.message = e.to_string();
            return out;
        }
    };
    out.payload_reader = true;
    let mut tee = Tee {
        inner: unlocked.payload_reader(input),
        seen: Vec::new(),
    };
    let result = read_entries(&mut tee, &mut out);
    if let Err(e) = &result {
        out.failure = Some(e.class());
        out.message = e.to_string();
        if e.class() == ErrorClass::Entries {
            // The STREAM itself is sound: drain it so that `released` is
            // every byte it hands out.
            let mut rest = Vec::new();
            tee.read_to_end(&mut rest)
                .expect("an entries failure sits in a valid STREAM");
        }
    }
    let finished = StreamReader::is_finished(&tee.inner);
    match out.failure {
        None => assert!(finished, "{}: success before the final chunk", v.name),
        Some(ErrorClass::Payload) => {
            assert!(!finished, "{}: payload failure after the end", v.name)
        }
        _ => {}
    }
    out.released = tee.seen;
    out
}

fn check_vector(v: &VectorFile) -> Result<(), String> {
    // The file's own consistency.
    if v.file_key.is_some() != v.expect.unwraps() {
        return Err("`file key` must be present exactly when the key unwraps".into());
    }
    if v.payload.is_some() != v.expect.reaches_payload() {
        return Err("`payload` must be present exactly when plaintext can be released".into());
    }
    if v.file_key.is_some_and(|k| k != file_key()) {
        return Err("unexpected file key".into());
    }

    let out = decrypt_with_api(v);
    if std::env::var_os("ZETA_CREDS_VECTORS_VERBOSE").is_some() {
        eprintln!(
            "{}: {} ({} bytes released, {} entries complete)",
            v.name,
            if out.message.is_empty() {
                "ok"
            } else {
                &out.message
            },
            out.released.len(),
            out.completed
        );
    }
    let got = match out.failure {
        None if out.bad_usb_uuid => Expect::BadUsbUuid,
        None => Expect::Success,
        Some(class) => {
            Expect::from_class(class).ok_or_else(|| format!("unexpected error class {class:?}"))?
        }
    };
    if got != v.expect {
        return Err(format!(
            "expected {}, got {}",
            v.expect.as_str(),
            got.as_str()
        ));
    }
    if let Some(want) = v.payload {
        let have: [u8; 32] = Sha256::digest(&out.released).into();
        if have != want {
            return Err(format!(
                "released plaintext ({} bytes) does not match `payload`",
                out.released.len()
            ));
        }
    }
    // Nothing released before the MAC holds, and no failing vector ever
    // looks complete: a staging restore commits only after the end marker
    // and the final chunk, so a failure anywhere means nothing is written.
    if !v.expect.reaches_payload() && (out.payload_reader || !out.released.is_empty()) {
        return Err("plaintext released before the header was authenticated".into());
    }
    if v.expect != Expect::Success && out.end_seen {
        return Err(format!(
            "the entry stream looked complete ({} entries) before the failure",
            out.completed
        ));
    }
    if v.expect == Expect::Payload && !out.released.len().is_multiple_of(CHUNK_SIZE) {
        return Err("part of an unauthenticated chunk was released".into());
    }
    Ok(())
}

/// The spec decoder of `mod spec` gives the file's outcome and, where it
/// states one, the same released plaintext.
fn check_with_spec_decoder(v: &VectorFile) -> Result<(), String> {
    let (got, released) = spec::decrypt(v);
    if got != v.expect {
        return Err(format!(
            "spec decoder says {}, file expects {}",
            got.as_str(),
            v.expect.as_str()
        ));
    }
    if let Some(want) = v.payload
        && <[u8; 32]>::from(Sha256::digest(&released)) != want
    {
        return Err("spec decoder released other plaintext".into());
    }
    Ok(())
}

/// Every vector, generated once per test process.
fn vectors() -> &'static [Vector] {
    static VECTORS: OnceLock<Vec<Vector>> = OnceLock::new();
    VECTORS.get_or_init(all_vectors)
}

const ENCODER: &str = "spec_encoder_reproduces_success_vectors";

/// The encoder of `mod spec` writes a success vector's blob byte for byte
/// from its recipe.
fn spec_encoder_trials() -> Vec<Trial> {
    let with_recipe: Vec<&'static Vector> =
        vectors().iter().filter(|v| v.recipe.is_some()).collect();
    let checked = with_recipe.len();
    let mut trials = vec![Trial::test(format!("{ENCODER}::at_least_8"), move || {
        assert!(
            checked >= 8,
            "only {checked} success vectors carry a recipe"
        );
        Ok(())
    })];
    for v in with_recipe {
        trials.push(Trial::test(format!("{ENCODER}::{}", v.name), move || {
            let (recipe, plain) = v.recipe.as_ref().unwrap();
            assert_eq!(
                spec::encrypt(recipe, &file_key(), plain),
                v.blob,
                "{}: FORMAT.md and the code disagree",
                v.name
            );
            Ok(())
        }));
    }
    trials
}

fn main() {
    let corpus = corpus();
    let generated = || -> BTreeMap<String, Vec<u8>> {
        vectors()
            .iter()
            .map(|v| (v.name.to_string(), v.encode()))
            .collect()
    };
    if corpus.regen_requested() {
        corpus.regenerate(&generated());
    }
    let mut trials = corpus.kat_trials(
        "vectors_match_generator",
        "no_stale_vector_files",
        generated(),
        "the code no longer reproduces the vectors byte for byte; \
         if the format changed on purpose it needs a new version (FORMAT.md §12)",
    );
    trials.push(corpus.count_trial(40));
    trials.extend(corpus.file_trials(
        "every_vector_gives_its_expectation",
        parse_vector,
        check_vector,
    ));
    trials.extend(corpus.file_trials(
        "spec_decoder_agrees_with_every_vector",
        parse_vector,
        check_with_spec_decoder,
    ));
    trials.extend(spec_encoder_trials());
    trials.push(Trial::test("vector_set_covers_every_class", || {
        vector_set_covers_every_class(vectors());
        Ok(())
    }));
    trials.push(Trial::test("format_md_worked_example_is_current", || {
        format_md_worked_example_is_current();
        Ok(())
    }));
    corpus::run(trials);
}

/// FORMAT.md §11 walks through `success_no_entries` field by field, with
/// every intermediate value. Keep that text in step with the vector.
fn format_md_worked_example_is_current() {
    let v = vectors()
        .iter()
        .find(|v| v.name == "success_no_entries")
        .unwrap();
    let b = &v.blob;
    let lay = Layout::of(&Recipe::new().fields);
    let hx = |r: std::ops::Range<usize>| hex::encode(&b[r]);
    let s = spec::scrypt_s(PASSPHRASE, &salt(), LOG_N, 2);
    let kek = spec::kek_from_s(&s, UUID.as_bytes(), Some(HOST.as_bytes()));
    let mac_key = spec::hkdf(&file_key(), b"", spec::LABEL_HEADER);
    let payload_key = spec::hkdf(&file_key(), &payload_nonce(), spec::LABEL_PAYLOAD);
    let plain = entry_stream(USER, &[]);
    let mut lines = vec![
        format!("file key       {}", hex::encode(file_key())),
        format!("s              {}", hex::encode(s)),
        format!("KEK            {}", hex::encode(kek)),
        format!("MAC key        {}", hex::encode(mac_key)),
        format!("payload key    {}", hex::encode(payload_key)),
        format!("plaintext      {}", hex::encode(&plain)),
        String::new(),
        format!("magic          {}", hx(0..Layout::VERSION)),
        format!("version        {}", hx(Layout::VERSION..Layout::UUID_LEN)),
        format!("uuid_len       {}", hx(Layout::UUID_LEN..Layout::UUID)),
        format!("uuid           {}", hx(Layout::UUID..lay.log_n())),
        format!("log_n          {}", hx(lay.log_n()..lay.salt())),
        format!("salt           {}", hx(lay.salt()..lay.wrapped_key())),
        format!(
            "wrapped_key    {}",
            hx(lay.wrapped_key()..lay.wrapped_key() + 32)
        ),
        format!(
            "               {}",
            hx(lay.wrapped_key() + 32..lay.generation())
        ),
        format!("generation     {}", hx(lay.generation()..lay.created())),
        format!("created        {}", hx(lay.created()..lay.tool_len())),
        format!("tool_len       {}", hx(lay.tool_len()..lay.tool())),
        format!("tool_version   {}", hx(lay.tool()..lay.persona_len())),
        format!("persona_len    {}", hx(lay.persona_len()..lay.persona())),
        format!("host_len       {}", hx(lay.host_len()..lay.host())),
        format!("host           {}", hx(lay.host()..lay.nonce())),
        format!("payload_nonce  {}", hx(lay.nonce()..lay.mac())),
        format!("mac            {}", hx(lay.mac()..lay.payload())),
        format!("chunk 0        {}", hx(lay.payload()..b.len())),
    ];
    assert_eq!(lay.persona(), lay.host_len(), "no persona in this vector");
    assert_eq!(b.len(), lay.payload() + plain.len() + TAG_LEN);
    lines.push(String::new());
    let block = lines.join("\n");
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/FORMAT.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_default();
    assert!(
        doc.contains(&block),
        "docs/FORMAT.md §11 must contain this worked example verbatim:\n\n{block}"
    );
}

/// An independent implementation of FORMAT.md, sharing no code with the
/// crate: only the primitives (scrypt, HKDF, HMAC, ChaCha20-Poly1305,
/// SHA-256). Whole-buffer, not streaming; it is here to check the spec.
mod spec {
    use super::*;

    pub const MAGIC: &[u8] = b"zeta-creds";
    /// §3.8: the labels of version 2; §12: version 1's read `v1`. The
    /// payload label is `v1` in both.
    pub const LABEL_SCRYPT: &[u8] = b"zeta-creds/v2/scrypt";
    pub const LABEL_KEK: &[u8] = b"zeta-creds/v2/kek";
    pub const LABEL_HEADER: &[u8] = b"zeta-creds/v2/header";
    pub const LABEL_PAYLOAD: &[u8] = b"zeta-creds/v1/payload";
    const LABEL_SCRYPT_V1: &[u8] = b"zeta-creds/v1/scrypt";
    const LABEL_KEK_V1: &[u8] = b"zeta-creds/v1/kek";
    const LABEL_HEADER_V1: &[u8] = b"zeta-creds/v1/header";

    /// The MAC key's label for `version`.
    pub fn label_header(version: u8) -> &'static [u8] {
        if version == 1 {
            LABEL_HEADER_V1
        } else {
            LABEL_HEADER
        }
    }
    const CHUNK: usize = 64 * 1024;

    /// HKDF-SHA-256(ikm, salt, info), 32 bytes (RFC 5869).
    pub fn hkdf(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(salt), ikm)
            .expand(info, &mut okm)
            .unwrap();
        okm
    }

    /// §3.3: `s = scrypt(P = passphrase, S = label || salt, N = 2^log_n, r = 8, p = 1, dkLen = 32)`.
    pub fn scrypt_s(passphrase: &str, salt: &[u8], log_n: u8, version: u8) -> [u8; 32] {
        let mut s = [0u8; 32];
        let params = scrypt::Params::new(log_n, 8, 1).unwrap();
        let label = if version == 1 {
            LABEL_SCRYPT_V1
        } else {
            LABEL_SCRYPT
        };
        let salt = [label, salt].concat();
        scrypt::scrypt(passphrase.as_bytes(), &salt, &params, &mut s).unwrap();
        s
    }

    /// §3.4: `KEK = HKDF(ikm = s, salt = "", info = label || 0x00 || uuid || 0x00 || host)`;
    /// §12: version 1 (no host) ends the info at the UUID, with its own label.
    pub fn kek_from_s(s: &[u8; 32], uuid: &[u8], host: Option<&[u8]>) -> [u8; 32] {
        match host {
            Some(host) => hkdf(s, b"", &[LABEL_KEK, &[0x00], uuid, &[0x00], host].concat()),
            None => hkdf(s, b"", &[LABEL_KEK_V1, &[0x00], uuid].concat()),
        }
    }

    fn kek(passphrase: &str, salt: &[u8], log_n: u8, uuid: &[u8], host: Option<&[u8]>) -> [u8; 32] {
        let version = if host.is_some() { 2 } else { 1 };
        kek_from_s(&scrypt_s(passphrase, salt, log_n, version), uuid, host)
    }

    pub fn hmac(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256>>::new_from_slice(key).unwrap();
        mac.update(msg);
        mac.finalize().into_bytes().into()
    }

    pub fn aead(key: &[u8; 32]) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&(*key).into())
    }

    fn chunk_nonce(counter: u64, last: bool) -> Nonce {
        let mut n = [0u8; 12];
        n[3..11].copy_from_slice(&counter.to_be_bytes());
        n[11] = u8::from(last);
        Nonce::from(n)
    }

    pub fn seal_chunk(key: &[u8; 32], counter: u64, last: bool, plain: &[u8]) -> Vec<u8> {
        aead(key)
            .encrypt(&chunk_nonce(counter, last), plain)
            .unwrap()
    }

    fn open_chunk(key: &[u8; 32], counter: u64, last: bool, chunk: &[u8]) -> Option<Vec<u8>> {
        aead(key).decrypt(&chunk_nonce(counter, last), chunk).ok()
    }

    /// §6 encryption (and §7 rekey, which is the same with the old file key
    /// and nonce).
    pub fn encrypt(r: &Recipe, file_key: &[u8; 32], plain: &[u8]) -> Vec<u8> {
        let f = &r.fields;
        let host = f.host.as_ref().map(|h| h.as_str().as_bytes());
        let version = if host.is_some() { 2 } else { 1 };
        let kek = kek(
            &r.passphrase,
            &r.salt,
            f.log_n,
            f.usb_uuid.as_str().as_bytes(),
            host,
        );
        let wrapped = aead(&kek)
            .encrypt(&Nonce::from([0u8; 12]), &file_key[..])
            .unwrap();
        let mut h = MAGIC.to_vec();
        h.push(version);
        h.push(f.usb_uuid.as_str().len() as u8);
        h.extend_from_slice(f.usb_uuid.as_str().as_bytes());
        h.push(f.log_n);
        h.extend_from_slice(&r.salt);
        h.extend_from_slice(&wrapped);
        h.extend_from_slice(&f.generation.to_be_bytes());
        h.extend_from_slice(&f.created.to_be_bytes());
        h.push(f.tool_version.len() as u8);
        h.extend_from_slice(f.tool_version.as_bytes());
        h.push(f.persona.len() as u8);
        h.extend_from_slice(f.persona.as_bytes());
        if let Some(host) = host {
            h.push(host.len() as u8);
            h.extend_from_slice(host);
        }
        h.extend_from_slice(&r.nonce);
        let mac = hmac(&hkdf(file_key, b"", label_header(version)), &h);
        h.extend_from_slice(&mac);
        let key = hkdf(file_key, &r.nonce, LABEL_PAYLOAD);
        let n = plain.len().div_ceil(CHUNK).max(1);
        for i in 0..n {
            let end = ((i + 1) * CHUNK).min(plain.len());
            h.extend_from_slice(&seal_chunk(
                &key,
                i as u64,
                i + 1 == n,
                &plain[i * CHUNK..end],
            ));
        }
        h
    }

    struct Cursor<'a> {
        data: &'a [u8],
        pos: usize,
    }

    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let out = self.data.get(self.pos..self.pos + n)?;
            self.pos += n;
            Some(out)
        }
        fn u8(&mut self) -> Option<u8> {
            Some(self.take(1)?[0])
        }
        fn u16(&mut self) -> Option<u16> {
            Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
        }
        fn u64(&mut self) -> Option<u64> {
            Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
        }
    }

    struct ParsedHeader<'a> {
        version: u8,
        uuid: &'a [u8],
        /// `None` in version 1.
        host: Option<&'a [u8]>,
        log_n: u8,
        salt: &'a [u8],
        wrapped: &'a [u8],
        nonce: &'a [u8],
        /// magic through nonce
        mac_input: &'a [u8],
        mac: &'a [u8],
        payload: &'a [u8],
    }

    /// §2: `None` is a header failure.
    fn parse_header(blob: &[u8]) -> Option<ParsedHeader<'_>> {
        let mut c = Cursor { data: blob, pos: 0 };
        if c.take(10)? != MAGIC {
            return None;
        }
        let version = c.u8()?;
        if version != 1 && version != 2 {
            return None;
        }
        let uuid_len = c.u8()? as usize;
        let uuid = c.take(uuid_len)?;
        let uuid_ok = |b: &u8| b.is_ascii_digit() || b.is_ascii_lowercase() || *b == b'-';
        if !(1..=64).contains(&uuid_len) || !uuid.iter().all(uuid_ok) {
            return None;
        }
        let log_n = c.u8()?;
        if !(10..=22).contains(&log_n) {
            return None;
        }
        let salt = c.take(16)?;
        let wrapped = c.take(48)?;
        c.u64()?; // generation
        c.u64()?; // created
        let tool_len = c.u8()? as usize;
        let tool = c.take(tool_len)?;
        if !(1..=64).contains(&tool_len) || !tool.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return None;
        }
        let persona_len = c.u8()? as usize;
        if persona_len > 64 {
            return None;
        }
        let persona = c.take(persona_len)?;
        if !persona.iter().all(|b| uuid_ok(b) || *b == b'_') {
            return None;
        }
        let host = if version == 2 {
            let host_len = c.u8()? as usize;
            let host = c.take(host_len)?;
            if !(1..=64).contains(&host_len) || !host.iter().all(|b| uuid_ok(b) || *b == b'.') {
                return None;
            }
            Some(host)
        } else {
            None
        };
        let nonce = c.take(16)?;
        let mac_input = &blob[..c.pos];
        let mac = c.take(32)?;
        Some(ParsedHeader {
            version,
            uuid,
            host,
            log_n,
            salt,
            wrapped,
            nonce,
            mac_input,
            mac,
            payload: &blob[c.pos..],
        })
    }

    /// §4: the plaintext released, and whether the STREAM was valid.
    fn open_stream(key: &[u8; 32], payload: &[u8]) -> (Vec<u8>, bool) {
        let mut released = Vec::new();
        let mut pos = 0;
        let mut counter = 0u64;
        loop {
            let rest = &payload[pos..];
            if rest.len() < 16 {
                // No final chunk (or not even a tag where one must be).
                return (released, false);
            }
            let chunk = &rest[..rest.len().min(CHUNK + 16)];
            pos += chunk.len();
            if chunk.len() == CHUNK + 16
                && let Some(plain) = open_chunk(key, counter, false, chunk)
            {
                released.extend_from_slice(&plain);
                counter += 1;
                continue;
            }
            let Some(plain) = open_chunk(key, counter, true, chunk) else {
                return (released, false);
            };
            // The final chunk: empty only if it is the only one, and
            // nothing may follow it. Released only once both hold.
            if (plain.is_empty() && counter > 0) || pos != payload.len() {
                return (released, false);
            }
            released.extend_from_slice(&plain);
            return (released, true);
        }
    }

    fn valid_name(name: &[u8]) -> bool {
        let body = name.strip_suffix(b"$").unwrap_or(name);
        (1..=32).contains(&name.len())
            && body.first() != Some(&b'-')
            && body
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    }

    fn valid_path(path: &[u8]) -> bool {
        std::str::from_utf8(path).is_ok()
            && !path.contains(&0)
            && path
                .split(|b| *b == b'/')
                .all(|c| !c.is_empty() && c != b"." && c != b"..")
    }

    /// §5: `None` is an entries failure.
    fn parse_entries(p: &[u8]) -> Option<()> {
        let mut c = Cursor { data: p, pos: 0 };
        let user_len = c.u8()? as usize;
        let user = c.take(user_len)?;
        if user_len > 32 || (!user.is_empty() && !valid_name(user)) {
            return None;
        }
        let mut seen = HashSet::new();
        loop {
            match c.u8()? {
                0x00 => {
                    let count = c.u64()?;
                    return (count == seen.len() as u64 && c.pos == p.len()).then_some(());
                }
                0x01 => {}
                _ => return None,
            }
            let anchor = c.u8()?;
            let kind = c.u8()?;
            let path_len = c.u16()? as usize;
            let path = c.take(path_len)?;
            let mode = c.u16()?;
            let owner_len = c.u8()? as usize;
            let owner = c.take(owner_len)?;
            let group_len = c.u8()? as usize;
            let group = c.take(group_len)?;
            c.u64()?; // mtime
            let size = c.u64()?;
            let digest = c.take(32)?;
            let ok = anchor <= 1
                && kind <= 1
                && (1..=4096).contains(&path_len)
                && valid_path(path)
                && mode <= 0o7777
                && valid_name(owner)
                && valid_name(group)
                && size <= 1 << 36
                && (kind == 0 || (size == 0 && digest == [0; 32]))
                && seen.insert((anchor, path))
                && seen.len() <= 100_000;
            if !ok {
                return None;
            }
            let body = c.take(size as usize)?;
            if kind == 0 && Sha256::digest(body)[..] != *digest {
                return None;
            }
        }
    }

    /// §2.1, §2.2: trim leading and trailing ASCII whitespace, as the text
    /// lists it, and lower-case ASCII letters.
    fn normalize(raw: &str) -> String {
        const WS: &[char] = &[' ', '\t', '\n', '\x0c', '\r'];
        raw.trim_matches(WS).to_ascii_lowercase()
    }

    /// §6, in order. Returns the outcome and the plaintext released.
    pub fn decrypt(v: &VectorFile) -> (Expect, Vec<u8>) {
        let Some(h) = parse_header(&v.blob) else {
            return (Expect::Header, Vec::new());
        };
        // The caller's UUID, normalized (§2.1): trim ASCII whitespace
        // (SP, HT, LF, FF, CR) only, lower-case, then 1..=64 of [0-9a-z-].
        let expected = normalize(&v.usb_uuid);
        if !(1..=64).contains(&expected.len())
            || !expected
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-')
        {
            return (Expect::BadUsbUuid, Vec::new());
        }
        if h.uuid != expected.as_bytes() {
            return (Expect::Binding, Vec::new());
        }
        // The caller's host, normalized (§2.2); a version 1 blob has none.
        if let Some(host) = &v.host
            && h.host != Some(normalize(host).as_bytes())
        {
            return (Expect::Binding, Vec::new());
        }
        if h.log_n > v.max_log_n {
            return (Expect::Header, Vec::new());
        }
        let kek = kek(&v.passphrase, h.salt, h.log_n, h.uuid, h.host);
        let Ok(file_key) = aead(&kek).decrypt(&Nonce::from([0u8; 12]), h.wrapped) else {
            return (Expect::NoMatch, Vec::new());
        };
        let file_key: [u8; 32] = file_key.try_into().unwrap();
        // Constant time is irrelevant here; this decoder holds no secret
        // worth protecting.
        if hmac(&hkdf(&file_key, b"", label_header(h.version)), h.mac_input)[..] != *h.mac {
            return (Expect::Hmac, Vec::new());
        }
        let key = hkdf(&file_key, h.nonce, LABEL_PAYLOAD);
        let (released, ok) = open_stream(&key, h.payload);
        if !ok {
            return (Expect::Payload, released);
        }
        match parse_entries(&released) {
            Some(()) => (Expect::Success, released),
            None => (Expect::Entries, released),
        }
    }
}
