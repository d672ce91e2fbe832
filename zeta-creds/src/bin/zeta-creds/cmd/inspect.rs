//! `zeta-creds inspect BLOB`: the header, read without a passphrase.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use zeta_creds::envelope;

use super::Status;
use crate::cli::InspectArgs;
use crate::error::CliError;
use crate::input::open_blob;
use crate::render::utc;

/// A blob's header fields, all unauthenticated (`render/json.rs` makes
/// its JSON document).
pub struct InspectReport {
    /// The blob.
    pub blob: PathBuf,
    /// Always false: no passphrase checked the MAC.
    pub authenticated: bool,
    /// Says so, for readers of the JSON.
    pub note: &'static str,
    /// The envelope format version.
    pub format_version: u8,
    /// The stick the blob claims to be bound to.
    pub usb_uuid: String,
    /// The host the blob claims to be sealed for; `null` for format
    /// version 1, which records none.
    pub host: Option<String>,
    /// scrypt log2(N).
    pub work_factor: u8,
    /// Memory scrypt needs at that work factor.
    pub kdf_memory_bytes: u64,
    /// The claimed generation.
    pub generation: u64,
    /// Seconds since the epoch.
    pub created: u64,
    /// `created` as `YYYY-MM-DD HH:MM:SS UTC`.
    pub created_utc: String,
    /// The zeta-creds version that sealed it.
    pub tool_version: String,
    /// The persona, empty for none.
    pub persona: String,
    /// Length of the header.
    pub header_bytes: usize,
    /// Length of the encrypted payload.
    pub payload_bytes: u64,
}

impl Status for InspectReport {}

/// Run `inspect`.
pub fn run(args: &InspectArgs) -> Result<InspectReport, CliError> {
    let (file, header) = open_blob(&args.blob)?;
    let blob_len = file
        .metadata()
        .map_err(|source| CliError::BlobRead {
            blob: args.blob.clone(),
            source,
        })?
        .len();
    let f = header.unauthenticated_fields();
    Ok(InspectReport {
        blob: args.blob.clone(),
        authenticated: false,
        note: "header fields are unauthenticated until a passphrase checks the MAC (zeta-creds verify)",
        format_version: f.version(),
        usb_uuid: f.usb_uuid.to_string(),
        host: f.host.as_ref().map(ToString::to_string),
        work_factor: f.log_n,
        kdf_memory_bytes: envelope::scrypt_memory(f.log_n),
        generation: f.generation,
        created: f.created,
        created_utc: utc(f.created),
        tool_version: f.tool_version.clone(),
        persona: f.persona.clone(),
        header_bytes: header.len(),
        payload_bytes: blob_len.saturating_sub(header.len() as u64),
    })
}
