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

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use bevy::app::{App, Plugin, PreUpdate, Startup};
use bevy::ecs::message::{Message, MessageReader, MessageWriter};
use bevy::ecs::prelude::*;
use bevy_ggrs::ggrs::{self, DesyncDetection, GgrsEvent, NonBlockingSocket, PlayerType};
use bevy_ggrs::{
    AdvanceWorld, Checksum, ChecksumFlag, ChecksumPart, ConfirmedFrameCount, GgrsConfig,
    GgrsPlugin, LoadWorld, RollbackApp, RollbackFrameCount, RollbackFrameRate, RunGgrsSystems,
    SaveWorld, SaveWorldSystems, SyncTestMismatch,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, warn};
use volley_net::{Channel, PeerId, SessionEvent};

use crate::{NetAppExt, NetPeerEvent, NetReceived, NetSend, VolleySession, VolleySet};

pub use bevy_ggrs;

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

/// Checksums kept per frame, for comparing peers after the fact.
pub const CHECKSUM_HISTORY: usize = 256;

/// Largest ggrs message accepted from a peer.
const MAX_ROLLBACK_PACKET: usize = volley_net::MAX_UNRELIABLE;

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
}

/// Starts a rollback session: P2P once the room has `players` players (the
/// local one included), or a sync test at startup.
#[derive(Resource)]
pub struct RollbackPlugin<I> {
    config: RollbackConfig,
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
    /// P2P or sync test.
    pub mode: RollbackMode,
}

impl<I: RollbackInput> RollbackPlugin<I> {
    /// A P2P match of `players` players: 2 frames input delay, 8 frames of
    /// prediction, checksums compared every 10 frames, 60 fps.
    pub fn new(players: usize) -> Self {
        RollbackPlugin {
            config: RollbackConfig {
                players,
                input_delay: 2,
                max_prediction: 8,
                desync_interval: 10,
                fps: 60,
                mode: RollbackMode::P2P,
            },
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
    /// A peer stopped answering and will be dropped in `timeout_ms`.
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
}

/// The rollback session's state and counters, for overlays and bots.
#[derive(Resource, Debug, Clone, Default)]
pub struct RollbackStatus {
    /// Our player handle, once started.
    pub local_handle: Option<usize>,
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
    /// Rollback packets from peers that did not decode.
    pub invalid_packets: u64,
    /// The first desync a peer's [`ChecksumReport`] explained: the frame
    /// and the names of the checksum parts that differ (debug builds). The
    /// first is the one that matters: later frames differ in everything the
    /// first difference spread to.
    pub first_diagnosis: Option<(i32, Vec<String>)>,
}

/// Total checksums (and, in debug builds, each part's) of recent frames.
#[derive(Resource, Debug, Default)]
pub struct ChecksumHistory {
    frames: BTreeMap<i32, FrameChecksum>,
}

/// One frame's checksum.
#[derive(Debug, Clone, Default)]
pub struct FrameChecksum {
    /// The frame's total (bevy_ggrs' [`Checksum`]).
    pub total: u128,
    /// `(component or resource name, part)`; empty in release builds.
    pub parts: Vec<(String, u128)>,
}

impl ChecksumHistory {
    /// The checksum saved for `frame` (the last save wins: after a rollback
    /// the frame is saved again; once confirmed it no longer changes).
    pub fn get(&self, frame: i32) -> Option<&FrameChecksum> {
        self.frames.get(&frame)
    }

    fn record(&mut self, frame: i32, checksum: FrameChecksum) {
        self.frames.insert(frame, checksum);
        while self.frames.len() > CHECKSUM_HISTORY {
            self.frames.pop_first();
        }
    }
}

/// Sent to a peer we desynced with (debug builds): our checksum parts of
/// that frame, so it can name what differs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ChecksumReport {
    /// The frame.
    pub frame: i32,
    /// `(name, part)` pairs, sorted by name.
    pub parts: Vec<(String, u128)>,
}

/// The ggrs socket: queues shared with the systems that move packets
/// between it and the [`volley_net::Session`] (ggrs owns the socket inside
/// its session, the volley session lives in another resource).
#[derive(Clone, Default)]
struct Pipe(Arc<Mutex<Queues>>);

#[derive(Default)]
struct Queues {
    inbox: Vec<(PeerId, ggrs::Message)>,
    outbox: VecDeque<(PeerId, Vec<u8>)>,
}

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        // A panic elsewhere while holding the lock leaves plain queues behind.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Resource, Clone, Default)]
struct RollbackPipe(Pipe);

impl NonBlockingSocket<PeerId> for Pipe {
    fn send_to(&mut self, msg: &ggrs::Message, addr: &PeerId) {
        match bincode::serde::encode_to_vec(msg, bincode::config::standard()) {
            Ok(bytes) => self.lock().outbox.push_back((*addr, bytes)),
            Err(e) => warn!("volley: cannot encode a ggrs message: {e}"),
        }
    }

