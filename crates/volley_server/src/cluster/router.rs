//! [`Router`]: one node's share of a cluster, as a pure state machine
//! around the node's [`Lobby`].
//!
//! Every room name has a *home*: the node whose lobby holds the rooms, the
//! `?next=N` groups and the private code of that name. The home is found in
//! the directory (Redis, through the driver): the first node to claim a free
//! name, or one whose owner stopped answering, becomes its home, and keeps it
//! while its lobby [`holds`](Lobby::holds) anything by that name (and
//! [`RouterConfig::linger`] after). A peer's WebSocket lives on its *origin*
//! node. When origin and home differ, the origin forwards the peer's join,
//! signals and leave to the home ([`NodeMessage`]), and the home sends back
//! what its lobby says to that peer. The lobby is untouched: a remote peer is
//! a peer like any other, so group formation stays atomic (one lobby decides
//! it) and signals stay confined to their room (the home's lobby checks).
//!
//! No I/O and no clock: the driver passes time in, carries out the
//! [`Action`]s and answers claims with [`Input::Claimed`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use matchbox_protocol::PeerId;

use super::message::{NodeId, NodeMessage};
use crate::lobby::{
    Command, Event, Lobby, LobbyConfig, PrivateRoomError, RoomRequest, ServerMessage,
};
use crate::refusal::Refusal;

/// How a node takes part.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// This node.
    pub me: NodeId,
    /// Whether there is a cluster: without one every name is this node's
    /// and the router is its lobby, with nothing added.
    pub clustered: bool,
    /// How long an unused name stays claimed: joins on their way from
    /// another node that looked the home up just before still find it.
    pub linger: Duration,
    /// The lobby's limits.
    pub lobby: LobbyConfig,
}

/// An input to the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A WebSocket on this node asks for `room`.
    Joined {
        /// Its id (random, unique across the cluster).
        peer: PeerId,
        /// What it asked for.
        room: RoomRequest,
        /// When.
        at: Instant,
    },
    /// A peer of this node relays signaling data.
    Signal {
        /// The sender.
        from: PeerId,
        /// The receiver it named.
        to: PeerId,
        /// Raw JSON.
        data: String,
    },
    /// A peer of this node said goodbye, or was closed.
    Left {
        /// The peer.
        peer: PeerId,
        /// When.
        at: Instant,
    },
    /// A peer of this node was lost without a goodbye: its seat is held.
    Dropped {
        /// The peer.
        peer: PeerId,
        /// When.
        at: Instant,
    },
    /// Time passes.
    Tick {
        /// Now.
        now: Instant,
    },
    /// `POST /api/rooms`: reserve a private code.
    ReservePrivate {
        /// The caller's id for the answer ([`Action::Reserved`]).
        request: u64,
        /// The code drawn.
        code: String,
        /// Who asks (for the per-address cap).
        owner: Option<IpAddr>,
        /// Now.
        now: Instant,
    },
    /// The directory's answer to [`Action::Claim`]: the name's home, or
    /// `None` when the directory could not be asked.
    Claimed {
        /// The claim's id.
        claim: u64,
        /// The home.
        home: Option<NodeId>,
        /// Now.
        now: Instant,
    },
    /// A message from another node.
    FromNode {
        /// The sender.
        node: NodeId,
        /// What it says.
        message: NodeMessage,
        /// When it arrived.
        at: Instant,
    },
    /// The directory's live nodes other than this one, as a heartbeat read
    /// them. A node missing from it is dead to this node if an earlier list
    /// showed it, or if this node heard of it (a claim naming it, a join it
    /// sent) before the read began: heard of by then, gone by the read.
    Live {
        /// The live nodes.
        nodes: BTreeSet<NodeId>,
        /// When the read began.
        asked: Instant,
        /// Now.
        now: Instant,
    },
    /// The directory became reachable (`true`) or unreachable.
    Directory {
        /// Reachable.
        up: bool,
    },
    /// This node's own directory entry had expired (the directory was out of
    /// reach too long): the other nodes have forgotten its peers and closed
    /// theirs that were homed here.
    Evicted {
        /// Now.
        at: Instant,
    },
}

