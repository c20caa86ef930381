//! The message loop of volley's own transports, native and browser alike:
//! the signaling connection (matchbox's protocol, see [`crate::signal`])
//! and one task per peer connection, each built by the platform's
//! [`Stack`]. Losing the server after we joined is not fatal: the
//! connections made stay, and the loop comes back to the server in the
//! background with its resume token ([`super::comeback`]).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use web_time::Instant;

use super::TransportError;
use super::comeback::{Comeback, ConnectError, Next};
use super::driven::{Driven, Incoming};
use crate::builder::IceConfig;
use crate::signal::{self, Event, PeerSignal, Request};
use crate::tls::TlsRoots;
use crate::{PeerId, frame};

/// Connections at most at once: each binds sockets, so a signaling server
/// (or a crowd) announcing more peers than a game can play with is
/// refused beyond this.
pub const MAX_PEERS: usize = 64;

/// Connection attempts before the session gives up on the server.
const CONNECT_ATTEMPTS: u32 = 3;

/// Between two connection attempts.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Between two keepalives to the signaling server (as matchbox).
const KEEPALIVE: Duration = Duration::from_secs(10);

/// An attempt to come back to the server that has not connected by then
/// is abandoned (TCP may wait minutes on a network that drops packets).
const COMEBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Peers the session closed, remembered so that the server's word never
/// reconnects them; beyond this many, the list starts afresh.
const CLOSED_KEPT: usize = 1024;

/// Pings answered on arrival per peer per [`PONG_WINDOW`]; more are left
/// to the session's per-peer limits.
const PONGS_PER_WINDOW: u32 = 32;
const PONG_WINDOW: Duration = Duration::from_millis(100);

/// Who makes the offer: the peer already in the room, told of a newcomer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Offerer,
    Answerer,
}

/// What the signaling server said.
pub(super) enum Heard {
    /// A protocol message.
    Event(Event),
    /// Something else (a ping, an unknown or oversized message): ignored.
    Nothing,
    /// The connection is gone (with the server's close code, if any).
    Closed {
        /// Why.
        why: String,
        /// The close frame's code.
        code: Option<u16>,
    },
}

impl Heard {
    /// A text frame from the server.
    pub(super) fn text(text: &str) -> Heard {
        match signal::decode_event(text) {
            Ok(event) => Heard::Event(event),
            Err(e) => {
                tracing::warn!("signaling server: {e}");
                Heard::Nothing
            }
        }
    }
}

/// Everything a peer connection's task needs besides the peer.
pub(super) struct Context<D> {
    pub(super) config: Arc<IceConfig>,
    pub(super) incoming: UnboundedSender<Incoming<D>>,
    pub(super) signals: UnboundedSender<(PeerId, PeerSignal)>,
}

/// A platform's WebRTC and WebSocket.
pub(super) trait Stack: 'static {
    /// A connected peer's data channels, for the session.
    type Channels;
    /// The signaling connection's halves.
    type Reader;
    type Writer;
    /// A peer connection's task (see [`Stack::run`]).
    type Peer: Future<Output = PeerId> + Unpin;

    /// Connects to the signaling server at `url` (once).
    fn connect(
        url: &str,
        tls: &TlsRoots,
    ) -> impl Future<Output = Result<(Self::Reader, Self::Writer), ConnectError>>;
    /// Waits for the server's next message.
    fn next(reader: &mut Self::Reader) -> impl Future<Output = Heard>;
    /// Sends a request to the server.
    fn send(
        writer: &mut Self::Writer,
        request: &Request,
    ) -> impl Future<Output = Result<(), TransportError>>;
    /// One peer's connection, from building it to its end: negotiates it
    /// (`remote` carries the peer's signals; its end closes the
    /// connection), reports it up, then down. Returns the peer.
    fn run(
        peer: PeerId,
        role: Role,
        remote: UnboundedReceiver<PeerSignal>,
        cx: Context<Self::Channels>,
    ) -> Self::Peer;
}

/// Answers pings where they arrive, within a budget per peer.
pub(super) struct PongBudget {
    window: Instant,
    answered: u32,
}

impl PongBudget {
    pub(super) fn new() -> Self {
        PongBudget {
            window: Instant::now(),
            answered: 0,
        }
    }

    /// The pong to send back at once for `packet` (an unreliable-channel
    /// packet that arrived at `now`), if it is a ping within the budget.
    /// Beyond it, pings go to the session like any packet: its limits
    /// count a flood against the sender.
    pub(super) fn pong(&mut self, packet: &[u8], now: Instant) -> Option<Vec<u8>> {
        let pong = frame::pong_for(packet)?;
        if now.duration_since(self.window) > PONG_WINDOW {
            (self.window, self.answered) = (now, 0);
        }
        (self.answered < PONGS_PER_WINDOW).then(|| {
            self.answered += 1;
            pong
        })
    }
}

