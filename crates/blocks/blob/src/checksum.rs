//! Object checksums: the MD5 behind every ETag, and S3's flexible checksums (CRC32, CRC32C,
//! CRC64NVME, SHA1, SHA256), computed in one pass while an object streams in.
//!
//! S3 stores a checksum of every object: the one the client asked for, and CRC64NVME when
//! it asked for none. Values are kept base64-encoded, as S3 sends them. For a multipart
//! upload a checksum is either *composite* (the checksum of the parts' checksums, shown with
//! a `-N` suffix) or *full object*; CRCs can be combined into a full-object value without
//! reading the data again (`crc_fast::checksum_combine`), hashes cannot.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use crc_fast::CrcAlgorithm;
use md5_many::Md5State;
use serde::{Deserialize, Serialize};
use sha1::Digest as _;

/// A checksum algorithm of S3's flexible checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] =
        [Self::Crc32, Self::Crc32c, Self::Crc64Nvme, Self::Sha1, Self::Sha256];

    /// Parses S3's name (`CRC32`, `crc64nvme`, ...).
    pub fn parse(name: &str) -> Option<ChecksumAlgorithm> {
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// S3's name, upper case.
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    fn crc(self) -> Option<CrcAlgorithm> {
        match self {
            Self::Crc32 => Some(CrcAlgorithm::Crc32IsoHdlc),
            Self::Crc32c => Some(CrcAlgorithm::Crc32Iscsi),
            Self::Crc64Nvme => Some(CrcAlgorithm::Crc64Nvme),
            Self::Sha1 | Self::Sha256 => None,
        }
    }

    /// The width of a CRC's value in bytes.
    fn crc_bytes(self) -> usize {
        if self == Self::Crc64Nvme { 8 } else { 4 }
    }
}

/// The checksums stored with an object or part, base64 as S3 sends them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<(ChecksumAlgorithm, String)>,
    /// Composite (a checksum of part checksums, `-N` appended) rather than full object.
    #[serde(default)]
    pub composite: bool,
}

impl Checksums {
    pub fn get(&self, algorithm: ChecksumAlgorithm) -> Option<&str> {
        self.values.iter().find(|(a, _)| *a == algorithm).map(|(_, v)| v.as_str())
    }

    fn set(&mut self, algorithm: ChecksumAlgorithm, value: String) {
        self.values.retain(|(a, _)| *a != algorithm);
        self.values.push((algorithm, value));
    }
}

