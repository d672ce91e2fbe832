//! The `zeta-creds` command line.
//!
//! Output rules (after age's `tui.go`): results go to stdout; everything
//! else goes to stderr prefixed `zeta-creds:`, lowercase, without a final
//! period; an error is followed by at most one hint. Exit codes are decided
//! in one place, [`exit_code`], and documented in `--help` and the README.
//! The options themselves are defined in `zeta_creds::cli`, which the
//! completions and the man pages are generated from.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use secrecy::SecretString;
use serde::Serialize;

use zeta_creds::cli::{
    Cli, Command, ManifestCommand, NewUuidArgs, PassphraseArgs, Shell, UuidArgs,
};
use zeta_creds::envelope::{
    self, EntryKind, EntryReader, ErrorClass, Header, UnlockedHeader, UsbUuid,
};
use zeta_creds::manifest::{Manifest, human_size};
use zeta_creds::passphrase::{self, Passphrases, Prompt, SourceOptions};
use zeta_creds::{bundle, cleanup, diff, manifest, msg, quality, rekey, restore, sys, usb};
use zeta_creds::{error, notice, warning};

/// Work factors below this print a warning: they are for tests.
const TEST_WORK_FACTOR_BELOW: u8 = 15;

/// Build the passphrase sources a command's options select. A
/// `--passphrase-file` is consumed only when it is read as the passphrase.
fn sources(args: &PassphraseArgs, env_passphrase: Option<SecretString>) -> Passphrases {
    let opts = SourceOptions {
        credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
        passphrase_fd: args.passphrase_fd,
        passphrase_file: args.passphrase_file.clone(),
        keep_passphrase_file: args.keep_passphrase_file,
        ask_password: args.ask_password,
        ask_timeout_secs: args.ask_password_timeout,
        ask_password_program: PathBuf::from("systemd-ask-password"),
        stdin_is_tty: stdin_is_tty(),
    };
    Passphrases::new(opts, env_passphrase)
}

fn stdin_is_tty() -> bool {
    rustix::termios::isatty(rustix::stdio::stdin())
}

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    /// `diff` found differences.
    Differs,
}