    fn receive_all_messages(&mut self) -> Vec<(PeerId, ggrs::Message)> {
        std::mem::take(&mut self.lock().inbox)
    }
}

/// Decodes one ggrs message from a peer, refusing trailing bytes and
/// anything larger than a rollback packet may be.
fn decode_message(bytes: &[u8]) -> Option<ggrs::Message> {
    if bytes.len() > MAX_ROLLBACK_PACKET {
        return None;
    }
    let config = bincode::config::standard().with_limit::<MAX_ROLLBACK_PACKET>();
    match bincode::serde::decode_from_slice::<ggrs::Message, _>(bytes, config) {
        Ok((message, used)) if used == bytes.len() => Some(message),
        _ => None,
    }
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
        app.insert_resource(RollbackFrameRate(self.config.fps))
            .insert_resource(self.config)
            .init_resource::<RollbackPipe>()
            .init_resource::<RollbackStatus>()
            .init_resource::<ChecksumHistory>()
            .init_resource::<LastAdvanced>()
            .init_resource::<ChecksumNames>()
            .add_message::<DesyncDetected>()
            .add_message::<RollbackEvent>()
            // Registered in every build, so debug and release peers agree
            // on the protocol hash.
            .add_net_message::<ChecksumReport>(Channel::Reliable)
            .add_systems(
                SaveWorld,
                record_checksum.in_set(SaveWorldSystems::Snapshot),
            )
            .add_systems(LoadWorld, count_rollback)
            .add_systems(AdvanceWorld, count_advance)
            .add_observer(sync_test_mismatch);
        match self.config.mode {
            RollbackMode::SyncTest { check_distance } => {
                app.add_systems(Startup, start_sync_test::<I>(check_distance));
            }
            RollbackMode::P2P => {
                app.add_systems(
                    PreUpdate,
                    (start_p2p::<I>, pipe_in, peer_left::<I>)
                        .chain()
                        .after(VolleySet::Poll)
                        .before(RunGgrsSystems),
                )
                .add_systems(
                    PreUpdate,
                    (pipe_out, ggrs_events::<I>, compare_reports)
                        .chain()
                        .after(RunGgrsSystems)
                        .after(VolleySet::Receive),
                );
            }
        }
    }
}

#[derive(Resource, Default)]
struct LastAdvanced(i32);

fn start_sync_test<I: RollbackInput>(
    check_distance: usize,
) -> impl FnMut(Commands, Res<RollbackConfig>, ResMut<RollbackStatus>) {
    move |mut commands, config, mut status| {
        let session = ggrs::SessionBuilder::<VolleyGgrs<I>>::new()
            .with_num_players(config.players)
            .and_then(|b| b.with_fps(config.fps))
            .map(|b| {
                b.with_check_distance(check_distance)
                    .with_input_delay(config.input_delay)
                    .with_max_prediction_window(config.max_prediction)
            })
            .and_then(|mut b| {
                for handle in 0..config.players {
                    b = b.add_player(PlayerType::Local, handle)?;
                }
                b.start_synctest_session()
            });
        match session {
            Ok(session) => {
                status.local_handle = Some(0);
                commands.insert_resource(bevy_ggrs::Session::SyncTest(session));
            }
            Err(e) => warn!("volley: cannot start the sync test: {e}"),
        }
    }
}

fn sync_test_mismatch(mismatch: On<SyncTestMismatch>, mut status: ResMut<RollbackStatus>) {
    status.desyncs += 1;
    warn!(
        "volley: sync test mismatch at frame {}: frames {:?} re-simulated differently",
        mismatch.event().current_frame,
        mismatch.event().mismatched_frames
    );
}

