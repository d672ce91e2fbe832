//! The byte-flip sweep of issue 9: for one small valid blob, every byte
//! position XOR 0x01 and XOR 0xFF, each through `zeta-creds restore`.
//!
//! Every one of the 2 × len blobs must be refused, with exit 3 (no match),
//! 4 (binding failure) or 5 (header, HMAC, payload or entries failure),
//! and leave the target root exactly as it was. The passphrase file is
//! consumed exactly when the run read it: always for 3 and for a damaged
//! payload, never for 4 (the binding is checked before the passphrase is
//! read); a header refused before the read leaves it as it was. The sweep
//! predicts the
//! exact code from the position (FORMAT.md §2, §6):
//!
//! * a byte of `uuid`: 4 if the flipped byte is still in `[0-9a-z-]` (the
//!   blob now names another stick), else 5 (an invalid header);
//! * a byte of `host`: 4 if the flipped byte is still in `[a-z0-9.-]` (the
//!   blob now names another host), else 5;
//! * `log_n`: 3 if the new value is still within the format's range and
//!   the cap (scrypt runs with another N), else 5;
//! * `salt` or `wrapped_key`: 3 (another KEK, or a wrapped key that does
//!   not open: indistinguishable from a wrong passphrase);
//! * anything else: 5.
//!
//! `props::any_single_bit_flip_fails_and_restores_nothing` samples single
//! bits at random; this sweep is exhaustive over bytes, and runs the real
//! binary. The blob carries about 200 bytes of payload at work factor 10;
//! the runs are spread over a few threads, each with its own target root.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::layout::Layout;
use common::{World, snapshot};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use zeta_creds::envelope::{
    Anchor, EntryKind, EntryMeta, EntryWriter, FileKey, Header, HeaderFields, UsbUuid,
};

const PASS: &str = common::PASS;
const UUID: &str = "abcd-1234";
const CAP: u8 = 20;

fn fields() -> HeaderFields {
    HeaderFields {
        usb_uuid: UsbUuid::parse(UUID).unwrap(),
        log_n: 10,
        generation: 1,
        created: 1_700_000_000,
        tool_version: "0.1.0".into(),
        persona: String::new(),
        host: Some(zeta_creds::envelope::Host::parse("node-a").unwrap()),
    }
}

/// One home file of ~100 bytes: a plaintext of about 200 bytes.
fn small_blob() -> Vec<u8> {
    let body = b"github.com:\n    user: zeta\n    oauth_token: gho_EXAMPLEONLYNOTAREALTOKEN0000000000\n    git_protocol: ssh\n";
    let meta = EntryMeta {
        anchor: Anchor::Home,
        kind: EntryKind::File,
        path: ".config/gh/hosts.yml".into(),
        mode: 0o600,
        owner: "zeta".into(),
        group: "zeta".into(),
        mtime: 1_700_000_000,
        size: body.len() as u64,
        sha256: Sha256::digest(body).into(),
    };
    let mut plain = EntryWriter::new(Vec::new(), "zeta").unwrap();
    plain.add(&meta, &mut &body[..]).unwrap();
    let plain = plain.finish().unwrap();
    assert!((150..=260).contains(&plain.len()), "{}", plain.len());
    let mut w = Header::seal_with(
        Vec::new(),
        &SecretString::from(PASS),
        &fields(),
        FileKey::from_bytes_for_vectors(std::array::from_fn(|i| 0x90 ^ i as u8)),
        std::array::from_fn(|i| 0xa0 ^ i as u8),
        std::array::from_fn(|i| 0xb0 ^ i as u8),
    )
    .unwrap();
    w.write_all(&plain).unwrap();
    w.finish().unwrap()
}

