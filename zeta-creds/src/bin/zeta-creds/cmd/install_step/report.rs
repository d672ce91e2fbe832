//! The step's last words on stdout: what it did, and the NixOS lines that
//! make the installed system restore the blob. Pure text from a
//! [`Summary`].

use std::fmt::Write as _;
use std::path::Path;

use super::decide::Action;

/// The blob's file name on the ESP.
pub const BLOB_NAME: &str = "zeta-creds.enc";

/// Where the restore module looks when `blob` is not set.
const DEFAULT_NIX_BLOB: &str = "/boot/zeta-creds.enc";

/// The TPM2-sealed passphrase, as the installed system sees it.
pub const CREDENTIAL_PATH: &str = "/etc/credstore.encrypted/zeta-creds-passphrase";

/// What `verify --json` said about the blob on the ESP; a field it did
/// not give prints as `?` (or is left out of the NixOS lines).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `counts.entries`.
    pub entries: Option<u64>,
    /// `user`.
    pub user: Option<String>,
    /// `generation`.
    pub generation: Option<u64>,
    /// `persona` (empty: none).
    pub persona: Option<String>,
    /// `work_factor`.
    pub work_factor: Option<u64>,
}

/// Everything the summary says.
#[derive(Debug, Clone)]
pub struct Summary<'a> {
    /// What the step did.
    pub action: Action,
    /// Where the blob came from when it was not on the ESP: "the rescue
    /// directory (PATH)", "the stash on the stick (PATH)", "--blob (PATH)".
    pub from: Option<String>,
    /// Where the credentials came from (`--source-root`).
    pub source_root: &'a str,
    /// The blob on the ESP.
    pub blob: &'a Path,
    /// The stick's UUID as blkid printed it.
    pub uuid: &'a str,
    /// The same, normalized.
    pub uuid_norm: &'a str,
    /// The directory holding `usb-uuid`.
    pub uuid_dir: &'a Path,
    /// `verify --json`.
    pub verified: &'a Verified,
    /// Sealed to the TPM2: the credential's path and the PCRs.
    pub sealed: Option<(&'a Path, &'a str)>,
    /// The blob's path on the installed system, when the ESP is under the target.
    pub nix_blob: Option<String>,
}

/// The blob's path as the installed system sees it: the ESP's path below
/// the target (`/mnt/boot` under `/mnt` is `/boot`), or `None` when the
/// ESP is mounted elsewhere.
pub fn nix_blob(target: &str, esp: &str) -> Option<String> {
    if target == "/" {
        return Some(format!("{esp}/{BLOB_NAME}"));
    }
    let esp_slash = format!("{esp}/");
    let target_slash = format!("{target}/");
    esp_slash
        .starts_with(&target_slash)
        .then(|| format!("{}/{BLOB_NAME}", &esp[target.len()..]))
}

fn or_unknown<T: ToString>(v: Option<&T>) -> String {
    v.map_or_else(|| "?".to_owned(), ToString::to_string)
}

