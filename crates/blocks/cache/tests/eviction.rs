//! One test per `maxmemory-policy`, showing which keys go when the limit is reached.
//! A manual clock makes "least recently used" deterministic; with fewer keys than
//! `maxmemory-samples` the sampled choice is exact.

use bytes::Bytes;
use std::sync::Arc;
use strata_cache::{Cache, CacheOptions, Policy, Reply, Session, Settings};
use strata_core::ManualClock;

/// Each key below holds `k<n>` (2-3 bytes) + a 100-byte value + per-key overhead.
const VALUE: &str =
    "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv";

struct Fixture {
    session: Session,
    clock: ManualClock,
    cache: Cache,
}

async fn run(s: &mut Session, args: &[&str]) -> Reply {
    s.execute(args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()).await
}

/// A cache holding `k0..k7` (oldest first), each written one second apart, with maxmemory
/// just above what they use and the given policy.
async fn fixture(policy: Policy, ttl_keys: &[usize]) -> Fixture {
    let clock = ManualClock::new(1_700_000_000_000);
    let settings = Settings { policy, samples: 16, ..Settings::default() };
    let cache = Cache::new(CacheOptions { settings, ..CacheOptions::default() }, Arc::new(clock.clone()));
    let mut session = cache.session("test");
    for i in 0..8 {
        let key = format!("k{i}");
        assert_eq!(run(&mut session, &["SET", &key, VALUE]).await, Reply::OK);
        if ttl_keys.contains(&i) {
            // Later keys get shorter TTLs, so volatile-ttl has one clear choice.
            let ttl = (10_000 - i * 100).to_string();
            assert_eq!(run(&mut session, &["EXPIRE", &key, &ttl]).await, Reply::Int(1));
        }
        clock.advance_ms(1000);
    }
    let used = cache.used_memory();
    let limit = (used + 10).to_string();
    assert_eq!(run(&mut session, &["CONFIG", "SET", "maxmemory", &limit]).await, Reply::OK);
    Fixture { session, clock, cache }
}

/// Writes two more keys: the first puts memory over the limit, the second makes room.
async fn overflow(f: &mut Fixture) -> Vec<Reply> {
    let a = run(&mut f.session, &["SET", "new1", VALUE]).await;
    let b = run(&mut f.session, &["SET", "new2", VALUE]).await;
    vec![a, b]
}

async fn remaining(f: &mut Fixture) -> Vec<String> {
    let mut keys = Vec::new();
    for i in 0..8 {
        if run(&mut f.session, &["EXISTS", &format!("k{i}")]).await == Reply::Int(1) {
            keys.push(format!("k{i}"));
        }
    }
    keys
}

fn without(gone: &[usize]) -> Vec<String> {
    (0..8).filter(|i| !gone.contains(i)).map(|i| format!("k{i}")).collect()
}

#[tokio::test]
async fn noeviction_refuses_writes_and_keeps_everything() {
    let mut f = fixture(Policy::NoEviction, &[]).await;
    let replies = overflow(&mut f).await;
    assert_eq!(replies[0], Reply::OK);
    assert!(matches!(&replies[1], Reply::Error(e) if e.starts_with("OOM")), "{replies:?}");
    assert_eq!(remaining(&mut f).await, without(&[]));
    // Reads and deletes still work.
    assert_eq!(run(&mut f.session, &["GET", "k0"]).await, Reply::bulk(VALUE));
    assert_eq!(run(&mut f.session, &["DEL", "new1"]).await, Reply::Int(1));
    assert_eq!(run(&mut f.session, &["SET", "new3", "x"]).await, Reply::OK);
    assert_eq!(f.cache.stats().evicted, 0);
}

#[tokio::test]
async fn allkeys_lru_evicts_the_least_recently_used() {
    let mut f = fixture(Policy::AllKeysLru, &[]).await;
    // Touch every key but k3, so k3 is the least recently used (k0 was written first).
    for i in [0, 1, 2, 4, 5, 6, 7] {
        run(&mut f.session, &["GET", &format!("k{i}")]).await;
        f.clock.advance_ms(10);
    }
    assert_eq!(overflow(&mut f).await, vec![Reply::OK, Reply::OK]);
    assert_eq!(remaining(&mut f).await, without(&[3]));
    assert_eq!(f.cache.stats().evicted, 1);
}

#[tokio::test]
async fn allkeys_lfu_evicts_the_least_frequently_used() {
    let mut f = fixture(Policy::AllKeysLfu, &[]).await;
    for _ in 0..50 {
        for i in [0, 1, 2, 3, 4, 6, 7] {
            run(&mut f.session, &["GET", &format!("k{i}")]).await;
        }
    }
    assert_eq!(overflow(&mut f).await, vec![Reply::OK, Reply::OK]);
    assert_eq!(remaining(&mut f).await, without(&[5]));
    let freq = run(&mut f.session, &["OBJECT", "FREQ", "k0"]).await;
    assert!(matches!(freq, Reply::Int(n) if n > 5), "{freq:?}");
}

#[tokio::test]
async fn allkeys_random_evicts_some_key() {
    let mut f = fixture(Policy::AllKeysRandom, &[]).await;
    assert_eq!(overflow(&mut f).await, vec![Reply::OK, Reply::OK]);
    let dbsize = run(&mut f.session, &["DBSIZE"]).await;
    assert_eq!(dbsize, Reply::Int(9), "one of ten keys went");
    assert_eq!(f.cache.stats().evicted, 1);
}

