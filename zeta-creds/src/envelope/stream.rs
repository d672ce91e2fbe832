//! STREAM (FORMAT.md §4), as in age v1: the payload is cut into 64 KiB
//! plaintext chunks, each sealed with ChaCha20-Poly1305 under the payload
//! key with nonce = 11-byte big-endian chunk counter || last-chunk flag.
//!
//! Rules (age.md "Payload"):
//! * the final chunk carries flag 0x01, every other chunk 0x00;
//! * the final chunk may be empty only when the whole payload is empty;
//! * end of input before a final chunk, and any byte after it, are errors.
//!
//! Both directions hold at most one chunk in memory.

use std::io::{self, Read, Write};

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use zeroize::Zeroizing;

use super::keys::PayloadKey;
use super::{CHUNK_SIZE, Error, TAG_LEN, read_full};

/// Largest chunk counter: 2^88 - 1. Unreachable in practice (that is far
/// more than any disk holds); checked anyway, as age does.
const MAX_COUNTER: u128 = (1u128 << 88) - 1;

fn nonce(counter: u128, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..11].copy_from_slice(&counter.to_be_bytes()[5..]);
    n[11] = u8::from(last);
    Nonce::from(n)
}

/// Encrypts a payload. Call [`StreamWriter::finish`] to seal the final
/// chunk; dropping the writer without it leaves a truncated, invalid blob.
pub struct StreamWriter<W: Write> {
    out: W,
    aead: ChaCha20Poly1305,
    _key: PayloadKey,
    counter: u128,
    buf: Zeroizing<Vec<u8>>,
}

impl<W: Write> StreamWriter<W> {
    pub(super) fn new(out: W, key: PayloadKey) -> StreamWriter<W> {
        StreamWriter {
            out,
            aead: key.aead(),
            _key: key,
            counter: 0,
            buf: Zeroizing::new(Vec::with_capacity(CHUNK_SIZE + TAG_LEN)),
        }
    }

    fn seal_chunk(&mut self, last: bool) -> io::Result<()> {
        if self.counter > MAX_COUNTER {
            return Err(io::Error::other("STREAM chunk counter overflow"));
        }
        let tag = self
            .aead
            .encrypt_inout_detached(
                &nonce(self.counter, last),
                b"",
                self.buf.as_mut_slice().into(),
            )
            .map_err(|_| io::Error::other("chunk encryption failed"))?;
        self.buf.extend_from_slice(&tag);
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.counter += 1;
        Ok(())
    }

