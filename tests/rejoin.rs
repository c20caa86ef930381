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
use volley_testkit::outage;
use volley_testkit::server::with_server;

/// The frame whose checksums are compared: the cut bot plays alone
/// meanwhile, so a frame both sides reach before the restart would hold
/// two different worlds (the restart comes about 5 s after the cut).
const FRAMES: i32 = 900;

/// Logs as `RUST_LOG` asks (shown when a test fails).
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

#[test]
fn a_player_cut_off_for_3_s_is_seated_again() {
    if !volley_testkit::netns::isolate_with_namespaces("a_player_cut_off_for_3_s_is_seated_again") {
        return;
    }
    logs();
    let own = outage::own_address();
    with_server(|server| {
        let mut run = BotRun::new(&format!("ws://{}", server.addr()), 1, 4, FRAMES);
        run.timeout = Duration::from_secs(90);
        let home: SocketAddr = "127.0.0.1:0".parse().unwrap();
        run.bind = vec![vec![home], vec![home], vec![home], vec![own]];
        // A player who stays records the match, restart included.
        let replay =
            std::env::temp_dir().join(format!("volley-rejoin-{}.replay", std::process::id()));
        run.record = Some(replay.clone());
        let mut down_at: Option<(i32, Instant)> = None;
        let mut up_at = None;
        let reports = run_rooms_directed(
            &run,
            |_, _, _| {},
            |frame| {
                if frame >= 200 && down_at.is_none() {
                    outage::cut(true);
                    down_at = Some((frame, Instant::now()));
                }
                if let Some((_, at)) = down_at
                    && up_at.is_none()
                    && at.elapsed() >= Duration::from_secs(3)
                {
                    outage::cut(false);
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
        // The recording plays back across the restart: a segment per
        // epoch, every checkpoint it plays equal.
        let bytes = std::fs::read(&replay).expect("the match was recorded");
        let _ = std::fs::remove_file(&replay);
        let segments = volley::bevy::rollback::Replay::decode(&bytes)
            .expect("the recording decodes")
            .segments
            .len();
        let status = volley_bots::replay::play(&bytes).expect("the recording plays");
        println!("replayed {segments} segments: {status:?}");
        assert!(segments >= 2, "no segment for the restart");
        assert_eq!(status.verdict.mismatch, None);
        assert!(status.verdict.verified >= 50, "{status:?}");
    });
}

/// The restarted bot's side of [`a_restarted_bot_process_is_seated_again`]:
/// set in a child's environment as `server|room prefix|token file`.
const CHILD: &str = "VOLLEY_REJOIN_CHILD";

/// One bot of the match, alone in this process, keeping its token in a
/// file; prints what it saw for the parent.
fn play_as_child(spec: &str) {
    logs();
    let mut parts = spec.split('|');
    let (Some(server), Some(prefix), Some(file)) = (parts.next(), parts.next(), parts.next())
    else {
        panic!("bad {CHILD}: {spec}");
    };
    let mut run = BotRun::new(server, 1, 4, FRAMES);
    run.room_prefix = prefix.to_string();
    run.bots_per_room = 1;
    run.timeout = Duration::from_secs(60);
    run.resume_files = vec![file.into()];
    let reports = volley_bots::run_rooms(&run);
    eprint!("the restarted bot's room: {}", reports[0]);
    let bot = &reports[0].bots[0];
    if let Some((at, why)) = &bot.unreachable {
        eprintln!("unreachable after {at:?}: {why}");
    }
    println!(
        "CHILD checksum={} rejoins={}",
        bot.checksum.map_or("-".to_string(), |c| format!("{c:x}")),
        bot.rejoins
    );
}

/// Four bots play; bot 3 runs in a process of its own. At frame 200 the
/// test kills that process (SIGKILL: no goodbye to anyone) and starts a
/// new one with the same room link and the token file the first one kept.
/// The new process gets the same id back from the server, connects to the
/// others, is seated again by a restart of the match, and reaches frame
/// 900 with the others' checksum.
#[test]
fn a_restarted_bot_process_is_seated_again() {
    if let Ok(spec) = std::env::var(CHILD) {
        play_as_child(&spec);
        return;
    }
    if !volley_testkit::netns::isolate("a_restarted_bot_process_is_seated_again") {
        return;
    }
    logs();
    with_server(|server| {
        let server_url = format!("ws://{}", server.addr());
        let mut run = BotRun::new(&server_url, 1, 4, FRAMES);
        run.bots_per_room = 3;
        run.timeout = Duration::from_secs(90);
        let file = std::env::temp_dir().join(format!("volley-rejoin-{}.seat", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let spec = format!("{server_url}|{}|{}", run.room_prefix, file.display());
        let spawn = || {
            Command::new(std::env::current_exe().expect("the test executable"))
                .args([
                    "a_restarted_bot_process_is_seated_again",
                    "--exact",
                    "--nocapture",
                ])
                .env(CHILD, &spec)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .expect("the bot process starts")
        };
        let mut first = Some(spawn());
        let mut second = None;
        let mut killed_at = None;
        let reports = run_rooms_directed(
            &run,
            |_, _, _| {},
            |frame| {
                if frame >= 200
                    && let Some(mut child) = first.take()
                {
                    let _ = child.kill();
                    let _ = child.wait();
                    killed_at = Some(frame);
                    second = Some(spawn());
                }
            },
        );
        for report in &reports {
            print!("{report}");
        }
        let mut second = second.expect("the bot process was killed and started again");
        let deadline = Instant::now() + Duration::from_secs(30);
        while second.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = second.kill();
        let out = second.wait_with_output().expect("the bot's output");
        let said = String::from_utf8_lossy(&out.stdout);
        println!("the restarted bot's output:\n{said}");
        let line = said
            .lines()
            .find(|l| l.starts_with("CHILD "))
            .unwrap_or_else(|| panic!("the restarted bot said nothing useful:\n{said}"));
        println!("killed at frame {killed_at:?}; the restarted bot: {line}");
        let _ = std::fs::remove_file(&file);
        assert!(reports.iter().all(|r| r.ok()), "the match broke");
        let ours = reports[0].bots[0].checksum.expect("a checksum");
        assert_eq!(
            line,
            format!("CHILD checksum={ours:x} rejoins=1"),
            "the restarted bot is not in the others' match"
        );
        for bot in &reports[0].bots {
            assert!(bot.rejoins >= 1, "the match never restarted: {bot:?}");
        }
    });
}
