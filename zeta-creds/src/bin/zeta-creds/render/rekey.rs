//! `rekey`: what changed, and that a rekey is not a revocation.
#![forbid(unsafe_code)]

use std::io::{self, Write};

use zeta_creds::notice;

use super::{Text, kept_previous};
use crate::cmd::rekey::RekeyReport;

impl Text for RekeyReport {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let o = &self.outcome;
        let mut what = Vec::new();
        if !self.same_passphrase {
            what.push("new passphrase".to_owned());
        }
        if o.new.usb_uuid != o.old.usb_uuid {
            what.push(format!("USB {} -> {}", o.old.usb_uuid, o.new.usb_uuid));
        }
        if o.new.host != o.old.host {
            let name = |h: &Option<zeta_creds::envelope::Host>| {
                h.as_ref()
                    .map_or_else(|| "(none)".to_owned(), ToString::to_string)
            };
            what.push(format!(
                "host {} -> {}",
                name(&o.old.host),
                name(&o.new.host)
            ));
        }
        if o.new.log_n != o.old.log_n {
            what.push(format!("work factor {} -> {}", o.old.log_n, o.new.log_n));
        }
        writeln!(
            out,
            "rekeyed {} ({}): generation {} -> {}, bound to USB {}; {} entries, {} payload bytes copied unchanged",
            self.blob.display(),
            what.join(", "),
            o.old.generation,
            o.new.generation,
            o.new.usb_uuid,
            o.entries,
            o.payload_bytes
        )?;
        if o.kept_previous {
            kept_previous(out, &self.blob, o.old.generation)?;
        }
        Ok(())
    }

    fn messages_after(&self) {
        if !self.same_passphrase {
            notice!(
                "a rekey does not revoke the old passphrase: whoever knew it and kept a copy of the old blob can still read the payload; after a disclosure, re-bundle instead"
            );
        }
    }
}
