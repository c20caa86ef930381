//! What cluster nodes tell each other, as a node reads it from Redis: any
//! bytes decode to a node message or an error without panicking, and a
//! decoded message encodes and decodes back to itself. A node's router fed
//! such messages from the other nodes, mixed with its own peers' joins,
//! signals and leaves, directory answers chosen by the input, nodes dying
//! and time passing, never panics and never sends a message to itself.
//!
//! Input: a list of steps, each a kind byte then its data: a join (peer
//! byte, room byte, next byte, resume byte), a leave (peer byte), a
//! connection lost (peer byte), a signal (two peer
//! bytes), a node message (sender byte, then a packet: u16 LE length and
//! the message bytes), a heartbeat's live list (a byte whose bits 1 and 2
//! say which other nodes it shows, and how many milliseconds before now it
//! was read), a tick (u8 milliseconds).

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use matchbox_protocol::PeerId;
use volley_fuzz::Input as Bytes;
use volley_server::cluster::{Action, Input, NodeId, NodeMessage, Router, RouterConfig};
use volley_server::lobby::{LobbyConfig, RoomRequest, SeatClaim};

/// Steps per input.
const MAX_STEPS: usize = 256;

fn peer(n: u8) -> PeerId {
    PeerId(uuid::Uuid::from_u128(u128::from(n % 16) + 1))
}

fn node(n: u8) -> NodeId {
    NodeId::new(format!("n{}", n % 3)).unwrap_or_else(|_| unreachable!())
}

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes::new(data);
    let me = node(0);
    let mut router = Router::new(RouterConfig {
        me: me.clone(),
        clustered: true,
        linger: Duration::from_millis(5),
        lobby: LobbyConfig {
            max_room_size: 4,
            seat_hold: Duration::from_millis(50),
            ..LobbyConfig::default()
        },
    });
    let t0 = Instant::now();
    let mut now = t0;
    let mut out = Vec::new();
    let mut claims = Vec::new();
    for _ in 0..MAX_STEPS {
        if input.is_empty() {
            break;
        }
        let step = match input.u8() % 7 {
            0 => {
                let (p, room, next, resume) = (input.u8(), input.u8(), input.u8(), input.u8());
                let next = (next % 4 != 0).then_some(usize::from(next % 6));
                // Newcomers, and peers back with a seat (their own group, a
                // group any peer opened, sealed or not).
                let resume = (resume % 3 != 0).then(|| SeatClaim {
                    group: (resume & 4 != 0).then(|| peer(resume >> 3)),
                    sealed: resume & 1 != 0,
                });
                Input::Joined {
                    peer: peer(p),
                    room: RoomRequest {
                        name: format!("r{}", room % 3),
                        next,
                        resume,
                        watch: None,
                    },
                    at: now,
                }
            }
            6 => Input::Dropped {
                peer: peer(input.u8()),
                at: now,
            },
            1 => Input::Left {
                peer: peer(input.u8()),
                at: now,
            },
            2 => Input::Signal {
                from: peer(input.u8()),
                to: peer(input.u8()),
                data: "{}".into(),
            },
            3 => {
                let from = node(1 + input.u8() % 2);
                let bytes = input.packet();
                let Ok(message) = NodeMessage::decode(bytes) else {
                    continue;
                };
                let text = message.encode().expect("a decoded message encodes");
                assert_eq!(
                    NodeMessage::decode(text.as_bytes()).ok(),
                    Some(message.clone())
                );
                Input::FromNode {
                    node: from,
                    message,
                    at: now,
                }
            }
            4 => {
                let (shown, ago) = (input.u8(), input.u8());
                let nodes = (1..3u8)
                    .filter(|n| shown & (1 << n) != 0)
                    .map(node)
                    .collect();
                let asked = now
                    .checked_sub(Duration::from_millis(u64::from(ago)))
                    .map_or(t0, |asked| asked.max(t0));
                Input::Live { nodes, asked, now }
            }
            _ => {
                now += Duration::from_millis(u64::from(input.u8()));
                Input::Tick { now }
            }
        };
        router.handle(step, &mut out);
        // The directory answers each claim: the name's home is a node
        // chosen by the input (or none: Redis failed).
        for _ in 0..8 {
            for action in out.drain(..) {
                match action {
                    Action::Claim { claim, .. } => claims.push(claim),
                    Action::Publish { node, .. } => {
                        assert_ne!(node, me, "a node never messages itself")
                    }
                    _ => {}
                }
            }
            if claims.is_empty() {
                break;
            }
            for claim in claims.drain(..) {
                let answer = input.u8();
                let home = (answer != 255).then(|| node(answer));
                router.handle(Input::Claimed { claim, home, now }, &mut out);
            }
        }
        out.clear();
    }
});
