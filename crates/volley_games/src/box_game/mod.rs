//! box_game: 2–4 boxes in an arena. Move, shove the others, grab coins;
//! the first to [`WIN_SCORE`] wins the round, and a new round starts.
//!
//! The simulation is integer fixed point (1/256 of a pixel) and iterates
//! players and coins sorted by their ids, so every peer computes the same
//! frame bit for bit — what rollback needs. It runs in bevy_ggrs'
//! [`GgrsSchedule`]; [`BoxGamePlugin`] registers what is rolled back and
//! checksummed. Rendering and keyboard input: [`render`] (feature `render`).
//!
//! ```
//! use bevy::prelude::*;
//! use bevy_volley::rollback::RollbackPlugin;
//! use volley_games::box_game::{BoxGamePlugin, BoxInput};
//!
//! // A local determinism check of the simulation: no network needed.
//! let mut app = App::new();
//! app.add_plugins((
//!     MinimalPlugins,
//!     RollbackPlugin::<BoxInput>::sync_test(2, 7),
//!     BoxGamePlugin::new(2),
//! ));
//! app.update();
//! ```

#[cfg(feature = "render")]
pub mod render;

use std::hash::{Hash, Hasher};

use bevy::prelude::*;
use bevy_volley::rollback::bevy_ggrs::{
    GgrsSchedule, LocalInputs, LocalPlayers, PlayerInputs, ReadInputs, Rollback,
};
use bevy_volley::rollback::{RollbackStateApp, RollbackStatus, VolleyGgrs};
use serde::{Deserialize, Serialize};

/// The app version every box_game peer announces (part of the protocol
/// hash): desktop, browser and bots must agree.
pub const APP_VERSION: &str = "box_game-1";

/// ggrs configuration of this game.
pub type Config = VolleyGgrs<BoxInput>;

/// One fixed-point unit per 1/256 pixel.
pub const ONE: i32 = 256;
/// Arena width, in fixed-point units (centred on 0).
pub const ARENA_W: i32 = 800 * ONE;
/// Arena height.
pub const ARENA_H: i32 = 560 * ONE;
/// A player's side.
pub const PLAYER_SIZE: i32 = 40 * ONE;
/// A coin's side.
pub const COIN_SIZE: i32 = 18 * ONE;
/// Coins on the field at once.
pub const COINS: usize = 3;
/// Score that wins a round.
pub const WIN_SCORE: u32 = 10;
/// Frames between a win and the next round (3 s at 60 fps).
pub const ROUND_BREAK: u32 = 180;
/// Players at most.
pub const MAX_PLAYERS: usize = 4;

const ACCEL: i32 = ONE * 6 / 10;
const MAX_SPEED: i32 = ONE * 7;

/// A frame of one player's input: a direction as four bits.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct BoxInput(pub u8);

impl BoxInput {
    /// Up.
    pub const UP: u8 = 1;
    /// Down.
    pub const DOWN: u8 = 2;
    /// Left.
    pub const LEFT: u8 = 4;
    /// Right.
    pub const RIGHT: u8 = 8;

    /// The direction as (x, y) in {-1, 0, 1}; y points up.
    pub fn direction(self) -> (i32, i32) {
        let x = i32::from(self.0 & Self::RIGHT != 0) - i32::from(self.0 & Self::LEFT != 0);
        let y = i32::from(self.0 & Self::UP != 0) - i32::from(self.0 & Self::DOWN != 0);
        (x, y)
    }
}

/// A player's box.
#[derive(Component, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[require(Rollback)]
pub struct Player {
    /// The ggrs player handle.
    pub handle: usize,
}

/// A coin, by index.
#[derive(Component, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[require(Rollback)]
pub struct Coin {
    /// Stable index (iteration order).
    pub id: usize,
}

/// Position and velocity in fixed point; the centre of the box.
#[derive(Component, Clone, Copy, Default, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Body {
    /// Centre x.
    pub x: i32,
    /// Centre y (up).
    pub y: i32,
    /// Velocity x per frame.
    pub vx: i32,
    /// Velocity y per frame.
    pub vy: i32,
}

