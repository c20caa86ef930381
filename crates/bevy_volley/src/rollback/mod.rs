//! Rollback netcode: a ggrs P2P session (through bevy_ggrs) started when the
//! room has its players, carried on volley's reserved
//! [`Channel::Rollback`](volley_net::Channel::Rollback) channel.
//!
//! The game registers its input type and its rollback state the bevy_ggrs
//! way, and adds a [`RollbackPlugin`]. Player handles are the players' peer
//! ids in ascending order, so every peer assigns them the same way without a
//! round trip.
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_volley::prelude::*;
//! use bevy_volley::rollback::{RollbackPlugin, VolleyGgrs};
//! use bevy_volley::rollback::bevy_ggrs::{LocalInputs, LocalPlayers, ReadInputs};
//!
//! #[derive(Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
//! struct Input(u8);
//!
//! fn read_input(mut commands: Commands, players: Res<LocalPlayers>) {
//!     let inputs = players.0.iter().map(|&handle| (handle, Input(0))).collect();
//!     commands.insert_resource(LocalInputs::<VolleyGgrs<Input>>(inputs));
//! }
//!
//! App::new()
//!     .add_plugins((
//!         MinimalPlugins,
//!         VolleyPlugin::new("ws://127.0.0.1:3536/arena?next=2"),
//!         RollbackPlugin::<Input>::new(2).input_delay(2),
//!     ))
//!     .add_systems(ReadInputs, read_input)
//!     .run();
//! ```

mod checksum;
mod desync;
mod drop;
mod pipe;
mod replay;
mod seats;
mod session;
mod state;
mod watch;

use checksum::{ChecksumNames, ReportsAsked, compare_reports, record_checksum};
use desync::{KeptWorlds, dump_desyncs, keep_world};
use drop::{RollbackDrops, drop_players};
use pipe::{RollbackGuard, RollbackPipe, pipe_in, pipe_out};
use replay::{Playback, RECORDER, play_back, record_checkpoints, verify_replay};
use seats::{RollbackSeats, save_planned, seat_messages, seat_tick};
use session::{ggrs_events, start_p2p, start_sync_test, sync_test_mismatch};
use watch::{RollbackWatch, feed_watchers, record_inputs, save_watched, spectate, watch_messages};

use std::marker::PhantomData;
use std::time::Duration;

use bevy::app::{App, Plugin, PreUpdate, Startup};
use bevy::ecs::message::Message;
use bevy::ecs::prelude::*;
use bevy_ggrs::{
    AdvanceWorld, GgrsConfig, GgrsPlugin, LoadWorld, RollbackFrameCount, RollbackFrameRate,
    RunGgrsSystems, SaveWorld, SaveWorldSystems,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use volley_net::{Channel, PeerId};

use crate::{NetAppExt, VolleySet};

pub use bevy_ggrs;
pub use checksum::{
    CHECKSUM_HISTORY, ChecksumApp, ChecksumHistory, ChecksumReport, FrameChecksum, differing_parts,
};
pub use desync::{DESYNC_KEPT, DesyncDump, DesyncDumps, MAX_DESYNC_DUMPS};
pub use replay::{ReplayStatus, RollbackRecording};
pub use state::{RollbackStateApp, StateError, load_state, save_state};
use volley_rollback::Pipe;
pub use volley_rollback::desync::{Diff, Difference, Dump, DumpError};
pub use volley_rollback::replay::{Replay, ReplayError, Verdict};
pub use volley_rollback::watch::{MAX_BUFFERED, MAX_CATCH_UP, MAX_FED, WATCH_DELAY};
pub use volley_rollback::{
    DropNotice, Guard, GuardConfig, MAX_HANDOVER_BYTES, MAX_NOTICE_BYTES, MAX_PART_NAME,
    MAX_REPORT_BYTES, MAX_REPORT_PARTS, MAX_SEATING_BYTES, MAX_WATCH_BYTES, PIPE_INBOX, Rejected,
    Seating, Watching,
};

/// The ggrs configuration volley uses: the game's input, peers by [`PeerId`].
pub type VolleyGgrs<I> = GgrsConfig<I, PeerId>;

/// What a game's input type must be (ggrs sends it every frame).
pub trait RollbackInput:
    Copy + Default + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static
{
}
impl<T> RollbackInput for T where
    T: Copy + Default + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static
{
}

/// How a [`RollbackPlugin`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackMode {
    /// Against the peers of the room, over the network.
    P2P,
    /// Alone: every frame is re-simulated `check_distance` frames later and
    /// checksums compared — a local determinism check.
    SyncTest {
        /// Frames between a simulation and its re-simulation.
        check_distance: usize,
    },
    /// Watching a running match of the room (the room URL asks the server
    /// to `spectate`): fed its state and confirmed inputs by one peer, a
    /// few frames behind the players (see [`volley_rollback::watch`]).
    Spectate,
    /// Playing a recorded match back, alone (see [`RollbackPlugin::replay`]).
    Replay,
}