/// Connects to the signaling server, trying [`CONNECT_ATTEMPTS`] times.
async fn connect<S: Stack>(
    url: &str,
    tls: &TlsRoots,
) -> Result<(S::Reader, S::Writer), TransportError> {
    let mut attempt = 1;
    loop {
        match S::connect(url, tls).await {
            Ok(halves) => return Ok(halves),
            Err(e) if attempt < CONNECT_ATTEMPTS => {
                tracing::warn!("signaling server {url}: {}; trying again", e.why);
                attempt += 1;
                futures_timer::Delay::new(RETRY_AFTER).await;
            }
            Err(e) => {
                return Err(TransportError(format!(
                    "cannot reach the signaling server at {url}: {}",
                    e.why
                )));
            }
        }
    }
}

/// The connections' tasks, and each one's signals (dropping a peer's
/// sender closes its connection).
struct Peers<S: Stack> {
    signals: HashMap<PeerId, UnboundedSender<PeerSignal>>,
    running: FuturesUnordered<S::Peer>,
    config: Arc<IceConfig>,
    incoming: UnboundedSender<Incoming<S::Channels>>,
    outgoing: UnboundedSender<(PeerId, PeerSignal)>,
}

impl<S: Stack> Peers<S> {
    fn start(&mut self, peer: PeerId, role: Role) {
        if self.signals.contains_key(&peer) {
            return;
        }
        if self.signals.len() >= MAX_PEERS {
            tracing::warn!("refusing a connection to {peer}: {MAX_PEERS} peers already");
            return;
        }
        let (tx, rx) = mpsc::unbounded();
        self.signals.insert(peer, tx);
        let cx = Context {
            config: self.config.clone(),
            incoming: self.incoming.clone(),
            signals: self.outgoing.clone(),
        };
        self.running.push(S::run(peer, role, rx, cx));
    }
}

/// A session's side and its message loop, for the platform's transport to
/// box (natively the loop must be `Send`, in the browser it cannot be).
pub(super) fn open<S: Stack>(
    room_url: &str,
    fallbacks: &[String],
    ice: &IceConfig,
    tls: &TlsRoots,
) -> (
    Driven<S::Channels>,
    impl Future<Output = Result<(), TransportError>> + use<S>,
) {
    let id = Arc::new(OnceLock::new());
    let (incoming_tx, incoming) = mpsc::unbounded();
    let (closes, closes_rx) = mpsc::unbounded();
    let message_loop = message_loop::<S>(
        Comeback::new(room_url, fallbacks),
        Arc::new(ice.clone()),
        tls.clone(),
        id.clone(),
        incoming_tx,
        closes_rx,
    );
    (Driven::new(id, incoming, closes), message_loop)
}

/// What woke the message loop.
enum Woke<R, W> {
    Heard(Heard),
    /// An attempt to come back to the server ended.
    Back(Result<(R, W), ConnectError>),
    Outgoing(Option<(PeerId, PeerSignal)>),
    /// The session closed a peer (`None`: the session is gone).
    Closed(Option<PeerId>),
    /// A peer's connection ended.
    Ended(PeerId),
    Keepalive,
}

/// One attempt to come back to the server at `url`, after `wait`.
async fn come_back<S: Stack>(
    url: String,
    tls: TlsRoots,
    wait: Duration,
) -> Result<(S::Reader, S::Writer), ConnectError> {
    futures_timer::Delay::new(wait).await;
    futures_util::select! {
        halves = S::connect(&url, &tls).fuse() => halves,
        () = futures_timer::Delay::new(COMEBACK_TIMEOUT).fuse() => {
            Err(ConnectError::from(format!("not connected within {COMEBACK_TIMEOUT:?}")))
        }
    }
}

