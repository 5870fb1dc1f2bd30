//! Rate limits by GCRA (the generic cell rate algorithm — a token bucket kept as one
//! timestamp per key): `limit` requests per period, `burst` of them at once.

use crate::EdgeError;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys a limiter tracks; past it, keys whose buckets are full again are dropped.
const MAX_KEYS: usize = 100_000;

pub struct Limiter {
    /// Requests per period, for the `RateLimit-Limit` header.
    pub limit: u64,
    /// Time one request "costs".
    interval: Duration,
    /// How far ahead of now the theoretical arrival time may run.
    tolerance: Duration,
    period: Duration,
    tat: Mutex<HashMap<String, Instant>>,
}

/// A limiter's answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed { remaining: u64, reset: Duration },
    Limited { retry_after: Duration, reset: Duration },
}

/// Parses `100/s`, `600/min`, `10000/hour`, `5/10s`, `1/day` into (count, period).
pub fn parse_limit(text: &str) -> Result<(u64, Duration), EdgeError> {
    let bad = || EdgeError::Invalid(format!("rate limit {text:?} is not like \"100/s\" or \"10000/hour\""));
    let (count, per) = text.split_once('/').ok_or_else(bad)?;
    let count: u64 = count.trim().parse().map_err(|_| bad())?;
    let per = per.trim();
    let digits = per.find(|c: char| !c.is_ascii_digit()).unwrap_or(per.len());
    let n: u64 = if digits == 0 { 1 } else { per[..digits].parse().map_err(|_| bad())? };
    let unit = match &per[digits..] {
        "ms" => Duration::from_millis(1),
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86_400),
        _ => return Err(bad()),
    };
    if count == 0 || n == 0 {
        return Err(bad());
    }
    Ok((count, unit * n as u32))
}

impl Limiter {
    pub fn new(limit: &str, burst: Option<u64>) -> Result<Limiter, EdgeError> {
        let (count, period) = parse_limit(limit)?;
        let burst = burst.unwrap_or(count).max(1);
        let interval = period / count as u32;
        Ok(Limiter {
            limit: count,
            interval,
            tolerance: interval * burst as u32,
            period,
            tat: Mutex::default(),
        })
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    /// What one request costs, for a limiter kept elsewhere (a shared store).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How far ahead of now the bucket may run (the burst), for a shared store.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// Counts one request for `key` at `now`.
    pub fn check(&self, key: &str, now: Instant) -> Verdict {
        let mut tat = self.tat.lock().expect("limiter lock");
        if tat.len() >= MAX_KEYS && !tat.contains_key(key) {
            tat.retain(|_, t| *t > now);
        }
        let current = tat.get(key).copied().unwrap_or(now).max(now);
        let next = current + self.interval;
        let ahead = next - now;
        if ahead > self.tolerance {
            let retry_after = ahead - self.tolerance;
            return Verdict::Limited { retry_after, reset: current - now };
        }
        tat.insert(key.to_string(), next);
        let remaining = ((self.tolerance - ahead).as_nanos() / self.interval.as_nanos().max(1)) as u64;
        Verdict::Allowed { remaining, reset: ahead }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_past_the_burst_is_limited_until_a_slot_frees() {
        let l = Limiter::new("5/s", Some(5)).unwrap();
        let t = Instant::now();
        for i in 0..5 {
            assert!(matches!(l.check("k", t), Verdict::Allowed { remaining, .. } if remaining == 4 - i));
        }
        let Verdict::Limited { retry_after, .. } = l.check("k", t) else { panic!("limited") };
        assert_eq!(retry_after, Duration::from_millis(200));
        assert!(matches!(l.check("other", t), Verdict::Allowed { .. }), "keys are separate");
        assert!(matches!(l.check("k", t + Duration::from_millis(200)), Verdict::Allowed { .. }));
    }

    #[test]
    fn limits_parse() {
        assert_eq!(parse_limit("10000/hour").unwrap(), (10000, Duration::from_secs(3600)));
        assert_eq!(parse_limit("5/10s").unwrap(), (5, Duration::from_secs(10)));
        assert!(
            parse_limit("fast").is_err() && parse_limit("0/s").is_err() && parse_limit("3/week").is_err()
        );
    }
}
