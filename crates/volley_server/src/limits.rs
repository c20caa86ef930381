//! Per-connection rate limiting.

use std::time::Instant;

/// A token bucket: `burst` messages at once, `per_second` sustained.
///
/// ```
/// use std::time::{Duration, Instant};
/// use volley_server::limits::TokenBucket;
/// let t0 = Instant::now();
/// let mut bucket = TokenBucket::new(10, 2, t0);
/// assert!(bucket.take(t0) && bucket.take(t0));
/// assert!(!bucket.take(t0)); // burst spent
/// assert!(bucket.take(t0 + Duration::from_millis(100))); // refilled one
/// ```
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    per_second: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        TokenBucket {
            tokens: f64::from(burst),
            per_second: f64::from(per_second),
            burst: f64::from(burst),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sustained_rate_is_enforced() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(100, 10, t0);
        // 1,000 messages over one second at 1 ms spacing: burst + ~100 pass.
        let passed = (0..1000)
            .filter(|i| bucket.take(t0 + Duration::from_millis(*i)))
            .count();
        assert!((105..=112).contains(&passed), "{passed}");
    }
}
