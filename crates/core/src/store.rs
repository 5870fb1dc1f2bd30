//! The store: keyspaces, transactions, conflict detection, group commit, change feed.
//!
//! ```text
//!   Txn::commit ──► commits lock: validate, assign seq, engine.apply(writes + change
//!                   records + last seq) ──► visible; `commit_visible` hook (lock release)
//!               ──► park until the commit thread's next fsync covers seq ──► acknowledged
//! ```
//!
//! Conflicts are detected optimistically. Every read-write transaction remembers the commit
//! sequence number its snapshot was taken at. The store keeps, for each key written
//! recently, the sequence number of its last write. At commit, if a key this transaction
//! wrote (write-write) or, for a serializable transaction, a key or range it read was
//! written after its snapshot, it fails with the retryable [`Error::Conflict`]. The check
//! costs one lookup per key and one range walk per scanned range, whatever the number of
//! concurrent commits. A key is remembered only while a transaction older than its last
//! write is open.
//!
//! Group commit ([`SyncMode::Always`]): a committing thread validates and applies its own
//! writes (one journal write to the OS), then queues its sequence number and parks. The
//! commit thread fsyncs the journal once for everything applied so far and wakes each
//! committer it covered. While it fsyncs, later commits apply and queue up behind it, so one
//! fsync acknowledges every commit that arrived during the previous one: throughput grows
//! with concurrency while each commit still returns only after its data is on disk. Applying
//! on the committing thread, outside the fsync's critical path, lets the next group's writes
//! reach the journal while the fsync runs, and lets callers release their locks (see
//! [`crate::Txn::commit_visible`]) without waiting for it. (Two earlier designs were slower:
//! a committer that led the fsync itself had to hand the leader role between threads, and a
//! commit thread that applied whole groups kept each group's writes, and its locks, waiting
//! for the previous fsync.) With [`SyncMode::Periodic`] the committing thread applies its
//! own writes and returns; a background thread fsyncs on an interval, so a power loss can
//! lose the last interval.
//!
//! [`crate::Txn::commit_unsynced`] applies like any commit and asks the commit thread for an
//! fsync without waiting for it: a departure from "a commit returns once durable" for writes
//! whose loss in a power failure their block's semantics allow (a standard queue's receive
//! lease). Such a commit survives `kill -9`, since its journal write has reached the OS.
//! An async caller may also await its fsync afterwards ([`Store::durable`]) and acknowledge
//! only then: durable like [`crate::Txn::commit`], without a thread parked meanwhile.
//!
//! Visibility: a commit is visible to new snapshots once applied, just before it is durable;
//! a transaction that depends on it commits after it in the journal, so its own fsync covers
//! both.

use crate::engine::{Engine, FjallEngine, KsId, MemoryEngine, Op};
use crate::feed::{self, Change};
use crate::txn::{ConflictCheck, Isolation, KsKey, Txn, ks_range, range_is_empty};
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// When a commit reaches the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// A commit returns after its data is fsynced (group commit).
    Always,
    /// A commit returns once written to the OS; fsync runs every interval. A power loss can
    /// lose the commits of the last interval (a process crash loses nothing).
    Periodic(Duration),
}

/// How a keyspace's storage is laid out, for a block whose data lives unlike the rest; set
/// when the keyspace is created (an existing keyspace keeps what it was created with).
#[derive(Clone, Debug, Default)]
pub struct KeyspaceTuning {
    /// How much a keyspace buffers in memory before writing it out as a table (the disk
    /// engine's default, 64 MiB, when `None`). Smaller means smaller, more frequent
    /// writes: each flush then delays commits' fsyncs less.
    pub memtable_bytes: Option<u64>,
}

/// Settings of a store.
#[derive(Clone, Debug)]
pub struct Options {
    pub sync: SyncMode,
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
            sync: SyncMode::Always,
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
    queue: Arc<CommitQueue>,
    feed_tx: tokio::sync::watch::Sender<u64>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    _lock: Option<File>,
}

/// The keys one commit wrote.
type WrittenKeys = Vec<(KsId, Vec<u8>)>;

