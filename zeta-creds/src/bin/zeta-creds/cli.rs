//! The command line's definition (clap), the only one: the binary parses
//! with it, `zeta-creds completions` prints completions from it, and `cargo
//! xtask man` includes this file (with `exit.rs`, by `#[path]`) to write
//! the man pages, so all three always describe the same options.
//!
//! Only the definition lives here. What each command does is in `cmd/`;
//! which status it exits with is in `exit.rs` and `error.rs`. This file may
//! use only `clap`, the library's public constants and `crate::exit`, since
//! xtask compiles it too.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use zeta_creds::envelope::{DEFAULT_LOG_N, DEFAULT_MAX_LOG_N, MAX_LOG_N, MIN_LOG_N};
use zeta_creds::{passphrase, restore};

use crate::exit::help_epilogue;

/// `rekey`'s warning, in its --help and man page.
pub const REKEY_NOTE: &str = "\
A rekey is not a revocation: the file key stays the same, so anyone who
knew the old passphrase and kept a copy of the old blob can still read the
payload. After a passphrase is disclosed, re-bundle (a new blob has a new
file key); do not merely rekey.";

/// Carry an operator's credentials across NixOS reinstalls in one
/// authenticated, passphrase-encrypted envelope bound to a USB stick.
#[derive(Parser)]
#[command(name = "zeta-creds", version = zeta_creds::VERSION, after_help = help_epilogue(), max_term_width = 100)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
    /// On stderr, print only errors and warnings: no notes, no progress
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// On stderr, print details too: what the key derivation cost, whether
    /// memory could be locked
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Seal the paths of a manifest into a blob bound to a USB stick
    ///
    /// Expands the manifest's globs under --source-root (symlinks are never
    /// followed), applies excludes, personas and overrides, records owners
    /// by name, prints what it picked, and only then asks for the
    /// passphrase (twice on a terminal; a weak one is refused). The blob is
    /// written atomically (temporary file, fsync, rename); a blob it
    /// replaces is kept as BLOB.prev. Over a blob bound to the same stick
    /// the new one gets the next generation; a blob bound to another stick
    /// is replaced only with --force.
    #[command(after_help = help_epilogue())]
    Bundle(BundleArgs),
    /// Decrypt a blob and write its files under a target root
    ///
    /// Verifies the whole payload into temporary files beside their
    /// destinations and puts them into place only after the last chunk
    /// authenticates. Owners are resolved by name in the target root's
    /// etc/passwd and etc/group; a user's home comes from there too.
    #[command(after_help = help_epilogue())]
    Restore(RestoreArgs),
    /// Show a blob's header without a passphrase (unauthenticated)
    #[command(after_help = help_epilogue())]
    Inspect(InspectArgs),
    /// Decrypt and authenticate a whole blob; write nothing
    #[command(after_help = help_epilogue())]
    Verify(VerifyArgs),
    /// Show what a re-bundle would change: the blob against the disk
    ///
    /// Decrypts the blob (writing nothing) and compares its entries with
    /// what the manifest picks from --source-root now, for the blob's
    /// persona: added, removed, changed content (SHA-256), changed mode or
    /// owner. Exit 0 when they are identical, 10 when they differ.
    #[command(after_help = help_epilogue())]
    Diff(DiffArgs),
    /// Show what changed on disk since the blob was restored (no passphrase)
    ///
    /// Needs no passphrase and no blob. Compares each file the last restore
    /// recorded in TARGET-ROOT/var/lib/zeta-creds/state.json with what is on
    /// disk now, by metadata only (size, mtime, inode, ctime; no contents,
    /// no symlink followed): unchanged, changed (and what), vanished. With a
    /// manifest (--manifest, or TARGET-ROOT/etc/zeta/creds-manifest.toml when
    /// it exists), files it picks that the record does not know are listed
    /// as new. Exit 0 when everything is as the blob carries it, 10 when the
    /// disk changed (re-bundle to carry it), 6 when the state record is
    /// missing or unusable.
    #[command(after_help = help_epilogue())]
    Status(StatusArgs),
    /// Give a blob a new passphrase, USB stick or host, same payload
    ///
    /// Unlocks the blob with its current passphrase, wraps the same file key
    /// under the new passphrase, the new stick's UUID and/or the new host
    /// (a blob of format version 1 comes out as version 2), raises the
    /// generation (so a system that restored the rekeyed blob refuses the
    /// old one), and copies the payload bytes unchanged, verifying them on
    /// the way. Replaces the blob atomically and keeps the old one as
    /// BLOB.prev unless --no-backup. The new passphrase comes from
    /// --new-passphrase-file (consumed) or, on a terminal, is asked twice;
    /// --same-passphrase keeps the current one (to move to a new stick).
    #[command(after_help = format!("{REKEY_NOTE}\n\n{}", help_epilogue()))]
    Rekey(RekeyArgs),
    /// Keep the blob fresh: re-bundle it when carried files changed
    ///
    /// For the system that restores the blob (the NixOS module's timer runs
    /// it). Compares the state record with the disk as `status` does; when
    /// nothing changed, exits 0 without touching the passphrase or the
    /// blob. When carried files changed (or the manifest picks new ones),
    /// it unlocks BLOB with its passphrase (bound to this stick and this
    /// host, so the passphrase is the current one) and seals a new blob
    /// from the same manifest, stick, host, persona and work factor, with a
    /// higher generation; the old blob is kept as BLOB.prev and the state
    /// record raised, so BLOB.prev is refused as a rollback. Refuses a BLOB
    /// that is not the one this system last restored or sealed (a restore
    /// pending). Never drops a carried file that vanished unless
    /// --drop-vanished (exit 10, nothing written). --report-only only says
    /// what changed (exit 10), for hosts where a human types the
    /// passphrase. One line per run.
    Rebundle(RebundleArgs),
    /// Work with manifests
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Print a shell completion script on stdout
    ///
    /// bash: `zeta-creds completions bash > /etc/bash_completion.d/zeta-creds`;
    /// zsh: into a directory on $fpath as `_zeta-creds`; fish: into
    /// ~/.config/fish/completions/zeta-creds.fish.
    Completions(CompletionsArgs),
    /// Run the installer step: seal this machine's credentials at install time
    ///
    /// What installer/zeta-creds-step.sh runs: find the live stick, seal the
    /// manifest's credentials into the target's ESP (or keep, move or
    /// re-bundle the blob already there), write the target's
    /// /etc/zeta/usb-uuid and print the NixOS lines. It takes its own
    /// options: `zeta-creds install-step --help` lists them.
    #[command(disable_help_flag = true)]
    InstallStep {
        /// The step's options (`zeta-creds install-step --help`)
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "STEP-OPTIONS"
        )]
        args: Vec<std::ffi::OsString>,
    },
}