/// Every way a command can fail, with what `exit_code` needs to know.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(
        "USB stick {uuid} is not attached (no such entry in {} after {waited} s); attach the stick the blob is bound to, or restore without --require-usb-present",
        dir.display()
    )]
    UsbAbsent {
        uuid: String,
        dir: PathBuf,
        waited: u64,
    },
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
    Weak(#[from] quality::Weak),
    #[error(
        "no new passphrase for {blob}: pass --new-passphrase-file FILE, run rekey on a terminal to type it, or pass --same-passphrase to keep the current one"
    )]
    NoNewPassphrase { blob: PathBuf },
    #[error(transparent)]
    Bundle(#[from] bundle::Error),
    #[error("blob {blob}: {source}")]
    Restore {
        blob: PathBuf,
        #[source]
        source: restore::Error,
    },
    #[error("blob {blob}: {source}")]
    Diff {
        blob: PathBuf,
        #[source]
        source: diff::Error,
    },
    #[error("rekey {blob}: {source}")]
    Rekey {
        blob: PathBuf,
        #[source]
        source: rekey::Error,
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

impl From<manifest::Error> for CliError {
    fn from(e: manifest::Error) -> CliError {
        CliError::Bundle(bundle::Error::Manifest(e))
    }
}

/// The one place exit codes are decided (see `cli::EXIT_CODES`).
fn exit_code(result: &Result<Outcome, CliError>) -> u8 {
    let envelope_code = |e: &envelope::Error| match e.class() {
        ErrorClass::NoMatch => 3,
        ErrorClass::Binding => 4,
        ErrorClass::Header | ErrorClass::Hmac | ErrorClass::Payload | ErrorClass::Entries => 5,
        ErrorClass::Other => 1,
    };
    let err = match result {
        Ok(Outcome::Done) => return 0,
        Ok(Outcome::Differs) => return 10,
        Err(err) => err,
    };
    match err {
        CliError::Blob { source, .. } => envelope_code(source),
        CliError::BlobMissing(_) => 6,
        CliError::BlobRead { .. } => 1,
        CliError::WrongPassphrase { .. } => 3,
        CliError::UuidFile { .. } => 6,
        CliError::UsbAbsent { .. } => 4,
        CliError::Usage(_) => 2,
        CliError::Passphrase(passphrase::Error::Mismatch) => 1,
        CliError::Passphrase(_) => 6,
        CliError::Weak(_) => 1,
        CliError::NoNewPassphrase { .. } => 6,
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
        CliError::Diff { source, .. } => match source {
            diff::Error::Envelope(e) => envelope_code(e),
            diff::Error::Source { .. } => 1,
        },
        CliError::Rekey { source, .. } => match source {
            rekey::Error::Envelope(e) => envelope_code(e),
            rekey::Error::GenerationExhausted { .. } | rekey::Error::Write { .. } => 1,
        },
        CliError::PersonaMismatch { .. } => 1,
        CliError::Incomplete { .. } => 7,
        CliError::Output(_) => 1,
    }
}

/// One hint for the errors where a next step is not already in the message.
fn hint(err: &CliError) -> Option<String> {
    let envelope_hint = |source: &envelope::Error| {
        match source {
        envelope::Error::UsbUuidMismatch { .. } => Some(
            "this blob belongs to another stick: check --usb-uuid / the UUID file, or rekey the blob to this stick".into(),
        ),
        e if e.class() == ErrorClass::Hmac || e.class() == ErrorClass::Payload => Some(
            "the blob was modified or damaged after it was sealed; restore from another copy or re-bundle".into(),
        ),
        _ => None,
    }
    };
    match err {
        CliError::Blob { source, .. }
        | CliError::Diff {
            source: diff::Error::Envelope(source),
            ..
        }
        | CliError::Rekey {
            source: rekey::Error::Envelope(source),
            ..
        } => envelope_hint(source),
        CliError::BlobMissing(_) => {
            Some("nothing to restore: run `zeta-creds bundle` first, or check --blob".into())
        }
        CliError::WrongPassphrase { .. } => Some(
            "the passphrase is the one given to `zeta-creds bundle` (or the last `rekey`)".into(),
        ),
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
    if let Err(w) = sys::raise_open_file_limit() {
        warning!("{w}");
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // After the environment is clean: this starts a thread.
    if let Err(e) = cleanup::install_signal_handler() {
        warning!("cannot handle signals ({e}); an interrupted run may leave temporary files");
    }
    let result = run(cli, env_passphrase);
    if let Err(err) = &result {
        error!("{err}");
        let mut source = std::error::Error::source(err);
        // thiserror's transparent variants already include their source.
        while let Some(s) = source {
            if !err.to_string().contains(&s.to_string()) {
                msg::emit(msg::Level::Error, false, format_args!("  caused by: {s}"));
            }
            source = s.source();
        }
        if let Some(h) = hint(err) {
            msg::emit(msg::Level::Error, false, format_args!("hint: {h}"));
        }
    }
    ExitCode::from(exit_code(&result))
}

fn run(cli: Cli, env_passphrase: Option<SecretString>) -> Result<Outcome, CliError> {
    match cli.command {
        Command::Bundle {
            manifest,
            out,
            uuid,
            source_root,
            persona,
            work_factor,
            force,
            no_backup,
            allow_weak_passphrase,
            passphrase,
        } => {
            let mut sources = sources(&passphrase, env_passphrase);
            let usb_uuid = read_uuid(&uuid)?;
            let persona = persona.unwrap_or_default();
            envelope::validate_persona(&persona).map_err(|e| CliError::Usage(e.to_string()))?;
            warn_test_work_factor(work_factor);
            let opts = bundle::Options {
                manifest,
                source_root,
                out: out.clone(),
                usb_uuid: usb_uuid.clone(),
                persona,
                log_n: work_factor,
                force,
                backup: !no_backup,
            };
            let plan = bundle::plan(&opts)?;
            warn_skipped(&plan.pick);
            print_bundle_summary(&plan.pick).map_err(CliError::Output)?;
            if let Some(bundle::Existing {
                usb_uuid: Some(old),
                ..
            }) = &plan.existing
                && old != usb_uuid.as_str()
            {
                warning!(
                    "replacing {}, bound to USB {old}, with a blob bound to USB {usb_uuid} (--force)",
                    out.display()
                );
            }
            let message = format!(
                "New passphrase for zeta-creds blob {} (USB {usb_uuid})",
                out.display()
            );
            let id = format!("zeta-creds:{usb_uuid}");
            let context = [plan.pick.user.as_str(), usb_uuid.as_str()];
            let pass = new_passphrase(
                &mut sources,
                &Prompt {
                    id: &id,
                    message: &message,
                },
                &context,
                allow_weak_passphrase,
            )?;
            let written = bundle::write(&opts, &plan, &pass)?;
            println!(
                "sealed {} entries ({} files, {} bytes) into {} (generation {}, bound to USB {usb_uuid}, work factor {work_factor})",
                plan.pick.items.len(),
                plan.pick.file_count(),
                plan.pick.total_size(),
                out.display(),
                plan.generation,
            );
            println!("{}", kdf_guidance(work_factor, written.kdf_time));
            if written.kept_previous
                && let Some(e) = &plan.existing
            {
                println!(
                    "previous blob kept as {}{} (generation {})",
                    out.display(),
                    bundle::PREV_SUFFIX,
                    e.generation
                );
            }
            Ok(Outcome::Done)
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
            require_usb_present,
            usb_wait,
            usb_device_dir,
            max_work_factor,
            json,
            passphrase,
        } => {
            let mut sources = sources(&passphrase, env_passphrase);
            if let Err(why) = sys::lock_memory() {
                warning!("{why}");
            }
            let usb_uuid = read_uuid(&uuid)?;
            // Before anyone is asked for a passphrase.
            if require_usb_present
                && !usb::wait_for(&usb_device_dir, &usb_uuid, Duration::from_secs(usb_wait))
            {
                return Err(CliError::UsbAbsent {
                    uuid: usb_uuid.to_string(),
                    dir: usb_device_dir,
                    waited: usb_wait,
                });
            }
            let (file, header) = open_blob(&blob)?;
            let (unlocked, _) = unlock(
                &header,
                &blob,
                Some(&usb_uuid),
                max_work_factor,
                &mut sources,
            )?;
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
            // Decrypt on a second thread while this one hashes and writes
            // (docs/PERFORMANCE.md); the release rules do not change.
            let payload = unlocked
                .payload_reader(file)
                .read_ahead()
                .map_err(|e| restore_err(envelope::Error::Io(e).into()))?;
            let mut entries = EntryReader::new(payload).map_err(|e| restore_err(e.into()))?;
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
            Ok(Outcome::Done)
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
            Ok(Outcome::Done)
        }
        Command::Verify {
            blob,
            list,
            json,
            max_work_factor,
            passphrase,
        } => {
            let mut sources = sources(&passphrase, env_passphrase);
            let (file, header) = open_blob(&blob)?;
            let (unlocked, _) = unlock(&header, &blob, None, max_work_factor, &mut sources)?;
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
            Ok(Outcome::Done)
        }
        Command::Diff {
            blob,
            manifest,
            source_root,
            max_work_factor,
            passphrase,
        } => {
            let mut sources = sources(&passphrase, env_passphrase);
            let loaded = Manifest::load(&manifest)?;
            let (file, header) = open_blob(&blob)?;
            // Picked before the passphrase is asked, so a manifest or
            // source problem needs no passphrase. The persona read here is
            // not yet authenticated; unlock checks it under the MAC.
            let persona = header.unauthenticated_fields().persona.clone();
            let pick = bundle::pick(&loaded, &source_root, &persona)?;
            warn_skipped(&pick);
            let (unlocked, _) = unlock(&header, &blob, None, max_work_factor, &mut sources)?;
            let diff_err = |source: diff::Error| CliError::Diff {
                blob: blob.clone(),
                source,
            };
            let mut entries = EntryReader::new(unlocked.payload_reader(io::BufReader::new(file)))
                .map_err(|e| diff_err(e.into()))?;
            let report = diff::diff(&mut entries, &pick).map_err(diff_err)?;
            print_diff(&report, &blob, &manifest, &source_root).map_err(CliError::Output)?;
            Ok(if report.is_identical() {
                Outcome::Done
            } else {
                Outcome::Differs
            })
        }
        Command::Rekey {
            blob,
            new_passphrase_file,
            same_passphrase,
            new_uuid,
            work_factor,
            max_work_factor,
            no_backup,
            allow_weak_passphrase,
            passphrase,
        } => {
            let mut current = sources(&passphrase, env_passphrase);
            let mut fresh = new_passphrase_sources(new_passphrase_file.as_deref());
            let new_uuid = read_new_uuid(&new_uuid)?;
            if !same_passphrase && new_passphrase_file.is_none() && !stdin_is_tty() {
                return Err(CliError::NoNewPassphrase { blob });
            }
            if let Some(n) = work_factor {
                warn_test_work_factor(n);
            }
            let (mut file, header) = open_blob(&blob)?;
            let (unlocked, old_pass) = unlock(&header, &blob, None, max_work_factor, &mut current)?;
            let old = unlocked.fields().clone();
            let usb_uuid = new_uuid.unwrap_or_else(|| old.usb_uuid.clone());
            let log_n = work_factor.unwrap_or(old.log_n);
            if same_passphrase && usb_uuid == old.usb_uuid && log_n == old.log_n {
                return Err(CliError::Usage(format!(
                    "nothing to change in {}: give a new passphrase (--new-passphrase-file, or drop --same-passphrase to type one), --new-usb-uuid or --work-factor",
                    blob.display()
                )));
            }
            let new_pass = if same_passphrase {
                old_pass
            } else {
                drop(old_pass);
                let message = format!(
                    "New passphrase for zeta-creds blob {} (USB {usb_uuid})",
                    blob.display()
                );
                let id = format!("zeta-creds:{usb_uuid}");
                new_passphrase(
                    &mut fresh,
                    &Prompt {
                        id: &id,
                        message: &message,
                    },
                    &[usb_uuid.as_str()],
                    allow_weak_passphrase,
                )?
            };
            let opts = rekey::Options {
                blob: blob.clone(),
                usb_uuid,
                log_n,
                backup: !no_backup,
            };
            let outcome =
                rekey::rekey(unlocked, &mut file, &new_pass, &opts).map_err(|source| {
                    CliError::Rekey {
                        blob: blob.clone(),
                        source,
                    }
                })?;
            print_rekey(&outcome, &blob, same_passphrase).map_err(CliError::Output)?;
            Ok(Outcome::Done)
        }
        Command::Manifest(ManifestCommand::Check {
            file,
            source_root,
            persona,
            syntax_only,
        }) => {
            let loaded = Manifest::load(&file)?;
            let persona = persona.unwrap_or_default();
            envelope::validate_persona(&persona).map_err(|e| CliError::Usage(e.to_string()))?;
            if !persona.is_empty() && !loaded.personas().contains(persona.as_str()) {
                warning!(
                    "no entry of {} names persona {persona:?}; only the entries for every persona apply",
                    file.display()
                );
            }
            if syntax_only {
                println!(
                    "manifest {} is valid: {} entries for user {}",
                    file.display(),
                    loaded.entries.len(),
                    loaded.user
                );
                return Ok(Outcome::Done);
            }
            let pick = bundle::pick(&loaded, &source_root, &persona)?;
            warn_skipped(&pick);
            print_check(&pick, &loaded).map_err(CliError::Output)?;
            pick.check()?;
            Ok(Outcome::Done)
        }
        Command::Completions { shell } => {
            let shell = match shell {
                Shell::Bash => clap_complete::Shell::Bash,
                Shell::Zsh => clap_complete::Shell::Zsh,
                Shell::Fish => clap_complete::Shell::Fish,
            };
            let mut out = Vec::new();
            clap_complete::generate(
                shell,
                &mut zeta_creds::cli::command(),
                "zeta-creds",
                &mut out,
            );
            io::stdout().write_all(&out).map_err(CliError::Output)?;
            Ok(Outcome::Done)
        }
    }
}

/// The sources of `rekey`'s new passphrase: only `--new-passphrase-file`
/// (consumed) or, on a terminal, a prompt. Never the credential, fd,
/// ask-password or environment sources: those carry the current one.
fn new_passphrase_sources(file: Option<&Path>) -> Passphrases {
    Passphrases::new(
        SourceOptions {
            passphrase_file: file.map(Path::to_owned),
            stdin_is_tty: stdin_is_tty(),
            ..SourceOptions::default()
        },
        None,
    )
}

/// A new passphrase for `bundle` or `rekey`: asked twice on a terminal,
/// then refused if zxcvbn rates it weak (asked again on a terminal while
/// tries are left), unless `allow_weak`.
fn new_passphrase(
    sources: &mut Passphrases,
    prompt: &Prompt<'_>,
    context: &[&str],
    allow_weak: bool,
) -> Result<SecretString, CliError> {
    let mut context = context.to_vec();
    context.extend(["zeta", "zeta-creds", "creds"]);
    loop {
        let interactive =
            |s: &Passphrases| s.source().is_some_and(|k| k.is_interactive()) && s.tries_left() > 0;
        let pass = match sources.next(prompt, true) {
            Ok(Some(p)) => p,
            Ok(None) => return Err(passphrase::Error::NoSource.into()),
            Err(passphrase::Error::Mismatch) if interactive(sources) => {
                warning!("the two passphrases do not match; try again");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match quality::check(&pass, &context) {
            Ok(()) => return Ok(pass),
            Err(weak) if allow_weak => {
                warning!(
                    "using a weak passphrase (strength {} of 4) because of --allow-weak-passphrase; whoever copies the blob can guess it offline",
                    weak.score
                );
                return Ok(pass);
            }
            Err(weak) if interactive(sources) => warning!("{weak}"),
            Err(weak) => return Err(weak.into()),
        }
    }
}

fn warn_test_work_factor(log_n: u8) {
    if log_n < TEST_WORK_FACTOR_BELOW {
        warning!(
            "work factor {log_n} is for tests: each offline guess at the passphrase costs {}x less than at the default {}; use {} or more for a real blob",
            1u64 << (envelope::DEFAULT_LOG_N - log_n.min(envelope::DEFAULT_LOG_N)),
            envelope::DEFAULT_LOG_N,
            TEST_WORK_FACTOR_BELOW
        );
    }
}

/// Memory scrypt needs at work factor `log_n` (r = 8: 1 KiB times N),
/// FORMAT.md §3.2.
fn kdf_memory_mib(log_n: u8) -> u64 {
    envelope::scrypt_memory(log_n) >> 20
}

/// What the work factor cost here, as guidance: the work factor is fixed
/// at bundle time and never calibrated (FORMAT.md §3.2), because the
/// machine that restores may be much slower than this one.
fn kdf_guidance(log_n: u8, took: Duration) -> String {
    format!(
        "key derivation took {} ms and {} MiB of memory here (work factor {log_n}); a restore needs that memory free, and a slower machine takes longer",
        took.as_millis(),
        kdf_memory_mib(log_n)
    )
}

/// A warning for each path the manifest points at that is not carried for
/// a reason the operator did not choose (symlinks, sockets, devices).
fn warn_skipped(pick: &bundle::Pick) {
    for s in pick.skipped.iter().filter(|s| s.is_warning()) {
        warning!("skipped {}: {}", s.path, s.reason());
    }
}

/// The USB UUID from `--usb-uuid` or `--usb-uuid-file`, normalized.
fn read_uuid(args: &UuidArgs) -> Result<UsbUuid, CliError> {
    let path = match (&args.usb_uuid, &args.usb_uuid_file) {
        (Some(raw), _) => {
            return UsbUuid::parse(raw).map_err(|e| CliError::Usage(format!("--usb-uuid: {e}")));
        }
        (None, Some(path)) => path,
        (None, None) => unreachable!("clap requires one of the two"),
    };
    uuid_from_file(path)
}

/// `rekey`'s `--new-usb-uuid` or `--new-usb-uuid-file`, if given.
fn read_new_uuid(args: &NewUuidArgs) -> Result<Option<UsbUuid>, CliError> {
    match (&args.new_usb_uuid, &args.new_usb_uuid_file) {
        (Some(raw), _) => UsbUuid::parse(raw)
            .map(Some)
            .map_err(|e| CliError::Usage(format!("--new-usb-uuid: {e}"))),
        (None, Some(path)) => uuid_from_file(path).map(Some),
        (None, None) => Ok(None),
    }
}

fn uuid_from_file(path: &Path) -> Result<UsbUuid, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::UuidFile {
        path: path.to_owned(),
        reason: format!(
            "{e}; the installer writes it (blkid -s UUID -o value of the stick), or pass --usb-uuid"
        ),
    })?;
    UsbUuid::parse(&text).map_err(|e| CliError::UuidFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// What the picker found, per manifest entry, before the passphrase is
/// asked: so the operator sees what is about to be sealed.
fn print_bundle_summary(pick: &bundle::Pick) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let width = pick
        .entries
        .iter()
        .filter(|e| e.picked)
        .map(|e| e.display.len())
        .max()
        .unwrap_or(5)
        .max(5);
    writeln!(
        out,
        "{:<width$}  {:>6}  {:>10}  skipped",
        "entry", "files", "bytes"
    )?;
    for e in pick.entries.iter().filter(|e| e.picked) {
        if e.missing() {
            writeln!(
                out,
                "{:<width$}  {:>6}  {:>10}  missing ({})",
                e.display,
                "-",
                "-",
                if e.required { "required" } else { "optional" }
            )?;
        } else {
            writeln!(
                out,
                "{:<width$}  {:>6}  {:>10}  {}",
                e.display, e.files, e.bytes, e.skipped
            )?;
        }
    }
    let skipped = pick
        .skipped
        .iter()
        .filter(|s| s.kind != bundle::SkipKind::Missing)
        .count();
    writeln!(
        out,
        "total: {} entries picked, {} files, {} bytes, {} skipped",
        pick.items.len(),
        pick.file_count(),
        pick.total_size(),
        skipped
    )?;
    for s in pick
        .skipped
        .iter()
        .filter(|s| s.kind != bundle::SkipKind::Missing)
    {
        writeln!(out, "  skipped {}: {}", s.path, s.reason())?;
    }
    out.flush()
}

/// `manifest check`: per entry, what it matches now.
fn print_check(pick: &bundle::Pick, m: &Manifest) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "manifest {}: {} entries for user {}, matched under {}{}",
        pick.manifest.display(),
        pick.entries.len(),
        pick.user,
        pick.source_root.display(),
        if pick.persona.is_empty() {
            String::new()
        } else {
            format!(", persona {}", pick.persona)
        }
    )?;
    if let Some(d) = &m.description {
        writeln!(out, "  {d}")?;
    }
    for (index, e) in pick.entries.iter().enumerate() {
        let mut flags = Vec::new();
        if e.required {
            flags.push("required".to_owned());
        }
        if !e.personas.is_empty() {
            flags.push(format!("personas: {}", e.personas.join(", ")));
        }
        let entry = &m.entries[index];
        if let Some(mode) = entry.mode {
            flags.push(format!("mode {mode:04o}"));
        }
        if let Some(o) = &entry.owner {
            flags.push(format!("owner {o}"));
        }
        if let Some(g) = &entry.group {
            flags.push(format!("group {g}"));
        }
        writeln!(
            out,
            "line {:<4} {}{}{}",
            e.line,
            e.display,
            if flags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", flags.join("; "))
            },
            e.description
                .as_deref()
                .map(|d| format!("  # {d}"))
                .unwrap_or_default()
        )?;
        let pad = "          ";
        if !e.picked {
            writeln!(
                out,
                "{pad}not picked: only for personas {}",
                e.personas.join(", ")
            )?;
            continue;
        }
        if e.missing() {
            if e.required {
                writeln!(
                    out,
                    "{pad}matches nothing: REQUIRED, bundle would fail (exit 6)"
                )?;
            } else {
                writeln!(out, "{pad}matches nothing (optional: skipped)")?;
            }
        } else {
            writeln!(
                out,
                "{pad}{}, {}, {}, {} bytes (max_size {})",
                plural(e.matches.len(), "match", "matches"),
                plural(e.files, "file", "files"),
                plural(e.dirs, "directory", "directories"),
                e.bytes,
                human_size(e.max_size)
            )?;
            for p in &e.matches {
                writeln!(out, "{pad}  {p}")?;
            }
            if e.too_large() {
                writeln!(
                    out,
                    "{pad}over max_size: bundle would fail; raise max_size or add an exclude"
                )?;
            }
        }
        for s in pick
            .skipped
            .iter()
            .filter(|s| s.entry == index && s.kind != bundle::SkipKind::Missing)
        {
            writeln!(out, "{pad}skipped {}: {}", s.path, s.reason())?;
        }
    }
    let picked = pick.entries.iter().filter(|e| e.picked).count();
    let missing = pick.entries.iter().filter(|e| e.missing()).count();
    let required_missing = pick
        .entries
        .iter()
        .filter(|e| e.missing() && e.required)
        .count();
    writeln!(
        out,
        "summary: {} of {} entries apply, {} match, {} missing ({} required); {} files, {} bytes",
        picked,
        pick.entries.len(),
        picked - missing,
        missing,
        required_missing,
        pick.file_count(),
        pick.total_size()
    )?;
    out.flush()
}

/// `1 file`, `2 files`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn print_diff(report: &diff::Report, blob: &Path, manifest: &Path, root: &Path) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if let Some((was, now)) = &report.user_changed {
        writeln!(out, "{:<11} {was} -> {now}", "user")?;
    }
    for c in &report.changes {
        if c.detail.is_empty() {
            writeln!(out, "{:<11} {}", c.kind.word(), c.path)?;
        } else {
            writeln!(out, "{:<11} {}  ({})", c.kind.word(), c.path, c.detail)?;
        }
    }
    if report.is_identical() {
        writeln!(
            out,
            "blob {} matches what manifest {} picks under {}: {} entries, nothing to re-bundle",
            blob.display(),
            manifest.display(),
            root.display(),
            report.in_blob
        )?;
    } else {
        use diff::Kind;
        writeln!(
            out,
            "blob {} differs from what manifest {} picks under {}: {} added, {} removed, {} changed content, {} changed mode or owner{}; re-bundle to carry them",
            blob.display(),
            manifest.display(),
            root.display(),
            report.count(Kind::Added),
            report.count(Kind::Removed),
            report.count(Kind::Content),
            report.count(Kind::Meta),
            if report.user_changed.is_some() {
                ", another user"
            } else {
                ""
            }
        )?;
    }
    out.flush()
}

