//! The mirror side: the worlds of recent ticks, rebuilt from the
//! authority's messages, within limits a hostile authority cannot pass.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{HISTORY, ReplicationError, ReplicationMessage, WorldState};

/// Entities a mirror accepts in one world by default: far more than a
/// peer-to-peer game replicates, far less than what exhausts memory when
/// [`HISTORY`] worlds are kept.
pub const MAX_ENTITIES: usize = 16_384;

/// What a mirror accepts from an authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorLimits {
    /// Entities in one world ([`MAX_ENTITIES`]): a full world or a delta
    /// that would make more is refused whole.
    pub max_entities: usize,
}

impl Default for MirrorLimits {
    fn default() -> Self {
        MirrorLimits {
            max_entities: MAX_ENTITIES,
        }
    }
}

/// The mirror side: the worlds of recent ticks, to apply deltas onto.
#[derive(Debug)]
pub struct Mirror {
    slots: usize,
    limits: MirrorLimits,
    worlds: BTreeMap<u32, Arc<WorldState>>,
    current: Option<u32>,
    input_ack: u32,
}

impl Mirror {
    /// A mirror of a world with `slots` registered components.
    pub fn new(slots: usize) -> Self {
        Mirror::with_limits(slots, MirrorLimits::default())
    }

    /// A mirror with other limits.
    pub fn with_limits(slots: usize, limits: MirrorLimits) -> Self {
        Mirror {
            slots,
            limits,
            worlds: BTreeMap::new(),
            current: None,
            input_ack: 0,
        }
    }

    /// Its limits.
    pub fn limits(&self) -> MirrorLimits {
        self.limits
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
                // Checked before any work: at most this many entities result.
                let most = base.entities.len().saturating_add(changed.len());
                if changed.len() > self.limits.max_entities {
                    return Err(ReplicationError::TooManyEntities {
                        entities: most,
                        limit: self.limits.max_entities,
                    });
                }
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
                if world.entities.len() > self.limits.max_entities {
                    return Err(ReplicationError::TooManyEntities {
                        entities: world.entities.len(),
                        limit: self.limits.max_entities,
                    });
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

    /// Checks what a message can be checked for without this mirror's
    /// worlds: a full world's entities and their slots, a delta's count
    /// of changes and their slot numbers. A claim is judged only if this
    /// passes (a hostile peer's held world is refused as early as a
    /// followed one).
    pub fn validate(&self, message: &ReplicationMessage) -> Result<(), ReplicationError> {
        match message {
            ReplicationMessage::Full { world, .. } => self.check(world),
            ReplicationMessage::Delta { changed, .. } => {
                if changed.len() > self.limits.max_entities {
                    return Err(ReplicationError::TooManyEntities {
                        entities: changed.len(),
                        limit: self.limits.max_entities,
                    });
                }
                match changed
                    .iter()
                    .flat_map(|(_, slots)| slots)
                    .find(|(slot, _)| usize::from(*slot) >= self.slots)
                {
                    Some((slot, _)) => Err(ReplicationError::BadSlot {
                        slot: *slot,
                        slots: self.slots,
                    }),
                    None => Ok(()),
                }
            }
            ReplicationMessage::Handover { .. } | ReplicationMessage::Ack { .. } => Ok(()),
        }
    }

    fn check(&self, world: &WorldState) -> Result<(), ReplicationError> {
        if world.entities.len() > self.limits.max_entities {
            return Err(ReplicationError::TooManyEntities {
                entities: world.entities.len(),
                limit: self.limits.max_entities,
            });
        }
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
    use super::super::test_support::world;
    use super::*;

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
    fn worlds_over_the_entity_limit_are_refused_whole() {
        let mut mirror = Mirror::with_limits(1, MirrorLimits { max_entities: 2 });
        let full = |tick, n: u64| ReplicationMessage::Full {
            tick,
            term: 0,
            input_ack: 0,
            world: WorldState {
                entities: (0..n).map(|id| (id, vec![None])).collect(),
            },
        };
        assert!(matches!(
            mirror.receive(full(1, 3)),
            Err(ReplicationError::TooManyEntities {
                entities: 3,
                limit: 2
            })
        ));
        assert!(mirror.receive(full(2, 2)).unwrap().is_some());
        // A delta spawning a third entity: refused, the world stays.
        let spawn = ReplicationMessage::Delta {
            tick: 3,
            term: 0,
            input_ack: 0,
            baseline: 2,
            changed: vec![(9, vec![(0, None)])],
            despawned: vec![],
        };
        assert!(matches!(
            mirror.receive(spawn),
            Err(ReplicationError::TooManyEntities { .. })
        ));
        // A delta listing more changes than the limit is refused unapplied.
        let huge = ReplicationMessage::Delta {
            tick: 3,
            term: 0,
            input_ack: 0,
            baseline: 2,
            changed: (10..20).map(|id| (id, vec![])).collect(),
            despawned: (0..2).collect(),
        };
        assert!(matches!(
            mirror.receive(huge),
            Err(ReplicationError::TooManyEntities { .. })
        ));
        assert_eq!(
            mirror.current().map(|(t, w)| (t, w.entities.len())),
            Some((2, 2))
        );
    }
}
