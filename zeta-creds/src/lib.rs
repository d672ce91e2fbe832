//! zeta-creds: carry an operator's credentials across NixOS reinstalls in
//! one authenticated, passphrase-encrypted envelope bound to a USB stick.
//!
//! * [`envelope`] — format v2 (v1 still read), pure: header, key schedule, STREAM, entries.
//! * [`readahead`] — the restore's payload decryption on a second thread.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod bundle;
pub mod cleanup;
pub mod diff;
pub mod envelope;
pub mod fsx;
pub mod hostname;
pub mod manifest;
pub mod msg;
pub mod passphrase;
pub mod passwd;
pub mod pick;
pub mod quality;
pub mod readahead;
pub mod rebundle;
pub mod rekey;
pub mod rescue;
pub mod restore;
pub mod state;
pub mod status;
pub mod sys;
pub mod usb;

/// This crate's version, as the blob header's `tool_version` and
/// `zeta-creds --version` show it (a constant here so that `cargo xtask
/// man`, which compiles the binary's `cli.rs` itself, prints the same).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