/// Why `POST /api/rooms` could not reserve a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    /// The lobby refused (taken, or too many).
    #[error(transparent)]
    Lobby(#[from] PrivateRoomError),
    /// The directory is unreachable, so the code's uniqueness cannot be known.
    #[error("the cluster's directory is unreachable")]
    ClusterUnavailable,
}

/// An output of the router, for the driver to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write `message` to these peers of this node.
    Send {
        /// Recipients.
        to: Vec<PeerId>,
        /// The message.
        message: ServerMessage,
    },
    /// Close a peer of this node with a reason.
    Close {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: Refusal,
    },
    /// Send a message to another node.
    Publish {
        /// The receiver.
        node: NodeId,
        /// The message.
        message: NodeMessage,
    },
    /// Ask the directory for `name`'s home, claiming it for this node when
    /// it has none (or a dead one); answer with [`Input::Claimed`].
    Claim {
        /// The claim's id.
        claim: u64,
        /// The room name.
        name: String,
    },
    /// Give up this node's claim on `name` (only if it is still this node's).
    Release {
        /// The room name.
        name: String,
    },
    /// The answer to [`Input::ReservePrivate`].
    Reserved {
        /// The caller's id.
        request: u64,
        /// The outcome.
        result: Result<(), ReserveError>,
    },
    /// A `?next=N` group filled up (for metrics).
    MatchFormed {
        /// Group size.
        size: usize,
        /// Each newcomer's wait.
        waited: Vec<Duration>,
    },
    /// A signal was not relayed.
    SignalDropped {
        /// The sender.
        from: PeerId,
        /// The receiver it named.
        to: PeerId,
    },
}

/// Where a peer of this node stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seat {
    /// Waiting for the directory to name its room's home.
    Claiming,
    /// In this node's lobby, in a room called this.
    Here(String),
    /// In that node's lobby.
    At(NodeId, String),
}

/// A peer in this node's lobby whose socket is on another node.
#[derive(Debug, Clone)]
struct Remote {
    node: NodeId,
    name: String,
}

/// What a claim was made for.
#[derive(Debug, Clone)]
enum Pending {
    /// A peer of this node joining.
    Local {
        peer: PeerId,
        room: RoomRequest,
        at: Instant,
    },
    /// A peer of `node` whose join reached this node without its claim.
    Remote {
        peer: PeerId,
        node: NodeId,
        room: RoomRequest,
        at: Instant,
    },
    /// A private code.
    Code {
        request: u64,
        code: String,
        owner: Option<IpAddr>,
    },
    /// A name this node held while evicted.
    Reclaim { name: String },
}

/// One node's rooms, its peers and where each peer's room lives.
#[derive(Debug)]
pub struct Router {
    config: RouterConfig,
    lobby: Lobby,
    directory_up: bool,
    /// Peers whose socket is on this node.
    local: HashMap<PeerId, Seat>,
    /// Peers in this lobby whose socket is elsewhere.
    remote: HashMap<PeerId, Remote>,
    /// Names this node is the home of, with when they became unused.
    claims: HashMap<String, Option<Instant>>,
    /// Names this node still has rooms of, but whose home is now another
    /// node (found after an eviction): newcomers go to the other home.
    detached: HashSet<String>,
    pending: HashMap<u64, Pending>,
    next_claim: u64,
    lobby_out: Vec<Command>,
    /// The other nodes the last live list showed.
    listed: BTreeSet<NodeId>,
    /// Nodes this node's peers depend on (as their rooms' home, or as
    /// their sockets' origin) that no live list has shown yet, with when
    /// this node first heard of each: one that died before a heartbeat saw
    /// it is still found dead.
    unlisted: HashMap<NodeId, Instant>,
}

impl Router {
    /// A node with an empty lobby (the directory counted as reachable).
    pub fn new(config: RouterConfig) -> Self {
        Router {
            lobby: Lobby::new(config.lobby.clone()),
            config,
            directory_up: true,
            local: HashMap::new(),
            remote: HashMap::new(),
            claims: HashMap::new(),
            detached: HashSet::new(),
            pending: HashMap::new(),
            next_claim: 0,
            lobby_out: Vec::new(),
            listed: BTreeSet::new(),
            unlisted: HashMap::new(),
        }
    }

