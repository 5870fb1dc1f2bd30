//! The in-memory heads of standard queues' ready indexes: where a receive finds the messages
//! it may take without scanning the ready index in the store.
//!
//! Every receive moves the entries it takes (a delete and an insert), so the front of a busy
//! queue's ready index in the LSM tree is mostly tombstones, and a scan of it walked them
//! again on every receive: half of a receive's time under load. A head instead keeps, per
//! queue, the ready keys that sort before its `covered` bound, at most [`CAPACITY`] of them:
//!
//! - Each committed transaction reports the ready keys it wrote or deleted ([`ReadyLog`])
//!   with its commit sequence number; a key before the bound goes into the head or out of
//!   it. So the head holds every live ready key before the bound, except keys claimed by
//!   receives still running. Reports may arrive out of commit order, and a key can be
//!   written again after it was deleted (a visibility of 0 within the same millisecond), so
//!   a delete removes a key only if no later commit wrote it; a key read from the store
//!   counts as written last, and only a receive's check removes it.
//! - A receive **claims** the due keys it will try: they leave the head, so concurrent
//!   receivers pick different messages. What it does not take it gives back.
//! - When the head has no due key and the bound is not past the due ones, it **refills**:
//!   one bounded scan from the bound, under the head's lock, on a snapshot taken under it
//!   (so a commit either is in that snapshot or reports to the head after the refill).
//! - Past its capacity a head drops its last keys and lowers the bound to the first dropped.
//!
//! The head is a hint that may hold too much but never too little: a receive checks each
//! claimed key against the message record in its own transaction and drops a key that no
//! longer matches (a stale key left by late reports), and snapshot isolation settles two
//! receivers that claimed the same key after a refill. A restart starts empty.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Most keys a head keeps.
pub(crate) const CAPACITY: usize = 1024;
/// Most keys one refill reads from the store.
pub(crate) const REFILL: usize = 256;

/// Ready-index writes of one transaction: (queue, key, written rather than deleted), in order.
#[derive(Default)]
pub(crate) struct ReadyLog(Vec<(String, Vec<u8>, bool)>);

impl ReadyLog {
    pub(crate) fn put(&mut self, queue: &str, key: Vec<u8>) {
        self.0.push((queue.to_owned(), key, true));
    }

