//! Players behind home NAT routers, over real WebRTC: the simulated
//! internet of `tests/support/internet.rs`, volley-server (signaling and
//! its built-in STUN/TURN) on it, and one native box_game bot per home,
//! each a process of this test binary run inside its home's namespace. The
//! bots play to frame [`FRAMES`]; their checksums must agree, and the path
//! each one's `PeerStats` reports must be the one the NATs allow.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use support::internet::{Internet, Nat, SERVER_IP};
use volley::net::{CandidateKind, IceConfig, IceServer};
use volley::server::turn::TurnConfig;
use volley::server::{ServerConfig, ServerHandle};

/// The frame whose checksums are compared.
const FRAMES: i32 = 300;

/// The TURN secret of the test's server.
const SECRET: &str = "internet-test-secret";

/// Set in a bot's process: what it is to play (a [`Home`] as JSON).
const ROLE: &str = "VOLLEY_INTERNET_HOME";

/// Marks the result line a bot's process prints.
const RESULT: &str = "HOME-RESULT ";

/// How long a bot plays before giving up.
const BOT_LIMIT: Duration = Duration::from_secs(45);

/// What a bot in a home is told.
#[derive(Serialize, Deserialize)]
struct Home {
    server: String,
    room: String,
    seed: u64,
    ice: Vec<Ice>,
    timeout_secs: u64,
}

/// One ICE server, as handed to a bot.
#[derive(Serialize, Deserialize, Clone)]
struct Ice {
    urls: Vec<String>,
    username: Option<String>,
    credential: Option<String>,
}

/// What a bot reports back.
#[derive(Serialize, Deserialize, Debug)]
struct Outcome {
    checksum: Option<String>,
    failure: Option<String>,
    /// Our end and the peer's end of the selected pair, as kinds.
    path: Option<(String, String)>,
    relayed: Option<bool>,
    /// Seconds after start, and why.
    unreachable: Option<(f64, String)>,
}

/// Which ICE servers the bots get from the server.
#[derive(Clone, Copy)]
enum Servers {
    Stun,
    StunTurn,
}

/// In a bot's process: plays what [`ROLE`] says, prints the [`Outcome`].
/// `false` in the test itself.
fn play_at_home() -> bool {
    let Ok(role) = std::env::var(ROLE) else {
        return false;
    };
    let home: Home = serde_json::from_str(&role).expect("a home's role");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let mut run = volley_bots::BotRun::new(&home.server, 1, 2, FRAMES);
    run.bots_per_room = 1;
    run.room_prefix = home.room.clone();
    run.seed = home.seed;
    run.timeout = Duration::from_secs(home.timeout_secs);
    // The other home confirms the last frame with our inputs: stay a while.
    run.linger = Duration::from_secs(2);
    let servers: Vec<IceServer> = home
        .ice
        .iter()
        .map(|i| IceServer {
            urls: i.urls.clone(),
            username: i.username.clone(),
            credential: i.credential.clone(),
        })
        .collect();
    let reports = volley_bots::run_rooms_with(&run, |app, _, _| {
        let plugin = app
            .world()
            .resource::<volley::bevy::VolleyPlugin>()
            .clone()
            .server_ice(false)
            .ice(IceConfig {
                servers: servers.clone(),
                ..IceConfig::default()
            });
        app.insert_resource(plugin);
    });
    let room = &reports[0];
    let bot = &room.bots[0];
    let kind = |k: CandidateKind| format!("{k:?}");
    let outcome = Outcome {
        checksum: bot.checksum.map(|c| format!("{c:032x}")),
        failure: room.failure.clone(),
        path: bot
            .link
            .as_ref()
            .map(|l| (kind(l.local.kind), kind(l.remote.kind))),
        relayed: bot.link.as_ref().map(volley::net::Link::relayed),
        unreachable: bot
            .unreachable
            .as_ref()
            .map(|(at, why)| (at.as_secs_f64(), why.clone())),
    };
    // On a line of its own: the test harness prints around it.
    println!("\n{RESULT}{}", serde_json::to_string(&outcome).unwrap());
    true
}

