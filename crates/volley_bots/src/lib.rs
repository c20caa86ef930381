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

pub mod forger;
pub mod hostile;

use std::fmt;
use std::time::{Duration, Instant};

use bevy::app::{App, PluginsState};
use bevy::prelude::*;
use bevy_volley::rollback::{ChecksumHistory, RollbackPlugin, RollbackStatus};
use bevy_volley::{
    ConditionerConfig, NetPeerEvent, NetStats, SessionEvent, TlsRoots, VolleyPlugin,
};
use volley_games::box_game::{self, BoxInput};
use volley_net::Link;

/// The games bots can play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Game {
    /// [`volley_games::box_game`].
    #[value(name = "box_game")]
    BoxGame,
}

/// What to play: rooms × players of `game`, each bot until `frames` are confirmed.
#[derive(Debug, Clone)]
pub struct BotRun {
    /// Signaling server base URL (`ws://host:port`).
    pub server: String,
    /// A cluster's nodes (`ws://host:port` each): when not empty, bot `i`
    /// of a room joins through node `i % len` instead of `server`, so every
    /// room spans the nodes.
    pub servers: Vec<String>,
    /// The game.
    pub game: Game,
    /// Rooms played at once.
    pub rooms: usize,
    /// Bots per room.
    pub players: usize,
    /// Frames every bot must confirm.
    pub frames: i32,
    /// Seed of the input policies (bot `i` of room `r` uses a seed derived from it).
    pub seed: u64,
    /// Simulated bad network on every bot's sends.
    pub conditioner: Option<ConditionerConfig>,
    /// Give up after this long.
    pub timeout: Duration,
    /// The room name, or the prefix of the room names when there are
    /// several (a random one by default, so runs never meet).
    pub room_prefix: String,
    /// Frames of input delay.
    pub input_delay: usize,
    /// Bots per room (default: `players`; fewer leaves seats for others,
    /// e.g. a browser player).
    pub bots_per_room: usize,
    /// How long bots keep playing after all are done, so their last inputs
    /// reach peers that are not bots.
    pub linger: Duration,
    /// Bots (by index within their room) neither waited for nor judged:
    /// hostile ones, which honest peers drop.
    pub unjudged: Vec<usize>,
    /// The roots trusted for a `wss://` server.
    pub tls_roots: TlsRoots,
}

impl BotRun {
    /// `rooms` rooms of `players` bots playing box_game for `frames` frames.
    pub fn new(server: &str, rooms: usize, players: usize, frames: i32) -> Self {
        BotRun {
            server: server.trim_end_matches('/').to_string(),
            servers: Vec::new(),
            game: Game::BoxGame,
            rooms,
            players,
            frames,
            seed: 1,
            conditioner: None,
            timeout: Duration::from_secs(60),
            room_prefix: format!("bots-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            input_delay: 2,
            bots_per_room: players,
            linger: Duration::ZERO,
            unjudged: Vec::new(),
            tls_roots: TlsRoots::default(),
        }
    }

    /// The URL bots of room `r` join: a match of exactly `players`, in
    /// the room named `room_prefix` when there is one room, else
    /// `room_prefix-r`.
    pub fn room_url(&self, room: usize) -> String {
        let name = if self.rooms == 1 {
            self.room_prefix.clone()
        } else {
            format!("{}-{room}", self.room_prefix)
        };
        format!("{}/{name}?next={}", self.server, self.players)
    }

    /// The URL bot `bot` of room `room` joins: [`BotRun::room_url`], through
    /// its node of [`BotRun::servers`] when there are several.
    pub fn bot_url(&self, room: usize, bot: usize) -> String {
        let url = self.room_url(room);
        match self.servers.get(bot % self.servers.len().max(1)) {
            Some(node) => url.replacen(&self.server, node.trim_end_matches('/'), 1),
            None => url,
        }
    }
}

/// One bot's outcome.
#[derive(Debug, Clone, Default)]
pub struct BotReport {
    /// Its player handle.
    pub handle: Option<usize>,
    /// App start → rollback session started (all peers connected).
    pub connect_time: Option<Duration>,
    /// Frames confirmed.
    pub confirmed_frame: i32,
    /// Rollbacks and the frames they re-simulated.
    pub rollbacks: u64,
    /// Frames re-simulated.
    pub rollback_frames: u64,
    /// Desyncs detected.
    pub desyncs: u64,
    /// Mean RTT to its peers at the end.
    pub rtt: Option<Duration>,
    /// Its checksum of the target frame.
    pub checksum: Option<u128>,
    /// Scores by handle at the end.
    pub scores: Vec<u32>,
    /// The first desync a peer explained: frame and differing checksum parts.
    pub diagnosis: Option<(i32, Vec<String>)>,
    /// Frames confirmed per second from the session's start to the target
    /// frame (60 at best: below it, the bot could not keep up).
    pub frame_rate: Option<f64>,
    /// The path to a peer (the first one whose path is known).
    pub link: Option<Link>,
    /// A peer it could not connect to: when (since start) and why.
    pub unreachable: Option<(Duration, String)>,
}

/// One room's outcome.
#[derive(Debug, Clone)]
pub struct RoomReport {
    /// Room index.
    pub room: usize,
    /// Bots, by join order.
    pub bots: Vec<BotReport>,
    /// The frame whose checksums are compared.
    pub frame: i32,
    /// Why it failed, if it did.
    pub failure: Option<String>,
}

impl RoomReport {
    /// Every bot confirmed the frame with the same checksum, and nobody desynced.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }

