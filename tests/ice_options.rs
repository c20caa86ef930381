//! The native transport's ICE options and per-peer control, over real
//! WebRTC inside the test's own network namespace (see `volley_testkit::netns`):
//! several TURN servers each with its own credentials, relay-only policy,
//! closing one peer while the others stay, and a session's connections
//! closed when its message loop is dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use volley::net::{
    CandidateKind, Channel, IcePolicy, IceServer, LeftReason, PeerId, Session, SessionEvent,
};
use volley::server::ServerHandle;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Chat(String);

fn run(test: impl std::future::Future<Output = ()>) {
    volley_testkit::server::run_async(Duration::from_secs(90), test);
}

async fn server() -> ServerHandle {
    volley_testkit::server::spawn().await
}

/// Accepts one user with one password, and counts who asked.
struct OneUser {
    user: &'static str,
    key: Vec<u8>,
    asked: Mutex<Vec<String>>,
}

impl turn::auth::AuthHandler for OneUser {
    fn auth_handle(
        &self,
        username: &str,
        _realm: &str,
        _src: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        self.asked.lock().unwrap().push(username.to_string());
        if username == self.user {
            Ok(self.key.clone())
        } else {
            Err(turn::Error::ErrNoSuchUser)
        }
    }
}

/// A TURN server on 127.0.0.1 (webrtc-rs' `turn`) that knows one user.
struct Turn {
    server: turn::server::Server,
    auth: Arc<OneUser>,
    addr: SocketAddr,
    user: &'static str,
    password: &'static str,
}

impl Turn {
    async fn start(realm: &str, user: &'static str, password: &'static str) -> Turn {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let auth = Arc::new(OneUser {
            user,
            key: turn::auth::generate_auth_key(user, realm, password),
            asked: Mutex::new(Vec::new()),
        });
        let server = turn::server::Server::new(turn::server::config::ServerConfig {
            conn_configs: vec![turn::server::config::ConnConfig {
                conn: Arc::new(socket),
                relay_addr_generator: Box::new(
                    turn::relay::relay_static::RelayAddressGeneratorStatic {
                        relay_address: "127.0.0.1".parse().unwrap(),
                        address: "127.0.0.1".to_string(),
                        net: Arc::new(webrtc_util::vnet::net::Net::new(None)),
                    },
                ),
            }],
            realm: realm.to_string(),
            auth_handler: auth.clone(),
            channel_bind_timeout: Duration::ZERO,
            alloc_close_notify: None,
        })
        .await
        .unwrap();
        Turn {
            server,
            auth,
            addr,
            user,
            password,
        }
    }

    fn ice(&self) -> IceServer {
        IceServer {
            urls: vec![format!("turn:{}?transport=udp", self.addr)],
            username: Some(self.user.to_string()),
            credential: Some(self.password.to_string()),
        }
    }

    /// The usernames it was asked to authenticate.
    fn asked(&self) -> Vec<String> {
        self.auth.asked.lock().unwrap().clone()
    }

    /// Usernames of the live allocations, with the bytes each relayed.
    async fn allocations(&self) -> Vec<(String, usize)> {
        self.server
            .get_allocations_info(None)
            .await
            .unwrap()
            .into_values()
            .map(|a| (a.username, a.relayed_bytes))
            .collect()
    }
}

fn session(server: &ServerHandle, room: &str, ice: &[IceServer], policy: IcePolicy) -> Session {
    let mut builder = Session::builder(&format!("ws://{}/{room}", server.addr()))
        .register::<Chat>(Channel::Reliable)
        .unwrap()
        .ice_policy(policy);
    for server in ice {
        builder = builder.ice_server(server.clone());
    }
    let (session, message_loop) = builder.build();
    tokio::spawn(message_loop);
    session
}

