//! Indices fed by another block's collection (a SQL table today, a document collection
//! later) through the core change feed.
//!
//! An index whose setting `index.strata.source` names a collection — `"sql:products"` — is
//! kept in sync with it by the indexer thread:
//!
//! ```text
//!   first time, or after falling behind the feed's retention:
//!     enable the collection's feed ─► wait out older transactions ─► snapshot at seq S
//!     ─► index every document, delete the ones the collection no longer has ─► cursor = S
//!   then, on every new commit:
//!     change records after the cursor ─► upserts/deletes (last one per id wins) ─► _bulk
//!     ─► cursor = the last record applied
//! ```
//!
//! The cursor (`06 uuid` in core) is written after the documents it covers are durable, so
//! a crash replays at most one batch; replaying upserts and deletes by id is harmless.
//! The blocks that own collections implement [`Collections`]; the binary attaches them
//! ([`crate::Search::attach`]), so this crate never imports them.

use crate::error::{SearchError, SearchResult};
use crate::store::IndexMeta;
use crate::{BulkOp, Conditions, Inner, Refresh, Search, Source, keys};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use strata_core::keycode::Decoder;
use strata_core::{Change, Txn};

/// Documents written per bulk commit while following a collection.
const BATCH: usize = 1000;
/// Change records read per round.
const READ_LIMIT: usize = 5000;
/// How long a first load waits for transactions that began before the feed was enabled.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A block whose collections can feed search indices.
pub trait Collections: Send + Sync {
    /// The name before `:` in `index.strata.source`, and the change-feed source its
    /// records carry (`sql`).
    fn kind(&self) -> &str;
    /// Makes `collection` write its changes to the feed from the returned commit on.
    fn enable(&self, collection: &str) -> Result<u64, String>;
    /// Every document of `collection` in `txn`'s snapshot, with its id.
    fn snapshot(
        &self,
        txn: &Txn,
        collection: &str,
        visit: &mut dyn FnMut(String, Map<String, Value>),
    ) -> Result<(), String>;
    /// Decodes one of this block's change records.
    fn decode(&self, change: &Change) -> Option<CollectionChange>;
}

/// A change to a collection's documents.
#[derive(Clone, Debug, PartialEq)]
pub enum CollectionChange {
    Upsert {
        collection: String,
        id: String,
        doc: Map<String, Value>,
    },
    Delete {
        collection: String,
        id: String,
    },
    /// Every document was deleted.
    Clear {
        collection: String,
    },
}

impl CollectionChange {
    fn collection(&self) -> &str {
        match self {
            CollectionChange::Upsert { collection, .. }
            | CollectionChange::Delete { collection, .. }
            | CollectionChange::Clear { collection } => collection,
        }
    }
}

/// The collection an index follows, from its `index.strata.source` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SourceRef {
    pub kind: String,
    pub collection: String,
}

impl SourceRef {
    /// Reads the setting (flat `strata.source` or nested `strata: {source}`); `Ok(None)`
    /// when the index has none.
    pub fn of(settings: &Value) -> SearchResult<Option<SourceRef>> {
        let index = &settings["index"];
        let value = index.get("strata.source").or_else(|| index.get("strata").and_then(|s| s.get("source")));
        let Some(value) = value else { return Ok(None) };
        let text = value.as_str().unwrap_or_default();
        match text.split_once(':') {
            Some((kind, collection)) if !kind.is_empty() && !collection.is_empty() => {
                Ok(Some(SourceRef { kind: kind.to_string(), collection: collection.to_string() }))
            }
            _ => Err(SearchError::illegal_argument(format!(
                "index.strata.source must be \"<kind>:<collection>\" (like \"sql:products\"), got {value}"
            ))),
        }
    }
}

/// Where an index stands in the feed: the last change record it applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    seq: u64,
    index: u32,
}

