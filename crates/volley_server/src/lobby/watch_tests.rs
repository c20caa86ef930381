//! Spectators (`watch.rs`): the feeding tree's invariants after every step
//! of random joins, spectators, leaves, drops, comebacks, signals and time,
//! with the players told exactly what the same lobby without spectators
//! tells them; and the cases one by one.

use super::*;
use crate::query;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::{BTreeMap, BTreeSet};

fn id(n: u128) -> PeerId {
    PeerId(uuid::Uuid::from_u128(n))
}

fn named(name: &str) -> RoomRequest {
    RoomRequest::parse(name, None, 16).unwrap()
}

fn group(name: &str, n: usize) -> RoomRequest {
    RoomRequest::parse(name, Some(&n.to_string()), 16).unwrap()
}

fn watching(request: RoomRequest, group: Option<PeerId>) -> RoomRequest {
    RoomRequest {
        watch: Some(Watch { group }),
        ..request
    }
}

/// A lobby driven one event at a time, its commands kept for checking.
struct Script {
    lobby: Lobby,
    at: Instant,
    out: Vec<Command>,
}

impl Script {
    fn new(config: LobbyConfig) -> Self {
        Script {
            lobby: Lobby::new(config),
            at: Instant::now(),
            out: Vec::new(),
        }
    }

    fn handle(&mut self, event: Event) -> &[Command] {
        self.out.clear();
        self.lobby.handle(event, &mut self.out);
        &self.out
    }

    fn join(&mut self, peer: PeerId, room: RoomRequest) -> &[Command] {
        let at = self.at;
        self.handle(Event::Joined { peer, room, at })
    }

    fn leave(&mut self, peer: PeerId) -> &[Command] {
        let at = self.at;
        self.handle(Event::Left { peer, at })
    }

    fn lost(&mut self, peer: PeerId) -> &[Command] {
        let at = self.at;
        self.handle(Event::Dropped { peer, at })
    }

    fn signal(&mut self, from: PeerId, to: PeerId) -> bool {
        let data = "1".to_owned();
        match self.handle(Event::Signal { from, to, data }) {
            [Command::Send { .. }] => true,
            [Command::SignalDropped { .. }] => false,
            other => panic!("a signal said {other:?}"),
        }
    }

    /// The feeder of every spectator, `None` while it waits.
    fn feeders(&self) -> BTreeMap<PeerId, Option<PeerId>> {
        self.lobby
            .rooms
            .values()
            .flat_map(|r| r.audience.fed.iter().copied())
            .collect()
    }

    fn feeder(&self, spectator: PeerId) -> Option<PeerId> {
        self.feeders()[&spectator]
    }
}

fn send(to: PeerId, message: ServerMessage) -> Command {
    Command::Send {
        to: vec![to],
        message,
    }
}

fn close(peer: PeerId, reason: Refusal) -> Command {
    Command::Close { peer, reason }
}

#[test]
fn spectators_fill_a_tree_breadth_first_within_the_fanout() {
    let mut s = Script::new(LobbyConfig {
        max_room_size: 2,
        ..LobbyConfig::default()
    });
    let (m1, m2) = (id(1), id(2));
    s.join(m1, named("arena"));
    s.join(m2, named("arena"));
    // Each spectator learns its id and nothing else; its feeder hears of it.
    let joined = s.join(id(11), watching(named("arena"), None)).to_vec();
    assert_eq!(
        joined,
        vec![
            send(id(11), ServerMessage::IdAssigned(id(11))),
            send(m1, ServerMessage::NewPeer(id(11))),
        ]
    );
    for n in 12..=17 {
        s.join(id(n), watching(named("arena"), None));
    }
    // Members feeding fewest first (ties in join order), then spectators
    // in join order: level by level.
    let expected = [
        (11, m1),
        (12, m2),
        (13, m1),
        (14, m2),
        (15, id(11)),
        (16, id(11)),
        (17, id(12)),
    ];
    for (spectator, feeder) in expected {
        assert_eq!(s.feeder(id(spectator)), Some(feeder), "{spectator}");
    }
    // Spectators take no seat: the room of two is still full, lists them
    // apart, and nobody counts them as members.
    assert_eq!(s.lobby.room_of(m1), Some(&[m1, m2][..]));
    assert_eq!(s.lobby.room_of(id(11)), None);
    assert_eq!((s.lobby.peer_count(), s.lobby.spectator_count()), (2, 7));
    assert_eq!(
        s.join(id(3), named("arena")),
        [close(id(3), Refusal::RoomFull { capacity: 2 })]
    );
    let listed = &s.lobby.public_rooms(s.at)[0];
    assert_eq!((listed.players, listed.spectators), (2, 7));
    assert_eq!(listed.watch.as_deref(), Some("arena?spectate"));
}

