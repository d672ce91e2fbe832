//! `zeta-creds rekey` (issue 6): a new passphrase and/or a new stick by
//! re-wrapping the file key only. The payload bytes are untouched; the new
//! passphrase and stick work and the old ones do not; the generation rises,
//! so the pre-rekey blob is refused as a rollback where the rekeyed one was
//! restored; every failure leaves the blob as it was.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use predicates::prelude::*;
use zeta_creds::envelope::Header;

const NEW_PASS: &str = "purple monkey dishwasher on a tuesday";
const NEW_UUID: &str = "FEED-BEEF";

/// (header length, payload bytes) of a blob.
fn split(blob: &Path) -> (usize, Vec<u8>) {
    let bytes = fs::read(blob).unwrap();
    let header = Header::read(&mut bytes.as_slice()).unwrap();
    (header.len(), bytes[header.len()..].to_vec())
}

fn generation(blob: &Path) -> u64 {
    let bytes = fs::read(blob).unwrap();
    Header::read(&mut bytes.as_slice())
        .unwrap()
        .unauthenticated_fields()
        .generation
}

/// A file holding `pass` at `name` (consumed by the command).
fn file_with(w: &World, name: &str, pass: &str) -> std::path::PathBuf {
    let p = w.path(name);
    fs::write(&p, format!("{pass}\n")).unwrap();
    p
}

/// `rekey --blob B --passphrase-file <PASS> ...extra`. The current
/// passphrase file is consumed whenever the run got as far as reading it:
/// every run but those refused with exit 6 before the read (a missing blob,
/// no way to give the new passphrase), which the callers check.
fn rekey(w: &World, current: &str, extra: &[&str]) -> (std::process::Output, std::path::PathBuf) {
    let pf = file_with(w, "current-pass", current);
    let out = w
        .cmd()
        .arg("rekey")
        .arg("--blob")
        .arg(w.blob())
        .arg("--passphrase-file")
        .arg(&pf)
        .args(extra)
        .output()
        .unwrap();
    if out.status.code() != Some(6) {
        assert!(!pf.exists(), "the current passphrase file is consumed");
    }
    (out, pf)
}

fn verify(w: &World, blob: &Path, pass: &str) -> std::process::Output {
    let pf = file_with(w, "verify-pass", pass);
    w.cmd()
        .arg("verify")
        .arg("--blob")
        .arg(blob)
        .arg("--passphrase-file")
        .arg(&pf)
        .output()
        .unwrap()
}

fn restore_from(w: &World, blob: &Path, uuid: &str, pass: &str) -> std::process::Output {
    let pf = file_with(w, "restore-pass", pass);
    w.restore_blob(blob)
        .args(["--usb-uuid", uuid, "--passphrase-file"])
        .arg(&pf)
        .output()
        .unwrap()
}

