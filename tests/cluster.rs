//! A cluster of three volley-server nodes on a real Redis, with players
//! over real WebRTC (inside a private network namespace, see
//! `volley_testkit::netns`): a pair matched by `?next=2` across two nodes,
//! and a 4-player box_game match whose players join through three nodes,
//! each 600 frames with equal checksums.

use std::time::Duration;

use volley::server::cluster::NodeId;
use volley::server::cluster::redis::ClusterConfig;
use volley::server::{Server, ServerConfig, ServerHandle};
use volley_bots::{BotRun, RoomReport, run_rooms};
use volley_testkit::redis::Redis;

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
