//! `zeta-creds verify`: decrypt and authenticate the whole blob, write
//! nothing.
#![forbid(unsafe_code)]

use std::io::BufReader;
use std::path::PathBuf;

use secrecy::SecretString;

use zeta_creds::envelope::{self, Binding, EntryKind, EntryReader};

use super::Status;
use crate::cli::VerifyArgs;
use crate::error::CliError;
use crate::input::open_blob;
use crate::unlock;

/// What `verify` found, all authenticated.
pub struct VerifyReport {
    /// The blob.
    pub blob: PathBuf,
    /// Always true: the MAC and every chunk checked out.
    pub authenticated: bool,
    /// The stick it is bound to.
    pub usb_uuid: String,
    /// The host it is sealed for; `null` for a blob of format version 1.
    pub host: Option<String>,
    /// scrypt log2(N).
    pub work_factor: u8,
    /// The generation.
    pub generation: u64,
    /// Seconds since the epoch.
    pub created: u64,
    /// The zeta-creds version that sealed it.
    pub tool_version: String,
    /// The persona, empty for none.
    pub persona: String,
    /// Whose home `~` means, empty for none.
    pub user: String,
    /// How many entries the payload holds.
    pub entry_count: usize,
    /// The entries, with `--list`.
    pub entries: Option<Vec<VerifyEntry>>,
}

/// One entry of `verify --list`.
pub struct VerifyEntry {
    /// `~/...` or `/...`.
    pub path: String,
    /// `dir` or `file`.
    pub kind: &'static str,
    /// Octal, four digits.
    pub mode: String,
    /// Owner, by name.
    pub owner: String,
    /// Group, by name.
    pub group: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

impl Status for VerifyReport {}

/// Run `verify`.
pub fn run(args: &VerifyArgs, env_pass: Option<SecretString>) -> Result<VerifyReport, CliError> {
    let sources = unlock::sources(&args.passphrase, env_pass);
    let (file, header) = open_blob(&args.blob)?;
    let (unlocked, _) = unlock::unlock(
        &header,
        &args.blob,
        &Binding::default(),
        args.cap.max_work_factor,
        sources,
    )?;
    let fields = unlocked.fields().clone();
    let blob_err = |source: envelope::Error| CliError::Blob {
        blob: args.blob.clone(),
        source,
    };
    let mut entries =
        EntryReader::new(unlocked.payload_reader(BufReader::new(file))).map_err(blob_err)?;
    let mut metas = Vec::new();
    while let Some(meta) = entries.next_entry().map_err(blob_err)? {
        entries.skip_body().map_err(blob_err)?;
        metas.push(meta);
    }
    Ok(VerifyReport {
        blob: args.blob.clone(),
        authenticated: true,
        usb_uuid: fields.usb_uuid.to_string(),
        host: fields.host.as_ref().map(ToString::to_string),
        work_factor: fields.log_n,
        generation: fields.generation,
        created: fields.created,
        tool_version: fields.tool_version,
        persona: fields.persona,
        user: entries.user().to_owned(),
        entry_count: metas.len(),
        entries: args.list.then(|| {
            metas
                .into_iter()
                .map(|m| VerifyEntry {
                    path: m.display_path(),
                    kind: if m.kind == EntryKind::Dir {
                        "dir"
                    } else {
                        "file"
                    },
                    mode: format!("{:04o}", m.mode),
                    owner: m.owner,
                    group: m.group,
                    size: m.size,
                    mtime: m.mtime,
                })
                .collect()
        }),
    })
}