/// The ICE servers the bots get: the server's STUN, and its TURN with
/// credentials as `/api/ice` mints them.
fn ice_for(server: &ServerHandle, servers: Servers) -> Vec<Ice> {
    let turn = server.turn_addr().expect("the TURN server runs");
    let mut ice = vec![Ice {
        urls: vec![format!("stun:{turn}")],
        username: None,
        credential: None,
    }];
    if let Servers::StunTurn = servers {
        let config = volley::server::ice::IceConfig {
            turn: vec![format!("turn:{turn}?transport=udp")],
            turn_secret: Some(SECRET.into()),
            ..Default::default()
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for entry in volley::server::ice::ice_servers(&config, now, None).ice_servers {
            ice.push(Ice {
                urls: entry.urls,
                username: entry.username,
                credential: entry.credential,
            });
        }
    }
    ice
}

/// Builds the internet with one home per NAT, starts the server on it,
/// runs a bot in each home and returns their outcomes.
fn play(test: &str, nats: [Nat; 2], servers: Servers, bot_limit: Duration) -> Vec<Outcome> {
    let internet = Internet::build(&nats);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = ServerConfig {
        addr: format!("{SERVER_IP}:0").parse().unwrap(),
        turn: Some(TurnConfig {
            listen: format!("{SERVER_IP}:0").parse().unwrap(),
            relay_ports: (42_000, 42_999),
            ..TurnConfig::default()
        }),
        ice: volley::server::ice::IceConfig {
            turn_secret: Some(SECRET.into()),
            ..Default::default()
        },
        ..ServerConfig::default()
    };
    let server = runtime.block_on(async {
        volley::server::Server::bind(config)
            .await
            .expect("the server starts on the internet")
            .spawn()
    });
    let ice = ice_for(&server, servers);
    let exe: PathBuf = std::env::current_exe().unwrap();
    let started = Instant::now();
    let children: Vec<_> = (1..=2)
        .map(|home| {
            let role = Home {
                server: format!("ws://{}", server.addr()),
                room: test.replace('_', "-"),
                seed: home as u64,
                ice: ice.clone(),
                timeout_secs: bot_limit.as_secs(),
            };
            internet
                .command(home, bot_limit + Duration::from_secs(15), &exe)
                .args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env(ROLE, serde_json::to_string(&role).unwrap())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("a bot's process starts")
        })
        .collect();
    let outcomes = children
        .into_iter()
        .enumerate()
        .map(|(i, child)| {
            let out = child.wait_with_output().expect("a bot's process ends");
            let stdout = String::from_utf8_lossy(&out.stdout);
            // Shown when the test fails.
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
            println!("home {} stderr (last lines):", i + 1);
            for line in tail.iter().rev() {
                println!("  {line}");
            }
            let line = stdout
                .lines()
                .find_map(|l| l.find(RESULT).map(|at| &l[at + RESULT.len()..]));
            let Some(line) = line else {
                panic!(
                    "home {} printed no result ({}):\n{stdout}\n{}",
                    i + 1,
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            serde_json::from_str(line).expect("an outcome")
        })
        .collect();
    println!("{test}: {:?} after {:?}", outcomes, started.elapsed());
    runtime.block_on(server.shutdown());
    outcomes
}

/// Both bots played to [`FRAMES`] with equal checksums.
fn assert_played(outcomes: &[Outcome]) {
    for o in outcomes {
        assert!(o.failure.is_none(), "{outcomes:?}");
        assert!(o.checksum.is_some(), "{outcomes:?}");
    }
    assert_eq!(outcomes[0].checksum, outcomes[1].checksum, "{outcomes:?}");
}

#[test]
fn endpoint_independent_nats_connect_directly_through_stun() {
    const NAME: &str = "endpoint_independent_nats_connect_directly_through_stun";
    if play_at_home() || !support::netns::isolate_with_namespaces(NAME) {
        return;
    }
    let outcomes = play(
        NAME,
        [Nat::EndpointIndependent, Nat::EndpointIndependent],
        Servers::Stun,
        BOT_LIMIT,
    );
    assert_played(&outcomes);
    for o in &outcomes {
        assert_eq!(o.relayed, Some(false), "{outcomes:?}");
        // Each home's address as its router shows it to the internet.
        let (_, remote) = o.path.as_ref().unwrap();
        assert_ne!(remote, "Host", "{outcomes:?}");
    }
}

#[test]
fn a_symmetric_nat_connects_through_the_relay() {
    const NAME: &str = "a_symmetric_nat_connects_through_the_relay";
    if play_at_home() || !support::netns::isolate_with_namespaces(NAME) {
        return;
    }
    let outcomes = play(
        NAME,
        [Nat::EndpointIndependent, Nat::Symmetric],
        Servers::StunTurn,
        BOT_LIMIT,
    );
    assert_played(&outcomes);
    for o in &outcomes {
        assert_eq!(o.relayed, Some(true), "{outcomes:?}");
    }
}

#[test]
fn two_symmetric_nats_connect_through_the_relay() {
    const NAME: &str = "two_symmetric_nats_connect_through_the_relay";
    if play_at_home() || !support::netns::isolate_with_namespaces(NAME) {
        return;
    }
    let outcomes = play(
        NAME,
        [Nat::Symmetric, Nat::Symmetric],
        Servers::StunTurn,
        BOT_LIMIT,
    );
    assert_played(&outcomes);
    for o in &outcomes {
        assert_eq!(o.relayed, Some(true), "{outcomes:?}");
    }
}

#[test]
fn two_symmetric_nats_without_a_relay_fail_clearly_within_15_s() {
    const NAME: &str = "two_symmetric_nats_without_a_relay_fail_clearly_within_15_s";
    if play_at_home() || !support::netns::isolate_with_namespaces(NAME) {
        return;
    }
    let outcomes = play(
        NAME,
        [Nat::Symmetric, Nat::Symmetric],
        Servers::Stun,
        Duration::from_secs(16),
    );
    for o in &outcomes {
        let (after, why) = o.unreachable.as_ref().expect("told it is unreachable");
        assert!(*after < 15.0, "{outcomes:?}");
        assert!(why.contains("TURN relay"), "{why}");
        assert!(o.checksum.is_none(), "{outcomes:?}");
    }
}