/// Starts a rollback session: P2P once the room has `players` players (the
/// local one included), or a sync test at startup.
#[derive(Resource)]
pub struct RollbackPlugin<I> {
    config: RollbackConfig,
    /// Record the match (into this file, if any).
    record: Option<Option<std::path::PathBuf>>,
    /// The replay to play, and whether in real time.
    playback: Option<(Replay, bool)>,
    /// Dump desynced worlds (into this directory, if any).
    desync_dumps: Option<Option<std::path::PathBuf>>,
    _input: PhantomData<fn() -> I>,
}

/// The settings a [`RollbackPlugin`] was built with.
#[derive(Resource, Debug, Clone, Copy)]
pub struct RollbackConfig {
    /// Players in a match.
    pub players: usize,
    /// Frames local input is delayed (trades latency for fewer rollbacks).
    pub input_delay: usize,
    /// Frames simulated ahead of the last confirmed input.
    pub max_prediction: usize,
    /// Frames between checksum exchanges (0: no desync detection).
    pub desync_interval: u32,
    /// Simulation frames per second.
    pub fps: usize,
    /// How long a player may send nothing before it is dropped.
    pub disconnect_timeout: Duration,
    /// P2P or sync test.
    pub mode: RollbackMode,
}

impl<I: RollbackInput> RollbackPlugin<I> {
    /// A P2P match of `players` players: 2 frames input delay, 8 frames of
    /// prediction, checksums compared every 10 frames, 60 fps, a player
    /// silent for 2 s dropped.
    pub fn new(players: usize) -> Self {
        RollbackPlugin {
            config: RollbackConfig {
                players,
                input_delay: 2,
                max_prediction: 8,
                desync_interval: 10,
                fps: 60,
                disconnect_timeout: Duration::from_secs(2),
                mode: RollbackMode::P2P,
            },
            record: None,
            playback: None,
            desync_dumps: None,
            _input: PhantomData,
        }
    }

    /// A local sync test of `players` players, re-simulating every frame
    /// `check_distance` frames later.
    pub fn sync_test(players: usize, check_distance: usize) -> Self {
        let mut plugin = Self::new(players);
        plugin.config.mode = RollbackMode::SyncTest { check_distance };
        // ggrs needs the prediction window beyond the check distance.
        plugin.config.max_prediction = plugin.config.max_prediction.max(check_distance + 1);
        plugin
    }

    /// Watches a running match of `players` players instead of playing
    /// (the room URL must ask the server to `spectate`): no input is read,
    /// nothing is predicted, frames are shown a few behind the players.
    pub fn spectate(players: usize) -> Self {
        let mut plugin = Self::new(players);
        plugin.config.mode = RollbackMode::Spectate;
        plugin
    }

    /// Plays a recorded match back (no network): frames run as fast as
    /// the app updates allow (`realtime`: at the game's rate), and every
    /// checkpoint's checksum is checked ([`ReplayStatus`]).
    pub fn replay(replay: Replay, realtime: bool) -> Self {
        let mut plugin = Self::spectate(replay.players.len());
        plugin.config.mode = RollbackMode::Replay;
        plugin.playback = Some((replay, realtime));
        plugin
    }

