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
use super::driven::{Closing, Driven, Incoming};
use super::redial::Redial;
use crate::builder::IceConfig;
use crate::resume_store::unix_now;
use crate::signal::{self, Event, PeerSignal, Request};
use crate::tls::TlsRoots;
use crate::{PeerId, ResumeStore, frame};

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

/// Signals kept from a peer whose new connection waits for its old one to
/// end (an offer and its first candidates).
const REPLACING_SIGNALS: usize = 64;

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
    /// A connection to a peer we had before: its failure is no news for
    /// the game (the peer stays lost, and we try again).
    pub(super) quiet: bool,
}

/// A platform's WebRTC and WebSocket.
pub(super) trait Stack: 'static {
    /// A connected peer's data channels, for the session.
    type Channels;
    /// The signaling connection's halves.
    type Reader;
    type Writer;
    /// A peer connection's task (see [`Stack::run`]).
    type Peer: Future<Output = (PeerId, bool)> + Unpin;

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
    /// connection), reports it up, then down. Returns the peer, and
    /// whether the connection came up.
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

/// A connection the session wants: its task's signals (dropping the
/// sender closes it), who offered, and since when.
struct Link {
    signals: UnboundedSender<PeerSignal>,
    role: Role,
    started: Instant,
}

/// The connections' tasks. At most one task per peer runs at a time, so
/// that an old connection's `Down` always reaches the session before a new
/// one's `Up`: a replacement waits for the old task to end.
struct Peers<S: Stack> {
    links: HashMap<PeerId, Link>,
    running: FuturesUnordered<S::Peer>,
    /// Tasks not yet ended, by peer (closed ones included).
    alive: HashMap<PeerId, usize>,
    /// Peers we had a connection to (their failures are quiet).
    known: HashSet<PeerId>,
    /// Offers from peers whose old connection is still ending.
    replacing: HashMap<PeerId, Vec<PeerSignal>>,
    config: Arc<IceConfig>,
    incoming: UnboundedSender<Incoming<S::Channels>>,
    outgoing: UnboundedSender<(PeerId, PeerSignal)>,
}

impl<S: Stack> Peers<S> {
    /// Starts a connection to `peer`, unless one runs (or is ending).
    fn start(&mut self, peer: PeerId, role: Role) -> bool {
        if self.links.contains_key(&peer) || self.alive.get(&peer).is_some_and(|n| *n > 0) {
            return false;
        }
        if self.alive.len() >= MAX_PEERS {
            tracing::warn!("refusing a connection to {peer}: {MAX_PEERS} peers already");
            return false;
        }
        let (tx, rx) = mpsc::unbounded();
        let link = Link {
            signals: tx,
            role,
            started: Instant::now(),
        };
        self.links.insert(peer, link);
        *self.alive.entry(peer).or_default() += 1;
        let cx = Context {
            config: self.config.clone(),
            incoming: self.incoming.clone(),
            signals: self.outgoing.clone(),
            quiet: !self.known.insert(peer),
        };
        self.running.push(S::run(peer, role, rx, cx));
        true
    }

    /// Closes the connection to `peer` (its task ends soon after).
    fn close(&mut self, peer: PeerId) -> Option<Link> {
        self.replacing.remove(&peer);
        self.links.remove(&peer)
    }

    /// An offer from `sender` while we hold a connection to it. Ours stands
    /// when it is an offer of our own still being negotiated and our id is
    /// the lower (the other side yields the same way); otherwise the
    /// sender has lost what we hold: ours is closed and the offer answered
    /// once it has ended.
    fn offered(&mut self, me: Option<PeerId>, sender: PeerId, offer: PeerSignal) {
        let Some(link) = self.links.get(&sender) else {
            if self.alive.get(&sender).is_some_and(|n| *n > 0) {
                self.replacing.insert(sender, vec![offer]);
            } else if self.start(sender, Role::Answerer)
                && let Some(link) = self.links.get(&sender)
            {
                let _ = link.signals.unbounded_send(offer);
            }
            return;
        };
        let negotiating = link.started.elapsed() < self.config.timing.setup_timeout;
        if link.role == Role::Offerer && negotiating && me.is_some_and(|me| me < sender) {
            tracing::debug!("{sender} offered while our offer is under way: ours stands");
            return;
        }
        tracing::debug!("{sender} offered again: replacing our connection to it");
        self.links.remove(&sender);
        self.replacing.insert(sender, vec![offer]);
    }

    /// A signal for `peer`'s connection (or for the one replacing it).
    fn forward(&mut self, peer: PeerId, signal: PeerSignal) {
        if let Some(waiting) = self.replacing.get_mut(&peer) {
            if waiting.len() < REPLACING_SIGNALS {
                waiting.push(signal);
            }
        } else if let Some(link) = self.links.get(&peer) {
            let _ = link.signals.unbounded_send(signal);
        }
    }

