//! `cache.persistence = "log"`: every key a write command touched is written through core
//! before the command is acknowledged, and the whole data set (TTLs included) is loaded back
//! on start.
//!
//! Under the keyspace lock, [`Persister::record`] serializes the touched keys' new states in
//! command order into a pending batch and hands back a ticket. A writer thread commits
//! pending batches to core's `cache` keyspace (group commit, so many commands share one
//! fsync) and publishes the highest durable ticket; sessions wait for theirs before replying.
//!
//! FUNCTION libraries are stored in keyspace `cache_functions` (name -> code) and loaded
//! again on start; the EVAL script cache is not persisted, as in Redis.
//!
//! Layout: key = keycode `(db u64, key bytes)`; value = keycode `(type tag, expire_at u64,
//! elements...)`. Whole values are rewritten on each change, so a write to a large
//! collection costs its size; one value is bounded by core's `max_value_bytes`.

use crate::keyspace::Keyspace;
use crate::stream::{self, Consumer, Group, Stream, StreamId};
use crate::value::{Hash, List, Set, Value};
use crate::zset::ZSet;
use bytes::Bytes;
use std::sync::{Arc, Condvar, Mutex};
use strata_core::keycode::{Decoder, KeyBuf};
use strata_core::{Error, Store};
use tokio::sync::watch;

const KEYSPACE: &str = "cache";
/// FUNCTION libraries: library name -> code.
const LIBRARIES: &str = "cache_functions";
const T_STR: u8 = 1;
const T_HASH: u8 = 2;
const T_LIST: u8 = 3;
const T_SET: u8 = 4;
const T_ZSET: u8 = 5;
const T_STREAM: u8 = 6;

/// Longest key a persisted cache accepts: core's key limit less the tuple framing.
pub const MAX_KEY_BYTES: usize = 8 * 1024 - 64;

/// Most bytes one core transaction carries; a larger pending batch is split.
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

type Write = (Vec<u8>, Option<Vec<u8>>);

#[derive(Default)]
struct Pending {
    writes: Vec<Write>,
    ticket: u64,
    closed: bool,
}

struct Inner {
    pending: Mutex<Pending>,
    wake: Condvar,
    durable: watch::Sender<u64>,
}

