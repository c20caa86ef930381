//! Rate and concurrency limits, as pure state: the clock is passed in.
//!
//! [`TokenBucket`] limits one connection's messages. [`IpLimits`] keeps one
//! entry per client address (an IPv6 client counts by its /64, the block one
//! subscriber usually gets) with its open connections and three buckets:
//! signaling joins, `POST /api/rooms`, and HTTP requests. Memory is bounded:
//! an entry with no open connection whose buckets are full again holds
//! nothing worth keeping and is swept, and the table never holds more than
//! `max_tracked_ips` entries.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::refusal::Refusal;

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
        Self::with_rate(f64::from(per_second), burst, now)
    }

    /// A full bucket of `per_minute` tokens that refills over a minute.
    pub fn per_minute(per_minute: u32, now: Instant) -> Self {
        Self::with_rate(f64::from(per_minute) / 60.0, per_minute, now)
    }

    fn with_rate(per_second: f64, burst: u32, now: Instant) -> Self {
        TokenBucket {
            tokens: f64::from(burst),
            per_second,
            burst: f64::from(burst),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes `n` tokens if there are that many (a byte budget, say).
    pub fn take_n(&mut self, now: Instant, n: u32) -> bool {
        self.refill(now);
        if self.tokens >= f64::from(n) {
            self.tokens -= f64::from(n);
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full at `now`: forgetting it loses nothing.
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.per_second >= self.burst
    }
}

/// Per-address limits. `0` switches a limit off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpLimitsConfig {
    /// Open connections per address, HTTP and WebSocket together.
    pub max_connections: u32,
    /// Signaling connections (WebSocket upgrades) per address per minute.
    pub joins_per_minute: u32,
    /// `POST /api/rooms` per address per minute.
    pub room_creations_per_minute: u32,
    /// Sustained HTTP requests per second per address (upgrades excluded:
    /// they count as joins).
    pub http_per_second: u32,
    /// HTTP request burst per address (a page load fetches several files).
    pub http_burst: u32,
    /// Addresses tracked at most; beyond it, idle entries are forgotten
    /// first, and new addresses are refused only when every entry holds an
    /// open connection.
    pub max_tracked_ips: usize,
}

impl Default for IpLimitsConfig {
    fn default() -> Self {
        IpLimitsConfig {
            max_connections: 64,
            joins_per_minute: 60,
            room_creations_per_minute: 10,
            http_per_second: 20,
            http_burst: 100,
            max_tracked_ips: 65_536,
        }
    }
}

impl IpLimitsConfig {
    /// Every per-address limit off (benchmarks that connect thousands of
    /// peers from a few loopback addresses).
    pub fn unlimited() -> Self {
        IpLimitsConfig {
            max_connections: 0,
            joins_per_minute: 0,
            room_creations_per_minute: 0,
            http_per_second: 0,
            http_burst: 0,
            ..IpLimitsConfig::default()
        }
    }
}

/// The key a client is limited under: its IPv4 address, or the /64 of its
/// IPv6 address (IPv4-mapped IPv6 addresses count as IPv4).
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug)]
struct Entry {
    connections: u32,
    joins: TokenBucket,
    creations: TokenBucket,
    http: TokenBucket,
}

impl Entry {
    fn new(config: &IpLimitsConfig, now: Instant) -> Self {
        Entry {
            connections: 0,
            joins: TokenBucket::per_minute(config.joins_per_minute, now),
            creations: TokenBucket::per_minute(config.room_creations_per_minute, now),
            http: TokenBucket::new(config.http_per_second, config.http_burst, now),
        }
    }

    /// Nothing to remember: no connection open, every bucket full again.
    fn is_idle(&self, now: Instant) -> bool {
        self.connections == 0
            && self.joins.is_full(now)
            && self.creations.is_full(now)
            && self.http.is_full(now)
    }
}

/// What is being asked of an address's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpAction {
    /// Open a connection (give it back with [`IpLimits::close`]).
    Connect,
    /// Open a signaling connection.
    Join,
    /// Create a private room.
    CreateRoom,
    /// Any other HTTP request.
    Http,
}

/// The per-address table. Pure: every call takes the time.
///
/// ```
/// use std::time::Instant;
/// use volley_server::limits::{IpAction, IpLimits, IpLimitsConfig};
/// let config = IpLimitsConfig { max_connections: 1, ..Default::default() };
/// let mut limits = IpLimits::new(config);
/// let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
/// let now = Instant::now();
/// assert!(limits.check(a, IpAction::Connect, now).is_ok());
/// assert!(limits.check(a, IpAction::Connect, now).is_err()); // a holds its one
/// assert!(limits.check(b, IpAction::Connect, now).is_ok()); // b is not a
/// limits.close(a, now);
/// assert!(limits.check(a, IpAction::Connect, now).is_ok());
/// ```
#[derive(Debug)]
pub struct IpLimits {
    config: IpLimitsConfig,
    table: HashMap<IpAddr, Entry>,
}

