//! State replication over the mesh, as pure state machines (no sockets, no
//! ECS): an elected [`Authority`] turns its world, tick by tick, into
//! per-peer messages; a [`Mirror`] on every other peer rebuilds the world
//! from them. The engine layer (bevy_volley) extracts and applies worlds and
//! moves the messages.
//!
//! - A newcomer (and every peer after a change of authority) gets the whole
//!   world reliably ([`ReplicationMessage::Full`]).
//! - Then every tick a [`ReplicationMessage::Delta`] against the last tick
//!   that peer acknowledged, unreliably: only what differs from that
//!   baseline, spawns and despawns included. A lost delta costs nothing but
//!   a larger next one, and a spawn or despawn is repeated in every delta
//!   until a tick containing it is acknowledged — reliable by construction.
//! - A mirror applies a delta onto its copy of the exact baseline tick, and
//!   acknowledges only deltas it could apply in full.
//!
//! The authority is the connected peer with the lowest id ([`elect`]):
//! every peer computes the same one alone, and when it leaves the next one
//! takes over from its mirror of the world.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::PeerId;

/// A replicated entity's id, the same on every peer.
pub type NetId = u64;

/// One entity's components by registration slot: encoded bytes, or `None`
/// when the entity lacks that component.
pub type Components = Vec<Option<Vec<u8>>>;

/// An entity's changed slots: (slot, the new value or `None` for removed).
pub type SlotChanges = Vec<(u8, Option<Vec<u8>>)>;

/// The replicated world at one tick.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorldState {
    /// Entities by id.
    pub entities: BTreeMap<NetId, Components>,
}

/// What travels between the authority and the mirrors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicationMessage {
    /// The whole world at `tick` (reliable).
    Full {
        /// The sender's authority term (see [`Authority::term`]).
        term: u32,
        /// The authority's tick.
        tick: u32,
        /// The receiver's last input the authority had applied by then
        /// (client-side prediction replays the ones after it).
        input_ack: u32,
        /// Every entity.
        world: WorldState,
    },
    /// The world at `tick` as changes from `baseline` (unreliable).
    Delta {
        /// As in `Full`.
        term: u32,
        /// The authority's tick.
        tick: u32,
        /// As in `Full`.
        input_ack: u32,
        /// A tick the receiver acknowledged.
        baseline: u32,
        /// Entities new or changed since the baseline: changed slots only
        /// for entities the baseline has, every slot for new ones.
        changed: Vec<(NetId, SlotChanges)>,
        /// Entities gone since the baseline.
        despawned: Vec<NetId>,
    },
    /// The authority hands over to `to` (reliable, to every peer): from
    /// now on `to` replicates, from its copy of the world.
    Handover {
        /// The new authority.
        to: PeerId,
    },
    /// A mirror has the world of `tick` (unreliable, to the authority).
    Ack {
        /// The tick.
        tick: u32,
    },
}

/// Something a mirror could not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    /// A delta against a baseline this mirror no longer (or never) had.
    #[error("delta against unknown baseline {0}")]
    UnknownBaseline(u32),
    /// A slot number beyond the registered components.
    #[error("component slot {slot} out of range ({slots} registered)")]
    BadSlot {
        /// The slot.
        slot: u8,
        /// Slots registered.
        slots: usize,
    },
    /// A message only an authority should receive, or vice versa.
    #[error("unexpected message")]
    Unexpected,
}

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

/// How a message must travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Reliable and ordered.
    Reliable,
    /// Unreliable.
    Unreliable,
}

/// Ticks of history the authority keeps for baselines.
pub const HISTORY: usize = 64;

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
    /// or no longer known). The first acknowledgement makes a fresh
    /// authority (term 0) established (term 1).
    pub fn ack(&mut self, peer: PeerId, tick: u32) {
        if let Some(link) = self.peers.get_mut(&peer)
            && link.sent.iter().any(|(t, _)| *t == tick)
        {
            self.term = self.term.max(1);
            if link.acked.is_none_or(|a| tick > a) {
                link.acked = Some(tick);
            }
        }
    }

    /// The authority's term, sent with every world: 0 for an authority
    /// that elected itself and nobody follows yet, 1 once a peer follows,
    /// and one more than its predecessor's for one that took over (see
    /// [`claim_wins`]). Two peers claiming authority at once settle on it.
    pub fn term(&self) -> u32 {
        self.term
    }

    /// Sets the term (a successor's: the predecessor's + 1).
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

/// The mirror side: the worlds of recent ticks, to apply deltas onto.
#[derive(Debug)]
pub struct Mirror {
    slots: usize,
    worlds: BTreeMap<u32, Arc<WorldState>>,
    current: Option<u32>,
    input_ack: u32,
}

impl Mirror {
    /// A mirror of a world with `slots` registered components.
    pub fn new(slots: usize) -> Self {
        Mirror {
            slots,
            worlds: BTreeMap::new(),
            current: None,
            input_ack: 0,
        }
    }

    /// The newest world applied, and its tick.
    pub fn current(&self) -> Option<(u32, &WorldState)> {
        let tick = self.current?;
        self.worlds.get(&tick).map(|w| (tick, w.as_ref()))
    }

    /// Forgets everything (a new authority will send a full world).
    pub fn reset(&mut self) {
        self.worlds.clear();
        self.current = None;
        self.input_ack = 0;
    }

    /// Our last input the authority had applied in the current world.
    pub fn input_ack(&self) -> u32 {
        self.input_ack
    }

