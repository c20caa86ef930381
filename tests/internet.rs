//! Players behind home NAT routers, over real WebRTC: the simulated
//! internet of `volley_testkit::internet`, volley-server (signaling and
//! its built-in STUN/TURN, or coturn beside it) on it, and one box_game
//! player per home, a native bot or headless Chromium, each a process of
//! this test binary run inside its home's namespace. They play to frame
//! [`FRAMES`]; their checksums must agree, and the path each one reports
//! (`PeerStats`, the page's `getStats()`) must be the one the NATs allow,
//! or, where no path exists, each must be told why within 15 s.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use volley::net::{CandidateKind, IceConfig, IceServer};
use volley::server::turn::TurnConfig;
use volley::server::{ServerConfig, ServerHandle};
use volley_testkit::internet::{Internet, Nat, SERVER_IP};

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

/// Who plays in a home.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
enum Player {
    /// A native headless bot.
    Bot,
    /// Headless Chromium (chromedriver in the home too) on the server's
    /// page, which takes its ICE servers from `/api/ice`.
    Browser,
}

/// What a player in a home is told.
#[derive(Serialize, Deserialize)]
struct Home {
    player: Player,
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
    /// … and their addresses.
    addresses: Option<(String, String)>,
    relayed: Option<bool>,
    /// Seconds after start, and why.
    unreachable: Option<(f64, String)>,
}

/// Which ICE servers the bots get.
#[derive(Clone, Copy)]
enum Servers {
    /// volley-server's STUN.
    Stun,
    /// volley-server's STUN and TURN.
    StunTurn,
    /// coturn (Debian's `turnserver`) for both, on [`COTURN_PORT`].
    Coturn,
}

/// coturn's port on the internet.
const COTURN_PORT: u16 = 3479;

/// coturn's address on the internet.
fn coturn_addr() -> std::net::SocketAddr {
    format!("{SERVER_IP}:{COTURN_PORT}")
        .parse()
        .expect("an address")
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
    let outcome = match home.player {
        Player::Bot => play_bot(&home),
        Player::Browser => play_browser(&home),
    };
    // On a line of its own: the test harness prints around it.
    println!("\n{RESULT}{}", serde_json::to_string(&outcome).unwrap());
    true
}

