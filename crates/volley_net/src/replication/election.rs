//! Who the authority is, decided by every peer alone from what it sees,
//! as a pure state machine (time passed in): connections and departures,
//! the claims every world carries (`term`), handovers, acknowledgements.
//!
//! The rules, in order of precedence:
//! - a peer that knows no authority adopts the first one that sends it a
//!   world, and elects the lowest id of itself and its connected peers
//!   ([`elect`]) only after [`ELECTION_WAIT`] without one (restarted by
//!   each connection): a room's first peers agree without a round trip;
//! - a known authority nobody follows yet (term 0: elected out of
//!   silence) gives way to any claim that wins ([`claim_wins`]): two peers
//!   that elected themselves at once, or a newcomer whose wait ran out
//!   before the room's authority spoke; its first follower makes it
//!   established (term 1), and the world it has is kept;
//! - past that, a claim more than one term above the known one is dropped
//!   and counted;
//! - once followed (term ≥ 1) it stays while connected: another peer's
//!   claim is held until the authority confirms it — by handing over to
//!   that peer, or by leaving when that peer is the expected successor
//!   (the lowest remaining id, one term later). A claim nobody confirms
//!   within [`HOLD_FOR`] is dropped and counted;
//! - an authority connected but silent for [`HOLD_FOR`] (it follows
//!   another since a race we lost) is forgotten: we wait for one to speak
//!   as a newcomer does;
//! - what no honest peer ever sends — a term above [`MAX_TERM`], a
//!   handover to its sender — is a [`ClaimRefused`] to hold against it.
//!
//! What a single hostile peer can still do: be the first to speak to a
//! newcomer that knows no authority (there is no trust anchor without a
//! server), claim term 1 while a room's first authority has no follower
//! yet (the first moments of a room), and win an election it is
//! entitled to (lowest id). It cannot take over peers that follow a
//! followed authority, nor push terms to overflow.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use web_time::Instant;

use crate::PeerId;

/// How long a peer without an authority waits for one to speak before it
/// elects one itself.
pub const ELECTION_WAIT: Duration = Duration::from_millis(500);

/// How long a claim waits for the authority to confirm it (a handover or
/// its departure seen a little later than the claimant saw it).
pub const HOLD_FOR: Duration = Duration::from_secs(2);

/// The highest term: one per change of authority, a million changes (terms
/// stop growing there). Claims above it are forged, and `term + 1` never
/// overflows.
pub const MAX_TERM: u32 = 1 << 20;

/// The authority among `me` and the connected `peers`: the lowest id.
pub fn elect(me: PeerId, peers: impl IntoIterator<Item = PeerId>) -> PeerId {
    peers.into_iter().fold(me, |a, b| a.min(b))
}

/// Whether a claim of authority `(term, id)` beats the authority we know,
/// `(known_term, known)`: the higher term wins — an authority others follow
/// over a newcomer that elected itself — and the lower id breaks ties.
pub fn claim_wins(term: u32, id: PeerId, known_term: u32, known: PeerId) -> bool {
    (term, std::cmp::Reverse(id)) > (known_term, std::cmp::Reverse(known))
}

/// A change of authority (`W`: the world a held claim came with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<W = ()> {
    /// The previous authority, if any.
    pub old: Option<PeerId>,
    /// The new one.
    pub new: PeerId,
    /// Its term.
    pub term: u32,
    /// Whether the new one is us.
    pub is_us: bool,
    /// The world the new authority's held claim came with (see
    /// [`Election::keep`]), now confirmed: the first to apply.
    pub confirmed: Option<W>,
}

/// What to do with a world (a claim) from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It comes from the authority we follow (perhaps since this claim):
    /// apply it.
    Follow,
    /// Stale, or a claim that loses: drop it.
    Ignore,
    /// A claim that waits for the authority's confirmation: give its full
    /// world to [`Election::keep`]; a [`Change`] that confirms the claimant
    /// hands it back.
    Hold,
    /// Against the rules, whatever the sender saw: drop it, count it
    /// against the sender.
    Refused(ClaimRefused),
}

/// A claim no honest peer makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimRefused {
    /// A term above [`MAX_TERM`].
    #[error("authority term {0} above the maximum")]
    TermTooHigh(u32),
    /// A handover from a peer to itself.
    #[error("handover to itself")]
    HandoverToSelf,
}

#[derive(Debug)]
struct Held<W> {
    since: Instant,
    world: Option<W>,
}

