//! Transactions: snapshot reads, buffered writes, read tracking for conflict checks.
//!
//! A [`Txn`] reads from the engine snapshot taken when it began, overlaid with its own
//! buffered writes (read-your-writes). Writes stay in memory until [`Txn::commit`], which
//! hands them to the store for validation, apply and group commit (see `store.rs`).
//!
//! A serializable transaction records what it read: each point key, and for each scan the
//! key range it actually walked (up to the last key the caller took, or the whole range when
//! the scan ran to its end). A concurrent commit that wrote into any of it makes this
//! transaction's commit fail, which rules out lost updates, write skew and phantoms.

use crate::engine::{KsId, PairIter, Snapshot};
use crate::store::{Keyspace, PendingCommit, Store};
use crate::{Error, Result, errinput};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::iter::Peekable;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

/// How a transaction is checked at commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Conflicts on keys and ranges read as well as keys written.
    Serializable,
    /// Conflicts on keys written only (snapshot isolation, PostgreSQL's REPEATABLE READ).
    Snapshot,
    /// No writes; never conflicts.
    ReadOnly,
}

pub(crate) type Range = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// A buffered write: `None` deletes.
type LocalWrite = (Vec<u8>, Option<Vec<u8>>);

#[derive(Default)]
struct ReadSet {
    points: HashSet<(KsId, Vec<u8>)>,
    ranges: Vec<(KsId, Range)>,
}

/// A transaction. Dropping it without committing rolls it back.
pub struct Txn {
    store: Store,
    isolation: Isolation,
    start_seq: u64,
    snapshot: Arc<dyn Snapshot>,
    writes: BTreeMap<(KsId, Vec<u8>), Option<Vec<u8>>>,
    write_bytes: usize,
    reads: RefCell<ReadSet>,
    changes: Vec<(String, Vec<u8>)>,
    ended: bool,
}

impl Txn {
    pub(crate) fn new(
        store: Store,
        isolation: Isolation,
        start_seq: u64,
        snapshot: Arc<dyn Snapshot>,
    ) -> Self {
        Self {
            store,
            isolation,
            start_seq,
            snapshot,
            writes: BTreeMap::new(),
            write_bytes: 0,
            reads: RefCell::default(),
            changes: Vec::new(),
            ended: false,
        }
    }

    /// The sequence number of the last commit this transaction's snapshot includes.
    pub fn start_seq(&self) -> u64 {
        self.start_seq
    }

    /// Moves a snapshot-isolation transaction to a fresh snapshot, keeping its writes, as
    /// READ COMMITTED does at each statement. Fails with [`Error::Conflict`] if a commit since
    /// the old snapshot wrote a key this transaction wrote. Serializable and read-only
    /// transactions keep their snapshot (the call is an error for them).
    pub fn refresh_snapshot(&mut self) -> Result<()> {
        if self.isolation != Isolation::Snapshot {
            return Err(errinput!("only snapshot-isolation transactions can move their snapshot"));
        }
        self.start_seq = self.store.refresh_txn(self.start_seq, self.writes.keys())?;
        self.snapshot = self.store.engine_snapshot();
        Ok(())
    }

    /// The isolation this transaction was begun with.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Reads a key.
    pub fn get(&self, ks: &Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(value) = self.writes.get(&(ks.id, key.to_vec())) {
            return Ok(value.clone());
        }
        if self.isolation == Isolation::Serializable {
            self.reads.borrow_mut().points.insert((ks.id, key.to_vec()));
        }
        self.snapshot.get(ks.id, key)
    }

    fn check_writable(&self, key: &[u8], value_len: usize) -> Result<()> {
        let options = &self.store.inner.options;
        if self.isolation == Isolation::ReadOnly {
            return Err(Error::ReadOnly);
        }
        if key.len() > options.max_key_bytes {
            return Err(errinput!(
                "key of {} bytes is over the limit of {} bytes",
                key.len(),
                options.max_key_bytes
            ));
        }
        if value_len > options.max_value_bytes {
            return Err(errinput!(
                "value of {value_len} bytes is over the limit of {} bytes",
                options.max_value_bytes
            ));
        }
        if self.write_bytes + key.len() + value_len > options.max_txn_bytes {
            return Err(errinput!("transaction writes more than {} bytes", options.max_txn_bytes));
        }
        Ok(())
    }

