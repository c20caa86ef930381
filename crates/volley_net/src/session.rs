//! The I/O around the pure pieces: a `matchbox_socket` and the per-peer state.

use std::any::{Any, TypeId};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use matchbox_socket::{PeerId, PeerState, RtcIceServerConfig, WebRtcSocket};
use serde::Serialize;
use serde::de::DeserializeOwned;
use web_time::Instant;

use crate::codec::{Bincode, Codec, CodecError, DECODE_LIMIT};
use crate::conditioner::{ConditionerConfig, LinkConditioner};
use crate::fragment::{self, CHUNK, FragmentError, Reassembler};
use crate::frame::{self, FrameError, Header, KIND_FRAGMENT, KIND_HELLO, KIND_PING, KIND_PONG};
use crate::guard::{Backlog, Misbehaviour, PeerLimits, Strikes, truncated};
use crate::handshake::Hello;
use crate::protocol::{Registry, RegistryError, WIRE_VERSION};
use crate::stats::PeerStats;
use crate::{Channel, MessageLoopFuture};

/// Largest unreliable message: one fragment's worth. Larger ones are refused
/// at send, since an unreliable fragment lost would lose the whole message.
pub const MAX_UNRELIABLE: usize = CHUNK;

/// Capacity of the encoding buffer kept between messages.
const SCRATCH_KEEP: usize = 64 * 1024;

/// Rollback packets kept between two [`Session::receive_rollback`] calls.
pub const ROLLBACK_INBOX: usize = 4096;

/// A STUN or TURN server (as in `RTCIceServer`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
pub struct IceServer {
    /// `stun:`/`turn:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(default)]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default)]
    pub credential: Option<String>,
}

/// Everything that can go wrong, for a send or with a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// A registration was refused.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The type was never registered.
    #[error("{0} is not a registered message type")]
    NotRegistered(&'static str),
    /// Encoding or decoding a payload failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// An unreliable message above [`MAX_UNRELIABLE`].
    #[error("unreliable message of {size} bytes exceeds {limit} (send it reliably)")]
    TooLarge {
        /// Its size with framing.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No connected peer has this id.
    #[error("peer {0} is not connected")]
    UnknownPeer(PeerId),
    /// The peer registered other messages, another layout or app version.
    #[error("incompatible protocol: ours {ours:#018x}, theirs {theirs:#018x}")]
    IncompatibleProtocol {
        /// Our protocol hash.
        ours: u64,
        /// The peer's.
        theirs: u64,
    },
    /// A packet's header was broken.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Fragments were inconsistent or too large.
    #[error(transparent)]
    Fragment(#[from] FragmentError),
    /// A kind nobody registered.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// A registered kind on another channel than its own.
    #[error("message kind {kind} arrived on the {channel:?} channel")]
    WrongChannel {
        /// The kind.
        kind: u8,
        /// Where it arrived.
        channel: Channel,
    },
    /// A message larger than its type's limit
    /// ([`SessionBuilder::register_limited`]), refused before decoding.
    #[error("message kind {kind} of {size} bytes exceeds its limit of {limit}")]
    OverLimit {
        /// The kind.
        kind: u8,
        /// Its payload size.
        size: usize,
        /// The type's limit.
        limit: usize,
    },
}

/// Why a peer left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftReason {
    /// Its connection closed or failed.
    Disconnected,
    /// Its protocol hash differs: it is ignored from now on.
    IncompatibleProtocol {
        /// Our protocol hash.
        ours: u64,
        /// The peer's.
        theirs: u64,
    },
    /// It sent invalid packets or flooded us: it is ignored from now on.
    Misbehaving(Misbehaviour),
}

/// What happened to the session's peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A WebRTC connection to the peer opened; the handshake is under way.
    Joined(PeerId),
    /// The handshake is done: messages flow both ways.
    Connected(PeerId),
    /// The peer is gone.
    Left(PeerId, LeftReason),
    /// A peer sent something invalid; it was dropped and counted.
    Error {
        /// Who sent it.
        peer: PeerId,
        /// What was wrong.
        error: NetError,
    },
}

/// How often an unconfirmed Hello is repeated.
const HELLO_RETRY: Duration = Duration::from_millis(100);

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Handshake,
    Connected,
    /// Refused for its protocol hash; ignored.
    Incompatible,
    /// Dropped for misbehaving; ignored.
    Dropped,
}

