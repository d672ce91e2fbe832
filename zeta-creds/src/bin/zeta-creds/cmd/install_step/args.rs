//! `install-step`'s options and environment variables, and how they
//! combine into [`Settings`]. Pure: the environment is passed in, so the
//! precedence rules are unit-tested.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser};

use super::exit::{self, Fail, StepExit};

/// Name of the step in messages.
pub const PROG: &str = "zeta-creds-step";

/// Seal the credentials of a manifest onto the ESP at install time (the
/// installer step; `installer/zeta-creds-step.sh` runs this).
#[derive(Args, Debug, Default, Clone)]
#[command(disable_help_flag = true, args_override_self = true)]
pub struct InstallStepArgs {
    /// Print the help
    #[arg(short = 'h', long = "help")]
    pub help: bool,
    /// Root of the system being installed (e.g. /mnt)
    #[arg(long, value_name = "DIR")]
    pub target: Option<String>,
    /// The mounted ESP; the blob goes to DIR/zeta-creds.enc
    #[arg(long, value_name = "DIR")]
    pub esp: Option<String>,
    /// Block device (or image file) of the live USB stick
    #[arg(long, value_name = "DEV")]
    pub usb_device: Option<String>,
    /// The manifest; default TARGET/etc/zeta/creds-manifest.toml, else the packaged one
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<String>,
    /// Carry only the entries for this persona
    #[arg(long, value_name = "NAME")]
    pub persona: Option<String>,
    /// Whose home "~" means, instead of the manifest's user
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Where the logged-in credentials are (default: TARGET)
    #[arg(long, value_name = "DIR")]
    pub source_root: Option<String>,
    /// The zeta-creds binary the step runs (default: this one)
    #[arg(long = "zeta-creds", value_name = "PATH")]
    pub zeta_creds: Option<String>,
    /// scrypt work factor of a new blob
    #[arg(long, value_name = "N")]
    pub work_factor: Option<String>,
    /// Also seal the passphrase to this machine's TPM2
    #[arg(long)]
    pub seal_tpm2: bool,
    /// With --seal-tpm2: the PCRs the seal is bound to ("" for none)
    #[arg(long, value_name = "LIST")]
    pub tpm2_pcrs: Option<String>,
    /// The systemd-creds binary (default: on PATH)
    #[arg(long, value_name = "PATH")]
    pub systemd_creds: Option<String>,
    /// The installed system's host name (default: TARGET/etc/hostname)
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// A writable directory holding one blob per host (<host>.enc); default:
    /// the filesystem labelled ZETA-CREDS on the live stick
    #[arg(long, value_name = "DIR")]
    pub stash: Option<String>,
    /// A blob to import when the ESP, the rescue directory and the stash hold none
    #[arg(long, value_name = "FILE")]
    pub blob: Option<String>,
    /// The installer script that runs this step (set by the script)
    #[arg(long, value_name = "PATH", hide = true)]
    pub shim: Option<PathBuf>,
    /// A pipe holding ZETA_CREDS_PASSPHRASE (set by the script, which
    /// takes the variable out of the environment)
    #[arg(long, value_name = "FD", hide = true)]
    pub env_passphrase_fd: Option<i32>,
}

/// `zeta-creds install-step ARGS` parsed on its own, so that its usage
/// errors are the step's own (exit 2, `zeta-creds-step: error: ...`).
#[derive(Parser, Debug)]
#[command(name = "install-step", no_binary_name = true)]
struct Standalone {
    #[command(flatten)]
    args: InstallStepArgs,
}

/// The environment variables the step reads (all but the passphrase).
#[derive(Debug, Default, Clone)]
pub struct Env {
    /// `ZETA_CREDS_PICKER`
    pub picker: Option<String>,
    /// `ZETA_CREDS_REBUNDLE`
    pub rebundle: Option<String>,
    /// `ZETA_CREDS_SEAL`
    pub seal: Option<String>,
    /// `ZETA_CREDS_MANIFEST_DIR`
    pub manifest_dir: Option<String>,
    /// `ZETA_CREDS_RESCUE_DIR`
    pub rescue_dir: Option<String>,
}

