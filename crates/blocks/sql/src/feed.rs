//! Change records of tables that feed other blocks (a search index declared on a table).
//!
//! A table is a feed once [`crate::Sql::enable_feed`] has marked it; from then on every
//! statement that writes its rows appends one record per row change to the core change
//! feed, in the same transaction, with source [`FEED_SOURCE`]. The payload is JSON, so a
//! subscriber needs neither this crate's row encoding nor the catalog to read it:
//!
//! ```text
//! {"table": "products", "op": "upsert", "id": "42", "row": {"id": 42, "name": "lamp"}}
//! {"table": "products", "op": "delete", "id": "42"}
//! {"table": "products", "op": "clear"}            (TRUNCATE, DROP TABLE)
//! ```
//!
//! `id` is the primary key as text (columns joined by `,`), or the hex of the random row id
//! of a table without one. An UPDATE is a delete then an upsert of the same row (or of its
//! new key). Rows are JSON as PostgreSQL's `to_json` writes them: numbers as numbers,
//! timestamps in ISO 8601, bytea as `\x` hex.

use crate::catalog::TableDef;
use crate::error::SqlResult;
use crate::row::Row;
use crate::types::Value;
use serde::{Deserialize, Serialize};
use serde_json::Map;
use strata_core::Txn;

/// The change-feed source name of SQL row changes.
pub const FEED_SOURCE: &str = "sql";

/// What happened to a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowOp {
    /// The row was inserted or changed; `row` holds all its columns.
    Upsert,
    /// The row was deleted.
    Delete,
    /// Every row of the table was deleted.
    Clear,
}

/// One row change, as read back from the change feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowChange {
    pub table: String,
    pub op: RowOp,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<Map<String, serde_json::Value>>,
}

impl RowChange {
    /// Decodes a change record's payload (source [`FEED_SOURCE`]).
    pub fn decode(payload: &[u8]) -> Option<RowChange> {
        serde_json::from_slice(payload).ok()
    }
}

/// The document id of a row: its primary key as text, or its random row key in hex.
pub(crate) fn row_id(def: &TableDef, row_key: &[u8], row: &Row) -> String {
    if def.primary_key.is_empty() {
        row_key.iter().map(|b| format!("{b:02x}")).collect()
    } else {
        def.primary_key.iter().map(|&i| row[i].to_text()).collect::<Vec<_>>().join(",")
    }
}

/// A row as a JSON object of its columns.
pub(crate) fn row_json(def: &TableDef, row: &Row) -> Map<String, serde_json::Value> {
    def.columns.iter().zip(row).map(|(c, v)| (c.name.clone(), value_json(v))).collect()
}

fn value_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or_else(|| J::String(value.to_text()), J::Number)
        }
        Value::Numeric(d) => {
            use rust_decimal::prelude::ToPrimitive;
            d.to_f64()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| J::String(d.to_string()), J::Number)
        }
        Value::Timestamp(t) => J::String(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
        Value::Timestamptz(t) => J::String(t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string()),
        Value::Json(j) => j.clone(),
        other => J::String(other.to_text()),
    }
}

/// Appends the change of one row of a feed table to the transaction's change records.
pub(crate) fn emit(txn: &mut Txn, def: &TableDef, op: RowOp, row_key: &[u8], row: &Row) -> SqlResult<()> {
    let change = RowChange {
        table: def.name.clone(),
        op,
        id: row_id(def, row_key, row),
        row: (op == RowOp::Upsert).then(|| row_json(def, row)),
    };
    txn.emit(FEED_SOURCE, serde_json::to_vec(&change).expect("row changes serialize"))?;
    Ok(())
}

/// Appends a `clear` record for a feed table.
pub(crate) fn emit_clear(txn: &mut Txn, def: &TableDef) -> SqlResult<()> {
    let change = RowChange { table: def.name.clone(), op: RowOp::Clear, id: String::new(), row: None };
    txn.emit(FEED_SOURCE, serde_json::to_vec(&change).expect("row changes serialize"))?;
    Ok(())
}
