//! # strata-queue: durable queues
//!
//! What users get, over the sqs front (aws-cli, boto3, any SQS SDK):
//!
//! - **Standard queues** (at least once, best-effort order) and **FIFO queues** (`.fifo`):
//!   strict order within a message group, one message of a group in flight at a time so
//!   groups spread over workers, deduplication by id or content hash for five minutes.
//! - **Visibility**: a received message is hidden for the queue's (or the receive's)
//!   visibility timeout, then comes back; its receipt handle works until it is received again.
//! - **Retries and dead letters**: each receive counts; past the redrive policy's
//!   `maxReceiveCount` a message moves to the dead-letter queue, and [`Queues::move_messages`]
//!   moves messages back.
//! - **Delays** per queue and per message, **retention** with expiry, **message attributes**
//!   with SQS's MD5s, a size limit, and **backpressure**: a queue at its `max_depth` (its
//!   own, the `MaximumDepth` attribute over SQS, or the block's default), or a block at
//!   `max_total_messages`, refuses sends with [`QueueError::Throttled`] rather than growing
//!   without bound.
//! - **Long polling** support: [`Queues::waiter`] is notified on every send.
//!
//! Every operation is one core transaction (snapshot isolation, retried on a write-write
//! conflict), so an acknowledged send survives a crash, and a message is never handed to two
//! receivers within one visibility window. Key layout: `docs/format/queue.md`.
//!
//! ## Limitations
//!
//! - Queue depths are kept in memory and counted at first use; `ApproximateNumberOf*`
//!   derive the visible count from the depth, so they are as approximate as SQS's.
//! - A receive looks at no more than [`MAX_SCAN`] ready entries, so a FIFO queue whose oldest
//!   groups are all locked may answer empty while later groups wait.
//! - Standard queues find due messages in an in-memory head of their ready index
//!   (`heads.rs`, at most 1,024 keys per queue received from). FIFO queues scan the ready
//!   index from a per-queue cursor past its deleted entries; it relies on a clock that does
//!   not step back between sweeps (which rewind it).
//! - Two receivers may still pick the same message (after a head refill, or on a FIFO
//!   queue); the loser of the write-write conflict retries.

mod heads;
mod keys;
mod md5s;

pub use md5s::{md5_of_attributes, md5_of_body};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use heads::{Heads, ReadyLog};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use strata_core::{Clock, Keyspace, KeyspaceTuning, Store, Txn};

/// How many times an operation is retried after losing a race with a concurrent writer.
pub const MAX_RETRIES: usize = 64;
/// Ready entries one receive looks at, at most.
pub const MAX_SCAN: usize = 10_000;
/// How long a FIFO deduplication id is remembered.
pub const DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;

/// Everything that can go wrong in the queue block, in SQS's terms.
#[derive(Debug)]
pub enum QueueError {
    NoSuchQueue(String),
    /// A queue of that name exists with other attributes.
    QueueExists(String),
    InvalidParameter(String),
    ReceiptHandleInvalid(String),
    MessageNotInflight,
    MessageTooLong {
        limit: usize,
    },
    /// The queue is at its maximum depth; try again later.
    Throttled {
        retry_after_secs: u64,
    },
    Core(strata_core::Error),
}

pub type QueueResult<T> = Result<T, QueueError>;

impl std::fmt::Display for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueError::NoSuchQueue(q) => write!(f, "the queue {q} does not exist"),
            QueueError::QueueExists(q) => write!(f, "a queue named {q} exists with other attributes"),
            QueueError::InvalidParameter(msg) => write!(f, "{msg}"),
            QueueError::ReceiptHandleInvalid(msg) => write!(f, "the receipt handle is not valid: {msg}"),
            QueueError::MessageNotInflight => write!(f, "the message is not in flight"),
            QueueError::MessageTooLong { limit } => write!(f, "messages are limited to {limit} bytes"),
            QueueError::Throttled { retry_after_secs } => {
                write!(f, "the queue is full; retry after {retry_after_secs} s")
            }
            QueueError::Core(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for QueueError {}

impl From<strata_core::Error> for QueueError {
    fn from(err: strata_core::Error) -> Self {
        QueueError::Core(err)
    }
}

fn invalid(msg: impl Into<String>) -> QueueError {
    QueueError::InvalidParameter(msg.into())
}

/// Where a queue's failed messages go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redrive {
    pub dead_letter_queue: String,
    pub max_receive_count: u32,
}

/// A queue's settings, as SQS's attributes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    pub visibility_timeout_secs: u64,
    pub retention_secs: u64,
    pub delay_secs: u64,
    pub max_message_bytes: usize,
    pub receive_wait_secs: u64,
    pub redrive: Option<Redrive>,
    /// The redrive allow policy, as the JSON the user set.
    pub redrive_allow: Option<String>,
    pub fifo: bool,
    pub content_based_dedup: bool,
    /// Backpressure: most messages the queue holds; `None` is the block-wide default.
    pub max_depth: Option<u64>,
}

impl Default for Attributes {
    fn default() -> Self {
        Self {
            visibility_timeout_secs: 30,
            retention_secs: 4 * 24 * 3600,
            delay_secs: 0,
            max_message_bytes: 256 * 1024,
            receive_wait_secs: 0,
            redrive: None,
            redrive_allow: None,
            fifo: false,
            content_based_dedup: false,
            max_depth: None,
        }
    }
}

impl Attributes {
    /// Checks SQS's ranges.
    pub fn check(&self, limits: &Limits) -> QueueResult<()> {
        if self.visibility_timeout_secs > 12 * 3600 {
            return Err(invalid("VisibilityTimeout must be 0 to 43200 seconds"));
        }
        if !(60..=14 * 24 * 3600).contains(&self.retention_secs) {
            return Err(invalid("MessageRetentionPeriod must be 60 to 1209600 seconds"));
        }
        if self.delay_secs > 900 {
            return Err(invalid("DelaySeconds must be 0 to 900"));
        }
        if !(1024..=limits.max_message_bytes).contains(&self.max_message_bytes) {
            return Err(invalid(format!("MaximumMessageSize must be 1024 to {}", limits.max_message_bytes)));
        }
        if self.receive_wait_secs > 20 {
            return Err(invalid("ReceiveMessageWaitTimeSeconds must be 0 to 20"));
        }
        if let Some(r) = &self.redrive
            && !(1..=1000).contains(&r.max_receive_count)
        {
            return Err(invalid("maxReceiveCount must be 1 to 1000"));
        }
        if let Some(depth) = self.max_depth
            && !(1..=limits.max_total_messages).contains(&depth)
        {
            return Err(invalid(format!("MaximumDepth must be 1 to {}", limits.max_total_messages)));
        }
        Ok(())
    }
}

