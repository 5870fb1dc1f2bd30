//! Key layout of the search block in its core keyspace (`search`). See
//! `docs/format/search.md`.
//!
//! | key | value |
//! | --- | --- |
//! | `01 name` | index metadata, JSON ([`crate::store::IndexMeta`]) |
//! | `02 uuid id` | a document: seq u64, version u64, then its `_source` bytes |
//! | `03 uuid seq` | the operation with that sequence number: `00 id` (indexed) or `01 id` (deleted) |
//! | `04 uuid` | the index's last sequence number, u64 |
//! | `05` | the next index uuid, u64 |
//! | `06 uuid` | a fed index's feed cursor: the last change record applied, seq u64 + index u32 |
//! | `07 alias` | an alias: JSON `{"index": is_write_index (true, false or null)}` |

use strata_core::keycode::KeyBuf;

pub const TAG_INDEX: u8 = 1;
pub const TAG_DOC: u8 = 2;
pub const TAG_OP: u8 = 3;
pub const TAG_SEQ: u8 = 4;
pub const TAG_NEXT_UUID: u8 = 5;
pub const TAG_FEED_CURSOR: u8 = 6;
pub const TAG_ALIAS: u8 = 7;

pub fn index(name: &str) -> Vec<u8> {
    KeyBuf::new().tag(TAG_INDEX).str(name).finish()
}

pub fn index_prefix() -> Vec<u8> {
    vec![TAG_INDEX]
}

pub fn doc(uuid: u64, id: &str) -> Vec<u8> {
    KeyBuf::new().tag(TAG_DOC).u64(uuid).str(id).finish()
}

pub fn doc_prefix(uuid: u64) -> Vec<u8> {
    KeyBuf::new().tag(TAG_DOC).u64(uuid).finish()
}

pub fn op(uuid: u64, seq: u64) -> Vec<u8> {
    KeyBuf::new().tag(TAG_OP).u64(uuid).u64(seq).finish()
}

pub fn op_prefix(uuid: u64) -> Vec<u8> {
    KeyBuf::new().tag(TAG_OP).u64(uuid).finish()
}

pub fn seq(uuid: u64) -> Vec<u8> {
    KeyBuf::new().tag(TAG_SEQ).u64(uuid).finish()
}

pub fn next_uuid() -> Vec<u8> {
    vec![TAG_NEXT_UUID]
}

pub fn feed_cursor(uuid: u64) -> Vec<u8> {
    KeyBuf::new().tag(TAG_FEED_CURSOR).u64(uuid).finish()
}

pub fn alias(name: &str) -> Vec<u8> {
    KeyBuf::new().tag(TAG_ALIAS).str(name).finish()
}

pub fn alias_prefix() -> Vec<u8> {
    vec![TAG_ALIAS]
}

/// The alias name an `alias` key holds.
pub fn alias_name(key: &[u8]) -> strata_core::Result<String> {
    let mut reader = strata_core::keycode::Decoder::new(key);
    reader.tag()?;
    reader.string()
}
