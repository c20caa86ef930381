//! Several volley-server nodes on one real Redis (`redis-server` on a free
//! port): matchmaking across nodes, signals between them, the merged room
//! list, a node dying, Redis stopped and started again. Each node runs on
//! its own tokio runtime, so that killing one (dropping its runtime) stops
//! its heartbeats and sockets at once, as a crashed process would.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use matchbox_protocol::{JsonPeerEvent, PeerId};
use support::*;
use tokio_tungstenite::tungstenite::Message;
use volley_server::cluster::NodeId;
use volley_server::cluster::redis::ClusterConfig;
use volley_server::limits::IpLimitsConfig;
use volley_server::lobby::LobbyConfig;
use volley_server::{Server, ServerConfig, ServerHandle};
use volley_testkit::redis::Redis;
use volley_testkit::server::run_async;

/// A node's TTL in these tests: a dead node is noticed within about 1.3 s.
const TTL: Duration = Duration::from_secs(1);

/// How long a lost player's seat is held: players of a dead node are out
/// of their rooms after TTL + HOLD.
const HOLD: Duration = Duration::from_secs(1);

struct Node {
    handle: ServerHandle,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Node {
    /// Dies as a process would: no goodbye, its entry expires after the TTL.
    fn kill(self) {
        drop(self);
    }
}

impl Drop for Node {
    /// Without waiting: a test that fails inside `run_async` drops its
    /// nodes there, where a blocking drop would hide the failure.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The nodes' logs (info and up), named by node, in the output of a test
/// that fails.
fn show_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_thread_names(true)
        .with_ansi(false)
        .with_env_filter("volley_server=info")
        .try_init();
}

/// A node of the cluster on `redis`, with the per-address limits off (all
/// test clients share 127.0.0.1).
fn node(redis: &Redis, id: &str) -> Node {
    show_logs();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(id)
        .enable_all()
        .build()
        .unwrap();
    let cluster = ClusterConfig {
        node_ttl: TTL,
        ..ClusterConfig::new(redis.url(), NodeId::new(id).unwrap(), format!("ws://{id}"))
    };
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        cluster: Some(cluster),
        lobby: LobbyConfig {
            seat_hold: HOLD,
            ..LobbyConfig::default()
        },
        per_ip: IpLimitsConfig {
            max_connections: 0,
            joins_per_minute: 0,
            room_creations_per_minute: 0,
            http_per_second: 0,
            http_burst: 0,
            max_tracked_ips: 100_000,
        },
        ..ServerConfig::default()
    };
    let handle = runtime.block_on(async { Server::bind(config).await.unwrap().spawn() });
    Node {
        handle,
        runtime: Some(runtime),
    }
}

