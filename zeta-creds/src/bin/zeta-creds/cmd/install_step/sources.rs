//! Where the step finds the blob to keep, move or re-bundle, in order: the
//! ESP, the rescue directory (`install-step rescue` copied blobs there
//! before the ESP was reformatted), the stash on the stick
//! (`<host>.enc`), then `--blob FILE`. The first place holding a usable
//! blob wins; within the rescue directory, the newest generation for the
//! host being installed. [`choose`] is a pure function of what `inspect`
//! said about each file; the step prints its reasons.

use std::path::{Path, PathBuf};

use super::zc::HeaderJson;

/// Where a file was found, in the order the step looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// `ESP/zeta-creds.enc`.
    Esp,
    /// A file in the rescue directory.
    Rescued,
    /// `<host>.enc` in the stash on the stick.
    Stash,
    /// `--blob FILE`.
    Import,
}

impl Origin {
    /// In messages: "from the rescue directory".
    pub fn label(self) -> &'static str {
        match self {
            Origin::Esp => "the ESP",
            Origin::Rescued => "the rescue directory",
            Origin::Stash => "the stash on the stick",
            Origin::Import => "--blob",
        }
    }
}

/// One file looked at: where, and its header (`None`: not a blob
/// `inspect` can read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The file.
    pub path: PathBuf,
    /// Where it was found.
    pub origin: Origin,
    /// What `inspect --json` said.
    pub header: Option<HeaderJson>,
}

/// What [`choose`] picked, and why every other file was not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Index into the files looked at; `None`: nothing to keep (bundle).
    pub chosen: Option<usize>,
    /// Why it was chosen (empty when nothing was).
    pub why: String,
    /// The others, each with why it was not used.
    pub others: Vec<(usize, String)>,
}

/// The host recorded in a header agrees with the host being installed:
/// either is unknown, or they are the same.
fn host_agrees(header: &HeaderJson, host: Option<&str>) -> bool {
    match (header.host.as_deref(), host) {
        (Some(h), Some(want)) => h == want,
        _ => true,
    }
}

/// Pick the blob to use from `seen` (any order), for the stick `stick`
/// (normalized) and the host `host`:
///
/// * a file on the ESP is always the one (today's behaviour: a blob there
///   is kept, moved or re-bundled, an unreadable file refused or
///   replaced);
/// * else the first of the rescue directory, the stash, `--blob` that
///   holds a readable blob for this host (its recorded host is this one,
///   or none is recorded); among several, the newest generation, then one
///   recorded for this host by name, then one bound to this stick;
/// * an unreadable `--blob` is still chosen (the operator named it: the
///   decision table refuses or replaces it); one sealed for another host
///   is an error (`Err` says why), never silently replaced by a new bundle.
pub fn choose(seen: &[Seen], stick: &str, host: Option<&str>) -> Result<Choice, String> {
    let mut order: Vec<usize> = (0..seen.len()).collect();
    order.sort_by(|&a, &b| (seen[a].origin, &seen[a].path).cmp(&(seen[b].origin, &seen[b].path)));
    let mut chosen: Option<(usize, String)> = None;
    for origin in [Origin::Esp, Origin::Rescued, Origin::Stash, Origin::Import] {
        let here: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| seen[i].origin == origin)
            .collect();
        if here.is_empty() {
            continue;
        }
        if origin == Origin::Esp {
            chosen = Some((here[0], "the ESP comes first".to_owned()));
            break;
        }
        if origin == Origin::Import {
            let i = here[0];
            if let Some(h) = &seen[i].header
                && !host_agrees(h, host)
            {
                return Err(format!(
                    "--blob {} was sealed for host {}, not for {}: not using it",
                    seen[i].path.display(),
                    h.host.as_deref().unwrap_or("?"),
                    host.unwrap_or("?")
                ));
            }
            chosen = Some((i, "named with --blob".to_owned()));
            break;
        }
        let key = |i: usize| {
            let h = seen[i].header.as_ref().expect("filtered");
            (
                h.generation.unwrap_or(0),
                host.is_some() && h.host.as_deref() == host,
                h.usb_uuid == stick,
            )
        };
        let usable: Vec<usize> = here
            .iter()
            .copied()
            .filter(|&i| {
                seen[i]
                    .header
                    .as_ref()
                    .is_some_and(|h| host_agrees(h, host))
            })
            .collect();
        // max_by_key keeps the last of equals: iterate in reverse path
        // order so that the first path wins a tie.
        if let Some(best) = usable.iter().rev().copied().max_by_key(|&i| key(i)) {
            let g = key(best).0;
            let why = match (usable.len(), host) {
                (1, Some(host)) => format!("the only blob there for host {host}"),
                (1, None) => "the only blob there".to_owned(),
                (n, Some(host)) => {
                    format!("the newest generation ({g}) of the {n} blobs there for host {host}")
                }
                (n, None) => format!("the newest generation ({g}) of the {n} blobs there"),
            };
            let why = if is_resealed(&seen[best]) {
                format!(
                    "{why}: the fresh re-seal `rescue` made from the old system's current files"
                )
            } else {
                why
            };
            chosen = Some((best, why));
            break;
        }
    }
    let Some((best, why)) = chosen else {
        let others = order
            .iter()
            .map(|&i| (i, not_used(&seen[i], None, host)))
            .collect();
        return Ok(Choice {
            chosen: None,
            why: String::new(),
            others,
        });
    };
    let others = order
        .iter()
        .copied()
        .filter(|&i| i != best)
        .map(|i| (i, not_used(&seen[i], Some(&seen[best]), host)))
        .collect();
    Ok(Choice {
        chosen: Some(best),
        why,
        others,
    })
}

