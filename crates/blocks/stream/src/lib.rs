//! # strata-stream: a durable partitioned log
//!
//! What users get, over the kafka front (kcat, kafka-python, librdkafka, rskafka):
//!
//! - **Topics** with N partitions of record batches, stored as Kafka's own batch format in
//!   segment files (`<data>/stream/<topic id>/<partition>/<base offset>.log`), so producing is
//!   an append and fetching a `pread` — the records are never re-encoded on the hot path.
//! - **Durability**: an append with `acks=all` is answered once `fdatasync` has returned;
//!   one sync thread group-commits every partition's appends ([`syncer`]). Consumers only see
//!   durable records (the high watermark). After a crash the torn tail is cut at open.
//! - **Retention** by time and size per topic, deleting whole old segments, and **log
//!   compaction** (`cleanup.policy=compact`, [`compact`]).
//! - **Replay** from any offset, the earliest or latest, or a timestamp
//!   ([`Streams::list_offset`], [`Streams::replay`]) — event sourcing rebuilds state this way.
//! - **Consumer groups** ([`groups`]) with committed offsets per group and partition in core.
//! - **Idempotent producers**: a retried batch (same producer id, epoch and sequence) is
//!   answered with its first offset and not written again.
//! - **Windowed views** ([`views`]): continuous aggregates over a topic.
//!
//! Topic metadata, committed offsets, producer ids and views live in core (keyspace
//! `stream`, layout in `docs/format/stream.md`); segment files are the block's own.
//!
//! ## Limitations
//!
//! - No transactions (transactional producers are refused); no replication (one broker).
//! - The per-batch index of every segment is held in memory (24 bytes a batch).

mod batch;
mod compact;
mod config;
pub mod groups;
mod keys;
mod log;
mod partition;
mod records;
mod syncer;
pub mod views;

pub use config::{NAMES as CONFIG_NAMES, TopicConfig};
pub use groups::Groups;
pub use log::Slice;
pub use partition::Partition;
pub use records::{NewRecord, StreamRecord};

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use strata_core::{Clock, Keyspace, Store};
use syncer::{Pending, Syncer};
use tokio::sync::{oneshot, watch};

/// Everything that can go wrong in the stream block.
#[derive(Debug)]
pub enum StreamError {
    UnknownTopic(String),
    UnknownPartition {
        topic: String,
        partition: i32,
    },
    TopicExists(String),
    InvalidTopic(String),
    InvalidPartitions(String),
    InvalidConfig(String),
    OffsetOutOfRange {
        offset: i64,
        start: i64,
        end: i64,
    },
    Corrupt(String),
    /// A batch of an old message format (magic 0 or 1).
    UnsupportedFormat(i8),
    TooLarge {
        len: usize,
        limit: usize,
    },
    OutOfOrderSequence,
    /// A batch from an older epoch of a producer that has since re-initialised.
    ProducerFenced,
    Unsupported(&'static str),
    Io(std::io::Error),
    Core(strata_core::Error),
}

pub type StreamResult<T> = Result<T, StreamError>;

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::UnknownTopic(t) => write!(f, "topic {t} does not exist"),
            StreamError::UnknownPartition { topic, partition } => {
                write!(f, "topic {topic} has no partition {partition}")
            }
            StreamError::TopicExists(t) => write!(f, "topic {t} already exists"),
            StreamError::InvalidTopic(msg) => write!(f, "invalid topic: {msg}"),
            StreamError::InvalidPartitions(msg) => write!(f, "invalid partitions: {msg}"),
            StreamError::InvalidConfig(msg) => write!(f, "invalid config: {msg}"),
            StreamError::OffsetOutOfRange { offset, start, end } => {
                write!(f, "offset {offset} is outside the log [{start}, {end}]")
            }
            StreamError::Corrupt(msg) => write!(f, "corrupt record batch: {msg}"),
            StreamError::UnsupportedFormat(magic) => {
                write!(f, "message format {magic} is not supported; send record batches (magic 2)")
            }
            StreamError::TooLarge { len, limit } => {
                write!(f, "record batch of {len} bytes over the limit of {limit}")
            }
            StreamError::OutOfOrderSequence => write!(f, "out of order sequence number"),
            StreamError::ProducerFenced => write!(f, "producer epoch is stale"),
            StreamError::Unsupported(what) => write!(f, "{what} are not supported"),
            StreamError::Io(err) => write!(f, "i/o error: {err}"),
            StreamError::Core(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for StreamError {}

impl From<std::io::Error> for StreamError {
    fn from(err: std::io::Error) -> Self {
        StreamError::Io(err)
    }
}

impl From<strata_core::Error> for StreamError {
    fn from(err: strata_core::Error) -> Self {
        StreamError::Core(err)
    }
}

/// Block-wide settings (`[stream]` in strata.toml).
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Where segment files go (`<data>/stream`).
    pub dir: PathBuf,
    /// What a topic gets unless its creator says otherwise.
    pub defaults: TopicConfig,
    pub max_partitions: i32,
    /// How long a group that was empty waits for more members before its first generation.
    pub group_initial_delay_ms: i64,
}

impl StreamOptions {
    pub fn new(dir: impl Into<PathBuf>) -> StreamOptions {
        StreamOptions {
            dir: dir.into(),
            defaults: TopicConfig::default(),
            max_partitions: 1024,
            group_initial_delay_ms: 300,
        }
    }
}

/// How a producer wants its append acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// Answer nothing (the front sends no response).
    None,
    /// Once written to the OS (not yet fsynced).
    Written,
    /// Once fsynced.
    Durable,
}