impl IpLimits {
    /// An empty table.
    pub fn new(config: IpLimitsConfig) -> Self {
        IpLimits {
            config,
            table: HashMap::new(),
        }
    }

    /// The limits it enforces.
    pub fn config(&self) -> &IpLimitsConfig {
        &self.config
    }

    /// Addresses currently tracked.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }

    /// Admits `action` from `ip` at `now`, or says which limit refuses it.
    /// An admitted [`IpAction::Connect`] holds a slot until [`IpLimits::close`].
    pub fn check(&mut self, ip: IpAddr, action: IpAction, now: Instant) -> Result<(), Refusal> {
        let config = &self.config;
        let off = match action {
            IpAction::Connect => config.max_connections == 0,
            IpAction::Join => config.joins_per_minute == 0,
            IpAction::CreateRoom => config.room_creations_per_minute == 0,
            IpAction::Http => config.http_per_second == 0,
        };
        if off {
            return Ok(());
        }
        let key = ip_key(ip);
        if !self.table.contains_key(&key) {
            self.make_room(now)?;
        }
        let config = &self.config;
        let entry = self
            .table
            .entry(key)
            .or_insert_with(|| Entry::new(config, now));
        match action {
            IpAction::Connect if entry.connections >= config.max_connections => {
                Err(Refusal::TooManyConnectionsFromIp {
                    limit: config.max_connections,
                })
            }
            IpAction::Connect => {
                entry.connections += 1;
                Ok(())
            }
            IpAction::Join if !entry.joins.take(now) => Err(Refusal::JoinRateLimited {
                per_minute: config.joins_per_minute,
            }),
            IpAction::CreateRoom if !entry.creations.take(now) => {
                Err(Refusal::RoomCreationRateLimited {
                    per_minute: config.room_creations_per_minute,
                })
            }
            IpAction::Http if !entry.http.take(now) => Err(Refusal::HttpRateLimited {
                per_second: config.http_per_second,
                burst: config.http_burst,
            }),
            IpAction::Join | IpAction::CreateRoom | IpAction::Http => Ok(()),
        }
    }

    /// Gives back a connection slot taken by [`IpAction::Connect`].
    pub fn close(&mut self, ip: IpAddr, now: Instant) {
        let key = ip_key(ip);
        if let Some(entry) = self.table.get_mut(&key) {
            entry.connections = entry.connections.saturating_sub(1);
            if entry.is_idle(now) {
                self.table.remove(&key);
            }
        }
    }

    /// Forgets every address that has nothing left to remember.
    pub fn sweep(&mut self, now: Instant) {
        self.table.retain(|_, entry| !entry.is_idle(now));
    }

    /// Frees a place for one more address: idle entries first, then entries
    /// without open connections (their buckets start full again — under an
    /// attack from more addresses than the table holds, per-address rates
    /// degrade to the global limits rather than lock out new clients).
    fn make_room(&mut self, now: Instant) -> Result<(), Refusal> {
        let cap = self.config.max_tracked_ips;
        if self.table.len() < cap {
            return Ok(());
        }
        self.sweep(now);
        if self.table.len() >= cap {
            self.table.retain(|_, entry| entry.connections > 0);
        }
        if self.table.len() >= cap {
            return Err(Refusal::TooManyClients);
        }
        Ok(())
    }
}

