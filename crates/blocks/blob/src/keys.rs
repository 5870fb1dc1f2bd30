//! The blob block's key layout in its keyspace `blob` (see `docs/format/blob.md`).

use strata_core::keycode::{Decoder, KeyBuf};
use strata_core::{Result, errcorrupt};

/// The kinds of key in the `blob` keyspace, each with its own first byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Key<'a> {
    /// A bucket: `01 bucket`.
    Bucket(&'a str),
    /// One version of an object, newest first: `02 bucket key !ord`.
    Version { bucket: &'a str, key: &'a str, ord: u64 },
    /// A multipart upload in progress: `03 bucket key upload_id`.
    Upload { bucket: &'a str, key: &'a str, upload_id: &'a str },
    /// An uploaded part: `04 upload_id part_number`.
    Part { upload_id: &'a str, number: u64 },
    /// The bytes of a small segment kept in core: `05 segment_id`.
    Data(&'a str),
    /// An access key: `06 access_key`.
    User(&'a str),
}

/// Prefixes of [`Key`], for scans.
pub(crate) enum KeyPrefix<'a> {
    /// Every bucket: `01`.
    Buckets,
    /// Every object version of every bucket: `02`.
    AllVersions,
    /// Every part of every upload: `04`.
    AllParts,
    /// Versions of the objects of a bucket whose key starts with `prefix` (raw, without its
    /// terminator, so that it matches longer keys): `02 bucket prefix`.
    Versions { bucket: &'a str, prefix: &'a str },
    /// Versions of exactly one object: `02 bucket key`.
    ObjectVersions { bucket: &'a str, key: &'a str },
    /// Uploads of a bucket: `03 bucket`.
    Uploads { bucket: &'a str },
    /// Parts of an upload: `04 upload_id`.
    Parts { upload_id: &'a str },
    /// Every access key: `06`.
    Users,
}

const BUCKET: u8 = 0x01;
const VERSION: u8 = 0x02;
const UPLOAD: u8 = 0x03;
const PART: u8 = 0x04;
const DATA: u8 = 0x05;
const USER: u8 = 0x06;

impl Key<'_> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Key::Bucket(name) => KeyBuf::new().tag(BUCKET).str(name).finish(),
            // Newest first: versions sort by the complement of their order number.
            Key::Version { bucket, key, ord } => {
                KeyBuf::new().tag(VERSION).str(bucket).str(key).u64(!ord).finish()
            }
            Key::Upload { bucket, key, upload_id } => {
                KeyBuf::new().tag(UPLOAD).str(bucket).str(key).str(upload_id).finish()
            }
            Key::Part { upload_id, number } => KeyBuf::new().tag(PART).str(upload_id).u64(*number).finish(),
            Key::Data(id) => KeyBuf::new().tag(DATA).str(id).finish(),
            Key::User(access_key) => KeyBuf::new().tag(USER).str(access_key).finish(),
        }
    }
}

impl KeyPrefix<'_> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            KeyPrefix::Buckets => vec![BUCKET],
            KeyPrefix::AllVersions => vec![VERSION],
            KeyPrefix::AllParts => vec![PART],
            KeyPrefix::Versions { bucket, prefix } => {
                // Escape the prefix as a key would be, but leave off the terminator.
                let mut out = KeyBuf::new().tag(VERSION).str(bucket).finish();
                let escaped = KeyBuf::new().str(prefix).finish();
                out.extend_from_slice(&escaped[..escaped.len() - 2]);
                out
            }
            KeyPrefix::ObjectVersions { bucket, key } => {
                KeyBuf::new().tag(VERSION).str(bucket).str(key).finish()
            }
            KeyPrefix::Uploads { bucket } => KeyBuf::new().tag(UPLOAD).str(bucket).finish(),
            KeyPrefix::Parts { upload_id } => KeyBuf::new().tag(PART).str(upload_id).finish(),
            KeyPrefix::Users => vec![USER],
        }
    }
}

/// Decodes a version key into (bucket, object key, order number).
pub(crate) fn decode_version_key(bytes: &[u8]) -> Result<(String, String, u64)> {
    let mut dec = Decoder::new(bytes);
    match dec.tag()? {
        VERSION => Ok((dec.string()?, dec.string()?, !dec.u64()?)),
        tag => Err(errcorrupt!("not a blob version key (tag {tag:#04x})")),
    }
}