/// `zeta-creds bundle`.
#[derive(Args)]
pub struct BundleArgs {
    /// Manifest (TOML) listing what to carry [default: SOURCE_ROOT/etc/zeta/creds-manifest.toml,
    /// which the NixOS module installs]
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Where to write the blob, e.g. /esp/zeta-creds.enc
    #[arg(long, value_name = "BLOB")]
    pub out: PathBuf,
    /// The stick the blob is bound to.
    #[command(flatten)]
    pub uuid: UuidArgs,
    /// Root of the system whose credentials are collected
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub source_root: PathBuf,
    /// The host the blob is sealed for (default: --source-root's
    /// etc/hostname, or the kernel's host name when it is /)
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Carry only entries for this persona (and those for every persona)
    #[arg(long, value_name = "NAME")]
    pub persona: Option<String>,
    /// scrypt work factor log2(N), pinned in the blob; below 15 is for tests
    #[arg(long, value_name = "LOG_N", default_value_t = DEFAULT_LOG_N,
          value_parser = clap::value_parser!(u8).range(MIN_LOG_N as i64..=MAX_LOG_N as i64))]
    pub work_factor: u8,
    /// Replace a blob bound to another USB stick, or one that cannot be read
    #[arg(long)]
    pub force: bool,
    /// Replace a blob at --out sealed for another host (refused by default,
    /// exit 4: it holds that host's credentials)
    #[arg(long)]
    pub allow_other_host: bool,
    /// Whose home "~" means, instead of the manifest's user
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Print the result as JSON on stdout (docs/JSON.md), a failure too
    #[arg(long)]
    pub json: bool,
    /// `--no-backup`, `--allow-weak-passphrase`.
    #[command(flatten)]
    pub new_blob: NewBlobArgs,
    /// Where the new passphrase comes from.
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