    /// Records the match, as a player or a spectator: what a spectator
    /// would be fed, and this peer's checksums every few frames
    /// ([`RollbackRecording`]). Written to `path` (when given) every few
    /// seconds of match and when the app ends.
    pub fn record(mut self, path: impl Into<Option<std::path::PathBuf>>) -> Self {
        self.record = Some(path.into());
        self
    }

    /// Keeps the world of every frame whose checksums are compared, and
    /// on a desync writes that frame's world (every registered rollback
    /// component and resource) into `dir` (when given; [`DesyncDumps`]
    /// holds it either way). `volley-bots desync OURS THEIRS` names what
    /// differs between two peers' dumps. Costs a save of the state every
    /// [`Self::desync_interval`] frames.
    pub fn dump_desyncs(mut self, dir: impl Into<Option<std::path::PathBuf>>) -> Self {
        self.desync_dumps = Some(dir.into());
        self
    }

    /// Frames local input is delayed.
    pub fn input_delay(mut self, frames: usize) -> Self {
        self.config.input_delay = frames;
        self
    }

    /// The prediction window (0: lockstep).
    pub fn max_prediction(mut self, frames: usize) -> Self {
        self.config.max_prediction = frames;
        self
    }

    /// Frames between checksum comparisons (0 turns desync detection off).
    pub fn desync_interval(mut self, frames: u32) -> Self {
        self.config.desync_interval = frames;
        self
    }

    /// Simulation rate.
    pub fn fps(mut self, fps: usize) -> Self {
        self.config.fps = fps;
        self
    }

    /// How long a player may send nothing before every peer drops it.
    pub fn disconnect_timeout(mut self, timeout: Duration) -> Self {
        self.config.disconnect_timeout = timeout;
        self
    }
}

/// A checksum mismatch between this peer and `peer` at `frame`.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct DesyncDetected {
    /// The frame whose checksums differ.
    pub frame: i32,
    /// Ours.
    pub local_checksum: u128,
    /// Theirs.
    pub remote_checksum: u128,
    /// Who disagrees.
    pub peer: PeerId,
}

/// What the rollback session reports besides desyncs.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub enum RollbackEvent {
    /// The ggrs session started; `local_handle` is ours.
    Started {
        /// Our player handle.
        local_handle: usize,
        /// Every player's peer id, by handle.
        players: Vec<PeerId>,
    },
    /// Synchronizing with a peer (`count` of `total` round trips).
    Synchronizing {
        /// The peer.
        peer: PeerId,
        /// Round trips done.
        count: u32,
        /// Round trips needed.
        total: u32,
    },
    /// Synchronized with a peer: frames advance.
    Synchronized(PeerId),
    /// A peer stopped answering and will be dropped in `timeout_ms`
    /// (the [`RollbackPlugin::disconnect_timeout`] less the time it took
    /// to notice).
    NetworkInterrupted {
        /// The peer.
        peer: PeerId,
        /// Milliseconds until it is disconnected.
        timeout_ms: u128,
    },
    /// The peer answers again.
    NetworkResumed(PeerId),
    /// The peer is out of the match (its inputs are predicted from now on).
    Disconnected(PeerId),
    /// ggrs recommends waiting `frames` frames for the others.
    WaitRecommendation(u32),
    /// A spectator loaded the match it watches, at match frame `frame`.
    Watching {
        /// The players' peer ids, by handle.
        players: Vec<PeerId>,
        /// The frame it shows from.
        frame: i32,
    },
    /// The match restarted to seat players again (see
    /// [`volley_rollback::seats`]): same handles, a new epoch, going on
    /// from match frame `frame`.
    Restarted {
        /// The new epoch.
        epoch: u32,
        /// The match frame it starts at.
        frame: i32,
    },
}