/// Temporary files left in `dir` (the blob's directory).
fn temps(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".zeta-creds-tmp."))
        .collect()
}

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The whole issue-6 list in one story: new passphrase and new stick,
/// payload identical, new works, old refused (3 and 4), pre-rekey blob
/// refused as a rollback (8) after the rekeyed one was restored.
#[test]
fn rekey_to_a_new_passphrase_and_stick_keeps_the_payload_and_retires_the_old_ones() {
    let w = World::bundled();
    let (old_header_len, old_payload) = split(&w.blob());
    let old_blob = fs::read(w.blob()).unwrap();
    let npf = file_with(&w, "new-pass", NEW_PASS);
    let (out, _) = rekey(
        &w,
        PASS,
        &[
            "--new-passphrase-file",
            npf.to_str().unwrap(),
            "--new-usb-uuid",
            NEW_UUID,
        ],
    );
    assert!(out.status.success(), "{}", err(&out));
    assert!(!npf.exists(), "the new passphrase file is consumed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "rekeyed {} (new passphrase, USB abcd-1234 -> feed-beef): generation 1 -> 2, bound to USB feed-beef; 12 entries, {} payload bytes copied unchanged",
            w.blob().display(),
            old_payload.len()
        )),
        "{stdout}"
    );
    assert!(
        err(&out).contains("a rekey does not revoke the old passphrase"),
        "{}",
        err(&out)
    );

    // Payload bytes identical; only the header changed.
    let (new_header_len, new_payload) = split(&w.blob());
    assert_eq!(
        new_payload, old_payload,
        "payload bytes must be copied unchanged"
    );
    assert_eq!(
        new_header_len, old_header_len,
        "same field lengths (uuids of equal length)"
    );
    assert_ne!(
        fs::read(w.blob()).unwrap()[..new_header_len],
        old_blob[..old_header_len]
    );
    assert_eq!(generation(&w.blob()), 2);
    // The old blob is kept as .prev, byte for byte.
    let prev = w.path("esp/zeta-creds.enc.prev");
    assert_eq!(fs::read(&prev).unwrap(), old_blob);

    // New passphrase works, old one is exit 3.
    let out = verify(&w, &w.blob(), NEW_PASS);
    assert!(out.status.success(), "{}", err(&out));
    let out = verify(&w, &w.blob(), PASS);
    assert_eq!(out.status.code(), Some(3), "{}", err(&out));
    assert!(err(&out).contains("wrong passphrase for blob"));

    // New stick works; the old one is exit 4.
    let before = snapshot(&w.dst());
    let out = restore_from(&w, &w.blob(), UUID, NEW_PASS);
    assert_eq!(out.status.code(), Some(4), "{}", err(&out));
    assert!(err(&out).contains("blob is bound to USB feed-beef, not to abcd-1234"));
    assert_eq!(before, snapshot(&w.dst()), "nothing written on exit 4");
    let out = restore_from(&w, &w.blob(), NEW_UUID, NEW_PASS);
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(
        fs::read(w.dst().join("home/zeta/.config/gh/hosts.yml")).unwrap(),
        fs::read(w.src().join("home/zeta/.config/gh/hosts.yml")).unwrap()
    );

    // The pre-rekey blob (old stick, old passphrase: both genuine) is now a
    // rollback on this system.
    let before = snapshot(&w.dst());
    let out = restore_from(&w, &prev, UUID, PASS);
    assert_eq!(out.status.code(), Some(8), "{}", err(&out));
    assert!(
        err(&out).contains("rollback refused: the blob has generation 1, older than generation 2")
    );
    assert_eq!(before, snapshot(&w.dst()));
}

