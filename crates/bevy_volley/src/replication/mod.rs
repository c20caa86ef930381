//! State sync: the authority peer replicates registered components of
//! [`Replicated`] entities to every other peer in the room, through
//! [`volley_net::replication`]'s state machines.
//!
//! The authority is decided without a round trip (see `elect_authority`):
//! a room's first peers elect the lowest id, newcomers adopt the authority
//! that sends them the world, and when it leaves the lowest remaining id
//! takes over from its copy of the world ([`AuthorityChanged`]). Only the authority's changes
//! count: on other peers replicated components are overwritten with the
//! authority's state every tick.
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_volley::prelude::*;
//! use bevy_volley::replication::{ReplicationAppExt, ReplicationPlugin, Replicated};
//!
//! #[derive(Component, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
//! struct Position(i32, i32);
//!
//! App::new()
//!     .add_plugins((
//!         MinimalPlugins,
//!         VolleyPlugin::new("ws://127.0.0.1:3536/board"),
//!         ReplicationPlugin::default(),
//!     ))
//!     .replicate::<Position>()
//!     .add_systems(Startup, |mut commands: Commands| {
//!         commands.spawn((Replicated, Position(0, 0)));
//!     })
//!     .run();
//! ```

mod apply;
mod election;
mod interpolation;
mod prediction;
mod receive;
mod registry;
mod send;

use std::collections::HashMap;
use std::time::Duration;

use bevy::app::{App, Plugin, PostUpdate, PreUpdate};
use bevy::ecs::message::Message;
use bevy::ecs::prelude::*;
use bevy::platform::time::Instant;
use volley_net::replication::{
    Authority, Election, Mirror, MirrorLimits, NetId, ReplicationMessage,
};
use volley_net::{Channel, MAX_UNRELIABLE, PeerId};

use crate::{NetAppExt, VolleySet};

pub use interpolation::{INTERPOLATION_DELAY, Interpolate, Snapshots};
pub use prediction::{MAX_INPUT_BYTES, Owner, PlayerInput, PredictionAppExt, SequencedInput};
pub use registry::{ReplicatedComponent, ReplicationAppExt};

use apply::apply_world;
use election::{elect_authority, hand_over};
use receive::receive;
use registry::Registry;
use send::replicate;

/// Marks an entity for replication (spawn it on the authority).
#[derive(Component, Debug, Clone, Copy, Default)]
pub struct Replicated;

/// A replicated entity's id, the same on every peer.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetEntity(pub NetId);

/// The authority changed (also at the first election).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorityChanged {
    /// The previous authority, if any.
    pub old: Option<PeerId>,
    /// The new one.
    pub new: PeerId,
    /// Whether that is us.
    pub is_us: bool,
}

/// Write one on the authority to hand authority to another connected peer
/// (ignored elsewhere, and for peers that are not connected).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandOver(pub PeerId);

/// Replication's state, for game systems (`run_if(is_authority)`) and overlays.
#[derive(Resource, Debug, Clone, Default)]
pub struct ReplicationStatus {
    /// The current authority.
    pub authority: Option<PeerId>,
    /// Whether we are it.
    pub is_authority: bool,
    /// The authority's tick (ours when we are it; the last applied otherwise).
    pub tick: u32,
    /// Replication messages from peers that were not usable (malformed
    /// worlds, worlds over the entity limit, inputs over their queue).
    pub invalid_messages: u64,
    /// The authority's term (see [`volley_net::replication::Election`]).
    pub term: u32,
    /// Claims of authority no honest peer makes (each one counts against
    /// its sender, see `PeerLimits::strikes`).
    pub forged_claims: u64,
    /// Claims dropped because nobody confirmed them (a few in start-up
    /// races; a steady rise means a peer claims what it does not have).
    pub unconfirmed_claims: u64,
}

/// A run condition: this peer is the authority.
pub fn is_authority(status: Res<ReplicationStatus>) -> bool {
    status.is_authority
}

/// Where replication's systems run, to order game systems against.
///
/// `Receive` runs in `PreUpdate` after [`VolleySet::Receive`]: authority
/// election, received messages, handover, the authority's world applied,
/// then interpolation and reconciliation of predictions. `Send` runs in
/// `PostUpdate` before [`VolleySet::Send`]: local prediction, then the
/// authority's tick (ids for new entities, extract, send).
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicationSet {
    /// `PreUpdate`: this frame's authority and world; order `.after` it to read them.
    Receive,
    /// `PostUpdate`: inputs predicted, world sent; order `.before` it to send changes now.
    Send,
}

