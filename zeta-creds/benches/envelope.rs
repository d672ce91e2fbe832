//! Envelope benchmarks (docs/PERFORMANCE.md): header parse, the KDF at
//! work factors 15 and 18, and STREAM payload throughput.
//!
//! ```sh
//! cargo bench -p zeta-creds --bench envelope
//! cargo bench -p zeta-creds --bench envelope -- payload   # a subset
//! ```
//!
//! Only the public envelope API is used: every payload reader comes from
//! `Header::unlock`, run (at work factor 10) in criterion's untimed setup,
//! so the payload numbers are the STREAM (and entry) readers alone.

use std::hint::black_box;
use std::io::{self, Read, Write};
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use zeta_creds::envelope::{
    Anchor, Binding, EntryKind, EntryMeta, EntryReader, EntryWriter, Header, HeaderFields, UsbUuid,
};

const MIB: usize = 1024 * 1024;
/// Work factor for everything that is not the KDF benchmark itself.
const SETUP_LOG_N: u8 = 10;

fn pass() -> SecretString {
    SecretString::from("correct horse battery staple".to_owned())
}

fn fields(log_n: u8) -> HeaderFields {
    HeaderFields {
        usb_uuid: UsbUuid::parse("abcd-1234").unwrap(),
        log_n,
        generation: 1,
        created: 1_700_000_000,
        tool_version: "bench".into(),
        persona: String::new(),
        host: Some(zeta_creds::envelope::Host::parse("node-a").unwrap()),
    }
}

