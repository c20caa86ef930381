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

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bevy::app::{App, Plugin, PostUpdate, PreUpdate};
use bevy::ecs::message::{Message, MessageReader, MessageWriter};
use bevy::ecs::prelude::*;
use bevy::platform::time::Instant;
use bevy::time::Time;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};
use volley_net::codec::{Bincode, Codec};
use volley_net::replication::{
    Authority, Components, Delivery, Mirror, NetId, ReplicationError, ReplicationMessage,
    WorldState, claim_wins, elect,
};
use volley_net::{Channel, NetError, PeerId, SessionEvent};

use crate::{NetAppExt, NetPeerEvent, NetReceived, VolleySession, VolleySet};

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
    /// Replication messages from peers that were not usable.
    pub invalid_messages: u64,
    /// The authority's term (see `volley_net::replication::claim_wins`).
    pub term: u32,
}

/// A run condition: this peer is the authority.
pub fn is_authority(status: Res<ReplicationStatus>) -> bool {
    status.is_authority
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
}

impl Default for ReplicationPlugin {
    fn default() -> Self {
        ReplicationPlugin {
            tick_rate: 30,
            budget: None,
        }
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

type Extract = fn(&World, Entity) -> Option<Vec<u8>>;
type Apply = fn(&mut World, Entity, Option<&[u8]>, u32) -> bool;

/// The replicated component types, in registration order (= slot).
#[derive(Resource, Default)]
struct Registry(Vec<(&'static str, Extract, Apply)>);

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
    /// When we started waiting for an authority to speak.
    waiting_since: Option<Instant>,
    /// On the authority: each peer's last input applied.
    processed: HashMap<PeerId, u32>,
    /// Delta bytes per peer per tick (`None`: unlimited).
    budget: Option<usize>,
}

/// How long a peer without an authority waits for one to speak before it
/// elects one itself (a room's first peers, all without state).
pub const ELECTION_WAIT: Duration = Duration::from_millis(500);

impl Plugin for ReplicationPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Registry>();
        let slots = app.world().resource::<Registry>().0.len();
        app.init_resource::<ReplicationStatus>()
            .add_message::<AuthorityChanged>()
            .add_message::<HandOver>()
            .add_net_message::<ReplicationReliable>(Channel::Reliable)
            .add_net_message::<ReplicationUnreliable>(Channel::Unreliable)
            .insert_resource(Engine {
                authority: None,
                mirror: Mirror::new(slots),
                period: Duration::from_secs(1) / self.tick_rate.max(1),
                since: Duration::ZERO,
                next_id: 0,
                entities: HashMap::new(),
                applied: None,
                applied_at: None,
                waiting_since: None,
                processed: HashMap::new(),
                budget: self
                    .budget
                    .map(|b| (b / self.tick_rate.max(1)).max(1) as usize),
            })
            .add_systems(
                PreUpdate,
                (elect_authority, receive, hand_over, apply_world)
                    .chain()
                    .after(VolleySet::Receive),
            )
            .add_systems(PostUpdate, replicate.before(VolleySet::Send));
    }
}

/// What a replicated component must be: mutable (the authority's state is
/// written into it), comparable (only real changes are written), and
/// serializable. Implemented for every such component.
pub trait ReplicatedComponent:
    Component<Mutability = bevy::ecs::component::Mutable>
    + Clone
    + PartialEq
    + Serialize
    + DeserializeOwned
{
}

impl<C> ReplicatedComponent for C where
    C: Component<Mutability = bevy::ecs::component::Mutable>
        + Clone
        + PartialEq
        + Serialize
        + DeserializeOwned
{
}

/// Registering replicated components.
pub trait ReplicationAppExt {
    /// Replicates component `C` of [`Replicated`] entities. Every peer must
    /// register the same components in the same order.
    fn replicate<C>(&mut self) -> &mut Self
    where
        C: ReplicatedComponent;

    /// Replicates `C` like [`ReplicationAppExt::replicate`], and on peers
    /// other than the authority shows it [`INTERPOLATION_DELAY`] ticks in
    /// the past, interpolated between the two snapshots around that
    /// moment: smooth motion at any tick rate, whatever the frame rate.
    fn replicate_interpolated<C>(&mut self) -> &mut Self
    where
        C: ReplicatedComponent + Interpolate;
}

impl ReplicationAppExt for App {
    fn replicate_interpolated<C>(&mut self) -> &mut Self
    where
        C: ReplicatedComponent + Interpolate,
    {
        register::<C>(self, apply_interpolated::<C>);
        self.add_systems(
            PreUpdate,
            (interpolate::<C>, settle::<C>)
                .after(apply_world)
                .after(VolleySet::Receive),
        )
    }

