//! The envelope is pure: bytes in, bytes out (ARCHITECTURE and FORMAT.md).
//!
//! This reads every source file under `src/envelope/` and fails if its code
//! (comments and string literals aside) names anything that reaches the
//! filesystem, the environment, a process, a thread, a clock, a terminal,
//! the rest of this crate, or a crate that does: `std::fs`, `std::env`,
//! `std::process`, `std::thread`, `std::time`, `std::net`, `std::os`,
//! stdin/stdout/stderr, printing macros, `env!`, rustix, rpassword, clap,
//! signal-hook, libc. `use` trees are expanded (`use std::{fs, io}`), paths
//! are matched with any spacing (`std :: fs`), whether imported or written
//! in full, and renaming a crate root (`use std as s`) is refused too.
//!
//! The one operating-system call the envelope makes is its random number
//! generator (`getrandom`, for file keys, salts and nonces): it is allowed
//! in one function, `os_random` in `envelope/mod.rs`, and nowhere else.

use std::path::{Path, PathBuf};

/// Path prefixes the envelope must not name.
const FORBIDDEN_PATHS: &[&str] = &[
    "std::fs",
    "std::env",
    "std::process",
    "std::thread",
    "std::time",
    "std::net",
    "std::os",
    "std::io::stdin",
    "std::io::stdout",
    "std::io::stderr",
    "std::io::Stdin",
    "std::io::Stdout",
    "std::io::Stderr",
    "core::time",
    "rustix",
    "rpassword",
    "clap",
    "clap_complete",
    "signal_hook",
    "libc",
    "nix",
    "tempfile",
    "crate::bundle",
    "crate::cleanup",
    "crate::cli",
    "crate::diff",
    "crate::fsx",
    "crate::manifest",
    "crate::msg",
    "crate::passphrase",
    "crate::passwd",
    "crate::quality",
    "crate::readahead",
    "crate::rekey",
    "crate::restore",
    "crate::state",
    "crate::sys",
    "crate::usb",
];

/// Macros the envelope must not call: printing and compile-time environment.
const FORBIDDEN_MACROS: &[&str] = &[
    "print",
    "println",
    "eprint",
    "eprintln",
    "dbg",
    "env",
    "option_env",
];

/// Crate roots that must not be renamed (a rename would hide the paths).
const ROOTS: &[&str] = &["std", "core", "alloc", "crate"];

/// Source text with comments, string literals and char literals blanked
/// out, so that only code is checked.
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(k).copied().unwrap_or('\0');
        if at(i) == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if at(i) == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if at(i) == 'r'
            && (at(i + 1) == '"' || at(i + 1) == '#')
            && !at(i.wrapping_sub(1)).is_alphanumeric()
        {
            // Raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) != '"' {
                out.push(c[i]);
                i += 1;
                continue;
            }
            j += 1;
            'raw: while j < c.len() {
                if c[j] == '"' && (1..=hashes).all(|h| at(j + h) == '#') {
                    j += 1 + hashes;
                    break 'raw;
                }
                j += 1;
            }
            i = j;
            out.push_str("\"\"");
        } else if at(i) == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if at(i) == '\'' && at(i + 1) == '\\' {
            // Escaped char literal: skip to its closing quote.
            i += 3;
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else if at(i) == '\'' && at(i + 2) == '\'' {
            i += 3;
            out.push_str("' '");
        } else {
            // A lifetime's quote, or any other code.
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Every `use` tree in `code`, expanded to full paths without spaces:
/// `use std::{fs, io::{self, Read}};` gives `std::fs`, `std::io`,
/// `std::io::Read`. A rename keeps its `as`: `std as s`.
fn use_paths(code: &str) -> Vec<String> {
    let compact: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut paths = Vec::new();
    let mut rest = compact.as_str();
    while let Some(at) = find_word(rest, "use") {
        let after = &rest[at + 3..];
        let end = after.find(';').unwrap_or(after.len());
        let tree: String = after[..end]
            .replace(" as ", "\u{1}")
            .split_whitespace()
            .collect::<String>()
            .replace('\u{1}', " as ");
        expand("", tree.trim_start_matches("::"), &mut paths);
        rest = &after[end..];
    }
    paths
}

/// Expand one use tree under `prefix` into `out`.
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let join = |p: &str, s: &str| {
        if p.is_empty() {
            s.to_owned()
        } else if s == "self" {
            p.to_owned()
        } else if let Some(renamed) = s.strip_prefix("self as ") {
            format!("{p} as {renamed}")
        } else {
            format!("{p}::{s}")
        }
    };
    match tree.find('{') {
        None => out.push(join(prefix, tree)),
        Some(open) => {
            let head = tree[..open].trim_end_matches("::");
            let prefix = if head.is_empty() {
                prefix.to_owned()
            } else {
                join(prefix, head)
            };
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let mut depth = 0;
            let mut start = 0;
            for (k, ch) in inner.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&prefix, &inner[start..k], out);
                        start = k + 1;
                    }
                    _ => {}
                }
            }
            if !inner[start..].is_empty() {
                expand(&prefix, &inner[start..], out);
            }
        }
    }
}