/// Recent writes and the snapshots still open, for conflict checks.
#[derive(Default)]
struct Commits {
    /// The seq of the last write of each key written since the oldest open snapshot.
    last_write: BTreeMap<(KsId, Vec<u8>), u64>,
    /// The keys of each recent commit, oldest first, to prune `last_write`.
    recent: VecDeque<(u64, WrittenKeys)>,
    /// Snapshot seq of each open read-write transaction, with a count.
    open: BTreeMap<u64, usize>,
}

/// A transaction's writes on their way to the engine.
pub(crate) struct PendingCommit {
    pub(crate) start_seq: u64,
    pub(crate) check: ConflictCheck,
    pub(crate) ops: Vec<Op>,
    pub(crate) changes: Vec<(String, Vec<u8>)>,
}

/// Where the commit thread leaves a commit's result for the thread parked on it.
struct Parked {
    result: Mutex<Option<Result<u64>>>,
    thread: std::thread::Thread,
}

/// Who waits for the fsync that covers a commit: a parked committer ([`Txn::commit`]) or a
/// task awaiting [`Store::durable`].
enum Waiter {
    Thread(Arc<Parked>),
    Task(tokio::sync::oneshot::Sender<Result<u64>>),
}

impl Waiter {
    fn wake(self, result: Result<u64>) {
        match self {
            Waiter::Thread(parked) => {
                *parked.result.lock().expect("waiter lock poisoned") = Some(result);
                parked.thread.unpark();
            }
            // A task that stopped waiting has nothing to learn.
            Waiter::Task(sender) => drop(sender.send(result)),
        }
    }
}

/// Applied commits waiting for the commit thread's fsync.
#[derive(Default)]
struct CommitQueue {
    state: Mutex<QueueState>,
    cv: Condvar,
}

#[derive(Default)]
struct QueueState {
    /// Applied commits waiting for an fsync, by sequence number.
    waiting: Vec<(u64, Waiter)>,
    /// Why an fsync failed: after one has, no commit is applied or acknowledged, since the
    /// kernel may have dropped the dirty pages it could not write.
    failed: Option<String>,
    /// An unsynced commit asked for an fsync that nobody waits for.
    sync_requested: bool,
    stopped: bool,
}

impl QueueState {
    /// The error every commit and durability wait gets once an fsync has failed.
    fn refusal(&self) -> Option<Error> {
        self.failed.as_ref().map(|err| Error::Unavailable(format!("an earlier fsync failed: {err}")))
    }
}

const META_LAST_SEQ: &[u8] = b"last_seq";

/// How long opening waits for the data directory lock before reporting it in use.
const LOCK_WAIT: Duration = Duration::from_secs(2);

