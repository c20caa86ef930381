//! Per-peer statistics: RTT from ping/pong, traffic per channel, loss.

use std::time::Duration;

use crate::Channel;

/// Traffic counters of one channel, one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Packets (DataChannel messages, fragments counted one by one).
    pub packets: u64,
    /// Messages in them: a batch counts the messages it carries, anything
    /// else counts 1 (see [`crate::batch`]).
    pub messages: u64,
    /// Bytes including volley's framing.
    pub bytes: u64,
}

/// How an ICE candidate reaches its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateKind {
    /// The host's own address.
    Host,
    /// The host's address as a STUN server saw it (behind a NAT).
    ServerReflexive,
    /// An address learnt from the peer's connectivity checks.
    PeerReflexive,
    /// A TURN relay's address.
    Relay,
}

/// One end of the selected ICE candidate pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its kind.
    pub kind: CandidateKind,
    /// `ip:port` (or an mDNS name and port); empty where a browser
    /// withholds it (a remote peer-reflexive candidate, which the peer never
    /// signaled).
    pub address: String,
}

/// The path a connection took: the selected candidate pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Our end.
    pub local: Candidate,
    /// The peer's end.
    pub remote: Candidate,
}

impl Link {
    /// Whether the packets go through a TURN relay (either end).
    pub fn relayed(&self) -> bool {
        self.local.kind == CandidateKind::Relay || self.remote.kind == CandidateKind::Relay
    }
}

/// What volley knows about the link to one peer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerStats {
    /// Smoothed round-trip time (RFC 6298 style, α = 1/8), once measured.
    pub rtt: Option<Duration>,
    /// Smoothed mean deviation of the RTT (β = 1/4).
    pub jitter: Duration,
    /// The last RTT sample.
    pub last_rtt: Option<Duration>,
    /// Sent, per channel index.
    pub sent: [Traffic; Channel::COUNT],
    /// Received, per channel index.
    pub received: [Traffic; Channel::COUNT],
    /// Pings sent on the unreliable channel.
    pub pings_sent: u64,
    /// Pongs received for them.
    pub pongs_received: u64,
    /// The selected candidate pair, once the transport reported it (volley's
    /// own transports do, natively and in the browser; `MatchboxTransport`
    /// does not).
    pub link: Option<Link>,
    /// Packets from this peer that were invalid (garbage, unknown kind,
    /// wrong channel, broken fragments, undecodable payload) and dropped.
    pub invalid_packets: u64,
}

impl PeerStats {
    /// Folds in one RTT sample.
    pub fn record_rtt(&mut self, sample: Duration) {
        self.last_rtt = Some(sample);
        match self.rtt {
            None => {
                self.rtt = Some(sample);
                self.jitter = sample / 2;
            }
            Some(srtt) => {
                let deviation = srtt.abs_diff(sample);
                self.jitter = (self.jitter * 3 + deviation) / 4;
                self.rtt = Some((srtt * 7 + sample) / 8);
            }
        }
    }

    /// Estimated loss on the unreliable channel, from unanswered pings
    /// (the most recent ping is not counted: its pong may be on its way).
    pub fn loss(&self) -> f64 {
        let settled = self.pings_sent.saturating_sub(1);
        if settled == 0 {
            return 0.0;
        }
        1.0 - (self.pongs_received.min(settled) as f64 / settled as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_converges_and_jitter_follows_variation() {
        let mut s = PeerStats::default();
        for _ in 0..100 {
            s.record_rtt(Duration::from_millis(40));
        }
        assert_eq!(s.rtt, Some(Duration::from_millis(40)));
        assert!(s.jitter < Duration::from_millis(1));
        for i in 0..100 {
            s.record_rtt(Duration::from_millis(if i % 2 == 0 { 30 } else { 50 }));
        }
        let rtt = s.rtt.unwrap().as_millis();
        assert!((38..=42).contains(&rtt), "{rtt}");
        assert!(s.jitter >= Duration::from_millis(8), "{:?}", s.jitter);
    }

    #[test]
    fn loss_from_unanswered_pings() {
        let s = PeerStats {
            pings_sent: 11,
            pongs_received: 8,
            ..Default::default()
        };
        assert!((s.loss() - 0.2).abs() < 1e-9);
        assert_eq!(PeerStats::default().loss(), 0.0);
    }
}
