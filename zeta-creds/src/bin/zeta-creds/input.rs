//! Turning what the operator typed into ready values, shared by the
//! commands: the USB UUID (from an option or a file), the host (from an
//! option or a root's host name) and the opened blob with its parsed
//! header.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use zeta_creds::envelope::{Header, Host, UsbUuid};
use zeta_creds::hostname;

use crate::cli::{NewUuidArgs, UuidArgs};
use crate::error::CliError;

/// The USB UUID from `--usb-uuid` or `--usb-uuid-file`, normalized.
pub fn read_uuid(args: &UuidArgs) -> Result<UsbUuid, CliError> {
    let path = match (&args.usb_uuid, &args.usb_uuid_file) {
        (Some(raw), _) => {
            return UsbUuid::parse(raw).map_err(|e| CliError::Usage(format!("--usb-uuid: {e}")));
        }
        (None, Some(path)) => path,
        (None, None) => unreachable!("clap requires one of the two"),
    };
    uuid_from_file(path)
}

/// The host from `flag` (`--host NAME`, say), else the host name of the
/// system under `root` ([`hostname::of_root`]).
pub fn read_host(flag: &str, value: Option<&str>, root: &Path) -> Result<Host, CliError> {
    match value {
        Some(raw) => Host::parse(raw).map_err(|e| CliError::Usage(format!("{flag}: {e}"))),
        None => hostname::of_root(root).map_err(CliError::Hostname),
    }
}

/// `rekey`'s `--new-usb-uuid` or `--new-usb-uuid-file`, if given.
pub fn read_new_uuid(args: &NewUuidArgs) -> Result<Option<UsbUuid>, CliError> {
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

/// Open the blob and parse its header (nothing authenticated yet).
pub fn open_blob(blob: &Path) -> Result<(File, Header), CliError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    // O_NONBLOCK: a FIFO put where the blob belongs must not hang the run
    // (a regular file ignores the flag); the type is checked on the
    // descriptor, not the name.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(blob)
        .map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                CliError::BlobMissing(blob.to_owned())
            } else {
                CliError::BlobRead {
                    blob: blob.to_owned(),
                    source,
                }
            }
        })?;
    let kind = file
        .metadata()
        .map_err(|source| CliError::BlobRead {
            blob: blob.to_owned(),
            source,
        })?
        .file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(CliError::BlobNotAFile {
            blob: blob.to_owned(),
            what,
        });
    }
    let header = Header::read(&mut file).map_err(|source| CliError::Blob {
        blob: blob.to_owned(),
        source,
    })?;
    Ok((file, header))
}

/// Where the NixOS module installs the host's manifest
/// (`zeta.credsRestore.manifest`), relative to a root.
pub const HOST_MANIFEST: &str = "etc/zeta/creds-manifest.toml";

/// The manifest a command reads: `--manifest`, else the host's own,
/// `SOURCE_ROOT/etc/zeta/creds-manifest.toml` (on the running system,
/// `/etc/zeta/creds-manifest.toml`).
pub fn manifest_path(given: Option<&Path>, source_root: &Path) -> PathBuf {
    given.map_or_else(|| source_root.join(HOST_MANIFEST), Path::to_owned)
}