/// The summary and NixOS lines, as printed to stdout.
pub fn render(s: &Summary<'_>) -> String {
    let mut o = String::new();
    let what = match (s.action, &s.from) {
        (Action::Keep, None) => {
            "kept the blob already on the ESP (checked with its passphrase)".to_owned()
        }
        (Action::Keep, Some(from)) => {
            format!("kept the blob from {from}, now on the ESP (checked with its passphrase)")
        }
        (Action::Move, None) => {
            "moved the blob on the ESP to this stick (same credentials, same passphrase)".to_owned()
        }
        (Action::Move, Some(from)) => format!(
            "moved the blob from {from} to this stick, now on the ESP (same credentials, same passphrase)"
        ),
        (Action::Bundle | Action::Rebundle | Action::Replace, None) => {
            format!("sealed the credentials from {}", s.source_root)
        }
        (Action::Bundle | Action::Rebundle | Action::Replace, Some(from)) => format!(
            "sealed the credentials from {} (the blob from {from} is kept as {BLOB_NAME}.prev)",
            s.source_root
        ),
    };
    let v = s.verified;
    let _ = writeln!(o);
    let _ = writeln!(o, "Done: {what}");
    let _ = writeln!(
        o,
        "  blob        {}: {} entries for user {}, generation {}, bound to USB {}",
        s.blob.display(),
        or_unknown(v.entries.as_ref()),
        or_unknown(v.user.as_ref()),
        or_unknown(v.generation.as_ref()),
        s.uuid_norm
    );
    let _ = writeln!(
        o,
        "  usb uuid    {} (written to {}/usb-uuid)",
        s.uuid,
        s.uuid_dir.display()
    );
    o.push_str(
        "\nTo restore them at every boot, add to the installed system's NixOS configuration\n",
    );
    o.push_str(
        "(with the zeta-creds module imported, e.g. inputs.zeta-creds.nixosModules.default):\n\n",
    );
    o.push_str("  zeta.credsRestore.enable = true;\n");
    if s.sealed.is_some() {
        o.push_str("  zeta.credsRestore.passphrase.mode = \"credential\";\n");
        let _ = writeln!(
            o,
            "  zeta.credsRestore.passphrase.credential = \"{CREDENTIAL_PATH}\";"
        );
        o.push_str("  # zeta.credsRestore.passphrase.credentialFallback = \"interactive\";  # ask on the console if the TPM2 no longer unseals it\n");
    } else {
        o.push_str("  zeta.credsRestore.passphrase.mode = \"interactive\";\n");
    }
    match &s.nix_blob {
        None => {
            let _ = writeln!(
                o,
                "  # zeta.credsRestore.blob = \"<where this ESP is mounted>/{BLOB_NAME}\";  (default: boot.loader.efi.efiSysMountPoint, /boot)"
            );
        }
        Some(path) if path != DEFAULT_NIX_BLOB => {
            let _ = writeln!(o, "  zeta.credsRestore.blob = \"{path}\";");
        }
        Some(_) => {}
    }
    if let Some(persona) = v.persona.as_deref().filter(|p| !p.is_empty()) {
        let _ = writeln!(o, "  zeta.credsRestore.persona = \"{persona}\";");
    }
    if let Some(wf) = v.work_factor.filter(|&wf| wf > 20) {
        let _ = writeln!(o, "  zeta.credsRestore.maxWorkFactor = {wf};");
    }
    match s.sealed {
        Some((cred, pcrs)) => {
            o.push_str(
                "\nThe first boot restores them without asking: the passphrase is sealed to this\n",
            );
            let pcrs = if pcrs.is_empty() { "none" } else { pcrs };
            let _ = writeln!(o, "machine's TPM2 in {} (PCRs: {pcrs}).", cred.display());
        }
        None => o.push_str("\nThe first boot asks for the passphrase on the console.\n"),
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary<'a>(
        v: &'a Verified,
        sealed: Option<(&'a Path, &'a str)>,
        nix: Option<&str>,
    ) -> String {
        render(&Summary {
            action: Action::Bundle,
            from: None,
            source_root: "/mnt",
            blob: Path::new("/mnt/boot/zeta-creds.enc"),
            uuid: "DEAD-BEEF",
            uuid_norm: "dead-beef",
            uuid_dir: Path::new("/mnt/etc/zeta"),
            verified: v,
            sealed,
            nix_blob: nix.map(str::to_owned),
        })
    }

    /// Issue 16: a blob found off the ESP is not "already on the ESP".
    #[test]
    fn the_first_line_says_where_the_blob_came_from() {
        let v = Verified::default();
        let first = |action, from: Option<&str>| {
            render(&Summary {
                action,
                from: from.map(str::to_owned),
                source_root: "/mnt",
                blob: Path::new("/mnt/boot/zeta-creds.enc"),
                uuid: "DEAD-BEEF",
                uuid_norm: "dead-beef",
                uuid_dir: Path::new("/mnt/etc/zeta"),
                verified: &v,
                sealed: None,
                nix_blob: None,
            })
            .lines()
            .nth(1)
            .unwrap()
            .to_owned()
        };
        let r = Some("the rescue directory (/run/zeta-creds/rescued/x.enc)");
        assert_eq!(
            first(Action::Keep, None),
            "Done: kept the blob already on the ESP (checked with its passphrase)"
        );
        assert_eq!(
            first(Action::Keep, r),
            "Done: kept the blob from the rescue directory (/run/zeta-creds/rescued/x.enc), now on the ESP (checked with its passphrase)"
        );
        assert_eq!(
            first(Action::Move, Some("the stash on the stick (/s/node-a.enc)")),
            "Done: moved the blob from the stash on the stick (/s/node-a.enc) to this stick, now on the ESP (same credentials, same passphrase)"
        );
        assert_eq!(
            first(Action::Rebundle, Some("--blob (/b.enc)")),
            "Done: sealed the credentials from /mnt (the blob from --blob (/b.enc) is kept as zeta-creds.enc.prev)"
        );
        for action in [Action::Keep, Action::Move, Action::Rebundle] {
            assert!(!first(action, r).contains("already on the ESP"));
        }
    }

    #[test]
    fn where_the_installed_system_sees_the_blob() {
        assert_eq!(
            nix_blob("/mnt", "/mnt/boot").as_deref(),
            Some("/boot/zeta-creds.enc")
        );
        assert_eq!(
            nix_blob("/mnt", "/mnt/esp").as_deref(),
            Some("/esp/zeta-creds.enc")
        );
        assert_eq!(
            nix_blob("/", "/boot").as_deref(),
            Some("/boot/zeta-creds.enc")
        );
        assert_eq!(nix_blob("/mnt", "/mnt").as_deref(), Some("/zeta-creds.enc"));
        assert_eq!(nix_blob("/mnt", "/mntboot"), None);
        assert_eq!(nix_blob("/mnt", "/tmp/esp"), None);
    }

    #[test]
    fn interactive_lines_with_the_blob_under_efi() {
        let v = Verified {
            entries: Some(8),
            user: Some("zeta".into()),
            generation: Some(1),
            persona: Some(String::new()),
            work_factor: Some(10),
        };
        assert_eq!(
            summary(&v, None, Some("/efi/zeta-creds.enc")),
            "
Done: sealed the credentials from /mnt
  blob        /mnt/boot/zeta-creds.enc: 8 entries for user zeta, generation 1, bound to USB dead-beef
  usb uuid    DEAD-BEEF (written to /mnt/etc/zeta/usb-uuid)

To restore them at every boot, add to the installed system's NixOS configuration
(with the zeta-creds module imported, e.g. inputs.zeta-creds.nixosModules.default):

  zeta.credsRestore.enable = true;
  zeta.credsRestore.passphrase.mode = \"interactive\";
  zeta.credsRestore.blob = \"/efi/zeta-creds.enc\";

The first boot asks for the passphrase on the console.
"
        );
    }

    #[test]
    fn credential_lines_persona_work_factor_and_the_default_blob() {
        let v = Verified {
            persona: Some("reviewer".into()),
            work_factor: Some(21),
            ..Verified::default()
        };
        let cred = Path::new("/mnt/etc/credstore.encrypted/zeta-creds-passphrase");
        let text = summary(&v, Some((cred, "")), Some("/boot/zeta-creds.enc"));
        assert!(text.contains("? entries for user ?, generation ?"));
        assert!(text.contains("  zeta.credsRestore.passphrase.mode = \"credential\";\n"));
        assert!(text.contains(
            "  zeta.credsRestore.passphrase.credential = \"/etc/credstore.encrypted/zeta-creds-passphrase\";\n"
        ));
        assert!(!text.contains("mode = \"interactive\""));
        assert!(
            !text.contains("credsRestore.blob"),
            "the default path needs no line"
        );
        assert!(text.contains("  zeta.credsRestore.persona = \"reviewer\";\n"));
        assert!(text.contains("  zeta.credsRestore.maxWorkFactor = 21;\n"));
        assert!(text.ends_with(
            "machine's TPM2 in /mnt/etc/credstore.encrypted/zeta-creds-passphrase (PCRs: none).\n"
        ));
        let elsewhere = summary(&Verified::default(), None, None);
        assert!(elsewhere.contains(
            "  # zeta.credsRestore.blob = \"<where this ESP is mounted>/zeta-creds.enc\";  (default: boot.loader.efi.efiSysMountPoint, /boot)\n"
        ));
        assert!(!elsewhere.contains("maxWorkFactor"));
    }
}