/// Updates `sessions` every 2 ms, handing each one's events to `seen`,
/// until `done` (bounded by the test's timeout).
async fn pump(
    sessions: &mut [&mut Session],
    seen: &mut HashMap<usize, Vec<SessionEvent>>,
    mut done: impl FnMut(&mut [&mut Session], &HashMap<usize, Vec<SessionEvent>>) -> bool,
) {
    loop {
        for (i, s) in sessions.iter_mut().enumerate() {
            s.update();
            seen.entry(i).or_default().extend(s.events());
        }
        if done(sessions, seen) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn everyone_connected(sessions: &mut [&mut Session]) -> bool {
    let n = sessions.len();
    sessions
        .iter()
        .all(|s| s.connected_peers().count() == n - 1)
}

/// Every chat `to` received from `from` so far.
fn chats_from(seen: &[Vec<(PeerId, Chat)>], to: usize, from: PeerId) -> Vec<String> {
    seen[to]
        .iter()
        .filter(|(p, _)| *p == from)
        .map(|(_, c)| c.0.clone())
        .collect()
}

#[test]
fn several_turn_servers_each_with_its_own_credentials_carry_a_relay_only_connection() {
    if !volley_testkit::netns::isolate(
        "several_turn_servers_each_with_its_own_credentials_carry_a_relay_only_connection",
    ) {
        return;
    }
    run(async {
        let server = server().await;
        let one = Turn::start("one.example", "ann", "first-secret").await;
        let two = Turn::start("two.example", "bob", "second-secret").await;
        let ice = [one.ice(), two.ice()];
        let mut a = session(&server, "relayed", &ice, IcePolicy::Relay);
        let mut b = session(&server, "relayed", &ice, IcePolicy::Relay);
        let mut seen = HashMap::new();
        pump(&mut [&mut a, &mut b], &mut seen, |s, _| {
            everyone_connected(s)
                && s.iter().all(|s| {
                    let peer = s.connected_peers().next();
                    peer.and_then(|p| s.stats(p))
                        .is_some_and(|st| st.link.is_some())
                })
        })
        .await;
        let b_id = b.id().unwrap();
        a.send(b_id, &Chat("through a relay".into())).unwrap();
        let mut got = Vec::new();
        pump(&mut [&mut a, &mut b], &mut seen, |s, _| {
            got.extend(s[1].receive::<Chat>());
            !got.is_empty()
        })
        .await;
        assert_eq!(got[0].1, Chat("through a relay".into()));

        // Both ends took a relay candidate (relay-only policy).
        for s in [&a, &b] {
            let peer = s.connected_peers().next().unwrap();
            let link = s.stats(peer).unwrap().link.clone().unwrap();
            println!("link: {link:?}");
            assert_eq!(link.local.kind, CandidateKind::Relay, "{link:?}");
        }
        // Each server allocated for both peers (one relay per local socket:
        // each binds two by default) under its own user: the credentials
        // reached each server separately.
        let (on_one, on_two) = (one.allocations().await, two.allocations().await);
        println!("allocations: one {on_one:?}, two {on_two:?}");
        assert!(on_one.len() >= 2, "{on_one:?}");
        assert!(on_two.len() >= 2, "{on_two:?}");
        assert!(on_one.iter().all(|(user, _)| user == "ann"), "{on_one:?}");
        assert!(on_two.iter().all(|(user, _)| user == "bob"), "{on_two:?}");
        // Nobody tried one server's user on the other.
        assert!(one.asked().iter().all(|u| u == "ann"), "{:?}", one.asked());
        assert!(two.asked().iter().all(|u| u == "bob"), "{:?}", two.asked());
        // The chat crossed one of them.
        let relayed: usize = on_one.iter().chain(&on_two).map(|(_, bytes)| bytes).sum();
        assert!(relayed > 0, "nothing relayed");
        one.server.close().await.unwrap();
        two.server.close().await.unwrap();
    });
}

/// The candidates a session in `room` offers to a newcomer: a bare
/// signaling client joins after it and reads the offer and the trickled
/// candidates it is sent (it never answers). Returns the candidate types
/// seen, once one of type `want` has come and a second more has passed
/// (at most 20 s).
async fn offered_candidate_types(server: &ServerHandle, room: &str, want: &str) -> Vec<String> {
    let url = format!("ws://{}/{room}", server.addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut types = Vec::new();
    let mut enough_at: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let wait = enough_at
            .map(|t| t + Duration::from_secs(1))
            .unwrap_or(deadline)
            .min(deadline)
            .saturating_duration_since(Instant::now());
        let frame = match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(_) => panic!("signaling closed"),
            Err(_) => break,
        };
        let Ok(text) = frame.into_text() else {
            continue;
        };
        // SDP lines and trickled candidates alike: "… typ <type> …".
        for (i, _) in text.match_indices(" typ ") {
            let kind: String = text[i + 5..]
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            if kind == want && enough_at.is_none() {
                enough_at = Some(Instant::now());
            }
            types.push(kind);
        }
    }
    types
}

#[test]
fn relay_only_policy_offers_no_host_candidates() {
    if !volley_testkit::netns::isolate("relay_only_policy_offers_no_host_candidates") {
        return;
    }
    run(async {
        let server = server().await;
        let turn = Turn::start("one.example", "ann", "first-secret").await;
        let ice = [turn.ice()];
        // Kept updated in the background while the bare client listens.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (room, policy) in [("relay-only", IcePolicy::Relay), ("all", IcePolicy::All)] {
            let mut s = session(&server, room, &ice, policy);
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    s.update();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }));
        }
        // Let both join before the newcomer does.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let relay_only = offered_candidate_types(&server, "relay-only", "relay").await;
        let all = offered_candidate_types(&server, "all", "host").await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in tasks {
            task.await.unwrap();
        }
        println!("relay-only offered {relay_only:?}; all offered {all:?}");
        assert!(relay_only.iter().any(|t| t == "relay"), "{relay_only:?}");
        assert!(relay_only.iter().all(|t| t == "relay"), "{relay_only:?}");
        // The same check sees host candidates when they are allowed.
        assert!(all.iter().any(|t| t == "host"), "{all:?}");
        turn.server.close().await.unwrap();
    });
}

