//! The `zeta-creds` command line.
//!
//! Output rules (after age's `tui.go`): results go to stdout; everything
//! else goes to stderr prefixed `zeta-creds:`, lowercase, without a final
//! period; an error is followed by at most one hint. Exit codes are decided
//! in one place, [`exit_code`], and documented in `--help` and the README.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use zeta_creds::envelope::{
    self, DEFAULT_LOG_N, DEFAULT_MAX_LOG_N, EntryKind, EntryReader, ErrorClass, Header, MAX_LOG_N,
    MIN_LOG_N, UnlockedHeader, UsbUuid,
};
use zeta_creds::passphrase::{self, Passphrases, Prompt, SourceOptions};
use zeta_creds::{bundle, cleanup, manifest, msg, restore, sys};
use zeta_creds::{error, notice, warning};

const EXIT_CODES: &str = "\
Exit status:
   0  success (also: nothing to do)
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

/// Carry an operator's credentials across NixOS reinstalls in one
/// authenticated, passphrase-encrypted envelope bound to a USB stick.
#[derive(Parser)]
#[command(name = "zeta-creds", version, after_help = EXIT_CODES, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seal the paths of a manifest into a blob bound to a USB stick
    ///
    /// Collects every manifest entry from --source-root (symlinks are not
    /// followed), records owners by name, and writes the blob atomically
    /// (temporary file, fsync, rename). Asks for the passphrase twice on a
    /// terminal.
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
        /// scrypt work factor log2(N), pinned in the blob; never calibrated
        #[arg(long, value_name = "LOG_N", default_value_t = DEFAULT_LOG_N,
              value_parser = clap::value_parser!(u8).range(MIN_LOG_N as i64..=MAX_LOG_N as i64))]
        work_factor: u8,
        /// Replace an existing blob at --out (its generation is raised)
        #[arg(long)]
        force: bool,
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
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct UuidArgs {
    /// The USB stick's filesystem UUID, as `blkid -s UUID -o value` prints it
    #[arg(long, value_name = "UUID")]
    usb_uuid: Option<String>,
    /// A file holding the UUID, e.g. /etc/zeta/usb-uuid (whitespace trimmed)
    #[arg(long, value_name = "FILE")]
    usb_uuid_file: Option<PathBuf>,
}

#[derive(Args)]
struct PassphraseArgs {
    /// Read the passphrase from this inherited file descriptor
    #[arg(long, value_name = "N")]
    passphrase_fd: Option<i32>,
    /// Read the passphrase from FILE, then delete FILE on every exit path
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Do not delete the --passphrase-file
    #[arg(long, requires = "passphrase_file")]
    keep_passphrase_file: bool,
    /// Ask through systemd-ask-password --no-tty (boot-time agents, console)
    #[arg(long)]
    ask_password: bool,
    /// How long --ask-password waits for an answer
    #[arg(long, value_name = "SECS", default_value_t = passphrase::DEFAULT_ASK_TIMEOUT_SECS)]
    ask_password_timeout: u64,
}

impl PassphraseArgs {
    fn sources(&self, env_passphrase: Option<secrecy::SecretString>) -> Passphrases {
        if let (Some(path), false) = (&self.passphrase_file, self.keep_passphrase_file) {
            // Deleted by the signal thread too, not only by the drop guard.
            cleanup::register_passphrase_file(path.clone());
        }
        let opts = SourceOptions {
            credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            passphrase_fd: self.passphrase_fd,
            passphrase_file: self.passphrase_file.clone(),
            keep_passphrase_file: self.keep_passphrase_file,
            ask_password: self.ask_password,
            ask_timeout_secs: self.ask_password_timeout,
            ask_password_program: PathBuf::from("systemd-ask-password"),
            stdin_is_tty: rustix::termios::isatty(rustix::stdio::stdin()),
        };
        Passphrases::new(opts, env_passphrase)
    }
}

