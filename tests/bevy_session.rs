//! Two headless Bevy apps (MinimalPlugins + VolleyPlugin) talking through an
//! in-process volley-server over real WebRTC, inside a private network
//! namespace (see `volley_testkit::netns`).

use std::time::{Duration, Instant};

use bevy::prelude::*;
use serde::{Deserialize, Serialize};
use volley::bevy::prelude::*;
use volley::bevy::{LeftReason, NetError};
use volley::server::ServerHandle;
use volley_testkit::server::with_server;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Chat(String);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Position(f32, f32);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Blob(Vec<u8>);

/// What an app saw, collected by its systems.
#[derive(Resource, Default)]
struct Seen {
    events: Vec<SessionEvent>,
    chats: Vec<(PeerId, Chat)>,
    positions: Vec<(PeerId, Position)>,
    blobs: Vec<(PeerId, Option<u32>, Blob)>,
    states: Vec<ConnectionState>,
}

fn collect(
    mut seen: ResMut<Seen>,
    mut events: MessageReader<NetPeerEvent>,
    mut chats: MessageReader<NetReceived<Chat>>,
    mut positions: MessageReader<NetReceived<Position>>,
    mut blobs: MessageReader<NetReceived<Blob>>,
    state: Res<State<ConnectionState>>,
) {
    seen.events.extend(events.read().map(|e| e.0.clone()));
    seen.chats
        .extend(chats.read().map(|m| (m.from, m.message.clone())));
    seen.positions
        .extend(positions.read().map(|m| (m.from, m.message.clone())));
    seen.blobs
        .extend(blobs.read().map(|m| (m.from, m.tick, m.message.clone())));
    if seen.states.last() != Some(state.get()) {
        seen.states.push(*state.get());
    }
}

fn app(server: &ServerHandle, room: &str, version: &str) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        VolleyPlugin::new(format!("ws://{}/{room}", server.addr())).app_version(version),
    ))
    .add_net_message::<Chat>(Channel::Reliable)
    .add_net_message::<Position>(Channel::Unreliable)
    .add_net_message::<Blob>(Channel::Reliable)
    .init_resource::<Seen>()
    .add_systems(Update, collect);
    app
}

/// Updates the apps every 2 ms until `done` or 30 s.
fn pump(apps: &mut [&mut App], mut done: impl FnMut(&mut [&mut App]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for app in apps.iter_mut() {
            app.update();
        }
        if done(apps) {
            return;
        }
        assert!(Instant::now() < deadline, "condition not met within 30 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn seen(app: &mut App) -> Mut<'_, Seen> {
    app.world_mut().resource_mut::<Seen>()
}

fn connected_peer(app: &mut App) -> Option<PeerId> {
    seen(app).events.iter().find_map(|e| match e {
        SessionEvent::Connected(p) => Some(*p),
        _ => None,
    })
}

#[test]
fn headless_apps_exchange_typed_messages_and_see_each_other_leave() {
    if !volley_testkit::netns::isolate(
        "headless_apps_exchange_typed_messages_and_see_each_other_leave",
    ) {
        return;
    }
    with_server(|server| {
        let mut a = app(server, "bevy", "1");
        let mut b = app(server, "bevy", "1");
        pump(&mut [&mut a, &mut b], |apps| {
            let [a, b] = apps else { unreachable!() };
            connected_peer(a).is_some() && connected_peer(b).is_some()
        });
        let (b_id, a_id) = (
            connected_peer(&mut a).unwrap(),
            connected_peer(&mut b).unwrap(),
        );
        pump(&mut [&mut a, &mut b], |apps| {
            apps.iter_mut().all(|app| {
                *app.world().resource::<State<ConnectionState>>().get() == ConnectionState::InGame
            })
        });

        let blob: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
        a.world_mut()
            .write_message(NetSend::to(b_id, Chat("hi b".into())));
        b.world_mut()
            .write_message(NetSend::all(Chat("hi a".into())));
        a.world_mut().write_message(NetSend {
            to: NetTarget::Peer(b_id),
            tick: Some(9),
            message: Blob(blob.clone()),
        });
        pump(&mut [&mut a, &mut b], |apps| {
            let [a, b] = apps else { unreachable!() };
            // Unreliable: resend every frame until one arrives each way.
            a.world_mut()
                .write_message(NetSend::all(Position(1.0, 2.0)));
            b.world_mut()
                .write_message(NetSend::all(Position(3.0, 4.0)));
            let sa = seen(a);
            let a_done = !sa.chats.is_empty() && !sa.positions.is_empty();
            let sb = seen(b);
            let b_done = !sb.chats.is_empty() && !sb.positions.is_empty() && !sb.blobs.is_empty();
            a_done && b_done
        });
        assert_eq!(seen(&mut a).chats, vec![(b_id, Chat("hi a".into()))]);
        assert_eq!(seen(&mut b).chats, vec![(a_id, Chat("hi b".into()))]);
        assert_eq!(seen(&mut a).positions[0], (b_id, Position(3.0, 4.0)));
        assert_eq!(seen(&mut b).positions[0], (a_id, Position(1.0, 2.0)));
        let blobs = std::mem::take(&mut seen(&mut b).blobs);
        assert_eq!(blobs.len(), 1);
        assert_eq!((blobs[0].0, blobs[0].1), (a_id, Some(9)));
        assert!(blobs[0].2.0 == blob, "1 MiB arrived intact");
        // Stats: RTT measured once pings went round.
        pump(&mut [&mut a, &mut b], |apps| {
            apps[0]
                .world()
                .resource::<NetStats>()
                .peers
                .get(&b_id)
                .is_some_and(|s| s.rtt.is_some())
        });
        assert_eq!(
            seen(&mut a).states,
            vec![
                // Startup connects, so the first Update already sees Signaling.
                ConnectionState::Signaling,
                ConnectionState::WaitingForPeers,
                ConnectionState::InGame
            ]
        );

        // b's app goes away: a sees it leave and goes back to waiting.
        drop(b);
        pump(&mut [&mut a], |apps| {
            seen(apps[0])
                .events
                .iter()
                .any(|e| matches!(e, SessionEvent::Left(..)))
        });
        assert!(
            seen(&mut a)
                .events
                .contains(&SessionEvent::Left(b_id, LeftReason::Disconnected))
        );
        pump(&mut [&mut a], |apps| {
            *apps[0].world().resource::<State<ConnectionState>>().get()
                == ConnectionState::WaitingForPeers
        });
    });
}

#[test]
fn apps_with_different_versions_refuse_each_other() {
    if !volley_testkit::netns::isolate("apps_with_different_versions_refuse_each_other") {
        return;
    }
    with_server(|server| {
        let mut a = app(server, "versions", "1.0");
        let mut b = app(server, "versions", "1.1");
        pump(&mut [&mut a, &mut b], |apps| {
            apps.iter_mut().all(|app| {
                seen(app)
                    .events
                    .iter()
                    .any(|e| matches!(e, SessionEvent::Left(..)))
            })
        });
        for app in [&mut a, &mut b] {
            let events = seen(app).events.clone();
            assert!(
                events.iter().any(|e| matches!(
                    e,
                    SessionEvent::Error {
                        error: NetError::IncompatibleProtocol { .. },
                        ..
                    }
                )),
                "{events:?}"
            );
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, SessionEvent::Connected(_)))
            );
            assert_eq!(
                *app.world().resource::<State<ConnectionState>>().get(),
                ConnectionState::WaitingForPeers
            );
        }
    });
}