/// The byte offset of `word` in `s` as a whole word.
fn find_word(s: &str, word: &str) -> Option<usize> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(k) = s[from..].find(word) {
        let at = from + k;
        let before = s[..at].chars().next_back();
        let after = s[at + word.len()..].chars().next();
        if !before.is_some_and(ident) && !after.is_some_and(ident) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// True if `path` is `prefix` or starts with `prefix::`.
fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with("::") || rest.starts_with(" as "))
}

/// What is wrong with one file's code, one line per finding.
fn violations(name: &str, src: &str) -> Vec<String> {
    let code = code_only(src);
    let mut found = Vec::new();
    for path in use_paths(&code) {
        let path = path.trim_start_matches("::");
        for bad in FORBIDDEN_PATHS {
            if under(path, bad) {
                found.push(format!("{name}: `use {path}` reaches {bad}"));
            }
        }
        for root in ROOTS {
            if path.starts_with(&format!("{root} as ")) {
                found.push(format!("{name}: `use {path}` renames a crate root"));
            }
        }
        if under(path, "getrandom") {
            found.push(format!(
                "{name}: `use {path}`: call getrandom only in os_random"
            ));
        }
    }
    // Paths written in full, with any spacing around `::`.
    let joined: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    let squeezed = joined.replace(" ::", "::").replace(":: ", "::");
    for bad in FORBIDDEN_PATHS {
        let mut from = 0;
        while let Some(k) = find_word(&squeezed[from..], bad) {
            let at = from + k;
            // `foo::std::fs` is not `std::fs`; `::std::fs` is.
            let before = squeezed[..at].trim_end_matches("::");
            let qualified = squeezed[..at].ends_with("::")
                && before
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
            // A crate's bare name is a path only when `::` follows.
            let is_path = bad.contains("::") || squeezed[at + bad.len()..].starts_with("::");
            if is_path && !qualified {
                found.push(format!("{name}: names {bad}"));
            }
            from = at + bad.len();
        }
    }
    for mac in FORBIDDEN_MACROS {
        let mut from = 0;
        while let Some(k) = find_word(&squeezed[from..], mac) {
            let at = from + k;
            let next = squeezed[at + mac.len()..].trim_start();
            if next.starts_with('!') && !next.starts_with("!=") {
                found.push(format!("{name}: calls {mac}!"));
            }
            from = at + mac.len();
        }
    }
    // getrandom, in one function of mod.rs only: the one call must sit
    // inside `fn os_random` (the last `fn` before it).
    let calls = squeezed.matches("getrandom::").count();
    let allowed = name == "mod.rs"
        && calls == 1
        && squeezed.find("getrandom::").is_some_and(|g| {
            squeezed[..g]
                .rfind("fn ")
                .is_some_and(|f| squeezed[f..].starts_with("fn os_random("))
        });
    if calls > 0 && !allowed {
        found.push(format!(
            "{name}: calls getrandom outside envelope::os_random ({calls} times)"
        ));
    }
    found
}