    /// Applies a message from the authority. Returns the acknowledgement to
    /// send back when it produced a newer world (`Ok(None)`: stale or
    /// duplicate, nothing to do).
    pub fn receive(
        &mut self,
        message: ReplicationMessage,
    ) -> Result<Option<ReplicationMessage>, ReplicationError> {
        let (tick, input_ack, world) = match message {
            ReplicationMessage::Full {
                tick,
                input_ack,
                world,
                ..
            } => {
                self.check(&world)?;
                if self.current.is_some_and(|c| tick <= c) {
                    return Ok(None);
                }
                (tick, input_ack, world)
            }
            ReplicationMessage::Delta {
                tick,
                input_ack,
                baseline,
                changed,
                despawned,
                ..
            } => {
                if self.current.is_some_and(|c| tick <= c) {
                    return Ok(None);
                }
                let base = self
                    .worlds
                    .get(&baseline)
                    .ok_or(ReplicationError::UnknownBaseline(baseline))?;
                let mut world = (**base).clone();
                for id in despawned {
                    world.entities.remove(&id);
                }
                for (id, slots) in changed {
                    let entity = world
                        .entities
                        .entry(id)
                        .or_insert_with(|| vec![None; self.slots]);
                    for (slot, value) in slots {
                        let cell =
                            entity
                                .get_mut(slot as usize)
                                .ok_or(ReplicationError::BadSlot {
                                    slot,
                                    slots: self.slots,
                                })?;
                        *cell = value;
                    }
                }
                (tick, input_ack, world)
            }
            ReplicationMessage::Ack { .. } | ReplicationMessage::Handover { .. } => {
                return Err(ReplicationError::Unexpected);
            }
        };
        self.worlds.insert(tick, Arc::new(world));
        self.current = Some(tick);
        self.input_ack = input_ack;
        // Baselines older than the authority's history are useless.
        while self.worlds.len() > HISTORY {
            self.worlds.pop_first();
        }
        Ok(Some(ReplicationMessage::Ack { tick }))
    }

    fn check(&self, world: &WorldState) -> Result<(), ReplicationError> {
        match world.entities.values().find(|c| c.len() != self.slots) {
            Some(c) => Err(ReplicationError::BadSlot {
                slot: c.len().min(255) as u8,
                slots: self.slots,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u128) -> PeerId {
        PeerId(uuid::Uuid::from_u128(n))
    }

    fn world(entities: &[(NetId, &[Option<&[u8]>])]) -> WorldState {
        WorldState {
            entities: entities
                .iter()
                .map(|(id, cs)| (*id, cs.iter().map(|c| c.map(<[u8]>::to_vec)).collect()))
                .collect(),
        }
    }

    /// Delivers the authority's messages to the mirror, dropping unreliable
    /// ones when `lose` says so; acks go back unless lost too.
    fn deliver(
        authority: &mut Authority,
        mirror: &mut Mirror,
        me: PeerId,
        messages: Vec<(PeerId, Delivery, ReplicationMessage)>,
        lose: bool,
    ) {
        for (to, delivery, message) in messages {
            assert_eq!(to, me);
            if lose && delivery == Delivery::Unreliable {
                continue;
            }
            if let Some(ReplicationMessage::Ack { tick }) = mirror.receive(message).unwrap()
                && !lose
            {
                authority.ack(me, tick);
            }
        }
    }

    #[test]
    fn the_lowest_id_is_elected_by_everyone() {
        let (a, b, c) = (peer(1), peer(2), peer(3));
        assert_eq!(elect(b, [c, a]), a);
        assert_eq!(elect(a, [b, c]), a);
        assert_eq!(elect(c, [b]), b);
        assert_eq!(elect(c, []), c);
    }

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
    fn stale_and_unusable_messages_change_nothing() {
        let mut mirror = Mirror::new(1);
        let full = ReplicationMessage::Full {
            tick: 5,
            term: 0,
            input_ack: 0,
            world: world(&[(1, &[Some(b"a")])]),
        };
        assert!(mirror.receive(full.clone()).unwrap().is_some());
        assert_eq!(mirror.receive(full).unwrap(), None, "a duplicate");
        let old = ReplicationMessage::Full {
            tick: 4,
            term: 0,
            input_ack: 0,
            world: WorldState::default(),
        };
        assert_eq!(
            mirror.receive(old).unwrap(),
            None,
            "older than what we have"
        );
        let unknown = ReplicationMessage::Delta {
            tick: 9,
            term: 0,
            input_ack: 0,
            baseline: 7,
            changed: vec![],
            despawned: vec![],
        };
        assert_eq!(
            mirror.receive(unknown),
            Err(ReplicationError::UnknownBaseline(7))
        );
        let bad_slot = ReplicationMessage::Delta {
            tick: 9,
            term: 0,
            input_ack: 0,
            baseline: 5,
            changed: vec![(1, vec![(3, None)])],
            despawned: vec![],
        };
        assert!(matches!(
            mirror.receive(bad_slot),
            Err(ReplicationError::BadSlot { .. })
        ));
        let wrong_width = ReplicationMessage::Full {
            tick: 10,
            term: 0,
            input_ack: 0,
            world: world(&[(1, &[None, None])]),
        };
        assert!(matches!(
            mirror.receive(wrong_width),
            Err(ReplicationError::BadSlot { .. })
        ));
        assert_eq!(mirror.current().map(|(t, _)| t), Some(5));
        assert_eq!(
            mirror.receive(ReplicationMessage::Ack { tick: 1 }),
            Err(ReplicationError::Unexpected)
        );
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
        // The first follower makes an authority's term 1.
        let mut authority = Authority::new();
        authority.add_peer(high);
        let out = authority.tick(1, WorldState::default());
        assert!(matches!(out[0].2, ReplicationMessage::Full { term: 0, .. }));
        authority.ack(high, 1);
        assert_eq!(authority.term(), 1);
        let out = authority.tick(2, WorldState::default());
        assert!(matches!(
            out[0].2,
            ReplicationMessage::Delta { term: 1, .. }
        ));
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