/// Every way a command can fail, with what `exit_code` needs to know.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("blob {blob}: {source}")]
    Blob {
        blob: PathBuf,
        #[source]
        source: envelope::Error,
    },
    #[error("blob {0} not found")]
    BlobMissing(PathBuf),
    #[error("cannot read blob {blob}: {source}")]
    BlobRead {
        blob: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("wrong passphrase for blob {blob} (bound to USB {uuid})")]
    WrongPassphrase { blob: PathBuf, uuid: String },
    #[error("USB UUID file {path}: {reason}")]
    UuidFile { path: PathBuf, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Passphrase(#[from] passphrase::Error),
    #[error(transparent)]
    Bundle(#[from] bundle::Error),
    #[error("blob {blob}: {source}")]
    Restore {
        blob: PathBuf,
        #[source]
        source: restore::Error,
    },
    #[error("blob {blob} was bundled for persona {found:?}, not {wanted:?}")]
    PersonaMismatch {
        blob: PathBuf,
        found: String,
        wanted: String,
    },
    #[error("restore incomplete: {failed} of {total} entries could not be written (named above)")]
    Incomplete { failed: usize, total: usize },
    #[error("cannot write output: {0}")]
    Output(#[source] io::Error),
}

/// The one place exit codes are decided (see `EXIT_CODES`).
fn exit_code(err: &CliError) -> u8 {
    let envelope_code = |e: &envelope::Error| match e.class() {
        ErrorClass::NoMatch => 3,
        ErrorClass::Binding => 4,
        ErrorClass::Header | ErrorClass::Hmac | ErrorClass::Payload | ErrorClass::Entries => 5,
        ErrorClass::Other => 1,
    };
    match err {
        CliError::Blob { source, .. } => envelope_code(source),
        CliError::BlobMissing(_) => 6,
        CliError::BlobRead { .. } => 1,
        CliError::WrongPassphrase { .. } => 3,
        CliError::UuidFile { .. } => 6,
        CliError::Usage(_) => 2,
        CliError::Passphrase(passphrase::Error::Mismatch) => 1,
        CliError::Passphrase(_) => 6,
        CliError::Bundle(e) => match e {
            bundle::Error::Manifest(manifest::Error::Read { .. }) => 6,
            bundle::Error::SourceRoot { .. } | bundle::Error::RequiredMissing { .. } => 6,
            _ => 1,
        },
        CliError::Restore { source, .. } => match source {
            restore::Error::Envelope(e) => envelope_code(e),
            restore::Error::TargetRoot { .. } => 6,
            restore::Error::Accounts { .. } => 7,
            restore::Error::Stage { .. } => 1,
            restore::Error::Rollback { .. } => 8,
        },
        CliError::PersonaMismatch { .. } => 1,
        CliError::Incomplete { .. } => 7,
        CliError::Output(_) => 1,
    }
}

/// One hint for the errors where a next step is not already in the message.
fn hint(err: &CliError) -> Option<String> {
    match err {
        CliError::Blob { source, .. } => match source {
            envelope::Error::UsbUuidMismatch { .. } => Some(
                "this blob belongs to another stick: check --usb-uuid / the UUID file, or rekey the blob to this stick".into(),
            ),
            e if e.class() == ErrorClass::Hmac || e.class() == ErrorClass::Payload => Some(
                "the blob was modified or damaged after it was sealed; restore from another copy or re-bundle".into(),
            ),
            _ => None,
        },
        CliError::BlobMissing(_) => {
            Some("nothing to restore: run `zeta-creds bundle` first, or check --blob".into())
        }
        CliError::WrongPassphrase { .. } => {
            Some("the passphrase is the one given to `zeta-creds bundle` (or the last `rekey`)".into())
        }
        _ => None,
    }
}

fn main() -> ExitCode {
    // First, before any thread exists: take the passphrase out of the
    // environment so no child process inherits it.
    let env_passphrase = sys::take_env_passphrase();
    for w in sys::harden_process() {
        warning!("{w}");
    }
    let cli = Cli::parse();
    // After the environment is clean: this starts a thread.
    if let Err(e) = cleanup::install_signal_handler() {
        warning!("cannot handle signals ({e}); an interrupted run may leave temporary files");
    }
    match run(cli, env_passphrase) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            error!("{err}");
            let mut source = std::error::Error::source(&err);
            // thiserror's transparent variants already include their source.
            while let Some(s) = source {
                if !err.to_string().contains(&s.to_string()) {
                    msg::emit(msg::Level::Error, false, format_args!("  caused by: {s}"));
                }
                source = s.source();
            }
            if let Some(h) = hint(&err) {
                msg::emit(msg::Level::Error, false, format_args!("hint: {h}"));
            }
            ExitCode::from(exit_code(&err))
        }
    }
}

fn run(cli: Cli, env_passphrase: Option<secrecy::SecretString>) -> Result<u8, CliError> {
    match cli.command {
        Command::Bundle {
            manifest,
            out,
            uuid,
            source_root,
            persona,
            work_factor,
            force,
            passphrase,
        } => {
            // Created first: its guard deletes a --passphrase-file on every
            // exit path, including the errors below.
            let mut sources = passphrase.sources(env_passphrase);
            let usb_uuid = read_uuid(&uuid)?;
            let persona = persona.unwrap_or_default();
            envelope::validate_persona(&persona).map_err(|e| CliError::Usage(e.to_string()))?;
            let opts = bundle::Options {
                manifest,
                source_root,
                out: out.clone(),
                usb_uuid: usb_uuid.clone(),
                persona,
                log_n: work_factor,
                force,
            };
            let plan = bundle::plan(&opts)?;
            for s in &plan.skipped {
                notice!("skipped {}: {}", s.path, s.reason);
            }
            let message = format!(
                "New passphrase for zeta-creds blob {} (USB {usb_uuid})",
                out.display()
            );
            let id = format!("zeta-creds:{usb_uuid}");
            let pass = sources
                .next(
                    &Prompt {
                        id: &id,
                        message: &message,
                    },
                    true,
                )?
                .ok_or(passphrase::Error::NoSource)?;
            sources.scrub();
            bundle::write(&opts, &plan, &pass)?;
            let files = plan
                .items
                .iter()
                .filter(|i| i.kind == EntryKind::File)
                .count();
            println!(
                "sealed {} entries ({files} files, {} bytes) into {} (generation {}, bound to USB {usb_uuid}, work factor {work_factor})",
                plan.items.len(),
                plan.total_size(),
                out.display(),
                plan.generation,
            );
            Ok(0)
        }
        Command::Restore {
            blob,
            uuid,
            target_root,
            user,
            persona,
            dry_run,
            on_conflict,
            allow_rollback,
            max_work_factor,
            json,
            passphrase,
        } => {
            let mut sources = passphrase.sources(env_passphrase);
            if let Err(why) = sys::lock_memory() {
                warning!("{why}");
            }
            let usb_uuid = read_uuid(&uuid)?;
            let (file, header) = open_blob(&blob)?;
            let unlocked = unlock(
                &header,
                &blob,
                Some(&usb_uuid),
                max_work_factor,
                &mut sources,
            )?;
            sources.scrub();
            if let Some(wanted) = &persona
                && &unlocked.fields().persona != wanted
            {
                return Err(CliError::PersonaMismatch {
                    blob,
                    found: unlocked.fields().persona.clone(),
                    wanted: wanted.clone(),
                });
            }
            let generation = unlocked.fields().generation;
            let restore_err = |source: restore::Error| CliError::Restore {
                blob: blob.clone(),
                source,
            };
            let mut entries = EntryReader::new(unlocked.payload_reader(io::BufReader::new(file)))
                .map_err(|e| restore_err(e.into()))?;
            let opts = restore::Options {
                target_root,
                user,
                dry_run,
                on_conflict,
                allow_rollback,
                generation,
            };
            let report = restore::restore(&mut entries, &opts).map_err(restore_err)?;
            print_restore_report(&report, &blob, generation, json).map_err(CliError::Output)?;
            let failed = report.failed().count();
            if failed > 0 {
                return Err(CliError::Incomplete {
                    failed,
                    total: report.entries.len(),
                });
            }
            Ok(0)
        }
        Command::Inspect { blob, json } => {
            let (file, header) = open_blob(&blob)?;
            let blob_len = file
                .metadata()
                .map_err(|source| CliError::BlobRead {
                    blob: blob.clone(),
                    source,
                })?
                .len();
            print_inspect(&header, &blob, blob_len, json).map_err(CliError::Output)?;
            Ok(0)
        }
        Command::Verify {
            blob,
            list,
            json,
            max_work_factor,
            passphrase,
        } => {
            let mut sources = passphrase.sources(env_passphrase);
            let (file, header) = open_blob(&blob)?;
            let unlocked = unlock(&header, &blob, None, max_work_factor, &mut sources)?;
            sources.scrub();
            let fields = unlocked.fields().clone();
            let blob_err = |source: envelope::Error| CliError::Blob {
                blob: blob.clone(),
                source,
            };
            let mut entries = EntryReader::new(unlocked.payload_reader(io::BufReader::new(file)))
                .map_err(blob_err)?;
            let mut metas = Vec::new();
            while let Some(meta) = entries.next_entry().map_err(blob_err)? {
                entries.skip_body().map_err(blob_err)?;
                metas.push(meta);
            }
            print_verify(&blob, &fields, entries.user(), &metas, list, json)
                .map_err(CliError::Output)?;
            Ok(0)
        }
    }
}

/// The USB UUID from `--usb-uuid` or `--usb-uuid-file`, normalized.
fn read_uuid(args: &UuidArgs) -> Result<UsbUuid, CliError> {
    if let Some(raw) = &args.usb_uuid {
        return UsbUuid::parse(raw).map_err(|e| CliError::Usage(format!("--usb-uuid: {e}")));
    }
    let path = args
        .usb_uuid_file
        .as_ref()
        .expect("clap requires one of the two");
    let text = std::fs::read_to_string(path).map_err(|e| CliError::UuidFile {
        path: path.clone(),
        reason: format!(
            "{e}; the installer writes it (blkid -s UUID -o value of the stick), or pass --usb-uuid"
        ),
    })?;
    UsbUuid::parse(&text).map_err(|e| CliError::UuidFile {
        path: path.clone(),
        reason: e.to_string(),
    })
}

fn open_blob(blob: &Path) -> Result<(File, Header), CliError> {
    let mut file = File::open(blob).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            CliError::BlobMissing(blob.to_owned())
        } else {
            CliError::BlobRead {
                blob: blob.to_owned(),
                source,
            }
        }
    })?;
    let header = Header::read(&mut file).map_err(|source| CliError::Blob {
        blob: blob.to_owned(),
        source,
    })?;
    Ok((file, header))
}

