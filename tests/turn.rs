//! volley-server's built-in STUN/TURN server (`--turn-listen`), with native
//! volley peers over real WebRTC inside the test's network namespace: the
//! credentials `/api/ice` mints carry relay-only connections, and what the
//! server refuses (expired credentials, allocations over the cap, packets
//! over an allocation's bandwidth, a user over its quotas) is refused and
//! counted in `/metrics`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use volley::net::{Channel, IcePolicy, IceServer, IceTiming, Session, SessionEvent};
use volley::server::turn::TurnConfig;
use volley::server::{ServerConfig, ServerHandle};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Chat(String);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Noise(Vec<u8>);

const EXPIRED: &str = "volley_turn_refusals_total{reason=\"turn_expired_credentials\"}";
const FULL: &str = "volley_turn_refusals_total{reason=\"turn_allocations_full\"}";
const BANDWIDTH: &str = "volley_turn_refusals_total{reason=\"turn_bandwidth\"}";
const USER_ALLOCATIONS: &str = "volley_turn_refusals_total{reason=\"turn_user_allocations\"}";
const USER_BANDWIDTH: &str = "volley_turn_refusals_total{reason=\"turn_user_bandwidth\"}";

fn run(test: impl std::future::Future<Output = ()>) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    volley_testkit::server::run_async(Duration::from_secs(90), test);
}

/// A server whose built-in TURN server listens on 127.0.0.1.
async fn server(turn: TurnConfig) -> ServerHandle {
    volley_testkit::server::spawn_with(ServerConfig {
        turn: Some(TurnConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..turn
        }),
        ..ServerConfig::default()
    })
    .await
}

/// A relay-only session that takes its ICE servers from `/api/ice`, plus
/// `extra` ones.
async fn session(server: &ServerHandle, room: &str, extra: &[IceServer]) -> Session {
    let mut builder = Session::builder(&format!("ws://{}/{room}", server.addr()))
        .register::<Chat>(Channel::Reliable)
        .and_then(|b| b.register::<Noise>(Channel::Unreliable))
        .unwrap()
        .ice_policy(IcePolicy::Relay)
        .with_server_ice()
        .await;
    for ice in extra {
        builder = builder.ice_server(ice.clone());
    }
    let (session, message_loop) = builder.build();
    tokio::spawn(message_loop);
    session
}