/// A player's score this round.
#[derive(Component, Clone, Copy, Default, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Score(pub u32);

/// The round: its number, the winner, the coin generator.
#[derive(Resource, Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Round {
    /// Rounds completed.
    pub number: u32,
    /// The last round's winner, during the break.
    pub winner: Option<usize>,
    /// Frames left in the break.
    pub break_left: u32,
    /// Frames simulated.
    pub frame: u32,
    /// xorshift64 state for coin positions.
    pub rng: u64,
}

impl Default for Round {
    fn default() -> Self {
        Round {
            number: 0,
            winner: None,
            break_left: 0,
            frame: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

/// Hashed field by field at fixed widths: a derived `Hash` would hash the
/// `Option`'s discriminant as an `isize` and the handle as a `usize`, which
/// are 4 bytes in the browser (wasm32) and 8 natively — the checksums would
/// differ between a browser and a desktop player in the same state.
impl Hash for Round {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.number.hash(state);
        self.winner.map_or(u64::MAX, |w| w as u64).hash(state);
        self.break_left.hash(state);
        self.frame.hash(state);
        self.rng.hash(state);
    }
}

impl Round {
    fn next(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// A coin position inside the arena, away from the walls.
    fn coin_spot(&mut self) -> (i32, i32) {
        let span_x = (ARENA_W - 2 * PLAYER_SIZE) as u64;
        let span_y = (ARENA_H - 2 * PLAYER_SIZE) as u64;
        let x = (self.next() % span_x) as i32 - (ARENA_W / 2 - PLAYER_SIZE);
        let y = (self.next() % span_y) as i32 - (ARENA_H / 2 - PLAYER_SIZE);
        (x, y)
    }
}

/// Where player `handle` starts: the arena's corners.
pub fn spawn_point(handle: usize) -> (i32, i32) {
    let x = ARENA_W / 2 - 2 * PLAYER_SIZE;
    let y = ARENA_H / 2 - 2 * PLAYER_SIZE;
    match handle % MAX_PLAYERS {
        0 => (-x, y),
        1 => (x, -y),
        2 => (x, y),
        _ => (-x, -y),
    }
}

/// The simulation (no rendering): spawns the boxes and coins at startup
/// and runs the rules in [`GgrsSchedule`]. Add a
/// [`RollbackPlugin<BoxInput>`](bevy_volley::rollback::RollbackPlugin)
/// beside it.
pub struct BoxGamePlugin {
    players: usize,
}

impl BoxGamePlugin {
    /// A match of `players` (clamped to 1..=4).
    pub fn new(players: usize) -> Self {
        BoxGamePlugin {
            players: players.clamp(1, MAX_PLAYERS),
        }
    }
}

/// Systems of one simulation step, in order (for ordering test systems).
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct BoxGameStep;

/// Players in this match.
#[derive(Resource, Clone, Copy, Debug)]
pub struct Players(pub usize);

impl Plugin for BoxGamePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Players(self.players))
            .init_resource::<Round>()
            .rollback_state_component::<Body>()
            .rollback_state_component::<Score>()
            .rollback_state_resource::<Round>()
            .add_systems(Startup, spawn)
            .add_systems(
                GgrsSchedule,
                (steer, integrate, shove, collect, referee)
                    .chain()
                    .in_set(BoxGameStep),
            );
    }
}

fn spawn(mut commands: Commands, players: Res<Players>, mut round: ResMut<Round>) {
    for handle in 0..players.0 {
        let (x, y) = spawn_point(handle);
        commands.spawn((
            Player { handle },
            Body { x, y, ..default() },
            Score(0),
            Name::new(format!("player {handle}")),
        ));
    }
    for id in 0..COINS {
        let (x, y) = round.coin_spot();
        commands.spawn((
            Coin { id },
            Body { x, y, ..default() },
            Name::new(format!("coin {id}")),
        ));
    }
}

fn sorted_players<'a>(
    players: impl Iterator<Item = (&'a Player, Mut<'a, Body>)>,
) -> Vec<(usize, Mut<'a, Body>)> {
    let mut v: Vec<_> = players.map(|(p, b)| (p.handle, b)).collect();
    v.sort_by_key(|(handle, _)| *handle);
    v
}

