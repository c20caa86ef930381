//! Drawing box_game, reading the keyboard, and the network overlay
//! (RTT per peer, rollbacks, a ping graph). Needs a windowed app
//! (`DefaultPlugins`).

use std::collections::VecDeque;
use std::time::Duration;

use bevy::camera::ScalingMode;
use bevy::prelude::*;
use bevy_volley::rollback::RollbackStatus;
use bevy_volley::rollback::bevy_ggrs::{LocalInputs, LocalPlayers, ReadInputs};
use bevy_volley::{ConnectionState, NetStats};

use crate::hud::{Hud, HudBars, HudPlugin};

use super::{
    ARENA_H, ARENA_W, Body, BoxInput, COIN_SIZE, Coin, Config, ONE, PLAYER_SIZE, Player, Round,
    Score, WIN_SCORE,
};

/// Player colours, by handle.
pub const COLORS: [Color; 4] = [
    Color::srgb(0.30, 0.65, 1.00),
    Color::srgb(1.00, 0.42, 0.36),
    Color::srgb(0.42, 0.90, 0.45),
    Color::srgb(0.95, 0.80, 0.30),
];

/// Samples in the ping graph (one per [`PING_SAMPLE`]).
pub const PING_SAMPLES: usize = 60;
/// How often the ping graph takes a sample.
pub const PING_SAMPLE: Duration = Duration::from_millis(250);
/// RTT at the top of the graph, at least.
const GRAPH_MAX_MS: f32 = 100.0;
const GRAPH_HEIGHT: f32 = 40.0;

/// Sprites, scoreboard, overlay and keyboard input for box_game.
pub struct BoxGameRenderPlugin;

impl Plugin for BoxGameRenderPlugin {
    fn build(&self, app: &mut App) {
        if !app.is_plugin_added::<HudPlugin>() {
            app.add_plugins(HudPlugin);
        }
        app.init_resource::<PingHistory>()
            .add_systems(Startup, setup)
            .add_systems(ReadInputs, keyboard_input)
            .add_systems(
                Update,
                (dress, place, scoreboard, overlay, sample_ping, ping_graph),
            );
    }
}

/// The RTT samples behind the ping graph (the worst peer's, in ms).
#[derive(Resource, Default)]
pub struct PingHistory {
    samples: VecDeque<f32>,
    since: Duration,
}

#[derive(Component)]
struct ScoreText;

#[derive(Component)]
struct OverlayText;

#[derive(Component)]
struct PingGraph;

fn setup(mut commands: Commands) {
    // The whole arena stays in view at any window size.
    commands.spawn((
        Camera2d,
        Projection::from(OrthographicProjection {
            scaling_mode: ScalingMode::AutoMin {
                min_width: (ARENA_W / ONE) as f32 + 40.0,
                min_height: (ARENA_H / ONE) as f32 + 120.0,
            },
            ..OrthographicProjection::default_2d()
        }),
    ));
    commands.spawn((
        Sprite::from_color(
            Color::srgb(0.10, 0.11, 0.14),
            Vec2::new((ARENA_W / ONE) as f32, (ARENA_H / ONE) as f32),
        ),
        Transform::from_xyz(0.0, 0.0, -1.0),
    ));
    commands.spawn((
        Hud::top_left(26.0)
            .at(12.0, 8.0)
            .text("waiting for players..."),
        ScoreText,
    ));
    commands.spawn((
        Hud::bottom_left(14.0)
            .at(12.0, 8.0 + GRAPH_HEIGHT + 4.0)
            .color(Color::srgb(0.8, 0.85, 0.9)),
        OverlayText,
    ));
    commands.spawn((
        HudBars {
            values: vec![0.0; PING_SAMPLES],
            corner: crate::hud::Corner::BottomLeft,
            offset: Vec2::new(12.0, 8.0),
            bar_width: 3.0,
            height: GRAPH_HEIGHT,
            color: Color::srgb(0.45, 0.8, 0.5),
        },
        PingGraph,
    ));
}

/// Gives newly spawned boxes and coins their sprites.
fn dress(
    mut commands: Commands,
    players: Query<(Entity, &Player), Without<Sprite>>,
    coins: Query<Entity, (With<Coin>, Without<Sprite>)>,
) {
    let side = (PLAYER_SIZE / ONE) as f32;
    for (entity, player) in &players {
        commands.entity(entity).insert((
            Sprite::from_color(COLORS[player.handle % COLORS.len()], Vec2::splat(side)),
            Transform::default(),
        ));
    }
    let coin = (COIN_SIZE / ONE) as f32;
    for entity in &coins {
        commands.entity(entity).insert((
            Sprite::from_color(Color::srgb(1.0, 0.85, 0.2), Vec2::splat(coin)),
            Transform::from_xyz(0.0, 0.0, 0.5),
        ));
    }
}

/// Transforms follow the simulation (which rollback may rewrite any frame).
fn place(mut bodies: Query<(&Body, &mut Transform)>) {
    for (body, mut transform) in &mut bodies {
        transform.translation.x = body.x as f32 / ONE as f32;
        transform.translation.y = body.y as f32 / ONE as f32;
    }
}

