//! The header (FORMAT.md §2) and the only path from a passphrase to a
//! payload reader.
//!
//! Layout, all integers big-endian:
//!
//! ```text
//! magic          10  "zeta-creds"
//! version         1  0x02 (0x01: read only, no host_len/host)
//! uuid_len        1  1..=64
//! uuid            n  normalized USB UUID, [0-9a-z-]
//! log_n           1  10..=22
//! salt           16  scrypt salt
//! wrapped_key    48  ChaCha20-Poly1305(KEK, 0, file key)
//! generation      8  u64
//! created         8  u64, seconds since the Unix epoch
//! tool_len        1  1..=64
//! tool_version    n  printable ASCII 0x21..=0x7e
//! persona_len     1  0..=64
//! persona         n  [a-z0-9_-]
//! host_len        1  1..=64       (version 2 only)
//! host            n  [a-z0-9.-]   (version 2 only)
//! payload_nonce  16
//! mac            32  HMAC-SHA-256 over every byte above, as received
//! ```

use std::io::{Read, Write};

use secrecy::SecretString;

use super::keys::{FileKey, Kek, PayloadKey};
use super::stream::{StreamReader, StreamWriter};
use super::{
    Error, Host, MAC_LEN, MAGIC, MAX_HOST_LEN, MAX_LOG_N, MAX_PERSONA_LEN, MAX_TOOL_VERSION_LEN,
    MIN_LOG_N, PAYLOAD_NONCE_LEN, SALT_LEN, UsbUuid, VERSION, VERSION_1, WRAPPED_KEY_LEN,
    read_full, validate_persona,
};

/// The header fields a bundle chooses. When read from a blob they are
/// unauthenticated until [`Header::unlock`] has checked the MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderFields {
    /// The USB stick this blob is bound to.
    pub usb_uuid: UsbUuid,
    /// scrypt work factor: N = 2^log_n.
    pub log_n: u8,
    /// Rises with every bundle and rekey; the restore refuses to go back.
    pub generation: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// The zeta-creds version that wrote the blob.
    pub tool_version: String,
    /// The persona the blob was bundled for; empty for none.
    pub persona: String,
    /// The host the blob was sealed for. `None` only in a version 1 blob,
    /// which has no host field; every blob written now records one.
    pub host: Option<Host>,
}

impl HeaderFields {
    /// The envelope version these fields are encoded as: 1 without a host.
    pub fn version(&self) -> u8 {
        if self.host.is_some() {
            VERSION
        } else {
            VERSION_1
        }
    }

    /// Check the fields of a header about to be written; `allow_v1` (the
    /// vectors' constructors only) lets one without a host through.
    fn validate(&self, allow_v1: bool) -> Result<(), Error> {
        if self.host.is_none() && !allow_v1 {
            return Err(Error::MissingHost);
        }
        if !(MIN_LOG_N..=MAX_LOG_N).contains(&self.log_n) {
            return Err(Error::WorkFactorOutOfRange { log_n: self.log_n });
        }
        if !valid_tool_version(self.tool_version.as_bytes()) {
            return Err(Error::InvalidHeader {
                field: "tool_version",
                reason: format!(
                    "expected 1 to {MAX_TOOL_VERSION_LEN} printable ASCII characters, got {:?}",
                    self.tool_version
                ),
            });
        }
        validate_persona(&self.persona)
    }
}