    /// The lobby of the names this node is the home of.
    pub fn lobby(&self) -> &Lobby {
        &self.lobby
    }

    /// Peers with a socket on this node.
    pub fn local_peers(&self) -> usize {
        self.local.len()
    }

    /// Peers in this node's lobby whose socket is on another node.
    pub fn remote_peers(&self) -> usize {
        self.remote.len()
    }

    /// Feeds one input; appends the resulting actions to `out`.
    pub fn handle(&mut self, input: Input, out: &mut Vec<Action>) {
        match input {
            Input::Joined { peer, room, at } => self.local_join(peer, room, at, out),
            Input::Signal { from, to, data } => match self.local.get(&from) {
                Some(Seat::Here(_)) => self.feed(Event::Signal { from, to, data }, out),
                Some(Seat::At(home, _)) => out.push(Action::Publish {
                    node: home.clone(),
                    message: NodeMessage::Signal { from, to, data },
                }),
                Some(Seat::Claiming) | None => out.push(Action::SignalDropped { from, to }),
            },
            Input::Left { peer, at } => self.local_left(peer, false, at, out),
            Input::Dropped { peer, at } => self.local_left(peer, true, at, out),
            Input::Tick { now } => self.tick(now, out),
            Input::ReservePrivate {
                request,
                code,
                owner,
                now,
            } => {
                if !self.config.clustered || self.is_home(&code) {
                    let result = self.reserve(&code, owner, now);
                    out.push(Action::Reserved { request, result });
                } else if !self.directory_up {
                    out.push(Action::Reserved {
                        request,
                        result: Err(ReserveError::ClusterUnavailable),
                    });
                } else {
                    self.claim(
                        code.clone(),
                        Pending::Code {
                            request,
                            code,
                            owner,
                        },
                        out,
                    );
                }
            }
            Input::Claimed { claim, home, now } => self.claimed(claim, home, now, out),
            Input::FromNode { node, message, at } => self.node_message(node, message, at, out),
            Input::Live { nodes, asked, now } => self.live(nodes, asked, now, out),
            Input::Directory { up } => self.directory_up = up,
            Input::Evicted { at } => self.evicted(at, out),
        }
    }

    /// Whether joins for `name` stay on this node without asking.
    fn is_home(&self, name: &str) -> bool {
        self.claims.contains_key(name) && !self.detached.contains(name)
    }

    fn local_left(&mut self, peer: PeerId, dropped: bool, at: Instant, out: &mut Vec<Action>) {
        match self.local.remove(&peer) {
            Some(Seat::Here(name)) => {
                self.feed(Event::gone(peer, dropped, at), out);
                self.unused_since(&name, at);
            }
            Some(Seat::At(home, _)) => out.push(Action::Publish {
                node: home,
                message: NodeMessage::Left { peer, dropped },
            }),
            // A pending claim finds the peer gone when it is answered.
            Some(Seat::Claiming) | None => {}
        }
    }

    fn local_join(&mut self, peer: PeerId, room: RoomRequest, at: Instant, out: &mut Vec<Action>) {
        let known = self.local.contains_key(&peer) || self.remote.contains_key(&peer);
        if known && room.resume.is_none() {
            out.push(Action::Close {
                peer,
                reason: Refusal::DuplicatePeer,
            });
            return;
        }
        // A returning peer's old connection on another node gives way.
        if let Some(old) = self.remote.remove(&peer) {
            out.push(Action::Publish {
                node: old.node,
                message: NodeMessage::Close {
                    peer,
                    reason: Refusal::Replaced,
                },
            });
        }
        if !self.config.clustered || self.is_home(&room.name) {
            self.admit_local(peer, room, at, out);
        } else if !self.directory_up {
            out.push(Action::Close {
                peer,
                reason: Refusal::ClusterUnavailable,
            });
        } else {
            self.local.insert(peer, Seat::Claiming);
            let name = room.name.clone();
            self.claim(name, Pending::Local { peer, room, at }, out);
        }
    }

