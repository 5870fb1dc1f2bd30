//! The sixteen databases and everything that happens to keys regardless of their type:
//! lookup with passive expiry, active expiry sampling, access tracking for LRU/LFU, memory
//! accounting, eviction under `maxmemory`, versions for WATCH, and the list of keys the
//! current command wrote (for persistence and for waking blocked clients).

use crate::value::Value;
use bytes::Bytes;
use indexmap::{IndexMap, IndexSet};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::sync::Arc;
use strata_core::Clock;

/// Bytes charged per key beyond its name and value (entry, hash slot, bookkeeping).
pub const KEY_OVERHEAD: usize = 72;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    NoEviction,
    AllKeysLru,
    AllKeysLfu,
    AllKeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileTtl,
    VolatileRandom,
    /// Oldest insert first.
    Fifo,
}

impl Policy {
    pub const ALL: [(&'static str, Policy); 9] = [
        ("noeviction", Policy::NoEviction),
        ("allkeys-lru", Policy::AllKeysLru),
        ("allkeys-lfu", Policy::AllKeysLfu),
        ("allkeys-random", Policy::AllKeysRandom),
        ("volatile-lru", Policy::VolatileLru),
        ("volatile-lfu", Policy::VolatileLfu),
        ("volatile-ttl", Policy::VolatileTtl),
        ("volatile-random", Policy::VolatileRandom),
        ("fifo", Policy::Fifo),
    ];

    pub fn parse(name: &str) -> Option<Policy> {
        Policy::ALL.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, p)| *p)
    }

    pub fn name(self) -> &'static str {
        Policy::ALL.iter().find(|(_, p)| *p == self).map(|(n, _)| *n).unwrap_or("noeviction")
    }

    fn is_lfu(self) -> bool {
        matches!(self, Policy::AllKeysLfu | Policy::VolatileLfu)
    }

    fn volatile_only(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru | Policy::VolatileLfu | Policy::VolatileTtl | Policy::VolatileRandom
        )
    }
}

/// Settings `CONFIG SET` can change at run time.
#[derive(Debug, Clone)]
pub struct Settings {
    /// 0 means no limit.
    pub maxmemory: usize,
    pub policy: Policy,
    pub samples: usize,
    pub lfu_log_factor: u32,
    pub lfu_decay_minutes: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            maxmemory: 0,
            policy: Policy::NoEviction,
            samples: 5,
            lfu_log_factor: 10,
            lfu_decay_minutes: 1,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub expired: u64,
    pub evicted: u64,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    /// Unix milliseconds; 0 means no expiry.
    pub expire_at: u64,
    last_access: u64,
    lfu: u8,
    lfu_minutes: u64,
    version: u64,
    seq: u64,
    mem: usize,
}

impl Entry {
    pub fn idle_ms(&self, now: u64) -> u64 {
        now.saturating_sub(self.last_access)
    }
    pub fn lfu(&self) -> u8 {
        self.lfu
    }
    /// Bytes counted for the entry in `used_memory`: key, value and bookkeeping.
    pub fn mem(&self) -> usize {
        self.mem
    }
}

#[derive(Debug, Default)]
struct Db {
    keys: IndexMap<Bytes, Entry>,
    /// Keys with an expiry, for active expiry and the volatile-* policies.
    volatile: IndexSet<Bytes>,
}

/// Initial LFU counter of a new key, so it is not evicted before it had a chance (Redis's
/// LFU_INIT_VAL).
const LFU_INIT: u8 = 5;

pub struct Keyspace {
    dbs: Vec<Db>,
    clock: Arc<dyn Clock>,
    now: u64,
    used_memory: usize,
    pub settings: Settings,
    pub stats: Stats,
    rng: SmallRng,
    version: u64,
    next_seq: u64,
    fifo: VecDeque<(usize, u64, Bytes)>,
    touched: Vec<(usize, Bytes)>,
    /// Where each touched key was in its database when recorded (`usize::MAX`: unknown), so
    /// that [`Keyspace::finish`] finds it again without hashing it while nothing moved it.
    touched_at: Vec<usize>,
}