/// Polls `GET path` on a node until the body satisfies `done` (bounded).
async fn http_until(node: &ServerHandle, path: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, body) = http_from(node, 250, "GET", path, "").await;
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never became right: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn players_on_different_nodes_are_matched_and_signal_each_other() {
    let redis = Redis::start();
    let nodes = [node(&redis, "n0"), node(&redis, "n1")];
    let (n0, n1) = (&nodes[0].handle, &nodes[1].handle);
    run_async(Duration::from_secs(60), async {
        let (mut a, id_a) = join(n0, "duel?next=2").await;
        let (mut b, id_b) = join(n1, "duel?next=2").await;
        assert_eq!(event(&mut a).await, JsonPeerEvent::NewPeer(id_b));
        signal(&mut a, id_b, r#"{"offer":"from a"}"#).await;
        match event(&mut b).await {
            JsonPeerEvent::Signal { sender, data } => {
                assert_eq!(sender, id_a);
                assert_eq!(data, serde_json::json!({"offer": "from a"}));
            }
            other => panic!("expected a signal, got {other:?}"),
        }
        signal(&mut b, id_a, r#"{"answer":"from b"}"#).await;
        assert!(
            matches!(event(&mut a).await, JsonPeerEvent::Signal { sender, .. } if sender == id_b)
        );
        // A signal to a peer of another room is dropped, across nodes too.
        let (mut c, id_c) = join(n1, "other").await;
        signal(&mut c, id_a, "1").await;
        signal(&mut b, id_c, "2").await;
        // Either node lists the rooms of both, the match in play with what
        // to watch it by; /api/nodes lists both nodes.
        let (_lobby, _) = join(n0, "lobby").await;
        let watch = format!("duel?next=2&spectate={id_a}");
        http_until(n1, "/api/rooms", |b| {
            b.contains("\"lobby\"") && b.contains("\"other\"") && b.contains(&watch)
        })
        .await;
        // A spectator through the node that is not the match's home: its
        // join goes home, and a (on the home) feeds it across nodes.
        let (mut s, id_s) = join(n1, &watch).await;
        assert_eq!(event(&mut a).await, JsonPeerEvent::NewPeer(id_s));
        signal(&mut a, id_s, r#"{"offer":"to s"}"#).await;
        assert!(
            matches!(event(&mut s).await, JsonPeerEvent::Signal { sender, .. } if sender == id_a)
        );
        http_until(n0, "/api/nodes", |b| {
            b.contains("\"n0\"") && b.contains("\"n1\"")
        })
        .await;
        // The pair leaves: the other hears it across nodes.
        leave(b).await;
        assert_eq!(event(&mut a).await, JsonPeerEvent::PeerLeft(id_b));
        let text = metrics(n1).await;
        assert!(
            metric(&text, "volley_cluster_messages_sent_total{kind=\"signal\"}") >= 2.0,
            "{text}"
        );
        assert_eq!(metric(&text, "volley_cluster_nodes"), 2.0);
        assert_eq!(metric(&text, "volley_cluster_redis_up"), 1.0);
        let home = metrics(n0).await;
        assert_eq!(metric(&home, "volley_matches_formed_total"), 1.0, "{home}");
        // Dropped where the sender's room lives: c's on n1, b's on n0.
        assert_eq!(metric(&home, "volley_signals_dropped_total"), 1.0, "{home}");
        assert_eq!(metric(&text, "volley_signals_dropped_total"), 1.0, "{text}");
    });
    for node in nodes {
        node.kill();
    }
}

#[test]
fn a_thousand_players_over_three_nodes_make_250_groups_of_four() {
    let _ = rlimit::increase_nofile_limit(10_000);
    let redis = Redis::start();
    let nodes = [node(&redis, "n0"), node(&redis, "n1"), node(&redis, "n2")];
    let handles: Vec<&ServerHandle> = nodes.iter().map(|n| &n.handle).collect();
    run_async(Duration::from_secs(120), async {
        // All at once: each peer on its own task, nodes taken in turn.
        let joins: Vec<_> = (0..1000)
            .map(|i| {
                let addr = handles[i % 3].addr();
                tokio::spawn(async move {
                    let url = format!("ws://{addr}/arena?next=4");
                    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
                    ws
                })
            })
            .collect();
        let mut sockets = Vec::new();
        for join in joins {
            sockets.push(join.await.unwrap());
        }
        // Every group formed, at one home.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut formed = 0.0;
            for node in &handles {
                formed += metric(&metrics(node).await, "volley_matches_formed_total");
            }
            if formed >= 250.0 {
                assert_eq!(formed, 250.0);
                break;
            }
            assert!(Instant::now() < deadline, "only {formed} groups formed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Who heard of whom.
        let mut id_of = Vec::new();
        let mut heard: Vec<Vec<PeerId>> = Vec::new();
        for ws in &mut sockets {
            let mut id = None;
            let mut news = Vec::new();
            while let Ok(Some(Ok(Message::Text(text)))) =
                tokio::time::timeout(Duration::from_millis(100), ws.next()).await
            {
                match text.parse::<JsonPeerEvent>().unwrap() {
                    JsonPeerEvent::IdAssigned(me) => id = Some(me),
                    JsonPeerEvent::NewPeer(other) => news.push(other),
                    other => panic!("unexpected {other:?}"),
                }
            }
            id_of.push(id.expect("every peer got its id"));
            heard.push(news);
        }
        // Groups: peers joined by who heard of whom.
        let index: HashMap<PeerId, usize> =
            id_of.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        let mut parent: Vec<usize> = (0..1000).collect();
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        for (i, news) in heard.iter().enumerate() {
            assert!(news.len() <= 3, "heard of {} newcomers", news.len());
            for other in news {
                let (a, b) = (root(&mut parent, i), root(&mut parent, index[other]));
                parent[a] = b;
            }
        }
        let mut sizes: HashMap<usize, usize> = HashMap::new();
        for i in 0..1000 {
            *sizes.entry(root(&mut parent, i)).or_default() += 1;
        }
        let groups = sizes.len();
        assert!(
            sizes.values().all(|&n| n == 4),
            "groups of {:?}",
            sizes.values().collect::<Vec<_>>()
        );
        assert_eq!(groups, 250);
        // One home holds the 250 rooms; the three nodes hold the sockets.
        let mut rooms = Vec::new();
        let mut sockets_held = 0.0;
        for node in &handles {
            let text = metrics(node).await;
            rooms.push(metric(&text, "volley_rooms"));
            sockets_held += metric(&text, "volley_peers_connected");
        }
        rooms.sort_by(f64::total_cmp);
        assert_eq!(rooms, [0.0, 0.0, 250.0]);
        assert_eq!(sockets_held, 1000.0);
    });
    for node in nodes {
        node.kill();
    }
}

#[test]
fn a_dead_node_is_dropped_and_its_players_come_back_through_another() {
    let redis = Redis::start();
    let nodes = vec![node(&redis, "n0"), node(&redis, "n1"), node(&redis, "n2")];
    run_async(Duration::from_secs(60), async move {
        let mut nodes = nodes;
        // "a" lives on n0, with a player on n1; "c" lives on n2, with
        // players on n1 and n0.
        let (a0, _) = join(&nodes[0].handle, "a").await;
        let (mut a1, id_a1) = join(&nodes[1].handle, "a").await;
        let (mut c2, id_c2) = join(&nodes[2].handle, "c").await;
        let (mut c1, id_c1) = join(&nodes[1].handle, "c").await;
        assert_eq!(event(&mut c2).await, JsonPeerEvent::NewPeer(id_c1));
        let (c0, id_c0) = join(&nodes[0].handle, "c").await;
        assert_eq!(event(&mut c2).await, JsonPeerEvent::NewPeer(id_c0));
        assert_eq!(event(&mut c1).await, JsonPeerEvent::NewPeer(id_c0));
        let _ = id_a1;
        let killed = Instant::now();
        nodes.remove(0).kill();
        drop((a0, c0));
        // n1's player of "a" is told that its room's node was lost...
        // (Within the TTL and a heartbeat or two; the wait is generous
        // because this binary's other tests load both cores meanwhile.)
        let (code, reason) = closed_within(&mut a1, Duration::from_secs(20)).await;
        assert_eq!(code, 4006, "{reason}");
        let noticed = killed.elapsed();
        // ...while "c" goes on: its members only hear that n0's player left,
        // once its seat's hold ends.
        assert_eq!(event(&mut c2).await, JsonPeerEvent::PeerLeft(id_c0));
        assert_eq!(event(&mut c1).await, JsonPeerEvent::PeerLeft(id_c0));
        signal(&mut c1, id_c2, "3").await;
        assert!(
            matches!(event(&mut c2).await, JsonPeerEvent::Signal { sender, .. } if sender == id_c1)
        );
        // The players of "a" come back through the survivors, as a client
        // retrying its room would.
        let (mut back1, _) = join(&nodes[0].handle, "a").await;
        let (_back2, id_back2) = join(&nodes[1].handle, "a").await;
        assert_eq!(event(&mut back1).await, JsonPeerEvent::NewPeer(id_back2));
        let back = killed.elapsed();
        eprintln!("node death noticed after {noticed:?}; players back in a room after {back:?}");
        assert!(back < Duration::from_secs(15), "{back:?}");
        http_until(&nodes[0].handle, "/api/nodes", |b| {
            b.contains("\"n1\"") && !b.contains("\"n0\"")
        })
        .await;
        let text = metrics(&nodes[0].handle).await;
        assert_eq!(metric(&text, "volley_cluster_nodes"), 2.0, "{text}");
        assert_eq!(refusals(&text, "node_lost"), 1, "{text}");
        for node in nodes {
            node.kill();
        }
    });
}

#[test]
fn without_redis_nodes_keep_their_rooms_and_refuse_the_rest_until_it_returns() {
    let mut redis = Redis::start();
    let nodes = vec![node(&redis, "n0"), node(&redis, "n1")];
    run_async(Duration::from_secs(60), async move {
        let (n0, n1) = (&nodes[0].handle, &nodes[1].handle);
        let (mut x0, id_x0) = join(n0, "x?next=2").await;
        redis.stop();
        metrics_until(n0, "volley_cluster_redis_up", 0.0).await;
        // A room n0 holds still matches and relays...
        let (mut x1, id_x1) = join(n0, "x?next=2").await;
        assert_eq!(event(&mut x0).await, JsonPeerEvent::NewPeer(id_x1));
        signal(&mut x1, id_x0, "1").await;
        assert!(
            matches!(event(&mut x0).await, JsonPeerEvent::Signal { sender, .. } if sender == id_x1)
        );
        // ...one it cannot look up is refused with a reason, and so are new codes.
        let mut z = connect(n0, "z").await;
        let (code, reason) = closed(&mut z).await;
        assert_eq!(code, 1013, "{reason}");
        assert!(reason.contains("unreachable"), "{reason}");
        let (status, _, _) = http_from(n0, 250, "POST", "/api/rooms", "").await;
        assert_eq!(status, 503);
        // Redis comes back (empty): the nodes register again and match across.
        redis.restart();
        metrics_until(n0, "volley_cluster_redis_up", 1.0).await;
        metrics_until(n1, "volley_cluster_redis_up", 1.0).await;
        metrics_until(n0, "volley_cluster_nodes", 2.0).await;
        let (mut z0, _) = join(n0, "z").await;
        let (_z1, id_z1) = join(n1, "z").await;
        assert_eq!(event(&mut z0).await, JsonPeerEvent::NewPeer(id_z1));
        // The match that lived through it is untouched.
        signal(&mut x0, id_x1, "2").await;
        assert!(
            matches!(event(&mut x1).await, JsonPeerEvent::Signal { sender, .. } if sender == id_x0)
        );
        let text = metrics(n0).await;
        assert_eq!(refusals(&text, "cluster_unavailable"), 2, "{text}");
        for node in nodes {
            node.kill();
        }
    });
}

#[test]
fn a_node_without_redis_is_a_clear_error() {
    let redis = Redis::start();
    let url = redis.url();
    drop(redis);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        cluster: Some(ClusterConfig::new(
            url,
            NodeId::new("n0").unwrap(),
            "ws://n0",
        )),
        ..ServerConfig::default()
    };
    let error = runtime
        .block_on(Server::bind(config))
        .err()
        .expect("no Redis, no node");
    let text = error.to_string();
    assert!(
        text.starts_with("cannot reach Redis at 127.0.0.1:"),
        "{text}"
    );
}
