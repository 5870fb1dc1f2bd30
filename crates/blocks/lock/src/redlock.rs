//! A Redlock client: the classic lock over N independent Redis (or Strata resp) instances.
//!
//! To lock, set `resource = <random value> NX PX ttl` on every instance, each call bounded
//! by a short timeout; the lock is held when a majority answered OK and time is left:
//! validity = ttl − elapsed − (ttl × drift factor + 2 ms). Otherwise every instance is
//! unlocked and the attempt retried after a random delay. Unlock and extend run a Lua
//! compare-and-delete / compare-and-pexpire, so only the holder's value is touched.
//!
//! Written here because the Rust Redlock crates pin old `redis` releases.

use rand::Rng;
use redis::aio::MultiplexedConnection;
use std::time::{Duration, Instant};

const UNLOCK: &str =
    r#"if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end"#;
const EXTEND: &str = r#"if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end"#;

/// A lock held on a majority of instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedlockLease {
    pub resource: String,
    /// The random value that identifies this holder on every instance.
    pub value: String,
    /// How long the lock is safe to use from when `lock` returned.
    pub validity: Duration,
}

pub struct Redlock {
    /// `None` for an instance that could not be reached when connecting.
    instances: Vec<Option<MultiplexedConnection>>,
    pub retry_count: u32,
    pub retry_delay: Duration,
    pub drift_factor: f64,
    /// The bound on each instance's answer, well below the TTL.
    pub instance_timeout: Duration,
}

impl Redlock {
    /// Connects to every instance (`redis://host:port`); unreachable ones count as failed
    /// votes.
    pub async fn connect(urls: &[&str]) -> Redlock {
        let mut instances = Vec::with_capacity(urls.len());
        for url in urls {
            let conn = match redis::Client::open(*url) {
                Ok(client) => {
                    tokio::time::timeout(Duration::from_secs(1), client.get_multiplexed_async_connection())
                        .await
                        .ok()
                        .and_then(Result::ok)
                }
                Err(_) => None,
            };
            instances.push(conn);
        }
        Redlock {
            instances,
            retry_count: 3,
            retry_delay: Duration::from_millis(200),
            drift_factor: 0.01,
            instance_timeout: Duration::from_millis(50),
        }
    }

    /// Votes needed: a majority of all instances.
    pub fn quorum(&self) -> usize {
        self.instances.len() / 2 + 1
    }

    /// Locks `resource` for `ttl`, retrying; `None` when no attempt won a majority in time.
    pub async fn lock(&self, resource: &str, ttl: Duration) -> Option<RedlockLease> {
        let value = format!("{:032x}", rand::rng().random::<u128>());
        for attempt in 0..=self.retry_count {
            if attempt > 0 {
                let jitter = rand::rng().random_range(0..=self.retry_delay.as_millis() as u64);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            let started = Instant::now();
            let ms = ttl.as_millis() as u64;
            let votes = self
                .on_each(|mut c| {
                    let (resource, value) = (resource.to_string(), value.clone());
                    async move {
                        let ok: Option<String> = redis::cmd("SET")
                            .arg(&resource)
                            .arg(&value)
                            .arg("NX")
                            .arg("PX")
                            .arg(ms)
                            .query_async(&mut c)
                            .await
                            .ok()?;
                        ok.filter(|s| s == "OK").map(|_| ())
                    }
                })
                .await;
            if let Some(validity) = self.validity(votes, ttl, started) {
                return Some(RedlockLease { resource: resource.to_string(), value, validity });
            }
            self.release(resource, &value).await;
        }
        None
    }

    /// Unlocks on every instance (only where the lease's value is still set).
    pub async fn unlock(&self, lease: &RedlockLease) {
        self.release(&lease.resource, &lease.value).await;
    }

    /// Extends the lease to `ttl` from now, if a majority still has it.
    pub async fn extend(&self, lease: &RedlockLease, ttl: Duration) -> Option<RedlockLease> {
        let started = Instant::now();
        let ms = ttl.as_millis() as u64;
        let votes = self
            .on_each(|mut c| {
                let (resource, value) = (lease.resource.clone(), lease.value.clone());
                async move {
                    let n: i64 = redis::Script::new(EXTEND)
                        .key(&resource)
                        .arg(&value)
                        .arg(ms)
                        .invoke_async(&mut c)
                        .await
                        .ok()?;
                    (n == 1).then_some(())
                }
            })
            .await;
        let validity = self.validity(votes, ttl, started)?;
        Some(RedlockLease { validity, ..lease.clone() })
    }

    fn validity(&self, votes: usize, ttl: Duration, started: Instant) -> Option<Duration> {
        let drift = Duration::from_secs_f64(ttl.as_secs_f64() * self.drift_factor) + Duration::from_millis(2);
        let validity = ttl.checked_sub(started.elapsed())?.checked_sub(drift)?;
        (votes >= self.quorum() && !validity.is_zero()).then_some(validity)
    }

    async fn release(&self, resource: &str, value: &str) {
        self.on_each(|mut c| {
            let (resource, value) = (resource.to_string(), value.to_string());
            async move {
                let _: i64 =
                    redis::Script::new(UNLOCK).key(&resource).arg(&value).invoke_async(&mut c).await.ok()?;
                Some(())
            }
        })
        .await;
    }

    /// Runs `call` on every reachable instance at once, each bounded by the instance
    /// timeout; returns how many answered `Some`.
    async fn on_each<F, Fut>(&self, call: F) -> usize
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = Option<()>>,
    {
        let calls = self.instances.iter().flatten().map(|c| {
            let fut = call(c.clone());
            async move { tokio::time::timeout(self.instance_timeout, fut).await.ok().flatten().is_some() }
        });
        futures::future::join_all(calls).await.into_iter().filter(|ok| *ok).count()
    }
}
