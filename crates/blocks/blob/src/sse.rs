//! Server-side encryption at rest, as S3's SSE-S3 (`x-amz-server-side-encryption: AES256`).
//!
//! A segment written encrypted is AES-256 in counter mode under a key of its own, derived
//! from the block's master key and the segment's id (HMAC-SHA256); segment ids are random
//! and never reused, so no key and counter pair ever encrypts two plaintexts. Counter mode
//! lets a reader start at any byte, so ranged reads cost no more than plain ones. Digests
//! (ETag MD5, flexible checksums) are of the plaintext, as S3 computes them.
//!
//! The master key is 32 random bytes in `<data-dir>/blob/sse.key`, made at the first start
//! (mode 0600). With the `s3` backend it never leaves this machine, so the external service
//! holds only ciphertext. Whoever can read the data directory can read the key: like
//! SSE-S3, this protects the bytes where they are stored (the remote service, a stolen or
//! discarded disk holding only `data/`), not from this server's own operator.

use crate::BlobResult;
use aes::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use hmac::{KeyInit, Mac};
use std::io::Write;
use std::path::Path;

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

const KEY_FILE: &str = "sse.key";

/// The block's master key.
pub(crate) struct MasterKey([u8; 32]);

impl MasterKey {
    /// Reads `dir/sse.key`, or makes it (fsynced before it is used) when there is none.
    pub(crate) fn load_or_create(dir: &Path) -> BlobResult<MasterKey> {
        let path = dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| strata_core::errcorrupt!("{} is not a 32-byte key", path.display()))?;
                Ok(MasterKey(key))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                let tmp = dir.join(format!("{KEY_FILE}.tmp"));
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&tmp)?;
                file.write_all(&key)?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(dir)?.sync_all()?;
                Ok(MasterKey(key))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The cipher of segment `id`.
    pub(crate) fn segment(&self, id: &str) -> SegmentCipher {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"strata blob segment ");
        mac.update(id.as_bytes());
        SegmentCipher(mac.finalize().into_bytes().into())
    }
}

/// Encrypts or decrypts one segment's bytes at any offset (the same operation in CTR mode).
#[derive(Clone)]
pub(crate) struct SegmentCipher([u8; 32]);

impl SegmentCipher {
    /// XORs `buf`, which sits at `offset` in the segment, with the segment's key stream.
    pub(crate) fn apply(&self, offset: u64, buf: &mut [u8]) {
        let mut cipher = Aes256Ctr::new(&self.0.into(), &[0u8; 16].into());
        cipher.seek(offset);
        cipher.apply_keystream(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_decrypt_alone_and_keys_persist() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::load_or_create(dir.path()).unwrap();
        let plain: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let mut sealed = plain.clone();
        key.segment("a").apply(0, &mut sealed);
        assert_ne!(sealed, plain);
        // Any range decrypts on its own, across AES block boundaries.
        let mut part = sealed[1234..5678].to_vec();
        key.segment("a").apply(1234, &mut part);
        assert_eq!(part, plain[1234..5678]);
        // Another segment's key stream differs; the reopened key is the same key.
        let mut other = plain.clone();
        key.segment("b").apply(0, &mut other);
        assert_ne!(other, sealed);
        let again = MasterKey::load_or_create(dir.path()).unwrap();
        let mut back = sealed.clone();
        again.segment("a").apply(0, &mut back);
        assert_eq!(back, plain);
    }
}