    fn judge(&mut self, timed_out: bool) {
        let checksums: Vec<Option<u128>> = self.bots.iter().map(|b| b.checksum).collect();
        let desyncs: u64 = self.bots.iter().map(|b| b.desyncs).sum();
        self.failure = if checksums.iter().any(Option::is_none) {
            Some(if timed_out {
                format!(
                    "timed out: confirmed frames {:?}",
                    self.bots
                        .iter()
                        .map(|b| b.confirmed_frame)
                        .collect::<Vec<_>>()
                )
            } else {
                "a bot has no checksum".to_string()
            })
        } else if checksums.windows(2).any(|w| w[0] != w[1]) {
            Some(format!("checksums differ at frame {}", self.frame))
        } else if desyncs > 0 {
            Some(format!("{desyncs} desyncs detected"))
        } else {
            None
        };
    }
}

impl fmt::Display for RoomReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "room {}: {}",
            self.room,
            self.failure.as_deref().unwrap_or("ok")
        )?;
        for bot in &self.bots {
            writeln!(
                f,
                "  player {:>4}  connect {:>7}  frames {:>5}  rollbacks {:>4} ({:>5} frames)  desyncs {}  rtt {:>8}  checksum {}  scores {:?}",
                bot.handle.map_or("-".to_string(), |h| h.to_string()),
                bot.connect_time
                    .map_or("-".to_string(), |d| format!("{} ms", d.as_millis())),
                bot.confirmed_frame,
                bot.rollbacks,
                bot.rollback_frames,
                bot.desyncs,
                bot.rtt.map_or("-".to_string(), |d| format!(
                    "{:.2} ms",
                    d.as_secs_f64() * 1e3
                )),
                bot.checksum
                    .map_or("-".to_string(), |c| format!("{:08x}", c as u32)),
                bot.scores
            )?;
            if let Some((frame, parts)) = &bot.diagnosis {
                writeln!(
                    f,
                    "    desync at frame {frame}: differing {}",
                    parts.join(", ")
                )?;
            }
        }
        Ok(())
    }
}

/// A bot's app: `MinimalPlugins`, the network, rollback and the game.
pub fn bot_app(run: &BotRun, room_url: &str, seed: u64) -> App {
    let mut app = App::new();
    let version = match run.game {
        Game::BoxGame => box_game::APP_VERSION,
    };
    let mut volley = VolleyPlugin::new(room_url)
        .app_version(version)
        .min_peers(run.players.saturating_sub(1).max(1))
        .tls_roots(run.tls_roots.clone());
    if let Some(c) = run.conditioner {
        volley = volley.conditioner(ConditionerConfig {
            seed: c.seed ^ seed,
            ..c
        });
    }
    app.add_plugins((
        MinimalPlugins,
        volley,
        RollbackPlugin::<BoxInput>::new(run.players).input_delay(run.input_delay),
    ));
    match run.game {
        Game::BoxGame => {
            box_game::add_bot(&mut app, run.players, seed);
        }
    }
    app
}

