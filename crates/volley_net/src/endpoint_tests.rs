//! [`Endpoint`] without sockets: two or three endpoints wired together in
//! memory, time passed in.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::guard::Misbehaviour;
use crate::{Channel, Endpoint, LeftReason, PeerId, SessionBuilder, SessionEvent, Transmit};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Chat(String);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Blob(Vec<u8>);

fn id(n: u128) -> PeerId {
    PeerId(uuid::Uuid::from_u128(n))
}

fn endpoint(version: &str, now: Instant) -> Endpoint {
    SessionBuilder::new("ws://unused")
        .app_version(version)
        .register::<Chat>(Channel::Reliable)
        .and_then(|b| b.register::<Blob>(Channel::Reliable))
        .map(|b| b.endpoint(now))
        .expect("registers")
}

/// Endpoints by id, and the closes each asked for.
struct Net {
    nodes: Vec<(PeerId, Endpoint)>,
    closed: Vec<(PeerId, PeerId)>,
}

impl Net {
    fn new(versions: &[&str], now: Instant) -> Net {
        let nodes: Vec<(PeerId, Endpoint)> = versions
            .iter()
            .enumerate()
            .map(|(i, v)| (id(i as u128 + 1), endpoint(v, now)))
            .collect();
        let mut net = Net {
            nodes,
            closed: Vec::new(),
        };
        let ids: Vec<PeerId> = net.nodes.iter().map(|(id, _)| *id).collect();
        for (me, node) in &mut net.nodes {
            for other in &ids {
                if other != me {
                    node.peer_connected(*other, now);
                }
            }
        }
        net
    }

    fn at(&mut self, n: usize) -> &mut Endpoint {
        &mut self.nodes[n].1
    }

    /// Delivers every transmit (arriving at `now`), then updates everyone;
    /// `rounds` times.
    fn pump(&mut self, now: Instant, rounds: usize) {
        for _ in 0..rounds {
            let mut wire = Vec::new();
            for (from, node) in &mut self.nodes {
                while let Some(t) = node.poll_transmit() {
                    match t {
                        Transmit::Send {
                            peer,
                            channel,
                            packet,
                        } => wire.push((*from, peer, channel, packet)),
                        Transmit::Close(peer, _) => self.closed.push((*from, peer)),
                    }
                }
            }
            for (from, to, channel, packet) in wire {
                if let Some((_, node)) = self.nodes.iter_mut().find(|(id, _)| *id == to) {
                    node.receive_packet(from, channel, packet, now);
                }
            }
            for (_, node) in &mut self.nodes {
                node.update(now);
            }
        }
    }
}

#[test]
fn handshake_then_messages_and_fragments() {
    let t0 = Instant::now();
    let mut net = Net::new(&["1", "1"], t0);
    net.pump(t0, 4);
    assert_eq!(net.at(0).connected_peers().collect::<Vec<_>>(), [id(2)]);
    let events = net.at(1).events();
    assert_eq!(
        events,
        [SessionEvent::Joined(id(1)), SessionEvent::Connected(id(1))]
    );
    net.at(0)
        .send(id(2), &Chat("hi".into()), Some(7), t0)
        .unwrap();
    // Several fragments' worth: split, reassembled.
    let big = Blob((0..200_000u32).map(|i| i as u8).collect());
    net.at(0).broadcast(&big, None, t0).unwrap();
    net.pump(t0, 2);
    assert_eq!(
        net.at(1).receive::<Chat>(),
        [(id(1), Some(7), Chat("hi".into()))]
    );
    assert_eq!(net.at(1).receive::<Blob>(), [(id(1), None, big)]);
    let sent = net.at(0).stats(id(2)).unwrap().sent[Channel::Reliable.index()];
    assert!(sent.packets > 10, "{sent:?}");
}

#[test]
fn incompatible_peers_refuse_each_other() {
    let t0 = Instant::now();
    let mut net = Net::new(&["1", "2"], t0);
    net.pump(t0, 3);
    let events = net.at(0).events();
    assert!(
        events.iter().any(|e| matches!(
            e,
            SessionEvent::Left(p, LeftReason::IncompatibleProtocol { .. }) if *p == id(2)
        )),
        "{events:?}"
    );
    // Not closed: the other side must still read our Hello to learn why.
    assert!(net.closed.is_empty());
    assert_eq!(net.at(0).connected_peers().count(), 0);
}

