//! What one peer may cost us: a receive budget per update, a bounded backlog
//! behind it, and strikes for invalid packets. Pure: time comes in.
//!
//! A peer that sends more than the budget in one update waits for the next
//! update (honest bursts, such as a 1 MiB reliable message, just take a few
//! frames); one whose backlog outgrows [`PeerLimits::backlog_bytes`] or
//! [`PeerLimits::backlog_packets`] is flooding, and one that sends
//! [`PeerLimits::strikes`] invalid packets within [`PeerLimits::strike_window`]
//! is misbehaving. Either way the session drops that peer only.

use std::collections::VecDeque;
use std::time::Duration;

use web_time::Instant;

/// Per-peer limits of a [`Session`](crate::Session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLimits {
    /// Messages handled per peer per `update()` (a batch counts the
    /// messages it carries).
    pub messages_per_update: usize,
    /// Bytes handled per peer per `update()`.
    pub bytes_per_update: usize,
    /// Packets waiting behind the budget before the peer counts as flooding.
    pub backlog_packets: usize,
    /// Bytes waiting behind the budget before the peer counts as flooding.
    pub backlog_bytes: usize,
    /// Invalid packets within `strike_window` that get a peer dropped.
    pub strikes: usize,
    /// The window for `strikes`.
    pub strike_window: Duration,
    /// Unread messages kept per registered type (oldest dropped beyond).
    pub inbox_per_type: usize,
    /// Pings answered per peer per update (more are dropped unanswered).
    pub pongs_per_update: usize,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            messages_per_update: 2048,
            bytes_per_update: 4 * 1024 * 1024,
            backlog_packets: 32 * 1024,
            backlog_bytes: 32 * 1024 * 1024,
            strikes: 16,
            strike_window: Duration::from_secs(2),
            inbox_per_type: 4096,
            pongs_per_update: 8,
        }
    }
}

/// Why a peer was dropped for what it sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Misbehaviour {
    /// Too many invalid packets in a short time.
    #[error("{count} invalid packets within {window:?} (last: {last})")]
    InvalidPackets {
        /// Invalid packets in the window.
        count: usize,
        /// The window.
        window: Duration,
        /// The last one's error, truncated.
        last: String,
    },
    /// More traffic than the session would ever process.
    #[error("flooding: {packets} packets / {bytes} bytes waiting")]
    Flood {
        /// Packets waiting.
        packets: usize,
        /// Bytes waiting.
        bytes: usize,
    },
}

/// Recent invalid packets of one peer.
#[derive(Debug, Clone, Default)]
pub struct Strikes {
    times: VecDeque<Instant>,
}

impl Strikes {
    /// Records one invalid packet at `now`; true once `limits.strikes`
    /// fall within `limits.strike_window`.
    pub fn strike(&mut self, now: Instant, limits: &PeerLimits) -> bool {
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > limits.strike_window)
        {
            self.times.pop_front();
        }
        self.times.push_back(now);
        while self.times.len() > limits.strikes.max(1) {
            self.times.pop_front();
        }
        self.times.len() >= limits.strikes.max(1)
    }

    /// Invalid packets within the window, as of the last strike.
    pub fn count(&self) -> usize {
        self.times.len()
    }
}

/// Packets `P` of one peer waiting to be handled, in arrival order, each
/// with a tag `T` (its channel).
#[derive(Debug)]
pub struct Backlog<T, P> {
    /// Each packet with its tag and weight (the messages it carries).
    queue: VecDeque<(T, P, usize)>,
    bytes: usize,
}

