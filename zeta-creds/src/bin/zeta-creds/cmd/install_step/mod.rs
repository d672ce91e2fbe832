//! `zeta-creds install-step`: the live-USB installer step. Seals the
//! operator's credentials onto the ESP bound to the live stick, records the
//! stick in `TARGET/etc/zeta/usb-uuid`, and prints the NixOS lines that
//! enable the restore (installer/README.md). `installer/zeta-creds-step.sh`
//! is a thin shim that runs this.
//!
//! In order, as the step has always done it:
//!
//! 1. run or skip (`ZETA_CREDS_PICKER`, else ask on the terminal);
//! 2. inputs: target, ESP, the `zeta-creds` binary, the manifest, the live
//!    stick and its UUID ([`stick`]);
//! 3. the blob already on the ESP: keep, move, re-bundle or refuse
//!    ([`decide`]);
//! 4. the passphrase, once ([`secret`]): `ZETA_CREDS_PASSPHRASE` or the
//!    terminal; a new one must pass the library's strength check;
//! 5. `zeta-creds bundle` / `verify --list` / `rekey` ([`act`], [`zc`]), then
//!    `verify --json` on what is on the ESP;
//! 6. with `--seal-tpm2`, the passphrase sealed to the TPM2 ([`seal`]);
//! 7. only then `usb-uuid` ([`files`]);
//! 8. the summary and the NixOS lines ([`report`]);
//! 9. the blob written to the stash on the stick, if there is one
//!    ([`stash`]).
//!
//! Exit codes come from [`exit::StepExit`] only.
//!
//! `rescue` is a subcommand of [`InstallStepArgs`] ([`rescue`]). When the
//! ESP holds no blob, step 3 looks further, in order ([`sources`]): the
//! rescue directory, the stash on the stick ([`stash`], `<host>.enc` for
//! the host being installed, [`host`]), then `--blob FILE`. A blob found
//! there goes through the same [`decide`] table as one on the ESP: kept
//! (checked with its passphrase where it is, then copied to the ESP),
//! moved or re-bundled (copied to the ESP first, then as today). After
//! the ESP is verified, the blob is written to the stash, if there is one.

mod act;
mod args;
mod decide;
mod exit;
mod files;
mod help;
mod host;
mod offesp;
mod preflight;
mod report;
mod rescue;
mod reseal;
mod seal;
mod secret;
mod sources;
mod stash;
mod stick;
mod ui;
mod zc;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use secrecy::{ExposeSecret, SecretString};

pub use args::InstallStepArgs;
pub use exit::StepExit;

use args::{Env, Parsed, Picker, Settings, usage_error};
use decide::{Action, Decision, Found, Question, Why};
use exit::Fail;
use offesp::{Looked, OffEsp, locate_stash, look_elsewhere, to_esp, write_stash};
use report::BLOB_NAME;
use secret::Secret;
use ui::{say, tty_say, warn};
use zc::{Args, HeaderJson, VerifyJson, ZetaCreds};

/// Run the step on the arguments after `install-step`. `env_passphrase` is
/// what the binary took out of `ZETA_CREDS_PASSPHRASE` at start.
pub fn main(
    argv: impl IntoIterator<Item = OsString>,
    env_passphrase: Option<SecretString>,
) -> ExitCode {
    let argv: Vec<OsString> = argv.into_iter().collect();
    if let Some(rest) = rescue::requested(&argv) {
        let pass = reseal::Handover::new(&argv, env_passphrase);
        return ExitCode::from(rescue::main(rest, pass).code());
    }
    let exit = match args::parse_argv(argv) {
        Ok(args) => run(&args, env_passphrase),
        Err(fail) => {
            ui::report(&fail);
            fail.exit
        }
    };
    ExitCode::from(exit.code())
}

/// Run the step with parsed arguments; prints its own errors.
pub fn run(args: &InstallStepArgs, env_passphrase: Option<SecretString>) -> StepExit {
    let env_passphrase = match args.env_passphrase_fd {
        Some(fd) => match secret::from_env_fd(fd) {
            Ok(p) => p,
            Err(fail) => {
                ui::report(&fail);
                return fail.exit;
            }
        },
        None => env_passphrase.filter(|p| !p.expose_secret().is_empty()),
    };
    match step(args, Secret::new(env_passphrase)) {
        Ok(()) => StepExit::Ok,
        Err(fail) => {
            ui::report(&fail);
            fail.exit
        }
    }
}