/// Why `s` was not used, next to the chosen blob `best`.
fn not_used(s: &Seen, best: Option<&Seen>, host: Option<&str>) -> String {
    let Some(h) = &s.header else {
        return "not a blob zeta-creds can read".to_owned();
    };
    if !host_agrees(h, host) {
        return format!(
            "sealed for host {}, not for {}",
            h.host.as_deref().unwrap_or("?"),
            host.unwrap_or("?")
        );
    }
    let generation = h.generation.unwrap_or(0);
    match best {
        Some(b) if b.origin != s.origin => {
            format!("not needed: a blob from {} comes first", b.origin.label())
        }
        Some(b) => {
            let bg = b.header.as_ref().and_then(|h| h.generation).unwrap_or(0);
            if generation < bg {
                format!("generation {generation}, older than the one chosen ({bg})")
            } else {
                format!(
                    "generation {generation} as well (check with `zeta-creds inspect`; pass the one you want with --blob FILE after emptying the rescue directory)"
                )
            }
        }
        None => format!("generation {generation}, not used"),
    }
}

/// A blob `install-step rescue` sealed from the old system's current files:
/// in the rescue directory, named `resealed-<host>-g<generation>.enc` after
/// its own header (a rescued copy is named after its stick, with a hash, so
/// no header can make one look like this).
fn is_resealed(s: &Seen) -> bool {
    let (Some(h), Some(name)) = (&s.header, s.path.file_name().and_then(|n| n.to_str())) else {
        return false;
    };
    let (Some(host), Some(g)) = (&h.host, h.generation) else {
        return false;
    };
    s.origin == Origin::Rescued
        && name
            == format!(
                "{}{host}-g{g}.enc",
                zeta_creds::rescue::oldroot::RESEALED_PREFIX
            )
}