    fn replicate<C>(&mut self) -> &mut Self
    where
        C: ReplicatedComponent,
    {
        register::<C>(self, apply::<C>)
    }
}

fn register<C: Component + Serialize>(app: &mut App, apply: Apply) -> &mut App {
    app.init_resource::<Registry>();
    let name = std::any::type_name::<C>();
    if app
        .world()
        .resource::<Registry>()
        .0
        .iter()
        .any(|r| r.0 == name)
    {
        return app; // registered already (e.g. by `predict`)
    }
    app.world_mut().resource_mut::<Registry>().0.push((
        std::any::type_name::<C>(),
        extract::<C>,
        apply,
    ));
    let slots = app.world().resource::<Registry>().0.len();
    if let Some(mut engine) = app.world_mut().get_resource_mut::<Engine>() {
        engine.mirror = Mirror::new(slots);
    }
    app
}

/// Values that can be blended, for [`ReplicationAppExt::replicate_interpolated`].
pub trait Interpolate: Sized {
    /// `self` at `t` = 0, `to` at `t` = 1.
    fn interpolate(&self, to: &Self, t: f32) -> Self;
}

/// Ticks remote interpolated components are shown in the past: two
/// snapshots to blend between even when one is late or lost.
pub const INTERPOLATION_DELAY: f32 = 2.0;

/// Snapshots kept per interpolated component.
const SNAPSHOTS: usize = 8;

/// The authoritative values of an interpolated component, by tick.
#[derive(Component, Debug, Clone)]
pub struct Snapshots<C> {
    values: VecDeque<(u32, C)>,
}

impl<C: Interpolate + Clone> Snapshots<C> {
    /// The value at a fractional `tick`: blended between the snapshots
    /// around it; the oldest before them, the newest after them.
    pub fn sample(&self, tick: f32) -> Option<C> {
        let (first, last) = (self.values.front()?, self.values.back()?);
        if tick <= first.0 as f32 {
            return Some(first.1.clone());
        }
        if tick >= last.0 as f32 {
            return Some(last.1.clone());
        }
        let after = self.values.iter().position(|(t, _)| *t as f32 >= tick)?;
        let (t0, v0) = &self.values[after.checked_sub(1)?];
        let (t1, v1) = &self.values[after];
        let span = (*t1 - *t0).max(1) as f32;
        Some(v0.interpolate(v1, (tick - *t0 as f32) / span))
    }

