//! Developer tasks, run as `cargo xtask TASK` (an alias in
//! `.cargo/config.toml`).
//!
//! * `cargo xtask man` writes `man/zeta-creds.1` and one page per
//!   subcommand (`man/zeta-creds-bundle.1`, ...) from the clap definition
//!   in the binary's `cli.rs`, and removes pages of subcommands that no
//!   longer exist. The pages are committed, so that packagers and readers
//!   of the repository have them without building; the test below fails
//!   when they drift from the code, and says to run this task.
//!
//! A page is clap_mangen's NAME, DESCRIPTION, OPTIONS and SUBCOMMANDS
//! (what `--help` says, from the same definition), a SYNOPSIS of the forms
//! a user types (`--out BLOB (--usb-uuid UUID | --usb-uuid-file FILE)
//! [--manifest FILE] ...`), EXIT STATUS from the `Exit` enum, the
//! passphrase sources from the `--help` epilogue, and the ENVIRONMENT,
//! FILES, EXAMPLES and SEE ALSO of `pages.rs`. The tests check that every
//! page has these sections (and no clap_mangen "EXTRA"), that EXIT STATUS
//! is the enum, and that every example parses.
//!
//! The clap definition belongs to the binary, not the library (which has
//! no clap), and a binary cannot be a dependency. So this crate compiles
//! the binary's `cli.rs` and `exit.rs` itself, as modules at its root with
//! the same names (`cli.rs` refers to `crate::exit`): the very source the
//! binary parses with, not a copy.
#![forbid(unsafe_code)]

#[path = "../../zeta-creds/src/bin/zeta-creds/cli.rs"]
mod cli;
// Only the help epilogue is used here; the rest serves the binary.
#[allow(dead_code)]
#[path = "../../zeta-creds/src/bin/zeta-creds/exit.rs"]
mod exit;
mod pages;
// The installer step parses its own options: its --help text and exit
// table, compiled from the binary's sources as cli.rs is, make its page.
#[allow(dead_code)]
#[path = "../../zeta-creds/src/bin/zeta-creds/cmd/install_step/exit.rs"]
mod step_exit;
#[allow(dead_code)]
#[path = "../../zeta-creds/src/bin/zeta-creds/cmd/install_step/help.rs"]
mod step_help;

use exit::Exit;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask man    (write man/zeta-creds*.1 from the clap definition)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["man"] => match write_man(&man_dir()) {
            Ok(written) => {
                for name in written {
                    println!("wrote man/{name}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("xtask: error: cannot write the man pages: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `man/` at the root of the workspace.
fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .join("man")
}

/// Every man page, as (file name, roff bytes): the command and each
/// visible subcommand, recursively, with the file names
/// `clap_mangen::generate_to` would give them, but in memory so the test
/// can compare.
fn render() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    fn walk(
        cmd: clap::Command,
        path: &mut Vec<String>,
        out: &mut Vec<(String, Vec<u8>)>,
    ) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            path.push(sub.get_name().to_owned());
            walk(sub, path, out)?;
            path.pop();
        }
        let name = clap_mangen::Man::new(cmd.clone()).get_filename();
        out.push((name, page(&cmd, path)?.into_bytes()));
        Ok(())
    }
    let mut pages = Vec::new();
    walk(top_command(), &mut Vec::new(), &mut pages)?;
    pages.sort();
    Ok(pages)
}