/// The files in the rescue directory that may be blobs: regular files
/// (not symlinks) named `*.enc`, sorted; none when it does not exist.
pub fn rescued_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".enc") && !n.starts_with('.'))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(path: &str, origin: Origin, stick: &str, host: Option<&str>, g: u64) -> Seen {
        Seen {
            path: PathBuf::from(path),
            origin,
            header: Some(HeaderJson {
                usb_uuid: stick.into(),
                host: host.map(str::to_owned),
                generation: Some(g),
                ..HeaderJson::default()
            }),
        }
    }

    fn unreadable(path: &str, origin: Origin) -> Seen {
        Seen {
            path: PathBuf::from(path),
            origin,
            header: None,
        }
    }

    #[test]
    fn the_fresh_reseal_is_named_as_such_and_nothing_else_is() {
        let fresh = seen(
            "/r/resealed-node-a-g3.enc",
            Origin::Rescued,
            "dead-beef",
            Some("node-a"),
            3,
        );
        let copy = seen(
            "/r/dead-beef-g2-0a1b2c3d.enc",
            Origin::Rescued,
            "dead-beef",
            Some("node-a"),
            2,
        );
        let c = choose(&[copy.clone(), fresh.clone()], "dead-beef", Some("node-a")).unwrap();
        assert_eq!(c.chosen, Some(1));
        assert!(
            c.why
                .ends_with("the fresh re-seal `rescue` made from the old system's current files"),
            "{}",
            c.why
        );
        // A copy whose (unauthenticated) stick mimics the name is not one,
        // nor is a name whose generation is not the header's.
        let mimic = seen(
            "/r/resealed-node-a-g3-0a1b2c3d.enc",
            Origin::Rescued,
            "resealed-node-a",
            Some("node-a"),
            3,
        );
        let wrong_g = seen(
            "/r/resealed-node-a-g9.enc",
            Origin::Rescued,
            "dead-beef",
            Some("node-a"),
            3,
        );
        for s in [mimic, wrong_g] {
            let c = choose(&[s], "dead-beef", Some("node-a")).unwrap();
            assert!(!c.why.contains("re-seal"), "{}", c.why);
        }
        assert!(
            !choose(&[copy], "dead-beef", Some("node-a"))
                .unwrap()
                .why
                .contains("re-seal")
        );
    }

    fn chosen_path(seen: &[Seen], host: Option<&str>) -> Option<PathBuf> {
        let c = choose(seen, "dead-beef", host).unwrap();
        c.chosen.map(|i| seen[i].path.clone())
    }

    #[test]
    fn the_esp_wins_even_unreadable() {
        let all = vec![
            seen("/stash/a.enc", Origin::Stash, "dead-beef", Some("a"), 9),
            seen("/rescued/x.enc", Origin::Rescued, "dead-beef", Some("a"), 7),
            unreadable("/esp/zeta-creds.enc", Origin::Esp),
            seen("/import.enc", Origin::Import, "dead-beef", Some("a"), 8),
        ];
        let c = choose(&all, "dead-beef", Some("a")).unwrap();
        assert_eq!(c.chosen, Some(2));
        assert_eq!(c.others.len(), 3);
        assert!(
            c.others
                .iter()
                .all(|(_, why)| why == "not needed: a blob from the ESP comes first"),
            "{:?}",
            c.others
        );
    }

    #[test]
    fn the_rescue_directory_when_the_esp_is_empty() {
        let all = vec![
            seen("/import.enc", Origin::Import, "dead-beef", Some("a"), 8),
            seen("/stash/a.enc", Origin::Stash, "dead-beef", Some("a"), 9),
            seen("/rescued/x.enc", Origin::Rescued, "dead-beef", Some("a"), 2),
        ];
        assert_eq!(
            chosen_path(&all, Some("a")),
            Some(PathBuf::from("/rescued/x.enc")),
            "order, not generation, decides between places"
        );
    }

    #[test]
    fn the_stash_when_the_esp_and_the_rescue_directory_are_empty() {
        let all = vec![
            seen("/import.enc", Origin::Import, "dead-beef", Some("a"), 8),
            seen("/stash/a.enc", Origin::Stash, "dead-beef", Some("a"), 1),
            // Rescued, but only for another host: not usable here.
            seen("/rescued/b.enc", Origin::Rescued, "dead-beef", Some("b"), 5),
            unreadable("/rescued/junk.enc", Origin::Rescued),
        ];
        let c = choose(&all, "dead-beef", Some("a")).unwrap();
        assert_eq!(c.chosen, Some(1));
        let why: Vec<&str> = c.others.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(
            why,
            [
                "sealed for host b, not for a",
                "not a blob zeta-creds can read",
                "not needed: a blob from the stash on the stick comes first",
            ]
        );
    }

    #[test]
    fn blob_file_last_and_chosen_even_unreadable_but_never_another_hosts() {
        let all = vec![unreadable("/import.enc", Origin::Import)];
        assert_eq!(
            chosen_path(&all, Some("a")),
            Some(PathBuf::from("/import.enc"))
        );
        let all = vec![seen("/import.enc", Origin::Import, "x", Some("b"), 1)];
        let e = choose(&all, "dead-beef", Some("a")).unwrap_err();
        assert_eq!(
            e,
            "--blob /import.enc was sealed for host b, not for a: not using it"
        );
        // Without a host known, the recorded one is not held against it.
        assert!(choose(&all, "dead-beef", None).unwrap().chosen.is_some());
    }

    #[test]
    fn nothing_anywhere_is_a_first_bundle() {
        let c = choose(&[], "dead-beef", Some("a")).unwrap();
        assert_eq!(c.chosen, None);
        let all = vec![seen("/rescued/b.enc", Origin::Rescued, "x", Some("b"), 1)];
        let c = choose(&all, "dead-beef", Some("a")).unwrap();
        assert_eq!(c.chosen, None);
        assert_eq!(c.others, [(0, "sealed for host b, not for a".to_owned())]);
    }

    #[test]
    fn several_rescued_the_newest_for_this_host() {
        let all = vec![
            seen(
                "/r/dead-beef-g3-aa.enc",
                Origin::Rescued,
                "dead-beef",
                Some("a"),
                3,
            ),
            seen(
                "/r/dead-beef-g5-bb.enc",
                Origin::Rescued,
                "dead-beef",
                Some("a"),
                5,
            ),
            seen("/r/cafe-g9-cc.enc", Origin::Rescued, "cafe", Some("b"), 9),
            seen("/r/cafe-g4-dd.enc", Origin::Rescued, "cafe", Some("a"), 4),
        ];
        let c = choose(&all, "dead-beef", Some("a")).unwrap();
        assert_eq!(
            all[c.chosen.unwrap()].path,
            Path::new("/r/dead-beef-g5-bb.enc")
        );
        assert_eq!(
            c.why,
            "the newest generation (5) of the 3 blobs there for host a"
        );
        let mut why: Vec<(String, String)> = c
            .others
            .iter()
            .map(|(i, w)| (all[*i].path.display().to_string(), w.clone()))
            .collect();
        why.sort();
        assert_eq!(
            why,
            [
                (
                    "/r/cafe-g4-dd.enc".to_owned(),
                    "generation 4, older than the one chosen (5)".to_owned()
                ),
                (
                    "/r/cafe-g9-cc.enc".to_owned(),
                    "sealed for host b, not for a".to_owned()
                ),
                (
                    "/r/dead-beef-g3-aa.enc".to_owned(),
                    "generation 3, older than the one chosen (5)".to_owned()
                ),
            ]
        );
        // Another host's newest generation is the other host's choice.
        assert_eq!(
            chosen_path(&all, Some("b")),
            Some(PathBuf::from("/r/cafe-g9-cc.enc"))
        );
    }

    #[test]
    fn ties_prefer_this_host_by_name_then_this_stick_then_the_first_path() {
        let all = vec![
            seen("/r/1.enc", Origin::Rescued, "cafe", None, 4),
            seen("/r/2.enc", Origin::Rescued, "cafe", Some("a"), 4),
        ];
        assert_eq!(
            chosen_path(&all, Some("a")),
            Some(PathBuf::from("/r/2.enc"))
        );
        let all = vec![
            seen("/r/1.enc", Origin::Rescued, "cafe", Some("a"), 4),
            seen("/r/2.enc", Origin::Rescued, "dead-beef", Some("a"), 4),
        ];
        assert_eq!(
            chosen_path(&all, Some("a")),
            Some(PathBuf::from("/r/2.enc"))
        );
        let all = vec![
            seen("/r/2.enc", Origin::Rescued, "cafe", Some("a"), 4),
            seen("/r/1.enc", Origin::Rescued, "cafe", Some("a"), 4),
        ];
        let c = choose(&all, "dead-beef", Some("a")).unwrap();
        assert_eq!(all[c.chosen.unwrap()].path, Path::new("/r/1.enc"));
        assert!(c.others[0].1.starts_with("generation 4 as well"));
    }

    #[test]
    fn the_rescue_directory_lists_regular_enc_files_only() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::write(d.join("b-g1-00.enc"), b"x").unwrap();
        std::fs::write(d.join("a-g2-00.enc"), b"x").unwrap();
        std::fs::write(d.join(".zeta-creds-tmp.0123456789abcdef"), b"x").unwrap();
        std::fs::write(d.join("notes.txt"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("link.enc")).unwrap();
        std::fs::create_dir(d.join("dir.enc")).unwrap();
        assert_eq!(
            rescued_files(d),
            [d.join("a-g2-00.enc"), d.join("b-g1-00.enc")]
        );
        assert!(rescued_files(&d.join("missing")).is_empty());
    }
}
