//! The routers of several nodes, wired through an in-memory directory and
//! message bus, checked against one plain [`Lobby`] (itself checked against
//! a model in `lobby/tests.rs`): every peer must hear exactly what it would hear
//! from a single server, wherever its socket and its room are.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use matchbox_protocol::PeerId;
use proptest::prelude::*;

use super::message::{NodeId, NodeMessage};
use super::router::{Action, Input, ReserveError, Router, RouterConfig};
use crate::lobby::{
    Command, Event, Lobby, LobbyConfig, PrivateRoomError, RoomRequest, ServerMessage, Watch,
};
use crate::refusal::Refusal;

fn id(n: u128) -> PeerId {
    PeerId(uuid::Uuid::from_u128(n))
}

fn node(i: usize) -> NodeId {
    NodeId::new(format!("n{i}")).unwrap()
}

/// What peers heard: messages in order, and how they were closed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Heard {
    messages: BTreeMap<PeerId, Vec<ServerMessage>>,
    closed: BTreeMap<PeerId, Refusal>,
    matches: usize,
}

impl Heard {
    fn send(&mut self, to: Vec<PeerId>, message: &ServerMessage) {
        for peer in to {
            self.messages.entry(peer).or_default().push(message.clone());
        }
    }
}

/// Nodes, a directory with liveness, and a bus delivering in order.
struct Cluster {
    nodes: Vec<Router>,
    alive: Vec<bool>,
    directory: HashMap<String, usize>,
    bus: VecDeque<(usize, usize, NodeMessage)>,
    claims: VecDeque<(usize, u64, String)>,
    heard: Heard,
    reserved: Vec<(u64, Result<(), ReserveError>)>,
    /// Deliver claims and messages as soon as they are made.
    prompt: bool,
}

impl Cluster {
    fn new(n: usize, lobby: LobbyConfig, linger: Duration) -> Self {
        Cluster {
            nodes: (0..n)
                .map(|i| {
                    Router::new(RouterConfig {
                        me: node(i),
                        clustered: true,
                        linger,
                        lobby: lobby.clone(),
                    })
                })
                .collect(),
            alive: vec![true; n],
            directory: HashMap::new(),
            bus: VecDeque::new(),
            claims: VecDeque::new(),
            heard: Heard::default(),
            reserved: Vec::new(),
            prompt: true,
        }
    }

    fn input(&mut self, at: usize, input: Input, now: Instant) {
        let mut out = Vec::new();
        self.nodes[at].handle(input, &mut out);
        for action in out {
            self.act(at, action);
        }
        if self.prompt {
            self.settle(now);
        }
    }

    fn act(&mut self, at: usize, action: Action) {
        match action {
            Action::Send { to, message } => self.heard.send(to, &message),
            Action::Close { peer, reason } => {
                assert!(
                    self.heard.closed.insert(peer, reason).is_none(),
                    "closed twice"
                );
            }
            Action::Publish { node, message } => {
                let to = node.as_str()[1..].parse().unwrap();
                self.bus.push_back((at, to, message));
            }
            Action::Claim { claim, name } => self.claims.push_back((at, claim, name)),
            Action::Release { name } => {
                if self.directory.get(&name) == Some(&at) {
                    self.directory.remove(&name);
                }
            }
            Action::Reserved { request, result } => self.reserved.push((request, result)),
            Action::MatchFormed { .. } => self.heard.matches += 1,
            Action::SignalDropped { .. } => {}
        }
    }

    /// Answers every claim (atomically, as the Redis script does) and
    /// delivers every message to live nodes.
    fn settle(&mut self, now: Instant) {
        for _ in 0..10_000 {
            if let Some((at, claim, name)) = self.claims.pop_front() {
                let home = match self.directory.get(&name) {
                    Some(&owner) if self.alive[owner] => owner,
                    _ => {
                        self.directory.insert(name, at);
                        at
                    }
                };
                let input = Input::Claimed {
                    claim,
                    home: Some(node(home)),
                    now,
                };
                self.input_quiet(at, input);
            } else if let Some((from, to, message)) = self.bus.pop_front() {
                if self.alive[to] {
                    let input = Input::FromNode {
                        node: node(from),
                        message,
                        at: now,
                    };
                    self.input_quiet(to, input);
                }
            } else {
                return;
            }
        }
        panic!("the cluster did not settle");
    }