/// The signaling connection and the peer connections, until the session
/// is dropped (then every connection is closed) or the signaling server
/// cannot be reached at first.
async fn message_loop<S: Stack>(
    mut comeback: Comeback,
    config: Arc<IceConfig>,
    tls: TlsRoots,
    id: Arc<OnceLock<PeerId>>,
    incoming: UnboundedSender<Incoming<S::Channels>>,
    mut closes: UnboundedReceiver<PeerId>,
) -> Result<(), TransportError> {
    let mut link = Some(connect::<S>(&comeback.first_url(), &tls).await?);
    // Coming back: waiting for our id again, to tell the session.
    let mut returning = false;
    let attempt = futures_util::future::Fuse::terminated();
    futures_util::pin_mut!(attempt);
    let (outgoing, mut signals) = mpsc::unbounded::<(PeerId, PeerSignal)>();
    let news = incoming.clone();
    let mut peers = Peers::<S> {
        signals: HashMap::new(),
        running: FuturesUnordered::new(),
        config,
        incoming,
        outgoing,
    };
    let mut closed = HashSet::new();
    let mut keepalive = futures_timer::Delay::new(KEEPALIVE).fuse();
    loop {
        let woke = {
            let heard = async {
                match &mut link {
                    Some((reader, _)) => S::next(reader).await,
                    None => futures_util::future::pending().await,
                }
            };
            futures_util::select! {
                heard = heard.fuse() => Woke::Heard(heard),
                back = attempt.as_mut() => Woke::Back(back),
                out = signals.next() => Woke::Outgoing(out),
                closed = closes.next() => Woke::Closed(closed),
                peer = peers.running.select_next_some() => Woke::Ended(peer),
                _ = keepalive => Woke::Keepalive,
            }
        };
        let mut lost = None;
        match woke {
            Woke::Heard(Heard::Event(event)) => match event {
                Event::IdAssigned(me) => match id.get() {
                    None => {
                        let _ = id.set(me);
                    }
                    Some(ours) if *ours == me => {
                        if std::mem::take(&mut returning) {
                            tracing::info!("back with the signaling server");
                            comeback.back();
                            let _ = news.unbounded_send(Incoming::Signaling(None));
                        }
                    }
                    Some(ours) => {
                        tracing::warn!("the signaling server gave us {me}, not our {ours}");
                        lost = Some(Next::GiveUp("the server did not give our id back".into()));
                    }
                },
                Event::NewPeer(peer) if closed.contains(&peer) => {}
                Event::NewPeer(peer) => peers.start(peer, Role::Offerer),
                Event::PeerLeft(peer) => {
                    peers.signals.remove(&peer);
                }
                Event::Signal { sender, data } => {
                    if matches!(data, PeerSignal::Offer(_)) && !closed.contains(&sender) {
                        peers.start(sender, Role::Answerer);
                    }
                    if let Some(to_peer) = peers.signals.get(&sender) {
                        let _ = to_peer.unbounded_send(data);
                    }
                }
                Event::ResumeToken(token) => comeback.token(token),
            },
            Woke::Heard(Heard::Nothing) => {}
            Woke::Heard(Heard::Closed { why, code }) => {
                if id.get().is_none() {
                    return Err(TransportError(format!("signaling server: {why}")));
                }
                tracing::warn!("lost the signaling server ({why}); connected peers stay");
                let _ = news.unbounded_send(Incoming::Signaling(Some(why)));
                lost = Some(comeback.lost(code));
            }
            Woke::Back(Ok(halves)) => {
                link = Some(halves);
                returning = true;
            }
            Woke::Back(Err(e)) => {
                tracing::debug!("signaling server still away: {}", e.why);
                lost = Some(comeback.failed(&e));
            }
            Woke::Outgoing(Some((receiver, data))) => {
                if let Some((_, writer)) = &mut link
                    && let Err(e) = S::send(writer, &Request::Signal { receiver, data }).await
                {
                    tracing::warn!("{e}; connected peers stay");
                    let _ = news.unbounded_send(Incoming::Signaling(Some(e.to_string())));
                    lost = Some(comeback.lost(None));
                }
            }
            Woke::Outgoing(None) => {}
            // Forgotten, so that the server's word can connect it again.
            Woke::Ended(peer) => {
                peers.signals.remove(&peer);
            }
            Woke::Closed(Some(peer)) => {
                peers.signals.remove(&peer);
                if closed.len() >= CLOSED_KEPT {
                    closed.clear();
                }
                closed.insert(peer);
            }
            Woke::Closed(None) => break, // the session is gone
            Woke::Keepalive => {
                if let Some((_, writer)) = &mut link {
                    let _ = S::send(writer, &Request::KeepAlive).await;
                }
                keepalive = futures_timer::Delay::new(KEEPALIVE).fuse();
            }
        }
        match lost {
            None => {}
            Some(Next::Retry { wait, url }) => {
                link = None;
                attempt.set(come_back::<S>(url, tls.clone(), wait).fuse());
            }
            Some(Next::GiveUp(why)) => {
                link = None;
                tracing::warn!("not coming back to the signaling server: {why}");
            }
        }
    }
    peers.signals.clear();
    while peers.running.next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_are_answered_within_the_budget_per_window() {
        let ping = frame::ping(7);
        let start = Instant::now();
        let mut budget = PongBudget::new();
        let answered = (0..100)
            .filter(|_| budget.pong(&ping, start).is_some())
            .count();
        assert_eq!(answered, PONGS_PER_WINDOW as usize);
        let later = start + PONG_WINDOW + Duration::from_millis(1);
        assert!(budget.pong(&ping, later).is_some());
        assert!(budget.pong(b"not a ping", later).is_none());
    }
}
