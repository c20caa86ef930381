//! The one task that owns the node's [`Router`] (and through it the
//! [`Lobby`](crate::lobby::Lobby)): feeds it events, carries out its actions,
//! and publishes the public room list for `GET /api/rooms`. In a cluster it
//! also hands the router's messages, claims and releases to the Redis
//! driver ([`Link`]) and feeds back what the cluster says.
//!
//! It never waits on a peer, nor on Redis: messages go into each peer's
//! bounded queue with `try_send`, and a peer whose queue is full is dropped
//! (closed as `slow_consumer`) rather than block the actor or lose anyone
//! else's messages; cluster messages go into the driver's bounded queue.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;
use tracing::{debug, warn};

use crate::cluster::redis::{ClusterEvent, Link};
use crate::cluster::{Action, Input, ReserveError, Router};
use crate::lobby::{Lobby, PeerId, RoomRequest, ServerMessage};
use crate::metrics::Metrics;
use crate::refusal::Refusal;
use crate::resume;
use crate::secret::Secret;
use crate::wire;

use super::http::unix_now;

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
        /// Which of the peer's connections this is (a returning peer's
        /// new one replaces the old).
        connection: u64,
        room: RoomRequest,
        tx: mpsc::Sender<Outbound>,
        /// The client takes resume tokens (`?resume`).
        tokens: bool,
        at: Instant,
    },
    Signal {
        from: PeerId,
        to: PeerId,
        data: String,
    },
    Left {
        peer: PeerId,
        connection: u64,
        /// Lost without a goodbye: its seat is held.
        dropped: bool,
    },
    ReservePrivate {
        code: String,
        owner: Option<IpAddr>,
        reply: oneshot::Sender<Result<(), ReserveError>>,
    },
    Shutdown,
}

/// The list's ages are whole seconds: refresh at least this often.
const ROOMS_MAX_AGE: Duration = Duration::from_secs(1);

/// What resume tokens are minted with.
pub(super) struct Tokens {
    pub secret: Secret,
    pub ttl: Duration,
}

/// A peer's connection, as the actor holds it.
struct Connection {
    id: u64,
    tx: mpsc::Sender<Outbound>,
    tokens: bool,
}

/// The cluster as the actor sees it: the driver's handle and its events.
pub(super) struct ClusterLink {
    pub link: Link,
    pub events: mpsc::Receiver<ClusterEvent>,
}

struct Actor {
    router: Router,
    peers: HashMap<PeerId, Connection>,
    tokens: Tokens,
    metrics: Arc<Metrics>,
    link: Option<Link>,
    reservations: HashMap<u64, oneshot::Sender<Result<(), ReserveError>>>,
    next_request: u64,
    out: Vec<Action>,
}

pub(super) async fn run(
    router: Router,
    mut rx: mpsc::Receiver<ToActor>,
    cluster: Option<ClusterLink>,
    metrics: Arc<Metrics>,
    rooms: watch::Sender<Bytes>,
    rooms_refresh: Duration,
    tokens: Tokens,
) {
    let (link, mut events) = match cluster {
        Some(c) => (Some(c.link), Some(c.events)),
        None => (None, None),
    };
    let mut actor = Actor {
        router,
        peers: HashMap::new(),
        tokens,
        metrics,
        link,
        reservations: HashMap::new(),
        next_request: 0,
        out: Vec::new(),
    };
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
            Some(event) = async { match &mut events { Some(events) => events.recv().await, None => None } } => {
                actor.cluster_event(event);
                rooms_changed = true;
                continue;
            }
            _ = tick.tick() => {
                actor.input(Input::Tick { now: Instant::now() });
                actor.metrics.upkeep();
                continue;
            }
            _ = refresh.tick() => {
                let now = Instant::now();
                if rooms_changed || now.duration_since(published) >= ROOMS_MAX_AGE {
                    publish(actor.router.lobby(), &rooms, &actor.metrics, now);
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
            ToActor::Join {
                peer,
                connection,
                room,
                tx,
                tokens,
                at,
            } => {
                let returning = room.resume.is_some();
                if actor.peers.contains_key(&peer) && !returning {
                    // Random ids never collide; refused without a word to
                    // the lobby, which knows the other connection.
                    let _ = tx.try_send(Outbound::Close(Refusal::DuplicatePeer));
                    continue;
                }
                let new = Connection {
                    id: connection,
                    tx,
                    tokens,
                };
                if let Some(old) = actor.peers.insert(peer, new) {
                    let _ = old.tx.try_send(Outbound::Close(Refusal::Replaced));
                }
                actor.input(Input::Joined { peer, room, at });
                rooms_changed = true;
            }
            ToActor::Signal { from, to, data } => {
                actor.input(Input::Signal { from, to, data });
            }
            ToActor::Left {
                peer,
                connection,
                dropped,
            } => {
                // A replaced connection's end is not its peer's.
                if actor.peers.get(&peer).is_none_or(|c| c.id != connection) {
                    continue;
                }
                // Only a peer that took tokens can come back to a held seat.
                let resumable = actor.peers.remove(&peer).is_some_and(|c| c.tokens);
                let at = Instant::now();
                actor.input(match dropped && resumable {
                    true => Input::Dropped { peer, at },
                    false => Input::Left { peer, at },
                });
                rooms_changed = true;
            }
            ToActor::ReservePrivate { code, owner, reply } => {
                let request = actor.next_request;
                actor.next_request = actor.next_request.wrapping_add(1);
                actor.reservations.insert(request, reply);
                let now = Instant::now();
                actor.input(Input::ReservePrivate {
                    request,
                    code,
                    owner,
                    now,
                });
            }
            ToActor::Shutdown => {
                shutting_down = true;
                for (_, connection) in actor.peers.drain() {
                    let _ = connection
                        .tx
                        .try_send(Outbound::Close(Refusal::ServerShutdown));
                }
                // The others see this node gone at their next heartbeat.
                if let Some(link) = actor.link.take() {
                    link.leave().await;
                }
            }
        }
    }
}

