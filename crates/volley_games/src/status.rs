//! What a running sample reports about itself — connection state, rollback
//! progress and the checksums of confirmed checkpoint frames, state-sync
//! authority and entity count — for people
//! (the page) and for tests (which compare checkpoints across peers). In the
//! browser it is written as JSON into `data-status` of the page's
//! `#volley-status` element.

use std::collections::BTreeMap;

use bevy::prelude::*;
use bevy_volley::replication::{NetEntity, ReplicationStatus};
use bevy_volley::rollback::{ChecksumHistory, RollbackStatus};
use bevy_volley::{ConnectionState, NetPeerEvent, NetStats, SessionEvent};
use serde::Serialize;

/// Frames between checkpoints.
pub const CHECKPOINT_EVERY: i32 = 100;

/// The game's state as reported.
#[derive(Resource, Debug, Clone, Default, Serialize)]
pub struct GameStatus {
    /// `ConnectionState`, as its name.
    pub state: String,
    /// Our player handle, once the match started.
    pub local_handle: Option<usize>,
    /// We watch the match (a spectator), once it is loaded.
    pub spectating: bool,
    /// Players in the match.
    pub players: usize,
    /// How many times the match restarted to seat a returning player
    /// (`RollbackStatus::epoch`).
    pub epoch: u32,
    /// The frame simulated last.
    pub frame: i32,
    /// The last frame with every player's input.
    pub confirmed_frame: i32,
    /// Rollbacks so far.
    pub rollbacks: u64,
    /// Desyncs so far.
    pub desyncs: u64,
    /// Checksums (hex) of confirmed frames that are multiples of
    /// [`CHECKPOINT_EVERY`]: equal across peers when they agree.
    pub checkpoints: BTreeMap<i32, String>,
    /// With state sync: the authority's peer id.
    pub authority: Option<String>,
    /// With state sync: whether we are the authority.
    pub is_authority: bool,
    /// With state sync: the authority's tick applied (ours when we are it).
    pub replication_tick: u32,
    /// With state sync: replicated entities in our world.
    pub replicated: usize,
    /// The link to each connected peer, by peer id.
    pub peers: BTreeMap<String, PeerLink>,
    /// Smoothed wall-clock time between two app updates, in milliseconds
    /// (a browser handles packets between frames: this bounds how late).
    pub frame_ms: f64,
    /// Why a peer cannot be reached at all (no path, not even relayed),
    /// once the session said so: what the page shows the player.
    pub unreachable: Option<String>,
}

/// What the page and tests see of the link to one peer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PeerLink {
    /// Smoothed round-trip time in milliseconds, once measured.
    pub rtt_ms: Option<f64>,
    /// The selected candidate pair's kinds, ours then theirs
    /// (`"Host"`, `"ServerReflexive"`, `"PeerReflexive"`, `"Relay"`).
    pub path: Option<(String, String)>,
}

/// Keeps [`GameStatus`] current (and, in the browser, on the page).
pub struct StatusPlugin;

impl Plugin for StatusPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<GameStatus>()
            .add_systems(Last, ((update_status, update_links), publish).chain());
    }
}

fn update_status(
    state: Option<Res<State<ConnectionState>>>,
    rollback: Option<Res<RollbackStatus>>,
    history: Option<Res<ChecksumHistory>>,
    replication: Option<Res<ReplicationStatus>>,
    replicated: Query<(), With<NetEntity>>,
    mut status: ResMut<GameStatus>,
) {
    if let Some(state) = state {
        status.state = format!("{:?}", state.get());
    }
    if let Some(replication) = replication {
        status.authority = replication.authority.map(|a| a.to_string());
        status.is_authority = replication.is_authority;
        status.replication_tick = replication.tick;
        status.replicated = replicated.iter().count();
    }
    let Some(rollback) = rollback else { return };
    status.local_handle = rollback.local_handle;
    status.spectating = rollback.spectating;
    status.players = rollback.players.len();
    status.epoch = rollback.epoch;
    status.frame = rollback.frame;
    status.confirmed_frame = rollback.confirmed_frame;
    status.rollbacks = rollback.rollbacks;
    status.desyncs = rollback.desyncs;
    let Some(history) = history else { return };
    let mut checkpoint = CHECKPOINT_EVERY;
    while checkpoint <= rollback.confirmed_frame {
        if !status.checkpoints.contains_key(&checkpoint)
            && let Some(saved) = history.get(checkpoint)
        {
            status
                .checkpoints
                .insert(checkpoint, format!("{:032x}", saved.total));
        }
        checkpoint += CHECKPOINT_EVERY;
    }
}

/// The links to peers, the frame time, and an unreachable peer.
fn update_links(
    net: Option<Res<NetStats>>,
    time: Res<Time<Real>>,
    mut events: MessageReader<NetPeerEvent>,
    mut status: ResMut<GameStatus>,
) {
    for event in events.read() {
        if let SessionEvent::Unreachable(_, why) = &event.0 {
            status.unreachable = Some(why.clone());
        }
    }
    let delta = time.delta_secs_f64() * 1000.0;
    status.frame_ms = if status.frame_ms == 0.0 {
        delta
    } else {
        status.frame_ms * 0.9 + delta * 0.1
    };
    let Some(net) = net else { return };
    status.peers = net
        .peers
        .iter()
        .map(|(peer, stats)| {
            let link = PeerLink {
                rtt_ms: stats.rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
                path: stats.link.as_ref().map(|link| {
                    (
                        format!("{:?}", link.local.kind),
                        format!("{:?}", link.remote.kind),
                    )
                }),
            };
            (peer.to_string(), link)
        })
        .collect();
}

#[cfg(not(target_arch = "wasm32"))]
fn publish() {}

/// Writes the status into the page about four times a second, and at once
/// when the connection state changes (the page times the start-up by it).
#[cfg(target_arch = "wasm32")]
fn publish(status: Res<GameStatus>, mut frames: Local<u32>, mut state: Local<String>) {
    *frames = frames.wrapping_add(1);
    if *frames % 15 != 1 && *state == status.state {
        return;
    }
    state.clone_from(&status.state);
    let element = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id("volley-status"));
    if let (Some(element), Ok(json)) = (element, serde_json::to_string(&*status)) {
        let _ = element.set_attribute("data-status", &json);
    }
}