/// Check the binding and the work-factor cap, then try passphrases until
/// one unwraps the file key and the header MAC verifies.
fn unlock<'h>(
    header: &'h Header,
    blob: &Path,
    expected: Option<&UsbUuid>,
    max_log_n: u8,
    sources: &mut Passphrases,
) -> Result<UnlockedHeader<'h>, CliError> {
    let blob_err = |source: envelope::Error| CliError::Blob {
        blob: blob.to_owned(),
        source,
    };
    // Before asking anyone for a passphrase.
    if let Some(expected) = expected {
        header.check_binding(expected).map_err(blob_err)?;
    }
    header.check_work_factor(max_log_n).map_err(blob_err)?;
    let uuid = header.unauthenticated_fields().usb_uuid.to_string();
    let message = format!(
        "Passphrase for zeta-creds blob {} (USB {uuid})",
        blob.display()
    );
    let id = format!("zeta-creds:{uuid}");
    let wrong = || CliError::WrongPassphrase {
        blob: blob.to_owned(),
        uuid: uuid.clone(),
    };
    loop {
        let Some(pass) = sources.next(
            &Prompt {
                id: &id,
                message: &message,
            },
            false,
        )?
        else {
            return Err(wrong());
        };
        msg::test_fault("stall-before-kdf");
        match header.unlock(&pass, expected, max_log_n) {
            Ok(unlocked) => return Ok(unlocked),
            Err(envelope::Error::WrongPassphrase) => {
                let left = sources.tries_left();
                if left == 0 {
                    return Err(wrong());
                }
                warning!(
                    "wrong passphrase for blob {} (bound to USB {uuid}); {left} {} left",
                    blob.display(),
                    if left == 1 { "try" } else { "tries" }
                );
            }
            Err(e) => return Err(blob_err(e)),
        }
    }
}