#[test]
fn incompatible_peers_refuse_each_other_when_ones_first_hello_is_lost() {
    let t0 = Instant::now();
    let mut net = Net::new(&["1", "2"], t0);
    // The first Hello of node 0 is lost (a fresh channel's first message
    // can be); node 1's arrives, and node 0 stops talking to it.
    let lost = net.at(0).poll_transmit();
    assert!(matches!(lost, Some(Transmit::Send { .. })), "{lost:?}");
    net.pump(t0, 3);
    for (n, other) in [(0, id(2)), (1, id(1))] {
        let events = net.at(n).events();
        assert!(
            events.iter().any(|e| matches!(
                e,
                SessionEvent::Left(p, LeftReason::IncompatibleProtocol { .. }) if *p == other
            )),
            "node {n}: {events:?}"
        );
    }
}

#[test]
fn disconnect_closes_one_peer_and_keeps_the_others() {
    let t0 = Instant::now();
    let mut net = Net::new(&["1", "1", "1"], t0);
    net.pump(t0, 4);
    net.at(0).events();
    assert!(net.at(0).disconnect(id(2)));
    assert!(!net.at(0).disconnect(id(2)), "only once");
    assert_eq!(
        net.at(0).events(),
        [SessionEvent::Left(id(2), LeftReason::Closed)]
    );
    net.at(1).broadcast(&Chat("x".into()), None, t0).unwrap();
    net.pump(t0, 2);
    assert_eq!(net.closed, [(id(1), id(2))]);
    // Nothing more from the closed peer; the third one still talks.
    assert_eq!(net.at(0).receive::<Chat>(), []);
    assert_eq!(net.at(0).connected_peers().collect::<Vec<_>>(), [id(3)]);
    assert_eq!(
        net.at(1).send(id(1), &Chat("y".into()), None, t0),
        Ok(()),
        "the closed peer's own endpoint learns from its transport"
    );
}

#[test]
fn rtt_is_measured_at_arrival_not_at_update() {
    let t0 = Instant::now();
    let mut net = Net::new(&["1", "1"], t0);
    net.pump(t0, 4);
    // A ping leaves at t1; its pong arrives 30 ms later; A's update runs
    // another 70 ms after that (a slow frame): the RTT is 30 ms.
    let t1 = t0 + Duration::from_secs(1);
    net.at(0).update(t1);
    let mut ping = None;
    while let Some(t) = net.at(0).poll_transmit() {
        if let Transmit::Send {
            channel: Channel::Unreliable,
            packet,
            ..
        } = t
        {
            ping = Some(packet);
        }
    }
    let pong = crate::frame::pong_for(&ping.expect("a ping")).expect("a ping");
    net.at(0).receive_packet(
        id(2),
        Channel::Unreliable,
        pong,
        t1 + Duration::from_millis(30),
    );
    net.at(0).update(t1 + Duration::from_millis(100));
    assert_eq!(
        net.at(0).stats(id(2)).unwrap().rtt,
        Some(Duration::from_millis(30))
    );
}

#[test]
fn garbage_gets_the_sender_dropped_and_closed() {
    let t0 = Instant::now();
    let mut net = Net::new(&["1", "1"], t0);
    net.pump(t0, 4);
    net.at(0).events();
    let strikes = net.at(0).peer_limits().strikes;
    for i in 0..strikes {
        net.at(0)
            .receive_packet(id(2), Channel::Reliable, vec![0xee, 0, i as u8], t0);
    }
    net.at(0).update(t0);
    let left = net
        .at(0)
        .events()
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::Left(p, LeftReason::Misbehaving(why)) => Some((p, why)),
            _ => None,
        })
        .expect("dropped");
    assert_eq!(left.0, id(2));
    assert!(matches!(left.1, Misbehaviour::InvalidPackets { .. }));
    net.pump(t0, 1);
    assert!(net.closed.contains(&(id(1), id(2))));
}

/// What `node` hands the transport for `to` on the reliable channel.
fn reliable_packets(node: &mut Endpoint, to: PeerId) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(t) = node.poll_transmit() {
        if let Transmit::Send {
            peer,
            channel: Channel::Reliable,
            packet,
        } = t
            && peer == to
        {
            out.push(packet);
        }
    }
    out
}