    /// The newest authoritative value.
    pub fn latest(&self) -> Option<&C> {
        self.values.back().map(|(_, v)| v)
    }
}

/// Records the authoritative value (and shows it at once the first time).
fn apply_interpolated<C>(world: &mut World, entity: Entity, bytes: Option<&[u8]>, tick: u32) -> bool
where
    C: Component<Mutability = bevy::ecs::component::Mutable> + Clone + PartialEq + DeserializeOwned,
{
    let Ok(mut e) = world.get_entity_mut(entity) else {
        return true;
    };
    let Some(bytes) = bytes else {
        e.remove::<(C, Snapshots<C>)>();
        return true;
    };
    let Ok(value) = Bincode.decode::<C>(bytes) else {
        return false;
    };
    if !e.contains::<C>() {
        e.insert(value.clone());
    }
    match e.get_mut::<Snapshots<C>>() {
        Some(mut snapshots) => {
            if snapshots.values.back().is_none_or(|(t, _)| *t < tick) {
                snapshots.values.push_back((tick, value));
                while snapshots.values.len() > SNAPSHOTS {
                    snapshots.values.pop_front();
                }
            }
        }
        None => {
            e.insert(Snapshots {
                values: VecDeque::from([(tick, value)]),
            });
        }
    }
    true
}

/// Shows interpolated components [`INTERPOLATION_DELAY`] ticks behind the
/// authority's estimated tick (the last applied one plus the time since).
fn interpolate<C>(
    engine: Res<Engine>,
    status: Res<ReplicationStatus>,
    mut query: Query<(&Snapshots<C>, &mut C)>,
) where
    C: Component<Mutability = bevy::ecs::component::Mutable> + Clone + PartialEq + Interpolate,
{
    if status.is_authority {
        return;
    }
    let Some(at) = engine.applied_at else { return };
    let elapsed = at.elapsed().as_secs_f32() / engine.period.as_secs_f32().max(1e-6);
    // No extrapolation: at most one tick past the last snapshot's time.
    let now = status.tick as f32 + elapsed.min(1.0);
    let render = now - INTERPOLATION_DELAY;
    for (snapshots, mut value) in &mut query {
        if let Some(shown) = snapshots.sample(render)
            && *value != shown
        {
            *value = shown;
        }
    }
}

/// A peer that becomes the authority goes on from the newest authoritative
/// values, not the interpolated past.
fn settle<C>(
    mut commands: Commands,
    mut changed: MessageReader<AuthorityChanged>,
    mut query: Query<(Entity, &Snapshots<C>, &mut C)>,
) where
    C: Component<Mutability = bevy::ecs::component::Mutable> + Clone + Interpolate,
{
    if !changed.read().any(|c| c.is_us) {
        return;
    }
    for (entity, snapshots, mut value) in &mut query {
        if let Some(latest) = snapshots.latest() {
            *value = latest.clone();
        }
        commands.entity(entity).remove::<Snapshots<C>>();
    }
}

fn extract<C: Component + Serialize>(world: &World, entity: Entity) -> Option<Vec<u8>> {
    let component = world.get::<C>(entity)?;
    let mut bytes = Vec::new();
    match Bincode.encode(component, &mut bytes) {
        Ok(()) => Some(bytes),
        Err(e) => {
            warn!("volley: cannot encode {}: {e}", std::any::type_name::<C>());
            None
        }
    }
}

/// Sets (or removes) the component; false when the bytes did not decode.
fn apply<C>(world: &mut World, entity: Entity, bytes: Option<&[u8]>, _tick: u32) -> bool
where
    C: Component<Mutability = bevy::ecs::component::Mutable> + Clone + PartialEq + DeserializeOwned,
{
    let Ok(mut e) = world.get_entity_mut(entity) else {
        return true;
    };
    match bytes {
        None => {
            e.remove::<C>();
            true
        }
        Some(bytes) => match Bincode.decode::<C>(bytes) {
            Ok(value) => {
                match e.get_mut::<C>() {
                    // Only a real change marks it changed.
                    Some(mut current) => {
                        if *current != value {
                            *current = value;
                        }
                    }
                    None => {
                        e.insert(value);
                    }
                }
                true
            }
            Err(_) => false,
        },
    }
}

/// Who the authority is, decided so that a peer with state keeps it:
/// - a peer that knows no authority adopts the first one that sends it a
///   world, and elects the lowest id among the connected peers (itself
///   included) only after [`ELECTION_WAIT`] of silence;
/// - a known authority stays while connected, even when a peer with a
///   lower id joins (that peer has no state);
/// - when it leaves, the lowest remaining id takes over from its mirror;
/// - two peers claiming authority at once (they elected before seeing each
///   other) settle on the lower id: a full world from a lower id wins.
fn elect_authority(
    volley: Option<ResMut<VolleySession>>,
    mut engine: ResMut<Engine>,
    mut status: ResMut<ReplicationStatus>,
    mut peer_events: MessageReader<NetPeerEvent>,
    mut changed: MessageWriter<AuthorityChanged>,
) {
    let events: Vec<SessionEvent> = peer_events.read().map(|e| e.0.clone()).collect();
    let Some(mut volley) = volley else { return };
    let session = volley.session();
    let Some(me) = session.id() else { return };
    let peers: Vec<PeerId> = session.connected_peers().collect();
    if let Some(authority) = engine.authority.as_mut() {
        for event in &events {
            match event {
                SessionEvent::Connected(peer) => authority.add_peer(*peer),
                SessionEvent::Left(peer, _) => authority.remove_peer(*peer),
                _ => {}
            }
        }
    }
    let (elected, term) = match status.authority {
        Some(a) if a == me || peers.contains(&a) => return,
        // It left: the lowest remaining id succeeds it, one term later.
        Some(_) => (elect(me, peers.iter().copied()), status.term + 1),
        None => {
            // Wait for the mesh to be quiet: each newcomer restarts the wait.
            if events
                .iter()
                .any(|e| matches!(e, SessionEvent::Connected(_)))
            {
                engine.waiting_since = Some(Instant::now());
            }
            let since = *engine.waiting_since.get_or_insert_with(Instant::now);
            if since.elapsed() < ELECTION_WAIT {
                return;
            }
            // Elected out of silence: term 0 until someone follows.
            (elect(me, peers.iter().copied()), 0)
        }
    };
    set_authority(
        &mut engine,
        &mut status,
        &mut changed,
        me,
        elected,
        term,
        &peers,
    );
}

fn set_authority(
    engine: &mut Engine,
    status: &mut ReplicationStatus,
    changed: &mut MessageWriter<AuthorityChanged>,
    me: PeerId,
    elected: PeerId,
    term: u32,
    peers: &[PeerId],
) {
    let old = status.authority;
    status.authority = Some(elected);
    status.term = term;
    status.is_authority = elected == me;
    engine.waiting_since = None;
    engine.processed.clear();
    if status.is_authority {
        let mut authority = Authority::new();
        authority.set_budget(engine.budget);
        authority.set_term(term);
        for peer in peers {
            authority.add_peer(*peer);
        }
        engine.authority = Some(authority);
        // Our world is the mirror's latest: go on from its tick.
        status.tick = engine.applied.map_or(status.tick, |t| t.max(status.tick));
    } else {
        engine.authority = None;
        engine.mirror.reset();
        engine.applied = None;
    }
    debug!(
        "volley: replication authority {elected} (us: {})",
        status.is_authority
    );
    changed.write(AuthorityChanged {
        old,
        new: elected,
        is_us: status.is_authority,
    });
}

/// Feeds replication messages into the mirror (from the authority) or the
/// authority (acknowledgements).
fn receive(
    volley: Option<ResMut<VolleySession>>,
    mut engine: ResMut<Engine>,
    mut status: ResMut<ReplicationStatus>,
    mut changed: MessageWriter<AuthorityChanged>,
    mut reliable: MessageReader<NetReceived<ReplicationReliable>>,
    mut unreliable: MessageReader<NetReceived<ReplicationUnreliable>>,
) {
    let incoming: Vec<(PeerId, ReplicationMessage)> = reliable
        .read()
        .map(|m| (m.from, m.message.0.clone()))
        .chain(unreliable.read().map(|m| (m.from, m.message.0.clone())))
        .collect();
    let Some(mut volley) = volley else { return };
    let session = volley.session();
    let Some(me) = session.id() else { return };
    let peers: Vec<PeerId> = session.connected_peers().collect();
    for (from, message) in incoming {
        if let ReplicationMessage::Handover { to } = message {
            // Only the authority we follow may hand over; its heir's term
            // is one more.
            if Some(from) == status.authority && to != from {
                let term = status.term + 1;
                set_authority(&mut engine, &mut status, &mut changed, me, to, term, &peers);
            }
            continue;
        }
        let claim = match &message {
            ReplicationMessage::Full { term, .. } | ReplicationMessage::Delta { term, .. } => {
                Some(*term)
            }
            _ => None,
        };
        if let Some(term) = claim {
            let adopt = match status.authority {
                // The first authority that speaks.
                None => true,
                Some(a) if a == from => {
                    status.term = status.term.max(term);
                    false
                }
                // Another claimant: the higher term wins, then the lower id
                // (a newcomer that elected itself does not unseat an
                // authority that others follow).
                Some(a) => {
                    let known = engine.authority.as_ref().map_or(status.term, |x| x.term());
                    claim_wins(term, from, known, a)
                }
            };
            if adopt {
                set_authority(
                    &mut engine,
                    &mut status,
                    &mut changed,
                    me,
                    from,
                    term,
                    &peers,
                );
            }
        }
        if let Some(authority) = engine.authority.as_mut() {
            if let ReplicationMessage::Ack { tick } = message {
                authority.ack(from, tick);
            }
            continue;
        }
        if Some(from) != status.authority {
            continue; // a former authority's last words
        }
        match engine.mirror.receive(message) {
            Ok(Some(ack)) => {
                if let Err(e) = session.send(from, &ReplicationUnreliable(ack)) {
                    debug!("volley: ack not sent: {e}");
                }
            }
            Ok(None) => {}
            // A delta that overtook the full world it builds on: expected.
            Err(ReplicationError::UnknownBaseline(_)) => {}
            Err(e) => {
                status.invalid_messages += 1;
                debug!("volley: replication message from {from} dropped: {e}");
            }
        }
    }
}

/// On the authority: hands over when asked, telling every peer first.
fn hand_over(
    mut requests: MessageReader<HandOver>,
    volley: Option<ResMut<VolleySession>>,
    mut engine: ResMut<Engine>,
    mut status: ResMut<ReplicationStatus>,
    mut changed: MessageWriter<AuthorityChanged>,
) {
    let Some(HandOver(to)) = requests.read().last().copied() else {
        return;
    };
    let Some(mut volley) = volley else { return };
    let session = volley.session();
    let Some(me) = session.id() else { return };
    let peers: Vec<PeerId> = session.connected_peers().collect();
    if !status.is_authority || to == me || !peers.contains(&to) {
        return;
    }
    for peer in &peers {
        if let Err(e) = session.send(
            *peer,
            &ReplicationReliable(ReplicationMessage::Handover { to }),
        ) {
            debug!("volley: handover not sent to {peer}: {e}");
        }
    }
    // We become a mirror of the new authority (from its next full world);
    // the world we had stays as it is until then.
    // Our term as authority (it grew when the first peer followed us).
    let term = engine.authority.as_ref().map_or(status.term, |a| a.term());
    set_authority(&mut engine, &mut status, &mut changed, me, to, term, &peers);
}

/// Makes the world match the mirror's newest state (non-authority peers).
fn apply_world(world: &mut World) {
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

/// On the authority, every tick: ids for new replicated entities, the world
/// extracted, and each peer's message sent.
fn replicate(world: &mut World) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct X(f32);

    impl Interpolate for X {
        fn interpolate(&self, to: &Self, t: f32) -> Self {
            X(self.0 + (to.0 - self.0) * t)
        }
    }

    #[test]
    fn sampling_blends_between_snapshots_and_clamps_outside() {
        let snapshots = Snapshots {
            values: VecDeque::from([(10, X(0.0)), (11, X(10.0)), (13, X(30.0))]),
        };
        assert_eq!(snapshots.sample(9.0), Some(X(0.0)));
        assert_eq!(snapshots.sample(10.5), Some(X(5.0)));
        assert_eq!(
            snapshots.sample(12.0),
            Some(X(20.0)),
            "a missing tick is bridged"
        );
        assert_eq!(snapshots.sample(14.0), Some(X(30.0)), "no extrapolation");
        assert_eq!(snapshots.latest(), Some(&X(30.0)));
        let empty: Snapshots<X> = Snapshots {
            values: VecDeque::new(),
        };
        assert_eq!(empty.sample(1.0), None);
    }
}

/// The peer that controls a replicated entity: its inputs to it are
/// predicted there (see [`PredictionAppExt::predict`]).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Owner(pub PeerId);

/// Write one on the controlling peer to steer its [`Owner`]ed entities:
/// applied at once locally, sent to the authority, and replayed on top of
/// every authoritative correction until the authority has applied it.
#[derive(Message, Debug, Clone)]
pub struct PlayerInput<I: Send + Sync + 'static>(pub I);

/// An input with its sequence number, on its way to the authority.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SequencedInput<I> {
    /// Per-peer sequence number (across input types).
    pub seq: u32,
    /// The input.
    pub input: I,
}

