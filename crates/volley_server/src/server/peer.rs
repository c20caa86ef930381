//! The signaling peer: the checks before the WebSocket upgrade (join rate,
//! ticket, connection slots), then one task per peer that reads frames,
//! writes what the actor queues (every write under the write deadline),
//! and closes with a reason.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tracing::{debug, info};
use uuid::Uuid;

use super::accept::Conn;
use super::actor::{Outbound, ToActor};
use super::deadline::is_stall;
use super::http::{client_of, refuse, unix_now};
use super::{CountGuard, IpSlot, Shared, TicketSlot};
use crate::limits::{IpAction, TokenBucket};
use crate::lobby::{PeerId, RoomRequest};
use crate::query;
use crate::refusal::Refusal;
use crate::ticket::{self, TicketError};
use crate::wire::{self, Request as PeerRequest};

pub(super) fn is_websocket_upgrade(request: &Request) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// What a peer holds for as long as its socket is open.
struct Slots {
    _ip: Option<IpSlot>,
    _ticket: Option<TicketSlot>,
}

/// Checks a WebSocket upgrade request and upgrades it. Refusals here are
/// HTTP (cheap, before any upgrade); the lobby's own refusals (room full,
/// bad `?next=`) come after it as close frames, which browsers can read.
pub(super) async fn signaling(shared: Arc<Shared>, request: Request) -> Response {
    let client = client_of(&request);
    // First, so that guessing tickets costs joins too.
    if let Err(refusal) = shared.check_ip(client, IpAction::Join) {
        return refuse(&shared, refusal, client);
    }
    let (mut parts, _body) = request.into_parts();
    let join = match query::join(parts.uri.path(), parts.uri.query()) {
        Ok(join) => join,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    // A valid resume token stands for the ticket that admitted the peer
    // (a short-lived ticket may have expired since).
    let resumed = match join.resumed(shared.resume_secret.expose(), unix_now()) {
        Ok(resumed) => resumed,
        Err(e) => return refuse(&shared, Refusal::Resume(e), client),
    };
    let mut ticket_slot = None;
    if let (Some(secret), None) = (&shared.config.ticket_secret, &resumed) {
        let checked = match &join.ticket {
            None => Err(TicketError::Missing),
            Some(t) => ticket::verify(
                secret.expose(),
                join.room,
                t,
                unix_now(),
                shared.config.ticket_max_ttl,
            )
            .map(|_| t),
        };
        let taken = checked
            .map_err(Refusal::Ticket)
            .and_then(|t| TicketSlot::take(&shared, t));
        match taken {
            Ok(slot) => ticket_slot = slot,
            Err(refusal) => return refuse(&shared, refusal, client),
        }
    }
    let tokens = join.wants_tokens();
    let room = match resumed {
        Some((peer, room)) => Ok((Some(peer), room)),
        None => join
            .room_request(shared.config.lobby.max_room_size)
            .map(|room| (None, room)),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // The connection's slot moves to the peer; behind a trusted proxy the
    // client's own slot is taken now.
    let conn = parts.extensions.get::<Arc<Conn>>();
    let mut ip_slot = conn.and_then(|c| c.take_slot());
    if ip_slot.is_none() && conn.is_some_and(|c| shared.is_trusted_proxy(c.peer.ip())) {
        match IpSlot::take(&shared, client) {
            Ok(slot) => ip_slot = Some(slot),
            Err(refusal) => return refuse(&shared, refusal, client),
        }
    }
    let slots = Slots {
        _ip: ip_slot,
        _ticket: ticket_slot,
    };
    let limit = shared.config.max_message_size;
    upgrade
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(limit.saturating_mul(4).max(64 * 1024))
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| peer(socket, shared, room, tokens, client, slots))
}

/// The close code a browser sends when its page goes away (reload,
/// navigation): the player may come straight back.
const GOING_AWAY: u16 = 1001;

/// Tells connections apart, for a peer that came back on a new one.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(0);

/// One signaling peer, from upgrade to close: a newcomer (`room` without
/// an id) or a returning peer with its id.
async fn peer(
    mut socket: WebSocket,
    shared: Arc<Shared>,
    room: Result<(Option<PeerId>, RoomRequest), Refusal>,
    tokens: bool,
    client: IpAddr,
    _slots: Slots,
) {
    let _open = CountGuard::new(&shared.peers);
    shared.metrics.connections_total.increment(1);
    let (peer, room) = match room {
        Ok(room) => room,
        Err(reason) => return close(socket, reason, client, &shared).await,
    };
    if peer.is_some() {
        shared.metrics.resumes.increment(1);
    }
    let peer = peer.unwrap_or_else(|| PeerId(Uuid::new_v4()));
    let connection = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel(shared.config.outbound_queue);
    let join = ToActor::Join {
        peer,
        connection,
        room,
        tx,
        tokens,
        at: Instant::now(),
    };
    if shared.actor.send(join).await.is_err() {
        return close(socket, Refusal::ServerShutdown, client, &shared).await;
    }
    let ended = drive(&mut socket, &mut rx, peer, &shared).await;
    let dropped = match &ended {
        Ended::Goodbye => false,
        Ended::Lost | Ended::Away | Ended::Closed(Refusal::IdleTimeout(_)) => true,
        Ended::Closed(_) => false,
    };
    let left = ToActor::Left {
        peer,
        connection,
        dropped,
    };
    let _ = shared.actor.send(left).await;
    if let Ended::Closed(reason) = ended {
        close(socket, reason, client, &shared).await;
    }
}

/// How a peer's connection ended.
enum Ended {
    /// The client said goodbye (a close frame).
    Goodbye,
    /// The client's page went away (close code 1001: a browser tab
    /// reloaded or navigated): it may be back in a moment, so its seat is
    /// held as for a lost connection.
    Away,
    /// The client is gone without one (reset, protocol error).
    Lost,
    /// The server closes it, for this reason.
    Closed(Refusal),
}

/// Why a write did not happen.
enum WriteFailed {
    /// The client is gone (reset, protocol error).
    Gone,
    /// The write made no progress within the write timeout.
    Stalled,
}

/// Sends one frame under the write deadline (the socket's own per-write
/// deadline covers the bytes; this covers the whole frame).
async fn send(
    socket: &mut WebSocket,
    message: Message,
    deadline: Duration,
) -> Result<(), WriteFailed> {
    match tokio::time::timeout(deadline, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if is_stall(&e) => Err(WriteFailed::Stalled),
        Ok(Err(_)) => Err(WriteFailed::Gone),
        Err(_) => Err(WriteFailed::Stalled),
    }
}

/// Pumps messages both ways until the connection ends; returns how.
async fn drive(
    socket: &mut WebSocket,
    rx: &mut mpsc::Receiver<Outbound>,
    peer: PeerId,
    shared: &Shared,
) -> Ended {
    let config = &shared.config;
    let idle = config.idle_timeout;
    let write = config.write_timeout;
    let failed = |e: WriteFailed| match e {
        WriteFailed::Gone => Ended::Lost,
        WriteFailed::Stalled => Ended::Closed(Refusal::SlowConsumer),
    };
    // Clients that send their own keep-alives (matchbox sends one every 10 s)
    // are never pinged: matchbox_socket logs a warning for every ping frame.
    let check_every = idle / 4;
    let mut last_seen = Instant::now();
    let mut bucket = TokenBucket::new(config.rate_per_second, config.rate_burst, last_seen);
    let timer = tokio::time::sleep(check_every);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outbound::Text(text)) => {
                    if let Err(e) = send(socket, Message::Text(text), write).await {
                        return failed(e);
                    }
                }
                Some(Outbound::Close(reason)) => return Ended::Closed(reason),
                // The actor dropped our queue: it was full.
                None => return Ended::Closed(Refusal::SlowConsumer),
            },
            incoming = socket.recv() => {
                let now = Instant::now();
                last_seen = now;
                let message = match incoming {
                    None => return Ended::Lost,
                    Some(Err(e)) => return read_error(e, config.max_message_size),
                    Some(Ok(message)) => message,
                };
                // Every frame counts, pings included: each one costs a pong.
                if !bucket.take(now) {
                    return Ended::Closed(Refusal::RateLimited {
                        per_second: config.rate_per_second,
                        burst: config.rate_burst,
                    });
                }
                match message {
                    Message::Close(frame) => {
                        // Send the close reply tungstenite queued, bounded in time.
                        let _ = tokio::time::timeout(write, socket.flush()).await;
                        return match frame {
                            Some(f) if f.code == GOING_AWAY => Ended::Away,
                            _ => Ended::Goodbye,
                        };
                    }
                    Message::Binary(_) => return Ended::Closed(Refusal::BinaryFrame),
                    Message::Ping(_) | Message::Pong(_) => {}
                    Message::Text(text) => {
                        match wire::decode_request(text.as_str()) {
                            Ok(PeerRequest::KeepAlive) => {}
                            Ok(PeerRequest::Signal { to, data }) => {
                                let signal = ToActor::Signal { from: peer, to, data };
                                if shared.actor.send(signal).await.is_err() {
                                    return Ended::Closed(Refusal::ServerShutdown);
                                }
                            }
                            Err(e) => {
                                return Ended::Closed(Refusal::MalformedRequest(e.to_string()));
                            }
                        }
                    }
                }
            },
            () = &mut timer => {
                let quiet = last_seen.elapsed();
                if quiet >= idle {
                    return Ended::Closed(Refusal::IdleTimeout(idle));
                }
                if quiet >= idle / 2
                    && let Err(e) = send(socket, Message::Ping(bytes::Bytes::new()), write).await
                {
                    return failed(e);
                }
                timer.as_mut().reset(tokio::time::Instant::now() + check_every);
            }
        }
    }
}