/// What `bundle` and `rekey` share: they replace a blob, under a
/// passphrase that may be new.
#[derive(Args)]
pub struct NewBlobArgs {
    /// Do not keep the blob being replaced as BLOB.prev
    #[arg(long)]
    pub no_backup: bool,
    /// Accept a new passphrase that zxcvbn rates below 3 of 4 (for tests)
    #[arg(long)]
    pub allow_weak_passphrase: bool,
}

/// `zeta-creds restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// The blob to restore, e.g. /esp/zeta-creds.enc
    #[arg(long, value_name = "BLOB")]
    pub blob: PathBuf,
    /// The stick the blob must be bound to.
    #[command(flatten)]
    pub uuid: UuidArgs,
    /// Root of the system to write into
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub target_root: PathBuf,
    /// The host this is (default: --target-root's etc/hostname, or the
    /// kernel's host name when it is /); a blob sealed for another is
    /// refused (exit 4)
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Restore a blob sealed for another host, or one that records none
    /// (moving a host's identity to new hardware)
    #[arg(long, conflicts_with = "host")]
    pub allow_other_host: bool,
    /// Whose home "~" means, instead of the manifest user in the blob
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Refuse a blob bundled for another persona
    #[arg(long, value_name = "NAME")]
    pub persona: Option<String>,
    /// Decrypt, verify and report what would change; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// A file changed locally since the last restore: keep it (default),
    /// let the blob win, or let the blob win and keep NAME.zeta-creds-bak
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = OnConflict::KeepModified)]
    pub on_conflict: OnConflict,
    /// Restore a blob older than the newest this system sealed or restored
    #[arg(long)]
    pub allow_rollback: bool,
    /// Write any path the blob names, not only those the host's manifest
    /// (--target-root's etc/zeta/creds-manifest.toml) carries
    #[arg(long)]
    pub allow_any_path: bool,
    /// Do nothing, asking for no passphrase, when the blob is the one
    /// last restored under --target-root (the same header bytes and MAC);
    /// otherwise restore as usual
    #[arg(long)]
    pub if_new: bool,
    /// With --if-new: only say whether a restore is needed (exit 10) or the
    /// blob is already restored (exit 0); asks and writes nothing
    #[arg(long, requires = "if_new")]
    pub check: bool,
    /// Refuse (exit 4) unless the stick the blob is bound to is attached
    #[arg(long)]
    pub require_usb_present: bool,
    /// With --require-usb-present: how long to wait for the stick to appear
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        requires = "require_usb_present"
    )]
    pub usb_wait: u64,
    /// With --require-usb-present: where attached filesystems are listed
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/dev/disk/by-uuid",
        requires = "require_usb_present"
    )]
    pub usb_device_dir: PathBuf,
    /// The work-factor cap.
    #[command(flatten)]
    pub cap: WorkFactorCap,
    /// Print the result as JSON on stdout (docs/JSON.md), a failure too
    #[arg(long)]
    pub json: bool,
    /// Where the passphrase comes from.
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

/// `zeta-creds inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// The blob to inspect
    #[arg(value_name = "BLOB")]
    pub blob: PathBuf,
    /// Print the result as JSON on stdout (docs/JSON.md), a failure too
    #[arg(long)]
    pub json: bool,
}

/// `zeta-creds verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The blob to verify
    #[arg(long, value_name = "BLOB")]
    pub blob: PathBuf,
    /// List the entries (paths, modes, owners, sizes)
    #[arg(long)]
    pub list: bool,
    /// Print the result as JSON on stdout (docs/JSON.md), a failure too
    #[arg(long)]
    pub json: bool,
    /// The work-factor cap.
    #[command(flatten)]
    pub cap: WorkFactorCap,
    /// Where the passphrase comes from.
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