/// Headless Chromium plays the server's box_game page to [`FRAMES`].
fn play_browser(home: &Home) -> Outcome {
    use volley_testkit::browser::Driver;
    let driver = Driver::start();
    let browser = driver.browser();
    let http = home.server.replace("ws://", "http://");
    browser.goto(&format!(
        "{http}/play/box_game?room={}&players=2",
        home.room
    ));
    let mut seen = serde_json::Value::Null;
    let deadline = Instant::now() + Duration::from_secs(home.timeout_secs);
    // The clock starts when the game is in its room (the bundle loaded and
    // compiled, the game started, the signaling server joined: seconds on
    // SwiftShader), as a bot's starts when it joins.
    let mut running: Option<Instant> = None;
    let mut unreachable = None;
    let checksum = loop {
        if let Some(status) = browser.game_status() {
            if status["state"] != "Signaling" && status["state"] != "Disconnected" {
                running.get_or_insert_with(Instant::now);
            }
            seen = status;
        }
        if let Some(sum) = seen["checkpoints"][FRAMES.to_string()].as_str() {
            break Some(sum.to_string());
        }
        if let (Some(why), Some(running)) = (seen["unreachable"].as_str(), running) {
            // What the player reads on the page.
            let notice = browser.eval("return document.getElementById('notice').textContent;");
            assert!(
                notice.as_str().is_some_and(|n| n.contains(why)),
                "the page does not show it: {notice}"
            );
            unreachable = Some((running.elapsed().as_secs_f64(), why.to_string()));
            break None;
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let path = seen["peers"]
        .as_object()
        .and_then(|peers| peers.values().find_map(|p| p["path"].as_array().cloned()))
        .and_then(|p| {
            Some((
                p.first()?.as_str()?.to_string(),
                p.get(1)?.as_str()?.to_string(),
            ))
        });
    let failure = if checksum.is_none() && unreachable.is_none() {
        Some(format!("no checkpoint; the page's last status: {seen}"))
    } else if checksum.is_some() && path.is_none() {
        Some(format!(
            "played, but named no path; the page's last status: {seen}"
        ))
    } else {
        (seen["desyncs"] != 0).then(|| format!("desyncs: {seen}"))
    };
    Outcome {
        checksum,
        failure,
        relayed: path.as_ref().map(|(a, b)| a == "Relay" || b == "Relay"),
        path,
        addresses: None,
        unreachable,
    }
}

/// A native bot plays box_game to [`FRAMES`] with the ICE servers given.
fn play_bot(home: &Home) -> Outcome {
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
    Outcome {
        checksum: bot.checksum.map(|c| format!("{c:032x}")),
        failure: room.failure.clone(),
        path: bot
            .link
            .as_ref()
            .map(|l| (kind(l.local.kind), kind(l.remote.kind))),
        addresses: bot
            .link
            .as_ref()
            .map(|l| (l.local.address.clone(), l.remote.address.clone())),
        relayed: bot.link.as_ref().map(volley::net::Link::relayed),
        unreachable: bot
            .unreachable
            .as_ref()
            .map(|(at, why)| (at.as_secs_f64(), why.clone())),
    }
}

/// The ICE servers the bots get: the server's STUN, and its TURN with
/// credentials as `/api/ice` mints them.
fn ice_for(server: &ServerHandle, servers: Servers) -> Vec<Ice> {
    let turn = match servers {
        Servers::Coturn => coturn_addr(),
        _ => server.turn_addr().expect("the TURN server runs"),
    };
    let mut ice = vec![Ice {
        urls: vec![format!("stun:{turn}")],
        username: None,
        credential: None,
    }];
    if let Servers::StunTurn | Servers::Coturn = servers {
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
/// runs `players` (one per home) and returns their outcomes.
fn play(
    test: &str,
    nats: [Nat; 2],
    players: [Player; 2],
    servers: Servers,
    bot_limit: Duration,
) -> Vec<Outcome> {
    let internet = Internet::build(&nats);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // What a browser's /api/ice names (bots are told directly, the same).
    let coturn_at = coturn_addr();
    let (turn, stun, turn_urls) = match servers {
        Servers::Coturn => (
            None,
            vec![format!("stun:{coturn_at}")],
            vec![format!("turn:{coturn_at}?transport=udp")],
        ),
        Servers::Stun | Servers::StunTurn => (
            Some(TurnConfig {
                listen: format!("{SERVER_IP}:0").parse().unwrap(),
                relay_ports: (42_000, 42_999),
                stun_only: matches!(servers, Servers::Stun),
                ..TurnConfig::default()
            }),
            Vec::new(),
            Vec::new(),
        ),
    };
    let config = ServerConfig {
        addr: format!("{SERVER_IP}:0").parse().unwrap(),
        turn,
        web_dir: players
            .contains(&Player::Browser)
            .then(volley_testkit::browser::web_bundle),
        ice: volley::server::ice::IceConfig {
            stun,
            turn: turn_urls,
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
    let coturn = matches!(servers, Servers::Coturn).then(|| {
        let listen = coturn_addr();
        volley_testkit::coturn::Coturn::start(listen, (43_000, 43_999), SECRET)
            .expect("coturn runs (`cargo xtask ci` installs it: apt-get install coturn)")
    });
    let ice = ice_for(&server, servers);
    let exe: PathBuf = std::env::current_exe().unwrap();
    let started = Instant::now();
    let children: Vec<_> = (1..=2)
        .map(|home| {
            let role = Home {
                player: players[home - 1],
                server: format!("ws://{}", server.addr()),
                // Room names are at most 64 characters; each test has its own server.
                room: test.replace('_', "-").chars().take(48).collect(),
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
    drop(coturn);
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

/// Two bots in homes behind `nats`, with `servers`: the outcomes, or
/// `None` outside the namespace (and in a bot's process).
fn bot_row(test: &str, nats: [Nat; 2], servers: Servers, limit: Duration) -> Option<Vec<Outcome>> {
    if play_at_home() {
        return None;
    }
    let _one = ONE_ROW.lock().unwrap_or_else(|p| p.into_inner());
    if !volley_testkit::netns::isolate_with_namespaces(test) {
        return None;
    }
    Some(play(test, nats, [Player::Bot, Player::Bot], servers, limit))
}

/// Both played, directly: each reached the other at its router's public
/// address (a server-reflexive candidate), not at its home address.
fn assert_direct(outcomes: &[Outcome]) {
    assert_played(outcomes);
    for o in outcomes {
        assert_eq!(o.relayed, Some(false), "{outcomes:?}");
        let (_, remote) = o.path.as_ref().expect("a path");
        assert_ne!(remote, "Host", "{outcomes:?}");
    }
}

/// Both played, through a relay.
fn assert_relayed(outcomes: &[Outcome]) {
    assert_played(outcomes);
    for o in outcomes {
        assert_eq!(o.relayed, Some(true), "{outcomes:?}");
    }
}

#[test]
fn endpoint_independent_nats_connect_directly_through_stun() {
    let nats = [Nat::EndpointIndependent, Nat::EndpointIndependent];
    let name = "endpoint_independent_nats_connect_directly_through_stun";
    if let Some(outcomes) = bot_row(name, nats, Servers::Stun, BOT_LIMIT) {
        assert_direct(&outcomes);
    }
}

#[test]
fn a_symmetric_nat_connects_through_the_relay() {
    let nats = [Nat::EndpointIndependent, Nat::Symmetric];
    let name = "a_symmetric_nat_connects_through_the_relay";
    if let Some(outcomes) = bot_row(name, nats, Servers::StunTurn, BOT_LIMIT) {
        assert_relayed(&outcomes);
    }
}

#[test]
fn two_symmetric_nats_connect_through_the_relay() {
    let nats = [Nat::Symmetric, Nat::Symmetric];
    let name = "two_symmetric_nats_connect_through_the_relay";
    if let Some(outcomes) = bot_row(name, nats, Servers::StunTurn, BOT_LIMIT) {
        assert_relayed(&outcomes);
    }
}

#[test]
fn two_symmetric_nats_connect_through_a_coturn_relay() {
    let nats = [Nat::Symmetric, Nat::Symmetric];
    let name = "two_symmetric_nats_connect_through_a_coturn_relay";
    let Some(outcomes) = bot_row(name, nats, Servers::Coturn, BOT_LIMIT) else {
        return;
    };
    assert_through_coturn(&outcomes);
}

/// Both played through a relay of coturn's (43000-43999), not of
/// volley-server's (whose TURN server is off then): as a bot's `PeerStats`
/// report it (a browser reports the path's kinds only).
fn assert_through_coturn(outcomes: &[Outcome]) {
    assert_relayed(outcomes);
    let coturn = |a: &str| {
        a.rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_some_and(|p| (43_000..=43_999).contains(&p))
    };
    let bots: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.addresses.clone())
        .collect();
    assert!(!bots.is_empty(), "{outcomes:?}");
    for (local, remote) in bots {
        assert!(coturn(&local) || coturn(&remote), "{outcomes:?}");
    }
}

/// Neither played, and each was told within 15 s of joining (`clocked`:
/// of the players that did not wait for a late peer) that only a TURN
/// relay could connect them.
fn assert_unreachable(outcomes: &[Outcome], clocked: [bool; 2]) {
    for (o, clocked) in outcomes.iter().zip(clocked) {
        let (after, why) = o.unreachable.as_ref().expect("told it is unreachable");
        assert!(!clocked || *after < 15.0, "{outcomes:?}");
        assert!(why.contains("TURN relay"), "{why}");
        assert!(o.checksum.is_none(), "{outcomes:?}");
    }
}

#[test]
fn two_symmetric_nats_without_a_relay_fail_clearly_within_15_s() {
    let nats = [Nat::Symmetric, Nat::Symmetric];
    let name = "two_symmetric_nats_without_a_relay_fail_clearly_within_15_s";
    if let Some(outcomes) = bot_row(name, nats, Servers::Stun, Duration::from_secs(16)) {
        assert_unreachable(&outcomes, [true, true]);
    }
}

/// Rows run one at a time: each runs two players, a browser row Chromium
/// on SwiftShader, and on two cores rows side by side starve each other.
static ONE_ROW: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A browser in one home, a native bot in the other: [`play`], with the web
/// bundle ready before entering the namespace (building it may need the
/// network).
fn play_browser_row(test: &str, nats: [Nat; 2], servers: Servers) -> Option<Vec<Outcome>> {
    let _one = ONE_ROW.lock().unwrap_or_else(|p| p.into_inner());
    volley_testkit::browser::web_bundle();
    if !volley_testkit::netns::isolate_with_namespaces(test) {
        return None;
    }
    Some(play(
        test,
        nats,
        [Player::Browser, Player::Bot],
        servers,
        BROWSER_LIMIT,
    ))
}

/// How long a browser row plays (SwiftShader renders ~5 frames/s here).
const BROWSER_LIMIT: Duration = Duration::from_secs(150);

#[test]
fn a_browser_and_a_bot_behind_endpoint_independent_nats_connect_directly() {
    let nats = [Nat::EndpointIndependent, Nat::EndpointIndependent];
    let name = "a_browser_and_a_bot_behind_endpoint_independent_nats_connect_directly";
    if !play_at_home()
        && let Some(outcomes) = play_browser_row(name, nats, Servers::Stun)
    {
        assert_direct(&outcomes);
    }
}

#[test]
fn a_browser_and_a_bot_behind_symmetric_nats_connect_through_the_relay() {
    let nats = [Nat::Symmetric, Nat::Symmetric];
    let name = "a_browser_and_a_bot_behind_symmetric_nats_connect_through_the_relay";
    if !play_at_home()
        && let Some(outcomes) = play_browser_row(name, nats, Servers::StunTurn)
    {
        assert_relayed(&outcomes);
    }
}

#[test]
fn a_browser_behind_a_symmetric_nat_and_a_bot_connect_through_the_relay() {
    let nats = [Nat::Symmetric, Nat::EndpointIndependent];
    let name = "a_browser_behind_a_symmetric_nat_and_a_bot_connect_through_the_relay";
    if !play_at_home()
        && let Some(outcomes) = play_browser_row(name, nats, Servers::StunTurn)
    {
        assert_relayed(&outcomes);
    }
}

#[test]
fn a_browser_and_a_bot_behind_symmetric_nats_connect_through_a_coturn_relay() {
    let nats = [Nat::Symmetric, Nat::Symmetric];
    let name = "a_browser_and_a_bot_behind_symmetric_nats_connect_through_a_coturn_relay";
    if !play_at_home()
        && let Some(outcomes) = play_browser_row(name, nats, Servers::Coturn)
    {
        assert_through_coturn(&outcomes);
    }
}

#[test]
fn a_browser_and_a_bot_behind_symmetric_nats_without_a_relay_are_told_clearly() {
    let nats = [Nat::Symmetric, Nat::Symmetric];
    let name = "a_browser_and_a_bot_behind_symmetric_nats_without_a_relay_are_told_clearly";
    if !play_at_home()
        && let Some(outcomes) = play_browser_row(name, nats, Servers::Stun)
    {
        // The bot joined first and waited for the page to load.
        assert_unreachable(&outcomes, [true, false]);
    }
}
