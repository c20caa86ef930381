//! What a fresh machine lacks: apt packages for the tests, the wasm32
//! target, rustfmt and clippy, the nightly toolchain with its sources (the
//! fuzzers, and the release web build's `-Zbuild-std`), wasm-opt (Debian's
//! binaryen), and tools built from crates.io into `<target dir>/tools`
//! (wasm-bindgen-cli of the locked version, matchbox_server for the
//! benchmarks).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{WASM, cargo, root, step, succeeds, target_dir};

/// The wasm32 target, for the browser builds; for release bundles also
/// the nightly toolchain (the release build finds wasm-opt itself).
pub(crate) fn setup_wasm(release: bool) -> Result<(), String> {
    if release {
        nightly()?;
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
    Ok(())
}
/// Installs what a fresh machine lacks for the tests.
pub(crate) fn setup() -> Result<(), String> {
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
    // The cluster tests run a real Redis.
    if !succeeds(Command::new("redis-server").arg("--version")) {
        missing.push("redis-server");
    }
    // The browser end-to-end tests drive Debian's Chromium through chromedriver.
    if !(succeeds(Command::new("chromium").arg("--version"))
        && succeeds(Command::new("chromedriver").arg("--version")))
    {
        missing.extend(["chromium", "chromium-driver"]);
    }
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    setup_wasm(true)?;
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
/// The nightly toolchain with `rust-src`, installed (minimal profile)
/// when missing: `cargo fuzz` and the release web build run on it.
pub(crate) fn nightly() -> Result<(), String> {
    let components = Command::new("rustup")
        .current_dir(root())
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let mut rustup = Command::new("rustup");
    rustup.current_dir(root());
    match components {
        Some(installed) if installed.lines().any(|c| c.starts_with("rust-src")) => Ok(()),
        Some(_) => {
            rustup.args(["component", "add", "rust-src", "--toolchain", "nightly"]);
            step("rustup component add rust-src --toolchain nightly", rustup)
        }
        None => {
            rustup.args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]);
            step("rustup toolchain install nightly", rustup)
        }
    }
}

/// `wasm-opt`, from Debian's binaryen when missing (version 108 or later
/// reads everything rustc's wasm32 output uses).
pub(crate) fn wasm_opt() -> Result<PathBuf, String> {
    let binary = PathBuf::from("wasm-opt");
    if !succeeds(Command::new(&binary).arg("--version")) {
        apt_install(&["binaryen"])?;
    }
    Ok(binary)
}

/// Debian packages, without their recommendations.
fn apt_install(packages: &[&str]) -> Result<(), String> {
    let mut update = Command::new("apt-get");
    update.arg("update");
    step("apt-get update", update)?;
    let mut install = Command::new("apt-get");
    install
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "--no-install-recommends"])
        .args(packages);
    step(&format!("apt-get install {}", packages.join(" ")), install)
}
/// `binary` of crate `krate` at `version`, built from crates.io into
/// `target/tools` when missing there.
pub(crate) fn cargo_install(krate: &str, version: &str, binary: &str) -> Result<PathBuf, String> {
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
pub(crate) fn matchbox_server() -> Result<PathBuf, String> {
    cargo_install("matchbox_server", "0.15.0", "matchbox_server")
}
/// The wasm-bindgen version in Cargo.lock (the CLI must match it exactly).
pub(crate) fn wasm_bindgen_version() -> Result<String, String> {
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
pub(crate) fn bindgen_version(binary: &Path) -> Option<String> {
    let output = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.split_whitespace().nth(1).map(str::to_string)
}
/// `wasm-bindgen` of the locked version: the one on PATH when it matches,
/// else one installed into `target/tools` (built from crates.io when missing).
pub(crate) fn wasm_bindgen() -> Result<PathBuf, String> {
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