/// The rollback session's state and counters, for overlays and bots.
#[derive(Resource, Debug, Clone, Default)]
pub struct RollbackStatus {
    /// Our player handle, once started.
    pub local_handle: Option<usize>,
    /// We watch the match (see [`RollbackPlugin::spectate`]): frames are
    /// all confirmed, `local_handle` stays `None`.
    pub spectating: bool,
    /// Restarts of the match so far (each seats players again).
    pub epoch: u32,
    /// The match frame the current epoch started at: ggrs counts frames
    /// from 0 in each epoch, the match counts on (`frame` and
    /// `confirmed_frame` are match frames).
    pub base: i32,
    /// Restarts this peer took part in.
    pub rejoins: u64,
    /// Players' peer ids by handle (ours included), once started.
    pub players: Vec<PeerId>,
    /// The frame simulated last.
    pub frame: i32,
    /// The last frame with every player's input.
    pub confirmed_frame: i32,
    /// Rollbacks (loads of an earlier state).
    pub rollbacks: u64,
    /// Frames re-simulated by those rollbacks.
    pub rollback_frames: u64,
    /// Checksum mismatches (with peers, or in a sync test).
    pub desyncs: u64,
    /// Rollback packets from peers that failed the guard's checks.
    pub invalid_packets: u64,
    /// Players dropped from the match (they left, or misbehaved).
    pub dropped: Vec<PeerId>,
    /// The first desync a peer's [`ChecksumReport`] explained: the frame
    /// and the names of the checksum parts that differ (debug builds). The
    /// first is the one that matters: later frames differ in everything the
    /// first difference spread to.
    pub first_diagnosis: Option<(i32, Vec<String>)>,
}

/// The player order every peer agrees on: peer ids ascending.
pub fn player_order(mut peers: Vec<PeerId>) -> Vec<PeerId> {
    peers.sort();
    peers.dedup();
    peers
}

