//! Client-side prediction: inputs to [`Owner`]ed entities applied at once
//! locally, sent to the authority, and replayed after each correction.

use std::collections::VecDeque;

use bevy::app::{App, PostUpdate, PreUpdate};
use bevy::ecs::message::{Message, MessageReader};
use bevy::ecs::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::debug;
use volley_net::replication::InputQueue;
use volley_net::{Channel, PeerId, SessionEvent};

use super::apply::apply_world;
use super::registry::{ReplicatedComponent, ReplicationAppExt};
use super::send::replicate;
use super::{AuthorityChanged, Engine, ReplicationSet, ReplicationStatus};
use crate::{NetAppExt, NetPeerEvent, NetReceived, VolleySession};

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

/// The largest encoded input accepted: inputs are small by nature, and a
/// peer's larger ones count against it.
pub const MAX_INPUT_BYTES: usize = 4096;

/// On the authority: other peers' inputs of type `I`, waiting their turn.
#[derive(Resource)]
struct Inputs<I>(InputQueue<I>);

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
            .insert_resource(Inputs::<I>(InputQueue::default()))
            .init_resource::<InputSeq>()
            .add_message::<PlayerInput<I>>()
            .add_net_message_limited::<SequencedInput<I>>(Channel::Reliable, MAX_INPUT_BYTES)
            .add_systems(
                PreUpdate,
                (authority_inputs::<C, I>, reconcile::<C, I>)
                    .after(apply_world)
                    .in_set(ReplicationSet::Receive),
            )
            .add_systems(
                PostUpdate,
                predict_local::<C, I>
                    .before(replicate)
                    .in_set(ReplicationSet::Send),
            )
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

/// On the authority: other peers' inputs queue up (bounded per peer; a
/// peer over the bound is counted against) and at most a few per peer are
/// stepped each update.
#[allow(clippy::too_many_arguments)]
fn authority_inputs<C, I>(
    mut received: MessageReader<NetReceived<SequencedInput<I>>>,
    mut changed: MessageReader<AuthorityChanged>,
    mut peer_events: MessageReader<NetPeerEvent>,
    mut status: ResMut<ReplicationStatus>,
    step: Res<Step<C, I>>,
    mut queue: ResMut<Inputs<I>>,
    mut engine: ResMut<Engine>,
    mut volley: Option<ResMut<VolleySession>>,
    mut owned: Query<(&Owner, &mut C)>,
) where
    C: Component<Mutability = bevy::ecs::component::Mutable>,
    I: Clone + Send + Sync + 'static,
{
    if changed.read().count() > 0 {
        queue.0.clear();
    }
    for NetPeerEvent(event) in peer_events.read() {
        if let SessionEvent::Left(peer, _) = event {
            queue.0.remove(*peer);
        }
    }
    if !status.is_authority {
        received.clear();
        return;
    }
    for message in received.read() {
        let (from, seq) = (message.from, message.message.seq);
        if let Err(e) = queue.0.push(from, seq, message.message.input.clone()) {
            status.invalid_messages += 1;
            if let Some(volley) = volley.as_mut() {
                volley.session().report_invalid(from, &e);
            }
        }
    }
    for (peer, input) in queue.0.drain_update() {
        for (owner, mut component) in &mut owned {
            if owner.0 == peer {
                (step.0)(&mut component, &input);
            }
        }
        let applied = queue.0.applied(peer);
        let last = engine.processed.entry(peer).or_insert(0);
        *last = (*last).max(applied);
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
