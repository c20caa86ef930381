//! volley_net sessions over real WebRTC through an in-process volley-server,
//! each test inside its own network namespace (see `volley_testkit::netns`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use volley::net::{
    Channel, ConditionerConfig, LeftReason, Misbehaviour, NetError, PeerId, PeerLimits, Session,
    SessionBuilder, SessionEvent,
};
use volley::server::ServerHandle;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Chat {
    seq: u32,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Position {
    x: f32,
    y: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Blob(Vec<u8>);

/// Unreliable, and so limited to one DataChannel message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Snapshot(Vec<u8>);

fn run(test: impl std::future::Future<Output = ()>) {
    volley_testkit::server::run_async(Duration::from_secs(60), test);
}

async fn server() -> ServerHandle {
    volley_testkit::server::spawn().await
}

fn session(
    server: &ServerHandle,
    room: &str,
    app: &str,
    conditioner: Option<ConditionerConfig>,
) -> Session {
    session_with(server, room, app, |builder| match conditioner {
        Some(c) => builder.conditioner(c),
        None => builder,
    })
}

/// A session registering the test's types, configured further by `configure`.
fn session_with(
    server: &ServerHandle,
    room: &str,
    app: &str,
    configure: impl FnOnce(SessionBuilder) -> SessionBuilder,
) -> Session {
    let builder = Session::builder(&format!("ws://{}/{room}", server.addr()))
        .app_version(app)
        .register::<Chat>(Channel::Reliable)
        .unwrap()
        .register::<Position>(Channel::Unreliable)
        .unwrap()
        .register::<Blob>(Channel::Reliable)
        .unwrap()
        .register::<Snapshot>(Channel::Unreliable)
        .unwrap();
    let (session, message_loop) = configure(builder).build();
    tokio::spawn(message_loop);
    session
}

/// Updates both sessions every 2 ms until `done` says so (bounded by the test timeout).
async fn pump(
    a: &mut Session,
    b: &mut Session,
    mut done: impl FnMut(&mut Session, &mut Session) -> bool,
) {
    loop {
        a.update();
        b.update();
        if done(a, b) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A raw matchbox peer with volley's channel layout, which can send anything.
fn raw_peer(server: &ServerHandle, room: &str) -> matchbox_socket::WebRtcSocket {
    let mut builder =
        matchbox_socket::WebRtcSocket::builder(format!("ws://{}/{room}", server.addr()))
            .ice_server(matchbox_socket::RtcIceServerConfig {
                urls: vec![],
                username: None,
                credential: None,
            });
    for reliable in [true, false, false] {
        builder = builder.add_channel(if reliable {
            matchbox_socket::ChannelConfig::reliable()
        } else {
            matchbox_socket::ChannelConfig::unreliable()
        });
    }
    let (raw, message_loop) = builder.build();
    tokio::spawn(message_loop);
    raw
}

/// Both connected (handshake done); returns each one's view of the other.
async fn connect(a: &mut Session, b: &mut Session) -> (PeerId, PeerId) {
    let (mut a_sees, mut b_sees) = (None, None);
    pump(a, b, |a, b| {
        for e in a.events() {
            if let SessionEvent::Connected(p) = e {
                a_sees = Some(p);
            }
        }
        for e in b.events() {
            if let SessionEvent::Connected(p) = e {
                b_sees = Some(p);
            }
        }
        a_sees.is_some() && b_sees.is_some()
    })
    .await;
    (a_sees.unwrap(), b_sees.unwrap())
}

#[test]
fn typed_messages_both_ways_on_both_channels_and_a_mebibyte_intact() {
    if !volley_testkit::netns::isolate(
        "typed_messages_both_ways_on_both_channels_and_a_mebibyte_intact",
    ) {
        return;
    }
    run(async {
        let server = server().await;
        let mut a = session(&server, "typed", "1", None);
        let mut b = session(&server, "typed", "1", None);
        let (b_id, a_id) = connect(&mut a, &mut b).await;
        assert_eq!(Some(a_id), a.id());
        assert_eq!(Some(b_id), b.id());

        let blob = Blob((0..1 << 20).map(|i: u32| (i % 251) as u8).collect());
        a.send(
            b_id,
            &Chat {
                seq: 1,
                text: "hi b".into(),
            },
        )
        .unwrap();
        b.send(
            a_id,
            &Chat {
                seq: 1,
                text: "hi a".into(),
            },
        )
        .unwrap();
        a.send_with_tick(b_id, &Blob(blob.0.clone()), Some(7))
            .unwrap();
        let (mut a_chat, mut b_chat, mut b_blob, mut a_pos, mut b_pos) =
            (vec![], vec![], vec![], vec![], vec![]);
        pump(&mut a, &mut b, |a, b| {
            // Unreliable: keep sending until one gets through each way.
            let _ = a.send(b_id, &Position { x: 1.0, y: 2.0 });
            let _ = b.send(a_id, &Position { x: 3.0, y: 4.0 });
            a_chat.extend(a.receive::<Chat>());
            b_chat.extend(b.receive::<Chat>());
            b_blob.extend(b.receive_with_tick::<Blob>());
            a_pos.extend(a.receive::<Position>());
            b_pos.extend(b.receive::<Position>());
            !a_chat.is_empty()
                && !b_chat.is_empty()
                && !b_blob.is_empty()
                && !a_pos.is_empty()
                && !b_pos.is_empty()
        })
        .await;
        assert_eq!(
            a_chat,
            vec![(
                b_id,
                Chat {
                    seq: 1,
                    text: "hi a".into()
                }
            )]
        );
        assert_eq!(
            b_chat,
            vec![(
                a_id,
                Chat {
                    seq: 1,
                    text: "hi b".into()
                }
            )]
        );
        assert_eq!(b_blob.len(), 1);
        assert_eq!((b_blob[0].0, b_blob[0].1), (a_id, Some(7)));
        assert!(b_blob[0].2 == blob, "the 1 MiB message arrived intact");
        assert_eq!(a_pos[0], (b_id, Position { x: 3.0, y: 4.0 }));
        assert_eq!(b_pos[0], (a_id, Position { x: 1.0, y: 2.0 }));
        // An unreliable message over the limit is refused at send.
        assert!(matches!(
            a.send(b_id, &Snapshot(vec![0; 20_000])),
            Err(NetError::TooLarge { limit: 16384, .. })
        ));
        assert!(a.send(b_id, &Snapshot(vec![0; 1_000])).is_ok());
        // RTT is measured once pings have gone round.
        pump(&mut a, &mut b, |a, _| {
            a.stats(b_id).is_some_and(|s| s.rtt.is_some())
        })
        .await;
        let stats = a.stats(b_id).unwrap().clone();
        assert!(stats.rtt.unwrap() < Duration::from_millis(500), "{stats:?}");
        assert!(stats.sent[Channel::Reliable.index()].bytes > 1 << 20);

        // b goes away: a sees it leave.
        drop(b);
        let mut left = None;
        let mut idle = session(&server, "elsewhere", "1", None);
        pump(&mut a, &mut idle, |a, _| {
            left = a
                .events()
                .into_iter()
                .find(|e| matches!(e, SessionEvent::Left(..)));
            left.is_some()
        })
        .await;
        assert_eq!(
            left,
            Some(SessionEvent::Left(b_id, LeftReason::Disconnected))
        );
        server.shutdown().await;
    });
}

#[test]
fn a_protocol_mismatch_is_refused_with_both_hashes() {
    if !volley_testkit::netns::isolate("a_protocol_mismatch_is_refused_with_both_hashes") {
        return;
    }
    run(async {
        let server = server().await;
        let mut a = session(&server, "mismatch", "1.0", None);
        let mut b = session(&server, "mismatch", "2.0", None);
        let (ours, theirs) = (a.protocol_hash(), b.protocol_hash());
        assert_ne!(ours, theirs);
        let mut a_events = Vec::new();
        pump(&mut a, &mut b, |a, _| {
            a_events.extend(a.events());
            a_events.iter().any(|e| matches!(e, SessionEvent::Left(..)))
        })
        .await;
        assert!(
            a_events.contains(&SessionEvent::Error {
                peer: a_events
                    .iter()
                    .find_map(|e| match e {
                        SessionEvent::Joined(p) => Some(*p),
                        _ => None,
                    })
                    .unwrap(),
                error: NetError::IncompatibleProtocol { ours, theirs },
            }),
            "{a_events:?}"
        );
        assert!(
            !a_events
                .iter()
                .any(|e| matches!(e, SessionEvent::Connected(_)))
        );
        assert_eq!(a.connected_peers().count(), 0);
        server.shutdown().await;
    });
}

#[test]
fn reliable_channel_delivers_exactly_once_in_order_through_a_bad_link() {
    if !volley_testkit::netns::isolate(
        "reliable_channel_delivers_exactly_once_in_order_through_a_bad_link",
    ) {
        return;
    }
    run(async {
        let server = server().await;
        let bad = ConditionerConfig {
            latency: Duration::from_millis(50),
            jitter: Duration::from_millis(20),
            loss: 0.2,
            seed: 42,
        };
        let mut a = session(&server, "lossy", "1", Some(bad));
        let mut b = session(
            &server,
            "lossy",
            "1",
            Some(ConditionerConfig { seed: 43, ..bad }),
        );
        let (b_id, _) = connect(&mut a, &mut b).await;
        for seq in 0..500 {
            a.send(
                b_id,
                &Chat {
                    seq,
                    text: format!("message {seq}"),
                },
            )
            .unwrap();
        }
        let mut got = Vec::new();
        pump(&mut a, &mut b, |_, b| {
            got.extend(b.receive::<Chat>().into_iter().map(|(_, c)| c.seq));
            got.len() >= 500
        })
        .await;
        // Let anything duplicated or late show up before judging.
        pump(&mut a, &mut b, {
            let until = std::time::Instant::now() + Duration::from_millis(300);
            move |_, _| std::time::Instant::now() > until
        })
        .await;
        got.extend(b.receive::<Chat>().into_iter().map(|(_, c)| c.seq));
        assert_eq!(got, (0..500).collect::<Vec<_>>());
        server.shutdown().await;
    });
}

#[test]
fn garbage_from_a_peer_is_reported_and_dropped() {
    if !volley_testkit::netns::isolate("garbage_from_a_peer_is_reported_and_dropped") {
        return;
    }
    run(async {
        let server = server().await;
        let mut session = session(&server, "garbage", "1", None);
        // A raw matchbox peer with volley's channel layout, speaking nonsense.
        let mut raw = raw_peer(&server, "garbage");
        let mut sent = false;
        let mut errors = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while errors.len() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "errors so far: {errors:?}"
            );
            session.update();
            for (peer, state) in raw.update_peers() {
                if state == matchbox_socket::PeerState::Connected && !sent {
                    sent = true;
                    raw.channel_mut(0).send(vec![200, 0, 1, 2].into(), peer); // unknown kind
                    raw.channel_mut(0).send(vec![16, 0x80].into(), peer); // unknown flags
                    raw.channel_mut(1).send(vec![16].into(), peer); // truncated
                }
            }
            for event in session.events() {
                if let SessionEvent::Error { peer, error } = event {
                    errors.push((peer, error));
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let peer = errors[0].0;
        let mut kinds: Vec<String> = errors.iter().map(|(_, e)| e.to_string()).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            vec![
                "truncated packet (1 bytes)",
                "unknown header flags 0x80",
                "unknown message kind 200"
            ]
        );
        assert_eq!(session.stats(peer).map(|s| s.invalid_packets), Some(3));
        server.shutdown().await;
    });
}

#[test]
fn a_peer_that_keeps_sending_garbage_is_dropped_as_misbehaving() {
    if !volley_testkit::netns::isolate(
        "a_peer_that_keeps_sending_garbage_is_dropped_as_misbehaving",
    ) {
        return;
    }
    run(async {
        let server = server().await;
        let mut session = session(&server, "strikes", "1", None);
        let limits = *session.peer_limits();
        let mut raw = raw_peer(&server, "strikes");
        let mut target = None;
        let mut errors = 0;
        let mut left = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        // Garbage until dropped, then as much again: nothing more is heard.
        let mut after_drop = 0;
        let mut closed_on_raw = 0;
        while after_drop < 200 {
            assert!(
                std::time::Instant::now() < deadline,
                "errors {errors}, left {left:?}"
            );
            session.update();
            for (peer, state) in raw.update_peers() {
                match state {
                    matchbox_socket::PeerState::Connected => target = Some(peer),
                    matchbox_socket::PeerState::Disconnected => closed_on_raw += 1,
                }
            }
            if let Some(peer) = target {
                for _ in 0..4 {
                    raw.channel_mut(1).send(vec![200, 0, 1, 2].into(), peer);
                }
            }
            for event in session.events() {
                match event {
                    SessionEvent::Error { .. } => errors += 1,
                    SessionEvent::Left(peer, why) => left = Some((peer, why)),
                    _ => {}
                }
            }
            if left.is_some() {
                after_drop += 1;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let (peer, why) = left.expect("the peer was dropped");
        assert!(
            matches!(&why, LeftReason::Misbehaving(Misbehaviour::InvalidPackets { count, last, .. })
                if *count == limits.strikes && last.contains("unknown message kind 200")),
            "{why:?}"
        );
        assert_eq!(
            errors, limits.strikes,
            "no error is reported after the drop"
        );
        // Dropped means closed: the offender's end saw the connection go,
        // and the session forgot it.
        assert_eq!(closed_on_raw, 1, "the offender's connection was closed");
        assert!(session.stats(peer).is_none(), "a closed peer is forgotten");
        server.shutdown().await;
    });
}

#[test]
fn a_flooding_peer_is_dropped_and_an_honest_one_stays() {
    if !volley_testkit::netns::isolate("a_flooding_peer_is_dropped_and_an_honest_one_stays") {
        return;
    }
    run(async {
        let server = server().await;
        let limits = PeerLimits {
            messages_per_update: 64,
            backlog_packets: 1000,
            ..PeerLimits::default()
        };
        let mut a = session_with(&server, "flood", "1", |b| b.peer_limits(limits));
        let mut b = session(&server, "flood", "1", None);
        let (a_sees_b, _) = connect(&mut a, &mut b).await;
        let mut raw = raw_peer(&server, "flood");
        let ping = [1u8, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut dropped = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while dropped.is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the flood was not stopped"
            );
            a.update();
            b.update();
            for (peer, state) in raw.update_peers() {
                if state == matchbox_socket::PeerState::Connected {
                    for _ in 0..5000 {
                        raw.channel_mut(1).send(ping.to_vec().into(), peer);
                    }
                }
            }
            for event in a.events() {
                if let SessionEvent::Left(peer, why) = event {
                    assert_ne!(peer, a_sees_b, "the honest peer was dropped: {why:?}");
                    dropped = Some(why);
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(
            matches!(
                dropped,
                Some(LeftReason::Misbehaving(Misbehaviour::Flood { .. }))
            ),
            "{dropped:?}"
        );
        // The honest peer still talks to us.
        a.send(
            a_sees_b,
            &Chat {
                seq: 1,
                text: "still here".into(),
            },
        )
        .unwrap();
        let mut got = Vec::new();
        pump(&mut a, &mut b, |_, b| {
            got.extend(b.receive::<Chat>());
            !got.is_empty()
        })
        .await;
        assert_eq!(got[0].1.text, "still here");
        assert!(a.connected_peers().any(|p| p == a_sees_b));
        server.shutdown().await;
    });
}