fn print_restore_report(
    report: &restore::Report,
    blob: &Path,
    generation: u64,
    json: bool,
) -> io::Result<()> {
    for note in &report.notes {
        warning!("{note}");
    }
    for e in report.failed() {
        error!(
            "{} ({}): {}",
            e.entry,
            e.destination,
            e.reason.as_deref().unwrap_or("failed")
        );
    }
    let mut out = io::stdout().lock();
    if json {
        #[derive(Serialize)]
        struct Json<'a> {
            blob: &'a Path,
            generation: u64,
            #[serde(flatten)]
            report: &'a restore::Report,
        }
        serde_json::to_writer_pretty(
            &mut out,
            &Json {
                blob,
                generation,
                report,
            },
        )?;
        writeln!(out)?;
        return Ok(());
    }
    let verb = |o: &restore::Outcome| match (o, report.dry_run) {
        (restore::Outcome::Created, false) => "created",
        (restore::Outcome::Created, true) => "would create",
        (restore::Outcome::Updated, false) => "updated",
        (restore::Outcome::Updated, true) => "would update",
        (restore::Outcome::Unchanged, _) => "unchanged",
        (restore::Outcome::Kept, _) => "kept",
        (restore::Outcome::Failed, _) => "FAILED",
    };
    for e in &report.entries {
        match (&e.outcome, &e.reason) {
            (restore::Outcome::Kept, Some(why)) => {
                writeln!(out, "{:<13} {}  ({why})", verb(&e.outcome), e.destination)?
            }
            _ => writeln!(out, "{:<13} {}", verb(&e.outcome), e.destination)?,
        }
    }
    let count = |o: restore::Outcome| report.entries.iter().filter(|e| e.outcome == o).count();
    if report.changed() == 0
        && count(restore::Outcome::Failed) == 0
        && count(restore::Outcome::Kept) == 0
    {
        writeln!(
            out,
            "nothing to do: all {} entries of {} are already in place",
            report.entries.len(),
            blob.display()
        )?;
    } else {
        writeln!(
            out,
            "{}{} entries from {} (generation {generation}): {} created, {} updated, {} unchanged, {} kept, {} failed",
            if report.dry_run {
                "dry run, nothing written: "
            } else {
                ""
            },
            report.entries.len(),
            blob.display(),
            count(restore::Outcome::Created),
            count(restore::Outcome::Updated),
            count(restore::Outcome::Unchanged),
            count(restore::Outcome::Kept),
            count(restore::Outcome::Failed),
        )?;
    }
    Ok(())
}