impl Cursor {
    /// After every record of commit `seq`.
    fn after_commit(seq: u64) -> Cursor {
        Cursor { seq, index: u32::MAX }
    }

    fn encode(self) -> Vec<u8> {
        [self.seq.to_be_bytes().as_slice(), &self.index.to_be_bytes()].concat()
    }

    fn decode(bytes: &[u8]) -> SearchResult<Cursor> {
        match (bytes.get(..8), bytes.get(8..12)) {
            (Some(seq), Some(index)) if bytes.len() == 12 => Ok(Cursor {
                seq: u64::from_be_bytes(seq.try_into().expect("8 bytes")),
                index: u32::from_be_bytes(index.try_into().expect("4 bytes")),
            }),
            _ => Err(SearchError::internal("corrupt feed cursor")),
        }
    }
}

/// What the indexer knows of one fed index between rounds.
struct Follow {
    /// The last record applied (`None`: load from a snapshot first).
    cursor: Option<Cursor>,
    /// The cursor as stored in core.
    stored: Option<Cursor>,
}

impl Search {
    /// Lets indices follow the collections of another block (see `indexer.rs`). The first
    /// call starts the indexer thread; it stops when the block is dropped.
    pub fn attach(&self, collections: Arc<dyn Collections>) {
        let mut attached = self.inner.collections.write().expect("collections lock");
        attached.push(collections);
        if attached.len() == 1 {
            let weak = Arc::downgrade(&self.inner);
            std::thread::Builder::new()
                .name("search-indexer".into())
                .spawn(move || run(weak))
                .expect("spawn the search indexer");
        }
    }
}

impl Inner {
    /// Checks an index's source setting against the attached collections.
    pub(crate) fn check_source(&self, settings: &Value) -> SearchResult<()> {
        let Some(source) = SourceRef::of(settings)? else { return Ok(()) };
        let attached = self.collections.read().expect("collections lock");
        if attached.iter().any(|c| c.kind() == source.kind) {
            return Ok(());
        }
        let kinds: Vec<&str> = attached.iter().map(|c| c.kind()).collect();
        Err(SearchError::illegal_argument(format!(
            "unknown index.strata.source kind [{}]; this server has [{}]",
            source.kind,
            kinds.join(", ")
        )))
    }
}

/// Time between rounds while indices follow sources, and while none does.
const ROUND: Duration = Duration::from_millis(10);
const IDLE_ROUND: Duration = Duration::from_millis(200);

fn run(weak: Weak<Inner>) {
    let mut follows: HashMap<u64, Follow> = HashMap::new();
    let mut seen_seq = u64::MAX;
    let mut seen_indices: HashSet<u64> = HashSet::new();
    loop {
        // Rounds are frequent only while some index follows a source: an idle server's
        // thread should not wake a hundred times a second.
        std::thread::sleep(if follows.is_empty() { IDLE_ROUND } else { ROUND });
        let Some(search) = weak.upgrade().map(|inner| Search { inner }) else { return };
        let last = search.inner.store.last_seq();
        let handles = search.inner.handles();
        let indices: HashSet<u64> = handles.iter().map(|h| h.meta.read().expect("meta lock").uuid).collect();
        // Idle rounds (no commit, no new index) read nothing else.
        if last == seen_seq && indices == seen_indices {
            continue;
        }
        let fed: Vec<(IndexMeta, SourceRef)> = handles
            .into_iter()
            .filter_map(|h| {
                let meta = h.meta.read().expect("meta lock").clone();
                let source = SourceRef::of(&meta.settings).ok().flatten()?;
                Some((meta, source))
            })
            .collect();
        follows.retain(|uuid, _| fed.iter().any(|(m, _)| m.uuid == *uuid));
        (seen_seq, seen_indices) = (last, indices);
        let collections = search.inner.collections.read().expect("collections lock").clone();
        for (meta, source) in fed {
            let Some(owner) = collections.iter().find(|c| c.kind() == source.kind) else { continue };
            if let Err(err) = search.follow(&mut follows, &meta, &source, owner.as_ref()) {
                tracing::warn!(index = %meta.name, %err, "following the index's source failed; retrying");
                follows.remove(&meta.uuid);
                seen_seq = u64::MAX;
            }
        }
    }
}

