//! The store: keyspaces, transactions, conflict detection, group commit, change feed.
//!
//! ```text
//!   Txn::commit ──► commit lock: validate against recent commits ──► assign seq
//!                   ──► engine.apply(writes + change records + last seq)  ──► unlock
//!               ──► group commit: one leader fsyncs for everyone applied so far
//!               ──► acknowledged; change-feed subscribers woken with the seq
//! ```
//!
//! Conflicts are detected optimistically. Every read-write transaction remembers the commit
//! sequence number its snapshot was taken at. At commit, each transaction that committed
//! since then is checked: if it wrote a key this one wrote (write-write), or, for a
//! serializable transaction, a key or range this one read, this transaction fails with the
//! retryable [`Error::Conflict`]. The write sets of recent commits are kept only as long as a
//! transaction older than them is open.
//!
//! Group commit: after its batch is applied (written to the engine's journal and the OS),
//! a committer waits until the batch is fsynced. If no fsync is running, it becomes the
//! leader, fsyncs everything applied so far and wakes the others; otherwise it waits for the
//! running fsync, and the next one. One fsync thus acknowledges every commit that queued up
//! behind the previous one, so throughput grows with concurrency while each commit still
//! returns only after its data is on disk. With [`Sync::Periodic`] commits return at once and
//! a background thread fsyncs on an interval; a power loss can lose the last interval.
//!
//! Visibility: a commit is visible to new snapshots once applied, just before it is durable;
//! a transaction that depends on it commits after it in the journal, so its own fsync covers
//! both.

use crate::engine::{Engine, FjallEngine, KsId, MemoryEngine, Op};
use crate::feed::{self, Change};
use crate::txn::{Isolation, Txn};
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// When a commit reaches the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// A commit returns after its data is fsynced (group commit).
    Always,
    /// A commit returns once written to the OS; fsync runs every interval. A power loss can
    /// lose the commits of the last interval (a process crash loses nothing).
    Periodic(Duration),
}

/// Settings of a store.
#[derive(Clone, Debug)]
pub struct Options {
    pub sync: Sync,
    /// Largest key accepted, in bytes.
    pub max_key_bytes: usize,
    /// Largest value accepted, in bytes.
    pub max_value_bytes: usize,
    /// Largest total of keys and values written by one transaction.
    pub max_txn_bytes: usize,
    /// Block cache of the disk engine, in bytes.
    pub cache_bytes: u64,
    /// How many of the newest commits keep their change records; older ones are trimmed.
    pub feed_retention: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sync: Sync::Always,
            max_key_bytes: 8 * 1024,
            max_value_bytes: 32 * 1024 * 1024,
            max_txn_bytes: 256 * 1024 * 1024,
            cache_bytes: 256 * 1024 * 1024,
            feed_retention: 1_000_000,
        }
    }
}

/// A handle to one keyspace of a store. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Keyspace {
    pub(crate) id: KsId,
    name: Arc<str>,
}

impl Keyspace {
    /// The keyspace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The transactional store. Cheap to clone; every clone is the same store.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) engine: Box<dyn Engine>,
    pub(crate) options: Options,
    keyspaces: Mutex<HashMap<String, Keyspace>>,
    pub(crate) meta: Keyspace,
    pub(crate) feed: Keyspace,
    /// The newest applied commit.
    pub(crate) last_seq: AtomicU64,
    commits: Mutex<Commits>,
    durable: Durable,
    feed_tx: tokio::sync::watch::Sender<u64>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    _lock: Option<File>,
}

/// The keys one commit wrote.
type WrittenKeys = Vec<(KsId, Vec<u8>)>;

/// Write sets of recent commits and the snapshots still open, for conflict checks.
#[derive(Default)]
struct Commits {
    recent: VecDeque<(u64, WrittenKeys)>,
    /// Snapshot seq of each open read-write transaction, with a count.
    open: BTreeMap<u64, usize>,
}

/// Group commit state: what is applied, what is fsynced, whether an fsync is running.
#[derive(Default)]
struct Durable {
    state: Mutex<DurableState>,
}

