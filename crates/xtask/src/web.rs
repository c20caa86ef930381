//! `cargo xtask web [--release]`: the browser bundles of the examples and
//! the lobby page.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools::{setup_wasm, wasm_bindgen};
use crate::{WASM, cargo, json_string, root, step, target_dir, write};

/// The examples with a web bundle: (name, most players, description).
pub(crate) const WEB_GAMES: &[(&str, usize, &str)] = &[
    (
        "box_game",
        4,
        "Shove the other boxes, grab the coins: first to 10 wins. Rollback netcode.",
    ),
    (
        "whiteboard",
        16,
        "A shared canvas: everyone's cursor and strokes, live; latecomers see it all.",
    ),
    (
        "hello",
        16,
        "Peers greet each other; RTT and traffic per peer.",
    ),
];
pub(crate) fn gzip(path: &Path, level: flate2::Compression) -> Result<u64, String> {
    use std::io::Write;
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
    encoder.write_all(&raw).map_err(|e| e.to_string())?;
    let packed = encoder.finish().map_err(|e| e.to_string())?;
    let mut out = path.as_os_str().to_owned();
    out.push(".gz");
    std::fs::write(&out, &packed).map_err(|e| format!("{}: {e}", Path::new(&out).display()))?;
    Ok(packed.len() as u64)
}
/// Builds every web game for wasm32, runs wasm-bindgen, and writes one
/// self-contained bundle per game plus the lobby. Returns the web directory.
pub(crate) fn web(release: bool) -> Result<PathBuf, String> {
    setup_wasm()?;
    build_web(release)
}
/// [`web`] without the set-up.
pub(crate) fn build_web(release: bool) -> Result<PathBuf, String> {
    let bindgen = wasm_bindgen()?;
    // All examples (so every one keeps building for the browser); the
    // bundles are made for WEB_GAMES.
    let mut build = cargo();
    build.args(["build", "--target", WASM, "-p", "volley", "--examples"]);
    if release {
        build.arg("--release");
    }
    step("cargo build (wasm32 examples)", build)?;
    let profile = if release { "release" } else { "debug" };
    let web = target_dir().join("web");
    let shell = std::fs::read_to_string(root().join("assets/web/game.html"))
        .map_err(|e| format!("assets/web/game.html: {e}"))?;
    let mut games_json = Vec::new();
    for (game, max_players, description) in WEB_GAMES {
        let out = web.join(game);
        if out.exists() {
            std::fs::remove_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        }
        let input = target_dir()
            .join(WASM)
            .join(profile)
            .join("examples")
            .join(format!("{game}.wasm"));
        let mut run = Command::new(&bindgen);
        run.args(["--target", "web", "--no-typescript", "--out-name", game]);
        if release {
            // Function names only serve stack traces; players download every byte.
            run.args(["--remove-name-section", "--remove-producers-section"]);
        }
        run.arg("--out-dir").arg(&out).arg(&input);
        step(&format!("wasm-bindgen {game}"), run)?;
        let wasm = out.join(format!("{game}_bg.wasm"));
        let raw = std::fs::metadata(&wasm)
            .map_err(|e| format!("{}: {e}", wasm.display()))?
            .len();
        // Release bundles are what players download: squeeze them.
        let level = if release {
            flate2::Compression::best()
        } else {
            flate2::Compression::fast()
        };
        let packed = gzip(&wasm, level)?;
        println!(
            "    {game}: {:.1} MB wasm, {:.1} MB gzip ({profile})",
            raw as f64 / 1e6,
            packed as f64 / 1e6
        );
        write(&out.join("index.html"), &shell.replace("{{GAME}}", game))?;
        write(
            &out.join("manifest.json"),
            &format!(
                "{{\"js\":{},\"wasm\":{},\"wasm_bytes\":{raw},\"wasm_gzip_bytes\":{packed},\"profile\":{}}}\n",
                json_string(&format!("{game}.js")),
                json_string(&format!("{game}_bg.wasm")),
                json_string(profile)
            ),
        )?;
        games_json.push(format!(
            "{{\"name\":{},\"max_players\":{max_players},\"description\":{}}}",
            json_string(game),
            json_string(description)
        ));
    }
    write(
        &web.join("games.json"),
        &format!("[{}]\n", games_json.join(",")),
    )?;
    std::fs::copy(root().join("assets/web/lobby.html"), web.join("index.html"))
        .map_err(|e| format!("lobby: {e}"))?;
    println!("web bundle: {}", web.display());
    Ok(web)
}
