//! The signaling port with a certificate: wss:// and https:// on one port,
//! plain HTTP told to use TLS, and what a hostile or confused client costs
//! (a cut within the handshake timeout, counted by reason).

mod support;

use std::sync::Arc;
use std::time::Duration;

use matchbox_protocol::JsonPeerEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::MaybeTlsStream;
use volley_server::tls::TlsConfig;
use volley_server::{ServerConfig, ServerHandle};
use volley_testkit::pki::Pki;

use support::{WAIT, event, refusals, start};

/// What a client must trust as a root, and what the server serves: a CA
/// and a `localhost` certificate it signed.
fn pki() -> (CertificateDer<'static>, TlsConfig) {
    let pki = Pki::new();
    (CertificateDer::from(pki.root_der.clone()), pki.server())
}

fn connector(root: Option<&CertificateDer<'static>>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    if let Some(root) = root {
        roots.add(root.clone()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls_stream(
    server: &ServerHandle,
    root: &CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(WAIT, connector(Some(root)).connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("the server's certificate chains to the root")
}

/// `GET path` over https; the whole response.
async fn https_get(server: &ServerHandle, root: &CertificateDer<'static>, path: &str) -> String {
    let mut tls = tls_stream(server, root).await;
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, tls.read_to_string(&mut response))
        .await
        .expect("a response in time")
        .unwrap();
    response
}

/// `/metrics` once it counts `reason` at least `at_least` times.
async fn refusals_reach(
    server: &ServerHandle,
    root: &CertificateDer<'static>,
    reason: &str,
    at_least: u64,
) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = https_get(server, root, "/metrics").await;
        if refusals(&text, reason) >= at_least || std::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn wss_and_https_share_the_port_and_two_peers_meet_over_it() {
    let (root, tls) = pki();
    let server = start(ServerConfig {
        tls: Some(tls),
        ..ServerConfig::default()
    })
    .await;
    let health = https_get(&server, &root, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    let mut peers = Vec::new();
    for _ in 0..2 {
        let stream = tls_stream(&server, &root).await;
        let url = format!("wss://localhost:{}/tls-room?next=2", server.addr().port());
        let (mut ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .expect("the WebSocket upgrade over TLS");
        let JsonPeerEvent::IdAssigned(id) = event(&mut ws).await else {
            panic!("expected IdAssigned");
        };
        peers.push((ws, id));
    }
    let (first, second) = peers.split_at_mut(1);
    assert_eq!(
        event(&mut first[0].0).await,
        JsonPeerEvent::NewPeer(second[0].1)
    );
    let metrics = https_get(&server, &root, "/metrics").await;
    let handshakes = metrics
        .lines()
        .find_map(|l| l.strip_prefix("volley_tls_handshakes_total "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(handshakes >= 4, "{metrics}");
    server.shutdown().await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_is_told_to_use_tls() {
    let (root, tls) = pki();
    let server = start(ServerConfig {
        tls: Some(tls),
        ..ServerConfig::default()
    })
    .await;
    let (status, body) = support::http(&server, "GET", "/tls-room").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("use https:// and wss://"), "{body}");
    // A ws:// client reads the same answer as a failed upgrade.
    let url = format!("ws://{}/tls-room", server.addr());
    let error = tokio_tungstenite::connect_async(url).await.unwrap_err();
    assert!(error.to_string().contains("400"), "{error}");
    let text = refusals_reach(&server, &root, "plain_http_on_tls", 2).await;
    assert_eq!(refusals(&text, "plain_http_on_tls"), 2, "{text}");
    server.shutdown().await;
}

#[tokio::test]
async fn broken_slow_and_distrustful_handshakes_are_cut_and_counted() {
    let (root, tls) = pki();
    let handshake_timeout = Duration::from_millis(300);
    let server = start(ServerConfig {
        tls: Some(tls),
        handshake_timeout,
        ..ServerConfig::default()
    })
    .await;
    // A TLS record header followed by garbage.
    let mut garbage = TcpStream::connect(server.addr()).await.unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .await
        .unwrap();
    let mut sink = Vec::new();
    tokio::time::timeout(WAIT, garbage.read_to_end(&mut sink))
        .await
        .expect("closed in time")
        .ok();
    // Connects and says nothing: cut at the handshake timeout.
    let started = std::time::Instant::now();
    let mut silent = TcpStream::connect(server.addr()).await.unwrap();
    let n = tokio::time::timeout(WAIT, silent.read(&mut [0u8; 16]))
        .await
        .expect("cut in time")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        started.elapsed() >= handshake_timeout,
        "{:?}",
        started.elapsed()
    );
    // A client that does not trust the certificate aborts the handshake.
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let error = connector(None).connect(name, tcp).await.unwrap_err();
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");

    let text = refusals_reach(&server, &root, "tls_handshake_failed", 2).await;
    assert_eq!(refusals(&text, "tls_handshake_failed"), 2, "{text}");
    assert_eq!(refusals(&text, "tls_handshake_timeout"), 1, "{text}");
    // Nobody else was affected: the server still serves.
    let health = https_get(&server, &root, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    server.shutdown().await;
}