    fn input_quiet(&mut self, at: usize, input: Input) {
        let mut out = Vec::new();
        self.nodes[at].handle(input, &mut out);
        for action in out {
            self.act(at, action);
        }
    }

    /// Each live node reads the live nodes from the directory, asked at `asked`.
    fn heartbeat(&mut self, asked: Instant, now: Instant) {
        for i in 0..self.nodes.len() {
            if self.alive[i] {
                let nodes = (0..self.nodes.len())
                    .filter(|&j| j != i && self.alive[j])
                    .map(node)
                    .collect();
                self.input(i, Input::Live { nodes, asked, now }, now);
            }
        }
    }

    /// `dead` dies; the others' next heartbeat finds it gone.
    fn kill(&mut self, dead: usize, now: Instant) {
        self.alive[dead] = false;
        self.heartbeat(now, now);
    }
}

/// One lobby, for reference.
#[derive(Default)]
struct Single {
    heard: Heard,
}

impl Single {
    fn feed(&mut self, lobby: &mut Lobby, event: Event) {
        let mut out = Vec::new();
        lobby.handle(event, &mut out);
        for command in out {
            match command {
                Command::Send { to, message } => self.heard.send(to, &message),
                Command::Close { peer, reason } => {
                    self.heard.closed.insert(peer, reason);
                }
                Command::MatchFormed { .. } => self.heard.matches += 1,
                Command::SignalDropped { .. } => {}
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Join {
        node: usize,
        room: u8,
        next: Option<usize>,
    },
    /// A spectator through `node` of the room the `of`th joiner asked
    /// for (the group it opened, if it opened one).
    Spectate {
        node: usize,
        of: usize,
    },
    Leave(usize),
    Signal(usize, usize),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..3, 0u8..3, prop_oneof![Just(None), (2usize..5).prop_map(Some)])
            .prop_map(|(node, room, next)| Op::Join { node, room, next }),
        2 => (0usize..3, 0usize..64).prop_map(|(node, of)| Op::Spectate { node, of }),
        2 => (0usize..64).prop_map(Op::Leave),
        2 => (0usize..64, 0usize..64).prop_map(|(a, b)| Op::Signal(a, b)),
        1 => (1u64..8).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Three nodes are one lobby: the same peers hear the same messages in
    /// the same order, the same matches form, the same peers are refused;
    /// spectators watch wherever the room lives.
    /// Names are released when unused (a short linger) and claimed again by
    /// whichever node's peer comes next.
    #[test]
    fn cluster_matches_one_lobby(ops in proptest::collection::vec(op(), 1..150)) {
        let lobby_config = LobbyConfig {
            max_room_size: 4,
            match_grace: Duration::from_millis(20),
            ..LobbyConfig::default()
        };
        let mut cluster = Cluster::new(3, lobby_config.clone(), Duration::from_millis(3));
        let mut lobby = Lobby::new(lobby_config);
        let mut single = Single::default();
        let mut joined: Vec<(PeerId, usize)> = Vec::new();
        let mut asked: Vec<RoomRequest> = Vec::new();
        let mut left = vec![false; 0];
        let t0 = Instant::now();
        let mut ms = 0u64;
        for op in ops {
            ms += 1;
            let at = t0 + Duration::from_millis(ms);
            match op {
                Op::Join { node, room, next } => {
                    let peer = id(joined.len() as u128 + 1);
                    joined.push((peer, node));
                    left.push(false);
                    let room = RoomRequest { name: format!("r{room}"), next, resume: None, watch: None };
                    asked.push(room.clone());
                    cluster.input(node, Input::Joined { peer, room: room.clone(), at }, at);
                    single.feed(&mut lobby, Event::Joined { peer, room, at });
                }
                Op::Spectate { node, of } => {
                    let (Some(room), Some(&(opener, _))) = (asked.get(of), joined.get(of)) else { continue };
                    let watch = Watch { group: room.next.map(|_| opener) };
                    let room = RoomRequest { watch: Some(watch), ..room.clone() };
                    let peer = id(joined.len() as u128 + 1);
                    joined.push((peer, node));
                    asked.push(room.clone());
                    left.push(false);
                    cluster.input(node, Input::Joined { peer, room: room.clone(), at }, at);
                    single.feed(&mut lobby, Event::Joined { peer, room, at });
                }
                Op::Leave(i) => {
                    let Some(&(peer, node)) = joined.get(i) else { continue };
                    if std::mem::replace(&mut left[i], true) { continue }
                    cluster.input(node, Input::Left { peer, at }, at);
                    single.feed(&mut lobby, Event::Left { peer, at });
                }
                Op::Signal(a, b) => {
                    let (Some(&(from, node)), Some(&(to, _))) = (joined.get(a), joined.get(b)) else { continue };
                    if left[a] { continue }
                    let data = format!("{{\"n\":{ms}}}");
                    cluster.input(node, Input::Signal { from, to, data: data.clone() }, at);
                    single.feed(&mut lobby, Event::Signal { from, to, data });
                }
                Op::Wait(n) => {
                    ms += n;
                    let now = t0 + Duration::from_millis(ms);
                    for i in 0..3 {
                        cluster.input(i, Input::Tick { now }, now);
                    }
                    single.feed(&mut lobby, Event::Tick { now });
                }
            }
            prop_assert_eq!(&cluster.heard, &single.heard);
            // Each name has one home holding it, and the directory names it.
            for room in 0..3 {
                let name = format!("r{room}");
                let holders: Vec<usize> = (0..3).filter(|&i| cluster.nodes[i].lobby().holds(&name)).collect();
                prop_assert!(holders.len() <= 1, "{name} held by {holders:?}");
                if let Some(&home) = holders.first() {
                    prop_assert_eq!(cluster.directory.get(&name), Some(&home));
                }
            }
        }
    }
}

/// 1,000 players asking for `?next=4` through three nodes form 250 groups
/// of exactly four, nobody in two.
#[test]
fn a_thousand_players_over_three_nodes_make_250_groups_of_four() {
    let mut cluster = Cluster::new(3, LobbyConfig::default(), Duration::from_secs(10));
    let now = Instant::now();
    let room = RoomRequest::parse("arena", Some("4"), 16).unwrap();
    for n in 0..1000u128 {
        let input = Input::Joined {
            peer: id(n + 1),
            room: room.clone(),
            at: now,
        };
        cluster.input((n % 3) as usize, input, now);
    }
    assert_eq!(cluster.heard.matches, 250);
    assert!(cluster.heard.closed.is_empty());
    // Each peer heard its id, then exactly the later members of its group
    // join; group sizes are told by the newcomers each one heard of.
    let mut group_of = HashMap::new();
    let mut groups: Vec<Vec<PeerId>> = Vec::new();
    for n in 0..1000u128 {
        let peer = id(n + 1);
        let heard = &cluster.heard.messages[&peer];
        assert_eq!(heard[0], ServerMessage::IdAssigned(peer));
        if !group_of.contains_key(&peer) {
            let mut group = vec![peer];
            let told = heard[1..]
                .iter()
                .filter(|m| !matches!(m, ServerMessage::Seat(_)));
            for message in told {
                let ServerMessage::NewPeer(other) = message else {
                    panic!("unexpected {message:?}")
                };
                group.push(*other);
            }
            for member in &group {
                assert!(
                    group_of.insert(*member, groups.len()).is_none(),
                    "in two groups"
                );
            }
            groups.push(group);
        }
    }
    assert_eq!(groups.len(), 250);
    assert!(groups.iter().all(|g| g.len() == 4));
    // All of it at one home; the other two nodes only forwarded.
    let homes = cluster
        .nodes
        .iter()
        .filter(|r| r.lobby().peer_count() > 0)
        .count();
    assert_eq!(homes, 1);
    assert_eq!(
        cluster.nodes.iter().map(Router::local_peers).sum::<usize>(),
        1000
    );
}

/// A node that dies leaves its peers' seats held in rooms homed elsewhere
/// (they come back through another node, or leave when the hold ends),
/// and the peers whose rooms it was home to are told to join again.
#[test]
fn a_dead_node_leaves_the_others_working() {
    let mut cluster = Cluster::new(3, LobbyConfig::default(), Duration::from_secs(10));
    let now = Instant::now();
    let join = |cluster: &mut Cluster, n: u128, node: usize, name: &str| {
        let room = RoomRequest::parse(name, None, 16).unwrap();
        let input = Input::Joined {
            peer: id(n),
            room,
            at: now,
        };
        cluster.input(node, input, now);
    };
    join(&mut cluster, 1, 0, "a"); // home of a: n0
    join(&mut cluster, 2, 1, "a");
    join(&mut cluster, 3, 1, "b"); // home of b: n1
    join(&mut cluster, 4, 0, "b");
    join(&mut cluster, 5, 2, "b");
    join(&mut cluster, 6, 2, "c"); // home of c: n2, untouched
    join(&mut cluster, 7, 1, "c");
    let seat_of = |cluster: &Cluster, peer: u128| {
        let heard = &cluster.heard.messages[&id(peer)];
        heard.iter().rev().find_map(|m| match m {
            ServerMessage::Seat(seat) => Some(seat.clone()),
            _ => None,
        })
    };
    let four = seat_of(&cluster, 4).unwrap();
    let before = |cluster: &Cluster, peer: u128| cluster.heard.messages[&id(peer)].len();
    let (heard3, heard5) = (before(&cluster, 3), before(&cluster, 5));
    cluster.kill(0, now);
    // Peer 2 (on n1) was in a room homed on n0: told to join again.
    assert_eq!(cluster.heard.closed.get(&id(2)), Some(&Refusal::NodeLost));
    // Peer 4 (on n0) was in b, homed on n1: its seat is held, its
    // room-mates hear nothing.
    assert_eq!(
        cluster.nodes[1].lobby().room_of(id(3)).unwrap(),
        [id(3), id(4), id(5)]
    );
    assert_eq!((before(&cluster, 3), before(&cluster, 5)), (heard3, heard5));
    // It comes back through n2 with its seat: it learns its room-mates
    // (it offers to those it lost), and they hear nothing.
    cluster.input(
        2,
        Input::Joined {
            peer: id(4),
            room: four.request(),
            at: now,
        },
        now,
    );
    let told: Vec<ServerMessage> = cluster.heard.messages[&id(4)]
        .iter()
        .rev()
        .take(4)
        .rev()
        .cloned()
        .collect();
    assert_eq!(
        told,
        [
            ServerMessage::IdAssigned(id(4)),
            ServerMessage::NewPeer(id(3)),
            ServerMessage::NewPeer(id(5)),
            ServerMessage::Seat(four),
        ]
    );
    assert_eq!((before(&cluster, 3), before(&cluster, 5)), (heard3, heard5));
    assert_eq!(cluster.nodes[1].lobby().away_count(), 0);
    // Gone again for good: its room-mates hear it left once the hold ends.
    cluster.input(
        2,
        Input::Dropped {
            peer: id(4),
            at: now,
        },
        now,
    );
    let hold = LobbyConfig::default().seat_hold;
    cluster.input(1, Input::Tick { now: now + hold }, now + hold);
    for peer in [3, 5] {
        let last = cluster.heard.messages[&id(peer)].last().cloned();
        assert_eq!(last, Some(ServerMessage::PeerLeft(id(4))), "peer {peer}");
    }
    assert_eq!(
        cluster.nodes[1].lobby().room_of(id(3)).unwrap(),
        [id(3), id(5)]
    );
    assert_eq!(
        cluster.nodes[2].lobby().room_of(id(6)).unwrap(),
        [id(6), id(7)]
    );
    assert_eq!(cluster.heard.closed.len(), 1);
    // Peer 2 joins "a" again: its node claims the dead node's name.
    join(&mut cluster, 8, 1, "a");
    assert_eq!(cluster.directory.get("a"), Some(&1));
    assert_eq!(cluster.nodes[1].lobby().room_of(id(8)).unwrap(), [id(8)]);
}

/// A node is found dead by the first live list that misses it and was read
/// after this node heard of it, or after a list showed it: one that dies
/// before any heartbeat of this node saw it is not missed (CI once waited 60 s
/// for such a node's players to be told).
#[test]
fn a_node_is_dead_once_a_list_read_after_it_was_heard_of_misses_it() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let join = |cluster: &mut Cluster, peer: u128, node: usize, at: Instant| {
        let room = RoomRequest::parse("a", None, 16).unwrap();
        let input = Input::Joined {
            peer: id(peer),
            room,
            at,
        };
        cluster.input(node, input, at);
    };
    // Never listed: n1 hears of n0 (its room's home) at 1 ms.
    let mut cluster = Cluster::new(2, LobbyConfig::default(), Duration::from_secs(10));
    join(&mut cluster, 1, 0, ms(1));
    join(&mut cluster, 2, 1, ms(1));
    cluster.alive[0] = false;
    // A read begun before that proves nothing...
    cluster.heartbeat(t0, ms(2));
    assert!(cluster.heard.closed.is_empty());
    // ...the next one does.
    cluster.heartbeat(ms(3), ms(3));
    assert_eq!(cluster.heard.closed.get(&id(2)), Some(&Refusal::NodeLost));
    assert_eq!(cluster.heard.closed.len(), 1);
    // Listed, then missing: dead, whenever the read began.
    let mut cluster = Cluster::new(2, LobbyConfig::default(), Duration::from_secs(10));
    cluster.heartbeat(t0, t0);
    join(&mut cluster, 1, 0, ms(5));
    join(&mut cluster, 2, 1, ms(5));
    cluster.alive[0] = false;
    cluster.heartbeat(ms(4), ms(6));
    assert_eq!(cluster.heard.closed.get(&id(2)), Some(&Refusal::NodeLost));
    // And the home drops a dead origin's peer the same way (its seat held).
    let mut cluster = Cluster::new(2, LobbyConfig::default(), Duration::from_secs(10));
    join(&mut cluster, 1, 0, ms(1));
    join(&mut cluster, 2, 1, ms(1));
    cluster.alive[1] = false;
    cluster.heartbeat(ms(2), ms(2));
    assert_eq!(cluster.nodes[0].lobby().away_count(), 1);
    assert!(cluster.heard.closed.is_empty());
}

/// Without the directory a node keeps serving the names it is home to and
/// refuses the others with a reason; private codes too.
#[test]
fn directory_lost_keeps_local_rooms_and_refuses_the_rest() {
    let mut cluster = Cluster::new(2, LobbyConfig::default(), Duration::from_secs(10));
    let now = Instant::now();
    let room = |name: &str| RoomRequest::parse(name, Some("2"), 16).unwrap();
    cluster.input(
        0,
        Input::Joined {
            peer: id(1),
            room: room("mine"),
            at: now,
        },
        now,
    );
    cluster.input(0, Input::Directory { up: false }, now);
    cluster.input(
        0,
        Input::Joined {
            peer: id(2),
            room: room("mine"),
            at: now,
        },
        now,
    );
    cluster.input(
        0,
        Input::Joined {
            peer: id(3),
            room: room("other"),
            at: now,
        },
        now,
    );
    assert_eq!(cluster.heard.matches, 1);
    assert_eq!(
        cluster.heard.closed.get(&id(3)),
        Some(&Refusal::ClusterUnavailable)
    );
    let reserve = Input::ReservePrivate {
        request: 7,
        code: "abc".into(),
        owner: None,
        now,
    };
    cluster.input(0, reserve, now);
    assert_eq!(
        cluster.reserved,
        vec![(7, Err(ReserveError::ClusterUnavailable))]
    );
    cluster.input(0, Input::Directory { up: true }, now);
    cluster.input(
        0,
        Input::Joined {
            peer: id(4),
            room: room("other"),
            at: now,
        },
        now,
    );
    assert_eq!(cluster.nodes[0].lobby().room_of(id(4)).unwrap(), [id(4)]);
}

/// A code is unique across the cluster; the node that drew it is its home.
#[test]
fn private_codes_are_unique_across_nodes() {
    let mut cluster = Cluster::new(2, LobbyConfig::default(), Duration::from_secs(10));
    let now = Instant::now();
    let reserve = |request| Input::ReservePrivate {
        request,
        code: "k3y".into(),
        owner: None,
        now,
    };
    cluster.input(0, reserve(1), now);
    cluster.input(1, reserve(2), now);
    assert_eq!(
        cluster.reserved,
        vec![
            (1, Ok(())),
            (2, Err(ReserveError::Lobby(PrivateRoomError::CodeTaken)))
        ]
    );
    // A player on the other node joins the code's room at its home.
    let room = RoomRequest::parse("k3y", None, 16).unwrap();
    cluster.input(
        1,
        Input::Joined {
            peer: id(1),
            room,
            at: now,
        },
        now,
    );
    assert_eq!(cluster.nodes[0].lobby().room_of(id(1)).unwrap(), [id(1)]);
    assert!(cluster.nodes[0].lobby().public_rooms(now).is_empty());
}

/// A join that reaches a home which released the name meanwhile is claimed
/// again there; if another node took the name, the peer is told to retry.
#[test]
fn joins_racing_a_release_are_reclaimed_or_retried() {
    let mut cluster = Cluster::new(3, LobbyConfig::default(), Duration::from_millis(5));
    let t0 = Instant::now();
    let room = RoomRequest::parse("r", None, 16).unwrap();
    let joined = |peer, at| Input::Joined {
        peer: id(peer),
        room: room.clone(),
        at,
    };
    cluster.input(0, joined(1, t0), t0);
    cluster.input(
        0,
        Input::Left {
            peer: id(1),
            at: t0,
        },
        t0,
    );
    // Node 1 looks the name up (home: n0) and sends its join...
    cluster.prompt = false;
    cluster.input(1, joined(2, t0), t0);
    let (at, claim, name) = cluster.claims.pop_front().unwrap();
    cluster.input_quiet(
        at,
        Input::Claimed {
            claim,
            home: Some(node(0)),
            now: t0,
        },
    );
    assert_eq!(name, "r");
    // ...while n0 lets the name go and n2 claims it for its own peer.
    let later = t0 + Duration::from_millis(10);
    cluster.input_quiet(0, Input::Tick { now: later });
    assert!(!cluster.directory.contains_key("r"));
    cluster.input_quiet(2, joined(3, later));
    let (at, claim, _) = cluster.claims.pop_front().unwrap();
    cluster.directory.insert("r".into(), 2);
    cluster.input_quiet(
        at,
        Input::Claimed {
            claim,
            home: Some(node(2)),
            now: later,
        },
    );
    // The late join reaches n0, which asks again, learns n2 has the name,
    // and sends the peer back to join again.
    cluster.prompt = true;
    cluster.settle(later);
    assert_eq!(cluster.heard.closed.get(&id(2)), Some(&Refusal::NodeLost));
    assert!(!cluster.nodes[0].lobby().holds("r"));
    assert_eq!(cluster.nodes[2].lobby().room_of(id(3)).unwrap(), [id(3)]);
}

/// Messages from a node about peers that are not its own change nothing.
#[test]
fn nodes_cannot_speak_for_other_nodes_peers() {
    let mut cluster = Cluster::new(3, LobbyConfig::default(), Duration::from_secs(10));
    let now = Instant::now();
    let room = RoomRequest::parse("r", None, 16).unwrap();
    cluster.input(
        0,
        Input::Joined {
            peer: id(1),
            room: room.clone(),
            at: now,
        },
        now,
    );
    cluster.input(
        1,
        Input::Joined {
            peer: id(2),
            room,
            at: now,
        },
        now,
    );
    let before = cluster.heard.messages.clone();
    let forged = [
        NodeMessage::Left {
            peer: id(2),
            dropped: false,
        },
        NodeMessage::Signal {
            from: id(2),
            to: id(1),
            data: "1".into(),
        },
        NodeMessage::Deliver {
            to: vec![id(1)],
            message: ServerMessage::PeerLeft(id(2)),
        },
        NodeMessage::Close {
            peer: id(1),
            reason: Refusal::NodeLost,
        },
    ];
    for message in forged {
        let input = Input::FromNode {
            node: node(2),
            message,
            at: now,
        };
        cluster.input(0, input, now);
    }
    assert_eq!(cluster.heard.messages, before);
    assert!(cluster.heard.closed.is_empty());
    assert_eq!(
        cluster.nodes[0].lobby().room_of(id(1)).unwrap(),
        [id(1), id(2)]
    );
}
