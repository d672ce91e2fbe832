//! STREAM (FORMAT.md §4), as in age v1: the payload is cut into 64 KiB
//! plaintext chunks, each sealed with ChaCha20-Poly1305 under the payload
//! key with nonce = 11-byte big-endian chunk counter || last-chunk flag.
//!
//! Rules (age.md "Payload"):
//! * the final chunk carries flag 0x01, every other chunk 0x00;
//! * the final chunk may be empty only when the whole payload is empty;
//! * end of input before a final chunk, and any byte after it, are errors.
//!
//! Both directions hold at most one chunk in memory. Decryption is
//! synchronous: [`StreamReader::read_chunk`] is the interface for a caller
//! that wants to run it elsewhere (the restore's `readahead` thread).

use std::io::{self, Read, Write};

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::aead::inout::InOutBuf;
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

/// The STREAM nonce state of one payload (after rage's `Nonce`): the chunk
/// counter, and whether the final chunk has gone by. After the final chunk
/// there is no nonce at all, so neither direction can seal or open a second
/// final chunk, nor any chunk after it.
struct StreamNonce {
    counter: u128,
    done: bool,
}

impl StreamNonce {
    fn new() -> StreamNonce {
        StreamNonce {
            counter: 0,
            done: false,
        }
    }

    /// The current chunk's index, for error messages.
    fn index(&self) -> u64 {
        self.counter as u64
    }

    /// The nonce of the current chunk as a middle chunk (`last == false`)
    /// or as the final one; `None` after the final chunk, or past the
    /// largest counter.
    fn current(&self, last: bool) -> Option<Nonce> {
        (!self.done && self.counter <= MAX_COUNTER).then(|| nonce(self.counter, last))
    }

    /// Step past the current chunk, which was the final one if `last`.
    fn advance(&mut self, last: bool) {
        self.counter += 1;
        self.done = last;
    }
}

/// Encrypts a payload. Call [`StreamWriter::finish`] to seal the final
/// chunk; dropping the writer without it leaves a truncated, invalid blob.
pub struct StreamWriter<W: Write> {
    out: W,
    aead: ChaCha20Poly1305,
    _key: PayloadKey,
    nonce: StreamNonce,
    buf: Zeroizing<Vec<u8>>,
}

impl<W: Write> StreamWriter<W> {
    pub(super) fn new(out: W, key: PayloadKey) -> StreamWriter<W> {
        StreamWriter {
            out,
            aead: key.aead(),
            _key: key,
            nonce: StreamNonce::new(),
            buf: Zeroizing::new(Vec::with_capacity(CHUNK_SIZE + TAG_LEN)),
        }
    }

    fn seal_chunk(&mut self, last: bool) -> io::Result<()> {
        let Some(nonce) = self.nonce.current(last) else {
            return Err(io::Error::other(
                "STREAM chunk counter overflow, or a chunk after the final one",
            ));
        };
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce, b"", self.buf.as_mut_slice().into())
            .map_err(|_| io::Error::other("chunk encryption failed"))?;
        self.buf.extend_from_slice(&tag);
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.nonce.advance(last);
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
///
/// Two buffers, allocated once: the ciphertext of the current chunk and its
/// plaintext. Decryption goes from one to the other, so a full chunk can be
/// opened a second time (as the final chunk) from its intact ciphertext
/// without keeping a copy of it.
pub struct StreamReader<R: Read> {
    input: R,
    aead: ChaCha20Poly1305,
    _key: PayloadKey,
    nonce: StreamNonce,
    /// Ciphertext and tag of the current chunk (not secret).
    sealed: Vec<u8>,
    /// Plaintext of the current chunk: `plain[pos..len]` is not yet handed
    /// out. Wiped when the reader is dropped.
    plain: Zeroizing<Vec<u8>>,
    len: usize,
    pos: usize,
    finished: bool,
    /// Set by the first error: every later read fails the same way, so a
    /// caller that retries cannot skip past a bad chunk.
    failed: FirstError,
}

/// The first error of a payload stream, kept: every later read returns it
/// again, so a caller that retries cannot skip past a bad chunk (shared by
/// [`StreamReader`] and the restore's read-ahead).
#[derive(Debug, Default)]
pub struct FirstError(Option<Error>);

impl FirstError {
    /// The kept error, again, if there is one.
    pub fn again(&self) -> Option<Error> {
        self.0.as_ref().map(Error::replay)
    }

