//! zeta-creds: carry an operator's credentials across NixOS reinstalls in
//! one authenticated, passphrase-encrypted envelope bound to a USB stick.
//!
//! * [`envelope`] — format v1, pure: header, key schedule, STREAM, entries.
#![deny(unsafe_code)]

pub mod envelope;
pub mod sys;
pub mod passphrase;
pub mod fsx;
pub mod manifest;
pub mod passwd;
pub mod bundle;
pub mod restore;
