//! The lobby against a model, and its edge cases.

use super::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::{BTreeMap, BTreeSet};

fn id(n: u128) -> PeerId {
    PeerId(uuid::Uuid::from_u128(n))
}

/// The obvious, slow model the lobby is checked against.
#[derive(Default)]
struct Model {
    groups: Vec<Group>,
    /// Peers whose connection is lost, since when.
    away: BTreeMap<PeerId, Instant>,
}

struct Group {
    name: String,
    next: Option<usize>,
    /// A `?next=N` group's id.
    id: Option<PeerId>,
    members: BTreeSet<PeerId>,
    sealed: bool,
    /// When it last filled up.
    formed: Option<Instant>,
}

impl Group {
    fn seat(&self) -> Seat {
        Seat {
            name: self.name.clone(),
            next: self.next,
            claim: SeatClaim {
                group: self.id,
                sealed: self.sealed,
            },
        }
    }
}

impl Model {
    fn group_of(&self, p: PeerId) -> Option<usize> {
        self.groups.iter().position(|g| g.members.contains(&p))
    }
    fn present(&self, g: usize) -> BTreeSet<PeerId> {
        let away = &self.away;
        self.groups[g]
            .members
            .iter()
            .filter(|p| !away.contains_key(p))
            .copied()
            .collect()
    }
    /// Where a joiner lands: `Ok(group index or None for a new one)`, or
    /// `Err` when the room is full. Groups are kept in creation order, so
    /// the oldest open group (a reopened one first) takes the joiner; a
    /// returning peer goes back to its own group.
    fn target(&self, room: &RoomRequest, max: usize) -> Result<Option<usize>, ()> {
        let group = room.resume.and_then(|c| c.group);
        let found = self.groups.iter().position(|g| match (room.next, group) {
            (Some(_), Some(id)) => g.id == Some(id),
            _ => g.name == room.name && g.next == room.next && !g.sealed && !g.members.is_empty(),
        });
        match found {
            Some(i) if self.groups[i].members.len() >= room.next.unwrap_or(max) => Err(()),
            other => Ok(other),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Join { room: u8, next: Option<usize> },
    Leave(usize),
    Drop(usize),
    Resume(usize),
    Tick,
    Signal(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, prop_oneof![Just(None), (2usize..5).prop_map(Some)])
            .prop_map(|(room, next)| Op::Join { room, next }),
        2 => (0usize..64).prop_map(Op::Leave),
        2 => (0usize..64).prop_map(Op::Drop),
        2 => (0usize..64).prop_map(Op::Resume),
        1 => Just(Op::Tick),
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

/// What the model expects when `p` leaves group `g` at `at`.
fn model_leave(
    model: &mut Model,
    p: PeerId,
    g: usize,
    at: Instant,
    grace: Duration,
    out: &[Command],
) -> Result<(), TestCaseError> {
    model.away.remove(&p);
    let group = &mut model.groups[g];
    group.members.remove(&p);
    // A group broken soon after it formed takes newcomers again.
    if group.sealed && group.formed.is_some_and(|f| at - f < grace) {
        group.sealed = false;
    }
    let present = model.present(g);
    prop_assert_eq!(sends(out, &ServerMessage::PeerLeft(p)), present);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn lobby_matches_model(ops in proptest::collection::vec(op(), 1..160)) {
        let max = 4;
        // One step is 1 ms: leaves from full groups fall both inside and
        // outside the grace period, held seats both expire and come back.
        let grace = Duration::from_millis(20);
        let hold = Duration::from_millis(10);
        let config = LobbyConfig { max_room_size: max, match_grace: grace, seat_hold: hold, ..LobbyConfig::default() };
        let mut lobby = Lobby::new(config);
        let mut model = Model::default();
        let mut joined: Vec<PeerId> = Vec::new();
        // The last seat each peer was told.
        let mut seats: HashMap<PeerId, Seat> = HashMap::new();
        let t0 = Instant::now();
        let mut out = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            out.clear();
            let at = t0 + Duration::from_millis(step as u64);
            match op {
                Op::Join { room, next } => {
                    let p = id(joined.len() as u128 + 1);
                    joined.push(p);
                    let room = RoomRequest { name: format!("r{room}"), next, resume: None, watch: None };
                    join(&mut lobby, &mut model, p, room, at, max, &mut out)?;
                }
                Op::Resume(i) => {
                    let Some(&p) = joined.get(i) else { continue };
                    let Some(seat) = seats.get(&p).cloned() else { continue };
                    let request = seat.request();
                    match model.group_of(p) {
                        Some(g) => {
                            // Still seated: told its id, room-mates and seat again.
                            lobby.handle(Event::Joined { peer: p, room: request, at }, &mut out);
                            model.away.remove(&p);
                            let mates: BTreeSet<PeerId> = model.present(g).into_iter().filter(|m| *m != p).collect();
                            prop_assert_eq!(out.len(), 2 + mates.len());
                            prop_assert_eq!(sends(&out, &ServerMessage::IdAssigned(p)), BTreeSet::from([p]));
                            for m in mates {
                                prop_assert_eq!(sends(&out, &ServerMessage::NewPeer(m)), BTreeSet::from([p]));
                            }
                            prop_assert_eq!(sends(&out, &ServerMessage::Seat(model.groups[g].seat())), BTreeSet::from([p]));
                        }
                        None => join(&mut lobby, &mut model, p, request, at, max, &mut out)?,
                    }
                }
                Op::Leave(i) => {
                    let Some(&p) = joined.get(i) else { continue };
                    lobby.handle(Event::Left { peer: p, at }, &mut out);
                    match model.group_of(p) {
                        None => prop_assert!(out.is_empty()),
                        Some(g) => {
                            model_leave(&mut model, p, g, at, grace, &out)?;
                            prop_assert_eq!(out.len(), usize::from(!model.present(g).is_empty()));
                        }
                    }
                }
                Op::Drop(i) => {
                    let Some(&p) = joined.get(i) else { continue };
                    lobby.handle(Event::Dropped { peer: p, at }, &mut out);
                    match model.group_of(p) {
                        None => prop_assert!(out.is_empty()),
                        // A group still filling keeps no ghosts.
                        Some(g) if model.groups[g].next.is_some() && !model.groups[g].sealed => {
                            model_leave(&mut model, p, g, at, grace, &out)?;
                        }
                        Some(_) => {
                            model.away.entry(p).or_insert(at);
                            prop_assert!(out.is_empty());
                        }
                    }
                }
                Op::Tick => {
                    lobby.handle(Event::Tick { now: at }, &mut out);
                    let expired: Vec<PeerId> = model.away.iter().filter(|(_, since)| at - **since >= hold).map(|(p, _)| *p).collect();
                    for p in expired {
                        let g = model.group_of(p).unwrap_or_else(|| unreachable!("away peers are seated"));
                        model_leave(&mut model, p, g, at, grace, &out)?;
                    }
                }
                Op::Signal(a, b) => {
                    let (Some(&from), Some(&to)) = (joined.get(a), joined.get(b)) else { continue };
                    lobby.handle(Event::Signal { from, to, data: "1".into() }, &mut out);
                    let here = |p: PeerId| model.group_of(p).filter(|_| !model.away.contains_key(&p));
                    let same = from != to && here(from).is_some() && here(from) == here(to);
                    if same {
                        prop_assert_eq!(&out, &vec![Command::Send { to: vec![to], message: ServerMessage::Signal { sender: from, data: "1".into() } }]);
                    } else {
                        prop_assert_eq!(&out, &vec![Command::SignalDropped { from, to }]);
                    }
                }
            }
            for command in &out {
                if let Command::Send { to, message: ServerMessage::Seat(seat) } = command {
                    for p in to {
                        // Only peers present hear anything, and a seat is theirs.
                        let g = model.group_of(*p).unwrap_or_else(|| unreachable!("seat for a peer not seated"));
                        prop_assert_eq!(seat, &model.groups[g].seat());
                        seats.insert(*p, seat.clone());
                    }
                }
                if let Command::Send { to, .. } = command {
                    for p in to {
                        prop_assert!(!model.away.contains_key(p), "message to an away peer");
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
            prop_assert_eq!(lobby.away_count(), model.away.len());
            prop_assert_eq!(lobby.room_count(), model.groups.len());
            for room in 0..3 {
                let name = format!("r{room}");
                prop_assert_eq!(lobby.holds(&name), model.groups.iter().any(|g| g.name == name));
            }
        }
    }
}

/// A newcomer's or a returning peer's join, checked against the model.
fn join(
    lobby: &mut Lobby,
    model: &mut Model,
    p: PeerId,
    room: RoomRequest,
    at: Instant,
    max: usize,
    out: &mut Vec<Command>,
) -> Result<(), TestCaseError> {
    let target = model.target(&room, max);
    lobby.handle(
        Event::Joined {
            peer: p,
            room: room.clone(),
            at,
        },
        out,
    );
    let Ok(target) = target else {
        let reason = match room.resume {
            Some(_) => Refusal::SeatLost,
            None => Refusal::RoomFull {
                capacity: room.next.unwrap_or(max),
            },
        };
        prop_assert_eq!(&*out, &vec![Command::Close { peer: p, reason }]);
        return Ok(());
    };
    prop_assert_eq!(
        sends(out, &ServerMessage::IdAssigned(p)),
        BTreeSet::from([p])
    );
    let existing = target.map(|i| model.present(i)).unwrap_or_default();
    if room.resume.is_some() {
        // The returning peer hears of everyone present; nobody of it.
        for m in &existing {
            prop_assert_eq!(sends(out, &ServerMessage::NewPeer(*m)), BTreeSet::from([p]));
        }
        prop_assert!(sends(out, &ServerMessage::NewPeer(p)).is_empty());
    } else {
        // Exactly the peers already in the group hear of the newcomer.
        prop_assert_eq!(sends(out, &ServerMessage::NewPeer(p)), existing);
    }
    let i = match target {
        Some(i) => i,
        None => {
            let claim = room.resume.unwrap_or(SeatClaim {
                group: room.next.map(|_| p),
                sealed: false,
            });
            let sealed = room.next.is_some() && claim.sealed;
            model.groups.push(Group {
                name: room.name.clone(),
                next: room.next,
                id: room.next.and(claim.group),
                members: BTreeSet::new(),
                sealed,
                formed: sealed.then_some(at),
            });
            model.groups.len() - 1
        }
    };
    let g = &mut model.groups[i];
    g.members.insert(p);
    let formed = out.iter().any(|c| matches!(c, Command::MatchFormed { .. }));
    if Some(g.members.len()) == room.next && !g.sealed {
        g.sealed = true;
        g.formed = Some(at);
        prop_assert!(formed);
        // Every member present hears its seat is in a full group.
        let seat = model.groups[i].seat();
        prop_assert_eq!(sends(out, &ServerMessage::Seat(seat)), model.present(i));
    } else {
        prop_assert!(!formed);
        prop_assert_eq!(
            sends(out, &ServerMessage::Seat(g.seat())),
            BTreeSet::from([p])
        );
    }
    Ok(())
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
    // A fourth peer starts the next group; the full one is listed as in play.
    join(&mut lobby, 4, t0, &mut out);
    let listed: Vec<_> = lobby
        .public_rooms(t0)
        .into_iter()
        .map(|r| (r.players, r.watch.is_some()))
        .collect();
    assert_eq!(listed, vec![(1, false), (3, true)]);
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
        resume: None,
        watch: None,
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

#[test]
fn a_room_list_holds_at_most_max_listed_rooms_open_ones_first() {
    let room = |n: usize, full: bool| RoomInfo {
        id: format!("room-{n:04}"),
        players: if full { 2 } else { 1 },
        capacity: 2,
        age_secs: 0,
        spectators: 0,
        watch: None,
    };
    // Every other room full: the open ones come first, each half by id.
    let rooms: Vec<RoomInfo> = (0..MAX_LISTED_ROOMS + 100)
        .rev()
        .map(|n| room(n, n % 2 == 0))
        .collect();
    let (list, unlisted) = listed(rooms);
    assert_eq!((list.len(), unlisted), (MAX_LISTED_ROOMS, 100));
    let open = (MAX_LISTED_ROOMS + 100) / 2;
    assert!(list[..open].iter().all(|r| r.players < r.capacity));
    assert!(list[open..].iter().all(|r| r.players >= r.capacity));
    assert!(list[..open].windows(2).all(|w| w[0].id < w[1].id));
    assert!(list[open..].windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(list[open].id, "room-0000");
    // A short list is only sorted.
    let (few, none) = listed(vec![room(2, true), room(1, false)]);
    assert_eq!(none, 0);
    assert_eq!(
        few.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["room-0001", "room-0002"]
    );
}
