//! Payload decryption on a second thread, for the restore
//! (docs/PERFORMANCE.md, "Read-ahead").
//!
//! The envelope decrypts synchronously and starts no thread. [`ReadAhead`]
//! drives its [`StreamReader::read_chunk`] on a thread of its own, up to
//! [`READ_AHEAD_CHUNKS`] chunks ahead of the consumer, so that
//! authenticating and decrypting the payload overlaps with whatever the
//! consumer does with the plaintext (hashing each body and writing it out).
//!
//! It releases exactly what the plain reader releases: each chunk once its
//! tag has verified, the final chunk once the end of input is confirmed,
//! then an explicit end. The first error ends the stream for good, and so
//! does a thread that stops without saying either. Plaintext buffers travel
//! back to be reused and are wiped when dropped.

use std::io::{self, Read};
use std::sync::mpsc;

use zeroize::Zeroizing;

use crate::envelope::{CHUNK_SIZE, Error, FirstError, StreamReader, hand_out};

/// Chunks the thread decrypts before the consumer asks for them: with the
/// one being read and the one being decrypted, at most four chunks of
/// plaintext (256 KiB) exist at once, whatever the payload's size.
pub const READ_AHEAD_CHUNKS: usize = 2;

/// What the decryption thread hands over: a verified chunk's plaintext,
/// the confirmed end of the stream (`None`), or the error that ended it.
type Handover = Result<Option<Zeroizing<Vec<u8>>>, Error>;

/// A [`StreamReader`] decrypting on its own thread ([`ReadAhead::spawn`]).
pub struct ReadAhead {
    full: mpsc::Receiver<Handover>,
    empty: mpsc::Sender<Zeroizing<Vec<u8>>>,
    current: Zeroizing<Vec<u8>>,
    pos: usize,
    finished: bool,
    failed: FirstError,
}

