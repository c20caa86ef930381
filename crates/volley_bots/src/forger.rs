//! A hostile peer for replicated rooms: it speaks replication's protocol
//! (so honest peers accept it as compatible) without taking part in it,
//! and once connected to `peers` peers sends every one of them, every
//! frame, what a cheater would — authority claims no election allows
//! (a term past the maximum, a handover to itself), plausible claims that
//! need the authority's confirmation, worlds over the entity limit, deltas
//! to slots nobody registered, and once a world over the byte limit.
//! Honest peers must keep their authority and world, and drop it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bevy::app::{App, Plugin, PostUpdate};
use bevy::prelude::*;
use bevy_volley::replication::{MAX_WORLD_BYTES, ReplicationReliable, ReplicationUnreliable};
use bevy_volley::{Channel, NetAppExt, PeerId, VolleySession, VolleySet};
use volley_net::replication::{MAX_ENTITIES, ReplicationMessage, WorldState};

/// Sends forged replication messages once connected to `peers` peers.
#[derive(Clone)]
pub struct ForgerPlugin {
    /// Peers to be connected to before the first attack.
    pub peers: usize,
    /// The honest peers' entity limit, to send one more.
    pub max_entities: usize,
    /// The honest peers' world byte limit, to send more.
    pub max_world_bytes: usize,
    /// When it first attacked (shared, so a test can read it after the run).
    pub started: Arc<Mutex<Option<Instant>>>,
}

impl ForgerPlugin {
    /// Attacks once connected to `peers` peers, exceeding the default limits.
    pub fn new(peers: usize) -> Self {
        ForgerPlugin {
            peers,
            max_entities: MAX_ENTITIES,
            max_world_bytes: MAX_WORLD_BYTES,
            started: Arc::default(),
        }
    }
}

#[derive(Resource)]
struct Forger {
    plugin: ForgerPlugin,
    round: u64,
}

impl Plugin for ForgerPlugin {
    fn build(&self, app: &mut App) {
        // The same message types, in the same order, as `ReplicationPlugin`
        // registers: the protocol hashes match.
        app.add_net_message::<ReplicationReliable>(Channel::Reliable)
            .add_net_message::<ReplicationUnreliable>(Channel::Unreliable)
            .insert_resource(Forger {
                plugin: self.clone(),
                round: 0,
            })
            .add_systems(PostUpdate, forge.after(VolleySet::Send));
    }
}

/// A world of `entities` entities with one empty slot each.
fn world(entities: u64) -> WorldState {
    WorldState {
        entities: (0..entities).map(|id| (id, vec![None])).collect(),
    }
}

fn full(term: u32, world: WorldState) -> ReplicationMessage {
    ReplicationMessage::Full {
        term,
        tick: u32::MAX,
        input_ack: u32::MAX,
        world,
    }
}

fn forge(mut forger: ResMut<Forger>, volley: Option<ResMut<VolleySession>>) {
    let Some(mut volley) = volley else { return };
    let session = volley.session();
    let Some(me) = session.id() else { return };
    let peers: Vec<PeerId> = session.connected_peers().collect();
    if peers.len() < forger.plugin.peers {
        return;
    }
    forger
        .plugin
        .started
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(Instant::now);
    let round = forger.round;
    forger.round += 1;
    let mut reliable = vec![
        full(u32::MAX, world(1)),
        ReplicationMessage::Handover { to: me },
        // Plausible: held until the authority confirms it, which it won't.
        full(2, world(1)),
    ];
    let (max_entities, max_bytes) = (forger.plugin.max_entities, forger.plugin.max_world_bytes);
    if round < 4 {
        // Over the entity limit: decoded (if under the byte limit), then
        // refused whole.
        reliable.push(full(1, world(max_entities as u64 + 1)));
        // Over the byte limit: refused before decoding.
        let huge = WorldState {
            entities: BTreeMap::from([(0, vec![Some(vec![7u8; max_bytes + 1])])]),
        };
        reliable.push(full(1, huge));
    }
    let unreliable = ReplicationMessage::Delta {
        term: 1,
        tick: u32::MAX,
        input_ack: 0,
        baseline: 0,
        changed: vec![(1, vec![(200, Some(vec![1]))])],
        despawned: vec![u64::MAX],
    };
    for peer in peers {
        for message in &reliable {
            let _ = session.send(peer, &ReplicationReliable(message.clone()));
        }
        let _ = session.send(peer, &ReplicationUnreliable(unreliable.clone()));
    }
}