/// Moving to a new stick only: --same-passphrase keeps the passphrase.
#[test]
fn same_passphrase_moves_to_a_new_stick() {
    let w = World::bundled();
    let (_, payload) = split(&w.blob());
    let uuid_file = w.path("new-uuid");
    fs::write(&uuid_file, " FEED-BEEF \n").unwrap();
    let (out, _) = rekey(
        &w,
        PASS,
        &[
            "--same-passphrase",
            "--new-usb-uuid-file",
            uuid_file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", err(&out));
    assert!(
        !err(&out).contains("does not revoke"),
        "no passphrase changed"
    );
    assert_eq!(split(&w.blob()).1, payload);
    let out = restore_from(&w, &w.blob(), NEW_UUID, PASS);
    assert!(out.status.success(), "{}", err(&out));
}

/// A new passphrase only, on the same stick, and the work factor raised:
/// the header says so and the blob still opens.
#[test]
fn new_passphrase_and_work_factor_on_the_same_stick() {
    let w = World::bundled();
    let npf = file_with(&w, "new-pass", NEW_PASS);
    let (out, _) = rekey(
        &w,
        PASS,
        &[
            "--new-passphrase-file",
            npf.to_str().unwrap(),
            "--work-factor",
            "11",
            "--no-backup",
        ],
    );
    assert!(out.status.success(), "{}", err(&out));
    assert!(
        err(&out).contains("work factor 11 is for tests"),
        "{}",
        err(&out)
    );
    assert!(!w.path("esp/zeta-creds.enc.prev").exists(), "--no-backup");
    w.cmd()
        .arg("inspect")
        .arg(w.blob())
        .assert()
        .stdout(predicate::str::contains("work factor     11"))
        .stdout(predicate::str::contains("usb uuid        abcd-1234"));
    let out = restore_from(&w, &w.blob(), UUID, NEW_PASS);
    assert!(out.status.success(), "{}", err(&out));
}

/// Every refusal leaves the blob byte for byte as it was, writes no .prev
/// and no temporary file, and consumes each passphrase file it read (and
/// only those).
#[test]
fn refusals_leave_the_blob_untouched() {
    let w = World::bundled();
    let original = fs::read(w.blob()).unwrap();
    let untouched = |w: &World, what: &str| {
        assert_eq!(
            fs::read(w.blob()).unwrap(),
            original,
            "{what}: blob changed"
        );
        assert!(
            !w.path("esp/zeta-creds.enc.prev").exists(),
            "{what}: .prev written"
        );
        assert!(temps(&w.path("esp")).is_empty(), "{what}: temp file left");
    };

    // Wrong current passphrase: exit 3 before the new passphrase is read,
    // so the new passphrase file is left alone.
    let npf = file_with(&w, "new-pass", NEW_PASS);
    let (out, _) = rekey(
        &w,
        "wrong current passphrase",
        &["--new-passphrase-file", npf.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3), "{}", err(&out));
    assert!(npf.exists(), "the new passphrase file was never read");
    fs::remove_file(&npf).unwrap();
    untouched(&w, "wrong passphrase");

    // A weak new passphrase: exit 1 with the fix, nothing written.
    let npf = file_with(&w, "new-pass", "hunter2");
    let (out, _) = rekey(&w, PASS, &["--new-passphrase-file", npf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    assert!(
        err(&out).contains("the new passphrase is too weak"),
        "{}",
        err(&out)
    );
    assert!(!err(&out).contains("hunter2"));
    assert!(!npf.exists());
    untouched(&w, "weak passphrase");

    // No new passphrase and no terminal: exit 6 naming the ways to give one.
    let (out, pf) = rekey(&w, PASS, &[]);
    assert_eq!(out.status.code(), Some(6), "{}", err(&out));
    assert!(pf.exists(), "refused before the passphrase was read: kept");
    assert!(
        err(&out).contains("pass --new-passphrase-file FILE"),
        "{}",
        err(&out)
    );
    untouched(&w, "no new passphrase");

    // Nothing to change: exit 2.
    let (out, _) = rekey(&w, PASS, &["--same-passphrase"]);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(err(&out).contains("nothing to change"), "{}", err(&out));
    untouched(&w, "nothing to change");

    // A damaged payload is refused (exit 5), not given a new generation.
    let mut bytes = original.clone();
    let n = bytes.len();
    bytes[n - 25] ^= 0x40;
    fs::write(w.blob(), &bytes).unwrap();
    let npf = file_with(&w, "new-pass", NEW_PASS);
    let (out, _) = rekey(&w, PASS, &["--new-passphrase-file", npf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5), "{}", err(&out));
    assert!(err(&out).contains("payload chunk"), "{}", err(&out));
    assert_eq!(fs::read(w.blob()).unwrap(), bytes);
    assert!(!w.path("esp/zeta-creds.enc.prev").exists());
    assert!(temps(&w.path("esp")).is_empty());

    // A missing blob: exit 6.
    fs::remove_file(w.blob()).unwrap();
    let (out, pf) = rekey(&w, PASS, &["--same-passphrase", "--new-usb-uuid", NEW_UUID]);
    assert_eq!(out.status.code(), Some(6), "{}", err(&out));
    assert!(pf.exists(), "refused before the passphrase was read: kept");
}

/// --help says plainly that a rekey is not a revocation.
#[test]
fn help_says_rekey_does_not_revoke() {
    let w = World::new();
    w.cmd()
        .args(["rekey", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("A rekey is not a revocation"))
        .stdout(predicate::str::contains("re-bundle"));
}
