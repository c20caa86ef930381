//! The room logic as a pure state machine: events in, commands out.
//!
//! No locks, no async, no clock: time arrives inside the events. One task owns
//! the [`Lobby`] and every connection talks to it over channels, so the whole
//! matchmaking logic is tested without sockets (see the property tests below).
//!
//! ```
//! use std::time::Instant;
//! use volley_server::lobby::{Command, Event, Lobby, LobbyConfig, RoomRequest, ServerMessage};
//! use matchbox_protocol::PeerId;
//!
//! let mut lobby = Lobby::new(LobbyConfig::default());
//! let (a, b) = (PeerId(uuid::Uuid::from_u128(1)), PeerId(uuid::Uuid::from_u128(2)));
//! let now = Instant::now();
//! let mut out = Vec::new();
//! let room = RoomRequest::parse("arena", Some("2"), 16).unwrap();
//! lobby.handle(Event::Joined { peer: a, room: room.clone(), at: now }, &mut out);
//! out.clear();
//! lobby.handle(Event::Joined { peer: b, room, at: now }, &mut out);
//! // b learns its id, a learns about b, and the pair forms a match.
//! assert!(out.contains(&Command::Send { to: vec![b], message: ServerMessage::IdAssigned(b) }));
//! assert!(out.contains(&Command::Send { to: vec![a], message: ServerMessage::NewPeer(b) }));
//! assert!(out.iter().any(|c| matches!(c, Command::MatchFormed { size: 2, .. })));
//! ```

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub use matchbox_protocol::PeerId;

use crate::refusal::Refusal;

mod request;
mod watch;

pub use request::{MAX_ROOM_NAME, RoomRequest, Seat, SeatClaim, Watch};
use watch::Audience;

/// Limits and timings of the lobby.
#[derive(Debug, Clone)]
pub struct LobbyConfig {
    /// Largest room, and largest `?next=N` group.
    pub max_room_size: usize,
    /// How long a private room code stays reserved while its room is empty.
    pub private_room_ttl: Duration,
    /// How many private room codes may be reserved at once.
    pub max_private_rooms: usize,
    /// How many private room codes one owner (client address) may hold at
    /// once; 0 for no limit.
    pub max_private_rooms_per_owner: usize,
    /// A `?next=N` group that loses a member this soon after it filled is
    /// reopened, and newcomers fill the seat: the server cannot see whether
    /// the members ever connected to each other, and a group broken while
    /// connecting would otherwise strand the rest. Zero never reopens.
    pub match_grace: Duration,
    /// How long the seat of a peer whose connection dropped without a
    /// goodbye ([`Event::Dropped`]) stays its own: its room-mates are not
    /// told it left, and it may come back ([`RoomRequest::resume`]).
    /// Signaling only sets connections up, so a game in progress goes on
    /// meanwhile. Zero drops at once.
    pub seat_hold: Duration,
    /// Spectators per room or group (see `watch.rs`); 0 refuses them all.
    pub max_spectators: usize,
    /// Spectators one peer (a member, or a spectator relaying) feeds at
    /// most: what spectators cost a player, however many watch. 0 counts
    /// as 1.
    pub watch_fanout: usize,
}

impl Default for LobbyConfig {
    fn default() -> Self {
        LobbyConfig {
            max_room_size: 16,
            private_room_ttl: Duration::from_secs(3600),
            max_private_rooms: 10_000,
            max_private_rooms_per_owner: 20,
            match_grace: Duration::from_secs(10),
            seat_hold: Duration::from_secs(15),
            max_spectators: 32,
            watch_fanout: 2,
        }
    }
}