/// Deterministic, incompressible-looking bytes.
fn data(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A blob whose payload is `plain` written straight into the STREAM.
fn raw_blob(log_n: u8, plain: &[u8]) -> Vec<u8> {
    let mut w = Header::seal(Vec::new(), &pass(), &fields(log_n)).unwrap();
    w.write_all(plain).unwrap();
    w.finish().unwrap()
}

/// A blob whose payload is an entry stream of `files` files of `size` bytes.
fn entry_blob(log_n: u8, files: usize, size: usize) -> Vec<u8> {
    let w = Header::seal(Vec::new(), &pass(), &fields(log_n)).unwrap();
    let mut e = EntryWriter::new(w, "zeta").unwrap();
    let body = data(size);
    let digest: [u8; 32] = Sha256::digest(&body).into();
    for i in 0..files {
        let meta = EntryMeta {
            anchor: Anchor::Home,
            kind: EntryKind::File,
            path: format!(".config/tool/file-{i:04}"),
            mode: 0o600,
            owner: "zeta".into(),
            group: "users".into(),
            mtime: 0,
            size: size as u64,
            sha256: digest,
        };
        e.add(&meta, &mut body.as_slice()).unwrap();
    }
    e.finish().unwrap().finish().unwrap()
}

fn header_parse(c: &mut Criterion) {
    let blob = raw_blob(SETUP_LOG_N, b"x");
    c.bench_function("header/parse", |b| {
        b.iter(|| Header::read(&mut black_box(blob.as_slice())).unwrap())
    });
}

/// `Header::unlock`: scrypt, then HKDF, the key unwrap and the header MAC
/// (all but scrypt are microseconds). One iteration per sample: at 18 an
/// iteration takes about half a second.
fn kdf(c: &mut Criterion) {
    let mut g = c.benchmark_group("kdf");
    g.sampling_mode(SamplingMode::Flat);
    for log_n in [15u8, 18] {
        let blob = raw_blob(log_n, b"");
        let header = Header::read(&mut blob.as_slice()).unwrap();
        let pass = pass();
        if log_n >= 18 {
            g.sample_size(10);
            g.measurement_time(Duration::from_secs(8));
        }
        g.bench_function(format!("unlock/log_n={log_n}"), |b| {
            b.iter(|| {
                header.unlock(&pass, &Binding::default(), 22).unwrap();
            })
        });
    }
    g.finish();
}

fn payload(c: &mut Criterion) {
    let mut g = c.benchmark_group("payload");
    for size in [MIB, 64 * MIB] {
        let label = format!("{}MiB", size / MIB);
        g.throughput(Throughput::Bytes(size as u64));
        if size > MIB {
            g.sample_size(10);
        }
        let plain = data(size);
        let pass = pass();
        let f = fields(SETUP_LOG_N);

        // Encrypt: STREAM writer into a sink, fed 64 KiB at a time.
        g.bench_function(format!("encrypt/{label}"), |b| {
            b.iter_batched(
                || Header::seal(io::sink(), &pass, &f).unwrap(),
                |mut w| {
                    for piece in plain.chunks(64 * 1024) {
                        w.write_all(piece).unwrap();
                    }
                    w.finish().unwrap();
                },
                BatchSize::PerIteration,
            )
        });

        // Decrypt and verify every tag: STREAM reader into a sink.
        let blob = raw_blob(SETUP_LOG_N, &plain);
        let header = Header::read(&mut blob.as_slice()).unwrap();
        let payload = &blob[header.len()..];
        g.bench_function(format!("decrypt/{label}"), |b| {
            b.iter_batched(
                || header.unlock(&pass, &Binding::default(), 22).unwrap(),
                |u| {
                    let mut r = u.payload_reader(payload);
                    let mut buf = vec![0u8; 64 * 1024];
                    while r.read(&mut buf).unwrap() != 0 {}
                    assert!(r.is_finished());
                },
                BatchSize::PerIteration,
            )
        });

        // Decrypt, parse the entry stream and check every body's SHA-256:
        // what a restore does before it writes a byte (16 files).
        let blob = entry_blob(SETUP_LOG_N, 16, size / 16);
        let header = Header::read(&mut blob.as_slice()).unwrap();
        let payload = &blob[header.len()..];
        g.bench_function(format!("decrypt+entries/{label}"), |b| {
            b.iter_batched(
                || header.unlock(&pass, &Binding::default(), 22).unwrap(),
                |u| {
                    let mut r = EntryReader::new(u.payload_reader(payload)).unwrap();
                    let mut buf = vec![0u8; 64 * 1024];
                    while r.next_entry().unwrap().is_some() {
                        while r.read_body(&mut buf).unwrap() != 0 {}
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// The ceiling for `payload/decrypt`: the AEAD alone, ChaCha20-Poly1305
/// opening 64 KiB chunks in place with no I/O, no STREAM reader and no
/// copy. The reader's throughput is read against this one, on the same
/// machine in the same run.
fn aead_ceiling(c: &mut Criterion) {
    use chacha20poly1305::aead::AeadInOut;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
    const CHUNK: usize = 64 * 1024;
    let size = 64 * MIB;
    let aead = ChaCha20Poly1305::new(&[7u8; 32].into());
    let chunks: Vec<(Vec<u8>, Tag)> = data(size)
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, piece)| {
            let mut buf = piece.to_vec();
            let nonce = nonce_for(i);
            let tag = aead
                .encrypt_inout_detached(&nonce, b"", buf.as_mut_slice().into())
                .unwrap();
            (buf, tag)
        })
        .collect();
    fn nonce_for(i: usize) -> Nonce {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&(i as u64).to_be_bytes());
        n.into()
    }
    let mut g = c.benchmark_group("payload");
    g.throughput(Throughput::Bytes(size as u64));
    g.sample_size(10);
    g.bench_function("aead-ceiling/64MiB", |b| {
        b.iter_batched(
            || chunks.clone(),
            |mut chunks| {
                for (i, (buf, tag)) in chunks.iter_mut().enumerate() {
                    aead.decrypt_inout_detached(&nonce_for(i), b"", buf.as_mut_slice().into(), tag)
                        .unwrap();
                }
                chunks
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, header_parse, kdf, payload, aead_ceiling);
criterion_main!(benches);
