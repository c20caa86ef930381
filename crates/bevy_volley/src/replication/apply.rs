//! The mirror's newest authoritative world applied to the Bevy world, on
//! peers other than the authority.

use bevy::ecs::prelude::*;
use bevy::platform::time::Instant;
use volley_net::replication::NetId;

use super::registry::{Apply, Registry};
use super::{Engine, NetEntity, Replicated, ReplicationStatus};

/// Makes the world match the mirror's newest state (non-authority peers).
pub(super) fn apply_world(world: &mut World) {
    let (tick, state) = {
        let engine = world.resource::<Engine>();
        if engine.authority.is_some() {
            return;
        }
        match engine.mirror.current() {
            Some((tick, state)) if engine.applied != Some(tick) => (tick, state.clone()),
            _ => return,
        }
    };
    let appliers: Vec<Apply> = world.resource::<Registry>().0.iter().map(|r| r.2).collect();
    let mut entities = std::mem::take(&mut world.resource_mut::<Engine>().entities);
    // Gone since the last applied world.
    let gone: Vec<NetId> = entities
        .keys()
        .filter(|id| !state.entities.contains_key(id))
        .copied()
        .collect();
    for id in gone {
        if let Some(entity) = entities.remove(&id) {
            world.despawn(entity);
        }
    }
    let mut invalid = 0;
    for (id, components) in &state.entities {
        let entity = match entities
            .get(id)
            .copied()
            .filter(|e| world.get_entity(*e).is_ok())
        {
            Some(entity) => entity,
            None => {
                let entity = world.spawn((Replicated, NetEntity(*id))).id();
                entities.insert(*id, entity);
                entity
            }
        };
        for (slot, apply) in appliers.iter().enumerate() {
            let bytes = components.get(slot).and_then(|c| c.as_deref());
            if !apply(world, entity, bytes, tick) {
                invalid += 1;
            }
        }
    }
    let mut engine = world.resource_mut::<Engine>();
    engine.entities = entities;
    engine.applied = Some(tick);
    engine.applied_at = Some(Instant::now());
    let mut status = world.resource_mut::<ReplicationStatus>();
    status.tick = tick;
    status.invalid_messages += invalid;
}
