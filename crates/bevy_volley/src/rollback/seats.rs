//! Seating a player again in a running match: the driver of
//! [`volley_rollback::seats`]. Views go out when a player's connection
//! comes up; the state of the planned frame is saved in `SaveWorld`; the
//! restart itself (load the state, a new ggrs session as the next epoch,
//! players still away cut before its first frame) happens after the ggrs
//! update that confirmed the planned frame.

use std::collections::HashMap;
use std::time::Duration;

use bevy::ecs::message::MessageReader;
use bevy::ecs::prelude::*;
use bevy_ggrs::{ConfirmedFrameCount, RollbackFrameCount};
use volley_net::{PeerId, SessionEvent};
use volley_rollback::seats::{PLAN_LEAD, SeatAction, Seating, Seats};
use volley_rollback::{Drops, Pipe};

use super::drop::RollbackDrops;
use super::pipe::{RollbackGuard, RollbackPipe};
use super::session::build_p2p;
use super::state::{load_state, save_state};
use super::{RollbackConfig, RollbackEvent, RollbackInput, RollbackStatus, VolleyGgrs};
use crate::{NetPeerEvent, NetReceived, VolleySession};

/// The seating state machine, once the match started, and what it needs
/// kept between frames.
#[derive(Resource, Default)]
pub(super) struct RollbackSeats {
    pub(super) seats: Option<Seats>,
    /// Before our match starts: each connected peer's view (its epoch,
    /// `None` when it plays no match either). Nobody starts a match before
    /// hearing every other player: one that runs takes us back instead.
    pub(super) heard: HashMap<PeerId, Option<u32>>,
    /// The state of the planned frame, as last saved.
    saved: Option<(i32, Vec<u8>)>,
    /// Actions for the exclusive system (a restart needs the whole world).
    pending: Vec<SeatAction>,
    /// As the leader of the last restart: the players it took back (a
    /// bitmask), its plan and its state, sent again to any of them whose
    /// connection comes back (it may have dropped before they arrived).
    resend: Option<(u64, Seating, Seating)>,
    /// Seating messages that came behind the plan that seats a restarted
    /// player, in the same frame (the state handed over, typically): read
    /// once it is seated, first. At most [`MAX_EARLY`].
    early: Vec<(PeerId, Seating)>,
}

/// Most seating messages kept from behind the plan that seats us (a plan
/// and its state are two; more is the sender's problem).
const MAX_EARLY: usize = 4;

impl RollbackSeats {
    /// The epoch rollback packets are tagged with.
    pub(super) fn tag(&self) -> u8 {
        self.seats
            .as_ref()
            .and_then(Seats::epoch)
            .map_or(0, |e| e.to_le_bytes()[0])
    }
}

/// Views to players whose connection came up, and seating messages in.
pub(super) fn seat_messages(
    mut peer_events: MessageReader<NetPeerEvent>,
    mut received: MessageReader<NetReceived<Seating>>,
    mut state: ResMut<RollbackSeats>,
    mut status: ResMut<RollbackStatus>,
    mut volley: Option<ResMut<VolleySession>>,
) {
    let RollbackSeats {
        seats,
        pending,
        heard,
        resend,
        early,
        ..
    } = &mut *state;
    let Some(seats) = seats.as_mut() else {
        let me = volley.as_mut().and_then(|v| v.session().id());
        let mut plans = before_the_match(
            &mut peer_events,
            &mut received,
            volley.as_deref_mut(),
            heard,
        )
        .into_iter();
        // A plan from a running match seats us (see `Seats::from_plan`).
        let first = plans.find(|(_, m)| matches!(m, Seating::Plan { .. }));
        if let (Some(me), Some((from, plan))) = (me, first) {
            match Seats::from_plan(me.0.as_u128(), from.0.as_u128(), plan) {
                Ok(seating) => {
                    early.extend(plans.take(MAX_EARLY));
                    tracing::info!("volley: seated again as player {}", seating.me());
                    status.players = seating
                        .ids()
                        .iter()
                        .map(|id| PeerId(uuid::Uuid::from_u128(*id)))
                        .collect();
                    status.local_handle = Some(seating.me());
                    *seats = Some(seating);
                }
                Err(refused) => {
                    tracing::warn!("volley: refused a plan from {from}: {refused}");
                    status.invalid_packets += 1;
                    if let Some(volley) = volley.as_mut() {
                        volley.session().report_invalid(from, &refused);
                    }
                }
            }
        }
        return;
    };
    let players = status.players.clone();
    let handle_of = |peer: &PeerId| players.iter().position(|p| p == peer);
    let mut actions = Vec::new();
    for NetPeerEvent(event) in peer_events.read() {
        match event {
            SessionEvent::Connected(peer) => {
                if let Some(handle) = handle_of(peer) {
                    actions.extend(seats.connected(handle));
                    if let Some((returning, plan, state)) = resend.as_ref()
                        && returning & (1u64 << handle.min(63)) != 0
                    {
                        actions.push(SeatAction::Send(handle, plan.clone()));
                        actions.push(SeatAction::Send(handle, state.clone()));
                    }
                }
            }
            SessionEvent::Left(peer, _) => {
                if let Some(handle) = handle_of(peer) {
                    seats.disconnected(handle);
                }
            }
            _ => {}
        }
    }
    let frame = status.frame - seats.base();
    let messages = std::mem::take(early)
        .into_iter()
        .chain(received.read().map(|m| (m.from, m.message.clone())));
    for (peer, message) in messages {
        let Some(from) = handle_of(&peer) else {
            continue;
        };
        match seats.receive(from, message, frame) {
            Ok(more) => actions.extend(more),
            Err(refused) => {
                tracing::warn!("volley: refused seating from {peer}: {refused}");
                status.invalid_packets += 1;
                if let Some(volley) = volley.as_mut() {
                    volley.session().report_invalid(peer, &refused);
                }
            }
        }
    }
    for action in actions {
        match action {
            SeatAction::Send(to, message) => {
                send(volley.as_deref_mut(), players.get(to), &message);
            }
            other => pending.push(other),
        }
    }
}