/// Starts the P2P session once, when `players` peers (us included) are connected.
fn start_p2p<I: RollbackInput>(
    mut commands: Commands,
    volley: Option<ResMut<VolleySession>>,
    existing: Option<Res<bevy_ggrs::Session<VolleyGgrs<I>>>>,
    config: Res<RollbackConfig>,
    pipe: Res<RollbackPipe>,
    mut status: ResMut<RollbackStatus>,
    mut events: MessageWriter<RollbackEvent>,
) {
    if existing.is_some() || status.local_handle.is_some() {
        return;
    }
    let Some(mut volley) = volley else { return };
    let session = volley.session();
    let Some(me) = session.id() else { return };
    let mut everyone: Vec<PeerId> = session.connected_peers().collect();
    everyone.push(me);
    if everyone.len() < config.players {
        return;
    }
    let players: Vec<PeerId> = player_order(everyone)
        .into_iter()
        .take(config.players)
        .collect();
    let Some(local_handle) = players.iter().position(|p| *p == me) else {
        // The room has more peers than players and we came late: watch only.
        return;
    };
    let desync = if config.desync_interval == 0 {
        DesyncDetection::Off
    } else {
        DesyncDetection::On {
            interval: config.desync_interval,
        }
    };
    let built = ggrs::SessionBuilder::<VolleyGgrs<I>>::new()
        .with_num_players(config.players)
        .and_then(|b| b.with_fps(config.fps))
        .map(|b| {
            b.with_input_delay(config.input_delay)
                .with_max_prediction_window(config.max_prediction)
                .with_desync_detection_mode(desync)
        })
        .and_then(|mut b| {
            for (handle, peer) in players.iter().enumerate() {
                let kind = if *peer == me {
                    PlayerType::Local
                } else {
                    PlayerType::Remote(*peer)
                };
                b = b.add_player(kind, handle)?;
            }
            b.start_p2p_session(pipe.0.clone())
        });
    match built {
        Ok(session) => {
            info!("volley: rollback session started as player {local_handle} of {players:?}");
            status.local_handle = Some(local_handle);
            status.players = players.clone();
            commands.insert_resource(bevy_ggrs::Session::P2P(session));
            events.write(RollbackEvent::Started {
                local_handle,
                players,
            });
        }
        Err(e) => warn!("volley: cannot start the rollback session: {e}"),
    }
}

/// Moves rollback packets from the volley session into the ggrs socket.
fn pipe_in(
    volley: Option<ResMut<VolleySession>>,
    pipe: Res<RollbackPipe>,
    mut status: ResMut<RollbackStatus>,
) {
    let Some(mut volley) = volley else { return };
    let packets = volley.session().receive_rollback();
    if packets.is_empty() {
        return;
    }
    let mut queues = pipe.0.lock();
    for (peer, bytes) in packets {
        match decode_message(&bytes) {
            Some(message) => queues.inbox.push((peer, message)),
            None => {
                status.invalid_packets += 1;
                tracing::debug!("volley: dropped an undecodable rollback packet from {peer}");
            }
        }
    }
}

/// Sends what ggrs queued this frame.
fn pipe_out(volley: Option<ResMut<VolleySession>>, pipe: Res<RollbackPipe>) {
    let outgoing: Vec<(PeerId, Vec<u8>)> = pipe.0.lock().outbox.drain(..).collect();
    let Some(mut volley) = volley else { return };
    for (peer, bytes) in outgoing {
        // A peer that left has nobody to send to; ggrs notices on its own.
        let _ = volley.session().send_rollback(peer, bytes);
    }
}

/// A peer that left the room is disconnected in ggrs at once, instead of
/// after ggrs' own timeout.
fn peer_left<I: RollbackInput>(
    mut peer_events: MessageReader<NetPeerEvent>,
    session: Option<ResMut<bevy_ggrs::Session<VolleyGgrs<I>>>>,
    status: Res<RollbackStatus>,
) {
    let Some(mut session) = session else {
        peer_events.clear();
        return;
    };
    for NetPeerEvent(event) in peer_events.read() {
        let SessionEvent::Left(peer, _) = event else {
            continue;
        };
        let Some(handle) = status.players.iter().position(|p| p == peer) else {
            continue;
        };
        if let bevy_ggrs::Session::P2P(p2p) = &mut *session
            && let Err(e) = p2p.disconnect_player(handle)
        {
            tracing::debug!("volley: disconnecting player {handle}: {e}");
        }
    }
}