#[derive(Default)]
struct DurableState {
    applied: u64,
    synced: u64,
    syncing: bool,
    failed: Option<String>,
    /// Committers waiting for their seq to be synced.
    waiters: Vec<(u64, std::thread::Thread)>,
}

const META_LAST_SEQ: &[u8] = b"last_seq";

impl Store {
    /// Opens (creating if needed) a durable store in `dir`, locking the directory so that a
    /// second process gets a clear error instead of corrupting it.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Store> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        let lock_path = dir.join("LOCK");
        let lock = File::options().create(true).truncate(false).write(true).open(&lock_path)?;
        if lock.try_lock().is_err() {
            return Err(Error::Unavailable(format!(
                "data directory {} is in use by another Strata process (lock file {})",
                dir.display(),
                lock_path.display()
            )));
        }
        let engine = FjallEngine::open(&dir.join("fjall"), options.cache_bytes)?;
        Self::with_engine(Box::new(engine), options, Some(lock))
    }

    /// A store kept in memory, with the same semantics; for tests.
    pub fn memory() -> Store {
        Self::with_engine(Box::new(MemoryEngine::default()), Options::default(), None)
            .expect("opening a memory store cannot fail")
    }

    fn with_engine(engine: Box<dyn Engine>, options: Options, lock: Option<File>) -> Result<Store> {
        let meta = Keyspace { id: engine.open_keyspace("_meta")?, name: "_meta".into() };
        let feed = Keyspace { id: engine.open_keyspace("_feed")?, name: "_feed".into() };
        let last_seq = match engine.snapshot().get(meta.id, META_LAST_SEQ)? {
            Some(bytes) => u64::from_le_bytes(
                bytes.try_into().map_err(|_| Error::Corrupt("meta last_seq is not 8 bytes".into()))?,
            ),
            None => 0,
        };
        let periodic = match options.sync {
            Sync::Periodic(interval) => Some(interval),
            Sync::Always => None,
        };
        let inner = Arc::new(Inner {
            engine,
            options,
            keyspaces: Mutex::default(),
            meta,
            feed,
            last_seq: AtomicU64::new(last_seq),
            commits: Mutex::default(),
            durable: Durable {
                state: Mutex::new(DurableState { applied: last_seq, synced: last_seq, ..Default::default() }),
            },
            feed_tx: tokio::sync::watch::Sender::new(last_seq),
            stop: Arc::default(),
            _lock: lock,
        });
        spawn_maintenance(Arc::downgrade(&inner), inner.stop.clone(), periodic);
        Ok(Store { inner })
    }

    /// Opens (creating if needed) the keyspace `name`. Each block owns one or a few; names
    /// starting with `_` belong to the core.
    pub fn keyspace(&self, name: &str) -> Result<Keyspace> {
        if name.is_empty() || name.starts_with('_') {
            return Err(crate::errinput!("invalid keyspace name {name:?}"));
        }
        let mut keyspaces = self.inner.keyspaces.lock().expect("keyspaces lock poisoned");
        if let Some(ks) = keyspaces.get(name) {
            return Ok(ks.clone());
        }
        let ks = Keyspace { id: self.inner.engine.open_keyspace(name)?, name: name.into() };
        keyspaces.insert(name.to_string(), ks.clone());
        Ok(ks)
    }

    /// Begins a serializable read-write transaction: a commit fails with
    /// [`Error::Conflict`] if a concurrent commit wrote anything it read or wrote.
    pub fn begin(&self) -> Txn {
        self.begin_with(Isolation::Serializable)
    }

    /// Begins a snapshot-isolation read-write transaction: a commit fails with
    /// [`Error::Conflict`] only if a concurrent commit wrote a key it also wrote.
    pub fn begin_snapshot(&self) -> Txn {
        self.begin_with(Isolation::Snapshot)
    }

    /// Begins a read-only transaction over a consistent snapshot. It never conflicts.
    pub fn begin_read_only(&self) -> Txn {
        self.begin_with(Isolation::ReadOnly)
    }

    fn begin_with(&self, isolation: Isolation) -> Txn {
        // Read the seq before opening the snapshot, so every commit at or below it is visible.
        // A read-write transaction reads it under the commits lock, so that no commit after
        // it can be pruned from `recent` before the transaction is registered in `open`.
        let start_seq = if isolation == Isolation::ReadOnly {
            self.inner.last_seq.load(Ordering::Acquire)
        } else {
            let mut commits = self.inner.commits.lock().expect("commits lock poisoned");
            let start_seq = self.inner.last_seq.load(Ordering::Acquire);
            *commits.open.entry(start_seq).or_default() += 1;
            start_seq
        };
        let snapshot = self.inner.engine.snapshot();
        Txn::new(self.clone(), isolation, start_seq, snapshot)
    }

    /// The sequence number of the newest commit.
    pub fn last_seq(&self) -> u64 {
        self.inner.last_seq.load(Ordering::Acquire)
    }

    /// Change records of commits from `from_seq` on (inclusive), at most `limit` of them.
    pub fn read_changes(&self, from_seq: u64, limit: usize) -> Result<Vec<Change>> {
        feed::read(self, from_seq, limit)
    }

    /// A receiver of the newest acknowledged commit sequence number, to wait for changes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.feed_tx.subscribe()
    }

    /// Fsyncs everything committed so far (used at shutdown in periodic mode).
    pub fn sync(&self) -> Result<()> {
        self.inner.engine.sync()
    }

    /// Forgets an open read-write transaction that ends without writing.
    pub(crate) fn end_txn(&self, start_seq: u64) {
        close_open(&mut self.inner.commits.lock().expect("commits lock poisoned"), start_seq);
    }

    /// Validates and applies a read-write transaction's writes and ends it; returns its commit
    /// sequence number once durable.
    pub(crate) fn commit_writes(
        &self,
        start_seq: u64,
        conflicts: impl Fn(&[(KsId, Vec<u8>)]) -> bool,
        mut ops: Vec<Op>,
        changes: Vec<(String, Vec<u8>)>,
    ) -> Result<u64> {
        let started = std::time::Instant::now();
        let written: WrittenKeys = ops.iter().map(|(ks, k, _)| (*ks, k.clone())).collect();
        let seq = {
            let mut commits = self.inner.commits.lock().expect("commits lock poisoned");
            let conflicted = commits
                .recent
                .iter()
                .rev()
                .take_while(|(seq, _)| *seq > start_seq)
                .any(|(_, keys)| conflicts(keys));
            close_open(&mut commits, start_seq);
            if conflicted {
                metrics::counter!("strata_core_conflicts_total").increment(1);
                return Err(Error::Conflict);
            }
            let seq = self.inner.last_seq.load(Ordering::Acquire) + 1;
            for (i, (source, payload)) in changes.into_iter().enumerate() {
                ops.push((
                    self.inner.feed.id,
                    feed::key(seq, i as u32),
                    Some(feed::value(&source, &payload)),
                ));
            }
            ops.push((self.inner.meta.id, META_LAST_SEQ.to_vec(), Some(seq.to_le_bytes().to_vec())));
            self.inner.engine.apply(ops)?;
            self.inner.last_seq.store(seq, Ordering::Release);
            commits.recent.push_back((seq, written));
            // No open transaction started before `horizon` needs the commits up to it.
            let horizon = commits.open.keys().next().copied().unwrap_or(seq);
            while commits.recent.front().is_some_and(|(s, _)| *s <= horizon) {
                commits.recent.pop_front();
            }
            self.inner.durable.state.lock().expect("durable lock poisoned").applied = seq;
            seq
        };
        if self.inner.options.sync == Sync::Always {
            self.wait_durable(seq)?;
        }
        metrics::counter!("strata_core_commits_total").increment(1);
        metrics::histogram!("strata_core_commit_seconds").record(started.elapsed().as_secs_f64());
        self.inner.feed_tx.send_if_modified(|last| {
            let newer = seq > *last;
            if newer {
                *last = seq;
            }
            newer
        });
        Ok(seq)
    }

    /// Blocks until `seq` is fsynced, leading an fsync if none is running.
    ///
    /// Waiters park on their own thread handle rather than a shared condvar, so that the end
    /// of an fsync wakes only the commits it made durable (plus one waiter to lead the next
    /// fsync), not every committer of the next group as well: with many writers on few
    /// cores that thundering herd cost more than the fsync.
    fn wait_durable(&self, seq: u64) -> Result<()> {
        let durable = &self.inner.durable;
        let mut state = durable.state.lock().expect("durable lock poisoned");
        loop {
            if state.synced >= seq {
                return Ok(());
            }
            if let Some(err) = &state.failed {
                return Err(Error::Unavailable(format!("an earlier fsync failed: {err}")));
            }
            if state.syncing {
                state.waiters.push((seq, std::thread::current()));
                drop(state);
                std::thread::park();
                state = durable.state.lock().expect("durable lock poisoned");
                continue;
            }
            state.syncing = true;
            let target = state.applied;
            drop(state);
            let result = self.inner.engine.sync();
            metrics::counter!("strata_core_fsyncs_total").increment(1);
            state = durable.state.lock().expect("durable lock poisoned");
            state.syncing = false;
            match result {
                Ok(()) => state.synced = state.synced.max(target),
                Err(err) => state.failed = Some(err.to_string()),
            }
            let (synced, failed) = (state.synced, state.failed.is_some());
            let mut next_leader = None;
            for (waiter_seq, thread) in std::mem::take(&mut state.waiters) {
                if waiter_seq <= synced || failed {
                    thread.unpark();
                } else if next_leader.is_none() {
                    next_leader = Some(thread);
                } else {
                    state.waiters.push((waiter_seq, thread));
                }
            }
            if let Some(thread) = next_leader {
                thread.unpark();
            }
        }
    }
}

