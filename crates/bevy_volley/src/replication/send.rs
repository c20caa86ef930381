//! On the authority: ids for new replicated entities, the world extracted,
//! and each peer's full world or delta sent, once per tick.

use std::collections::HashMap;
use std::time::Duration;

use bevy::ecs::prelude::*;
use bevy::time::Time;
use tracing::debug;
use volley_net::NetError;
use volley_net::replication::{Components, Delivery, NetId, WorldState};

use super::registry::{Extract, Registry};
use super::{
    Engine, NetEntity, Replicated, ReplicationPriority, ReplicationReliable, ReplicationStatus,
    ReplicationUnreliable,
};
use crate::VolleySession;

/// On the authority, every tick: ids for new replicated entities, the world
/// extracted, and each peer's message sent.
pub(super) fn replicate(world: &mut World) {
    let due = {
        let delta = world.resource::<Time>().delta();
        let mut engine = world.resource_mut::<Engine>();
        if engine.authority.is_none() {
            return;
        }
        engine.since += delta;
        if engine.since < engine.period {
            false
        } else {
            engine.since = Duration::ZERO;
            true
        }
    };
    if !due {
        return;
    }
    let Some(me) = world
        .get_resource_mut::<VolleySession>()
        .and_then(|mut v| v.session().id())
    else {
        return;
    };
    // Ids: our id's high bits and a counter, unique across authorities.
    let fresh: Vec<Entity> = world
        .query_filtered::<Entity, (With<Replicated>, Without<NetEntity>)>()
        .iter(world)
        .collect();
    for entity in fresh {
        let id = {
            let mut engine = world.resource_mut::<Engine>();
            engine.next_id += 1;
            ((me.0.as_u128() as u64) & 0xffff_ffff_0000_0000) | (engine.next_id & 0xffff_ffff)
        };
        world.entity_mut(entity).insert(NetEntity(id));
        world.resource_mut::<Engine>().entities.insert(id, entity);
    }
    let extractors: Vec<Extract> = world.resource::<Registry>().0.iter().map(|r| r.1).collect();
    let mut state = WorldState::default();
    let replicated: Vec<(Entity, NetId)> = world
        .query_filtered::<(Entity, &NetEntity), With<Replicated>>()
        .iter(world)
        .map(|(e, n)| (e, n.0))
        .collect();
    for (entity, id) in replicated {
        let components: Components = extractors.iter().map(|x| x(world, entity)).collect();
        state.entities.insert(id, components);
    }
    let tick = {
        let mut status = world.resource_mut::<ReplicationStatus>();
        status.tick += 1;
        status.tick
    };
    let priorities: HashMap<NetId, f32> = world
        .query::<(&NetEntity, &ReplicationPriority)>()
        .iter(world)
        .map(|(n, p)| (n.0, p.0))
        .collect();
    let mut engine = world.resource_mut::<Engine>();
    if let Some(authority) = engine.authority.as_mut() {
        authority.set_priorities(priorities);
    }
    let processed = std::mem::take(&mut engine.processed);
    let messages = match engine.authority.as_mut() {
        Some(authority) => authority.tick_with_input_acks(tick, state, |peer| {
            processed.get(&peer).copied().unwrap_or(0)
        }),
        None => Vec::new(),
    };
    engine.processed = processed;
    let Some(mut volley) = world.get_resource_mut::<VolleySession>() else {
        return;
    };
    let session = volley.session();
    for (peer, delivery, message) in messages {
        let result = match delivery {
            Delivery::Reliable => session.send(peer, &ReplicationReliable(message)),
            Delivery::Unreliable => match session
                .send(peer, &ReplicationUnreliable(message.clone()))
            {
                // Too big for one unreliable message: it goes reliably.
                Err(NetError::TooLarge { .. }) => session.send(peer, &ReplicationReliable(message)),
                other => other,
            },
        };
        if let Err(e) = result {
            debug!("volley: replication to {peer} not sent: {e}");
        }
    }
}
