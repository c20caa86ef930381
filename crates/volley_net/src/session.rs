//! [`Session`]: the [`Endpoint`] (the protocol) driven over a transport.

use serde::Serialize;
use web_time::Instant;

use crate::builder::SessionBuilder;
use crate::endpoint::{Endpoint, Transmit};
use crate::error::{NetError, SessionEvent};
use crate::guard::PeerLimits;
use crate::stats::PeerStats;
use crate::transport::{MessageLoopFuture, OpenTransport, PlatformTransport, Transport};
use crate::{Channel, PeerId};

impl SessionBuilder {
    /// Asks the signaling server's `/api/ice` which STUN/TURN servers to
    /// use. When it names any, they replace the configured ones; when it
    /// names none, fails or is not there, the configured ones stay (and
    /// the reason is logged). Await it before [`SessionBuilder::build`].
    pub async fn with_server_ice(mut self) -> Self {
        match crate::ice::fetch_ice_servers(&self.room_url, &self.tls).await {
            Ok(servers) if !servers.is_empty() => {
                tracing::debug!("ICE servers from the signaling server: {servers:?}");
                self.ice.servers = servers;
            }
            Ok(_) => tracing::debug!("the signaling server names no ICE servers"),
            Err(e) => tracing::info!("no ICE servers from the signaling server: {e}"),
        }
        self
    }

    /// Opens the connection. The returned future is the transport's message
    /// loop: spawn it on any executor (it needs no tokio) and keep it running.
    pub fn build(self) -> (Session, MessageLoopFuture) {
        let (transport, message_loop) = PlatformTransport::open_via(
            &self.room_url,
            &self.fallbacks,
            self.resume.clone(),
            &self.ice,
            &self.tls,
        );
        let session = Session {
            endpoint: self.endpoint(Instant::now()),
            transport,
        };
        (session, message_loop)
    }

    /// [`SessionBuilder::build`] over another transport, such as
    /// [`MatchboxTransport::open`](crate::MatchboxTransport::open)
    /// (without [`SessionBuilder::fallback_servers`]).
    pub fn build_with(self, open: OpenTransport) -> (Session, MessageLoopFuture) {
        let (transport, message_loop) = open(&self.room_url, &self.ice, &self.tls);
        let session = Session {
            endpoint: self.endpoint(Instant::now()),
            transport,
        };
        (session, message_loop)
    }
}

/// A connection to a room: typed messages to and from every peer in it.
pub struct Session {
    endpoint: Endpoint,
    transport: Box<dyn Transport>,
}

impl Session {
    /// Starts configuring a session for `room_url` (`ws://host:port/room`,
    /// or `…/room?next=N` to be matched into a group of N).
    pub fn builder(room_url: &str) -> SessionBuilder {
        SessionBuilder::new(room_url)
    }

    /// The protocol core, for what only it knows.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Our id, once the signaling server assigned it.
    pub fn id(&mut self) -> Option<PeerId> {
        self.transport.id()
    }

    /// This session's protocol hash.
    pub fn protocol_hash(&self) -> u64 {
        self.endpoint.protocol_hash()
    }

    /// Whether the signaling server is reachable (see
    /// [`SessionEvent::SignalingLost`](crate::SessionEvent)).
    pub fn signaling_up(&self) -> bool {
        self.endpoint.signaling_up()
    }

