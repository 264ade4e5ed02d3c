//! The `openssl enc` file format: `Salted__`, an 8-byte salt, then AES-256-CBC with
//! PKCS#7 padding, the key and IV derived from the secret and the salt.
//!
//! Owns: header parsing, key derivation (EVP_BytesToKey with md5/sha256/sha1 and count 1,
//! or PBKDF2-HMAC as `openssl enc -pbkdf2` does it), the streaming [`Decryptor`] and
//! [`Encryptor`], and the plausibility check that tells a wrong secret from the first block.
//! Does not own: where the bytes come from or which part an offset is in (see `pipeline`).

use openssl::hash::MessageDigest;
use openssl::symm::{Cipher, Crypter, Mode};

use crate::error::{Error, Result};

/// The 8 bytes every salted `openssl enc` file starts with.
pub const MAGIC: &[u8; 8] = b"Salted__";
/// Length of magic plus salt.
pub const HEADER_LEN: usize = 16;
/// AES block size.
pub const BLOCK: usize = 16;
/// `openssl enc -pbkdf2` default iteration count.
pub const DEFAULT_PBKDF2_ITER: u32 = 10_000;

/// A message digest used for key derivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    Md5,
    Sha1,
    Sha256,
}

impl Digest {
    fn message_digest(self) -> MessageDigest {
        match self {
            Digest::Md5 => MessageDigest::md5(),
            Digest::Sha1 => MessageDigest::sha1(),
            Digest::Sha256 => MessageDigest::sha256(),
        }
    }

    /// The name `openssl enc -md` takes.
    pub fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha1 => "sha1",
            Digest::Sha256 => "sha256",
        }
    }

    /// Parses an `-md` name.
    pub fn parse(s: &str) -> Option<Digest> {
        match s.to_ascii_lowercase().as_str() {
            "md5" => Some(Digest::Md5),
            "sha1" => Some(Digest::Sha1),
            "sha256" => Some(Digest::Sha256),
            _ => None,
        }
    }
}

/// How the key and IV are derived from the secret and the salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kdf {
    /// `EVP_BytesToKey` with one iteration: `openssl enc -md X` without `-pbkdf2`.
    BytesToKey(Digest),
    /// `openssl enc -pbkdf2 [-iter N] [-md X]`.
    Pbkdf2 { digest: Digest, iter: u32 },
}

impl Kdf {
    /// The a9s manual's choice: `-md md5`.
    pub const A9S: Kdf = Kdf::BytesToKey(Digest::Md5);

    /// What `auto` tries, in order: the a9s manual's md5, OpenSSL >= 1.1's default sha256,
    /// then `-pbkdf2` with its defaults.
    pub const AUTO_CANDIDATES: [Kdf; 3] = [
        Kdf::BytesToKey(Digest::Md5),
        Kdf::BytesToKey(Digest::Sha256),
        Kdf::Pbkdf2 {
            digest: Digest::Sha256,
            iter: DEFAULT_PBKDF2_ITER,
        },
    ];

    /// Derives key and IV.
    pub fn derive(self, secret: &[u8], salt: &[u8; 8]) -> Result<KeyIv> {
        let cipher = Cipher::aes_256_cbc();
        let mut out = KeyIv {
            key: [0; 32],
            iv: [0; 16],
        };
        match self {
            Kdf::BytesToKey(d) => {
                let mut kv =
                    openssl::pkcs5::bytes_to_key(cipher, d.message_digest(), secret, Some(salt), 1)
                        .map_err(Error::openssl("deriving the key"))?;
                out.key.copy_from_slice(&kv.key);
                out.iv
                    .copy_from_slice(kv.iv.as_deref().expect("CBC has an IV"));
                zeroize::Zeroize::zeroize(&mut kv.key);
                if let Some(iv) = kv.iv.as_mut() {
                    zeroize::Zeroize::zeroize(iv);
                }
            }
            Kdf::Pbkdf2 { digest, iter } => {
                let mut buf = [0u8; 48];
                openssl::pkcs5::pbkdf2_hmac(
                    secret,
                    salt,
                    iter as usize,
                    digest.message_digest(),
                    &mut buf,
                )
                .map_err(Error::openssl("deriving the key"))?;
                out.key.copy_from_slice(&buf[..32]);
                out.iv.copy_from_slice(&buf[32..]);
                zeroize::Zeroize::zeroize(&mut buf);
            }
        }
        Ok(out)
    }
}

impl std::fmt::Display for Kdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kdf::BytesToKey(d) => write!(f, "-md {}", d.name()),
            Kdf::Pbkdf2 { digest, iter } => {
                write!(f, "-pbkdf2 -iter {iter} -md {}", digest.name())
            }
        }
    }
}