impl Store {
    /// Opens (creating if needed) a durable store in `dir`, locking the directory so that a
    /// second process gets a clear error instead of corrupting it.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Store> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        let lock_path = dir.join("LOCK");
        let lock = File::options().create(true).truncate(false).write(true).open(&lock_path)?;
        // A store dropped in this process may still be closing on one of its background
        // threads (which can hold the last reference for a moment): give it a little time.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        while lock.try_lock().is_err() {
            if std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
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
        let meta =
            Keyspace { id: engine.open_keyspace("_meta", &KeyspaceTuning::default())?, name: "_meta".into() };
        let feed =
            Keyspace { id: engine.open_keyspace("_feed", &KeyspaceTuning::default())?, name: "_feed".into() };
        let last_seq = match engine.snapshot().get(meta.id, META_LAST_SEQ)? {
            Some(bytes) => u64::from_le_bytes(
                bytes.try_into().map_err(|_| Error::Corrupt("meta last_seq is not 8 bytes".into()))?,
            ),
            None => 0,
        };
        let periodic = match options.sync {
            SyncMode::Periodic(interval) => Some(interval),
            SyncMode::Always => None,
        };
        let inner = Arc::new(Inner {
            engine,
            options,
            keyspaces: Mutex::default(),
            meta,
            feed,
            last_seq: AtomicU64::new(last_seq),
            commits: Mutex::default(),
            queue: Arc::default(),
            feed_tx: tokio::sync::watch::Sender::new(last_seq),
            stop: Arc::default(),
            _lock: lock,
        });
        spawn_maintenance(Arc::downgrade(&inner), inner.stop.clone(), periodic);
        if periodic.is_none() {
            spawn_committer(Arc::downgrade(&inner), inner.queue.clone());
        }
        Ok(Store { inner })
    }

    /// Opens (creating if needed) the keyspace `name`. Each block owns one or a few; names
    /// starting with `_` belong to the core.
    pub fn keyspace(&self, name: &str) -> Result<Keyspace> {
        self.keyspace_tuned(name, &KeyspaceTuning::default())
    }

    /// [`Store::keyspace`], creating it (if it does not exist yet) with `tuning`.
    pub fn keyspace_tuned(&self, name: &str, tuning: &KeyspaceTuning) -> Result<Keyspace> {
        if name.is_empty() || name.starts_with('_') {
            return Err(crate::errinput!("invalid keyspace name {name:?}"));
        }
        let mut keyspaces = self.inner.keyspaces.lock().expect("keyspaces lock poisoned");
        if let Some(ks) = keyspaces.get(name) {
            return Ok(ks.clone());
        }
        let ks = Keyspace { id: self.inner.engine.open_keyspace(name, tuning)?, name: name.into() };
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
        feed::read(self, from_seq, 0, limit)
    }

    /// Change records after `change` (the last one a subscriber applied), at most `limit`:
    /// a reader that stops inside a large commit resumes within it.
    pub fn read_changes_after(&self, change: (u64, u32), limit: usize) -> Result<Vec<Change>> {
        let (seq, index) = match change.1.checked_add(1) {
            Some(next) => (change.0, next),
            None => (change.0 + 1, 0),
        };
        feed::read(self, seq, index, limit)
    }

    /// The oldest commit whose change records are kept: a subscriber that resumes from an
    /// older position may have missed records and must start over from a snapshot.
    pub fn feed_horizon(&self) -> u64 {
        self.last_seq().saturating_sub(self.inner.options.feed_retention) + 1
    }

    /// The snapshot sequence of the oldest open read-write transaction, if any. A commit made
    /// by a transaction started before `seq` can still arrive while this is below `seq`.
    pub fn oldest_open_txn(&self) -> Option<u64> {
        self.inner.commits.lock().expect("commits lock poisoned").open.keys().next().copied()
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

    /// Moves an open snapshot-isolation transaction to a new snapshot, first checking that no
    /// commit since its old snapshot wrote a key it has written (which would be a lost
    /// update). Returns the new snapshot sequence number.
    pub(crate) fn refresh_txn<'k>(
        &self,
        start_seq: u64,
        written: impl Iterator<Item = &'k KsKey>,
    ) -> Result<u64> {
        let mut commits = self.inner.commits.lock().expect("commits lock poisoned");
        if written.into_iter().any(|k| commits.last_write.get(k).is_some_and(|s| *s > start_seq)) {
            metrics::counter!("strata_core_conflicts_total").increment(1);
            return Err(Error::Conflict);
        }
        let new_start = self.inner.last_seq.load(Ordering::Acquire);
        close_open(&mut commits, start_seq);
        *commits.open.entry(new_start).or_default() += 1;
        Ok(new_start)
    }

    pub(crate) fn engine_snapshot(&self) -> Arc<dyn crate::engine::Snapshot> {
        self.inner.engine.snapshot()
    }

    /// Validates and applies a read-write transaction's writes and ends it; returns its commit
    /// sequence number once durable (per the sync setting).
    /// `visible` runs once the commit is applied (see [`crate::Txn::commit_visible`]).
    pub(crate) fn commit_writes(
        &self,
        pending: PendingCommit,
        visible: impl FnOnce(),
        wait: bool,
    ) -> Result<u64> {
        let started = std::time::Instant::now();
        let always = matches!(self.inner.options.sync, SyncMode::Always);
        if always && let Some(err) = self.inner.queue.state.lock().expect("queue lock poisoned").refusal() {
            self.end_txn(pending.start_seq);
            return Err(err);
        }
        let seq = self.apply(pending)?;
        visible();
        if always && wait {
            self.wait_durable(seq)?;
        } else if always {
            // Durable with the commit thread's next fsync, which tells the feed.
            self.inner.queue.state.lock().expect("queue lock poisoned").sync_requested = true;
            self.inner.queue.cv.notify_one();
        } else {
            self.notify_feed(seq);
        }
        metrics::counter!("strata_core_commits_total").increment(1);
        metrics::histogram!("strata_core_commit_seconds").record(started.elapsed().as_secs_f64());
        Ok(seq)
    }

    /// Blocks until commit `seq` is durable: the blocking twin of [`Store::durable`], for a
    /// thread that applies with [`crate::Txn::commit_unsynced`] and leaves the fsync wait to
    /// another thread, so that it can apply the next writes meanwhile.
    pub fn wait_synced(&self, seq: u64) -> Result<u64> {
        if !matches!(self.inner.options.sync, SyncMode::Always) {
            return Ok(seq);
        }
        {
            let state = self.inner.queue.state.lock().expect("queue lock poisoned");
            if let Some(err) = state.refusal() {
                return Err(err);
            }
            if *self.inner.feed_tx.borrow() >= seq {
                return Ok(seq);
            }
        }
        self.wait_durable(seq).map(|()| seq)
    }

    /// Parks until the commit thread's next fsync covers `seq` (which then notifies the feed).
    fn wait_durable(&self, seq: u64) -> Result<()> {
        let parked = Arc::new(Parked { result: Mutex::new(None), thread: std::thread::current() });
        self.inner
            .queue
            .state
            .lock()
            .expect("queue lock poisoned")
            .waiting
            .push((seq, Waiter::Thread(parked.clone())));
        self.inner.queue.cv.notify_one();
        loop {
            if let Some(result) = parked.result.lock().expect("waiter lock poisoned").take() {
                return result.map(|_| ());
            }
            std::thread::park();
        }
    }

    /// Resolves once commit `seq` is durable: at once under [`SyncMode::Periodic`] or when an
    /// fsync already covered it, else with the commit thread's next fsync (which it asks
    /// for). An error if that fsync, or an earlier one, failed.
    ///
    /// With [`crate::Txn::commit_unsynced`] this lets an async caller apply a commit on its
    /// own thread and await its fsync without parking that thread, where [`crate::Txn::commit`]
    /// would park it: the sqs front runs its hot actions that way instead of handing each to
    /// a blocking thread.
    pub fn durable(&self, seq: u64) -> impl std::future::Future<Output = Result<u64>> + Send + 'static {
        let waiting = if matches!(self.inner.options.sync, SyncMode::Always) {
            let mut state = self.inner.queue.state.lock().expect("queue lock poisoned");
            if let Some(err) = state.refusal() {
                Some(Err(err))
            } else if *self.inner.feed_tx.borrow() >= seq {
                None
            } else {
                let (sender, receiver) = tokio::sync::oneshot::channel();
                state.waiting.push((seq, Waiter::Task(sender)));
                self.inner.queue.cv.notify_one();
                Some(Ok(receiver))
            }
        } else {
            None
        };
        async move {
            match waiting {
                None => Ok(seq),
                Some(Err(err)) => Err(err),
                Some(Ok(receiver)) => receiver
                    .await
                    .unwrap_or_else(|_| Err(Error::Unavailable("the store closed before an fsync".into()))),
            }
        }
    }

    /// Validates a commit and applies it, under the commits lock so that sequence numbers
    /// reach the journal in order. Returns its sequence number.
    fn apply(&self, pending: PendingCommit) -> Result<u64> {
        let mut commits = self.inner.commits.lock().expect("commits lock poisoned");
        let newer = |s: &u64| *s > pending.start_seq;
        let check = &pending.check;
        let conflicted =
            check.written.iter().chain(&check.points).any(|k| commits.last_write.get(k).is_some_and(newer))
                || check.ranges.iter().any(|(ks, range)| {
                    !range_is_empty(range)
                        && commits.last_write.range(ks_range(*ks, range)).any(|(_, s)| newer(s))
                });
        close_open(&mut commits, pending.start_seq);
        if conflicted {
            metrics::counter!("strata_core_conflicts_total").increment(1);
            return Err(Error::Conflict);
        }
        let seq = self.inner.last_seq.load(Ordering::Acquire) + 1;
        let mut ops = pending.ops;
        for (i, (source, payload)) in pending.changes.into_iter().enumerate() {
            ops.push((self.inner.feed.id, feed::key(seq, i as u32), Some(feed::value(&source, &payload))));
        }
        ops.push((self.inner.meta.id, META_LAST_SEQ.to_vec(), Some(seq.to_le_bytes().to_vec())));
        if let Err(err) = self.inner.engine.apply(ops) {
            tracing::error!(%err, "applying a commit failed");
            return Err(Error::Unavailable(format!("commit failed: {err}")));
        }
        self.inner.last_seq.store(seq, Ordering::Release);
        for key in &pending.check.written {
            commits.last_write.insert(key.clone(), seq);
        }
        commits.recent.push_back((seq, pending.check.written));
        // No open transaction started before `horizon` needs the writes up to it.
        let horizon = commits.open.keys().next().copied().unwrap_or(seq);
        while commits.recent.front().is_some_and(|(s, _)| *s <= horizon) {
            let (old_seq, keys) = commits.recent.pop_front().expect("front exists");
            for key in keys {
                if commits.last_write.get(&key) == Some(&old_seq) {
                    commits.last_write.remove(&key);
                }
            }
        }
        Ok(seq)
    }

    /// Wakes change-feed subscribers up to `seq`.
    fn notify_feed(&self, seq: u64) {
        self.inner.feed_tx.send_if_modified(|last| {
            let newer = seq > *last;
            if newer {
                *last = seq;
            }
            newer
        });
    }
}