/// One peer's view of the election; `W` is the world a held claim keeps.
#[derive(Debug)]
pub struct Election<W = ()> {
    me: PeerId,
    peers: BTreeSet<PeerId>,
    authority: Option<PeerId>,
    term: u32,
    /// Without an authority: since when the mesh is quiet.
    quiet_since: Option<Instant>,
    /// When the authority we follow last sent a world (or became it).
    last_heard: Option<Instant>,
    /// Since when the authority is not connected to us (handed over to a
    /// peer we have not met, or that left before the handover arrived).
    absent_since: Option<Instant>,
    /// Peers forgotten as silent authorities: not elected again until they
    /// send a world (a peer that never speaks must not stall the room).
    passed_over: BTreeSet<PeerId>,
    /// Claims waiting for confirmation, one per claimant.
    held: BTreeMap<PeerId, Held<W>>,
    /// Held claims nobody confirmed, and claims that lost or came stale.
    unconfirmed: u64,
}

impl<W> Election<W> {
    /// `me`, alone, no authority yet.
    pub fn new(me: PeerId, now: Instant) -> Self {
        Election {
            me,
            peers: BTreeSet::new(),
            authority: None,
            term: 0,
            quiet_since: Some(now),
            absent_since: None,
            last_heard: None,
            passed_over: BTreeSet::new(),
            held: BTreeMap::new(),
            unconfirmed: 0,
        }
    }

    /// The authority, if any (it may not be connected to us yet, after a
    /// handover to a peer we have not met: it gets [`HOLD_FOR`] to connect).
    pub fn authority(&self) -> Option<PeerId> {
        self.authority
    }

    /// Whether we are the authority.
    pub fn is_us(&self) -> bool {
        self.authority == Some(self.me)
    }

    /// The authority's term: 0 for one elected out of silence that nobody
    /// follows yet, 1 once followed, one more than its predecessor's for
    /// one that took over.
    pub fn term(&self) -> u32 {
        self.term
    }