fn print_inspect(header: &Header, blob: &Path, blob_len: u64, json: bool) -> io::Result<()> {
    let f = header.unauthenticated_fields();
    let payload = blob_len.saturating_sub(header.len() as u64);
    let mut out = io::stdout().lock();
    if json {
        #[derive(Serialize)]
        struct Json<'a> {
            blob: &'a Path,
            authenticated: bool,
            note: &'a str,
            format_version: u8,
            usb_uuid: &'a str,
            work_factor: u8,
            generation: u64,
            created: u64,
            created_utc: String,
            tool_version: &'a str,
            persona: &'a str,
            header_bytes: usize,
            payload_bytes: u64,
        }
        serde_json::to_writer_pretty(
            &mut out,
            &Json {
                blob,
                authenticated: false,
                note: "header fields are unauthenticated until a passphrase checks the MAC (zeta-creds verify)",
                format_version: envelope::VERSION,
                usb_uuid: f.usb_uuid.as_str(),
                work_factor: f.log_n,
                generation: f.generation,
                created: f.created,
                created_utc: utc(f.created),
                tool_version: &f.tool_version,
                persona: &f.persona,
                header_bytes: header.len(),
                payload_bytes: payload,
            },
        )?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "zeta-creds blob {}", blob.display())?;
    writeln!(
        out,
        "  UNAUTHENTICATED: anyone who can write the ESP can change these fields;\n  `zeta-creds verify` checks them with the passphrase"
    )?;
    writeln!(out, "  format version  {}", envelope::VERSION)?;
    writeln!(out, "  usb uuid        {}", f.usb_uuid)?;
    writeln!(
        out,
        "  work factor     {} (scrypt N = 2^{}, {} MiB to decrypt)",
        f.log_n,
        f.log_n,
        (1u64 << f.log_n) / 1024
    )?;
    writeln!(out, "  generation      {}", f.generation)?;
    writeln!(out, "  created         {}", utc(f.created))?;
    writeln!(out, "  tool version    {}", f.tool_version)?;
    writeln!(
        out,
        "  persona         {}",
        if f.persona.is_empty() {
            "(none)"
        } else {
            &f.persona
        }
    )?;
    writeln!(
        out,
        "  payload         {payload} bytes, encrypted (paths, modes and owners are inside)"
    )?;
    Ok(())
}