/// `zeta-creds diff`.
#[derive(Args)]
pub struct DiffArgs {
    /// The blob to compare, e.g. /esp/zeta-creds.enc
    #[arg(long, value_name = "BLOB")]
    pub blob: PathBuf,
    /// Manifest (TOML) that a re-bundle would use [default:
    /// SOURCE_ROOT/etc/zeta/creds-manifest.toml, which the NixOS module installs]
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Root of the system whose credentials are compared
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub source_root: PathBuf,
    /// Whose home "~" means, instead of the manifest's user (as bundle --user)
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Print the result as JSON on stdout (docs/JSON.md), a failure too
    #[arg(long)]
    pub json: bool,
    /// The work-factor cap.
    #[command(flatten)]
    pub cap: WorkFactorCap,
    /// Where the passphrase comes from.
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

/// `zeta-creds status`.
#[derive(Args)]
pub struct StatusArgs {
    /// Root of the system whose state record and files are checked
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub target_root: PathBuf,
    /// Manifest (TOML) whose picks not in the record are listed as new
    /// [default: TARGET-ROOT/etc/zeta/creds-manifest.toml, when it exists]
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// With the manifest: look for new files as a bundle for this persona
    /// would pick them
    #[arg(long, value_name = "NAME")]
    pub persona: Option<String>,
    /// Print the result as JSON on stdout (docs/JSON.md), a failure too
    #[arg(long)]
    pub json: bool,
}

/// `zeta-creds rebundle`.
#[derive(Args)]
pub struct RebundleArgs {
    /// The blob to keep fresh, replaced in place, e.g. /boot/zeta-creds.enc
    #[arg(long, value_name = "BLOB")]
    pub blob: PathBuf,
    /// The stick the blob is bound to.
    #[command(flatten)]
    pub uuid: UuidArgs,
    /// Root of the running system (its state record, its files)
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub source_root: PathBuf,
    /// Manifest [default: SOURCE_ROOT/etc/zeta/creds-manifest.toml]
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Whose home "~" means, instead of the manifest's user (as bundle
    /// --user: the user the blob was sealed for)
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// The persona the blob was bundled for (empty: none)
    #[arg(long, value_name = "NAME")]
    pub persona: Option<String>,
    /// Only report what changed (exit 10); ask and seal nothing
    #[arg(long)]
    pub report_only: bool,
    /// Re-bundle even when carried files vanished, dropping them from the blob
    #[arg(long, conflicts_with = "report_only")]
    pub drop_vanished: bool,
    /// Write a one-line login message here when the blob is stale (mode
    /// 0644, no paths in it), and remove it when the blob is fresh
    #[arg(long, value_name = "FILE")]
    pub notice: Option<PathBuf>,
    /// The work-factor cap.
    #[command(flatten)]
    pub cap: WorkFactorCap,
    /// Where the blob's current passphrase comes from.
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

/// `zeta-creds rekey`.
#[derive(Args)]
pub struct RekeyArgs {
    /// The blob to rekey, in place
    #[arg(long, value_name = "BLOB")]
    pub blob: PathBuf,
    /// Read the new passphrase from FILE, then delete FILE on every exit path
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
    /// Keep the current passphrase (with --new-usb-uuid, --new-host or --work-factor)
    #[arg(long, conflicts_with = "new_passphrase_file")]
    pub same_passphrase: bool,
    /// The stick to bind to instead, if any.
    #[command(flatten)]
    pub new_uuid: NewUuidArgs,
    /// Seal the blob for this host instead (required for a blob of format
    /// version 1, which records no host)
    #[arg(long, value_name = "NAME")]
    pub new_host: Option<String>,
    /// New scrypt work factor log2(N) (default: keep the blob's)
    #[arg(long, value_name = "LOG_N",
          value_parser = clap::value_parser!(u8).range(MIN_LOG_N as i64..=MAX_LOG_N as i64))]
    pub work_factor: Option<u8>,
    /// The work-factor cap.
    #[command(flatten)]
    pub cap: WorkFactorCap,
    /// Print the result as JSON on stdout (docs/JSON.md), a failure too
    #[arg(long)]
    pub json: bool,
    /// `--no-backup`, `--allow-weak-passphrase`.
    #[command(flatten)]
    pub new_blob: NewBlobArgs,
    /// Where the current passphrase comes from.
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

/// `zeta-creds completions`.
#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `zeta-creds manifest ...`
#[derive(Subcommand)]
pub enum ManifestCommand {
    /// Validate a manifest and show what each entry matches now
    ///
    /// Parses the manifest (every error names its line and the fix), then
    /// expands each entry under --source-root exactly as bundle would and
    /// prints what it matches: paths, file count, total size, skipped paths
    /// and whether a missing entry is required. Reads no file contents and
    /// asks no passphrase. Exit 6 when a required entry matches nothing.
    #[command(after_help = help_epilogue())]
    Check(ManifestCheckArgs),
}

/// `zeta-creds manifest check`.
#[derive(Args)]
pub struct ManifestCheckArgs {
    /// The manifest to check [default: SOURCE_ROOT/etc/zeta/creds-manifest.toml, which the
    /// NixOS module installs]
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Root of the system to match against
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub source_root: PathBuf,
    /// Check what a bundle for this persona would pick
    #[arg(long, value_name = "NAME")]
    pub persona: Option<String>,
    /// Only validate the manifest and match nothing (a build-time check,
    /// e.g. in a NixOS checkPhase, where the system is not there)
    #[arg(long, conflicts_with_all = ["source_root", "persona"])]
    pub syntax_only: bool,
    /// Print the result as JSON on stdout (docs/JSON.md), a failure too
    #[arg(long)]
    pub json: bool,
}

/// The shells `completions` knows. (No doc comments on the variants:
/// clap would show them as per-value help.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[allow(missing_docs)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// `--on-conflict`: the binary's spelling of [`restore::OnConflict`], so
/// the library needs no clap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnConflict {
    /// Keep the local file and report it, to be carried by a re-bundle
    KeepModified,
    /// The blob wins.
    Overwrite,
    /// The blob wins; the local file is kept as NAME.zeta-creds-bak.
    Backup,
}