fn valid_tool_version(bytes: &[u8]) -> bool {
    (1..=MAX_TOOL_VERSION_LEN).contains(&bytes.len())
        && bytes.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A parsed header, not yet authenticated.
///
/// Everything it shows may have been forged by whoever could write the ESP;
/// only [`Header::unlock`] turns it into something to trust.
#[derive(Debug)]
pub struct Header {
    fields: HeaderFields,
    salt: [u8; SALT_LEN],
    wrapped_key: [u8; WRAPPED_KEY_LEN],
    payload_nonce: [u8; PAYLOAD_NONCE_LEN],
    mac: [u8; MAC_LEN],
    /// The header bytes exactly as received, from the magic through the
    /// payload nonce: the MAC input. We MAC what we read, never a
    /// re-serialisation of it.
    encoded: Vec<u8>,
}

impl Header {
    /// Write a new blob's header and return the payload writer.
    ///
    /// A fresh file key, scrypt salt and payload nonce are drawn from the
    /// operating system's RNG.
    pub fn seal<W: Write>(
        out: W,
        passphrase: &SecretString,
        fields: &HeaderFields,
    ) -> Result<StreamWriter<W>, Error> {
        let file_key = FileKey::generate()?;
        let mut salt = [0u8; SALT_LEN];
        super::os_random(&mut salt)?;
        let mut nonce = [0u8; PAYLOAD_NONCE_LEN];
        super::os_random(&mut nonce)?;
        Self::seal_chosen(out, passphrase, fields, file_key, salt, nonce, false)
    }

    /// [`Header::seal`] with chosen randomness, for known-answer vectors
    /// only. Reusing a file key or nonce across blobs breaks confidentiality.
    /// Unlike `seal`, it writes a version 1 header for fields without a
    /// host (the vectors that prove version 1 is still read). Exists only
    /// with the `test-vectors` feature.
    #[cfg(any(test, feature = "test-vectors"))]
    pub fn seal_with<W: Write>(
        out: W,
        passphrase: &SecretString,
        fields: &HeaderFields,
        file_key: FileKey,
        salt: [u8; SALT_LEN],
        payload_nonce: [u8; PAYLOAD_NONCE_LEN],
    ) -> Result<StreamWriter<W>, Error> {
        Self::seal_chosen(out, passphrase, fields, file_key, salt, payload_nonce, true)
    }

    /// What [`Header::seal`] does once its randomness is drawn.
    fn seal_chosen<W: Write>(
        mut out: W,
        passphrase: &SecretString,
        fields: &HeaderFields,
        file_key: FileKey,
        salt: [u8; SALT_LEN],
        payload_nonce: [u8; PAYLOAD_NONCE_LEN],
        allow_v1: bool,
    ) -> Result<StreamWriter<W>, Error> {
        fields.validate(allow_v1)?;
        let kek = Kek::derive(
            passphrase,
            &salt,
            fields.log_n,
            &fields.usb_uuid,
            fields.host.as_ref(),
        )?;
        let wrapped_key = kek.wrap(&file_key);
        let encoded = encode(fields, &salt, &wrapped_key, &payload_nonce);
        let mac = file_key.mac_key(fields.host.is_none()).compute(&encoded);
        out.write_all(&encoded)?;
        out.write_all(&mac)?;
        let payload_key = file_key.payload_key(&payload_nonce);
        Ok(StreamWriter::new(out, payload_key))
    }

    /// Parse a header from the start of a blob. Reads exactly the header
    /// and its MAC, leaving `reader` at the first payload byte.
    pub fn read<R: Read + ?Sized>(reader: &mut R) -> Result<Header, Error> {
        let mut p = Parser {
            reader,
            encoded: Vec::with_capacity(256),
        };
        let magic = p.bytes_or_eof(MAGIC.len())?;
        if magic.as_slice() != MAGIC.as_slice() {
            if MAGIC.starts_with(&magic) {
                return Err(Error::TruncatedHeader);
            }
            return Err(Error::BadMagic);
        }
        let version = p.u8()?;
        if version != VERSION && version != VERSION_1 {
            return Err(Error::UnsupportedVersion(version));
        }
        let uuid_len = p.u8()? as usize;
        let uuid_bytes = p.bytes(uuid_len)?;
        let usb_uuid = UsbUuid::from_header(&uuid_bytes).ok_or_else(|| Error::InvalidHeader {
            field: "uuid",
            reason: "expected 1 to 64 characters of [0-9a-z-]".into(),
        })?;
        let log_n = p.u8()?;
        if !(MIN_LOG_N..=MAX_LOG_N).contains(&log_n) {
            return Err(Error::WorkFactorOutOfRange { log_n });
        }
        let salt = p.array::<SALT_LEN>()?;
        let wrapped_key = p.array::<WRAPPED_KEY_LEN>()?;
        let generation = u64::from_be_bytes(p.array::<8>()?);
        let created = u64::from_be_bytes(p.array::<8>()?);
        let tool_len = p.u8()? as usize;
        let tool = p.bytes(tool_len)?;
        if !valid_tool_version(&tool) {
            return Err(Error::InvalidHeader {
                field: "tool_version",
                reason: format!("expected 1 to {MAX_TOOL_VERSION_LEN} printable ASCII characters"),
            });
        }
        let persona_len = p.u8()? as usize;
        if persona_len > MAX_PERSONA_LEN {
            return Err(Error::InvalidHeader {
                field: "persona",
                reason: format!("length {persona_len} exceeds {MAX_PERSONA_LEN}"),
            });
        }
        let persona =
            String::from_utf8(p.bytes(persona_len)?).map_err(|_| Error::InvalidHeader {
                field: "persona",
                reason: "not ASCII".into(),
            })?;
        validate_persona(&persona).map_err(|_| Error::InvalidHeader {
            field: "persona",
            reason: "expected [a-z0-9_-]".into(),
        })?;
        let host = if version == VERSION_1 {
            None
        } else {
            let host_len = p.u8()? as usize;
            if !(1..=MAX_HOST_LEN).contains(&host_len) {
                return Err(Error::InvalidHeader {
                    field: "host",
                    reason: format!("length {host_len} is outside 1..={MAX_HOST_LEN}"),
                });
            }
            let bytes = p.bytes(host_len)?;
            Some(
                Host::from_header(&bytes).ok_or_else(|| Error::InvalidHeader {
                    field: "host",
                    reason: "expected [a-z0-9.-], already lower-cased".into(),
                })?,
            )
        };
        let payload_nonce = p.array::<PAYLOAD_NONCE_LEN>()?;
        let encoded = std::mem::take(&mut p.encoded);
        let mut mac = [0u8; MAC_LEN];
        if read_full(p.reader, &mut mac)? != MAC_LEN {
            return Err(Error::TruncatedHeader);
        }
        Ok(Header {
            fields: HeaderFields {
                usb_uuid,
                log_n,
                generation,
                created,
                // valid_tool_version admits ASCII only.
                tool_version: String::from_utf8_lossy(&tool).into_owned(),
                persona,
                host,
            },
            salt,
            wrapped_key,
            payload_nonce,
            mac,
            encoded,
        })
    }

    /// The fields as read. **Unauthenticated**: anyone with write access to
    /// the ESP can change them; nothing here is checked until `unlock`.
    pub fn unauthenticated_fields(&self) -> &HeaderFields {
        &self.fields
    }

    /// The scrypt salt as read (unauthenticated).
    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    /// The payload nonce as read (unauthenticated).
    pub fn payload_nonce(&self) -> &[u8; PAYLOAD_NONCE_LEN] {
        &self.payload_nonce
    }

    /// Length of the header including its MAC; the payload starts here.
    pub fn len(&self) -> usize {
        self.encoded.len() + MAC_LEN
    }

    /// Never true: a header has at least its magic. For clippy's sake.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// An identifier of this exact header: SHA-256 over the header bytes
    /// as received and the header MAC. Both are public (on the ESP), so
    /// the identifier is not secret and reveals nothing about the file key
    /// or the passphrase. **Unauthenticated**: equal identifiers mean equal
    /// header bytes, not a genuine blob; good only for deciding that
    /// nothing needs doing (`restore --if-new`), never for trusting.
    pub fn id(&self) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(&self.encoded);
        h.update(self.mac);
        h.finalize().into()
    }

    /// Check the binding and the work-factor cap, run scrypt, unwrap the
    /// file key and verify the header MAC, in that order.
    ///
    /// * `expected`: the stick the caller holds and the host it is
    ///   ([`Binding`]); what it leaves out is not checked (`verify` has no
    ///   stick, `restore --allow-other-host` takes any host). The KEK is
    ///   derived from the caller's UUID (or the header's, with none) and
    ///   the header's host: a host or UUID edited in the clear to pass the
    ///   cheap check does not unwrap.
    /// * `max_log_n`: refuse more scrypt work than this *before* running
    ///   scrypt, since nothing in the header is authenticated yet.
    pub fn unlock(
        &self,
        passphrase: &SecretString,
        expected: &Binding<'_>,
        max_log_n: u8,
    ) -> Result<UnlockedHeader<'_>, Error> {
        self.check_binding(expected)?;
        self.check_work_factor(max_log_n)?;
        let uuid = expected.usb_uuid.unwrap_or(&self.fields.usb_uuid);
        let kek = Kek::derive(
            passphrase,
            &self.salt,
            self.fields.log_n,
            uuid,
            self.fields.host.as_ref(),
        )?;
        let file_key = kek.unwrap(&self.wrapped_key)?;
        file_key
            .mac_key(self.fields.host.is_none())
            .verify(&self.encoded, &self.mac)?;
        // The MAC holds: only now may the payload key exist.
        let payload_key = file_key.payload_key(&self.payload_nonce);
        Ok(UnlockedHeader {
            header: self,
            file_key,
            payload_key,
        })
    }

    /// Refuse a blob whose (unauthenticated) UUID is not the stick's, or
    /// whose host is not the caller's: a cheap "wrong stick" or "another
    /// machine's blob" answer before a passphrase is asked (FORMAT.md §6
    /// step 2). The stick is checked first. A version 1 blob records no
    /// host, so it fails any host check. Both are also bound into the KEK,
    /// so editing them in the clear gains nothing.
    pub fn check_binding(&self, expected: &Binding<'_>) -> Result<(), Error> {
        if let Some(uuid) = expected.usb_uuid
            && uuid != &self.fields.usb_uuid
        {
            return Err(Error::UsbUuidMismatch {
                blob: self.fields.usb_uuid.to_string(),
                expected: uuid.to_string(),
            });
        }
        if let Some(host) = expected.host
            && self.fields.host.as_ref() != Some(host)
        {
            return Err(Error::HostMismatch {
                blob: self.fields.host.as_ref().map(Host::to_string),
                expected: host.to_string(),
            });
        }
        Ok(())
    }

    /// Refuse a work factor above `max_log_n` (before any scrypt work).
    pub fn check_work_factor(&self, max_log_n: u8) -> Result<(), Error> {
        if self.fields.log_n > max_log_n {
            return Err(Error::WorkFactorTooHigh {
                log_n: self.fields.log_n,
                cap: max_log_n,
            });
        }
        Ok(())
    }
}

