//! Time to rejoin a running match: two (then four) headless box_game bots
//! play over real WebRTC; the last bot's connections are bound to an
//! address of its own, and every cycle iptables drops all its packets for
//! `--cut-ms` (3 s by default, past the 2 s after which the others let it
//! go). From the
//! moment the packets flow again it measures:
//! - *reconnected*: the bot's connections to the others are up again (the
//!   redial schedule, ICE and DTLS);
//! - *playing again*: every bot has restarted the match with it in its
//!   seat (`RollbackEvent::Restarted`: views, plan, the others reaching the
//!   planned frame, the state handed over).
//!
//! There is no reference to put beside it: neither ggrs nor bevy_ggrs
//! takes a dropped player back. The bots' loop updates every bot every
//! 4 ms at most, which bounds the resolution.
//!
//! `cargo bench -p volley --bench rejoin [-- --cycles N --cut-ms MS]`, inside
//! a private network namespace (it re-runs itself under `unshare`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use volley::bevy::rollback::RollbackEvent;
use volley::bevy::{NetPeerEvent, SessionEvent};
use volley_bots::{BotRun, run_rooms_until};
use volley_testkit::report::{Better, Options, Table, quantile};
use volley_testkit::server::with_server;
use volley_testkit::{netns, outage};

/// Frames played between a restart and the next cut.
const PLAY_BETWEEN: i32 = 120;

/// A cycle that has not restarted this long after the link came back is
/// counted as failed.
const GIVE_UP: Duration = Duration::from_secs(15);

/// What a bot saw, when.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Seen {
    /// Its connection to the other bot came up.
    Connected,
    /// The match restarted.
    Restarted,
}

/// Each bot's events, by bot.
#[derive(Resource, Clone)]
struct Log {
    bot: usize,
    seen: Arc<Mutex<Vec<(usize, Seen, Instant)>>>,
}

fn record(
    log: Res<Log>,
    mut net: MessageReader<NetPeerEvent>,
    mut rb: MessageReader<RollbackEvent>,
) {
    let now = Instant::now();
    let mut seen = log.seen.lock().unwrap_or_else(|p| p.into_inner());
    for event in net.read() {
        if let SessionEvent::Connected(_) = event.0 {
            seen.push((log.bot, Seen::Connected, now));
        }
    }
    for event in rb.read() {
        if let RollbackEvent::Restarted { .. } = event {
            seen.push((log.bot, Seen::Restarted, now));
        }
    }
}

/// Where a cycle is.
#[derive(Clone, Copy)]
enum Phase {
    /// Playing; the next cut comes at this confirmed frame.
    Playing(i32),
    /// Cut since then.
    Cut(Instant),
    /// The link came back then; waiting for both bots to restart.
    Back(Instant),
}

/// One cycle's figures (ms from the link coming back).
struct Cycle {
    reconnected: Option<f64>,
    playing: Option<f64>,
}

/// `cycles` cuts of the last of `players` bots in one match: each
/// cycle's figures.
fn measure(
    server: &str,
    own: SocketAddr,
    players: usize,
    cycles: usize,
    cut_for: Duration,
) -> Vec<Cycle> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut done: Vec<Cycle> = Vec::new();
    // The run ends once every cycle is done.
    let mut bots = BotRun::new(server, 1, players, i32::MAX);
    bots.room_prefix = format!("rejoin-{players}");
    bots.timeout =
        Duration::from_secs(60) + (cut_for + GIVE_UP / 2) * u32::try_from(cycles).unwrap_or(1000);
    bots.linger = Duration::ZERO;
    let home: SocketAddr = "127.0.0.1:0".parse().unwrap();
    bots.bind = vec![vec![home]; players];
    bots.bind[players - 1] = vec![own];
    let cut_bot = players - 1;
    let mut phase = Phase::Playing(200);
    run_rooms_until(
        &bots,
        |app, _, bot| {
            app.insert_resource(Log {
                bot,
                seen: seen.clone(),
            })
            .add_systems(Last, record);
        },
        |frame| {
            phase = match phase {
                Phase::Playing(at) if frame >= at => {
                    outage::cut(true);
                    Phase::Cut(Instant::now())
                }
                Phase::Cut(at) if at.elapsed() >= cut_for => {
                    outage::cut(false);
                    Phase::Back(Instant::now())
                }
                Phase::Back(at) => {
                    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                    // The `n`th time `bot` saw `what` since the link came back.
                    let nth = |bot: usize, what: Seen, n: usize| {
                        seen.iter()
                            .filter(|(b, s, t)| *b == bot && *s == what && *t >= at)
                            .nth(n)
                            .map(|(_, _, t)| t.duration_since(at).as_secs_f64() * 1000.0)
                    };
                    let playing = (0..players)
                        .map(|bot| nth(bot, Seen::Restarted, 0))
                        .try_fold(0.0_f64, |latest, t| Some(latest.max(t?)));
                    if playing.is_some() || at.elapsed() >= GIVE_UP {
                        let cycle = Cycle {
                            reconnected: nth(cut_bot, Seen::Connected, players - 2),
                            playing,
                        };
                        println!(
                            "{players} players, cycle {}: reconnected {:?} ms, playing again {:?} ms",
                            done.len() + 1,
                            cycle.reconnected.map(f64::round),
                            cycle.playing.map(f64::round)
                        );
                        done.push(cycle);
                        Phase::Playing(frame + PLAY_BETWEEN)
                    } else {
                        Phase::Back(at)
                    }
                }
                unchanged => unchanged,
            };
            done.len() < cycles
        },
    );
    done
}

fn main() {
    netns::benchmark_inside(true);
    let o = Options::parse(&["cycles", "cut-ms"]);
    let cycles: usize = o.get("cycles", 20);
    let cut_for = Duration::from_millis(o.get("cut-ms", 3000));
    let own = outage::own_address();
    let mut results = Vec::new();
    with_server(|server| {
        for players in [2, 4] {
            let done = measure(
                &format!("ws://{}", server.addr()),
                own,
                players,
                cycles,
                cut_for,
            );
            results.push((players, done));
        }
    });
    let mut table = Table::new(
        "rejoin",
        format!(
            "Time from a cut player's network coming back (after {} ms of silence) to its connections being up again and to every player playing the restarted match; box_game bots over WebRTC in a network namespace, {cycles} cycles per match size.",
            cut_for.as_millis(),
        ),
        &["p50", "p99"],
    );
    table.ratio = false;
    let mut failed = 0;
    for (players, done) in &results {
        failed += done.iter().filter(|c| c.playing.is_none()).count();
        let mut reconnected: Vec<f64> = done.iter().filter_map(|c| c.reconnected).collect();
        let mut playing: Vec<f64> = done.iter().filter_map(|c| c.playing).collect();
        table.row(
            format!("{players} players: reconnected (ms)"),
            Better::Lower,
            &[
                quantile(&mut reconnected, 0.5),
                quantile(&mut reconnected, 0.99),
            ],
        );
        table.row(
            format!("{players} players: playing again (ms)"),
            Better::Lower,
            &[quantile(&mut playing, 0.5), quantile(&mut playing, 0.99)],
        );
        assert_eq!(done.len(), cycles, "{players} players: the run ended early");
    }
    table.save();
    println!("\n{}", table.title);
    for row in &table.rows {
        println!(
            "{:>34}: p50 {:.0}  p99 {:.0}",
            row.name, row.values[0], row.values[1]
        );
    }
    assert_eq!(failed, 0, "some cycles never restarted within {GIVE_UP:?}");
}