impl From<OnConflict> for restore::OnConflict {
    fn from(policy: OnConflict) -> restore::OnConflict {
        match policy {
            OnConflict::KeepModified => restore::OnConflict::KeepModified,
            OnConflict::Overwrite => restore::OnConflict::Overwrite,
            OnConflict::Backup => restore::OnConflict::Backup,
        }
    }
}

/// `--max-work-factor`, for every command that unlocks a blob.
#[derive(Args)]
pub struct WorkFactorCap {
    /// Refuse blobs whose work factor exceeds this, before running scrypt
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_LOG_N,
          value_parser = clap::value_parser!(u8).range(MIN_LOG_N as i64..=MAX_LOG_N as i64))]
    pub max_work_factor: u8,
}

/// `--usb-uuid` or `--usb-uuid-file`, exactly one.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct UuidArgs {
    /// The USB stick's filesystem UUID, as `blkid -s UUID -o value` prints it
    #[arg(long, value_name = "UUID")]
    pub usb_uuid: Option<String>,
    /// A file holding the UUID, e.g. /etc/zeta/usb-uuid (whitespace trimmed)
    #[arg(long, value_name = "FILE")]
    pub usb_uuid_file: Option<PathBuf>,
}

/// `rekey`'s `--new-usb-uuid` or `--new-usb-uuid-file`, at most one.
#[derive(Args)]
#[group(required = false, multiple = false)]
pub struct NewUuidArgs {
    /// Bind the blob to this USB stick instead (a new stick's UUID)
    #[arg(long, value_name = "UUID")]
    pub new_usb_uuid: Option<String>,
    /// A file holding the new stick's UUID (whitespace trimmed)
    #[arg(long, value_name = "FILE")]
    pub new_usb_uuid_file: Option<PathBuf>,
}

/// The passphrase sources (README, "Passphrase sources").
#[derive(Args)]
pub struct PassphraseArgs {
    /// Read the passphrase from this inherited file descriptor
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<i32>,
    /// Read the passphrase from FILE, then delete FILE on every exit path
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Do not delete the --passphrase-file
    #[arg(long, requires = "passphrase_file")]
    pub keep_passphrase_file: bool,
    /// Ask through systemd-ask-password --no-tty (boot-time agents, console)
    #[arg(long)]
    pub ask_password: bool,
    /// How long --ask-password waits for an answer
    #[arg(long, value_name = "SECS", default_value_t = passphrase::DEFAULT_ASK_TIMEOUT_SECS)]
    pub ask_password_timeout: u64,
}

/// The whole command, for completions and man pages.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        super::command().debug_assert();
    }
}
