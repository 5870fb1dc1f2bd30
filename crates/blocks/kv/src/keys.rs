//! The kv block's key and value layout in its keyspace `kv` (see `docs/format/kv.md`).

use strata_core::keycode::{Decoder, KeyBuf};
use strata_core::{Result, errcorrupt};

/// The kinds of key in the `kv` keyspace, each with its own first byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Key<'a> {
    /// An entry: `01 ns key`.
    Entry { ns: &'a str, key: &'a [u8] },
    /// An expiry index record: `02 expires_at_ms ns key`.
    Expiry { at_ms: u64, ns: &'a str, key: &'a [u8] },
}

/// Prefixes of [`Key`], for scans.
pub(crate) enum KeyPrefix<'a> {
    /// Entries of a namespace whose key starts with `prefix`: `01 ns prefix` (the prefix raw,
    /// without its terminator, so that it matches longer keys).
    Entries { ns: &'a str, prefix: &'a [u8] },
    /// Every expiry record: `02`.
    Expiries,
}

const ENTRY: u8 = 0x01;
const EXPIRY: u8 = 0x02;

impl Key<'_> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Key::Entry { ns, key } => KeyBuf::new().tag(ENTRY).str(ns).bytes(key).finish(),
            Key::Expiry { at_ms, ns, key } => {
                KeyBuf::new().tag(EXPIRY).u64(*at_ms).str(ns).bytes(key).finish()
            }
        }
    }
}

impl KeyPrefix<'_> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            KeyPrefix::Entries { ns, prefix } => {
                // Escape the prefix as a key would be, but leave off the terminator.
                let mut out = KeyBuf::new().tag(ENTRY).str(ns).finish();
                let escaped = KeyBuf::new().bytes(prefix).finish();
                out.extend_from_slice(&escaped[..escaped.len() - 2]);
                out
            }
            KeyPrefix::Expiries => vec![EXPIRY],
        }
    }
}

/// Decodes an entry key into (namespace, key).
pub(crate) fn decode_entry_key(bytes: &[u8]) -> Result<(String, Vec<u8>)> {
    let mut dec = Decoder::new(bytes);
    match dec.tag()? {
        ENTRY => Ok((dec.string()?, dec.bytes()?)),
        tag => Err(errcorrupt!("not a kv entry key (tag {tag:#04x})")),
    }
}

/// Decodes an expiry key into (expires_at_ms, namespace, key).
pub(crate) fn decode_expiry_key(bytes: &[u8]) -> Result<(u64, String, Vec<u8>)> {
    let mut dec = Decoder::new(bytes);
    match dec.tag()? {
        EXPIRY => Ok((dec.u64()?, dec.string()?, dec.bytes()?)),
        tag => Err(errcorrupt!("not a kv expiry key (tag {tag:#04x})")),
    }
}

/// An entry's stored value: `version u64 LE`, `expires_at_ms u64 LE` (0: never), the value.
pub(crate) fn encode_value(version: u64, expires_at_ms: Option<u64>, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&expires_at_ms.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// Decodes a stored value into (version, expires_at_ms, value).
pub(crate) fn decode_value(bytes: &[u8]) -> Result<(u64, Option<u64>, &[u8])> {
    if bytes.len() < 16 {
        return Err(errcorrupt!("kv value of {} bytes has no header", bytes.len()));
    }
    let version = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let expires = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    Ok((version, (expires != 0).then_some(expires), &bytes[16..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_byte_prefixes_of_their_keys() {
        let entry = Key::Entry { ns: "users", key: b"alice\x00x" }.encode();
        assert!(entry.starts_with(&KeyPrefix::Entries { ns: "users", prefix: b"" }.encode()));
        assert!(entry.starts_with(&KeyPrefix::Entries { ns: "users", prefix: b"ali" }.encode()));
        assert!(entry.starts_with(&KeyPrefix::Entries { ns: "users", prefix: b"alice\x00" }.encode()));
        assert!(!entry.starts_with(&KeyPrefix::Entries { ns: "user", prefix: b"" }.encode()));
        let expiry = Key::Expiry { at_ms: 5, ns: "users", key: b"alice" }.encode();
        assert!(expiry.starts_with(&KeyPrefix::Expiries.encode()));
    }

    #[test]
    fn keys_and_values_round_trip() {
        let entry = Key::Entry { ns: "n", key: b"k\x00" }.encode();
        assert_eq!(entry, b"\x01n\x00\x00k\x00\xff\x00\x00");
        assert_eq!(decode_entry_key(&entry).unwrap(), ("n".to_string(), b"k\x00".to_vec()));
        let expiry = Key::Expiry { at_ms: 9, ns: "n", key: b"k" }.encode();
        assert_eq!(decode_expiry_key(&expiry).unwrap(), (9, "n".to_string(), b"k".to_vec()));
        let value = encode_value(3, Some(7), b"hi");
        assert_eq!(decode_value(&value).unwrap(), (3, Some(7), &b"hi"[..]));
        assert!(decode_value(b"short").is_err());
    }
}