/// The commit thread: while commits wait, fsyncs everything applied so far and wakes each
/// commit that fsync covered with its result.
fn spawn_committer(inner: std::sync::Weak<Inner>, queue: Arc<CommitQueue>) {
    std::thread::Builder::new()
        .name("strata-core-commit".into())
        .spawn(move || {
            loop {
                let failed = {
                    let mut state = queue.state.lock().expect("queue lock poisoned");
                    while state.waiting.is_empty() && !state.sync_requested {
                        if state.stopped {
                            return;
                        }
                        state = queue.cv.wait(state).expect("queue lock poisoned");
                    }
                    state.sync_requested = false;
                    state.failed.clone()
                };
                let Some(inner) = inner.upgrade() else { return };
                let store = Store { inner };
                // Every commit up to `target` is in the journal (written to the OS).
                let target = store.inner.last_seq.load(Ordering::Acquire);
                // After a failed fsync, a later one may report success for pages the kernel
                // dropped: nothing is acknowledged any more.
                let synced = match failed {
                    Some(err) => Err(format!("an earlier fsync failed: {err}")),
                    None => {
                        metrics::counter!("strata_core_fsyncs_total").increment(1);
                        store.inner.engine.sync().map_err(|err| {
                            tracing::error!(%err, "fsync failed; refusing further commits");
                            err.to_string()
                        })
                    }
                };
                let done: Vec<_> = {
                    let mut state = queue.state.lock().expect("queue lock poisoned");
                    let waiting = std::mem::take(&mut state.waiting);
                    match &synced {
                        Ok(()) => {
                            let (done, rest) = waiting.into_iter().partition(|(seq, _)| *seq <= target);
                            state.waiting = rest;
                            done
                        }
                        Err(err) => {
                            state.failed.get_or_insert_with(|| err.clone());
                            waiting
                        }
                    }
                };
                if synced.is_ok() {
                    // Subscribers learn of a commit no later than its committer does.
                    store.notify_feed(target);
                }
                for (seq, waiter) in done {
                    waiter.wake(match &synced {
                        Ok(()) => Ok(seq),
                        Err(err) => Err(Error::Unavailable(format!("fsync failed: {err}"))),
                    });
                }
            }
        })
        .expect("spawning the commit thread");
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
        self.queue.state.lock().expect("queue lock poisoned").stopped = true;
        self.queue.cv.notify_all();
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
                if periodic.is_some()
                    && let Err(err) = store.inner.engine.sync()
                {
                    tracing::error!(%err, "periodic fsync failed");
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