/// Sends a seating message at once: seating goes out in the order it is
/// decided (a view before the plan it leads to), never behind a flush.
pub(super) fn send(volley: Option<&mut VolleySession>, to: Option<&PeerId>, message: &Seating) {
    if let (Some(volley), Some(to)) = (volley, to)
        && let Err(e) = volley.session().send(*to, message)
    {
        tracing::debug!("volley: seating message to {to} not sent: {e}");
    }
}

/// Before our match: our view to every peer that connects, theirs kept;
/// returns the other seating messages received (plans, and what may come
/// right behind one), in order.
fn before_the_match(
    peer_events: &mut MessageReader<NetPeerEvent>,
    received: &mut MessageReader<NetReceived<Seating>>,
    mut volley: Option<&mut VolleySession>,
    heard: &mut HashMap<PeerId, Option<u32>>,
) -> Vec<(PeerId, Seating)> {
    for NetPeerEvent(event) in peer_events.read() {
        match event {
            SessionEvent::Connected(peer) => {
                let view = Seating::View {
                    epoch: None,
                    present: 0,
                };
                send(volley.as_deref_mut(), Some(peer), &view);
            }
            SessionEvent::Left(peer, _) => {
                heard.remove(peer);
            }
            _ => {}
        }
    }
    let mut plans = Vec::new();
    for message in received.read() {
        match &message.message {
            Seating::View { epoch, .. } if heard.len() < volley_rollback::seats::MAX_SEATS => {
                heard.insert(message.from, *epoch);
            }
            Seating::View { .. } => {}
            other => plans.push((message.from, other.clone())),
        }
    }
    plans
}

/// Saves the state of the planned frame each time it is saved (the last
/// save, after the rollbacks, is the confirmed one).
pub(super) fn save_planned(world: &mut World) {
    let frame = world.resource::<RollbackFrameCount>().0;
    let planned = world
        .get_resource::<RollbackSeats>()
        .and_then(|s| s.seats.as_ref()?.saving());
    if planned != Some(frame) {
        return;
    }
    match save_state(world) {
        Ok(bytes) => world.resource_mut::<RollbackSeats>().saved = Some((frame, bytes)),
        Err(e) => tracing::warn!("volley: cannot save the state to restart from: {e}"),
    }
}

/// Frames between the leader's frame and a restart it plans, for the
/// players still in the match, who must all save the planned frame (the
/// returning ones load the state they are handed): the prediction window
/// and the input delay (how far ahead of the leader they can be), plus
/// the plan's way to them — the slowest round trip (a whole one, for
/// jitter) — and [`PLAN_MARGIN`]; [`PLAN_LEAD`] for the way when a round
/// trip is not measured. A leader left alone needs only the margin.
fn plan_lead(world: &World, config: &RollbackConfig) -> i32 {
    let status = world.resource::<RollbackStatus>();
    let staying: Vec<&PeerId> = (status.players.iter().enumerate())
        .filter(|&(handle, p)| Some(handle) != status.local_handle && !status.dropped.contains(p))
        .map(|(_, p)| p)
        .collect();
    let ahead = match staying.is_empty() {
        true => 0,
        false => i32::try_from(config.max_prediction + config.input_delay).unwrap_or(0),
    };
    let net = world.get_resource::<crate::NetStats>();
    let slowest = staying.iter().try_fold(Duration::ZERO, |slowest, player| {
        Some(slowest.max(net?.peers.get(*player)?.rtt?))
    });
    let transit = match slowest {
        Some(rtt) => {
            let frames = (rtt.as_secs_f64() * config.fps as f64).ceil();
            (frames as i32).saturating_add(PLAN_MARGIN).min(MAX_TRANSIT)
        }
        None => PLAN_LEAD,
    };
    ahead.saturating_add(transit)
}

/// Frames of slack in [`plan_lead`] beyond the measured round trip.
const PLAN_MARGIN: i32 = 4;

