//! box_game: 2-4 players shove each other for coins, with rollback netcode.
//!
//! Desktop: `cargo run -p volley_examples --bin box_game -- --server ws://127.0.0.1:3536 --players 2`
//! (start `volley-server` first; `--room NAME` picks a room, default `box_game`).
//! In the browser the server is the page's origin and room and players come
//! from `?room=…&players=N`. Players are matched in groups of N within a room.
//! WASD or the arrow keys move your box. `--spectate GROUP` (in the browser
//! `&spectate=GROUP`, as the lobby's watch links have it) watches a match
//! in play instead; an empty `GROUP` watches the room's match. `--record
//! FILE` records the match; `--replay FILE` plays a recorded one back.

use bevy::prelude::*;
use volley::bevy::rollback::RollbackPlugin;
use volley_games::box_game::render::BoxGameRenderPlugin;
use volley_games::box_game::{self, BoxGamePlugin, BoxInput};
use volley_games::launch::{self, Launch};
use volley_games::status::StatusPlugin;

fn main() {
    let launch = Launch::from_env("box_game", Some(2));
    let mut players = launch.players.unwrap_or(2).clamp(2, 4);
    let mut app = App::new();
    app.add_plugins(DefaultPlugins.set(launch::window("volley box_game")))
        .insert_resource(ClearColor(Color::srgb(0.05, 0.05, 0.07)));
    if let Some(file) = &launch.replay {
        // A recorded match, played back at the game's rate.
        let replay = match launch::read_replay(file) {
            Ok(replay) => replay,
            Err(e) => {
                eprintln!("box_game: {e}");
                std::process::exit(2);
            }
        };
        players = replay.players.len();
        app.add_plugins(RollbackPlugin::<BoxInput>::replay(replay, true));
        launch::offline(&mut app);
    } else {
        let launch = Launch {
            players: Some(players),
            ..launch
        };
        // A spectator is fed by one peer.
        let (mut rollback, min_peers) = match launch.spectate {
            Some(_) => (RollbackPlugin::<BoxInput>::spectate(players), 1),
            None => (RollbackPlugin::<BoxInput>::new(players), players - 1),
        };
        if let Some(file) = launch.record.clone() {
            rollback = rollback.record(file);
        }
        app.add_plugins((
            launch
                .plugin()
                .app_version(box_game::APP_VERSION)
                .min_peers(min_peers),
            rollback,
        ));
    }
    app.add_plugins((
        BoxGamePlugin::new(players),
        BoxGameRenderPlugin,
        StatusPlugin,
    ))
    .run();
}