    /// Keep `e` (unless an error is kept already) and return it to report.
    pub fn keep(&mut self, e: Error) -> Error {
        let again = e.replay();
        self.0.get_or_insert(e);
        again
    }
}

/// Hand out as much of `buf[*pos..]` as fits in `out`; advance `*pos`.
pub fn hand_out(out: &mut [u8], buf: &[u8], pos: &mut usize) -> usize {
    let n = out.len().min(buf.len() - *pos);
    out[..n].copy_from_slice(&buf[*pos..*pos + n]);
    *pos += n;
    n
}

impl<R: Read> StreamReader<R> {
    pub(super) fn new(input: R, key: PayloadKey) -> StreamReader<R> {
        StreamReader {
            input,
            aead: key.aead(),
            _key: key,
            nonce: StreamNonce::new(),
            sealed: vec![0u8; CHUNK_SIZE + TAG_LEN],
            plain: Zeroizing::new(vec![0u8; CHUNK_SIZE]),
            len: 0,
            pos: 0,
            finished: false,
            failed: FirstError::default(),
        }
    }

    /// True once the final chunk has been authenticated and end of input
    /// confirmed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Decrypt the next chunk straight into `out` and return its plaintext
    /// length; `Ok(0)` once the stream is complete (the final chunk
    /// authenticated and end of input confirmed), and only then.
    ///
    /// The same rules as [`Read::read`], with the same results: a chunk is
    /// released only after its tag verifies, the final chunk only once the
    /// end of input is confirmed, and the first error is returned again by
    /// every later call (and read). Plaintext that a `read` left half handed
    /// out comes first. For a caller that decrypts one whole chunk at a time
    /// into buffers of its own, such as a thread that reads ahead.
    pub fn read_chunk(&mut self, out: &mut [u8; CHUNK_SIZE]) -> Result<usize, Error> {
        if let Some(e) = self.failed.again() {
            return Err(e);
        }
        if self.pos < self.len {
            return Ok(hand_out(out, &self.plain[..self.len], &mut self.pos));
        }
        if self.finished {
            return Ok(0);
        }
        self.next_chunk(Some(&mut out[..])).map_err(|e| {
            self.len = 0;
            self.pos = 0;
            self.failed.keep(e)
        })
    }

    /// Open `sealed[..got]` into `out[..got - TAG_LEN]`. The ciphertext is
    /// left as it was, so a failed try can be repeated with the other flag.
    fn open(&self, got: usize, last: bool, out: &mut [u8]) -> Result<(), ()> {
        let nonce = self.nonce.current(last).ok_or(())?;
        let (msg, tag) = self.sealed[..got].split_at(got - TAG_LEN);
        let tag = Tag::try_from(tag).map_err(|_| ())?;
        let buf = InOutBuf::new(msg, &mut out[..msg.len()]).map_err(|_| ())?;
        self.aead
            .decrypt_inout_detached(&nonce, b"", buf, &tag)
            .map_err(|_| ())
    }

