//! A peer's packets on volley's reliable channel, as a session reads them:
//! the frame header, fragments through a `Reassembler` (a reassembled
//! packet is read again, without further fragments), the Hello handshake,
//! pongs, and registered messages decoded with the codec's size limit.
//! Nothing may panic, and whatever decodes must encode back to bytes that
//! decode to the same value.
//!
//! Input: packets, each a u16 LE length then its bytes.

#![no_main]

use std::any::TypeId;
use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use volley_fuzz::{Input, encode};
use volley_net::Channel;
use volley_net::codec::{Bincode, Codec, DECODE_LIMIT};
use volley_net::fragment::Reassembler;
use volley_net::frame::{self, Header, KIND_FRAGMENT, KIND_HELLO, KIND_PING, KIND_PONG};
use volley_net::handshake::{self, Hello};
use volley_net::protocol::Registry;
use volley_net::replication::ReplicationMessage;

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

/// Packets read at most from one input.
const MAX_PACKETS: usize = 64;

/// Decodes `payload` as `T`; a value must survive encode → decode → encode.
fn decode<T: Serialize + DeserializeOwned>(payload: &[u8]) {
    if let Ok(value) = Bincode.decode::<T>(payload) {
        let bytes = encode(&value);
        let again: T = Bincode
            .decode(&bytes)
            .expect("a decoded value's encoding decodes");
        assert_eq!(encode(&again), bytes, "encode/decode is not stable");
    }
}

struct Receiver {
    registry: Registry,
    reassembler: Reassembler,
}

impl Receiver {
    fn packet(&mut self, packet: &[u8], outer: bool) {
        let Ok((header, payload)) = frame::read(packet) else {
            return;
        };
        self.dispatch(header, payload, outer);
    }

    fn dispatch(&mut self, header: Header, payload: &[u8], outer: bool) {
        match header.kind {
            KIND_FRAGMENT if outer => {
                if let Ok(Some(whole)) = self.reassembler.push(header, payload) {
                    assert!(whole.len() <= DECODE_LIMIT);
                    self.packet(&whole, false);
                }
            }
            KIND_HELLO => {
                if let Ok(hello) = handshake::decode_hello(payload) {
                    let bytes = encode(&hello);
                    let again: Hello = handshake::decode_hello(&bytes).expect("a Hello decodes");
                    assert_eq!(again, hello);
                }
            }
            KIND_PING => {}
            KIND_PONG => {
                let _ = payload.first_chunk::<8>().map(|b| u64::from_le_bytes(*b));
            }
            kind => {
                let Some((id, _)) = self.registry.by_kind(kind) else {
                    return;
                };
                if id == TypeId::of::<Chat>() {
                    decode::<Chat>(payload);
                } else if id == TypeId::of::<Game>() {
                    decode::<Game>(payload);
                } else if id == TypeId::of::<ReplicationMessage>() {
                    decode::<ReplicationMessage>(payload);
                } else if id == TypeId::of::<(u8, u64, String)>() {
                    decode::<(u8, u64, String)>(payload);
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut registry = Registry::default();
    for (id, name, channel) in [
        (TypeId::of::<Chat>(), "chat", Channel::Reliable),
        (TypeId::of::<Game>(), "game", Channel::Unreliable),
        (
            TypeId::of::<ReplicationMessage>(),
            "replication",
            Channel::Reliable,
        ),
        (
            TypeId::of::<(u8, u64, String)>(),
            "tuple",
            Channel::Reliable,
        ),
    ] {
        registry.register(id, name, channel).expect("registers");
    }
    let mut receiver = Receiver {
        registry,
        reassembler: Reassembler::new(DECODE_LIMIT),
    };
    let mut input = Input::new(data);
    for _ in 0..MAX_PACKETS {
        if input.is_empty() {
            break;
        }
        receiver.packet(input.packet(), true);
    }
});
