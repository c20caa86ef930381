//! `cargo xtask web [--release]`: the browser bundles of the examples and
//! the lobby page.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools::{setup_wasm, wasm_bindgen, wasm_opt};
use crate::{WASM, cargo, root, step, target_dir, write};

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
/// Compresses `path` next to itself as `<path>.gz` (and `<path>.br` with
/// `brotli`), for volley-server to serve precompressed; returns their sizes.
pub(crate) fn compress(path: &Path, release: bool) -> Result<(u64, Option<u64>), String> {
    use std::io::Write;
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let written = |extension: &str, bytes: &[u8]| {
        let mut out = path.as_os_str().to_owned();
        out.push(extension);
        std::fs::write(&out, bytes).map_err(|e| format!("{}: {e}", Path::new(&out).display()))
    };
    // Release bundles are what players download: squeeze them.
    let level = if release {
        flate2::Compression::best()
    } else {
        flate2::Compression::fast()
    };
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
    encoder.write_all(&raw).map_err(|e| e.to_string())?;
    let gzip = encoder.finish().map_err(|e| e.to_string())?;
    written(".gz", &gzip)?;
    if !release {
        return Ok((gzip.len() as u64, None));
    }
    let mut brotli = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        // 11 (the densest) makes box_game's brotli 13% smaller than 9
        // does, for about a minute per game: paid once per release build.
        quality: 11,
        lgwin: 24,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &raw[..], &mut brotli, &params).map_err(|e| e.to_string())?;
    written(".br", &brotli)?;
    Ok((gzip.len() as u64, Some(brotli.len() as u64)))
}

/// 64-bit FNV-1a of `bytes`, as 16 hex digits: the content part of a
/// bundle's file names.
fn content_hash(parts: &[&[u8]]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Bumped when the way bundles are made changes, so that old ones are
/// remade.
const BUNDLE_FORMAT: u32 = 3;

/// What a bundle was made from: the size and modification time of the
/// game's `.wasm`, and [`BUNDLE_FORMAT`] (a bundle is remade only when they
/// change).
fn source_stamp(input: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{}-{modified}-{BUNDLE_FORMAT}", meta.len()))
}

/// Builds every web game for wasm32, runs wasm-bindgen, and writes one
/// self-contained bundle per game plus the lobby under
/// `<target dir>/web/<profile>` (the two profiles' bundles apart). Returns
/// that directory.
pub(crate) fn web(release: bool) -> Result<PathBuf, String> {
    setup_wasm(release)?;
    build_web(release)
}

/// [`web`] without the set-up. A game whose `.wasm` did not change since
/// its bundle was made keeps its bundle.
pub(crate) fn build_web(release: bool) -> Result<PathBuf, String> {
    let bindgen = wasm_bindgen()?;
    let optimiser = if release { Some(wasm_opt()?) } else { None };
    // Every sample game (so each keeps building for the browser); the
    // bundles are made for WEB_GAMES. Release bundles use the size-tuned
    // `web` profile (the workspace's Cargo.toml).
    // (bundle directory, cargo profile, cargo's directory for it)
    let (profile, cargo_profile, cargo_dir) = if release {
        ("release", "web", "web")
    } else {
        ("debug", "dev", "debug")
    };
    let mut build = if release {
        nightly_size_build()
    } else {
        cargo()
    };
    build.args(["build", "--target", WASM, "-p", "volley_examples", "--bins"]);
    build.args(["--profile", cargo_profile]);
    step(
        &format!("cargo build (wasm32 games, profile {cargo_profile})"),
        build,
    )?;
    let web = target_dir().join("web").join(profile);
    let wasm_dir = target_dir().join(WASM).join(cargo_dir);
    let shell = std::fs::read_to_string(root().join("assets/web/game.html"))
        .map_err(|e| format!("assets/web/game.html: {e}"))?;
    // Bundles out of date are made side by side: compressing at brotli's
    // densest takes a minute or two per game.
    let manifests: Vec<Result<String, String>> = std::thread::scope(|scope| {
        let jobs: Vec<_> = WEB_GAMES
            .iter()
            .map(|(game, _, _)| {
                let (out, input) = (web.join(game), wasm_dir.join(format!("{game}.wasm")));
                let (bindgen, optimiser) = (&bindgen, optimiser.as_deref());
                scope.spawn(move || -> Result<String, String> {
                    let stamp = source_stamp(&input)?;
                    match current_manifest(&out, &stamp) {
                        Some(manifest) => {
                            println!("    {game}: up to date ({profile})");
                            Ok(manifest.to_string())
                        }
                        None => {
                            let tools = (bindgen.as_path(), optimiser);
                            bundle(tools, game, &input, &out, profile, &stamp)
                        }
                    }
                })
            })
            .collect();
        jobs.into_iter()
            .map(|job| {
                job.join()
                    .unwrap_or_else(|_| Err("a bundle job panicked".into()))
            })
            .collect()
    });
    let mut games_json = Vec::new();
    for ((game, max_players, description), manifest_json) in WEB_GAMES.iter().zip(manifests) {
        let out = web.join(game);
        write(&out.join("manifest.json"), &format!("{}\n", manifest_json?))?;
        write(&out.join("index.html"), &shell.replace("{{GAME}}", game))?;
        games_json.push(serde_json::json!({
            "name": game,
            "max_players": max_players,
            "description": description,
        }));
    }
    write(
        &web.join("games.json"),
        &format!("{}\n", serde_json::Value::Array(games_json)),
    )?;
    std::fs::copy(root().join("assets/web/lobby.html"), web.join("index.html"))
        .map_err(|e| format!("lobby: {e}"))?;
    println!("web bundle: {}", web.display());
    Ok(web)
}

/// `cargo build` for what players download, on nightly Rust: the standard
/// library rebuilt for size (`-Zbuild-std`, `optimize_for_size`), panics
/// without file and line (`-Zlocation-detail=none`; the message stays),
/// `{:?}` of a struct as its name only (`-Zfmt-debug=shallow`; enum
/// variants keep their names): box_game 14.9 -> 14.0 MB before wasm-opt.
/// Without reference types, which Debian's wasm-opt (binaryen 108) breaks
/// in wasm-bindgen's output. The games themselves build on stable.
fn nightly_size_build() -> Command {
    let mut build = Command::new("rustup");
    build.current_dir(root()).args([
        "run",
        "nightly",
        "cargo",
        "-Zbuild-std=std,panic_abort",
        "-Zbuild-std-features=optimize_for_size",
        "--config",
        concat!(
            "target.wasm32-unknown-unknown.rustflags=[",
            r#""-Zlocation-detail=none","-Zfmt-debug=shallow","#,
            r#""-Ctarget-feature=-reference-types"]"#
        ),
    ]);
    // The stable toolchain's compiler, if this process was given one.
    build.env_remove("RUSTC");
    build
}

/// The wasm features of [`nightly_size_build`]'s output, for wasm-opt to keep.
const WASM_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-multivalue",
];