impl Phase {
    /// Whether anything it sends is still read.
    fn heard(&self) -> bool {
        matches!(self, Phase::Handshake | Phase::Connected)
    }
}

struct Peer {
    phase: Phase,
    /// We received its compatible Hello.
    got_theirs: bool,
    /// It confirmed ours.
    they_got_ours: bool,
    next_hello: Instant,
    stats: PeerStats,
    reassembler: Reassembler,
    /// Received packets waiting for this update's budget.
    backlog: Backlog<Channel, matchbox_socket::Packet>,
    strikes: Strikes,
    /// Pings answered in this update.
    pongs: usize,
}

/// Received messages of one type `T`: (sender, tick, the decoded value).
type Queue<T> = VecDeque<(PeerId, Option<u32>, T)>;

/// A `Queue<T>` behind its type: one per registered type, so a message is
/// decoded straight into its queue without a box of its own.
type Inbox = Box<dyn Any + Send + Sync>;

/// Decodes a payload of the type and appends it to that type's [`Inbox`],
/// which keeps at most `limit` messages (the oldest go first). Returns how
/// many were dropped.
type Decode = fn(&[u8], PeerId, Option<u32>, &mut Inbox, usize) -> Result<usize, CodecError>;

fn decode_into<T: DeserializeOwned + Send + Sync + 'static>(
    bytes: &[u8],
    peer: PeerId,
    tick: Option<u32>,
    inbox: &mut Inbox,
    limit: usize,
) -> Result<usize, CodecError> {
    let value = Bincode.decode::<T>(bytes)?;
    let mut dropped = 0;
    if let Some(queue) = inbox.downcast_mut::<Queue<T>>() {
        while queue.len() >= limit.max(1) {
            queue.pop_front();
            dropped += 1;
        }
        queue.push_back((peer, tick, value));
    }
    Ok(dropped)
}

/// Makes a type's empty [`Inbox`].
type NewInbox = fn() -> Inbox;

fn new_inbox<T: Send + Sync + 'static>() -> Inbox {
    Box::new(Queue::<T>::new())
}

/// Configures a [`Session`].
pub struct SessionBuilder {
    room_url: String,
    ice_servers: Vec<IceServer>,
    app_version: String,
    registry: Registry,
    decoders: HashMap<TypeId, (Decode, NewInbox, usize)>,
    conditioner: Option<ConditionerConfig>,
    ping_interval: Duration,
    limits: PeerLimits,
}

impl SessionBuilder {
    /// Host candidates only until told otherwise: on a LAN or loopback they
    /// are all that is needed, and an unreachable STUN server only slows
    /// connection set-up down (volley-server's `/api/ice` says what to use).
    fn new(room_url: &str) -> Self {
        SessionBuilder {
            room_url: room_url.to_owned(),
            ice_servers: Vec::new(),
            app_version: String::new(),
            registry: Registry::default(),
            decoders: HashMap::new(),
            conditioner: None,
            ping_interval: Duration::from_millis(250),
            limits: PeerLimits::default(),
        }
    }

    /// What one peer may send before it is slowed down or dropped.
    pub fn peer_limits(mut self, limits: PeerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Adds a STUN/TURN server.
    pub fn ice_server(mut self, server: IceServer) -> Self {
        self.ice_servers.push(server);
        self
    }

    /// Asks the signaling server's `/api/ice` which STUN/TURN servers to
    /// use. When it names any, they replace the configured ones; when it
    /// names none, fails or is not there, the configured ones stay (and
    /// the reason is logged). Await it before [`SessionBuilder::build`].
    pub async fn with_server_ice(mut self) -> Self {
        match crate::ice::fetch_ice_servers(&self.room_url).await {
            Ok(servers) if !servers.is_empty() => {
                tracing::debug!("ICE servers from the signaling server: {servers:?}");
                self.ice_servers = servers;
            }
            Ok(_) => tracing::debug!("the signaling server names no ICE servers"),
            Err(e) => tracing::info!("no ICE servers from the signaling server: {e}"),
        }
        self
    }

    /// The STUN/TURN servers the session will use.
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.ice_servers
    }

    /// Part of the protocol hash: peers of different app versions refuse each other.
    pub fn app_version(mut self, version: &str) -> Self {
        self.app_version = version.to_owned();
        self
    }

