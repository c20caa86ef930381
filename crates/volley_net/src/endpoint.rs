//! The session's protocol without I/O, as quinn-proto and str0m do it:
//! connections, packets and time go in; events, received messages and
//! [`Transmit`]s come out. The handshake, framing and dispatch, fragments,
//! pings and statistics, and the per-peer limits all live here; a transport
//! (`Session`, or a test, or a fuzz target) only moves bytes.

use std::any::TypeId;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::Serialize;
use web_time::Instant;

use crate::batch::{self, Batch};
use crate::codec::{Bincode, Codec, DECODE_LIMIT};
use crate::conditioner::{ConditionerConfig, LinkConditioner};
use crate::error::{LeftReason, NetError, SessionEvent};
use crate::fragment::{self, CHUNK, Reassembler};
use crate::frame::{
    self, FrameError, Header, KIND_BATCH, KIND_FRAGMENT, KIND_HELLO, KIND_PING, KIND_PONG,
};
use crate::guard::{Backlog, Misbehaviour, PeerLimits, Strikes, truncated};
use crate::handshake::Hello;
use crate::inbox::Inboxes;
use crate::protocol::{Registry, WIRE_VERSION};
use crate::stats::PeerStats;
use crate::{Channel, PeerId};

/// Largest unreliable message: one fragment's worth. Larger ones are refused
/// at send, since an unreliable fragment lost would lose the whole message.
pub const MAX_UNRELIABLE: usize = CHUNK;

/// Rollback packets kept between two [`Endpoint::receive_rollback`] calls.
pub const ROLLBACK_INBOX: usize = 4096;

/// Capacity of the encoding buffer kept between messages.
const SCRATCH_KEEP: usize = 64 * 1024;

/// How often an unconfirmed Hello is repeated.
const HELLO_RETRY: Duration = Duration::from_millis(100);

/// What the transport must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Send `packet` to `peer` on `channel`.
    Send {
        /// To whom.
        peer: PeerId,
        /// On which data channel.
        channel: Channel,
        /// The bytes, framed.
        packet: Vec<u8>,
    },
    /// Close the connection to `peer`: it was dropped (misbehaving,
    /// incompatible, [`Endpoint::disconnect`] or [`Endpoint::let_go`]).
    Close(PeerId, Closing),
}

/// How a closed peer may come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// Refused: a new connection from it is never accepted (misbehaving,
    /// or closed by the game).
    ForGood,
    /// Lost (it stopped answering): it may connect again, and the peer with
    /// the lower id offers again while both stay in the room.
    LetGo,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Handshake,
    Connected,
    /// Refused for its protocol hash; ignored.
    Incompatible,
    /// Dropped (misbehaving, or by the game); ignored.
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
    /// Received packets (with their arrival time) waiting for this update's budget.
    backlog: Backlog<(Channel, Instant), Vec<u8>>,
    strikes: Strikes,
    /// Pings answered in this update.
    pongs: usize,
    /// Messages waiting for the next flush, per channel.
    batches: [Batch; Channel::COUNT],
}

/// One session's protocol state: every peer's handshake, limits and
/// statistics, and the received messages by type. See the module docs.
pub struct Endpoint {
    registry: Registry,
    inboxes: Inboxes,
    hash: u64,
    app_version: String,
    peers: HashMap<PeerId, Peer>,
    events: VecDeque<SessionEvent>,
    transmits: VecDeque<Transmit>,
    /// Where messages are encoded before being copied out at their size.
    scratch: Vec<u8>,
    /// Packets from the rollback channel, for the rollback session (bounded).
    rollback_inbox: VecDeque<(PeerId, Vec<u8>)>,
    conditioner: Option<LinkConditioner<(PeerId, Channel, Vec<u8>)>>,
    epoch: Instant,
    ping_interval: Duration,
    next_ping: Instant,
    limits: PeerLimits,
    /// Why the signaling server is away, while it is.
    signaling_lost: Option<String>,
}