    /// Read, authenticate and decrypt the next chunk, into `direct` (at
    /// least `CHUNK_SIZE` bytes, to skip a copy) or else into `self.plain`.
    /// Returns the plaintext length.
    fn next_chunk(&mut self, direct: Option<&mut [u8]>) -> Result<usize, Error> {
        if self.nonce.current(false).is_none() {
            // Past the largest counter (the reader stops at the final chunk
            // before it would get here otherwise).
            return Err(Error::PayloadTruncated);
        }
        let index = self.nonce.index();
        self.len = 0;
        self.pos = 0;
        let got = read_full(&mut self.input, &mut self.sealed)?;
        if got < TAG_LEN {
            // Zero chunks (nothing after the header) and a missing final
            // chunk are both truncation; a stub shorter than a tag is a
            // broken chunk.
            return Err(if got == 0 {
                Error::PayloadTruncated
            } else {
                Error::PayloadChunk { index }
            });
        }
        let mut plain = std::mem::take(&mut self.plain);
        let into_plain = direct.is_none();
        let out: &mut [u8] = match direct {
            Some(out) => out,
            None => &mut plain,
        };
        let result = self.open_and_check(got, index, out);
        self.plain = plain;
        let plain_len = result?;
        if into_plain {
            self.len = plain_len;
        }
        Ok(plain_len)
    }

    /// [`Self::next_chunk`] after the read: open the chunk (a full one as a
    /// middle chunk first, then as the final one) and, for the final chunk,
    /// check the rules that must hold before it is released.
    fn open_and_check(&mut self, got: usize, index: u64, out: &mut [u8]) -> Result<usize, Error> {
        let last = if got < CHUNK_SIZE + TAG_LEN {
            // A short chunk can only be the final one.
            self.open(got, true, out)
                .map_err(|_| Error::PayloadChunk { index })?;
            true
        } else if self.open(got, false, out).is_ok() {
            false
        } else {
            // A full chunk may also be a full final chunk: try "last" next
            // (as age does), from the same, untouched ciphertext.
            self.open(got, true, out)
                .map_err(|_| Error::PayloadChunk { index })?;
            true
        };
        let plain_len = got - TAG_LEN;
        self.nonce.advance(last);
        if last {
            if plain_len == 0 && index > 0 {
                return Err(Error::PayloadLastChunkEmpty);
            }
            let mut probe = [0u8; 1];
            let trailing = read_full(&mut self.input, &mut probe);
            if !matches!(trailing, Ok(0)) {
                out[..plain_len].fill(0);
                return Err(match trailing {
                    Err(e) => Error::from_io(e),
                    Ok(_) => Error::PayloadTrailingData,
                });
            }
            self.finished = true;
        }
        Ok(plain_len)
    }
}

impl<R: Read> Read for StreamReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.len {
            if let Some(e) = self.failed.again() {
                return Err(e.into_io());
            }
            if self.finished || out.is_empty() {
                return Ok(0);
            }
            // A whole chunk fits: decrypt it straight into `out`.
            let direct = (out.len() >= CHUNK_SIZE).then_some(&mut *out);
            let took_direct = direct.is_some();
            match self.next_chunk(direct) {
                Ok(n) if took_direct => return Ok(n),
                Ok(_) => {}
                Err(e) => {
                    self.len = 0;
                    self.pos = 0;
                    return Err(self.failed.keep(e).into_io());
                }
            }
        }
        Ok(hand_out(out, &self.plain[..self.len], &mut self.pos))
    }
}

#[cfg(test)]
pub(crate) mod tests {
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