pub struct Persister {
    store: Store,
    inner: Arc<Inner>,
    durable: watch::Receiver<u64>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Persister {
    /// Loads the stored data set into `ks` and starts the writer thread.
    pub fn open(store: Store, ks: &mut Keyspace) -> Result<Persister, Error> {
        let keyspace = store.keyspace(KEYSPACE)?;
        let txn = store.begin_read_only();
        let now = ks.now();
        let mut loaded = 0usize;
        for item in txn.scan_prefix(&keyspace, &[]) {
            let (k, v) = item?;
            let mut d = Decoder::new(&k);
            let (db, key) = (d.u64()? as usize, Bytes::from(d.bytes()?));
            let (value, expire_at) = decode_value(&v)?;
            if db >= ks.databases() || (expire_at != 0 && expire_at <= now) {
                continue;
            }
            ks.set(db, key.clone(), value, false);
            if expire_at != 0 {
                ks.set_expire(db, &key, expire_at);
            }
            loaded += 1;
        }
        ks.finish();
        tracing::info!(keys = loaded, "cache loaded from the log");
        let (tx, rx) = watch::channel(0);
        let inner =
            Arc::new(Inner { pending: Mutex::new(Pending::default()), wake: Condvar::new(), durable: tx });
        let writer = std::thread::Builder::new()
            .name("strata-cache-log".into())
            .spawn({
                let (inner, store) = (inner.clone(), store.clone());
                move || write_loop(&inner, &store, &keyspace)
            })
            .map_err(Error::Io)?;
        Ok(Persister { store, inner, durable: rx, writer: Some(writer) })
    }

    /// The FUNCTION libraries stored by [`Persister::save_library`]: (name, code).
    pub fn libraries(&self) -> Result<Vec<(String, String)>, Error> {
        let keyspace = self.store.keyspace(LIBRARIES)?;
        let txn = self.store.begin_read_only();
        txn.scan_prefix(&keyspace, &[])
            .map(|item| {
                let (k, v) = item?;
                Ok((String::from_utf8_lossy(&k).into_owned(), String::from_utf8_lossy(&v).into_owned()))
            })
            .collect()
    }

    /// Stores (or, with `None`, deletes) a FUNCTION library; durable when it returns. Blocks:
    /// call it off the async workers.
    pub fn save_library(store: &Store, name: &str, code: Option<&str>) -> Result<(), Error> {
        let keyspace = store.keyspace(LIBRARIES)?;
        let mut txn = store.begin();
        match code {
            Some(code) => txn.set(&keyspace, name.as_bytes().to_vec(), code.as_bytes().to_vec())?,
            None => txn.delete(&keyspace, name.as_bytes().to_vec())?,
        }
        txn.commit()?;
        Ok(())
    }

    /// Deletes every stored FUNCTION library.
    pub fn clear_libraries(store: &Store) -> Result<(), Error> {
        let keyspace = store.keyspace(LIBRARIES)?;
        let mut txn = store.begin();
        let names: Vec<Vec<u8>> =
            txn.scan_prefix(&keyspace, &[]).map(|i| i.map(|(k, _)| k)).collect::<Result<_, _>>()?;
        for name in names {
            txn.delete(&keyspace, name)?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Queues the current state of `touched` keys; returns the ticket to wait for.
    pub fn record(&self, ks: &Keyspace, touched: &[(usize, Bytes)]) -> u64 {
        let mut pending = self.inner.pending.lock().expect("cache log lock");
        if touched.is_empty() {
            return pending.ticket;
        }
        for (db, key) in touched {
            let k = KeyBuf::new().u64(*db as u64).bytes(key).finish();
            let v = ks.get(*db, key).map(|e| encode_value(&e.value, e.expire_at));
            pending.writes.push((k, v));
        }
        pending.ticket += 1;
        let ticket = pending.ticket;
        drop(pending);
        self.inner.wake.notify_one();
        ticket
    }

    /// The newest ticket handed out.
    pub fn recorded(&self) -> u64 {
        self.inner.pending.lock().expect("cache log lock").ticket
    }

    /// Waits until `ticket` is on disk.
    pub async fn wait_durable(&self, ticket: u64) {
        let mut rx = self.durable.clone();
        let _ = rx.wait_for(|d| *d >= ticket).await;
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.inner.pending.lock().expect("cache log lock").closed = true;
        self.inner.wake.notify_one();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn write_loop(inner: &Inner, store: &Store, keyspace: &strata_core::Keyspace) {
    loop {
        let (writes, ticket) = {
            let mut pending = inner.pending.lock().expect("cache log lock");
            while pending.writes.is_empty() && !pending.closed {
                pending = inner.wake.wait(pending).expect("cache log lock");
            }
            if pending.writes.is_empty() && pending.closed {
                return;
            }
            (std::mem::take(&mut pending.writes), pending.ticket)
        };
        // Keep retrying: acknowledging these writes depends on it.
        while let Err(err) = commit(store, keyspace, &writes) {
            tracing::error!(%err, "writing the cache log failed; retrying");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        inner.durable.send_replace(ticket);
    }
}

fn commit(store: &Store, keyspace: &strata_core::Keyspace, writes: &[Write]) -> Result<(), Error> {
    let mut txn = store.begin_snapshot();
    let mut bytes = 0;
    for (k, v) in writes {
        bytes += k.len() + v.as_ref().map_or(0, |v| v.len());
        let written = match v {
            Some(v) => txn.set(keyspace, k.clone(), v.clone()),
            None => txn.delete(keyspace, k.clone()),
        };
        match written {
            Ok(()) => {}
            // A value over core's size limit cannot be stored; retrying would stall every
            // later write, so it is reported and left out.
            Err(Error::InvalidInput(msg)) => {
                tracing::error!(%msg, "a cache value is too large to persist; it stays in memory only");
            }
            Err(e) => return Err(e),
        }
        if bytes > MAX_BATCH_BYTES {
            txn.commit()?;
            txn = store.begin_snapshot();
            bytes = 0;
        }
    }
    txn.commit()?;
    Ok(())
}

fn encode_value(value: &Value, expire_at: u64) -> Vec<u8> {
    let mut buf = KeyBuf::new();
    buf = match value {
        Value::Str(s) => buf.tag(T_STR).u64(expire_at).bytes(s),
        Value::Hash(h) => {
            let mut b = buf.tag(T_HASH).u64(expire_at);
            for (f, v) in h.iter() {
                b = b.bytes(f).bytes(v);
            }
            b
        }
        Value::List(l) => {
            let mut b = buf.tag(T_LIST).u64(expire_at);
            for v in l.iter() {
                b = b.bytes(v);
            }
            b
        }
        Value::Set(s) => {
            let mut b = buf.tag(T_SET).u64(expire_at);
            for m in s.iter() {
                b = b.bytes(m);
            }
            b
        }
        Value::ZSet(z) => {
            let mut b = buf.tag(T_ZSET).u64(expire_at);
            for (m, s) in z.iter_members() {
                b = b.f64(s).bytes(m);
            }
            b
        }
        Value::Stream(s) => encode_stream(buf.tag(T_STREAM).u64(expire_at), s),
    };
    buf.finish()
}

/// A stream: its counters, its entries (`ms seq n field value ...`), then its groups, each
/// with its consumers and its pending entries.
fn encode_stream(buf: KeyBuf, s: &Stream) -> KeyBuf {
    let id = |b: KeyBuf, id: StreamId| b.u64(id.ms).u64(id.seq);
    let mut b = id(id(buf, s.last_id), s.max_deleted_id).u64(s.entries_added).u64(s.len() as u64);
    for (entry, fields) in s.all() {
        b = id(b, entry).u64(fields.len() as u64);
        for f in &fields {
            b = b.bytes(f);
        }
    }
    b = b.u64(s.groups.len() as u64);
    for (name, g) in &s.groups {
        // entries-read is stored plus one, 0 meaning unknown.
        b = id(b.bytes(name), g.last_id).u64(g.entries_read.map_or(0, |n| n + 1));
        b = b.u64(g.consumers.len() as u64);
        for (consumer, c) in &g.consumers {
            b = b.bytes(consumer).u64(c.seen_at);
        }
        b = b.u64(g.pel.len() as u64);
        for (entry, p) in &g.pel {
            b = id(b, *entry).bytes(&p.consumer).u64(p.delivered_at).u64(p.deliveries);
        }
    }
    b
}

fn decode_stream(d: &mut Decoder) -> Result<Stream, Error> {
    fn id(d: &mut Decoder) -> Result<StreamId, Error> {
        Ok(StreamId::new(d.u64()?, d.u64()?))
    }
    let mut s = Stream::default();
    (s.last_id, s.max_deleted_id, s.entries_added) = (id(d)?, id(d)?, d.u64()?);
    for _ in 0..d.u64()? {
        let entry = id(d)?;
        let fields: Vec<Bytes> =
            (0..d.u64()?).map(|_| d.bytes().map(Bytes::from)).collect::<Result<_, _>>()?;
        s.restore_entry(entry, &fields);
    }
    for _ in 0..d.u64()? {
        let name = Bytes::from(d.bytes()?);
        let last_id = id(d)?;
        let entries_read = d.u64()?.checked_sub(1);
        let mut g = Group::new(last_id, entries_read);
        for _ in 0..d.u64()? {
            let consumer = Bytes::from(d.bytes()?);
            g.consumers.insert(consumer, Consumer { seen_at: d.u64()?, ..Consumer::default() });
        }
        s.groups.insert(name.clone(), g);
        for _ in 0..d.u64()? {
            let entry = id(d)?;
            let consumer = Bytes::from(d.bytes()?);
            let pending = stream::Pending { consumer, delivered_at: d.u64()?, deliveries: d.u64()? };
            s.restore_pending(&name, entry, pending);
        }
    }
    Ok(s)
}

fn decode_value(v: &[u8]) -> Result<(Value, u64), Error> {
    let mut d = Decoder::new(v);
    let tag = d.tag()?;
    let expire_at = d.u64()?;
    let value = match tag {
        T_STR => Value::Str(Bytes::from(d.bytes()?)),
        T_HASH => {
            let mut h = Hash::default();
            while !d.is_empty() {
                h.insert(&Bytes::from(d.bytes()?), Bytes::from(d.bytes()?));
            }
            Value::Hash(h)
        }
        T_LIST => {
            let mut l = List::default();
            while !d.is_empty() {
                l.push_back(&d.bytes()?);
            }
            Value::List(l)
        }
        T_SET => {
            let mut s = Set::default();
            while !d.is_empty() {
                s.insert(Bytes::from(d.bytes()?));
            }
            Value::Set(s)
        }
        T_ZSET => {
            let mut z = ZSet::new();
            while !d.is_empty() {
                let score = d.f64()?;
                z.insert(Bytes::from(d.bytes()?), score);
            }
            Value::ZSet(z)
        }
        T_STREAM => Value::Stream(Box::new(decode_stream(&mut d)?)),
        t => return Err(Error::Corrupt(format!("unknown cache value type {t}"))),
    };
    Ok((value, expire_at))
}