/// Decodes an upload key into (bucket, object key, upload id).
pub(crate) fn decode_upload_key(bytes: &[u8]) -> Result<(String, String, String)> {
    let mut dec = Decoder::new(bytes);
    match dec.tag()? {
        UPLOAD => Ok((dec.string()?, dec.string()?, dec.string()?)),
        tag => Err(errcorrupt!("not a blob upload key (tag {tag:#04x})")),
    }
}

/// Decodes a part key into its part number.
pub(crate) fn decode_part_key(bytes: &[u8]) -> Result<u64> {
    let mut dec = Decoder::new(bytes);
    match dec.tag()? {
        PART => {
            dec.string()?;
            dec.u64()
        }
        tag => Err(errcorrupt!("not a blob part key (tag {tag:#04x})")),
    }
}

/// Decodes a bucket or user key into its name.
pub(crate) fn decode_name_key(bytes: &[u8]) -> Result<String> {
    let mut dec = Decoder::new(bytes);
    match dec.tag()? {
        BUCKET | USER => dec.string(),
        tag => Err(errcorrupt!("not a blob bucket or user key (tag {tag:#04x})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_byte_prefixes_of_their_keys() {
        let version = Key::Version { bucket: "b", key: "photos/cat.jpg", ord: 7 }.encode();
        assert!(version.starts_with(&KeyPrefix::Versions { bucket: "b", prefix: "" }.encode()));
        assert!(version.starts_with(&KeyPrefix::AllVersions.encode()));
        assert!(version.starts_with(&KeyPrefix::Versions { bucket: "b", prefix: "photos/" }.encode()));
        assert!(
            version.starts_with(&KeyPrefix::ObjectVersions { bucket: "b", key: "photos/cat.jpg" }.encode())
        );
        assert!(!version.starts_with(&KeyPrefix::ObjectVersions { bucket: "b", key: "photos/cat" }.encode()));
        assert!(!version.starts_with(&KeyPrefix::Versions { bucket: "bb", prefix: "" }.encode()));
        let upload = Key::Upload { bucket: "b", key: "k", upload_id: "u" }.encode();
        assert!(upload.starts_with(&KeyPrefix::Uploads { bucket: "b" }.encode()));
        let part = Key::Part { upload_id: "u", number: 3 }.encode();
        assert!(part.starts_with(&KeyPrefix::Parts { upload_id: "u" }.encode()));
        assert!(part.starts_with(&KeyPrefix::AllParts.encode()));
        assert!(Key::Bucket("b").encode().starts_with(&KeyPrefix::Buckets.encode()));
        assert!(Key::User("AK").encode().starts_with(&KeyPrefix::Users.encode()));
    }

    #[test]
    fn keys_round_trip_and_newer_versions_sort_first() {
        let older = Key::Version { bucket: "b", key: "k", ord: 1 }.encode();
        let newer = Key::Version { bucket: "b", key: "k", ord: 2 }.encode();
        assert!(newer < older);
        assert_eq!(older, b"\x02b\x00\x00k\x00\x00\xff\xff\xff\xff\xff\xff\xff\xfe");
        assert_eq!(decode_version_key(&older).unwrap(), ("b".into(), "k".into(), 1));
        let upload = Key::Upload { bucket: "b", key: "k", upload_id: "u" }.encode();
        assert_eq!(decode_upload_key(&upload).unwrap(), ("b".into(), "k".into(), "u".into()));
        assert_eq!(decode_part_key(&Key::Part { upload_id: "u", number: 9 }.encode()).unwrap(), 9);
        assert_eq!(decode_name_key(&Key::Bucket("photos").encode()).unwrap(), "photos");
        // Object keys sort as S3 lists them: by their UTF-8 bytes.
        let a = Key::Version { bucket: "b", key: "a", ord: 1 }.encode();
        let a_slash = Key::Version { bucket: "b", key: "a/b", ord: 1 }.encode();
        let b = Key::Version { bucket: "b", key: "b", ord: 1 }.encode();
        assert!(a < a_slash && a_slash < b);
    }
}
