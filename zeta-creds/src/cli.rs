//! The command line's definition (clap), shared by the binary, the shell
//! completions (`zeta-creds completions`) and the man pages (`cargo xtask
//! man`), so all three always describe the same options.
//!
//! Only the definition lives here; what each command does is in `main.rs`,
//! which also decides every exit code.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::envelope::{DEFAULT_LOG_N, DEFAULT_MAX_LOG_N, MAX_LOG_N, MIN_LOG_N};
use crate::{passphrase, restore};

/// The exit status table, shown by `--help` and in the man pages.
pub const EXIT_CODES: &str = "\
Exit status:
   0  success (also: nothing to do; diff: no difference)
   1  other/internal error
   2  usage error
   3  wrong passphrase
   4  blob is bound to another USB UUID
   5  blob corrupt, tampered, truncated or unsupported version/parameters
   6  required input missing (blob, UUID file, passphrase source, manifest path)
   7  restore incomplete: some entries could not be written (each one named)
   8  rollback refused: blob older than the one last restored on this system
  10  diff: the blob and the disk differ

Passphrase sources, first match wins: $CREDENTIALS_DIRECTORY/passphrase,
--passphrase-fd, --passphrase-file (consumed), --ask-password,
ZETA_CREDS_PASSPHRASE (discouraged), a terminal prompt. A passphrase is
never accepted as a command-line argument.";

/// `rekey`'s warning, in its --help and man page.
pub const REKEY_NOTE: &str = "\
A rekey is not a revocation: the file key stays the same, so anyone who
knew the old passphrase and kept a copy of the old blob can still read the
payload. After a passphrase is disclosed, re-bundle (a new blob has a new
file key); do not merely rekey.";