/// An input to the lobby.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A peer's WebSocket was accepted; it asks for `room`.
    Joined {
        /// The id the server assigned.
        peer: PeerId,
        /// The room it asked for.
        room: RoomRequest,
        /// When it connected.
        at: Instant,
    },
    /// A peer relays signaling `data` (opaque JSON text) to another peer.
    Signal {
        /// The sender.
        from: PeerId,
        /// The receiver named by the sender.
        to: PeerId,
        /// The raw JSON value to forward.
        data: String,
    },
    /// A peer left: it said goodbye (a close frame), or was closed by the
    /// server.
    Left {
        /// The peer that left.
        peer: PeerId,
        /// When.
        at: Instant,
    },
    /// A peer's connection was lost without a goodbye, and it can come
    /// back (it took resume tokens): its seat is kept for
    /// [`LobbyConfig::seat_hold`] (except in a group still filling).
    Dropped {
        /// The peer.
        peer: PeerId,
        /// When.
        at: Instant,
    },
    /// Time passes: expires unused private room codes and held seats.
    Tick {
        /// The current time.
        now: Instant,
    },
}

impl Event {
    /// A peer's end: [`Event::Dropped`] when it was lost without a goodbye
    /// (and can come back), else [`Event::Left`].
    pub fn gone(peer: PeerId, dropped: bool, at: Instant) -> Event {
        match dropped {
            true => Event::Dropped { peer, at },
            false => Event::Left { peer, at },
        }
    }
}

/// A message to a peer, in matchbox's wire protocol (`PeerEvent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    /// The receiver's own id; always the first message.
    IdAssigned(PeerId),
    /// Another peer joined the receiver's room, or a spectator is the
    /// receiver's to feed: the receiver should connect to it.
    NewPeer(PeerId),
    /// A peer of the receiver's room left (or a spectator it fed, or the
    /// receiver's own feeder).
    PeerLeft(PeerId),
    /// Signaling data relayed from `sender`.
    Signal {
        /// The peer that sent it.
        sender: PeerId,
        /// Raw JSON value.
        data: String,
    },
    /// The receiver's seat, to come back to (not matchbox's: the server
    /// sends it, as a resume token, only to clients that ask).
    Seat(Seat),
}

/// An output of the lobby, for the I/O layer to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send `message` to each of `to`.
    Send {
        /// Recipients.
        to: Vec<PeerId>,
        /// The message.
        message: ServerMessage,
    },
    /// Close the peer's connection with a reason; the lobby has already
    /// forgotten it (or never admitted it).
    Close {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: Refusal,
    },
    /// A `?next=N` group filled up (for metrics).
    MatchFormed {
        /// Group size.
        size: usize,
        /// How long each member waited from connecting to the match.
        waited: Vec<Duration>,
    },
    /// A signal was not relayed: the receiver is unknown, in another room,
    /// or a spectator the sender neither feeds nor is fed by.
    SignalDropped {
        /// The sender.
        from: PeerId,
        /// The receiver it named.
        to: PeerId,
    },
}

/// Rooms a room list holds at most: `GET /api/rooms`, a cluster node's
/// list in Redis, and the cluster's merged list. A lobby page shows no
/// more, and the list is rebuilt and sent whole: 30,000 rooms would be
/// 4 MiB a time (over the cluster's `MAX_NODE_ENTRY`). The rest are
/// counted (`volley_rooms_unlisted`).
pub const MAX_LISTED_ROOMS: usize = 500;

/// The rooms a list shows, and how many it leaves out: those with a free
/// seat first, then the full ones and the matches in play, each by id.
pub fn listed(mut rooms: Vec<RoomInfo>) -> (Vec<RoomInfo>, usize) {
    rooms.sort_by(|a, b| {
        let key = |r: &RoomInfo| (r.players >= r.capacity, r.id.clone(), r.watch.clone());
        key(a).cmp(&key(b))
    });
    let unlisted = rooms.len().saturating_sub(MAX_LISTED_ROOMS);
    rooms.truncate(MAX_LISTED_ROOMS);
    (rooms, unlisted)
}