    /// Peers whose handshake is done, in no particular order.
    pub fn connected_peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.endpoint.connected_peers()
    }

    /// The per-peer limits in force.
    pub fn peer_limits(&self) -> &PeerLimits {
        self.endpoint.peer_limits()
    }

    /// Received messages dropped because the game left
    /// [`PeerLimits::inbox_per_type`] of their type unread.
    pub fn inbox_overflows(&self) -> u64 {
        self.endpoint.inbox_overflows()
    }

    /// What is known about the link to `peer`.
    pub fn stats(&self, peer: PeerId) -> Option<&PeerStats> {
        self.endpoint.stats(peer)
    }

    /// Counts an invalid packet from `peer` that a layer above found (see
    /// [`Endpoint::report_invalid`]); enough of them drop the peer.
    pub fn report_invalid(&mut self, peer: PeerId, error: &dyn std::fmt::Display) {
        self.endpoint.report_invalid(peer, error, Instant::now());
        self.drain();
    }

    /// Closes the connection to `peer` (the others stay): the game gets
    /// [`SessionEvent::Left`] with [`LeftReason::Closed`](crate::LeftReason::Closed).
    /// `false` when it was not a peer.
    pub fn disconnect(&mut self, peer: PeerId) -> bool {
        let was = self.endpoint.disconnect(peer);
        self.drain();
        was
    }

    /// Closes the connection to a `peer` that stopped answering: the game
    /// gets [`SessionEvent::Left`] with
    /// [`LeftReason::Disconnected`](crate::LeftReason::Disconnected), and
    /// the peer may connect again (see [`Endpoint::let_go`]). `false` when
    /// it was not a peer.
    pub fn let_go(&mut self, peer: PeerId) -> bool {
        let was = self.endpoint.let_go(peer);
        self.drain();
        was
    }

    /// Drains the events since the last call.
    pub fn events(&mut self) -> Vec<SessionEvent> {
        self.endpoint.events()
    }

    /// Drains the `T` messages received so far, in arrival order.
    pub fn receive<T: 'static>(&mut self) -> Vec<(PeerId, T)> {
        self.endpoint
            .receive::<T>()
            .into_iter()
            .map(|(peer, _, value)| (peer, value))
            .collect()
    }

    /// Like [`Session::receive`], with the tick each message was sent with.
    pub fn receive_with_tick<T: 'static>(&mut self) -> Vec<(PeerId, Option<u32>, T)> {
        self.endpoint.receive::<T>()
    }

    /// Sends `message` to one connected peer. It leaves at the next
    /// [`Session::flush`] or [`Session::update`] (sooner when its batch is
    /// full), packed with the other messages sent to that peer on its
    /// channel: see [`crate::batch`].
    pub fn send<T: Serialize + 'static>(
        &mut self,
        peer: PeerId,
        message: &T,
    ) -> Result<(), NetError> {
        self.send_with_tick(peer, message, None)
    }

    /// Sends `message` stamped with a simulation tick.
    pub fn send_with_tick<T: Serialize + 'static>(
        &mut self,
        peer: PeerId,
        message: &T,
        tick: Option<u32>,
    ) -> Result<(), NetError> {
        let sent = self.endpoint.send(peer, message, tick, Instant::now());
        self.drain();
        sent
    }

    /// Sends `message` to every connected peer.
    pub fn broadcast<T: Serialize + 'static>(&mut self, message: &T) -> Result<(), NetError> {
        self.broadcast_with_tick(message, None)
    }

    /// Sends `message`, stamped with a simulation tick, to every connected peer.
    pub fn broadcast_with_tick<T: Serialize + 'static>(
        &mut self,
        message: &T,
        tick: Option<u32>,
    ) -> Result<(), NetError> {
        let sent = self.endpoint.broadcast(message, tick, Instant::now());
        self.drain();
        sent
    }

    /// Sends an opaque packet on the [`Channel::Rollback`] channel (the
    /// rollback library frames its own messages; the conditioner and the
    /// traffic counters apply as on the other channels).
    pub fn send_rollback(&mut self, peer: PeerId, packet: Vec<u8>) -> Result<(), NetError> {
        self.send_raw(peer, Channel::Rollback, packet)
    }

    /// Sends bytes as they are on `channel` (see [`Endpoint::send_raw`]).
    pub fn send_raw(
        &mut self,
        peer: PeerId,
        channel: Channel,
        packet: Vec<u8>,
    ) -> Result<(), NetError> {
        let sent = self
            .endpoint
            .send_raw(peer, channel, packet, Instant::now());
        self.drain();
        sent
    }

    /// Bytes sent to `peer` on `channel` that its connection has not yet
    /// released (acknowledged, or abandoned on an unreliable channel): the
    /// back-pressure a game paces bulk sends by, since `send` never waits.
    /// Always 0 in the browser for now (the matchbox transport hides it).
    pub fn buffered(&mut self, peer: PeerId, channel: Channel) -> usize {
        self.transport.buffered(peer, channel)
    }

    /// Drains the packets received on the [`Channel::Rollback`] channel
    /// (see [`Endpoint::receive_rollback`]).
    pub fn receive_rollback(&mut self) -> Vec<(PeerId, Vec<u8>)> {
        self.endpoint.receive_rollback()
    }

    /// Processes everything that arrived, sends due pings, the messages sent
    /// since the last flush and delayed packets. Call it every frame (or
    /// every few milliseconds).
    pub fn update(&mut self) {
        let now = Instant::now();
        self.transport.poll(&mut self.endpoint, now);
        self.endpoint.update(now);
        self.drain();
    }

    /// Sends the messages sent since the last flush now, packed into as few
    /// packets as their channels allow. [`Session::update`] flushes too, so
    /// a game that updates every frame need not call it (the Bevy plugin
    /// flushes at the end of every frame, in `VolleySet::Flush`).
    pub fn flush(&mut self) {
        self.endpoint.flush(Instant::now());
        self.drain();
    }

    /// Carries out what the endpoint asked for.
    fn drain(&mut self) {
        while let Some(transmit) = self.endpoint.poll_transmit() {
            match transmit {
                Transmit::Send {
                    peer,
                    channel,
                    packet,
                } => self.transport.send(peer, channel, packet),
                Transmit::Close(peer, closing) => self.transport.close(peer, closing),
            }
        }
    }
}
