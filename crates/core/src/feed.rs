//! The change feed: records that blocks append inside their transactions.
//!
//! A block calls [`crate::Txn::emit`]; the records are written in the same commit, keyed by
//! the commit's sequence number, to the core's `_feed` keyspace. A subscriber (the search
//! indexer, a KV watch, an outbox) reads from the last sequence it applied with
//! [`crate::Store::read_changes`] and waits for newer commits on [`crate::Store::subscribe`].
//!
//! # Format
//!
//! Key: `seq` (u64, big-endian) then the record's index within its commit (u32, big-endian).
//! Value: the source name as keycode bytes (escaped, `00 00`-terminated), then the payload.
//!
//! Records of the oldest commits are trimmed beyond `Options::feed_retention` commits; a
//! subscriber that falls further behind sees a gap in sequence numbers.

use crate::keycode::{Decoder, encode_bytes};
use crate::{Result, Store, errcorrupt};

/// One change record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The sequence number of the commit that wrote it.
    pub seq: u64,
    /// Its position among the records of that commit.
    pub index: u32,
    /// The block (and collection) that wrote it.
    pub source: String,
    /// The block's own encoding of the change.
    pub payload: Vec<u8>,
}

pub(crate) fn key(seq: u64, index: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(12);
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(&index.to_be_bytes());
    key
}

pub(crate) fn value(source: &str, payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(source.len() + 2 + payload.len());
    encode_bytes(&mut value, source.as_bytes());
    value.extend_from_slice(payload);
    value
}

fn decode(key: &[u8], value: &[u8]) -> Result<Change> {
    let (Some(seq), Some(index)) = (
        key.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes),
        key.get(8..12).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes),
    ) else {
        return Err(errcorrupt!("change feed key of {} bytes", key.len()));
    };
    let mut dec = Decoder::new(value);
    let source = dec.string()?;
    Ok(Change { seq, index, source, payload: dec.rest().to_vec() })
}

/// At most `limit` records from position `(seq, index)` on (inclusive), in commit order.
pub(crate) fn read(store: &Store, seq: u64, index: u32, limit: usize) -> Result<Vec<Change>> {
    let txn = store.begin_read_only();
    let feed = store.inner.feed.clone();
    txn.scan(&feed, key(seq, index)..)
        .take(limit)
        .map(|pair| pair.and_then(|(k, v)| decode(&k, &v)))
        .collect()
}

/// Deletes the records of commits older than the retention, a bounded batch at a time.
pub(crate) fn trim(store: &Store) -> Result<()> {
    const BATCH: usize = 10_000;
    let retention = store.inner.options.feed_retention;
    let Some(keep_from) = store.last_seq().checked_sub(retention) else { return Ok(()) };
    let feed = store.inner.feed.clone();
    loop {
        let mut txn = store.begin_snapshot();
        let old: Vec<Vec<u8>> = txn
            .scan(&feed, ..key(keep_from, 0))
            .take(BATCH)
            .map(|p| p.map(|(k, _)| k))
            .collect::<Result<_>>()?;
        let done = old.len() < BATCH;
        for k in old {
            txn.delete(&feed, k)?;
        }
        txn.commit()?;
        if done {
            return Ok(());
        }
    }
}
