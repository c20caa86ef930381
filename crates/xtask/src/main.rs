//! `cargo xtask <task>`: the project's scripted jobs.
//!
//! - `ci`: everything CI runs, in order; `.ci/run` calls exactly this:
//!   set-up (apt packages, wasm32 target, wasm-bindgen-cli), fmt, clippy,
//!   the wasm32 build and web bundles of the examples, every test
//!   (including the browser ones, which load those bundles), then the fuzz
//!   targets' regression inputs and a few seconds of fuzzing each.
//! - `bench [--quick]`: every benchmark, release builds, against the
//!   references (installs `matchbox_server` into `target/tools` when
//!   missing); writes `target/bench/report.md`, `report.json`, SVG plots.
//! - `web [--release]`: the browser bundles of the examples under
//!   `target/web/<example>/`, and the lobby page at `target/web/index.html`.
//! - `play`: the web bundle (built when missing) served by `volley-server`
//!   on 127.0.0.1:3536, with the URLs and the desktop command printed.
//! - `fuzz [--seconds S] [--target NAME]`: the libFuzzer targets in `fuzz/`
//!   (installs cargo-fuzz into `target/tools` and the nightly toolchain when
//!   missing), S seconds each (default 60); prints executions, corpus sizes
//!   and findings (see [`fuzz`]).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod fuzz;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("web") => web(args.iter().any(|a| a == "--release")).map(|_| ()),
        Some("play") => play(),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | bench [--quick] | web [--release] | play | fuzz [--seconds S] [--target NAME]>"
            );
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
    // The NAT tests (tests/internet.rs) build home routers with iptables
    // and run coturn as the external TURN server.
    if !succeeds(Command::new("iptables").arg("--version")) {
        missing.push("iptables");
    }
    if !succeeds(Command::new("turnserver").arg("--version")) {
        missing.push("coturn");
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
            .args(["install", "-y", "--no-install-recommends"])
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
    // Every example for wasm32, and the browser bundles the browser tests load
    // (`setup` added the wasm target already).
    let web = build_web(false)?;
    let mut test = cargo();
    test.args(["test", "--workspace"])
        .env("VOLLEY_WEB_DIR", &web);
    step("cargo test --workspace", test)?;
    fuzz::ci()?;
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

/// `binary` of crate `krate` at `version`, built from crates.io into
/// `target/tools` when missing there.
fn cargo_install(krate: &str, version: &str, binary: &str) -> Result<PathBuf, String> {
    let tools = target_dir().join("tools");
    let path = tools.join("bin").join(binary);
    if !path.exists() {
        let mut install = cargo();
        install
            .args(["install", krate, "--version", version, "--root"])
            .arg(&tools);
        step(&format!("cargo install {krate} {version}"), install)?;
    }
    Ok(path)
}

/// `matchbox_server`, the reference signaling server, built from crates.io.
fn matchbox_server() -> Result<PathBuf, String> {
    cargo_install("matchbox_server", "0.15.0", "matchbox_server")
}

/// A benchmark: (what, package, bench target, its arguments, brief ones).
type BenchRun = (
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
fn bench(args: &[String]) -> Result<(), String> {
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
    let matchbox = matchbox_server()?;
    let runs: [BenchRun; 4] = [
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
    ];
    for (name, package, bench, full, brief) in runs {
        let mut run = cargo();
        run.args(["bench", "-p", package, "--bench", bench, "--"])
            .args(if quick { brief } else { full })
            .env("MATCHBOX_SERVER", &matchbox)
            .env("VOLLEY_BENCH_OUT", &raw);
        step(name, run)?;
    }
    bots_ramp(&raw, quick)?;
    let report = compose_report(&raw, &out)?;
    println!("{report}");
    println!("report: {}", out.join("report.md").display());
    Ok(())
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// CPU model, cores and memory, from /proc.
fn machine() -> serde_json::Value {
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

fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

const SECTIONS: [&str; 7] = [
    "signaling",
    "datapath",
    "relay",
    "rollback",
    "state_sync",
    "codec",
    "bots",
];

/// Frames per second a bot must keep to count as keeping up (of 60).
const KEEPS_UP_FPS: f64 = 55.0;

/// Bots at scale: concurrent 2-player box_game rooms of headless bots (one
/// `volley-bots` process, against a release `volley-server` on 127.0.0.1),
/// doubling until a room fails (desync, differing checksums, timeout) or a
/// bot falls below [`KEEPS_UP_FPS`]; writes the `bots` table.
fn bots_ramp(raw: &Path, quick: bool) -> Result<(), String> {
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

/// report.md, report.json and the plots, from the benchmarks' tables.
fn compose_report(raw: &Path, out: &Path) -> Result<String, String> {
    let mut tables = Vec::new();
    for section in SECTIONS {
        let path = raw.join(format!("{section}.json"));
        if path.exists() {
            tables.push(read_json(&path)?);
        }
    }
    let previous = read_json(&out.join("previous.json")).ok();
    let before = |section: &str, row: &str| -> Option<f64> {
        previous.as_ref()?["tables"]
            .as_array()?
            .iter()
            .find(|t| t["section"] == section)?["rows"]
            .as_array()?
            .iter()
            .find(|r| r["name"] == row)?["values"][0]
            .as_f64()
    };
    let machine = machine();
    let commit = git_commit();
    let mut md = format!(
        "# volley benchmark report\n\nCommit `{commit}` on {} ({} cores, {} GiB). Reproduce with `cargo xtask bench`.\nRatios are the first column over the second (volley over the reference), measured in the same run.\n",
        machine["cpu"].as_str().unwrap_or_default(),
        machine["cores"],
        machine["memory_gib"]
    );
    let docs = root().join("docs").join("bench");
    std::fs::create_dir_all(&docs).map_err(|e| format!("{}: {e}", docs.display()))?;
    for table in &tables {
        let section = table["section"].as_str().unwrap_or_default();
        let columns: Vec<&str> = table["columns"]
            .as_array()
            .map(|c| c.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        md += &format!(
            "\n## {section}\n\n{}\n\n",
            table["title"].as_str().unwrap_or_default()
        );
        let ratio = table["ratio"].as_bool().unwrap_or(true) && columns.len() >= 2;
        md += &format!("| | {} |", columns.join(" | "));
        if ratio {
            md += &format!(" {}/{} |", columns[0], columns[1]);
        }
        md += " previous run (first column) |\n|---|";
        md += &"---:|".repeat(columns.len() + usize::from(ratio) + 1);
        md += "\n";
        for row in table["rows"].as_array().into_iter().flatten() {
            let name = row["name"].as_str().unwrap_or_default();
            let values: Vec<f64> = row["values"]
                .as_array()
                .map(|v| v.iter().filter_map(|x| x.as_f64()).collect())
                .unwrap_or_default();
            md += &format!("| {name} |");
            for i in 0..columns.len() {
                md += &format!(" {} |", values.get(i).map_or("–".into(), |v| figure(*v)));
            }
            if ratio && values.len() >= 2 {
                md += &format!(" {:.2}× |", values[0] / values[1]);
            }
            md += &format!(" {} |\n", before(section, name).map_or("–".into(), figure));
        }
        let svg = plot(table);
        let name = format!("{section}.svg");
        write(&out.join(&name), &svg)?;
        write(&docs.join(&name), &svg)?;
        md += &format!("\n![{section}](../../docs/bench/{name})\n");
    }
    let cdf = raw.join("latency_cdf.json");
    if cdf.exists() {
        let series = read_json(&cdf)?;
        let svg = cdf_plot(&series);
        write(&out.join("latency_cdf.svg"), &svg)?;
        write(&docs.join("latency_cdf.svg"), &svg)?;
        md += &format!(
            "\n## latency CDF\n\n{}\n\n![latency CDF](../../docs/bench/latency_cdf.svg)\n",
            series["title"].as_str().unwrap_or_default()
        );
    }
    write(&out.join("report.md"), &md)?;
    let json = serde_json::json!({ "commit": commit, "machine": machine, "tables": tables });
    write(&out.join("report.json"), &format!("{json:#}\n"))?;
    Ok(md)
}

fn figure(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Grouped horizontal bars: one group per row, one bar per column, each
/// row scaled to its largest value (the numbers are printed on the bars).
fn plot(table: &serde_json::Value) -> String {
    const COLORS: [&str; 4] = ["#3b82f6", "#f97316", "#22c55e", "#a855f7"];
    let columns: Vec<&str> = table["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let rows = table["rows"].as_array().cloned().unwrap_or_default();
    let bar = 14.0;
    let group = bar * columns.len() as f64 + 12.0;
    let (left, width) = (260.0, 360.0);
    let height = 40.0 + group * rows.len() as f64 + 20.0 * columns.len() as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"8\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{}</text>\n",
        left + width + 90.0,
        escape(table["section"].as_str().unwrap_or_default())
    );
    for (r, row) in rows.iter().enumerate() {
        let y0 = 32.0 + group * r as f64;
        let values: Vec<f64> = row["values"]
            .as_array()
            .map(|v| v.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default();
        let max = values.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            left - 8.0,
            y0 + group / 2.0,
            escape(row["name"].as_str().unwrap_or_default())
        );
        for (c, v) in values.iter().enumerate() {
            let y = y0 + bar * c as f64;
            let w = (v / max).max(0.0) * width;
            svg += &format!(
                "<rect x=\"{left}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
                bar - 2.0,
                COLORS[c % COLORS.len()],
                left + w + 4.0,
                y + bar - 4.0,
                figure(*v)
            );
        }
    }
    let legend = 40.0 + group * rows.len() as f64;
    for (c, name) in columns.iter().enumerate() {
        let y = legend + 20.0 * c as f64;
        svg += &format!(
            "<rect x=\"{left}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{}\"/>\n<text x=\"{}\" y=\"{}\">{}</text>\n",
            COLORS[c % COLORS.len()],
            left + 18.0,
            y + 10.0,
            escape(name)
        );
    }
    svg += "</svg>\n";
    svg
}

/// Percentile (x, 1–99) against value (y, linear from 0), one line per series.
fn cdf_plot(data: &serde_json::Value) -> String {
    const COLORS: [&str; 6] = [
        "#3b82f6", "#93c5fd", "#f97316", "#fdba74", "#22c55e", "#86efac",
    ];
    let series = data["series"].as_array().cloned().unwrap_or_default();
    let values: Vec<Vec<f64>> = series
        .iter()
        .map(|s| {
            s["values"]
                .as_array()
                .map(|v| v.iter().filter_map(|x| x.as_f64()).collect())
                .unwrap_or_default()
        })
        .collect();
    let max = values
        .iter()
        .flatten()
        .copied()
        .fold(f64::MIN_POSITIVE, f64::max);
    let (left, top, width, height) = (60.0, 30.0, 520.0, 300.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"8\" y=\"18\" font-size=\"13\" font-weight=\"bold\">latency CDF (ms by percentile)</text>\n<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\">percentile</text>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\n",
        left + width + 200.0,
        top + height + 40.0,
        top + height,
        left + width,
        top + height,
        top + height,
        left + width,
        top + height + 16.0,
        left - 4.0,
        top + 4.0,
        figure(max),
        left - 4.0,
        top + height
    );
    for (i, (s, v)) in series.iter().zip(&values).enumerate() {
        let points: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(k, y)| {
                format!(
                    "{:.1},{:.1}",
                    left + width * k as f64 / 98.0,
                    top + height - height * (y / max)
                )
            })
            .collect();
        let color = COLORS[i % COLORS.len()];
        svg += &format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\n<text x=\"{}\" y=\"{}\">{}</text>\n",
            points.join(" "),
            left + width + 16.0,
            top + 20.0 * i as f64,
            left + width + 34.0,
            top + 20.0 * i as f64 + 10.0,
            escape(s["name"].as_str().unwrap_or_default())
        );
    }
    svg += "</svg>\n";
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
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
    build_web(release)
}

/// [`web`] without the set-up.
fn build_web(release: bool) -> Result<PathBuf, String> {
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
