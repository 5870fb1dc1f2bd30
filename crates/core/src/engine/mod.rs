//! Storage engines: the ordered key-value stores under [`crate::Store`].
//!
//! An engine knows nothing of transactions. It offers named keyspaces, consistent snapshots,
//! atomic multi-keyspace batches and an explicit `sync`. The transaction layer
//! ([`crate::Txn`]), conflict detection and group commit sit above it and are shared, so the
//! disk engine ([`FjallEngine`]) and the memory engine ([`MemoryEngine`]) have the same
//! semantics by construction.

mod fjall;
mod memory;

pub(crate) use self::fjall::FjallEngine;
pub(crate) use memory::MemoryEngine;

use crate::Result;
use std::ops::Bound;
use std::sync::Arc;

/// Index of an opened keyspace inside its engine.
pub(crate) type KsId = usize;

/// One write of a batch: `None` deletes the key.
pub(crate) type Op = (KsId, Vec<u8>, Option<Vec<u8>>);

/// A key-value pair read from an engine.
pub(crate) type Pair = (Vec<u8>, Vec<u8>);

/// An iterator over pairs, in key order or reverse key order.
pub(crate) type PairIter = Box<dyn Iterator<Item = Result<Pair>> + Send>;

pub(crate) trait Engine: Send + Sync {
    /// Opens (creating if needed) the keyspace `name`; `tuning` applies when it is created.
    fn open_keyspace(&self, name: &str, tuning: &crate::KeyspaceTuning) -> Result<KsId>;
    /// A consistent view of every keyspace as of now.
    fn snapshot(&self) -> Arc<dyn Snapshot>;
    /// Applies every op atomically. After return, new snapshots see the batch, and a crash of
    /// this process (not of the machine) keeps it.
    fn apply(&self, ops: Vec<Op>) -> Result<()>;
    /// Makes everything applied so far durable against power loss.
    fn sync(&self) -> Result<()>;
}

pub(crate) trait Snapshot: Send + Sync {
    fn get(&self, ks: KsId, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn scan(&self, ks: KsId, range: (Bound<Vec<u8>>, Bound<Vec<u8>>), reverse: bool) -> PairIter;
}
