//! Connecting again to a room-mate whose connection died while both of us
//! stayed in the room (a network cut, a laptop lid): the signaling server
//! says nothing then, so the peers themselves must. Exactly one side
//! offers, the one with the lower id, so two fresh offers never cross;
//! the other answers (an offer from a peer it still holds replaces the
//! stale connection, see `mesh`). A pure schedule, time passed in.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use web_time::Instant;

use crate::PeerId;

/// The first wait before offering again; each failure doubles it.
pub(super) const FIRST_REDIAL: Duration = Duration::from_millis(250);

/// The longest wait between two offers to a lost room-mate: a player back
/// from a cut waits at most this long (plus the connection's set-up).
pub(super) const MAX_REDIAL: Duration = Duration::from_secs(2);

/// The room-mates we may connect to again, and when we offer next.
#[derive(Debug, Default)]
pub(super) struct Redial {
    /// Peers the server named (a newcomer, or one that offered to us), until it says they left.
    room: HashSet<PeerId>,
    /// Offers due: when, and how many were made since the peer was last connected.
    due: HashMap<PeerId, (Instant, u32)>,
}

impl Redial {
    /// The server named `peer` as a room-mate.
    pub(super) fn named(&mut self, peer: PeerId) {
        self.room.insert(peer);
    }

    /// `peer` left the room, or we closed it for good: never again.
    pub(super) fn forget(&mut self, peer: PeerId) {
        self.room.remove(&peer);
        self.due.remove(&peer);
    }

    /// `peer` is connected (or a connection to it is under way): nothing due.
    pub(super) fn connecting(&mut self, peer: PeerId) {
        if let Some((at, _)) = self.due.get_mut(&peer) {
            *at = far_future(*at);
        }
    }

    /// `peer`'s connection ended at `now` without either side leaving. When
    /// we are the side that offers, the next offer is scheduled; `lived`
    /// says whether the connection had come up (the waits start afresh).
    /// A peer never connected is not offered to again: no path is no path
    /// (and each attempt may cost a relay allocation).
    pub(super) fn ended(&mut self, me: PeerId, peer: PeerId, lived: bool, now: Instant) {
        if me >= peer || !self.room.contains(&peer) || (!lived && !self.due.contains_key(&peer)) {
            return;
        }
        let failures = match self.due.get(&peer) {
            Some((_, n)) if !lived => n.saturating_add(1),
            _ => 0,
        };
        let wait = FIRST_REDIAL
            .saturating_mul(1 << failures.min(8))
            .min(MAX_REDIAL);
        self.due.insert(peer, (now + wait, failures));
    }

    /// The offers due at `now` (each is then waiting for its attempt to end).
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<PeerId> {
        let due: Vec<PeerId> = self
            .due
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &due {
            self.connecting(*peer);
        }
        due
    }

    /// When the next offer is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.due.values().map(|(at, _)| *at).min()
    }
}

/// "Not before the attempt under way ends": an hour is beyond any attempt.
fn far_future(from: Instant) -> Instant {
    from + Duration::from_secs(3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u128) -> PeerId {
        PeerId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn only_the_lower_id_offers_again_and_only_to_a_room_mate() {
        let t0 = Instant::now();
        let (low, high, stranger) = (peer(1), peer(2), peer(3));
        let mut at_low = Redial::default();
        let mut at_high = Redial::default();
        at_low.named(high);
        at_high.named(low);
        at_low.ended(low, high, true, t0);
        at_high.ended(high, low, true, t0);
        at_low.ended(low, stranger, true, t0);
        let later = t0 + FIRST_REDIAL;
        assert_eq!(at_low.take_due(later), vec![high]);
        assert!(at_high.take_due(later).is_empty());
        assert!(at_low.take_due(later).is_empty(), "one offer at a time");
    }

    #[test]
    fn failures_back_off_up_to_the_cap_and_a_connection_starts_afresh() {
        let t0 = Instant::now();
        let (me, mate) = (peer(1), peer(2));
        let mut redial = Redial::default();
        redial.named(mate);
        redial.ended(me, mate, true, t0);
        let mut waits = Vec::new();
        let mut now = t0;
        for _ in 0..6 {
            let due = redial.next_due().unwrap();
            waits.push(due - now);
            assert_eq!(redial.take_due(due), vec![mate]);
            now = due;
            redial.ended(me, mate, false, now);
        }
        assert_eq!(waits[0], FIRST_REDIAL);
        assert_eq!(waits[1], FIRST_REDIAL * 2);
        assert_eq!(*waits.last().unwrap(), MAX_REDIAL);
        redial.ended(me, mate, true, now);
        assert_eq!(redial.next_due().unwrap() - now, FIRST_REDIAL);
    }

    #[test]
    fn a_peer_never_connected_is_not_offered_to_again() {
        let (me, mate) = (peer(1), peer(2));
        let mut redial = Redial::default();
        redial.named(mate);
        redial.ended(me, mate, false, Instant::now());
        assert!(redial.next_due().is_none());
    }

    #[test]
    fn a_peer_that_left_is_not_offered_to() {
        let t0 = Instant::now();
        let (me, mate) = (peer(1), peer(2));
        let mut redial = Redial::default();
        redial.named(mate);
        redial.ended(me, mate, true, t0);
        redial.forget(mate);
        assert!(redial.next_due().is_none());
        redial.ended(me, mate, true, t0);
        assert!(redial.next_due().is_none());
    }
}