/// Inputs accelerate; friction slows (integer division rounds toward zero,
/// the same on every machine).
fn steer(
    inputs: Res<PlayerInputs<Config>>,
    round: Res<Round>,
    mut players: Query<(&Player, &mut Body)>,
) {
    for (player, mut body) in players.iter_mut() {
        let (dx, dy) = match inputs.get(player.handle) {
            Some((input, _)) if round.break_left == 0 => input.direction(),
            _ => (0, 0),
        };
        body.vx = (body.vx + dx * ACCEL - body.vx / 10).clamp(-MAX_SPEED, MAX_SPEED);
        body.vy = (body.vy + dy * ACCEL - body.vy / 10).clamp(-MAX_SPEED, MAX_SPEED);
    }
}

/// Moves, bouncing off the walls.
fn integrate(mut players: Query<&mut Body, With<Player>>) {
    let max_x = ARENA_W / 2 - PLAYER_SIZE / 2;
    let max_y = ARENA_H / 2 - PLAYER_SIZE / 2;
    for mut body in players.iter_mut() {
        body.x += body.vx;
        body.y += body.vy;
        if body.x.abs() > max_x {
            body.x = body.x.clamp(-max_x, max_x);
            body.vx = -body.vx / 2;
        }
        if body.y.abs() > max_y {
            body.y = body.y.clamp(-max_y, max_y);
            body.vy = -body.vy / 2;
        }
    }
}

/// Overlapping boxes are pushed apart along the shallower axis and trade
/// their velocities on it: running into someone shoves them.
fn shove(mut players: Query<(&Player, &mut Body)>) {
    let mut bodies = sorted_players(players.iter_mut());
    for i in 0..bodies.len() {
        for j in i + 1..bodies.len() {
            let (left, right) = bodies.split_at_mut(j);
            let a = &mut left[i].1;
            let b = &mut right[0].1;
            let dx = b.x - a.x;
            let dy = b.y - a.y;
            let over_x = PLAYER_SIZE - dx.abs();
            let over_y = PLAYER_SIZE - dy.abs();
            if over_x <= 0 || over_y <= 0 {
                continue;
            }
            if over_x < over_y {
                let sign = if dx >= 0 { 1 } else { -1 };
                a.x -= sign * (over_x / 2);
                b.x += sign * (over_x - over_x / 2);
                std::mem::swap(&mut a.vx, &mut b.vx);
            } else {
                let sign = if dy >= 0 { 1 } else { -1 };
                a.y -= sign * (over_y / 2);
                b.y += sign * (over_y - over_y / 2);
                std::mem::swap(&mut a.vy, &mut b.vy);
            }
        }
    }
}

/// A box touching a coin scores it; the coin moves elsewhere. The lowest
/// handle wins a tie.
fn collect(
    mut round: ResMut<Round>,
    mut players: Query<(&Player, &Body, &mut Score), Without<Coin>>,
    mut coins: Query<(&Coin, &mut Body), Without<Player>>,
) {
    if round.break_left > 0 {
        return;
    }
    let mut players: Vec<_> = players.iter_mut().collect();
    players.sort_by_key(|(p, _, _)| p.handle);
    let mut coins: Vec<_> = coins.iter_mut().collect();
    coins.sort_by_key(|(c, _)| c.id);
    let reach = (PLAYER_SIZE + COIN_SIZE) / 2;
    for (_, coin) in coins.iter_mut() {
        if let Some((_, _, score)) = players
            .iter_mut()
            .find(|(_, b, _)| (b.x - coin.x).abs() < reach && (b.y - coin.y).abs() < reach)
        {
            score.0 += 1;
            let (x, y) = round.coin_spot();
            coin.x = x;
            coin.y = y;
        }
    }
}