#[test]
fn spectators_never_seal_nor_join_a_group() {
    let mut s = Script::new(LobbyConfig::default());
    s.join(id(1), group("duel", 2));
    // A group still filling has no match to watch.
    let filling = watching(group("duel", 2), Some(id(1)));
    assert_eq!(
        s.join(id(10), filling.clone()),
        [close(id(10), Refusal::NothingToWatch)]
    );
    s.join(id(2), group("duel", 2));
    let watched = s.join(id(11), filling).to_vec();
    // No seat and no Seat message: a spectator has nothing to come back to.
    assert_eq!(
        watched,
        vec![
            send(id(11), ServerMessage::IdAssigned(id(11))),
            send(id(1), ServerMessage::NewPeer(id(11))),
        ]
    );
    // A newcomer opens the next group rather than joining the watched one.
    s.join(id(3), group("duel", 2));
    assert_eq!(s.lobby.room_of(id(3)), Some(&[id(3)][..]));
    assert_eq!(s.lobby.room_of(id(1)), Some(&[id(1), id(2)][..]));
}

#[test]
fn a_feeders_spectators_are_fed_again_when_it_goes() {
    let mut s = Script::new(LobbyConfig {
        watch_fanout: 1,
        seat_hold: Duration::from_secs(10),
        match_grace: Duration::ZERO,
        ..LobbyConfig::default()
    });
    let (m1, m2) = (id(1), id(2));
    s.join(m1, group("duel", 2));
    s.join(m2, group("duel", 2));
    let duel = || watching(group("duel", 2), Some(id(1)));
    for n in 11..=14 {
        s.join(id(n), duel());
    }
    // Fan-out 1: m1 → 11 → 13, m2 → 12 → 14.
    assert_eq!(s.feeder(id(13)), Some(id(11)));
    assert_eq!(s.feeder(id(14)), Some(id(12)));
    // A relaying spectator leaves: its feeder and its spectator hear it,
    // and its spectator takes the free slot (m1's).
    let out = s.leave(id(11)).to_vec();
    assert_eq!(
        out,
        vec![
            send(m1, ServerMessage::PeerLeft(id(11))),
            send(id(13), ServerMessage::PeerLeft(id(11))),
            send(m1, ServerMessage::NewPeer(id(13))),
        ]
    );
    // A member's connection drops (seat held): its spectator is fed anew,
    // by the only peer the match still reaches with a slot free (13),
    // never by its own spectator (14).
    let out = s.lost(m2).to_vec();
    assert_eq!(
        out,
        vec![
            send(id(12), ServerMessage::PeerLeft(m2)),
            send(id(13), ServerMessage::NewPeer(id(12))),
        ]
    );
    assert_eq!(s.feeder(id(14)), Some(id(12)));
    // m1 leaves for good: 13 has no feeder left but away m2 and its own
    // descendants, so the whole tree waits, intact and unfed.
    let out = s.leave(m1).to_vec();
    assert_eq!(out, vec![send(id(13), ServerMessage::PeerLeft(m1)),]);
    let feeders = s.feeders();
    assert_eq!(feeders[&id(13)], None);
    assert_eq!(
        (feeders[&id(12)], feeders[&id(14)]),
        (Some(id(13)), Some(id(12)))
    );
    // m2 comes back to its held seat: the tree hangs from it again.
    let back = Seat {
        name: "duel".into(),
        next: Some(2),
        claim: SeatClaim {
            group: Some(id(1)),
            sealed: true,
        },
    };
    let out = s.join(m2, back.request()).to_vec();
    assert_eq!(out.last(), Some(&send(m2, ServerMessage::NewPeer(id(13)))));
    assert_eq!(s.feeder(id(13)), Some(m2));
}

