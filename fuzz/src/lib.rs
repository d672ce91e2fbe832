//! What more than one fuzz target needs.

use std::io::Read;

use zeta_creds::envelope::{EntryMeta, EntryReader, Error};

/// The manifest user and every entry with its body.
pub type Stream = (String, Vec<(EntryMeta, Vec<u8>)>);

/// Read a whole entry stream from `input`, bodies in reads of `piece`
/// bytes.
pub fn read_stream(input: impl Read, piece: usize) -> Result<Stream, Error> {
    let mut r = EntryReader::new(input)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; piece];
    while let Some(meta) = r.next_entry()? {
        let mut body = Vec::new();
        loop {
            let n = r.read_body(&mut buf)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
        out.push((meta, body));
    }
    Ok((r.user().to_owned(), out))
}
