//! Seating a player again in a running match: the driver of
//! [`volley_rollback::seats`]. Views go out when a player's connection
//! comes up; the state of the planned frame is saved in `SaveWorld`; the
//! restart itself (load the state, a new ggrs session as the next epoch,
//! players still away cut before its first frame) happens after the ggrs
//! update that confirmed the planned frame.

use bevy::ecs::message::{MessageReader, MessageWriter};
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
use crate::{NetPeerEvent, NetReceived, NetSend, VolleySession};

/// The seating state machine, once the match started, and what it needs
/// kept between frames.
#[derive(Resource, Default)]
pub(super) struct RollbackSeats {
    pub(super) seats: Option<Seats>,
    /// The state of the planned frame, as last saved.
    saved: Option<(i32, Vec<u8>)>,
    /// Actions for the exclusive system (a restart needs the whole world).
    pending: Vec<SeatAction>,
}

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
    mut outgoing: MessageWriter<NetSend<Seating>>,
    mut state: ResMut<RollbackSeats>,
    mut status: ResMut<RollbackStatus>,
    mut volley: Option<ResMut<VolleySession>>,
) {
    let RollbackSeats { seats, pending, .. } = &mut *state;
    let Some(seats) = seats.as_mut() else {
        peer_events.clear();
        received.clear();
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
    for message in received.read() {
        let Some(from) = handle_of(&message.from) else {
            continue;
        };
        match seats.receive(from, message.message.clone(), frame) {
            Ok(more) => actions.extend(more),
            Err(refused) => {
                status.invalid_packets += 1;
                if let Some(volley) = volley.as_mut() {
                    volley.session().report_invalid(message.from, &refused);
                }
            }
        }
    }
    for action in actions {
        match action {
            SeatAction::Send(to, message) => {
                if let Some(peer) = players.get(to) {
                    outgoing.write(NetSend::to(*peer, message));
                }
            }
            other => pending.push(other),
        }
    }
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

/// After the ggrs update: the seating machine's tick, then whatever needs
/// the whole world (stopping, restarting, loading a handed-over state).
pub(super) fn seat_tick<I: RollbackInput>(world: &mut World) {
    let frame = world.resource::<RollbackFrameCount>().0;
    let confirmed = world.resource::<ConfirmedFrameCount>().0;
    let config = *world.resource::<RollbackConfig>();
    let lead = PLAN_LEAD
        .saturating_add(i32::try_from(config.max_prediction + config.input_delay).unwrap_or(0));
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
                if let (Some(peer), Some(mut volley)) =
                    (players.get(to), world.get_resource_mut::<VolleySession>())
                {
                    let _ = volley.session().send(*peer, &message);
                }
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
            } => {
                let Some((_, bytes)) = world
                    .resource_mut::<RollbackSeats>()
                    .saved
                    .take()
                    .filter(|(frame, _)| *frame == at)
                else {
                    continue;
                };
                if let Some(mut volley) = world.get_resource_mut::<VolleySession>() {
                    let message = Seating::Handover {
                        epoch,
                        state: bytes.clone(),
                    };
                    for (handle, peer) in players.iter().enumerate() {
                        if handover & (1u64 << handle.min(63)) != 0 {
                            let _ = volley.session().send(*peer, &message);
                        }
                    }
                }
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