fn close_open(commits: &mut Commits, start_seq: u64) {
    let n = commits.open.get_mut(&start_seq).expect("ending a transaction that is not open");
    *n -= 1;
    if *n == 0 {
        commits.open.remove(&start_seq);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        *self.stop.0.lock().expect("stop lock poisoned") = true;
        self.stop.1.notify_all();
        if let Err(err) = self.engine.sync() {
            tracing::error!(%err, "final fsync failed");
        }
    }
}

/// Background work of a store: periodic fsync (in periodic mode) and change-feed trimming.
/// Holds only a weak reference, and ends when the store is dropped.
fn spawn_maintenance(
    inner: std::sync::Weak<Inner>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    periodic: Option<Duration>,
) {
    let tick = periodic.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1));
    let mut since_trim = Duration::ZERO;
    std::thread::Builder::new()
        .name("strata-core-maintenance".into())
        .spawn(move || {
            loop {
                {
                    let stopped = stop.0.lock().expect("stop lock poisoned");
                    let (stopped, _) = stop.1.wait_timeout(stopped, tick).expect("stop lock poisoned");
                    if *stopped {
                        return;
                    }
                }
                let Some(inner) = inner.upgrade() else { return };
                let store = Store { inner };
                if periodic.is_some() {
                    let applied = store.inner.durable.state.lock().expect("durable poisoned").applied;
                    match store.inner.engine.sync() {
                        Ok(()) => {
                            let mut state = store.inner.durable.state.lock().expect("durable poisoned");
                            state.synced = state.synced.max(applied);
                        }
                        Err(err) => tracing::error!(%err, "periodic fsync failed"),
                    }
                }
                since_trim += tick;
                if since_trim >= Duration::from_secs(10) {
                    since_trim = Duration::ZERO;
                    if let Err(err) = feed::trim(&store) {
                        tracing::warn!(%err, "change feed trim failed");
                    }
                }
            }
        })
        .expect("spawning the maintenance thread");
}
