//! `cargo xtask <task>`: the project's scripted jobs.
//!
//! - `ci`: everything CI runs, in order; `.ci/run` calls exactly this:
//!   set-up (apt packages, wasm32 target, nightly with rust-src,
//!   wasm-bindgen-cli), fmt, clippy (native, and the browser crates for
//!   wasm32), the release web bundles of the games, every test
//!   (including the browser ones, which load those bundles), then the fuzz
//!   targets' regression inputs and a few seconds of fuzzing each.
//! - `bench [--quick]`: every benchmark, release builds, against the
//!   references (installs `matchbox_server` into `target/tools` when
//!   missing); writes `target/bench/report.md`, `report.json`, SVG plots.
//! - `web [--release]`: the browser bundles of the games under
//!   `target/web/<debug|release>/<game>/` (content-hashed, precompressed;
//!   release ones built on nightly for size and put through wasm-opt), and
//!   the lobby page at `target/web/<profile>/index.html`.
//! - `play`: the release web bundles (remade when their example changed)
//!   served by `volley-server` on 127.0.0.1:3536, with the URLs and the
//!   desktop command printed.
//! - `fuzz [--seconds S] [--target NAME]`: the libFuzzer targets in `fuzz/`
//!   (installs cargo-fuzz into `target/tools` and the nightly toolchain when
//!   missing), S seconds each (default 60); prints executions, corpus sizes
//!   and findings (see [`fuzz`]).
//!
//! One module per command (`ci`, `web`, `play`, `bench` with `report` and
//! `svg`, `fuzz`); `tools` installs what a fresh machine lacks.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod bench;
mod ci;
mod fuzz;
mod play;
mod report;
mod svg;
mod tools;
mod web;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::ci(),
        Some("bench") => bench::bench(&args[1..]),
        Some("web") => web::web(args.iter().any(|a| a == "--release")).map(|_| ()),
        Some("play") => play::play(),
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

/// The cargo target directory (`CARGO_TARGET_DIR` or `target/`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("target"))
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn write(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("{}: {e}", path.display()))
}