/// Derived key material. Zeroed when dropped.
pub struct KeyIv {
    key: [u8; 32],
    iv: [u8; 16],
}

impl std::fmt::Debug for KeyIv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyIv(..)")
    }
}

impl Drop for KeyIv {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.key.zeroize();
        self.iv.zeroize();
    }
}

/// Returns the salt when `data` starts with a salted `openssl enc` header.
pub fn parse_header(data: &[u8]) -> Option<[u8; 8]> {
    if data.len() >= HEADER_LEN && &data[..8] == MAGIC {
        let mut salt = [0u8; 8];
        salt.copy_from_slice(&data[8..16]);
        Some(salt)
    } else {
        None
    }
}

/// The gzip magic with deflate as method: what the first bytes of an a9s plaintext are.
pub const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
/// The magic of a pg_dump custom-format archive.
pub const PGDMP_MAGIC: &[u8; 5] = b"PGDMP";

/// Whether a decrypted first block looks like something a backup holds: gzip, a pg_dump
/// custom archive, or text. Random bytes (a wrong key) pass with probability below 1e-6.
pub fn plausible_plaintext(block: &[u8]) -> bool {
    if block.starts_with(&GZIP_MAGIC) || block.starts_with(PGDMP_MAGIC) {
        return true;
    }
    if block.is_empty() {
        return false;
    }
    let text = match std::str::from_utf8(block) {
        Ok(t) => t,
        // A multi-byte character cut by the block end is still text.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&block[..e.valid_up_to()]).unwrap_or("")
        }
        Err(_) => return false,
    };
    !text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
}

/// Decrypts one block without touching padding: used to probe key derivations.
pub fn decrypt_first_block(key: &KeyIv, block: &[u8; BLOCK]) -> Result<[u8; BLOCK]> {
    let mut c = Crypter::new(
        Cipher::aes_256_cbc(),
        Mode::Decrypt,
        &key.key,
        Some(&key.iv),
    )
    .map_err(Error::openssl("starting AES-256-CBC"))?;
    c.pad(false);
    let mut out = [0u8; BLOCK * 2];
    let n = c
        .update(block, &mut out)
        .map_err(Error::openssl("decrypting"))?;
    debug_assert_eq!(n, BLOCK);
    let mut first = [0u8; BLOCK];
    first.copy_from_slice(&out[..BLOCK]);
    Ok(first)
}

/// Decrypts one block with an explicit IV (the cipher block before it): the last block of a
/// stream can be checked without reading the rest.
pub fn decrypt_block_with_iv(
    key: &KeyIv,
    iv: &[u8; BLOCK],
    block: &[u8; BLOCK],
) -> Result<[u8; BLOCK]> {
    let with_iv = KeyIv {
        key: key.key,
        iv: *iv,
    };
    decrypt_first_block(&with_iv, block)
}

/// Removes PKCS#7 padding from the final block; `None` when it is invalid.
pub fn unpad(last: &[u8; BLOCK]) -> Option<usize> {
    let n = last[BLOCK - 1] as usize;
    if n == 0 || n > BLOCK {
        return None;
    }
    if last[BLOCK - n..].iter().all(|&b| b as usize == n) {
        Some(BLOCK - n)
    } else {
        None
    }
}

/// Streaming AES-256-CBC decryption of the bytes after the 16-byte header.
///
/// The last block is held back until [`Decryptor::finish`], which checks and strips the
/// PKCS#7 padding, so the caller never sees padding bytes.
pub struct Decryptor {
    crypter: Crypter,
    held: Option<[u8; BLOCK]>,
    consumed: u64,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("consumed", &self.consumed)
            .finish_non_exhaustive()
    }
}

/// Why the end of a ciphertext could not be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishError {
    /// Not a whole number of blocks (or none at all).
    NotAligned,
    /// The padding is invalid.
    BadPadding,
}

impl Decryptor {
    /// Starts decrypting with the given key.
    pub fn new(key: &KeyIv) -> Result<Self> {
        let mut crypter = Crypter::new(
            Cipher::aes_256_cbc(),
            Mode::Decrypt,
            &key.key,
            Some(&key.iv),
        )
        .map_err(Error::openssl("starting AES-256-CBC"))?;
        crypter.pad(false);
        Ok(Decryptor {
            crypter,
            held: None,
            consumed: 0,
        })
    }

