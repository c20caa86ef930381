//! The one task that owns the [`Lobby`]: feeds it events, carries out its
//! commands, and publishes the public room list for `GET /api/rooms`.
//!
//! It never waits on a peer: messages go into each peer's bounded queue with
//! `try_send`, and a peer whose queue is full is dropped (closed as
//! `slow_consumer`) rather than block the actor or lose anyone else's
//! messages.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;
use tracing::{debug, warn};

use crate::lobby::{Command, Event, Lobby, PeerId, PrivateRoomError, RoomRequest, ServerMessage};
use crate::metrics::Metrics;
use crate::refusal::Refusal;
use crate::wire;

/// What a peer's connection task receives from the actor.
#[derive(Debug)]
pub(super) enum Outbound {
    Text(Utf8Bytes),
    Close(Refusal),
}

/// What the actor receives.
pub(super) enum ToActor {
    Join {
        peer: PeerId,
        room: RoomRequest,
        tx: mpsc::Sender<Outbound>,
        at: Instant,
    },
    Signal {
        from: PeerId,
        to: PeerId,
        data: String,
    },
    Left {
        peer: PeerId,
    },
    ReservePrivate {
        code: String,
        owner: Option<IpAddr>,
        reply: oneshot::Sender<Result<(), PrivateRoomError>>,
    },
    Shutdown,
}

/// The list's ages are whole seconds: refresh at least this often.
const ROOMS_MAX_AGE: Duration = Duration::from_secs(1);

pub(super) async fn run(
    mut lobby: Lobby,
    mut rx: mpsc::Receiver<ToActor>,
    metrics: Arc<Metrics>,
    rooms: watch::Sender<Bytes>,
    rooms_refresh: Duration,
) {
    let mut peers: HashMap<PeerId, mpsc::Sender<Outbound>> = HashMap::new();
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut refresh = tokio::time::interval(rooms_refresh.max(Duration::from_millis(10)));
    refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut rooms_changed = true;
    let mut published = Instant::now();
    let mut shutting_down = false;
    loop {
        let message = tokio::select! {
            message = rx.recv() => match message {
                Some(message) => message,
                None => return,
            },
            _ = tick.tick() => {
                lobby.handle(Event::Tick { now: Instant::now() }, &mut out);
                metrics.upkeep();
                continue;
            }
            _ = refresh.tick() => {
                let now = Instant::now();
                if rooms_changed || now.duration_since(published) >= ROOMS_MAX_AGE {
                    publish(&lobby, &rooms, now);
                    rooms_changed = false;
                    published = now;
                }
                continue;
            }
        };
        match message {
            ToActor::Join { tx, .. } if shutting_down => {
                let _ = tx.try_send(Outbound::Close(Refusal::ServerShutdown));
            }
            ToActor::Join { peer, room, tx, at } => {
                peers.insert(peer, tx);
                lobby.handle(Event::Joined { peer, room, at }, &mut out);
                rooms_changed = true;
            }
            ToActor::Signal { from, to, data } => {
                lobby.handle(Event::Signal { from, to, data }, &mut out);
            }
            ToActor::Left { peer } => {
                peers.remove(&peer);
                let at = Instant::now();
                lobby.handle(Event::Left { peer, at }, &mut out);
                rooms_changed = true;
            }
            ToActor::ReservePrivate { code, owner, reply } => {
                let _ = reply.send(lobby.reserve_private_for(&code, owner, Instant::now()));
            }
            ToActor::Shutdown => {
                shutting_down = true;
                for (_, tx) in peers.drain() {
                    let _ = tx.try_send(Outbound::Close(Refusal::ServerShutdown));
                }
            }
        }
        for command in out.drain(..) {
            carry_out(command, &mut peers, &metrics);
        }
        metrics.peers_connected.set(lobby.peer_count() as f64);
        metrics.rooms.set(lobby.room_count() as f64);
    }
}

/// Serialises the public room list once, for every request until the next.
fn publish(lobby: &Lobby, rooms: &watch::Sender<Bytes>, now: Instant) {
    match serde_json::to_vec(&lobby.public_rooms(now)) {
        Ok(json) => {
            rooms.send_replace(Bytes::from(json));
        }
        Err(e) => warn!("cannot serialise the room list: {e}"),
    }
}

fn carry_out(
    command: Command,
    peers: &mut HashMap<PeerId, mpsc::Sender<Outbound>>,
    metrics: &Metrics,
) {
    match command {
        Command::Send { to, message } => {
            if matches!(message, ServerMessage::Signal { .. }) {
                metrics.signals_relayed.increment(1);
            }
            let text = Utf8Bytes::from(wire::encode(&message));
            for peer in to {
                let Some(tx) = peers.get(&peer) else { continue };
                if tx.try_send(Outbound::Text(text.clone())).is_err() {
                    // Full (or already gone): dropping the sender closes the
                    // peer as too slow; its task then reports `Left`.
                    warn!("peer {peer} is not reading its socket: closing it");
                    peers.remove(&peer);
                }
            }
        }
        Command::Close { peer, reason } => {
            if let Some(tx) = peers.remove(&peer) {
                let _ = tx.try_send(Outbound::Close(reason));
            }
        }
        Command::MatchFormed { waited, .. } => {
            metrics.matches_formed.increment(1);
            for wait in waited {
                metrics.time_to_match.record(wait.as_secs_f64());
            }
        }
        Command::SignalDropped { from, to } => {
            metrics.signals_dropped.increment(1);
            debug!("dropped a signal from {from} to {to}: not in the same room");
        }
    }
}