/// Turns ggrs events into Bevy messages; on the first desync with a peer,
/// sends it our checksum parts (debug builds) so it can name what differs.
#[allow(clippy::too_many_arguments)]
fn ggrs_events<I: RollbackInput>(
    session: Option<ResMut<bevy_ggrs::Session<VolleyGgrs<I>>>>,
    mut status: ResMut<RollbackStatus>,
    frame: Res<RollbackFrameCount>,
    confirmed: Res<ConfirmedFrameCount>,
    history: Res<ChecksumHistory>,
    mut desyncs: MessageWriter<DesyncDetected>,
    mut events: MessageWriter<RollbackEvent>,
    mut reports: MessageWriter<NetSend<ChecksumReport>>,
    mut reported: Local<HashSet<PeerId>>,
) {
    let Some(mut session) = session else { return };
    status.frame = frame.0;
    status.confirmed_frame = confirmed.0;
    let bevy_ggrs::Session::P2P(p2p) = &mut *session else {
        return;
    };
    for event in p2p.events() {
        match event {
            GgrsEvent::DesyncDetected {
                frame,
                local_checksum,
                remote_checksum,
                addr,
            } => {
                status.desyncs += 1;
                warn!(
                    "volley: desync with {addr} at frame {frame}: ours {local_checksum:#x}, theirs {remote_checksum:#x}"
                );
                desyncs.write(DesyncDetected {
                    frame,
                    local_checksum,
                    remote_checksum,
                    peer: addr,
                });
                if cfg!(debug_assertions)
                    && reported.insert(addr)
                    && let Some(ours) = history.get(frame)
                {
                    reports.write(NetSend::to(
                        addr,
                        ChecksumReport {
                            frame,
                            parts: ours.parts.clone(),
                        },
                    ));
                }
            }
            GgrsEvent::Synchronizing { addr, total, count } => {
                events.write(RollbackEvent::Synchronizing {
                    peer: addr,
                    count,
                    total,
                });
            }
            GgrsEvent::Synchronized { addr } => {
                events.write(RollbackEvent::Synchronized(addr));
            }
            GgrsEvent::Disconnected { addr } => {
                events.write(RollbackEvent::Disconnected(addr));
            }
            GgrsEvent::NetworkInterrupted {
                addr,
                disconnect_timeout,
            } => {
                events.write(RollbackEvent::NetworkInterrupted {
                    peer: addr,
                    timeout_ms: disconnect_timeout,
                });
            }
            GgrsEvent::NetworkResumed { addr } => {
                events.write(RollbackEvent::NetworkResumed(addr));
            }
            GgrsEvent::WaitRecommendation { skip_frames } => {
                events.write(RollbackEvent::WaitRecommendation(skip_frames));
            }
        }
    }
}

/// Names the checksum parts that differ from a peer's report.
fn compare_reports(
    mut reports: MessageReader<NetReceived<ChecksumReport>>,
    history: Res<ChecksumHistory>,
    mut status: ResMut<RollbackStatus>,
) {
    for report in reports.read() {
        let Some(ours) = history.get(report.message.frame) else {
            continue;
        };
        let differing = differing_parts(&ours.parts, &report.message.parts);
        warn!(
            "volley: desync at frame {} with {}: differing checksum parts: {}",
            report.message.frame,
            report.from,
            if differing.is_empty() {
                "none reported (release build on one side?)".to_string()
            } else {
                differing.join(", ")
            }
        );
        if status.first_diagnosis.is_none() {
            status.first_diagnosis = Some((report.message.frame, differing));
        }
    }
}

/// The names whose parts differ, or that only one side has.
pub fn differing_parts(ours: &[(String, u128)], theirs: &[(String, u128)]) -> Vec<String> {
    let ours: BTreeMap<&str, u128> = ours.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let theirs: BTreeMap<&str, u128> = theirs.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let mut names: Vec<&str> = ours.keys().chain(theirs.keys()).copied().collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter(|n| ours.get(n) != theirs.get(n))
        .map(str::to_string)
        .collect()
}

/// How to find one named checksum part: its flag entity's part.
type PartOf = fn(&mut World) -> Option<(Entity, u128)>;

