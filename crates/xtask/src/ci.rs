//! `cargo xtask ci`: everything CI runs, in order (`.ci/run` calls exactly
//! this).

use std::time::Instant;

use crate::{cargo, fuzz, step, tools, web};

pub(crate) fn ci() -> Result<(), String> {
    let started = Instant::now();
    tools::setup()?;
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
    // The browser crates on stable (the release bundles below build on
    // nightly for size).
    let mut clippy_wasm = cargo();
    clippy_wasm.args(["clippy", "--target", crate::WASM]);
    for package in [
        "volley_net",
        "bevy_volley",
        "volley_games",
        "volley_examples",
    ] {
        clippy_wasm.args(["-p", package]);
    }
    clippy_wasm.args(["--", "-D", "warnings"]);
    step("cargo clippy (wasm32)", clippy_wasm)?;
    // Every sample game for wasm32, and the browser bundles the browser
    // tests load: the release ones players get (`cargo xtask play` serves
    // them too), so that CI proves what ships (`setup` added the wasm
    // target already).
    let web = web::build_web(true)?;
    // The examples' package is the only one with a renderer: the tests
    // leave it out (clippy checked it), and build a headless Bevy.
    let mut test = cargo();
    test.args(["test", "--workspace", "--exclude", "volley_examples"])
        .env("VOLLEY_WEB_DIR", &web);
    step("cargo test --workspace", test)?;
    fuzz::ci()?;
    println!("ci passed in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}
