//! Shell completions, tested the way a shell uses them (issue 20): the
//! generated script is loaded into a real bash (and fish, where installed)
//! (and zsh and fish) and asked for the candidates of a subcommand's flags, a flag's values
//! and a nested subcommand. `clap_complete`'s bash script completed nothing
//! after a subcommand for a binary whose name has a hyphen
//! (clap-rs/clap#6421): its case labels never matched the state its loop
//! built.

mod common;

use std::path::Path;
use std::process::Command;

use common::World;

/// The script `zeta-creds completions SHELL` prints, written to a file.
fn script(w: &World, shell: &str) -> std::path::PathBuf {
    let out = w.cmd().args(["completions", shell]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = w.path(&format!("zeta-creds.{shell}"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// What bash offers for the command line `words` (the last word is the
/// one being completed), through the function the script registers.
fn bash_candidates(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        r#"set -u
source "$1"
f=$(complete -p zeta-creds | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
[ -n "$f" ] || {{ echo "no completion function registered" >&2; exit 1; }}
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
prev=""
[ "$COMP_CWORD" -gt 0 ] && prev=${{COMP_WORDS[COMP_CWORD-1]}}
"$f" zeta-creds "${{COMP_WORDS[COMP_CWORD]}}" "$prev"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        words = quoted.join(" ")
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program, "bash"])
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

fn has_all(got: &[String], want: &[&str], line: &str) {
    for w in want {
        assert!(
            got.iter().any(|g| g == w),
            "completing `{line}` must offer {w}; got {got:?}"
        );
    }
}

#[test]
fn bash_completes_subcommand_flags_values_and_nested_subcommands() {
    let w = World::new();
    let s = script(&w, "bash");
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["zeta-creds", ""],
            &["bundle", "restore", "manifest", "inspect", "status"],
        ),
        (
            &["zeta-creds", "status", "--"],
            &["--target-root", "--manifest", "--persona", "--json"],
        ),
        (
            &["zeta-creds", "restore", "--"],
            &["--blob", "--dry-run", "--target-root"],
        ),
        (&["zeta-creds", "bundle", "--ma"], &["--manifest"]),
        (
            &["zeta-creds", "restore", "--on-conflict", ""],
            &["keep-modified", "overwrite", "backup"],
        ),
        (&["zeta-creds", "manifest", ""], &["check"]),
        (
            &["zeta-creds", "manifest", "check", "--"],
            &["--source-root", "--syntax-only"],
        ),
        (&["zeta-creds", "completions", ""], &["bash", "zsh", "fish"]),
    ];
    for (words, want) in cases {
        let got = bash_candidates(&s, words);
        has_all(&got, want, &words.join(" "));
    }
    // Only what was asked for: `bundle --ma` offers --manifest, not every flag.
    let got = bash_candidates(&s, &["zeta-creds", "bundle", "--ma"]);
    assert!(
        got.iter().all(|g| g.starts_with("--ma")),
        "bundle --ma: {got:?}"
    );
}

/// fish loads the script and `complete -C` answers as an interactive TAB
/// would. fish is installed by scripts/setup-debian.sh; where it is not,
/// this test fails rather than passing unseen.
#[test]
fn fish_completes_subcommand_flags_values_and_nested_subcommands() {
    let w = World::new();
    let s = script(&w, "fish");
    let ask = |line: &str| -> Vec<String> {
        let out = Command::new("fish")
            .args(["--no-config", "-c"])
            .arg(format!("source {}; complete -C '{line}'", s.display()))
            .output()
            .expect("fish is installed (scripts/setup-debian.sh)");
        // fish reports a script line it cannot parse on stderr and goes on.
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "fish: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_owned())
            .collect()
    };
    has_all(
        &ask("zeta-creds restore --"),
        &["--blob", "--dry-run"],
        "restore --",
    );
    has_all(
        &ask("zeta-creds bundle --ma"),
        &["--manifest"],
        "bundle --ma",
    );
    has_all(
        &ask("zeta-creds restore --on-conflict "),
        &["keep-modified", "overwrite", "backup"],
        "restore --on-conflict",
    );
    has_all(&ask("zeta-creds manifest "), &["check"], "manifest");
    has_all(
        &ask("zeta-creds status --"),
        &["--target-root", "--manifest", "--json"],
        "status --",
    );
    has_all(
        &ask("zeta-creds manifest check --"),
        &["--source-root", "--syntax-only"],
        "manifest check --",
    );
}

/// A zsh session on a pseudo-terminal (zsh/zpty) with the script in its
/// `fpath`: the line is typed, TAB pressed, and every candidate compsys
/// adds is printed (compadd wrapped), as in an interactive shell.
const ZSH_CAPTURE: &str = r#"zmodload zsh/zpty || exit 3
zpty z zsh -f -i
zpty -w z "PS1=''; fpath=($1 \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z 'compadd () { builtin compadd -O __hits "$@"; print -rl -- "<<"${^__hits}">>"; builtin compadd "$@" }'
zpty -w z 'bindkey "^I" complete-word'
zpty -w z "$2"$'\t'
zpty -w z $'\x15print -r "<<END>>"'
while zpty -r z line; do
  [[ $line == *'<<END>>'* && $line != *print* ]] && break
  print -r -- "$line"
done
zpty -d z
"#;

#[test]
fn zsh_completes_subcommand_flags_values_and_nested_subcommands() {
    let w = World::new();
    let fpath = w.path("zsh-functions");
    std::fs::create_dir_all(&fpath).unwrap();
    std::fs::rename(script(&w, "zsh"), fpath.join("_zeta-creds")).unwrap();
    let harness = w.path("capture.zsh");
    std::fs::write(&harness, ZSH_CAPTURE).unwrap();
    let ask = |line: &str| -> Vec<String> {
        let out = Command::new("timeout")
            .args(["30", "zsh", "-f"])
            .arg(&harness)
            .arg(&fpath)
            .arg(line)
            .output()
            .expect("zsh is installed (scripts/setup-debian.sh)");
        assert!(
            out.status.success(),
            "zsh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut got: Vec<String> = text
            .split("<<")
            .skip(1)
            .filter_map(|s| s.split_once(">>").map(|(c, _)| c.to_owned()))
            .filter(|c| !c.contains("__hits") && c != "END")
            .collect();
        got.sort();
        got.dedup();
        got
    };
    has_all(
        &ask("zeta-creds restore --"),
        &["--blob", "--dry-run"],
        "restore --",
    );
    assert_eq!(ask("zeta-creds bundle --ma"), ["--manifest"], "bundle --ma");
    assert_eq!(
        ask("zeta-creds restore --on-conflict "),
        ["backup", "keep-modified", "overwrite"],
        "restore --on-conflict offers the three policies and nothing else"
    );
    has_all(&ask("zeta-creds manifest "), &["check"], "manifest");
    has_all(
        &ask("zeta-creds manifest check --s"),
        &["--source-root", "--syntax-only"],
        "manifest check --s",
    );
}