impl Actor {
    fn input(&mut self, input: Input) {
        self.router.handle(input, &mut self.out);
        let mut out = std::mem::take(&mut self.out);
        for action in out.drain(..) {
            self.carry_out(action);
        }
        self.out = out;
        self.metrics
            .peers_connected
            .set(self.router.local_peers() as f64);
        self.metrics
            .rooms
            .set(self.router.lobby().room_count() as f64);
        self.metrics
            .cluster_remote_peers
            .set(self.router.remote_peers() as f64);
        self.metrics
            .seats_held
            .set(self.router.lobby().away_count() as f64);
        self.metrics
            .spectators
            .set(self.router.lobby().spectator_count() as f64);
    }

    fn cluster_event(&mut self, event: ClusterEvent) {
        let now = Instant::now();
        let input = match event {
            ClusterEvent::Claimed { claim, home } => Input::Claimed { claim, home, now },
            ClusterEvent::FromNode { node, message } => Input::FromNode {
                node,
                message,
                at: now,
            },
            ClusterEvent::Live { nodes, asked } => Input::Live { nodes, asked, now },
            ClusterEvent::Directory { up } => Input::Directory { up },
            ClusterEvent::Evicted => Input::Evicted { at: now },
        };
        self.input(input);
    }

    fn carry_out(&mut self, action: Action) {
        match action {
            Action::Send { to, message } => {
                if matches!(message, ServerMessage::Signal { .. }) {
                    self.metrics.signals_relayed.increment(1);
                }
                let text = wire::encode(&message).map(Utf8Bytes::from);
                for peer in to {
                    let Some(connection) = self.peers.get(&peer) else {
                        continue;
                    };
                    let text = match (&message, &text) {
                        // Minted per peer, for clients that take them.
                        (ServerMessage::Seat(seat), _) if connection.tokens => {
                            let expiry = unix_now().saturating_add(self.tokens.ttl.as_secs());
                            let secret = self.tokens.secret.expose();
                            Utf8Bytes::from(wire::encode_token(&resume::mint(
                                secret, peer, seat, expiry,
                            )))
                        }
                        (_, Some(text)) => text.clone(),
                        (_, None) => continue,
                    };
                    if connection.tx.try_send(Outbound::Text(text)).is_err() {
                        // Full (or already gone): dropping the sender closes the
                        // peer as too slow; its task then reports `Left`.
                        warn!("peer {peer} is not reading its socket: closing it");
                        self.peers.remove(&peer);
                    }
                }
            }
            Action::Close { peer, reason } => {
                if let Some(connection) = self.peers.remove(&peer) {
                    let _ = connection.tx.try_send(Outbound::Close(reason));
                }
            }
            Action::Publish { node, message } => {
                if let Some(link) = &self.link {
                    link.publish(node, &message);
                }
            }
            Action::Claim { claim, name } => match &self.link {
                Some(link) => link.claim(claim, name),
                // Shutting down: no directory any more.
                None => self.input(Input::Claimed {
                    claim,
                    home: None,
                    now: Instant::now(),
                }),
            },
            Action::Release { name } => {
                if let Some(link) = &self.link {
                    link.release(&name);
                }
            }
            Action::Reserved { request, result } => {
                if let Some(reply) = self.reservations.remove(&request) {
                    let _ = reply.send(result);
                }
            }
            Action::MatchFormed { waited, .. } => {
                self.metrics.matches_formed.increment(1);
                for wait in waited {
                    self.metrics.time_to_match.record(wait.as_secs_f64());
                }
            }
            Action::SignalDropped { from, to } => {
                self.metrics.signals_dropped.increment(1);
                debug!("dropped a signal from {from} to {to}: not in the same room");
            }
        }
    }
}

/// Serialises the public room list (at most `MAX_LISTED_ROOMS`) once, for
/// every request until the next.
fn publish(
    lobby: &Lobby,
    rooms: &watch::Sender<Bytes>,
    metrics: &crate::metrics::Metrics,
    now: Instant,
) {
    let (list, unlisted) = crate::lobby::listed(lobby.public_rooms(now));
    metrics.rooms_unlisted.set(unlisted as f64);
    match serde_json::to_vec(&list) {
        Ok(json) => {
            rooms.send_replace(Bytes::from(json));
        }
        Err(e) => warn!("cannot serialise the room list: {e}"),
    }
}