/// The command as the binary builds it, with every subcommand's bin name.
fn top_command() -> clap::Command {
    let mut cmd = cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// The roff preamble that `roff::Roff::to_writer` puts before every piece.
fn strip_preamble(piece: Vec<u8>) -> String {
    let text = String::from_utf8(piece).expect("clap_mangen writes UTF-8");
    let mut rest = text.as_str();
    for _ in 0..2 {
        if rest.starts_with(".ie ") || rest.starts_with(".el ") {
            rest = rest.split_once('\n').map_or("", |(_, r)| r);
        }
    }
    rest.to_owned()
}

/// One section of clap_mangen's rendering, without its preamble.
/// `text` as a no-fill block (`.nf` ... `.fi`), each line escaped for
/// roff: a backslash as `\e`, a hyphen as `\-`, a leading `.` or `'`
/// behind `\&`, so no line is read as a request.
fn verbatim(text: &str) -> String {
    let mut out = String::from(".nf\n");
    for line in text.trim_end().lines() {
        let line = line.replace('\\', "\\e").replace('-', "\\-");
        if line.starts_with('.') || line.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(".fi\n");
    out
}

fn mangen(
    man: &clap_mangen::Man,
    section: fn(&clap_mangen::Man, &mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    section(man, &mut bytes)?;
    Ok(strip_preamble(bytes))
}

/// The exit-status table and the passphrase-sources paragraph, split out
/// of the `--help` epilogue (`exit::help_epilogue`) they both come from.
fn epilogue_parts() -> (String, String) {
    let epilogue = exit::help_epilogue();
    let (table, sources) = epilogue
        .split_once("\n\n")
        .expect("the epilogue is the table, a blank line, the sources");
    (table.to_owned(), sources.replace('\n', " "))
}

/// A man page: clap_mangen's title, NAME, DESCRIPTION, OPTIONS,
/// SUBCOMMANDS and VERSION, around a SYNOPSIS of the real forms, EXIT
/// STATUS from the `Exit` enum, and the ENVIRONMENT, FILES, EXAMPLES and
/// SEE ALSO of `pages.rs`. The `--help` epilogue is not repeated as an
/// "EXTRA" section: its parts are in EXIT STATUS, ENVIRONMENT and (for
/// rekey's note) DESCRIPTION.
fn page(cmd: &clap::Command, path: &[String]) -> std::io::Result<String> {
    use clap_mangen::roff::{Roff, bold, italic, roman};

    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = String::new();
    let mut title = Vec::new();
    man.render_title(&mut title)?;
    out += &String::from_utf8(title).expect("UTF-8");
    out += &mangen(&man, clap_mangen::Man::render_name_section)?;

    let extras = pages::extras(&path);
    let mut roff = Roff::default();
    roff.control("SH", ["SYNOPSIS"]);
    // No hyphenation inside an option name.
    roff.control("nh", [] as [&str; 0]);
    let forms = if extras.forms.is_empty() {
        synopsis(cmd, &path)
    } else {
        // A command that parses its own options (install-step): its forms
        // as its own --help gives them.
        extras.forms.iter().map(|f| vec![roman(*f)]).collect()
    };
    for (i, form) in forms.into_iter().enumerate() {
        if i > 0 {
            roff.control("br", [] as [&str; 0]);
        }
        roff.text(form);
    }
    roff.control("hy", [] as [&str; 0]);
    out += &roff.to_roff();

    out += &mangen(&man, clap_mangen::Man::render_description_section)?;
    // What `--help` shows after the options besides the epilogue: rekey's
    // note that a rekey is not a revocation.
    let (table, sources) = epilogue_parts();
    let after = cmd
        .get_after_help()
        .map(|t| t.to_string())
        .unwrap_or_default();
    let note = after
        .strip_suffix(&exit::help_epilogue())
        .unwrap_or(&after)
        .trim();
    if !note.is_empty() {
        let mut roff = Roff::default();
        roff.control("PP", [] as [&str; 0]);
        roff.text([roman(note.replace('\n', " "))]);
        out += &roff.to_roff();
    }
    if path == ["install-step"] {
        // Its --help from "Options:" on, as the step prints it (the exit
        // table goes to EXIT STATUS below).
        let table = step_exit::table();
        let help = step_help::text("zeta-creds install-step", &table);
        let options = help
            .find("\nOptions:\n")
            .map_or(help.as_str(), |at| &help[at + "\nOptions:\n".len()..]);
        out += ".SH OPTIONS\n";
        out += &verbatim(&options.replace(&table, ""));
    } else if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        out += &mangen(&man, clap_mangen::Man::render_options_section)?;
    }
    if cmd.has_subcommands() {
        out += &mangen(&man, clap_mangen::Man::render_subcommands_section)?;
    }

    let mut roff = Roff::default();
    roff.control("SH", ["EXIT STATUS"]);
    if path == ["install-step"] {
        roff.text([roman(
            "The step's own table (the same codes as zeta-creds where they mean the \
             same); a failed zeta-creds command's status is passed through:",
        )]);
        out += &roff.to_roff();
        roff = Roff::default();
        let table = step_exit::table();
        out += &verbatim(table.strip_prefix("Exit status:\n").unwrap_or(&table));
    } else {
        for e in Exit::ALL {
            roff.control("TP", [] as [&str; 0]);
            roff.text([bold(e.code().to_string()), roman("  "), italic(e.name())]);
            roff.text([roman(e.meaning())]);
        }
        debug_assert!(table.starts_with("Exit status:"));
    }

    let asks_passphrase =
        path.is_empty() || cmd.get_arguments().any(|a| a.get_id() == "passphrase_file");
    if !extras.env.is_empty() || asks_passphrase {
        roff.control("SH", ["ENVIRONMENT"]);
        if asks_passphrase {
            roff.text([roman(sources.clone())]);
        }
        for (var, what) in extras.env {
            roff.control("TP", [] as [&str; 0]);
            roff.text([bold(*var)]);
            roff.text([roman(*what)]);
        }
    }
    if !extras.files.is_empty() {
        roff.control("SH", ["FILES"]);
        for (file, what) in extras.files {
            roff.control("TP", [] as [&str; 0]);
            roff.text([italic(*file)]);
            roff.text([roman(*what)]);
        }
    }
    if !extras.examples.is_empty() {
        roff.control("SH", ["EXAMPLES"]);
        for (what, lines) in extras.examples {
            roff.control("PP", [] as [&str; 0]);
            roff.text([roman(*what)]);
            roff.control("PP", [] as [&str; 0]);
            roff.control("RS", ["4"]);
            roff.control("nf", [] as [&str; 0]);
            for line in lines.lines() {
                roff.text([roman(line)]);
            }
            roff.control("fi", [] as [&str; 0]);
            roff.control("RE", [] as [&str; 0]);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut see: Vec<String> = Vec::new();
    if !path.is_empty() {
        see.push("zeta-creds(1)".into());
    }
    let prefix = std::iter::once("zeta-creds")
        .chain(path.iter().copied())
        .collect::<Vec<_>>()
        .join("-");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        see.push(format!("{prefix}-{}(1)", sub.get_name()));
    }
    see.extend(["systemd-ask-password(1)", "systemd-creds(1)", "age(1)"].map(String::from));
    roff.text([roman(see.join(", "))]);
    out += &roff.to_roff();

    if cmd.get_version().is_some() {
        out += &mangen(&man, clap_mangen::Man::render_version_section)?;
    }
    Ok(out)
}

/// The SYNOPSIS: the forms a user types, with every option and its value
/// (`--out BLOB`, `[--persona NAME]`), a required choice as `(A | B)`, a
/// value among a few as `keep-modified|overwrite|backup`. One line per
/// subcommand on a page that has them.
fn synopsis(cmd: &clap::Command, path: &[&str]) -> Vec<Vec<clap_mangen::roff::Inline>> {
    use clap_mangen::roff::{bold, italic, roman};

    let name = std::iter::once("zeta-creds")
        .chain(path.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    if cmd.has_subcommands() {
        // One line per subcommand: what it requires, then [OPTIONS].
        return cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| {
                let mut sub_path = path.to_vec();
                sub_path.push(s.get_name());
                if s.has_subcommands() {
                    vec![
                        bold(format!("{name} {}", s.get_name())),
                        roman(" "),
                        italic("COMMAND"),
                        roman(" ..."),
                    ]
                } else {
                    form_line(s, &sub_path, false)
                }
            })
            .chain(std::iter::once(vec![bold(format!("{name} --help"))]))
            .collect();
    }
    vec![
        form_line(cmd, path, true),
        vec![bold(format!("{name} --help"))],
    ]
}

/// One form of a command without subcommands: its required options and
/// choices, then every optional one (`all`) or `[OPTIONS]`.
fn form_line(cmd: &clap::Command, path: &[&str], all: bool) -> Vec<clap_mangen::roff::Inline> {
    use clap_mangen::roff::{Inline, bold, italic, roman};

    let name = std::iter::once("zeta-creds")
        .chain(path.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let value = |a: &clap::Arg| -> Vec<Inline> {
        let possible: Vec<String> = a
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_owned())
            .collect();
        if !possible.is_empty() && a.get_action().takes_values() {
            vec![italic(possible.join("|"))]
        } else if a.get_action().takes_values() {
            let names = a
                .get_value_names()
                .map(|n| {
                    n.iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_else(|| a.get_id().as_str().to_uppercase());
            vec![italic(names)]
        } else {
            Vec::new()
        }
    };
    let form = |a: &clap::Arg| -> Vec<Inline> {
        let mut v = Vec::new();
        if let Some(long) = a.get_long() {
            v.push(bold(format!("--{long}")));
        } else if let Some(short) = a.get_short() {
            v.push(bold(format!("-{short}")));
        }
        let value = value(a);
        if !value.is_empty() {
            if !v.is_empty() {
                v.push(roman(" "));
            }
            if a.is_positional() && a.is_trailing_var_arg_set() {
                let mut value = value;
                value.push(roman("..."));
                v.extend(value);
            } else {
                v.extend(value);
            }
        }
        v
    };
    let visible: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .collect();
    // Exclusive groups of options: `(A | B)` when one is required, `[A | B]`
    // otherwise. clap gives every flattened struct a group too; only a
    // group that allows one member is a choice.
    let choices: Vec<(bool, Vec<&clap::Arg>)> = cmd
        .get_groups()
        .filter(|g| !(*g).clone().is_multiple())
        .map(|g| {
            let members: Vec<&clap::Arg> = g
                .get_args()
                .filter_map(|id| visible.iter().copied().find(|a| a.get_id() == id))
                .collect();
            (g.is_required_set(), members)
        })
        .filter(|(_, m)| m.len() > 1)
        .collect();
    let in_choice = |a: &clap::Arg| {
        choices
            .iter()
            .any(|(_, m)| m.iter().any(|x| x.get_id() == a.get_id()))
    };
    let mut line = vec![bold(name)];
    let push = |line: &mut Vec<Inline>, optional: bool, parts: Vec<Inline>| {
        line.push(roman(if optional { " [" } else { " " }));
        line.extend(parts);
        if optional {
            line.push(roman("]"));
        }
    };
    let choice = |members: &[&clap::Arg]| -> Vec<Inline> {
        let mut parts = Vec::new();
        for (i, a) in members.iter().enumerate() {
            if i > 0 {
                parts.push(roman(" | "));
            }
            parts.extend(form(a));
        }
        parts
    };
    // Required options, then required choices, then positionals, then
    // everything optional, in definition order.
    for a in visible
        .iter()
        .filter(|a| !a.is_positional() && a.is_required_set() && !in_choice(a))
    {
        push(&mut line, false, form(a));
    }
    for (_, members) in choices.iter().filter(|(required, _)| *required) {
        let mut parts = vec![roman("(")];
        parts.extend(choice(members));
        parts.push(roman(")"));
        push(&mut line, false, parts);
    }
    if all {
        for (_, members) in choices.iter().filter(|(required, _)| !*required) {
            push(&mut line, true, choice(members));
        }
        for a in visible
            .iter()
            .filter(|a| !a.is_positional() && !a.is_required_set() && !in_choice(a))
        {
            push(&mut line, true, form(a));
        }
    } else if visible
        .iter()
        .any(|a| !a.is_positional() && !a.is_required_set())
    {
        line.push(roman(" [OPTIONS]"));
    }
    for a in visible.iter().filter(|a| a.is_positional()) {
        push(&mut line, !a.is_required_set(), form(a));
    }
    line
}

/// The `zeta-creds*.1` files now in `dir`.
fn existing_pages(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("zeta-creds") && name.ends_with(".1") {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Write every page into `dir` and remove stale ones; returns the names
/// written.
fn write_man(dir: &Path) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let pages = render()?;
    for stale in existing_pages(dir)? {
        if !pages.iter().any(|(name, _)| *name == stale) {
            std::fs::remove_file(dir.join(&stale))?;
        }
    }
    for (name, bytes) in &pages {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(pages.into_iter().map(|(name, _)| name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed man pages are exactly what `cargo xtask man` writes
    /// now: none missing, none stale, none different.
    #[test]
    fn committed_man_pages_are_up_to_date() {
        let dir = man_dir();
        let pages = render().unwrap();
        let names: Vec<String> = pages.iter().map(|(n, _)| n.clone()).collect();
        let on_disk = existing_pages(&dir).unwrap_or_default();
        assert_eq!(
            on_disk, names,
            "man/ does not hold one page per command: run `cargo xtask man` and commit man/"
        );
        for (name, bytes) in &pages {
            let committed = std::fs::read(dir.join(name)).unwrap();
            assert!(
                committed == *bytes,
                "man/{name} is out of date with the clap definition: run `cargo xtask man` and commit man/"
            );
        }
        // Every subcommand has its page, and the top page lists the exit codes.
        for sub in [
            "bundle",
            "restore",
            "inspect",
            "verify",
            "diff",
            "rekey",
            "manifest",
            "manifest-check",
            "completions",
            "status",
            "install-step",
        ] {
            assert!(
                names.contains(&format!("zeta-creds-{sub}.1")),
                "{sub}: {names:?}"
            );
        }
    }

    /// The section names of a page, in order (`.SH NAME`, `.SH "SEE ALSO"`).
    fn sections(page: &str) -> Vec<String> {
        page.lines()
            .filter_map(|l| l.strip_prefix(".SH "))
            .map(|s| s.trim_matches('"').to_owned())
            .collect()
    }

    /// The body of section `name` of a page.
    fn section<'p>(page: &'p str, name: &str) -> &'p str {
        let head = if name.contains(' ') {
            format!(".SH \"{name}\"\n")
        } else {
            format!(".SH {name}\n")
        };
        let start = page.find(&head).unwrap_or_else(|| panic!("no {name}")) + head.len();
        let rest = &page[start..];
        &rest[..rest.find("\n.SH ").map_or(rest.len(), |e| e + 1)]
    }

    /// roff's escapes back to text (the ones these pages use).
    fn unroff(text: &str) -> String {
        text.replace("\\-", "-")
            .replace("\\*(Aq", "'")
            .replace("\\fB", "")
            .replace("\\fI", "")
            .replace("\\fR", "")
            .replace("\\(rs", "\\")
    }

    fn pages() -> Vec<(String, String)> {
        render()
            .unwrap()
            .into_iter()
            .map(|(n, b)| (n, String::from_utf8(b).unwrap()))
            .collect()
    }

    /// Every page has the sections a man page reader looks for, in the
    /// usual order, and none named "EXTRA" (clap_mangen's name for the
    /// `--help` epilogue, whose parts have their own sections here).
    #[test]
    fn every_page_has_its_sections() {
        for (name, page) in pages() {
            let have = sections(&page);
            assert!(!have.iter().any(|s| s == "EXTRA"), "{name}: {have:?}");
            let mut want = vec!["NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS"];
            if name == "zeta-creds.1" {
                want = vec![
                    "NAME",
                    "SYNOPSIS",
                    "DESCRIPTION",
                    "OPTIONS",
                    "SUBCOMMANDS",
                    "EXIT STATUS",
                    "ENVIRONMENT",
                    "FILES",
                    "EXAMPLES",
                ];
            } else if name != "zeta-creds-manifest.1" {
                want.push("EXAMPLES");
            }
            want.push("SEE ALSO");
            if name == "zeta-creds.1" {
                want.push("VERSION");
            }
            let mut at = 0;
            for w in &want {
                let found = have[at..].iter().position(|h| h == w);
                assert!(found.is_some(), "{name}: no {w} in order in {have:?}");
                at += found.unwrap() + 1;
            }
            let see = unroff(section(&page, "SEE ALSO"));
            for other in ["systemd-ask-password(1)", "systemd-creds(1)", "age(1)"] {
                assert!(see.contains(other), "{name}: SEE ALSO lacks {other}");
            }
            // Real forms: the command and its options, not clap's bare
            // `[--manifest]` without a value.
            let synopsis = unroff(section(&page, "SYNOPSIS"));
            assert!(synopsis.contains("zeta-creds"), "{name}: {synopsis}");
        }
        let top = pages()
            .into_iter()
            .find(|(n, _)| n == "zeta-creds.1")
            .unwrap()
            .1;
        let files = unroff(section(&top, "FILES"));
        for file in [
            "/etc/zeta/usb-uuid",
            "/var/lib/zeta-creds/state.json",
            "/etc/zeta/creds-manifest.toml",
            "/boot/zeta-creds.enc",
        ] {
            assert!(files.contains(file), "FILES lacks {file}");
        }
        let env = unroff(section(&top, "ENVIRONMENT"));
        for var in ["CREDENTIALS_DIRECTORY", "ZETA_CREDS_PASSPHRASE"] {
            assert!(env.contains(var), "ENVIRONMENT lacks {var}");
        }
        // First install, every boot, re-bundle, rekey, inspect.
        let examples = unroff(section(&top, "EXAMPLES"));
        for cmd in [
            "zeta-creds install-step --target",
            "zeta-creds restore --blob",
            "zeta-creds bundle --out",
            "zeta-creds rekey --blob",
            "zeta-creds inspect ",
        ] {
            assert!(examples.contains(cmd), "EXAMPLES lack {cmd:?}");
        }
        let bundle = pages()
            .into_iter()
            .find(|(n, _)| n == "zeta-creds-bundle.1")
            .unwrap()
            .1;
        let synopsis = unroff(section(&bundle, "SYNOPSIS"));
        assert!(
            synopsis.contains("--out BLOB (--usb-uuid UUID | --usb-uuid-file FILE)")
                && synopsis.contains("[--manifest FILE]"),
            "{synopsis}"
        );
    }

    /// EXIT STATUS lists exactly the `Exit` enum, in its order, with each
    /// status's code, name and meaning (install-step has its own table).
    #[test]
    fn exit_status_is_the_exit_enum() {
        for (name, page) in pages() {
            if name == "zeta-creds-install-step.1" {
                continue;
            }
            let body = section(&page, "EXIT STATUS");
            let rows: Vec<(String, String)> = body
                .split(".TP\n")
                .skip(1)
                .map(|row| {
                    let (tag, meaning) = row.split_once('\n').unwrap();
                    (unroff(tag), unroff(meaning.trim_end()))
                })
                .collect();
            let want: Vec<(String, String)> = Exit::ALL
                .iter()
                .map(|e| {
                    (
                        format!("{}  {}", e.code(), e.name()),
                        e.meaning().to_owned(),
                    )
                })
                .collect();
            assert_eq!(rows, want, "{name}");
        }
    }

    /// Every example command parses with the clap definition the binary
    /// uses: no example names an option that does not exist.
    #[test]
    fn examples_parse() {
        let mut checked = 0;
        for path in [
            vec![],
            vec!["bundle"],
            vec!["restore"],
            vec!["inspect"],
            vec!["verify"],
            vec!["diff"],
            vec!["status"],
            vec!["rekey"],
            vec!["manifest"],
            vec!["manifest", "check"],
            vec!["completions"],
            vec!["install-step"],
        ] {
            for (_, lines) in pages::extras(&path).examples {
                for line in lines.lines() {
                    let words: Vec<&str> = line
                        .split_whitespace()
                        .take_while(|w| !w.starts_with('>'))
                        .collect();
                    assert_eq!(words[0], "zeta-creds", "{line}");
                    if let Err(e) = cli::command().try_get_matches_from(&words) {
                        panic!("example {line:?} does not parse: {e}");
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked >= 20, "{checked}");
    }

    /// The zeta-creds command lines of a Markdown text: every line of a
    /// fenced block that runs `zeta-creds` (in a `console` block only after
    /// a `#` or `$` prompt; joined over `\\` continuations), and every
    /// inline code span that starts with `zeta-creds `. Returns (line,
    /// complete): a block line must be a complete command, an inline span
    /// may be a mention (`zeta-creds bundle`) that leaves required options
    /// out.
    fn doc_commands(text: &str) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let mut in_block = false;
        // In a `console` block only prompted lines are commands; the rest
        // is their output.
        let mut console = false;
        let mut pending = String::new();
        for line in text.lines() {
            if let Some(lang) = line.trim_start().strip_prefix("```") {
                in_block = !in_block;
                console = lang.trim() == "console";
                continue;
            }
            if in_block {
                let line = line.trim();
                let prompted = line.strip_prefix("# ").or_else(|| line.strip_prefix("$ "));
                if console && prompted.is_none() && pending.is_empty() {
                    continue;
                }
                let line = prompted.unwrap_or(line);
                if pending.is_empty() && !line.starts_with("zeta-creds ") {
                    continue;
                }
                match line.strip_suffix('\\') {
                    Some(head) => pending += head,
                    None => {
                        pending += line;
                        out.push((std::mem::take(&mut pending), true));
                    }
                }
            }
        }
        // Inline spans, which Markdown lets run over a line break.
        let flat = text.replace('\n', " ");
        for (i, span) in flat.split('`').enumerate() {
            if i % 2 == 1 && span.starts_with("zeta-creds ") {
                out.push((span.to_owned(), false));
            }
        }
        out
    }

    /// Every `zeta-creds` command in the README and docs/ parses with the
    /// clap definition: the troubleshooting page, the quick start and the
    /// reference name no option, value or subcommand that does not exist.
    #[test]
    fn doc_commands_parse() {
        use clap::error::ErrorKind;
        let root = man_dir().parent().unwrap().to_owned();
        let mut checked = 0;
        for doc in ["README.md", "docs/USAGE.md", "docs/TROUBLESHOOTING.md"] {
            let text = std::fs::read_to_string(root.join(doc)).unwrap();
            for (line, complete) in doc_commands(&text) {
                // Up to a comment, a redirection or a pipe.
                let words: Vec<&str> = line
                    .split_whitespace()
                    .take_while(|w| !w.starts_with('#') && !w.starts_with('>') && *w != "|")
                    .collect();
                if !complete
                    && words.iter().any(|w| {
                        w.len() > 2 && w.chars().all(|c| c.is_ascii_uppercase() || c == '-')
                    })
                {
                    // A placeholder in prose (`zeta-creds COMMAND --help`).
                    continue;
                }
                match cli::command().try_get_matches_from(&words) {
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
                        ) => {}
                    Err(e) if !complete && e.kind() == ErrorKind::MissingRequiredArgument => {}
                    Err(e) => panic!("{doc}: {line:?} does not parse:\n{e}"),
                }
                checked += 1;
            }
        }
        assert!(checked >= 40, "only {checked} commands found");
    }

    /// The task writes into a directory and removes a stale page.
    #[test]
    fn write_man_removes_stale_pages() {
        let dir = std::env::temp_dir().join(format!("xtask-man-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("zeta-creds-gone.1"), "stale").unwrap();
        std::fs::write(dir.join("other.1"), "not ours").unwrap();
        let written = write_man(&dir).unwrap();
        assert!(written.contains(&"zeta-creds-rekey.1".to_owned()));
        assert!(!dir.join("zeta-creds-gone.1").exists());
        assert!(dir.join("other.1").exists());
        assert_eq!(existing_pages(&dir).unwrap(), written);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
