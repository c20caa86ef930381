//! Rollback: box_game's simulation under a sync test (and a proof that the
//! sync test catches non-determinism), and headless bots playing box_game
//! over real WebRTC through an in-process server, inside a private network
//! namespace (see `volley_testkit::netns`).

use std::time::Duration;

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use volley::bevy::rollback::bevy_ggrs::{self, GgrsSchedule, RollbackFrameCount};
use volley::bevy::rollback::{RollbackPlugin, RollbackStatus, VolleyGgrs};
use volley::bevy::{ConditionerConfig, VolleySession};
use volley_bots::{BotRun, RoomReport, run_rooms, run_rooms_with};
use volley_games::box_game::{self, Body, BoxGameStep, BoxInput, Player, Round, Score};
use volley_testkit::server::with_server;

/// A sync-test app of box_game with bots' inputs, one simulation frame per update.
fn sync_test_app(players: usize, check_distance: usize) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        RollbackPlugin::<BoxInput>::sync_test(players, check_distance),
    ))
    .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_nanos(
        1_000_000_000 / 60 + 1,
    )));
    box_game::add_bot(&mut app, players, 7);
    app
}

fn run_frames(app: &mut App, frames: i32) {
    for _ in 0..frames * 2 {
        app.update();
        if app.world().resource::<RollbackFrameCount>().0 >= frames {
            return;
        }
    }
    panic!(
        "only {} of {frames} frames simulated",
        app.world().resource::<RollbackFrameCount>().0
    );
}

#[test]
fn box_game_passes_a_600_frame_sync_test() {
    let mut app = sync_test_app(4, 7);
    run_frames(&mut app, 600);
    let status = app.world().resource::<RollbackStatus>().clone();
    assert_eq!(status.desyncs, 0, "the simulation is not deterministic");
    let scores = box_game::scores(app.world_mut());
    assert!(
        scores.iter().sum::<u32>() > 0,
        "bots never scored in 600 frames: {scores:?}"
    );
}

/// Moves player 0 by a counter that is not rolled back: a re-simulated
/// frame differs from the first simulation of it.
fn nondeterministic(mut calls: Local<i32>, mut players: Query<(&Player, &mut Body)>) {
    *calls += 1;
    for (player, mut body) in &mut players {
        if player.handle == 0 {
            body.x += *calls % 3;
        }
    }
}

#[test]
fn the_sync_test_catches_a_nondeterministic_system() {
    let mut app = sync_test_app(2, 7);
    app.add_systems(GgrsSchedule, nondeterministic.after(BoxGameStep));
    // A mismatch stops the sync test from advancing: update a bounded number of times.
    for _ in 0..120 {
        app.update();
    }
    let status = app.world().resource::<RollbackStatus>();
    assert!(
        status.desyncs > 0,
        "a non-rolled-back counter in the simulation went unnoticed"
    );
}

fn assert_rooms(label: &str, reports: &[RoomReport]) {
    for report in reports {
        print!("{label} {report}");
    }
    for report in reports {
        assert!(report.ok(), "{label}: {report}");
        assert!(
            report.bots.iter().all(|b| b.connect_time.is_some()),
            "{label}: {report}"
        );
    }
}

/// 2 rooms × 2 bots and 1 room × 4 bots at once, 600 frames each.
fn play_rooms(conditioner: Option<ConditionerConfig>, label: &str) {
    with_server(|server| {
        let url = format!("ws://{}", server.addr());
        let mut pairs = BotRun::new(&url, 2, 2, 600);
        let mut four = BotRun::new(&url, 1, 4, 600);
        for run in [&mut pairs, &mut four] {
            run.conditioner = conditioner;
            run.timeout = Duration::from_secs(90);
        }
        let (pairs, four) = std::thread::scope(|scope| {
            let a = scope.spawn(|| run_rooms(&pairs));
            let b = scope.spawn(|| run_rooms(&four));
            (
                a.join().expect("the 2-player rooms ran"),
                b.join().expect("the 4-player room ran"),
            )
        });
        assert_rooms(label, &pairs);
        assert_rooms(label, &four);
    });
}

#[test]
fn bots_play_600_frames_in_sync_over_webrtc() {
    if !volley_testkit::netns::isolate("bots_play_600_frames_in_sync_over_webrtc") {
        return;
    }
    play_rooms(None, "clean");
}

#[test]
fn bots_stay_in_sync_with_loss_and_delay() {
    if !volley_testkit::netns::isolate("bots_stay_in_sync_with_loss_and_delay") {
        return;
    }
    play_rooms(
        Some(ConditionerConfig {
            latency: Duration::from_millis(60),
            jitter: Duration::ZERO,
            loss: 0.10,
            seed: 42,
        }),
        "10% loss, 60 ms",
    );
}