fn scoreboard(
    players: Query<(&Player, &Score)>,
    round: Res<Round>,
    status: Res<RollbackStatus>,
    state: Res<State<ConnectionState>>,
    mut hud: Query<&mut Hud, With<ScoreText>>,
) {
    let Ok(mut hud) = hud.single_mut() else {
        return;
    };
    if status.local_handle.is_none() && !status.spectating {
        hud.set(format!(
            "{:?}: waiting for players... (WASD or arrows to move)",
            state.get()
        ));
        return;
    }
    let mut scores: Vec<(usize, u32)> = players.iter().map(|(p, s)| (p.handle, s.0)).collect();
    scores.sort();
    let line: Vec<String> = scores
        .iter()
        .map(|(h, s)| {
            let you = if Some(*h) == status.local_handle {
                " (you)"
            } else {
                ""
            };
            format!("P{}{you}: {s}", h + 1)
        })
        .collect();
    let mut text = match round.winner {
        Some(w) => format!(
            "Player {} wins round {}!  {}",
            w + 1,
            round.number + 1,
            line.join("   ")
        ),
        None => format!(
            "Round {} - first to {WIN_SCORE}   {}",
            round.number + 1,
            line.join("   ")
        ),
    };
    if status.spectating {
        text.insert_str(0, "Watching - ");
    }
    hud.set(text);
}

fn overlay(
    stats: Res<NetStats>,
    status: Res<RollbackStatus>,
    mut hud: Query<&mut Hud, With<OverlayText>>,
) {
    let Ok(mut hud) = hud.single_mut() else {
        return;
    };
    let mut lines = vec![format!(
        "frame {}  confirmed {}  rollbacks {} ({} frames)  desyncs {}",
        status.frame,
        status.confirmed_frame,
        status.rollbacks,
        status.rollback_frames,
        status.desyncs
    )];
    let mut peers: Vec<_> = stats.peers.iter().collect();
    peers.sort_by_key(|(id, _)| **id);
    for (id, s) in peers {
        let handle = status.players.iter().position(|p| p == id);
        let name = handle.map_or_else(|| "peer".to_string(), |h| format!("P{}", h + 1));
        lines.push(format!(
            "{name} rtt {} +/- {:.1} ms  loss {:.0}%",
            s.rtt
                .map_or("-".to_string(), |r| format!("{:.1}", r.as_secs_f64() * 1e3)),
            s.jitter.as_secs_f64() * 1e3,
            s.loss() * 100.0
        ));
    }
    hud.set(lines.join("\n"));
}

fn sample_ping(time: Res<Time>, stats: Res<NetStats>, mut history: ResMut<PingHistory>) {
    history.since += time.delta();
    if history.since < PING_SAMPLE {
        return;
    }
    history.since = Duration::ZERO;
    let worst = stats
        .peers
        .values()
        .filter_map(|s| s.rtt)
        .max()
        .map_or(0.0, |r| r.as_secs_f32() * 1e3);
    history.samples.push_back(worst);
    while history.samples.len() > PING_SAMPLES {
        history.samples.pop_front();
    }
}

fn ping_graph(history: Res<PingHistory>, mut graph: Query<&mut HudBars, With<PingGraph>>) {
    if !history.is_changed() {
        return;
    }
    let Ok(mut graph) = graph.single_mut() else {
        return;
    };
    let offset = PING_SAMPLES - history.samples.len();
    // The top of the graph: 100 ms, or the worst sample shown.
    let top = history.samples.iter().copied().fold(GRAPH_MAX_MS, f32::max);
    for (i, value) in graph.values.iter_mut().enumerate() {
        let ms = i
            .checked_sub(offset)
            .and_then(|k| history.samples.get(k))
            .copied()
            .unwrap_or(0.0);
        *value = (ms / top).min(1.0);
    }
}

/// WASD or the arrow keys, for every local player.
pub fn keyboard_input(
    mut commands: Commands,
    local: Res<LocalPlayers>,
    keys: Option<Res<ButtonInput<KeyCode>>>,
) {
    let mut bits = 0;
    if let Some(keys) = keys {
        let any = |codes: [KeyCode; 2]| codes.iter().any(|k| keys.pressed(*k));
        if any([KeyCode::KeyW, KeyCode::ArrowUp]) {
            bits |= BoxInput::UP;
        }
        if any([KeyCode::KeyS, KeyCode::ArrowDown]) {
            bits |= BoxInput::DOWN;
        }
        if any([KeyCode::KeyA, KeyCode::ArrowLeft]) {
            bits |= BoxInput::LEFT;
        }
        if any([KeyCode::KeyD, KeyCode::ArrowRight]) {
            bits |= BoxInput::RIGHT;
        }
    }
    let inputs = local.0.iter().map(|&h| (h, BoxInput(bits))).collect();
    commands.insert_resource(LocalInputs::<Config>(inputs));
}
