//! The native transport: webrtc-rs 0.21 directly, speaking matchbox's
//! signaling protocol unchanged (so volley-server, matchbox_server and
//! unmodified matchbox_socket peers, native or browser, share rooms with
//! it), with matchbox's data channel layout.
//!
//! The message loop ([`NativeTransport::open`]) holds the signaling
//! connection and one task per peer connection ([`peer::run`]); the
//! session side ([`NativeTransport`]) exchanges channel messages with it.
//! Packets are read where they arrive, on the connections' own (smol)
//! threads, stamped with their arrival time; pings are answered there.

mod peer;
mod signaling;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use futures_channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use web_time::Instant;
use webrtc::data_channel::DataChannel;

use self::peer::{Context, Incoming, Role};
use self::signaling::{Heard, Signaling};
use super::{MessageLoopFuture, Transport, TransportError};
use crate::builder::IceConfig;
use crate::endpoint::Endpoint;
use crate::signal::{Event, PeerSignal, Request};
use crate::{Channel, PeerId};

/// Connections at most at once: each binds sockets, so a signaling server
/// (or a crowd) announcing more peers than a game can play with is
/// refused beyond this.
pub const MAX_PEERS: usize = 64;

/// Packets kept per peer between its first channel opening and the last
/// (they are handed on once the peer is connected).
const EARLY_PACKETS: usize = 256;

/// Between two keepalives to the signaling server (as matchbox).
const KEEPALIVE: Duration = Duration::from_secs(10);

/// The session's side of the native transport.
pub(crate) struct NativeTransport {
    id: Arc<OnceLock<PeerId>>,
    incoming: UnboundedReceiver<Incoming>,
    /// Peers the session closed, to the message loop.
    closes: UnboundedSender<PeerId>,
    /// Connected peers' data channels, by channel index.
    up: HashMap<PeerId, Vec<Arc<dyn DataChannel>>>,
    /// Packets from peers whose channels are not all open yet.
    early: HashMap<PeerId, Vec<(Channel, Vec<u8>, Instant)>>,
}

impl NativeTransport {
    /// Connects to the room; returns the transport and its message loop.
    pub(crate) fn open(room_url: &str, ice: &IceConfig) -> (Box<dyn Transport>, MessageLoopFuture) {
        let id = Arc::new(OnceLock::new());
        let (incoming_tx, incoming) = mpsc::unbounded();
        let (closes, closes_rx) = mpsc::unbounded();
        let message_loop = Box::pin(message_loop(
            room_url.to_owned(),
            Arc::new(ice.clone()),
            id.clone(),
            incoming_tx,
            closes_rx,
        ));
        let transport = NativeTransport {
            id,
            incoming,
            closes,
            up: HashMap::new(),
            early: HashMap::new(),
        };
        (Box::new(transport), message_loop)
    }

    /// A connected peer's data channel.
    fn channel(&self, peer: PeerId, channel: Channel) -> Option<&Arc<dyn DataChannel>> {
        self.up.get(&peer)?.get(channel.index())
    }
}

impl Transport for NativeTransport {
    fn id(&mut self) -> Option<PeerId> {
        self.id.get().copied()
    }

    fn poll(&mut self, endpoint: &mut Endpoint, now: Instant) {
        while let Ok(incoming) = self.incoming.try_recv() {
            match incoming {
                Incoming::Up(peer, dcs) => {
                    self.up.insert(peer, dcs);
                    endpoint.peer_connected(peer, now);
                    for (channel, packet, at) in self.early.remove(&peer).unwrap_or_default() {
                        endpoint.receive_packet(peer, channel, packet, at);
                    }
                }
                Incoming::Down(peer) => {
                    self.up.remove(&peer);
                    self.early.remove(&peer);
                    endpoint.peer_disconnected(peer);
                }
                Incoming::Packet(peer, channel, packet, at) => {
                    if self.up.contains_key(&peer) {
                        endpoint.receive_packet(peer, channel, packet, at);
                    } else {
                        let early = self.early.entry(peer).or_default();
                        if early.len() < EARLY_PACKETS {
                            early.push((channel, packet, at));
                        }
                    }
                }
                Incoming::Link(peer, link) => endpoint.set_link(peer, link),
            }
        }
    }

    /// Sends on this thread: queueing a packet in webrtc-rs takes its
    /// connection's lock (held by its driver only briefly) and wakes the
    /// driver; a hop through the message loop's executor cost half the
    /// throughput. Without a send-buffer limit, `send` never waits for room.
    fn send(&mut self, peer: PeerId, channel: Channel, packet: Vec<u8>) {
        if let Some(dc) = self.channel(peer, channel) {
            // Vec → Bytes → BytesMut moves the buffer (no copy).
            let _ = smol::block_on(dc.send(BytesMut::from(bytes::Bytes::from(packet))));
        }
    }