    /// Seal the final chunk (possibly short, empty only if nothing was
    /// written), flush, and return the inner writer.
    pub fn finish(mut self) -> Result<W, Error> {
        self.seal_chunk(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for StreamWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // A full buffer is sealed as a middle chunk only once more data
        // arrives, so that a payload of exactly k * 64 KiB ends in a full
        // final chunk rather than an empty one.
        if self.buf.len() == CHUNK_SIZE && !data.is_empty() {
            self.seal_chunk(false)?;
        }
        let n = data.len().min(CHUNK_SIZE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Decrypts and authenticates a payload chunk by chunk.
///
/// Each chunk is released only after its tag verifies, but a reader cannot
/// know the stream is complete until it reaches the final chunk: callers that
/// act on plaintext (the restore) stage everything and commit only after
/// `read` has returned 0.
pub struct StreamReader<R: Read> {
    input: R,
    aead: ChaCha20Poly1305,
    _key: PayloadKey,
    counter: u128,
    /// Decrypted plaintext of the current chunk and how much was handed out.
    plain: Zeroizing<Vec<u8>>,
    pos: usize,
    finished: bool,
    /// Set by the first error: every later read fails the same way, so a
    /// caller that retries cannot skip past a bad chunk.
    failed: Option<Error>,
}

impl<R: Read> StreamReader<R> {
    pub(super) fn new(input: R, key: PayloadKey) -> StreamReader<R> {
        StreamReader {
            input,
            aead: key.aead(),
            _key: key,
            counter: 0,
            plain: Zeroizing::new(Vec::with_capacity(CHUNK_SIZE + TAG_LEN)),
            pos: 0,
            finished: false,
            failed: None,
        }
    }

    /// True once the final chunk has been authenticated and end of input
    /// confirmed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn open(&self, buf: &mut [u8], last: bool) -> Result<(), ()> {
        let (msg, tag) = buf.split_at_mut(buf.len() - TAG_LEN);
        let tag = Tag::try_from(&*tag).map_err(|_| ())?;
        self.aead
            .decrypt_inout_detached(&nonce(self.counter, last), b"", msg.into(), &tag)
            .map_err(|_| ())
    }

    /// Read, authenticate and decrypt the next chunk into `self.plain`.
    fn next_chunk(&mut self) -> Result<(), Error> {
        if self.counter > MAX_COUNTER {
            return Err(Error::PayloadTruncated);
        }
        let index = self.counter as u64;
        self.plain.clear();
        self.plain.resize(CHUNK_SIZE + TAG_LEN, 0);
        self.pos = 0;
        let got = read_full(&mut self.input, &mut self.plain)?;
        if got < TAG_LEN {
            // Nothing (or not even a tag) where a chunk must be.
            self.plain.clear();
            // Zero chunks (nothing after the header) and a missing final
            // chunk are both truncation; a stub shorter than a tag is a
            // broken chunk.
            return Err(if got == 0 {
                Error::PayloadTruncated
            } else {
                Error::PayloadChunk { index }
            });
        }
        self.plain.truncate(got);
        let last = if got < CHUNK_SIZE + TAG_LEN {
            // A short chunk can only be the final one.
            let mut buf = std::mem::take(&mut *self.plain);
            let ok = self.open(&mut buf, true);
            *self.plain = buf;
            ok.map_err(|_| {
                self.plain.clear();
                Error::PayloadChunk { index }
            })?;
            true
        } else {
            // A full chunk may be a middle chunk or a full final chunk: try
            // "not last" first, then "last" (as age does). Decryption
            // happens in place, so keep the ciphertext for the second try.
            let mut buf = std::mem::take(&mut *self.plain);
            let ciphertext = Zeroizing::new(buf.clone());
            let last = if self.open(&mut buf, false).is_ok() {
                false
            } else {
                buf.copy_from_slice(&ciphertext);
                if self.open(&mut buf, true).is_ok() {
                    true
                } else {
                    return Err(Error::PayloadChunk { index });
                }
            };
            *self.plain = buf;
            last
        };
        let plain_len = got - TAG_LEN;
        self.plain.truncate(plain_len);
        self.counter += 1;
        if last {
            if plain_len == 0 && index > 0 {
                self.plain.clear();
                return Err(Error::PayloadLastChunkEmpty);
            }
            let mut probe = [0u8; 1];
            if read_full(&mut self.input, &mut probe)? != 0 {
                self.plain.clear();
                return Err(Error::PayloadTrailingData);
            }
            self.finished = true;
        }
        Ok(())
    }
}

/// A copy of a payload error, to report it again.
fn replay(e: &Error) -> Error {
    match e {
        Error::PayloadTruncated => Error::PayloadTruncated,
        Error::PayloadTrailingData => Error::PayloadTrailingData,
        Error::PayloadLastChunkEmpty => Error::PayloadLastChunkEmpty,
        Error::PayloadChunk { index } => Error::PayloadChunk { index: *index },
        Error::Io(io) => Error::Io(io::Error::new(io.kind(), io.to_string())),
        other => Error::Io(io::Error::other(other.to_string())),
    }
}

impl<R: Read> Read for StreamReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if let Some(e) = &self.failed {
                return Err(replay(e).into_io());
            }
            if self.finished || out.is_empty() {
                return Ok(0);
            }
            if let Err(e) = self.next_chunk() {
                self.plain.clear();
                self.pos = 0;
                let again = replay(&e);
                self.failed = Some(e);
                return Err(again.into_io());
            }
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::FileKey;

    fn key() -> PayloadKey {
        FileKey::from_bytes_for_vectors([3; 32]).payload_key(&[4; 16])
    }

    fn encrypt(plain: &[u8]) -> Vec<u8> {
        let mut w = StreamWriter::new(Vec::new(), key());
        // Write in odd-sized pieces to exercise buffering.
        for piece in plain.chunks(7919) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    fn decrypt(ct: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        StreamReader::new(ct, key())
            .read_to_end(&mut out)
            .map_err(Error::from_io)?;
        Ok(out)
    }

    #[test]
    fn chunk_boundaries_round_trip() {
        for len in [
            0,
            1,
            CHUNK_SIZE - 1,
            CHUNK_SIZE,
            CHUNK_SIZE + 1,
            2 * CHUNK_SIZE,
            3 * CHUNK_SIZE + 5,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let ct = encrypt(&plain);
            let chunks = len.div_ceil(CHUNK_SIZE).max(1);
            assert_eq!(ct.len(), len + chunks * TAG_LEN, "len {len}");
            assert_eq!(decrypt(&ct).unwrap(), plain, "len {len}");
        }
    }

    #[test]
    fn no_chunks_is_an_error() {
        assert!(matches!(decrypt(&[]), Err(Error::PayloadTruncated)));
        assert!(matches!(
            decrypt(&[0; 15]),
            Err(Error::PayloadChunk { index: 0 })
        ));
    }

    /// Found in review: after a bad chunk, a retried read must not carry on
    /// with the next 64 KiB as if it were the same chunk.
    #[test]
    fn errors_are_sticky() {
        let plain = vec![5u8; CHUNK_SIZE + 100];
        let ct = encrypt(&plain);
        let mut spliced = vec![0u8; CHUNK_SIZE + TAG_LEN];
        spliced.extend_from_slice(&ct);
        let mut r = StreamReader::new(&spliced[..], key());
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err());
        assert!(out.is_empty(), "nothing released");
        for _ in 0..3 {
            let e = r.read_to_end(&mut out).unwrap_err();
            assert!(matches!(
                Error::from_io(e),
                Error::PayloadChunk { index: 0 }
            ));
        }
        assert!(out.is_empty() && !r.is_finished());
    }

    #[test]
    fn missing_final_chunk_is_truncation() {
        let plain = vec![1u8; CHUNK_SIZE + 10];
        let ct = encrypt(&plain);
        assert!(matches!(
            decrypt(&ct[..CHUNK_SIZE + TAG_LEN]),
            Err(Error::PayloadTruncated)
        ));
    }

    #[test]
    fn trailing_data_is_an_error() {
        // After a short final chunk the extra byte becomes part of that
        // chunk, which then fails to authenticate.
        let mut ct = encrypt(b"hello");
        ct.push(0);
        assert!(matches!(
            decrypt(&ct),
            Err(Error::PayloadChunk { index: 0 })
        ));
        // After a full final chunk it is detected as trailing data.
        let mut ct = encrypt(&vec![9u8; CHUNK_SIZE]);
        ct.push(0);
        assert!(matches!(decrypt(&ct), Err(Error::PayloadTrailingData)));
    }

    #[test]
    fn empty_final_chunk_after_data_is_an_error() {
        // Build: one full middle chunk, then an empty final chunk.
        let mut w = StreamWriter::new(Vec::new(), key());
        w.write_all(&vec![2u8; CHUNK_SIZE]).unwrap();
        w.seal_chunk(false).unwrap();
        let ct = w.finish().unwrap();
        assert!(matches!(decrypt(&ct), Err(Error::PayloadLastChunkEmpty)));
    }

    #[test]
    fn two_final_chunks_are_an_error() {
        let mut w = StreamWriter::new(Vec::new(), key());
        w.write_all(b"abc").unwrap();
        w.seal_chunk(true).unwrap();
        w.write_all(b"def").unwrap();
        let ct = w.finish().unwrap();
        // The reader sees one 38-byte "chunk" that authenticates as neither.
        assert!(matches!(
            decrypt(&ct),
            Err(Error::PayloadChunk { index: 0 })
        ));
        // Two full final chunks: the second is trailing data.
        let mut w = StreamWriter::new(Vec::new(), key());
        w.write_all(&vec![1u8; CHUNK_SIZE]).unwrap();
        w.seal_chunk(true).unwrap();
        w.write_all(&vec![2u8; CHUNK_SIZE]).unwrap();
        let ct = w.finish().unwrap();
        assert!(matches!(decrypt(&ct), Err(Error::PayloadTrailingData)));
    }

    #[test]
    fn swapped_chunks_fail() {
        let plain: Vec<u8> = (0..3 * CHUNK_SIZE).map(|i| (i % 13) as u8).collect();
        let mut ct = encrypt(&plain);
        let c = CHUNK_SIZE + TAG_LEN;
        let first: Vec<u8> = ct[..c].to_vec();
        let second: Vec<u8> = ct[c..2 * c].to_vec();
        ct[..c].copy_from_slice(&second);
        ct[c..2 * c].copy_from_slice(&first);
        assert!(matches!(
            decrypt(&ct),
            Err(Error::PayloadChunk { index: 0 })
        ));
    }
}