impl ReadAhead {
    /// Move `reader` to a new thread that decrypts up to
    /// [`READ_AHEAD_CHUNKS`] chunks ahead, and read its plaintext from the
    /// returned reader. Fails only when no thread can be started.
    pub fn spawn<R: Read + Send + 'static>(reader: StreamReader<R>) -> io::Result<ReadAhead> {
        let (full_tx, full_rx) = mpsc::sync_channel::<Handover>(READ_AHEAD_CHUNKS);
        let (empty_tx, empty_rx) = mpsc::channel::<Zeroizing<Vec<u8>>>();
        let mut reader = reader;
        std::thread::Builder::new()
            .name("zeta-creds-stream".into())
            .spawn(move || {
                loop {
                    let handover = if reader.is_finished() {
                        Ok(None)
                    } else {
                        let mut buf = empty_rx
                            .try_recv()
                            .unwrap_or_else(|_| Zeroizing::new(vec![0u8; CHUNK_SIZE]));
                        let chunk: &mut [u8; CHUNK_SIZE] = (&mut buf[..])
                            .try_into()
                            .expect("read-ahead buffers are CHUNK_SIZE long");
                        match reader.read_chunk(chunk) {
                            // Only once the stream is complete.
                            Ok(0) => Ok(None),
                            Ok(n) => {
                                buf.truncate(n);
                                Ok(Some(buf))
                            }
                            Err(e) => Err(e),
                        }
                    };
                    let last = !matches!(handover, Ok(Some(_)));
                    // A send fails only when the consumer is gone.
                    if full_tx.send(handover).is_err() || last {
                        return;
                    }
                }
            })?;
        Ok(ReadAhead {
            full: full_rx,
            empty: empty_tx,
            current: Zeroizing::new(Vec::new()),
            pos: 0,
            finished: false,
            failed: FirstError::default(),
        })
    }

    /// True once the final chunk has been authenticated and end of input
    /// confirmed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if let Some(e) = self.failed.again() {
                return Err(e.into_io());
            }
            if self.finished || out.is_empty() {
                return Ok(0);
            }
            let handover = self.full.recv().unwrap_or_else(|_| {
                Err(Error::Io(io::Error::other(
                    "the payload decryption thread stopped",
                )))
            });
            match handover {
                Ok(Some(next)) => {
                    let mut done = std::mem::replace(&mut self.current, next);
                    // Back to full length; its bytes are overwritten before
                    // they are handed out again.
                    done.resize(CHUNK_SIZE, 0);
                    // Fails only when the thread is done: then the buffer
                    // is dropped here, and wiped.
                    let _ = self.empty.send(done);
                    self.pos = 0;
                }
                Ok(None) => self.finished = true,
                Err(e) => return Err(self.failed.keep(e).into_io()),
            }
        }
        Ok(hand_out(out, &self.current, &mut self.pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{
        Binding, FileKey, Header, HeaderFields, Host, TAG_LEN, UsbUuid, read_in_pieces,
    };
    use secrecy::SecretString;
    use std::io::Write;

    fn pass() -> SecretString {
        SecretString::from("pw")
    }

    /// A blob sealed through the envelope's public API with fixed
    /// randomness: (header bytes, STREAM ciphertext).
    fn seal(plain: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let fields = HeaderFields {
            usb_uuid: UsbUuid::parse("abcd-1234").unwrap(),
            log_n: 10,
            generation: 1,
            created: 1_700_000_000,
            tool_version: "0.1.0".into(),
            persona: String::new(),
            host: Some(Host::parse("node-a").unwrap()),
        };
        let mut w = Header::seal_with(
            Vec::new(),
            &pass(),
            &fields,
            FileKey::from_bytes_for_vectors([3; 32]),
            [4; 16],
            [5; 16],
        )
        .unwrap();
        // Odd-sized pieces, to exercise the writer's buffering.
        for piece in plain.chunks(7919) {
            w.write_all(piece).unwrap();
        }
        let blob = w.finish().unwrap();
        let len = Header::read(&mut &blob[..]).unwrap().len();
        (blob[..len].to_vec(), blob[len..].to_vec())
    }

    /// Unlock `header` and hand its payload reader over `ct` to `read`.
    fn open<T>(
        header: &[u8],
        ct: &[u8],
        read: impl FnOnce(StreamReader<io::Cursor<Vec<u8>>>) -> T,
    ) -> T {
        let h = Header::read(&mut &header[..]).unwrap();
        let unlocked = h.unlock(&pass(), &Binding::default(), 10).unwrap();
        read(unlocked.payload_reader(io::Cursor::new(ct.to_vec())))
    }

    /// The plain reader, to its end.
    fn decrypt(header: &[u8], ct: &[u8]) -> Result<Vec<u8>, Error> {
        open(header, ct, |mut r| {
            let mut out = Vec::new();
            r.read_to_end(&mut out).map_err(Error::from_io)?;
            Ok(out)
        })
    }

    /// Odd-sized reads through the read-ahead reader, to cross chunk
    /// boundaries inside one read.
    fn decrypt_ahead(header: &[u8], ct: &[u8]) -> Result<Vec<u8>, Error> {
        open(header, ct, |r| {
            let mut r = ReadAhead::spawn(r).unwrap();
            let out = read_in_pieces(&mut r, 5000)?;
            assert!(r.is_finished());
            Ok(out)
        })
    }

    /// The read-ahead reader releases the same bytes and fails the same
    /// way as the plain one, on every rule of FORMAT.md §4.
    #[test]
    fn read_ahead_matches_the_plain_reader() {
        let mut cases: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for len in [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 5] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let (header, ct) = seal(&plain);
            cases.push((header.clone(), ct.clone()));
            // Truncated at a chunk boundary, with trailing data, flipped.
            if ct.len() > CHUNK_SIZE + TAG_LEN {
                cases.push((header.clone(), ct[..CHUNK_SIZE + TAG_LEN].to_vec()));
            }
            let mut trailing = ct.clone();
            trailing.push(0);
            cases.push((header.clone(), trailing));
            let mut flipped = ct.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            cases.push((header.clone(), flipped));
            // No payload at all.
            cases.push((header, Vec::new()));
        }
        for (header, ct) in &cases {
            let plain = decrypt(header, ct);
            let ahead = decrypt_ahead(header, ct);
            match (&plain, &ahead) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                _ => panic!("{} bytes: {plain:?} vs {ahead:?}", ct.len()),
            }
        }
    }
}
