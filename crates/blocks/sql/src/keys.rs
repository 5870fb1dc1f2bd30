//! The sql block's key layout in its keyspace `sql` (see `docs/format/sql.md`).

use crate::types::Value;
use rust_decimal::prelude::ToPrimitive;
use strata_core::keycode::{self, KeyBuf};

pub enum Key<'a> {
    /// `01 string(name)` → table definition (JSON).
    Table(&'a str),
    /// `02` → next table/index id (u64 LE).
    NextId,
    /// `03 u64(table) pk-tuple` → row.
    Row(u64, &'a [u8]),
    /// `04 u64(table) u64(index) values-tuple [pk-tuple]` → pk-tuple.
    Index(u64, u64, &'a [u8]),
    /// `05 string(name)` → empty: tables of this name write to the change feed.
    Feed(&'a str),
}

pub enum KeyPrefix {
    Tables,
    Rows(u64),
    Index(u64, u64),
}

impl Key<'_> {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Key::Table(name) => KeyBuf::new().tag(0x01).str(name).finish(),
            Key::NextId => vec![0x02],
            Key::Row(table, pk) => KeyBuf::new().tag(0x03).u64(*table).raw(pk).finish(),
            Key::Index(table, index, values) => {
                KeyBuf::new().tag(0x04).u64(*table).u64(*index).raw(values).finish()
            }
            Key::Feed(name) => KeyBuf::new().tag(0x05).str(name).finish(),
        }
    }
}

impl KeyPrefix {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            KeyPrefix::Tables => vec![0x01],
            KeyPrefix::Rows(table) => KeyBuf::new().tag(0x03).u64(*table).finish(),
            KeyPrefix::Index(table, index) => KeyBuf::new().tag(0x04).u64(*table).u64(*index).finish(),
        }
    }
}

/// Encodes values as an order-preserving tuple. Values are already coerced to their column
/// types, so values compared in one key position always have the same variant.
pub fn encode_values(values: &[&Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        let kv = match v {
            Value::Null => keycode::Value::Null,
            Value::Bool(b) => keycode::Value::Bool(*b),
            Value::Int(i) => keycode::Value::Int(*i),
            Value::Float(f) => keycode::Value::Float(*f),
            Value::Numeric(d) => {
                // Approximate order first, then the exact digits to keep equal keys equal.
                keycode::Value::Float(d.to_f64().unwrap_or(0.0)).encode_into(&mut out);
                keycode::Value::Str(d.normalize().to_string())
            }
            Value::Text(s) => keycode::Value::Str(s.clone()),
            Value::Bytes(b) => keycode::Value::Bytes(b.clone()),
            Value::Date(d) => keycode::Value::Int(d.to_epoch_days() as i64),
            Value::Timestamp(t) => keycode::Value::Int(t.and_utc().timestamp_micros()),
            Value::Timestamptz(t) => keycode::Value::Int(t.timestamp_micros()),
            Value::Uuid(u) => keycode::Value::Bytes(u.as_bytes().to_vec()),
            Value::Json(j) => keycode::Value::Str(j.to_string()),
        };
        kv.encode_into(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_byte_prefixes_of_their_keys() {
        let pk = encode_values(&[&Value::Int(7)]);
        assert!(Key::Row(3, &pk).encode().starts_with(&KeyPrefix::Rows(3).encode()));
        assert!(Key::Index(3, 9, &pk).encode().starts_with(&KeyPrefix::Index(3, 9).encode()));
        assert!(Key::Table("t").encode().starts_with(&KeyPrefix::Tables.encode()));
        assert!(!Key::Row(4, &pk).encode().starts_with(&KeyPrefix::Rows(3).encode()));
    }

    #[test]
    fn value_tuples_sort_like_values() {
        let a = encode_values(&[&Value::Int(-5), &Value::Text("b".into())]);
        let b = encode_values(&[&Value::Int(3), &Value::Text("a".into())]);
        assert!(a < b);
        let null = encode_values(&[&Value::Null]);
        assert!(null < encode_values(&[&Value::Int(i64::MIN)]));
    }
}
