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

/// Longest room name accepted, in bytes.
pub const MAX_ROOM_NAME: usize = 64;

/// What a connecting peer asked for: a room name and, optionally, matchmaking.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomRequest {
    /// The room name (the URL path without its `/`; may be empty).
    pub name: String,
    /// `None` joins the named room; `Some(n)` joins the next group of `n`.
    pub next: Option<usize>,
}

impl RoomRequest {
    /// Validates a room name and the raw `next` query value (a whole number
    /// from 2 to `max_room_size`).
    pub fn parse(name: &str, next: Option<&str>, max_room_size: usize) -> Result<Self, Refusal> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if name.len() > MAX_ROOM_NAME || !name.chars().all(valid_char) {
            return Err(Refusal::InvalidRoomName {
                len: name.len(),
                max: MAX_ROOM_NAME,
            });
        }
        let next = match next {
            None => None,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (2..=max_room_size).contains(&n) => Some(n),
                _ => {
                    return Err(Refusal::InvalidNext {
                        value: raw.chars().take(32).collect(),
                        max: max_room_size,
                    });
                }
            },
        };
        Ok(RoomRequest {
            name: name.to_owned(),
            next,
        })
    }
}

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
}

impl Default for LobbyConfig {
    fn default() -> Self {
        LobbyConfig {
            max_room_size: 16,
            private_room_ttl: Duration::from_secs(3600),
            max_private_rooms: 10_000,
            max_private_rooms_per_owner: 20,
            match_grace: Duration::from_secs(10),
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
    /// A peer's connection ended, for whatever reason.
    Left {
        /// The peer that left.
        peer: PeerId,
        /// When.
        at: Instant,
    },
    /// Time passes: expires unused private room codes.
    Tick {
        /// The current time.
        now: Instant,
    },
}

/// A message to a peer, in matchbox's wire protocol (`PeerEvent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    /// The receiver's own id; always the first message.
    IdAssigned(PeerId),
    /// Another peer joined the receiver's room: the receiver should connect to it.
    NewPeer(PeerId),
    /// A peer of the receiver's room left.
    PeerLeft(PeerId),
    /// Signaling data relayed from `sender`.
    Signal {
        /// The peer that sent it.
        sender: PeerId,
        /// Raw JSON value.
        data: String,
    },
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
    /// A signal was not relayed: the receiver is unknown or in another room.
    SignalDropped {
        /// The sender.
        from: PeerId,
        /// The receiver it named.
        to: PeerId,
    },
}

/// A public room as listed by `GET /api/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoomInfo {
    /// What to put in the URL: `name`, or `name?next=N` for a filling group.
    pub id: String,
    /// Peers in it now.
    pub players: usize,
    /// How many it takes.
    pub capacity: usize,
    /// Seconds since it was created.
    pub age_secs: u64,
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
            next_key: 0,
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &LobbyConfig {
        &self.config
    }

    /// Peers currently admitted.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
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

    /// The members of `peer`'s room or match, in join order (for tests and tools).
    pub fn room_of(&self, peer: PeerId) -> Option<&[PeerId]> {
        let entry = self.peers.get(&peer)?;
        self.rooms.get(&entry.room).map(|r| r.members.as_slice())
    }