impl Env {
    /// Read them from the process environment.
    pub fn from_process() -> Env {
        let var = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
        Env {
            picker: var("ZETA_CREDS_PICKER"),
            rebundle: var("ZETA_CREDS_REBUNDLE"),
            seal: var("ZETA_CREDS_SEAL"),
            manifest_dir: var("ZETA_CREDS_MANIFEST_DIR"),
            rescue_dir: var(zeta_creds::rescue::RESCUE_DIR_ENV),
        }
    }
}

/// `ZETA_CREDS_PICKER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picker {
    /// `1`: run without asking.
    Run,
    /// `0`: skip.
    Skip,
    /// Unset: ask on the terminal, skip without one.
    Ask,
}

/// `ZETA_CREDS_REBUNDLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebundleEnv {
    /// `0`: keep (or move) the blob on the ESP.
    Keep,
    /// `1`: re-bundle.
    Rebundle,
    /// Unset: ask on the terminal, keep without one.
    Ask,
}

/// Everything the step was told, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `--target`, as given.
    pub target: String,
    /// `--esp`, as given.
    pub esp: String,
    /// `--usb-device`.
    pub usb_device: Option<String>,
    /// `--manifest`.
    pub manifest: Option<String>,
    /// `--persona`.
    pub persona: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `--source-root`.
    pub source_root: Option<String>,
    /// `--zeta-creds`.
    pub zeta_creds: Option<String>,
    /// `--work-factor`.
    pub work_factor: Option<u8>,
    /// `--seal-tpm2` or `ZETA_CREDS_SEAL=tpm2`.
    pub seal_tpm2: bool,
    /// `--tpm2-pcrs`, default `7`; may be empty.
    pub tpm2_pcrs: String,
    /// `--systemd-creds`, default `systemd-creds`.
    pub systemd_creds: String,
    /// `ZETA_CREDS_PICKER`.
    pub picker: Picker,
    /// `ZETA_CREDS_REBUNDLE`.
    pub rebundle: RebundleEnv,
    /// `ZETA_CREDS_MANIFEST_DIR`.
    pub manifest_dir: Option<String>,
    /// `--host`.
    pub host: Option<String>,
    /// `--stash`.
    pub stash: Option<String>,
    /// `--blob`.
    pub blob: Option<String>,
    /// `ZETA_CREDS_RESCUE_DIR`, else the library's default.
    pub rescue_dir: String,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Parsed {
    /// `-h` / `--help`.
    Help,
    /// Run the step.
    Run(Box<Settings>),
}

/// The name the step was invoked by, for "NAME --help" hints.
pub fn invoked_name(args: &InstallStepArgs) -> String {
    args.shim.as_ref().and_then(|p| p.file_name()).map_or_else(
        || "zeta-creds install-step".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A usage error (exit 2) with the step's hint.
pub fn usage_error(name: &str, message: impl Into<String>) -> Fail {
    Fail::new(StepExit::Usage, message).hint(format!("{name} --help lists the options"))
}

/// Parse `argv` (the arguments after `install-step`). A clap error becomes
/// the step's usage error; `--help` wins over everything after it.
pub fn parse_argv(argv: Vec<OsString>) -> Result<InstallStepArgs, Fail> {
    let shim_name = shim_name_in(&argv);
    match Standalone::try_parse_from(&argv) {
        Ok(s) => Ok(s.args),
        Err(e) => {
            // Options are taken in order: a --help before the bad one wins.
            let help = argv.iter().position(|a| a == "-h" || a == "--help");
            match help.map(|pos| Standalone::try_parse_from(&argv[..=pos])) {
                Some(Ok(s)) => Ok(s.args),
                _ => Err(usage_error(&shim_name, clap_message(&e))),
            }
        }
    }
}

/// The `--shim` value in raw arguments, for the hint of an error clap
/// raised before it was parsed.
fn shim_name_in(argv: &[OsString]) -> String {
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        let value = if a == "--shim" {
            it.next().map(|v| v.to_string_lossy().into_owned())
        } else {
            a.strip_prefix("--shim=").map(str::to_owned)
        };
        if let Some(v) = value {
            let args = InstallStepArgs {
                shim: Some(PathBuf::from(v)),
                ..InstallStepArgs::default()
            };
            return invoked_name(&args);
        }
    }
    invoked_name(&InstallStepArgs::default())
}

/// The step's words for what clap refused.
fn clap_message(e: &clap::Error) -> String {
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.split_whitespace().next().unwrap_or("").to_owned(),
        _ => String::new(),
    };
    match e.kind() {
        ErrorKind::UnknownArgument => format!("unknown argument: {arg}"),
        ErrorKind::InvalidValue | ErrorKind::NoEquals if arg == "--tpm2-pcrs" => {
            "--tpm2-pcrs needs a value (\"\" for none)".to_owned()
        }
        ErrorKind::InvalidValue | ErrorKind::NoEquals if !arg.is_empty() => {
            format!("{arg} needs a value")
        }
        _ => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("");
            first.strip_prefix("error: ").unwrap_or(first).to_owned()
        }
    }
}