/// Our inputs of type `I` the authority has not applied yet.
#[derive(Resource)]
struct Pending<I>(VecDeque<(u32, I)>);

/// Our last input sequence number.
#[derive(Resource, Default)]
struct InputSeq(u32);

/// Client-side prediction with reconciliation.
pub trait PredictionAppExt {
    /// Entities [`Owner`]ed by this peer take `I` inputs ([`PlayerInput`])
    /// through `step`, a deterministic function of the component and the
    /// input: predicted locally at once, applied by the authority when it
    /// arrives (reliably), and after each authoritative snapshot replayed
    /// from the snapshot for the inputs the authority had not applied yet.
    /// Registers `C` and [`Owner`] for replication (use plain, not
    /// interpolated, replication for a predicted component).
    fn predict<C, I>(&mut self, step: fn(&mut C, &I)) -> &mut Self
    where
        C: ReplicatedComponent,
        I: Clone + Serialize + DeserializeOwned + Send + Sync + 'static;
}

/// The step function of a predicted component, by type.
#[derive(Resource)]
struct Step<C, I>(fn(&mut C, &I));

impl PredictionAppExt for App {
    fn predict<C, I>(&mut self, step: fn(&mut C, &I)) -> &mut Self
    where
        C: ReplicatedComponent,
        I: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.replicate::<Owner>()
            .replicate::<C>()
            .insert_resource(Step::<C, I>(step))
            .insert_resource(Pending::<I>(VecDeque::new()))
            .init_resource::<InputSeq>()
            .add_message::<PlayerInput<I>>()
            .add_net_message::<SequencedInput<I>>(Channel::Reliable)
            .add_systems(
                PreUpdate,
                (authority_inputs::<C, I>, reconcile::<C, I>)
                    .after(apply_world)
                    .after(VolleySet::Receive),
            )
            .add_systems(PostUpdate, predict_local::<C, I>.before(replicate))
    }
}