    /// Feeds one event; appends the resulting commands to `out`.
    pub fn handle(&mut self, event: Event, out: &mut Vec<Command>) {
        match event {
            Event::Joined { peer, room, at } => self.join(peer, room, at, out),
            Event::Signal { from, to, data } => self.signal(from, to, data, out),
            Event::Left { peer, at } => self.leave(peer, at, out),
            Event::Tick { now } => self.expire_private(now),
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

    /// The public rooms (named rooms and filling groups that are not private),
    /// sorted by id.
    pub fn public_rooms(&self, now: Instant) -> Vec<RoomInfo> {
        let mut list: Vec<RoomInfo> = self
            .rooms
            .values()
            .filter(|r| !r.sealed && !self.private.contains_key(&r.name))
            .map(|r| RoomInfo {
                id: match r.next {
                    None => r.name.clone(),
                    Some(n) => format!("{}?next={n}", r.name),
                },
                players: r.members.len(),
                capacity: r.capacity,
                age_secs: now.saturating_duration_since(r.created).as_secs(),
            })
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    fn join(&mut self, peer: PeerId, request: RoomRequest, at: Instant, out: &mut Vec<Command>) {
        if self.peers.contains_key(&peer) {
            out.push(Command::Close {
                peer,
                reason: Refusal::DuplicatePeer,
            });
            return;
        }
        let max = self.config.max_room_size;
        let key = match request.next {
            Some(n) if !(2..=max).contains(&n) => {
                out.push(Command::Close {
                    peer,
                    reason: Refusal::InvalidNext {
                        value: n.to_string(),
                        max,
                    },
                });
                return;
            }
            Some(n) => {
                let filling = (request.name.clone(), n);
                match self.filling.get(&filling).and_then(|open| open.first()) {
                    Some(&key) => key,
                    None => {
                        let key = self.new_room(request.name, Some(n), n, at);
                        self.filling.entry(filling).or_default().insert(key);
                        key
                    }
                }
            }
            None => match self.named.get(&request.name) {
                Some(&key) => key,
                None => {
                    let key = self.new_room(request.name.clone(), None, max, at);
                    self.named.insert(request.name, key);
                    key
                }
            },
        };
        let Some(room) = self.rooms.get_mut(&key) else {
            return; // unreachable: keys above always name a room
        };
        if room.members.len() >= room.capacity {
            let capacity = room.capacity;
            if room.members.is_empty() {
                self.remove_room(key);
            }
            out.push(Command::Close {
                peer,
                reason: Refusal::RoomFull { capacity },
            });
            return;
        }
        out.push(Command::Send {
            to: vec![peer],
            message: ServerMessage::IdAssigned(peer),
        });
        if !room.members.is_empty() {
            out.push(Command::Send {
                to: room.members.clone(),
                message: ServerMessage::NewPeer(peer),
            });
        }
        room.members.push(peer);
        self.peers.insert(
            peer,
            PeerEntry {
                room: key,
                joined: at,
                matched: false,
            },
        );
        if room.next.is_some() && room.members.len() == room.capacity {
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
            let filling = (room.name.clone(), room.capacity);
            if let Some(open) = self.filling.get_mut(&filling) {
                open.remove(&key);
                if open.is_empty() {
                    self.filling.remove(&filling);
                }
            }
        }
    }

    fn signal(&mut self, from: PeerId, to: PeerId, data: String, out: &mut Vec<Command>) {
        let same_room = match (self.peers.get(&from), self.peers.get(&to)) {
            (Some(a), Some(b)) => a.room == b.room && from != to,
            _ => false,
        };
        if same_room {
            out.push(Command::Send {
                to: vec![to],
                message: ServerMessage::Signal { sender: from, data },
            });
        } else {
            out.push(Command::SignalDropped { from, to });
        }
    }

    fn leave(&mut self, peer: PeerId, at: Instant, out: &mut Vec<Command>) {
        let Some(entry) = self.peers.remove(&peer) else {
            return; // refused at join, or left twice
        };
        let Some(room) = self.rooms.get_mut(&entry.room) else {
            return;
        };
        room.members.retain(|p| *p != peer);
        if room.members.is_empty() {
            self.remove_room(entry.room);
            return;
        }
        out.push(Command::Send {
            to: room.members.clone(),
            message: ServerMessage::PeerLeft(peer),
        });
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
            },
        );
        key
    }

    fn remove_room(&mut self, key: RoomKey) {
        let Some(room) = self.rooms.remove(&key) else {
            return;
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn id(n: u128) -> PeerId {
        PeerId(uuid::Uuid::from_u128(n))
    }

    /// The obvious, slow model the lobby is checked against.
    #[derive(Default)]
    struct Model {
        groups: Vec<Group>,
    }

    struct Group {
        name: String,
        next: Option<usize>,
        members: BTreeSet<PeerId>,
        sealed: bool,
        /// When it last filled up.
        formed: Option<Instant>,
    }

    impl Model {
        fn group_of(&self, p: PeerId) -> Option<usize> {
            self.groups.iter().position(|g| g.members.contains(&p))
        }
        /// Where a joiner lands: `Ok(group index or None for a new one)`, or
        /// `Err` when the room is full. Groups are kept in creation order, so
        /// the oldest open group (a reopened one first) takes the joiner.
        fn target(&self, room: &RoomRequest, max: usize) -> Result<Option<usize>, ()> {
            let found = self.groups.iter().position(|g| {
                g.name == room.name && g.next == room.next && !g.sealed && !g.members.is_empty()
            });
            match found {
                Some(i) if room.next.is_none() && self.groups[i].members.len() >= max => Err(()),
                other => Ok(other),
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Join { room: u8, next: Option<usize> },
        Leave(usize),
        Signal(usize, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..3, prop_oneof![Just(None), (2usize..5).prop_map(Some)])
                .prop_map(|(room, next)| Op::Join { room, next }),
            2 => (0usize..64).prop_map(Op::Leave),
            2 => (0usize..64, 0usize..64).prop_map(|(a, b)| Op::Signal(a, b)),
        ]
    }

    fn sends(out: &[Command], message: &ServerMessage) -> BTreeSet<PeerId> {
        out.iter()
            .filter_map(|c| match c {
                Command::Send { to, message: m } if m == message => Some(to.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn lobby_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
            let max = 4;
            // One step is 1 ms: leaves from full groups fall both inside and
            // outside the grace period.
            let grace = Duration::from_millis(20);
            let config = LobbyConfig { max_room_size: max, match_grace: grace, ..LobbyConfig::default() };
            let mut lobby = Lobby::new(config);
            let mut model = Model::default();
            let mut joined: Vec<PeerId> = Vec::new();
            let t0 = Instant::now();
            let mut out = Vec::new();
            for (step, op) in ops.into_iter().enumerate() {
                out.clear();
                let at = t0 + Duration::from_millis(step as u64);
                match op {
                    Op::Join { room, next } => {
                        let p = id(joined.len() as u128 + 1);
                        joined.push(p);
                        let room = RoomRequest { name: format!("r{room}"), next };
                        let target = model.target(&room, max);
                        lobby.handle(Event::Joined { peer: p, room: room.clone(), at }, &mut out);
                        match target {
                            Err(()) => {
                                prop_assert_eq!(&out, &vec![Command::Close { peer: p, reason: Refusal::RoomFull { capacity: max } }]);
                            }
                            Ok(target) => {
                                prop_assert_eq!(sends(&out, &ServerMessage::IdAssigned(p)), BTreeSet::from([p]));
                                let existing = target.map(|i| model.groups[i].members.clone()).unwrap_or_default();
                                // Exactly the peers already in the group hear of the newcomer.
                                prop_assert_eq!(sends(&out, &ServerMessage::NewPeer(p)), existing);
                                let i = match target {
                                    Some(i) => i,
                                    None => {
                                        model.groups.push(Group { name: room.name.clone(), next, members: BTreeSet::new(), sealed: false, formed: None });
                                        model.groups.len() - 1
                                    }
                                };
                                let g = &mut model.groups[i];
                                g.members.insert(p);
                                let formed = out.iter().any(|c| matches!(c, Command::MatchFormed { .. }));
                                if Some(g.members.len()) == next {
                                    g.sealed = true;
                                    g.formed = Some(at);
                                    prop_assert!(formed);
                                } else {
                                    prop_assert!(!formed);
                                }
                            }
                        }
                    }
                    Op::Leave(i) => {
                        let Some(&p) = joined.get(i) else { continue };
                        lobby.handle(Event::Left { peer: p, at }, &mut out);
                        match model.group_of(p) {
                            None => prop_assert!(out.is_empty()),
                            Some(g) => {
                                let group = &mut model.groups[g];
                                group.members.remove(&p);
                                // A group broken soon after it formed takes newcomers again.
                                if group.sealed && group.formed.is_some_and(|f| at - f < grace) {
                                    group.sealed = false;
                                }
                                prop_assert_eq!(sends(&out, &ServerMessage::PeerLeft(p)), model.groups[g].members.clone());
                                prop_assert_eq!(out.len(), usize::from(!model.groups[g].members.is_empty()));
                            }
                        }
                    }
                    Op::Signal(a, b) => {
                        let (Some(&from), Some(&to)) = (joined.get(a), joined.get(b)) else { continue };
                        lobby.handle(Event::Signal { from, to, data: "1".into() }, &mut out);
                        let same = from != to && model.group_of(from).is_some() && model.group_of(from) == model.group_of(to);
                        if same {
                            prop_assert_eq!(&out, &vec![Command::Send { to: vec![to], message: ServerMessage::Signal { sender: from, data: "1".into() } }]);
                        } else {
                            prop_assert_eq!(&out, &vec![Command::SignalDropped { from, to }]);
                        }
                    }
                }
                // Invariants after every step.
                model.groups.retain(|g| !g.members.is_empty());
                let mut seen = BTreeSet::new();
                for g in &model.groups {
                    prop_assert!(g.members.len() <= g.next.unwrap_or(max));
                    for &p in &g.members {
                        prop_assert!(seen.insert(p), "peer in two rooms");
                        let members: BTreeSet<PeerId> = lobby.room_of(p).unwrap_or(&[]).iter().copied().collect();
                        prop_assert_eq!(&members, &g.members);
                    }
                }
                prop_assert_eq!(lobby.peer_count(), seen.len());
                prop_assert_eq!(lobby.room_count(), model.groups.len());
                for room in 0..3 {
                    let name = format!("r{room}");
                    prop_assert_eq!(lobby.holds(&name), model.groups.iter().any(|g| g.name == name));
                }
            }
        }
    }

    #[test]
    fn groups_of_two_form_fresh_matches() {
        let mut lobby = Lobby::new(LobbyConfig::default());
        let room = RoomRequest::parse("x", Some("2"), 16).unwrap();
        let t0 = Instant::now();
        let mut out = Vec::new();
        for n in 1..=4 {
            let at = t0 + Duration::from_millis(10 * n as u64);
            lobby.handle(
                Event::Joined {
                    peer: id(n),
                    room: room.clone(),
                    at,
                },
                &mut out,
            );
        }
        assert_eq!(lobby.room_of(id(1)), Some(&[id(1), id(2)][..]));
        assert_eq!(lobby.room_of(id(4)), Some(&[id(3), id(4)][..]));
        let waits: Vec<_> = out
            .iter()
            .filter_map(|c| match c {
                Command::MatchFormed { waited, .. } => Some(waited.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            waits,
            vec![vec![Duration::from_millis(10), Duration::ZERO]; 2]
        );
        // A leave from a sealed match after the grace period leaves no
        // vacancy for newcomers.
        out.clear();
        lobby.handle(
            Event::Left {
                peer: id(2),
                at: t0 + Duration::from_secs(60),
            },
            &mut out,
        );
        lobby.handle(
            Event::Joined {
                peer: id(5),
                room,
                at: t0,
            },
            &mut out,
        );
        assert_eq!(lobby.room_of(id(5)), Some(&[id(5)][..]));
        assert_eq!(lobby.room_of(id(1)), Some(&[id(1)][..]));
    }

    #[test]
    fn a_group_broken_while_connecting_is_refilled() {
        let mut lobby = Lobby::new(LobbyConfig {
            match_grace: Duration::from_secs(5),
            ..LobbyConfig::default()
        });
        let room = RoomRequest::parse("x", Some("3"), 16).unwrap();
        let t0 = Instant::now();
        let mut out = Vec::new();
        let join = |lobby: &mut Lobby, n, at, out: &mut Vec<Command>| {
            lobby.handle(
                Event::Joined {
                    peer: id(n),
                    room: room.clone(),
                    at,
                },
                out,
            )
        };
        for n in 1..=3 {
            join(&mut lobby, n, t0, &mut out);
        }
        // A fourth peer starts the next group.
        join(&mut lobby, 4, t0, &mut out);
        assert_eq!(lobby.public_rooms(t0).len(), 1);
        // Peer 2 drops out 1 s after the match formed: the others hear of it
        // and the group takes the next newcomer, before the younger group.
        out.clear();
        let t1 = t0 + Duration::from_secs(1);
        lobby.handle(
            Event::Left {
                peer: id(2),
                at: t1,
            },
            &mut out,
        );
        assert_eq!(
            out,
            vec![Command::Send {
                to: vec![id(1), id(3)],
                message: ServerMessage::PeerLeft(id(2))
            }]
        );
        let mut listed: Vec<_> = lobby
            .public_rooms(t1)
            .into_iter()
            .map(|r| r.players)
            .collect();
        listed.sort();
        assert_eq!(listed, vec![1, 2]);
        out.clear();
        join(&mut lobby, 5, t1, &mut out);
        assert_eq!(lobby.room_of(id(5)), Some(&[id(1), id(3), id(5)][..]));
        assert!(out.contains(&Command::Send {
            to: vec![id(1), id(3)],
            message: ServerMessage::NewPeer(id(5))
        }));
        // Refilled: one more match, counting only the newcomer's wait.
        assert!(out.contains(&Command::MatchFormed {
            size: 3,
            waited: vec![Duration::ZERO]
        }));
        join(&mut lobby, 6, t1, &mut out);
        assert_eq!(lobby.room_of(id(6)), Some(&[id(4), id(6)][..]));
        // Past the grace period the group stays sealed.
        out.clear();
        let t2 = t1 + Duration::from_secs(5);
        lobby.handle(
            Event::Left {
                peer: id(1),
                at: t2,
            },
            &mut out,
        );
        join(&mut lobby, 7, t2, &mut out);
        assert_eq!(lobby.room_of(id(3)), Some(&[id(3), id(5)][..]));
        assert_eq!(lobby.room_of(id(7)), Some(&[id(4), id(6), id(7)][..]));
    }

    #[test]
    fn private_codes_per_owner_are_capped_until_they_expire() {
        let mut lobby = Lobby::new(LobbyConfig {
            private_room_ttl: Duration::from_secs(60),
            max_private_rooms_per_owner: 2,
            ..LobbyConfig::default()
        });
        let t0 = Instant::now();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert_eq!(lobby.reserve_private_for("a1", Some(a), t0), Ok(()));
        assert_eq!(lobby.reserve_private_for("a2", Some(a), t0), Ok(()));
        assert_eq!(
            lobby.reserve_private_for("a3", Some(a), t0),
            Err(PrivateRoomError::TooManyForOwner(2))
        );
        assert_eq!(lobby.reserve_private_for("b1", Some(b), t0), Ok(()));
        assert_eq!(lobby.reserve_private("anon", t0), Ok(()));
        assert_eq!(lobby.private_rooms_of(a), 2);
        lobby.handle(
            Event::Tick {
                now: t0 + Duration::from_secs(61),
            },
            &mut Vec::new(),
        );
        assert_eq!(lobby.private_rooms_of(a), 0);
        assert_eq!(lobby.reserve_private_for("a3", Some(a), t0), Ok(()));
    }

    #[test]
    fn requests_are_validated() {
        for (next, ok) in [
            ("2", true),
            ("16", true),
            ("0", false),
            ("1", false),
            ("17", false),
            ("-2", false),
            ("two", false),
            ("99999999999999999999999", false),
            ("", false),
        ] {
            assert_eq!(
                RoomRequest::parse("r", Some(next), 16).is_ok(),
                ok,
                "{next}"
            );
        }
        assert!(RoomRequest::parse("", None, 16).is_ok());
        for name in ["a/b", "é", "a b", &"x".repeat(65)] {
            assert!(
                matches!(
                    RoomRequest::parse(name, None, 16),
                    Err(Refusal::InvalidRoomName { .. })
                ),
                "{name}"
            );
        }
        // The lobby re-checks `next` itself rather than trusting its caller.
        let mut lobby = Lobby::new(LobbyConfig::default());
        let mut out = Vec::new();
        let bad = RoomRequest {
            name: "r".into(),
            next: Some(1),
        };
        lobby.handle(
            Event::Joined {
                peer: id(1),
                room: bad,
                at: Instant::now(),
            },
            &mut out,
        );
        assert!(matches!(
            &out[..],
            [Command::Close {
                reason: Refusal::InvalidNext { .. },
                ..
            }]
        ));
        assert_eq!(lobby.peer_count(), 0);
    }

    #[test]
    fn private_rooms_are_unlisted_and_expire() {
        let mut lobby = Lobby::new(LobbyConfig {
            private_room_ttl: Duration::from_secs(60),
            max_private_rooms: 2,
            ..LobbyConfig::default()
        });
        let t0 = Instant::now();
        let mut out = Vec::new();
        lobby.reserve_private("secret", t0).unwrap();
        assert_eq!(
            lobby.reserve_private("secret", t0),
            Err(PrivateRoomError::CodeTaken)
        );
        lobby.reserve_private("other", t0).unwrap();
        assert_eq!(
            lobby.reserve_private("third", t0),
            Err(PrivateRoomError::TooMany(2))
        );
        for (n, name) in [(1, "secret"), (2, "public")] {
            let room = RoomRequest::parse(name, None, 16).unwrap();
            lobby.handle(
                Event::Joined {
                    peer: id(n),
                    room,
                    at: t0,
                },
                &mut out,
            );
        }
        let listed: Vec<_> = lobby.public_rooms(t0).into_iter().map(|r| r.id).collect();
        assert_eq!(listed, vec!["public"]);
        // Occupied codes live on; empty ones expire after the TTL.
        lobby.handle(
            Event::Tick {
                now: t0 + Duration::from_secs(61),
            },
            &mut out,
        );
        assert_eq!(lobby.reserve_private("other", t0), Ok(()));
        assert_eq!(
            lobby.reserve_private("secret", t0),
            Err(PrivateRoomError::CodeTaken)
        );
    }
}