    /// Registers `T` on `channel` under its Rust type name.
    pub fn register<T>(self, channel: Channel) -> Result<Self, NetError>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.register_named::<T>(std::any::type_name::<T>(), channel)
    }

    /// Registers `T` like [`SessionBuilder::register`], refusing (and
    /// counting against the sender, see [`PeerLimits::strikes`]) any payload
    /// of more than `max_bytes` before it is decoded: a type that is small
    /// by nature should not let a peer make us decode up to the generic
    /// [`crate::codec::DECODE_LIMIT`].
    pub fn register_limited<T>(self, channel: Channel, max_bytes: usize) -> Result<Self, NetError>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let mut builder = self.register::<T>(channel)?;
        if let Some(entry) = builder.decoders.get_mut(&TypeId::of::<T>()) {
            entry.2 = max_bytes.min(DECODE_LIMIT);
        }
        Ok(builder)
    }

    /// Registers `T` on `channel` under an explicit, stable `name`.
    pub fn register_named<T>(mut self, name: &str, channel: Channel) -> Result<Self, NetError>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.registry.register(TypeId::of::<T>(), name, channel)?;
        self.decoders.insert(
            TypeId::of::<T>(),
            (decode_into::<T>, new_inbox::<T>, DECODE_LIMIT),
        );
        Ok(self)
    }

    /// Simulates latency, jitter and loss on everything this session sends.
    pub fn conditioner(mut self, config: ConditionerConfig) -> Self {
        self.conditioner = Some(config);
        self
    }

    /// How often RTT is probed on the unreliable channel.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Opens the socket. The returned future is the socket's message loop:
    /// spawn it on any executor (it needs no tokio) and keep it running.
    pub fn build(self) -> (Session, MessageLoopFuture) {
        let mut builder = WebRtcSocket::builder(self.room_url.as_str());
        let mut ice = RtcIceServerConfig {
            urls: Vec::new(),
            username: None,
            credential: None,
        };
        // matchbox takes one ICE server entry: merge URLs, keep the first credentials.
        for server in &self.ice_servers {
            ice.urls.extend(server.urls.iter().cloned());
            ice.username = ice.username.or_else(|| server.username.clone());
            ice.credential = ice.credential.or_else(|| server.credential.clone());
        }
        builder = builder.ice_server(ice);
        for channel in Channel::ALL {
            builder = builder.add_channel(channel.config());
        }
        let (socket, message_loop) = builder.build();
        let now = Instant::now();
        let session = Session {
            socket,
            hash: self.registry.protocol_hash(&self.app_version),
            app_version: self.app_version,
            registry: self.registry,
            inbox: self
                .decoders
                .iter()
                .map(|(id, (_, new, _))| (*id, new()))
                .collect(),
            decoders: self
                .decoders
                .into_iter()
                .map(|(id, (decode, _, limit))| (id, (decode, limit)))
                .collect(),
            peers: HashMap::new(),
            events: VecDeque::new(),
            scratch: Vec::new(),
            rollback_inbox: VecDeque::new(),
            conditioner: self.conditioner.map(LinkConditioner::new),
            epoch: now,
            ping_interval: self.ping_interval,
            next_ping: now,
            limits: self.limits,
            overflowed: 0,
        };
        (session, message_loop)
    }
}

/// A connection to a room: typed messages to and from every peer in it.
pub struct Session {
    socket: WebRtcSocket,
    registry: Registry,
    /// Each type's decoder and payload limit.
    decoders: HashMap<TypeId, (Decode, usize)>,
    hash: u64,
    app_version: String,
    peers: HashMap<PeerId, Peer>,
    events: VecDeque<SessionEvent>,
    inbox: HashMap<TypeId, Inbox>,
    /// Where messages are encoded before being copied out at their size.
    scratch: Vec<u8>,
    /// Packets from the rollback channel, for the rollback session (bounded).
    rollback_inbox: VecDeque<(PeerId, Vec<u8>)>,
    conditioner: Option<LinkConditioner<(PeerId, Channel, Vec<u8>)>>,
    epoch: Instant,
    ping_interval: Duration,
    next_ping: Instant,
    limits: PeerLimits,
    /// Messages dropped from full inboxes.
    overflowed: u64,
}

impl Session {
    /// Starts configuring a session for `room_url` (`ws://host:port/room`,
    /// or `…/room?next=N` to be matched into a group of N).
    pub fn builder(room_url: &str) -> SessionBuilder {
        SessionBuilder::new(room_url)
    }