/// Ends a round at [`WIN_SCORE`], and starts the next after the break.
fn referee(mut round: ResMut<Round>, mut players: Query<(&Player, &mut Body, &mut Score)>) {
    round.frame += 1;
    if round.break_left > 0 {
        round.break_left -= 1;
        if round.break_left == 0 {
            round.winner = None;
            round.number += 1;
            for (player, mut body, mut score) in players.iter_mut() {
                let (x, y) = spawn_point(player.handle);
                *body = Body { x, y, ..default() };
                score.0 = 0;
            }
        }
        return;
    }
    let winner = players
        .iter()
        .filter(|(_, _, s)| s.0 >= WIN_SCORE)
        .map(|(p, _, _)| p.handle)
        .min();
    if let Some(handle) = winner {
        round.winner = Some(handle);
        round.break_left = ROUND_BREAK;
    }
}

/// A seeded input policy for bots: holds a direction for a while, heads for
/// the nearest coin most of the time, wanders otherwise. Deterministic for
/// a seed (bots are reproducible), but not part of the simulation.
#[derive(Resource, Clone, Debug)]
pub struct BotPolicy {
    state: u64,
    hold: u32,
    current: BoxInput,
}

impl BotPolicy {
    /// A policy seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        BotPolicy {
            state: seed ^ 0x2545_f491_4f6c_dd1d,
            hold: 0,
            current: BoxInput::default(),
        }
    }

    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The input for a box at `me`, with coins at `coins`.
    pub fn decide(&mut self, me: (i32, i32), coins: &[(i32, i32)]) -> BoxInput {
        if self.hold > 0 {
            self.hold -= 1;
            return self.current;
        }
        self.hold = 4 + (self.next() % 12) as u32;
        let roll = self.next() % 10;
        self.current = match coins.iter().min_by_key(|(x, y)| {
            (i64::from(*x) - i64::from(me.0)).abs() + (i64::from(*y) - i64::from(me.1)).abs()
        }) {
            Some(&(x, y)) if roll < 7 => {
                let mut bits = 0;
                if x > me.0 + ONE * 4 {
                    bits |= BoxInput::RIGHT;
                } else if x < me.0 - ONE * 4 {
                    bits |= BoxInput::LEFT;
                }
                if y > me.1 + ONE * 4 {
                    bits |= BoxInput::UP;
                } else if y < me.1 - ONE * 4 {
                    bits |= BoxInput::DOWN;
                }
                BoxInput(bits)
            }
            _ => BoxInput((self.next() % 16) as u8),
        };
        self.current
    }
}

/// Reads the local players' inputs from a [`BotPolicy`] (add to [`ReadInputs`]).
pub fn bot_input(
    mut commands: Commands,
    local: Res<LocalPlayers>,
    mut policy: ResMut<BotPolicy>,
    players: Query<(&Player, &Body)>,
    coins: Query<&Body, With<Coin>>,
) {
    let coin_spots: Vec<(i32, i32)> = coins.iter().map(|b| (b.x, b.y)).collect();
    let mut inputs = bevy::platform::collections::HashMap::default();
    for &handle in &local.0 {
        let me = players
            .iter()
            .find(|(p, _)| p.handle == handle)
            .map_or((0, 0), |(_, b)| (b.x, b.y));
        inputs.insert(handle, policy.decide(me, &coin_spots));
    }
    commands.insert_resource(LocalInputs::<Config>(inputs));
}

/// A headless bot's app: the simulation, a [`BotPolicy`], no rendering.
/// The caller adds the network (`VolleyPlugin` + `RollbackPlugin`) or a
/// sync test.
pub fn add_bot(app: &mut App, players: usize, seed: u64) -> &mut App {
    app.add_plugins(BoxGamePlugin::new(players))
        .insert_resource(BotPolicy::new(seed))
        .add_systems(ReadInputs, bot_input)
}

/// A summary of the game state for bots and tests: (frame, scores by handle).
pub fn scores(world: &mut World) -> Vec<u32> {
    let mut q = world.query::<(&Player, &Score)>();
    let mut v: Vec<(usize, u32)> = q.iter(world).map(|(p, s)| (p.handle, s.0)).collect();
    v.sort();
    v.into_iter().map(|(_, s)| s).collect()
}

/// Whether the rollback session of this app is under way.
pub fn started(world: &World) -> bool {
    world
        .get_resource::<RollbackStatus>()
        .is_some_and(|s| s.local_handle.is_some())
}
