//! Dropping a player from the match: when its peer leaves the room, is
//! dropped as misbehaving, or falls silent, the players still in agree on
//! where its inputs end ([`volley_rollback::drops`]) and ggrs drops it
//! there on every peer, so the match goes on without a desync.

use std::collections::HashMap;
use std::time::Duration;

use bevy::ecs::message::{MessageReader, MessageWriter};
use bevy::ecs::prelude::*;
use bevy::platform::time::Instant;
use volley_net::{PeerId, SessionEvent};
use volley_rollback::drops::{DropNotice, Drops};

use super::pipe::RollbackPipe;
use super::seats::RollbackSeats;
use super::{RollbackConfig, RollbackInput, RollbackStatus, VolleyGgrs};
use crate::{NetPeerEvent, NetReceived, NetSend, VolleySession};

/// The agreement on dropped players, once the match started; the players
/// ggrs reported silent, since when; and the players a restarted match
/// began without, to cut before its first frame (see `seats`).
#[derive(Resource, Default)]
pub(super) struct RollbackDrops {
    pub(super) drops: Option<Drops>,
    pub(super) silent: HashMap<PeerId, Instant>,
    pub(super) absent: Vec<usize>,
}

/// How long a player may be silent after ggrs reports it interrupted
/// (ggrs' notice comes at a quarter of the timeout).
pub(super) fn silence_limit(config: &RollbackConfig) -> Duration {
    config
        .disconnect_timeout
        .saturating_sub(notify_delay(config))
}

/// When ggrs reports a silent player (`NetworkInterrupted`).
pub(super) fn notify_delay(config: &RollbackConfig) -> Duration {
    config.disconnect_timeout / 4
}

/// Ends peers silent for too long; drops players whose peers left (telling
/// the others); takes their notices; relays inputs and drops players in
/// ggrs as the agreement decides.
#[allow(clippy::too_many_arguments)]
pub(super) fn drop_players<I: RollbackInput>(
    mut peer_events: MessageReader<NetPeerEvent>,
    mut notices: MessageReader<NetReceived<DropNotice>>,
    mut outgoing: MessageWriter<NetSend<DropNotice>>,
    mut seats: ResMut<RollbackSeats>,
    session: Option<ResMut<bevy_ggrs::Session<VolleyGgrs<I>>>>,
    mut volley: Option<ResMut<VolleySession>>,
    mut state: ResMut<RollbackDrops>,
    mut status: ResMut<RollbackStatus>,
    config: Res<RollbackConfig>,
    pipe: Res<RollbackPipe>,
) {
    let Some(mut session) = session else {
        peer_events.clear();
        notices.clear();
        return;
    };
    let bevy_ggrs::Session::P2P(p2p) = &mut *session else {
        return;
    };
    let RollbackDrops {
        drops,
        silent,
        absent,
    } = &mut *state;
    let Some(drops) = drops.as_mut() else { return };
    let frame = p2p.current_frame();
    // ggrs can cut a player only once a frame is saved (see `seats`).
    if frame >= 1 {
        for handle in absent.drain(..) {
            if let Err(e) = p2p.disconnect_player(handle) {
                tracing::warn!("volley: cannot cut absent player {handle}: {e}");
            }
        }
    }
    let now_ms = volley_rollback::now_millis();
    let now_ms = u64::try_from(now_ms).unwrap_or(u64::MAX);

    // ggrs waits as long as it is told to; volley lets a silent peer go
    // itself (the others learn it as a Left, like any other way of
    // leaving); it may come back (see `seats`).
    let limit = silence_limit(&config);
    if let Some(volley) = volley.as_mut() {
        for (peer, since) in silent.iter() {
            if since.elapsed() >= limit {
                tracing::info!("volley: {peer} silent for {limit:?}: let go");
                volley.session().let_go(*peer);
            }
        }
    }
    silent.retain(|_, since| since.elapsed() < limit);

    for NetPeerEvent(event) in peer_events.read() {
        let SessionEvent::Left(peer, _) = event else {
            continue;
        };
        let Some(handle) = status.players.iter().position(|p| p == peer) else {
            continue;
        };
        if !status.dropped.contains(peer) {
            status.dropped.push(*peer);
        }
        if let Some(notice) = drops.drop_from_pipe(handle, peer, &pipe.0, now_ms) {
            for other in drops.others() {
                if let Some(to) = status.players.get(other) {
                    outgoing.write(NetSend::to(*to, notice.clone()));
                }
            }
        }
    }

    for received in notices.read() {
        let Some(from) = status.players.iter().position(|p| *p == received.from) else {
            continue;
        };
        // (A notice is at most MAX_NOTICE_BYTES: the copy is small.)
        if let Err(refused) = drops.receive(from, received.message.clone(), frame) {
            status.invalid_packets += 1;
            if let Some(volley) = volley.as_mut() {
                volley.session().report_invalid(received.from, &refused);
            }
        }
    }

    for (player, last) in drops.drive(p2p, &pipe.0, &status.players, now_ms) {
        tracing::debug!("volley: player {player} leaves the match after frame {last}");
        if let Some(seats) = seats.seats.as_mut() {
            for action in seats.dropped(player) {
                if let volley_rollback::SeatAction::Send(to, view) = action {
                    super::seats::send(volley.as_deref_mut(), status.players.get(to), &view);
                }
            }
        }
    }
}
