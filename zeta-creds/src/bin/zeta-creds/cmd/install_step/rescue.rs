//! `install-step rescue`: copy every existing blob off the machine's disks
//! into RAM before an installer partitions and formats them (issue 16).
//! Needs no passphrase and writes to no disk it reads; the work is the
//! library's `zeta_creds::rescue`, this is its command line and output.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;

use clap::Parser;

use zeta_creds::rescue::{self, DEFAULT_RESCUE_DIR, RESCUE_DIR_ENV, Request, SystemMounter};

use super::args::PROG;
use super::exit::{Fail, StepExit};
use super::{reseal, stash, stick, ui};

/// Copy existing zeta-creds blobs off this machine's disks into RAM, before
/// an installer partitions and formats them.
///
/// Run it before partitioning: the NixOS manual, disko and nixos-anywhere
/// all reformat the ESP, and the blob lives there. It needs no passphrase
/// and mounts every source read-only. By default it reads every EFI system
/// partition of the machine's disks, and the stash on the live stick (its
/// filesystem labelled ZETA-CREDS), keeping every host's blob there;
/// --device, --from and --stash name sources instead. Then it offers to
/// re-seal from the old system still on the disk (see below). Copies go to /run/zeta-creds/rescued (ZETA_CREDS_RESCUE_DIR to
/// override), which must be in RAM (tmpfs), so nothing lands on a disk
/// about to be wiped. The install step after nixos-install looks there.
#[derive(Parser, Debug)]
#[command(
    name = "zeta-creds-step rescue",
    no_binary_name = true,
    disable_version_flag = true,
    after_help = "Every host's blob in the stash is kept: one stick serves a fleet, and the\nstep after nixos-install picks the blob of the host it installs (of several\ngenerations, the newest). Nothing is ever removed from the rescue directory.\n\nThen rescue looks for the previous installation (ext4, xfs or btrfs; LUKS\nand ZFS are skipped), mounted read-only without journal replay: when its\nstate record, etc/zeta/usb-uuid and host name match a rescued blob, it\noffers (on a terminal; --reseal without asking) to seal a fresh blob from\nthat system's current files, under the passphrase that opens the rescued\nblob, at generation old + 1 (resealed-<host>-g<N>.enc); the step after\nnixos-install uses it. Otherwise it says how old the rescued blob is.\n\nExit status:\n   0  every source was read (or none holds a blob)\n   1  a source could not be rescued, or the rescue directory is unusable:\n      look before wiping a disk; or a re-seal that was asked for failed\n      (nothing was written; the rescued blob is still there)\n   2  usage error"
)]
pub struct RescueArgs {
    /// A partition or an image file to read (repeatable); replaces the scan
    #[arg(long, value_name = "DEV")]
    pub device: Vec<PathBuf>,
    /// A directory holding zeta-creds.enc, or a blob file (repeatable); replaces the scan
    #[arg(long, value_name = "PATH")]
    pub from: Vec<PathBuf>,
    /// A stash directory: every <host>.enc (and .prev) in it is copied (repeatable); replaces the scan
    #[arg(long, value_name = "DIR")]
    pub stash: Vec<PathBuf>,
    /// The live stick, whose ZETA-CREDS partition the default scan reads (default: the device mounted at /iso, /run/live/medium, ...)
    #[arg(long, value_name = "DEV")]
    pub usb_device: Option<String>,
    /// Accept a rescue directory that is not in RAM (tmpfs or ramfs)
    #[arg(long)]
    pub allow_rescue_dir_on_disk: bool,
    /// Print the report as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// The previous installation's root filesystem (a partition or an image file; repeatable); default: the machine's disks, with the default scan or --reseal
    #[arg(long, value_name = "DEV")]
    pub old_root: Vec<PathBuf>,
    /// Seal a fresh blob from the old system's current files without asking (passphrase: ZETA_CREDS_PASSPHRASE, else the terminal)
    #[arg(long, conflicts_with = "no_reseal")]
    pub reseal: bool,
    /// Do not look for the old system; the step uses the rescued blob as it is
    #[arg(long)]
    pub no_reseal: bool,
}

/// The arguments after `rescue`, if the step was asked to rescue: the first
/// argument that is not one of the hidden options the installer script
/// passes (`--shim PATH`, `--env-passphrase-fd FD`) is `rescue`.
pub fn requested(argv: &[OsString]) -> Option<Vec<OsString>> {
    let mut i = 0;
    while i < argv.len() {
        let a = argv[i].to_string_lossy();
        if a == "--shim" || a == "--env-passphrase-fd" {
            i += 2;
        } else if a.starts_with("--shim=") || a.starts_with("--env-passphrase-fd=") {
            i += 1;
        } else {
            return (a == "rescue").then(|| argv[i + 1..].to_vec());
        }
    }
    None
}