    /// Ciphertext bytes consumed so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Decrypts `input`, appending plaintext (all but the held-back last block) to `out`.
    pub fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if input.is_empty() {
            return Ok(());
        }
        let start = out.len();
        out.reserve(input.len() + 2 * BLOCK);
        if let Some(h) = self.held.take() {
            out.extend_from_slice(&h);
        }
        let mid = out.len();
        out.resize(mid + input.len() + BLOCK, 0);
        let n = self
            .crypter
            .update(input, &mut out[mid..])
            .map_err(Error::openssl("decrypting"))?;
        out.truncate(mid + n);
        self.consumed += input.len() as u64;
        if out.len() - start >= BLOCK {
            let mut h = [0u8; BLOCK];
            h.copy_from_slice(&out[out.len() - BLOCK..]);
            out.truncate(out.len() - BLOCK);
            self.held = Some(h);
        }
        Ok(())
    }

    /// Ends the stream: checks alignment and padding and appends the last plaintext bytes.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), FinishError> {
        if self.consumed == 0 || !self.consumed.is_multiple_of(BLOCK as u64) {
            return Err(FinishError::NotAligned);
        }
        let mut rest = [0u8; BLOCK];
        // With padding off and aligned input, nothing is left inside openssl.
        let n = self
            .crypter
            .finalize(&mut rest)
            .map_err(|_| FinishError::NotAligned)?;
        debug_assert_eq!(n, 0);
        let last = self.held.take().ok_or(FinishError::NotAligned)?;
        let keep = unpad(&last).ok_or(FinishError::BadPadding)?;
        out.extend_from_slice(&last[..keep]);
        Ok(())
    }
}

/// Streaming `openssl enc -aes-256-cbc` encryption, header included.
pub struct Encryptor {
    crypter: Crypter,
    header: Option<[u8; HEADER_LEN]>,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Encryptor(..)")
    }
}

impl Encryptor {
    /// Starts encrypting with a fresh random salt.
    pub fn new(secret: &[u8], kdf: Kdf) -> Result<Self> {
        let mut salt = [0u8; 8];
        openssl::rand::rand_bytes(&mut salt).map_err(Error::openssl("making a salt"))?;
        Self::with_salt(secret, kdf, salt)
    }

    /// Starts encrypting with a given salt (tests and reproducible fixtures).
    pub fn with_salt(secret: &[u8], kdf: Kdf, salt: [u8; 8]) -> Result<Self> {
        let key = kdf.derive(secret, &salt)?;
        let crypter = Crypter::new(
            Cipher::aes_256_cbc(),
            Mode::Encrypt,
            &key.key,
            Some(&key.iv),
        )
        .map_err(Error::openssl("starting AES-256-CBC"))?;
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..].copy_from_slice(&salt);
        Ok(Encryptor {
            crypter,
            header: Some(header),
        })
    }

    /// Encrypts `input`, appending ciphertext to `out`.
    pub fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if let Some(h) = self.header.take() {
            out.extend_from_slice(&h);
        }
        let start = out.len();
        out.resize(start + input.len() + BLOCK, 0);
        let n = self
            .crypter
            .update(input, &mut out[start..])
            .map_err(Error::openssl("encrypting"))?;
        out.truncate(start + n);
        Ok(())
    }

    /// Writes the padded last block.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<()> {
        if let Some(h) = self.header.take() {
            out.extend_from_slice(&h);
        }
        let start = out.len();
        out.resize(start + BLOCK, 0);
        let n = self
            .crypter
            .finalize(&mut out[start..])
            .map_err(Error::openssl("encrypting"))?;
        out.truncate(start + n);
        Ok(())
    }
}