/// A queue.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueueMeta {
    pub created_ms: u64,
    pub modified_ms: u64,
    pub attributes: Attributes,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A message attribute: a data type (`String`, `Number`, `Binary`, optionally `.custom`)
/// and its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAttribute {
    pub data_type: String,
    pub string_value: Option<String>,
    pub binary_value: Option<Vec<u8>>,
}

/// A stored message.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub attributes: BTreeMap<String, MessageAttribute>,
    pub md5_of_body: String,
    pub md5_of_attributes: Option<String>,
    pub sent_ms: u64,
    pub first_receive_ms: Option<u64>,
    pub receive_count: u32,
    pub visible_at_ms: u64,
    /// Send order; the SequenceNumber of FIFO queues.
    pub seq: u64,
    pub group: Option<String>,
    pub dedup_id: Option<String>,
    /// Changes on every receive; part of the receipt handle.
    pub nonce: u64,
    pub sender: String,
}

/// What to send.
#[derive(Clone, Debug, Default)]
pub struct Send {
    pub body: String,
    pub attributes: BTreeMap<String, MessageAttribute>,
    pub delay_secs: Option<u64>,
    pub group: Option<String>,
    pub dedup_id: Option<String>,
    pub sender: String,
}

/// A sent message's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub id: String,
    pub md5_of_body: String,
    pub md5_of_attributes: Option<String>,
    pub seq: u64,
}

/// A received message with the handle that deletes it.
#[derive(Clone, Debug)]
pub struct Received {
    pub message: Message,
    pub receipt_handle: String,
}

/// What one receive's transaction did.
struct Taken {
    received: Vec<Received>,
    /// Messages deleted past their retention.
    expired: u64,
    /// Messages moved to the dead-letter queue.
    moved: u64,
    /// Ready keys it did not get to (or skipped for their FIFO group).
    untried: Vec<Vec<u8>>,
}

/// Approximate message counts of a queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub visible: u64,
    pub not_visible: u64,
    pub delayed: u64,
    /// Age of the oldest message, in ms.
    pub oldest_age_ms: u64,
}

/// Block-wide limits (`[queue]` in strata.toml).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest message a queue may allow (SQS: 256 KiB).
    pub max_message_bytes: usize,
    /// Default maximum depth of a queue without its own.
    pub max_depth: u64,
    /// Most messages in all queues together: the bound on the disk the block may fill.
    pub max_total_messages: u64,
    pub max_queues: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 256 * 1024,
            max_depth: 1_000_000,
            max_total_messages: 10_000_000,
            max_queues: 10_000,
        }
    }
}

/// Where a queue's receives start scanning its ready index, and the transactions that may
/// still add entries to it.
///
/// Every ready entry is written at a visible time no earlier than its writer's clock, and
/// every writer registers the clock's time before it starts. So a receive that reads the
/// clock, then the oldest registered writer, then scans, knows that nothing live can appear
/// before the smaller of those two times and its first due entry: entries committed before
/// its snapshot are in the scan, and entries committed after it come from writers that were
/// registered (so no earlier than the oldest) or started later (so no earlier than the time
/// it read). The cursor only moves forward; the sweeper rewinds it each round, in case the
/// system clock stepped back.
#[derive(Default)]
struct Cursor {
    at: AtomicU64,
    writers: Mutex<BTreeMap<u64, usize>>,
}

impl Cursor {
    /// The earliest time a new entry may still appear at, given the clock reads `now`.
    fn bound(&self, now: u64) -> u64 {
        self.writers.lock().expect("writers lock").keys().next().map_or(now, |&w| w.min(now))
    }
}

/// A registered writer of a queue's ready index; unregisters on drop.
struct Writing {
    cursor: Arc<Cursor>,
    at: u64,
}

impl Drop for Writing {
    fn drop(&mut self) {
        let mut writers = self.cursor.writers.lock().expect("writers lock");
        if let Some(n) = writers.get_mut(&self.at) {
            *n -= 1;
            if *n == 0 {
                writers.remove(&self.at);
            }
        }
    }
}

/// Why a receipt handle of a deleted message fails (deleting it again succeeds).
const GONE: &str = "the message is gone";

/// Ready entry states.
const NEVER_RECEIVED: u8 = 0;
const IN_FLIGHT: u8 = 1;

/// The queue block. Cheap to clone.
#[derive(Clone)]
pub struct Queues {
    inner: Arc<Inner>,
    /// On a [`Queues::deferring`] handle: the newest commit whose fsync the caller must await
    /// ([`Queues::durable`]) before it acknowledges the operation.
    deferred: Option<Arc<AtomicU64>>,
}

/// A queue's record and the bytes it was decoded from.
type Decoded = (Vec<u8>, Arc<QueueMeta>);

struct Inner {
    store: Store,
    ks: Keyspace,
    clock: Arc<dyn Clock>,
    limits: Limits,
    last_seq: AtomicU64,
    depths: Mutex<HashMap<String, Arc<AtomicI64>>>,
    /// Each queue's record as last decoded (`must_queue`).
    metas: Mutex<HashMap<String, Decoded>>,
    /// Per FIFO queue, a time before which its ready index holds only deleted entries, so
    /// that receives need not walk the tombstones every receive leaves behind (see `receive`).
    cursors: Mutex<HashMap<String, Arc<Cursor>>>,
    /// Standard queues' ready keys, so that receives need not scan for them (`heads.rs`).
    heads: Heads,
    /// Whether every queue's depth has been counted (for the total bound).
    all_counted: std::sync::atomic::AtomicBool,
    waiters: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
}

/// Checks SQS's queue naming rules: 1-80 of `A-Za-z0-9_-`, `.fifo` at the end of FIFO queues.
pub fn check_queue_name(name: &str, fifo: bool) -> QueueResult<()> {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    if name.is_empty()
        || name.len() > 80
        || !base.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    {
        return Err(invalid(
            "queue names are 1 to 80 characters of letters, digits, hyphens and underscores",
        ));
    }
    if fifo != name.ends_with(".fifo") {
        return Err(invalid("the name of a FIFO queue must end with .fifo, and only its name"));
    }
    Ok(())
}

fn receipt_handle(queue: &str, id: &str, nonce: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{queue}\n{id}\n{nonce:016x}"))
}

