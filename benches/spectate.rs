//! Time for a spectator to reach a running match: two headless box_game
//! bots play over real WebRTC; once they are `--join-at` frames in, a
//! spectator bot joins through the room's watch link. From the
//! spectator's first update it measures:
//! - *watching*: it has loaded the match's state (`RollbackEvent::Watching`:
//!   signaling, the connection to its feeder, the snapshot of a confirmed
//!   frame);
//! - *live*: it shows a frame within `WATCH_DELAY` frames of the players'
//!   confirmed frame (it catches up at up to `MAX_CATCH_UP` frames an
//!   update).
//!
//! One new match per cycle. There is no reference to put beside it: ggrs
//! and bevy_ggrs take spectators only when the session is built. The bots'
//! loop updates every bot every 4 ms at most, which bounds the resolution.
//!
//! `cargo bench -p volley --bench spectate [-- --cycles N --join-at F]`,
//! inside a private network namespace (it re-runs itself under `unshare`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use volley::bevy::rollback::{RollbackEvent, RollbackStatus, WATCH_DELAY};
use volley_bots::{BotRun, run_rooms_until};
use volley_testkit::netns;
use volley_testkit::report::{Better, Options, Table, quantile};
use volley_testkit::server::with_server;

/// A cycle whose spectator is not live this long after it started is
/// counted as failed.
const GIVE_UP: Duration = Duration::from_secs(20);

/// Players per match.
const PLAYERS: usize = 2;

/// What the bots of one match saw.
#[derive(Default)]
struct Seen {
    /// Each player's confirmed frame, by bot.
    confirmed: [i32; PLAYERS],
    /// The spectator's first update.
    started: Option<Instant>,
    /// When it loaded the match.
    watching: Option<Instant>,
    /// The frame it shows.
    shown: i32,
}

#[derive(Resource, Clone)]
struct Log {
    bot: usize,
    seen: Arc<Mutex<Seen>>,
}

fn record(log: Res<Log>, status: Res<RollbackStatus>, mut events: MessageReader<RollbackEvent>) {
    let now = Instant::now();
    let mut seen = log.seen.lock().unwrap_or_else(|p| p.into_inner());
    match seen.confirmed.get_mut(log.bot) {
        Some(confirmed) => *confirmed = status.confirmed_frame,
        None => {
            seen.started.get_or_insert(now);
            seen.shown = status.frame;
            if events
                .read()
                .any(|e| matches!(e, RollbackEvent::Watching { .. }))
            {
                seen.watching.get_or_insert(now);
            }
        }
    }
}

/// One cycle's figures (ms from the spectator's first update).
struct Cycle {
    watching: Option<f64>,
    live: Option<f64>,
}

/// One match, one spectator joining at `join_at`.
fn measure(server: &str, cycle: usize, join_at: i32) -> Cycle {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut bots = BotRun::new(server, 1, PLAYERS, i32::MAX);
    bots.room_prefix = format!("watch-{cycle}");
    bots.spectators = 1;
    bots.spectate_at = join_at;
    bots.timeout = Duration::from_secs(30) + GIVE_UP;
    let mut result = Cycle {
        watching: None,
        live: None,
    };
    run_rooms_until(
        &bots,
        |app, _, bot| {
            app.insert_resource(Log {
                bot,
                seen: seen.clone(),
            })
            .add_systems(Last, record);
        },
        |_| {
            let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            let Some(started) = seen.started else {
                return true;
            };
            let ms = |t: Instant| t.duration_since(started).as_secs_f64() * 1000.0;
            let players = seen.confirmed.iter().copied().min().unwrap_or(0);
            let live = seen.watching.is_some() && seen.shown + WATCH_DELAY as i32 >= players;
            if live {
                result = Cycle {
                    watching: seen.watching.map(ms),
                    live: Some(ms(Instant::now())),
                };
            }
            !live && started.elapsed() < GIVE_UP
        },
    );
    println!(
        "cycle {}: watching {:?} ms, live {:?} ms",
        cycle + 1,
        result.watching.map(f64::round),
        result.live.map(f64::round)
    );
    result
}

fn main() {
    netns::benchmark_inside(true);
    let o = Options::parse(&["cycles", "join-at"]);
    let cycles: usize = o.get("cycles", 20);
    let join_at: i32 = o.get("join-at", 300);
    let mut done = Vec::new();
    with_server(|server| {
        for cycle in 0..cycles {
            done.push(measure(&format!("ws://{}", server.addr()), cycle, join_at));
        }
    });
    let mut table = Table::new(
        "spectate",
        format!(
            "Time from a spectator's first update to the match loaded and to showing a frame within {WATCH_DELAY} of the players' confirmed frame; a {PLAYERS}-player box_game match of bots over WebRTC in a network namespace, joined at frame {join_at}, {cycles} matches."
        ),
        &["p50", "p99"],
    );
    table.ratio = false;
    let failed = done.iter().filter(|c| c.live.is_none()).count();
    let mut watching: Vec<f64> = done.iter().filter_map(|c| c.watching).collect();
    let mut live: Vec<f64> = done.iter().filter_map(|c| c.live).collect();
    table.row(
        "spectator: match loaded (ms)",
        Better::Lower,
        &[quantile(&mut watching, 0.5), quantile(&mut watching, 0.99)],
    );
    table.row(
        "spectator: live (ms)",
        Better::Lower,
        &[quantile(&mut live, 0.5), quantile(&mut live, 0.99)],
    );
    table.save();
    println!("\n{}", table.title);
    for row in &table.rows {
        println!(
            "{:>30}: p50 {:.0}  p99 {:.0}",
            row.name, row.values[0], row.values[1]
        );
    }
    assert_eq!(
        failed, 0,
        "some spectators never went live within {GIVE_UP:?}"
    );
}