#[test]
fn small_messages_travel_packed_in_the_order_sent() {
    let t0 = Instant::now();
    let mut net = Net::new(&["1", "1"], t0);
    net.pump(t0, 4);
    // One message alone leaves bare, at the flush and not before.
    net.at(0)
        .send(id(2), &Chat("one".into()), None, t0)
        .unwrap();
    assert!(reliable_packets(net.at(0), id(2)).is_empty());
    net.at(0).flush(t0);
    let alone = reliable_packets(net.at(0), id(2));
    assert_eq!(alone.len(), 1);
    assert_ne!(alone[0][0], crate::frame::KIND_BATCH);
    // 300 small ones, a large one, 300 small ones: the large one leaves
    // between the two runs, and they leave packed.
    let chats: Vec<Chat> = (0..600).map(|i| Chat(format!("message {i}"))).collect();
    let big = Blob(vec![5; 40_000]);
    for chat in &chats[..300] {
        net.at(0).send(id(2), chat, None, t0).unwrap();
    }
    net.at(0).send(id(2), &big, None, t0).unwrap();
    for chat in &chats[300..] {
        net.at(0).send(id(2), chat, None, t0).unwrap();
    }
    net.at(0).flush(t0);
    let packets = reliable_packets(net.at(0), id(2));
    let kinds: Vec<u8> = packets.iter().map(|p| p[0]).collect();
    let fragments = kinds
        .iter()
        .filter(|k| **k == crate::frame::KIND_FRAGMENT)
        .count();
    assert_eq!(fragments, 3, "{kinds:?}");
    let first_fragment = kinds.iter().position(|k| *k == crate::frame::KIND_FRAGMENT);
    let carried: usize = packets[..first_fragment.unwrap()]
        .iter()
        .map(|p| crate::batch::weight(p))
        .sum();
    assert_eq!(carried, 300, "the large message left after the first 300");
    assert!(
        packets.len() < 20,
        "{} packets for 601 messages",
        packets.len()
    );
    for packet in packets {
        net.at(1)
            .receive_packet(id(1), Channel::Reliable, packet, t0);
    }
    net.pump(t0, 1);
    let got: Vec<Chat> = net
        .at(1)
        .receive::<Chat>()
        .into_iter()
        .map(|m| m.2)
        .collect();
    assert_eq!(got, chats);
    assert_eq!(net.at(1).receive::<Blob>().len(), 1);
    let stats = net.at(1).stats(id(1)).unwrap().received[Channel::Reliable.index()];
    assert!(stats.messages >= 601 && stats.packets < 20, "{stats:?}");
}

#[test]
fn a_malformed_batch_delivers_what_precedes_the_fault_and_counts_once() {
    let t0 = Instant::now();
    let mut net = Net::new(&["1", "1"], t0);
    net.pump(t0, 4);
    net.at(0).events();
    // A real batch of two chats, then cut short / nested / over-long.
    for chat in ["a", "b"] {
        net.at(1).send(id(1), &Chat(chat.into()), None, t0).unwrap();
    }
    net.at(1).flush(t0);
    let batch = reliable_packets(net.at(1), id(1)).remove(0);
    assert_eq!(crate::batch::weight(&batch), 2);
    let mut cut = batch.clone();
    cut.pop();
    let mut nested = vec![crate::frame::KIND_BATCH, 0, 1, 0];
    nested.extend_from_slice(&(batch.len() as u16).to_le_bytes());
    nested.extend_from_slice(&batch);
    let mut trailing = batch.clone();
    trailing.push(0);
    for packet in [cut, nested, trailing] {
        net.at(0)
            .receive_packet(id(2), Channel::Reliable, packet, t0);
    }
    net.at(0).update(t0);
    let got: Vec<String> = net
        .at(0)
        .receive::<Chat>()
        .into_iter()
        .map(|m| m.2.0)
        .collect();
    // The cut one delivered "a"; the trailing one both, then its fault.
    assert_eq!(got, ["a", "a", "b"]);
    assert_eq!(net.at(0).stats(id(2)).unwrap().invalid_packets, 3);
    assert!(net.at(0).connected_peers().any(|p| p == id(2)));
}