#[test]
fn spectators_are_closed_when_the_match_ends() {
    let mut s = Script::new(LobbyConfig {
        seat_hold: Duration::from_secs(10),
        ..LobbyConfig::default()
    });
    s.join(id(1), named("arena"));
    s.join(id(11), watching(named("arena"), None));
    s.join(id(12), watching(named("arena"), None));
    // The last member away: the room lives on (its seat is held), and its
    // spectators wait; a newcomer can no longer start watching.
    s.lost(id(1));
    assert_eq!(s.feeders().values().flatten().count(), 0);
    assert_eq!(
        s.join(id(13), watching(named("arena"), None)),
        [close(id(13), Refusal::NothingToWatch)]
    );
    // The hold ends: the room is gone, and so is the match.
    let now = s.at + Duration::from_secs(10);
    let out = s.handle(Event::Tick { now }).to_vec();
    assert_eq!(
        out,
        vec![
            close(id(11), Refusal::MatchOver),
            close(id(12), Refusal::MatchOver),
        ]
    );
    assert_eq!(s.lobby.spectator_count(), 0);
    // Closed peers are forgotten: their leave says nothing.
    assert!(s.leave(id(11)).is_empty());
}

#[test]
fn only_a_match_in_play_is_watched_and_only_so_many_times() {
    let mut s = Script::new(LobbyConfig {
        max_spectators: 2,
        ..LobbyConfig::default()
    });
    s.join(id(1), group("duel", 2));
    s.join(id(2), group("duel", 2));
    s.join(id(3), named("arena"));
    let nothing = [
        watching(named("nowhere"), None),
        // A group by an id that is not a group's, or under another name or size.
        watching(group("duel", 2), Some(id(2))),
        watching(group("arena", 2), Some(id(1))),
        watching(group("duel", 3), Some(id(1))),
        // Inconsistent requests (the URL parser never makes them).
        watching(named("duel"), Some(id(1))),
        watching(group("arena", 2), None),
        RoomRequest {
            resume: Some(SeatClaim {
                group: None,
                sealed: false,
            }),
            ..watching(named("arena"), None)
        },
    ];
    for (n, request) in nothing.into_iter().enumerate() {
        let peer = id(100 + n as u128);
        assert_eq!(
            s.join(peer, request.clone()),
            [close(peer, Refusal::NothingToWatch)],
            "{request:?}"
        );
    }
    for n in 11..=12 {
        s.join(id(n), watching(group("duel", 2), Some(id(1))));
    }
    assert_eq!(
        s.join(id(13), watching(group("duel", 2), Some(id(1)))),
        [close(id(13), Refusal::TooManySpectators { max: 2 })]
    );
    // The limit is per room.
    assert_eq!(s.join(id(14), watching(named("arena"), None)).len(), 2);
    // Ids already in use, whichever way round.
    assert_eq!(
        s.join(id(11), watching(named("arena"), None)),
        [close(id(11), Refusal::DuplicatePeer)]
    );
    assert_eq!(
        s.join(id(1), watching(named("arena"), None)),
        [close(id(1), Refusal::DuplicatePeer)]
    );
    assert_eq!(
        s.join(id(11), named("arena")),
        [close(id(11), Refusal::DuplicatePeer)]
    );
    let mut off = Script::new(LobbyConfig {
        max_spectators: 0,
        ..LobbyConfig::default()
    });
    off.join(id(1), named("arena"));
    assert_eq!(
        off.join(id(2), watching(named("arena"), None)),
        [close(id(2), Refusal::TooManySpectators { max: 0 })]
    );
}

#[test]
fn signals_follow_the_tree_only() {
    let mut s = Script::new(LobbyConfig {
        watch_fanout: 1,
        ..LobbyConfig::default()
    });
    let (m1, m2) = (id(1), id(2));
    s.join(m1, group("duel", 2));
    s.join(m2, group("duel", 2));
    for n in 11..=13 {
        s.join(id(n), watching(group("duel", 2), Some(id(1))));
    }
    // m1 → 11 → 13, m2 → 12.
    assert_eq!(s.feeder(id(13)), Some(id(11)));
    for (from, to, relayed) in [
        (m1, id(11), true),
        (id(11), m1, true),
        (id(11), id(13), true),
        (id(13), id(11), true),
        (m2, id(12), true),
        (m1, m2, true),
        (m2, id(11), false),
        (id(11), m2, false),
        (id(13), m1, false),
        (m1, id(13), false),
        (id(12), id(11), false),
        (id(11), id(11), false),
        (id(99), id(11), false),
    ] {
        assert_eq!(s.signal(from, to), relayed, "{from} → {to}");
    }
    // A feeder away relays nothing (its spectator is fed anew meanwhile).
    let mut held = Script::new(LobbyConfig::default());
    held.join(m1, named("arena"));
    held.join(id(11), watching(named("arena"), None));
    held.lost(m1);
    assert!(!held.signal(id(11), m1));
}