impl<T, P> Default for Backlog<T, P> {
    fn default() -> Self {
        Backlog {
            queue: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<T, P: AsRef<[u8]>> Backlog<T, P> {
    /// Queues a packet carrying `weight` messages; `Err` when the peer is
    /// flooding.
    pub fn push(
        &mut self,
        tag: T,
        packet: P,
        weight: usize,
        limits: &PeerLimits,
    ) -> Result<(), Misbehaviour> {
        self.bytes = self.bytes.saturating_add(packet.as_ref().len());
        self.queue.push_back((tag, packet, weight));
        if self.queue.len() > limits.backlog_packets || self.bytes > limits.backlog_bytes {
            return Err(Misbehaviour::Flood {
                packets: self.queue.len(),
                bytes: self.bytes,
            });
        }
        Ok(())
    }

    /// Takes what this update's budget of messages and bytes allows (at
    /// least one packet, so a packet larger than the budget still moves).
    pub fn take(&mut self, limits: &PeerLimits) -> Vec<(T, P)> {
        let mut taken = Vec::new();
        let (mut bytes, mut messages) = (0usize, 0usize);
        while let Some((_, packet, weight)) = self.queue.front() {
            let len = packet.as_ref().len();
            let over = bytes + len > limits.bytes_per_update
                || messages.saturating_add(*weight) > limits.messages_per_update;
            if !taken.is_empty() && over {
                break;
            }
            bytes += len;
            messages = messages.saturating_add(*weight);
            if let Some((tag, packet, _)) = self.queue.pop_front() {
                taken.push((tag, packet));
            }
        }
        self.bytes -= bytes;
        taken
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// At most `max` characters of a peer-chosen string, for logs.
pub fn truncated(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PeerLimits {
        PeerLimits {
            messages_per_update: 3,
            bytes_per_update: 10,
            backlog_packets: 5,
            backlog_bytes: 20,
            strikes: 3,
            strike_window: Duration::from_secs(1),
            ..PeerLimits::default()
        }
    }

    #[test]
    fn strikes_count_within_the_window_only() {
        let limits = limits();
        let t0 = Instant::now();
        let mut strikes = Strikes::default();
        assert!(!strikes.strike(t0, &limits));
        assert!(!strikes.strike(t0 + Duration::from_millis(500), &limits));
        // The first fell out of the window: still two.
        assert!(!strikes.strike(t0 + Duration::from_millis(1200), &limits));
        assert_eq!(strikes.count(), 2);
        assert!(strikes.strike(t0 + Duration::from_millis(1300), &limits));
    }

    #[test]
    fn the_budget_spreads_a_burst_over_updates() {
        let limits = limits();
        let mut backlog = Backlog::<u8, Box<[u8]>>::default();
        for i in 0..5u8 {
            backlog.push(i, vec![i; 4].into(), 1, &limits).unwrap();
        }
        // 10 bytes a turn: two 4-byte packets.
        assert_eq!(backlog.take(&limits).len(), 2);
        assert_eq!(backlog.take(&limits).len(), 2);
        assert_eq!(backlog.take(&limits).len(), 1);
        assert!(backlog.is_empty());
        // One packet above the byte budget still moves, alone.
        backlog.push(9, vec![0; 15].into(), 1, &limits).unwrap();
        assert_eq!(backlog.take(&limits).len(), 1);
    }

    #[test]
    fn a_batch_counts_its_messages_against_the_budget() {
        let limits = limits();
        let mut backlog = Backlog::<u8, Box<[u8]>>::default();
        // 3 messages a turn: a 2-message batch and a single; the 3-message
        // batch; a single (the next would go over); one above the budget,
        // alone.
        for (i, weight) in [2, 1, 3, 1, 9].into_iter().enumerate() {
            backlog
                .push(i as u8, vec![0; 1].into(), weight, &limits)
                .unwrap();
        }
        let turns: Vec<usize> = (0..4).map(|_| backlog.take(&limits).len()).collect();
        assert_eq!(turns, [2, 1, 1, 1]);
        assert!(backlog.is_empty());
    }

    #[test]
    fn a_backlog_past_its_bounds_is_a_flood() {
        let limits = limits();
        let mut backlog = Backlog::<u8, Box<[u8]>>::default();
        for i in 0..5u8 {
            backlog.push(i, vec![0; 1].into(), 1, &limits).unwrap();
        }
        assert!(matches!(
            backlog.push(5, vec![0; 1].into(), 1, &limits),
            Err(Misbehaviour::Flood { packets: 6, .. })
        ));
        let mut backlog = Backlog::<u8, Box<[u8]>>::default();
        assert!(backlog.push(0, vec![0; 21].into(), 1, &limits).is_err());
    }

    #[test]
    fn truncation_keeps_logs_short_and_printable() {
        assert_eq!(truncated("abc", 5), "abc");
        assert_eq!(truncated("abcdef", 3), "abc…");
        assert_eq!(truncated("a\nb\u{1b}", 8), "a?b?");
    }
}