/// Encrypts a whole buffer (tests, fuzzing, fixtures).
pub fn encrypt_all(secret: &[u8], kdf: Kdf, salt: [u8; 8], data: &[u8]) -> Result<Vec<u8>> {
    let mut e = Encryptor::with_salt(secret, kdf, salt)?;
    let mut out = Vec::with_capacity(data.len() + 48);
    e.update(data, &mut out)?;
    e.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decrypt_all(secret: &[u8], kdf: Kdf, data: &[u8]) -> Result<Vec<u8>, FinishError> {
        let salt = parse_header(data).unwrap();
        let key = kdf.derive(secret, &salt).unwrap();
        let mut d = Decryptor::new(&key).unwrap();
        let mut out = Vec::new();
        // Odd chunking on purpose: blocks straddle calls.
        for c in data[HEADER_LEN..].chunks(7) {
            d.update(c, &mut out).unwrap();
        }
        d.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trip_all_lengths_and_kdfs() {
        for kdf in Kdf::AUTO_CANDIDATES
            .into_iter()
            .chain([Kdf::BytesToKey(Digest::Sha1)])
        {
            for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 100] {
                let data: Vec<u8> = (0..len as u8).collect();
                let ct = encrypt_all(b"s3cret", kdf, *b"saltsalt", &data).unwrap();
                assert_eq!(ct.len(), HEADER_LEN + (len / 16 + 1) * 16);
                assert_eq!(
                    decrypt_all(b"s3cret", kdf, &ct).unwrap(),
                    data,
                    "{kdf} {len}"
                );
            }
        }
    }

    #[test]
    fn key_derivation_matches_openssl_cli() {
        // Values printed by `openssl enc -aes256 [-md X | -pbkdf2] -S 0102030405060708 -pass pass:demo -P`
        // (OpenSSL 3.0).
        let salt = [1, 2, 3, 4, 5, 6, 7, 8];
        let cases = [
            (
                Kdf::A9S,
                "2d5e84db9becb700608d905189be886f5d099d30c87023af6d1f9832cc34a112",
                "85f22d9fd19bd69b2799edad75d5cf7c",
            ),
            (
                Kdf::BytesToKey(Digest::Sha256),
                "38ed589fddf63422f646c6cbecb1b501b9d9d1a7c1e01c9e09447d1b16474c47",
                "28d4e6c9c76722b95a6e80bdc0713a3f",
            ),
            (
                Kdf::AUTO_CANDIDATES[2],
                "a558f84b5587b75a9df51e3213238c72ac6c5868807a7ffd25f8a28657f23931",
                "cdb0bd8895cfa48fdbae0ee123a52aa5",
            ),
        ];
        for (kdf, key, iv) in cases {
            let k = kdf.derive(b"demo", &salt).unwrap();
            assert_eq!(crate::hex(&k.key), key, "{kdf}");
            assert_eq!(crate::hex(&k.iv), iv, "{kdf}");
        }
    }

    #[test]
    fn wrong_key_fails_padding_or_plausibility() {
        let ct = encrypt_all(b"right", Kdf::A9S, *b"12345678", b"\x1f\x8b\x08hello").unwrap();
        let salt = parse_header(&ct).unwrap();
        let wrong = Kdf::A9S.derive(b"wrong", &salt).unwrap();
        let mut block = [0u8; 16];
        block.copy_from_slice(&ct[16..32]);
        let first = decrypt_first_block(&wrong, &block).unwrap();
        assert!(!first.starts_with(&GZIP_MAGIC));
        let right = Kdf::A9S.derive(b"right", &salt).unwrap();
        assert!(decrypt_first_block(&right, &block)
            .unwrap()
            .starts_with(&GZIP_MAGIC));
    }

    #[test]
    fn truncated_ciphertext_is_not_aligned() {
        let ct = encrypt_all(b"k", Kdf::A9S, *b"12345678", &[7u8; 40]).unwrap();
        assert_eq!(
            decrypt_all(b"k", Kdf::A9S, &ct[..ct.len() - 1]),
            Err(FinishError::NotAligned)
        );
        assert_eq!(
            decrypt_all(b"k", Kdf::A9S, &ct[..HEADER_LEN]),
            Err(FinishError::NotAligned)
        );
    }

    #[test]
    fn corrupt_last_block_is_bad_padding() {
        let mut ct = encrypt_all(b"k", Kdf::A9S, *b"12345678", &[7u8; 40]).unwrap();
        let n = ct.len();
        ct[n - 1] ^= 0x55;
        assert_eq!(
            decrypt_all(b"k", Kdf::A9S, &ct),
            Err(FinishError::BadPadding)
        );
    }

    #[test]
    fn plausibility() {
        assert!(plausible_plaintext(&[0x1f, 0x8b, 0x08, 0, 0, 0]));
        assert!(plausible_plaintext(b"PGDMP\x01\x0e\x00"));
        assert!(plausible_plaintext(b"--\n-- PostgreSQL"));
        assert!(plausible_plaintext("-- Grüße aus K\u{f6}".as_bytes()));
        assert!(!plausible_plaintext(&[0x00, 0x01, 0x02, 0xff, 0x13]));
        assert!(!plausible_plaintext(b""));
    }

    #[test]
    fn unpad_rules() {
        let mut b = [0u8; 16];
        b[15] = 16;
        assert_eq!(unpad(&b), None);
        b.fill(16);
        assert_eq!(unpad(&b), Some(0));
        let mut c = [9u8; 16];
        c[15] = 1;
        assert_eq!(unpad(&c), Some(15));
        c[15] = 0;
        assert_eq!(unpad(&c), None);
        c[15] = 17;
        assert_eq!(unpad(&c), None);
    }
}
