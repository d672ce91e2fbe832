//! The `--json` documents, version [`JSON_VERSION`]: one struct per
//! document, the only definition of the field names (docs/JSON.md
//! documents them; `tests/json.rs` compiles this file by `#[path]`, runs
//! every command and reads its stdout back into these structs with
//! unknown fields denied, and checks docs/JSON.md names exactly the keys
//! each document has).
//!
//! Shared names, the same everywhere: `blob` is the blob's path; `path` is
//! an entry's path as the blob stores it (`~/x` or `/x`); `destination` is
//! a file's path on the system (`/home/zeta/x`); `counts` holds a report's
//! counts; timestamps are RFC 3339 in UTC (`2026-12-05T10:47:24Z`); an
//! empty persona or user is `null`. Every document starts with `version`,
//! `exit_code`, `exit_name` (the exit status and its name) and `error`
//! (`null`, or the message and hint of the failure the run ends with).
//!
//! This file may use only `serde` and `std`, since the test compiles it.
#![forbid(unsafe_code)]

#[cfg(test)]
use serde::Deserialize;
use serde::Serialize;

/// The version of the JSON documents; raised when a field changes meaning
/// or disappears (adding a field does not raise it).
pub const JSON_VERSION: u32 = 1;

/// Why a run failed, in every document whose `exit_code` is a failure
/// (and `status`'s exit 1, `restore`'s exit 7, `manifest check`'s exit 6,
/// which end after their report).
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct ErrorDoc {
    /// The message `zeta-creds: error:` prints on stderr.
    pub message: String,
    /// The hint that follows it, if any.
    pub hint: Option<String>,
}

/// What a command that failed before it had a report prints.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct FailureDoc {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// The exit status.
    pub exit_code: u8,
    /// Its name (`wrong-passphrase`, ...).
    pub exit_name: String,
    /// Why.
    pub error: ErrorDoc,
}

/// `inspect --json`: the header, unauthenticated.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct InspectDoc {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// The exit status.
    pub exit_code: u8,
    /// Its name.
    pub exit_name: String,
    /// Always `null` here: inspect has no failure after its report.
    pub error: Option<ErrorDoc>,
    /// The blob.
    pub blob: String,
    /// Always false: no passphrase checked the MAC.
    pub authenticated: bool,
    /// Says so, for readers.
    pub note: String,
    /// The envelope format version.
    pub format_version: u8,
    /// The stick the blob claims to be bound to.
    pub usb_uuid: String,
    /// The host it claims; `null` for format version 1.
    pub host: Option<String>,
    /// scrypt log2(N).
    pub work_factor: u8,
    /// Memory scrypt needs at that work factor.
    pub kdf_memory_bytes: u64,
    /// The claimed generation.
    pub generation: u64,
    /// When it was sealed, RFC 3339.
    pub created: String,
    /// The zeta-creds version that sealed it.
    pub tool_version: String,
    /// The persona; `null` for none.
    pub persona: Option<String>,
    /// Length of the header, its MAC included.
    pub header_bytes: u64,
    /// Length of the encrypted payload (the rest of the file).
    pub payload_bytes: u64,
}

/// `verify --json`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct VerifyDoc {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// The exit status.
    pub exit_code: u8,
    /// Its name.
    pub exit_name: String,
    /// Always `null` here.
    pub error: Option<ErrorDoc>,
    /// The blob.
    pub blob: String,
    /// Always true: the MAC and every chunk checked out.
    pub authenticated: bool,
    /// The stick it is bound to.
    pub usb_uuid: String,
    /// The host it is sealed for; `null` for format version 1.
    pub host: Option<String>,
    /// scrypt log2(N).
    pub work_factor: u8,
    /// The generation.
    pub generation: u64,
    /// When it was sealed, RFC 3339.
    pub created: String,
    /// The zeta-creds version that sealed it.
    pub tool_version: String,
    /// The persona; `null` for none.
    pub persona: Option<String>,
    /// Whose home `~` means; `null` for none.
    pub user: Option<String>,
    /// How many entries the payload holds.
    pub counts: VerifyCounts,
    /// The entries with `--list`, else `null`.
    pub entries: Option<Vec<VerifyEntryDoc>>,
}

/// `verify`'s counts.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct VerifyCounts {
    /// Entries in the payload.
    pub entries: u64,
}

/// One entry of `verify --list --json`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct VerifyEntryDoc {
    /// `~/x` or `/x`.
    pub path: String,
    /// `file` or `dir`.
    pub kind: String,
    /// Octal, four digits.
    pub mode: String,
    /// Owner, by name.
    pub owner: String,
    /// Group, by name.
    pub group: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, RFC 3339.
    pub mtime: String,
}

