//! The step's actions on the ESP, each a `zeta-creds` child with the
//! passphrase on a pipe: `diff` before a re-bundle, `bundle` (a new
//! passphrase must pass the strength check first), and `verify --list` /
//! `rekey` with the passphrase of the blob already there.

use super::Inputs;
use super::args::Settings;
use super::decide::{self, Action, DiffSaid};
use super::exit::{Fail, StepExit};
use super::secret::{self, Secret};
use super::ui::{self, say, tty_say};
use super::zc::Args;
use zeta_creds::manifest::Manifest;

/// Before a re-bundle: show what it changes (`diff`, with the passphrase
/// the new blob gets), and on a terminal ask to go on. Returns the action:
/// re-bundle, or keep if the operator declined.
pub fn show_diff(
    s: &Settings,
    i: &Inputs,
    secret: &mut Secret,
    max_wf: u8,
    interactive: bool,
) -> Result<Action, Fail> {
    let mut diff = Args::new("diff")
        .opt("--blob", &i.blob)
        .opt("--manifest", &i.manifest)
        .opt("--source-root", &i.source_root);
    if let Some(user) = &s.user {
        diff = diff.opt("--user", user);
    }
    let diff = diff.opt("--max-work-factor", max_wf.to_string());
    // A passphrase typed on the terminal that does not open the blob may be
    // a typo: it is asked again (three tries in all), and every try shows
    // the diff and asks to go on, as the first did.
    let mut tries = 0;
    let said = loop {
        tries += 1;
        let from_env = secret.from_env;
        let pass = secret.ensure_new(&i.blob, &i.stick.raw)?;
        say(format!(
            "what re-bundling from {} would change:",
            i.source_root
        ));
        let said = DiffSaid::from_status(i.zc.run(&diff.0, Some(pass), false, false)?.code);
        if said == DiffSaid::WrongPassphrase
            && interactive
            && !from_env
            && tries < 3
            && ui::ask_yes_no(
                "The blob on the ESP does not open with this passphrase. Type it again to see what changes? [Y/n]",
                true,
            )?
        {
            secret.forget();
            continue;
        }
        break said;
    };
    match said {
        DiffSaid::Same => say("nothing changed since this blob was bundled"),
        DiffSaid::Differs => {}
        DiffSaid::WrongPassphrase => say(
            "the blob on the ESP does not open with this passphrase, so what changes cannot be shown; the new blob is sealed with it",
        ),
        DiffSaid::Failed(code) => say(format!(
            "zeta-creds diff failed (exit {code}): what changes cannot be shown"
        )),
    }
    if let Some((question, default_yes)) = decide::confirm_after_diff(said, s.rebundle, interactive)
        && !ui::ask_yes_no(question, default_yes)?
    {
        if said == DiffSaid::WrongPassphrase {
            // Not this blob's passphrase: keeping asks for the right one.
            secret.forget();
        }
        return Ok(Action::Keep);
    }
    Ok(Action::Rebundle)
}

