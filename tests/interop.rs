//! volley's own native transport and unmodified matchbox_socket in one
//! room, over real WebRTC inside the test's own network namespace (see
//! `volley_testkit::netns`): matchbox negotiates its side of each connection
//! itself (`volley::net::MatchboxTransport`, the browser build's transport),
//! volley's side is webrtc-rs driven by volley.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use volley::net::{Channel, MatchboxTransport, PeerId, Session, SessionEvent};
use volley::server::{Server, ServerConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Chat(String);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Position(f32, f32);

#[test]
fn volley_and_matchbox_peers_share_a_room_and_exchange_typed_messages() {
    if !volley_testkit::netns::isolate(
        "volley_and_matchbox_peers_share_a_room_and_exchange_typed_messages",
    ) {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            let config = ServerConfig {
                addr: "127.0.0.1:0".parse().unwrap(),
                ..ServerConfig::default()
            };
            let server = Server::bind(config).await.unwrap().spawn();
            let url = format!("ws://{}/mixed", server.addr());
            let builder = || {
                Session::builder(&url)
                    .register::<Chat>(Channel::Reliable)
                    .unwrap()
                    .register::<Position>(Channel::Unreliable)
                    .unwrap()
            };
            // Two of each, so every kind of pair meets: volley–volley,
            // volley–matchbox (either side offering), matchbox–matchbox.
            let mut sessions: Vec<(&str, Session)> = Vec::new();
            for kind in ["volley", "matchbox", "volley", "matchbox"] {
                let (session, message_loop) = if kind == "volley" {
                    builder().build()
                } else {
                    builder().build_with(MatchboxTransport::open)
                };
                tokio::spawn(message_loop);
                sessions.push((kind, session));
            }
            let n = sessions.len();
            let mut connected = vec![0usize; n];
            while connected.iter().any(|&c| c < n - 1) {
                for (i, (_, s)) in sessions.iter_mut().enumerate() {
                    s.update();
                    for e in s.events() {
                        match e {
                            SessionEvent::Connected(_) => connected[i] += 1,
                            SessionEvent::Joined(_) => {}
                            other => panic!("{other:?}"),
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            // Everyone sends to everyone, reliably and not.
            let ids: Vec<PeerId> = sessions.iter_mut().map(|(_, s)| s.id().unwrap()).collect();
            for (i, (kind, s)) in sessions.iter_mut().enumerate() {
                for (j, to) in ids.iter().enumerate() {
                    if i != j {
                        s.send(*to, &Chat(format!("{kind} {i} to {j}"))).unwrap();
                        s.send(*to, &Position(i as f32, j as f32)).unwrap();
                    }
                }
            }
            let mut chats = vec![Vec::new(); n];
            let mut positions = vec![Vec::new(); n];
            while chats.iter().any(|c| c.len() < n - 1) || positions.iter().any(|p| p.is_empty()) {
                for (i, (_, s)) in sessions.iter_mut().enumerate() {
                    s.update();
                    chats[i].extend(s.receive::<Chat>());
                    positions[i].extend(s.receive::<Position>());
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            for (j, got) in chats.iter_mut().enumerate() {
                got.sort_by_key(|(from, _)| ids.iter().position(|id| id == from));
                let expected: Vec<(PeerId, Chat)> = (0..n)
                    .filter(|&i| i != j)
                    .map(|i| (ids[i], Chat(format!("{} {i} to {j}", sessions[i].0))))
                    .collect();
                assert_eq!(*got, expected);
            }
            for (j, got) in positions.iter().enumerate() {
                for (from, Position(x, y)) in got {
                    assert_eq!(Some(*x as usize), ids.iter().position(|id| id == from));
                    assert_eq!(*y as usize, j);
                }
            }
            server.shutdown().await;
        })
        .await
        .expect("done within 60 s")
    });
}