    fn buffered(&mut self, peer: PeerId, channel: Channel) -> usize {
        self.channel(peer, channel)
            .and_then(|dc| smol::block_on(dc.outstanding_bytes()).ok())
            .unwrap_or(0)
    }

    fn close(&mut self, peer: PeerId) {
        self.up.remove(&peer);
        let _ = self.closes.unbounded_send(peer);
    }
}

/// The connections' tasks, and each one's signals (dropping a peer's
/// sender closes its connection).
struct Peers {
    signals: HashMap<PeerId, UnboundedSender<PeerSignal>>,
    running: FuturesUnordered<BoxFuture<'static, PeerId>>,
    config: Arc<IceConfig>,
    incoming: UnboundedSender<Incoming>,
    outgoing: UnboundedSender<(PeerId, PeerSignal)>,
}

impl Peers {
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
        self.running.push(Box::pin(peer::run(peer, role, rx, cx)));
    }
}

/// What woke the message loop.
enum Woke {
    Heard(Heard),
    Outgoing(Option<(PeerId, PeerSignal)>),
    /// The session closed a peer (`None`: the session is gone).
    Closed(Option<PeerId>),
    Ended,
    Keepalive,
}

/// The signaling connection and the peer connections, until the session
/// is dropped (then every connection is closed) or the signaling server
/// cannot be reached. Losing the server later is not fatal: the
/// connections made stay.
async fn message_loop(
    url: String,
    config: Arc<IceConfig>,
    id: Arc<OnceLock<PeerId>>,
    incoming: UnboundedSender<Incoming>,
    mut closes: UnboundedReceiver<PeerId>,
) -> Result<(), TransportError> {
    let (mut reader, mut writer) = Signaling::connect(&url).await?.split();
    let mut signaling_up = true;
    let (outgoing, mut signals) = mpsc::unbounded::<(PeerId, PeerSignal)>();
    let mut peers = Peers {
        signals: HashMap::new(),
        running: FuturesUnordered::new(),
        config,
        incoming,
        outgoing,
    };
    let mut keepalive = futures_timer::Delay::new(KEEPALIVE).fuse();
    loop {
        let woke = {
            let heard = async {
                if signaling_up {
                    reader.next().await
                } else {
                    futures_util::future::pending().await
                }
            };
            futures_util::select! {
                heard = heard.fuse() => Woke::Heard(heard),
                out = signals.next() => Woke::Outgoing(out),
                closed = closes.next() => Woke::Closed(closed),
                _ = peers.running.select_next_some() => Woke::Ended,
                _ = keepalive => Woke::Keepalive,
            }
        };
        match woke {
            Woke::Heard(Heard::Event(event)) => match event {
                Event::IdAssigned(me) => {
                    let _ = id.set(me);
                }
                Event::NewPeer(peer) => peers.start(peer, Role::Offerer),
                Event::PeerLeft(peer) => {
                    peers.signals.remove(&peer);
                }
                Event::Signal { sender, data } => {
                    if matches!(data, PeerSignal::Offer(_)) {
                        peers.start(sender, Role::Answerer);
                    }
                    if let Some(to_peer) = peers.signals.get(&sender) {
                        let _ = to_peer.unbounded_send(data);
                    }
                }
            },
            Woke::Heard(Heard::Nothing) => {}
            Woke::Heard(Heard::Closed(why)) => {
                if id.get().is_none() {
                    return Err(TransportError(format!("signaling server: {why}")));
                }
                tracing::warn!("lost the signaling server ({why}); connected peers stay");
                signaling_up = false;
            }
            Woke::Outgoing(Some((receiver, data))) => {
                if signaling_up
                    && let Err(e) = writer.send(&Request::Signal { receiver, data }).await
                {
                    tracing::warn!("{e}; connected peers stay");
                    signaling_up = false;
                }
            }
            Woke::Outgoing(None) | Woke::Ended => {}
            Woke::Closed(Some(peer)) => {
                peers.signals.remove(&peer);
            }
            Woke::Closed(None) => break, // the session is gone
            Woke::Keepalive => {
                if signaling_up {
                    let _ = writer.send(&Request::KeepAlive).await;
                }
                keepalive = futures_timer::Delay::new(KEEPALIVE).fuse();
            }
        }
    }
    peers.signals.clear();
    while peers.running.next().await.is_some() {}
    Ok(())
}