/// A public room as listed by `GET /api/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoomInfo {
    /// What to put in the URL to join: `name`, or `name?next=N` for a
    /// group. A group in play (sealed: `watch` is set) takes nobody: a
    /// join by its id goes to another group.
    pub id: String,
    /// Peers in it now.
    pub players: usize,
    /// How many it takes.
    pub capacity: usize,
    /// Seconds since it was created.
    pub age_secs: u64,
    /// Spectators watching it (absent from older servers' lists).
    #[serde(default)]
    pub spectators: usize,
    /// What to put in the URL (path and query) to watch it:
    /// `name?spectate` for a named room with a member present,
    /// `name?next=N&spectate=<group id>` for a group in play; `None` when
    /// there is nothing to watch.
    #[serde(default)]
    pub watch: Option<String>,
}

/// Why a private room could not be reserved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrivateRoomError {
    /// The code is already reserved (the caller should draw another).
    #[error("room code already in use")]
    CodeTaken,
    /// Too many codes are reserved.
    #[error("too many private rooms ({0})")]
    TooMany(usize),
    /// The owner holds its share of codes.
    #[error("too many private rooms held by your address ({0})")]
    TooManyForOwner(usize),
}

type RoomKey = u64;

#[derive(Debug)]
struct Room {
    name: String,
    /// `None` for a named room, `Some(n)` for a matchmaking group of `n`.
    next: Option<usize>,
    capacity: usize,
    members: Vec<PeerId>,
    created: Instant,
    /// A full matchmaking group: it takes nobody else, even after a leave
    /// (except within the grace period, see [`LobbyConfig::match_grace`]).
    sealed: bool,
    /// When it last filled up.
    formed: Option<Instant>,
    /// A `?next=N` group's id (see [`SeatClaim::group`]).
    group: Option<PeerId>,
    /// Its spectators and who feeds whom.
    audience: Audience,
}

impl Room {
    fn seat(&self) -> Seat {
        Seat {
            name: self.name.clone(),
            next: self.next,
            claim: SeatClaim {
                group: self.group,
                sealed: self.sealed,
            },
        }
    }

    /// Whether a returning peer's request names this room.
    fn is(&self, request: &RoomRequest) -> bool {
        let group = request.resume.and_then(|claim| claim.group);
        self.name == request.name && self.next == request.next && self.group == group
    }
}

#[derive(Debug)]
struct PeerEntry {
    room: RoomKey,
    joined: Instant,
    /// Has been part of a full group (its wait is already counted).
    matched: bool,
}

#[derive(Debug)]
struct PrivateCode {
    /// When the code was reserved or its room last seen occupied.
    idle_since: Instant,
    /// Who reserved it.
    owner: Option<IpAddr>,
}

/// The rooms, their members and the matchmaking queues.
#[derive(Debug)]
pub struct Lobby {
    config: LobbyConfig,
    rooms: HashMap<RoomKey, Room>,
    /// Named rooms (`/<name>`) by name.
    named: HashMap<String, RoomKey>,
    /// The groups open for newcomers for `(name, n)`; the oldest (lowest
    /// key) fills first, so a reopened group gets its seat back before a
    /// younger one grows.
    filling: HashMap<(String, usize), BTreeSet<RoomKey>>,
    peers: HashMap<PeerId, PeerEntry>,
    private: HashMap<String, PrivateCode>,
    /// Private codes held per owner.
    owners: HashMap<IpAddr, usize>,
    /// Rooms (named, filling or sealed) per name, for [`Lobby::holds`].
    names: HashMap<String, usize>,
    /// `?next=N` groups by id.
    groups: HashMap<PeerId, RoomKey>,
    /// Peers whose connection is lost, their seats held, since when.
    away: HashMap<PeerId, Instant>,
    /// Spectators (never in `peers`), and the room each watches.
    spectators: HashMap<PeerId, RoomKey>,
    next_key: RoomKey,
}

