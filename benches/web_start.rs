//! What a player waits for: each web bundle's download size (raw, gzip,
//! brotli: the manifest's figures, which `cargo xtask web` measured) and, in
//! headless Chromium against an in-process volley-server on 127.0.0.1, the
//! time from navigation to the game's first rendered frame and to
//! `WaitingForPeers` (connected to the server, in its room): the page's own
//! `window.volleyTimings`, median of `--runs` (5) fresh browser profiles, so
//! every run downloads and compiles the bundle from nothing.
//!
//! `--bundles label=dir,...` names the bundles to compare (`cargo xtask
//! bench` passes the release bundle, and the debug one when it exists); a
//! loopback page load leaves out the network, so the times are what the
//! browser spends compiling and starting the game. Chromium draws with
//! SwiftShader here, on the CPU.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use volley::server::ServerConfig;
use volley_testkit::browser::Driver;
use volley_testkit::report::{Better, Options, Table};
use volley_testkit::server::with_server_config;

/// How long a page may take to wait for peers.
const LIMIT: Duration = Duration::from_secs(60);

/// One game's figures in one bundle.
struct Figures {
    raw: f64,
    gzip: f64,
    brotli: f64,
    first_frame: f64,
    waiting: f64,
    frame_ms: f64,
}

fn main() {
    let options = Options::parse(&["bundles", "runs"]);
    let runs: usize = options.get("runs", 5);
    assert!(runs > 0, "--runs must be at least 1");
    let bundles: Vec<(String, PathBuf)> = options
        .get("bundles", String::new())
        .split(',')
        .filter(|b| !b.is_empty())
        .map(|b| match b.split_once('=') {
            Some((label, dir)) => (label.to_string(), PathBuf::from(dir)),
            None => panic!("--bundles: {b:?} is not label=dir"),
        })
        .collect();
    assert!(
        !bundles.is_empty(),
        "--bundles label=dir,...: the web bundles to measure (cargo xtask web)"
    );
    let games = games(&bundles[0].1);
    let mut figures: Vec<Vec<Figures>> = Vec::new();
    for (label, dir) in &bundles {
        println!("{label}: {}", dir.display());
        let config = ServerConfig {
            web_dir: Some(dir.clone()),
            ..ServerConfig::default()
        };
        let mut column = Vec::new();
        with_server_config(config, |server| {
            let driver = Driver::start();
            for game in &games {
                let manifest = read_json(&dir.join(game).join("manifest.json"));
                let mb = |key: &str| manifest[key].as_f64().map_or(f64::NAN, |b| b / 1e6);
                let mut first = Vec::new();
                let mut waiting = Vec::new();
                let mut frame_ms = Vec::new();
                for run in 0..runs {
                    let url = format!(
                        "http://{}/play/{game}/?room=bench-{label}-{run}&players=2",
                        server.addr()
                    );
                    let Some((f, w, ms)) = start_up(&driver, &url) else {
                        println!("  {game} run {run}: no status within {LIMIT:?} (no figures)");
                        break;
                    };
                    println!(
                        "  {game} run {run}: first frame {f:.0} ms, waiting for peers {w:.0} ms, \
                         then {ms:.1} ms a frame"
                    );
                    first.push(f);
                    waiting.push(w);
                    frame_ms.push(ms);
                }
                column.push(Figures {
                    raw: mb("wasm_bytes"),
                    gzip: mb("wasm_gzip_bytes"),
                    brotli: mb("wasm_brotli_bytes"),
                    first_frame: median(&mut first),
                    waiting: median(&mut waiting),
                    frame_ms: median(&mut frame_ms),
                });
            }
        });
        figures.push(column);
    }
    let labels: Vec<&str> = bundles.iter().map(|(l, _)| l.as_str()).collect();
    let mut table = Table::new(
        "web",
        format!(
            "Web bundles: download size, and time from navigation to the first frame and to \
             WaitingForPeers in headless Chromium (SwiftShader) on loopback, median of {runs} \
             fresh profiles"
        ),
        &labels,
    );
    table.ratio = labels.len() >= 2;
    for (g, game) in games.iter().enumerate() {
        let row =
            |pick: fn(&Figures) -> f64| figures.iter().map(|c| pick(&c[g])).collect::<Vec<_>>();
        table.row(format!("{game}: wasm (MB)"), Better::Lower, &row(|f| f.raw));
        table.row(
            format!("{game}: gzip (MB)"),
            Better::Lower,
            &row(|f| f.gzip),
        );
        table.row(
            format!("{game}: brotli (MB)"),
            Better::Lower,
            &row(|f| f.brotli),
        );
        table.row(
            format!("{game}: first frame (ms)"),
            Better::Lower,
            &row(|f| f.first_frame),
        );
        table.row(
            format!("{game}: WaitingForPeers (ms)"),
            Better::Lower,
            &row(|f| f.waiting),
        );
        table.row(
            format!("{game}: frame time (ms)"),
            Better::Lower,
            &row(|f| f.frame_ms),
        );
    }
    for row in &table.rows {
        let values: Vec<String> = row.values.iter().map(|v| format!("{v:>9.2}")).collect();
        println!("{:<34} {}", row.name, values.join(" "));
    }
    table.save();
}

/// The games of a bundle (its `games.json`).
fn games(dir: &Path) -> Vec<String> {
    read_json(&dir.join("games.json"))
        .as_array()
        .map(|games| {
            games
                .iter()
                .filter_map(|g| g["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (cargo xtask web makes it)", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Loads `url` in a fresh browser; the page's first frame and waiting for
/// peers in ms since navigation, and the game's smoothed frame time 5 s
/// later (what the size-first code costs in frames, SwiftShader's drawing
/// included; 16.7 ms is the display's pace).
/// `None` when the game reports no status within [`LIMIT`] (a bundle made
/// before its game had one).
fn start_up(driver: &Driver, url: &str) -> Option<(f64, f64, f64)> {
    let browser = driver.browser();
    browser.goto(url);
    let deadline = Instant::now() + LIMIT;
    let (first, waiting) = loop {
        let v = browser.eval(
            "return { t: window.volleyTimings || null, \
             error: document.body && document.body.dataset.error || null };",
        );
        if let Some(error) = v["error"].as_str() {
            panic!("{url}: the page reported: {error}");
        }
        if let (Some(first), Some(waiting)) = (
            v["t"]["first_frame"].as_f64(),
            v["t"]["waiting_for_peers"].as_f64(),
        ) {
            break (first, waiting);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(5));
    let frame_ms = browser
        .game_status()
        .and_then(|s| s["frame_ms"].as_f64())
        .unwrap_or(f64::NAN);
    Some((first, waiting, frame_ms))
}

/// The median; NaN (a missing figure) for none.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
