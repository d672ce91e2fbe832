//! `verify`: the optional entry list, then one line saying the blob is
//! intact.
#![forbid(unsafe_code)]

use std::io::{self, Write};

use zeta_creds::msg::escape;

use super::{Text, or_none, persona_suffix};
use crate::cmd::verify::VerifyReport;

impl Text for VerifyReport {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        for e in self.entries.iter().flatten() {
            writeln!(
                out,
                "{} {} {:>17} {:>10}  {}",
                if e.kind == "dir" { 'd' } else { '-' },
                e.mode,
                escape(&format!("{}:{}", e.owner, e.group)),
                e.size,
                escape(&e.path)
            )?;
        }
        writeln!(
            out,
            "blob {} is intact: {} entries for user {}, generation {}, bound to USB {}{}, sealed for host {}",
            self.blob.display(),
            self.entry_count,
            or_none(&self.user),
            self.generation,
            self.usb_uuid,
            persona_suffix(&self.persona),
            self.host.as_deref().unwrap_or("(none: format version 1)")
        )
    }
}