/// Carry an operator's credentials across NixOS reinstalls in one
/// authenticated, passphrase-encrypted envelope bound to a USB stick.
#[derive(Parser)]
#[command(name = "zeta-creds", version, after_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
    #[command(after_help = EXIT_CODES)]
    Bundle {
        /// Manifest (TOML) listing what to carry
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        /// Where to write the blob, e.g. /esp/zeta-creds.enc
        #[arg(long, value_name = "BLOB")]
        out: PathBuf,
        #[command(flatten)]
        uuid: UuidArgs,
        /// Root of the system whose credentials are collected
        #[arg(long, value_name = "DIR", default_value = "/")]
        source_root: PathBuf,
        /// Carry only entries for this persona (and those for every persona)
        #[arg(long, value_name = "NAME")]
        persona: Option<String>,
        /// scrypt work factor log2(N), pinned in the blob; below 15 is for tests
        #[arg(long, value_name = "LOG_N", default_value_t = DEFAULT_LOG_N,
              value_parser = clap::value_parser!(u8).range(MIN_LOG_N as i64..=MAX_LOG_N as i64))]
        work_factor: u8,
        /// Replace a blob bound to another USB stick, or one that cannot be read
        #[arg(long)]
        force: bool,
        /// Do not keep the replaced blob as BLOB.prev
        #[arg(long)]
        no_backup: bool,
        /// Accept a passphrase that zxcvbn rates below 3 of 4 (for tests)
        #[arg(long)]
        allow_weak_passphrase: bool,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Decrypt a blob and write its files under a target root
    ///
    /// Verifies the whole payload into temporary files beside their
    /// destinations and puts them into place only after the last chunk
    /// authenticates. Owners are resolved by name in the target root's
    /// etc/passwd and etc/group; a user's home comes from there too.
    #[command(after_help = EXIT_CODES)]
    Restore {
        /// The blob to restore, e.g. /esp/zeta-creds.enc
        #[arg(long, value_name = "BLOB")]
        blob: PathBuf,
        #[command(flatten)]
        uuid: UuidArgs,
        /// Root of the system to write into
        #[arg(long, value_name = "DIR", default_value = "/")]
        target_root: PathBuf,
        /// Whose home "~" means, instead of the manifest user in the blob
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Refuse a blob bundled for another persona
        #[arg(long, value_name = "NAME")]
        persona: Option<String>,
        /// Decrypt, verify and report what would change; write nothing
        #[arg(long)]
        dry_run: bool,
        /// A file changed locally since the last restore: keep it (default),
        /// let the blob win, or let the blob win and keep NAME.zeta-creds-bak
        #[arg(long, value_name = "POLICY", value_enum, default_value_t = restore::OnConflict::KeepModified)]
        on_conflict: restore::OnConflict,
        /// Restore a blob older than the one last restored on this system
        #[arg(long)]
        allow_rollback: bool,
        /// Refuse (exit 4) unless the stick the blob is bound to is attached
        #[arg(long)]
        require_usb_present: bool,
        /// With --require-usb-present: how long to wait for the stick to appear
        #[arg(
            long,
            value_name = "SECS",
            default_value_t = 10,
            requires = "require_usb_present"
        )]
        usb_wait: u64,
        /// With --require-usb-present: where attached filesystems are listed
        #[arg(
            long,
            value_name = "DIR",
            default_value = "/dev/disk/by-uuid",
            requires = "require_usb_present"
        )]
        usb_device_dir: PathBuf,
        /// Refuse blobs whose work factor exceeds this, before running scrypt
        #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_LOG_N,
              value_parser = clap::value_parser!(u8).range(MIN_LOG_N as i64..=MAX_LOG_N as i64))]
        max_work_factor: u8,
        /// Print the summary as JSON on stdout
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Show a blob's header without a passphrase (unauthenticated)
    #[command(after_help = EXIT_CODES)]
    Inspect {
        /// The blob to inspect
        #[arg(value_name = "BLOB")]
        blob: PathBuf,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Decrypt and authenticate a whole blob; write nothing
    #[command(after_help = EXIT_CODES)]
    Verify {
        /// The blob to verify
        #[arg(long, value_name = "BLOB")]
        blob: PathBuf,
        /// List the entries (paths, modes, owners, sizes)
        #[arg(long)]
        list: bool,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
        /// Refuse blobs whose work factor exceeds this, before running scrypt
        #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_LOG_N,
              value_parser = clap::value_parser!(u8).range(MIN_LOG_N as i64..=MAX_LOG_N as i64))]
        max_work_factor: u8,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Show what a re-bundle would change: the blob against the disk
    ///
    /// Decrypts the blob (writing nothing) and compares its entries with
    /// what the manifest picks from --source-root now, for the blob's
    /// persona: added, removed, changed content (SHA-256), changed mode or
    /// owner. Exit 0 when they are identical, 10 when they differ.
    #[command(after_help = EXIT_CODES)]
    Diff {
        /// The blob to compare, e.g. /esp/zeta-creds.enc
        #[arg(long, value_name = "BLOB")]
        blob: PathBuf,
        /// Manifest (TOML) that a re-bundle would use
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        /// Root of the system whose credentials are compared
        #[arg(long, value_name = "DIR", default_value = "/")]
        source_root: PathBuf,
        /// Refuse blobs whose work factor exceeds this, before running scrypt
        #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_LOG_N,
              value_parser = clap::value_parser!(u8).range(MIN_LOG_N as i64..=MAX_LOG_N as i64))]
        max_work_factor: u8,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Give a blob a new passphrase and/or a new USB stick, same payload
    ///
    /// Unlocks the blob with its current passphrase, wraps the same file key
    /// under the new passphrase and/or the new stick's UUID, raises the
    /// generation (so a system that restored the rekeyed blob refuses the
    /// old one), and copies the payload bytes unchanged, verifying them on
    /// the way. Replaces the blob atomically and keeps the old one as
    /// BLOB.prev unless --no-backup. The new passphrase comes from
    /// --new-passphrase-file (consumed) or, on a terminal, is asked twice;
    /// --same-passphrase keeps the current one (to move to a new stick).
    #[command(after_help = format!("{REKEY_NOTE}\n\n{EXIT_CODES}"))]
    Rekey {
        /// The blob to rekey, in place
        #[arg(long, value_name = "BLOB")]
        blob: PathBuf,
        /// Read the new passphrase from FILE, then delete FILE on every exit path
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
        /// Keep the current passphrase (with --new-usb-uuid or --work-factor)
        #[arg(long, conflicts_with = "new_passphrase_file")]
        same_passphrase: bool,
        #[command(flatten)]
        new_uuid: NewUuidArgs,
        /// New scrypt work factor log2(N) (default: keep the blob's)
        #[arg(long, value_name = "LOG_N",
              value_parser = clap::value_parser!(u8).range(MIN_LOG_N as i64..=MAX_LOG_N as i64))]
        work_factor: Option<u8>,
        /// Refuse blobs whose work factor exceeds this, before running scrypt
        #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_LOG_N,
              value_parser = clap::value_parser!(u8).range(MIN_LOG_N as i64..=MAX_LOG_N as i64))]
        max_work_factor: u8,
        /// Do not keep the old blob as BLOB.prev
        #[arg(long)]
        no_backup: bool,
        /// Accept a new passphrase that zxcvbn rates below 3 of 4 (for tests)
        #[arg(long)]
        allow_weak_passphrase: bool,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Work with manifests
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Print a shell completion script on stdout
    ///
    /// bash: `zeta-creds completions bash > /etc/bash_completion.d/zeta-creds`;
    /// zsh: into a directory on $fpath as `_zeta-creds`; fish: into
    /// ~/.config/fish/completions/zeta-creds.fish.
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: Shell,
    },
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
    #[command(after_help = EXIT_CODES)]
    Check {
        /// The manifest to check
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Root of the system to match against
        #[arg(long, value_name = "DIR", default_value = "/")]
        source_root: PathBuf,
        /// Check what a bundle for this persona would pick
        #[arg(long, value_name = "NAME")]
        persona: Option<String>,
        /// Only validate the manifest and match nothing (a build-time check,
        /// e.g. in a NixOS checkPhase, where the system is not there)
        #[arg(long, conflicts_with_all = ["source_root", "persona"])]
        syntax_only: bool,
    },
}

/// The shells `completions` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
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

/// The passphrase sources (DESIGN.md "PASSPHRASE SOURCE").
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