    /// A task of `peer`'s ended: `Some` when no other connection to the
    /// peer remains (a replacement starts here instead).
    fn ended(&mut self, peer: PeerId) -> Option<()> {
        if let Some(n) = self.alive.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.alive.remove(&peer);
            }
        }
        if let Some(signals) = self.replacing.remove(&peer) {
            if self.start(peer, Role::Answerer)
                && let Some(link) = self.links.get(&peer)
            {
                for signal in signals {
                    let _ = link.signals.unbounded_send(signal);
                }
            }
            return None;
        }
        self.links.remove(&peer);
        Some(())
    }
}

/// A session's side and its message loop, for the platform's transport to
/// box (natively the loop must be `Send`, in the browser it cannot be).
pub(super) fn open<S: Stack>(
    room_url: &str,
    fallbacks: &[String],
    resume: Option<ResumeStore>,
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
        Comeback::new(room_url, fallbacks).stored_in(resume, unix_now()),
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
    Closed(Option<(PeerId, Closing)>),
    /// An offer to a lost room-mate is due.
    Redial,
    /// A peer's connection ended (whether it had come up).
    Ended((PeerId, bool)),
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
    mut closes: UnboundedReceiver<(PeerId, Closing)>,
) -> Result<(), TransportError> {
    let first = comeback.first_url();
    let link = match connect::<S>(&first, &tls).await {
        Err(e) if comeback.has_token() => {
            tracing::warn!("{e}; joining afresh without the stored seat");
            comeback.forget();
            connect::<S>(&comeback.first_url(), &tls).await?
        }
        connected => connected?,
    };
    let mut link = Some(link);
    // Coming back: waiting for our id again, to tell the session.
    let mut returning = false;
    let attempt = futures_util::future::Fuse::terminated();
    futures_util::pin_mut!(attempt);
    let (outgoing, mut signals) = mpsc::unbounded::<(PeerId, PeerSignal)>();
    let news = incoming.clone();
    let mut peers = Peers::<S> {
        links: HashMap::new(),
        running: FuturesUnordered::new(),
        alive: HashMap::new(),
        known: HashSet::new(),
        replacing: HashMap::new(),
        config,
        incoming,
        outgoing,
    };
    let mut closed = HashSet::new();
    let mut redial = Redial::default();
    let mut keepalive = futures_timer::Delay::new(KEEPALIVE).fuse();
    loop {
        let woke = {
            let heard = async {
                match &mut link {
                    Some((reader, _)) => S::next(reader).await,
                    None => futures_util::future::pending().await,
                }
            };
            let due = async {
                match redial.next_due() {
                    Some(at) => {
                        let wait = at.saturating_duration_since(Instant::now());
                        futures_timer::Delay::new(wait).await;
                    }
                    None => futures_util::future::pending().await,
                }
            };
            futures_util::select! {
                heard = heard.fuse() => Woke::Heard(heard),
                () = due.fuse() => Woke::Redial,
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
                Event::NewPeer(peer) => {
                    redial.named(peer);
                    redial.connecting(peer);
                    peers.start(peer, Role::Offerer);
                }
                Event::PeerLeft(peer) => {
                    redial.forget(peer);
                    peers.close(peer);
                }
                Event::Signal { .. } if id.get().is_none() => {}
                Event::Signal { sender, .. } if closed.contains(&sender) => {}
                Event::Signal {
                    sender,
                    data: offer @ PeerSignal::Offer(_),
                } => {
                    redial.named(sender);
                    redial.connecting(sender);
                    peers.offered(id.get().copied(), sender, offer);
                }
                Event::Signal { sender, data } => peers.forward(sender, data),
                Event::ResumeToken(token) => comeback.token(token, unix_now()),
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
            // Forgotten, so that the server's word (or our next offer, see
            // `redial`) can connect it again.
            Woke::Ended((peer, up)) => {
                if let (Some(()), Some(me)) = (peers.ended(peer), id.get()) {
                    redial.ended(*me, peer, up, Instant::now());
                }
            }
            Woke::Closed(Some((peer, Closing::ForGood))) => {
                peers.close(peer);
                redial.forget(peer);
                if closed.len() >= CLOSED_KEPT {
                    closed.clear();
                }
                closed.insert(peer);
            }
            // Lost, not refused: it may come back (or be offered to again).
            Woke::Closed(Some((peer, Closing::LetGo))) => {
                peers.close(peer);
            }
            Woke::Redial => {
                for peer in redial.take_due(Instant::now()) {
                    tracing::debug!("offering again to {peer}, lost while we both stayed");
                    peers.start(peer, Role::Offerer);
                }
            }
            Woke::Closed(None) => break, // the session is gone
            Woke::Keepalive => {
                comeback.touch(unix_now());
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
    peers.links.clear();
    peers.replacing.clear();
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