fn read_error(error: axum::Error, limit: usize) -> Ended {
    use tungstenite::error::{CapacityError, Error};
    match error.into_inner().downcast::<Error>() {
        Ok(e) if matches!(*e, Error::Capacity(CapacityError::MessageTooLong { .. })) => {
            Ended::Closed(Refusal::MessageTooLarge { limit })
        }
        Ok(e) if matches!(*e, Error::Utf8(_)) => {
            Ended::Closed(Refusal::MalformedRequest("text frame is not UTF-8".into()))
        }
        _ => Ended::Lost, // reset or protocol error: nobody left to tell
    }
}

/// Closes with a reason: counted, logged, and sent as a close frame unless
/// the client is not reading anyway (then the socket is just dropped, which
/// frees its slot at once).
async fn close(mut socket: WebSocket, reason: Refusal, client: IpAddr, shared: &Shared) {
    shared.metrics.refused(reason.label());
    info!("closing a peer from {client}: {reason}");
    if reason == Refusal::SlowConsumer {
        return debug!("not sending a close frame to a client that does not read");
    }
    let frame = CloseFrame {
        code: reason.close_code(),
        reason: Utf8Bytes::from(reason.frame_text()),
    };
    let _ = send(
        &mut socket,
        Message::Close(Some(frame)),
        shared.config.write_timeout,
    )
    .await;
}