impl Endpoint {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        hash: u64,
        app_version: String,
        registry: Registry,
        inboxes: Inboxes,
        limits: PeerLimits,
        ping_interval: Duration,
        conditioner: Option<ConditionerConfig>,
        now: Instant,
    ) -> Self {
        Endpoint {
            registry,
            inboxes,
            hash,
            app_version,
            peers: HashMap::new(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            scratch: Vec::new(),
            rollback_inbox: VecDeque::new(),
            conditioner: conditioner.map(LinkConditioner::new),
            epoch: now,
            ping_interval,
            next_ping: now,
            limits,
            signaling_lost: None,
        }
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

    /// Received messages dropped because the game left
    /// [`PeerLimits::inbox_per_type`] of their type unread.
    pub fn inbox_overflows(&self) -> u64 {
        self.inboxes.overflowed
    }

    /// What is known about the link to `peer`.
    pub fn stats(&self, peer: PeerId) -> Option<&PeerStats> {
        self.peers.get(&peer).map(|p| &p.stats)
    }

    /// Whether the signaling server is reachable (as far as the transport
    /// knows: `true` before the first connection too).
    pub fn signaling_up(&self) -> bool {
        self.signaling_lost.is_none()
    }

    /// The transport lost the signaling server (why), or is back with it
    /// (`None`): the game hears of each change.
    pub fn set_signaling(&mut self, lost: Option<String>) {
        let event = match (&self.signaling_lost, &lost) {
            (None, Some(why)) => SessionEvent::SignalingLost(why.clone()),
            (Some(_), None) => SessionEvent::SignalingRestored,
            _ => return,
        };
        self.signaling_lost = lost;
        self.events.push_back(event);
    }

    /// The transport learnt which path the connection to `peer` took.
    pub fn set_link(&mut self, peer: PeerId, link: crate::stats::Link) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.stats.link = Some(link);
        }
    }

    /// Drains the events since the last call.
    pub fn events(&mut self) -> Vec<SessionEvent> {
        self.events.drain(..).collect()
    }

    /// The next thing the transport must do.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    // ---- Input from the transport ----

    /// The transport opened a connection to `peer`: the handshake starts.
    pub fn peer_connected(&mut self, peer: PeerId, now: Instant) {
        if self.peers.contains_key(&peer) {
            return; // a transport repeating itself; the first one counts
        }
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
                batches: Default::default(),
            },
        );
        self.events.push_back(SessionEvent::Joined(peer));
        self.send_hello(peer, now);
    }

    /// The transport lost the connection to `peer`.
    pub fn peer_disconnected(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.remove(&peer)
            && p.phase.heard()
        {
            self.events
                .push_back(SessionEvent::Left(peer, LeftReason::Disconnected));
        }
    }

    /// The transport could not connect to `peer` at all (`why` says how it
    /// failed): the game hears of it, as [`SessionEvent::Unreachable`].
    pub fn peer_unreachable(&mut self, peer: PeerId, why: String) {
        if !self.peers.contains_key(&peer) {
            self.events.push_back(SessionEvent::Unreachable(peer, why));
        }
    }

    /// A packet from `peer` arrived on `channel` at `arrived`. It waits
    /// behind the peer's budget until [`Endpoint::update`]; a flood drops
    /// the peer.
    pub fn receive_packet(
        &mut self,
        peer: PeerId,
        channel: Channel,
        packet: Vec<u8>,
        arrived: Instant,
    ) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return; // not (or no longer) a peer of ours
        };
        if !p.phase.heard() {
            return;
        }
        // Rollback packets carry the rollback library's framing, not ours.
        let weight = match channel {
            Channel::Rollback => 1,
            _ => batch::weight(&packet),
        };
        if let Err(flood) = p
            .backlog
            .push((channel, arrived), packet, weight, &self.limits)
        {
            self.drop_peer(peer, LeftReason::Misbehaving(flood));
        }
    }

    /// Handles what arrived (within each peer's budget), repeats
    /// unconfirmed Hellos, sends due pings, flushes what the game sent and
    /// releases delayed packets.
    pub fn update(&mut self, now: Instant) {
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer in peers {
            let batch = match self.peers.get_mut(&peer) {
                Some(p) if p.phase.heard() => {
                    p.pongs = 0;
                    p.backlog.take(&self.limits)
                }
                _ => continue,
            };
            for ((channel, arrived), packet) in batch {
                if self.peers.get(&peer).is_none_or(|p| !p.phase.heard()) {
                    break; // dropped halfway through its batch
                }
                if channel == Channel::Rollback {
                    self.received_rollback(peer, packet);
                } else {
                    self.received(peer, channel, &packet, arrived);
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
        self.flush(now);
        if let Some(conditioner) = &mut self.conditioner {
            let due: Vec<_> = conditioner.due(now).collect();
            for (peer, channel, packet) in due {
                self.hand_over(peer, channel, packet);
            }
        }
    }

    // ---- The game's side ----

    /// Counts an invalid packet from `peer` that a layer above found (a
    /// rollback packet that failed its checks, say): it counts towards
    /// [`PeerLimits::strikes`] like the session's own decode errors, and the
    /// peer is dropped as [`LeftReason::Misbehaving`] when they are reached.
    pub fn report_invalid(&mut self, peer: PeerId, error: &dyn std::fmt::Display, now: Instant) {
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
            self.drop_peer(peer, LeftReason::Misbehaving(why));
        }
    }

    /// Drops `peer` at the game's request: its connection is closed, the
    /// game gets [`SessionEvent::Left`] with [`LeftReason::Closed`], and
    /// nothing more from it is read. `false` when it was not a peer.
    pub fn disconnect(&mut self, peer: PeerId) -> bool {
        let heard = self.peers.get(&peer).is_some_and(|p| p.phase.heard());
        self.drop_peer(peer, LeftReason::Closed);
        heard
    }

    /// Closes the connection to a `peer` that stopped answering, as if it
    /// had failed: the game gets [`SessionEvent::Left`] with
    /// [`LeftReason::Disconnected`]. Unlike [`Endpoint::disconnect`], the
    /// peer may connect again (back from a network cut, a reload or a
    /// restart), and is then a new peer to the game. `false` when it was
    /// not a peer.
    pub fn let_go(&mut self, peer: PeerId) -> bool {
        let heard = self.peers.get(&peer).is_some_and(|p| p.phase.heard());
        if heard {
            self.peers.remove(&peer);
            self.transmits
                .push_back(Transmit::Close(peer, Closing::LetGo));
            self.events
                .push_back(SessionEvent::Left(peer, LeftReason::Disconnected));
        }
        heard
    }

    /// Drains the `T` messages received so far, in arrival order, with the
    /// tick each was sent with.
    pub fn receive<T: 'static>(&mut self) -> Vec<(PeerId, Option<u32>, T)> {
        self.inboxes.drain::<T>()
    }

    /// Drains the packets received on the [`Channel::Rollback`] channel from
    /// connected peers, oldest first. At most [`ROLLBACK_INBOX`] are kept
    /// between calls; older ones are dropped (they are stale inputs anyway).
    pub fn receive_rollback(&mut self) -> Vec<(PeerId, Vec<u8>)> {
        self.rollback_inbox.drain(..).collect()
    }

    /// Hands the messages sent since the last flush to the transport, packed
    /// into as few packets as their channels allow (see [`crate::batch`]).
    /// [`Endpoint::update`] flushes too.
    pub fn flush(&mut self, now: Instant) {
        let ready: Vec<(PeerId, Channel, Vec<u8>)> = self
            .peers
            .iter_mut()
            .flat_map(|(peer, p)| {
                Channel::ALL.into_iter().filter_map(|channel| {
                    let packet = p.batches[channel.index()].take()?;
                    Some((*peer, channel, packet))
                })
            })
            .collect();
        for (peer, channel, packet) in ready {
            self.transmit(peer, channel, packet, now);
        }
    }

    /// Sends `message`, stamped with a simulation tick, to one connected
    /// peer, at the next flush (sooner when its batch fills up).
    pub fn send<T: Serialize + 'static>(
        &mut self,
        peer: PeerId,
        message: &T,
        tick: Option<u32>,
        now: Instant,
    ) -> Result<(), NetError> {
        self.require_connected(peer)?;
        let (channel, frame) = self.encode(message, tick)?;
        self.queue(peer, channel, frame, now);
        Ok(())
    }

    /// Sends `message`, stamped with a simulation tick, to every connected
    /// peer, at the next flush.
    pub fn broadcast<T: Serialize + 'static>(
        &mut self,
        message: &T,
        tick: Option<u32>,
        now: Instant,
    ) -> Result<(), NetError> {
        let (channel, frame) = self.encode(message, tick)?;
        let peers: Vec<PeerId> = self.connected_peers().collect();
        for peer in peers {
            self.queue(peer, channel, frame.clone(), now);
        }
        Ok(())
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
        now: Instant,
    ) -> Result<(), NetError> {
        self.require_connected(peer)?;
        if packet.len() > MAX_UNRELIABLE {
            return Err(NetError::TooLarge {
                size: packet.len(),
                limit: MAX_UNRELIABLE,
            });
        }
        // What was sent before it leaves before it; it is never batched
        // (it has no framing) nor split (at most one fragment's size).
        if let Some(earlier) = self
            .peers
            .get_mut(&peer)
            .and_then(|p| p.batches[channel.index()].take())
        {
            self.transmit(peer, channel, earlier, now);
        }
        self.transmit(peer, channel, packet, now);
        Ok(())
    }

    // ---- Internals ----

    /// `Err(UnknownPeer)` unless `peer`'s handshake is done.
    fn require_connected(&self, peer: PeerId) -> Result<(), NetError> {
        match self.peers.get(&peer) {
            Some(p) if p.phase == Phase::Connected => Ok(()),
            _ => Err(NetError::UnknownPeer(peer)),
        }
    }

    /// Stops hearing `peer`, asks the transport to close it, and tells the
    /// game it left.
    fn drop_peer(&mut self, peer: PeerId, why: LeftReason) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !p.phase.heard() {
            return;
        }
        p.phase = match why {
            LeftReason::IncompatibleProtocol { .. } => Phase::Incompatible,
            _ => Phase::Dropped,
        };
        p.backlog = Backlog::default();
        p.batches = Default::default();
        if let LeftReason::Misbehaving(ref what) = why {
            tracing::warn!("dropping peer {peer}: {what}");
        }
        // An incompatible peer is not closed: it must still read our Hello
        // to learn why (closing at once raced it). It is only ignored.
        if !matches!(why, LeftReason::IncompatibleProtocol { .. }) {
            self.transmits
                .push_back(Transmit::Close(peer, Closing::ForGood));
        }
        self.events.push_back(SessionEvent::Left(peer, why));
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

    /// Adds a framed message to `peer`'s batch on `channel`; one too large
    /// for a batch leaves at once, after what was waiting.
    fn queue(&mut self, peer: PeerId, channel: Channel, frame: Vec<u8>, now: Instant) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let batch = &mut p.batches[channel.index()];
        if Batch::fits_alone(&frame) {
            if let Some(full) = batch.push(&frame) {
                self.transmit(peer, channel, full, now);
            }
        } else {
            if let Some(earlier) = batch.take() {
                self.transmit(peer, channel, earlier, now);
            }
            self.transmit(peer, channel, frame, now);
        }
    }

    /// Queues a packet for the transport (split into fragments on the
    /// reliable channel), through the conditioner when there is one.
    fn transmit(&mut self, peer: PeerId, channel: Channel, packet: Vec<u8>, now: Instant) {
        let pieces = if channel == Channel::Reliable {
            fragment::split(packet)
        } else {
            vec![packet]
        };
        for piece in pieces {
            match &mut self.conditioner {
                Some(conditioner) => {
                    conditioner.push(now, channel == Channel::Reliable, (peer, channel, piece))
                }
                None => self.hand_over(peer, channel, piece),
            }
        }
    }

    /// Counts a packet and gives it to the transport.
    fn hand_over(&mut self, peer: PeerId, channel: Channel, packet: Vec<u8>) {
        if let Some(p) = self.peers.get_mut(&peer) {
            let traffic = &mut p.stats.sent[channel.index()];
            traffic.packets += 1;
            traffic.messages += match channel {
                Channel::Rollback => 1,
                _ => batch::weight(&packet) as u64,
            };
            traffic.bytes += packet.len() as u64;
        }
        self.transmits.push_back(Transmit::Send {
            peer,
            channel,
            packet,
        });
    }

    fn received_rollback(&mut self, peer: PeerId, packet: Vec<u8>) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.phase != Phase::Connected {
            return; // before the handshake, nobody may speak rollback
        }
        let traffic = &mut p.stats.received[Channel::Rollback.index()];
        traffic.packets += 1;
        traffic.messages += 1;
        traffic.bytes += packet.len() as u64;
        if self.rollback_inbox.len() >= ROLLBACK_INBOX {
            self.rollback_inbox.pop_front();
        }
        self.rollback_inbox.push_back((peer, packet));
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
            Ok(()) => self.transmit(peer, Channel::Reliable, packet, now),
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
        let packet = frame::ping(micros);
        let peers: Vec<PeerId> = self.connected_peers().collect();
        for peer in peers {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.stats.pings_sent += 1;
            }
            self.transmit(peer, Channel::Unreliable, packet.clone(), now);
        }
    }

    fn received(&mut self, peer: PeerId, channel: Channel, packet: &[u8], arrived: Instant) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return; // not (or no longer) a peer of ours
        };
        if !p.phase.heard() {
            return;
        }
        let traffic = &mut p.stats.received[channel.index()];
        traffic.packets += 1;
        traffic.messages += batch::weight(packet) as u64;
        traffic.bytes += packet.len() as u64;
        if let Err(error) = self.dispatch(peer, channel, packet, arrived, true) {
            tracing::debug!("dropped a packet from {peer}: {error}");
            self.report_invalid(peer, &error, arrived);
            self.events.push_back(SessionEvent::Error { peer, error });
        }
    }

    fn dispatch(
        &mut self,
        peer: PeerId,
        channel: Channel,
        packet: &[u8],
        arrived: Instant,
        outer: bool,
    ) -> Result<(), NetError> {
        let (header, payload) = frame::read(packet)?;
        match header.kind {
            KIND_FRAGMENT if outer && channel == Channel::Reliable => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return Ok(());
                };
                if let Some(whole) = p.reassembler.push(header, payload)? {
                    self.dispatch(peer, channel, &whole, arrived, false)?;
                }
                Ok(())
            }
            KIND_BATCH if outer => {
                for frame in batch::frames(payload) {
                    self.dispatch(peer, channel, frame?, arrived, false)?;
                    if self.peers.get(&peer).is_none_or(|p| !p.phase.heard()) {
                        break; // dropped by what it said (an incompatible Hello)
                    }
                }
                Ok(())
            }
            KIND_BATCH | KIND_FRAGMENT if !outer => Err(FrameError::Nested(header.kind).into()),
            KIND_HELLO if channel == Channel::Reliable => self.hello(peer, payload, arrived),
            KIND_PING if channel == Channel::Unreliable => {
                // Transports that answer pings where packets arrive never
                // pass them on; this is for those that cannot.
                let Some(p) = self.peers.get_mut(&peer) else {
                    return Ok(());
                };
                if p.pongs >= self.limits.pongs_per_update {
                    return Ok(()); // a ping flood gets no echo
                }
                p.pongs += 1;
                let pong = frame::pong_for(packet).ok_or(FrameError::Truncated(packet.len()))?;
                self.transmit(peer, Channel::Unreliable, pong, arrived);
                Ok(())
            }
            KIND_PONG if channel == Channel::Unreliable => {
                let sent = payload
                    .first_chunk::<8>()
                    .map(|b| u64::from_le_bytes(*b))
                    .ok_or(FrameError::Truncated(packet.len()))?;
                let elapsed = arrived.saturating_duration_since(self.epoch).as_micros() as u64;
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
                self.inboxes.push(
                    (type_id, kind),
                    payload,
                    (peer, header.tick),
                    self.limits.inbox_per_type,
                )
            }
        }
    }

    fn hello(&mut self, peer: PeerId, payload: &[u8], now: Instant) -> Result<(), NetError> {
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
                self.send_hello(peer, now);
            }
            self.maybe_connected(peer);
            return Ok(());
        }
        let (ours, theirs) = (self.hash, hello.hash);
        tracing::warn!(
            "peer {peer} speaks another protocol (ours {ours:#x}, theirs {theirs:#x}, app {:?})",
            truncated(&hello.app_version, 64)
        );
        self.events.push_back(SessionEvent::Error {
            peer,
            error: NetError::IncompatibleProtocol { ours, theirs },
        });
        // One last Hello, so that it learns our hash too: every Hello we
        // sent before may have been lost (a fresh channel's first message
        // can be), and an ignored peer is sent nothing more.
        self.send_hello(peer, now);
        self.drop_peer(peer, LeftReason::IncompatibleProtocol { ours, theirs });
        Ok(())
    }
}