impl Lobby {
    /// An empty lobby.
    pub fn new(config: LobbyConfig) -> Self {
        Lobby {
            config,
            rooms: HashMap::new(),
            named: HashMap::new(),
            filling: HashMap::new(),
            peers: HashMap::new(),
            private: HashMap::new(),
            owners: HashMap::new(),
            names: HashMap::new(),
            groups: HashMap::new(),
            away: HashMap::new(),
            spectators: HashMap::new(),
            next_key: 0,
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &LobbyConfig {
        &self.config
    }

    /// Members currently admitted, away ones included (spectators are
    /// [`Lobby::spectator_count`]).
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Peers whose connection is lost and whose seat is held.
    pub fn away_count(&self) -> usize {
        self.away.len()
    }

    /// Rooms and matches currently holding at least one peer.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Whether anything goes by `name`: a room, a `?next=N` group (open or
    /// sealed) or a reserved private code. A cluster node keeps its claim on
    /// a name while this holds (see `crate::cluster`).
    pub fn holds(&self, name: &str) -> bool {
        self.names.contains_key(name) || self.private.contains_key(name)
    }

    /// The members of `peer`'s room or match, in join order (for tests and
    /// tools); `None` for a spectator, which is no member.
    pub fn room_of(&self, peer: PeerId) -> Option<&[PeerId]> {
        let entry = self.peers.get(&peer)?;
        self.rooms.get(&entry.room).map(|r| r.members.as_slice())
    }

    /// Feeds one event; appends the resulting commands to `out`.
    pub fn handle(&mut self, event: Event, out: &mut Vec<Command>) {
        match event {
            Event::Joined { peer, room, at } => match room.watch {
                Some(watch) => self.spectate(peer, &room, watch, out),
                None => {
                    self.join(peer, room, at, out);
                    // A newcomer, or a member back, may feed spectators
                    // waiting for a feeder.
                    if let Some(entry) = self.peers.get(&peer) {
                        self.feed(entry.room, out);
                    }
                }
            },
            Event::Signal { from, to, data } => self.signal(from, to, data, out),
            Event::Left { peer, at } => self.leave(peer, at, out),
            Event::Dropped { peer, at } => self.dropped(peer, at, out),
            Event::Tick { now } => {
                self.expire_private(now);
                self.expire_away(now, out);
            }
        }
    }

    /// Reserves `code` as an unlisted room name.
    pub fn reserve_private(&mut self, code: &str, now: Instant) -> Result<(), PrivateRoomError> {
        self.reserve_private_for(code, None, now)
    }

    /// Reserves `code` for `owner` (a client address), which may hold at
    /// most [`LobbyConfig::max_private_rooms_per_owner`] codes at once.
    pub fn reserve_private_for(
        &mut self,
        code: &str,
        owner: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), PrivateRoomError> {
        if self.private.contains_key(code) || self.named.contains_key(code) {
            return Err(PrivateRoomError::CodeTaken);
        }
        if self.private.len() >= self.config.max_private_rooms {
            return Err(PrivateRoomError::TooMany(self.config.max_private_rooms));
        }
        let per_owner = self.config.max_private_rooms_per_owner;
        if let Some(owner) = owner {
            let held = self.owners.entry(owner).or_insert(0);
            if per_owner > 0 && *held >= per_owner {
                return Err(PrivateRoomError::TooManyForOwner(per_owner));
            }
            *held += 1;
        }
        self.private.insert(
            code.to_owned(),
            PrivateCode {
                idle_since: now,
                owner,
            },
        );
        Ok(())
    }

    /// Private room codes `owner` holds now.
    pub fn private_rooms_of(&self, owner: IpAddr) -> usize {
        self.owners.get(&owner).copied().unwrap_or(0)
    }

    /// The public rooms (named rooms and groups, filling or in play, that
    /// are not private), sorted by id (groups of one id by their `watch`).
    pub fn public_rooms(&self, now: Instant) -> Vec<RoomInfo> {
        let mut list: Vec<RoomInfo> = self
            .rooms
            .values()
            .filter(|r| !self.private.contains_key(&r.name))
            .map(|r| RoomInfo {
                id: match r.next {
                    None => r.name.clone(),
                    Some(n) => format!("{}?next={n}", r.name),
                },
                players: r.members.len(),
                capacity: r.capacity,
                age_secs: now.saturating_duration_since(r.created).as_secs(),
                spectators: r.audience.len(),
                watch: self.watch_link(r),
            })
            .collect();
        list.sort_by(|a, b| (&a.id, &a.watch).cmp(&(&b.id, &b.watch)));
        list
    }

    fn join(&mut self, peer: PeerId, request: RoomRequest, at: Instant, out: &mut Vec<Command>) {
        if self.spectators.contains_key(&peer) {
            out.push(Command::Close {
                peer,
                reason: Refusal::DuplicatePeer,
            });
            return;
        }
        if let Some(entry) = self.peers.get(&peer) {
            // Back while its old connection is held, or not yet seen gone.
            let room = self.rooms.get(&entry.room);
            if request.resume.is_some() && room.is_some_and(|r| r.is(&request)) {
                return self.rebind(peer, out);
            }
            out.push(Command::Close {
                peer,
                reason: Refusal::DuplicatePeer,
            });
            return;
        }
        let max = self.config.max_room_size;
        if let Some(n) = request.next
            && !(2..=max).contains(&n)
        {
            out.push(Command::Close {
                peer,
                reason: Refusal::InvalidNext {
                    value: n.to_string(),
                    max,
                },
            });
            return;
        }
        let key = self.room_for(peer, &request, at);
        let Some(room) = self.rooms.get_mut(&key) else {
            return; // unreachable: `room_for` always names a room
        };
        if room.members.len() >= room.capacity || (request.resume.is_some() && !room.is(&request)) {
            let capacity = room.capacity;
            if room.members.is_empty() {
                self.remove_room(key, out);
            }
            let reason = match request.resume {
                Some(_) => Refusal::SeatLost,
                None => Refusal::RoomFull { capacity },
            };
            out.push(Command::Close { peer, reason });
            return;
        }
        out.push(Command::Send {
            to: vec![peer],
            message: ServerMessage::IdAssigned(peer),
        });
        let members = present(&room.members, &self.away);
        if request.resume.is_some() {
            tell_room_mates(peer, members, out);
        } else if !members.is_empty() {
            out.push(Command::Send {
                to: members,
                message: ServerMessage::NewPeer(peer),
            });
        }
        room.members.push(peer);
        self.peers.insert(
            peer,
            PeerEntry {
                room: key,
                joined: at,
                matched: request.resume.is_some_and(|claim| claim.sealed),
            },
        );
        if !(room.next.is_some() && room.members.len() == room.capacity && !room.sealed) {
            out.push(Command::Send {
                to: vec![peer],
                message: ServerMessage::Seat(room.seat()),
            });
            return;
        }
        room.sealed = true;
        room.formed = Some(at);
        // A refilled group counts only its newcomers' waits.
        let mut waited = Vec::new();
        for member in &room.members {
            if let Some(entry) = self.peers.get_mut(member)
                && !std::mem::replace(&mut entry.matched, true)
            {
                waited.push(at.saturating_duration_since(entry.joined));
            }
        }
        out.push(Command::MatchFormed {
            size: room.capacity,
            waited,
        });
        // Everyone's seat is now in a full group.
        out.push(Command::Send {
            to: present(&room.members, &self.away),
            message: ServerMessage::Seat(room.seat()),
        });
        let filling = (room.name.clone(), room.capacity);
        if let Some(open) = self.filling.get_mut(&filling) {
            open.remove(&key);
            if open.is_empty() {
                self.filling.remove(&filling);
            }
        }
    }

    /// The room a joiner goes to, opened if need be: its own group back
    /// (opened afresh if this lobby never knew it), the oldest open group,
    /// or the named room.
    fn room_for(&mut self, peer: PeerId, request: &RoomRequest, at: Instant) -> RoomKey {
        let max = self.config.max_room_size;
        let name = request.name.clone();
        let Some(n) = request.next else {
            if let Some(&key) = self.named.get(&name) {
                return key;
            }
            let key = self.new_room(name.clone(), None, max, None, at);
            self.named.insert(name, key);
            return key;
        };
        let (group, sealed) = match request.resume {
            Some(SeatClaim {
                group: Some(group),
                sealed,
            }) => match self.groups.get(&group) {
                Some(&key) => return key,
                None => (group, sealed),
            },
            _ => {
                let filling = (name.clone(), n);
                if let Some(&key) = self.filling.get(&filling).and_then(|open| open.first()) {
                    return key;
                }
                (peer, false)
            }
        };
        let key = self.new_room(name.clone(), Some(n), n, Some(group), at);
        self.groups.insert(group, key);
        match self.rooms.get_mut(&key) {
            Some(room) if sealed => {
                room.sealed = true;
                room.formed = Some(at);
            }
            _ => {
                self.filling.entry((name, n)).or_default().insert(key);
            }
        }
        key
    }

    /// A returning peer whose seat was still here: it learns its id, its
    /// seat and its room-mates again (and offers to those it lost).
    fn rebind(&mut self, peer: PeerId, out: &mut Vec<Command>) {
        self.away.remove(&peer);
        let Some(room) = self.peers.get(&peer).and_then(|e| self.rooms.get(&e.room)) else {
            return;
        };
        out.push(Command::Send {
            to: vec![peer],
            message: ServerMessage::IdAssigned(peer),
        });
        let mut members = present(&room.members, &self.away);
        members.retain(|m| *m != peer);
        tell_room_mates(peer, members, out);
        out.push(Command::Send {
            to: vec![peer],
            message: ServerMessage::Seat(room.seat()),
        });
    }

    fn signal(&mut self, from: PeerId, to: PeerId, data: String, out: &mut Vec<Command>) {
        let same_room = match (self.peers.get(&from), self.peers.get(&to)) {
            (Some(a), Some(b)) => {
                let here = !self.away.contains_key(&from) && !self.away.contains_key(&to);
                a.room == b.room && from != to && here
            }
            _ => false,
        };
        // A spectator signals its feeder and its own spectators only.
        if same_room || self.feeds(from, to) || self.feeds(to, from) {
            out.push(Command::Send {
                to: vec![to],
                message: ServerMessage::Signal { sender: from, data },
            });
        } else {
            out.push(Command::SignalDropped { from, to });
        }
    }

    fn leave(&mut self, peer: PeerId, at: Instant, out: &mut Vec<Command>) {
        if self.spectators.contains_key(&peer) {
            return self.unwatch(peer, out);
        }
        let Some(entry) = self.peers.remove(&peer) else {
            return; // refused at join, or left twice
        };
        self.away.remove(&peer);
        let Some(room) = self.rooms.get_mut(&entry.room) else {
            return;
        };
        room.members.retain(|p| *p != peer);
        if room.members.is_empty() {
            // Its spectators too: the match is over.
            self.remove_room(entry.room, out);
            return;
        }
        let members = present(&room.members, &self.away);
        if !members.is_empty() {
            out.push(Command::Send {
                to: members,
                message: ServerMessage::PeerLeft(peer),
            });
        }
        let early = room
            .formed
            .is_some_and(|formed| at.saturating_duration_since(formed) < self.config.match_grace);
        if room.sealed && early {
            room.sealed = false;
            self.filling
                .entry((room.name.clone(), room.capacity))
                .or_default()
                .insert(entry.room);
        }
        self.feeder_lost(entry.room, peer, out);
    }

    /// Holds a lost member's seat, except in a group still filling: a
    /// queue keeps no ghosts. A spectator just leaves: it has no seat.
    fn dropped(&mut self, peer: PeerId, at: Instant, out: &mut Vec<Command>) {
        if self.spectators.contains_key(&peer) {
            return self.unwatch(peer, out);
        }
        let Some(entry) = self.peers.get(&peer) else {
            return;
        };
        let filling = self
            .rooms
            .get(&entry.room)
            .is_some_and(|r| r.next.is_some() && !r.sealed);
        if filling || self.config.seat_hold.is_zero() {
            return self.leave(peer, at, out);
        }
        let room = entry.room;
        self.away.entry(peer).or_insert(at);
        // Its spectators cannot wait out the hold: they are fed anew.
        self.feeder_lost(room, peer, out);
    }

    /// Held seats whose time is up: their peers leave.
    fn expire_away(&mut self, now: Instant, out: &mut Vec<Command>) {
        let hold = self.config.seat_hold;
        let mut expired: Vec<PeerId> = self
            .away
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= hold)
            .map(|(p, _)| *p)
            .collect();
        expired.sort();
        for peer in expired {
            self.leave(peer, now, out);
        }
    }

    /// A private code lives while its room is occupied (seen at each tick)
    /// and for the TTL after that.
    fn expire_private(&mut self, now: Instant) {
        let ttl = self.config.private_room_ttl;
        let named = &self.named;
        let owners = &mut self.owners;
        self.private.retain(|code, reserved| {
            if named.contains_key(code) {
                reserved.idle_since = now;
            }
            let keep = now.saturating_duration_since(reserved.idle_since) < ttl;
            if let (false, Some(owner)) = (keep, reserved.owner)
                && let Some(held) = owners.get_mut(&owner)
            {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    owners.remove(&owner);
                }
            }
            keep
        });
    }

