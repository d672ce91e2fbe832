//! The consumed `--passphrase-file`: what is read is removed, and nothing
//! else.
//!
//! The file is opened with `O_NOFOLLOW` and checked on the descriptor. A
//! [`Guard`] is registered with the signal thread just before the open, so
//! a signal while a FIFO's open or read blocks still removes it; once the
//! file is open the guard is tied to its device and inode. Right after the
//! read (whether or not what it held is accepted) the guard drops and
//! unlinks it. The guard is disarmed, and the file left alone, when the open
//! fails (a symlink such as `/dev/stdin` is refused, a missing or
//! unreadable file) and when it is neither a regular file nor a FIFO (a
//! device such as `/dev/null` is read but never unlinked).
#![forbid(unsafe_code)]

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::FileType;
use secrecy::SecretString;

use super::{Error, SourceKind, finish_stripped, read_bounded, read_error};
use crate::cleanup::Guard;

/// Read the passphrase from the file at `path`; with `consume`, unlink it
/// right after the read (see the module documentation for exactly when).
pub fn read_consumed(path: &Path, consume: bool) -> Result<SecretString, Error> {
    let from = SourceKind::File;
    let guard = consume.then(|| Guard::passphrase_file(path));
    // O_NOFOLLOW: a symlink is refused, so the entry we read is the one the
    // guard unlinks (unlinking a symlink would leave its target).
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .and_then(|file| Ok((rustix::fs::fstat(&file)?, file)));
    let (st, file) = match opened {
        Ok(opened) => opened,
        Err(err) => {
            if let Some(g) = guard {
                g.disarm();
            }
            return Err(read_error(from, path, err));
        }
    };
    let guard = match guard {
        Some(g)
            if matches!(
                FileType::from_raw_mode(st.st_mode),
                FileType::RegularFile | FileType::Fifo
            ) =>
        {
            g.identify(&st);
            Some(g)
        }
        Some(g) => {
            g.disarm();
            None
        }
        None => None,
    };
    let read = read_bounded(file);
    // Consumed right after reading, whether or not that worked.
    drop(guard);
    let buf = read.map_err(|err| read_error(from, path, err))?;
    finish_stripped(from, &buf)
}