impl Keyspace {
    pub fn new(databases: usize, settings: Settings, clock: Arc<dyn Clock>) -> Keyspace {
        let now = clock.now_ms();
        Keyspace {
            dbs: (0..databases.max(1)).map(|_| Db::default()).collect(),
            clock,
            now,
            used_memory: 0,
            settings,
            stats: Stats::default(),
            rng: SmallRng::from_rng(&mut rand::rng()),
            version: 1,
            next_seq: 0,
            fifo: VecDeque::new(),
            touched: Vec::new(),
            touched_at: Vec::new(),
        }
    }

    pub fn databases(&self) -> usize {
        self.dbs.len()
    }

    /// Starts a command: reads the clock once so the whole command sees one time.
    pub fn begin(&mut self) {
        self.read_clock();
        self.begin_at_same_time();
    }

    /// Reads the clock for the commands begun with [`Keyspace::begin_at_same_time`].
    pub fn read_clock(&mut self) {
        self.now = self.clock.now_ms();
    }

    /// Starts a command at the time last read: for the commands of one pipelined batch.
    pub fn begin_at_same_time(&mut self) {
        self.version += 1;
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    pub fn used_memory(&self) -> usize {
        self.used_memory
    }

    pub fn len(&self, db: usize) -> usize {
        self.dbs[db].keys.len()
    }

    pub fn is_empty(&self, db: usize) -> bool {
        self.dbs[db].keys.is_empty()
    }

    pub fn volatile_len(&self, db: usize) -> usize {
        self.dbs[db].volatile.len()
    }

    /// Removes `key` if its time has come; true if it did.
    fn expire_if_due(&mut self, db: usize, key: &[u8]) -> bool {
        match self.dbs[db].keys.get_index_of(key) {
            Some(i) => self.expire_at_index(db, i),
            None => false,
        }
    }

    /// Expires the entry at position `i` if due; true if it did.
    fn expire_at_index(&mut self, db: usize, i: usize) -> bool {
        let due =
            self.dbs[db].keys.get_index(i).is_some_and(|(_, e)| e.expire_at != 0 && e.expire_at <= self.now);
        if due {
            let key = self.dbs[db].keys.get_index(i).map(|(k, _)| k.clone()).expect("in range");
            self.stats.expired += 1;
            self.remove(db, &key);
        }
        due
    }

    /// The position of a live `key` (expiring it first if due), with one hash lookup.
    fn live_index(&mut self, db: usize, key: &[u8]) -> Option<usize> {
        let i = self.dbs[db].keys.get_index_of(key)?;
        if self.expire_at_index(db, i) { None } else { Some(i) }
    }

    /// A read: counts a hit or a miss and refreshes LRU/LFU data.
    pub fn read(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        let Some(i) = self.live_index(db, key) else {
            self.stats.misses += 1;
            return None;
        };
        self.stats.hits += 1;
        self.touch(db, i);
        Some(&mut self.dbs[db].keys[i])
    }

    /// A look without side effects other than expiry (TYPE, EXISTS-like internals, OBJECT).
    pub fn peek(&mut self, db: usize, key: &[u8]) -> Option<&Entry> {
        let i = self.live_index(db, key)?;
        self.dbs[db].keys.get_index(i).map(|(_, e)| e)
    }

    /// A plain look, without expiry or statistics: for a second pass over keys a command
    /// has already read (to borrow several values at once).
    pub fn get(&self, db: usize, key: &[u8]) -> Option<&Entry> {
        self.dbs[db].keys.get(key)
    }

    /// The position of a live `key` about to be written, if its value `fits` (the type the
    /// command works on); the key is recorded as touched by this command. `Err(())` when the
    /// key holds a value that does not fit; nothing is recorded then.
    pub fn write_index_if(
        &mut self,
        db: usize,
        key: &[u8],
        fits: impl FnOnce(&Value) -> bool,
    ) -> Result<Option<usize>, ()> {
        let Some(i) = self.live_index(db, key) else { return Ok(None) };
        if !fits(&self.dbs[db].keys[i].value) {
            return Err(());
        }
        self.write_at(db, i);
        Ok(Some(i))
    }

    /// The position of a live `key` a command may write in place, marked accessed but not yet
    /// touched: the command calls [`Keyspace::written_at`] once it has changed the value, so
    /// a write that fails (INCR of a word) is no modification for WATCH.
    pub fn write_index(&mut self, db: usize, key: &[u8]) -> Option<usize> {
        let i = self.live_index(db, key)?;
        self.touch(db, i);
        Some(i)
    }

    /// Records that the command changed the entry at `i` (from [`Keyspace::write_index`]).
    pub fn written_at(&mut self, db: usize, i: usize) {
        let key = self.dbs[db].keys.get_index(i).map(|(k, _)| k.clone()).expect("live index");
        self.record(db, key, i);
    }

    /// Records `key` as touched by this command; `at` is where it is now, if known.
    fn record(&mut self, db: usize, key: Bytes, at: usize) {
        self.touched.push((db, key));
        self.touched_at.push(at);
    }

    /// The entry at a position [`Keyspace::write_index_if`] or [`Keyspace::set`] gave.
    pub fn entry_at(&mut self, db: usize, i: usize) -> &mut Entry {
        &mut self.dbs[db].keys[i]
    }

    /// Marks the entry at `i` accessed and its key touched by this command.
    fn write_at(&mut self, db: usize, i: usize) {
        self.touch(db, i);
        self.written_at(db, i);
    }

    /// Records an access to the entry at `i`: its LRU time, and under an LFU policy (only
    /// then, as in Redis) its frequency counter.
    fn touch(&mut self, db: usize, i: usize) {
        let e = &mut self.dbs[db].keys[i];
        e.last_access = self.now;
        if self.settings.policy.is_lfu() {
            let (factor, decay) = (self.settings.lfu_log_factor, self.settings.lfu_decay_minutes);
            count_access(e, self.now, factor, decay, &mut self.rng);
        }
    }

    /// Stores `value` under `key`, replacing what was there; the expiry is cleared unless
    /// `keep_ttl`.
    pub fn set(&mut self, db: usize, key: Bytes, value: Value, keep_ttl: bool) -> usize {
        let now = self.now;
        let i = match self.live_index(db, &key) {
            Some(i) => {
                let d = &mut self.dbs[db];
                let (_, e) = d.keys.get_index_mut(i).expect("live index");
                e.value = value;
                e.last_access = now;
                if !keep_ttl && e.expire_at != 0 {
                    e.expire_at = 0;
                    d.volatile.swap_remove(&key);
                }
                i
            }
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                let entry = Entry {
                    value,
                    expire_at: 0,
                    last_access: now,
                    lfu: LFU_INIT,
                    lfu_minutes: now / 60_000,
                    version: 0,
                    seq,
                    mem: 0,
                };
                let (i, _) = self.dbs[db].keys.insert_full(key.clone(), entry);
                if self.settings.policy == Policy::Fifo {
                    self.fifo.push_back((db, seq, key.clone()));
                }
                i
            }
        };
        self.record(db, key, i);
        i
    }

