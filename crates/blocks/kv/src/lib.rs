//! # strata-kv: durable key-value
//!
//! Namespaces of keys with opaque byte values, each write giving the key a new version.
//! What users get, over the HTTP front's `/v1/kv`:
//!
//! - **Versions and compare-and-set**: every write returns the key's version; a write or
//!   delete can require a version ([`Condition::Version`]), or that the key be absent or
//!   present, and fails with [`Error::PreconditionFailed`] otherwise.
//! - **TTL**: a key written with a TTL reads as absent once it expires; [`Kv::sweep_expired`]
//!   deletes expired keys in the background and reports each as an `Expired` change.
//! - **Prefix listing** in key order with a cursor, so pages stay consistent and bounded.
//! - **Atomic batches** ([`Kv::apply`]): several puts, deletes and checks in one transaction.
//! - **Watch**: every change is a record in the core change feed; [`Kv::changes`] reads them
//!   back in commit order from a sequence number, which the HTTP front turns into
//!   Server-Sent Events.
//!
//! Storage layout: `docs/format/kv.md`. Each operation is one core transaction, retried on a
//! conflict with a concurrent writer up to [`MAX_RETRIES`] times.
//!
//! ## Limitations
//!
//! - A listing page skips expired keys that the sweeper has not deleted yet; a namespace full
//!   of such keys makes that page slower, not larger.
//! - A watcher that falls further behind than the core's change feed retention misses events.

mod keys;

use keys::{Key, KeyPrefix, decode_entry_key, decode_expiry_key, decode_value, encode_value};
use std::ops::Bound;
use std::sync::Arc;
use strata_core::keycode::{Decoder, KeyBuf};
use strata_core::{Clock, Error, Keyspace, Result, Store, Txn, errcorrupt, errinput};

/// How many times an operation is retried after losing a race with a concurrent writer.
pub const MAX_RETRIES: usize = 32;

/// The change feed source name of this block.
pub const FEED_SOURCE: &str = "kv";

/// Size limits, all configurable (`[kv]` in strata.toml).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_namespace_bytes: usize,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// Most entries one listing page returns.
    pub max_page: usize,
    /// Most operations in one atomic batch.
    pub max_batch_ops: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_namespace_bytes: 128,
            max_key_bytes: 1024,
            max_value_bytes: 1024 * 1024,
            max_page: 1000,
            max_batch_ops: 1000,
        }
    }
}

/// A live key with its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub version: u64,
    /// When the key expires, in ms since the Unix epoch.
    pub expires_at_ms: Option<u64>,
}

/// What must hold for a write to go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Condition {
    #[default]
    None,
    /// The key exists with this version.
    Version(u64),
    /// The key does not exist.
    Absent,
    /// The key exists.
    Exists,
}

/// One operation of an atomic batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        condition: Condition,
        ttl_ms: Option<u64>,
    },
    Delete {
        key: Vec<u8>,
        condition: Condition,
    },
    /// Only checks the condition (to make a batch depend on a key it does not write).
    Check {
        key: Vec<u8>,
        condition: Condition,
    },
}

/// The result of one operation of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The key's new version.
    Put {
        version: u64,
    },
    /// Whether there was a key to delete.
    Deleted(bool),
    Checked,
}

/// A change to a key, as recorded in the change feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The sequence number of the commit that made the change.
    pub seq: u64,
    pub namespace: String,
    pub key: Vec<u8>,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put { version: u64, value: Vec<u8> },
    Delete,
    Expired,
}

/// A page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// The key to pass as `after` for the next page; `None` on the last page.
    pub next: Option<Vec<u8>>,
}

/// The key-value block. Cheap to clone.
#[derive(Clone)]
pub struct Kv {
    store: Store,
    ks: Keyspace,
    clock: Arc<dyn Clock>,
    limits: Limits,
}

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_EXPIRED: u8 = 3;

impl Kv {
    /// Opens the block on `store`.
    pub fn open(store: Store, clock: Arc<dyn Clock>, limits: Limits) -> Result<Kv> {
        let ks = store.keyspace("kv")?;
        Ok(Kv { store, ks, clock, limits })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn check_namespace(&self, ns: &str) -> Result<()> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if ns.is_empty() || ns.len() > self.limits.max_namespace_bytes || !ns.chars().all(valid_char) {
            return Err(errinput!(
                "namespace {ns:?} must be 1 to {} characters of A-Z a-z 0-9 _ - .",
                self.limits.max_namespace_bytes
            ));
        }
        Ok(())
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.is_empty() || key.len() > self.limits.max_key_bytes {
            return Err(errinput!("key must be 1 to {} bytes, got {}", self.limits.max_key_bytes, key.len()));
        }
        Ok(())
    }

    /// Runs `f` in a transaction, retrying on conflict.
    fn with_txn<T>(&self, mut f: impl FnMut(&mut Txn) -> Result<T>) -> Result<T> {
        for _ in 0..MAX_RETRIES {
            let mut txn = self.store.begin();
            let result = f(&mut txn)?;
            match txn.commit() {
                Ok(_) => return Ok(result),
                Err(Error::Conflict) => continue,
                Err(err) => return Err(err),
            }
        }
        Err(Error::Conflict)
    }

