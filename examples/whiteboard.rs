//! whiteboard: a shared canvas; everyone's cursor and strokes appear for
//! everyone, strokes stay when their author leaves, latecomers see it all.
//!
//! Desktop: `cargo run -p volley_examples --bin whiteboard -- --server ws://127.0.0.1:3536 --room board`
//! (start `volley-server` first). In the browser the server is the page's
//! origin and the room comes from `?room=` (default `whiteboard`).

use bevy::prelude::*;
use volley_games::launch::{self, Launch};
use volley_games::status::StatusPlugin;
use volley_games::whiteboard::render::WhiteboardRenderPlugin;
use volley_games::whiteboard::{self, WhiteboardPlugin};

fn main() {
    // One room for everyone in it: no matchmaking into groups.
    let launch = Launch {
        players: None,
        ..Launch::from_env("whiteboard", None)
    };
    App::new()
        .add_plugins(DefaultPlugins.set(launch::window("volley whiteboard")))
        .insert_resource(ClearColor(Color::srgb(0.07, 0.08, 0.10)))
        .add_plugins((
            launch.plugin().app_version(whiteboard::APP_VERSION),
            WhiteboardPlugin::default(),
            WhiteboardRenderPlugin,
            StatusPlugin,
        ))
        .run();
}