    /// Writes a key.
    pub fn set(&mut self, ks: &Keyspace, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Result<()> {
        let (key, value) = (key.into(), value.into());
        self.check_writable(&key, value.len())?;
        self.write_bytes += key.len() + value.len();
        self.writes.insert((ks.id, key), Some(value));
        Ok(())
    }

    /// Deletes a key (a no-op if it does not exist).
    pub fn delete(&mut self, ks: &Keyspace, key: impl Into<Vec<u8>>) -> Result<()> {
        let key = key.into();
        self.check_writable(&key, 0)?;
        self.write_bytes += key.len();
        self.writes.insert((ks.id, key), None);
        Ok(())
    }

    /// Appends a change record to the store's change feed, committed with this transaction.
    /// `source` names the block (and, by convention, its collection: `"kv"`, `"sql"`).
    pub fn emit(&mut self, source: &str, payload: Vec<u8>) -> Result<()> {
        self.check_writable(source.as_bytes(), payload.len())?;
        self.write_bytes += source.len() + payload.len();
        self.changes.push((source.to_string(), payload));
        Ok(())
    }

    /// Scans a key range in key order.
    pub fn scan(&self, ks: &Keyspace, range: impl RangeBounds<Vec<u8>>) -> Scan<'_> {
        Scan::new(self, ks.id, (range.start_bound().cloned(), range.end_bound().cloned()), false)
    }

    /// Scans a key range in reverse key order.
    pub fn scan_rev(&self, ks: &Keyspace, range: impl RangeBounds<Vec<u8>>) -> Scan<'_> {
        Scan::new(self, ks.id, (range.start_bound().cloned(), range.end_bound().cloned()), true)
    }

    /// Scans the keys that start with `prefix`, in key order.
    pub fn scan_prefix(&self, ks: &Keyspace, prefix: &[u8]) -> Scan<'_> {
        Scan::new(self, ks.id, prefix_range(prefix), false)
    }

    /// Scans the keys that start with `prefix`, in reverse key order.
    pub fn scan_prefix_rev(&self, ks: &Keyspace, prefix: &[u8]) -> Scan<'_> {
        Scan::new(self, ks.id, prefix_range(prefix), true)
    }

    /// Commits: returns the commit's sequence number once it is durable (per the store's sync
    /// setting), or [`Error::Conflict`] if a concurrent commit won.
    pub fn commit(self) -> Result<u64> {
        self.commit_visible(|| {})
    }

    /// Commits like [`Txn::commit`], and calls `visible` as soon as the commit is applied
    /// (visible to new snapshots), before waiting for it to be durable: a caller that
    /// serialises writers with its own locks can release them there, since a transaction that
    /// then reads this commit's writes commits after it in the journal and is acknowledged
    /// only after it. `visible` is not called if the commit fails or writes nothing.
    pub fn commit_visible(self, visible: impl FnOnce()) -> Result<u64> {
        self.finish(visible, true)
    }

    /// Commits without waiting for the fsync: the commit is applied, visible, and in the
    /// journal written to the OS when this returns, so it survives `kill -9`; it becomes
    /// durable against power loss with the commit thread's next fsync, which it asks for at
    /// once (and which any later commit waits for). Only for writes whose loss in a power
    /// failure the caller's own semantics allow (a queue receive's lease: its loss means a
    /// redelivery, which at-least-once delivery permits). Under `sync = "periodic"` it is
    /// [`Txn::commit`].
    pub fn commit_unsynced(self) -> Result<u64> {
        self.finish(|| {}, false)
    }

    fn finish(mut self, visible: impl FnOnce(), wait: bool) -> Result<u64> {
        self.ended = true;
        if self.isolation == Isolation::ReadOnly {
            return Ok(self.start_seq);
        }
        if self.writes.is_empty() && self.changes.is_empty() {
            self.store.end_txn(self.start_seq);
            return Ok(self.start_seq);
        }
        let reads = std::mem::take(&mut *self.reads.borrow_mut());
        let (points, ranges) = match self.isolation {
            Isolation::Serializable => (reads.points.into_iter().collect(), reads.ranges),
            _ => (Vec::new(), Vec::new()),
        };
        let ops: Vec<_> =
            std::mem::take(&mut self.writes).into_iter().map(|((ks, k), v)| (ks, k, v)).collect();
        let check = ConflictCheck {
            written: ops.iter().map(|(ks, k, _)| (*ks, k.clone())).collect(),
            points,
            ranges,
        };
        let changes = std::mem::take(&mut self.changes);
        self.store.commit_writes(
            PendingCommit { start_seq: self.start_seq, check, ops, changes },
            visible,
            wait,
        )
    }

    /// Discards the transaction's writes.
    pub fn rollback(self) {}
}

