//! Headless bots: each is a Bevy [`App`] with `MinimalPlugins`, the game's
//! simulation, volley's network and rollback plugins, and a seeded input
//! policy — the same code a player runs, minus rendering.
//!
//! [`run_rooms`] plays several rooms at once in the calling thread and
//! reports, per room, connect times, frames, rollbacks, desyncs, RTT and
//! whether every bot ended with the same checksum at the same frame.
//!
//! ```no_run
//! use volley_bots::{BotRun, run_rooms};
//!
//! let run = BotRun::new("ws://127.0.0.1:3536", 2, 2, 600);
//! let rooms = run_rooms(&run);
//! assert!(rooms.iter().all(|room| room.ok()));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod desync;
pub mod forger;
pub mod hostile;
pub mod replay;
mod report;
mod run;

pub use report::{BotReport, RoomReport};
pub use run::{BotRun, Game};

use std::time::{Duration, Instant};

use bevy::app::{App, PluginsState};
use bevy::ecs::message::MessageCursor;
use bevy::prelude::*;
use bevy_volley::rollback::{ChecksumHistory, RollbackPlugin, RollbackStatus};
use bevy_volley::{ConditionerConfig, NetPeerEvent, NetStats, SessionEvent, VolleyPlugin};
use volley_games::box_game::{self, BoxInput};

/// A bot's app: `MinimalPlugins`, the network, rollback and the game.
/// `fallbacks`: the nodes it comes back through if its own is lost;
/// `bind`: the addresses its connections bind to (empty: the default);
/// `resume_file`: where it keeps its seat's resume token; `role`: whether
/// it watches (`room_url` asks to spectate) and records.
pub fn bot_app(
    run: &BotRun,
    room_url: &str,
    fallbacks: Vec<String>,
    bind: &[std::net::SocketAddr],
    resume_file: Option<&std::path::Path>,
    seed: u64,
    role: BotRole,
) -> App {
    let spectator = role.spectator;
    let mut app = App::new();
    let version = match run.game {
        Game::BoxGame => box_game::APP_VERSION,
    };
    let mut volley = VolleyPlugin::new(room_url)
        .app_version(version)
        .min_peers(match spectator {
            true => 1,
            false => run.players.saturating_sub(1).max(1),
        })
        .tls_roots(run.tls_roots.clone())
        .fallback_servers(fallbacks);
    if let Some(file) = resume_file {
        volley = volley.resume_file(file);
    }
    if !bind.is_empty() {
        volley = volley.ice(bevy_volley::IceConfig {
            bind: bind.to_vec(),
            ..Default::default()
        });
    }
    if let Some(c) = run.conditioner {
        volley = volley.conditioner(ConditionerConfig {
            seed: c.seed ^ seed,
            ..c
        });
    }
    let mut rollback = match spectator {
        true => RollbackPlugin::<BoxInput>::spectate(run.players),
        false => RollbackPlugin::<BoxInput>::new(run.players).input_delay(run.input_delay),
    };
    if let (false, Some(dir)) = (spectator, &run.desync_dir) {
        rollback = rollback.dump_desyncs(dir.clone());
    }
    if let Some(path) = role.record {
        rollback = rollback.record(path);
    }
    app.add_plugins((MinimalPlugins, volley, rollback));
    match run.game {
        Game::BoxGame => {
            box_game::add_bot(&mut app, run.players, seed);
        }
    }
    app
}

/// What a bot does besides playing box_game.
#[derive(Debug, Clone, Default)]
pub struct BotRole {
    /// It watches (its room URL asks to spectate) instead of playing.
    pub spectator: bool,
    /// It records the match into this file.
    pub record: Option<std::path::PathBuf>,
}

struct Bot {
    app: App,
    room: usize,
    judged: bool,
    started: Instant,
    report: BotReport,
    /// Where this bot's reading of its session's events stands (messages
    /// stay readable for two updates: each is counted once).
    events: MessageCursor<NetPeerEvent>,
}