#[test]
fn the_room_list_says_what_to_watch() {
    let mut s = Script::new(LobbyConfig {
        seat_hold: Duration::from_secs(10),
        ..LobbyConfig::default()
    });
    s.lobby.reserve_private("secret", s.at).unwrap();
    s.join(id(1), named("secret"));
    s.join(id(2), named("arena"));
    s.join(id(3), named("empty"));
    s.lost(id(3));
    s.join(id(4), group("duel", 2));
    s.join(id(5), group("duel", 2));
    s.join(id(6), group("duel", 2));
    s.join(id(11), watching(group("duel", 2), Some(id(4))));
    let listed: Vec<(String, Option<String>, usize)> = s
        .lobby
        .public_rooms(s.at)
        .into_iter()
        .map(|r| (r.id, r.watch, r.spectators))
        .collect();
    let in_play = format!("duel?next=2&spectate={}", id(4));
    assert_eq!(
        listed,
        vec![
            ("arena".into(), Some("arena?spectate".into()), 0),
            ("duel?next=2".into(), None, 0),
            ("duel?next=2".into(), Some(in_play.clone()), 1),
            ("empty".into(), None, 0),
        ]
    );
    // The link is a URL the server reads back to the same group.
    let (path, query) = in_play.split_once('?').unwrap();
    let request = query::join(&format!("/{path}"), Some(query))
        .unwrap()
        .room_request(16)
        .unwrap();
    assert_eq!(request, watching(group("duel", 2), Some(id(4))));
    assert_eq!(s.join(id(12), request).len(), 2);
}

#[test]
fn a_spectator_lost_just_leaves() {
    let mut s = Script::new(LobbyConfig::default());
    s.join(id(1), named("arena"));
    s.join(id(11), watching(named("arena"), None));
    assert_eq!(
        s.lost(id(11)),
        [send(id(1), ServerMessage::PeerLeft(id(11)))]
    );
    assert_eq!((s.lobby.spectator_count(), s.lobby.away_count()), (0, 0));
}

// --- Random sequences. ---

