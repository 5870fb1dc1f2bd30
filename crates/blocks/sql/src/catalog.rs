//! The catalog: table definitions, stored in the `sql` keyspace as JSON, read inside the
//! transaction that uses them so DDL is transactional like everything else; and
//! [`CatalogCache`], which spares statements the read and the decoding while the catalog
//! does not change.

use crate::error::{SqlError, SqlResult};
use crate::keys::Key;
use crate::types::DataType;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use strata_core::{Isolation, Keyspace, Txn};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub ty: DataType,
    pub nullable: bool,
    /// The DEFAULT expression as SQL text, bound when used.
    pub default: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexDef {
    pub id: u64,
    pub name: String,
    /// Column positions, in index order.
    pub columns: Vec<usize>,
    pub unique: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub id: u64,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Positions of the primary key columns; empty means rows are keyed by a random id.
    pub primary_key: Vec<usize>,
    /// CHECK constraints as (name, SQL text).
    pub checks: Vec<(String, String)>,
    pub indexes: Vec<IndexDef>,
    /// Whether row changes go to the core change feed (see `feed.rs`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub feed: bool,
}

impl TableDef {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn must_column(&self, name: &str) -> SqlResult<usize> {
        self.column_index(name).ok_or_else(|| {
            SqlError::new("42703", format!("column \"{name}\" of relation \"{}\" does not exist", self.name))
        })
    }
}

pub fn get_table(txn: &Txn, ks: &Keyspace, name: &str) -> SqlResult<Option<TableDef>> {
    match txn.get(ks, &Key::Table(name).encode())? {
        Some(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .map_err(|e| SqlError::new("XX001", format!("corrupt catalog: {e}")))?,
        )),
        None => Ok(None),
    }
}

pub fn must_table(txn: &Txn, ks: &Keyspace, name: &str) -> SqlResult<TableDef> {
    get_table(txn, ks, name)?
        .ok_or_else(|| SqlError::new("42P01", format!("relation \"{name}\" does not exist")))
}

/// Decoded table definitions shared by a block's sessions. Binding a point SELECT read and
/// JSON-decoded the table's definition each time: a tenth of the server's CPU under pgbench.
///
/// An entry holds the definition as of the last catalog change, so it answers exactly for
/// transactions whose snapshot includes that change (`start_seq >= last_change`). Commits
/// that change the catalog go through [`CatalogCache::commit_change`], which empties the
/// cache before the change becomes visible and again after, and keeps it bypassed while the
/// commit is in flight; an entry read by an older snapshot is never stored. Transactions
/// that changed the catalog themselves, and serializable ones (whose reads must be recorded
/// for validation), do not use the cache.
#[derive(Debug, Default)]
pub struct CatalogCache {
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    tables: HashMap<String, TableDef>,
    /// The commit seq of the last catalog change.
    last_change: u64,
    /// Catalog-changing commits in flight.
    changing: usize,
}

impl CacheState {
    fn answers_for(&self, txn: &Txn) -> bool {
        txn.isolation() != Isolation::Serializable
            && self.changing == 0
            && txn.start_seq() >= self.last_change
    }
}

/// The definition of `name` as `txn` sees it, through `cache` when one is given.
pub fn must_table_via(
    cache: Option<&CatalogCache>,
    txn: &Txn,
    ks: &Keyspace,
    name: &str,
) -> SqlResult<TableDef> {
    match cache {
        Some(cache) => cache.must_table(txn, ks, name),
        None => must_table(txn, ks, name),
    }
}

impl CatalogCache {
    pub fn must_table(&self, txn: &Txn, ks: &Keyspace, name: &str) -> SqlResult<TableDef> {
        {
            let state = self.state.lock().expect("catalog cache lock poisoned");
            if state.answers_for(txn)
                && let Some(table) = state.tables.get(name)
            {
                return Ok(table.clone());
            }
        }
        let table = must_table(txn, ks, name)?;
        let mut state = self.state.lock().expect("catalog cache lock poisoned");
        if state.answers_for(txn) {
            state.tables.insert(name.to_string(), table.clone());
        }
        Ok(table)
    }

    /// The catalog version `txn` sees, when the cache answers for it: plans bound at that
    /// version stay right for it.
    pub fn version_for(&self, txn: &Txn) -> Option<u64> {
        let state = self.state.lock().expect("catalog cache lock poisoned");
        state.answers_for(txn).then_some(state.last_change)
    }

    /// Commits `txn`, which changed the catalog.
    pub fn commit_change(&self, txn: Txn) -> strata_core::Result<u64> {
        {
            let mut state = self.state.lock().expect("catalog cache lock poisoned");
            state.changing += 1;
            state.tables.clear();
        }
        let result = txn.commit();
        let mut state = self.state.lock().expect("catalog cache lock poisoned");
        state.changing -= 1;
        if let Ok(seq) = &result {
            state.last_change = state.last_change.max(*seq);
        }
        state.tables.clear();
        result
    }
}

pub fn put_table(txn: &mut Txn, ks: &Keyspace, table: &TableDef) -> SqlResult<()> {
    let bytes = serde_json::to_vec(table).expect("table definitions serialize");
    txn.set(ks, Key::Table(&table.name).encode(), bytes)?;
    Ok(())
}

/// Marks a table name as a feed: the table, and any table created later under the name,
/// writes its row changes to the change feed.
pub fn mark_feed(txn: &mut Txn, ks: &Keyspace, name: &str) -> SqlResult<()> {
    txn.set(ks, Key::Feed(name).encode(), Vec::new())?;
    Ok(())
}

pub fn is_feed(txn: &Txn, ks: &Keyspace, name: &str) -> SqlResult<bool> {
    Ok(txn.get(ks, &Key::Feed(name).encode())?.is_some())
}

pub fn delete_table(txn: &mut Txn, ks: &Keyspace, name: &str) -> SqlResult<()> {
    txn.delete(ks, Key::Table(name).encode())?;
    Ok(())
}

pub fn list_tables(txn: &Txn, ks: &Keyspace) -> SqlResult<Vec<TableDef>> {
    txn.scan_prefix(ks, &crate::keys::KeyPrefix::Tables.encode())
        .map(|pair| {
            let (_, v) = pair?;
            serde_json::from_slice(&v).map_err(|e| SqlError::new("XX001", format!("corrupt catalog: {e}")))
        })
        .collect()
}

/// Allocates a new id for a table or an index.
pub fn next_id(txn: &mut Txn, ks: &Keyspace) -> SqlResult<u64> {
    let key = Key::NextId.encode();
    let id = match txn.get(ks, &key)? {
        Some(bytes) => {
            u64::from_le_bytes(bytes.try_into().map_err(|_| SqlError::new("XX001", "corrupt id counter"))?)
        }
        None => 1,
    };
    txn.set(ks, key, (id + 1).to_le_bytes().to_vec())?;
    Ok(id)
}
