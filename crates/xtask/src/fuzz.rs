//! `cargo xtask fuzz [--seconds S] [--target NAME]`, and CI's fuzz step.
//!
//! The targets live in `fuzz/` (its own workspace, libFuzzer through
//! `cargo fuzz`, nightly Rust): every entry point that takes a peer's or a
//! signaling client's bytes.
//! They are built into `<target dir>/fuzz` (so CI's cache keeps them) with
//! debug assertions and overflow checks, without a sanitizer (volley's
//! crates forbid `unsafe`; what is hunted is panics). Each target runs on a
//! fresh corpus under `<target dir>/fuzz/corpus/<target>`, seeded from
//! `fuzz/regressions/<target>`; what crashes lands in
//! `<target dir>/fuzz/artifacts/<target>/` and fails the task.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::tools::cargo_install;
use crate::{cargo, root, step, target_dir};

/// Every fuzz target (`fuzz/fuzz_targets/<name>.rs`).
pub const TARGETS: [&str; 12] = [
    "rollback_guard",
    "rollback_match",
    "net_frame",
    "replication",
    "checksum_report",
    "drop_notice",
    "watch_feed",
    "replay_file",
    "desync_dump",
    "signaling",
    "ticket",
    "cluster",
];

/// The cargo-fuzz release `cargo xtask fuzz` installs.
const CARGO_FUZZ: &str = "0.13.2";

/// Seconds per target in CI.
const CI_SECONDS: u64 = 5;

/// What one target's run came to.
struct Outcome {
    target: &'static str,
    executions: u64,
    corpus: usize,
    findings: Vec<PathBuf>,
    exit_ok: bool,
}

/// `cargo xtask fuzz`: every target (or `--target NAME`) for `--seconds S`
/// (default 60) each, then a table of executions, corpus sizes, findings.
pub fn fuzz(args: &[String]) -> Result<(), String> {
    let mut seconds = 60;
    let mut only = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds takes a number")?;
            }
            "--target" => {
                let name = args.next().ok_or("--target takes a name")?;
                only = Some(
                    *TARGETS
                        .iter()
                        .find(|t| *t == name)
                        .ok_or_else(|| format!("no fuzz target {name} (of {TARGETS:?})"))?,
                );
            }
            other => return Err(format!("fuzz: unknown argument {other}")),
        }
    }
    fuzz_targets(only, seconds)
}

/// CI's step: the regression inputs of every target, then every target
/// for a few seconds; any crash fails.
pub fn ci() -> Result<(), String> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--manifest-path", "fuzz/Cargo.toml", "--", "--check"]);
    step("cargo fmt --check (fuzz)", fmt)?;
    fuzz_targets(None, CI_SECONDS)
}

/// Builds `only` (or every target), replays each one's regression inputs,
/// fuzzes it for `seconds`, and reports.
fn fuzz_targets(only: Option<&'static str>, seconds: u64) -> Result<(), String> {
    let cargo_fuzz = setup()?;
    build(&cargo_fuzz, only)?;
    let targets: Vec<&'static str> = only.map_or_else(|| TARGETS.to_vec(), |t| vec![t]);
    let mut outcomes = Vec::new();
    for target in targets {
        regressions(target)?;
        outcomes.push(run(target, seconds)?);
    }
    report(&outcomes, seconds)
}

/// cargo-fuzz (installed into the tools folder when missing) and the
/// nightly toolchain (installed when missing). Returns cargo-fuzz.
fn setup() -> Result<PathBuf, String> {
    let cargo_fuzz = cargo_install("cargo-fuzz", CARGO_FUZZ, "cargo-fuzz")?;
    crate::tools::nightly()?;
    Ok(cargo_fuzz)
}

/// `<target dir>/fuzz`: the fuzz build, corpora and findings.
fn fuzz_dir() -> PathBuf {
    target_dir().join("fuzz")
}

/// The host triple, as cargo-fuzz names its output folder.
fn host() -> String {
    Command::new("rustc")
        .arg("-vV")
        .env("RUSTUP_TOOLCHAIN", "nightly")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        })
        .unwrap_or_else(|| "x86_64-unknown-linux-gnu".into())
}

fn binary(target: &str) -> PathBuf {
    fuzz_dir().join(host()).join("release").join(target)
}

