//! Upstream pools: picking a backend (round robin — smooth weighted when weights differ —,
//! least connections, power of two choices, random, consistent hashing with minimal
//! remapping), and each backend's health: active checks (thresholds), passive outlier
//! ejection (consecutive failures), and a cap on requests in flight with a bounded number
//! of requests waiting for a backend under it (circuit breaking).

use crate::spec::{Balance, OutlierSpec, UpstreamSpec};
use rand::Rng;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Points per backend on the hash ring.
const VNODES: usize = 160;

pub struct Backend {
    pub address: String,
    pub weight: u32,
    /// Set by active health checks.
    healthy: AtomicBool,
    checks_passed: AtomicU32,
    checks_failed: AtomicU32,
    /// Requests in flight.
    active: AtomicUsize,
    consecutive_failures: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
}

impl Backend {
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn ejected(&self, now: Instant) -> bool {
        let mut until = self.ejected_until.lock().expect("ejection lock");
        match *until {
            Some(t) if t > now => true,
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }
}

pub struct Pool {
    pub backends: Vec<Backend>,
    balance: Balance,
    next: AtomicUsize,
    /// Smooth weighted round robin state: each backend's current weight.
    current: Mutex<Vec<i64>>,
    ring: Vec<(u64, usize)>,
    outlier: Option<OutlierSpec>,
    limits: Limits,
    /// Requests waiting for a backend under `max_connections`.
    pending: AtomicUsize,
    /// Told when a request in flight ends while others wait.
    released: tokio::sync::Notify,
}

/// The circuit breaker of a pool.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// Most requests in flight to one backend.
    pub max_connections: Option<usize>,
    /// Most requests waiting for a backend under `max_connections`.
    pub max_pending: usize,
}

/// A place among the requests waiting for a backend: held until dropped.
pub struct Queued<'a> {
    pool: &'a Pool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.pool.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A backend taken for one request: counted in flight until dropped.
pub struct Lease<'a> {
    pub index: usize,
    pool: &'a Pool,
}

impl Lease<'_> {
    pub fn address(&self) -> &str {
        &self.pool.backends[self.index].address
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.pool.backends[self.index].active.fetch_sub(1, Ordering::Relaxed);
        if self.pool.pending.load(Ordering::Relaxed) > 0 {
            self.pool.released.notify_one();
        }
    }
}

/// FNV-1a: a stable hash, so every edge process (and every build) puts keys on the same
/// ring points.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // A final mix, so near keys spread over the ring.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

impl Pool {
    pub fn new(
        upstreams: &[UpstreamSpec],
        balance: Balance,
        outlier: Option<OutlierSpec>,
        limits: Limits,
    ) -> Pool {
        let backends: Vec<Backend> = upstreams
            .iter()
            .map(|u| Backend {
                address: u.address().to_string(),
                weight: u.weight().max(1),
                healthy: AtomicBool::new(true),
                checks_passed: AtomicU32::new(0),
                checks_failed: AtomicU32::new(0),
                active: AtomicUsize::new(0),
                consecutive_failures: AtomicU32::new(0),
                ejected_until: Mutex::new(None),
            })
            .collect();
        let mut ring: Vec<(u64, usize)> = backends
            .iter()
            .enumerate()
            .flat_map(|(i, b)| (0..VNODES).map(move |v| (hash(format!("{}#{v}", b.address).as_bytes()), i)))
            .collect();
        ring.sort_unstable();
        Pool {
            current: Mutex::new(vec![0; backends.len()]),
            backends,
            balance,
            next: AtomicUsize::new(0),
            ring,
            outlier,
            limits,
            pending: AtomicUsize::new(0),
            released: tokio::sync::Notify::new(),
        }
    }

    fn available(&self, i: usize, now: Instant) -> bool {
        let b = &self.backends[i];
        b.healthy() && !b.ejected(now) && self.limits.max_connections.is_none_or(|max| b.active() < max)
    }

    /// Whether [`Pool::pick`] found nothing only because every usable backend not in
    /// `tried` is at `max_connections`.
    pub fn full(&self, tried: &[usize]) -> bool {
        let now = Instant::now();
        self.limits.max_connections.is_some()
            && self
                .backends
                .iter()
                .enumerate()
                .any(|(i, b)| !tried.contains(&i) && b.healthy() && !b.ejected(now))
    }

