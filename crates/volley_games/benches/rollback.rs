//! Rollback cost per frame, through the code path games run: a ggrs sync
//! test, which at check distance d loads the state of d frames ago and
//! re-simulates (advance + save) d + 1 frames every frame — exactly what a
//! P2P frame with a d-frame rollback costs.
//!
//! Worlds: box_game at 4 players, and synthetic worlds of 1,000 and 10,000
//! rollback entities (two rolled-back, checksummed components each, one
//! system moving them). Per world and distance: the median and mean time of
//! one frame; from distances 1 and 8, the cost of one frame without a
//! rollback (advance + save) as (T8 - T1) / 7.
//!
//! `cargo bench -p volley_games --bench rollback [-- --frames N]`

use std::time::{Duration, Instant};
use volley_testkit::report;

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevy_volley::rollback::bevy_ggrs::{
    GgrsSchedule, LocalInputs, LocalPlayers, ReadInputs, Rollback, RollbackApp, RollbackFrameCount,
};
use bevy_volley::rollback::{ChecksumApp, RollbackPlugin, RollbackStatus, VolleyGgrs};
use volley_games::box_game::{self, BoxInput};

#[derive(Component, Clone, Copy, Hash)]
#[require(Rollback)]
struct Pos(i32, i32);

#[derive(Component, Clone, Copy, Hash)]
struct Vel(i32, i32);

fn step(mut q: Query<(&mut Pos, &mut Vel)>) {
    for (mut p, mut v) in &mut q {
        p.0 += v.0;
        p.1 += v.1;
        if p.0.abs() > 10_000 {
            v.0 = -v.0;
        }
        if p.1.abs() > 10_000 {
            v.1 = -v.1;
        }
    }
}

fn no_input(mut commands: Commands, local: Res<LocalPlayers>) {
    let inputs = local.0.iter().map(|&h| (h, 0u8)).collect();
    commands.insert_resource(LocalInputs::<VolleyGgrs<u8>>(inputs));
}

fn one_frame_per_update(app: &mut App) {
    app.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_nanos(
        1_000_000_000 / 60 + 1,
    )));
}

fn synthetic(entities: usize, distance: usize) -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, RollbackPlugin::<u8>::sync_test(1, distance)))
        .rollback_component_with_copy::<Pos>()
        .rollback_component_with_copy::<Vel>()
        .checksum_component_named::<Pos>()
        .checksum_component_named::<Vel>()
        .add_systems(ReadInputs, no_input)
        .add_systems(GgrsSchedule, step);
    let world = app.world_mut();
    for i in 0..entities as i32 {
        world.spawn((Pos(i, -i), Vel(i % 7 - 3, i % 5 - 2)));
    }
    one_frame_per_update(&mut app);
    app
}

fn box_game_app(distance: usize) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        RollbackPlugin::<BoxInput>::sync_test(4, distance),
    ));
    box_game::add_bot(&mut app, 4, 3);
    one_frame_per_update(&mut app);
    app
}

struct Timing {
    median: Duration,
    mean: Duration,
}

/// Times `frames` updates after a warm-up past the check distance.
fn measure(mut app: App, frames: usize) -> Timing {
    for _ in 0..30 {
        app.update();
    }
    let mut samples = Vec::with_capacity(frames);
    for _ in 0..frames {
        let before = app.world().resource::<RollbackFrameCount>().0;
        let start = Instant::now();
        app.update();
        let took = start.elapsed();
        // An update that ran no frame (timer rounding) is not a frame.
        if app.world().resource::<RollbackFrameCount>().0 != before {
            samples.push(took);
        }
    }
    assert_eq!(
        app.world().resource::<RollbackStatus>().desyncs,
        0,
        "the benchmark world is not deterministic"
    );
    assert!(
        !samples.is_empty(),
        "no frame was simulated: the sync test did not start"
    );
    samples.sort();
    Timing {
        median: samples[samples.len() / 2],
        mean: samples.iter().sum::<Duration>() / samples.len() as u32,
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let frames: usize = report::Options::parse(&["frames"]).get("frames", 300);
    type Build = fn(usize) -> App;
    let worlds: [(&str, Build, usize); 3] = [
        ("box_game, 4 players", box_game_app, frames),
        ("1,000 entities", |d| synthetic(1_000, d), frames),
        ("10,000 entities", |d| synthetic(10_000, d), frames / 4),
    ];
    println!("rollback cost per frame (sync test; µs; median / mean of {frames} frames)");
    println!(
        "{:<22} {:>18} {:>22} {:>24}",
        "world", "no rollback", "1-frame rollback", "8-frame rollback"
    );
    let mut table = report::Table::new(
        "rollback",
        format!(
            "Rollback cost per frame (sync test; d-frame rollback = load + d+1 advance/save), median of {frames} frames, µs"
        ),
        &["box_game, 4 players", "1,000 entities", "10,000 entities"],
    );
    table.ratio = false; // three worlds, no reference
    let mut columns: Vec<[f64; 3]> = Vec::new();
    let mut thousand_8 = None;
    for (name, build, frames) in worlds {
        let one = measure(build(1), frames);
        let eight = measure(build(8), frames);
        let plain = eight.median.saturating_sub(one.median) / 7;
        println!(
            "{name:<22} {:>18.1} {:>10.1} / {:>9.1} {:>12.1} / {:>9.1}",
            us(plain),
            us(one.median),
            us(one.mean),
            us(eight.median),
            us(eight.mean)
        );
        columns.push([us(plain), us(one.median), us(eight.median)]);
        if name.starts_with("1,000") {
            thousand_8 = Some(eight.median);
        }
    }
    for (i, row) in [
        "no rollback (µs)",
        "1-frame rollback (µs)",
        "8-frame rollback (µs)",
    ]
    .iter()
    .enumerate()
    {
        let values: Vec<f64> = columns.iter().map(|c| c[i]).collect();
        table.row(*row, report::Better::Lower, &values);
    }
    table.save();
    if let Some(t) = thousand_8 {
        println!(
            "target: an 8-frame rollback of 1,000 entities within 2 ms: {:.2} ms ({})",
            t.as_secs_f64() * 1e3,
            if t <= Duration::from_millis(2) {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}