/// What a reader expects a blob to be bound to (FORMAT.md §6 step 2):
/// the stick it holds and the host it is. A `None` is not checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct Binding<'a> {
    /// The stick the caller holds; `None` checks no stick (`verify`, `rekey`).
    pub usb_uuid: Option<&'a UsbUuid>,
    /// The host the caller is; `None` checks no host (`verify`, `rekey`,
    /// `restore --allow-other-host`).
    pub host: Option<&'a Host>,
}

/// A header whose MAC has been verified with the file key it wraps.
pub struct UnlockedHeader<'h> {
    header: &'h Header,
    file_key: FileKey,
    payload_key: PayloadKey,
}

impl UnlockedHeader<'_> {
    /// The header fields, now authenticated.
    pub fn fields(&self) -> &HeaderFields {
        &self.header.fields
    }

    /// A STREAM reader over the payload that follows the header.
    pub fn payload_reader<R: Read>(self, payload: R) -> StreamReader<R> {
        StreamReader::new(payload, self.payload_key)
    }

    /// Rekey: wrap the same file key under a new passphrase, UUID and/or
    /// host with a fresh salt, and return the new header bytes (MAC
    /// included), always as version 2 (`new_fields.host` is required). The
    /// payload nonce is kept, so the payload bytes are copied unchanged,
    /// from a version 1 blob too.
    pub fn rewrap(
        &self,
        new_passphrase: &SecretString,
        new_fields: &HeaderFields,
    ) -> Result<Vec<u8>, Error> {
        let mut salt = [0u8; SALT_LEN];
        super::os_random(&mut salt)?;
        self.rewrap_chosen(new_passphrase, new_fields, salt)
    }

    /// [`UnlockedHeader::rewrap`] with a chosen salt, for vectors only.
    /// Exists only with the `test-vectors` feature.
    #[cfg(any(test, feature = "test-vectors"))]
    pub fn rewrap_with_salt(
        &self,
        new_passphrase: &SecretString,
        new_fields: &HeaderFields,
        salt: [u8; SALT_LEN],
    ) -> Result<Vec<u8>, Error> {
        self.rewrap_chosen(new_passphrase, new_fields, salt)
    }

    /// What [`UnlockedHeader::rewrap`] does once its salt is drawn.
    fn rewrap_chosen(
        &self,
        new_passphrase: &SecretString,
        new_fields: &HeaderFields,
        salt: [u8; SALT_LEN],
    ) -> Result<Vec<u8>, Error> {
        new_fields.validate(false)?;
        let kek = Kek::derive(
            new_passphrase,
            &salt,
            new_fields.log_n,
            &new_fields.usb_uuid,
            new_fields.host.as_ref(),
        )?;
        let wrapped = kek.wrap(&self.file_key);
        let mut out = encode(new_fields, &salt, &wrapped, &self.header.payload_nonce);
        let mac = self.file_key.mac_key(false).compute(&out);
        out.extend_from_slice(&mac);
        Ok(out)
    }
}