/// `restore --json`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct RestoreDoc {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// The exit status.
    pub exit_code: u8,
    /// Its name.
    pub exit_name: String,
    /// `null`, or (exit 7) which entries failed.
    pub error: Option<ErrorDoc>,
    /// The blob.
    pub blob: String,
    /// Its generation (authenticated after a restore; as the header says
    /// when `if_new` decided).
    pub generation: u64,
    /// Whether nothing was written (`--dry-run`).
    pub dry_run: bool,
    /// Whose home `~` meant; `null` when no restore ran.
    pub user: Option<String>,
    /// What `--if-new` found; `null` without `--if-new`, or when it
    /// restored.
    pub if_new: Option<IfNewDoc>,
    /// How many entries, and how many ended each way.
    pub counts: RestoreCounts,
    /// One per entry, in blob order (empty when `if_new` decided).
    pub entries: Vec<RestoreEntryDoc>,
    /// Things to know that are not entry failures.
    pub notes: Vec<String>,
}

/// What `--if-new` found without a passphrase.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct IfNewDoc {
    /// Whether the blob is the one last restored.
    pub already_restored: bool,
    /// When it was sealed, RFC 3339 (unauthenticated).
    pub sealed: String,
    /// Why a restore is needed; `null` when it is not.
    pub reason: Option<String>,
}

/// `restore`'s counts.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct RestoreCounts {
    /// Entries in the report.
    pub entries: u64,
    /// Written where nothing was.
    pub created: u64,
    /// Replaced, or given the blob's mode and owner.
    pub updated: u64,
    /// Already as the blob has it.
    pub unchanged: u64,
    /// Changed locally; left alone.
    pub kept: u64,
    /// Not written.
    pub failed: u64,
}

/// One entry of a restore.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct RestoreEntryDoc {
    /// `~/x` or `/x`, as the blob stores it.
    pub path: String,
    /// Where it goes on the system.
    pub destination: String,
    /// `file`, `dir`, or `state` for the state record.
    pub kind: String,
    /// `created`, `updated`, `unchanged`, `kept` or `failed`.
    pub outcome: String,
    /// Why, for a kept or failed entry.
    pub reason: Option<String>,
}

/// `diff --json`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct DiffDoc {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// The exit status: 0 identical, 10 different.
    pub exit_code: u8,
    /// Its name.
    pub exit_name: String,
    /// Always `null` here.
    pub error: Option<ErrorDoc>,
    /// The blob.
    pub blob: String,
    /// The manifest a re-bundle would use.
    pub manifest: String,
    /// Where it picks from.
    pub source_root: String,
    /// Whether nothing differs.
    pub identical: bool,
    /// The user, when the manifest's is not the blob's.
    pub user_changed: Option<UserChangedDoc>,
    /// How many of each.
    pub counts: DiffCounts,
    /// In path order.
    pub changes: Vec<DiffChangeDoc>,
}

/// `diff`'s user change.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct UserChangedDoc {
    /// The blob's user.
    pub blob: String,
    /// The manifest's.
    pub manifest: String,
}

/// `diff`'s counts.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct DiffCounts {
    /// Entries in the blob.
    pub in_blob: u64,
    /// Entries picked now.
    pub on_disk: u64,
    /// On disk, not in the blob.
    pub added: u64,
    /// In the blob, not on disk.
    pub removed: u64,
    /// Different contents.
    pub content: u64,
    /// Different mode, owner or group.
    pub meta: u64,
    /// Picked, but cannot be read now.
    pub unreadable: u64,
}

/// One difference.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct DiffChangeDoc {
    /// `added`, `removed`, `content` or `meta`.
    pub kind: String,
    /// `~/x` or `/x`.
    pub path: String,
    /// What changed, blob → disk, when there is more to say.
    pub detail: Option<String>,
}

/// `status --json`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct StatusDoc {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// The exit status: 0 fresh, 10 stale, 1 unknown.
    pub exit_code: u8,
    /// Its name.
    pub exit_name: String,
    /// `null`, or (exit 1) why freshness is unknown.
    pub error: Option<ErrorDoc>,
    /// The root checked.
    pub target_root: String,
    /// The state record read.
    pub state_record: String,
    /// Generation of the blob last restored.
    pub generation: u64,
    /// When it was sealed, RFC 3339; `null` if the record does not say.
    pub sealed: Option<String>,
    /// The manifest new files were looked for with; `null`: not looked.
    pub manifest: Option<String>,
    /// Whether the disk holds exactly what the blob carries.
    pub fresh: bool,
    /// How many files are in each state.
    pub counts: StatusCounts,
    /// In path order.
    pub files: Vec<StatusFileDoc>,
}

/// `status`'s counts.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct StatusCounts {
    /// As the restore left them.
    pub unchanged: u64,
    /// Changed since.
    pub changed: u64,
    /// Gone.
    pub vanished: u64,
    /// Picked now, not carried.
    pub new: u64,
    /// Not checkable.
    pub unreadable: u64,
}

/// One file of `status`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct StatusFileDoc {
    /// The file on the system.
    pub destination: String,
    /// `unchanged`, `changed`, `vanished`, `new` or `unreadable`.
    pub state: String,
    /// For a changed file, what changed; else `null`.
    pub what: Option<Vec<String>>,
    /// For an unreadable file, why; else `null`.
    pub reason: Option<String>,
}