/// What the step found out before deciding anything.
#[derive(Clone)]
struct Inputs {
    /// How the step was invoked, for hints.
    name: String,
    /// `--target`, resolved.
    target: PathBuf,
    /// `--source-root`, or the target.
    source_root: String,
    /// `ESP/zeta-creds.enc`.
    blob: PathBuf,
    /// `--esp`, resolved.
    esp: PathBuf,
    /// The manifest found.
    manifest: PathBuf,
    /// The live stick's UUID.
    stick: stick::StickUuid,
    /// The live stick's device (or image file).
    stick_dev: PathBuf,
    /// The binary the step runs.
    zc: ZetaCreds,
    /// The host being installed (`--host`, else TARGET/etc/hostname);
    /// `None` when the target has no host name yet.
    host: Option<String>,
}

fn step(args: &InstallStepArgs, mut secret: Secret) -> Result<(), Fail> {
    let name = args::invoked_name(args);
    let s = match args::resolve(args, &Env::from_process())? {
        Parsed::Help => {
            print!("{}", args::help(&name));
            return Ok(());
        }
        Parsed::Run(s) => s,
    };
    let interactive = ui::have_tty();
    if !opted_in(s.picker, interactive)? {
        return Ok(());
    }
    let inputs = inputs(&s, args, name)?;
    let uuid_norm = inputs.stick.uuid.as_str().to_owned();
    let host = inputs.host.clone();
    let stash_at = locate_stash(&s, &inputs, host.as_deref())?;

    // 3. What is on the ESP already (else in the rescue directory, the
    // stash, --blob), and what to do about it.
    let (found, header) = look_at(&inputs.zc, &inputs.blob, &inputs.stick)?;
    let Looked {
        found,
        header,
        from,
        staged: _staged,
    } = if found == Found::Nothing {
        look_elsewhere(&s, &inputs, host.as_deref(), &stash_at)?
    } else {
        if let Some(b) = &s.blob {
            say(format!(
                "--blob {b} is not used: the ESP holds a blob, and it comes first"
            ));
        }
        Looked {
            found,
            header,
            from: None,
            staged: None,
        }
    };
    // Issue 19 #9: the blob's own (unauthenticated) work factor never
    // raises the cap.
    let max_wf = decide::max_work_factor(s.work_factor);
    let mut action = choose_action(
        &s,
        &inputs,
        &found,
        header.as_ref(),
        from.as_ref(),
        interactive,
    )?;

    // Before any passphrase: what a bundle would pick, as which user, and
    // that every required entry is there (issue 17 item 7).
    if matches!(action, Action::Bundle | Action::Rebundle | Action::Replace) {
        preflight::check(
            &inputs.manifest,
            Path::new(&inputs.source_root),
            s.user.as_deref(),
            s.persona.as_deref(),
        )?;
    }

    // 4 and 5. The passphrase, then the action, then verify.
    if !secret.from_env && !interactive {
        return Err(Fail::new(
            StepExit::Missing,
            "no passphrase: ZETA_CREDS_PASSPHRASE is not set and there is no terminal to ask on",
        )
        .hint("set ZETA_CREDS_PASSPHRASE, or run the step on a terminal"));
    }
    if secret.from_env {
        warn(
            "using ZETA_CREDS_PASSPHRASE (removed from the environment; the terminal prompt is safer)",
        );
    }
    let i = &inputs;
    // A blob found off the ESP is put there before it is moved or
    // re-bundled (so the generation goes on, and the old one is kept as
    // .prev); one that is kept is checked where it is first.
    if let Some(o) = &from
        && action != Action::Keep
        && header.is_some()
    {
        to_esp(o, &i.blob)?;
    }
    if action == Action::Rebundle {
        action = act::show_diff(&s, i, &mut secret, max_wf, interactive)?;
    }
    let wf = max_wf.to_string();
    // A kept or moved blob sealed for no host (format version 1) or for
    // another name is bound to this host as it goes: the installed system
    // refuses any other host's blob at boot.
    let rehost = match (&header, &i.host) {
        (Some(h), Some(this)) if h.host.as_deref() != Some(this.as_str()) => Some(this.as_str()),
        _ => None,
    };
    // The ESP of the machine being installed holds another host's blob
    // (renamed, or copied there): a re-bundle replaces it, saying so.
    let other_host = header
        .as_ref()
        .and_then(|h| h.host.as_deref())
        .filter(|h| i.host.as_deref().is_some_and(|this| this != *h));
    match action {
        Action::Bundle | Action::Rebundle => {
            act::bundle(&s, i, &mut secret, interactive, false, other_host)?
        }
        Action::Replace => act::bundle(&s, i, &mut secret, interactive, true, other_host)?,
        Action::Keep => {
            let at = from.as_ref().map_or(i.blob.as_path(), |o| o.path.as_path());
            match &from {
                None => say("checking the blob on the ESP with its passphrase"),
                Some(o) => say(format!(
                    "checking the blob from {} with its passphrase: {}",
                    o.origin.label(),
                    o.shown
                )),
            }
            let verify = Args::new("verify")
                .opt("--blob", at)
                .flag("--list")
                .opt("--max-work-factor", &wf);
            let there = Inputs {
                blob: at.to_owned(),
                ..i.clone()
            };
            act::with_old_passphrase(&there, &mut secret, &verify)?;
            if let Some(o) = &from {
                to_esp(o, &i.blob)?;
            }
            if let Some(this) = rehost {
                let was = header.as_ref().and_then(|h| h.host.clone()).map_or_else(
                    || "no host (format version 1)".to_owned(),
                    |h| format!("host {h}"),
                );
                say(format!(
                    "the blob was sealed for {was}; binding it to host {this} (zeta-creds rekey --new-host, same passphrase)"
                ));
                let rekey = Args::new("rekey")
                    .opt("--blob", &i.blob)
                    .opt("--new-host", this)
                    .flag("--same-passphrase")
                    .opt("--max-work-factor", &wf);
                act::with_old_passphrase(i, &mut secret, &rekey)?;
            }
        }
        Action::Move => {
            say("moving the blob to this stick (zeta-creds rekey, same passphrase)");
            let mut rekey = Args::new("rekey")
                .opt("--blob", &i.blob)
                .opt("--new-usb-uuid", &i.stick.raw);
            if let Some(this) = rehost {
                rekey = rekey.opt("--new-host", this);
            }
            let rekey = rekey
                .flag("--same-passphrase")
                .opt("--max-work-factor", &wf);
            act::with_old_passphrase(i, &mut secret, &rekey)?;
        }
    }

    // Whatever happened above, check what is on the ESP now, with the
    // passphrase the installed system will be given.
    let verify = Args::new("verify")
        .opt("--blob", &i.blob)
        .flag("--json")
        .opt("--max-work-factor", &wf);
    let ran = i.zc.run(&verify.0, secret.get(), true, false)?;
    if ran.code != 0 {
        return Err(Fail::new(
            StepExit::of_child(ran.code),
            format!(
                "zeta-creds verify failed (exit {}) on {} right after it was written: do not rely on it",
                ran.code,
                i.blob.display()
            ),
        )
        .hint(format!(
            "{}/etc/zeta/usb-uuid was not written; the previous blob, if any, is {}.prev",
            i.target.display(),
            i.blob.display()
        )));
    }
    let verified = VerifyJson::parse(&ran.stdout);
    let got = verified.usb_uuid.clone().unwrap_or_default();
    if got != uuid_norm {
        return Err(Fail::new(
            StepExit::Failed,
            format!("the blob on the ESP is bound to USB '{got}', not to this stick ({uuid_norm})"),
        )
        .hint(format!(
            "{}/etc/zeta/usb-uuid was not written",
            i.target.display()
        )));
    }

    // 6. --seal-tpm2: the verified passphrase, sealed to this machine's TPM2.
    let sealed = match (s.seal_tpm2, secret.get()) {
        (true, Some(pass)) => seal::seal(&i.target, &s.systemd_creds, &s.tpm2_pcrs, pass)?,
        _ => None,
    };
    drop(secret);

    // 7. The UUID file, last.
    let uuid_dir = files::write_usb_uuid(&i.target, &i.stick.raw)?;

    // 8. Summary and the NixOS lines.
    let target_s = i.target.to_string_lossy();
    let esp_s = i.esp.to_string_lossy();
    let summary = report::Summary {
        action,
        from: from
            .as_ref()
            .map(|o| format!("{} ({})", o.origin.label(), o.shown)),
        source_root: &i.source_root,
        blob: &i.blob,
        uuid: &i.stick.raw,
        uuid_norm: &uuid_norm,
        uuid_dir: &uuid_dir,
        verified: &verified.verified(),
        sealed: sealed.as_deref().map(|p| (p, s.tpm2_pcrs.as_str())),
        nix_blob: report::nix_blob(&target_s, &esp_s),
    };
    print!("{}", report::render(&summary));

    // 9. The stash on the stick: this host's blob, for the next install.
    write_stash(&stash_at, host.as_deref(), &i.blob)
}