impl Bot {
    fn new(mut app: App, room: usize, judged: bool) -> Self {
        while app.plugins_state() == PluginsState::Adding {
            bevy::tasks::tick_global_task_pools_on_main_thread();
        }
        app.finish();
        app.cleanup();
        Bot {
            app,
            room,
            judged,
            started: Instant::now(),
            report: BotReport::default(),
            events: MessageCursor::default(),
        }
    }

    fn done(&self, frame: i32) -> bool {
        self.report.checksum.is_some() && self.report.confirmed_frame >= frame
    }

    fn observe(&mut self, frame: i32, check_from: Option<i32>) {
        let world = self.app.world_mut();
        if let Some(status) = world.get_resource::<RollbackStatus>() {
            self.report.spectator = status.spectating;
            let started = status.local_handle.is_some() || status.spectating;
            if self.report.connect_time.is_none() && started {
                self.report.connect_time = Some(self.started.elapsed());
            }
            self.report.handle = status.local_handle;
            self.report.confirmed_frame = status.confirmed_frame;
            self.report.rollbacks = status.rollbacks;
            self.report.rollback_frames = status.rollback_frames;
            self.report.desyncs = status.desyncs;
            self.report.rejoins = status.rejoins;
            self.report.diagnosis.clone_from(&status.first_diagnosis);
        }
        if self.report.frame_rate.is_none()
            && self.report.confirmed_frame >= frame
            && let Some(connected) = self.report.connect_time
        {
            let playing = self.started.elapsed().saturating_sub(connected);
            self.report.frame_rate = Some(f64::from(frame) / playing.as_secs_f64().max(1e-3));
        }
        if let (Some(from), Some(history)) = (check_from, world.get_resource::<ChecksumHistory>()) {
            let last = self.report.confirmed_frame.min(frame);
            let first = (self.report.checksums.last_key_value())
                .map_or(from, |(f, _)| f + 1)
                .max(from);
            for f in first..=last {
                if let Some(c) = history.get(f) {
                    self.report.checksums.insert(f, c.total);
                }
            }
        }
        if self.report.checksum.is_none() && self.report.confirmed_frame >= frame {
            self.report.checksum = world
                .get_resource::<ChecksumHistory>()
                .and_then(|h| h.get(frame))
                .map(|c| c.total);
        }
        if let Some(events) = world.get_resource::<Messages<NetPeerEvent>>() {
            for event in self.events.read(events) {
                match &event.0 {
                    SessionEvent::Unreachable(_, why) if self.report.unreachable.is_none() => {
                        self.report.unreachable = Some((self.started.elapsed(), why.clone()));
                    }
                    SessionEvent::SignalingLost(_) => self.report.signaling_lost += 1,
                    SessionEvent::SignalingRestored => self.report.signaling_restored += 1,
                    _ => {}
                }
            }
        }
        if let Some(stats) = world.get_resource::<NetStats>() {
            if self.report.link.is_none() {
                self.report.link = stats.peers.values().find_map(|s| s.link.clone());
            }
            let rtts: Vec<Duration> = stats.peers.values().filter_map(|s| s.rtt).collect();
            if !rtts.is_empty() {
                self.report.rtt = Some(rtts.iter().sum::<Duration>() / rtts.len() as u32);
            }
        }
    }
}

/// How often every bot's app is updated.
const TICK: Duration = Duration::from_millis(4);

/// Plays `run.rooms` rooms at once in this thread, until every bot has
/// confirmed `run.frames` frames or `run.timeout` passed.
pub fn run_rooms(run: &BotRun) -> Vec<RoomReport> {
    run_rooms_with(run, |_, _, _| {})
}

/// [`run_rooms`], with `customize(app, room, bot)` applied to every bot's
/// app before it starts (tests use it to break a bot on purpose);
/// spectators are bots `bots_per_room..`.
pub fn run_rooms_with(run: &BotRun, customize: impl Fn(&mut App, usize, usize)) -> Vec<RoomReport> {
    run_rooms_directed(run, customize, |_| {})
}