/// Updates the sessions every 2 ms until `done`, at most `limit`.
async fn pump(
    sessions: &mut [&mut Session],
    limit: Duration,
    mut done: impl FnMut(&mut [&mut Session]) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        for s in sessions.iter_mut() {
            s.update();
            s.events();
        }
        if done(sessions) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

fn linked(s: &Session) -> bool {
    s.connected_peers()
        .next()
        .and_then(|p| s.stats(p))
        .is_some_and(|st| st.link.is_some())
}

/// `GET /metrics`, the value of each sample line (`name{labels} value`).
async fn metric(server: &ServerHandle, name: &str) -> f64 {
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

#[test]
fn the_built_in_turn_server_relays_with_the_credentials_api_ice_mints() {
    if !volley_testkit::netns::isolate(
        "the_built_in_turn_server_relays_with_the_credentials_api_ice_mints",
    ) {
        return;
    }
    run(async {
        let server = server(TurnConfig {
            relay_ports: (41_000, 41_099),
            ..TurnConfig::default()
        })
        .await;
        let turn = server.turn_addr().expect("the TURN server runs");
        let mut a = session(&server, "relayed", &[]).await;
        let mut b = session(&server, "relayed", &[]).await;
        assert!(
            pump(&mut [&mut a, &mut b], Duration::from_secs(20), |s| s
                .iter()
                .all(|s| linked(s)))
            .await,
            "no relayed connection"
        );
        for s in [&a, &b] {
            let peer = s.connected_peers().next().unwrap();
            let link = s.stats(peer).unwrap().link.clone().unwrap();
            assert!(link.relayed(), "{link:?}");
            // Our relay is on the server, on a port of the range.
            let relay: SocketAddr = link.local.address.parse().unwrap();
            assert_eq!(relay.ip(), turn.ip(), "{link:?}");
            assert!((41_000..=41_099).contains(&relay.port()), "{link:?}");
        }
        let b_id = b.id().unwrap();
        a.send(b_id, &Chat("through our relay".into())).unwrap();
        let mut got = Vec::new();
        assert!(
            pump(&mut [&mut a, &mut b], Duration::from_secs(10), |s| {
                got.extend(s[1].receive::<Chat>());
                !got.is_empty()
            })
            .await
        );
        assert_eq!(got[0].1, Chat("through our relay".into()));
        assert!(metric(&server, "volley_turn_allocations ").await >= 2.0);
        assert!(metric(&server, "volley_turn_allocations_total").await >= 2.0);
        assert!(metric(&server, "volley_turn_relayed_bytes_total").await > 1000.0);
        server.shutdown().await;
    });
}

#[test]
fn the_turn_server_refuses_expired_credentials_extra_allocations_and_excess_bandwidth() {
    if !volley_testkit::netns::isolate(
        "the_turn_server_refuses_expired_credentials_extra_allocations_and_excess_bandwidth",
    ) {
        return;
    }
    run(async {
        let server = server(TurnConfig {
            relay_ports: (41_100, 41_199),
            // webrtc-rs allocates once per local address (lo and the
            // namespace's veth): a pair takes 4.
            max_allocations: 4,
            max_bytes_per_second: 40_000,
            ..TurnConfig::default()
        })
        .await;
        // Expired credentials: refused, counted, and the game told within
        // its set-up timeout that there is no path, not even relayed.
        let turn = server.turn_addr().unwrap();
        let expired = IceServer {
            urls: vec![format!("turn:{turn}?transport=udp")],
            username: Some("1:volley".into()),
            credential: Some("whatever".into()),
        };
        let forged = || {
            let (session, message_loop) =
                Session::builder(&format!("ws://{}/expired", server.addr()))
                    .ice_policy(IcePolicy::Relay)
                    .ice_server(expired.clone())
                    .ice_timing(IceTiming {
                        setup_timeout: Duration::from_secs(3),
                        ..IceTiming::default()
                    })
                    .build();
            tokio::spawn(message_loop);
            session
        };
        let (mut x, mut y) = (forged(), forged());
        let started = Instant::now();
        let mut unreachable = Vec::new();
        while unreachable.len() < 2 || metric(&server, EXPIRED).await < 1.0 {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "expired credentials were not refused and reported: {unreachable:?}"
            );
            for s in [&mut x, &mut y] {
                s.update();
                for event in s.events() {
                    if let SessionEvent::Unreachable(_, why) = event {
                        unreachable.push((started.elapsed(), why));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for (after, why) in &unreachable {
            assert!(why.contains("TURN relay"), "{why}");
            assert!(*after < Duration::from_secs(6), "{after:?}: {why}");
        }
        assert_eq!(x.connected_peers().count(), 0);
        drop((x, y));

        // A pair takes the four allocations; the next pair's are refused
        // (a peer alone in its room gathers nothing).
        let mut a = session(&server, "capped", &[]).await;
        let mut b = session(&server, "capped", &[]).await;
        assert!(
            pump(&mut [&mut a, &mut b], Duration::from_secs(20), |s| s
                .iter()
                .all(|s| linked(s)))
            .await,
            "the first two did not connect"
        );
        let mut c = session(&server, "next", &[]).await;
        let mut d = session(&server, "next", &[]).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        while metric(&server, FULL).await < 1.0 {
            assert!(
                Instant::now() < deadline,
                "the next pair's allocations were not refused"
            );
            c.update();
            d.update();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(metric(&server, "volley_turn_allocations ").await, 4.0);

        // 200 KB at once through a 40 KB/s relay: the excess is dropped.
        let b_id = b.id().unwrap();
        for _ in 0..200 {
            a.send(b_id, &Noise(vec![7; 1000])).unwrap();
            a.flush();
        }
        let mut noise = 0;
        pump(&mut [&mut a, &mut b], Duration::from_secs(2), |s| {
            noise += s[1].receive::<Noise>().len();
            false
        })
        .await;
        assert!(noise < 150, "{noise} of 200 arrived past a 40 KB/s cap");
        assert!(metric(&server, BANDWIDTH).await >= 1.0);
        server.shutdown().await;
    });
}

#[test]
fn the_turn_server_holds_each_user_to_its_allocation_and_bandwidth_quotas() {
    if !volley_testkit::netns::isolate(
        "the_turn_server_holds_each_user_to_its_allocation_and_bandwidth_quotas",
    ) {
        return;
    }
    run(async {
        const SECRET: &str = "quota-s3cret";
        let server = volley_testkit::server::spawn_with(ServerConfig {
            turn: Some(TurnConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                relay_ports: (41_200, 41_299),
                max_bytes_per_second: 0,
                // A pair's native peer allocates once per local address
                // (lo and the veth): two each.
                max_allocations_per_user: 2,
                max_bytes_per_second_per_user: 40_000,
                ..TurnConfig::default()
            }),
            ice: volley::server::ice::IceConfig {
                turn_secret: Some(SECRET.into()),
                ..volley::server::ice::IceConfig::default()
            },
            ..ServerConfig::default()
        })
        .await;
        let turn = server.turn_addr().unwrap();
        // A relay-only session whose TURN credentials name `user`.
        let as_user = |user: &str, room: &str| {
            let username = format!("{}:{user}", u64::MAX / 2);
            let credential = volley::server::ice::turn_credential(SECRET.as_bytes(), &username);
            let (session, message_loop) =
                Session::builder(&format!("ws://{}/{room}", server.addr()))
                    .register::<Chat>(Channel::Reliable)
                    .and_then(|b| b.register::<Noise>(Channel::Unreliable))
                    .unwrap()
                    .ice_policy(IcePolicy::Relay)
                    .ice_server(IceServer {
                        urls: vec![format!("turn:{turn}?transport=udp")],
                        username: Some(username),
                        credential: Some(credential),
                    })
                    .build();
            tokio::spawn(message_loop);
            session
        };
        let mut ann = as_user("ann", "quota");
        let mut bob = as_user("bob", "quota");
        assert!(
            pump(&mut [&mut ann, &mut bob], Duration::from_secs(20), |s| s
                .iter()
                .all(|s| linked(s)))
            .await,
            "ann and bob did not connect"
        );
        // Ann's second session is over her quota; Cy (with her) is not.
        let mut ann2 = as_user("ann", "quota2");
        let mut cy = as_user("cy", "quota2");
        let deadline = Instant::now() + Duration::from_secs(15);
        while metric(&server, USER_ALLOCATIONS).await < 1.0
            || metric(&server, "volley_turn_allocations ").await < 6.0
        {
            assert!(
                Instant::now() < deadline,
                "ann's extra allocations were not refused, or cy's not made"
            );
            ann2.update();
            cy.update();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(metric(&server, "volley_turn_allocations ").await, 6.0);
        assert_eq!(metric(&server, FULL).await, 0.0);
        // 200 KB at once from ann: her user's 40 KB/s drops the excess.
        let bob_id = bob.id().unwrap();
        for _ in 0..200 {
            ann.send(bob_id, &Noise(vec![7; 1000])).unwrap();
            ann.flush();
        }
        let mut noise = 0;
        pump(&mut [&mut ann, &mut bob], Duration::from_secs(2), |s| {
            noise += s[1].receive::<Noise>().len();
            false
        })
        .await;
        assert!(
            noise < 150,
            "{noise} of 200 arrived past a 40 KB/s user quota"
        );
        assert!(metric(&server, USER_BANDWIDTH).await >= 1.0);
        assert_eq!(metric(&server, BANDWIDTH).await, 0.0);
        server.shutdown().await;
    });
}