fn predict_local<C, I>(
    mut inputs: MessageReader<PlayerInput<I>>,
    mut volley: Option<ResMut<VolleySession>>,
    status: Res<ReplicationStatus>,
    step: Res<Step<C, I>>,
    mut pending: ResMut<Pending<I>>,
    mut seq: ResMut<InputSeq>,
    mut owned: Query<(&Owner, &mut C)>,
) where
    C: Component<Mutability = bevy::ecs::component::Mutable>,
    I: Clone + Serialize + Send + Sync + 'static,
{
    let Some(volley) = volley.as_mut() else {
        inputs.clear();
        return;
    };
    let session = volley.session();
    let (Some(me), Some(authority)) = (session.id(), status.authority) else {
        inputs.clear();
        return;
    };
    for PlayerInput(input) in inputs.read() {
        for (owner, mut component) in &mut owned {
            if owner.0 == me {
                (step.0)(&mut component, input);
            }
        }
        if status.is_authority {
            continue; // applied for real
        }
        seq.0 += 1;
        pending.0.push_back((seq.0, input.clone()));
        let sent = session.send(
            authority,
            &SequencedInput {
                seq: seq.0,
                input: input.clone(),
            },
        );
        if let Err(e) = sent {
            debug!("volley: input not sent: {e}");
        }
    }
}