/// Serialise a header we built ourselves (FORMAT.md §2), without its MAC:
/// version 2, or version 1 for fields without a host (vectors only, which
/// `validate` enforces).
fn encode(
    fields: &HeaderFields,
    salt: &[u8; SALT_LEN],
    wrapped_key: &[u8; WRAPPED_KEY_LEN],
    payload_nonce: &[u8; PAYLOAD_NONCE_LEN],
) -> Vec<u8> {
    let uuid = fields.usb_uuid.as_str().as_bytes();
    let tool = fields.tool_version.as_bytes();
    let persona = fields.persona.as_bytes();
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(MAGIC);
    out.push(fields.version());
    // Lengths were validated (uuid <= 64, tool <= 64, persona <= 64).
    out.push(uuid.len() as u8);
    out.extend_from_slice(uuid);
    out.push(fields.log_n);
    out.extend_from_slice(salt);
    out.extend_from_slice(wrapped_key);
    out.extend_from_slice(&fields.generation.to_be_bytes());
    out.extend_from_slice(&fields.created.to_be_bytes());
    out.push(tool.len() as u8);
    out.extend_from_slice(tool);
    out.push(persona.len() as u8);
    out.extend_from_slice(persona);
    if let Some(host) = &fields.host {
        // Validated by Host: 1 to 64 bytes.
        out.push(host.as_str().len() as u8);
        out.extend_from_slice(host.as_str().as_bytes());
    }
    out.extend_from_slice(payload_nonce);
    out
}

