//! `cargo xtask bench [--quick]`: every benchmark against its reference,
//! and the bots-at-scale ramp; the report is [`crate::report`]'s.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::tools::matchbox_server;
use crate::{cargo, report, root, step, target_dir, write};

/// A benchmark: (what, package, bench target, its arguments, brief ones).
pub(crate) type BenchRun = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);
/// Runs every benchmark (release builds) and writes `target/bench/`:
/// `report.md`, `report.json` (the raw figures, with the machine), one SVG
/// plot per table (also copied to `docs/bench/`), and the previous run's
/// `report.json` as `previous.json`, whose figures the report shows beside
/// the new ones. `--quick` runs everything briefly (to check the pipeline).
pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let out = target_dir().join("bench");
    let raw = out.join("raw");
    if raw.exists() {
        std::fs::remove_dir_all(&raw).map_err(|e| format!("{}: {e}", raw.display()))?;
    }
    std::fs::create_dir_all(&raw).map_err(|e| format!("{}: {e}", raw.display()))?;
    if out.join("report.json").exists() {
        std::fs::copy(out.join("report.json"), out.join("previous.json"))
            .map_err(|e| format!("previous.json: {e}"))?;
    }
    // Chromium for the web section, redis-server for the cluster rows.
    crate::tools::setup()?;
    let matchbox = matchbox_server()?;
    let runs: [BenchRun; 6] = [
        (
            "signaling benchmark",
            "volley_server",
            "signaling",
            &["--rounds", "5", "--seconds", "3"],
            &["--rounds", "1", "--seconds", "1", "--idle", "1000"],
        ),
        (
            "data-path benchmark",
            "volley_net",
            "datapath",
            // Its defaults: 10 connect rounds, 3 trials of 1,000 RTT samples and 2 s.
            &[],
            &["--rounds", "1", "--trials", "1", "--seconds", "1"],
        ),
        (
            "rollback benchmark",
            "volley_games",
            "rollback",
            &["--frames", "300"],
            &["--frames", "40"],
        ),
        (
            "state-sync and codec benchmark",
            "volley_net",
            "replication",
            &["--rounds", "2000"],
            &["--rounds", "50"],
        ),
        (
            "rejoin benchmark",
            "volley",
            "rejoin",
            &["--cycles", "20"],
            &["--cycles", "2"],
        ),
        (
            "spectator benchmark",
            "volley",
            "spectate",
            &["--cycles", "20"],
            &["--cycles", "2"],
        ),
    ];
    for (name, package, bench, full, brief) in runs {
        let mut run = cargo();
        run.args(["bench", "-p", package, "--bench", bench, "--"])
            .args(if quick { brief } else { full })
            .env("MATCHBOX_SERVER", &matchbox)
            .env("VOLLEY_BENCH_OUT", &raw);
        step(name, run)?;
    }
    web_start(&raw, quick)?;
    bots_ramp(&raw, quick)?;
    let report = report::compose_report(&raw, &out)?;
    println!("{report}");
    println!("report: {}", out.join("report.md").display());
    Ok(())
}
/// CPU model, cores and memory, from /proc.
pub(crate) fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    serde_json::json!({ "cpu": cpu, "cores": cores, "memory_gib": (memory_gib * 10.0).round() / 10.0 })
}
pub(crate) fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
pub(crate) const SECTIONS: [&str; 10] = [
    "signaling",
    "datapath",
    "relay",
    "rollback",
    "rejoin",
    "spectate",
    "state_sync",
    "codec",
    "web",
    "bots",
];
/// The web bundles' sizes and start-up in headless Chromium: the release
/// bundle (built here when out of date), beside the tests' debug one when
/// it exists.
fn web_start(raw: &Path, quick: bool) -> Result<(), String> {
    let release = crate::web::web(true)?;
    let mut bundles = format!("release={}", release.display());
    let debug = target_dir().join("web").join("debug");
    if debug.join("games.json").exists() {
        bundles += &format!(",debug={}", debug.display());
    }
    let mut run = cargo();
    run.args(["bench", "-p", "volley", "--bench", "web_start", "--"])
        .args([
            "--bundles",
            &bundles,
            "--runs",
            if quick { "1" } else { "5" },
        ])
        .env("VOLLEY_BENCH_OUT", raw);
    step("web start-up benchmark", run)
}
/// Frames per second a bot must keep to count as keeping up (of 60).
pub(crate) const KEEPS_UP_FPS: f64 = 55.0;
/// Bots at scale: concurrent 2-player box_game rooms of headless bots (one
/// `volley-bots` process, against a release `volley-server` on 127.0.0.1),
/// doubling until a room fails (desync, differing checksums, timeout) or a
/// bot falls below [`KEEPS_UP_FPS`]; writes the `bots` table.
pub(crate) fn bots_ramp(raw: &Path, quick: bool) -> Result<(), String> {
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "volley_server",
        "-p",
        "volley_bots",
    ]);
    step("cargo build --release (server, bots)", build)?;
    let bin = target_dir().join("release");
    let addr = "127.0.0.1:3547";
    // Every bot comes from 127.0.0.1: the per-address limits are off here.
    let mut server = Command::new(bin.join("volley-server"))
        .args(["--addr", addr])
        .args([
            "--max-connections-per-ip",
            "0",
            "--joins-per-minute-per-ip",
            "0",
        ])
        .args(["--http-rate-per-ip", "0"])
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("volley-server: {e}"))?;
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            let _ = server.kill();
            return Err("volley-server did not start".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let steps: &[usize] = if quick {
        &[1, 2]
    } else {
        &[1, 2, 4, 8, 16, 32, 64]
    };
    let frames = if quick { "120" } else { "600" };
    let mut last_good: Option<(f64, f64, f64, f64)> = None;
    let mut first_bad = 0.0;
    println!("==> bots at scale");
    for rooms in steps {
        let output = Command::new(bin.join("volley-bots"))
            .args([
                "--server",
                &format!("ws://{addr}"),
                "--rooms",
                &rooms.to_string(),
            ])
            .args(["--players", "2", "--frames", frames, "--timeout", "120s"])
            .output()
            .map_err(|e| format!("volley-bots: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let summary = stdout
            .lines()
            .find_map(|l| l.strip_prefix("SUMMARY "))
            .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok());
        let (fps, cpu, bots) = summary.as_ref().map_or((0.0, 0.0, 0.0), |s| {
            (
                s["slowest_fps"].as_f64().unwrap_or(0.0),
                s["cpu_per_bot_pct"].as_f64().unwrap_or(0.0),
                s["bots"].as_f64().unwrap_or(0.0),
            )
        });
        let ok = output.status.success() && fps >= KEEPS_UP_FPS;
        println!(
            "    {rooms:>3} rooms ({bots} bots): slowest {fps:.1} frames/s, {cpu:.1}% of a core per bot: {}",
            if ok { "ok" } else { "FAILED" }
        );
        if ok {
            last_good = Some((*rooms as f64, bots, fps, cpu));
        } else {
            first_bad = *rooms as f64;
            break;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let (rooms, bots, fps, cpu) = last_good.unwrap_or_default();
    let table = serde_json::json!({
        "section": "bots",
        "title": format!(
            "Bots at scale: concurrent 2-player box_game rooms of headless bots in one volley-bots process (one thread), {frames} frames each, doubling until a room fails or a bot keeps under {KEEPS_UP_FPS} frames/s"
        ),
        "columns": ["box_game bots"],
        "ratio": false,
        "rows": [
            { "name": "last good count of rooms", "values": [rooms], "better": "higher" },
            { "name": "bots at it", "values": [bots], "better": "higher" },
            { "name": "slowest bot at it (frames/s)", "values": [fps], "better": "higher" },
            { "name": "CPU per bot at it (% of a core)", "values": [cpu], "better": "lower" },
            { "name": "first failing count of rooms (0: none failed)", "values": [first_bad], "better": "higher" },
        ],
    });
    write(&raw.join("bots.json"), &format!("{table:#}\n"))
}