enum State {
    Crc(crc_fast::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

/// Computes the MD5 and the chosen checksums of a stream of bytes.
pub struct Hasher {
    /// `None` when the MD5 is hashed elsewhere (`md5_lanes`, for large segments).
    md5: Option<Md5State>,
    states: Vec<(ChecksumAlgorithm, State)>,
}

impl Hasher {
    /// A hasher for `algorithms`, plus CRC64NVME (S3's default checksum).
    pub fn new(algorithms: &[ChecksumAlgorithm]) -> Hasher {
        let mut chosen: Vec<ChecksumAlgorithm> = algorithms.to_vec();
        chosen.push(ChecksumAlgorithm::Crc64Nvme);
        chosen.sort_by_key(|a| a.name());
        chosen.dedup();
        let states = chosen
            .into_iter()
            .map(|a| {
                let state = match (a.crc(), a) {
                    (Some(crc), _) => State::Crc(crc_fast::Digest::new(crc)),
                    (None, ChecksumAlgorithm::Sha1) => State::Sha1(sha1::Sha1::new()),
                    (None, _) => State::Sha256(sha2::Sha256::new()),
                };
                (a, state)
            })
            .collect();
        Hasher { md5: Some(Md5State::new()), states }
    }

    /// This hasher without its MD5 (to be hashed elsewhere from here on), and the MD5 state
    /// so far.
    pub(crate) fn split_md5(mut self) -> (Hasher, Md5State) {
        let md5 = self.md5.take().expect("a hasher has its MD5 until split");
        (self, md5)
    }

    pub fn update(&mut self, data: &[u8]) {
        if let Some(md5) = &mut self.md5 {
            md5.update(data);
        }
        for (_, state) in &mut self.states {
            match state {
                State::Crc(d) => d.update(data),
                State::Sha1(d) => d.update(data),
                State::Sha256(d) => d.update(data),
            }
        }
    }

    /// The MD5 and the checksums.
    pub fn finish(mut self) -> ([u8; 16], Checksums) {
        let md5 = self.md5.take().expect("finish is for a hasher with its MD5").finalize();
        (md5, self.finish_checksums())
    }

    /// The checksums alone.
    pub(crate) fn finish_checksums(self) -> Checksums {
        let mut sums = Checksums::default();
        for (algorithm, state) in self.states {
            let raw = match state {
                State::Crc(d) => crc_to_bytes(algorithm, d.finalize()),
                State::Sha1(d) => d.finalize().to_vec(),
                State::Sha256(d) => d.finalize().to_vec(),
            };
            sums.set(algorithm, BASE64.encode(raw));
        }
        sums
    }
}

fn crc_to_bytes(algorithm: ChecksumAlgorithm, crc: u64) -> Vec<u8> {
    let bytes = crc.to_be_bytes();
    bytes[8 - algorithm.crc_bytes()..].to_vec()
}

fn crc_from_base64(algorithm: ChecksumAlgorithm, value: &str) -> Option<u64> {
    let raw = BASE64.decode(value).ok()?;
    if raw.len() != algorithm.crc_bytes() {
        return None;
    }
    Some(raw.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// The checksums of an object assembled from parts of the given sizes and checksums:
/// CRC64NVME full-object always; `algorithm` composite, or full object when `full_object`
/// and it is a CRC. A part missing a checksum leaves that checksum out.
pub fn combine_parts(
    parts: &[(u64, &Checksums)],
    algorithm: Option<ChecksumAlgorithm>,
    full_object: bool,
) -> Checksums {
    let mut out = Checksums::default();
    let combine_crc = |algorithm: ChecksumAlgorithm| -> Option<String> {
        let crc = algorithm.crc()?;
        let mut total: Option<u64> = None;
        for (size, sums) in parts {
            let part = crc_from_base64(algorithm, sums.get(algorithm)?)?;
            total = Some(match total {
                None => part,
                Some(acc) => crc_fast::checksum_combine(crc, acc, part, *size),
            });
        }
        Some(BASE64.encode(crc_to_bytes(algorithm, total.unwrap_or(0))))
    };
    if let Some(value) = combine_crc(ChecksumAlgorithm::Crc64Nvme) {
        out.set(ChecksumAlgorithm::Crc64Nvme, value);
    }
    if let Some(algorithm) = algorithm.filter(|a| *a != ChecksumAlgorithm::Crc64Nvme) {
        if full_object {
            if let Some(value) = combine_crc(algorithm) {
                out.set(algorithm, value);
            }
        } else if let Some(value) = composite(parts, algorithm) {
            out.set(algorithm, value);
            out.composite = true;
        }
    }
    out
}

/// S3's composite checksum: the checksum of the concatenated raw part checksums, `-N`.
fn composite(parts: &[(u64, &Checksums)], algorithm: ChecksumAlgorithm) -> Option<String> {
    let mut concatenated = Vec::new();
    for (_, sums) in parts {
        concatenated.extend(BASE64.decode(sums.get(algorithm)?).ok()?);
    }
    let mut hasher = Hasher::new(&[algorithm]);
    hasher.update(&concatenated);
    let (_, sums) = hasher.finish();
    Some(format!("{}-{}", sums.get(algorithm)?, parts.len()))
}

/// S3's multipart ETag: the MD5 of the concatenated binary part MD5s, then `-N`.
pub fn multipart_etag(part_md5s_hex: &[&str]) -> String {
    let mut md5 = Md5State::new();
    for part in part_md5s_hex {
        md5.update(&hex::decode(part).unwrap_or_default());
    }
    format!("{}-{}", hex::encode(md5.finalize()), part_md5s_hex.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(data: &[u8], algorithms: &[ChecksumAlgorithm]) -> Checksums {
        let mut h = Hasher::new(algorithms);
        h.update(data);
        h.finish().1
    }

    #[test]
    fn known_values() {
        let mut h = Hasher::new(&[ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Sha256]);
        h.update(b"hello ");
        h.update(b"world");
        let (md5, sums) = h.finish();
        assert_eq!(hex::encode(md5), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        // CRC32 of "hello world" is 0x0d4a1185.
        assert_eq!(
            sums.get(ChecksumAlgorithm::Crc32),
            Some(BASE64.encode([0x0d, 0x4a, 0x11, 0x85]).as_str())
        );
        assert_eq!(sums.get(ChecksumAlgorithm::Sha256), Some("uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="));
        assert!(sums.get(ChecksumAlgorithm::Crc64Nvme).is_some(), "the default checksum is always kept");
        assert_eq!(ChecksumAlgorithm::parse("crc32c"), Some(ChecksumAlgorithm::Crc32c));
    }

    #[test]
    fn combined_crcs_equal_the_crc_of_the_whole() {
        let (a, b) = (b"first part ".as_slice(), b"and the second".as_slice());
        let whole = sums(&[a, b].concat(), &[ChecksumAlgorithm::Crc32c]);
        let (pa, pb) = (sums(a, &[ChecksumAlgorithm::Crc32c]), sums(b, &[ChecksumAlgorithm::Crc32c]));
        let parts = [(a.len() as u64, &pa), (b.len() as u64, &pb)];
        let full = combine_parts(&parts, Some(ChecksumAlgorithm::Crc32c), true);
        assert_eq!(full.get(ChecksumAlgorithm::Crc32c), whole.get(ChecksumAlgorithm::Crc32c));
        assert_eq!(full.get(ChecksumAlgorithm::Crc64Nvme), whole.get(ChecksumAlgorithm::Crc64Nvme));
        let composite = combine_parts(&parts, Some(ChecksumAlgorithm::Crc32c), false);
        assert!(composite.composite);
        assert!(composite.get(ChecksumAlgorithm::Crc32c).unwrap().ends_with("-2"));
    }

    #[test]
    fn multipart_etag_is_md5_of_md5s() {
        // Two parts "a" and "b": MD5(md5("a") || md5("b")).
        let a = "0cc175b9c0f1b6a831c399e269772661";
        let b = "92eb5ffee6ae2fec3ad71c777531578f";
        let both = [hex::decode(a).unwrap(), hex::decode(b).unwrap()].concat();
        assert_eq!(multipart_etag(&[a, b]), format!("{}-2", hex::encode(md5_many::md5(&both))));
    }
}
