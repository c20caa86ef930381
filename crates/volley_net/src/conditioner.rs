//! A link conditioner: simulated latency, jitter and loss on send, seeded
//! and deterministic, for tests and for trying a game on a bad network.
//!
//! On unreliable channels a lost packet is dropped and jitter may reorder.
//! On the reliable channel the real transport (SCTP) retransmits, so loss
//! shows as delay: a "lost" packet is delivered one retransmission timeout
//! (2 × latency, at least 20 ms) later, again for each further loss, and
//! never before the packet sent ahead of it — exactly once, in order, late.

use std::collections::VecDeque;
use std::time::Duration;

use web_time::Instant;

/// How bad the simulated network is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConditionerConfig {
    /// One-way delay added to every packet.
    pub latency: Duration,
    /// Uniform ± variation of the delay.
    pub jitter: Duration,
    /// Probability (0–1) that a packet is lost.
    pub loss: f64,
    /// Seed: the same seed and the same sends give the same fate.
    pub seed: u64,
}

/// SplitMix64: tiny, seedable, good enough for simulated loss.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Holds packets back until their simulated arrival time.
#[derive(Debug)]
pub struct LinkConditioner<P> {
    config: ConditionerConfig,
    rng: Rng,
    /// (release time, item), kept sorted by release time.
    queue: VecDeque<(Instant, P)>,
    last_reliable: Option<Instant>,
    dropped: u64,
}

impl<P> LinkConditioner<P> {
    /// A conditioner with `config`.
    pub fn new(config: ConditionerConfig) -> Self {
        LinkConditioner {
            rng: Rng(config.seed),
            config,
            queue: VecDeque::new(),
            last_reliable: None,
            dropped: 0,
        }
    }

    /// Packets dropped so far (unreliable only).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn delay(&mut self) -> Duration {
        let jitter = self.config.jitter.as_secs_f64();
        let offset = (self.rng.unit() * 2.0 - 1.0) * jitter;
        Duration::from_secs_f64((self.config.latency.as_secs_f64() + offset).max(0.0))
    }

    fn lost(&mut self) -> bool {
        self.rng.unit() < self.config.loss
    }

    /// Queues `item` sent at `now`; `reliable` packets are never lost or reordered.
    pub fn push(&mut self, now: Instant, reliable: bool, item: P) {
        let mut release = now + self.delay();
        if reliable {
            let rto = (self.config.latency * 2).max(Duration::from_millis(20));
            // Bounded: with loss < 1 this ends quickly; a loss of 1 would stall forever.
            for _ in 0..16 {
                if !self.lost() {
                    break;
                }
                release += rto;
            }
            if let Some(last) = self.last_reliable {
                release = release.max(last);
            }
            self.last_reliable = Some(release);
        } else if self.lost() {
            self.dropped += 1;
            return;
        }
        let at = self.queue.partition_point(|(t, _)| *t <= release);
        self.queue.insert(at, (release, item));
    }

    /// Removes and returns every packet due at `now`, in release order.
    pub fn due(&mut self, now: Instant) -> impl Iterator<Item = P> + '_ {
        let n = self.queue.partition_point(|(t, _)| *t <= now);
        self.queue.drain(..n).map(|(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(loss: f64) -> ConditionerConfig {
        ConditionerConfig {
            latency: Duration::from_millis(50),
            jitter: Duration::from_millis(20),
            loss,
            seed: 7,
        }
    }

    #[test]
    fn reliable_packets_arrive_once_in_order_and_late() {
        let mut c = LinkConditioner::new(config(0.2));
        let t0 = Instant::now();
        for i in 0..1000u32 {
            c.push(t0 + Duration::from_millis(u64::from(i)), true, i);
        }
        assert!(
            c.due(t0 + Duration::from_millis(29)).next().is_none(),
            "nothing before latency - jitter"
        );
        let all: Vec<u32> = c.due(t0 + Duration::from_secs(60)).collect();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn unreliable_loss_is_seeded_and_close_to_the_rate() {
        let run = || {
            let mut c = LinkConditioner::new(config(0.2));
            let t0 = Instant::now();
            for i in 0..10_000u32 {
                c.push(t0, false, i);
            }
            let kept: Vec<u32> = c.due(t0 + Duration::from_secs(1)).collect();
            (c.dropped(), kept.len())
        };
        let (dropped, kept) = run();
        assert_eq!(dropped as usize + kept, 10_000);
        assert!((1_800..2_200).contains(&dropped), "{dropped}");
        assert_eq!(run().0, dropped, "same seed, same fate");
    }
}