/// [`run_rooms_with`], calling `director` after every round of updates
/// with the lowest frame the judged bots have confirmed (tests use it to
/// break the world around the bots at a given frame).
pub fn run_rooms_directed(
    run: &BotRun,
    customize: impl Fn(&mut App, usize, usize),
    mut director: impl FnMut(i32),
) -> Vec<RoomReport> {
    run_rooms_until(run, customize, |frame| {
        director(frame);
        true
    })
}

/// [`run_rooms_directed`], stopping as soon as `director` returns `false`
/// (benchmarks use it to end a run when they have their samples; the
/// reports then say how far the bots got).
pub fn run_rooms_until(
    run: &BotRun,
    customize: impl Fn(&mut App, usize, usize),
    mut director: impl FnMut(i32) -> bool,
) -> Vec<RoomReport> {
    let mut bots = Vec::new();
    for room in 0..run.rooms {
        for i in 0..run.bots_per_room {
            let url = run.bot_url(room, i);
            let seed = run.seed.wrapping_mul(1_000_003) ^ ((room as u64) << 16 | i as u64);
            let bind = run.bind.get(i).map_or(&[][..], Vec::as_slice);
            let resume = run.resume_files.get(i).map(std::path::PathBuf::as_path);
            let role = BotRole {
                spectator: false,
                record: run.record.clone().filter(|_| room == 0 && i == 0),
            };
            let mut app = bot_app(run, &url, run.bot_fallbacks(i), bind, resume, seed, role);
            customize(&mut app, room, i);
            bots.push(Bot::new(app, room, !run.unjudged.contains(&i)));
        }
    }
    let mut spectating = false;
    let deadline = Instant::now() + run.timeout;
    let mut timed_out = false;
    let mut done_at: Option<Instant> = None;
    loop {
        let tick = Instant::now();
        for bot in &mut bots {
            bot.app.update();
            bot.observe(run.frames, run.check_from);
        }
        let lowest = bots.iter().filter(|b| b.judged);
        let lowest = lowest.map(|b| b.report.confirmed_frame).min().unwrap_or(0);
        if !director(lowest) {
            break;
        }
        if !spectating && run.spectators > 0 && lowest >= run.spectate_at {
            spectating = true;
            for room in 0..run.rooms {
                for i in 0..run.spectators {
                    let seed = run.seed ^ 0x5EC7 ^ ((room as u64) << 16 | i as u64);
                    let url = run.watch_url(room);
                    let role = BotRole {
                        spectator: true,
                        record: None,
                    };
                    let mut app = bot_app(run, &url, Vec::new(), &[], None, seed, role);
                    customize(&mut app, room, run.bots_per_room + i);
                    bots.push(Bot::new(app, room, true));
                }
            }
        }
        // A bot told its peer is unreachable (no path, not even relayed)
        // will not play: waiting for the timeout would only hide that.
        if done_at.is_none()
            && bots
                .iter()
                .all(|b| !b.judged || b.done(run.frames) || b.report.unreachable.is_some())
        {
            done_at = Some(Instant::now());
        }
        if done_at.is_some_and(|at| at.elapsed() >= run.linger) {
            break;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        if let Some(rest) = TICK.checked_sub(tick.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let mut reports: Vec<RoomReport> = (0..run.rooms)
        .map(|room| RoomReport {
            room,
            bots: Vec::new(),
            frame: run.frames,
            failure: None,
        })
        .collect();
    for mut bot in bots {
        if !bot.judged {
            continue;
        }
        bot.report.scores = box_game::scores(bot.app.world_mut());
        reports[bot.room].bots.push(bot.report);
    }
    for report in &mut reports {
        report.judge(timed_out, run.check_from);
    }
    reports
}
