//! What a man page says that `--help` has no room for: the environment,
//! the files, worked examples. Everything else on a page (name, options,
//! description, exit statuses, the passphrase sources) comes from the clap
//! definition and the `Exit` enum, the sources `--help` prints.
//!
//! Every command line here is checked by `examples_parse` (in `main.rs`)
//! against the clap definition, so an example cannot name an option that
//! does not exist.

/// The extra sections of one page.
pub struct Extras {
    /// SYNOPSIS forms for a command whose options clap does not know
    /// (install-step parses its own); empty: generated from clap.
    pub forms: &'static [&'static str],
    /// ENVIRONMENT: (variable, what it does).
    pub env: &'static [(&'static str, &'static str)],
    /// FILES: (path, what it is).
    pub files: &'static [(&'static str, &'static str)],
    /// EXAMPLES: (what, command lines). A line starting with `zeta-creds `
    /// is a command that `examples_parse` checks; `#` lines are comments.
    pub examples: &'static [(&'static str, &'static str)],
}

const CREDENTIALS_DIRECTORY: (&str, &str) = (
    "CREDENTIALS_DIRECTORY",
    "Set by systemd for a unit with LoadCredential=, LoadCredentialEncrypted= or \
     ImportCredential=. The passphrase is read from $CREDENTIALS_DIRECTORY/passphrase, \
     the first source tried; a passphrase sealed with systemd-creds(1) gives a headless boot.",
);

const ZETA_CREDS_PASSPHRASE: (&str, &str) = (
    "ZETA_CREDS_PASSPHRASE",
    "The passphrase, for unattended installs only, and discouraged: a process's environment \
     is inherited by every child and readable in /proc/PID/environ for the process's whole \
     life. zeta-creds restarts itself without it when it starts (the passphrase handed over \
     on a pipe) and warns when it uses it; the shell that set it still holds it.",
);

const JOURNAL_STREAM: (&str, &str) = (
    "JOURNAL_STREAM",
    "Set by systemd when stderr is the journal. zeta-creds then starts each message line \
     with its syslog priority (<3> for an error), so that journalctl -p err -u \
     zeta-creds-restore shows the failures.",
);

const STEP_ENV: [(&str, &str); 5] = [
    (
        "ZETA_CREDS_PICKER",
        "1 runs the step, 0 skips it; unset, it asks on a terminal and is skipped without one.",
    ),
    (
        "ZETA_CREDS_REBUNDLE",
        "When the ESP already holds a blob: 0 keeps it (or moves it to this stick), \
         1 re-bundles after showing zeta-creds diff; unset, it asks (default: keep).",
    ),
    (
        "ZETA_CREDS_SEAL",
        "tpm2 is --seal-tpm2; none, or unset, seals nothing.",
    ),
    (
        "ZETA_CREDS_MANIFEST_DIR",
        "The directory holding the packaged default.toml manifest.",
    ),
    (
        "ZETA_CREDS_RESCUE_DIR",
        "Where install-step rescue copied blobs before the disks were wiped \
         (default /run/zeta-creds/rescued).",
    ),
];

const BLOB: (&str, &str) = (
    "/boot/zeta-creds.enc",
    "The blob, at the top of the ESP (the NixOS module follows \
     boot.loader.efi.efiSysMountPoint). BLOB.prev beside it is the blob a bundle or \
     rekey replaced, unless --no-backup. inspect reads its header without a passphrase.",
);

const USB_UUID: (&str, &str) = (
    "/etc/zeta/usb-uuid",
    "The filesystem UUID of the USB stick the blob is bound to, written by the installer \
     step; read with --usb-uuid-file. ASCII whitespace around it is ignored.",
);

const MANIFEST: (&str, &str) = (
    "/etc/zeta/creds-manifest.toml",
    "The manifest the NixOS module installs (zeta.credsRestore.manifest): what to carry. \
     bundle, diff, status and manifest check read it (under --source-root or \
     --target-root) when no manifest is given.",
);

const STATE: (&str, &str) = (
    "/var/lib/zeta-creds/state.json",
    "The state record the last restore wrote under --target-root (root, mode 0600): the \
     generation and header digest of the blob restored, and the size, times and inode of \
     every file written; no secret, no content hash. restore uses it to keep local \
     changes, refuse a rollback and skip a blob already restored (--if-new); status \
     compares the disk with it.",
);