    fn admit_local(&mut self, peer: PeerId, room: RoomRequest, at: Instant, out: &mut Vec<Action>) {
        let name = room.name.clone();
        self.local.insert(peer, Seat::Here(name.clone()));
        self.in_use(&name);
        self.feed(Event::Joined { peer, room, at }, out);
        self.unused_since(&name, at);
    }

    fn admit_remote(
        &mut self,
        peer: PeerId,
        node: NodeId,
        room: RoomRequest,
        at: Instant,
        out: &mut Vec<Action>,
    ) {
        let name = room.name.clone();
        self.depend_on(&node, at);
        self.remote.insert(
            peer,
            Remote {
                node,
                name: name.clone(),
            },
        );
        self.in_use(&name);
        self.feed(Event::Joined { peer, room, at }, out);
        self.unused_since(&name, at);
    }

    fn claim(&mut self, name: String, pending: Pending, out: &mut Vec<Action>) {
        let claim = self.next_claim;
        self.next_claim = self.next_claim.wrapping_add(1);
        self.pending.insert(claim, pending);
        out.push(Action::Claim { claim, name });
    }

    fn claimed(&mut self, claim: u64, home: Option<NodeId>, now: Instant, out: &mut Vec<Action>) {
        let Some(pending) = self.pending.remove(&claim) else {
            return;
        };
        let mine = home.as_ref() == Some(&self.config.me);
        match pending {
            Pending::Local { peer, room, at } => {
                if mine {
                    self.take(&room.name, now);
                }
                if self.local.get(&peer) != Some(&Seat::Claiming) {
                    return; // it left while the directory was asked
                }
                match home {
                    None => {
                        self.local.remove(&peer);
                        out.push(Action::Close {
                            peer,
                            reason: Refusal::ClusterUnavailable,
                        });
                    }
                    Some(_) if mine => self.admit_local(peer, room, at, out),
                    Some(home) => {
                        self.depend_on(&home, now);
                        self.local
                            .insert(peer, Seat::At(home.clone(), room.name.clone()));
                        out.push(Action::Publish {
                            node: home,
                            message: NodeMessage::Join { peer, room },
                        });
                    }
                }
            }
            Pending::Remote {
                peer,
                node,
                room,
                at,
            } => {
                if mine {
                    self.take(&room.name, now);
                    self.admit_remote(peer, node, room, at, out);
                } else {
                    // Its origin asked a home that no longer is: it joins again.
                    let reason = match home {
                        None => Refusal::ClusterUnavailable,
                        Some(_) => Refusal::NodeLost,
                    };
                    out.push(Action::Publish {
                        node,
                        message: NodeMessage::Close { peer, reason },
                    });
                }
            }
            Pending::Code {
                request,
                code,
                owner,
            } => {
                let result = match home {
                    None => Err(ReserveError::ClusterUnavailable),
                    Some(_) if mine => {
                        self.take(&code, now);
                        let result = self.reserve(&code, owner, now);
                        if result.is_ok() {
                            self.in_use(&code);
                        }
                        result
                    }
                    Some(_) => Err(PrivateRoomError::CodeTaken.into()),
                };
                out.push(Action::Reserved { request, result });
            }
            Pending::Reclaim { name } => match home {
                Some(_) if mine => {
                    self.detached.remove(&name);
                }
                Some(_) => {
                    self.claims.remove(&name);
                    if self.lobby.holds(&name) {
                        self.detached.insert(name);
                    }
                }
                None => {}
            },
        }
    }

    fn reserve(
        &mut self,
        code: &str,
        owner: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), ReserveError> {
        Ok(self.lobby.reserve_private_for(code, owner, now)?)
    }