    /// Joins the requests waiting for a backend under `max_connections`; `None` when
    /// `max_pending` already wait.
    pub fn enqueue(&self) -> Option<Queued<'_>> {
        let max = self.limits.max_pending;
        let joined =
            self.pending.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1));
        // Lazily: a `Queued` made and dropped for a refused request would free a place.
        joined.is_ok().then(|| Queued { pool: self })
    }

    /// Resolves once a request in flight ends after this call (or, at most once, ended
    /// since the last such wake-up went unclaimed); enable it before trying
    /// [`Pool::pick`] again, so that a release in between is not missed.
    pub fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }

    /// Takes a backend for a request, skipping `tried` ones; `None` when none is available.
    pub fn pick(&self, hash_key: Option<&str>, tried: &[usize]) -> Option<Lease<'_>> {
        let now = Instant::now();
        let ok: Vec<usize> =
            (0..self.backends.len()).filter(|i| !tried.contains(i) && self.available(*i, now)).collect();
        if ok.is_empty() {
            return None;
        }
        let index = match self.balance {
            Balance::RoundRobin if self.backends.iter().all(|b| b.weight == self.backends[0].weight) => {
                ok[self.next.fetch_add(1, Ordering::Relaxed) % ok.len()]
            }
            Balance::RoundRobin => {
                // Smooth weighted round robin: everyone gains its weight; the richest is
                // picked and pays the total.
                let mut current = self.current.lock().expect("wrr lock");
                let total: i64 = ok.iter().map(|i| i64::from(self.backends[*i].weight)).sum();
                for i in &ok {
                    current[*i] += i64::from(self.backends[*i].weight);
                }
                let best =
                    *ok.iter().max_by_key(|i| (current[**i], std::cmp::Reverse(**i))).expect("non-empty");
                current[best] -= total;
                best
            }
            Balance::LeastConn => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                let rotated = (0..ok.len()).map(|k| ok[(start + k) % ok.len()]);
                rotated.min_by_key(|i| self.backends[*i].active()).expect("non-empty")
            }
            Balance::P2c => {
                let mut rng = rand::rng();
                let a = ok[rng.random_range(0..ok.len())];
                let b = ok[rng.random_range(0..ok.len())];
                if self.backends[b].active() < self.backends[a].active() { b } else { a }
            }
            Balance::Random => ok[rand::rng().random_range(0..ok.len())],
            Balance::ConsistentHash => {
                let h = hash(hash_key.unwrap_or_default().as_bytes());
                let start = self.ring.partition_point(|(p, _)| *p < h);
                (0..self.ring.len())
                    .map(|k| self.ring[(start + k) % self.ring.len()].1)
                    .find(|i| ok.contains(i))
                    .expect("an available backend is on the ring")
            }
        };
        self.backends[index].active.fetch_add(1, Ordering::Relaxed);
        Some(Lease { index, pool: self })
    }

    /// Records a request's outcome for passive outlier ejection (`failed`: a connect error,
    /// a timeout or a 5xx).
    pub fn report(&self, index: usize, failed: bool) {
        let b = &self.backends[index];
        if !failed {
            b.consecutive_failures.store(0, Ordering::Relaxed);
            return;
        }
        let n = b.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(o) = &self.outlier
            && n >= o.consecutive_failures
        {
            *b.ejected_until.lock().expect("ejection lock") =
                Some(Instant::now() + Duration::from_millis(o.ejection_ms));
            b.consecutive_failures.store(0, Ordering::Relaxed);
            metrics::counter!("strata_edge_ejections_total", "upstream" => b.address.clone()).increment(1);
            tracing::warn!(upstream = %b.address, failures = n, "backend ejected");
        }
    }

    /// Records an active health check; `thresholds` = (unhealthy, healthy) in a row.
    pub fn record_check(&self, index: usize, ok: bool, thresholds: (u32, u32)) {
        let b = &self.backends[index];
        if ok {
            b.checks_failed.store(0, Ordering::Relaxed);
            let n = b.checks_passed.fetch_add(1, Ordering::Relaxed) + 1;
            if !b.healthy() && n >= thresholds.1 {
                b.healthy.store(true, Ordering::Relaxed);
                tracing::info!(upstream = %b.address, "backend healthy again");
            }
        } else {
            b.checks_passed.store(0, Ordering::Relaxed);
            let n = b.checks_failed.fetch_add(1, Ordering::Relaxed) + 1;
            if b.healthy() && n >= thresholds.0 {
                b.healthy.store(false, Ordering::Relaxed);
                tracing::warn!(upstream = %b.address, "backend failed its health checks");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn pool(balance: Balance, weights: &[u32]) -> Pool {
        let ups: Vec<UpstreamSpec> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| UpstreamSpec::Weighted { address: format!("10.0.0.{i}:80"), weight: *w })
            .collect();
        let outlier = Some(OutlierSpec { consecutive_failures: 3, ejection_ms: 60_000 });
        Pool::new(&ups, balance, outlier, Limits::default())
    }

    fn counts(p: &Pool, n: usize) -> Vec<usize> {
        let mut c = vec![0; p.backends.len()];
        for _ in 0..n {
            c[p.pick(None, &[]).unwrap().index] += 1;
        }
        c
    }

    #[test]
    fn round_robin_and_weights() {
        assert_eq!(counts(&pool(Balance::RoundRobin, &[1, 1, 1]), 300), [100, 100, 100]);
        assert_eq!(counts(&pool(Balance::RoundRobin, &[5, 1, 1]), 700), [500, 100, 100]);
        // Smooth: the heavy backend does not get five in a row.
        let p = pool(Balance::RoundRobin, &[5, 1, 1]);
        let seq: Vec<usize> = (0..7).map(|_| p.pick(None, &[]).unwrap().index).collect();
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn least_conn_and_p2c_prefer_idle_backends() {
        let p = pool(Balance::LeastConn, &[1, 1, 1]);
        let busy = p.pick(None, &[]).unwrap();
        let second = p.pick(None, &[]).unwrap();
        assert_ne!(busy.index, second.index);
        let third = p.pick(None, &[]).unwrap();
        assert_ne!(third.index, busy.index);
        drop(second);
        let p = pool(Balance::P2c, &[1, 1]);
        let held: Vec<Lease> = (0..10).map(|_| p.pick(None, &[]).unwrap()).collect();
        let on_first = held.iter().filter(|l| l.index == 0).count();
        assert!((3..=7).contains(&on_first), "p2c balances in-flight requests: {on_first}/10");
    }

    #[test]
    fn consistent_hashing_moves_few_keys_when_a_backend_goes() {
        let p = pool(Balance::ConsistentHash, &[1, 1, 1, 1]);
        let keys: Vec<String> = (0..2000).map(|i| format!("user-{i}")).collect();
        let before: HashMap<&String, usize> =
            keys.iter().map(|k| (k, p.pick(Some(k), &[]).unwrap().index)).collect();
        let spread = before.values().filter(|i| **i == 0).count();
        assert!((300..700).contains(&spread), "{spread} of 2000 keys on one of four");
        // Backend 3 fails its checks: only its keys move.
        p.record_check(3, false, (1, 1));
        let moved = keys.iter().filter(|k| p.pick(Some(k), &[]).unwrap().index != before[k]).count();
        let on_three = before.values().filter(|i| **i == 3).count();
        assert_eq!(moved, on_three);
    }

    #[test]
    fn failures_eject_and_checks_readmit() {
        let p = pool(Balance::RoundRobin, &[1, 1]);
        for _ in 0..3 {
            p.report(0, true);
        }
        assert!((0..10).all(|_| p.pick(None, &[]).unwrap().index == 1), "ejected");
        p.record_check(1, false, (2, 2));
        assert!(p.pick(None, &[]).is_some());
        p.record_check(1, false, (2, 2));
        assert!(p.pick(None, &[]).is_none(), "0 ejected, 1 down");
        p.record_check(1, true, (2, 2));
        assert!(p.pick(None, &[]).is_none());
        p.record_check(1, true, (2, 2));
        assert_eq!(p.pick(None, &[]).unwrap().index, 1);
    }

    #[test]
    fn requests_past_max_connections_queue_up_to_max_pending() {
        let ups = [UpstreamSpec::Address("10.0.0.1:80".into())];
        let p =
            Pool::new(&ups, Balance::RoundRobin, None, Limits { max_connections: Some(1), max_pending: 2 });
        let lease = p.pick(None, &[]).unwrap();
        assert!(p.pick(None, &[]).is_none() && p.full(&[]));
        assert!(!p.full(&[0]), "a tried backend does not count as one to wait for");
        let (a, b) = (p.enqueue().unwrap(), p.enqueue().unwrap());
        assert!(p.enqueue().is_none());
        assert!(p.enqueue().is_none(), "a refused request does not free a place");
        drop(a);
        let c = p.enqueue().unwrap();
        // A release wakes a waiter that registered before trying again.
        let mut released = std::pin::pin!(p.released());
        released.as_mut().enable();
        drop(lease);
        let waker = std::task::Waker::noop();
        let woken = released.as_mut().poll(&mut std::task::Context::from_waker(waker)).is_ready();
        assert!(woken);
        assert!(p.pick(None, &[]).is_some());
        drop((b, c));
        assert!(p.enqueue().is_some());
    }
}