/// Waits between two sweeps of the table (entries of closed connections are
/// removed at once; this catches those that only made requests).
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn per_minute_buckets_refill_over_a_minute() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::per_minute(6, t0);
        assert_eq!((0..10).filter(|_| bucket.take(t0)).count(), 6);
        assert!(!bucket.take(t0 + Duration::from_secs(9)));
        assert!(bucket.take(t0 + Duration::from_secs(10)));
        assert!(!bucket.is_full(t0 + Duration::from_secs(69)));
        assert!(bucket.is_full(t0 + Duration::from_secs(70)));
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn each_limit_refuses_only_its_own_address() {
        let config = IpLimitsConfig {
            max_connections: 2,
            joins_per_minute: 3,
            room_creations_per_minute: 1,
            http_per_second: 1,
            http_burst: 2,
            max_tracked_ips: 100,
        };
        let mut limits = IpLimits::new(config);
        let t0 = Instant::now();
        let (a, b) = (ip("198.51.100.1"), ip("198.51.100.2"));
        let run = |limits: &mut IpLimits, who, action, n| {
            (0..n)
                .map(|_| limits.check(who, action, t0).map_err(|e| e.label()))
                .collect::<Vec<_>>()
        };
        let ok = Ok(());
        assert_eq!(
            run(&mut limits, a, IpAction::Connect, 3),
            [ok, ok, Err("too_many_connections_from_ip")]
        );
        assert_eq!(
            run(&mut limits, a, IpAction::Join, 4),
            [ok, ok, ok, Err("join_rate_limited")]
        );
        assert_eq!(
            run(&mut limits, a, IpAction::CreateRoom, 2),
            [ok, Err("room_creation_rate_limited")]
        );
        assert_eq!(
            run(&mut limits, a, IpAction::Http, 3),
            [ok, ok, Err("http_rate_limited")]
        );
        for action in [
            IpAction::Connect,
            IpAction::Join,
            IpAction::CreateRoom,
            IpAction::Http,
        ] {
            assert_eq!(limits.check(b, action, t0), Ok(()), "{action:?}");
        }
        // Time refills rates, but not connection slots.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(limits.check(a, IpAction::Join, later), Ok(()));
        assert!(limits.check(a, IpAction::Connect, later).is_err());
        limits.close(a, later);
        assert_eq!(limits.check(a, IpAction::Connect, later), Ok(()));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let mut limits = IpLimits::new(IpLimitsConfig {
            max_connections: 1,
            ..IpLimitsConfig::default()
        });
        let t0 = Instant::now();
        assert!(
            limits
                .check(ip("2001:db8::1"), IpAction::Connect, t0)
                .is_ok()
        );
        assert!(
            limits
                .check(ip("2001:db8::ffff:2"), IpAction::Connect, t0)
                .is_err()
        );
        assert!(
            limits
                .check(ip("2001:db8:0:1::1"), IpAction::Connect, t0)
                .is_ok()
        );
        assert!(limits.check(ip("192.0.2.7"), IpAction::Connect, t0).is_ok());
        assert!(
            limits
                .check(ip("::ffff:192.0.2.7"), IpAction::Connect, t0)
                .is_err()
        );
    }

    #[test]
    fn memory_is_bounded_and_idle_addresses_are_forgotten() {
        let mut limits = IpLimits::new(IpLimitsConfig {
            max_tracked_ips: 4,
            ..IpLimitsConfig::default()
        });
        let t0 = Instant::now();
        let addr = |n: u8| IpAddr::from([10, 0, 0, n]);
        // A request leaves an entry until its bucket is full again.
        limits.check(addr(1), IpAction::Http, t0).unwrap();
        assert_eq!(limits.tracked(), 1);
        limits.sweep(t0 + Duration::from_millis(10));
        assert_eq!(limits.tracked(), 1);
        limits.sweep(t0 + Duration::from_secs(1));
        assert_eq!(limits.tracked(), 0);
        // A closed connection with untouched buckets goes at once.
        limits.check(addr(1), IpAction::Connect, t0).unwrap();
        limits.close(addr(1), t0);
        assert_eq!(limits.tracked(), 0);
        // Full of recently active addresses: the idle-but-recent ones go.
        for n in 0..4 {
            limits.check(addr(n), IpAction::Join, t0).unwrap();
        }
        limits.check(addr(9), IpAction::Connect, t0).unwrap();
        assert_eq!(limits.tracked(), 1);
        // Full of addresses holding connections: a new address is refused.
        for n in 10..13 {
            limits.check(addr(n), IpAction::Connect, t0).unwrap();
        }
        assert_eq!(
            limits.check(addr(20), IpAction::Http, t0),
            Err(Refusal::TooManyClients)
        );
        // ...but known ones still work, and a close makes room.
        assert!(limits.check(addr(10), IpAction::Http, t0).is_ok());
        limits.close(addr(11), t0 + Duration::from_secs(120));
        assert!(limits.check(addr(20), IpAction::Http, t0).is_ok());
    }

    #[test]
    fn zero_switches_a_limit_off() {
        let mut limits = IpLimits::new(IpLimitsConfig::unlimited());
        let t0 = Instant::now();
        for _ in 0..1000 {
            for action in [
                IpAction::Connect,
                IpAction::Join,
                IpAction::CreateRoom,
                IpAction::Http,
            ] {
                assert!(limits.check(ip("10.1.1.1"), action, t0).is_ok());
            }
        }
        assert_eq!(limits.tracked(), 0);
    }
}
