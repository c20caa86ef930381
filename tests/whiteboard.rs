//! The whiteboard over real WebRTC (headless apps, in a private network
//! namespace): a stroke drawn by a non-authority peer reaches everyone,
//! stays when its author leaves, is there for a latecomer, and survives the
//! authority leaving too.

use std::time::{Duration, Instant};

use bevy::prelude::*;
use volley::bevy::VolleyPlugin;
use volley::bevy::replication::ReplicationStatus;
use volley_games::whiteboard::{self, Cursor, LocalPen, Pen, Stroke, WhiteboardPlugin};
use volley_testkit::server::with_server;

fn app(url: &str) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        VolleyPlugin::new(url).app_version(whiteboard::APP_VERSION),
        WhiteboardPlugin { tick_rate: 60 },
    ));
    app
}

fn status(app: &App) -> ReplicationStatus {
    app.world().resource::<ReplicationStatus>().clone()
}

fn strokes(app: &mut App) -> Vec<Stroke> {
    let world = app.world_mut();
    let mut q = world.query::<&Stroke>();
    q.iter(world).cloned().collect()
}

fn cursors(app: &mut App) -> usize {
    let world = app.world_mut();
    world.query::<&Cursor>().iter(world).count()
}

fn pump(apps: &mut [App], what: &str, mut done: impl FnMut(&mut [App]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(apps) {
        for app in apps.iter_mut() {
            app.update();
        }
        if Instant::now() >= deadline {
            for (i, a) in apps.iter_mut().enumerate() {
                eprintln!(
                    "peer {i}: {:?}, {} strokes, {} cursors",
                    status(a),
                    strokes(a).len(),
                    cursors(a)
                );
            }
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn agreed(apps: &[App]) -> bool {
    let first = status(&apps[0]).authority;
    first.is_some() && apps.iter().all(|a| status(a).authority == first)
}

#[test]
fn strokes_reach_everyone_and_outlive_their_author_and_the_authority() {
    if !volley_testkit::netns::isolate(
        "strokes_reach_everyone_and_outlive_their_author_and_the_authority",
    ) {
        return;
    }
    with_server(|server| {
        let url = format!("ws://{}/board", server.addr());
        let mut apps = vec![app(&url), app(&url)];
        pump(&mut apps, "an authority", |apps| agreed(apps));
        let author = apps
            .iter()
            .position(|a| !status(a).is_authority)
            .expect("a non-authority peer");
        for pen in [
            Pen::Move((5, 5)),
            Pen::Down {
                number: 1,
                color: 3,
                at: (0, 0),
            },
            Pen::Line {
                number: 1,
                points: vec![(10, 10), (20, 20)],
            },
        ] {
            apps[author].world_mut().write_message(LocalPen(pen));
        }
        let drawn = |app: &mut App| {
            strokes(app)
                .iter()
                .any(|s| s.points == vec![(0, 0), (10, 10), (20, 20)] && s.color == 3)
        };
        pump(&mut apps, "the stroke everywhere", |apps| {
            apps.iter_mut().all(|a| drawn(a) && cursors(a) == 1)
        });

        // The author leaves: its cursor goes, its stroke stays.
        drop(apps.remove(author));
        pump(&mut apps, "the author's cursor to go", |apps| {
            cursors(&mut apps[0]) == 0
        });
        assert!(drawn(&mut apps[0]));

        // A latecomer sees the board as it is.
        apps.push(app(&url));
        pump(&mut apps, "the latecomer to see the stroke", |apps| {
            agreed(apps) && drawn(&mut apps[1])
        });

        // The authority leaves: the latecomer takes over, the stroke stays.
        drop(apps.remove(0));
        pump(&mut apps, "the latecomer to take over", |apps| {
            status(&apps[0]).is_authority
        });
        for _ in 0..30 {
            apps[0].update();
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(drawn(&mut apps[0]), "the stroke survived the handover");
        assert_eq!(strokes(&mut apps[0]).len(), 1);
    });
}
