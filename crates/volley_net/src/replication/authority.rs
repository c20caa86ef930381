//! The authority side: the world, tick by tick, as per-peer messages —
//! a full world to a peer without a usable baseline, else a delta against
//! the newest tick it acknowledged, within an optional bandwidth budget.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::{Delivery, HISTORY, NetId, ReplicationMessage, SlotChanges, WorldState};
use crate::PeerId;

/// The authority side: per peer, the worlds it was sent (what it will have
/// at each tick once that message arrives), its acknowledged tick, and how
/// long each entity's changes have waited under a bandwidth budget.
#[derive(Debug, Default)]
pub struct Authority {
    peers: HashMap<PeerId, PeerLink>,
    /// Bytes a delta may take per tick, per peer (`None`: no limit).
    budget: Option<usize>,
    /// Entity priorities (default 1): under a budget, an entity's changes
    /// wait in proportion to the others' priorities.
    priorities: HashMap<NetId, f32>,
    term: u32,
}

#[derive(Debug, Default)]
struct PeerLink {
    /// The baseline for its next delta: the newest tick it acknowledged, or
    /// the tick of the full world it was sent (`None`, or a tick no longer
    /// in `sent`: it needs a full world).
    acked: Option<u32>,
    /// What it will have at each recent tick.
    sent: VecDeque<(u32, Arc<WorldState>)>,
    /// Accumulated priority of changes not sent yet, by entity.
    waiting: HashMap<NetId, f32>,
}

impl Authority {
    /// No peers, no limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `bytes` of changes per peer per tick (bytes/s ÷ tick rate):
    /// a large world degrades to slower updates of low-priority entities
    /// instead of flooding the channel. Despawns always go; one entity per
    /// tick goes even if it alone is over the budget.
    pub fn set_budget(&mut self, bytes: Option<usize>) {
        self.budget = bytes;
    }

    /// Entity priorities for the budget (entities not named: 1).
    pub fn set_priorities(&mut self, priorities: HashMap<NetId, f32>) {
        self.priorities = priorities;
    }

    /// A peer to replicate to; it gets the full world next tick.
    pub fn add_peer(&mut self, peer: PeerId) {
        self.peers.insert(peer, PeerLink::default());
    }

    /// A peer that left.
    pub fn remove_peer(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
    }

    /// The peers replicated to.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.keys().copied()
    }

    /// A peer acknowledged `tick` (ignored when older than what it acked,
    /// or never sent to it). Returns whether it was a tick we sent it: a
    /// peer that follows us (see [`super::Election::acked`]).
    pub fn ack(&mut self, peer: PeerId, tick: u32) -> bool {
        let Some(link) = self.peers.get_mut(&peer) else {
            return false;
        };
        if !link.sent.iter().any(|(t, _)| *t == tick) {
            return false;
        }
        if link.acked.is_none_or(|a| tick > a) {
            link.acked = Some(tick);
        }
        true
    }

    /// The term sent with every world (the [`super::Election`]'s).
    pub fn term(&self) -> u32 {
        self.term
    }

    /// Sets the term the election gave us.
    pub fn set_term(&mut self, term: u32) {
        self.term = term;
    }

    /// Records the world at `tick` and returns what each peer needs.
    pub fn tick(
        &mut self,
        tick: u32,
        world: WorldState,
    ) -> Vec<(PeerId, Delivery, ReplicationMessage)> {
        self.tick_with_input_acks(tick, world, |_| 0)
    }

    /// [`Authority::tick`], telling each peer the last of its inputs
    /// applied to this world (`input_ack(peer)`).
    pub fn tick_with_input_acks(
        &mut self,
        tick: u32,
        world: WorldState,
        input_ack: impl Fn(PeerId) -> u32,
    ) -> Vec<(PeerId, Delivery, ReplicationMessage)> {
        let world = Arc::new(world);
        let mut out = Vec::with_capacity(self.peers.len());
        let mut peers: Vec<PeerId> = self.peers.keys().copied().collect();
        peers.sort();
        for peer in peers {
            let Some(link) = self.peers.get_mut(&peer) else {
                continue;
            };
            let baseline = link
                .acked
                .and_then(|b| link.sent.iter().find(|(t, _)| *t == b).cloned());
            let (message, delivery, now_has) = match baseline {
                Some((base_tick, base)) => {
                    let (mut changed, despawned) = diff(&base, &world);
                    let now_has = match self.budget {
                        None => world.clone(),
                        Some(budget) => {
                            changed =
                                within_budget(changed, budget, &self.priorities, &mut link.waiting);
                            Arc::new(applied(&base, &changed, &despawned))
                        }
                    };
                    let message = ReplicationMessage::Delta {
                        tick,
                        term: self.term,
                        input_ack: input_ack(peer),
                        baseline: base_tick,
                        changed,
                        despawned,
                    };
                    (message, Delivery::Unreliable, now_has)
                }
                None => {
                    // Reliable delivery means it will have this tick: the
                    // next deltas build on it (one that overtakes the full
                    // world is dropped by the mirror and not acknowledged).
                    link.acked = Some(tick);
                    link.waiting.clear();
                    let message = ReplicationMessage::Full {
                        tick,
                        term: self.term,
                        input_ack: input_ack(peer),
                        world: (*world).clone(),
                    };
                    (message, Delivery::Reliable, world.clone())
                }
            };
            link.sent.push_back((tick, now_has));
            while link.sent.len() > HISTORY {
                link.sent.pop_front();
            }
            out.push((peer, delivery, message));
        }
        out
    }
}