/// Replicates at `tick_rate` ticks per second (default 30), within
/// `budget` bytes per second per peer when set.
#[derive(Debug, Clone, Copy)]
pub struct ReplicationPlugin {
    /// Ticks per second.
    pub tick_rate: u32,
    /// Bytes per second of deltas per peer (`None`: unlimited). Over it,
    /// entities' changes wait their turn by [`ReplicationPriority`].
    pub budget: Option<u32>,
    /// The largest reliable replication message (a full world) accepted
    /// ([`MAX_WORLD_BYTES`]); larger ones count against their sender.
    pub max_world_bytes: usize,
    /// What a mirror accepts (entities per world, [`volley_net::replication::MAX_ENTITIES`]).
    pub mirror_limits: MirrorLimits,
}

/// The largest full world accepted by default: 4 MiB, a quarter of the
/// generic decode limit (16 384 entities of 256 bytes).
pub const MAX_WORLD_BYTES: usize = 4 << 20;

impl Default for ReplicationPlugin {
    fn default() -> Self {
        ReplicationPlugin {
            tick_rate: 30,
            budget: None,
            max_world_bytes: MAX_WORLD_BYTES,
            mirror_limits: MirrorLimits::default(),
        }
    }
}

impl ReplicationPlugin {
    /// Ticks per second.
    pub fn tick_rate(mut self, ticks: u32) -> Self {
        self.tick_rate = ticks;
        self
    }

    /// Bytes per second of deltas per peer.
    pub fn budget(mut self, bytes_per_second: Option<u32>) -> Self {
        self.budget = bytes_per_second;
        self
    }

    /// The largest full world accepted.
    pub fn max_world_bytes(mut self, bytes: usize) -> Self {
        self.max_world_bytes = bytes;
        self
    }

    /// The most entities a world may have.
    pub fn max_entities(mut self, entities: usize) -> Self {
        self.mirror_limits.max_entities = entities;
        self
    }
}

/// How much an entity's changes matter under a bandwidth budget (default
/// 1): one of priority 4 is updated about four times as often as one of 1.
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct ReplicationPriority(pub f32);

/// Sent reliably (full worlds, and deltas too large for one unreliable message).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReplicationReliable(pub ReplicationMessage);

/// Sent unreliably (deltas, acknowledgements).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReplicationUnreliable(pub ReplicationMessage);

#[derive(Resource)]
struct Engine {
    authority: Option<Authority>,
    mirror: Mirror,
    period: Duration,
    since: Duration,
    next_id: u64,
    /// NetId → local entity, on every peer.
    entities: HashMap<NetId, Entity>,
    /// The mirror tick last applied to the world, and when.
    applied: Option<u32>,
    applied_at: Option<Instant>,
    /// Who the authority is (once our id is known), with the full worlds
    /// of the claims it holds.
    election: Option<Election<ReplicationMessage>>,
    /// A held world whose claim was confirmed, to apply first.
    replay: Option<(PeerId, ReplicationMessage)>,
    /// On the authority: each peer's last input applied.
    processed: HashMap<PeerId, u32>,
    /// Delta bytes per peer per tick (`None`: unlimited).
    budget: Option<usize>,
}

pub use volley_net::replication::ELECTION_WAIT;

impl Plugin for ReplicationPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Registry>();
        let slots = app.world().resource::<Registry>().0.len();
        app.init_resource::<ReplicationStatus>()
            .add_message::<AuthorityChanged>()
            .add_message::<HandOver>()
            .add_net_message_limited::<ReplicationReliable>(Channel::Reliable, self.max_world_bytes)
            .add_net_message_limited::<ReplicationUnreliable>(Channel::Unreliable, MAX_UNRELIABLE)
            .insert_resource(Engine {
                authority: None,
                mirror: Mirror::with_limits(slots, self.mirror_limits),
                period: Duration::from_secs(1) / self.tick_rate.max(1),
                since: Duration::ZERO,
                next_id: 0,
                entities: HashMap::new(),
                applied: None,
                applied_at: None,
                election: None,
                replay: None,
                processed: HashMap::new(),
                budget: self
                    .budget
                    .map(|b| (b / self.tick_rate.max(1)).max(1) as usize),
            })
            .configure_sets(PreUpdate, ReplicationSet::Receive.after(VolleySet::Receive))
            .configure_sets(PostUpdate, ReplicationSet::Send.before(VolleySet::Send))
            .add_systems(
                PreUpdate,
                (elect_authority, receive, hand_over, apply_world)
                    .chain()
                    .in_set(ReplicationSet::Receive),
            )
            .add_systems(PostUpdate, replicate.in_set(ReplicationSet::Send));
    }
}
