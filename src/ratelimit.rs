//! Token buckets: a rate with a burst, per key. Used for the unauthenticated customer
//! registration (per client IP) and for send endpoints (per app). And `Throttle`, which lets
//! tables that grow with use sweep themselves now and then instead of on every call.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Tables swept by their users stay under roughly this many entries.
pub const SWEEP_ABOVE: usize = 100_000;

/// Yes at most once per interval, to one caller: for periodic work done on a hot path.
pub struct Throttle {
    epoch: Instant,
    every_ms: u64,
    /// Milliseconds after `epoch` when the next turn is due.
    next_ms: AtomicU64,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            epoch: Instant::now(),
            every_ms: every.as_millis().max(1) as u64,
            next_ms: AtomicU64::new(0),
        }
    }

    /// True when a turn is due; the caller that gets it owns this interval.
    pub fn due(&self) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + self.every_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

use dashmap::DashMap;

pub struct RateLimiter<K: Eq + Hash> {
    /// Tokens added per second; 0 = unlimited.
    rate: f64,
    /// Bucket size.
    burst: f64,
    /// (tokens left, last refill) per key.
    buckets: DashMap<K, (f64, Instant)>,
    sweep: Throttle,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// `per_minute` requests a minute, bursting up to that many; 0 = unlimited.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(f64::from(per_minute) / 60.0, f64::from(per_minute))
    }

    /// `per_second`, bursting up to one second's worth; 0 = unlimited.
    pub fn per_second(per_second: u32) -> Self {
        Self::new(f64::from(per_second), f64::from(per_second))
    }

    fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate,
            burst: burst.max(1.0),
            buckets: DashMap::new(),
            sweep: Throttle::new(Duration::from_secs(1)),
        }
    }

    /// Takes one token for `key`; `Err(seconds)` to wait when there is none.
    pub fn check(&self, key: &K) -> Result<(), u64> {
        if self.rate == 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        if self.sweep.due() && self.buckets.len() > SWEEP_ABOVE {
            // Forget keys whose buckets are full again: they carry no state worth keeping.
            let (rate, burst) = (self.rate, self.burst);
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let mut entry = self.buckets.entry(key.clone()).or_insert((self.burst, now));
        let (tokens, at) = &mut *entry;
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_gives_one_turn_per_interval() {
        let t = Throttle::new(Duration::from_millis(50));
        assert!(t.due(), "the first turn is due at once");
        assert!(!t.due() && !t.due(), "then not again within the interval");
        std::thread::sleep(Duration::from_millis(60));
        assert!(t.due());
        assert!(!t.due());
    }

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait() {
        let rl = RateLimiter::per_minute(3);
        assert!(rl.check(&"a").is_ok());
        assert!(rl.check(&"a").is_ok());
        assert!(rl.check(&"a").is_ok());
        assert_eq!(rl.check(&"a"), Err(20));
        assert!(rl.check(&"b").is_ok(), "keys are independent");
        assert!(RateLimiter::per_minute(0).check(&"x").is_ok());
        let fast = RateLimiter::per_second(2);
        assert!(fast.check(&1).is_ok() && fast.check(&1).is_ok());
        assert_eq!(fast.check(&1), Err(1));
    }
}
