//! The key schedule (FORMAT.md §3).
//!
//! Each key is its own zeroizing newtype so that one can never stand in for
//! another: a [`MacKey`] cannot decrypt a chunk and a [`PayloadKey`] cannot
//! check a header. None of them implements `Debug` with its bytes, `Clone`
//! or `Copy`.

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{
    Error, FILE_KEY_LEN, Host, LABEL_HEADER, LABEL_HEADER_V1, LABEL_KEK, LABEL_KEK_V1,
    LABEL_PAYLOAD, LABEL_SCRYPT, LABEL_SCRYPT_V1, MAC_LEN, PAYLOAD_NONCE_LEN, SALT_LEN, TAG_LEN,
    UsbUuid, WRAPPED_KEY_LEN,
};

/// The random 32-byte key that everything else is derived from. Fresh for
/// every bundle; a re-bundle never reuses it.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct FileKey([u8; FILE_KEY_LEN]);

impl FileKey {
    /// Draw a fresh file key from the operating system's RNG.
    pub fn generate() -> Result<FileKey, Error> {
        let mut key = FileKey([0; FILE_KEY_LEN]);
        super::os_random(&mut key.0)?;
        Ok(key)
    }

    /// A file key with chosen bytes. Only for known-answer test vectors:
    /// reusing a file key across blobs reuses the payload keystream. Exists
    /// only with the `test-vectors` feature.
    #[cfg(any(test, feature = "test-vectors"))]
    pub fn from_bytes_for_vectors(bytes: [u8; FILE_KEY_LEN]) -> FileKey {
        FileKey(bytes)
    }

    /// `MAC key = HKDF-SHA-256(ikm = file key, salt = "", info = "zeta-creds/v2/header")`,
    /// or with `"zeta-creds/v1/header"` for a version 1 header (`v1`).
    pub(super) fn mac_key(&self, v1: bool) -> MacKey {
        let label = if v1 { LABEL_HEADER_V1 } else { LABEL_HEADER };
        MacKey(hkdf_sha256(&self.0, b"", &[label]))
    }

    /// `payload key = HKDF-SHA-256(ikm = file key, salt = payload nonce, info = "zeta-creds/v1/payload")`
    ///
    /// The same in both versions, and no header byte but the nonce goes in:
    /// a rekey from version 1 to 2 keeps the payload as it is.
    ///
    /// Private to the header module: it is only called after the MAC has
    /// been verified (or on a header we built ourselves).
    pub(super) fn payload_key(&self, payload_nonce: &[u8; PAYLOAD_NONCE_LEN]) -> PayloadKey {
        PayloadKey(hkdf_sha256(&self.0, payload_nonce, &[LABEL_PAYLOAD]))
    }
}

/// The bytes scrypt's largest buffer takes at work factor `log_n`
/// (N = 2^log_n, r = 8: N·r·128), which is what a blob's work factor costs
/// in memory.
pub fn scrypt_memory(log_n: u8) -> u64 {
    (1u64 << log_n) * 8 * 128
}

/// The key-encryption key derived from the passphrase and the USB UUID.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(super) struct Kek([u8; 32]);