    fn node_message(
        &mut self,
        node: NodeId,
        message: NodeMessage,
        at: Instant,
        out: &mut Vec<Action>,
    ) {
        match message {
            NodeMessage::Join { peer, room } => {
                let known = self.local.contains_key(&peer) || self.remote.contains_key(&peer);
                if known && room.resume.is_some() {
                    self.replace_elsewhere(peer, &node, out);
                }
                if known && room.resume.is_none() {
                    out.push(Action::Publish {
                        node,
                        message: NodeMessage::Close {
                            peer,
                            reason: Refusal::DuplicatePeer,
                        },
                    });
                } else if self.is_home(&room.name) {
                    self.admit_remote(peer, node, room, at, out);
                } else if !self.directory_up {
                    out.push(Action::Publish {
                        node,
                        message: NodeMessage::Close {
                            peer,
                            reason: Refusal::ClusterUnavailable,
                        },
                    });
                } else {
                    // Released just as the origin looked it up: claim again.
                    let name = room.name.clone();
                    let pending = Pending::Remote {
                        peer,
                        node,
                        room,
                        at,
                    };
                    self.claim(name, pending, out);
                }
            }
            NodeMessage::Signal { from, to, data } => {
                if self.remote.get(&from).is_some_and(|r| r.node == node) {
                    self.feed(Event::Signal { from, to, data }, out);
                } else {
                    out.push(Action::SignalDropped { from, to });
                }
            }
            NodeMessage::Left { peer, dropped } => {
                if self.remote.get(&peer).is_some_and(|r| r.node == node)
                    && let Some(remote) = self.remote.remove(&peer)
                {
                    self.feed(Event::gone(peer, dropped, at), out);
                    self.unused_since(&remote.name, at);
                }
            }
            NodeMessage::Deliver { to, message } => {
                let to: Vec<PeerId> = to
                    .into_iter()
                    .filter(
                        |p| matches!(self.local.get(p), Some(Seat::At(home, _)) if *home == node),
                    )
                    .collect();
                if !to.is_empty() {
                    out.push(Action::Send { to, message });
                }
            }
            NodeMessage::Close { peer, reason } => {
                if matches!(self.local.get(&peer), Some(Seat::At(home, _)) if *home == node) {
                    self.local.remove(&peer);
                    out.push(Action::Close { peer, reason });
                }
            }
        }
    }

    /// A returning peer (`from` `node`) whose old connection is still
    /// known here: the old one is closed, wherever it is.
    fn replace_elsewhere(&mut self, peer: PeerId, node: &NodeId, out: &mut Vec<Action>) {
        if let Some(old) = self.remote.remove(&peer)
            && old.node != *node
        {
            out.push(Action::Publish {
                node: old.node,
                message: NodeMessage::Close {
                    peer,
                    reason: Refusal::Replaced,
                },
            });
        }
        if self.local.remove(&peer).is_some() {
            out.push(Action::Close {
                peer,
                reason: Refusal::Replaced,
            });
        }
    }

    /// Peers of this node now depend on `node`, heard of at `at`.
    fn depend_on(&mut self, node: &NodeId, at: Instant) {
        if !self.listed.contains(node) {
            self.unlisted.entry(node.clone()).or_insert(at);
        }
    }

    /// A heartbeat's list of live nodes: those it no longer shows, and
    /// those heard of before it was asked for and not in it, are dead.
    fn live(
        &mut self,
        nodes: BTreeSet<NodeId>,
        asked: Instant,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let mut down: BTreeSet<NodeId> = self.listed.difference(&nodes).cloned().collect();
        down.extend(
            self.unlisted
                .iter()
                .filter(|(node, heard)| **heard <= asked && !nodes.contains(*node))
                .map(|(node, _)| node.clone()),
        );
        self.unlisted
            .retain(|node, _| !nodes.contains(node) && !down.contains(node));
        self.listed = nodes;
        for node in down {
            self.node_down(&node, now, out);
        }
    }

    /// A dead node's peers are away from this node's rooms (their seats
    /// held: they come back through another node); this node's peers whose
    /// rooms lived there are told to join again.
    fn node_down(&mut self, node: &NodeId, at: Instant, out: &mut Vec<Action>) {
        let mut gone: Vec<PeerId> = self
            .remote
            .iter()
            .filter(|(_, r)| r.node == *node)
            .map(|(p, _)| *p)
            .collect();
        gone.sort();
        for peer in gone {
            if let Some(remote) = self.remote.remove(&peer) {
                self.feed(Event::Dropped { peer, at }, out);
                self.unused_since(&remote.name, at);
            }
        }
        self.close_homed_elsewhere(|home| home == node, out);
    }