/// 1. Opt in or out, as the original installer's picker step did.
fn opted_in(picker: Picker, interactive: bool) -> Result<bool, Fail> {
    match picker {
        Picker::Skip => {
            say("skipped: ZETA_CREDS_PICKER=0 (credentials are not carried to the next install)");
            Ok(false)
        }
        Picker::Run => Ok(true),
        Picker::Ask if !interactive => {
            say("skipped: ZETA_CREDS_PICKER is not set and there is no terminal to ask on");
            say(
                "hint: set ZETA_CREDS_PICKER=1 (and ZETA_CREDS_PASSPHRASE) to run this step without a terminal, or ZETA_CREDS_PICKER=0 to skip it quietly",
            );
            Ok(false)
        }
        Picker::Ask => {
            tty_say("zeta-creds can seal your tool logins, SSH host keys and operator keys into");
            tty_say(
                "one passphrase-encrypted file on the ESP, bound to this USB stick, so that the",
            );
            tty_say("installed system (and the next reinstall) gets them back at boot.");
            if ui::ask_yes_no("Seal your credentials now? [Y/n]", true)? {
                Ok(true)
            } else {
                say(
                    "skipped: you chose not to seal credentials (ZETA_CREDS_PICKER=1 runs this step without asking)",
                );
                Ok(false)
            }
        }
    }
}