    pub fn remove(&mut self, db: usize, key: &[u8]) -> Option<Entry> {
        let d = &mut self.dbs[db];
        let (k, entry) = d.keys.swap_remove_entry(key)?;
        if entry.expire_at != 0 {
            d.volatile.swap_remove(key);
        }
        self.used_memory -= entry.mem;
        self.record(db, k, usize::MAX);
        Some(entry)
    }

    /// Sets or clears (`0`) the expiry of an existing key.
    pub fn set_expire(&mut self, db: usize, key: &[u8], at: u64) -> bool {
        let d = &mut self.dbs[db];
        let Some((i, k, e)) = d.keys.get_full_mut(key) else { return false };
        let k = k.clone();
        e.expire_at = at;
        if at == 0 {
            d.volatile.swap_remove(key);
        } else {
            d.volatile.insert(k.clone());
        }
        self.record(db, k, i);
        true
    }

    /// The version WATCH compares: `None` when the key does not exist.
    pub fn version(&mut self, db: usize, key: &[u8]) -> Option<u64> {
        self.expire_if_due(db, key);
        self.dbs[db].keys.get(key).map(|e| e.version)
    }

    pub fn flush(&mut self, db: usize) {
        let d = std::mem::take(&mut self.dbs[db]);
        for (key, entry) in d.keys {
            self.used_memory -= entry.mem;
            self.record(db, key, usize::MAX);
        }
    }