const CREDSTORE: (&str, &str) = (
    "/etc/credstore.encrypted/zeta-creds-passphrase",
    "The passphrase sealed to the TPM2 by install-step --seal-tpm2 (systemd-creds \
     encrypt --with-key=tpm2); the module's credential mode loads it.",
);

const EX_FIRST_INSTALL: (&str, &str) = (
    "First install, from the live USB stick, after nixos-install and after logging in \
     to your tools (seals the manifest's credentials into the target's ESP and writes \
     /mnt/etc/zeta/usb-uuid):",
    "zeta-creds install-step --target /mnt --esp /mnt/boot",
);

const EX_EVERY_BOOT: (&str, &str) = (
    "Every boot: what zeta-creds-restore.service runs (with restoreOn = \"new-blob\" it \
     runs only for a blob that is not the one last restored; restore --if-new --check \
     decides):",
    "zeta-creds restore --blob /boot/zeta-creds.enc --usb-uuid-file /etc/zeta/usb-uuid --ask-password",
);

const EX_REBUNDLE: (&str, &str) = (
    "Re-bundle after rotating a login: is the blob stale, what would change, replace it, \
     check it:",
    "zeta-creds status\n\
     zeta-creds diff --blob /boot/zeta-creds.enc\n\
     zeta-creds bundle --out /boot/zeta-creds.enc --usb-uuid-file /etc/zeta/usb-uuid\n\
     zeta-creds verify --blob /boot/zeta-creds.enc --list",
);

const EX_REKEY: (&str, &str) = (
    "Rekey: a new passphrase (asked twice on the terminal), then a new stick with the same \
     passphrase:",
    "zeta-creds rekey --blob /boot/zeta-creds.enc\n\
     zeta-creds rekey --blob /boot/zeta-creds.enc --same-passphrase --new-usb-uuid-file /etc/zeta/usb-uuid",
);

const EX_INSPECT: (&str, &str) = (
    "Inspect a blob's header (unauthenticated; no passphrase):",
    "zeta-creds inspect /boot/zeta-creds.enc\n\
     zeta-creds inspect --json /boot/zeta-creds.enc",
);

