//! `cargo xtask <task>`: the project's scripted jobs.
//!
//! - `ci`: everything CI runs, in order; `.ci/run` calls exactly this:
//!   set-up (apt packages, wasm32 target, wasm-bindgen-cli), fmt, clippy,
//!   the wasm32 build and web bundles of the examples, every test
//!   (including the browser ones, which load those bundles).
//! - `bench`: release benchmarks against the references (installs
//!   `matchbox_server` from crates.io into `target/tools` when missing).
//! - `web [--release]`: the browser bundles of the examples under
//!   `target/web/<example>/`, and the lobby page at `target/web/index.html`.
//! - `play`: the web bundle (built when missing) served by `volley-server`
//!   on 127.0.0.1:3536, with the URLs and the desktop command printed.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("web") => web(args.iter().any(|a| a == "--release")).map(|_| ()),
        Some("play") => play(),
        _ => {
            eprintln!("usage: cargo xtask <ci | bench [-- bench args] | web [--release] | play>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

const WASM: &str = "wasm32-unknown-unknown";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root());
    command
}

/// Runs a step, printing its name and duration; fails on a non-zero exit.
fn step(name: &str, mut command: Command) -> Result<(), String> {
    println!("==> {name}");
    let started = Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("{name}: cannot start: {e}"))?;
    println!("<== {name}: {:.1}s", started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{name} failed ({status})"))
    }
}

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The wasm32 target, for the browser builds.
fn setup_wasm() -> Result<(), String> {
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !targets.lines().any(|t| t.trim() == WASM) {
        let mut rustup = Command::new("rustup");
        rustup.current_dir(root()).args(["target", "add", WASM]);
        step("rustup target add wasm32-unknown-unknown", rustup)?;
    }
    Ok(())
}

/// Installs what a fresh machine lacks for the tests.
fn setup() -> Result<(), String> {
    let mut missing = Vec::new();
    // The WebRTC tests isolate themselves with `unshare` (util-linux) and `ip` (iproute2).
    if !(succeeds(Command::new("ip").arg("-V"))
        && succeeds(Command::new("unshare").arg("--version")))
    {
        missing.extend(["iproute2", "util-linux"]);
    }
    // The browser end-to-end tests drive Debian's Chromium through chromedriver.
    if !(succeeds(Command::new("chromium").arg("--version"))
        && succeeds(Command::new("chromedriver").arg("--version")))
    {
        missing.extend(["chromium", "chromium-driver"]);
    }
    if !missing.is_empty() {
        let mut update = Command::new("apt-get");
        update.arg("update");
        step("apt-get update", update)?;
        let mut install = Command::new("apt-get");
        install
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y"])
            .args(&missing);
        step(&format!("apt-get install {}", missing.join(" ")), install)?;
    }
    setup_wasm()?;
    let has_fmt = succeeds(cargo().args(["fmt", "--version"]));
    let has_clippy = succeeds(cargo().args(["clippy", "--version"]));
    if !(has_fmt && has_clippy) {
        let mut rustup = Command::new("rustup");
        rustup
            .current_dir(root())
            .args(["component", "add", "rustfmt", "clippy"]);
        step("rustup component add rustfmt clippy", rustup)?;
    }
    Ok(())
}

fn ci() -> Result<(), String> {
    let started = Instant::now();
    setup()?;
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    step("cargo fmt --check", fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    step("cargo clippy", clippy)?;
    // Every example for wasm32, and the browser bundles the browser tests load.
    let web = web(false)?;
    let mut test = cargo();
    test.args(["test", "--workspace"])
        .env("VOLLEY_WEB_DIR", &web);
    step("cargo test --workspace", test)?;
    println!("ci passed in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The cargo target directory (`CARGO_TARGET_DIR` or `target/`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("target"))
}

/// `matchbox_server`, the reference signaling server, built from crates.io.
fn matchbox_server() -> Result<PathBuf, String> {
    let tools = target_dir().join("tools");
    let binary = tools.join("bin").join("matchbox_server");
    if !binary.exists() {
        let mut install = cargo();
        install
            .args([
                "install",
                "matchbox_server",
                "--version",
                "0.15.0",
                "--root",
            ])
            .arg(&tools);
        step("cargo install matchbox_server 0.15.0", install)?;
    }
    Ok(binary)
}

fn bench(args: &[String]) -> Result<(), String> {
    let matchbox = matchbox_server()?;
    let mut run = cargo();
    run.args(["bench", "-p", "volley_server", "--bench", "signaling", "--"])
        .env("MATCHBOX_SERVER", &matchbox)
        .args(args.iter().filter(|a| *a != "--"));
    step("signaling benchmark", run)
}

/// The examples with a web bundle: (name, most players, description).
const WEB_GAMES: &[(&str, usize, &str)] = &[
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

/// The wasm-bindgen version in Cargo.lock (the CLI must match it exactly).
fn wasm_bindgen_version() -> Result<String, String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(version) = lines
                .next()
                .and_then(|l| l.strip_prefix("version = \""))
                .and_then(|l| l.strip_suffix('"'))
        {
            return Ok(version.to_string());
        }
    }
    Err("wasm-bindgen is not in Cargo.lock".into())
}

/// The version a `wasm-bindgen` binary reports, if it runs.
fn bindgen_version(binary: &Path) -> Option<String> {
    let output = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.split_whitespace().nth(1).map(str::to_string)
}

/// `wasm-bindgen` of the locked version: the one on PATH when it matches,
/// else one installed into `target/tools` (built from crates.io when missing).
fn wasm_bindgen() -> Result<PathBuf, String> {
    let version = wasm_bindgen_version()?;
    let on_path = PathBuf::from("wasm-bindgen");
    if bindgen_version(&on_path).as_deref() == Some(version.as_str()) {
        return Ok(on_path);
    }
    let tools = target_dir().join("tools");
    let binary = tools.join("bin").join("wasm-bindgen");
    if bindgen_version(&binary).as_deref() != Some(version.as_str()) {
        let mut install = cargo();
        install
            .args([
                "install",
                "wasm-bindgen-cli",
                "--version",
                &version,
                "--root",
            ])
            .arg(&tools);
        step(
            &format!("cargo install wasm-bindgen-cli {version}"),
            install,
        )?;
    }
    Ok(binary)
}

fn gzip(path: &Path, level: flate2::Compression) -> Result<u64, String> {
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

fn write(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("{}: {e}", path.display()))
}

fn json_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Builds every web game for wasm32, runs wasm-bindgen, and writes one
/// self-contained bundle per game plus the lobby. Returns the web directory.
fn web(release: bool) -> Result<PathBuf, String> {
    setup_wasm()?;
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

/// The main job: a server with the games, for browsers and desktops.
fn play() -> Result<(), String> {
    let web_dir = target_dir().join("web");
    let complete = WEB_GAMES
        .iter()
        .all(|(game, _, _)| web_dir.join(game).join("manifest.json").exists())
        && web_dir.join("index.html").exists();
    if !complete {
        web(true)?;
    }
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
        "  box_game on the desktop:            cargo run --release --example box_game -- --server ws://{addr} --players 2"
    );
    println!("  (rebuild the browser bundle after changes: cargo xtask web --release)");
    println!();
    let mut server = Command::new(target_dir().join("release").join("volley-server"));
    server.args(["--addr", addr, "--web-dir"]).arg(&web_dir);
    step("volley-server", server)
}