impl<I: RollbackInput> Plugin for RollbackPlugin<I> {
    fn build(&self, app: &mut App) {
        if !app.is_plugin_added::<GgrsPlugin<VolleyGgrs<I>>>() {
            app.add_plugins(GgrsPlugin::<VolleyGgrs<I>>::default());
        }
        let config = self.config;
        let guard = Guard::new(GuardConfig {
            players: config.players,
            max_prediction: config.max_prediction,
            input_delay: config.input_delay,
            desync_interval: (config.desync_interval > 0).then_some(config.desync_interval),
        });
        let pipe = Pipe::new(config.max_prediction, volley_rollback::decodes_as::<I>);
        app.insert_resource(RollbackFrameRate(config.fps))
            .insert_resource(config)
            .insert_resource(RollbackGuard(guard))
            .insert_resource(RollbackPipe(pipe))
            .init_resource::<ReportsAsked>()
            .init_resource::<RollbackDrops>()
            .init_resource::<RollbackSeats>()
            .init_resource::<RollbackStatus>()
            .init_resource::<ChecksumHistory>()
            .init_resource::<LastAdvanced>()
            .init_resource::<ChecksumNames>()
            .insert_resource(watching(config.mode, self.record.is_some()))
            .add_message::<DesyncDetected>()
            .add_message::<RollbackEvent>()
            // Registered in every build, so debug and release peers agree
            // on the protocol hash; larger payloads are refused undecoded.
            .add_net_message_limited::<ChecksumReport>(Channel::Reliable, MAX_REPORT_BYTES)
            .add_net_message_limited::<DropNotice>(Channel::Reliable, MAX_NOTICE_BYTES)
            .add_net_message_limited::<Seating>(Channel::Reliable, MAX_SEATING_BYTES)
            .add_net_message_limited::<Watching>(Channel::Reliable, MAX_WATCH_BYTES)
            .add_systems(
                SaveWorld,
                (record_checksum, save_planned, save_watched).in_set(SaveWorldSystems::Snapshot),
            )
            .add_systems(LoadWorld, count_rollback)
            .add_systems(AdvanceWorld, (count_advance, record_inputs::<I>))
            .add_observer(sync_test_mismatch);
        if let Some(path) = &self.record {
            let game = std::any::type_name::<I>();
            app.insert_resource(RollbackRecording::new(game, path.clone()));
        }
        match self.config.mode {
            RollbackMode::SyncTest { check_distance } => {
                app.add_systems(Startup, start_sync_test::<I>(check_distance));
            }
            RollbackMode::Spectate => {
                app.add_systems(
                    PreUpdate,
                    (
                        watch_messages::<I>
                            .after(VolleySet::Receive)
                            .before(RunGgrsSystems),
                        (spectate::<I>, record_checkpoints)
                            .chain()
                            .after(RunGgrsSystems),
                    ),
                );
            }
            RollbackMode::Replay => {
                let ours = std::any::type_name::<I>();
                match &self.playback {
                    Some((replay, realtime)) if replay.app == ours => {
                        app.insert_resource(Playback::new(replay.clone(), *realtime));
                        app.init_resource::<ReplayStatus>();
                        app.add_systems(
                            PreUpdate,
                            (play_back, spectate::<I>, verify_replay, record_checkpoints)
                                .chain()
                                .after(RunGgrsSystems),
                        );
                    }
                    other => {
                        let theirs = other.as_ref().map(|(r, _)| r.app.clone());
                        tracing::warn!("volley: a replay of {theirs:?} cannot play as {ours}");
                        app.insert_resource(ReplayStatus {
                            refused: Some(format!("a replay of {theirs:?}, not of {ours}")),
                            ..Default::default()
                        });
                    }
                }
            }
            RollbackMode::P2P => {
                if let Some(dir) = &self.desync_dumps {
                    app.insert_resource(desync::DesyncDumps::new(dir.clone()))
                        .init_resource::<KeptWorlds>()
                        .add_systems(
                            SaveWorld,
                            keep_world
                                .after(record_checksum)
                                .in_set(SaveWorldSystems::Snapshot),
                        )
                        .add_systems(
                            PreUpdate,
                            dump_desyncs::<I>
                                .after(ggrs_events::<I>)
                                .after(RunGgrsSystems),
                        );
                }
                app.add_systems(
                    PreUpdate,
                    (
                        watch_messages::<I>,
                        start_p2p::<I>,
                        drop_players::<I>,
                        seat_messages,
                        pipe_in::<I>,
                    )
                        .chain()
                        .after(VolleySet::Receive)
                        .before(RunGgrsSystems),
                )
                .add_systems(
                    PreUpdate,
                    (
                        pipe_out,
                        ggrs_events::<I>,
                        compare_reports,
                        seat_tick::<I>,
                        feed_watchers::<I>,
                        record_checkpoints,
                    )
                        .chain()
                        .after(RunGgrsSystems)
                        .after(VolleySet::Receive),
                );
            }
        }
    }
}

/// This peer's side of watching, with its recording among the spectators
/// it feeds when it records.
fn watching(mode: RollbackMode, record: bool) -> RollbackWatch {
    let spectator = matches!(mode, RollbackMode::Spectate | RollbackMode::Replay);
    let mut watch = RollbackWatch::new(spectator);
    if record {
        let _ = watch.watch.receive(RECORDER, Watching::Watch);
    }
    watch
}

#[derive(Resource, Default)]
struct LastAdvanced(i32);

fn count_advance(frame: Res<RollbackFrameCount>, mut last: ResMut<LastAdvanced>) {
    last.0 = frame.0;
}

fn count_rollback(
    frame: Res<RollbackFrameCount>,
    last: Res<LastAdvanced>,
    mut status: ResMut<RollbackStatus>,
) {
    status.rollbacks += 1;
    status.rollback_frames += u64::try_from(last.0 - frame.0).unwrap_or(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn player_order_is_the_same_from_every_side() {
        let a = PeerId(uuid::Uuid::from_u128(1));
        let b = PeerId(uuid::Uuid::from_u128(2));
        let c = PeerId(uuid::Uuid::from_u128(3));
        assert_eq!(player_order(vec![c, a, b]), player_order(vec![b, c, a]));
        assert_eq!(player_order(vec![c, a, b]), vec![a, b, c]);
    }
}
