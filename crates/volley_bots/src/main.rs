//! `volley-bots`: plays rooms of headless bots against a signaling server
//! and reports per room; exits non-zero on any desync or failure.
//! `volley-bots replay FILE` plays a recorded match back and checks every
//! checkpoint (`--record FILE` records one). `volley-bots desync OURS
//! THEIRS` prints what differs between two peers' desync dumps
//! (`--desync-dir DIR` makes the bots write them).

use std::process::ExitCode;
use std::time::Duration;

use bevy_volley::ConditionerConfig;
use clap::Parser;
use volley_bots::{BotRun, Game, run_rooms};

/// Headless bots playing volley's sample games over real WebRTC.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Signaling server, e.g. ws://127.0.0.1:3536 or wss://play.example.
    /// Several, comma-separated (a cluster's nodes): each room's bots join
    /// through them in turn.
    #[arg(long, default_value = "ws://127.0.0.1:3536", value_delimiter = ',')]
    server: Vec<String>,
    /// Trust only this PEM certificate (a private CA, or a self-signed
    /// server's own) for a wss:// server, instead of the public web PKI.
    #[arg(long)]
    tls_root: Option<std::path::PathBuf>,
    /// The game to play.
    #[arg(long, value_enum, default_value = "box_game")]
    game: Game,
    /// Rooms played at once.
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Players per room (the match size).
    #[arg(long, default_value_t = 2)]
    players: usize,
    /// Bots per room (default: all players; fewer leaves seats for people).
    #[arg(long)]
    bots: Option<usize>,
    /// Room name (with several rooms, their prefix); a random one by default.
    #[arg(long)]
    room: Option<String>,
    /// Frames each bot plays (confirmed by every player).
    #[arg(long, default_value_t = 600)]
    frames: i32,
    /// Seed of the bots' input policies.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Frames of input delay.
    #[arg(long, default_value_t = 2)]
    input_delay: usize,
    /// Simulated loss on every send, 0.0–1.0.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Simulated one-way delay on every send, in ms.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Simulated jitter (± ms) on that delay.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Give up after this long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Record the first room's match into this file (first bot's view).
    #[arg(long)]
    record: Option<std::path::PathBuf>,
    /// Write desync dumps into this directory.
    #[arg(long)]
    desync_dir: Option<std::path::PathBuf>,
}

/// `volley-bots replay FILE`.
fn replay(file: Option<&String>) -> ExitCode {
    let Some(file) = file else {
        eprintln!("usage: volley-bots replay FILE");
        return ExitCode::from(2);
    };
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("volley-bots: {file}: {e}");
            return ExitCode::from(2);
        }
    };
    match volley_bots::replay::play(&bytes) {
        Ok(status) => {
            let v = &status.verdict;
            println!(
                "{file}: {} frames, {} checkpoints equal, {} in frames not played again (a restart)",
                status.end, v.verified, v.skipped
            );
            match v.mismatch {
                None => ExitCode::SUCCESS,
                Some((frame, recorded, ours)) => {
                    println!(
                        "{file}: differs at frame {frame}: recorded {recorded:#034x}, replayed {ours:#034x}"
                    );
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("volley-bots: {file}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `volley-bots desync OURS THEIRS`: what differs between two peers'
/// dumps of a desynced frame, component by component, entity by entity.
/// Exits 0 when nothing differs, 1 when something does, 2 on trouble.
fn desync(files: &[String]) -> ExitCode {
    let [ours, theirs] = files else {
        eprintln!("usage: volley-bots desync OURS THEIRS (two peers' .vdsync files)");
        return ExitCode::from(2);
    };
    match volley_bots::desync::compare(ours.as_ref(), theirs.as_ref()) {
        Ok(diff) => {
            println!("{diff}");
            match diff.differences.is_empty() {
                true => ExitCode::SUCCESS,
                false => ExitCode::FAILURE,
            }
        }
        Err(e) => {
            eprintln!("volley-bots: {e}");
            ExitCode::from(2)
        }
    }
}

/// CPU time of this process so far (user + system), from /proc; 0 elsewhere.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field overall, stime the 15th; both in clock ticks (100/s).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // webrtc-rs and matchbox warn about routine teardown.
                "warn,rtc=error,webrtc=error,matchbox_socket=error".into()
            }),
        )
        .init();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("replay") {
        return replay(args.get(2));
    }
    if args.get(1).map(String::as_str) == Some("desync") {
        return desync(&args[2..]);
    }
    let cli = Cli::parse();
    if cli.players < 2 || cli.players > 4 {
        eprintln!("volley-bots: --players must be 2 to 4");
        return ExitCode::from(2);
    }
    let Some(first) = cli.server.first() else {
        eprintln!("volley-bots: --server names no server");
        return ExitCode::from(2);
    };
    let mut run = BotRun::new(first, cli.rooms, cli.players, cli.frames);
    if cli.server.len() > 1 {
        run.servers = cli.server.clone();
    }
    if let Some(path) = &cli.tls_root {
        match bevy_volley::TlsRoots::from_pem_file(path) {
            Ok(roots) => run.tls_roots = roots,
            Err(e) => {
                eprintln!("volley-bots: --tls-root: {e}");
                return ExitCode::from(2);
            }
        }
    }
    run.game = cli.game;
    run.seed = cli.seed;
    run.timeout = cli.timeout;
    run.input_delay = cli.input_delay;
    run.record = cli.record.clone();
    run.desync_dir = cli.desync_dir.clone();
    if let Some(bots) = cli.bots {
        if bots == 0 || bots > cli.players {
            eprintln!("volley-bots: --bots must be 1 to --players");
            return ExitCode::from(2);
        }
        run.bots_per_room = bots;
    }
    if let Some(room) = cli.room {
        run.room_prefix = room;
    }
    if cli.loss > 0.0 || cli.delay_ms > 0 {
        run.conditioner = Some(ConditionerConfig {
            loss: cli.loss,
            latency: Duration::from_millis(cli.delay_ms),
            jitter: Duration::from_millis(cli.jitter_ms),
            seed: cli.seed,
        });
    }
    let started = std::time::Instant::now();
    let cpu_before = process_cpu_seconds();
    let reports = run_rooms(&run);
    let failed = reports.iter().filter(|r| !r.ok()).count();
    for report in &reports {
        print!("{report}");
    }
    println!("{} rooms, {} failed", reports.len(), failed);
    // One line for scripts (cargo xtask bench's ramp reads it).
    let bots = reports.iter().map(|r| r.bots.len()).sum::<usize>().max(1);
    let slowest = reports
        .iter()
        .flat_map(|r| &r.bots)
        .map(|b| b.frame_rate.unwrap_or(0.0))
        .fold(f64::INFINITY, f64::min);
    let cpu = (process_cpu_seconds() - cpu_before) / started.elapsed().as_secs_f64();
    println!(
        "SUMMARY {{\"rooms\":{},\"failed\":{failed},\"bots\":{bots},\"slowest_fps\":{:.2},\"cpu_per_bot_pct\":{:.2}}}",
        reports.len(),
        if slowest.is_finite() { slowest } else { 0.0 },
        100.0 * cpu / bots as f64
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
