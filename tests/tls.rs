//! A server that speaks TLS only, with a certificate made at test time
//! (rcgen): native peers that trust its CA play box_game over `wss://`, a
//! native client that does not is refused with a clear error, and headless
//! Chromium (trusting the certificate by its SPKI hash) loads the game over
//! `https://`, derives `wss://` from the page's origin and plays a native
//! bot. Inside a private network namespace, like every WebRTC test.

use std::time::Duration;

use serde_json::Value;
use volley::net::{Session, TlsRoots};
use volley::server::ServerConfig;
use volley_bots::BotRun;
use volley_testkit::browser::browser_test_with;
use volley_testkit::pki::Pki;
use volley_testkit::wait_for;

/// The frame whose checksums are compared.
const CHECKPOINT: i32 = 300;

fn tls_server(pki: &Pki) -> ServerConfig {
    ServerConfig {
        tls: Some(pki.server()),
        ..ServerConfig::default()
    }
}

#[test]
fn native_peers_trusting_the_servers_ca_play_over_wss_and_others_are_refused() {
    if !volley_testkit::netns::isolate(
        "native_peers_trusting_the_servers_ca_play_over_wss_and_others_are_refused",
    ) {
        return;
    }
    let pki = Pki::new();
    volley_testkit::server::with_server_config(tls_server(&pki), |server| {
        let base = format!("wss://localhost:{}", server.addr().port());
        // /api/ice over https, with and without the CA.
        let room = format!("{base}/tls-ice");
        let servers = block_on(volley::net::ice::fetch_ice_servers(&room, &pki.roots()));
        assert!(servers.is_ok(), "{servers:?}");
        let refused = block_on(volley::net::ice::fetch_ice_servers(
            &room,
            &TlsRoots::PublicWeb,
        ))
        .unwrap_err()
        .to_string();
        assert!(refused.contains("UnknownIssuer"), "{refused}");

        // A session that trusts only the public web PKI ends with the reason.
        let (_session, message_loop) = Session::builder(&format!("{base}/tls-refused")).build();
        let error = block_on(message_loop).unwrap_err().to_string();
        assert!(
            error.contains("cannot reach the signaling server") && error.contains("UnknownIssuer"),
            "{error}"
        );

        // Two bots that trust the CA play a match.
        let mut run = BotRun::new(&base, 1, 2, CHECKPOINT);
        run.tls_roots = pki.roots();
        run.room_prefix = "tls-native".into();
        run.timeout = Duration::from_secs(60);
        let reports = volley_bots::run_rooms(&run);
        let room = &reports[0];
        print!("{room}");
        assert!(room.ok(), "{room}");
        assert_eq!(room.bots.len(), 2);
        assert_eq!(room.bots[0].checksum, room.bots[1].checksum, "{room}");
    });
}

/// Blocks on a future that needs no particular executor.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

#[test]
fn a_browser_plays_over_https_and_wss_against_a_native_bot() {
    let pki = Pki::new();
    let config = tls_server(&pki);
    browser_test_with(
        "a_browser_plays_over_https_and_wss_against_a_native_bot",
        config,
        |server, driver| {
            let port = server.addr().port();
            let trust = format!("--ignore-certificate-errors-spki-list={}", pki.spki_sha256);
            let browser = driver.browser_with(&[trust]);
            let mut run = BotRun::new(&format!("wss://localhost:{port}"), 1, 2, CHECKPOINT);
            run.tls_roots = pki.roots();
            run.bots_per_room = 1;
            run.room_prefix = "e2e-tls".into();
            run.linger = Duration::from_secs(5);
            run.timeout = Duration::from_secs(150);
            browser.goto(&format!(
                "https://localhost:{port}/play/box_game?room=e2e-tls&players=2"
            ));
            assert_eq!(
                browser.eval("return location.protocol;"),
                Value::from("https:")
            );
            let bot = std::thread::spawn(move || volley_bots::run_rooms(&run));
            let mut seen = Value::Null;
            let ours = wait_for(
                "the browser to confirm the checkpoint",
                Duration::from_secs(150),
                || {
                    let status = browser.game_status()?;
                    seen = status.clone();
                    assert_eq!(status["desyncs"], 0, "desync in the browser: {status}");
                    status["checkpoints"][CHECKPOINT.to_string()]
                        .as_str()
                        .map(str::to_string)
                },
            );
            let reports = bot.join().expect("the bot ran");
            let room = &reports[0];
            print!("{room}");
            println!("browser: {seen}");
            assert!(room.ok(), "{room}");
            assert_eq!(
                Some(ours),
                room.bots[0].checksum.map(|c| format!("{c:032x}")),
                "browser and bot disagree at frame {CHECKPOINT}"
            );
            // The server speaks nothing but TLS, so the page's signaling
            // went over wss://; it counted the handshakes.
            let metrics = ureq_get_metrics(port, &pki);
            assert!(metrics.contains("volley_tls_handshakes_total"), "{metrics}");
        },
    );
}

/// `/metrics` over https, trusting the test CA.
fn ureq_get_metrics(port: u16, pki: &Pki) -> String {
    let root = ureq::tls::Certificate::from_pem(pki.root_pem.as_bytes())
        .expect("the CA parses")
        .to_owned();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[root]))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    agent
        .get(&format!("https://localhost:{port}/metrics"))
        .call()
        .expect("/metrics over https")
        .into_body()
        .read_to_string()
        .expect("a text body")
}
