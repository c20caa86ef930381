//! The election against a small model of a room: honest peers join (a full
//! mesh), leave, hand over and exchange worlds over reliable links that
//! deliver in any interleaving within [`LATENCY`], while a hostile peer sends every
//! kind of claim to peers that follow a followed authority (term ≥ 1). Checked: no peer ever
//! follows the hostile one, nobody's term passes [`MAX_TERM`], and once
//! the links are drained and time has passed, every honest peer follows
//! the same honest authority.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use proptest::prelude::*;
use web_time::Instant;

use super::test_support::peer;
use super::{Election, MAX_TERM, Verdict};
use crate::PeerId;

/// The most a message takes. (Slower links, beyond the election's waits,
/// can leave two authorities that each have followers: see election.rs.)
const LATENCY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
enum Op {
    Join(u8),
    Leave(u8),
    /// Milliseconds pass; every authority sends its world to everyone.
    Tick(u16),
    /// Deliver the oldest message on one link.
    Deliver(u8, u8),
    HandOver(u8, u8),
    /// The hostile peer claims (term offset, or a handover) to a peer.
    Forge(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => any::<u8>().prop_map(Op::Join),
        1 => any::<u8>().prop_map(Op::Leave),
        4 => (0u16..250).prop_map(Op::Tick),
        8 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Deliver(a, b)),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::HandOver(a, b)),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Forge(a, b)),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Msg {
    World(u32),
    Handover(PeerId),
    Ack,
}

struct Room {
    peers: BTreeMap<PeerId, Election>,
    /// Reliable links: (from, to) → messages in order, with when sent.
    links: BTreeMap<(PeerId, PeerId), VecDeque<(Instant, Msg)>>,
    hostile: PeerId,
}

impl Room {
    fn pick(&self, i: u8) -> Option<PeerId> {
        let n = self.peers.len();
        (n > 0).then(|| *self.peers.keys().nth(usize::from(i) % n).unwrap())
    }

    fn send(&mut self, from: PeerId, to: PeerId, msg: Msg, now: Instant) {
        self.links
            .entry((from, to))
            .or_default()
            .push_back((now, msg));
    }

    fn broadcast(&mut self, from: PeerId, msg: Msg, now: Instant) {
        let to: Vec<PeerId> = self.peers.keys().copied().filter(|p| *p != from).collect();
        for p in to {
            self.send(from, p, msg, now);
        }
    }

    /// Delivers every message sent before `before`, link by link.
    fn drain(&mut self, before: Instant, now: Instant) {
        while let Some((&(from, to), _)) = self
            .links
            .iter()
            .find(|(_, q)| q.front().is_some_and(|(sent, _)| *sent <= before))
        {
            let (_, msg) = self
                .links
                .get_mut(&(from, to))
                .unwrap()
                .pop_front()
                .unwrap();
            self.deliver(from, to, msg, now);
        }
    }

    /// Applies what one peer's election said; checks nobody follows the
    /// hostile peer.
    fn deliver(&mut self, from: PeerId, to: PeerId, msg: Msg, now: Instant) {
        let hostile = self.hostile;
        let Some(e) = self.peers.get_mut(&to) else {
            return;
        };
        match msg {
            Msg::World(term) => {
                let (verdict, _) = e.claim(from, term, now);
                if verdict == Verdict::Follow && from != hostile {
                    self.send(to, from, Msg::Ack, now);
                }
            }
            Msg::Handover(heir) => {
                let _ = e.handover(from, heir, now);
            }
            Msg::Ack => {
                e.acked(from);
            }
        }
        let e = &self.peers[&to];
        assert_ne!(
            e.authority(),
            Some(hostile),
            "{to} follows the hostile peer"
        );
        assert!(e.term() <= MAX_TERM);
    }

    fn tick(&mut self, now: Instant) {
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            let e = self.peers.get_mut(&id).unwrap();
            e.tick(now);
            if e.is_us() {
                let term = e.term();
                self.broadcast(id, Msg::World(term), now);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn election_matches_model(ops in proptest::collection::vec(op(), 1..150)) {
        let t0 = Instant::now();
        let mut now = t0;
        // The hostile peer has the highest id: never elected by the rules.
        let hostile = PeerId(uuid::Uuid::from_u128(u128::MAX));
        let mut room = Room { peers: BTreeMap::new(), links: BTreeMap::new(), hostile };
        let mut next_id = 1u128;
        for op in ops {
            match op {
                Op::Join(salt) => {
                    // Ids in any order relative to the peers there.
                    let id = peer(u128::from(salt) << 64 | next_id);
                    next_id += 1;
                    let mut e: Election = Election::new(id, now);
                    for (other, theirs) in room.peers.iter_mut() {
                        e.connected(*other, now);
                        theirs.connected(id, now);
                    }
                    room.peers.insert(id, e);
                }
                Op::Leave(i) => {
                    let Some(gone) = room.pick(i) else { continue };
                    room.peers.remove(&gone);
                    room.links.retain(|(a, b), _| *a != gone && *b != gone);
                    for e in room.peers.values_mut() {
                        e.left(gone, now);
                    }
                }
                Op::Tick(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    room.drain(now - LATENCY, now);
                    room.tick(now);
                }
                Op::Deliver(a, b) => {
                    let (Some(from), Some(to)) = (room.pick(a), room.pick(b)) else { continue };
                    if let Some((_, msg)) = room.links.get_mut(&(from, to)).and_then(VecDeque::pop_front) {
                        room.deliver(from, to, msg, now);
                    }
                }
                Op::HandOver(a, b) => {
                    let (Some(from), Some(to)) = (room.pick(a), room.pick(b)) else { continue };
                    if room.peers.get_mut(&from).unwrap().hand_over(to, now).is_some() {
                        room.broadcast(from, Msg::Handover(to), now);
                    }
                }
                Op::Forge(a, kind) => {
                    let Some(to) = room.pick(a) else { continue };
                    // Only to peers that follow a followed authority: a
                    // newcomer that knows none trusts the first that
                    // speaks, and a room's first authority gives way to a
                    // term-1 claim until someone follows it.
                    let e = &room.peers[&to];
                    if e.authority().is_none() || e.term() == 0 {
                        continue;
                    }
                    let term = e.term();
                    let msg = match kind % 7 {
                        0 => Msg::World(0),
                        1 => Msg::World(term),
                        2 => Msg::World(term.saturating_add(1)),
                        3 => Msg::World(term.saturating_add(2)),
                        4 => Msg::World(u32::MAX),
                        5 => Msg::Handover(hostile),
                        _ => Msg::Handover(to),
                    };
                    // The hostile peer is connected to `to` (it never is in
                    // the model's room, so nobody elects it).
                    room.peers.get_mut(&to).unwrap().connected(hostile, now);
                    room.deliver(hostile, to, msg, now);
                }
            }
        }
        // Quiescence: the hostile peer leaves, links drain, time passes.
        for e in room.peers.values_mut() {
            e.left(hostile, now);
        }
        for _ in 0..100 {
            now += LATENCY;
            room.drain(now, now);
            room.tick(now);
        }
        let authorities: Vec<Option<PeerId>> = room.peers.values().map(Election::authority).collect();
        if let Some(first) = authorities.first() {
            prop_assert!(first.is_some_and(|a| room.peers.contains_key(&a)), "{:?}", authorities);
            let states: Vec<String> = room.peers.iter().map(|(id, e)| format!("{id}: {:?} t{} us{}", e.authority(), e.term(), e.is_us())).collect();
            prop_assert!(authorities.iter().all(|a| a == first), "{:#?}", states);
        }
    }
}