#[tokio::test]
async fn volatile_lru_evicts_only_keys_with_a_ttl() {
    let mut f = fixture(Policy::VolatileLru, &[4, 5, 6]).await;
    // k4 is the least recently used of the volatile keys; k0 is older but persistent.
    run(&mut f.session, &["GET", "k5"]).await;
    run(&mut f.session, &["GET", "k6"]).await;
    assert_eq!(overflow(&mut f).await, vec![Reply::OK, Reply::OK]);
    assert_eq!(remaining(&mut f).await, without(&[4]));
}

#[tokio::test]
async fn volatile_lfu_evicts_the_least_used_key_with_a_ttl() {
    let mut f = fixture(Policy::VolatileLfu, &[1, 2, 3]).await;
    for _ in 0..50 {
        for k in ["k1", "k3"] {
            run(&mut f.session, &["GET", k]).await;
        }
    }
    assert_eq!(overflow(&mut f).await, vec![Reply::OK, Reply::OK]);
    assert_eq!(remaining(&mut f).await, without(&[2]));
}

#[tokio::test]
async fn volatile_ttl_evicts_the_nearest_expiry() {
    let mut f = fixture(Policy::VolatileTtl, &[2, 5, 6]).await;
    // k6 was given the shortest TTL.
    assert_eq!(overflow(&mut f).await, vec![Reply::OK, Reply::OK]);
    assert_eq!(remaining(&mut f).await, without(&[6]));
}

#[tokio::test]
async fn volatile_random_evicts_a_key_with_a_ttl_and_otherwise_refuses() {
    let mut f = fixture(Policy::VolatileRandom, &[7]).await;
    assert_eq!(overflow(&mut f).await, vec![Reply::OK, Reply::OK]);
    assert_eq!(remaining(&mut f).await, without(&[7]));
    // No volatile key left: writes get OOM, as in Redis.
    let r = run(&mut f.session, &["SET", "new3", VALUE]).await;
    assert!(matches!(&r, Reply::Error(e) if e.starts_with("OOM")), "{r:?}");
}

#[tokio::test]
async fn fifo_evicts_the_oldest_insert_even_if_recently_used() {
    let mut f = fixture(Policy::Fifo, &[]).await;
    run(&mut f.session, &["GET", "k0"]).await;
    // Overwriting does not make a key younger: k0 is still the oldest insert.
    run(&mut f.session, &["SET", "k0", VALUE]).await;
    assert_eq!(overflow(&mut f).await, vec![Reply::OK, Reply::OK]);
    assert_eq!(remaining(&mut f).await, without(&[0]));
    run(&mut f.session, &["SET", "new3", VALUE]).await;
    assert_eq!(remaining(&mut f).await, without(&[0, 1]));
}

#[tokio::test]
async fn memory_accounting_follows_writes_and_deletes() {
    let clock = ManualClock::new(1_700_000_000_000);
    let cache = Cache::new(CacheOptions::default(), Arc::new(clock));
    let mut s = cache.session("test");
    assert_eq!(cache.used_memory(), 0);
    run(&mut s, &["SET", "a", VALUE]).await;
    let one = cache.used_memory();
    assert!(one > 100);
    for i in 0..100 {
        run(&mut s, &["RPUSH", "list", &format!("item-{i}")]).await;
        run(&mut s, &["HSET", "hash", &format!("f{i}"), VALUE]).await;
        run(&mut s, &["ZADD", "z", &i.to_string(), &format!("m{i}")]).await;
        run(&mut s, &["SADD", "set", &format!("m{i}")]).await;
    }
    assert!(cache.used_memory() > one + 100 * 100, "{}", cache.used_memory());
    run(&mut s, &["DEL", "list", "hash", "z", "set"]).await;
    assert_eq!(cache.used_memory(), one);
    run(&mut s, &["FLUSHALL"]).await;
    assert_eq!(cache.used_memory(), 0);
}

/// A command can move a key it already wrote: here MSET inserts `a-longer-key` last, then
/// finds `b` expired and deletes it, which moves `a-longer-key` into `b`'s place, and
/// inserts `b` where `a-longer-key` was. Each key's size must still land on its own entry.
#[tokio::test]
async fn memory_accounting_follows_keys_moved_within_a_command() {
    let clock = ManualClock::new(1_700_000_000_000);
    let cache = Cache::new(CacheOptions::default(), Arc::new(clock.clone()));
    let mut s = cache.session("test");
    run(&mut s, &["SET", "b", "x", "PX", "10"]).await;
    clock.advance_ms(20);
    run(&mut s, &["MSET", "a-longer-key", VALUE, "b", "y"]).await;
    let moved = cache.used_memory();

    let fresh = Cache::new(CacheOptions::default(), Arc::new(ManualClock::new(1_700_000_000_000)));
    let mut f = fresh.session("test");
    run(&mut f, &["SET", "a-longer-key", VALUE]).await;
    run(&mut f, &["SET", "b", "y"]).await;
    assert_eq!(moved, fresh.used_memory());
    run(&mut s, &["DEL", "b"]).await;
    run(&mut f, &["DEL", "b"]).await;
    assert_eq!(cache.used_memory(), fresh.used_memory());
}
