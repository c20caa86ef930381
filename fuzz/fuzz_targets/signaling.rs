//! The signaling server's pure half, driven by what clients send: join
//! URLs (path and query, the ticket checked on a server that requires
//! one), signaling frames (`wire::decode_request`), leaves and time, room
//! codes reserved by addresses read from forwarding headers, and
//! `/api/ice` queries, all into one `Lobby`. Nothing may panic, and after
//! every step the lobby must hold together: every admitted peer in exactly
//! one room with the peers it was told about, no room over its size,
//! signals relayed only within a room and unchanged, every message the
//! server writes valid matchbox JSON, per-owner room codes within their
//! limit.
//!
//! Input: a set-up byte (room size 2 + `% 7`; bit 3: tickets required;
//! bit 4: no matchmaking grace), then operations (`op % 8`):
//! 0 join by URL (packet: `path[?query]`); 1 join room `r{byte % 3}` with
//! `next` = a byte (0: none), unchecked, as the lobby must not trust its
//! caller; 2 a text frame from a peer (peer byte, packet); 3 a signal from
//! a peer to a peer (two peer bytes, packet as the JSON string payload);
//! 4 a peer leaves (peer byte); 5 time passes (byte × 100 ms); 6 a room
//! code (packet) reserved from an address (byte) behind forwarding headers
//! (kind byte, packet); 7 an `/api/ice` query (packet).
//! Packets are a u16 LE length, then bytes.

#![no_main]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use matchbox_protocol::JsonPeerEvent;
use volley_fuzz::Input;
use volley_server::forwarded::{TrustedProxy, client_ip};
use volley_server::limits::ip_key;
use volley_server::lobby::{
    Command, Event, Lobby, LobbyConfig, MAX_ROOM_NAME, PeerId, RoomRequest, ServerMessage,
};
use volley_server::ticket;
use volley_server::wire::{self, Request};
use volley_server::{Refusal, query};

/// Operations read from one input.
const MAX_OPS: usize = 256;
/// The server's ticket secret, when it requires tickets.
const SECRET: &[u8] = b"fuzz-secret";
/// The wall clock tickets are checked against (unix seconds).
const NOW: u64 = 1_750_000_000;
/// An id the server never handed out.
const STRANGER: PeerId = PeerId(uuid::Uuid::from_u128(u128::MAX));
/// Room codes one address may hold.
const CODES_PER_OWNER: usize = 3;

fn id(n: usize) -> PeerId {
    PeerId(uuid::Uuid::from_u128(n as u128 + 1))
}

struct Harness {
    lobby: Lobby,
    /// Every id handed out, in order.
    ids: Vec<PeerId>,
    /// The peers admitted and not gone, and the group size they asked for.
    admitted: Vec<(PeerId, Option<usize>)>,
    tickets: bool,
    at: Instant,
    out: Vec<Command>,
}

impl Harness {
    /// One of the ids handed out, or now and then one nobody has.
    fn peer(&self, byte: u8) -> PeerId {
        let i = usize::from(byte) % (self.ids.len() + 1);
        self.ids.get(i).copied().unwrap_or(STRANGER)
    }

    fn is_admitted(&self, peer: PeerId) -> bool {
        self.admitted.iter().any(|(p, _)| *p == peer)
    }

    fn members(&self, peer: PeerId) -> BTreeSet<PeerId> {
        self.lobby
            .room_of(peer)
            .unwrap_or(&[])
            .iter()
            .copied()
            .collect()
    }

    fn handle(&mut self, event: Event) {
        self.out.clear();
        self.lobby.handle(event, &mut self.out);
        // Everything written to a client is JSON, and matchbox's events. A
        // signal's payload is relayed unparsed at any depth: serde_json
        // (in matchbox_socket) refuses more than 128 levels, and drops it.
        for command in &self.out {
            if let Command::Send { message, .. } = command {
                // A seat leaves as each receiver's own resume token.
                let Some(text) = wire::encode(message) else {
                    continue;
                };
                assert!(is_json(&text), "{text}");
                if let Err(e) = JsonPeerEvent::from_str(&text) {
                    let deep = e.to_string().contains("recursion limit");
                    assert!(
                        matches!(message, ServerMessage::Signal { .. }) && deep,
                        "{e}"
                    );
                }
            }
        }
    }