    fn new_room(
        &mut self,
        name: String,
        next: Option<usize>,
        capacity: usize,
        group: Option<PeerId>,
        at: Instant,
    ) -> RoomKey {
        let key = self.next_key;
        self.next_key += 1;
        *self.names.entry(name.clone()).or_insert(0) += 1;
        self.rooms.insert(
            key,
            Room {
                name,
                next,
                capacity,
                members: Vec::new(),
                created: at,
                sealed: false,
                formed: None,
                group,
                audience: Audience::default(),
            },
        );
        key
    }

    /// Forgets a room whose last member left, closing its spectators.
    fn remove_room(&mut self, key: RoomKey, out: &mut Vec<Command>) {
        let Some(room) = self.rooms.remove(&key) else {
            return;
        };
        for spectator in room.audience.spectators() {
            self.spectators.remove(&spectator);
            out.push(Command::Close {
                peer: spectator,
                reason: Refusal::MatchOver,
            });
        }
        if let Some(group) = room.group {
            self.groups.remove(&group);
        }
        if let Some(count) = self.names.get_mut(&room.name) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.names.remove(&room.name);
            }
        }
        match room.next {
            None => {
                self.named.remove(&room.name);
            }
            Some(n) => {
                let filling = (room.name, n);
                if let Some(open) = self.filling.get_mut(&filling) {
                    open.remove(&key);
                    if open.is_empty() {
                        self.filling.remove(&filling);
                    }
                }
            }
        }
    }
}

/// The members of a room whose connection is up, in join order.
fn present(members: &[PeerId], away: &HashMap<PeerId, Instant>) -> Vec<PeerId> {
    members
        .iter()
        .filter(|p| !away.contains_key(p))
        .copied()
        .collect()
}

/// A returning peer hears of its room-mates (`NewPeer`) and offers to
/// them: it alone knows which of its connections are still up.
fn tell_room_mates(peer: PeerId, members: Vec<PeerId>, out: &mut Vec<Command>) {
    out.extend(members.into_iter().map(|member| Command::Send {
        to: vec![peer],
        message: ServerMessage::NewPeer(member),
    }));
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod watch_tests;