struct Bot {
    app: App,
    room: usize,
    judged: bool,
    started: Instant,
    report: BotReport,
}

impl Bot {
    fn done(&self, frame: i32) -> bool {
        self.report.checksum.is_some() && self.report.confirmed_frame >= frame
    }

    fn observe(&mut self, frame: i32) {
        let world = self.app.world_mut();
        if let Some(status) = world.get_resource::<RollbackStatus>() {
            if self.report.connect_time.is_none() && status.local_handle.is_some() {
                self.report.connect_time = Some(self.started.elapsed());
            }
            self.report.handle = status.local_handle;
            self.report.confirmed_frame = status.confirmed_frame;
            self.report.rollbacks = status.rollbacks;
            self.report.rollback_frames = status.rollback_frames;
            self.report.desyncs = status.desyncs;
            self.report.diagnosis.clone_from(&status.first_diagnosis);
        }
        if self.report.frame_rate.is_none()
            && self.report.confirmed_frame >= frame
            && let Some(connected) = self.report.connect_time
        {
            let playing = self.started.elapsed().saturating_sub(connected);
            self.report.frame_rate = Some(f64::from(frame) / playing.as_secs_f64().max(1e-3));
        }
        if self.report.checksum.is_none() && self.report.confirmed_frame >= frame {
            self.report.checksum = world
                .get_resource::<ChecksumHistory>()
                .and_then(|h| h.get(frame))
                .map(|c| c.total);
        }
        if self.report.unreachable.is_none()
            && let Some(events) = world.get_resource::<Messages<NetPeerEvent>>()
        {
            self.report.unreachable =
                events
                    .iter_current_update_messages()
                    .find_map(|e| match &e.0 {
                        SessionEvent::Unreachable(_, why) => {
                            Some((self.started.elapsed(), why.clone()))
                        }
                        _ => None,
                    });
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
/// app before it starts (tests use it to break a bot on purpose).
pub fn run_rooms_with(run: &BotRun, customize: impl Fn(&mut App, usize, usize)) -> Vec<RoomReport> {
    let mut bots = Vec::new();
    for room in 0..run.rooms {
        for i in 0..run.bots_per_room {
            let url = run.bot_url(room, i);
            let seed = run.seed.wrapping_mul(1_000_003) ^ ((room as u64) << 16 | i as u64);
            let mut app = bot_app(run, &url, seed);
            customize(&mut app, room, i);
            while app.plugins_state() == PluginsState::Adding {
                bevy::tasks::tick_global_task_pools_on_main_thread();
            }
            app.finish();
            app.cleanup();
            bots.push(Bot {
                app,
                room,
                judged: !run.unjudged.contains(&i),
                started: Instant::now(),
                report: BotReport::default(),
            });
        }
    }
    let deadline = Instant::now() + run.timeout;
    let mut timed_out = false;
    let mut done_at: Option<Instant> = None;
    loop {
        let tick = Instant::now();
        for bot in &mut bots {
            bot.app.update();
            bot.observe(run.frames);
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
        report.judge(timed_out);
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots_of_a_room_join_through_the_nodes_in_turn() {
        let mut run = BotRun::new("ws://a:1/", 2, 4, 60);
        run.room_prefix = "r".into();
        assert_eq!(run.bot_url(1, 3), "ws://a:1/r-1?next=4");
        run.servers = vec!["ws://a:1".into(), "ws://b:2/".into(), "ws://c:3".into()];
        let urls: Vec<String> = (0..4).map(|bot| run.bot_url(0, bot)).collect();
        assert_eq!(
            urls,
            [
                "ws://a:1/r-0?next=4",
                "ws://b:2/r-0?next=4",
                "ws://c:3/r-0?next=4",
                "ws://a:1/r-0?next=4"
            ]
        );
    }
}