fn authority_inputs<C, I>(
    mut received: MessageReader<NetReceived<SequencedInput<I>>>,
    status: Res<ReplicationStatus>,
    step: Res<Step<C, I>>,
    mut engine: ResMut<Engine>,
    mut owned: Query<(&Owner, &mut C)>,
) where
    C: Component<Mutability = bevy::ecs::component::Mutable>,
    I: Send + Sync + 'static,
{
    if !status.is_authority {
        received.clear();
        return;
    }
    for message in received.read() {
        let last = engine.processed.entry(message.from).or_insert(0);
        if message.message.seq <= *last {
            continue;
        }
        *last = message.message.seq;
        for (owner, mut component) in &mut owned {
            if owner.0 == message.from {
                (step.0)(&mut component, &message.message.input);
            }
        }
    }
}

/// After an authoritative world was applied: forget the inputs it
/// includes, replay the rest on our entities.
#[allow(clippy::too_many_arguments)]
fn reconcile<C, I>(
    mut volley: Option<ResMut<VolleySession>>,
    engine: Res<Engine>,
    status: Res<ReplicationStatus>,
    step: Res<Step<C, I>>,
    mut pending: ResMut<Pending<I>>,
    mut changed: MessageReader<AuthorityChanged>,
    mut seen: Local<Option<u32>>,
    mut owned: Query<(&Owner, &mut C)>,
) where
    C: Component<Mutability = bevy::ecs::component::Mutable>,
    I: Send + Sync + 'static,
{
    if changed.read().count() > 0 {
        // A new authority never got them; it corrects us from its state.
        pending.0.clear();
    }
    if status.is_authority || engine.applied == *seen {
        return;
    }
    *seen = engine.applied;
    let ack = engine.mirror.input_ack();
    while pending.0.front().is_some_and(|(seq, _)| *seq <= ack) {
        pending.0.pop_front();
    }
    let Some(me) = volley.as_mut().and_then(|v| v.session().id()) else {
        return;
    };
    for (owner, mut component) in &mut owned {
        if owner.0 == me {
            for (_, input) in &pending.0 {
                (step.0)(&mut component, input);
            }
        }
    }
}