/// 2. Directories, binary, manifest, the stick and its UUID.
fn inputs(s: &Settings, args: &InstallStepArgs, name: String) -> Result<Inputs, Fail> {
    let usage = |m: String| usage_error(&name, m);
    if !Path::new(&s.target).is_dir() {
        return Err(usage(format!("--target {} is not a directory", s.target)));
    }
    if !Path::new(&s.esp).is_dir() {
        return Err(usage(format!(
            "--esp {} is not a directory (is the ESP mounted?)",
            s.esp
        )));
    }
    let canonical =
        |p: &str| std::fs::canonicalize(p).map_err(|e| usage(format!("cannot resolve {p}: {e}")));
    let target = canonical(&s.target)?;
    let esp = canonical(&s.esp)?;
    let source_root = s
        .source_root
        .clone()
        .unwrap_or_else(|| target.to_string_lossy().into_owned());
    if !Path::new(&source_root).is_dir() {
        return Err(usage(format!(
            "--source-root {source_root} is not a directory"
        )));
    }
    let blob = esp.join(BLOB_NAME);
    let zc = ZetaCreds::resolve(s.zeta_creds.as_deref())?;
    let manifest = find_manifest(s, &target, args.shim.as_deref())?;
    let (dev, mounted_at) = stick::find(s.usb_device.as_deref())?;
    if let Some(at) = mounted_at {
        say(format!("live stick: {} (mounted at {at})", dev.display()));
    }
    let stick = stick::uuid(&dev)?;
    say(format!("USB stick {}: UUID {}", dev.display(), stick.raw));
    let host = host::of_target(s.host.as_deref(), &target)?;
    say(format!(
        "manifest: {}; credentials from: {source_root}; blob: {}",
        manifest.display(),
        blob.display()
    ));
    Ok(Inputs {
        name,
        target,
        source_root,
        blob,
        esp,
        manifest,
        stick,
        stick_dev: dev,
        zc,
        host,
    })
}

