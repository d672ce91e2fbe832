//! The installer step's `--help`, in a file of its own with no other
//! dependency, so that xtask builds the step's man page (OPTIONS, EXIT
//! STATUS) from this very text, as it builds the others from the clap
//! definition: one source for both.
#![forbid(unsafe_code)]

/// The step's `--help` as `name` (`zeta-creds install-step` or the
/// script's name) prints it, with the exit table `exit_table` in its place.
pub fn text(name: &str, exit_table: &str) -> String {
    let usage_name = if name == "zeta-creds install-step" {
        name
    } else {
        "zeta-creds-step.sh"
    };
    format!(
        "Usage: {usage_name} --target DIR --esp DIR [OPTIONS]

Seal the credentials listed in a zeta-creds manifest into DIR/zeta-creds.enc
on the ESP, bound to the live USB stick, and record the stick's UUID in
TARGET/etc/zeta/usb-uuid, so that the installed system restores them at boot.

Options:
  --target DIR        root of the system being installed (e.g. /mnt)
  --esp DIR           the mounted ESP; the blob goes to DIR/zeta-creds.enc
  --usb-device DEV    block device (or image file) of the live USB stick;
                      default: the device mounted at /iso (NixOS),
                      /run/live/medium, /run/initramfs/live or /cdrom
  --manifest FILE     default: TARGET/etc/zeta/creds-manifest.toml, else the
                      packaged manifest/default.toml
  --persona NAME      carry only the entries for this persona
  --user NAME         whose home \"~\" means, instead of the manifest's user
                      (e.g. the installed system's own user, not \"zeta\");
                      checked with every required entry before any
                      passphrase is asked
  --source-root DIR   where the logged-in credentials are (default: TARGET)
  --zeta-creds PATH   the zeta-creds binary the step runs for bundle, verify,
                      diff and rekey (default: the one running the step)
  --work-factor N     scrypt work factor of a new blob (default: zeta-creds's, 18)
  --seal-tpm2         also seal the passphrase to this machine's TPM2
                      (systemd-creds encrypt --with-key=tpm2) into
                      TARGET/etc/credstore.encrypted/zeta-creds-passphrase, so
                      the installed system restores at boot without asking;
                      without a usable TPM2 the step says so and the system
                      asks on the console instead
  --tpm2-pcrs LIST    with --seal-tpm2: the PCRs the seal is bound to, as
                      systemd-creds takes them (default 7: the Secure Boot
                      state; \"\" binds to no PCR: whoever boots anything on
                      this machine can unseal it). See installer/README.md
  --systemd-creds PATH  the systemd-creds binary (default: on PATH)
  --host NAME         the installed system's host name (default: read from
                      TARGET/etc/hostname inside the target); names its
                      blob in the stash and picks rescued blobs
  --stash DIR         a writable directory holding one blob per host,
                      DIR/<host>.enc: read when the ESP and the rescue
                      directory hold no blob, written after sealing or
                      keeping (the previous kept as <host>.enc.prev);
                      default: the filesystem labelled ZETA-CREDS on the
                      live stick's disk, mounted only while used
  --blob FILE         a blob to import when the ESP, the rescue directory
                      and the stash hold none (kept, moved or re-bundled
                      as a blob on the ESP would be)
  -h, --help          print this help

Environment:
  ZETA_CREDS_PICKER=1|0     run / skip this step; unset: ask on the terminal
                            (default yes), skip when there is no terminal
  ZETA_CREDS_PASSPHRASE     the passphrase (taken out of the environment before
                            the step starts any program; discouraged: prefer
                            the terminal prompt)
  ZETA_CREDS_REBUNDLE=0|1   when the ESP already holds a blob: 0 keeps it (or
                            moves it to this stick), 1 re-bundles; unset: ask
                            on the terminal, default keep
  ZETA_CREDS_MANIFEST_DIR   directory holding the packaged default.toml
  ZETA_CREDS_SEAL=tpm2|none tpm2 is --seal-tpm2; none (or unset) does not seal
  ZETA_CREDS_RESCUE_DIR     where `rescue` copied blobs before the disks were
                            wiped (default /run/zeta-creds/rescued); looked
                            at when the ESP holds no blob

Where the blob comes from, first found: the ESP, the rescue directory (the
newest generation for this host), the stash (<host>.enc), --blob FILE; every
line up to the summary says which. `rescue` before partitioning copies the
ESPs' blobs and every host's blob in the stash into the rescue directory,
and can re-seal a fresh one from the old system still on the disk
(`rescue --help`); that one is the newest, and the step says it is the
fresh re-seal.

Before a bundle asks for a passphrase, the manifest's user (or --user) must
be in the source root's etc/passwd and every required entry must be there;
otherwise the step says so once and writes nothing.

{}On any failure the ESP holds either the previous blob or none, never a
half-written one, and TARGET/etc/zeta/usb-uuid is not written.
",
        exit_table
    )
}