/// Bundle a new blob (`--force` over another stick's blob or an unreadable
/// file; `--allow-other-host` over the blob of `other_host`, which the ESP
/// of the machine being installed holds: said first). A new passphrase
/// must pass the strength check `bundle` applies; on a terminal a weak one
/// is asked again (three tries).
pub fn bundle(
    s: &Settings,
    i: &Inputs,
    secret: &mut Secret,
    interactive: bool,
    force: bool,
    other_host: Option<&str>,
) -> Result<(), Fail> {
    // The blob is sealed for the installed system, whose host name is
    // neither the live system's nor (with --source-root /) the source's:
    // --host, else TARGET/etc/hostname, resolved inside TARGET (on NixOS a
    // symlink into the target's store).
    let host = i.host.as_deref().ok_or_else(|| {
        Fail::new(
            StepExit::Missing,
            format!(
                "cannot tell which host the blob is for: {} has no etc/hostname; nothing was written to the ESP",
                i.target.display()
            ),
        )
        .hint("set networking.hostName and run nixos-install before this step, or pass --host NAME")
    })?;
    let mut args = Args::new("bundle")
        .opt("--manifest", &i.manifest)
        .opt("--source-root", &i.source_root);
    if let Some(user) = &s.user {
        args = args.opt("--user", user);
    }
    let mut args = args
        .opt("--host", host)
        .opt("--out", &i.blob)
        .opt("--usb-uuid", &i.stick.raw);
    if let Some(p) = &s.persona {
        args = args.opt("--persona", p);
    }
    if let Some(wf) = s.work_factor {
        args = args.opt("--work-factor", wf.to_string());
    }
    if force {
        args = args.flag("--force");
    }
    if let Some(other) = other_host {
        say(format!(
            "the blob on the ESP was sealed for host {other}: the new bundle for host {host} replaces it (it is kept as {}.prev)",
            i.blob.display()
        ));
        args = args.flag("--allow-other-host");
    }
    // The manifest's user is one of the words bundle rates against; an
    // unreadable manifest is bundle's to report.
    let user = s
        .user
        .clone()
        .or_else(|| Manifest::load(&i.manifest).ok().map(|m| m.user));
    let context = secret::strength_context(user.as_deref(), i.stick.uuid.as_str());
    let mut tries = 0;
    loop {
        tries += 1;
        let from_env = secret.from_env;
        let pass = secret.ensure_new(&i.blob, &i.stick.raw)?;
        if let Err(weak) = secret::check_strength(pass, &context) {
            say(secret::weak_message(&weak));
            if from_env || !interactive {
                return Err(Fail::new(
                    StepExit::Failed,
                    "ZETA_CREDS_PASSPHRASE is too weak; nothing was written to the ESP",
                )
                .hint("choose a longer passphrase (five or more random words)"));
            }
            if tries < 3 {
                tty_say("choose a stronger passphrase (five or more random words)");
                secret.forget();
                continue;
            }
            return Err(Fail::new(
                StepExit::Failed,
                "the passphrase is too weak after 3 tries; nothing was written to the ESP",
            )
            .hint("choose a longer passphrase (five or more random words)"));
        }
        say(format!(
            "running: zeta-creds {} --passphrase-fd 0",
            args.display()
        ));
        let ran = i.zc.run(&args.0, Some(pass), false, false)?;
        if ran.code == 0 {
            return Ok(());
        }
        return Err(Fail::new(
            StepExit::of_child(ran.code),
            format!(
                "zeta-creds bundle failed (exit {}); no new blob was written to the ESP, {} was not changed",
                ran.code,
                i.target.display()
            ),
        )
        .hint(format!(
            "the message above says why; `{} --help` lists the exit codes",
            i.name
        )));
    }
}

/// Keep and move need the passphrase of the blob on the ESP: run `args`
/// with it; on a terminal a wrong one is asked again (three tries).
pub fn with_old_passphrase(i: &Inputs, secret: &mut Secret, args: &Args) -> Result<(), Fail> {
    let sub = args.0[0].to_string_lossy().into_owned();
    let mut tty = secret::terminal();
    let mut tries = 0;
    loop {
        tries += 1;
        let pass = secret.ensure_old(&mut tty, &i.blob)?;
        let ran = i.zc.run(&args.0, Some(pass), false, false)?;
        match ran.code {
            0 => return Ok(()),
            3 if !secret.from_env && tries < 3 => secret.forget(),
            3 => {
                return Err(Fail::new(
                    StepExit::WrongPassphrase,
                    format!(
                        "the blob {} does not open with this passphrase; it was left as it is",
                        i.blob.display()
                    ),
                )
                .hint("give the passphrase it was bundled with, or set ZETA_CREDS_REBUNDLE=1 to replace it with a new bundle"));
            }
            code => {
                return Err(Fail::new(
                    StepExit::of_child(code),
                    format!(
                        "zeta-creds {sub} failed (exit {code}) on {}; it was left as it is",
                        i.blob.display()
                    ),
                )
                .hint("set ZETA_CREDS_REBUNDLE=1 to replace it with a new bundle"));
            }
        }
    }
}
