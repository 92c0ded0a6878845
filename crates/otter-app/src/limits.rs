//! Rate limits for what devices may ask without credentials: token buckets in memory, one per
//! remote address (the server's middleware) and one per device of a product (every protocol's
//! check, in [`crate::devices::decide`]).
//!
//! A bucket holds up to `burst` requests and refills at `rate`; a request finding it empty is
//! refused with the time until the next token. Buckets live in shards behind their own locks, so
//! the check path contends only with requests that hash to the same shard, and a shard keeps at
//! most [`MAX_KEYS`]`/`[`SHARDS`] buckets: a flood of new keys (random device ids) cannot grow
//! memory without bound.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shards of a [`Limiter`]: enough that 2-64 cores rarely wait on each other.
const SHARDS: usize = 64;
/// Buckets a [`Limiter`] keeps at most (~40 bytes each).
pub const MAX_KEYS: usize = 1 << 18;

/// A rate and a burst: `RATE/UNIT[:BURST]` (`20/s`, `30/min:10`, `1000/h`), or `off`. The burst
/// defaults to one second's worth of requests, at least 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    per_second: f64,
    burst: f64,
}

impl RateLimit {
    /// No limit.
    pub const OFF: RateLimit = RateLimit {
        per_second: 0.0,
        burst: 0.0,
    };

    pub fn is_off(&self) -> bool {
        self.per_second <= 0.0
    }
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" || s == "0" {
            return Ok(RateLimit::OFF);
        }
        let bad = || format!("{s:?}: expected RATE/UNIT[:BURST] (e.g. 20/s, 30/min:10) or off");
        let (rate, burst) = match s.split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (s, None),
        };
        let (count, unit) = rate.split_once('/').ok_or_else(bad)?;
        let count: f64 = count.trim().parse().map_err(|_| bad())?;
        let seconds = match unit.trim() {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            "h" | "hour" => 3600.0,
            _ => return Err(bad()),
        };
        if !(count.is_finite() && count > 0.0) {
            return Err(bad());
        }
        let per_second = count / seconds;
        let burst = match burst {
            Some(b) => b
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|&b| b > 0)
                .ok_or_else(bad)?,
            None => per_second.ceil().max(1.0) as u32,
        };
        Ok(RateLimit {
            per_second,
            burst: f64::from(burst),
        })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            f.write_str("off")
        } else {
            write!(f, "{}/s:{}", self.per_second, self.burst)
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key, for one [`RateLimit`].
pub struct Limiter {
    limit: RateLimit,
    /// Keyed with a random seed, so nobody can aim many keys at one shard.
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<u64, Bucket>>]>,
}

impl Limiter {
    pub fn new(limit: RateLimit) -> Self {
        Limiter {
            limit,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// Whether this limiter lets everything through.
    pub fn is_off(&self) -> bool {
        self.limit.is_off()
    }

    /// Takes a token for `key`: `Err(wait)` when its bucket is empty, with the time until the
    /// next token.
    pub fn take(&self, key: impl Hash) -> Result<(), Duration> {
        if self.limit.is_off() {
            return Ok(());
        }
        let hash = self.hasher.hash_one(key);
        let now = Instant::now();
        let RateLimit { per_second, burst } = self.limit;
        let refill = |b: &Bucket| {
            (b.tokens + now.duration_since(b.at).as_secs_f64() * per_second).min(burst)
        };
        let mut shard = self.shards[(hash as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if shard.len() >= MAX_KEYS / SHARDS && !shard.contains_key(&hash) {
            // A full bucket says nothing an absent one does not; if even that leaves no room,
            // forget them all rather than refuse keys never seen (failing open).
            shard.retain(|_, b| refill(b) < burst);
            if shard.len() >= MAX_KEYS / SHARDS {
                shard.clear();
            }
        }
        let bucket = shard.entry(hash).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens = refill(bucket);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        let limit: RateLimit = "30/min:10".parse().unwrap();
        assert_eq!(limit.per_second, 0.5);
        assert_eq!(limit.burst, 10.0);
        assert_eq!("20/s".parse::<RateLimit>().unwrap().burst, 20.0);
        assert_eq!("1/h".parse::<RateLimit>().unwrap().burst, 1.0);
        assert!("off".parse::<RateLimit>().unwrap().is_off());
        for bad in ["", "20", "20/day", "-1/s", "0/s", "5/s:0", "x/s"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_burst_then_refusals_per_key() {
        let limiter = Limiter::new("1/h:3".parse().unwrap());
        for _ in 0..3 {
            limiter.take("a").unwrap();
        }
        let wait = limiter.take("a").unwrap_err();
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        limiter.take("b").unwrap();
    }
}