/// The most frames [`plan_lead`] allows for the plan's way (2 s at 60
/// frames/s): a restart further off would keep the returning player
/// waiting longer than a round trip is worth.
const MAX_TRANSIT: i32 = 120;

/// After the ggrs update: the seating machine's tick, then whatever needs
/// the whole world (stopping, restarting, loading a handed-over state).
pub(super) fn seat_tick<I: RollbackInput>(world: &mut World) {
    let frame = world.resource::<RollbackFrameCount>().0;
    let confirmed = world.resource::<ConfirmedFrameCount>().0;
    let config = *world.resource::<RollbackConfig>();
    let lead = plan_lead(world, &config);
    let running = world.contains_resource::<bevy_ggrs::Session<VolleyGgrs<I>>>();
    let mut state = world.resource_mut::<RollbackSeats>();
    let planned = state.seats.as_ref().and_then(Seats::saving);
    let saved = planned.is_some() && state.saved.as_ref().map(|(at, _)| *at) == planned;
    let mut actions = std::mem::take(&mut state.pending);
    if running && let Some(seats) = state.seats.as_mut() {
        actions.extend(seats.tick(frame, confirmed, saved, lead));
    }
    let players = world.resource::<RollbackStatus>().players.clone();
    for action in actions {
        match action {
            SeatAction::Send(to, message) => {
                let volley = world.get_resource_mut::<VolleySession>();
                send(volley.map(Mut::into_inner), players.get(to), &message);
            }
            SeatAction::Stop => {
                tracing::info!("volley: going back to the other players' match");
                world.remove_resource::<bevy_ggrs::Session<VolleyGgrs<I>>>();
            }
            SeatAction::Restart {
                epoch,
                present,
                base,
                at,
                handover,
                plan,
            } => {
                let Some((_, bytes)) = world
                    .resource_mut::<RollbackSeats>()
                    .saved
                    .take()
                    .filter(|(frame, _)| *frame == at)
                else {
                    continue;
                };
                let resend = plan.filter(|_| handover != 0).map(|plan| {
                    let state = Seating::Handover {
                        epoch,
                        state: bytes.clone(),
                    };
                    for (handle, peer) in players.iter().enumerate() {
                        if handover & (1u64 << handle.min(63)) != 0 {
                            let volley = world.get_resource_mut::<VolleySession>();
                            send(volley.map(Mut::into_inner), Some(peer), &state);
                        }
                    }
                    (handover, plan, state)
                });
                world.resource_mut::<RollbackSeats>().resend = resend;
                restart::<I>(world, &bytes, epoch, present, base);
            }
            SeatAction::Load {
                epoch,
                present,
                base,
                state,
            } => restart::<I>(world, &state, epoch, present, base),
        }
    }
}

/// Loads `state` and starts epoch `epoch` with the players in `present`.
fn restart<I: RollbackInput>(world: &mut World, state: &[u8], epoch: u32, present: u64, base: i32) {
    if let Err(e) = load_state(world, state) {
        tracing::warn!("volley: cannot restart the match: {e}");
        return;
    }
    world.remove_resource::<bevy_ggrs::Session<VolleyGgrs<I>>>();
    let config = *world.resource::<RollbackConfig>();
    let status = world.resource::<RollbackStatus>();
    let (players, Some(me)) = (status.players.clone(), status.local_handle) else {
        return;
    };
    let absent: Vec<usize> = (0..players.len())
        .filter(|h| present & (1u64 << (*h).min(63)) == 0)
        .collect();
    let pipe = Pipe::new(config.max_prediction, volley_rollback::decodes_as::<I>);
    pipe.absent(absent.iter().filter_map(|h| players.get(*h).copied()));
    let session = match build_p2p::<I>(&config, &players, me, pipe.clone()) {
        Ok(session) => session,
        Err(e) => {
            tracing::warn!("volley: cannot restart the rollback session: {e}");
            return;
        }
    };
    tracing::info!(
        "volley: match restarted as epoch {epoch} at frame {base} with players {present:#b}"
    );
    let guard = *world.resource::<RollbackGuard>().0.config();
    let mut drops = Drops::new(guard, me);
    for handle in &absent {
        drops.absent(*handle);
    }
    world.insert_resource(RollbackPipe(pipe));
    world.insert_resource(RollbackDrops {
        drops: Some(drops),
        silent: Default::default(),
        absent,
    });
    world.insert_resource(RollbackFrameCount(0));
    world.insert_resource(super::LastAdvanced(0));
    world.insert_resource(ConfirmedFrameCount(-1));
    world.insert_resource(bevy_ggrs::Session::P2P(session));
    let mut status = world.resource_mut::<RollbackStatus>();
    status.epoch = epoch;
    status.base = base;
    status.frame = base;
    status.confirmed_frame = base - 1;
    status.rejoins += 1;
    status.dropped = players
        .iter()
        .enumerate()
        .filter(|(h, _)| present & (1u64 << (*h).min(63)) == 0)
        .map(|(_, p)| *p)
        .collect();
    world.write_message(RollbackEvent::Restarted { epoch, frame: base });
}