/// Check the options and variables and combine them. Order of checks and
/// messages as the step always had them.
pub fn resolve(args: &InstallStepArgs, env: &Env) -> Result<Parsed, Fail> {
    let name = invoked_name(args);
    let usage = |m: String| usage_error(&name, m);
    if args.help {
        return Ok(Parsed::Help);
    }
    for (flag, value) in [
        ("--target", &args.target),
        ("--esp", &args.esp),
        ("--usb-device", &args.usb_device),
        ("--manifest", &args.manifest),
        ("--persona", &args.persona),
        ("--user", &args.user),
        ("--source-root", &args.source_root),
        ("--zeta-creds", &args.zeta_creds),
        ("--work-factor", &args.work_factor),
        ("--systemd-creds", &args.systemd_creds),
        ("--host", &args.host),
        ("--stash", &args.stash),
        ("--blob", &args.blob),
    ] {
        if value.as_deref() == Some("") {
            return Err(usage(format!("{flag} needs a value")));
        }
    }
    let Some(target) = args.target.clone() else {
        return Err(usage(
            "--target DIR is required (the root of the system being installed, e.g. /mnt)".into(),
        ));
    };
    let Some(esp) = args.esp.clone() else {
        return Err(usage(
            "--esp DIR is required (the mounted ESP, e.g. /mnt/boot)".into(),
        ));
    };
    let work_factor = match &args.work_factor {
        None => None,
        Some(wf) => match wf.parse::<u8>() {
            Ok(n) if (1..=2).contains(&wf.len()) && wf.bytes().all(|b| b.is_ascii_digit()) => {
                Some(n)
            }
            _ => {
                return Err(usage(format!(
                    "--work-factor must be a number (10 to 22), not '{wf}'"
                )));
            }
        },
    };
    let picker = match env.picker.as_deref() {
        None | Some("") => Picker::Ask,
        Some("1") => Picker::Run,
        Some("0") => Picker::Skip,
        Some(other) => {
            return Err(usage(format!(
                "ZETA_CREDS_PICKER must be 1 (run) or 0 (skip), not '{other}'"
            )));
        }
    };
    let rebundle = match env.rebundle.as_deref() {
        None | Some("") => RebundleEnv::Ask,
        Some("1") => RebundleEnv::Rebundle,
        Some("0") => RebundleEnv::Keep,
        Some(other) => {
            return Err(usage(format!(
                "ZETA_CREDS_REBUNDLE must be 1 (re-bundle) or 0 (keep), not '{other}'"
            )));
        }
    };
    // --seal-tpm2 wins over the variable, whatever its value.
    let seal_tpm2 = if args.seal_tpm2 {
        true
    } else {
        match env.seal.as_deref() {
            None | Some("" | "none") => false,
            Some("tpm2") => true,
            Some(other) => {
                return Err(usage(format!(
                    "ZETA_CREDS_SEAL must be tpm2 (seal the passphrase to this machine's TPM2) or none, not '{other}'"
                )));
            }
        }
    };
    let tpm2_pcrs = args.tpm2_pcrs.clone().unwrap_or_else(|| "7".to_owned());
    if !pcrs_ok(&tpm2_pcrs) {
        return Err(usage(format!(
            "--tpm2-pcrs must list PCR indexes 0 to 23 joined by + (e.g. 7 or 0+7), or be empty for none, not '{tpm2_pcrs}'"
        )));
    }
    Ok(Parsed::Run(Box::new(Settings {
        target,
        esp,
        usb_device: args.usb_device.clone(),
        manifest: args.manifest.clone(),
        persona: args.persona.clone(),
        user: args.user.clone(),
        source_root: args.source_root.clone(),
        zeta_creds: args.zeta_creds.clone(),
        work_factor,
        seal_tpm2,
        tpm2_pcrs,
        systemd_creds: args
            .systemd_creds
            .clone()
            .unwrap_or_else(|| "systemd-creds".to_owned()),
        picker,
        rebundle,
        manifest_dir: env.manifest_dir.clone().filter(|d| !d.is_empty()),
        host: args.host.clone(),
        stash: args.stash.clone(),
        blob: args.blob.clone(),
        rescue_dir: env
            .rescue_dir
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| zeta_creds::rescue::DEFAULT_RESCUE_DIR.to_owned()),
    })))
}

