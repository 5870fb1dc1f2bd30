//! Rate limits shared by several edge processes: the same GCRA as `strata_edge::ratelimit`,
//! kept in a Redis-protocol store (a Strata resp front, or Redis) by one Lua script per
//! check, so every process counts against one bucket per key. When the store cannot be
//! reached the process falls back to its own limiter (and counts
//! `strata_proxy_shared_limit_errors_total`): a store outage does not stop traffic.

use redis::aio::MultiplexedConnection;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use strata_edge::ratelimit::{Limiter, Verdict};
use tokio::sync::Mutex;

/// KEYS[1] the bucket; ARGV: now, interval, tolerance (µs). The stored value is the
/// theoretical arrival time; it expires once the bucket is full again.
const GCRA: &str = r#"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat < now then tat = now end
local nxt = tat + interval
if nxt - now > tolerance then
  return {0, nxt - now - tolerance, tat - now}
end
redis.call('SET', KEYS[1], nxt, 'PX', math.ceil((nxt - now) / 1000) + 1000)
return {1, math.floor((tolerance - (nxt - now)) / interval), nxt - now}
"#;

pub struct SharedLimits {
    url: String,
    conn: Mutex<Option<MultiplexedConnection>>,
    script: redis::Script,
}

impl SharedLimits {
    pub fn new(url: &str) -> SharedLimits {
        SharedLimits { url: url.to_string(), conn: Mutex::new(None), script: redis::Script::new(GCRA) }
    }

    async fn connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let client = redis::Client::open(self.url.as_str())?;
        let c = tokio::time::timeout(Duration::from_secs(1), client.get_multiplexed_async_connection())
            .await
            .map_err(|_| redis::RedisError::from((redis::ErrorKind::IoError, "connect timed out")))??;
        *conn = Some(c.clone());
        Ok(c)
    }

    /// Counts one request for `key` of `route` in the shared bucket; the local limiter
    /// answers when the store does not.
    pub async fn check(&self, route: &str, key: &str, limiter: &Limiter) -> Verdict {
        match self.try_check(route, key, limiter).await {
            Ok(verdict) => verdict,
            Err(err) => {
                metrics::counter!("strata_proxy_shared_limit_errors_total").increment(1);
                tracing::warn!(%err, "shared rate limit store failed; using this process's limiter");
                *self.conn.lock().await = None;
                limiter.check(key, std::time::Instant::now())
            }
        }
    }

    async fn try_check(&self, route: &str, key: &str, limiter: &Limiter) -> redis::RedisResult<Verdict> {
        let mut conn = self.connection().await?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let answer: (i64, i64, i64) = tokio::time::timeout(
            Duration::from_secs(1),
            self.script
                .key(format!("strata:ratelimit:{route}:{key}"))
                .arg(now)
                .arg(limiter.interval().as_micros() as u64)
                .arg(limiter.tolerance().as_micros() as u64)
                .invoke_async(&mut conn),
        )
        .await
        .map_err(|_| {
            redis::RedisError::from((redis::ErrorKind::IoError, "shared limit check timed out"))
        })??;
        let micros = |n: i64| Duration::from_micros(n.max(0) as u64);
        Ok(match answer {
            (1, remaining, reset) => {
                Verdict::Allowed { remaining: remaining.max(0) as u64, reset: micros(reset) }
            }
            (_, retry_after, reset) => {
                Verdict::Limited { retry_after: micros(retry_after), reset: micros(reset) }
            }
        })
    }
}