/// `cargo +nightly fuzz build` (all targets, or one): release, debug
/// assertions on, no sanitizer.
fn build(cargo_fuzz: &Path, only: Option<&str>) -> Result<(), String> {
    let mut build = Command::new(cargo_fuzz);
    build
        .current_dir(root().join("fuzz"))
        // cargo-fuzz runs `cargo` from PATH: rustup's, on nightly.
        .env("RUSTUP_TOOLCHAIN", "nightly")
        .env_remove("CARGO")
        .env("CARGO_TARGET_DIR", fuzz_dir())
        .args(["fuzz", "build", "--sanitizer", "none", "--debug-assertions"]);
    if let Some(target) = only {
        build.arg(target);
    }
    step("cargo fuzz build", build)
}

/// Runs the checked-in inputs of `fuzz/regressions/<target>` once each.
fn regressions(target: &str) -> Result<(), String> {
    let dir = root().join("fuzz/regressions").join(target);
    let artifacts = artifacts(target)?;
    let mut run = Command::new(binary(target));
    run.arg("-runs=0")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    step(&format!("fuzz regressions {target}"), run)
}

/// A clean findings folder for `target`.
fn artifacts(target: &str) -> Result<PathBuf, String> {
    fresh_dir(fuzz_dir().join("artifacts").join(target))
}

/// `dir`, emptied (or made).
fn fresh_dir(dir: PathBuf) -> Result<PathBuf, String> {
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Fuzzes `target` for `seconds` on a fresh corpus seeded from its
/// regression inputs; libFuzzer's log goes to `<fuzz dir>/logs/<target>.log`.
fn run(target: &'static str, seconds: u64) -> Result<Outcome, String> {
    let corpus = fresh_dir(fuzz_dir().join("corpus").join(target))?;
    let artifacts = artifacts(target)?;
    let logs = fuzz_dir().join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let log_path = logs.join(format!("{target}.log"));
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    println!("==> fuzz {target} ({seconds}s)");
    let started = Instant::now();
    let status = Command::new(binary(target))
        .arg(&corpus)
        .arg(root().join("fuzz/regressions").join(target))
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .arg("-timeout=10")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .map_err(|e| format!("fuzz {target}: cannot start: {e}"))?;
    println!("<== fuzz {target}: {:.1}s", started.elapsed().as_secs_f64());
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let findings: Vec<PathBuf> = std::fs::read_dir(&artifacts)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    if !status.success() || !findings.is_empty() {
        // The panic and libFuzzer's account of it.
        let lines: Vec<&str> = text.lines().collect();
        let from = lines
            .iter()
            .position(|l| l.contains("panicked at") || l.contains("ERROR: libFuzzer"))
            .unwrap_or(lines.len().saturating_sub(30));
        for line in lines.iter().skip(from).take(40) {
            println!("    {line}");
        }
        println!("    (full log: {})", log_path.display());
    }
    Ok(Outcome {
        target,
        executions: executions(&text),
        corpus: std::fs::read_dir(&corpus).map_or(0, |d| d.count()),
        findings,
        exit_ok: status.success(),
    })
}

/// Executions from libFuzzer's final statistics (or its `Done N runs`).
fn executions(log: &str) -> u64 {
    let stat = log.lines().find_map(|l| {
        l.strip_prefix("stat::number_of_executed_units:")
            .and_then(|n| n.trim().parse().ok())
    });
    stat.or_else(|| {
        log.lines().rev().find_map(|l| {
            l.strip_prefix("Done ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
    })
    .unwrap_or(0)
}

fn report(outcomes: &[Outcome], seconds: u64) -> Result<(), String> {
    println!();
    println!("| target | seconds | executions | exec/s | corpus | findings |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for o in outcomes {
        println!(
            "| {} | {seconds} | {} | {} | {} | {} |",
            o.target,
            o.executions,
            o.executions / seconds.max(1),
            o.corpus,
            o.findings.len() + usize::from(!o.exit_ok && o.findings.is_empty()),
        );
    }
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.exit_ok || !o.findings.is_empty())
        .map(|o| {
            let files: Vec<String> = o.findings.iter().map(|f| f.display().to_string()).collect();
            format!("{} ({})", o.target, files.join(", "))
        })
        .collect();
    if failed.is_empty() {
        println!("fuzzing: no findings");
        Ok(())
    } else {
        Err(format!(
            "fuzzing found crashes: {}; reproduce with the target binary under {} and the file",
            failed.join("; "),
            fuzz_dir().display()
        ))
    }
}
