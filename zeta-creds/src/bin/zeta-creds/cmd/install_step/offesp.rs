//! Blobs found off the ESP: the rescue directory, the stash on the stick
//! (`--stash DIR`, or the stick's `ZETA-CREDS` partition) and `--blob`;
//! putting the chosen one on the ESP whole, and writing the stash after the
//! ESP blob verified.

use super::*;

/// Where the stash is.
pub(super) enum StashAt {
    /// No stash: none given, none found on the stick.
    None,
    /// A directory: `--stash DIR` (`explicit`), or the partition mounted
    /// already.
    Dir { dir: PathBuf, explicit: bool },
    /// The stick's `ZETA-CREDS` partition, mounted only while used.
    Partition(PathBuf),
}

/// `--stash DIR` (which must be a directory), else the stick's
/// `ZETA-CREDS` partition, if any.
pub(super) fn locate_stash(s: &Settings, i: &Inputs, host: Option<&str>) -> Result<StashAt, Fail> {
    if let Some(dir) = &s.stash {
        if !Path::new(dir).is_dir() {
            return Err(usage_error(
                &i.name,
                format!("--stash {dir} is not a directory"),
            ));
        }
        if host.is_none() {
            warn(format!(
                "the host is unknown ({}/etc/hostname is missing): the stash {dir} is not used; pass --host NAME",
                i.target.display()
            ));
            return Ok(StashAt::None);
        }
        say(format!("stash: {dir}"));
        return Ok(StashAt::Dir {
            dir: PathBuf::from(dir),
            explicit: true,
        });
    }
    let Some(found) = stash::discover(&i.stick_dev) else {
        return Ok(StashAt::None);
    };
    if host.is_none() {
        warn(format!(
            "the stick has a stash ({}), but the host is unknown ({}/etc/hostname is missing): not used; pass --host NAME",
            found.device.display(),
            i.target.display()
        ));
        return Ok(StashAt::None);
    }
    Ok(match found.mounted_at {
        Some(dir) => {
            say(format!(
                "stash: {} (labelled {}, mounted at {})",
                found.device.display(),
                stash::STASH_LABEL,
                dir.display()
            ));
            StashAt::Dir {
                dir,
                explicit: false,
            }
        }
        None => {
            say(format!(
                "stash: {} (labelled {}, mounted only while used)",
                found.device.display(),
                stash::STASH_LABEL
            ));
            StashAt::Partition(found.device)
        }
    })
}

/// A blob found off the ESP.
pub(super) struct OffEsp {
    pub(super) origin: sources::Origin,
    /// The file read: for the stash partition, a private copy made while
    /// it was mounted.
    pub(super) path: PathBuf,
    /// Where it is, in messages: the path, or for the stash partition
    /// `<host>.enc on DEVICE` (the private copy is gone after the step).
    pub(super) shown: String,
}

/// What step 3 found: as [`look_at`] says, and where from when it is off
/// the ESP.
pub(super) struct Looked {
    pub(super) found: Found,
    pub(super) header: Option<HeaderJson>,
    pub(super) from: Option<OffEsp>,
    /// The copy of the stash partition's blob, removed when dropped.
    pub(super) staged: Option<stash::Staged>,
}