/// From frame 100 on, this bot awards itself a point every frame: only its
/// own simulation does.
fn cheat(round: Res<Round>, mut players: Query<(&Player, &mut Score)>) {
    if round.frame < 100 {
        return;
    }
    for (player, mut score) in &mut players {
        if player.handle == 0 {
            score.0 += 1;
        }
    }
}

#[test]
fn a_desync_between_peers_is_detected_named_and_dumped() {
    if !volley_testkit::netns::isolate("a_desync_between_peers_is_detected_named_and_dumped") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("volley-desyncs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    with_server(|server| {
        let mut run = BotRun::new(&format!("ws://{}", server.addr()), 1, 2, 300);
        run.desync_dir = Some(dir.clone());
        let reports = run_rooms_with(&run, |app, _, bot| {
            if bot == 0 {
                app.add_systems(GgrsSchedule, cheat.after(BoxGameStep));
            }
        });
        let room = &reports[0];
        print!("{room}");
        assert!(!room.ok(), "a desync went unnoticed: {room}");
        assert!(room.bots.iter().all(|b| b.desyncs > 0), "{room}");
        let named: Vec<&String> = room
            .bots
            .iter()
            .filter_map(|b| b.diagnosis.as_ref())
            .flat_map(|(_, parts)| parts)
            .collect();
        assert!(
            named.iter().any(|p| p.contains("Score")),
            "the differing component was not named: {named:?}"
        );
        assert!(
            named.iter().all(|p| !p.contains("Body")),
            "only Score differs, yet: {named:?}"
        );
    });
    // Each peer dumped its world of the first desynced frames: the diff of
    // the first frame both dumped names Score, of player 0's entity only.
    // (Files are named desync-<frame>-<peer>.vdsync: sorted, a frame's
    // two dumps are neighbours.)
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .expect("no desync dumps written")
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let frame = |file: &std::path::PathBuf| {
        file.to_string_lossy()
            .rsplit_once('-')
            .unwrap()
            .0
            .to_string()
    };
    let pair = files
        .windows(2)
        .find(|w| frame(&w[0]) == frame(&w[1]))
        .unwrap_or_else(|| panic!("no frame dumped by both peers: {files:?}"));
    let diff = volley_bots::desync::compare(&pair[0], &pair[1]).unwrap();
    println!("{diff}");
    let [difference] = &diff.differences[..] else {
        panic!("one value differs, not: {diff}");
    };
    assert!(difference.part.ends_with("box_game::Score"), "{diff}");
    assert_eq!(difference.label.as_deref(), Some("player 0"), "{diff}");
    assert_ne!(difference.ours, difference.theirs);
    let _ = std::fs::remove_dir_all(&dir);
}

/// From `frame` on, this bot's player is gone: it closes every connection
/// (`silently`: its game stops, its connections stay open, as in a hung
/// process).
fn leave_at(
    frame: i32,
    silently: bool,
) -> impl FnMut(Commands, Option<ResMut<VolleySession>>, Res<RollbackStatus>) {
    move |mut commands, volley, status| {
        let Some(mut volley) = volley else { return };
        if status.frame < frame {
            return;
        }
        if silently {
            commands.remove_resource::<bevy_ggrs::Session<VolleyGgrs<BoxInput>>>();
        } else {
            let peers: Vec<_> = volley.session().connected_peers().collect();
            for peer in peers {
                volley.session().disconnect(peer);
            }
            commands.remove_resource::<VolleySession>();
        }
    }
}

/// Two of four players leave a lossy match at different frames, one by
/// closing its connections and one by falling silent: the two left drop
/// each at the same frame (their last packets reached them unevenly) and
/// play on in sync.
#[test]
fn players_who_leave_are_dropped_at_the_same_frame_by_everyone_left() {
    if !volley_testkit::netns::isolate(
        "players_who_leave_are_dropped_at_the_same_frame_by_everyone_left",
    ) {
        return;
    }
    with_server(|server| {
        let mut run = BotRun::new(&format!("ws://{}", server.addr()), 1, 4, 600);
        run.unjudged = vec![2, 3];
        run.timeout = Duration::from_secs(90);
        run.conditioner = Some(ConditionerConfig {
            latency: Duration::from_millis(30),
            jitter: Duration::ZERO,
            loss: 0.15,
            seed: 7,
        });
        let reports = run_rooms_with(&run, |app, _, bot| match bot {
            2 => {
                app.add_systems(Update, leave_at(150, false));
            }
            3 => {
                app.add_systems(Update, leave_at(300, true));
            }
            _ => {}
        });
        let room = &reports[0];
        print!("{room}");
        assert!(room.ok(), "{room}");
        assert!(room.bots.iter().all(|b| b.desyncs == 0), "{room}");
    });
}