    /// Reads the stored entry, expired or not.
    fn read_raw(&self, txn: &Txn, ns: &str, key: &[u8]) -> Result<Option<Entry>> {
        let Some(raw) = txn.get(&self.ks, &Key::Entry { ns, key }.encode())? else { return Ok(None) };
        let (version, expires_at_ms, value) = decode_value(&raw)?;
        Ok(Some(Entry { key: key.to_vec(), value: value.to_vec(), version, expires_at_ms }))
    }

    fn is_live(&self, expires: Option<u64>, now: u64) -> bool {
        expires.is_none_or(|at| at > now)
    }

    /// Reads a key.
    pub fn get(&self, ns: &str, key: &[u8]) -> Result<Option<Entry>> {
        self.check_namespace(ns)?;
        self.check_key(key)?;
        let txn = self.store.begin_read_only();
        let now = self.clock.now_ms();
        Ok(self.read_raw(&txn, ns, key)?.filter(|e| self.is_live(e.expires_at_ms, now)))
    }

    /// Writes a key; returns its new version.
    pub fn put(
        &self,
        ns: &str,
        key: &[u8],
        value: &[u8],
        condition: Condition,
        ttl_ms: Option<u64>,
    ) -> Result<u64> {
        let op = Op::Put { key: key.to_vec(), value: value.to_vec(), condition, ttl_ms };
        match self.apply(ns, vec![op])?.pop() {
            Some(Outcome::Put { version }) => Ok(version),
            other => unreachable!("a put gave {other:?}"),
        }
    }

    /// Deletes a key; returns whether it existed.
    pub fn delete(&self, ns: &str, key: &[u8], condition: Condition) -> Result<bool> {
        match self.apply(ns, vec![Op::Delete { key: key.to_vec(), condition }])?.pop() {
            Some(Outcome::Deleted(existed)) => Ok(existed),
            other => unreachable!("a delete gave {other:?}"),
        }
    }

    /// Applies operations atomically: all of them, or none if a condition fails.
    pub fn apply(&self, ns: &str, ops: Vec<Op>) -> Result<Vec<Outcome>> {
        self.check_namespace(ns)?;
        if ops.len() > self.limits.max_batch_ops {
            return Err(errinput!(
                "a batch holds at most {} operations, got {}",
                self.limits.max_batch_ops,
                ops.len()
            ));
        }
        for op in &ops {
            let (Op::Put { key, .. } | Op::Delete { key, .. } | Op::Check { key, .. }) = op;
            self.check_key(key)?;
            if let Op::Put { value, ttl_ms, .. } = op {
                if value.len() > self.limits.max_value_bytes {
                    return Err(errinput!(
                        "value of {} bytes is over the limit of {} bytes",
                        value.len(),
                        self.limits.max_value_bytes
                    ));
                }
                if *ttl_ms == Some(0) {
                    return Err(errinput!("ttl must be positive"));
                }
            }
        }
        let result = self.with_txn(|txn| {
            let now = self.clock.now_ms();
            ops.iter().map(|op| self.apply_one(txn, ns, op, now)).collect()
        });
        metrics::counter!("strata_kv_batches_total", "result" => if result.is_ok() { "ok" } else { "error" })
            .increment(1);
        result
    }

    fn apply_one(&self, txn: &mut Txn, ns: &str, op: &Op, now: u64) -> Result<Outcome> {
        let (Op::Put { key, condition, .. } | Op::Delete { key, condition } | Op::Check { key, condition }) =
            op;
        let raw = self.read_raw(txn, ns, key)?;
        let live = raw.as_ref().filter(|e| self.is_live(e.expires_at_ms, now));
        let holds = match (condition, live) {
            (Condition::None, _) => true,
            (Condition::Version(want), Some(entry)) => *want == entry.version,
            (Condition::Version(_), None) | (Condition::Exists, None) => false,
            (Condition::Absent, live) => live.is_none(),
            (Condition::Exists, Some(_)) => true,
        };
        if !holds {
            let have = live.map_or("absent".to_string(), |e| format!("at version {}", e.version));
            let wanted = match condition {
                Condition::Version(v) => format!("version {v}"),
                Condition::Absent => "absent".to_string(),
                Condition::Exists | Condition::None => "present".to_string(),
            };
            return Err(Error::PreconditionFailed(format!(
                "key {:?} is {have}, the request required it {wanted}",
                String::from_utf8_lossy(key)
            )));
        }
        let entry_key = Key::Entry { ns, key }.encode();
        let old_expiry = raw.as_ref().and_then(|e| e.expires_at_ms);
        let drop_expiry = |txn: &mut Txn| match old_expiry {
            Some(at_ms) => txn.delete(&self.ks, Key::Expiry { at_ms, ns, key }.encode()),
            None => Ok(()),
        };
        match op {
            Op::Check { .. } => Ok(Outcome::Checked),
            Op::Delete { .. } => {
                if raw.is_some() {
                    drop_expiry(txn)?;
                    txn.delete(&self.ks, entry_key)?;
                }
                if let Some(entry) = live {
                    txn.emit(FEED_SOURCE, encode_event(ns, key, OP_DELETE, entry.version, b""))?;
                }
                Ok(Outcome::Deleted(live.is_some()))
            }
            Op::Put { value, ttl_ms, .. } => {
                let previous = raw.as_ref().map_or(0, |e| e.version);
                let version = (previous + 1).max(txn.start_seq() + 1);
                let expires_at_ms = ttl_ms.map(|ttl| now.saturating_add(ttl));
                drop_expiry(txn)?;
                if let Some(at_ms) = expires_at_ms {
                    txn.set(&self.ks, Key::Expiry { at_ms, ns, key }.encode(), Vec::new())?;
                }
                txn.set(&self.ks, entry_key, encode_value(version, expires_at_ms, value))?;
                txn.emit(FEED_SOURCE, encode_event(ns, key, OP_PUT, version, value))?;
                Ok(Outcome::Put { version })
            }
        }
    }