#[test]
fn disconnecting_one_peer_closes_it_on_both_ends_and_the_others_stay() {
    if !volley_testkit::netns::isolate(
        "disconnecting_one_peer_closes_it_on_both_ends_and_the_others_stay",
    ) {
        return;
    }
    run(async {
        let server = server().await;
        let mut a = session(&server, "three", &[], IcePolicy::All);
        let mut b = session(&server, "three", &[], IcePolicy::All);
        let mut c = session(&server, "three", &[], IcePolicy::All);
        let mut seen = HashMap::new();
        pump(&mut [&mut a, &mut b, &mut c], &mut seen, |s, _| {
            everyone_connected(s)
        })
        .await;
        let (a_id, b_id, c_id) = (a.id().unwrap(), b.id().unwrap(), c.id().unwrap());

        assert!(a.disconnect(b_id), "b was connected to a");
        // b learns that a closed it; a told its game at once.
        pump(&mut [&mut a, &mut b, &mut c], &mut seen, |_, seen| {
            seen[&1]
                .iter()
                .any(|e| matches!(e, SessionEvent::Left(p, _) if *p == a_id))
        })
        .await;
        assert!(
            seen[&0].contains(&SessionEvent::Left(b_id, LeftReason::Closed)),
            "{:?}",
            seen[&0]
        );
        // A while later: a and b stay apart, c keeps both.
        let settle = Instant::now() + Duration::from_secs(1);
        pump(&mut [&mut a, &mut b, &mut c], &mut seen, |_, _| {
            Instant::now() > settle
        })
        .await;
        assert_eq!(a.connected_peers().collect::<Vec<_>>(), vec![c_id]);
        assert_eq!(b.connected_peers().collect::<Vec<_>>(), vec![c_id]);
        let mut c_peers: Vec<PeerId> = c.connected_peers().collect();
        c_peers.sort();
        let mut ab = vec![a_id, b_id];
        ab.sort();
        assert_eq!(c_peers, ab);
        // … and every remaining pair still talks, both ways.
        for (from, to, to_id) in [(0, 2, c_id), (1, 2, c_id), (2, 0, a_id), (2, 1, b_id)] {
            let sender: &mut Session = [&mut a, &mut b, &mut c].into_iter().nth(from).unwrap();
            sender.send(to_id, &Chat(format!("{from}->{to}"))).unwrap();
        }
        let mut got: Vec<Vec<(PeerId, Chat)>> = vec![Vec::new(), Vec::new(), Vec::new()];
        pump(&mut [&mut a, &mut b, &mut c], &mut seen, |s, _| {
            for (i, s) in s.iter_mut().enumerate() {
                got[i].extend(s.receive::<Chat>());
            }
            got[0].len() + got[1].len() + got[2].len() == 4
        })
        .await;
        assert_eq!(chats_from(&got, 2, a_id), ["0->2"]);
        assert_eq!(chats_from(&got, 2, b_id), ["1->2"]);
        assert_eq!(chats_from(&got, 0, c_id), ["2->0"]);
        assert_eq!(chats_from(&got, 1, c_id), ["2->1"]);
        // b's send to a is refused: a is no peer of b's any more.
        assert!(b.send(a_id, &Chat("hello?".into())).is_err());
    });
}

#[test]
fn dropping_a_message_loop_closes_its_connections_at_once() {
    if !volley_testkit::netns::isolate("dropping_a_message_loop_closes_its_connections_at_once") {
        return;
    }
    run(async {
        let server = server().await;
        let mut a = session(&server, "dropped", &[], IcePolicy::All);
        let (mut b, b_loop) = Session::builder(&format!("ws://{}/dropped", server.addr()))
            .register::<Chat>(Channel::Reliable)
            .unwrap()
            .build();
        let b_loop = tokio::spawn(b_loop);
        let mut seen = HashMap::new();
        pump(&mut [&mut a, &mut b], &mut seen, |s, _| {
            everyone_connected(s)
        })
        .await;
        let b_id = b.id().unwrap();

        // With the server gone (it would tell a that b left), b's process
        // keeps its session but drops the loop (a game that shuts its
        // networking down): a hears of it from the connection itself, well
        // before ICE's own timeout (5 s) would have told it.
        server.shutdown().await;
        let settle = Instant::now() + Duration::from_millis(300);
        pump(&mut [&mut a, &mut b], &mut seen, |_, _| {
            Instant::now() > settle
        })
        .await;
        assert_eq!(a.connected_peers().collect::<Vec<_>>(), vec![b_id]);
        b_loop.abort();
        let dropped = Instant::now();
        pump(&mut [&mut a], &mut seen, |_, seen| {
            seen[&0]
                .iter()
                .any(|e| matches!(e, SessionEvent::Left(p, _) if *p == b_id))
        })
        .await;
        let took = dropped.elapsed();
        println!(
            "a saw b leave {} ms after b's loop was dropped",
            took.as_millis()
        );
        assert!(took < Duration::from_secs(2), "{took:?}");
    });
}
