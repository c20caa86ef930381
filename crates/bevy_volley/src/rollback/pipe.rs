//! The ggrs socket ([`volley_rollback::Pipe`]): what ggrs sends goes out on
//! volley's rollback channel; what peers send passes
//! [`volley_rollback::Guard`] before ggrs sees it.

use bevy::ecs::prelude::*;
use volley_net::PeerId;
use volley_rollback::{Guard, Pipe, View};

use super::seats::RollbackSeats;
use super::{RollbackInput, RollbackStatus, VolleyGgrs};
use crate::VolleySession;

/// The ggrs socket's handle for the systems that move packets.
#[derive(Resource, Clone)]
pub(super) struct RollbackPipe(pub(super) Pipe<PeerId>);

/// The checks for this match's settings.
#[derive(Resource)]
pub(super) struct RollbackGuard(pub(super) Guard);

/// Moves rollback packets from the volley session into the ggrs socket,
/// each through the guard: a refused one counts against its sender in the
/// volley session (enough of them and the peer is dropped as misbehaving),
/// as does one the socket's mirror kept from ggrs last frame.
pub(super) fn pipe_in<I: RollbackInput>(
    volley: Option<ResMut<VolleySession>>,
    pipe: Res<RollbackPipe>,
    guard: Res<RollbackGuard>,
    seats: Res<RollbackSeats>,
    ggrs_session: Option<Res<bevy_ggrs::Session<VolleyGgrs<I>>>>,
    mut status: ResMut<RollbackStatus>,
) {
    let Some(mut volley) = volley else { return };
    for (peer, why) in pipe.0.take_refused() {
        status.invalid_packets += 1;
        volley.session().report_invalid(peer, &why);
    }
    let packets = volley.session().receive_rollback();
    if packets.is_empty() {
        return;
    }
    // Before our session starts (or while we wait to be seated again in a
    // running match) the players' packets are not ours to judge.
    if ggrs_session.is_none() {
        return;
    }
    let frame = match ggrs_session.as_deref() {
        Some(bevy_ggrs::Session::P2P(p2p)) => p2p.current_frame(),
        _ => 0,
    };
    let view = View {
        frame,
        now_millis: volley_rollback::now_millis(),
        sender_handles: 1,
    };
    let epoch = seats.tag();
    for (peer, tagged) in packets {
        if status.dropped.contains(&peer) {
            continue; // its inputs end where the others agreed
        }
        // Tagged with the sender's epoch: another epoch's packets (a
        // restart under way, see `seats`) are no business of this session.
        let Some((&tag, bytes)) = tagged.split_first() else {
            continue;
        };
        if tag != epoch {
            continue;
        }
        let checked = if !status.players.is_empty() && !status.players.contains(&peer) {
            Err("rollback packet from a peer outside the match".to_string())
        } else {
            guard.0.inspect(bytes, &view).map_err(|e| e.to_string())
        };
        match checked {
            Ok(message) => pipe.0.deliver(peer, message),
            Err(why) => {
                status.invalid_packets += 1;
                tracing::debug!("volley: refused a rollback packet from {peer}: {why}");
                volley.session().report_invalid(peer, &why);
            }
        }
    }
}

/// Sends what ggrs queued this frame.
pub(super) fn pipe_out(
    volley: Option<ResMut<VolleySession>>,
    pipe: Res<RollbackPipe>,
    seats: Res<RollbackSeats>,
) {
    let outgoing = pipe.0.take_outgoing();
    let Some(mut volley) = volley else { return };
    let epoch = seats.tag();
    for (peer, mut bytes) in outgoing {
        bytes.insert(0, epoch);
        // A peer that left has nobody to send to; ggrs notices on its own.
        let _ = volley.session().send_rollback(peer, bytes);
    }
}
