//! The session's side of volley's own transports (native and browser): the
//! connections run in the message loop ([`super::mesh`]); the session gets
//! their news through a channel, and sends on the data channels directly
//! (a hop through the message loop would cost a wake-up per packet).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender};
use web_time::Instant;

use super::Transport;
use crate::endpoint::Endpoint;
use crate::stats::Link;
use crate::{Channel, PeerId};

pub(crate) use crate::endpoint::Closing;

/// Packets kept per peer between its first channel opening and the last
/// (they are handed on once the peer is connected).
const EARLY_PACKETS: usize = 256;

/// A connected peer's data channels, as the session holds them.
pub(crate) trait PeerChannels: Send + Sync + 'static {
    /// Queues one packet (a closed channel drops it).
    fn send(&self, channel: Channel, packet: Vec<u8>);
    /// Bytes queued on `channel` and not yet released by the connection.
    fn buffered(&self, channel: Channel) -> usize;
}

/// What the connections tell the session.
pub(crate) enum Incoming<D> {
    /// Every data channel to the peer is open: here they are.
    Up(PeerId, D),
    /// The connection is gone.
    Down(PeerId),
    /// The connection never came up, and why.
    Failed(PeerId, String),
    /// A packet, with its arrival time.
    Packet(PeerId, Channel, Vec<u8>, Instant),
    /// The selected candidate pair.
    Link(PeerId, Link),
    /// The signaling server was lost (why), or is back (`None`).
    Signaling(Option<String>),
}

/// The session's side of a transport whose connections run in a
/// [`super::mesh`] message loop.
pub(crate) struct Driven<D> {
    id: Arc<OnceLock<PeerId>>,
    incoming: UnboundedReceiver<Incoming<D>>,
    /// Peers the session closed, to the message loop.
    closes: UnboundedSender<(PeerId, Closing)>,
    up: HashMap<PeerId, D>,
    /// Packets from peers whose channels are not all open yet.
    early: HashMap<PeerId, Vec<(Channel, Vec<u8>, Instant)>>,
}

impl<D> Driven<D> {
    pub(crate) fn new(
        id: Arc<OnceLock<PeerId>>,
        incoming: UnboundedReceiver<Incoming<D>>,
        closes: UnboundedSender<(PeerId, Closing)>,
    ) -> Self {
        Driven {
            id,
            incoming,
            closes,
            up: HashMap::new(),
            early: HashMap::new(),
        }
    }
}

impl<D: PeerChannels> Transport for Driven<D> {
    fn id(&mut self) -> Option<PeerId> {
        self.id.get().copied()
    }

    fn poll(&mut self, endpoint: &mut Endpoint, now: Instant) {
        while let Ok(incoming) = self.incoming.try_recv() {
            match incoming {
                Incoming::Up(peer, channels) => {
                    self.up.insert(peer, channels);
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
                Incoming::Failed(peer, why) => {
                    self.early.remove(&peer);
                    endpoint.peer_unreachable(peer, why);
                }
                Incoming::Link(peer, link) => endpoint.set_link(peer, link),
                Incoming::Signaling(lost) => endpoint.set_signaling(lost),
            }
        }
    }

    fn send(&mut self, peer: PeerId, channel: Channel, packet: Vec<u8>) {
        if let Some(channels) = self.up.get(&peer) {
            channels.send(channel, packet);
        }
    }

    fn buffered(&mut self, peer: PeerId, channel: Channel) -> usize {
        self.up.get(&peer).map_or(0, |c| c.buffered(channel))
    }

    fn close(&mut self, peer: PeerId, closing: Closing) {
        self.up.remove(&peer);
        self.early.remove(&peer);
        let _ = self.closes.unbounded_send((peer, closing));
    }
}
