//! `--json` (issue 20 item 2): every command that reports prints one JSON
//! document on stdout, on success and on failure, and docs/JSON.md is its
//! schema. Each run here is checked two ways:
//!
//! * the keys of every object, nested ones too, are exactly those the
//!   matching table of docs/JSON.md lists (a key added, renamed or dropped
//!   on either side fails), and every table is reached by some run;
//! * the document reads back into the struct of `render/schema.rs`
//!   (compiled here by `#[path]`) with unknown fields denied, so every value
//!   has its documented type, and its `exit_code` is the process's.

mod common;

#[allow(dead_code)]
#[path = "../src/bin/zeta-creds/render/schema.rs"]
mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde::de::DeserializeOwned;
use serde_json::Value;

use common::*;
use schema::*;

/// The tables of docs/JSON.md: for each heading's backquoted names
/// (`restore.entries[]`), the keys in the first column of its table.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/JSON.md");
    let text = fs::read_to_string(path).unwrap();
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            current = heading
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            for id in &current {
                assert!(
                    tables.insert(id.clone(), BTreeSet::new()).is_none(),
                    "docs/JSON.md documents {id} twice"
                );
            }
        } else if line.starts_with("## ") {
            current.clear();
        } else if let Some(row) = line.strip_prefix("| `") {
            let key = row.split('`').next().unwrap().to_owned();
            for id in &current {
                tables.get_mut(id).unwrap().insert(key.clone());
            }
        }
    }
    tables
}

/// Checks documents against docs/JSON.md and remembers which tables were
/// reached.
struct Schema {
    tables: BTreeMap<String, BTreeSet<String>>,
    reached: BTreeSet<String>,
}

/// The table every document's first keys are in.
const EVERY: &str = "(every document)";

impl Schema {
    fn new() -> Schema {
        Schema {
            tables: documented(),
            reached: BTreeSet::new(),
        }
    }

    /// The object `v` has exactly the keys of table `id` (plus `extra`),
    /// and so does every object inside it.
    fn keys(&mut self, id: &str, v: &Value, extra: &BTreeSet<String>) {
        let Some(table) = self.tables.get(id) else {
            panic!("docs/JSON.md has no table `{id}` for {v}");
        };
        let mut want: BTreeSet<String> = table.clone();
        want.extend(extra.iter().cloned());
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("{id}: not an object: {v}"));
        let have: BTreeSet<String> = obj.keys().cloned().collect();
        assert_eq!(have, want, "keys of {id} differ from docs/JSON.md: {v}");
        self.reached.insert(id.to_owned());
        for (k, value) in obj {
            let child = if extra.contains(k) || id == EVERY {
                k.clone()
            } else {
                format!("{id}.{k}")
            };
            match value {
                Value::Object(_) => self.keys(&child, value, &BTreeSet::new()),
                Value::Array(items) => {
                    for item in items.iter().filter(|i| i.is_object()) {
                        self.keys(&format!("{child}[]"), item, &BTreeSet::new());
                    }
                }
                _ => {}
            }
        }
    }

    /// `out`'s stdout is one document for `command`, in its documented
    /// shape and type `T`, ending as the process did.
    fn report<T: DeserializeOwned>(&mut self, command: &str, out: &Output) -> Value {
        let v = one_document(out);
        let every = self.tables[EVERY].clone();
        self.keys(command, &v, &every);
        self.reached.insert(EVERY.to_owned());
        serde_json::from_value::<T>(v.clone())
            .unwrap_or_else(|e| panic!("{command}: not the documented types ({e}): {v}"));
        v
    }

    /// `out` failed before it had a report: its stdout is the failure
    /// document, with `exit_name` for its status.
    fn failure(&mut self, out: &Output, exit_name: &str) -> Value {
        let v = one_document(out);
        self.keys(EVERY, &v, &BTreeSet::new());
        let doc: FailureDoc = serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("not a failure document ({e}): {v}"));
        assert_eq!(doc.exit_name, exit_name, "{v}");
        assert!(!doc.error.message.is_empty());
        v
    }
}

/// stdout is exactly one JSON object (nothing before or after it), whose
/// `exit_code` is the process's and `version` is 1.
fn one_document(out: &Output) -> Value {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        v["exit_code"].as_i64(),
        out.status.code().map(i64::from),
        "{v}"
    );
    assert_eq!(v["version"], JSON_VERSION, "{v}");
    v
}