fn envelope_sources() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/envelope");
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_envelope_does_no_file_env_process_thread_or_clock_work() {
    let files = envelope_sources();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["mod.rs", "header.rs", "keys.rs", "stream.rs", "entries.rs"] {
        assert!(
            names.iter().any(|n| n == expected),
            "src/envelope/{expected} not found: the check would pass on nothing ({names:?})"
        );
    }
    let mut found = Vec::new();
    for (path, name) in files.iter().zip(&names) {
        let src = std::fs::read_to_string(path).unwrap();
        found.extend(violations(name, &src));
    }
    assert!(
        found.is_empty(),
        "the envelope is not pure:\n{}",
        found.join("\n")
    );
}

/// The checker itself: each of these must be caught, and the clean ones
/// must not be.
#[test]
fn the_purity_check_catches_what_it_claims_to() {
    let caught = [
        "use std::fs;",
        "use std::fs::File;",
        "use std::{fs, io};",
        "use std::{\n    io::{self, Read},\n    process::Command,\n};",
        "use std::{io, sync::{Arc, mpsc}, thread};",
        "use ::std::env;",
        "use std::time::SystemTime;",
        "use std as s;",
        "use std::{self as s};",
        "use crate::fsx::AtomicFile;",
        "use crate::{envelope, sys};",
        "use rustix::fs::openat;",
        "use clap::Parser;",
        "use rpassword::prompt_password;",
        "fn f() { let _ = std::fs::read(\"x\"); }",
        "fn f() { std :: thread :: spawn(|| ()); }",
        "fn f() { ::std::process::exit(1); }",
        "fn f() { let _ = std::time::SystemTime::now(); }",
        "fn f() { let _ = std::io::stdin(); }",
        "fn f() { println!(\"x\"); }",
        "fn f() { eprintln !(\"x\"); }",
        "const X: &str = env!(\"HOME\");",
        "fn f() { let _ = rustix::process::getpid(); }",
        "fn f(b: &mut [u8]) { getrandom::fill(b).unwrap(); }",
        "use getrandom::fill;",
    ];
    for src in caught {
        assert!(!violations("x.rs", src).is_empty(), "not caught: {src}");
    }
    let clean = [
        "use std::io::{self, Read, Write};",
        "use std::collections::HashSet;",
        "use super::{Error, read_full};",
        "use crate::envelope::FileKey;",
        "// std::fs and std::thread are not used here\nfn f() {}",
        "/* use std::fs; /* nested */ still a comment */ fn f() {}",
        "const M: &str = \"std::fs::read and println!(x)\";",
        "const R: &str = r#\"use std::thread;\"#;",
        "fn f<'a>(x: &'a str) -> char { let _ = '\"'; 'x' }",
        "fn f() { let _ = my::std::fs::thing; }",
        "fn f() { let environment = 1; let _ = environment; }",
        "fn f(env: u8) -> bool { env != 0 }",
        "fn f(clap: u8) -> u8 { clap }",
        "/// `std::env` is not read\nfn f() {}",
        "pub(crate) fn os_random(buf: &mut [u8]) -> Result<(), E> {\n    getrandom::fill(buf).map_err(E::from)\n}",
    ];
    // In mod.rs, getrandom only inside os_random, and only once.
    for src in [
        "fn os_random(b: &mut [u8]) {}\nfn salt(b: &mut [u8]) { getrandom::fill(b).unwrap(); }",
        "fn os_random(b: &mut [u8]) { getrandom::fill(b).unwrap(); getrandom::fill(b).unwrap(); }",
    ] {
        assert!(!violations("mod.rs", src).is_empty(), "not caught: {src}");
    }
    for src in clean {
        let name = if src.contains("os_random") {
            "mod.rs"
        } else {
            "x.rs"
        };
        assert_eq!(
            violations(name, src),
            Vec::<String>::new(),
            "flagged: {src}"
        );
    }
}
