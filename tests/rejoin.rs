//! Rejoining a running match: four bots play box_game over real WebRTC
//! (inside a private network namespace, see `volley_testkit::netns`). Bot
//! 3's connections are bound to an address of its own; at frame 200 the
//! test drops every packet to and from that address for 3 s (iptables: the
//! packets vanish, as in a real outage; taking a link down does not stop
//! traffic between local addresses, which goes through `lo`). The others let the
//! silent bot go and play on; so does it, alone. When the link is back,
//! the peers connect again by themselves, the match restarts from the
//! others' confirmed state with bot 3 in its seat (same handle), and all
//! four reach frame 900 with equal checksums.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use volley_bots::{BotRun, run_rooms_directed};
use volley_testkit::server::with_server;

/// The frame whose checksums are compared: the cut bot plays alone
/// meanwhile, so a frame both sides reach before the restart would hold
/// two different worlds (the restart comes about 5 s after the cut).
const FRAMES: i32 = 900;

/// The cut bot's own address.
const CUT_IP: &str = "10.77.0.2";

fn run(program: &str, args: &str) {
    let out = Command::new(program)
        .args(args.split_whitespace())
        .output()
        .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
    assert!(
        out.status.success(),
        "{program} {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Drops (`-I`) or lets through again (`-D`) every packet to or from the
/// cut bot's address.
fn cut(how: &str) {
    run("iptables", &format!("-w {how} INPUT -s {CUT_IP} -j DROP"));
    run("iptables", &format!("-w {how} INPUT -d {CUT_IP} -j DROP"));
}

#[test]
fn a_player_cut_off_for_3_s_is_seated_again() {
    if !volley_testkit::netns::isolate_with_namespaces("a_player_cut_off_for_3_s_is_seated_again") {
        return;
    }
    // A veth pair (no dummy links in every kernel) to hold the address.
    run("ip", "link add cut0 type veth peer name cut1");
    run("ip", &format!("addr add {CUT_IP}/32 dev cut0"));
    run("ip", "link set cut1 up");
    run("ip", "link set cut0 up");
    with_server(|server| {
        let mut run = BotRun::new(&format!("ws://{}", server.addr()), 1, 4, FRAMES);
        run.timeout = Duration::from_secs(90);
        let home: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let own: SocketAddr = format!("{CUT_IP}:0").parse().unwrap();
        run.bind = vec![vec![home], vec![home], vec![home], vec![own]];
        let mut down_at: Option<(i32, Instant)> = None;
        let mut up_at = None;
        let reports = run_rooms_directed(
            &run,
            |_, _, _| {},
            |frame| {
                if frame >= 200 && down_at.is_none() {
                    cut("-I");
                    down_at = Some((frame, Instant::now()));
                }
                if let Some((_, at)) = down_at
                    && up_at.is_none()
                    && at.elapsed() >= Duration::from_secs(3)
                {
                    cut("-D");
                    up_at = Some(frame);
                }
            },
        );
        for report in &reports {
            print!("{report}");
        }
        let (down, _) = down_at.expect("the network was cut");
        println!("cut at frame {down}, back at frame {up_at:?}");
        assert!(up_at.is_some(), "the network never came back");
        assert!(reports.iter().all(|r| r.ok()), "the match broke");
        for bot in &reports[0].bots {
            assert!(bot.rejoins >= 1, "the match never restarted: {bot:?}");
        }
    });
}