/// The ESP holds no blob: look in the rescue directory, the stash and
/// `--blob`, and pick one ([`sources::choose`]), saying why.
pub(super) fn look_elsewhere(
    s: &Settings,
    i: &Inputs,
    host: Option<&str>,
    stash_at: &StashAt,
) -> Result<Looked, Fail> {
    use sources::{Origin, Seen};
    let mut paths: Vec<(Origin, PathBuf)> = sources::rescued_files(Path::new(&s.rescue_dir))
        .into_iter()
        .map(|p| (Origin::Rescued, p))
        .collect();
    let mut staged = None;
    // The stash partition's blob is read from a private copy; messages
    // name it by the partition.
    let mut copy_of: Option<(PathBuf, String)> = None;
    match (stash_at, host) {
        (StashAt::Dir { dir, .. }, Some(host)) => {
            let p = dir.join(stash::file_name(host));
            if std::fs::symlink_metadata(&p).is_ok() {
                paths.push((Origin::Stash, p));
            }
        }
        (StashAt::Partition(dev), Some(host)) => match stash::stage_from_partition(dev, host) {
            Ok(Some(copy)) => {
                paths.push((Origin::Stash, copy.path().to_owned()));
                copy_of = Some((
                    copy.path().to_owned(),
                    format!("{} on {}", stash::file_name(host), dev.display()),
                ));
                staged = Some(copy);
            }
            Ok(None) => {}
            Err(e) => warn(format!(
                "cannot read the stash on {}: {e}; looking elsewhere",
                dev.display()
            )),
        },
        _ => {}
    }
    if let Some(b) = &s.blob {
        let p = PathBuf::from(b);
        if !p.is_file() {
            return Err(Fail::new(
                StepExit::Missing,
                format!("--blob {b} is not a file"),
            ));
        }
        paths.push((Origin::Import, p));
    }
    let nothing = |staged| Looked {
        found: Found::Nothing,
        header: None,
        from: None,
        staged,
    };
    if paths.is_empty() {
        let stash = match stash_at {
            StashAt::None => String::new(),
            _ => format!(", nor in the stash for host {}", host.unwrap_or("?")),
        };
        say(format!(
            "no blob on the ESP, nor in the rescue directory ({}){stash}: bundling a new one",
            s.rescue_dir
        ));
        return Ok(nothing(staged));
    }
    let mut seen = Vec::new();
    for (origin, path) in paths {
        let header = inspect(&i.zc, &path)?;
        seen.push(Seen {
            path,
            origin,
            header,
        });
    }
    let shown = |path: &Path| match &copy_of {
        Some((copy, name)) if copy == path => name.clone(),
        _ => path.display().to_string(),
    };
    let describe = |sn: &Seen| match &sn.header {
        Some(h) => format!(
            "{} (host {}, stick {}, generation {})",
            shown(&sn.path),
            h.host.as_deref().unwrap_or("not recorded"),
            h.usb_uuid,
            or_unknown(h.generation)
        ),
        None => shown(&sn.path),
    };
    let choice = sources::choose(&seen, i.stick.uuid.as_str(), host).map_err(|e| {
        Fail::new(StepExit::Failed, format!("{e}; nothing was written"))
            .hint("pass that host's --host NAME, or another --blob FILE")
    })?;
    say("the ESP holds no blob; looked in the rescue directory, the stash and --blob");
    for (idx, why) in &choice.others {
        say(format!(
            "  not used: {} from {}: {why}",
            describe(&seen[*idx]),
            seen[*idx].origin.label()
        ));
    }
    let Some(idx) = choice.chosen else {
        say("none of them is for this host: bundling a new blob");
        return Ok(nothing(staged));
    };
    let chosen = &seen[idx];
    say(format!(
        "using {} from {}: {}",
        describe(chosen),
        chosen.origin.label(),
        choice.why
    ));
    let found = match &chosen.header {
        Some(h) if h.usb_uuid == i.stick.uuid.as_str() => Found::ThisStick,
        Some(_) => Found::OtherStick,
        None => Found::Unreadable,
    };
    Ok(Looked {
        found,
        header: chosen.header.clone(),
        from: Some(OffEsp {
            origin: chosen.origin,
            path: chosen.path.clone(),
            shown: shown(&chosen.path),
        }),
        staged,
    })
}

/// `inspect --json` on a file off the ESP: its header, or `None`.
pub(super) fn inspect(zc: &ZetaCreds, path: &Path) -> Result<Option<HeaderJson>, Fail> {
    let mut args = Args::new("inspect").flag("--json").0;
    args.push(path.as_os_str().to_owned());
    let ran = zc.run(&args, None, true, true)?;
    Ok(HeaderJson::parse(&ran.stdout).filter(|_| ran.code == 0))
}

/// Copy a blob found off the ESP onto it, whole (temporary file, fsync,
/// rename). The ESP held no blob.
pub(super) fn to_esp(o: &OffEsp, esp_blob: &Path) -> Result<(), Fail> {
    stash::place(&o.path, esp_blob, false).map_err(|e| {
        Fail::new(
            StepExit::Failed,
            format!(
                "cannot copy {} to {}: {e}; no partial file was left on the ESP",
                o.shown,
                esp_blob.display()
            ),
        )
    })?;
    say(format!(
        "copied the blob from {} ({}) to {}",
        o.origin.label(),
        o.shown,
        esp_blob.display()
    ));
    Ok(())
}

/// Write the verified ESP blob to the stash as `<host>.enc`. A failure
/// changes nothing on the ESP or in the target: with `--stash` it is an
/// error (exit 1), for the partition found on the stick a warning.
pub(super) fn write_stash(at: &StashAt, host: Option<&str>, blob: &Path) -> Result<(), Fail> {
    let Some(host) = host else {
        return Ok(());
    };
    let (wrote, place, explicit) = match at {
        StashAt::None => return Ok(()),
        StashAt::Dir { dir, explicit } => (
            stash::write(dir, host, blob).map_err(|e| stash::explain(&e)),
            dir.join(stash::file_name(host)).display().to_string(),
            *explicit,
        ),
        StashAt::Partition(dev) => (
            stash::write_to_partition(dev, host, blob),
            format!("{} on {}", stash::file_name(host), dev.display()),
            false,
        ),
    };
    match wrote {
        Ok(stash::Wrote::Unchanged) => {
            say(format!("stash: {place} holds this blob already"));
            Ok(())
        }
        Ok(stash::Wrote::Written { kept_previous }) => {
            say(format!(
                "stash: wrote {place}{}",
                if kept_previous {
                    " (the previous one kept as .prev)"
                } else {
                    ""
                }
            ));
            Ok(())
        }
        Err(why) => {
            let message = format!(
                "the blob was not written to the stash ({place}): {why}; no partial file was left there; the blob on the ESP ({}) is sealed, verified and unchanged",
                blob.display()
            );
            if explicit {
                Err(Fail::new(StepExit::Failed, message).hint(
                    "make room on the stash (or make it writable) and run the step again: it keeps the blob on the ESP",
                ))
            } else {
                warn(message);
                Ok(())
            }
        }
    }
}