/// The extras of the page of the command `path` (`[]` for the top page,
/// `["manifest", "check"]` for a nested one).
pub fn extras(path: &[&str]) -> Extras {
    match path {
        [] => Extras {
            forms: &[],
            env: &[CREDENTIALS_DIRECTORY, ZETA_CREDS_PASSPHRASE, JOURNAL_STREAM],
            files: &[BLOB, USB_UUID, MANIFEST, STATE, CREDSTORE],
            examples: &[
                EX_FIRST_INSTALL,
                EX_EVERY_BOOT,
                EX_REBUNDLE,
                EX_REKEY,
                EX_INSPECT,
            ],
        },
        ["bundle"] => Extras {
            forms: &[],
            env: &[CREDENTIALS_DIRECTORY, ZETA_CREDS_PASSPHRASE],
            files: &[BLOB, USB_UUID, MANIFEST, STATE],
            examples: &[
                (
                    "Seal the credentials of the system mounted at /mnt (what the \
                     installer step runs):",
                    "zeta-creds bundle --source-root /mnt --out /mnt/boot/zeta-creds.enc --usb-uuid-file /mnt/etc/zeta/usb-uuid",
                ),
                EX_REBUNDLE,
            ],
        },
        ["restore"] => Extras {
            forms: &[],
            env: &[CREDENTIALS_DIRECTORY, ZETA_CREDS_PASSPHRASE, JOURNAL_STREAM],
            files: &[BLOB, USB_UUID, STATE],
            examples: &[
                EX_EVERY_BOOT,
                (
                    "What the boot-time check runs: exit 0 when this blob is already \
                     restored, 10 when a restore is needed; asks nothing:",
                    "zeta-creds restore --blob /boot/zeta-creds.enc --usb-uuid-file /etc/zeta/usb-uuid --if-new --check",
                ),
                (
                    "See what a restore would change, writing nothing:",
                    "zeta-creds restore --blob /boot/zeta-creds.enc --usb-uuid-file /etc/zeta/usb-uuid --dry-run",
                ),
                (
                    "Go back to the previous blob on purpose:",
                    "zeta-creds restore --blob /boot/zeta-creds.enc.prev --usb-uuid-file /etc/zeta/usb-uuid --allow-rollback",
                ),
            ],
        },
        ["inspect"] => Extras {
            forms: &[],
            env: &[],
            files: &[BLOB],
            examples: &[EX_INSPECT],
        },
        ["verify"] => Extras {
            forms: &[],
            env: &[CREDENTIALS_DIRECTORY, ZETA_CREDS_PASSPHRASE],
            files: &[BLOB],
            examples: &[(
                "Check that a blob opens and list what it holds, writing nothing:",
                "zeta-creds verify --blob /boot/zeta-creds.enc --list",
            )],
        },
        ["diff"] => Extras {
            forms: &[],
            env: &[CREDENTIALS_DIRECTORY, ZETA_CREDS_PASSPHRASE],
            files: &[BLOB, MANIFEST],
            examples: &[(
                "Is the blob current? Exit 0 when it carries what the manifest picks \
                 now, 10 when a re-bundle would change something:",
                "zeta-creds diff --blob /boot/zeta-creds.enc",
            )],
        },
        ["status"] => Extras {
            forms: &[],
            env: &[],
            files: &[STATE, MANIFEST],
            examples: &[(
                "Before a planned reinstall: exit 0 when the disk is as the blob \
                 carries it, 10 when a re-bundle is due:",
                "zeta-creds status",
            )],
        },
        ["rebundle"] => Extras {
            forms: &[],
            env: &[CREDENTIALS_DIRECTORY, ZETA_CREDS_PASSPHRASE],
            files: &[BLOB, USB_UUID, MANIFEST, STATE],
            examples: &[
                (
                    "What the NixOS module's timer runs in credential mode: re-bundle only when \
                     a carried file changed since the blob was sealed (the passphrase is read \
                     only then), keeping the old blob as BLOB.prev and raising the state record:",
                    "zeta-creds rebundle --blob /boot/zeta-creds.enc --usb-uuid-file /etc/zeta/usb-uuid",
                ),
                (
                    "In interactive or file mode: only say so (one warning, exit 10 when stale) \
                     and leave a line for the next login shell; no passphrase is read:",
                    "zeta-creds rebundle --blob /boot/zeta-creds.enc --usb-uuid-file /etc/zeta/usb-uuid --report-only --notice /run/zeta-creds-notice/stale",
                ),
            ],
        },
        ["rekey"] => Extras {
            forms: &[],
            env: &[CREDENTIALS_DIRECTORY, ZETA_CREDS_PASSPHRASE],
            files: &[BLOB, USB_UUID, STATE],
            examples: &[
                EX_REKEY,
                (
                    "Move a host's identity to new hardware called node-b:",
                    "zeta-creds rekey --blob /boot/zeta-creds.enc --same-passphrase --new-host node-b",
                ),
            ],
        },
        ["manifest"] | ["manifest", "check"] => Extras {
            forms: &[],
            env: &[],
            files: &[MANIFEST],
            examples: &[
                (
                    "What the host's manifest matches now:",
                    "zeta-creds manifest check",
                ),
                (
                    "Validate a manifest only, where the system is not there (a build step):",
                    "zeta-creds manifest check --syntax-only manifest/default.toml",
                ),
            ],
        },
        ["completions"] => Extras {
            forms: &[],
            env: &[],
            files: &[],
            examples: &[(
                "Install the bash completions:",
                "zeta-creds completions bash > /etc/bash_completion.d/zeta-creds",
            )],
        },
        ["install-step"] => Extras {
            forms: &[
                "zeta-creds install-step --target DIR --esp DIR [OPTIONS]",
                "zeta-creds install-step rescue [--device DEV]... [--from PATH]... [--stash DIR]... [--usb-device DEV] [--old-root DEV]... [--reseal | --no-reseal] [--allow-rescue-dir-on-disk] [--json]",
                "zeta-creds install-step --help",
            ],
            env: &[
                STEP_ENV[0],
                ZETA_CREDS_PASSPHRASE,
                STEP_ENV[1],
                STEP_ENV[2],
                STEP_ENV[3],
                STEP_ENV[4],
            ],
            files: &[BLOB, USB_UUID, MANIFEST, CREDSTORE],
            examples: &[
                (
                    "Reinstalling a machine whose ESP the installer will reformat: copy \
                     its blob into RAM first, before partitioning (no passphrase):",
                    "zeta-creds install-step rescue",
                ),
                EX_FIRST_INSTALL,
                (
                    "The same, with the passphrase also sealed to this machine's TPM2 for \
                     a headless first boot:",
                    "zeta-creds install-step --target /mnt --esp /mnt/boot --seal-tpm2",
                ),
            ],
        },
        _ => Extras {
            forms: &[],
            env: &[],
            files: &[],
            examples: &[],
        },
    }
}