    /// Read `r` to its end in reads of `piece` bytes; an error must stay.
    pub(crate) fn read_in_pieces(r: &mut impl Read, piece: usize) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; piece];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => {
                    assert!(r.read(&mut buf).is_err(), "the error is not sticky");
                    return Err(Error::from_io(e));
                }
            }
        }
    }

    /// Whole chunks through [`StreamReader::read_chunk`], after one odd
    /// `read` so that the half-handed-out chunk is taken over too; an
    /// error must stay, through both interfaces.
    fn decrypt_by_chunks(ct: &[u8]) -> Result<Vec<u8>, Error> {
        let mut r = StreamReader::new(ct, key());
        let mut out = vec![0u8; 5000];
        let n = r.read(&mut out).map_err(Error::from_io)?;
        out.truncate(n);
        let mut chunk = Box::new([0u8; CHUNK_SIZE]);
        loop {
            match r.read_chunk(&mut chunk) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) => {
                    assert!(r.read_chunk(&mut chunk).is_err(), "the error is not sticky");
                    assert!(r.read(&mut [0u8; 10]).is_err(), "the error is not sticky");
                    return Err(e);
                }
            }
        }
        assert!(r.is_finished());
        assert_eq!(r.read_chunk(&mut chunk).unwrap(), 0, "the end stays");
        Ok(out)
    }

    /// Reads of exactly one chunk, which StreamReader decrypts straight
    /// into the caller's buffer.
    fn decrypt_whole_chunks(ct: &[u8]) -> Result<Vec<u8>, Error> {
        let mut r = StreamReader::new(ct, key());
        let out = read_in_pieces(&mut r, CHUNK_SIZE)?;
        assert!(r.is_finished());
        Ok(out)
    }

    /// Whole-chunk reads and `read_chunk` release the same bytes and fail
    /// the same way as odd-sized reads, on every rule of FORMAT.md §4.
    #[test]
    fn chunk_reads_match_the_plain_reader() {
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for len in [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 5] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let ct = encrypt(&plain);
            cases.push(ct.clone());
            // Truncated at a chunk boundary, with trailing data, flipped.
            if ct.len() > CHUNK_SIZE + TAG_LEN {
                cases.push(ct[..CHUNK_SIZE + TAG_LEN].to_vec());
            }
            let mut trailing = ct.clone();
            trailing.push(0);
            cases.push(trailing);
            let mut flipped = ct.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            cases.push(flipped);
        }
        cases.push(Vec::new());
        for ct in &cases {
            let plain = decrypt(ct);
            for other in [decrypt_by_chunks(ct), decrypt_whole_chunks(ct)] {
                match (&plain, &other) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b),
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                    _ => panic!("{} bytes: {plain:?} vs {other:?}", ct.len()),
                }
            }
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

    /// One chunk sealed under an explicit counter and flag, for streams the
    /// writer refuses to produce.
    fn raw_chunk(counter: u128, last: bool, plain: &[u8]) -> Vec<u8> {
        let mut out = plain.to_vec();
        let tag = key()
            .aead()
            .encrypt_inout_detached(&nonce(counter, last), b"", out.as_mut_slice().into())
            .unwrap();
        out.extend_from_slice(&tag);
        out
    }

    #[test]
    fn two_final_chunks_are_an_error() {
        let mut ct = raw_chunk(0, true, b"abc");
        ct.extend(raw_chunk(1, true, b"def"));
        // The reader sees one 38-byte "chunk" that authenticates as neither.
        assert!(matches!(
            decrypt(&ct),
            Err(Error::PayloadChunk { index: 0 })
        ));
        // Two full final chunks: the second is trailing data.
        let mut ct = raw_chunk(0, true, &[1u8; CHUNK_SIZE]);
        ct.extend(raw_chunk(1, true, &[2u8; CHUNK_SIZE]));
        assert!(matches!(decrypt(&ct), Err(Error::PayloadTrailingData)));
    }

    /// The nonce state has no nonce after the final chunk: the writer
    /// cannot seal a second final chunk, or any chunk after it.
    #[test]
    fn no_chunk_after_the_final_one() {
        let mut n = StreamNonce::new();
        assert!(n.current(true).is_some());
        n.advance(false);
        assert_eq!(n.index(), 1);
        n.advance(true);
        assert!(n.current(true).is_none() && n.current(false).is_none());

        let mut w = StreamWriter::new(Vec::new(), key());
        w.write_all(b"abc").unwrap();
        w.seal_chunk(true).unwrap();
        assert!(w.seal_chunk(true).is_err());
        assert!(w.seal_chunk(false).is_err());
        // The raw chunk helper agrees with the writer.
        let ct = encrypt(b"abc");
        assert_eq!(ct, raw_chunk(0, true, b"abc"));
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
