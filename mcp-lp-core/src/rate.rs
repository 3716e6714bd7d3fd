//! Rate limits: how many calls one principal may make to one tool per period.
//!
//! A limit such as `"60/min"` is a bucket of 60 calls per principal and tool, refilled at 60
//! per minute (the generic cell rate algorithm): a principal may call 60 times at once, then
//! once a second. A call over the limit is refused before its handler runs, with the time after
//! which a call will be accepted again.
//!
//! One number per principal and tool is kept, and only while that principal's bucket is not
//! full: a tool without a `rate` costs nothing.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most principals whose bucket one tool tracks at once. Buckets that have refilled are
/// forgotten first; when every tracked bucket is still draining, a call from a principal not yet
/// tracked is refused rather than let through unlimited.
const MAX_TRACKED_PRINCIPALS: usize = 100_000;

/// A rate limit: `calls` per `per`, written `"60/min"`, `"10/s"`, `"1000/h"`, `"500/day"` or
/// `"5/30s"` (any duration after the slash).
///
/// ```
/// use std::time::Duration;
/// use mcp_lp::Rate;
///
/// let rate: Rate = "60/min".parse()?;
/// assert_eq!(rate.calls(), 60);
/// assert_eq!(rate.per(), Duration::from_secs(60));
/// assert_eq!(rate.to_string(), "60/min");
/// assert!("0/min".parse::<Rate>().is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    calls: NonZeroU32,
    per: Duration,
}

impl Rate {
    /// `calls` per `per`; `None` when either is zero.
    pub const fn new(calls: u32, per: Duration) -> Option<Self> {
        match NonZeroU32::new(calls) {
            Some(calls) if !per.is_zero() => Some(Self { calls, per }),
            _ => None,
        }
    }

    /// How many calls the bucket holds.
    pub const fn calls(&self) -> u32 {
        self.calls.get()
    }