    /// Everyone else forgot this node: it forgets their peers, tells its own
    /// peers homed elsewhere to join again, and asks whether its names are
    /// still its own.
    fn evicted(&mut self, at: Instant, out: &mut Vec<Action>) {
        let mut gone: Vec<(PeerId, Remote)> = self.remote.drain().collect();
        gone.sort_by_key(|(peer, _)| *peer);
        for (peer, remote) in gone {
            self.feed(Event::Dropped { peer, at }, out);
            self.unused_since(&remote.name, at);
        }
        self.close_homed_elsewhere(|_| true, out);
        let mut names: Vec<String> = self.claims.keys().cloned().collect();
        names.sort();
        for name in names {
            self.claim(name.clone(), Pending::Reclaim { name }, out);
        }
    }

    fn close_homed_elsewhere(&mut self, lost: impl Fn(&NodeId) -> bool, out: &mut Vec<Action>) {
        let mut closed: Vec<PeerId> = self
            .local
            .iter()
            .filter(|(_, seat)| matches!(seat, Seat::At(home, _) if lost(home)))
            .map(|(p, _)| *p)
            .collect();
        closed.sort();
        for peer in closed {
            self.local.remove(&peer);
            out.push(Action::Close {
                peer,
                reason: Refusal::NodeLost,
            });
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.feed(Event::Tick { now }, out);
        if !self.config.clustered {
            return;
        }
        let linger = self.config.linger;
        let lobby = &self.lobby;
        let mut released = Vec::new();
        self.claims.retain(|name, unused| {
            if lobby.holds(name) {
                *unused = None;
                return true;
            }
            let since = *unused.get_or_insert(now);
            let keep = now.saturating_duration_since(since) < linger;
            if !keep {
                released.push(name.clone());
            }
            keep
        });
        self.detached.retain(|name| lobby.holds(name));
        released.sort();
        out.extend(released.into_iter().map(|name| Action::Release { name }));
    }

    /// This node is `name`'s home (the directory said so).
    fn take(&mut self, name: &str, now: Instant) {
        self.detached.remove(name);
        self.claims.entry(name.to_owned()).or_insert(Some(now));
    }

    fn in_use(&mut self, name: &str) {
        if let Some(unused) = self.claims.get_mut(name) {
            *unused = None;
        }
    }

    fn unused_since(&mut self, name: &str, at: Instant) {
        if !self.lobby.holds(name)
            && let Some(unused) = self.claims.get_mut(name)
        {
            unused.get_or_insert(at);
        }
    }

    /// Runs a lobby event and routes its commands: to this node's peers
    /// directly, to other nodes' peers through their node.
    fn feed(&mut self, event: Event, out: &mut Vec<Action>) {
        let mut commands = std::mem::take(&mut self.lobby_out);
        self.lobby.handle(event, &mut commands);
        for command in commands.drain(..) {
            match command {
                Command::Send { to, message } => {
                    let mut here = Vec::new();
                    let mut elsewhere: BTreeMap<&NodeId, Vec<PeerId>> = BTreeMap::new();
                    for peer in to {
                        if let Some(remote) = self.remote.get(&peer) {
                            elsewhere.entry(&remote.node).or_default().push(peer);
                        } else if self.local.contains_key(&peer) {
                            here.push(peer);
                        }
                    }
                    for (node, to) in elsewhere {
                        out.push(Action::Publish {
                            node: node.clone(),
                            message: NodeMessage::Deliver {
                                to,
                                message: message.clone(),
                            },
                        });
                    }
                    if !here.is_empty() {
                        out.push(Action::Send { to: here, message });
                    }
                }
                Command::Close { peer, reason } => {
                    if let Some(remote) = self.remote.remove(&peer) {
                        out.push(Action::Publish {
                            node: remote.node,
                            message: NodeMessage::Close { peer, reason },
                        });
                    } else if self.local.remove(&peer).is_some() {
                        out.push(Action::Close { peer, reason });
                    }
                }
                Command::MatchFormed { size, waited } => {
                    out.push(Action::MatchFormed { size, waited })
                }
                Command::SignalDropped { from, to } => out.push(Action::SignalDropped { from, to }),
            }
        }
        self.lobby_out = commands;
    }
}
