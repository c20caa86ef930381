//! Signaling drops are not game drops: four bots play box_game over real
//! WebRTC (inside a private network namespace, see
//! `volley_testkit::netns`) while their signaling server crashes at frame
//! 100 and comes back at frame 300 on the same address with the same
//! resume secret. The match reaches frame 600 with equal checksums, and
//! every bot is back with the server, in its seat, afterwards.

use std::time::Duration;

use tokio::runtime::Runtime;
use volley::server::{Server, ServerConfig, ServerHandle};
use volley_bots::{BotRun, run_rooms_directed};
use volley_testkit::server::{metric, metrics};

/// A server on its own runtime: dropping the runtime is a crash (every
/// socket closed without a goodbye, nothing kept).
fn start(addr: std::net::SocketAddr) -> (Runtime, ServerHandle) {
    let runtime = Runtime::new().unwrap();
    let config = ServerConfig {
        addr,
        resume_secret: Some("signaling-loss-test".into()),
        ..ServerConfig::default()
    };
    let handle = runtime.block_on(async { Server::bind(config).await.unwrap().spawn() });
    (runtime, handle)
}

#[test]
fn a_match_outlives_its_signaling_server() {
    if !volley_testkit::netns::isolate("a_match_outlives_its_signaling_server") {
        return;
    }
    let (runtime, handle) = start("127.0.0.1:0".parse().unwrap());
    let addr = handle.addr();
    let mut server = Some((runtime, handle));
    let mut stopped_at = None;
    let mut restarted_at = None;
    let mut run = BotRun::new(&format!("ws://{addr}"), 1, 4, 600);
    run.timeout = Duration::from_secs(90);
    let reports = run_rooms_directed(
        &run,
        |_, _, _| {},
        |frame| {
            if frame >= 100 && stopped_at.is_none() {
                drop(server.take());
                stopped_at = Some(frame);
            }
            if frame >= 300 && restarted_at.is_none() {
                server = Some(start(addr));
                restarted_at = Some(frame);
            }
        },
    );
    for report in &reports {
        print!("{report}");
    }
    let (stopped, restarted) = (stopped_at.unwrap(), restarted_at.unwrap());
    println!("server stopped at frame {stopped}, back at frame {restarted}");
    assert!(reports.iter().all(|r| r.ok()), "the match broke");
    // Every bot came back in its seat: four resumes, nobody refused.
    let (_runtime, handle) = server.take().expect("the server is running");
    let text = metrics(handle.addr());
    for bot in &reports[0].bots {
        assert!(bot.signaling_lost >= 1, "a bot never noticed: {bot:?}");
        assert_eq!(
            bot.signaling_restored, bot.signaling_lost,
            "a bot is not back with the server: {bot:?}"
        );
    }
    assert_eq!(metric(&text, "volley_resumes_total"), 4.0, "{text}");
    assert!(!text.contains("volley_refusals_total"), "{text}");
}
