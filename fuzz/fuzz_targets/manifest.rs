//! Fuzz the manifest parser (`Manifest::parse`): any UTF-8 text.
//!
//! * No panic, including in the error message (line numbers from spans).
//! * What it accepts is what the rest of zeta-creds relies on: a valid
//!   user name, at least one component per entry, no empty, `.` or `..`
//!   literal component, globs that never match `.`, `..` or a name with a
//!   `/`, and no two entries with the same anchor and path.
#![no_main]

use std::collections::HashSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use zeta_creds::envelope::entries_validate_name;
use zeta_creds::manifest::{Component, Manifest};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let m = match Manifest::parse(text, Path::new("fuzz.toml")) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert!(entries_validate_name(&m.user).is_ok());
    let mut seen = HashSet::new();
    for e in &m.entries {
        assert!(!e.components.is_empty(), "{}", e.display);
        let mut key = vec![format!("{:?}", e.anchor)];
        for c in &e.components {
            match c {
                Component::Literal(s) => {
                    assert!(!s.is_empty() && s != "." && s != ".." && !s.contains('/'));
                    key.push(s.clone());
                }
                Component::Glob(p) => {
                    for name in [".", "..", "", "a/b"] {
                        assert!(!p.matches(name), "{} matched {name:?}", p.as_str());
                    }
                    let _ = p.matches("x");
                    key.push(p.as_str().to_owned());
                }
            }
        }
        assert!(seen.insert(key), "duplicate entry {}", e.display);
        let _ = e.applies_to("");
        let _ = e.exclude.matching("a/b/c");
    }
    let _ = m.personas();
});