/// The manifest candidates when `--manifest` is not given: the target's
/// own, `$ZETA_CREDS_MANIFEST_DIR/default.toml`, then the packaged one
/// beside the installer script or the binary (a source checkout's
/// `manifest/`, or an installed `share/zeta-creds/manifest/`).
pub fn manifest_candidates(
    target: &Path,
    manifest_dir: Option<&str>,
    install_dirs: &[PathBuf],
) -> Vec<PathBuf> {
    let mut out = vec![target.join("etc/zeta/creds-manifest.toml")];
    if let Some(dir) = manifest_dir {
        out.push(Path::new(dir).join("default.toml"));
    }
    for dir in install_dirs {
        for c in [
            dir.join("../manifest/default.toml"),
            dir.join("../share/zeta-creds/manifest/default.toml"),
        ] {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
}

fn find_manifest(s: &Settings, target: &Path, shim: Option<&Path>) -> Result<PathBuf, Fail> {
    if let Some(m) = &s.manifest {
        let path = PathBuf::from(m);
        if !path.is_file() {
            return Err(Fail::new(
                StepExit::Missing,
                format!("manifest {m} does not exist"),
            ));
        }
        return Ok(path);
    }
    let dir_of = |p: &Path| {
        std::fs::canonicalize(p)
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned))
    };
    let install_dirs: Vec<PathBuf> = [
        shim.and_then(dir_of),
        std::env::current_exe().ok().and_then(|p| dir_of(&p)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let candidates = manifest_candidates(target, s.manifest_dir.as_deref(), &install_dirs);
    match candidates.iter().find(|c| c.is_file()) {
        Some(found) => Ok(std::fs::canonicalize(found).unwrap_or_else(|_| found.clone())),
        None => {
            let list: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
            Err(Fail::new(StepExit::Missing, format!("no manifest: looked for {}", list.join(" ")))
                .hint("pass --manifest FILE, or set ZETA_CREDS_MANIFEST_DIR to the directory holding default.toml"))
        }
    }
}

/// `inspect --json` on `blob`, if there is one (no passphrase needed):
/// nothing, bound to this stick or another, or unreadable (its errors
/// shown).
fn look_at(
    zc: &ZetaCreds,
    blob: &Path,
    stick: &stick::StickUuid,
) -> Result<(Found, Option<HeaderJson>), Fail> {
    if !blob.exists() {
        return Ok((Found::Nothing, None));
    }
    let mut args = Args::new("inspect").flag("--json").0;
    args.push(blob.as_os_str().to_owned());
    let ran = zc.run(&args, None, true, true)?;
    match HeaderJson::parse(&ran.stdout).filter(|_| ran.code == 0) {
        Some(h) if h.usb_uuid == stick.uuid.as_str() => Ok((Found::ThisStick, Some(h))),
        Some(h) => Ok((Found::OtherStick, Some(h))),
        None => {
            say(format!(
                "the ESP holds {}, but it is not a blob zeta-creds can read:",
                blob.display()
            ));
            for line in String::from_utf8_lossy(&ran.stderr).lines() {
                eprintln!("    {line}");
            }
            Ok((Found::Unreadable, None))
        }
    }
}

fn or_unknown(v: Option<u64>) -> String {
    v.map_or_else(|| "?".to_owned(), |n| n.to_string())
}

/// 3. Say what is on the ESP and decide (asking on the terminal if need be).
fn choose_action(
    s: &Settings,
    i: &Inputs,
    found: &Found,
    header: Option<&HeaderJson>,
    from: Option<&OffEsp>,
    interactive: bool,
) -> Result<Action, Fail> {
    let (place, blob) = match from {
        None => ("the ESP already", i.blob.display().to_string()),
        Some(o) => (o.origin.label(), o.shown.clone()),
    };
    let prev = format!("{BLOB_NAME}.prev");
    let generation = or_unknown(header.and_then(|h| h.generation));
    match (found, header) {
        (Found::ThisStick, Some(h)) => {
            let old_persona = if h.persona.is_empty() {
                "(none)"
            } else {
                h.persona.as_str()
            };
            say(format!(
                "{place} holds a blob bound to this stick: {blob} (generation {generation}, persona {old_persona})"
            ));
            if let Some(p) = s.persona.as_deref().filter(|p| *p != h.persona) {
                warn(format!(
                    "it was bundled for persona {old_persona}, not {p}: re-bundle to carry {p}'s entries"
                ));
            }
        }
        (Found::OtherStick, Some(h)) => say(format!(
            "{} holds a blob bound to another USB stick ({}), not to this one ({}): {blob} (generation {generation})",
            if from.is_none() { "the ESP" } else { place },
            h.usb_uuid,
            i.stick.uuid
        )),
        _ => {}
    }
    let decision = decide::decide(found, s.rebundle, interactive);
    let action = match decision {
        Decision::Act(action, why) => {
            match (found, action, why) {
                (Found::ThisStick, Action::Rebundle, Why::Variable) => {
                    say("ZETA_CREDS_REBUNDLE=1: re-bundling");
                }
                (Found::ThisStick, Action::Keep, Why::Variable) => {
                    say("ZETA_CREDS_REBUNDLE=0: keeping it")
                }
                (Found::ThisStick, _, _) => {
                    say("keeping it (ZETA_CREDS_REBUNDLE is not set; =1 re-bundles)")
                }
                (Found::OtherStick, Action::Replace, _) => {
                    say("ZETA_CREDS_REBUNDLE=1: re-bundling for this stick");
                }
                (Found::OtherStick, Action::Move, Why::Variable) => {
                    say("ZETA_CREDS_REBUNDLE=0: moving it to this stick");
                }
                (Found::OtherStick, _, _) => {
                    say("moving it to this stick (ZETA_CREDS_REBUNDLE is not set; =1 re-bundles)");
                }
                (Found::Unreadable, _, _) => {
                    say(format!(
                        "ZETA_CREDS_REBUNDLE=1: replacing it (it is kept as {prev})"
                    ));
                }
                (Found::Nothing, _, _) => {}
            }
            Some(action)
        }
        Decision::Ask(q @ Question::KeepOrRebundle) => {
            tty_say(
                "  [k] keep it: the installed system restores it at first boot (checked with its passphrase now)",
            );
            tty_say(&format!(
                "  [r] re-bundle from {} (shows what would change first; the old blob is kept as {prev})",
                i.source_root
            ));
            decide::answer(
                q,
                ui::ask_choice("Keep or re-bundle? [K/r]", 'k', &['k', 'r'])?,
            )
        }
        Decision::Ask(q @ Question::MoveOrRebundle) => {
            tty_say(
                "  [m] move it to this stick: same credentials and passphrase, rebound with `zeta-creds rekey`",
            );
            tty_say(&format!(
                "  [r] re-bundle from {} for this stick (the old blob is kept as {prev})",
                i.source_root
            ));
            decide::answer(
                q,
                ui::ask_choice("Move or re-bundle? [M/r]", 'm', &['m', 'r'])?,
            )
        }
        Decision::Ask(q @ Question::ReplaceUnreadable) => {
            let yes = ui::ask_yes_no(
                &format!("Replace it with a new bundle (it is kept as {prev})? [y/N]"),
                false,
            )?;
            decide::answer(q, if yes { 'y' } else { 'n' })
        }
        Decision::Refuse => None,
    };
    action.ok_or_else(|| {
        Fail::new(StepExit::Unreadable, format!("not replacing the unreadable {blob}"))
            .hint("set ZETA_CREDS_REBUNDLE=1 (or answer yes on a terminal) to replace it with a new bundle")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_candidates_in_order() {
        let got = manifest_candidates(
            Path::new("/mnt"),
            Some("/pkg/manifests"),
            &[
                PathBuf::from("/src/installer"),
                PathBuf::from("/src/installer"),
            ],
        );
        let want: Vec<PathBuf> = [
            "/mnt/etc/zeta/creds-manifest.toml",
            "/pkg/manifests/default.toml",
            "/src/installer/../manifest/default.toml",
            "/src/installer/../share/zeta-creds/manifest/default.toml",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(got, want);
        assert_eq!(manifest_candidates(Path::new("/t"), None, &[]).len(), 1);
    }
}