    /// Our id, once the signaling server assigned it.
    pub fn id(&mut self) -> Option<PeerId> {
        self.socket.id()
    }

    /// This session's protocol hash.
    pub fn protocol_hash(&self) -> u64 {
        self.hash
    }

    /// Peers whose handshake is done, in no particular order.
    pub fn connected_peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers
            .iter()
            .filter(|(_, p)| p.phase == Phase::Connected)
            .map(|(id, _)| *id)
    }

    /// The per-peer limits in force.
    pub fn peer_limits(&self) -> &PeerLimits {
        &self.limits
    }

    /// Received messages dropped because the game left [`PeerLimits::inbox_per_type`]
    /// of their type unread.
    pub fn inbox_overflows(&self) -> u64 {
        self.overflowed
    }

    /// Counts an invalid packet from `peer` that a layer above found (a
    /// rollback packet that failed its checks, say): it counts towards
    /// [`PeerLimits::strikes`] like the session's own decode errors, and the
    /// peer is dropped as [`LeftReason::Misbehaving`] when they are reached.
    pub fn report_invalid(&mut self, peer: PeerId, error: &dyn std::fmt::Display) {
        let now = Instant::now();
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !p.phase.heard() {
            return;
        }
        p.stats.invalid_packets += 1;
        if p.strikes.strike(now, &self.limits) {
            let count = p.strikes.count();
            let why = Misbehaviour::InvalidPackets {
                count,
                window: self.limits.strike_window,
                last: truncated(&error.to_string(), 160),
            };
            self.drop_peer(peer, why);
        }
    }

    /// `Err(UnknownPeer)` unless `peer`'s handshake is done.
    fn require_connected(&self, peer: PeerId) -> Result<(), NetError> {
        match self.peers.get(&peer) {
            Some(p) if p.phase == Phase::Connected => Ok(()),
            _ => Err(NetError::UnknownPeer(peer)),
        }
    }

    /// Stops hearing `peer` and tells the game it left.
    fn drop_peer(&mut self, peer: PeerId, why: Misbehaviour) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !p.phase.heard() {
            return;
        }
        p.phase = Phase::Dropped;
        p.backlog = Backlog::default();
        tracing::warn!("dropping peer {peer}: {why}");
        self.events
            .push_back(SessionEvent::Left(peer, LeftReason::Misbehaving(why)));
    }

    /// What is known about the link to `peer`.
    pub fn stats(&self, peer: PeerId) -> Option<&PeerStats> {
        self.peers.get(&peer).map(|p| &p.stats)
    }

    /// Drains the events since the last call.
    pub fn events(&mut self) -> Vec<SessionEvent> {
        self.events.drain(..).collect()
    }

    /// Drains the `T` messages received so far, in arrival order.
    pub fn receive<T: 'static>(&mut self) -> Vec<(PeerId, T)> {
        self.receive_with_tick::<T>()
            .into_iter()
            .map(|(peer, _, value)| (peer, value))
            .collect()
    }

    /// Like [`Session::receive`], with the tick each message was sent with.
    pub fn receive_with_tick<T: 'static>(&mut self) -> Vec<(PeerId, Option<u32>, T)> {
        self.inbox
            .get_mut(&TypeId::of::<T>())
            .and_then(|inbox| inbox.downcast_mut::<Queue<T>>())
            .map(|queue| queue.drain(..).collect())
            .unwrap_or_default()
    }

    /// Sends `message` to one connected peer.
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
        self.require_connected(peer)?;
        let (channel, packet) = self.encode(message, tick)?;
        self.transmit(peer, channel, packet);
        Ok(())
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
        let (channel, packet) = self.encode(message, tick)?;
        let peers: Vec<PeerId> = self.connected_peers().collect();
        for peer in peers {
            self.transmit(peer, channel, packet.clone());
        }
        Ok(())
    }

    /// Sends an opaque packet on the [`Channel::Rollback`] channel (the
    /// rollback library frames its own messages; the conditioner and the
    /// traffic counters apply as on the other channels).
    pub fn send_rollback(&mut self, peer: PeerId, packet: Vec<u8>) -> Result<(), NetError> {
        self.send_raw(peer, Channel::Rollback, packet)
    }

    /// Sends bytes as they are on `channel`, without volley's framing: for
    /// layers that frame their own messages (rollback) and for tools that
    /// check what peers make of anything at all (`volley_bots::hostile`).
    /// A volley peer counts what it cannot read against the sender.
    pub fn send_raw(
        &mut self,
        peer: PeerId,
        channel: Channel,
        packet: Vec<u8>,
    ) -> Result<(), NetError> {
        self.require_connected(peer)?;
        if packet.len() > MAX_UNRELIABLE {
            return Err(NetError::TooLarge {
                size: packet.len(),
                limit: MAX_UNRELIABLE,
            });
        }
        // At most one fragment's size: never split, sent as it is.
        self.transmit(peer, channel, packet);
        Ok(())
    }

    /// Drains the packets received on the [`Channel::Rollback`] channel from
    /// connected peers, oldest first. At most [`ROLLBACK_INBOX`] are kept
    /// between calls; older ones are dropped (they are stale inputs anyway).
    pub fn receive_rollback(&mut self) -> Vec<(PeerId, Vec<u8>)> {
        self.rollback_inbox.drain(..).collect()
    }

    fn encode<T: Serialize + 'static>(
        &mut self,
        message: &T,
        tick: Option<u32>,
    ) -> Result<(Channel, Vec<u8>), NetError> {
        let registration = self
            .registry
            .by_type(TypeId::of::<T>())
            .ok_or(NetError::NotRegistered(std::any::type_name::<T>()))?;
        // Encoded into a reused buffer, then copied once at its exact size:
        // growing a fresh Vec byte by byte cost several reallocations per
        // message.
        let scratch = &mut self.scratch;
        scratch.clear();
        frame::write_header(scratch, Header::new(registration.kind, tick));
        Bincode.encode(message, scratch)?;
        let size = scratch.len();
        if registration.channel != Channel::Reliable && size > MAX_UNRELIABLE {
            return Err(NetError::TooLarge {
                size,
                limit: MAX_UNRELIABLE,
            });
        }
        if size > DECODE_LIMIT {
            return Err(NetError::TooLarge {
                size,
                limit: DECODE_LIMIT,
            });
        }
        let packet = scratch.to_vec();
        if scratch.capacity() > SCRATCH_KEEP {
            // One huge message should not pin its buffer for the session's life.
            *scratch = Vec::new();
        }
        Ok((registration.channel, packet))
    }

    /// Sends a framed packet, through the conditioner when there is one.
    fn transmit(&mut self, peer: PeerId, channel: Channel, packet: Vec<u8>) {
        let pieces = if channel == Channel::Reliable {
            fragment::split(packet)
        } else {
            vec![packet]
        };
        let now = Instant::now();
        for piece in pieces {
            match &mut self.conditioner {
                Some(conditioner) => {
                    conditioner.push(now, channel == Channel::Reliable, (peer, channel, piece))
                }
                None => self.write(peer, channel, piece),
            }
        }
    }

    fn write(&mut self, peer: PeerId, channel: Channel, packet: Vec<u8>) {
        if let Some(p) = self.peers.get_mut(&peer) {
            let traffic = &mut p.stats.sent[channel.index()];
            traffic.packets += 1;
            traffic.bytes += packet.len() as u64;
        }
        self.socket
            .channel_mut(channel.index())
            .send(packet.into(), peer);
    }

    /// Processes everything that arrived, sends due pings and delayed
    /// packets. Call it every frame (or every few milliseconds).
    pub fn update(&mut self) {
        let now = Instant::now();
        for (peer, state) in self.socket.update_peers() {
            match state {
                PeerState::Connected => self.joined(peer),
                PeerState::Disconnected => {
                    if let Some(p) = self.peers.remove(&peer)
                        && p.phase.heard()
                    {
                        self.events
                            .push_back(SessionEvent::Left(peer, LeftReason::Disconnected));
                    }
                }
            }
        }
        for channel in Channel::ALL {
            for (peer, packet) in self.socket.channel_mut(channel.index()).receive() {
                self.enqueue(peer, channel, packet);
            }
        }
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer in peers {
            let batch = match self.peers.get_mut(&peer) {
                Some(p) if p.phase.heard() => {
                    p.pongs = 0;
                    p.backlog.take(&self.limits)
                }
                _ => continue,
            };
            for (channel, packet) in batch {
                if self.peers.get(&peer).is_none_or(|p| !p.phase.heard()) {
                    break; // dropped halfway through its batch
                }
                if channel == Channel::Rollback {
                    self.received_rollback(peer, packet);
                } else {
                    self.received(peer, channel, &packet, now);
                }
            }
        }
        let unconfirmed: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.phase == Phase::Handshake && now >= p.next_hello)
            .map(|(id, _)| *id)
            .collect();
        for peer in unconfirmed {
            self.send_hello(peer, now);
        }
        if now >= self.next_ping {
            self.next_ping = now + self.ping_interval;
            self.ping(now);
        }
        if let Some(conditioner) = &mut self.conditioner {
            let due: Vec<_> = conditioner.due(now).collect();
            for (peer, channel, packet) in due {
                self.write(peer, channel, packet);
            }
        }
    }

    /// Queues a packet behind the peer's budget; a flood drops the peer.
    fn enqueue(&mut self, peer: PeerId, channel: Channel, packet: matchbox_socket::Packet) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return; // not (or no longer) a peer of ours
        };
        if !p.phase.heard() {
            return;
        }
        if let Err(flood) = p.backlog.push(channel, packet, &self.limits) {
            self.drop_peer(peer, flood);
        }
    }

    fn received_rollback(&mut self, peer: PeerId, packet: matchbox_socket::Packet) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.phase != Phase::Connected {
            return; // before the handshake, nobody may speak rollback
        }
        let traffic = &mut p.stats.received[Channel::Rollback.index()];
        traffic.packets += 1;
        traffic.bytes += packet.len() as u64;
        if self.rollback_inbox.len() >= ROLLBACK_INBOX {
            self.rollback_inbox.pop_front();
        }
        self.rollback_inbox.push_back((peer, packet.to_vec()));
    }

    fn joined(&mut self, peer: PeerId) {
        let now = Instant::now();
        self.peers.insert(
            peer,
            Peer {
                phase: Phase::Handshake,
                got_theirs: false,
                they_got_ours: false,
                next_hello: now,
                stats: PeerStats::default(),
                reassembler: Reassembler::new(DECODE_LIMIT),
                backlog: Backlog::default(),
                strikes: Strikes::default(),
                pongs: 0,
            },
        );
        self.events.push_back(SessionEvent::Joined(peer));
        self.send_hello(peer, now);
    }

    fn send_hello(&mut self, peer: PeerId, now: Instant) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.next_hello = now + HELLO_RETRY;
        let hello = Hello {
            wire: WIRE_VERSION,
            hash: self.hash,
            app_version: self.app_version.clone(),
            got_yours: p.got_theirs,
        };
        let mut packet = Vec::new();
        frame::write_header(&mut packet, Header::new(KIND_HELLO, None));
        match Bincode.encode(&hello, &mut packet) {
            Ok(()) => self.transmit(peer, Channel::Reliable, packet),
            Err(e) => self.events.push_back(SessionEvent::Error {
                peer,
                error: e.into(),
            }),
        }
    }

    /// Marks the handshake done once both Hellos are known to have arrived.
    fn maybe_connected(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer)
            && p.phase == Phase::Handshake
            && p.got_theirs
            && p.they_got_ours
        {
            p.phase = Phase::Connected;
            self.events.push_back(SessionEvent::Connected(peer));
        }
    }

    fn ping(&mut self, now: Instant) {
        let micros = now.duration_since(self.epoch).as_micros() as u64;
        let mut packet = Vec::new();
        frame::write_header(&mut packet, Header::new(KIND_PING, None));
        packet.extend_from_slice(&micros.to_le_bytes());
        let peers: Vec<PeerId> = self.connected_peers().collect();
        for peer in peers {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.stats.pings_sent += 1;
            }
            self.transmit(peer, Channel::Unreliable, packet.clone());
        }
    }

    fn received(&mut self, peer: PeerId, channel: Channel, packet: &[u8], now: Instant) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return; // not (or no longer) a peer of ours
        };
        if !p.phase.heard() {
            return;
        }
        let traffic = &mut p.stats.received[channel.index()];
        traffic.packets += 1;
        traffic.bytes += packet.len() as u64;
        if let Err(error) = self.dispatch(peer, channel, packet, now, true) {
            tracing::debug!("dropped a packet from {peer}: {error}");
            self.report_invalid(peer, &error);
            self.events.push_back(SessionEvent::Error { peer, error });
        }
    }

    fn dispatch(
        &mut self,
        peer: PeerId,
        channel: Channel,
        packet: &[u8],
        now: Instant,
        outer: bool,
    ) -> Result<(), NetError> {
        let (header, payload) = frame::read(packet)?;
        match header.kind {
            KIND_FRAGMENT if outer && channel == Channel::Reliable => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return Ok(());
                };
                if let Some(whole) = p.reassembler.push(header, payload)? {
                    self.dispatch(peer, channel, &whole, now, false)?;
                }
                Ok(())
            }
            KIND_HELLO if channel == Channel::Reliable => self.hello(peer, payload),
            KIND_PING if channel == Channel::Unreliable => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return Ok(());
                };
                if p.pongs >= self.limits.pongs_per_update {
                    return Ok(()); // a ping flood gets no echo
                }
                p.pongs += 1;
                let mut pong = Vec::with_capacity(packet.len());
                frame::write_header(&mut pong, Header::new(KIND_PONG, None));
                pong.extend_from_slice(payload);
                self.transmit(peer, Channel::Unreliable, pong);
                Ok(())
            }
            KIND_PONG if channel == Channel::Unreliable => {
                let sent = payload
                    .first_chunk::<8>()
                    .map(|b| u64::from_le_bytes(*b))
                    .ok_or(FrameError::Truncated(packet.len()))?;
                let elapsed = now.duration_since(self.epoch).as_micros() as u64;
                if let Some(p) = self.peers.get_mut(&peer)
                    && sent <= elapsed
                {
                    p.stats.pongs_received += 1;
                    p.stats.record_rtt(Duration::from_micros(elapsed - sent));
                }
                Ok(())
            }
            kind => {
                let (type_id, registration) = self
                    .registry
                    .by_kind(kind)
                    .ok_or(NetError::UnknownKind(kind))?;
                if registration.channel != channel {
                    return Err(NetError::WrongChannel { kind, channel });
                }
                let Some(p) = self.peers.get_mut(&peer) else {
                    return Ok(());
                };
                if !p.got_theirs {
                    // Unreliable traffic can overtake the handshake; it is dropped.
                    return Ok(());
                }
                // A peer sends messages only once connected, which needs our
                // Hello: its confirmation may simply still be on the way.
                if p.phase == Phase::Handshake {
                    p.they_got_ours = true;
                    self.maybe_connected(peer);
                }
                let (decode, limit) = *self
                    .decoders
                    .get(&type_id)
                    .ok_or(NetError::UnknownKind(kind))?;
                if payload.len() > limit {
                    return Err(NetError::OverLimit {
                        kind,
                        size: payload.len(),
                        limit,
                    });
                }
                let inbox = self
                    .inbox
                    .get_mut(&type_id)
                    .ok_or(NetError::UnknownKind(kind))?;
                self.overflowed += decode(
                    payload,
                    peer,
                    header.tick,
                    inbox,
                    self.limits.inbox_per_type,
                )? as u64;
                Ok(())
            }
        }
    }

    fn hello(&mut self, peer: PeerId, payload: &[u8]) -> Result<(), NetError> {
        let hello: Hello = Bincode.decode(payload)?;
        let Some(p) = self.peers.get_mut(&peer) else {
            return Ok(());
        };
        if hello.wire == WIRE_VERSION && hello.hash == self.hash {
            let first = !p.got_theirs;
            p.got_theirs = true;
            p.they_got_ours |= hello.got_yours;
            // Tell it we have its Hello: when this is news to us, or to it.
            if first || !hello.got_yours {
                self.send_hello(peer, Instant::now());
            }
            self.maybe_connected(peer);
            return Ok(());
        }
        p.phase = Phase::Incompatible;
        let (ours, theirs) = (self.hash, hello.hash);
        tracing::warn!(
            "peer {peer} speaks another protocol (ours {ours:#x}, theirs {theirs:#x}, app {:?})",
            truncated(&hello.app_version, 64)
        );
        self.events.push_back(SessionEvent::Error {
            peer,
            error: NetError::IncompatibleProtocol { ours, theirs },
        });
        self.events.push_back(SessionEvent::Left(
            peer,
            LeftReason::IncompatibleProtocol { ours, theirs },
        ));
        Ok(())
    }
}
