//! The disk engine: fjall, an LSM-tree with a write-ahead journal.
//!
//! Batches are written to fjall's journal and flushed to the OS (fjall's `PersistMode::Buffer`),
//! which survives `kill -9`; `sync` fsyncs the journal, which survives power loss. The group
//! commit in [`crate::Store`] decides when to call `sync`.

use super::{Engine, KsId, Op, PairIter, Snapshot};
use crate::Result;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, RwLock};

pub(crate) struct FjallEngine {
    db: Database,
    keyspaces: Arc<RwLock<Vec<(String, Keyspace)>>>,
}

impl FjallEngine {
    pub(crate) fn open(path: &Path, cache_bytes: u64) -> Result<Self> {
        let db = Database::builder(path).cache_size(cache_bytes).open()?;
        Ok(Self { db, keyspaces: Arc::default() })
    }
}

impl Engine for FjallEngine {
    fn open_keyspace(&self, name: &str) -> Result<KsId> {
        let mut keyspaces = self.keyspaces.write().expect("keyspace lock poisoned");
        if let Some(id) = keyspaces.iter().position(|(n, _)| n == name) {
            return Ok(id);
        }
        let ks = self.db.keyspace(name, KeyspaceCreateOptions::default)?;
        keyspaces.push((name.to_string(), ks));
        Ok(keyspaces.len() - 1)
    }

    fn snapshot(&self) -> Arc<dyn Snapshot> {
        Arc::new(FjallSnapshot { snapshot: self.db.snapshot(), keyspaces: self.keyspaces.clone() })
    }

    fn apply(&self, ops: Vec<Op>) -> Result<()> {
        let keyspaces = self.keyspaces.read().expect("keyspace lock poisoned").clone();
        let mut batch = self.db.batch().durability(Some(PersistMode::Buffer));
        for (ks, key, value) in ops {
            match value {
                Some(value) => batch.insert(&keyspaces[ks].1, key, value),
                None => batch.remove(&keyspaces[ks].1, key),
            }
        }
        batch.commit()?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.db.persist(PersistMode::SyncData)?;
        Ok(())
    }
}

struct FjallSnapshot {
    snapshot: fjall::Snapshot,
    /// Shared with the engine: a keyspace opened after the snapshot was taken is still read
    /// at the snapshot's sequence number.
    keyspaces: Arc<RwLock<Vec<(String, Keyspace)>>>,
}

impl FjallSnapshot {
    fn keyspace(&self, id: KsId) -> Keyspace {
        self.keyspaces.read().expect("keyspace lock poisoned")[id].1.clone()
    }
}

impl Snapshot for FjallSnapshot {
    fn get(&self, ks: KsId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.snapshot.get(&self.keyspace(ks), key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, ks: KsId, range: (Bound<Vec<u8>>, Bound<Vec<u8>>), reverse: bool) -> PairIter {
        let iter = self.snapshot.range(&self.keyspace(ks), range);
        let map = |guard: fjall::Guard| {
            let (k, v) = guard.into_inner()?;
            Ok((k.to_vec(), v.to_vec()))
        };
        if reverse { Box::new(iter.rev().map(map)) } else { Box::new(iter.map(map)) }
    }
}