fn print_rekey(o: &rekey::Outcome, blob: &Path, same_passphrase: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let mut what = Vec::new();
    if !same_passphrase {
        what.push("new passphrase".to_owned());
    }
    if o.new.usb_uuid != o.old.usb_uuid {
        what.push(format!("USB {} -> {}", o.old.usb_uuid, o.new.usb_uuid));
    }
    if o.new.log_n != o.old.log_n {
        what.push(format!("work factor {} -> {}", o.old.log_n, o.new.log_n));
    }
    writeln!(
        out,
        "rekeyed {} ({}): generation {} -> {}, bound to USB {}; {} entries, {} payload bytes copied unchanged",
        blob.display(),
        what.join(", "),
        o.old.generation,
        o.new.generation,
        o.new.usb_uuid,
        o.entries,
        o.payload_bytes
    )?;
    if o.kept_previous {
        writeln!(
            out,
            "previous blob kept as {}{} (generation {})",
            blob.display(),
            bundle::PREV_SUFFIX,
            o.old.generation
        )?;
    }
    out.flush()?;
    if !same_passphrase {
        notice!(
            "a rekey does not revoke the old passphrase: whoever knew it and kept a copy of the old blob can still read the payload; after a disclosure, re-bundle instead"
        );
    }
    Ok(())
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
/// one unwraps the file key and the header MAC verifies. Returns the
/// passphrase that did (rekey `--same-passphrase` wraps under it again).
fn unlock<'h>(
    header: &'h Header,
    blob: &Path,
    expected: Option<&UsbUuid>,
    max_log_n: u8,
    sources: &mut Passphrases,
) -> Result<(UnlockedHeader<'h>, SecretString), CliError> {
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
        let started = std::time::Instant::now();
        let result = header.unlock(&pass, expected, max_log_n);
        let log_n = header.unauthenticated_fields().log_n;
        // The cost of the work factor on this machine, where it is paid
        // (at boot, in the journal): guidance, never calibration.
        notice!(
            "key derivation took {} ms and {} MiB of memory here (work factor {log_n})",
            started.elapsed().as_millis(),
            kdf_memory_mib(log_n)
        );
        match result {
            Ok(unlocked) => return Ok((unlocked, pass)),
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
            kdf_memory_bytes: u64,
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
                kdf_memory_bytes: envelope::scrypt_memory(f.log_n),
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
        "  work factor     {} (scrypt N = 2^{}: {} MiB of memory to decrypt)",
        f.log_n,
        f.log_n,
        kdf_memory_mib(f.log_n)
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
    fn diff_differences_exit_10_and_identical_0() {
        assert_eq!(exit_code(&Ok(Outcome::Differs)), 10);
        assert_eq!(exit_code(&Ok(Outcome::Done)), 0);
    }
}