    /// The connected peers.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.iter().copied()
    }

    /// Claims dropped: term jumps, and held claims that expired
    /// unconfirmed (a few during start-up races are expected; a steady
    /// rise means a peer claims authority it does not have).
    pub fn unconfirmed(&self) -> u64 {
        self.unconfirmed
    }

    /// Keeps `world` with `peer`'s held claim (the newest wins); nothing
    /// when its claim is not held.
    pub fn keep(&mut self, peer: PeerId, world: W) {
        if let Some(held) = self.held.get_mut(&peer) {
            held.world = Some(world);
        }
    }

    /// A peer finished its handshake.
    pub fn connected(&mut self, peer: PeerId, now: Instant) {
        if peer == self.me {
            return;
        }
        self.peers.insert(peer);
        if self.authority.is_none() {
            self.quiet_since = Some(now);
        }
        if self.authority == Some(peer) {
            self.absent_since = None;
        }
    }

    /// A peer left: when it was the authority, the lowest remaining id
    /// succeeds it one term later.
    pub fn left(&mut self, peer: PeerId, now: Instant) -> Option<Change<W>> {
        self.peers.remove(&peer);
        self.passed_over.remove(&peer);
        if self.authority != Some(peer) || peer == self.me {
            self.held.remove(&peer);
            return None;
        }
        let successor = self.eligible();
        Some(self.change_to(successor, self.next_term(), now))
    }

    /// A world from `from`, claiming authority at `term`.
    pub fn claim(&mut self, from: PeerId, term: u32, now: Instant) -> (Verdict, Option<Change<W>>) {
        if term > MAX_TERM {
            return (Verdict::Refused(ClaimRefused::TermTooHigh(term)), None);
        }
        if from == self.me || !self.peers.contains(&from) {
            return (Verdict::Ignore, None);
        }
        self.passed_over.remove(&from);
        let Some(known) = self.authority else {
            // The first authority that speaks.
            return (Verdict::Follow, Some(self.change_to(from, term, now)));
        };
        if self.term == 0 {
            // Ours is not established (nobody follows it, or we only just
            // started following): any winning claim, the room's own
            // authority among them, takes over.
            if known == from {
                self.term = term;
                self.last_heard = Some(now);
                return (Verdict::Follow, None);
            }
            if claim_wins(term, from, self.term, known) {
                return (Verdict::Follow, Some(self.change_to(from, term, now)));
            }
            return (Verdict::Ignore, None);
        }
        if term > self.term.saturating_add(1) {
            // Nobody honest jumps terms (a partitioned room might: rare).
            self.unconfirmed += 1;
            return (Verdict::Ignore, None);
        }
        if known == from {
            // Its own term may lag ours (it saw the predecessor at a lower
            // term than we did): still the authority.
            self.term = self.term.max(term);
            self.last_heard = Some(now);
            return (Verdict::Follow, None);
        }
        // Ours is followed: only it can pass authority on.
        self.held.entry(from).or_insert(Held {
            since: now,
            world: None,
        });
        (Verdict::Hold, None)
    }

    /// `from` says authority passes to `to`.
    pub fn handover(
        &mut self,
        from: PeerId,
        to: PeerId,
        now: Instant,
    ) -> Result<Option<Change<W>>, ClaimRefused> {
        if to == from {
            return Err(ClaimRefused::HandoverToSelf);
        }
        if self.authority != Some(from) || from == self.me {
            return Ok(None);
        }
        Ok(Some(self.change_to(to, self.next_term(), now)))
    }

    /// We hand authority to `to` (a connected peer); the caller tells
    /// every peer with a handover message.
    pub fn hand_over(&mut self, to: PeerId, now: Instant) -> Option<Change<W>> {
        if !self.is_us() || to == self.me || !self.peers.contains(&to) {
            return None;
        }
        Some(self.change_to(to, self.next_term(), now))
    }

    /// A peer acknowledged one of our worlds: a first follower makes our
    /// term 1 (established: a rival's claim no longer unseats us).
    pub fn acked(&mut self, peer: PeerId) {
        if self.is_us() && self.term == 0 && self.peers.contains(&peer) {
            self.term = 1;
        }
    }

    /// Time passes: an election out of silence, a successor to an
    /// authority absent for [`HOLD_FOR`], an authority silent as long is
    /// forgotten (no [`Change`]: [`Election::authority`] is `None`), and
    /// held claims expire.
    pub fn tick(&mut self, now: Instant) -> Option<Change<W>> {
        if let Some(a) = self.authority
            && a != self.me
            && !self.peers.contains(&a)
        {
            let since = *self.absent_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= HOLD_FOR {
                let successor = self.eligible();
                return Some(self.change_to(successor, self.next_term(), now));
            }
        }
        if let Some(a) = self.authority
            && a != self.me
            && self
                .last_heard
                .is_some_and(|t| now.saturating_duration_since(t) >= HOLD_FOR)
        {
            // Connected but silent (it handed over, follows someone else
            // since a race we lost, or never speaks): we know no authority
            // again, and do not elect it again until it speaks.
            self.passed_over.insert(a);
            self.authority = None;
            self.quiet_since = Some(now);
            self.last_heard = None;
        }
        let before = self.held.len();
        self.held
            .retain(|_, h| now.saturating_duration_since(h.since) < HOLD_FOR);
        self.unconfirmed += (before - self.held.len()) as u64;
        if self.authority.is_some() {
            return None;
        }
        let since = *self.quiet_since.get_or_insert(now);
        if now.saturating_duration_since(since) < ELECTION_WAIT {
            return None;
        }
        let elected = self.eligible();
        Some(self.change_to(elected, 0, now))
    }

    /// The lowest id among us and the connected peers not passed over.
    fn eligible(&self) -> PeerId {
        elect(
            self.me,
            self.peers
                .iter()
                .copied()
                .filter(|p| !self.passed_over.contains(p)),
        )
    }

    /// A successor's term: one more, up to [`MAX_TERM`].
    fn next_term(&self) -> u32 {
        self.term.saturating_add(1).min(MAX_TERM)
    }

    fn change_to(&mut self, new: PeerId, term: u32, now: Instant) -> Change<W> {
        let old = self.authority;
        let confirmed = self.held.remove(&new).and_then(|h| h.world);
        self.held.clear();
        self.authority = Some(new);
        self.term = term;
        self.quiet_since = None;
        self.absent_since = None;
        self.last_heard = Some(now);
        Change {
            old,
            new,
            term,
            is_us: new == self.me,
            confirmed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::peer;
    use super::*;

    #[test]
    fn the_lowest_id_is_elected_by_everyone() {
        let (a, b, c) = (peer(1), peer(2), peer(3));
        assert_eq!(elect(b, [c, a]), a);
        assert_eq!(elect(a, [b, c]), a);
        assert_eq!(elect(c, [b]), b);
        assert_eq!(elect(c, []), c);
    }

    #[test]
    fn claims_settle_on_the_followed_authority_then_the_lower_id() {
        let (low, high) = (peer(1), peer(2));
        // A newcomer that elected itself does not unseat a followed authority.
        assert!(!claim_wins(0, low, 1, high));
        assert!(claim_wins(1, high, 0, low));
        // Equal terms: the lower id.
        assert!(claim_wins(0, low, 0, high));
        assert!(!claim_wins(0, high, 0, low));
        // A successor's term beats its predecessor's.
        assert!(claim_wins(2, high, 1, low));
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// `me` connected to `peers`, following `authority` at `term`.
    fn following(me: u128, peers: &[u128], authority: u128, term: u32, t0: Instant) -> Election {
        let mut e: Election = Election::new(peer(me), t0);
        for p in peers {
            e.connected(peer(*p), t0);
        }
        assert_eq!(e.claim(peer(authority), term, t0).0, Verdict::Follow);
        e
    }

    #[test]
    fn silence_elects_the_lowest_id_and_a_first_follower_makes_term_one() {
        let t0 = Instant::now();
        let mut e: Election = Election::new(peer(2), t0);
        e.connected(peer(3), at(t0, 100));
        assert_eq!(e.tick(at(t0, 500)), None, "the wait restarted at 100");
        let change = e.tick(at(t0, 600)).expect("elected");
        assert_eq!((change.new, change.term, change.is_us), (peer(2), 0, true));
        e.acked(peer(9));
        assert_eq!(e.term(), 0, "not a connected peer");
        e.acked(peer(3));
        assert_eq!(e.term(), 1);
        // Established: a lower id's fresh claim no longer unseats us.
        e.connected(peer(1), at(t0, 700));
        assert_eq!(e.claim(peer(1), 0, at(t0, 710)), (Verdict::Hold, None));
        assert!(e.is_us());
    }

    #[test]
    fn a_followed_authority_is_not_unseated_by_a_rival_claim() {
        let t0 = Instant::now();
        // We (3) follow 2 at term 1; 1 (lower id) claims at terms 1 and 2.
        let mut e = following(3, &[1, 2], 2, 1, t0);
        assert_eq!(e.claim(peer(1), 1, t0), (Verdict::Hold, None));
        assert_eq!(e.claim(peer(1), 2, t0), (Verdict::Hold, None));
        assert_eq!(e.claim(peer(1), 3, t0), (Verdict::Ignore, None), "a jump");
        assert_eq!(e.claim(peer(2), 3, t0), (Verdict::Ignore, None), "a jump");
        assert_eq!(
            e.claim(peer(1), u32::MAX, t0).0,
            Verdict::Refused(ClaimRefused::TermTooHigh(u32::MAX))
        );
        assert_eq!(e.authority(), Some(peer(2)));
        // Unconfirmed, it expires and is counted (the authority speaks on).
        assert_eq!(e.claim(peer(2), 1, at(t0, 1_500)), (Verdict::Follow, None));
        assert_eq!(e.tick(at(t0, 2_100)), None);
        assert_eq!(e.unconfirmed(), 3, "the jumps and the expired hold");
        // Handovers from anyone but the authority change nothing.
        assert_eq!(e.handover(peer(1), peer(3), t0), Ok(None));
        assert_eq!(
            e.handover(peer(1), peer(1), t0),
            Err(ClaimRefused::HandoverToSelf)
        );
        assert_eq!(e.authority(), Some(peer(2)));
    }

    #[test]
    fn the_authority_confirms_a_held_claim_by_leaving_or_handing_over() {
        let t0 = Instant::now();
        // The successor's world arrives before we see the authority leave.
        let mut e = following(3, &[1, 2], 1, 4, t0);
        assert_eq!(e.claim(peer(2), 5, t0), (Verdict::Hold, None));
        e.keep(peer(2), ());
        let change = e.left(peer(1), t0).expect("succession");
        assert_eq!(
            (change.new, change.term, change.confirmed),
            (peer(2), 5, Some(()))
        );
        assert_eq!(e.claim(peer(2), 5, t0), (Verdict::Follow, None));
        // The heir's world arrives before the handover naming it.
        let mut e = following(3, &[1, 2, 4], 1, 4, t0);
        assert_eq!(e.claim(peer(4), 5, t0), (Verdict::Hold, None));
        e.keep(peer(4), ());
        let change = e
            .handover(peer(1), peer(4), t0)
            .unwrap()
            .expect("handed over");
        assert_eq!(
            (change.new, change.term, change.confirmed),
            (peer(4), 5, Some(()))
        );
        // A held claim from someone else than the successor is not confirmed.
        let mut e = following(3, &[1, 2, 4], 1, 4, t0);
        assert_eq!(e.claim(peer(4), 5, t0), (Verdict::Hold, None));
        e.keep(peer(4), ());
        e.keep(peer(2), ()); // not held: not kept
        let change = e.left(peer(1), t0).expect("succession");
        assert_eq!((change.new, change.confirmed), (peer(2), None));
    }

    #[test]
    fn an_heir_that_never_connects_is_succeeded() {
        let t0 = Instant::now();
        let mut e = following(3, &[1, 2], 1, 1, t0);
        let change = e
            .handover(peer(1), peer(9), t0)
            .unwrap()
            .expect("handed over");
        assert_eq!((change.new, change.term), (peer(9), 2));
        assert_eq!(e.tick(at(t0, 1_000)), None, "it may still connect");
        let change = e.tick(at(t0, 3_100)).expect("succeeded");
        assert_eq!((change.new, change.term), (peer(1), 3));
        // One that connects in time stays.
        let mut e = following(3, &[1, 2], 1, 1, t0);
        e.handover(peer(1), peer(9), t0).unwrap();
        assert_eq!(e.tick(at(t0, 1_000)), None);
        e.connected(peer(9), at(t0, 1_500));
        assert_eq!(e.claim(peer(9), 2, at(t0, 1_600)), (Verdict::Follow, None));
        assert_eq!(e.tick(at(t0, 3_000)), None);
        assert_eq!(e.authority(), Some(peer(9)));
        // Silent for HOLD_FOR: forgotten; the next world adopted.
        assert_eq!(e.tick(at(t0, 3_700)), None);
        assert_eq!(e.authority(), None);
        let (verdict, change) = e.claim(peer(1), 2, at(t0, 3_800));
        assert_eq!(
            (verdict, change.map(|c| c.new)),
            (Verdict::Follow, Some(peer(1)))
        );
    }

    #[test]
    fn a_silent_peer_with_the_lowest_id_does_not_stall_the_room() {
        let t0 = Instant::now();
        let mut e: Election = Election::new(peer(3), t0);
        e.connected(peer(1), t0);
        e.connected(peer(2), t0);
        assert_eq!(e.tick(at(t0, 500)).map(|c| c.new), Some(peer(1)));
        // 1 never speaks: forgotten, then 2 is elected.
        assert_eq!(e.tick(at(t0, 2_600)), None);
        assert_eq!(e.authority(), None);
        assert_eq!(e.tick(at(t0, 3_200)).map(|c| c.new), Some(peer(2)));
    }

    #[test]
    fn fresh_authorities_settle_on_the_winning_claim() {
        let t0 = Instant::now();
        // We (2) elected ourselves out of silence before 1 connected; 1
        // did the same.
        let mut e: Election = Election::new(peer(2), t0);
        e.connected(peer(3), t0);
        assert!(e.tick(at(t0, 600)).is_some_and(|c| c.is_us));
        e.connected(peer(1), at(t0, 605));
        let (verdict, change) = e.claim(peer(1), 0, at(t0, 610));
        assert_eq!(verdict, Verdict::Follow);
        assert_eq!(change.map(|c| (c.new, c.is_us)), Some((peer(1), false)));
        // A newcomer that elected itself (3, term 0) loses to a followed one.
        let mut e = following(4, &[1, 3], 1, 1, t0);
        assert_eq!(e.claim(peer(3), 0, t0), (Verdict::Hold, None));
        assert_eq!(e.authority(), Some(peer(1)));
    }

    #[test]
    fn terms_stay_bounded_and_the_authoritys_own_term_moves_by_one() {
        let t0 = Instant::now();
        let mut e = following(3, &[1, 2], 1, MAX_TERM, t0);
        // Succession at the maximum does not overflow.
        let change = e.left(peer(1), t0).expect("succession");
        assert_eq!(change.term, MAX_TERM, "terms stop growing at the maximum");
        assert_eq!(e.claim(peer(2), MAX_TERM, t0), (Verdict::Follow, None));
        assert_eq!(
            e.claim(peer(2), MAX_TERM + 1, t0).0,
            Verdict::Refused(ClaimRefused::TermTooHigh(MAX_TERM + 1))
        );
        let mut e = following(3, &[1], 1, 0, t0);
        assert_eq!(e.claim(peer(1), 1, t0), (Verdict::Follow, None));
        assert_eq!(e.claim(peer(1), 0, t0), (Verdict::Follow, None), "lagging");
        assert_eq!(e.claim(peer(1), 7, t0), (Verdict::Ignore, None), "a jump");
        assert_eq!(e.term(), 1);
    }
}
