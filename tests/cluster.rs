//! A cluster of three volley-server nodes on a real Redis, with players
//! over real WebRTC (inside a private network namespace, see
//! `volley_testkit::netns`): a pair matched by `?next=2` across two nodes,
//! and a 4-player box_game match whose players join through three nodes,
//! each 600 frames with equal checksums; and a 4-player match spread over
//! three nodes that loses the node its room lives on at frame 100 and
//! plays on, every player back with the cluster, through the others.

use std::time::Duration;

use volley::server::cluster::NodeId;
use volley::server::cluster::redis::ClusterConfig;
use volley::server::{Server, ServerConfig, ServerHandle};
use volley_bots::{BotRun, RoomReport, run_rooms, run_rooms_directed};
use volley_testkit::redis::Redis;
use volley_testkit::server::{metric, metrics};

fn assert_rooms(label: &str, reports: &[RoomReport]) {
    for report in reports {
        print!("{label} {report}");
    }
    for report in reports {
        assert!(report.ok(), "{label}: {report}");
    }
}

#[test]
fn matches_spread_over_three_nodes_play_600_frames_in_sync() {
    if !volley_testkit::netns::isolate("matches_spread_over_three_nodes_play_600_frames_in_sync") {
        return;
    }
    let redis = Redis::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let nodes: Vec<ServerHandle> = (0..3)
        .map(|i| {
            let id = format!("n{i}");
            let config = ServerConfig {
                addr: "127.0.0.1:0".parse().unwrap(),
                cluster: Some(ClusterConfig::new(
                    redis.url(),
                    NodeId::new(&id).unwrap(),
                    format!("ws://{id}"),
                )),
                ..ServerConfig::default()
            };
            runtime.block_on(async { Server::bind(config).await.unwrap().spawn() })
        })
        .collect();
    let urls: Vec<String> = nodes.iter().map(|n| format!("ws://{}", n.addr())).collect();
    let mut pair = BotRun::new(&urls[0], 1, 2, 600);
    pair.servers = urls[..2].to_vec();
    let mut four = BotRun::new(&urls[0], 1, 4, 600);
    four.servers = urls.clone();
    for run in [&mut pair, &mut four] {
        run.timeout = Duration::from_secs(90);
    }
    let (pair, four) = std::thread::scope(|scope| {
        let a = scope.spawn(|| run_rooms(&pair));
        let b = scope.spawn(|| run_rooms(&four));
        (
            a.join().expect("the pair ran"),
            b.join().expect("the 4-player room ran"),
        )
    });
    assert_rooms("2 nodes", &pair);
    assert_rooms("3 nodes", &four);
    for report in pair.iter().chain(&four) {
        assert!(
            report.bots.iter().all(|b| b.connect_time.is_some()),
            "{report}"
        );
    }
    for node in nodes {
        runtime.block_on(node.shutdown());
    }
}

/// A node on its own runtime: dropping the runtime kills it (sockets
/// closed without a goodbye, its Redis entry left to expire).
fn node(redis: &Redis, id: &str) -> (tokio::runtime::Runtime, ServerHandle) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        resume_secret: Some("cluster-test".into()),
        cluster: Some(ClusterConfig {
            node_ttl: Duration::from_secs(1),
            ..ClusterConfig::new(redis.url(), NodeId::new(id).unwrap(), format!("ws://{id}"))
        }),
        ..ServerConfig::default()
    };
    let handle = runtime.block_on(async { Server::bind(config).await.unwrap().spawn() });
    (runtime, handle)
}

#[test]
fn a_match_outlives_the_node_its_room_lives_on() {
    if !volley_testkit::netns::isolate("a_match_outlives_the_node_its_room_lives_on") {
        return;
    }
    let redis = Redis::start();
    let mut nodes: Vec<Option<(tokio::runtime::Runtime, ServerHandle)>> = (0..3)
        .map(|i| Some(node(&redis, &format!("n{i}"))))
        .collect();
    let urls: Vec<String> = nodes
        .iter()
        .flatten()
        .map(|(_, n)| format!("ws://{}", n.addr()))
        .collect();
    // Bots 0 and 3 join through n0, 1 through n1, 2 through n2.
    let mut run = BotRun::new(&urls[0], 1, 4, 600);
    run.servers = urls.clone();
    run.timeout = Duration::from_secs(90);
    let mut killed_at = None;
    let reports = run_rooms_directed(
        &run,
        |_, _, _| {},
        |frame| {
            if frame >= 100 && killed_at.is_none() {
                // The room's home: the node whose lobby holds it.
                let home = urls.iter().position(|url| {
                    let addr = url.trim_start_matches("ws://").parse().expect("an address");
                    metric(&metrics(addr), "volley_rooms") == 1.0
                });
                let home = home.expect("a node holds the room");
                drop(nodes[home].take());
                killed_at = Some((home, frame));
            }
        },
    );
    assert_rooms("home killed", &reports);
    println!("home (node, frame) killed: {killed_at:?}");
    for bot in &reports[0].bots {
        assert!(bot.signaling_lost >= 1, "a bot never noticed: {bot:?}");
        assert_eq!(
            bot.signaling_restored, bot.signaling_lost,
            "a bot is not back with the cluster: {bot:?}"
        );
    }
}