    /// Lists live keys of `ns` that start with `prefix`, in key order, after the key `after`
    /// (exclusive) when given, at most `limit` (capped by [`Limits::max_page`]).
    pub fn list(&self, ns: &str, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Page> {
        self.check_namespace(ns)?;
        let limit = limit.clamp(1, self.limits.max_page);
        let txn = self.store.begin_read_only();
        let now = self.clock.now_ms();
        let prefix_key = KeyPrefix::Entries { ns, prefix }.encode();
        let start = match after {
            Some(after) => Bound::Excluded(Key::Entry { ns, key: after }.encode()),
            None => Bound::Included(prefix_key.clone()),
        };
        let end = match strata_core::keycode::prefix_end(&prefix_key) {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        let mut entries = Vec::new();
        let mut next = None;
        for pair in txn.scan(&self.ks, (start, end)) {
            let (k, v) = pair?;
            let (_, key) = decode_entry_key(&k)?;
            let (version, expires_at_ms, value) = decode_value(&v)?;
            if !self.is_live(expires_at_ms, now) {
                continue;
            }
            if entries.len() == limit {
                next = entries.last().map(|e: &Entry| e.key.clone());
                break;
            }
            entries.push(Entry { key, value: value.to_vec(), version, expires_at_ms });
        }
        Ok(Page { entries, next })
    }

    /// Deletes up to `max` expired keys, oldest expiry first; returns how many.
    pub fn sweep_expired(&self, max: usize) -> Result<usize> {
        let swept = self.with_txn(|txn| {
            let now = self.clock.now_ms();
            let mut expired = Vec::new();
            for pair in txn.scan_prefix(&self.ks, &KeyPrefix::Expiries.encode()).take(max) {
                let (k, _) = pair?;
                let (at_ms, ns, key) = decode_expiry_key(&k)?;
                if at_ms > now {
                    break;
                }
                expired.push((k, ns, key));
            }
            for (expiry_key, ns, key) in &expired {
                let entry_key = Key::Entry { ns, key }.encode();
                if let Some(raw) = txn.get(&self.ks, &entry_key)? {
                    let (version, _, _) = decode_value(&raw)?;
                    txn.delete(&self.ks, entry_key)?;
                    txn.emit(FEED_SOURCE, encode_event(ns, key, OP_EXPIRED, version, b""))?;
                }
                txn.delete(&self.ks, expiry_key.clone())?;
            }
            Ok(expired.len())
        })?;
        metrics::counter!("strata_kv_expired_total").increment(swept as u64);
        Ok(swept)
    }

    /// Changes to keys from commit `from_seq` on (inclusive), at most about `limit`; returns
    /// them and the sequence number to read from next.
    pub fn changes(&self, from_seq: u64, limit: usize) -> Result<(Vec<Event>, u64)> {
        let changes = self.store.read_changes(from_seq, limit)?;
        let next = changes.last().map_or(from_seq, |c| c.seq + 1);
        let events = changes
            .into_iter()
            .filter(|c| c.source == FEED_SOURCE)
            .map(|c| decode_event(c.seq, &c.payload))
            .collect::<Result<_>>()?;
        Ok((events, next))
    }

    /// The store this block runs on (to subscribe to new commits).
    pub fn store(&self) -> &Store {
        &self.store
    }
}

fn encode_event(ns: &str, key: &[u8], op: u8, version: u64, value: &[u8]) -> Vec<u8> {
    KeyBuf::new().str(ns).bytes(key).tag(op).u64(version).raw(value).finish()
}

fn decode_event(seq: u64, payload: &[u8]) -> Result<Event> {
    let mut dec = Decoder::new(payload);
    let namespace = dec.string()?;
    let key = dec.bytes()?;
    let op = dec.tag()?;
    let version = dec.u64()?;
    let kind = match op {
        OP_PUT => EventKind::Put { version, value: dec.rest().to_vec() },
        OP_DELETE => EventKind::Delete,
        OP_EXPIRED => EventKind::Expired,
        op => return Err(errcorrupt!("unknown kv change op {op}")),
    };
    Ok(Event { seq, namespace, key, kind })
}