/// The exit code a blob with byte `pos` replaced by `new` must give.
fn predicted(pos: usize, new: u8) -> i32 {
    let at = Layout::of(&fields());
    let uuid = Layout::UUID..at.log_n();
    let log_n = at.log_n();
    let salt = at.salt()..at.wrapped_key();
    let wrapped = at.wrapped_key()..at.generation();
    let host = at.host()..at.nonce();
    if host.contains(&pos) {
        // Still a host name: another host's blob (refused before the
        // passphrase); else not a valid header.
        if new.is_ascii_digit() || new.is_ascii_lowercase() || new == b'-' || new == b'.' {
            4
        } else {
            5
        }
    } else if uuid.contains(&pos) {
        if new.is_ascii_digit() || new.is_ascii_lowercase() || new == b'-' {
            4
        } else {
            5
        }
    } else if pos == log_n {
        if (10..=CAP).contains(&new) { 3 } else { 5 }
    } else if salt.contains(&pos) || wrapped.contains(&pos) {
        3
    } else {
        5
    }
}

/// Restore `blob` into the world's target root; return the exit code and
/// stderr. The passphrase file is written fresh for each run.
fn restore(w: &World, blob: &[u8]) -> (Option<i32>, String, bool) {
    fs::write(w.blob(), blob).unwrap();
    let pf = w.pass_file(PASS);
    let out = w
        .restore_blob(&w.blob())
        .args(["--usb-uuid", UUID, "--max-work-factor", &CAP.to_string()])
        .arg("--passphrase-file")
        .arg(&pf)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        Path::new(&pf).exists(),
    )
}

#[test]
fn every_byte_flipped_is_refused_and_writes_nothing() {
    let blob = small_blob();

    // The unflipped blob restores: the sweep breaks a working blob.
    let ok = World::new();
    let (code, stderr, _) = restore(&ok, &blob);
    assert_eq!(code, Some(0), "the unflipped blob fails: {stderr}");
    assert!(ok.dst().join("home/zeta/.config/gh/hosts.yml").is_file());

    let jobs: Vec<(usize, u8)> = (0..blob.len())
        .flat_map(|pos| [(pos, 0x01u8), (pos, 0xffu8)])
        .collect();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let counts = Mutex::new([0usize; 3]);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let w = World::new();
                let baseline = snapshot(&w.dst());
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(pos, mask)) = jobs.get(i) else {
                        break;
                    };
                    let mut flipped = blob.clone();
                    flipped[pos] ^= mask;
                    let want = predicted(pos, flipped[pos]);
                    let (code, stderr, pass_left) = restore(&w, &flipped);
                    let mut problems = Vec::new();
                    if code != Some(want) {
                        problems.push(format!("exit {code:?}, predicted {want}"));
                    }
                    if !stderr.lines().any(|l| l.starts_with("zeta-creds: error: ")) {
                        problems.push("no error line".into());
                    }
                    let read_first = code == Some(3) || pos >= Layout::of(&fields()).payload();
                    if pass_left && read_first {
                        problems.push("passphrase file not consumed".into());
                    }
                    if !pass_left && code == Some(4) {
                        problems.push("passphrase file consumed though never read".into());
                    }
                    if snapshot(&w.dst()) != baseline {
                        problems.push("the target root changed".into());
                    }
                    if let Some(c @ 3..=5) = code {
                        counts.lock().unwrap()[c as usize - 3] += 1;
                    }
                    if !problems.is_empty() {
                        failures.lock().unwrap().push(format!(
                            "byte {pos} XOR 0x{mask:02x}: {}\n{stderr}",
                            problems.join("; ")
                        ));
                        // Later runs in this world would compare against a
                        // changed target; one report per thread is enough.
                        if snapshot(&w.dst()) != baseline {
                            break;
                        }
                    }
                }
            });
        }
    });
    let elapsed = start.elapsed();
    let counts = counts.into_inner().unwrap();
    eprintln!(
        "byte-flip sweep: {} bytes x 2 = {} restores in {:.1} s on {threads} threads; exit 3: {}, exit 4: {}, exit 5: {}",
        blob.len(),
        jobs.len(),
        elapsed.as_secs_f64(),
        counts[0],
        counts[1],
        counts[2]
    );
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} flipped blobs misbehaved:\n{}",
        failures.len(),
        jobs.len(),
        failures.join("\n")
    );
    assert!(
        elapsed < Duration::from_secs(60),
        "the sweep took {elapsed:?}; issue 9 wants well under a minute"
    );
}
