//! The disk engine: fjall, an LSM-tree with a write-ahead journal.
//!
//! Batches are written to fjall's journal and flushed to the OS (fjall's `PersistMode::Buffer`),
//! which survives `kill -9`; `sync` fsyncs the journal, which survives power loss. The group
//! commit in [`crate::Store`] decides when to call `sync`.

use super::{Engine, KsId, Op, PairIter, Snapshot};
use crate::Result;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

pub(crate) struct FjallEngine {
    db: Database,
    path: PathBuf,
    /// The active journal's id and a handle to it, reopened when fjall rotates.
    journal: Mutex<Option<(u64, File)>>,
    keyspaces: Arc<RwLock<Vec<(String, Keyspace)>>>,
}

impl FjallEngine {
    pub(crate) fn open(path: &Path, cache_bytes: u64) -> Result<Self> {
        let db = Database::builder(path).cache_size(cache_bytes).open()?;
        Ok(Self { db, path: path.to_path_buf(), journal: Mutex::default(), keyspaces: Arc::default() })
    }

    /// The id of the newest journal file.
    fn active_journal(&self) -> Result<Option<u64>> {
        let mut newest = None;
        for entry in std::fs::read_dir(&self.path)? {
            let name = entry?.file_name();
            let id = name.to_str().and_then(|n| n.strip_suffix(".jnl")).and_then(|n| n.parse::<u64>().ok());
            newest = newest.max(id);
        }
        Ok(newest)
    }
}

impl Engine for FjallEngine {
    fn open_keyspace(&self, name: &str, tuning: &crate::KeyspaceTuning) -> Result<KsId> {
        let mut keyspaces = self.keyspaces.write().expect("keyspace lock poisoned");
        if let Some(id) = keyspaces.iter().position(|(n, _)| n == name) {
            return Ok(id);
        }
        let ks = self.db.keyspace(name, || {
            let options = KeyspaceCreateOptions::default();
            match tuning.memtable_bytes {
                Some(bytes) => options.max_memtable_size(bytes),
                None => options,
            }
        })?;
        keyspaces.push((name.to_string(), ks));
        Ok(keyspaces.len() - 1)
    }

    fn snapshot(&self) -> Arc<dyn Snapshot> {
        Arc::new(FjallSnapshot { snapshot: self.db.snapshot(), keyspaces: self.keyspaces.clone() })
    }

    fn apply(&self, ops: Vec<Op>) -> Result<()> {
        let mut batch = self.db.batch().durability(Some(PersistMode::Buffer));
        {
            // The batch keeps handles of its own, so the lock is held only while it fills.
            let keyspaces = self.keyspaces.read().expect("keyspace lock poisoned");
            for (ks, key, value) in ops {
                match value {
                    Some(value) => batch.insert(&keyspaces[ks].1, key, value),
                    None => batch.remove(&keyspaces[ks].1, key),
                }
            }
        }
        batch.commit()?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        let mut journal = self.journal.lock().expect("journal lock poisoned");
        // fjall rotates to journal `id + 1` (after fsyncing `id`); one stat notices it, where
        // listing the directory at every fsync cost more than the rest of a commit's work.
        let rotated = match journal.as_ref() {
            Some((id, _)) => self.path.join(format!("{}.jnl", id + 1)).try_exists()?,
            None => true,
        };
        if rotated {
            let Some(id) = self.active_journal()? else {
                drop(journal);
                self.db.persist(PersistMode::SyncData)?;
                return Ok(());
            };
            *journal = Some((id, File::open(self.path.join(format!("{id}.jnl")))?));
        }
        journal.as_ref().expect("journal just opened").1.sync_data()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `sync` relies on fjall's journal layout (`<id>.jnl`, rotating to `<id + 1>.jnl`); this
    /// fails if a fjall upgrade changes the naming.
    #[test]
    fn active_journal_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let engine = FjallEngine::open(dir.path(), 1 << 20).unwrap();
        let ks = engine.open_keyspace("t", &crate::KeyspaceTuning::default()).unwrap();
        engine.apply(vec![(ks, b"k".to_vec(), Some(b"v".to_vec()))]).unwrap();
        let id = engine.active_journal().unwrap().expect("fjall keeps a journal");
        engine.sync().unwrap();
        assert_eq!(engine.journal.lock().unwrap().as_ref().map(|(open, _)| *open), Some(id));
        // A rotation (here imitated) is noticed at the next sync.
        std::fs::File::create(dir.path().join(format!("{}.jnl", id + 1))).unwrap();
        engine.sync().unwrap();
        assert_eq!(engine.journal.lock().unwrap().as_ref().map(|(open, _)| *open), Some(id + 1));
    }

    /// A keyspace created with a small memtable writes tables once that much is buffered; a
    /// default one still buffers it.
    #[test]
    fn a_tuned_keyspace_flushes_at_its_memtable_size() {
        let dir = tempfile::tempdir().unwrap();
        let small = crate::KeyspaceTuning { memtable_bytes: Some(1 << 20) };
        let fill = |engine: &FjallEngine, ks: KsId| {
            for i in 0u32..3_000 {
                engine.apply(vec![(ks, i.to_be_bytes().to_vec(), Some(vec![7u8; 1024]))]).unwrap();
            }
        };
        let tables = |engine: &FjallEngine, ks: KsId| {
            let keyspace = engine.keyspaces.read().unwrap()[ks].1.clone();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while keyspace.table_count() == 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            keyspace.table_count()
        };
        let engine = FjallEngine::open(dir.path(), 1 << 20).unwrap();
        let (tuned, plain) = (
            engine.open_keyspace("tuned", &small).unwrap(),
            engine.open_keyspace("plain", &crate::KeyspaceTuning::default()).unwrap(),
        );
        fill(&engine, tuned);
        fill(&engine, plain);
        assert!(tables(&engine, tuned) > 0, "3 MiB written past a 1 MiB memtable");
        assert_eq!(engine.keyspaces.read().unwrap()[plain].1.table_count(), 0);
    }
}