    /// Joins as the server does: a URL that does not parse is a 400, a bad
    /// or missing ticket a 401, a bad room or `next` a close frame; only
    /// the rest reaches the lobby.
    fn join_url(&mut self, url: &str) {
        let (path, query) = match url.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (url, None),
        };
        let Ok(join) = query::join(path, query) else {
            return;
        };
        assert!(!join.room.starts_with('/'));
        if self.tickets {
            let Some(t) = &join.ticket else { return };
            let day = Duration::from_secs(86_400);
            if ticket::verify(SECRET, join.room, t, NOW, day).is_err() {
                return;
            }
        }
        // A token from the input is refused (it is not signed), never a panic.
        if join.resumed(SECRET, NOW).is_err() {
            return;
        }
        let max = self.lobby.config().max_room_size;
        match join.room_request(max) {
            // Spectators are checked by the lobby's own tests (`watch_tests`):
            // this harness models members only.
            Ok(room) if room.watch.is_some() => {}
            Ok(room) => {
                assert!(room.name.len() <= MAX_ROOM_NAME);
                assert!(room.next.is_none_or(|n| (2..=max).contains(&n)));
                self.join(room);
            }
            Err(refusal) => assert!(matches!(
                refusal,
                Refusal::InvalidRoomName { .. }
                    | Refusal::InvalidNext { .. }
                    | Refusal::InvalidSpectate { .. }
            )),
        }
    }

    fn join(&mut self, room: RoomRequest) {
        let peer = id(self.ids.len());
        self.ids.push(peer);
        let max = self.lobby.config().max_room_size;
        let next = room.next;
        self.handle(Event::Joined {
            peer,
            room,
            at: self.at,
        });
        if let [Command::Close { peer: p, reason }] = &self.out[..] {
            assert_eq!(*p, peer);
            let valid = next.is_none_or(|n| (2..=max).contains(&n));
            match reason {
                Refusal::RoomFull { .. } => assert!(valid),
                Refusal::InvalidNext { .. } => assert!(!valid),
                other => panic!("a join refused as {other:?}"),
            }
            assert!(self.lobby.room_of(peer).is_none());
            return;
        }
        assert!(
            next.is_none_or(|n| (2..=max).contains(&n)),
            "next={next:?} admitted"
        );
        assert_eq!(
            self.out.first(),
            Some(&Command::Send {
                to: vec![peer],
                message: ServerMessage::IdAssigned(peer),
            })
        );
        let mut others = self.members(peer);
        assert!(others.remove(&peer), "admitted but in no room");
        // Exactly the peers already there hear of the newcomer.
        let told: BTreeSet<PeerId> = self
            .out
            .iter()
            .filter_map(|c| match c {
                Command::Send {
                    to,
                    message: ServerMessage::NewPeer(p),
                } if *p == peer => Some(to.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(told, others);
        let formed = self
            .out
            .iter()
            .any(|c| matches!(c, Command::MatchFormed { .. }));
        assert_eq!(
            formed,
            Some(others.len() + 1) == next,
            "a match formed or not"
        );
        self.admitted.push((peer, next));
    }

    fn text_frame(&mut self, from: PeerId, text: &str) {
        match wire::decode_request(text) {
            Ok(Request::Signal { to, data }) => self.signal(from, to, data),
            Ok(Request::KeepAlive) | Err(_) => {}
        }
    }

    fn signal(&mut self, from: PeerId, to: PeerId, data: String) {
        // The payload is relayed as JSON text: it must be JSON.
        assert!(is_json(&data), "{data}");
        let same_room = from != to && self.is_admitted(from) && self.members(from).contains(&to);
        self.handle(Event::Signal {
            from,
            to,
            data: data.clone(),
        });
        let expected = if same_room {
            Command::Send {
                to: vec![to],
                message: ServerMessage::Signal { sender: from, data },
            }
        } else {
            Command::SignalDropped { from, to }
        };
        assert_eq!(self.out, vec![expected]);
    }

    fn leave(&mut self, peer: PeerId) {
        let mut stay = self.members(peer);
        let was_in = stay.remove(&peer);
        assert_eq!(was_in, self.is_admitted(peer));
        self.handle(Event::Left { peer, at: self.at });
        self.admitted.retain(|(p, _)| *p != peer);
        assert!(self.lobby.room_of(peer).is_none());
        match &self.out[..] {
            [] => assert!(stay.is_empty()),
            [
                Command::Send {
                    to,
                    message: ServerMessage::PeerLeft(p),
                },
            ] => {
                assert_eq!(*p, peer);
                assert_eq!(to.iter().copied().collect::<BTreeSet<_>>(), stay);
            }
            other => panic!("a leave said {other:?}"),
        }
    }

    /// The lobby holds together.
    fn check(&self) {
        let max = self.lobby.config().max_room_size;
        assert_eq!(self.lobby.peer_count(), self.admitted.len());
        let mut rooms: Vec<BTreeSet<PeerId>> = Vec::new();
        for &(peer, next) in &self.admitted {
            let members = self.members(peer);
            assert!(members.contains(&peer));
            assert!(members.len() <= next.unwrap_or(max).min(max));
            for other in &members {
                assert!(self.is_admitted(*other));
                assert_eq!(self.members(*other), members, "rooms overlap");
            }
            if !rooms.contains(&members) {
                assert!(rooms.iter().all(|r| r.is_disjoint(&members)));
                rooms.push(members);
            }
        }
        assert_eq!(self.lobby.room_count(), rooms.len());
        let public = self.lobby.public_rooms(self.at);
        assert!(public.len() <= rooms.len());
        for room in public {
            assert!(room.players >= 1 && room.players <= room.capacity && room.capacity <= max);
        }
    }
}

/// Well-formed JSON, however deep (serde_json's own check, as `RawValue`
/// makes it).
fn is_json(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

fn forwarding(kind: u8, value: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let name = match kind % 3 {
        0 => "x-forwarded-for",
        1 => "forwarded",
        _ => return headers,
    };
    if let Ok(value) = HeaderValue::from_bytes(value) {
        headers.append(HeaderName::from_static(name), value);
    }
    headers
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let setup = input.u8();
    let t0 = Instant::now();
    let config = LobbyConfig {
        max_room_size: 2 + usize::from(setup % 7),
        match_grace: if setup & 16 == 0 {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        },
        private_room_ttl: Duration::from_secs(5),
        max_private_rooms: 8,
        max_private_rooms_per_owner: CODES_PER_OWNER,
        seat_hold: Duration::from_secs(1),
        max_spectators: 4,
        watch_fanout: 2,
    };
    let mut h = Harness {
        lobby: Lobby::new(config),
        ids: Vec::new(),
        admitted: Vec::new(),
        tickets: setup & 8 != 0,
        at: t0,
        out: Vec::new(),
    };
    let proxies: Vec<TrustedProxy> = ["127.0.0.1", "10.0.0.0/8", "fd00::/8"]
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        match input.u8() % 8 {
            0 => {
                let url = String::from_utf8_lossy(input.packet()).into_owned();
                h.join_url(&url);
            }
            1 => {
                let room = input.u8() % 3;
                let next = match input.u8() {
                    0 => None,
                    n => Some(usize::from(n)),
                };
                h.join(RoomRequest {
                    name: format!("r{room}"),
                    next,
                    resume: None,
                    watch: None,
                });
            }
            2 => {
                let from = h.peer(input.u8());
                let text = String::from_utf8_lossy(input.packet()).into_owned();
                h.text_frame(from, &text);
            }
            3 => {
                let (from, to) = (h.peer(input.u8()), h.peer(input.u8()));
                let payload = String::from_utf8_lossy(input.packet()).into_owned();
                let frame = serde_json::json!({
                    "Signal": { "receiver": to, "data": { "Offer": payload } }
                })
                .to_string();
                match wire::decode_request(&frame) {
                    Ok(Request::Signal { to: named, data }) => {
                        assert_eq!(named, to);
                        h.signal(from, to, data);
                    }
                    other => panic!("a well-formed signal read as {other:?}"),
                }
            }
            4 => {
                let peer = h.peer(input.u8());
                h.leave(peer);
            }
            5 => {
                h.at += Duration::from_millis(100 * u64::from(input.u8()));
                h.handle(Event::Tick { now: h.at });
                assert!(h.out.is_empty());
            }
            6 => {
                let code = String::from_utf8_lossy(input.packet()).into_owned();
                let tcp = match input.u8() {
                    b if b < 128 => IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
                    b => IpAddr::V4(Ipv4Addr::new(203, 0, 113, b)),
                };
                let kind = input.u8();
                let headers = forwarding(kind, input.packet());
                let client = client_ip(tcp, &proxies, &headers);
                // Only a trusted proxy's headers are believed.
                if !proxies.iter().any(|p| p.contains(tcp)) {
                    assert_eq!(client, tcp);
                }
                let owner = ip_key(client);
                let _ = h.lobby.reserve_private_for(&code, Some(owner), h.at);
                assert!(h.lobby.private_rooms_of(owner) <= CODES_PER_OWNER);
            }
            _ => {
                let text = String::from_utf8_lossy(input.packet()).into_owned();
                if let Ok(ice) = query::ice(Some(&text))
                    && let Some(t) = &ice.ticket
                {
                    let day = Duration::from_secs(86_400);
                    if ticket::verify(SECRET, &ice.room, t, NOW, day).is_ok() {
                        assert!(!ice.room.contains('\n'));
                    }
                }
            }
        }
        h.check();
    }
});