#[derive(Debug, Clone)]
enum Op {
    Join {
        room: u8,
        next: Option<usize>,
    },
    /// Watch the `pick`th room the list offers to watch, or, when `listed`
    /// is false or none is offered, whatever `pick` and `next` name (most
    /// often nothing in play).
    Spectate {
        pick: usize,
        listed: bool,
        next: Option<usize>,
    },
    Leave(usize),
    Drop(usize),
    Resume(usize),
    Tick,
    Signal(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let next = || prop_oneof![Just(None), (2usize..4).prop_map(Some)];
    prop_oneof![
        4 => (0u8..3, next()).prop_map(|(room, next)| Op::Join { room, next }),
        4 => (0usize..64, proptest::bool::weighted(0.8), next())
            .prop_map(|(pick, listed, next)| Op::Spectate { pick, listed, next }),
        2 => (0usize..64).prop_map(Op::Leave),
        2 => (0usize..64).prop_map(Op::Drop),
        1 => (0usize..64).prop_map(Op::Resume),
        1 => Just(Op::Tick),
        2 => (0usize..64, 0usize..64).prop_map(|(a, b)| Op::Signal(a, b)),
    ]
}

/// The commands of `out` that players would see from a lobby without
/// spectators: nothing to, about or from a spectator.
fn players_part(out: &[Command], spectators: &BTreeSet<PeerId>) -> Vec<Command> {
    let spectator = |p: &PeerId| spectators.contains(p);
    out.iter()
        .filter_map(|command| match command {
            Command::Send { to, message } => {
                let about = match message {
                    ServerMessage::IdAssigned(p)
                    | ServerMessage::NewPeer(p)
                    | ServerMessage::PeerLeft(p) => Some(p),
                    ServerMessage::Signal { sender, .. } => Some(sender),
                    ServerMessage::Seat(_) => None,
                };
                let to: Vec<PeerId> = to.iter().filter(|p| !spectator(p)).copied().collect();
                (!about.is_some_and(spectator) && !to.is_empty()).then(|| Command::Send {
                    to,
                    message: message.clone(),
                })
            }
            Command::Close { peer, .. } if spectator(peer) => None,
            Command::SignalDropped { from, to } if spectator(from) || spectator(to) => None,
            other => Some(other.clone()),
        })
        .collect()
}

/// The room `request` watches, if the lobby's state (not its code) says
/// it is in play: a named room with a member present, a sealed group.
fn target(lobby: &Lobby, request: &RoomRequest) -> Option<RoomKey> {
    let watch = request.watch?;
    let fits = |key: &RoomKey| {
        let r = &lobby.rooms[key];
        let present = r.members.iter().any(|m| !lobby.away.contains_key(m));
        let in_play = if r.next.is_some() { r.sealed } else { present };
        r.name == request.name && r.next == request.next && in_play
    };
    match (watch.group, request.next) {
        (None, None) => lobby.named.get(&request.name).copied().filter(fits),
        (Some(g), Some(_)) => lobby.groups.get(&g).copied().filter(fits),
        // No group named: the oldest in play.
        (None, Some(_)) => lobby.groups.values().copied().filter(fits).min(),
        _ => None,
    }
}

/// The tree holds together: one feeder each, present or a spectator of the
/// same room, within the fan-out, no cycles, and nobody waiting while a
/// peer the match reaches has a free slot.
fn check_tree(lobby: &Lobby, fanout: usize, max: usize) -> Result<(), TestCaseError> {
    let mut total = 0;
    for (&key, room) in &lobby.rooms {
        let fed: BTreeMap<PeerId, Option<PeerId>> = room.audience.fed.iter().copied().collect();
        prop_assert_eq!(fed.len(), room.audience.len(), "a spectator listed twice");
        prop_assert!(fed.len() <= max, "over max_spectators");
        total += fed.len();
        let present: Vec<PeerId> = present(&room.members, &lobby.away);
        let load = |p: PeerId| fed.values().filter(|f| **f == Some(p)).count();
        for (&s, &feeder) in &fed {
            prop_assert_eq!(lobby.spectators.get(&s), Some(&key));
            prop_assert!(!lobby.peers.contains_key(&s) && lobby.room_of(s).is_none());
            if let Some(f) = feeder {
                prop_assert!(
                    present.contains(&f) || fed.contains_key(&f),
                    "{f} feeds {s}"
                );
            }
            prop_assert!(load(s) <= fanout);
        }
        for &m in &room.members {
            prop_assert!(load(m) <= fanout);
        }
        // Reached: the chain of feeders ends at a present member within as
        // many steps as there are spectators (so no cycle).
        let reached = |s: PeerId| -> Result<bool, TestCaseError> {
            let mut at = s;
            for _ in 0..=fed.len() {
                match fed.get(&at).copied().flatten() {
                    Some(f) if present.contains(&f) => return Ok(true),
                    Some(f) => at = f,
                    None => return Ok(false),
                }
            }
            Err(TestCaseError::fail(format!("a cycle through {s}")))
        };
        let mut free = present.iter().any(|&m| load(m) < fanout);
        for &s in fed.keys() {
            free |= reached(s)? && load(s) < fanout;
        }
        for (&s, feeder) in &fed {
            prop_assert!(feeder.is_some() || !free, "{s} waits beside a free slot");
        }
    }
    prop_assert_eq!(lobby.spectators.len(), total);
    prop_assert_eq!(lobby.spectator_count(), total);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Random players and spectators through one lobby, and the same
    /// players through another that never sees a spectator: the players
    /// hear the same from both; spectators hang in a tree within its limits
    /// (see `check_tree`); what the peers were told of the tree (`NewPeer`
    /// to a feeder, `PeerLeft` either way) is the tree; signals follow its
    /// edges; spectators go when they leave or their room ends.
    #[test]
    fn spectators_keep_a_tree_and_leave_players_alone(
        fanout in 1usize..4,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let max_spectators = 5;
        let config = LobbyConfig {
            max_room_size: 4,
            match_grace: Duration::from_millis(20),
            seat_hold: Duration::from_millis(10),
            max_spectators,
            watch_fanout: fanout,
            ..LobbyConfig::default()
        };
        let mut lobby = Lobby::new(config.clone());
        let mut players_only = Lobby::new(config);
        let mut joined: Vec<PeerId> = Vec::new();
        // Every id that asked to watch, admitted or not.
        let mut spectators: BTreeSet<PeerId> = BTreeSet::new();
        // Spectators admitted and not gone, and their room.
        let mut watching: BTreeMap<PeerId, RoomKey> = BTreeMap::new();
        // (feeder, spectator) as the peers were told.
        let mut told: BTreeSet<(PeerId, PeerId)> = BTreeSet::new();
        let mut seats: HashMap<PeerId, Seat> = HashMap::new();
        let t0 = Instant::now();
        let (mut out, mut expected) = (Vec::new(), Vec::new());
        for (step, op) in ops.into_iter().enumerate() {
            out.clear();
            expected.clear();
            let at = t0 + Duration::from_millis(step as u64);
            // Whether players_only sees this event too (and must agree).
            let mut shared = true;
            match op {
                Op::Join { room, next } => {
                    let p = id(joined.len() as u128 + 1);
                    joined.push(p);
                    let room = RoomRequest { name: format!("r{room}"), next, resume: None, watch: None };
                    lobby.handle(Event::Joined { peer: p, room: room.clone(), at }, &mut out);
                    players_only.handle(Event::Joined { peer: p, room, at }, &mut expected);
                }
                Op::Spectate { pick, listed, next } => {
                    shared = false;
                    let s = id(joined.len() as u128 + 1);
                    joined.push(s);
                    spectators.insert(s);
                    let links: Vec<String> = lobby.public_rooms(at).into_iter().filter_map(|r| r.watch).collect();
                    let request = match links.get(pick % links.len().max(1)) {
                        Some(link) if listed => {
                            let (path, query) = link.split_once('?').unwrap_or((link, ""));
                            let path = format!("/{path}");
                            let url = query::join(&path, Some(query))
                                .map_err(|e| TestCaseError::fail(e.to_string()))?;
                            let request = url.room_request(4).map_err(|e| TestCaseError::fail(e.to_string()))?;
                            prop_assert!(target(&lobby, &request).is_some(), "{link} listed, not in play");
                            request
                        }
                        _ => RoomRequest {
                            name: format!("r{}", pick % 3),
                            next,
                            resume: None,
                            watch: Some(Watch { group: next.and_then(|_| joined.get(pick).copied()) }),
                        },
                    };
                    let refusal = match target(&lobby, &request) {
                        None => Some(Refusal::NothingToWatch),
                        Some(key) if lobby.rooms[&key].audience.len() >= max_spectators => {
                            Some(Refusal::TooManySpectators { max: max_spectators })
                        }
                        Some(_) => None,
                    };
                    lobby.handle(Event::Joined { peer: s, room: request, at }, &mut out);
                    if let Some(reason) = refusal {
                        prop_assert_eq!(&out, &vec![Command::Close { peer: s, reason }]);
                    } else {
                        prop_assert_eq!(out.first(), Some(&Command::Send { to: vec![s], message: ServerMessage::IdAssigned(s) }));
                        // Nobody else hears of it, but (maybe) its feeder.
                        prop_assert!(out.len() <= 2);
                        watching.insert(s, lobby.spectators[&s]);
                    }
                }
                Op::Leave(i) | Op::Drop(i) => {
                    let Some(&p) = joined.get(i) else { continue };
                    let event = match op {
                        Op::Leave(_) => Event::Left { peer: p, at },
                        _ => Event::Dropped { peer: p, at },
                    };
                    lobby.handle(event.clone(), &mut out);
                    if spectators.contains(&p) {
                        shared = false;
                        watching.remove(&p);
                    } else {
                        players_only.handle(event, &mut expected);
                    }
                }
                Op::Resume(i) => {
                    let Some(&p) = joined.get(i) else { continue };
                    let Some(seat) = seats.get(&p) else { continue };
                    let event = Event::Joined { peer: p, room: seat.request(), at };
                    lobby.handle(event.clone(), &mut out);
                    players_only.handle(event, &mut expected);
                }
                Op::Tick => {
                    lobby.handle(Event::Tick { now: at }, &mut out);
                    players_only.handle(Event::Tick { now: at }, &mut expected);
                }
                Op::Signal(a, b) => {
                    let (Some(&from), Some(&to)) = (joined.get(a), joined.get(b)) else { continue };
                    let data = "1".to_owned();
                    if spectators.contains(&from) || spectators.contains(&to) {
                        shared = false;
                        let edge = told.contains(&(from, to)) || told.contains(&(to, from));
                        lobby.handle(Event::Signal { from, to, data: data.clone() }, &mut out);
                        let relayed = Command::Send { to: vec![to], message: ServerMessage::Signal { sender: from, data } };
                        let heard = if edge { relayed } else { Command::SignalDropped { from, to } };
                        prop_assert_eq!(&out, &vec![heard]);
                    } else {
                        lobby.handle(Event::Signal { from, to, data: data.clone() }, &mut out);
                        players_only.handle(Event::Signal { from, to, data }, &mut expected);
                    }
                }
            }
            // Players hear what they would without spectators.
            let players = players_part(&out, &spectators);
            if shared {
                prop_assert_eq!(&players, &expected);
            } else {
                prop_assert!(players.is_empty(), "players heard of a spectator's doing: {:?}", players);
            }
            // What the peers learn of the tree.
            for command in &out {
                match command {
                    Command::Send { to, message } => {
                        for &p in to {
                            prop_assert!(!lobby.away.contains_key(&p), "message to an away peer");
                            match message {
                                ServerMessage::NewPeer(x) if spectators.contains(x) => {
                                    prop_assert!(told.insert((p, *x)), "{p} told twice to feed {x}");
                                }
                                ServerMessage::NewPeer(x) => {
                                    prop_assert!(!spectators.contains(&p), "spectator {p} told of player {x}");
                                }
                                ServerMessage::PeerLeft(x) if spectators.contains(x) || spectators.contains(&p) => {
                                    let edge = if told.contains(&(p, *x)) { (p, *x) } else { (*x, p) };
                                    prop_assert!(told.remove(&edge), "{p} told {x} left, never linked");
                                }
                                ServerMessage::Seat(seat) => {
                                    prop_assert!(!spectators.contains(&p), "a seat for spectator {p}");
                                    seats.insert(p, seat.clone());
                                }
                                _ => {}
                            }
                        }
                    }
                    Command::Close { peer, reason } if spectators.contains(peer) => {
                        // Closed without a word to the others: their room ended.
                        if let Some(key) = watching.remove(peer) {
                            prop_assert_eq!(reason, &Refusal::MatchOver);
                            prop_assert!(!lobby.rooms.contains_key(&key));
                            told.retain(|(f, s)| f != peer && s != peer);
                        }
                    }
                    _ => {}
                }
            }
            let fed: BTreeSet<(PeerId, PeerId)> = lobby
                .rooms
                .values()
                .flat_map(|r| r.audience.fed.iter().filter_map(|(s, f)| f.map(|f| (f, *s))))
                .collect();
            prop_assert_eq!(&told, &fed);
            let admitted: BTreeSet<PeerId> = lobby.spectators.keys().copied().collect();
            prop_assert_eq!(&admitted, &watching.keys().copied().collect::<BTreeSet<_>>());
            check_tree(&lobby, fanout, max_spectators)?;
        }
    }
}

#[test]
fn a_link_without_a_group_watches_the_oldest_match_in_play() {
    let mut s = Script::new(LobbyConfig::default());
    // One group filling, then two in play: 1+2 (oldest), 3+4.
    for n in 1..=5 {
        s.join(id(n), group("duel", 2));
    }
    let fed = s.join(id(10), watching(group("duel", 2), None)).to_vec();
    assert_eq!(fed[0], send(id(10), ServerMessage::IdAssigned(id(10))));
    assert_eq!(s.feeder(id(10)), Some(id(1)), "{fed:?}");
    // Once it is over, the next one.
    s.leave(id(1));
    s.leave(id(2));
    s.join(id(11), watching(group("duel", 2), None));
    assert_eq!(s.feeder(id(11)), Some(id(3)));
    s.leave(id(3));
    s.leave(id(4));
    assert_eq!(
        s.join(id(12), watching(group("duel", 2), None)),
        [close(id(12), Refusal::NothingToWatch)],
        "a group still filling is not in play"
    );
}