/// Where ListOffsets starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetQuery {
    Earliest,
    Latest,
    /// The record with the largest timestamp.
    MaxTimestamp,
    /// The first record at or after this time.
    Time(i64),
}

/// How far [`Streams::replay`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Everything durable now.
    End,
    /// Records before this offset.
    Offset(i64),
    /// Records with a timestamp at or before this time.
    Time(i64),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TopicRecord {
    id: String,
    partitions: i32,
    config: TopicConfig,
    created_ms: u64,
}

pub struct Topic {
    pub name: String,
    /// 16 random bytes as hex, also the topic's directory name.
    pub id: String,
    config: RwLock<TopicConfig>,
    partitions: RwLock<Vec<Arc<Partition>>>,
}

impl Topic {
    pub fn config(&self) -> TopicConfig {
        self.config.read().expect("topic config").clone()
    }

    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().expect("topic partitions").clone()
    }

    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let partitions = self.partitions.read().expect("topic partitions");
        usize::try_from(index).ok().and_then(|i| partitions.get(i).cloned())
    }

    /// The topic id as Kafka's 16-byte UUID.
    pub fn uuid(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&self.id[i * 2..i * 2 + 2], 16).unwrap_or(0);
        }
        out
    }
}

/// The result of an append.
#[derive(Clone, Copy, Debug)]
pub struct Appended {
    pub base_offset: i64,
    pub log_start: i64,
    /// Set when the topic stamps batches with the broker's time.
    pub log_append_time: Option<i64>,
}

/// What a fetch of one partition returns.
pub struct Fetched {
    pub records: Option<Slice>,
    pub high_watermark: i64,
    pub log_start: i64,
}

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub offset: i64,
    pub metadata: String,
    pub commit_ms: u64,
}

struct Inner {
    store: Store,
    ks: Keyspace,
    clock: Arc<dyn Clock>,
    options: StreamOptions,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    syncer: Syncer,
    progress: watch::Receiver<u64>,
    groups: Groups,
    next_producer_id: AtomicI64,
}

/// The stream block. Cheap to clone.
#[derive(Clone)]
pub struct Streams {
    inner: Arc<Inner>,
}

/// Topic names Kafka accepts: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn check_topic_name(name: &str) -> StreamResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok { Ok(()) } else { Err(StreamError::InvalidTopic(format!("{name:?} is not a valid topic name"))) }
}

fn random_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(32);
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

