//! `restore --if-new` (issue 17, "ask once"): a blob that is the one last
//! restored under the target root is recognised from its header alone,
//! before any passphrase source is touched, and nothing is asked, read or
//! written; any other blob is restored as usual.

mod common;

use std::fs;
use std::path::Path;

use common::layout::Layout;
use common::*;
use zeta_creds::envelope::Header;

const HOSTS: &str = "home/zeta/.config/gh/hosts.yml";
const STATE: &str = "var/lib/zeta-creds/state.json";

/// `restore --if-new [extra] --passphrase-file F` of the world's blob:
/// its output and whether F is still there afterwards.
fn if_new(w: &World, extra: &[&str]) -> (std::process::Output, bool) {
    let pf = w.pass_file(PASS);
    let out = w
        .restore()
        .arg("--if-new")
        .args(extra)
        .arg("--passphrase-file")
        .arg(&pf)
        .output()
        .unwrap();
    let left = pf.exists();
    let _ = fs::remove_file(&pf);
    (out, left)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn header_of(blob: &Path) -> Header {
    Header::read(&mut fs::File::open(blob).unwrap()).unwrap()
}

/// The same blob a second time: exit 0, "already restored", the passphrase
/// file left where it was, and not one byte of the target changed (the
/// state record included).
#[test]
fn the_blob_last_restored_is_skipped_without_touching_the_passphrase_file() {
    let w = World::bundled();
    w.restore_ok(&["--if-new"]);
    let generation = header_of(&w.blob()).unauthenticated_fields().generation;
    let before = snapshot(&w.dst());
    let (out, left) = if_new(&w, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "already restored: generation {generation}, sealed "
        )),
        "{text}"
    );
    assert!(text.trim_end().ends_with("UTC"), "{text}");
    assert!(left, "the passphrase file is left in place");
    assert_eq!(snapshot(&w.dst()), before, "nothing written");
    // JSON says the same.
    let (out, left) = if_new(&w, &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(left);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["if_new"]["already_restored"], true);
    assert_eq!(v["generation"], generation);
    assert_eq!(v["counts"]["entries"], 0, "nothing was restored");
}

/// The record names the blob by a SHA-256 of its public header bytes and
/// MAC, with its generation and sealed date; nothing else about it.
#[test]
fn the_state_record_names_the_restored_blob() {
    let w = World::bundled();
    w.restore_ok(&[]);
    let h = header_of(&w.blob());
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(w.dst().join(STATE)).unwrap()).unwrap();
    let rb = &v["restored_blob"];
    let id: String = h.id().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(rb["id"], id.as_str());
    assert_eq!(rb["generation"], h.unauthenticated_fields().generation);
    assert_eq!(rb["sealed"], h.unauthenticated_fields().created);
    assert_eq!(rb.as_object().unwrap().len(), 3, "{rb}");
}

/// A re-bundled blob (new header, new MAC) is restored: asked for, and the
/// change is in place.
#[test]
fn a_rebundled_blob_is_restored() {
    let w = World::bundled();
    w.restore_ok(&[]);
    fs::write(w.src().join(HOSTS), "github.com:\n  oauth_token: gho_NEW\n").unwrap();
    w.rebundle();
    let (out, left) = if_new(&w, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!left, "the passphrase was read (and the file consumed)");
    assert!(
        stderr(&out).contains("is new (generation 2"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("the blob last restored under"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fs::read_to_string(w.dst().join(HOSTS)).unwrap(),
        "github.com:\n  oauth_token: gho_NEW\n"
    );
    // And now it is the one last restored.
    let (out, left) = if_new(&w, &[]);
    assert!(stdout(&out).starts_with("already restored: generation 2,"));
    assert!(left);
}

/// No state record (the first boot after an install): restore.
#[test]
fn without_a_state_record_the_blob_is_restored() {
    let w = World::bundled();
    let (out, left) = if_new(&w, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!left);
    assert!(
        stderr(&out).contains("no blob was restored under"),
        "{}",
        stderr(&out)
    );
    assert!(w.dst().join(HOSTS).exists());
}

/// A record written before this feature (no `restored_blob`) loads, and
/// the blob is restored once more, after which it is known.
#[test]
fn an_old_record_without_the_blob_restores_once_more() {
    let w = World::bundled();
    w.restore_ok(&[]);
    let path = w.dst().join(STATE);
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("restored_blob").unwrap();
    fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let (out, left) = if_new(&w, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!left);
    assert!(
        stderr(&out).contains("names no restored blob"),
        "{}",
        stderr(&out)
    );
    let (out, left) = if_new(&w, &[]);
    assert!(
        stdout(&out).starts_with("already restored:"),
        "{}",
        stdout(&out)
    );
    assert!(left);
}

/// An unusable record: restore, and say why (the control characters of
/// the reason escaped).
#[test]
fn a_corrupt_record_restores_and_says_so() {
    let w = World::bundled();
    w.restore_ok(&[]);
    fs::write(w.dst().join(STATE), b"{not json\x1b[2J").unwrap();
    let (out, left) = if_new(&w, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!left);
    let err = stderr(&out);
    assert!(err.contains("state.json is unusable"), "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
}

/// A header forged to keep the MAC of the blob last restored but with
/// other bytes (here: a later `created` date) is not taken for it: the
/// restore proceeds and the authenticated path refuses it (exit 5),
/// writing nothing.
#[test]
fn a_forged_header_with_the_same_mac_goes_to_the_authenticated_restore() {
    let w = World::bundled();
    w.restore_ok(&[]);
    let blob = w.blob();
    let at = Layout::of(header_of(&blob).unauthenticated_fields());
    let mut bytes = fs::read(&blob).unwrap();
    bytes[at.created() + 7] ^= 1;
    fs::write(&blob, &bytes).unwrap();
    let before = snapshot(&w.dst());
    let (out, _) = if_new(&w, &[]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("is new"), "{}", stderr(&out));
    assert_eq!(snapshot(&w.dst()), before, "nothing written");
    // --check calls it new too: the unit would run the restore.
    let (out, left) = if_new(&w, &["--check"]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(left);
}

/// `--check` asks nothing and writes nothing: exit 10 "restore needed"
/// for a new blob, exit 0 "already restored" for the one last restored.
#[test]
fn check_only_says_whether_a_restore_is_needed() {
    let w = World::bundled();
    let before = snapshot(&w.dst());
    let (out, left) = if_new(&w, &["--check"]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(left, "--check reads no passphrase");
    assert!(
        stdout(&out).starts_with("restore needed: "),
        "{}",
        stdout(&out)
    );
    assert_eq!(snapshot(&w.dst()), before, "nothing written");
    w.restore_ok(&[]);
    let (out, left) = if_new(&w, &["--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(left);
    assert!(stdout(&out).starts_with("already restored: generation 1,"));
    // --check needs --if-new.
    w.restore().arg("--check").assert().code(2);
}