    /// SWAPDB: every key of both databases counts as touched.
    pub fn swap(&mut self, a: usize, b: usize) {
        self.dbs.swap(a, b);
        for db in [a, b] {
            let keys: Vec<Bytes> = self.dbs[db].keys.keys().cloned().collect();
            for (i, key) in keys.into_iter().enumerate() {
                self.record(db, key, i);
            }
        }
    }

    pub fn key_at(&self, db: usize, index: usize) -> Option<(&Bytes, &Entry)> {
        self.dbs[db].keys.get_index(index)
    }

    pub fn random_key(&mut self, db: usize) -> Option<Bytes> {
        for _ in 0..100 {
            let len = self.dbs[db].keys.len();
            if len == 0 {
                return None;
            }
            let i = self.rng.random_range(0..len);
            let key = self.dbs[db].keys.get_index(i).map(|(k, _)| k.clone())?;
            if !self.expire_if_due(db, &key) {
                return Some(key);
            }
        }
        None
    }

    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }

    /// Ends a command: updates memory and versions of what it wrote, deletes collections it
    /// emptied, and hands back the keys it touched.
    pub fn finish(&mut self) -> Vec<(usize, Bytes)> {
        let touched = std::mem::take(&mut self.touched);
        for ((db, key), &at) in touched.iter().zip(&self.touched_at) {
            let d = &mut self.dbs[*db];
            // Where the key was recorded, unless a removal since moved another key there.
            let in_place = d.keys.get_index(at).is_some_and(|(k, _)| k == key);
            let entry = if in_place { d.keys.get_index_mut(at).map(|(_, e)| e) } else { d.keys.get_mut(key) };
            let Some(e) = entry else { continue };
            if e.value.is_empty_collection() {
                if let Some(old) = d.keys.swap_remove(key) {
                    self.used_memory -= old.mem;
                    if old.expire_at != 0 {
                        d.volatile.swap_remove(key);
                    }
                }
                continue;
            }
            if e.version != self.version {
                e.version = self.version;
            }
            let mem = key.len() + e.value.mem() + KEY_OVERHEAD;
            self.used_memory = self.used_memory + mem - e.mem;
            e.mem = mem;
        }
        self.touched_at.clear();
        touched
    }

    /// Takes back a list [`Keyspace::finish`] handed out, so the next command records its
    /// keys without allocating.
    pub fn recycle(&mut self, mut touched: Vec<(usize, Bytes)>) {
        if self.touched.capacity() == 0 {
            touched.clear();
            self.touched = touched;
        }
    }

    /// Deletes expired keys by sampling, as Redis's active expiry cycle does: per database,
    /// up to 20 keys with an expiry at a time, again while more than a quarter of a sample
    /// had expired, for at most `budget` samples in all. Returns how many it deleted.
    pub fn expire_cycle(&mut self, budget: usize) -> usize {
        self.now = self.clock.now_ms();
        let mut deleted = 0;
        let mut spent = 0;
        for db in 0..self.dbs.len() {
            loop {
                let len = self.dbs[db].volatile.len();
                if len == 0 || spent >= budget {
                    break;
                }
                let mut expired = 0;
                let sample = len.min(20);
                for _ in 0..sample {
                    let len = self.dbs[db].volatile.len();
                    if len == 0 {
                        break;
                    }
                    let i = self.rng.random_range(0..len);
                    let Some(key) = self.dbs[db].volatile.get_index(i).cloned() else { break };
                    if self.expire_if_due(db, &key) {
                        expired += 1;
                    }
                }
                spent += sample;
                deleted += expired;
                if expired * 4 <= sample {
                    break;
                }
            }
        }
        deleted
    }

    /// Evicts keys until used memory is within `maxmemory`. Err when the policy cannot free
    /// enough (noeviction, or no candidates): the caller answers `-OOM`.
    pub fn make_room(&mut self) -> Result<(), ()> {
        let max = self.settings.maxmemory;
        if max == 0 {
            return Ok(());
        }
        while self.used_memory > max {
            if !self.evict_one() {
                return Err(());
            }
        }
        Ok(())
    }

    pub fn over_maxmemory(&self) -> bool {
        self.settings.maxmemory != 0 && self.used_memory > self.settings.maxmemory
    }

    fn evict_one(&mut self) -> bool {
        let policy = self.settings.policy;
        let victim = match policy {
            Policy::NoEviction => None,
            Policy::Fifo => self.fifo_victim(),
            _ => self.sampled_victim(policy),
        };
        match victim {
            Some((db, key)) => {
                self.remove(db, &key);
                self.stats.evicted += 1;
                true
            }
            None => false,
        }
    }

    fn fifo_victim(&mut self) -> Option<(usize, Bytes)> {
        while let Some((db, seq, key)) = self.fifo.pop_front() {
            if self.dbs[db].keys.get(&key).is_some_and(|e| e.seq == seq) {
                return Some((db, key));
            }
        }
        None
    }

    /// Samples `samples` keys and picks the best victim for the policy, like Redis's
    /// approximated LRU/LFU/TTL (without its cross-call pool).
    fn sampled_victim(&mut self, policy: Policy) -> Option<(usize, Bytes)> {
        let candidates: Vec<usize> = (0..self.dbs.len())
            .filter(|&db| {
                if policy.volatile_only() {
                    !self.dbs[db].volatile.is_empty()
                } else {
                    !self.dbs[db].keys.is_empty()
                }
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let samples = if matches!(policy, Policy::AllKeysRandom | Policy::VolatileRandom) {
            1
        } else {
            self.settings.samples.max(1)
        };
        let now = self.now;
        let decay = self.settings.lfu_decay_minutes;
        // Higher score = better victim.
        let score = |e: &Entry| match policy {
            Policy::AllKeysLru | Policy::VolatileLru => e.idle_ms(now),
            Policy::AllKeysLfu | Policy::VolatileLfu => 255 - lfu_decayed(e, now, decay) as u64,
            Policy::VolatileTtl => u64::MAX - e.expire_at,
            _ => 0,
        };
        let mut best: Option<(u64, usize, Bytes)> = None;
        let mut consider = |s: u64, db: usize, key: &Bytes| {
            if best.as_ref().is_none_or(|(b, _, _)| s > *b) {
                best = Some((s, db, key.clone()));
            }
        };
        let population: usize =
            candidates
                .iter()
                .map(|&db| {
                    if policy.volatile_only() { self.dbs[db].volatile.len() } else { self.dbs[db].keys.len() }
                })
                .sum();
        if population <= samples {
            // Fewer candidates than samples: look at all of them, so the choice is exact.
            for &db in &candidates {
                let d = &self.dbs[db];
                for (key, e) in &d.keys {
                    if !policy.volatile_only() || e.expire_at != 0 {
                        consider(score(e), db, key);
                    }
                }
            }
        } else {
            for _ in 0..samples {
                let db = candidates[self.rng.random_range(0..candidates.len())];
                let d = &self.dbs[db];
                let key = if policy.volatile_only() {
                    d.volatile.get_index(self.rng.random_range(0..d.volatile.len()))
                } else {
                    d.keys.get_index(self.rng.random_range(0..d.keys.len())).map(|(k, _)| k)
                };
                if let Some(key) = key
                    && let Some(e) = d.keys.get(key)
                {
                    consider(score(e), db, key);
                }
            }
        }
        best.map(|(_, db, key)| (db, key))
    }
}

/// Counts an access in Redis's logarithmic LFU counter, with decay.
fn count_access(e: &mut Entry, now: u64, log_factor: u32, decay: u64, rng: &mut SmallRng) {
    let counter = lfu_decayed(e, now, decay);
    let counter = if counter == 255 {
        255
    } else {
        let base = counter.saturating_sub(LFU_INIT) as f64;
        let p = 1.0 / (base * log_factor as f64 + 1.0);
        if rng.random::<f64>() < p { counter + 1 } else { counter }
    };
    e.lfu = counter;
    e.lfu_minutes = now / 60_000;
}

fn lfu_decayed(e: &Entry, now: u64, decay: u64) -> u8 {
    if decay == 0 {
        return e.lfu;
    }
    let periods = (now / 60_000).saturating_sub(e.lfu_minutes) / decay;
    e.lfu.saturating_sub(periods.min(255) as u8)
}