/// What a committing transaction touched, to check against later commits.
pub(crate) struct ConflictCheck {
    /// Keys written (checked in every isolation).
    pub(crate) written: Vec<(KsId, Vec<u8>)>,
    /// Keys read (serializable only).
    pub(crate) points: Vec<(KsId, Vec<u8>)>,
    /// Key ranges scanned (serializable only).
    pub(crate) ranges: Vec<(KsId, Range)>,
}

/// A key qualified by its keyspace.
pub(crate) type KsKey = (KsId, Vec<u8>);

/// A key range of one keyspace as a range over `(keyspace, key)` pairs.
pub(crate) fn ks_range(ks: KsId, range: &Range) -> (Bound<KsKey>, Bound<KsKey>) {
    let start = match &range.0 {
        Bound::Included(k) => Bound::Included((ks, k.clone())),
        Bound::Excluded(k) => Bound::Excluded((ks, k.clone())),
        Bound::Unbounded => Bound::Included((ks, Vec::new())),
    };
    let end = match &range.1 {
        Bound::Included(k) => Bound::Included((ks, k.clone())),
        Bound::Excluded(k) => Bound::Excluded((ks, k.clone())),
        Bound::Unbounded => Bound::Excluded((ks + 1, Vec::new())),
    };
    (start, end)
}

impl Drop for Txn {
    fn drop(&mut self) {
        if !self.ended && self.isolation != Isolation::ReadOnly {
            self.store.end_txn(self.start_seq);
        }
    }
}

fn prefix_range(prefix: &[u8]) -> Range {
    let end = match crate::keycode::prefix_end(prefix) {
        Some(end) => Bound::Excluded(end),
        None => Bound::Unbounded,
    };
    (Bound::Included(prefix.to_vec()), end)
}

/// An iterator over a key range that merges the snapshot with the transaction's own writes.
/// When dropped, it records the part of the range it walked in the transaction's read set.
pub struct Scan<'a> {
    txn: &'a Txn,
    ks: KsId,
    range: Range,
    reverse: bool,
    engine: Peekable<PairIter>,
    local: Peekable<std::vec::IntoIter<LocalWrite>>,
    last: Option<Vec<u8>>,
    exhausted: bool,
}

impl<'a> Scan<'a> {
    fn new(txn: &'a Txn, ks: KsId, range: Range, reverse: bool) -> Self {
        let mut local: Vec<_> = if range_is_empty(&range) {
            Vec::new()
        } else {
            txn.writes.range(ks_range(ks, &range)).map(|((_, k), v)| (k.clone(), v.clone())).collect()
        };
        if reverse {
            local.reverse();
        }
        let engine: PairIter = if range_is_empty(&range) {
            Box::new(std::iter::empty())
        } else {
            txn.snapshot.scan(ks, range.clone(), reverse)
        };
        Self {
            txn,
            ks,
            range,
            reverse,
            engine: engine.peekable(),
            local: local.into_iter().peekable(),
            last: None,
            exhausted: false,
        }
    }
}

pub(crate) fn range_is_empty(range: &Range) -> bool {
    match range {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
        _ => false,
    }
}

enum Pick {
    Engine,
    Local,
    Both,
}

impl Iterator for Scan<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let pick = match (self.engine.peek(), self.local.peek()) {
                (None, None) => {
                    self.exhausted = true;
                    return None;
                }
                (Some(Err(_)), _) => return self.engine.next(),
                (Some(Ok(_)), None) => Pick::Engine,
                (None, Some(_)) => Pick::Local,
                (Some(Ok((ek, _))), Some((lk, _))) => {
                    let order = if self.reverse { lk.cmp(ek) } else { ek.cmp(lk) };
                    match order {
                        Ordering::Less => Pick::Engine,
                        Ordering::Greater => Pick::Local,
                        Ordering::Equal => Pick::Both,
                    }
                }
            };
            if let Pick::Engine = pick {
                let pair = self.engine.next().expect("peeked").expect("peeked ok");
                self.last = Some(pair.0.clone());
                return Some(Ok(pair));
            }
            if let Pick::Both = pick {
                self.engine.next();
            }
            let (key, value) = self.local.next().expect("peeked");
            self.last = Some(key.clone());
            if let Some(value) = value {
                return Some(Ok((key, value)));
            }
        }
    }
}

impl Drop for Scan<'_> {
    fn drop(&mut self) {
        if self.txn.isolation != Isolation::Serializable {
            return;
        }
        let walked = if self.exhausted {
            self.range.clone()
        } else {
            let Some(last) = self.last.take() else { return };
            if self.reverse {
                (Bound::Included(last), self.range.1.clone())
            } else {
                (self.range.0.clone(), Bound::Included(last))
            }
        };
        self.txn.reads.borrow_mut().ranges.push((self.ks, walked));
    }
}