/// The manifest of the bundle in `out` if it was made from `stamp` and its
/// files are there.
fn current_manifest(out: &Path, stamp: &str) -> Option<serde_json::Value> {
    std::fs::read_to_string(out.join("manifest.json"))
        .ok()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok())
        .filter(|m| m["source"] == stamp)
        .filter(|m| {
            ["js", "wasm"]
                .iter()
                .all(|file| m[file].as_str().is_some_and(|name| out.join(name).exists()))
        })
}

/// One game's bundle in `out` (replaced): wasm-bindgen's output (optimised
/// for size by wasm-opt if given) with content-hashed names (served as
/// immutable), compressed; returns its manifest.
fn bundle(
    (bindgen, optimiser): (&Path, Option<&Path>),
    game: &str,
    input: &Path,
    out: &Path,
    profile: &str,
    stamp: &str,
) -> Result<String, String> {
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let mut run = Command::new(bindgen);
    run.args(["--target", "web", "--no-typescript", "--out-name", game]);
    let release = profile == "release";
    if release {
        // Function names only serve stack traces; players download every byte.
        run.args(["--remove-name-section", "--remove-producers-section"]);
    }
    run.arg("--out-dir").arg(out).arg(input);
    step(&format!("wasm-bindgen {game}"), run)?;
    let read = |name: &str| {
        std::fs::read(out.join(name)).map_err(|e| format!("{}: {e}", out.join(name).display()))
    };
    let (js, wasm) = (format!("{game}.js"), format!("{game}_bg.wasm"));
    if let Some(optimiser) = optimiser {
        // Binaryen's size passes after rustc's and wasm-bindgen's: about
        // 15% off, for a minute per game.
        let mut opt = Command::new(optimiser);
        opt.arg("-Oz").args(WASM_FEATURES);
        opt.arg(out.join(&wasm)).arg("-o").arg(out.join(&wasm));
        step(&format!("wasm-opt {game}"), opt)?;
    }
    let hash = content_hash(&[&read(&js)?, &read(&wasm)?]);
    let hashed_js = format!("{game}-{hash}.js");
    let hashed_wasm = format!("{game}-{hash}_bg.wasm");
    for (from, to) in [(&js, &hashed_js), (&wasm, &hashed_wasm)] {
        std::fs::rename(out.join(from), out.join(to)).map_err(|e| format!("{to}: {e}"))?;
    }
    let raw = std::fs::metadata(out.join(&hashed_wasm))
        .map_err(|e| format!("{hashed_wasm}: {e}"))?
        .len();
    let (gzip, brotli) = compress(&out.join(&hashed_wasm), release)?;
    compress(&out.join(&hashed_js), release)?;
    println!(
        "    {game}: {:.1} MB wasm, {:.1} MB gzip{} ({profile})",
        raw as f64 / 1e6,
        gzip as f64 / 1e6,
        brotli.map_or(String::new(), |b| format!(
            ", {:.1} MB brotli",
            b as f64 / 1e6
        )),
    );
    Ok(serde_json::json!({
        "js": hashed_js,
        "wasm": hashed_wasm,
        "wasm_bytes": raw,
        "wasm_gzip_bytes": gzip,
        "wasm_brotli_bytes": brotli,
        "profile": profile,
        "source": stamp,
    })
    .to_string())
}