fn decode_receipt(handle: &str) -> QueueResult<(String, String, u64)> {
    let bad = || QueueError::ReceiptHandleInvalid("not a receipt handle of this server".into());
    let text =
        String::from_utf8(URL_SAFE_NO_PAD.decode(handle.trim()).map_err(|_| bad())?).map_err(|_| bad())?;
    let mut parts = text.split('\n');
    let (Some(queue), Some(id), Some(nonce), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let nonce = u64::from_str_radix(nonce, 16).map_err(|_| bad())?;
    Ok((queue.to_owned(), id.to_owned(), nonce))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> QueueResult<T> {
    serde_json::from_slice(bytes).map_err(|e| QueueError::Core(strata_core::errcorrupt!("queue record: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("queue records serialize")
}

/// A message's receive state: what a receive or a visibility change alters. It is kept under
/// a key of its own, next to the message record written once at send, so that a receive
/// writes 28 bytes instead of rewriting the body. Layout (little-endian): receive count u32,
/// first receive ms u64 (0: never), visible at ms u64, nonce u64.
fn encode_state(m: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(STATE_LEN);
    out.extend_from_slice(&m.receive_count.to_le_bytes());
    out.extend_from_slice(&m.first_receive_ms.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&m.visible_at_ms.to_le_bytes());
    out.extend_from_slice(&m.nonce.to_le_bytes());
    out
}

/// Sets `m`'s receive state from a record [`encode_state`] wrote.
fn apply_state(m: &mut Message, bytes: &[u8]) -> QueueResult<()> {
    let corrupt =
        || QueueError::Core(strata_core::errcorrupt!("queue state record of {} bytes", bytes.len()));
    if bytes.len() != STATE_LEN {
        return Err(corrupt());
    }
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    m.receive_count = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    m.first_receive_ms = Some(u64_at(4)).filter(|&ms| ms != 0);
    m.visible_at_ms = u64_at(12);
    m.nonce = u64_at(20);
    Ok(())
}

const STATE_LEN: usize = 28;

impl Queues {
    pub fn open(store: Store, clock: Arc<dyn Clock>, limits: Limits) -> QueueResult<Queues> {
        // Messages live briefly and a queue's keyspace churns: 16 MiB memtables flush in
        // small steps, where 64 MiB flushes held up commits' fsyncs behind them (paced
        // bench, 10-16k messages/s, every keyspace at 16 MiB against 64 MiB: send-to-receive
        // p99 7-52 ms against 14-124 ms).
        let ks = store.keyspace_tuned("queue", &KeyspaceTuning { memtable_bytes: Some(16 << 20) })?;
        let now = clock.now_ms();
        Ok(Queues {
            inner: Arc::new(Inner {
                store,
                ks,
                clock,
                limits,
                last_seq: AtomicU64::new(now * 1000),
                depths: Mutex::new(HashMap::new()),
                metas: Mutex::new(HashMap::new()),
                cursors: Mutex::new(HashMap::new()),
                heads: Heads::default(),
                all_counted: std::sync::atomic::AtomicBool::new(false),
                waiters: Mutex::new(HashMap::new()),
            }),
            deferred: None,
        })
    }

    /// A handle on the same queues whose operations return without waiting for their fsync,
    /// for async callers: each commit is applied, visible and written to the OS (so it
    /// survives `kill -9`) when the operation returns, and [`Queues::durable`] then awaits the
    /// fsyncs the operations would have waited for, without parking a thread. The caller
    /// acknowledges nothing before that resolves. Meanwhile other receivers may already see
    /// what was committed; a power loss before the fsync could take back a send someone
    /// received (its sender, never acknowledged, sends again: at least once) or a delete
    /// (the message comes back, as after a visibility timeout).
    pub fn deferring(&self) -> Queues {
        Queues { inner: self.inner.clone(), deferred: Some(Arc::new(AtomicU64::new(0))) }
    }

    /// Resolves once every commit this [`Queues::deferring`] handle made is as durable as the
    /// plain handle would have made it before returning; at once on a plain handle.
    pub async fn durable(&self) -> QueueResult<()> {
        let newest = self.deferred.as_ref().map_or(0, |d| d.load(Ordering::Acquire));
        if newest > 0 {
            self.inner.store.durable(newest).await?;
        }
        Ok(())
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    fn now(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// Increasing, near the clock in microseconds.
    fn next_seq(&self) -> u64 {
        let now = self.now() * 1000;
        let mut last = self.inner.last_seq.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.inner.last_seq.compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(current) => last = current,
            }
        }
    }

    /// Runs `f` in a transaction, again after a conflict; once it commits, its ready-index
    /// writes go to the heads.
    fn transact<T>(&self, f: impl FnMut(&mut Txn, &mut ReadyLog) -> QueueResult<T>) -> QueueResult<T> {
        self.transact_as(true, f)
    }

    /// [`Queues::transact`], committing without waiting for the fsync unless `synced`.
    fn transact_as<T>(
        &self,
        synced: bool,
        mut f: impl FnMut(&mut Txn, &mut ReadyLog) -> QueueResult<T>,
    ) -> QueueResult<T> {
        let mut attempt = 0;
        let mut log = ReadyLog::default();
        loop {
            log.clear();
            let mut txn = self.inner.store.begin_snapshot();
            let result = f(&mut txn, &mut log).and_then(|value| {
                let seq = match &self.deferred {
                    Some(newest) if synced => {
                        let seq = txn.commit_unsynced()?;
                        newest.fetch_max(seq, Ordering::AcqRel);
                        seq
                    }
                    None if synced => txn.commit()?,
                    _ => txn.commit_unsynced()?,
                };
                self.inner.heads.apply(seq, std::mem::take(&mut log));
                Ok(value)
            });
            match result {
                Err(QueueError::Core(err)) if err.is_retryable() && attempt < MAX_RETRIES => attempt += 1,
                other => return other,
            }
        }
    }

    /// Every operation reads its queue's record in its own transaction, so that it sees the
    /// queue as of its snapshot (deleted, or with changed attributes). Only the decoding is
    /// saved: a record whose bytes are those decoded last time is answered from memory.
    /// Decoding the JSON three times a request (the front's look-up, the operation's, its
    /// transaction's) was 3.8% of the queue bench's CPU under `perf`.
    fn must_queue(&self, txn: &Txn, name: &str) -> QueueResult<Arc<QueueMeta>> {
        let Some(bytes) = txn.get(&self.inner.ks, &keys::queue(name))? else {
            return Err(QueueError::NoSuchQueue(name.to_owned()));
        };
        if let Some((raw, meta)) = self.inner.metas.lock().expect("queue records lock").get(name)
            && *raw == bytes
        {
            return Ok(meta.clone());
        }
        let meta = Arc::new(decode::<QueueMeta>(&bytes)?);
        self.inner.metas.lock().expect("queue records lock").insert(name.to_owned(), (bytes, meta.clone()));
        Ok(meta)
    }

    /// The depth counter of a queue, counted from the store at first use.
    fn depth(&self, queue: &str) -> QueueResult<Arc<AtomicI64>> {
        if let Some(depth) = self.inner.depths.lock().expect("depths lock").get(queue) {
            return Ok(depth.clone());
        }
        let txn = self.inner.store.begin_read_only();
        let count = txn.scan_prefix(&self.inner.ks, &keys::msgs(queue)).count() as i64;
        let mut depths = self.inner.depths.lock().expect("depths lock");
        Ok(depths.entry(queue.to_owned()).or_insert_with(|| Arc::new(AtomicI64::new(count))).clone())
    }

    /// Messages in all queues together.
    fn total_depth(&self) -> QueueResult<i64> {
        if !self.inner.all_counted.load(Ordering::Relaxed) {
            for queue in self.list_queues("")? {
                self.depth(&queue)?;
            }
            self.inner.all_counted.store(true, Ordering::Relaxed);
        }
        Ok(self.inner.depths.lock().expect("depths lock").values().map(|d| d.load(Ordering::Relaxed)).sum())
    }

    fn adjust_depth(&self, queue: &str, by: i64) {
        if let Ok(depth) = self.depth(queue) {
            depth.fetch_add(by, Ordering::Relaxed);
        }
    }

    fn cursor(&self, queue: &str) -> Arc<Cursor> {
        self.inner.cursors.lock().expect("cursors lock").entry(queue.to_owned()).or_default().clone()
    }

    /// Registers a writer of `queue`'s ready index for as long as the guard lives.
    fn writing(&self, queue: &str) -> Writing {
        let cursor = self.cursor(queue);
        let at = self.now();
        *cursor.writers.lock().expect("writers lock").entry(at).or_default() += 1;
        Writing { cursor, at }
    }

    /// Notified on every send to `queue`, for long polling.
    pub fn waiter(&self, queue: &str) -> Arc<tokio::sync::Notify> {
        self.inner.waiters.lock().expect("waiters lock").entry(queue.to_owned()).or_default().clone()
    }

    fn notify(&self, queue: &str) {
        if let Some(w) = self.inner.waiters.lock().expect("waiters lock").get(queue) {
            w.notify_waiters();
        }
    }

    // ---- queues ----

    /// Creates a queue, or does nothing if it exists with the same attributes.
    pub fn create_queue(
        &self,
        name: &str,
        attributes: Attributes,
        tags: BTreeMap<String, String>,
    ) -> QueueResult<()> {
        check_queue_name(name, attributes.fifo)?;
        attributes.check(&self.inner.limits)?;
        self.transact(|txn, _| {
            if let Some(bytes) = txn.get(&self.inner.ks, &keys::queue(name))? {
                let existing: QueueMeta = decode(&bytes)?;
                return if existing.attributes == attributes {
                    Ok(())
                } else {
                    Err(QueueError::QueueExists(name.to_owned()))
                };
            }
            if txn.scan_prefix(&self.inner.ks, &keys::queues()).count() >= self.inner.limits.max_queues {
                return Err(invalid(format!("at most {} queues may exist", self.inner.limits.max_queues)));
            }
            if let Some(r) = &attributes.redrive {
                self.check_redrive(txn, name, r)?;
            }
            let now = self.now();
            let meta = QueueMeta {
                created_ms: now,
                modified_ms: now,
                attributes: attributes.clone(),
                tags: tags.clone(),
            };
            txn.set(&self.inner.ks, keys::queue(name), encode(&meta))?;
            Ok(())
        })
    }

    /// Deletes a queue and every message in it.
    pub fn delete_queue(&self, name: &str) -> QueueResult<()> {
        self.transact(|txn, _| {
            self.must_queue(txn, name)?;
            txn.delete(&self.inner.ks, keys::queue(name))?;
            Ok(())
        })?;
        self.clear(name)?;
        self.inner.depths.lock().expect("depths lock").remove(name);
        self.inner.metas.lock().expect("queue records lock").remove(name);
        Ok(())
    }

    /// Deletes every message record of a queue, a thousand keys per transaction, and forgets
    /// its head.
    fn clear(&self, name: &str) -> QueueResult<u64> {
        let mut removed = 0;
        for prefix in [
            keys::msgs(name),
            keys::states(name),
            keys::readies(name),
            keys::dedups(name),
            keys::groups(name),
            keys::locks(name),
        ] {
            loop {
                let batch: Vec<Vec<u8>> = {
                    let txn = self.inner.store.begin_read_only();
                    let mut out = Vec::new();
                    for item in txn.scan_prefix(&self.inner.ks, &prefix).take(1000) {
                        out.push(item?.0);
                    }
                    out
                };
                if batch.is_empty() {
                    break;
                }
                if prefix == keys::msgs(name) {
                    removed += batch.len() as u64;
                }
                self.transact(|txn, _| {
                    for key in &batch {
                        txn.delete(&self.inner.ks, key.clone())?;
                    }
                    Ok(())
                })?;
            }
        }
        self.inner.heads.reset(name);
        Ok(removed)
    }

    /// Deletes every message of a queue (PurgeQueue).
    pub fn purge(&self, name: &str) -> QueueResult<()> {
        self.queue(name)?;
        let removed = self.clear(name)?;
        self.adjust_depth(name, -(removed as i64));
        Ok(())
    }

    pub fn queue(&self, name: &str) -> QueueResult<Arc<QueueMeta>> {
        self.must_queue(&self.inner.store.begin_read_only(), name)
    }

    /// Queue names starting with `prefix`, in order.
    pub fn list_queues(&self, prefix: &str) -> QueueResult<Vec<String>> {
        let txn = self.inner.store.begin_read_only();
        let mut out = Vec::new();
        for item in txn.scan_prefix(&self.inner.ks, &keys::queues()) {
            let name = keys::decode_name(&item?.0)?;
            if name.starts_with(prefix) {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Changes a queue's attributes or tags with `f`.
    pub fn update_queue(
        &self,
        name: &str,
        mut f: impl FnMut(&mut QueueMeta) -> QueueResult<()>,
    ) -> QueueResult<()> {
        self.transact(|txn, _| {
            let mut meta = Arc::unwrap_or_clone(self.must_queue(txn, name)?);
            let fifo = meta.attributes.fifo;
            f(&mut meta)?;
            if meta.attributes.fifo != fifo {
                return Err(invalid("FifoQueue cannot be changed after creation"));
            }
            meta.attributes.check(&self.inner.limits)?;
            if let Some(r) = &meta.attributes.redrive {
                self.check_redrive(txn, name, r)?;
            }
            meta.modified_ms = self.now();
            txn.set(&self.inner.ks, keys::queue(name), encode(&meta))?;
            Ok(())
        })
    }

    /// Checks that `source` may send its dead letters to the queue `redrive` names: it must
    /// exist, be of the same kind (FIFO or not), and its redrive allow policy
    /// (`{"redrivePermission": "allowAll" | "denyAll" | "byQueue", "sourceQueueArns": [...]}`)
    /// must let `source` in.
    fn check_redrive(&self, txn: &Txn, source: &str, redrive: &Redrive) -> QueueResult<()> {
        let target = self.must_queue(txn, &redrive.dead_letter_queue)?;
        if target.attributes.fifo != source.ends_with(".fifo") {
            return Err(invalid(
                "a dead-letter queue must be of the same type (FIFO or standard) as its source",
            ));
        }
        let Some(policy) = &target.attributes.redrive_allow else { return Ok(()) };
        let policy: serde_json::Value = serde_json::from_str(policy)
            .map_err(|_| invalid("the dead-letter queue's RedriveAllowPolicy is not JSON"))?;
        let allowed = match policy.get("redrivePermission").and_then(|v| v.as_str()) {
            Some("allowAll") | None => true,
            Some("denyAll") => false,
            Some("byQueue") => policy.get("sourceQueueArns").and_then(|v| v.as_array()).is_some_and(|arns| {
                arns.iter().filter_map(|a| a.as_str()).any(|a| a.rsplit(':').next() == Some(source))
            }),
            Some(other) => {
                return Err(invalid(format!(
                    "redrivePermission {other} is not allowAll, denyAll or byQueue"
                )));
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(invalid(format!(
                "the RedriveAllowPolicy of {} does not allow {source}",
                redrive.dead_letter_queue
            )))
        }
    }

    /// Queues whose redrive policy names `dlq`.
    pub fn dead_letter_sources(&self, dlq: &str) -> QueueResult<Vec<String>> {
        let txn = self.inner.store.begin_read_only();
        self.must_queue(&txn, dlq)?;
        let mut out = Vec::new();
        for item in txn.scan_prefix(&self.inner.ks, &keys::queues()) {
            let (k, v) = item?;
            let meta: QueueMeta = decode(&v)?;
            if meta.attributes.redrive.is_some_and(|r| r.dead_letter_queue == dlq) {
                out.push(keys::decode_name(&k)?);
            }
        }
        Ok(out)
    }

    // ---- messages ----

    /// Sends a message. FIFO queues need a group and a deduplication id (or content-based
    /// deduplication); a duplicate within five minutes answers with the first one's id.
    pub fn send(&self, queue: &str, send: Send) -> QueueResult<Sent> {
        self.send_batch(queue, vec![send])?.pop().expect("one result per message")
    }

    /// Checks a message against its queue's rules; returns it with its deduplication id.
    fn prepare(&self, attrs: &Attributes, send: Send) -> QueueResult<(Send, Option<String>)> {
        let size = send.body.len()
            + send
                .attributes
                .iter()
                .map(|(k, v)| {
                    k.len()
                        + v.data_type.len()
                        + v.string_value.as_ref().map_or(0, String::len)
                        + v.binary_value.as_ref().map_or(0, Vec::len)
                })
                .sum::<usize>();
        if size > attrs.max_message_bytes {
            return Err(QueueError::MessageTooLong { limit: attrs.max_message_bytes });
        }
        if send.body.is_empty() {
            return Err(invalid("the message body must not be empty"));
        }
        if send.attributes.len() > 10 {
            return Err(invalid("a message may have at most 10 attributes"));
        }
        if send.delay_secs.is_some_and(|d| d > 900) {
            return Err(invalid("DelaySeconds must be 0 to 900"));
        }
        let dedup_id = if attrs.fifo {
            if send.group.as_deref().is_none_or(str::is_empty) {
                return Err(invalid("MessageGroupId is required for FIFO queues"));
            }
            if send.delay_secs.is_some_and(|d| d > 0) {
                return Err(invalid("FIFO queues take no per-message DelaySeconds"));
            }
            match (&send.dedup_id, attrs.content_based_dedup) {
                (Some(id), _) => Some(id.clone()),
                (None, true) => Some(md5s::sha256_hex(send.body.as_bytes())),
                (None, false) => {
                    return Err(invalid(
                        "the queue has no ContentBasedDeduplication: send a MessageDeduplicationId",
                    ));
                }
            }
        } else {
            if send.dedup_id.is_some() {
                return Err(invalid("MessageDeduplicationId is only for FIFO queues"));
            }
            None
        };
        Ok((send, dedup_id))
    }

    /// Sends up to ten messages in one transaction; each has its own result. Past the
    /// queue's maximum depth, the messages that do not fit are [`QueueError::Throttled`].
    pub fn send_batch(&self, queue: &str, sends: Vec<Send>) -> QueueResult<Vec<QueueResult<Sent>>> {
        let meta = self.queue(queue)?;
        let attrs = &meta.attributes;
        let depth = self.depth(queue)?;
        let max_depth = attrs.max_depth.unwrap_or(self.inner.limits.max_depth) as i64;
        let total_room = self.inner.limits.max_total_messages as i64 - self.total_depth()?;
        let mut room = (max_depth - depth.load(Ordering::Relaxed)).min(total_room).max(0);
        let prepared: Vec<QueueResult<(Send, Option<String>)>> = sends
            .into_iter()
            .map(|send| {
                let prepared = self.prepare(attrs, send)?;
                if room == 0 {
                    metrics::counter!("strata_queue_throttled_total").increment(1);
                    return Err(QueueError::Throttled { retry_after_secs: 1 });
                }
                room -= 1;
                Ok(prepared)
            })
            .collect();
        let _writing = self.writing(queue);
        let (results, added) = self.transact(|txn, log| {
            self.must_queue(txn, queue)?;
            let now = self.now();
            let mut results = Vec::with_capacity(prepared.len());
            let mut added = 0i64;
            for entry in &prepared {
                let (send, dedup_id) = match entry {
                    Ok(entry) => entry,
                    Err(_) => {
                        results.push(None);
                        continue;
                    }
                };
                let md5_of_body = md5_of_body(&send.body);
                let md5_of_attributes = md5_of_attributes(&send.attributes);
                if let Some(d) = dedup_id
                    && let Some(bytes) = txn.get(&self.inner.ks, &keys::dedup(queue, d))?
                {
                    let (expires, id) = decode::<(u64, String)>(&bytes)?;
                    if expires > now {
                        let seq =
                            id.split('-').next().and_then(|s| u64::from_str_radix(s, 16).ok()).unwrap_or(0);
                        results.push(Some(Sent { id, md5_of_body, md5_of_attributes, seq }));
                        continue;
                    }
                }
                let seq = self.next_seq();
                let id = format!("{seq:016x}-{:016x}", rand::random::<u64>());
                let delay = send.delay_secs.unwrap_or(attrs.delay_secs);
                let message = Message {
                    id: id.clone(),
                    body: send.body.clone(),
                    attributes: send.attributes.clone(),
                    md5_of_body: md5_of_body.clone(),
                    md5_of_attributes: md5_of_attributes.clone(),
                    sent_ms: now,
                    first_receive_ms: None,
                    receive_count: 0,
                    visible_at_ms: now + delay * 1000,
                    seq,
                    group: send.group.clone(),
                    dedup_id: dedup_id.clone(),
                    nonce: 0,
                    sender: send.sender.clone(),
                };
                self.insert(txn, log, queue, &message, NEVER_RECEIVED)?;
                if let Some(d) = dedup_id {
                    txn.set(
                        &self.inner.ks,
                        keys::dedup(queue, d),
                        encode(&(now + DEDUP_WINDOW_MS, id.clone())),
                    )?;
                }
                added += 1;
                results.push(Some(Sent { id, md5_of_body, md5_of_attributes, seq }));
            }
            Ok((results, added))
        })?;
        if added > 0 {
            depth.fetch_add(added, Ordering::Relaxed);
            metrics::counter!("strata_queue_sent_total").increment(added as u64);
            self.notify(queue);
        }
        Ok(prepared
            .into_iter()
            .zip(results)
            .map(|(entry, sent)| match (entry, sent) {
                (Err(err), _) => Err(err),
                (Ok(_), Some(sent)) => Ok(sent),
                (Ok(_), None) => unreachable!("every valid message has a result"),
            })
            .collect())
    }

    /// Writes a message's record and index entries.
    fn insert(
        &self,
        txn: &mut Txn,
        log: &mut ReadyLog,
        queue: &str,
        m: &Message,
        state: u8,
    ) -> QueueResult<()> {
        txn.set(&self.inner.ks, keys::msg(queue, &m.id), encode(m))?;
        self.put_ready(txn, log, queue, m, state)?;
        if let Some(g) = &m.group {
            txn.set(&self.inner.ks, keys::group(queue, g, m.seq, &m.id), Vec::new())?;
        }
        Ok(())
    }

    /// Deletes a message's record, receive state and index entries (and its group's lock).
    fn remove(&self, txn: &mut Txn, log: &mut ReadyLog, queue: &str, m: &Message) -> QueueResult<()> {
        txn.delete(&self.inner.ks, keys::msg(queue, &m.id))?;
        txn.delete(&self.inner.ks, keys::state(queue, &m.id))?;
        self.delete_ready(txn, log, queue, m)?;
        if let Some(g) = &m.group {
            txn.delete(&self.inner.ks, keys::group(queue, g, m.seq, &m.id))?;
            txn.delete(&self.inner.ks, keys::lock(queue, g))?;
        }
        Ok(())
    }

    /// Writes message `m`'s ready entry, at its `visible_at_ms`.
    fn put_ready(
        &self,
        txn: &mut Txn,
        log: &mut ReadyLog,
        queue: &str,
        m: &Message,
        state: u8,
    ) -> QueueResult<()> {
        let key = keys::ready(queue, m.visible_at_ms, m.seq, &m.id);
        log.put(queue, key.clone());
        txn.set(&self.inner.ks, key, vec![state])?;
        Ok(())
    }

    fn delete_ready(&self, txn: &mut Txn, log: &mut ReadyLog, queue: &str, m: &Message) -> QueueResult<()> {
        let key = keys::ready(queue, m.visible_at_ms, m.seq, &m.id);
        log.delete(queue, key.clone());
        txn.delete(&self.inner.ks, key)?;
        Ok(())
    }

    /// A message as it stands: its record with its receive state, if it has been received.
    fn load(&self, txn: &Txn, queue: &str, id: &str) -> QueueResult<Option<Message>> {
        match txn.get(&self.inner.ks, &keys::msg(queue, id))? {
            Some(bytes) => Ok(Some(self.with_state(txn, queue, decode(&bytes)?)?)),
            None => Ok(None),
        }
    }

    /// `m`, read from its record, with its current receive state.
    fn with_state(&self, txn: &Txn, queue: &str, mut m: Message) -> QueueResult<Message> {
        if let Some(state) = txn.get(&self.inner.ks, &keys::state(queue, &m.id))? {
            apply_state(&mut m, &state)?;
        }
        Ok(m)
    }

    /// Records `m`'s new receive state.
    fn save_state(&self, txn: &mut Txn, queue: &str, m: &Message) -> QueueResult<()> {
        txn.set(&self.inner.ks, keys::state(queue, &m.id), encode_state(m))?;
        Ok(())
    }

    /// Receives up to `max` (1-10) visible messages, hiding each for `visibility_secs` (the
    /// queue's timeout when `None`). Messages past their retention are deleted instead;
    /// messages past the redrive policy's receive count move to the dead-letter queue.
    pub fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility_secs: Option<u64>,
    ) -> QueueResult<Vec<Received>> {
        if !(1..=10).contains(&max) {
            return Err(invalid("MaxNumberOfMessages must be 1 to 10"));
        }
        if visibility_secs.is_some_and(|v| v > 12 * 3600) {
            return Err(invalid("VisibilityTimeout must be 0 to 43200 seconds"));
        }
        let meta = self.queue(queue)?;
        let attrs = &meta.attributes;
        let mut claimed = if attrs.fifo { Vec::new() } else { self.claim(queue, max)? };
        let result = self.take(queue, max, visibility_secs, attrs, &claimed);
        // Keys the receive neither took nor found stale stay claimable.
        if let Ok(taken) = &result {
            claimed.retain(|k| taken.untried.contains(k));
        }
        self.inner.heads.unclaim(queue, claimed);
        let taken = result?;
        self.adjust_depth(queue, -((taken.expired + taken.moved) as i64));
        if !taken.received.is_empty() {
            metrics::counter!("strata_queue_received_total").increment(taken.received.len() as u64);
        }
        Ok(taken.received)
    }

    /// Claims up to `max` due ready keys of standard queue `queue` from its head.
    fn claim(&self, queue: &str, max: usize) -> QueueResult<Vec<Vec<u8>>> {
        let first = keys::readies(queue);
        let end = strata_core::keycode::prefix_end(&first).expect("a queue prefix is not all 0xff");
        self.inner.heads.claim(queue, &first, &keys::ready_after(queue, self.now()), max, |from, limit| {
            let txn = self.inner.store.begin_read_only();
            txn.scan(&self.inner.ks, from.to_vec()..end.clone()).take(limit).map(|item| Ok(item?.0)).collect()
        })
    }

    /// The transaction of a receive: standard queues try the `claimed` keys, FIFO queues scan
    /// their ready index. `queue_attrs` are the queue's attributes read before it.
    fn take(
        &self,
        queue: &str,
        max: usize,
        visibility_secs: Option<u64>,
        queue_attrs: &Attributes,
        claimed: &[Vec<u8>],
    ) -> QueueResult<Taken> {
        let fifo = queue_attrs.fifo;
        let cursor = self.cursor(queue);
        let _writing = fifo.then(|| self.writing(queue));
        let _dead_letters = queue_attrs.redrive.as_ref().map(|r| self.writing(&r.dead_letter_queue));
        let bound = cursor.bound(self.now());
        // A standard queue's receive does not wait for its fsync: the lease survives `kill -9`
        // (the journal write has reached the OS), and were a power loss to take it, the
        // message would only come back visible early: a redelivery, which at-least-once
        // delivery allows. The delete that follows waits for its fsync, which covers this
        // commit too. A FIFO receive waits, since its group lock keeps the group's next
        // message from a second worker.
        self.transact_as(fifo, |txn, log| {
            let meta = self.must_queue(txn, queue)?;
            let attrs = &meta.attributes;
            let now = self.now();
            let visibility = visibility_secs.unwrap_or(attrs.visibility_timeout_secs) * 1000;
            let mut due = Vec::new();
            if fifo {
                // FIFO queues walk their ready index in order, skipping locked groups.
                let end = keys::ready_after(queue, now);
                let from = keys::ready(queue, cursor.at.load(Ordering::Relaxed), 0, "");
                for item in txn.scan(&self.inner.ks, from..end).take(MAX_SCAN) {
                    let key = item?.0;
                    due.push((keys::decode_ready(&key)?, key));
                }
                // Nothing live can appear before this (see `Cursor`).
                let low = due.first().map_or(bound, |d| d.0.0.min(bound));
                cursor.at.fetch_max(low, Ordering::Relaxed);
            } else {
                for key in claimed {
                    due.push((keys::decode_ready(key)?, key.clone()));
                }
            }
            let (mut out, mut expired, mut moved) = (Vec::new(), 0u64, 0u64);
            let (mut taken_groups, mut untried) = (HashSet::new(), Vec::new());
            let mut due = due.into_iter();
            for ((visible_at, seq, id), key) in due.by_ref() {
                let Some(mut m) = self.load(txn, queue, &id)? else { continue };
                if (m.visible_at_ms, m.seq) != (visible_at, seq) {
                    continue; // a stale key of the head
                }
                if m.sent_ms + attrs.retention_secs * 1000 <= now {
                    self.remove(txn, log, queue, &m)?;
                    expired += 1;
                    continue;
                }
                if let Some(g) = &m.group {
                    if taken_groups.contains(g) || !self.group_head_is(txn, queue, g, &m.id, now)? {
                        untried.push(key);
                        continue;
                    }
                    taken_groups.insert(g.clone());
                }
                if let Some(r) = &attrs.redrive
                    && m.receive_count >= r.max_receive_count
                {
                    self.move_to(txn, log, (queue, &r.dead_letter_queue), &m, now)?;
                    moved += 1;
                    continue;
                }
                self.delete_ready(txn, log, queue, &m)?;
                m.receive_count += 1;
                m.first_receive_ms.get_or_insert(now);
                m.nonce = rand::random::<u64>() | 1;
                m.visible_at_ms = now + visibility;
                self.save_state(txn, queue, &m)?;
                self.put_ready(txn, log, queue, &m, IN_FLIGHT)?;
                if let Some(g) = &m.group {
                    txn.set(&self.inner.ks, keys::lock(queue, g), m.visible_at_ms.to_le_bytes().to_vec())?;
                }
                let receipt_handle = receipt_handle(queue, &m.id, m.nonce);
                out.push(Received { message: m, receipt_handle });
                if out.len() == max {
                    break;
                }
            }
            untried.extend(due.map(|(_, key)| key));
            Ok(Taken { received: out, expired, moved, untried })
        })
    }

    /// Whether `id` is the first message of FIFO group `group` and the group is not locked.
    fn group_head_is(&self, txn: &Txn, queue: &str, group: &str, id: &str, now: u64) -> QueueResult<bool> {
        if let Some(until) = txn.get(&self.inner.ks, &keys::lock(queue, group))?
            && u64::from_le_bytes(until.as_slice().try_into().unwrap_or([0; 8])) > now
        {
            return Ok(false);
        }
        match txn.scan_prefix(&self.inner.ks, &keys::group_members(queue, group)).next() {
            Some(item) => Ok(keys::decode_group(&item?.0)?.2 == id),
            None => Ok(false),
        }
    }

    /// Moves message `m` from `queue` to `target` as a new, never-received message that keeps
    /// its id, body and attributes.
    fn move_to(
        &self,
        txn: &mut Txn,
        log: &mut ReadyLog,
        (queue, target): (&str, &str),
        m: &Message,
        now: u64,
    ) -> QueueResult<()> {
        let target_meta = self.must_queue(txn, target)?;
        self.remove(txn, log, queue, m)?;
        let mut moved = m.clone();
        moved.receive_count = 0;
        moved.first_receive_ms = None;
        moved.nonce = 0;
        moved.visible_at_ms = now;
        moved.seq = self.next_seq();
        if !target_meta.attributes.fifo {
            moved.group = None;
        } else if moved.group.is_none() {
            moved.group = Some("moved".into());
        }
        self.insert(txn, log, target, &moved, NEVER_RECEIVED)?;
        self.adjust_depth(target, 1);
        metrics::counter!("strata_queue_dead_lettered_total").increment(1);
        Ok(())
    }

    /// The message a receipt handle names, if the handle is still current.
    fn by_receipt(&self, txn: &Txn, queue: &str, handle: &str) -> QueueResult<Message> {
        let (q, id, nonce) = decode_receipt(handle)?;
        if q != queue {
            return Err(QueueError::ReceiptHandleInvalid("it belongs to another queue".into()));
        }
        match self.load(txn, queue, &id)? {
            Some(m) if m.nonce == nonce => Ok(m),
            Some(_) => Err(QueueError::ReceiptHandleInvalid("the message was received again since".into())),
            None => Err(QueueError::ReceiptHandleInvalid(GONE.into())),
        }
    }

    /// Deletes a received message. A handle of a message already deleted is accepted, as in
    /// SQS; one the message was re-received since is refused.
    pub fn delete(&self, queue: &str, handle: &str) -> QueueResult<()> {
        self.delete_batch(queue, &[handle])?.pop().expect("one result per handle")
    }

    /// Deletes up to ten received messages in one transaction; each has its own result.
    pub fn delete_batch(&self, queue: &str, handles: &[&str]) -> QueueResult<Vec<QueueResult<()>>> {
        let (results, removed) = self.transact(|txn, log| {
            self.must_queue(txn, queue)?;
            let (mut results, mut removed) = (Vec::with_capacity(handles.len()), 0i64);
            for handle in handles {
                results.push(match self.by_receipt(txn, queue, handle) {
                    Ok(m) => {
                        self.remove(txn, log, queue, &m)?;
                        removed += 1;
                        Ok(())
                    }
                    Err(QueueError::ReceiptHandleInvalid(why)) if why == GONE => Ok(()),
                    Err(err @ QueueError::ReceiptHandleInvalid(_)) => Err(err),
                    Err(err) => return Err(err),
                });
            }
            Ok((results, removed))
        })?;
        if removed > 0 {
            self.adjust_depth(queue, -removed);
            metrics::counter!("strata_queue_deleted_total").increment(removed as u64);
        }
        Ok(results)
    }

    /// Sets how long a received message stays hidden from now (0 makes it visible).
    pub fn change_visibility(&self, queue: &str, handle: &str, secs: u64) -> QueueResult<()> {
        if secs > 12 * 3600 {
            return Err(invalid("VisibilityTimeout must be 0 to 43200 seconds"));
        }
        let _writing = self.writing(queue);
        self.transact(|txn, log| {
            self.must_queue(txn, queue)?;
            let mut m = self.by_receipt(txn, queue, handle)?;
            let now = self.now();
            if m.visible_at_ms <= now {
                return Err(QueueError::MessageNotInflight);
            }
            self.delete_ready(txn, log, queue, &m)?;
            m.visible_at_ms = now + secs * 1000;
            self.save_state(txn, queue, &m)?;
            self.put_ready(txn, log, queue, &m, IN_FLIGHT)?;
            if let Some(g) = &m.group {
                txn.set(&self.inner.ks, keys::lock(queue, g), m.visible_at_ms.to_le_bytes().to_vec())?;
            }
            Ok(())
        })
    }

    /// Moves up to `max` visible messages from `source` (a dead-letter queue) to
    /// `destination`, or to the first queue whose redrive policy names `source` when `None`
    /// (SQS's StartMessageMoveTask, run to completion). Returns how many moved.
    pub fn move_messages(&self, source: &str, destination: Option<&str>, max: usize) -> QueueResult<u64> {
        let destination = match destination {
            Some(d) => d.to_owned(),
            None => match self.dead_letter_sources(source)?.first() {
                Some(d) => d.clone(),
                None => {
                    return Err(invalid(
                        "the queue is no dead-letter queue of any queue: name a destination",
                    ));
                }
            },
        };
        self.queue(&destination)?;
        let _writing = self.writing(&destination);
        let mut moved = 0u64;
        while (moved as usize) < max {
            let batch = self.transact(|txn, log| {
                self.must_queue(txn, source)?;
                let now = self.now();
                let end = keys::ready_after(source, now);
                let mut ids = Vec::new();
                for item in
                    txn.scan(&self.inner.ks, keys::readies(source)..end).take(100.min(max - moved as usize))
                {
                    ids.push(keys::decode_ready(&item?.0)?.2);
                }
                let mut n = 0;
                for id in ids {
                    if let Some(m) = self.load(txn, source, &id)? {
                        self.move_to(txn, log, (source, &destination), &m, now)?;
                        n += 1;
                    }
                }
                Ok(n)
            })?;
            if batch == 0 {
                break;
            }
            moved += batch;
            self.adjust_depth(source, -(batch as i64));
            self.notify(&destination);
        }
        Ok(moved)
    }

    /// Approximate counts of a queue's messages by state. Reads only the ready entries not
    /// yet due (in flight or delayed) and the oldest message: the visible ones are the rest
    /// of the queue's depth, so a deep backlog costs nothing to count (the metrics publish
    /// this every sweep).
    pub fn counts(&self, queue: &str) -> QueueResult<Counts> {
        let txn = self.inner.store.begin_read_only();
        self.must_queue(&txn, queue)?;
        let depth = self.depth(queue)?.load(Ordering::Relaxed).max(0) as u64;
        let now = self.now();
        let mut counts = Counts::default();
        let readies = keys::readies(queue);
        let end = strata_core::keycode::prefix_end(&readies).expect("a queue prefix is not all 0xff");
        for item in txn.scan(&self.inner.ks, keys::ready_after(queue, now)..end) {
            match item?.1.first().copied() {
                Some(IN_FLIGHT) => counts.not_visible += 1,
                _ => counts.delayed += 1,
            }
        }
        counts.visible = depth.saturating_sub(counts.not_visible + counts.delayed);
        // Message keys sort by send time (see docs/format/queue.md).
        if let Some(item) = txn.scan_prefix(&self.inner.ks, &keys::msgs(queue)).next() {
            let oldest: Message = decode(&item?.1)?;
            counts.oldest_age_ms = now.saturating_sub(oldest.sent_ms);
        }
        Ok(counts)
    }

    /// Publishes each queue's depth, in-flight count and oldest message age as gauges.
    pub fn publish_metrics(&self) {
        let Ok(names) = self.list_queues("") else { return };
        for name in names {
            if let Ok(c) = self.counts(&name) {
                metrics::gauge!("strata_queue_messages", "queue" => name.clone()).set(c.visible as f64);
                metrics::gauge!("strata_queue_messages_in_flight", "queue" => name.clone())
                    .set(c.not_visible as f64);
                metrics::gauge!("strata_queue_messages_delayed", "queue" => name.clone())
                    .set(c.delayed as f64);
                metrics::gauge!("strata_queue_oldest_message_age_seconds", "queue" => name)
                    .set(c.oldest_age_ms as f64 / 1000.0);
            }
        }
    }

    /// Deletes messages past their queue's retention, and expired deduplication ids, up to
    /// `max` of each per queue. Returns how many messages went.
    /// Also rewinds every receive cursor (see `Cursor`).
    pub fn expire(&self, max: usize) -> QueueResult<u64> {
        for cursor in self.inner.cursors.lock().expect("cursors lock").values() {
            cursor.at.store(0, Ordering::Relaxed);
        }
        let mut total = 0;
        for queue in self.list_queues("")? {
            let Ok(meta) = self.queue(&queue) else { continue };
            let now = self.now();
            let cutoff = now.saturating_sub(meta.attributes.retention_secs * 1000);
            let removed = self.transact(|txn, log| {
                let mut doomed = Vec::new();
                for item in txn.scan_prefix(&self.inner.ks, &keys::msgs(&queue)) {
                    let (_, v) = item?;
                    let m = self.with_state(txn, &queue, decode(&v)?)?;
                    // Ids start with the send sequence, so the oldest come first.
                    if m.sent_ms > cutoff || doomed.len() == max {
                        break;
                    }
                    doomed.push(m);
                }
                for m in &doomed {
                    self.remove(txn, log, &queue, m)?;
                }
                let mut stale = Vec::new();
                for item in txn.scan_prefix(&self.inner.ks, &keys::dedups(&queue)).take(max * 10) {
                    let (k, v) = item?;
                    if decode::<(u64, String)>(&v)?.0 <= now {
                        stale.push(k);
                    }
                }
                for k in stale {
                    txn.delete(&self.inner.ks, k)?;
                }
                Ok(doomed.len() as u64)
            })?;
            self.adjust_depth(&queue, -(removed as i64));
            total += removed;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests;