impl Streams {
    /// Opens the block: topics from core, their logs from `options.dir` (recovering torn
    /// tails), and deletes the directories of topics that no longer exist.
    pub fn open(store: Store, clock: Arc<dyn Clock>, options: StreamOptions) -> StreamResult<Streams> {
        let ks = store.keyspace("stream")?;
        std::fs::create_dir_all(&options.dir)?;
        let now = clock.now_ms() as i64;
        let mut topics = BTreeMap::new();
        let txn = store.begin_read_only();
        for item in txn.scan_prefix(&ks, &keys::topics()) {
            let (key, value) = item?;
            let record: TopicRecord = serde_json::from_slice(&value)
                .map_err(|e| StreamError::Core(strata_core::errcorrupt!("topic record: {e}")))?;
            let name = decode_topic_key(&key)
                .ok_or_else(|| StreamError::Core(strata_core::errcorrupt!("topic key {key:?}")))?;
            let topic = open_topic(&options.dir, name.clone(), &record, now)?;
            topics.insert(name, Arc::new(topic));
        }
        let next_producer_id = match txn.get(&ks, &keys::producer_id())? {
            Some(v) => i64::from_be_bytes(v.as_slice().try_into().unwrap_or([0; 8])),
            None => 0,
        };
        drop(txn);
        remove_orphans(&options.dir, &topics)?;
        let (progress_tx, progress) = watch::channel(0);
        let syncer = Syncer::start(progress_tx)?;
        let groups = Groups::new(options.group_initial_delay_ms);
        Ok(Streams {
            inner: Arc::new(Inner {
                store,
                ks,
                clock,
                options,
                topics: RwLock::new(topics),
                syncer,
                progress,
                groups,
                next_producer_id: AtomicI64::new(next_producer_id),
            }),
        })
    }

    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms() as i64
    }

    pub fn options(&self) -> &StreamOptions {
        &self.inner.options
    }

    pub fn groups(&self) -> &Groups {
        &self.inner.groups
    }

    /// Changes on every round of durable appends; fetches long-poll on it.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.progress.clone()
    }

    pub fn topic(&self, name: &str) -> StreamResult<Arc<Topic>> {
        self.inner
            .topics
            .read()
            .expect("topics")
            .get(name)
            .cloned()
            .ok_or_else(|| StreamError::UnknownTopic(name.to_string()))
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.inner.topics.read().expect("topics").values().cloned().collect()
    }

    fn partition(&self, topic: &str, partition: i32) -> StreamResult<Arc<Partition>> {
        self.topic(topic)?
            .partition(partition)
            .ok_or_else(|| StreamError::UnknownPartition { topic: topic.to_string(), partition })
    }

    /// Creates a topic; `partitions` of `None` takes one. `configs` are Kafka names.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: Option<i32>,
        configs: &[(String, String)],
    ) -> StreamResult<Arc<Topic>> {
        check_topic_name(name)?;
        let partitions = partitions.unwrap_or(1);
        if partitions < 1 || partitions > self.inner.options.max_partitions {
            return Err(StreamError::InvalidPartitions(format!(
                "a topic has 1 to {} partitions, not {partitions}",
                self.inner.options.max_partitions
            )));
        }
        let mut config = self.inner.options.defaults.clone();
        for (key, value) in configs {
            config.set(key, value)?;
        }
        let mut topics = self.inner.topics.write().expect("topics");
        if topics.contains_key(name) {
            return Err(StreamError::TopicExists(name.to_string()));
        }
        let record =
            TopicRecord { id: random_id(), partitions, config, created_ms: self.inner.clock.now_ms() };
        let topic = Arc::new(open_topic(&self.inner.options.dir, name.to_string(), &record, self.now_ms())?);
        log::sync_dir(&self.inner.options.dir)?;
        self.put_topic(name, &record)?;
        topics.insert(name.to_string(), topic.clone());
        metrics::gauge!("strata_stream_topics").set(topics.len() as f64);
        Ok(topic)
    }

    fn put_topic(&self, name: &str, record: &TopicRecord) -> StreamResult<()> {
        let mut txn = self.inner.store.begin();
        let value = serde_json::to_vec(record).expect("topic record serializes");
        txn.set(&self.inner.ks, keys::topic(name), value)?;
        txn.commit()?;
        Ok(())
    }

    fn topic_record(&self, topic: &Topic) -> TopicRecord {
        TopicRecord {
            id: topic.id.clone(),
            partitions: topic.partitions.read().expect("partitions").len() as i32,
            config: topic.config(),
            created_ms: 0,
        }
    }

    /// Deletes a topic: its record first (the commit point), then its files.
    pub fn delete_topic(&self, name: &str) -> StreamResult<()> {
        let mut topics = self.inner.topics.write().expect("topics");
        let topic = topics.get(name).cloned().ok_or_else(|| StreamError::UnknownTopic(name.to_string()))?;
        let mut txn = self.inner.store.begin();
        txn.delete(&self.inner.ks, keys::topic(name))?;
        txn.commit()?;
        topics.remove(name);
        std::fs::remove_dir_all(self.inner.options.dir.join(&topic.id))?;
        metrics::gauge!("strata_stream_topics").set(topics.len() as f64);
        Ok(())
    }

    /// Grows a topic to `total` partitions.
    pub fn create_partitions(&self, name: &str, total: i32) -> StreamResult<()> {
        // The write lock serialises topic changes; the topic comes from under it.
        let topics = self.inner.topics.write().expect("topics");
        let topic = topics.get(name).cloned().ok_or_else(|| StreamError::UnknownTopic(name.to_string()))?;
        let mut partitions = topic.partitions.write().expect("partitions");
        let current = partitions.len() as i32;
        if total <= current || total > self.inner.options.max_partitions {
            return Err(StreamError::InvalidPartitions(format!(
                "topic {name} has {current} partitions; it can grow to at most {}, not to {total}",
                self.inner.options.max_partitions
            )));
        }
        for index in current..total {
            let dir = self.inner.options.dir.join(&topic.id).join(index.to_string());
            partitions.push(Arc::new(Partition::new(index, log::Log::open(&dir, self.now_ms())?)));
        }
        drop(partitions);
        self.put_topic(name, &self.topic_record(&topic))
    }

    /// Changes topic configs (Kafka names); `None` resets a name to the block default.
    pub fn alter_config(&self, name: &str, changes: &[(String, Option<String>)]) -> StreamResult<()> {
        let topics = self.inner.topics.write().expect("topics");
        let topic = topics.get(name).cloned().ok_or_else(|| StreamError::UnknownTopic(name.to_string()))?;
        let mut config = topic.config();
        for (key, value) in changes {
            match value {
                Some(value) => config.set(key, value)?,
                None => {
                    let default =
                        self.inner.options.defaults.get(key).ok_or_else(|| {
                            StreamError::InvalidConfig(format!("unknown topic config {key}"))
                        })?;
                    config.set(key, &default)?;
                }
            }
        }
        *topic.config.write().expect("config") = config;
        self.put_topic(name, &self.topic_record(&topic))
    }

    /// Appends a produce request's record batches to a partition.
    pub async fn append(
        &self,
        topic: &str,
        partition: i32,
        mut records: Vec<u8>,
        acks: Acks,
    ) -> StreamResult<Appended> {
        let topic_ref = self.topic(topic)?;
        let config = topic_ref.config();
        let part = topic_ref
            .partition(partition)
            .ok_or_else(|| StreamError::UnknownPartition { topic: topic.to_string(), partition })?;
        let headers = batch::validate(&records, config.max_message_bytes)?;
        if headers.iter().any(|h| h.is_transactional() || h.is_control()) {
            return Err(StreamError::Unsupported("transactional producers"));
        }
        let now = self.now_ms();
        let roll = log::RollPolicy {
            segment_bytes: config.segment_bytes,
            segment_ms: config.retention_ms().map_or(config.segment_ms, |r| r.clamp(1, config.segment_ms)),
            log_append_time: config.log_append_time,
        };
        let (appended, log_start) = {
            let mut log = part.log();
            (log.append(&mut records, &headers, now, &roll)?, log.log_start())
        };
        let base_offset = match appended {
            log::Appended::Written { base, end, file } => {
                let (tx, rx) = oneshot::channel();
                let wait = acks == Acks::Durable;
                self.inner.syncer.submit(Pending {
                    partition: part.clone(),
                    file,
                    end,
                    reply: wait.then_some(tx),
                });
                if wait {
                    rx.await
                        .map_err(|_| StreamError::Io(std::io::Error::other("the sync thread stopped")))??;
                }
                metrics::counter!("strata_stream_records_appended_total")
                    .increment(headers.iter().map(|h| h.record_count as u64).sum());
                base
            }
            log::Appended::Duplicate { base } => {
                if acks == Acks::Durable {
                    let mut progress = self.subscribe();
                    while part.high_watermark() <= base {
                        if progress.changed().await.is_err() {
                            break;
                        }
                    }
                }
                base
            }
        };
        Ok(Appended { base_offset, log_start, log_append_time: config.log_append_time.then_some(now) })
    }

    /// Encodes `records` into one batch and appends it durably (views and the API use this).
    pub async fn append_records(
        &self,
        topic: &str,
        partition: i32,
        records: &[NewRecord],
    ) -> StreamResult<i64> {
        let bytes = records::new_batch(records, self.now_ms())?;
        Ok(self.append(topic, partition, bytes, Acks::Durable).await?.base_offset)
    }

    /// Durable batches of a partition from the one holding `offset`.
    pub fn read(&self, topic: &str, partition: i32, offset: i64, max_bytes: usize) -> StreamResult<Fetched> {
        let part = self.partition(topic, partition)?;
        let records = part.read(offset, max_bytes)?;
        Ok(Fetched { records, high_watermark: part.high_watermark(), log_start: part.log_start() })
    }

    /// (offset, timestamp) for a ListOffsets query; `(-1, -1)` when no record matches.
    pub fn list_offset(&self, topic: &str, partition: i32, query: OffsetQuery) -> StreamResult<(i64, i64)> {
        let part = self.partition(topic, partition)?;
        let end = part.high_watermark();
        let found = {
            let log = part.log();
            match query {
                OffsetQuery::Earliest => return Ok((log.log_start(), -1)),
                OffsetQuery::Latest => return Ok((end, -1)),
                OffsetQuery::MaxTimestamp => log.batch_with_max_time(end),
                OffsetQuery::Time(ts) => log.batch_at_time(ts, end).map(|(_, slice)| (ts, slice)),
            }
        };
        let Some((ts, slice)) = found else { return Ok((-1, -1)) };
        let records = records::decode(slice.read()?)?;
        let hit = match query {
            OffsetQuery::MaxTimestamp => records.iter().find(|r| r.timestamp == ts),
            _ => records.iter().find(|r| r.timestamp >= ts),
        };
        Ok(hit.map_or((-1, -1), |r| (r.offset, r.timestamp)))
    }

    /// Calls `apply` for every record of a partition from `from` until `until`, in offset
    /// order — the event-sourcing primitive: fold a topic into a state as of an offset or time.
    /// Returns the offset after the last record applied (`from` if none was).
    pub fn replay(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        until: Until,
        mut apply: impl FnMut(StreamRecord),
    ) -> StreamResult<i64> {
        let part = self.partition(topic, partition)?;
        let end = part.high_watermark();
        let slices = part.log().slices(from, end);
        let mut next = from;
        for (_, slice) in slices {
            for record in records::decode(slice.read()?)? {
                if record.offset < from || record.offset >= end {
                    continue;
                }
                let past = match until {
                    Until::End => false,
                    Until::Offset(o) => record.offset >= o,
                    Until::Time(ts) => record.timestamp > ts,
                };
                if past {
                    return Ok(next);
                }
                next = record.offset + 1;
                apply(records::to_stream_record(record));
            }
        }
        Ok(next)
    }

    /// A producer id for an idempotent producer (epoch 0). Ids are never reused.
    pub fn init_producer_id(&self, transactional_id: Option<&str>) -> StreamResult<(i64, i16)> {
        if transactional_id.is_some() {
            return Err(StreamError::Unsupported("transactional producers"));
        }
        let id = self.inner.next_producer_id.fetch_add(1, Ordering::SeqCst);
        let mut txn = self.inner.store.begin();
        let stored = txn
            .get(&self.inner.ks, &keys::producer_id())?
            .map_or(0, |v| i64::from_be_bytes(v.as_slice().try_into().unwrap_or([0; 8])));
        txn.set(&self.inner.ks, keys::producer_id(), (stored.max(id) + 1).to_be_bytes().to_vec())?;
        txn.commit()?;
        Ok((stored.max(id), 0))
    }

    /// Stores offsets for a group in one commit.
    pub fn commit_offsets(&self, group: &str, offsets: &[(String, i32, i64, String)]) -> StreamResult<()> {
        let now = self.inner.clock.now_ms();
        let mut txn = self.inner.store.begin();
        for (topic, partition, offset, metadata) in offsets {
            let committed = Committed { offset: *offset, metadata: metadata.clone(), commit_ms: now };
            let value = serde_json::to_vec(&committed).expect("offset serializes");
            txn.set(&self.inner.ks, keys::offset(group, topic, *partition), value)?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> StreamResult<Option<Committed>> {
        let txn = self.inner.store.begin_read_only();
        let value = txn.get(&self.inner.ks, &keys::offset(group, topic, partition))?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Every offset a group committed, as ((topic, partition), offset).
    pub fn group_offsets(&self, group: &str) -> StreamResult<Vec<((String, i32), Committed)>> {
        let txn = self.inner.store.begin_read_only();
        let mut out = Vec::new();
        for item in txn.scan_prefix(&self.inner.ks, &keys::group_offsets(group)) {
            let (key, value) = item?;
            let (_, topic, partition) = keys::decode_offset(&key)?;
            if let Ok(committed) = serde_json::from_slice(&value) {
                out.push(((topic, partition), committed));
            }
        }
        Ok(out)
    }

    /// Groups with members or committed offsets.
    pub fn group_names(&self) -> StreamResult<Vec<String>> {
        let mut names: Vec<String> = self.inner.groups.names();
        let txn = self.inner.store.begin_read_only();
        for item in txn.scan_prefix(&self.inner.ks, &keys::all_offsets()) {
            let (key, _) = item?;
            names.push(keys::decode_offset(&key)?.0);
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Deletes an empty group's membership and committed offsets.
    pub fn delete_group(&self, group: &str) -> Result<(), groups::GroupError> {
        self.inner.groups.delete(group)?;
        let mut txn = self.inner.store.begin();
        let keys: Vec<Vec<u8>> = txn
            .scan_prefix(&self.inner.ks, &keys::group_offsets(group))
            .filter_map(|item| item.ok().map(|(k, _)| k))
            .collect();
        for key in keys {
            let _ = txn.delete(&self.inner.ks, key);
        }
        let _ = txn.commit();
        Ok(())
    }

    /// Retention and compaction for every partition; returns segments deleted and bytes
    /// compacted away. Called periodically by the binary.
    pub fn maintain(&self) -> StreamResult<(usize, u64)> {
        let now = self.now_ms();
        let mut deleted = 0;
        let mut reclaimed = 0;
        for topic in self.topics() {
            let config = topic.config();
            for part in topic.partitions() {
                deleted +=
                    part.log().enforce_retention(now, config.retention_ms(), config.retention_bytes())?;
                if config.compact {
                    reclaimed += compact::compact(&part, config.delete_retention_ms, now)?;
                }
            }
        }
        Ok((deleted, reclaimed))
    }

    /// Partition offsets and group lag as gauges for `/metrics`.
    pub fn publish_metrics(&self) -> StreamResult<()> {
        let mut ends: HashMap<(String, i32), i64> = HashMap::new();
        for topic in self.topics() {
            for part in topic.partitions() {
                let labels = [("topic", topic.name.clone()), ("partition", part.index.to_string())];
                let end = part.high_watermark();
                metrics::gauge!("strata_stream_high_watermark", &labels).set(end as f64);
                metrics::gauge!("strata_stream_log_start_offset", &labels).set(part.log_start() as f64);
                metrics::gauge!("strata_stream_partition_bytes", &labels).set(part.log().size_bytes() as f64);
                ends.insert((topic.name.clone(), part.index), end);
            }
        }
        for group in self.group_names()? {
            for ((topic, partition), committed) in self.group_offsets(&group)? {
                let Some(end) = ends.get(&(topic.clone(), partition)) else { continue };
                let labels =
                    [("group", group.clone()), ("topic", topic), ("partition", partition.to_string())];
                metrics::gauge!("strata_stream_group_lag", &labels)
                    .set((end - committed.offset).max(0) as f64);
            }
        }
        Ok(())
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn keyspace(&self) -> &Keyspace {
        &self.inner.ks
    }
}

fn decode_topic_key(key: &[u8]) -> Option<String> {
    let mut dec = strata_core::keycode::Decoder::new(key);
    dec.tag().ok()?;
    dec.string().ok()
}

fn open_topic(dir: &Path, name: String, record: &TopicRecord, now_ms: i64) -> StreamResult<Topic> {
    let mut partitions = Vec::new();
    for index in 0..record.partitions {
        let log = log::Log::open(&dir.join(&record.id).join(index.to_string()), now_ms)?;
        partitions.push(Arc::new(Partition::new(index, log)));
    }
    Ok(Topic {
        name,
        id: record.id.clone(),
        config: RwLock::new(record.config.clone()),
        partitions: RwLock::new(partitions),
    })
}

/// Deletes topic directories no topic record names (a delete interrupted by a crash).
fn remove_orphans(dir: &Path, topics: &BTreeMap<String, Arc<Topic>>) -> StreamResult<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() && name != "views" && !topics.values().any(|t| t.id == name) {
            tracing::info!(dir = %entry.path().display(), "removing the files of a deleted topic");
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}
