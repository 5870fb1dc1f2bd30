//! What the search block keeps in core: index metadata (the manifest of its tantivy files)
//! and every document's source with its sequence number and version. Core is the source of
//! truth; the tantivy index is rebuilt or caught up from it (see `engine.rs`).

use crate::error::{SearchError, SearchResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An index as the manifest records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IndexMeta {
    pub name: String,
    /// Names the index's directory; a deleted and recreated index gets a new one.
    pub uuid: u64,
    /// The index's settings as `{"index": {...}}` with dotted keys expanded.
    pub settings: Value,
    pub mappings: Value,
    pub created_ms: u64,
    /// Which tantivy directory (`<uuid>/<generation>`) holds the current index files.
    pub generation: u64,
}

impl IndexMeta {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("index metadata serializes")
    }

    pub fn decode(bytes: &[u8]) -> SearchResult<IndexMeta> {
        serde_json::from_slice(bytes)
            .map_err(|e| SearchError::internal(format!("corrupt index metadata: {e}")))
    }

    /// An `index.*` setting, whether given as `{"index": {"x": ..}}` or flat.
    pub fn setting(&self, key: &str) -> Option<&Value> {
        self.settings.get("index").and_then(|i| i.get(key))
    }
}

/// A stored document.
#[derive(Clone, Debug, PartialEq)]
pub struct DocRecord {
    pub seq: u64,
    pub version: u64,
    pub source: Vec<u8>,
}

impl DocRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.source.len());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.source);
        out
    }

    pub fn decode(bytes: &[u8]) -> SearchResult<DocRecord> {
        if bytes.len() < 16 {
            return Err(SearchError::internal("corrupt document record"));
        }
        Ok(DocRecord {
            seq: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            version: u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes")),
            source: bytes[16..].to_vec(),
        })
    }
}

pub const OP_INDEXED: u8 = 0;
pub const OP_DELETED: u8 = 1;

pub fn encode_op(kind: u8, id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + id.len());
    out.push(kind);
    out.extend_from_slice(id.as_bytes());
    out
}

pub fn decode_op(bytes: &[u8]) -> Option<(u8, String)> {
    let (&kind, id) = bytes.split_first()?;
    Some((kind, String::from_utf8(id.to_vec()).ok()?))
}

pub fn u64_value(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let rec = DocRecord { seq: 7, version: 2, source: b"{\"a\":1}".to_vec() };
        assert_eq!(DocRecord::decode(&rec.encode()).unwrap(), rec);
        assert_eq!(decode_op(&encode_op(OP_DELETED, "x")), Some((OP_DELETED, "x".into())));
    }
}
