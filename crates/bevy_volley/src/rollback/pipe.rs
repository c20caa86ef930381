//! The ggrs socket: what ggrs sends goes out on volley's rollback channel;
//! what peers send passes [`volley_rollback::Guard`] before ggrs sees it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bevy::ecs::prelude::*;
use bevy_ggrs::ggrs::{self, NonBlockingSocket};
use tracing::warn;
use volley_net::PeerId;

use volley_rollback::{Guard, View};
use web_time::{SystemTime, UNIX_EPOCH};

use super::{RollbackInput, RollbackStatus, VolleyGgrs};
use crate::VolleySession;

/// ggrs messages kept for ggrs until it polls them (it polls every frame
/// once its session runs; before that, the oldest go first).
pub const PIPE_INBOX: usize = 4096;

/// The ggrs socket: queues shared with the systems that move packets
/// between it and the [`volley_net::Session`] (ggrs owns the socket inside
/// its session, the volley session lives in another resource).
#[derive(Clone, Default)]
pub(super) struct Pipe(Arc<Mutex<Queues>>);

#[derive(Default)]
struct Queues {
    inbox: Vec<(PeerId, ggrs::Message)>,
    outbox: VecDeque<(PeerId, Vec<u8>)>,
}

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        // A panic elsewhere while holding the lock leaves plain queues behind.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Resource, Clone, Default)]
pub(super) struct RollbackPipe(pub(super) Pipe);

/// Each player's last input frame handed to ggrs (what ggrs has, once it polled).
#[derive(Resource, Default)]
pub(super) struct LastInputs(pub(super) std::collections::HashMap<PeerId, i32>);

/// The checks for this match's settings.
#[derive(Resource)]
pub(super) struct RollbackGuard(pub(super) Guard);

impl NonBlockingSocket<PeerId> for Pipe {
    fn send_to(&mut self, msg: &ggrs::Message, addr: &PeerId) {
        match bincode::serde::encode_to_vec(msg, bincode::config::standard()) {
            Ok(bytes) => self.lock().outbox.push_back((*addr, bytes)),
            Err(e) => warn!("volley: cannot encode a ggrs message: {e}"),
        }
    }

    fn receive_all_messages(&mut self) -> Vec<(PeerId, ggrs::Message)> {
        std::mem::take(&mut self.lock().inbox)
    }
}

/// Moves rollback packets from the volley session into the ggrs socket,
/// each through the guard: a refused one counts against its sender in the
/// volley session (enough of them and the peer is dropped as misbehaving).
pub(super) fn pipe_in<I: RollbackInput>(
    volley: Option<ResMut<VolleySession>>,
    pipe: Res<RollbackPipe>,
    guard: Res<RollbackGuard>,
    mut last_inputs: ResMut<LastInputs>,
    ggrs_session: Option<Res<bevy_ggrs::Session<VolleyGgrs<I>>>>,
    mut status: ResMut<RollbackStatus>,
) {
    let Some(mut volley) = volley else { return };
    let packets = volley.session().receive_rollback();
    if packets.is_empty() {
        return;
    }
    let frame = match ggrs_session.as_deref() {
        Some(bevy_ggrs::Session::P2P(p2p)) => p2p.current_frame(),
        _ => 0,
    };
    let dropped: Vec<bool> = status
        .players
        .iter()
        .map(|p| status.dropped.contains(p))
        .collect();
    let view = View {
        frame,
        now_millis: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
        sender_handles: 1,
        dropped: &dropped,
    };
    let mut queues = pipe.0.lock();
    for (peer, bytes) in packets {
        let checked = if !status.players.is_empty() && !status.players.contains(&peer) {
            Err("rollback packet from a peer outside the match".to_string())
        } else {
            guard.0.inspect(&bytes, &view).map_err(|e| e.to_string())
        };
        match checked {
            Ok(checked) => {
                let message = checked.message;
                if let Some(last) = checked.last_input_frame {
                    let known = last_inputs.0.entry(peer).or_insert(last);
                    *known = (*known).max(last);
                }
                if queues.inbox.len() >= PIPE_INBOX {
                    queues.inbox.remove(0);
                }
                queues.inbox.push((peer, message));
            }
            Err(why) => {
                status.invalid_packets += 1;
                tracing::debug!("volley: refused a rollback packet from {peer}: {why}");
                volley.session().report_invalid(peer, &why);
            }
        }
    }
}

/// Sends what ggrs queued this frame.
pub(super) fn pipe_out(volley: Option<ResMut<VolleySession>>, pipe: Res<RollbackPipe>) {
    let outgoing: Vec<(PeerId, Vec<u8>)> = pipe.0.lock().outbox.drain(..).collect();
    let Some(mut volley) = volley else { return };
    for (peer, bytes) in outgoing {
        // A peer that left has nobody to send to; ggrs notices on its own.
        let _ = volley.session().send_rollback(peer, bytes);
    }
}