impl Search {
    /// One round for one index: a snapshot load if it needs one, else the new records.
    fn follow(
        &self,
        follows: &mut HashMap<u64, Follow>,
        meta: &IndexMeta,
        source: &SourceRef,
        owner: &dyn Collections,
    ) -> SearchResult<()> {
        let store = &self.inner.store;
        let follow = match follows.entry(meta.uuid) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let txn = store.begin_read_only();
                let stored = txn
                    .get(&self.inner.ks, &keys::feed_cursor(meta.uuid))?
                    .map(|b| Cursor::decode(&b))
                    .transpose()?;
                e.insert(Follow { cursor: stored, stored })
            }
        };
        let behind = follow.cursor.is_some_and(|c| c.seq + 1 < store.feed_horizon());
        let Some(mut cursor) = follow.cursor.filter(|_| !behind) else {
            let at = self.load_snapshot(meta, source, owner)?;
            self.store_cursor(meta.uuid, at)?;
            *follow = Follow { cursor: Some(at), stored: Some(at) };
            return Ok(());
        };
        loop {
            let records = store.read_changes_after((cursor.seq, cursor.index), READ_LIMIT)?;
            let Some(last) = records.last() else { break };
            let next = Cursor { seq: last.seq, index: last.index };
            let full = records.len() == READ_LIMIT;
            let mut pending: Option<Pending> = None;
            for record in &records {
                if record.source != owner.kind() {
                    continue;
                }
                let Some(change) = owner.decode(record) else {
                    tracing::warn!(seq = record.seq, "undecodable change record skipped");
                    continue;
                };
                if change.collection() == source.collection {
                    pending.get_or_insert_with(Pending::default).add(self, meta.uuid, change)?;
                }
            }
            if let Some(pending) = pending {
                self.apply(meta, pending)?;
                self.store_cursor(meta.uuid, next)?;
                follow.stored = Some(next);
            }
            cursor = next;
            if !full {
                break;
            }
        }
        // Records of other blocks move the cursor in memory only; store it now and then so
        // that a restart does not fall behind the feed's retention.
        let stored_seq = follow.stored.map_or(0, |c| c.seq);
        if cursor.seq > stored_seq + 10_000 {
            self.store_cursor(meta.uuid, cursor)?;
            follow.stored = Some(cursor);
        }
        follow.cursor = Some(cursor);
        Ok(())
    }

    /// Loads the collection from one snapshot; returns the cursor just past it.
    fn load_snapshot(
        &self,
        meta: &IndexMeta,
        source: &SourceRef,
        owner: &dyn Collections,
    ) -> SearchResult<Cursor> {
        let store = &self.inner.store;
        let enabled = owner.enable(&source.collection).map_err(SearchError::internal)?;
        // A transaction that began before the feed was enabled writes no records: wait for
        // those to end, so that the snapshot holds their writes.
        let waiting = Instant::now();
        while store.oldest_open_txn().is_some_and(|s| s < enabled) {
            if waiting.elapsed() > SETTLE_TIMEOUT {
                tracing::warn!(index = %meta.name, "loading while an older transaction is still open");
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let started = Instant::now();
        let txn = store.begin_read_only();
        let at = Cursor::after_commit(txn.start_seq());
        let mut seen = HashSet::new();
        let mut batch = Vec::with_capacity(BATCH);
        let mut failure = None;
        owner
            .snapshot(&txn, &source.collection, &mut |id, doc| {
                if failure.is_some() {
                    return;
                }
                seen.insert(id.clone());
                batch.push(upsert(&meta.name, id, doc));
                if batch.len() == BATCH
                    && let Err(e) = self.bulk_quietly(&meta.name, std::mem::take(&mut batch))
                {
                    failure = Some(e);
                }
            })
            .map_err(SearchError::internal)?;
        drop(txn);
        if let Some(e) = failure {
            return Err(e);
        }
        let loaded = seen.len();
        let stale = self.ids(meta.uuid)?.into_iter().filter(|id| !seen.contains(id));
        batch.extend(stale.map(|id| delete(&meta.name, id)));
        self.bulk_in_batches(&meta.name, batch)?;
        tracing::info!(
            index = %meta.name,
            source = %format!("{}:{}", source.kind, source.collection),
            documents = loaded,
            ms = started.elapsed().as_millis() as u64,
            "search index loaded from its source"
        );
        Ok(at)
    }

    /// Writes the coalesced changes of one round.
    fn apply(&self, meta: &IndexMeta, pending: Pending) -> SearchResult<()> {
        let ops: Vec<BulkOp> = pending
            .docs
            .into_iter()
            .map(|(id, doc)| match doc {
                Some(doc) => upsert(&meta.name, id, doc),
                None => delete(&meta.name, id),
            })
            .collect();
        self.bulk_in_batches(&meta.name, ops)
    }

    /// Writes `ops` [`BATCH`] at a time.
    fn bulk_in_batches(&self, index: &str, ops: Vec<BulkOp>) -> SearchResult<()> {
        for chunk in ops.chunks(BATCH) {
            self.bulk_quietly(index, chunk.to_vec())?;
        }
        Ok(())
    }

    /// A bulk write whose failed documents are logged, not returned: one bad row must not
    /// stop the index from following its source.
    fn bulk_quietly(&self, index: &str, ops: Vec<BulkOp>) -> SearchResult<()> {
        for result in self.bulk(ops, Refresh::No)? {
            if let Err(err) = result {
                tracing::warn!(index, %err, "a document from the index's source was rejected");
            }
        }
        Ok(())
    }

    fn store_cursor(&self, uuid: u64, cursor: Cursor) -> SearchResult<()> {
        let mut txn = self.inner.store.begin();
        txn.set(&self.inner.ks, keys::feed_cursor(uuid), cursor.encode())?;
        txn.commit()?;
        Ok(())
    }

    /// The ids of an index's documents, from core.
    fn ids(&self, uuid: u64) -> SearchResult<Vec<String>> {
        let txn = self.inner.store.begin_read_only();
        let prefix = keys::doc_prefix(uuid);
        txn.scan_prefix(&self.inner.ks, &prefix)
            .map(|pair| {
                let (key, _) = pair?;
                Ok(Decoder::new(&key[prefix.len()..]).string()?)
            })
            .collect()
    }
}

/// The changes of one round, last one per id: `None` deletes.
#[derive(Default)]
struct Pending {
    docs: BTreeMap<String, Option<Map<String, Value>>>,
}

impl Pending {
    fn add(&mut self, search: &Search, uuid: u64, change: CollectionChange) -> SearchResult<()> {
        match change {
            CollectionChange::Upsert { id, doc, .. } => {
                self.docs.insert(id, Some(doc));
            }
            CollectionChange::Delete { id, .. } => {
                self.docs.insert(id, None);
            }
            CollectionChange::Clear { .. } => {
                self.docs = search.ids(uuid)?.into_iter().map(|id| (id, None)).collect();
            }
        }
        Ok(())
    }
}

fn upsert(index: &str, id: String, doc: Map<String, Value>) -> BulkOp {
    BulkOp::Index {
        index: index.to_string(),
        id: Some(id),
        source: Source::from_value(Value::Object(doc)),
        create: false,
        cond: Conditions::default(),
    }
}

fn delete(index: &str, id: String) -> BulkOp {
    BulkOp::Delete { index: index.to_string(), id, cond: Conditions::default() }
}