fn run(w: &World, args: &[&str]) -> Output {
    w.cmd().args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every command, with --json, on success and on failure.
#[test]
fn every_command_prints_the_documented_json() {
    let mut schema = Schema::new();
    let w = World::new();
    w.populate();
    let (blob, manifest, src, dst) = (w.blob(), w.manifest(), w.src(), w.dst());

    // bundle: a first blob, then one over it (kept as BLOB.prev).
    let out = w.bundle_with(PASS, &["--json"]);
    let v = schema.report::<BundleDoc>("bundle", &out);
    assert_eq!(v["exit_name"], "success");
    assert_eq!(v["blob"], s(&blob));
    assert_eq!(v["counts"]["files"], 8, "{v}");
    assert!(v["kept_previous"].is_null());
    let out = w.bundle_with(PASS, &["--json"]);
    let v = schema.report::<BundleDoc>("bundle", &out);
    assert_eq!(v["generation"], 2, "{v}");
    assert_eq!(v["kept_previous"]["generation"], 1, "{v}");
    // bundle refused: no source root (exit 6), before any passphrase.
    let out = run(
        &w,
        &[
            "bundle",
            "--json",
            "--manifest",
            s(&manifest),
            "--source-root",
            "/nonexistent",
            "--out",
            s(&blob),
            "--usb-uuid",
            UUID,
            "--work-factor",
            "10",
        ],
    );
    schema.failure(&out, "input-missing");

    // inspect.
    let out = run(&w, &["inspect", "--json", s(&blob)]);
    let v = schema.report::<InspectDoc>("inspect", &out);
    assert_eq!(v["authenticated"], false);
    assert!(v["persona"].is_null(), "an empty persona is null: {v}");
    assert_eq!(v["host"], HOST);
    let created = v["created"].as_str().unwrap().to_owned();
    let out = run(&w, &["inspect", "--json", "/nonexistent.enc"]);
    let v = schema.failure(&out, "input-missing");
    assert!(v["error"]["hint"].is_string(), "{v}");

    // verify --list, and with a wrong passphrase.
    let pf = w.pass_file(PASS);
    let out = run(
        &w,
        &[
            "verify",
            "--json",
            "--list",
            "--blob",
            s(&blob),
            "--passphrase-file",
            s(&pf),
        ],
    );
    let v = schema.report::<VerifyDoc>("verify", &out);
    assert_eq!(v["created"], created.as_str(), "the same RFC 3339 date");
    assert_eq!(v["user"], "zeta");
    assert_eq!(
        v["counts"]["entries"].as_u64().unwrap(),
        v["entries"].as_array().unwrap().len() as u64
    );
    assert!(
        v["entries"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with(['/', '~'])
    );
    let pf = w.pass_file("not the passphrase at all");
    let out = run(
        &w,
        &[
            "verify",
            "--json",
            "--blob",
            s(&blob),
            "--passphrase-file",
            s(&pf),
        ],
    );
    schema.failure(&out, "wrong-passphrase");

    // restore, then --if-new (the blob already restored).
    let restore = |extra: &[&str]| {
        let pf = w.pass_file(PASS);
        let mut args = vec!["restore", "--json", "--blob", s(&blob)];
        args.extend(["--target-root", s(&dst), "--passphrase-file", s(&pf)]);
        args.extend(extra);
        run(&w, &args)
    };
    let out = restore(&["--usb-uuid", UUID]);
    let v = schema.report::<RestoreDoc>("restore", &out);
    assert!(v["if_new"].is_null());
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(
        v["counts"]["entries"].as_u64().unwrap(),
        entries.len() as u64
    );
    assert!(
        entries.iter().any(|e| e["path"] == "~/.config/gh/hosts.yml"
            && e["destination"] == "/home/zeta/.config/gh/hosts.yml"),
        "{v}"
    );
    let out = restore(&["--usb-uuid", UUID, "--if-new"]);
    let v = schema.report::<RestoreDoc>("restore", &out);
    assert_eq!(v["if_new"]["already_restored"], true, "{v}");
    assert!(v["if_new"]["reason"].is_null());
    // Bound to another stick: exit 4, asked nothing.
    let out = restore(&["--usb-uuid", "0000-0000"]);
    let v = schema.failure(&out, "other-usb");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("0000-0000")
    );

    // status: fresh, then without a state record.
    let out = run(
        &w,
        &[
            "status",
            "--json",
            "--target-root",
            s(&dst),
            "--manifest",
            s(&manifest),
        ],
    );
    let v = schema.report::<StatusDoc>("status", &out);
    assert_eq!(v["fresh"], true, "{v}");
    // (The source root has a record too: the bundle on it raised one.)
    let bare = w.path("bare-root");
    std::fs::create_dir_all(&bare).unwrap();
    let out = run(&w, &["status", "--json", "--target-root", s(&bare)]);
    schema.failure(&out, "input-missing");

    // diff: identical, then a changed file (exit 10, not a failure).
    let diff = |w: &World| {
        let pf = w.pass_file(PASS);
        run(
            w,
            &[
                "diff",
                "--json",
                "--blob",
                s(&blob),
                "--manifest",
                s(&manifest),
                "--source-root",
                s(&src),
                "--passphrase-file",
                s(&pf),
            ],
        )
    };
    let v = schema.report::<DiffDoc>("diff", &diff(&w));
    assert_eq!(v["identical"], true, "{v}");
    fs::write(src.join("etc/zeta/hook.sh"), "#!/bin/sh\nfalse\n").unwrap();
    let v = schema.report::<DiffDoc>("diff", &diff(&w));
    assert_eq!(v["exit_name"], "differs");
    assert!(v["error"].is_null());
    assert_eq!(v["counts"]["content"], 1, "{v}");
    assert_eq!(v["changes"][0]["path"], "/etc/zeta/hook.sh");
    // A manifest for another user (root's entries only).
    let other = w.path("root.toml");
    fs::write(
        &other,
        "version = 1\nuser = \"root\"\n\n[[entry]]\npath = \"/etc/zeta\"\n",
    )
    .unwrap();
    let pf = w.pass_file(PASS);
    let out = run(
        &w,
        &[
            "diff",
            "--json",
            "--blob",
            s(&blob),
            "--manifest",
            s(&other),
            "--source-root",
            s(&src),
            "--passphrase-file",
            s(&pf),
        ],
    );
    let v = schema.report::<DiffDoc>("diff", &out);
    assert_eq!(v["user_changed"]["blob"], "zeta", "{v}");
    assert_eq!(v["user_changed"]["manifest"], "root", "{v}");
    let out = run(
        &w,
        &[
            "diff",
            "--json",
            "--blob",
            "/nonexistent.enc",
            "--manifest",
            s(&manifest),
        ],
    );
    schema.failure(&out, "input-missing");

    // rekey to a new stick, keeping the passphrase.
    let rekey = |pass: &str| {
        let pf = w.pass_file(pass);
        run(
            &w,
            &[
                "rekey",
                "--json",
                "--blob",
                s(&blob),
                "--same-passphrase",
                "--new-usb-uuid",
                "EEEE-0001",
                "--passphrase-file",
                s(&pf),
            ],
        )
    };
    let out = rekey(PASS);
    let v = schema.report::<RekeyDoc>("rekey", &out);
    assert_eq!(v["new"]["usb_uuid"], "eeee-0001", "{v}");
    assert_eq!(v["old"]["usb_uuid"], UUID.to_lowercase());
    assert!(v["kept_previous"].is_object(), "{v}");
    let out = rekey("not the passphrase at all");
    schema.failure(&out, "wrong-passphrase");

    // manifest check: matched, syntax only, and a required entry missing.
    let out = run(
        &w,
        &[
            "manifest",
            "check",
            "--json",
            s(&manifest),
            "--source-root",
            s(&src),
        ],
    );
    let v = schema.report::<ManifestCheckDoc>("manifest check", &out);
    assert_eq!(v["counts"]["missing"], 1, "~/.claude.json: {v}");
    let out = run(
        &w,
        &["manifest", "check", "--json", "--syntax-only", s(&manifest)],
    );
    let v = schema.report::<ManifestCheckDoc>("manifest check", &out);
    assert!(
        v["entries"].is_null() && v["counts"]["files"].is_null(),
        "{v}"
    );
    fs::remove_dir_all(src.join("home/zeta/.config/gh")).unwrap();
    let out = run(
        &w,
        &[
            "manifest",
            "check",
            "--json",
            s(&manifest),
            "--source-root",
            s(&src),
        ],
    );
    let v = schema.report::<ManifestCheckDoc>("manifest check", &out);
    assert_eq!(v["exit_name"], "input-missing", "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");

    // A command line clap refuses, with --json.
    let out = run(&w, &["verify", "--json", "--no-such-flag"]);
    let v = schema.failure(&out, "usage");
    assert_eq!(v["exit_code"], 2);

    // Every table of docs/JSON.md was reached.
    let unreached: Vec<_> = schema
        .tables
        .keys()
        .filter(|id| !schema.reached.contains(*id))
        .collect();
    assert!(unreached.is_empty(), "tables no run reached: {unreached:?}");
}
