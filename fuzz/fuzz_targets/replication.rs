//! State replication as a mirror receives it: a real `Authority` replicates
//! a world the input edits, over a link the input loses, reorders and
//! corrupts, while forged messages (arbitrary bytes) arrive beside it. Every
//! message goes through the codec (`Bincode`, with its limit) into
//! `Mirror::receive`; acknowledgements go back to the authority. Nothing
//! may panic, and while the mirror has accepted nothing forged or
//! corrupted (and no bandwidth budget reshapes the deltas) its world at
//! every tick it acknowledges is exactly the authority's.
//!
//! Input: a set-up byte (slots: 1 + low 2 bits; bit 2: a bandwidth budget
//! of the next byte × 4 bytes), then operations (`op % 8`):
//! 0 edit the world (entity byte, action byte, value: length byte + bytes),
//! 1 the authority ticks (advance byte), 2 deliver the oldest message,
//! 3 deliver the newest, 4 lose the oldest, 5 deliver the oldest with one
//! byte changed (position, value), 6 deliver a forged packet (u16 LE length,
//! bytes), 7 the mirror starts over (a newcomer: reset, re-added).

#![no_main]

use std::collections::{BTreeMap, VecDeque};

use libfuzzer_sys::fuzz_target;
use volley_fuzz::{Input, encode};
use volley_net::PeerId;
use volley_net::codec::{Bincode, Codec};
use volley_net::replication::{Authority, Mirror, ReplicationMessage, WorldState};

/// Operations read from one input.
const MAX_OPS: usize = 512;
/// Messages in flight at most (older ones are lost).
const MAX_IN_FLIGHT: usize = 32;
/// Worlds remembered for the oracle (the authority keeps 64).
const WORLDS_KEPT: usize = 128;

struct Link {
    me: PeerId,
    authority: Authority,
    mirror: Mirror,
    in_flight: VecDeque<Vec<u8>>,
    /// The world the authority replicated at each recent tick.
    worlds: BTreeMap<u32, WorldState>,
    /// The mirror accepted something the authority did not send.
    tainted: bool,
    /// Deltas are reshaped by a budget: no exact oracle.
    budget: bool,
}

impl Link {
    fn deliver(&mut self, bytes: &[u8], genuine: bool) {
        let Ok(message) = Bincode.decode::<ReplicationMessage>(bytes) else {
            assert!(!genuine, "the authority's own message does not decode");
            return;
        };
        let Ok(Some(ack)) = self.mirror.receive(message) else {
            return;
        };
        if !genuine {
            self.tainted = true;
        }
        let ack: ReplicationMessage = Bincode.decode(&encode(&ack)).expect("an ack decodes");
        let ReplicationMessage::Ack { tick } = ack else {
            panic!("the mirror answered {ack:?}");
        };
        let (current, world) = self.mirror.current().expect("a world after an ack");
        assert_eq!(current, tick, "acknowledged another tick than the current");
        if !self.tainted && !self.budget {
            let sent = self.worlds.get(&tick).expect("a tick the authority sent");
            assert_eq!(world, sent, "the mirror's world differs at tick {tick}");
        }
        self.authority.ack(self.me, tick);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let setup = input.u8();
    let slots = 1 + usize::from(setup & 3);
    let me = PeerId(uuid::Uuid::from_u128(2));
    let mut authority = Authority::new();
    let budget = setup & 4 != 0;
    if budget {
        authority.set_budget(Some(usize::from(input.u8()) * 4));
    }
    authority.add_peer(me);
    let mut link = Link {
        me,
        authority,
        mirror: Mirror::new(slots),
        in_flight: VecDeque::new(),
        worlds: BTreeMap::new(),
        tainted: false,
        budget,
    };
    let mut world = WorldState::default();
    let mut tick = 0u32;
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        match input.u8() % 8 {
            0 => {
                let id = u64::from(input.u8() % 16);
                let action = input.u8();
                let len = usize::from(input.u8() % 9);
                let value = input.take(len).to_vec();
                if action & 0x80 != 0 {
                    world.entities.remove(&id);
                } else {
                    let entity = world
                        .entities
                        .entry(id)
                        .or_insert_with(|| vec![None; slots]);
                    let slot = usize::from(action) % slots;
                    entity[slot] = (action & 0x40 == 0).then_some(value);
                }
            }
            1 => {
                tick = tick.saturating_add(1 + u32::from(input.u8() % 4));
                link.worlds.insert(tick, world.clone());
                while link.worlds.len() > WORLDS_KEPT {
                    link.worlds.pop_first();
                }
                for (to, _, message) in link.authority.tick(tick, world.clone()) {
                    assert_eq!(to, me);
                    link.in_flight.push_back(encode(&message));
                }
                while link.in_flight.len() > MAX_IN_FLIGHT {
                    link.in_flight.pop_front();
                }
            }
            2 => {
                if let Some(bytes) = link.in_flight.pop_front() {
                    link.deliver(&bytes, true);
                }
            }
            3 => {
                if let Some(bytes) = link.in_flight.pop_back() {
                    link.deliver(&bytes, true);
                }
            }
            4 => {
                link.in_flight.pop_front();
            }
            5 => {
                let (position, value) = (usize::from(input.u16()), input.u8());
                if let Some(mut bytes) = link.in_flight.pop_front() {
                    let at = position % bytes.len().max(1);
                    let genuine = bytes.get(at).is_none_or(|b| *b == value);
                    if let Some(b) = bytes.get_mut(at) {
                        *b = value;
                    }
                    link.deliver(&bytes, genuine);
                }
            }
            6 => {
                let packet = input.packet();
                link.deliver(packet, false);
            }
            _ => {
                link.mirror.reset();
                link.authority.remove_peer(me);
                link.authority.add_peer(me);
                link.in_flight.clear();
                link.tainted = false;
            }
        }
    }
});
