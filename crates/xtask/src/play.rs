//! `cargo xtask play`: the games served by a release `volley-server`.

use std::process::Command;

use crate::web::web;
use crate::{cargo, step, target_dir};

/// The main job: a server with the games, for browsers and desktops. The
/// release bundles are (re)made when their example changed, never the
/// tests' debug ones.
pub(crate) fn play() -> Result<(), String> {
    let web_dir = web(true)?;
    let mut build = cargo();
    build.args(["build", "--release", "-p", "volley_server"]);
    step("cargo build --release -p volley_server", build)?;
    let addr = "127.0.0.1:3536";
    println!();
    println!("  lobby:            http://{addr}/");
    println!(
        "  box_game, 2 players in the browser: http://{addr}/play/box_game?room=box_game&players=2"
    );
    println!(
        "  box_game on the desktop:            cargo run --release -p volley_examples --bin box_game -- --server ws://{addr} --players 2"
    );
    println!();
    let mut server = Command::new(target_dir().join("release").join("volley-server"));
    server.args(["--addr", addr, "--web-dir"]).arg(&web_dir);
    step("volley-server", server)
}