/// Bytes a change takes on the wire, roughly (ids and lengths as varints).
fn change_size(slots: &SlotChanges) -> usize {
    8 + slots
        .iter()
        .map(|(_, v)| 3 + v.as_ref().map_or(0, Vec::len))
        .sum::<usize>()
}

/// The changes that fit `budget`, most-waited-for first; the others wait
/// longer (their priority accumulates), so every entity gets its turn.
fn within_budget(
    changed: Vec<(NetId, SlotChanges)>,
    budget: usize,
    priorities: &HashMap<NetId, f32>,
    waiting: &mut HashMap<NetId, f32>,
) -> Vec<(NetId, SlotChanges)> {
    let priority = |id: &NetId| priorities.get(id).copied().unwrap_or(1.0);
    let mut ranked: Vec<(f32, NetId, SlotChanges)> = changed
        .into_iter()
        .map(|(id, slots)| {
            let urgency = waiting.get(&id).copied().unwrap_or(0.0) + priority(&id);
            (urgency, id, slots)
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut used = 0;
    let mut sent = Vec::new();
    let mut still_waiting = HashMap::new();
    for (urgency, id, slots) in ranked {
        let size = change_size(&slots);
        if sent.is_empty() || used + size <= budget {
            used += size;
            sent.push((id, slots));
        } else {
            still_waiting.insert(id, urgency);
        }
    }
    *waiting = still_waiting;
    sent.sort_by_key(|(id, _)| *id);
    sent
}

/// `base` with `changed` and `despawned` applied: what a mirror builds.
fn applied(base: &WorldState, changed: &[(NetId, SlotChanges)], despawned: &[NetId]) -> WorldState {
    let mut world = base.clone();
    for id in despawned {
        world.entities.remove(id);
    }
    for (id, slots) in changed {
        let width = slots
            .iter()
            .map(|(s, _)| *s as usize + 1)
            .max()
            .unwrap_or(0);
        let entity = world.entities.entry(*id).or_default();
        if entity.len() < width {
            entity.resize(width, None);
        }
        for (slot, value) in slots {
            entity[*slot as usize] = value.clone();
        }
    }
    world
}

/// Entities new or changed from `base` to `world`, and those gone.
pub fn diff(base: &WorldState, world: &WorldState) -> (Vec<(NetId, SlotChanges)>, Vec<NetId>) {
    let mut changed = Vec::new();
    for (id, components) in &world.entities {
        let slots: SlotChanges = match base.entities.get(id) {
            None => components
                .iter()
                .enumerate()
                .map(|(slot, c)| (slot as u8, c.clone()))
                .collect(),
            Some(before) => components
                .iter()
                .enumerate()
                .filter(|(slot, c)| before.get(*slot) != Some(*c))
                .map(|(slot, c)| (slot as u8, c.clone()))
                .collect(),
        };
        if !slots.is_empty() || !base.entities.contains_key(id) {
            changed.push((*id, slots));
        }
    }
    let despawned = base
        .entities
        .keys()
        .filter(|id| !world.entities.contains_key(id))
        .copied()
        .collect();
    (changed, despawned)
}

#[cfg(test)]
mod tests {
    use super::super::Mirror;
    use super::super::test_support::{deliver, peer, world};
    use super::*;

    #[test]
    fn full_then_deltas_against_the_acknowledged_baseline() {
        let me = peer(2);
        let mut authority = Authority::new();
        let mut mirror = Mirror::new(2);
        authority.add_peer(me);
        let w1 = world(&[(1, &[Some(b"a"), None]), (2, &[Some(b"b"), Some(b"x")])]);
        let out = authority.tick(1, w1.clone());
        assert!(matches!(
            out[0],
            (_, Delivery::Reliable, ReplicationMessage::Full { .. })
        ));
        deliver(&mut authority, &mut mirror, me, out, false);
        assert_eq!(mirror.current(), Some((1, &w1)));

        // Entity 1 changes slot 0, entity 2 goes, entity 3 comes.
        let w2 = world(&[(1, &[Some(b"A"), None]), (3, &[None, Some(b"c")])]);
        let out = authority.tick(2, w2.clone());
        match &out[0].2 {
            ReplicationMessage::Delta {
                baseline,
                changed,
                despawned,
                ..
            } => {
                assert_eq!(*baseline, 1);
                assert_eq!(despawned, &vec![2]);
                assert_eq!(changed.len(), 2);
                assert_eq!(changed[0], (1, vec![(0, Some(b"A".to_vec()))]));
            }
            other => panic!("expected a delta, got {other:?}"),
        }
        deliver(&mut authority, &mut mirror, me, out, false);
        assert_eq!(mirror.current(), Some((2, &w2)));
    }

    #[test]
    fn lost_deltas_cost_only_a_larger_next_one() {
        let me = peer(2);
        let mut authority = Authority::new();
        let mut mirror = Mirror::new(1);
        authority.add_peer(me);
        let at = |t: u32, n: u64| WorldState {
            entities: (0..n)
                .map(|id| (id, vec![Some(vec![(t % 7) as u8, id as u8])]))
                .collect(),
        };
        let out = authority.tick(1, at(1, 3));
        deliver(&mut authority, &mut mirror, me, out, false);
        // Ticks 2–5 lost (spawning entity 3 on the way), tick 6 arrives.
        for t in 2..=5 {
            let out = authority.tick(t, at(t, 4));
            deliver(&mut authority, &mut mirror, me, out, true);
        }
        assert_eq!(mirror.current().map(|(t, _)| t), Some(1));
        let out = authority.tick(6, at(6, 4));
        match &out[0].2 {
            ReplicationMessage::Delta {
                baseline, changed, ..
            } => {
                assert_eq!(*baseline, 1);
                assert!(
                    changed.iter().any(|(id, _)| *id == 3),
                    "the spawn is repeated"
                );
            }
            other => panic!("expected a delta, got {other:?}"),
        }
        deliver(&mut authority, &mut mirror, me, out, false);
        assert_eq!(mirror.current(), Some((6, &at(6, 4))));
    }

    #[test]
    fn a_peer_whose_baseline_fell_out_of_history_gets_a_full_world_again() {
        let me = peer(2);
        let mut authority = Authority::new();
        let mut mirror = Mirror::new(1);
        authority.add_peer(me);
        let w = |t: u32| world(&[(1, &[Some(&[t as u8])])]);
        let out = authority.tick(1, w(1));
        deliver(&mut authority, &mut mirror, me, out, false);
        // Nothing arrives for longer than the history: tick 1 falls out.
        let mut fulls = Vec::new();
        for t in 2..=(HISTORY as u32 + 2) {
            let out = authority.tick(t, w(t));
            if matches!(
                out[0],
                (_, Delivery::Reliable, ReplicationMessage::Full { .. })
            ) {
                fulls.push(t);
            }
            deliver(&mut authority, &mut mirror, me, out, true);
        }
        assert_eq!(
            fulls,
            vec![HISTORY as u32 + 2],
            "one full world, when tick 1 fell out"
        );
        assert_eq!(mirror.current().map(|(t, _)| t), Some(HISTORY as u32 + 2));
        // Deltas build on it from then on.
        let out = authority.tick(HISTORY as u32 + 3, w(3));
        deliver(&mut authority, &mut mirror, me, out, false);
        assert_eq!(mirror.current(), Some((HISTORY as u32 + 3, &w(3))));
    }

    #[test]
    fn a_budget_sends_the_most_urgent_changes_and_starves_nobody() {
        let me = peer(2);
        let mut authority = Authority::new();
        let mut mirror = Mirror::new(1);
        authority.add_peer(me);
        // 100 entities of ~10 bytes; about 10 changes fit a tick.
        let budget = 10 * change_size(&vec![(0, Some(vec![0; 10]))]);
        authority.set_budget(Some(budget));
        authority.set_priorities(HashMap::from([(7, 50.0)]));
        let at = |t: u32| WorldState {
            entities: (0..100u64)
                .map(|id| (id, vec![Some(vec![t as u8; 10])]))
                .collect(),
        };
        let out = authority.tick(1, at(1));
        deliver(&mut authority, &mut mirror, me, out, false);
        let mut last_seen: HashMap<NetId, u32> = HashMap::new();
        for t in 2..=40 {
            let out = authority.tick(t, at(t));
            if let ReplicationMessage::Delta { changed, .. } = &out[0].2 {
                let size: usize = changed.iter().map(|(_, s)| change_size(s)).sum();
                assert!(size <= budget, "tick {t}: {size} bytes over {budget}");
                assert!(
                    changed.iter().any(|(id, _)| *id == 7),
                    "the urgent entity goes every tick"
                );
                for (id, _) in changed {
                    last_seen.insert(*id, t);
                }
            }
            deliver(&mut authority, &mut mirror, me, out, false);
        }
        // Everyone got a turn in the last 15 ticks.
        for id in 0..100 {
            assert!(
                last_seen.get(&id).is_some_and(|t| *t > 25),
                "entity {id} starved"
            );
        }
        // Once the world stops changing, the mirror catches up exactly.
        for t in 41..=60 {
            let out = authority.tick(t, at(40));
            deliver(&mut authority, &mut mirror, me, out, false);
        }
        assert_eq!(mirror.current(), Some((60, &at(40))));
    }

    proptest::proptest! {
        /// Whatever the worlds and whichever unreliable messages are lost,
        /// the first delta that arrives makes the mirror equal the authority.
        #[test]
        fn any_loss_pattern_converges_on_the_next_delivery(
            worlds in proptest::collection::vec(
                proptest::collection::btree_map(0u64..12, proptest::collection::vec(
                    proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4)), 2), 0..8),
                1..40),
            losses in proptest::collection::vec(proptest::prelude::any::<bool>(), 40),
        ) {
            let me = peer(9);
            let mut authority = Authority::new();
            let mut mirror = Mirror::new(2);
            authority.add_peer(me);
            let mut tick = 0;
            for (entities, lose) in worlds.iter().zip(&losses) {
                tick += 1;
                let out = authority.tick(tick, WorldState { entities: entities.clone() });
                deliver(&mut authority, &mut mirror, me, out, *lose);
            }
            let last = WorldState { entities: worlds.last().cloned().unwrap_or_default() };
            let out = authority.tick(tick + 1, last.clone());
            deliver(&mut authority, &mut mirror, me, out, false);
            proptest::prop_assert_eq!(mirror.current(), Some((tick + 1, &last)));
        }
    }
}