/// Reads header fields one by one, recording every byte for the MAC.
struct Parser<'r, R: Read + ?Sized> {
    reader: &'r mut R,
    encoded: Vec<u8>,
}

impl<R: Read + ?Sized> Parser<'_, R> {
    /// Read up to `n` bytes; fewer only at end of input.
    fn bytes_or_eof(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        let mut buf = vec![0u8; n];
        let got = read_full(self.reader, &mut buf)?;
        buf.truncate(got);
        self.encoded.extend_from_slice(&buf);
        Ok(buf)
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        let buf = self.bytes_or_eof(n)?;
        if buf.len() != n {
            return Err(Error::TruncatedHeader);
        }
        Ok(buf)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> HeaderFields {
        HeaderFields {
            usb_uuid: UsbUuid::parse("ABCD-1234").unwrap(),
            log_n: 10,
            generation: 3,
            created: 1_700_000_000,
            tool_version: "0.1.0".into(),
            persona: "ops".into(),
            host: Some(Host::parse("node-a").unwrap()),
        }
    }

    fn sealed(pass: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let w = Header::seal_with(
            &mut out,
            &SecretString::from(pass),
            &fields(),
            FileKey::from_bytes_for_vectors([5; 32]),
            [6; 16],
            [7; 16],
        )
        .unwrap();
        w.finish().unwrap();
        out
    }

    #[test]
    fn header_round_trips_and_unlocks() {
        let blob = sealed("pw");
        let mut r = &blob[..];
        let h = Header::read(&mut r).unwrap();
        assert_eq!(h.unauthenticated_fields(), &fields());
        assert_eq!(
            h.len(),
            blob.len() - 16,
            "payload is one empty chunk (a tag)"
        );
        let u = h
            .unlock(&SecretString::from("pw"), &Binding::default(), 20)
            .unwrap();
        assert_eq!(u.fields().generation, 3);
    }

    #[test]
    fn unlock_checks_binding_and_cap_before_scrypt() {
        let blob = sealed("pw");
        let h = Header::read(&mut &blob[..]).unwrap();
        let other = UsbUuid::parse("abcd-9999").unwrap();
        let other_host = Host::parse("node-b").unwrap();
        let pw = SecretString::from("pw");
        let stick = |u| Binding {
            usb_uuid: Some(u),
            host: None,
        };
        assert!(matches!(
            h.unlock(&pw, &stick(&other), 20),
            Err(Error::UsbUuidMismatch { .. })
        ));
        let own_uuid = fields().usb_uuid;
        let on = |host| Binding {
            usb_uuid: Some(&own_uuid),
            host: Some(host),
        };
        match h.unlock(&pw, &on(&other_host), 20) {
            Err(e @ Error::HostMismatch { .. }) => assert_eq!(
                e.to_string(),
                "blob was sealed for host node-a, not for this host node-b"
            ),
            other => panic!("{:?}", other.map(|_| ())),
        }
        let own = fields().host.unwrap();
        assert!(h.unlock(&pw, &on(&own), 20).is_ok());
        assert!(matches!(
            h.unlock(&pw, &Binding::default(), 9),
            Err(Error::WorkFactorTooHigh { log_n: 10, cap: 9 })
        ));
        assert!(matches!(
            h.unlock(&SecretString::from("nope"), &Binding::default(), 20),
            Err(Error::WrongPassphrase)
        ));
    }

    #[test]
    fn every_truncation_of_the_header_is_a_typed_error() {
        let blob = sealed("pw");
        let h = Header::read(&mut &blob[..]).unwrap();
        for cut in 0..h.len() {
            match Header::read(&mut &blob[..cut]) {
                Err(Error::TruncatedHeader) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn rewrap_keeps_payload_and_changes_binding() {
        let blob = sealed("pw");
        let h = Header::read(&mut &blob[..]).unwrap();
        let u = h
            .unlock(&SecretString::from("pw"), &Binding::default(), 20)
            .unwrap();
        let mut nf = fields();
        nf.usb_uuid = UsbUuid::parse("1111-2222").unwrap();
        nf.host = Some(Host::parse("node-b").unwrap());
        nf.generation = 4;
        let mut new_blob = u.rewrap(&SecretString::from("new"), &nf).unwrap();
        new_blob.extend_from_slice(&blob[h.len()..]);
        let h2 = Header::read(&mut &new_blob[..]).unwrap();
        let binding = Binding {
            usb_uuid: Some(&nf.usb_uuid),
            host: nf.host.as_ref(),
        };
        let u2 = h2.unlock(&SecretString::from("new"), &binding, 20).unwrap();
        let mut plain = Vec::new();
        u2.payload_reader(&new_blob[h2.len()..])
            .read_to_end(&mut plain)
            .unwrap();
        assert!(plain.is_empty());
        assert!(matches!(
            h2.unlock(&SecretString::from("pw"), &Binding::default(), 20),
            Err(Error::WrongPassphrase)
        ));
    }

    #[test]
    fn version_1_is_read_and_rewrapped_to_version_2_with_the_same_payload() {
        let mut v1 = fields();
        v1.host = None;
        let mut blob = Vec::new();
        let mut w = Header::seal_with(
            &mut blob,
            &SecretString::from("pw"),
            &v1,
            FileKey::from_bytes_for_vectors([5; 32]),
            [6; 16],
            [7; 16],
        )
        .unwrap();
        std::io::Write::write_all(&mut w, b"payload bytes").unwrap();
        w.finish().unwrap();
        assert_eq!(blob[MAGIC.len()], VERSION_1);
        let h = Header::read(&mut &blob[..]).unwrap();
        assert_eq!(h.unauthenticated_fields().host, None);
        // A host check refuses it, as it would another host.
        let host = Host::parse("node-a").unwrap();
        let b = Binding {
            usb_uuid: None,
            host: Some(&host),
        };
        assert!(matches!(
            h.check_binding(&b),
            Err(Error::HostMismatch { blob: None, .. })
        ));
        let u = h
            .unlock(&SecretString::from("pw"), &Binding::default(), 20)
            .unwrap();
        // A rewrap must name a host; then it is version 2.
        assert!(matches!(
            u.rewrap(&SecretString::from("pw"), &v1),
            Err(Error::MissingHost)
        ));
        let mut new_blob = u.rewrap(&SecretString::from("pw"), &fields()).unwrap();
        assert_eq!(new_blob[MAGIC.len()], VERSION);
        new_blob.extend_from_slice(&blob[h.len()..]);
        let h2 = Header::read(&mut &new_blob[..]).unwrap();
        let u2 = h2.unlock(&SecretString::from("pw"), &b, 20).unwrap();
        let mut plain = Vec::new();
        u2.payload_reader(&new_blob[h2.len()..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, b"payload bytes");
    }

    #[test]
    fn production_seal_refuses_fields_without_a_host() {
        let mut v1 = fields();
        v1.host = None;
        assert!(matches!(
            Header::seal(Vec::new(), &SecretString::from("pw"), &v1),
            Err(Error::MissingHost)
        ));
    }
}