impl Kek {
    /// ```text
    /// s   = scrypt(P = passphrase, S = "zeta-creds/v2/scrypt" || salt,
    ///              N = 2^log_n, r = 8, p = 1, dkLen = 32)
    /// KEK = HKDF-SHA-256(ikm = s, salt = "",
    ///                    info = "zeta-creds/v2/kek" || 0x00 || uuid || 0x00 || host)
    /// ```
    ///
    /// With `host = None` (a version 1 header, which has none) the labels
    /// are version 1's and the info ends at the UUID (FORMAT.md §12).
    ///
    /// The caller has already checked `log_n` against the format's range and
    /// the restore's cap: this is where the memory and time are spent.
    pub(super) fn derive(
        passphrase: &SecretString,
        salt: &[u8; SALT_LEN],
        log_n: u8,
        uuid: &UsbUuid,
        host: Option<&Host>,
    ) -> Result<Kek, Error> {
        let label = if host.is_some() {
            LABEL_SCRYPT
        } else {
            LABEL_SCRYPT_V1
        };
        let mut scrypt_salt = Vec::with_capacity(label.len() + SALT_LEN);
        scrypt_salt.extend_from_slice(label);
        scrypt_salt.extend_from_slice(salt);
        let params = scrypt::Params::new(log_n, 8, 1).map_err(|_| Error::InvalidHeader {
            field: "log_n",
            reason: format!("scrypt rejects work factor {log_n}"),
        })?;
        // scrypt allocates its N·r·128-byte buffer infallibly: a machine
        // that cannot give it would abort the process. Ask first, so that a
        // blob whose work factor this machine cannot afford is an error that
        // names it. (Not a guarantee under overcommit, where the kernel may
        // still kill the process later; a memory limit such as `ulimit -v`
        // or cgroup `MemoryMax=` on address space is caught here.)
        let need = scrypt_memory(log_n);
        let fits = usize::try_from(need)
            .ok()
            .is_some_and(|n| Vec::<u8>::new().try_reserve_exact(n).is_ok());
        if !fits {
            return Err(Error::InsufficientMemory { log_n, bytes: need });
        }
        let mut s = Zeroizing::new([0u8; 32]);
        scrypt::scrypt(
            passphrase.expose_secret().as_bytes(),
            &scrypt_salt,
            &params,
            &mut s[..],
        )
        .map_err(|_| Error::InvalidHeader {
            field: "log_n",
            reason: "scrypt output length".into(),
        })?;
        // Neither the UUID nor the host contains 0x00, so the separators
        // make the info string unambiguous.
        let uuid = uuid.as_str().as_bytes();
        Ok(Kek(match host {
            Some(host) => hkdf_sha256(
                &s[..],
                b"",
                &[LABEL_KEK, &[0x00], uuid, &[0x00], host.as_str().as_bytes()],
            ),
            None => hkdf_sha256(&s[..], b"", &[LABEL_KEK_V1, &[0x00], uuid]),
        }))
    }

    /// Wrap the file key: ChaCha20-Poly1305 under the KEK, zero nonce.
    ///
    /// The zero nonce is safe because the KEK is used exactly once: it is
    /// derived from a fresh random salt for every wrap (bundle and rekey
    /// both draw a new salt), so no (key, nonce) pair ever repeats.
    pub(super) fn wrap(&self, file_key: &FileKey) -> [u8; WRAPPED_KEY_LEN] {
        let aead = ChaCha20Poly1305::new(&self.0.into());
        let mut out = [0u8; WRAPPED_KEY_LEN];
        out[..FILE_KEY_LEN].copy_from_slice(&file_key.0);
        let tag = aead
            .encrypt_inout_detached(&Nonce::default(), b"", (&mut out[..FILE_KEY_LEN]).into())
            .expect("a 32-byte message is within ChaCha20-Poly1305 limits");
        out[FILE_KEY_LEN..].copy_from_slice(&tag);
        out
    }

    /// Unwrap the file key. The length is fixed by the type, so there is no
    /// ciphertext of another length to try (which would open a partitioning
    /// oracle). ChaCha20-Poly1305 is not key-committing: a crafted wrapped key
    /// could open under two passphrases, which gives an attacker at most one
    /// bit per try; the header MAC, checked next, still binds every field.
    pub(super) fn unwrap(&self, wrapped: &[u8; WRAPPED_KEY_LEN]) -> Result<FileKey, Error> {
        let aead = ChaCha20Poly1305::new(&self.0.into());
        let mut key = FileKey([0; FILE_KEY_LEN]);
        key.0.copy_from_slice(&wrapped[..FILE_KEY_LEN]);
        let tag = Tag::try_from(&wrapped[FILE_KEY_LEN..]).expect("wrapped key tag is 16 bytes");
        debug_assert_eq!(tag.len(), TAG_LEN);
        aead.decrypt_inout_detached(&Nonce::default(), b"", (&mut key.0[..]).into(), &tag)
            .map_err(|_| Error::WrongPassphrase)?;
        Ok(key)
    }
}