    pub(crate) fn delete(&mut self, queue: &str, key: Vec<u8>) {
        self.0.push((queue.to_owned(), key, false));
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

/// The heads of every queue that has been received from.
#[derive(Default)]
pub(crate) struct Heads {
    heads: Mutex<HashMap<String, Arc<Mutex<Head>>>>,
}

/// The commit sequence a key read from the store (or given back) counts as written at.
const LAST: u64 = u64::MAX;

struct Head {
    /// Ready keys, each with the sequence of the commit that wrote it last.
    keys: BTreeMap<Vec<u8>, u64>,
    /// Every live key before this is in `keys` or claimed; `None`: every key is.
    covered: Option<Vec<u8>>,
}

impl Head {
    fn covers(&self, key: &[u8]) -> bool {
        self.covered.as_deref().is_none_or(|bound| key < bound)
    }

    fn insert(&mut self, key: Vec<u8>, seq: u64) {
        if self.covers(&key) {
            let written = self.keys.entry(key).or_insert(seq);
            *written = (*written).max(seq);
            while self.keys.len() > CAPACITY {
                self.covered = self.keys.pop_last().map(|(key, _)| key);
            }
        }
    }

    fn remove(&mut self, key: &[u8], seq: u64) {
        if self.keys.get(key).is_some_and(|&written| written <= seq) {
            self.keys.remove(key);
        }
    }
}

impl Heads {
    fn head(&self, queue: &str) -> Option<Arc<Mutex<Head>>> {
        self.heads.lock().expect("heads lock").get(queue).cloned()
    }

    /// Takes up to `n` keys of `queue` that sort before `due_end` out of its head. `first`
    /// is the queue's first possible ready key; `refill(from, limit)` reads up to `limit`
    /// ready keys from `from` on, in order, from a snapshot it takes when called.
    pub(crate) fn claim<E>(
        &self,
        queue: &str,
        first: &[u8],
        due_end: &[u8],
        n: usize,
        mut refill: impl FnMut(&[u8], usize) -> Result<Vec<Vec<u8>>, E>,
    ) -> Result<Vec<Vec<u8>>, E> {
        let head = self
            .heads
            .lock()
            .expect("heads lock")
            .entry(queue.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Head { keys: BTreeMap::new(), covered: Some(first.to_vec()) }))
            })
            .clone();
        let mut head = head.lock().expect("head lock");
        let mut claimed = Vec::with_capacity(n);
        loop {
            while claimed.len() < n
                && head.keys.first_key_value().is_some_and(|(k, _)| k.as_slice() < due_end)
            {
                claimed.extend(head.keys.pop_first().map(|(key, _)| key));
            }
            let from = match &head.covered {
                Some(bound) if claimed.len() < n && bound.as_slice() < due_end => bound.clone(),
                _ => return Ok(claimed),
            };
            let read = match refill(&from, REFILL) {
                Ok(read) => read,
                Err(err) => {
                    for key in claimed {
                        head.insert(key, LAST);
                    }
                    return Err(err);
                }
            };
            head.covered = match read.last() {
                Some(last) if read.len() == REFILL => Some([last.as_slice(), &[0]].concat()),
                _ => None,
            };
            for key in read {
                head.insert(key, LAST);
            }
        }
    }

    /// Gives back keys a receive claimed and did not take.
    pub(crate) fn unclaim(&self, queue: &str, keys: Vec<Vec<u8>>) {
        if let Some(head) = self.head(queue) {
            let mut head = head.lock().expect("head lock");
            for key in keys {
                head.insert(key, LAST);
            }
        }
    }

    /// Applies the ready-index writes of the transaction committed as `seq`.
    pub(crate) fn apply(&self, seq: u64, log: ReadyLog) {
        for (queue, key, put) in log.0 {
            let Some(head) = self.head(&queue) else { continue };
            let mut head = head.lock().expect("head lock");
            if put {
                head.insert(key, seq);
            } else {
                head.remove(&key, seq);
            }
        }
    }

    /// Forgets a queue's head (after a purge or delete); the next receive refills it.
    pub(crate) fn reset(&self, queue: &str) {
        self.heads.lock().expect("heads lock").remove(queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Vec<u8> {
        n.to_be_bytes().to_vec()
    }

    /// A store of keys 0..len, read the way a refill reads.
    fn store(len: u32) -> impl FnMut(&[u8], usize) -> Result<Vec<Vec<u8>>, ()> {
        move |from, limit| Ok((0..len).map(key).filter(|k| k.as_slice() >= from).take(limit).collect())
    }

    #[test]
    fn claims_refill_in_order_and_stop_at_due_keys() {
        let heads = Heads::default();
        let got = heads.claim("q", &key(0), &key(3), 10, store(5000)).unwrap();
        assert_eq!(got, [key(0), key(1), key(2)], "only keys before the due end");
        let got = heads.claim("q", &key(0), &key(4000), 10, store(5000)).unwrap();
        assert_eq!(got, (3..13).map(key).collect::<Vec<_>>());
        // Past REFILL keys claimed one batch after another, the head refills from its bound.
        let mut all = Vec::new();
        while all.len() < 1000 {
            all.extend(heads.claim("q", &key(0), &key(4000), 10, store(5000)).unwrap());
        }
        assert_eq!(all, (13..1013).map(key).collect::<Vec<_>>());
    }

    #[test]
    fn reports_before_the_bound_count_and_capacity_lowers_it() {
        let heads = Heads::default();
        // An empty store: the head covers everything, so later writes all count.
        assert!(heads.claim("q", &key(0), &key(10), 10, store(0)).unwrap().is_empty());
        let mut log = ReadyLog::default();
        for n in 0..CAPACITY as u32 + 10 {
            log.put("q", key(n));
        }
        log.delete("q", key(1));
        heads.apply(7, log);
        let fails = |_: &[u8], _: usize| -> Result<Vec<Vec<u8>>, ()> { Err(()) };
        let got = heads.claim("q", &key(0), &key(3), 10, fails).unwrap();
        assert_eq!(got, [key(0), key(2)], "the deleted key is gone; no refill for due keys");
        heads.unclaim("q", vec![key(2)]);
        // The last ten went past the capacity, so taking everything needs a refill; a failed
        // one keeps what it had claimed.
        assert!(heads.claim("q", &key(0), &key(u32::MAX), 2000, fails).is_err());
        let all = heads.claim("q", &key(0), &key(u32::MAX), 2000, store(CAPACITY as u32 + 10)).unwrap();
        assert_eq!(all, (2..CAPACITY as u32 + 10).map(key).collect::<Vec<_>>());
    }

    #[test]
    fn a_late_delete_does_not_remove_a_key_written_again_since() {
        let heads = Heads::default();
        assert!(heads.claim("q", &key(0), &key(10), 10, store(0)).unwrap().is_empty());
        let (mut written_again, mut deleted) = (ReadyLog::default(), ReadyLog::default());
        written_again.put("q", key(5));
        deleted.delete("q", key(5));
        heads.apply(9, written_again);
        heads.apply(8, deleted);
        assert_eq!(heads.claim("q", &key(0), &key(10), 10, store(0)).unwrap(), [key(5)]);
        // Given back, a key counts as written last: only a receive's check drops it.
        heads.unclaim("q", vec![key(5)]);
        let mut deleted = ReadyLog::default();
        deleted.delete("q", key(5));
        heads.apply(10, deleted);
        assert_eq!(heads.claim("q", &key(0), &key(10), 10, store(0)).unwrap(), [key(5)]);
    }
}