fn part_of<T: Send + Sync + 'static>(world: &mut World) -> Option<(Entity, u128)> {
    let mut query = world.query_filtered::<(Entity, &ChecksumPart), With<ChecksumFlag<T>>>();
    query.iter(world).next().map(|(e, p)| (e, p.0))
}

/// Checksum parts with a name, for naming what differs in a desync.
#[derive(Resource, Default)]
struct ChecksumNames(Vec<(&'static str, PartOf)>);

/// Registering checksummed state so a desync can name it. Each call does
/// what bevy_ggrs' `checksum_*_with_hash` does, and remembers the type's
/// name (Bevy keeps component names only with its `debug` feature).
///
/// The `Hash` of a checksummed type must write the same bytes on every
/// platform, or a browser (wasm32) and a desktop peer desync on identical
/// state: no `usize`/`isize` fields, no collections (their length is a
/// `usize`), and no derived `Hash` on enums, `Option` included (the
/// discriminant is hashed as an `isize`). Hash such fields by hand as fixed
/// widths.
pub trait ChecksumApp {
    /// Checksums component `T` of rollback entities (`Hash`), by name.
    fn checksum_component_named<T: Component + Hash>(&mut self) -> &mut Self;
    /// Checksums resource `T` (`Hash`), by name.
    fn checksum_resource_named<T: Resource + Hash>(&mut self) -> &mut Self;
}

impl ChecksumApp for App {
    fn checksum_component_named<T: Component + Hash>(&mut self) -> &mut Self {
        self.checksum_component_with_hash::<T>();
        name_part::<T>(self)
    }

    fn checksum_resource_named<T: Resource + Hash>(&mut self) -> &mut Self {
        self.checksum_resource_with_hash::<T>();
        name_part::<T>(self)
    }
}

fn name_part<T: Send + Sync + 'static>(app: &mut App) -> &mut App {
    let name = std::any::type_name::<T>();
    let name = name.rsplit("::").next().unwrap_or(name);
    app.init_resource::<ChecksumNames>();
    app.world_mut()
        .resource_mut::<ChecksumNames>()
        .0
        .push((name, part_of::<T>));
    app
}

/// Records the frame's checksum (and, in debug builds, its parts by name;
/// parts registered without a name — bevy_ggrs' own, for entities — are
/// listed by entity).
fn record_checksum(world: &mut World) {
    let frame = world.resource::<RollbackFrameCount>().0;
    let total = world.get_resource::<Checksum>().map_or(0, |c| c.0);
    let mut parts = Vec::new();
    if cfg!(debug_assertions) {
        let names: Vec<(&'static str, PartOf)> = world
            .get_resource::<ChecksumNames>()
            .map(|n| n.0.clone())
            .unwrap_or_default();
        let mut named = Vec::new();
        for (name, find) in names {
            if let Some((entity, value)) = find(world) {
                named.push(entity);
                parts.push((name.to_string(), value));
            }
        }
        let mut query = world.query::<(Entity, &ChecksumPart)>();
        for (entity, part) in query.iter(world) {
            if !named.contains(&entity) {
                parts.push((format!("unnamed part {entity}"), part.0));
            }
        }
        parts.sort();
    }
    world
        .resource_mut::<ChecksumHistory>()
        .record(frame, FrameChecksum { total, parts });
}

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
    fn garbage_never_decodes_into_a_message() {
        assert!(decode_message(&[]).is_none());
        assert!(decode_message(&[0xff; 64]).is_none());
        assert!(decode_message(&vec![0u8; MAX_ROLLBACK_PACKET + 1]).is_none());
    }

    #[test]
    fn differing_parts_names_changed_and_missing() {
        let ours = vec![("A".to_string(), 1), ("B".to_string(), 2)];
        let theirs = vec![
            ("A".to_string(), 1),
            ("B".to_string(), 3),
            ("C".to_string(), 4),
        ];
        assert_eq!(differing_parts(&ours, &theirs), vec!["B", "C"]);
        assert!(differing_parts(&ours, &ours).is_empty());
    }

    #[test]
    fn player_order_is_the_same_from_every_side() {
        let a = PeerId(uuid_from(1));
        let b = PeerId(uuid_from(2));
        let c = PeerId(uuid_from(3));
        assert_eq!(player_order(vec![c, a, b]), player_order(vec![b, c, a]));
        assert_eq!(player_order(vec![c, a, b]), vec![a, b, c]);
    }

    fn uuid_from(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }
}