/// The key of the header MAC.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(super) struct MacKey([u8; 32]);

impl MacKey {
    /// `HMAC-SHA-256(MAC key, header bytes)`.
    pub(super) fn compute(&self, header_bytes: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(header_bytes);
        mac.finalize().into_bytes().into()
    }

    /// Check a received MAC in constant time.
    pub(super) fn verify(
        &self,
        header_bytes: &[u8],
        received: &[u8; MAC_LEN],
    ) -> Result<(), Error> {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(header_bytes);
        // `verify_slice` compares in constant time (subtle).
        mac.verify_slice(received).map_err(|_| Error::HeaderMac)
    }
}

/// The STREAM key. Only [`super::header`] can make one, and only from a
/// header whose MAC has been verified or that it built itself.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct PayloadKey([u8; 32]);

impl PayloadKey {
    pub(super) fn aead(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&self.0.into())
    }
}

/// `HKDF-SHA-256(ikm, salt, info = concatenation of info_parts)` with 32
/// bytes out. RustCrypto's `Hkdf::new` takes the *salt first*; this wrapper
/// names each argument so the order cannot silently flip.
fn hkdf_sha256(ikm: &[u8], salt: &[u8], info_parts: &[&[u8]]) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut okm = [0u8; 32];
    hk.expand_multi_info(info_parts, &mut okm)
        .expect("32 bytes is a valid HKDF-SHA-256 output length");
    okm
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5869 test case 1, to pin the argument order of our wrapper.
    #[test]
    fn hkdf_wrapper_matches_rfc5869_case_1_prefix() {
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let okm = hkdf_sha256(&ikm, &salt, &[&info[..5], &info[5..]]);
        assert_eq!(
            okm[..],
            hex_literal("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf")[..]
        );
    }

    fn hex_literal(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn wrap_then_unwrap_and_wrong_kek_fails() {
        let uuid = UsbUuid::parse("abcd-1234").unwrap();
        let salt = [7u8; SALT_LEN];
        let pass = SecretString::from("correct horse");
        let host = Host::parse("node-a").unwrap();
        let kek = Kek::derive(&pass, &salt, 10, &uuid, Some(&host)).unwrap();
        let fk = FileKey([9; 32]);
        let wrapped = kek.wrap(&fk);
        assert_eq!(kek.unwrap(&wrapped).unwrap().0, fk.0);

        let other_uuid = UsbUuid::parse("abcd-1235").unwrap();
        let kek2 = Kek::derive(&pass, &salt, 10, &other_uuid, Some(&host)).unwrap();
        assert!(matches!(kek2.unwrap(&wrapped), Err(Error::WrongPassphrase)));
        let kek3 =
            Kek::derive(&SecretString::from("wrong"), &salt, 10, &uuid, Some(&host)).unwrap();
        assert!(matches!(kek3.unwrap(&wrapped), Err(Error::WrongPassphrase)));
        // The host is an input of the KEK, as the UUID is.
        let other_host = Host::parse("node-b").unwrap();
        let kek4 = Kek::derive(&pass, &salt, 10, &uuid, Some(&other_host)).unwrap();
        assert!(matches!(kek4.unwrap(&wrapped), Err(Error::WrongPassphrase)));
        // And a version 1 KEK (no host) is another key again.
        let kek5 = Kek::derive(&pass, &salt, 10, &uuid, None).unwrap();
        assert!(matches!(kek5.unwrap(&wrapped), Err(Error::WrongPassphrase)));
    }

    #[test]
    fn mac_verify_rejects_any_change() {
        let mk = FileKey([1; 32]).mac_key(false);
        let mk1 = FileKey([1; 32]).mac_key(true);
        assert_ne!(mk.compute(b"header"), mk1.compute(b"header"));
        let mac = mk.compute(b"header");
        assert!(mk.verify(b"header", &mac).is_ok());
        assert!(matches!(mk.verify(b"headeR", &mac), Err(Error::HeaderMac)));
        let mut bad = mac;
        bad[31] ^= 1;
        assert!(matches!(mk.verify(b"header", &bad), Err(Error::HeaderMac)));
    }
}