/// Run `rescue` with its arguments; prints its report and errors.
pub fn main(argv: Vec<OsString>, pass: reseal::Handover) -> StepExit {
    let args = match RescueArgs::try_parse_from(&argv) {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => {
            // --help
            let _ = e.print();
            return StepExit::Ok;
        }
        Err(e) => {
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            let text = first.strip_prefix("error: ").unwrap_or(first).to_owned();
            ui::report(
                &Fail::new(StepExit::Usage, format!("rescue: {text}"))
                    .hint(format!("{PROG} rescue --help lists the options")),
            );
            return StepExit::Usage;
        }
    };
    let dir = std::env::var_os(RESCUE_DIR_ENV)
        .map_or_else(|| PathBuf::from(DEFAULT_RESCUE_DIR), PathBuf::from);
    let mut req = Request::new(dir);
    let scan = args.device.is_empty() && args.from.is_empty() && args.stash.is_empty();
    req.devices = args.device.clone();
    req.from = args.from.clone();
    req.stash_dirs = args.stash.clone();
    req.allow_disk = args.allow_rescue_dir_on_disk;
    if scan {
        stick_stash(args.usb_device.as_deref(), &mut req);
    }
    match rescue::run(&req, &SystemMounter) {
        Ok(report) => {
            let mut out = io::stdout().lock();
            let written = if args.json {
                serde_json::to_writer_pretty(&mut out, &report)
                    .map_err(io::Error::from)
                    .and_then(|()| writeln!(out))
            } else {
                write!(out, "{report}")
            };
            if let Err(e) = written.and_then(|()| out.flush()) {
                ui::report(&Fail::new(
                    StepExit::Failed,
                    format!("cannot write the report: {e}"),
                ));
                return StepExit::Failed;
            }
            let resealed = reseal::after_rescue(&report, &reseal_options(&args, scan), pass);
            if report.has_failures() || resealed != StepExit::Ok {
                StepExit::Failed
            } else {
                StepExit::Ok
            }
        }
        Err(e) => {
            ui::report(&Fail::new(StepExit::Failed, format!("rescue: {e}")));
            StepExit::Failed
        }
    }
}

/// `--reseal`, `--no-reseal`, `--old-root`: where the old system is looked
/// for after the copies ([`reseal::after_rescue`]).
fn reseal_options(args: &RescueArgs, scan: bool) -> reseal::Options {
    let mode = match (args.reseal, args.no_reseal) {
        (true, _) => reseal::Mode::Yes,
        (_, true) => reseal::Mode::No,
        _ => reseal::Mode::Ask,
    };
    reseal::Options {
        mode,
        old_roots: args.old_root.clone(),
        // --reseal with --device/--from still looks on the disks.
        scan: scan || args.reseal,
    }
}

/// The default scan also reads the stash on the live stick: its
/// filesystem labelled ZETA-CREDS, read where it is mounted already, else
/// mounted read-only by the rescue. Without a live stick (or a stash on
/// it) there is nothing to add; the scan says so on stderr.
fn stick_stash(usb_device: Option<&str>, req: &mut Request) {
    let dev = match stick::find(usb_device) {
        Ok((dev, _)) => dev,
        Err(fail) => {
            ui::say(format!(
                "stash: not looked for ({}); pass --stash DIR to read one",
                fail.message
            ));
            return;
        }
    };
    match stash::discover(&dev) {
        // Read where it is mounted already, else mounted read-only.
        Some(stash::Found { device, .. }) => {
            ui::say(format!(
                "stash: {} (labelled {} on the live stick)",
                device.display(),
                stash::STASH_LABEL
            ));
            req.stash_devices.push(device);
        }
        None => ui::say(format!(
            "stash: none on the live stick {} (no filesystem labelled {})",
            dev.display(),
            stash::STASH_LABEL
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn rescue_is_the_first_argument_after_the_scripts_hidden_options() {
        assert_eq!(
            requested(&os(&["rescue", "--from", "/x"])),
            Some(os(&["--from", "/x"]))
        );
        assert_eq!(
            requested(&os(&["--shim", "/s", "--env-passphrase-fd", "3", "rescue"])),
            Some(vec![])
        );
        assert_eq!(
            requested(&os(&["--shim=/s", "rescue", "--json"])),
            Some(os(&["--json"]))
        );
        assert_eq!(requested(&os(&["--target", "/mnt", "rescue"])), None);
        assert_eq!(requested(&os(&["--target", "/mnt"])), None);
        assert_eq!(requested(&os(&[])), None);
    }

    #[test]
    fn rescue_options_parse() {
        let a = RescueArgs::try_parse_from(os(&[
            "--device",
            "/dev/vda1",
            "--device",
            "esp.img",
            "--from",
            "/old/boot",
            "--stash",
            "/media/stick",
            "--json",
        ]))
        .unwrap();
        assert_eq!(a.stash, [PathBuf::from("/media/stick")]);
        assert_eq!(
            a.device,
            [PathBuf::from("/dev/vda1"), PathBuf::from("esp.img")]
        );
        assert_eq!(a.from, [PathBuf::from("/old/boot")]);
        assert!(a.json && !a.allow_rescue_dir_on_disk);
        assert!(RescueArgs::try_parse_from(os(&["--bogus"])).is_err());
    }
}
