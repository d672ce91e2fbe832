//! `inspect`: the header fields, marked unauthenticated.
#![forbid(unsafe_code)]

use std::io::{self, Write};

use super::{Text, or_none};
use crate::cmd::inspect::InspectReport;

impl Text for InspectReport {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let log_n = self.work_factor;
        writeln!(out, "zeta-creds blob {}", self.blob.display())?;
        writeln!(
            out,
            "  UNAUTHENTICATED: anyone who can write the ESP can change these fields;\n  `zeta-creds verify` checks them with the passphrase"
        )?;
        writeln!(out, "  format version  {}", self.format_version)?;
        writeln!(out, "  usb uuid        {}", self.usb_uuid)?;
        match &self.host {
            Some(host) => writeln!(out, "  host            {host}")?,
            None => writeln!(
                out,
                "  host            (none: format version 1; `zeta-creds rekey --new-host NAME` records one)"
            )?,
        }
        writeln!(
            out,
            "  work factor     {log_n} (scrypt N = 2^{log_n}: {} MiB of memory to decrypt)",
            self.kdf_memory_bytes >> 20
        )?;
        writeln!(out, "  generation      {}", self.generation)?;
        writeln!(out, "  created         {}", self.created_utc)?;
        writeln!(out, "  tool version    {}", self.tool_version)?;
        writeln!(out, "  persona         {}", or_none(&self.persona))?;
        writeln!(
            out,
            "  payload         {} bytes, encrypted (paths, modes and owners are inside)",
            self.payload_bytes
        )
    }
}