/// PCR indexes 0 to 23 joined by `+` (or `,`); empty is "no PCRs".
pub fn pcrs_ok(list: &str) -> bool {
    list.is_empty()
        || list.split(['+', ',']).all(|pcr| {
            (1..=2).contains(&pcr.len())
                && pcr.bytes().all(|b| b.is_ascii_digit())
                && !(pcr.len() == 2 && pcr.starts_with('0'))
                && pcr.parse::<u8>().is_ok_and(|n| n <= 23)
        })
}

/// `--help`: [`super::help::text`] with the step's exit table.
pub fn help(name: &str) -> String {
    super::help::text(name, &exit::table())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(argv: &[&str]) -> InstallStepArgs {
        parse_argv(argv.iter().map(OsString::from).collect()).unwrap()
    }

    fn settings(argv: &[&str], env: &Env) -> Result<Settings, Fail> {
        match resolve(&args(argv), env)? {
            Parsed::Run(s) => Ok(*s),
            Parsed::Help => panic!("help"),
        }
    }

    const BASE: [&str; 4] = ["--target", "/mnt", "--esp", "/mnt/boot"];

    #[test]
    fn defaults_without_options_or_variables() {
        let s = settings(&BASE, &Env::default()).unwrap();
        assert_eq!(s.target, "/mnt");
        assert_eq!(s.esp, "/mnt/boot");
        assert_eq!(s.tpm2_pcrs, "7");
        assert_eq!(s.systemd_creds, "systemd-creds");
        assert!(!s.seal_tpm2);
        assert_eq!((s.picker, s.rebundle), (Picker::Ask, RebundleEnv::Ask));
        assert_eq!(s.work_factor, None);
    }

    #[test]
    fn equals_form_last_one_wins_and_empty_pcrs_means_none() {
        let s = settings(
            &[
                "--target=/a",
                "--target",
                "/mnt",
                "--esp=/mnt/boot",
                "--tpm2-pcrs=",
                "--work-factor",
                "10",
            ],
            &Env::default(),
        )
        .unwrap();
        assert_eq!(s.target, "/mnt");
        assert_eq!(s.tpm2_pcrs, "");
        assert_eq!(s.work_factor, Some(10));
    }

    #[test]
    fn seal_flag_beats_the_variable_and_the_variable_alone_seals() {
        let env = |seal: &str| Env {
            seal: Some(seal.into()),
            ..Env::default()
        };
        let mut with_flag = BASE.to_vec();
        with_flag.push("--seal-tpm2");
        assert!(settings(&with_flag, &env("none")).unwrap().seal_tpm2);
        assert!(settings(&BASE, &env("tpm2")).unwrap().seal_tpm2);
        assert!(!settings(&BASE, &env("none")).unwrap().seal_tpm2);
        assert_eq!(
            settings(&BASE, &env("yes")).unwrap_err().exit,
            StepExit::Usage
        );
    }

    #[test]
    fn variables_take_only_their_values() {
        let picker = |v: &str| Env {
            picker: Some(v.into()),
            ..Env::default()
        };
        assert_eq!(settings(&BASE, &picker("1")).unwrap().picker, Picker::Run);
        assert_eq!(settings(&BASE, &picker("0")).unwrap().picker, Picker::Skip);
        assert_eq!(settings(&BASE, &picker("")).unwrap().picker, Picker::Ask);
        let e = settings(&BASE, &picker("yes")).unwrap_err();
        assert_eq!(e.exit, StepExit::Usage);
        assert!(
            e.message.contains("ZETA_CREDS_PICKER must be 1"),
            "{}",
            e.message
        );
        let rebundle = |v: &str| Env {
            rebundle: Some(v.into()),
            ..Env::default()
        };
        assert_eq!(
            settings(&BASE, &rebundle("1")).unwrap().rebundle,
            RebundleEnv::Rebundle
        );
        assert_eq!(
            settings(&BASE, &rebundle("0")).unwrap().rebundle,
            RebundleEnv::Keep
        );
        assert_eq!(
            settings(&BASE, &rebundle("2")).unwrap_err().exit,
            StepExit::Usage
        );
    }

    #[test]
    fn usage_errors_say_what_and_point_at_help() {
        let env = Env::default();
        let e = settings(&["--esp", "/e"], &env).unwrap_err();
        assert_eq!(e.exit, StepExit::Usage);
        assert!(e.message.starts_with("--target DIR is required"));
        assert_eq!(
            e.hints,
            ["zeta-creds install-step --help lists the options"]
        );
        let e = settings(&["--target", "/t"], &env).unwrap_err();
        assert!(e.message.starts_with("--esp DIR is required"));
        let e = settings(&["--target", "", "--esp", "/e"], &env).unwrap_err();
        assert_eq!(e.message, "--target needs a value");
        let mut wf = BASE.to_vec();
        wf.extend(["--work-factor", "abc"]);
        assert!(
            settings(&wf, &env)
                .unwrap_err()
                .message
                .contains("must be a number")
        );
        let e = parse_argv(vec![
            "--shim".into(),
            "/x/zeta-creds-step.sh".into(),
            "--bogus".into(),
        ])
        .unwrap_err();
        assert_eq!(
            (e.exit, e.message.as_str()),
            (StepExit::Usage, "unknown argument: --bogus")
        );
        assert_eq!(e.hints, ["zeta-creds-step.sh --help lists the options"]);
        let e = parse_argv(vec!["stray".into()]).unwrap_err();
        assert_eq!(e.exit, StepExit::Usage);
        let e = parse_argv(vec!["--target".into()]).unwrap_err();
        assert_eq!(e.message, "--target needs a value");
    }

    #[test]
    fn help_wins() {
        let a = args(&["--target", "/t", "--help"]);
        assert!(matches!(resolve(&a, &Env::default()), Ok(Parsed::Help)));
        // In order, as the script took them: --help first wins over a bad
        // option after it, not over one before it.
        let a = args(&["--help", "--bogus"]);
        assert!(matches!(resolve(&a, &Env::default()), Ok(Parsed::Help)));
        let e = parse_argv(vec!["--bogus".into(), "--help".into()]).unwrap_err();
        assert_eq!(e.exit, StepExit::Usage);
        let text = help("zeta-creds-step.sh");
        assert!(text.starts_with("Usage: zeta-creds-step.sh --target DIR --esp DIR"));
        assert!(text.contains("ZETA_CREDS_REBUNDLE=0|1") && text.contains("--seal-tpm2"));
        assert!(text.contains(&exit::table()));
    }

    #[test]
    fn pcr_lists() {
        for good in ["", "7", "0+7", "0,7", "23", "1+2+3"] {
            assert!(pcrs_ok(good), "{good:?}");
        }
        for bad in ["24", "7+", "+7", "7 8", "pcr7", "007", "07"] {
            assert!(!pcrs_ok(bad), "{bad:?}");
        }
    }
}
