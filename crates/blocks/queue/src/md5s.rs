//! The digests SQS clients check: `MD5OfMessageBody` and `MD5OfMessageAttributes`, whose
//! byte layout is SQS's (documented under "Calculating the MD5 message digest for message
//! attributes"), and the SHA-256 of content-based deduplication.

use crate::MessageAttribute;
use md5::Digest as _;
use std::collections::BTreeMap;

pub fn md5_of_body(body: &str) -> String {
    hex::encode(md5::Md5::digest(body.as_bytes()))
}

/// For each attribute in name order: name, data type and value, each as a 4-byte big-endian
/// length and the bytes, with a transport byte (1 string or number, 2 binary) before the
/// value. `None` without attributes.
pub fn md5_of_attributes(attributes: &BTreeMap<String, MessageAttribute>) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    fn field(md5: &mut md5::Md5, bytes: &[u8]) {
        md5.update((bytes.len() as u32).to_be_bytes());
        md5.update(bytes);
    }
    let mut md5 = md5::Md5::new();
    for (name, attr) in attributes {
        field(&mut md5, name.as_bytes());
        field(&mut md5, attr.data_type.as_bytes());
        match &attr.binary_value {
            Some(binary) if attr.data_type.starts_with("Binary") => {
                md5.update([2u8]);
                field(&mut md5, binary);
            }
            _ => {
                md5.update([1u8]);
                field(&mut md5, attr.string_value.as_deref().unwrap_or("").as_bytes());
            }
        }
    }
    Some(hex::encode(md5.finalize()))
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(md5_of_body("hello"), "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(md5_of_attributes(&BTreeMap::new()), None);
        // One String attribute "a" = "b": 00000001 'a' 00000006 'String' 01 00000001 'b'.
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "a".to_string(),
            MessageAttribute {
                data_type: "String".into(),
                string_value: Some("b".into()),
                binary_value: None,
            },
        );
        let mut raw = Vec::new();
        raw.extend([0, 0, 0, 1, b'a', 0, 0, 0, 6]);
        raw.extend(b"String");
        raw.extend([1, 0, 0, 0, 1, b'b']);
        assert_eq!(md5_of_attributes(&attrs), Some(hex::encode(md5::Md5::digest(&raw))));
    }
}
