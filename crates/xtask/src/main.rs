//! `cargo xtask <task>`: the project's scripted jobs.
//!
//! - `ci`: everything CI runs, in order; `.ci/run` calls exactly this:
//!   fmt, clippy, every test, the wasm32 build of the examples.
//! - `bench`: release benchmarks against the references (installs
//!   `matchbox_server` from crates.io into `target/tools` when missing).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <ci | bench [-- bench args]>");
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

/// Installs what a fresh machine lacks.
fn setup() -> Result<(), String> {
    // The WebRTC tests isolate themselves with `unshare` (util-linux) and `ip` (iproute2).
    let has_ip = succeeds(Command::new("ip").arg("-V"));
    let has_unshare = succeeds(Command::new("unshare").arg("--version"));
    if !(has_ip && has_unshare) {
        let mut update = Command::new("apt-get");
        update.arg("update");
        step("apt-get update", update)?;
        let mut install = Command::new("apt-get");
        install.args(["install", "-y", "iproute2", "util-linux"]);
        step("apt-get install iproute2 util-linux", install)?;
    }
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
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    step("cargo test --workspace", test)?;
    // The browser build: the client crates and every example for wasm32.
    let mut wasm = cargo();
    wasm.args(["build", "--target", WASM, "-p", "volley", "--examples"]);
    step(
        "cargo build --target wasm32-unknown-unknown --examples",
        wasm,
    )?;
    println!("ci passed in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `matchbox_server`, the reference signaling server, built from crates.io.
fn matchbox_server() -> Result<PathBuf, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let tools = target.join("tools");
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