/// `bundle --json`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct BundleDoc {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// The exit status.
    pub exit_code: u8,
    /// Its name.
    pub exit_name: String,
    /// Always `null` here.
    pub error: Option<ErrorDoc>,
    /// The blob written.
    pub blob: String,
    /// Its generation.
    pub generation: u64,
    /// The stick it is bound to.
    pub usb_uuid: String,
    /// The host it is sealed for.
    pub host: String,
    /// scrypt log2(N).
    pub work_factor: u8,
    /// Memory scrypt needs at that work factor.
    pub kdf_memory_bytes: u64,
    /// How long the key derivation took here, in milliseconds.
    pub kdf_ms: u64,
    /// The replaced blob, when it was kept as `BLOB.prev`.
    pub kept_previous: Option<KeptPreviousDoc>,
    /// What was sealed.
    pub counts: BundleCounts,
}

/// The blob kept as `BLOB.prev`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct KeptPreviousDoc {
    /// Its path.
    pub blob: String,
    /// Its generation.
    pub generation: u64,
}

/// `bundle`'s counts.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct BundleCounts {
    /// Entries sealed.
    pub entries: u64,
    /// Regular files among them.
    pub files: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// `rekey --json`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct RekeyDoc {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// The exit status.
    pub exit_code: u8,
    /// Its name.
    pub exit_name: String,
    /// Always `null` here.
    pub error: Option<ErrorDoc>,
    /// The blob, rekeyed in place.
    pub blob: String,
    /// Whether the passphrase stayed the same.
    pub same_passphrase: bool,
    /// The header before.
    pub old: RekeyHeaderDoc,
    /// The header after.
    pub new: RekeyHeaderDoc,
    /// The old blob, when it was kept as `BLOB.prev`.
    pub kept_previous: Option<KeptPreviousDoc>,
    /// What was copied.
    pub counts: RekeyCounts,
}

/// One side of a rekey.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct RekeyHeaderDoc {
    /// The generation.
    pub generation: u64,
    /// The stick.
    pub usb_uuid: String,
    /// The host; `null` for format version 1.
    pub host: Option<String>,
    /// scrypt log2(N).
    pub work_factor: u8,
}

/// `rekey`'s counts.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct RekeyCounts {
    /// Entries verified on the way.
    pub entries: u64,
    /// Payload bytes copied unchanged.
    pub payload_bytes: u64,
}

/// `manifest check --json`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct ManifestCheckDoc {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// The exit status: 0, or 6 when a required entry matches nothing.
    pub exit_code: u8,
    /// Its name.
    pub exit_name: String,
    /// `null`, or the error a bundle would give.
    pub error: Option<ErrorDoc>,
    /// The manifest.
    pub manifest: String,
    /// Its user.
    pub user: String,
    /// Whether only the syntax was checked (`--syntax-only`).
    pub syntax_only: bool,
    /// Where entries were matched; `null` with `--syntax-only`.
    pub source_root: Option<String>,
    /// The persona picked for; `null` for none.
    pub persona: Option<String>,
    /// How many entries, and (unless `--syntax-only`) what they match.
    pub counts: ManifestCounts,
    /// Per entry, what it matches; `null` with `--syntax-only`.
    pub entries: Option<Vec<ManifestEntryDoc>>,
}

/// `manifest check`'s counts; all but `entries` are `null` with
/// `--syntax-only`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct ManifestCounts {
    /// Entries in the manifest.
    pub entries: u64,
    /// Entries that apply to the persona.
    pub applying: Option<u64>,
    /// Of those, entries that match nothing.
    pub missing: Option<u64>,
    /// Of those, required ones.
    pub required_missing: Option<u64>,
    /// Regular files picked.
    pub files: Option<u64>,
    /// Bytes of file content picked.
    pub bytes: Option<u64>,
    /// Paths not carried (excluded, symlinks, special files, ...).
    pub skipped: Option<u64>,
}

/// One manifest entry and what it matches.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Deserialize), serde(deny_unknown_fields))]
pub struct ManifestEntryDoc {
    /// Its line in the manifest.
    pub line: u64,
    /// The `path` as written (`~/x`, `/x`, a glob).
    pub path: String,
    /// Whether it must match something.
    pub required: bool,
    /// The personas it belongs to (empty: every one).
    pub personas: Vec<String>,
    /// Whether it applies to the persona.
    pub applies: bool,
    /// The existing paths it matches on the system.
    pub matches: Vec<String>,
    /// Files it picks.
    pub files: u64,
    /// Directories it picks.
    pub dirs: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Its `max_size` in bytes.
    pub max_size: u64,
    /// Paths under it not carried.
    pub skipped: u64,
    /// Its `description`; `null` for none.
    pub description: Option<String>,
}

/// Seconds since the epoch as RFC 3339 in UTC, `2026-12-05T10:47:24Z`
/// (proleptic Gregorian; before 1970 too).
pub fn rfc3339(secs: i64) -> String {
    let (year, month, day, h, m, s) = zeta_creds::msg::civil(secs);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_467_644), "2026-12-05T10:47:24Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