fn print_verify(
    blob: &Path,
    fields: &envelope::HeaderFields,
    user: &str,
    metas: &[envelope::EntryMeta],
    list: bool,
    json: bool,
) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        #[derive(Serialize)]
        struct Entry<'a> {
            path: String,
            kind: &'a str,
            mode: String,
            owner: &'a str,
            group: &'a str,
            size: u64,
            mtime: i64,
        }
        #[derive(Serialize)]
        struct Json<'a> {
            blob: &'a Path,
            authenticated: bool,
            usb_uuid: &'a str,
            work_factor: u8,
            generation: u64,
            created: u64,
            tool_version: &'a str,
            persona: &'a str,
            user: &'a str,
            entry_count: usize,
            #[serde(skip_serializing_if = "Option::is_none")]
            entries: Option<Vec<Entry<'a>>>,
        }
        let entries = list.then(|| {
            metas
                .iter()
                .map(|m| Entry {
                    path: m.display_path(),
                    kind: if m.kind == EntryKind::Dir {
                        "dir"
                    } else {
                        "file"
                    },
                    mode: format!("{:04o}", m.mode),
                    owner: &m.owner,
                    group: &m.group,
                    size: m.size,
                    mtime: m.mtime,
                })
                .collect()
        });
        serde_json::to_writer_pretty(
            &mut out,
            &Json {
                blob,
                authenticated: true,
                usb_uuid: fields.usb_uuid.as_str(),
                work_factor: fields.log_n,
                generation: fields.generation,
                created: fields.created,
                tool_version: &fields.tool_version,
                persona: &fields.persona,
                user,
                entry_count: metas.len(),
                entries,
            },
        )?;
        writeln!(out)?;
        return Ok(());
    }
    if list {
        for m in metas {
            writeln!(
                out,
                "{} {:04o} {:>17} {:>10}  {}",
                if m.kind == EntryKind::Dir { 'd' } else { '-' },
                m.mode,
                format!("{}:{}", m.owner, m.group),
                m.size,
                m.display_path()
            )?;
        }
    }
    writeln!(
        out,
        "blob {} is intact: {} entries for user {}, generation {}, bound to USB {}{}",
        blob.display(),
        metas.len(),
        if user.is_empty() { "(none)" } else { user },
        fields.generation,
        fields.usb_uuid,
        if fields.persona.is_empty() {
            String::new()
        } else {
            format!(", persona {}", fields.persona)
        }
    )?;
    Ok(())
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC` (proleptic
/// Gregorian; Howard Hinnant's days-to-civil algorithm).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