    /// The period in which the bucket refills.
    pub const fn per(&self) -> Duration {
        self.per
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    /// The grammar the `#[tool(rate = "...")]` attribute applies at compile time
    /// (`mcp-lp-grammar`).
    fn from_str(text: &str) -> Result<Self, String> {
        let (calls, per) = mcp_lp_grammar::rate(text)?;
        Self::new(calls, per).ok_or_else(|| format!("rate `{text}` must allow at least one call"))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let calls = self.calls;
        match self.per.as_secs() {
            1 if self.per.subsec_nanos() == 0 => write!(f, "{calls}/s"),
            60 if self.per.subsec_nanos() == 0 => write!(f, "{calls}/min"),
            3600 if self.per.subsec_nanos() == 0 => write!(f, "{calls}/h"),
            86_400 if self.per.subsec_nanos() == 0 => write!(f, "{calls}/day"),
            _ => write!(f, "{calls}/{:?}", self.per),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A call refused by a rate limit, and when the next call will be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimited {
    /// The limit.
    pub rate: Rate,
    /// How long until the next call is accepted.
    pub retry_after: Duration,
}

impl RateLimited {
    /// The wait in whole seconds, rounded up and at least one: what `Retry-After` says.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        let rounded = if self.retry_after.subsec_nanos() > 0 {
            secs + 1
        } else {
            secs
        };
        rounded.max(1)
    }

    /// A sentence for the caller and the audit trail.
    pub fn explain(&self, tool: &str, principal: &str) -> String {
        format!(
            "tool `{tool}` is limited to {} calls per principal; principal `{principal}` reached the limit; retry after {} s",
            self.rate,
            self.retry_after_secs()
        )
    }
}

/// The rate limiter of one tool: a bucket per principal.
pub(crate) struct RateLimiter {
    rate: Rate,
    /// Time between two calls at the sustained rate, in nanoseconds.
    interval: u64,
    /// The bucket's whole period, in nanoseconds.
    period: u64,
    epoch: Instant,
    /// Per principal, when its bucket will be full again, in nanoseconds since `epoch`.
    full_at: Mutex<HashMap<Box<str>, u64>>,
}

impl RateLimiter {
    pub(crate) fn new(rate: Rate) -> Self {
        let period = u64::try_from(rate.per.as_nanos()).unwrap_or(u64::MAX);
        Self {
            rate,
            interval: (period / u64::from(rate.calls.get())).max(1),
            period,
            epoch: Instant::now(),
            full_at: Mutex::new(HashMap::new()),
        }
    }

    /// Take one call from `principal`'s bucket now.
    pub(crate) fn check(&self, principal: &str) -> Result<(), RateLimited> {
        self.check_at(principal, Instant::now())
    }

    /// Take one call from `principal`'s bucket at `now`.
    pub(crate) fn check_at(&self, principal: &str, now: Instant) -> Result<(), RateLimited> {
        let now =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let refused = |wait: u64| RateLimited {
            rate: self.rate,
            retry_after: Duration::from_nanos(wait),
        };
        // A poisoned lock fails closed.
        let Ok(mut buckets) = self.full_at.lock() else {
            return Err(refused(self.interval));
        };
        let next = match buckets.get(principal) {
            Some(&full_at) => full_at.max(now).saturating_add(self.interval),
            None => now.saturating_add(self.interval),
        };
        let ahead = next - now;
        if ahead > self.period {
            return Err(refused(ahead - self.period));
        }
        match buckets.get_mut(principal) {
            Some(full_at) => *full_at = next,
            None => {
                if buckets.len() >= MAX_TRACKED_PRINCIPALS {
                    buckets.retain(|_, full_at| *full_at > now);
                    if buckets.len() >= MAX_TRACKED_PRINCIPALS {
                        return Err(refused(self.interval));
                    }
                }
                buckets.insert(principal.into(), next);
            }
        }
        Ok(())
    }
}

/// Proof, left in an HTTP request's extensions, that the request's one `tools/call` of `tool`
/// has already been counted against its rate limit, so the checkpoint does not count it again.
#[cfg(feature = "http")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted {
    pub(crate) tool: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Rate {
        text.parse().unwrap()
    }

    #[test]
    fn accepts_rates_in_every_unit() {
        assert_eq!(rate("60/min").per(), Duration::from_secs(60));
        assert_eq!(rate("10/s").per(), Duration::from_secs(1));
        assert_eq!(rate("1000/h").per(), Duration::from_secs(3600));
        assert_eq!(rate("5/day").per(), Duration::from_secs(86_400));
        assert_eq!(rate("5/30s").per(), Duration::from_secs(30));
        assert_eq!(rate(" 7 / 500ms ").per(), Duration::from_millis(500));
        assert_eq!(rate("5/30s").to_string(), "5/30s");
        assert_eq!(rate("1/h").to_string(), "1/h");
    }

    #[test]
    fn rejects_malformed_rates() {
        for text in [
            "",
            "60",
            "/min",
            "0/min",
            "-1/min",
            "60/fortnight",
            "60/0s",
            "x/s",
        ] {
            assert!(text.parse::<Rate>().is_err(), "{text}");
        }
    }

    #[test]
    fn rejects_call_over_the_bucket_and_says_when_to_retry() {
        let limiter = RateLimiter::new(rate("3/min"));
        let t0 = limiter.epoch;
        for _ in 0..3 {
            assert_eq!(limiter.check_at("alice", t0), Ok(()));
        }
        let refused = limiter.check_at("alice", t0).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(20));
        assert_eq!(refused.retry_after_secs(), 20);
        // Another principal has its own bucket.
        assert_eq!(limiter.check_at("bob", t0), Ok(()));
    }

    #[test]
    fn accepts_call_once_the_bucket_refills() {
        let limiter = RateLimiter::new(rate("3/min"));
        let t0 = limiter.epoch;
        for _ in 0..3 {
            limiter.check_at("alice", t0).unwrap();
        }
        let wait = limiter.check_at("alice", t0).unwrap_err().retry_after;
        assert!(limiter.check_at("alice", t0 + wait / 2).is_err());
        assert_eq!(limiter.check_at("alice", t0 + wait), Ok(()));
        // A refusal takes nothing from the bucket.
        assert!(limiter.check_at("alice", t0 + wait).is_err());
        // After a whole idle period the bucket is full again.
        let later = t0 + Duration::from_secs(600);
        for _ in 0..3 {
            assert_eq!(limiter.check_at("alice", later), Ok(()));
        }
    }

    #[test]
    fn rounds_retry_after_up_to_whole_seconds() {
        let limited = |ms| RateLimited {
            rate: rate("1/s"),
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(limited(1).retry_after_secs(), 1);
        assert_eq!(limited(1000).retry_after_secs(), 1);
        assert_eq!(limited(1001).retry_after_secs(), 2);
        assert!(limited(1500).explain("t", "p").contains("retry after 2 s"));
    }
}
