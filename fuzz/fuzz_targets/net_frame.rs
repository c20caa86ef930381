//! A hostile peer's packets into a real [`Endpoint`] (the session's whole
//! protocol core: frame headers, fragments, batches, the Hello handshake,
//! pings and pongs, the per-peer budget and strikes, registered messages
//! decoded with the codec's size limits), beside an honest peer. Nothing may panic; the
//! honest peer stays connected whatever the hostile one sends; whatever
//! decodes must encode back to bytes that decode to the same value.
//!
//! Input: a byte (odd: the hostile peer first sends a valid Hello, so its
//! later packets reach the message decoders), then operations: a byte, and
//! for a packet its channel (the byte mod 3) and a u16 LE length then its
//! bytes; 3 advances time by a u16 of ms; 4 drains the inboxes.

#![no_main]

use std::collections::BTreeMap;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use volley_fuzz::{Input, encode};
use volley_net::codec::{Bincode, Codec};
use volley_net::frame::{self, Header, KIND_HELLO};
use volley_net::handshake::Hello;
use volley_net::protocol::WIRE_VERSION;
use volley_net::replication::ReplicationMessage;
use volley_net::{Channel, Endpoint, PeerId, SessionBuilder, Transmit};
use web_time::Instant;

/// A chat line: strings, a vector, an option.
#[derive(Serialize, serde::Deserialize)]
struct Chat {
    from: String,
    text: String,
    lines: Vec<u32>,
    mood: Option<char>,
}

/// A game message: floats, an enum, a map.
#[derive(Serialize, serde::Deserialize)]
enum Game {
    Move { x: f32, y: f32, speed: f64 },
    Stroke(Vec<(i16, i16)>),
    Scores(BTreeMap<String, u64>),
    Quit,
}

/// Operations read at most from one input.
const MAX_OPS: usize = 128;

fn endpoint(now: Instant) -> Endpoint {
    SessionBuilder::new("ws://fuzz")
        .register::<Chat>(Channel::Reliable)
        .and_then(|b| b.register::<Game>(Channel::Unreliable))
        .and_then(|b| b.register_limited::<ReplicationMessage>(Channel::Reliable, 64 * 1024))
        .and_then(|b| b.register::<(u8, u64, String)>(Channel::Reliable))
        .map(|b| b.endpoint(now))
        .expect("registers")
}

/// Drains `T`; each value must survive encode → decode → encode.
fn check<T: Serialize + DeserializeOwned + 'static>(endpoint: &mut Endpoint) {
    for (_, _, value) in endpoint.receive::<T>() {
        let bytes = encode(&value);
        let again: T = Bincode
            .decode(&bytes)
            .expect("a decoded value's encoding decodes");
        assert_eq!(encode(&again), bytes, "encode/decode is not stable");
    }
}

fn drain(endpoint: &mut Endpoint) {
    check::<Chat>(endpoint);
    check::<Game>(endpoint);
    check::<ReplicationMessage>(endpoint);
    check::<(u8, u64, String)>(endpoint);
    endpoint.receive_rollback();
    endpoint.events();
}

/// Moves packets between the endpoint under test and the honest peer
/// (what goes to the hostile peer is dropped), then updates both.
fn pump(ours: &mut Endpoint, honest: &mut Endpoint, ids: [PeerId; 3], now: Instant) {
    let [us, honest_id, _] = ids;
    for _ in 0..3 {
        while let Some(t) = ours.poll_transmit() {
            if let Transmit::Send {
                peer,
                channel,
                packet,
            } = t
                && peer == honest_id
            {
                honest.receive_packet(us, channel, packet, now);
            }
        }
        while let Some(t) = honest.poll_transmit() {
            if let Transmit::Send {
                channel, packet, ..
            } = t
            {
                ours.receive_packet(honest_id, channel, packet, now);
            }
        }
        ours.update(now);
        honest.update(now);
    }
}

fuzz_target!(|data: &[u8]| {
    let ids = [1u128, 2, 3].map(|n| PeerId(uuid::Uuid::from_u128(n)));
    let [us, honest_id, hostile] = ids;
    let mut now = Instant::now();
    let mut ours = endpoint(now);
    let mut honest = endpoint(now);
    ours.peer_connected(honest_id, now);
    ours.peer_connected(hostile, now);
    honest.peer_connected(us, now);
    pump(&mut ours, &mut honest, ids, now);
    assert!(ours.connected_peers().any(|p| p == honest_id));

    let mut input = Input::new(data);
    if input.u8() % 2 == 1 {
        let hello = Hello {
            wire: WIRE_VERSION,
            hash: ours.protocol_hash(),
            app_version: String::new(),
            got_yours: true,
        };
        let mut packet = Vec::new();
        frame::write_header(&mut packet, Header::new(KIND_HELLO, None));
        Bincode.encode(&hello, &mut packet).expect("encodes");
        ours.receive_packet(hostile, Channel::Reliable, packet, now);
    }
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        match input.u8() % 8 {
            op @ 0..=2 => {
                let channel = Channel::ALL[usize::from(op)];
                let packet = input.packet().to_vec();
                ours.receive_packet(hostile, channel, packet, now);
            }
            3 => {
                now += Duration::from_millis(u64::from(input.u16()));
                pump(&mut ours, &mut honest, ids, now);
            }
            4 => drain(&mut ours),
            _ => {
                let packet = input.packet().to_vec();
                ours.receive_packet(hostile, Channel::Reliable, packet, now);
            }
        }
    }
    pump(&mut ours, &mut honest, ids, now);
    drain(&mut ours);
    assert!(
        ours.connected_peers().any(|p| p == honest_id),
        "the honest peer was dropped"
    );
});
