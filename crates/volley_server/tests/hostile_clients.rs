//! Clients that try to starve everyone else, over real sockets on
//! 127.0.0.0/8: a WebSocket peer and an HTTP reader that stop reading, one
//! address that opens too much, and forwarding headers from someone who is
//! not a proxy. Each client acts from its own loopback source address
//! (127.0.0.2 and up) so per-address limits can be told apart. Every wait is
//! bounded.

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use matchbox_protocol::JsonPeerEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;
use volley_server::limits::IpLimitsConfig;
use volley_server::lobby::LobbyConfig;
use volley_server::{ServerConfig, ServerHandle};

use support::*;

/// A TCP connection from `127.0.0.<last>` with a tiny receive buffer, so a
/// client that stops reading closes its window quickly.
async fn tiny_window_from(server: &ServerHandle, last: u8) -> TcpStream {
    tcp_from_with(server, last, Some(4096)).await
}

/// Retries `join_from` until it succeeds (a slot frees a moment after the
/// event that announces it), bounded.
async fn join_eventually(server: &ServerHandle, last: u8, path: &str) -> Ws {
    let deadline = Instant::now() + WAIT;
    loop {
        match try_connect_from(server, last, path).await {
            Ok(mut ws) => {
                assert!(matches!(event(&mut ws).await, JsonPeerEvent::IdAssigned(_)));
                return ws;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("never admitted again: {e}"),
        }
    }
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_closed_within_the_write_timeout() {
    let write_timeout = Duration::from_millis(500);
    let server = start(ServerConfig {
        write_timeout,
        rate_per_second: 10_000,
        rate_burst: 10_000,
        per_ip: IpLimitsConfig {
            max_connections: 1,
            ..IpLimitsConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    // The stalled peer, from 127.0.0.2: it reads its id, then never again.
    let stream = tiny_window_from(&server, 2).await;
    let url = format!("ws://{}/flood", server.addr());
    let (mut stalled, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .expect("handshake");
    let JsonPeerEvent::IdAssigned(stalled_id) = event(&mut stalled).await else {
        panic!("expected IdAssigned");
    };
    // The sender, from 127.0.0.3, pushes ~11 MB of signals at it: more than
    // the loopback buffers hold, fewer messages than its outbound queue holds,
    // so only the write deadline can catch it.
    let (sender, _) = join_from(&server, 3, "flood").await;
    let (mut sink, mut stream) = sender.split();
    let payload = format!("\"{}\"", "x".repeat(60_000));
    let flood = tokio::spawn(async move {
        for _ in 0..180 {
            let text = format!(
                r#"{{"Signal":{{"receiver":"{}","data":{payload}}}}}"#,
                stalled_id.0
            );
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
        sink
    });
    let started = Instant::now();
    let left = loop {
        let message = tokio::time::timeout(WAIT * 2, stream.next())
            .await
            .expect("PeerLeft in time")
            .expect("sender still connected")
            .expect("no socket error");
        if let Message::Text(text) = message {
            break text.parse::<JsonPeerEvent>().expect("an event");
        }
    };
    assert_eq!(left, JsonPeerEvent::PeerLeft(stalled_id));
    assert!(started.elapsed() < WAIT * 2, "{:?}", started.elapsed());
    let _sink = flood.await.unwrap();
    let text =
        metrics_eventually(&server, "volley_refusals_total{reason=\"slow_consumer\"} 1").await;
    assert!(
        text.contains("volley_refusals_total{reason=\"slow_consumer\"} 1"),
        "{text}"
    );
    // Its connection slot (one per address here) is free again.
    let _again = join_eventually(&server, 2, "flood").await;
    drop(stalled);
    server.shutdown().await;
}

#[tokio::test]
async fn one_address_past_its_connection_limit_is_refused_and_others_are_not() {
    let server = start(ServerConfig {
        per_ip: IpLimitsConfig {
            max_connections: 3,
            ..IpLimitsConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let mut held = Vec::new();
    for n in 0..3 {
        held.push(join_from(&server, 2, &format!("crowd{n}")).await.0);
    }
    assert_eq!(
        refused_status(try_connect_from(&server, 2, "crowd").await),
        (
            429,
            "too many connections from your address (limit 3)\n".into()
        )
    );
    // Plain HTTP from the same address is refused too; another address is not.
    assert_eq!(http_from(&server, 2, "GET", "/health", "").await.0, 429);
    let (_other, other_id) = join_from(&server, 3, "crowd0").await;
    assert_eq!(http_from(&server, 3, "GET", "/health", "").await.0, 200);
    assert_eq!(event(&mut held[0]).await, JsonPeerEvent::NewPeer(other_id));
    // A closed connection gives its slot back.
    held.pop();
    held.push(join_eventually(&server, 2, "crowd2").await);
    // Two refusals above, and any retries while the slot was being freed.
    let text = metrics(&server).await;
    assert!(
        refusals(&text, "too_many_connections_from_ip") >= 2,
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn joins_per_minute_are_limited_per_address() {
    let server = start(ServerConfig {
        per_ip: IpLimitsConfig {
            joins_per_minute: 3,
            ..IpLimitsConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    for _ in 0..3 {
        let (ws, _) = join_from(&server, 2, "churn").await;
        drop(ws);
    }
    assert_eq!(
        refused_status(try_connect_from(&server, 2, "churn").await),
        (
            429,
            "too many joins from your address (3 per minute)\n".into()
        )
    );
    let _ok = join_from(&server, 3, "churn").await;
    let text = metrics(&server).await;
    assert!(
        text.contains("volley_refusals_total{reason=\"join_rate_limited\"} 1"),
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_room_creation_flood_is_refused_while_another_address_creates_rooms() {
    let server = start(ServerConfig {
        per_ip: IpLimitsConfig {
            room_creations_per_minute: 3,
            ..IpLimitsConfig::default()
        },
        lobby: LobbyConfig {
            max_private_rooms_per_owner: 2,
            ..LobbyConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let create = |last| {
        let server = &server;
        async move {
            let (status, _, body) = http_from(server, last, "POST", "/api/rooms", "").await;
            (status, body)
        }
    };
    assert_eq!(create(2).await.0, 201);
    assert_eq!(create(2).await.0, 201);
    // Two codes held: the third is refused by the per-address code cap...
    assert_eq!(
        create(2).await,
        (
            429,
            "too many private rooms held by your address (2)\n".into()
        )
    );
    // ...and the fourth attempt in a minute by the creation rate.
    assert_eq!(
        create(2).await,
        (
            429,
            "too many rooms created from your address (3 per minute)\n".into()
        )
    );
    let (status, body) = create(3).await;
    assert_eq!(status, 201, "{body}");
    let text = metrics(&server).await;
    for line in [
        "volley_refusals_total{reason=\"too_many_private_rooms_from_ip\"} 1",
        "volley_refusals_total{reason=\"room_creation_rate_limited\"} 1",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn forwarding_headers_count_only_from_a_trusted_proxy() {
    let server = start(ServerConfig {
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        per_ip: IpLimitsConfig {
            http_per_second: 1,
            http_burst: 2,
            max_connections: 2,
            ..IpLimitsConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let get = |last, headers: &'static str| {
        let server = &server;
        async move { http_from(server, last, "GET", "/health", headers).await.0 }
    };
    // Through the proxy (127.0.0.1), each forwarded client has its own budget.
    let xff = |ip| match ip {
        1 => "X-Forwarded-For: 198.51.100.9, 203.0.113.1\r\n",
        _ => "X-Forwarded-For: 203.0.113.2\r\n",
    };
    assert_eq!(get(1, xff(1)).await, 200);
    assert_eq!(get(1, xff(1)).await, 200);
    assert_eq!(get(1, xff(1)).await, 429);
    assert_eq!(get(1, xff(2)).await, 200);
    assert_eq!(
        get(1, "Forwarded: for=\"[2001:db8::7]:443\"\r\n").await,
        200
    );
    // Not a proxy: its headers are ignored, it is limited as itself.
    assert_eq!(get(2, "X-Forwarded-For: 203.0.113.3\r\n").await, 200);
    assert_eq!(get(2, "X-Forwarded-For: 203.0.113.4\r\n").await, 200);
    assert_eq!(get(2, "X-Forwarded-For: 203.0.113.5\r\n").await, 429);
    // WebSockets through the proxy take the forwarded client's connection
    // slots (two each here), not the proxy's.
    let via_proxy = |client: &'static str| {
        let url = format!("ws://{}/proxied", server.addr());
        async move {
            let request =
                tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                    .map(|mut r| {
                        r.headers_mut()
                            .insert("x-forwarded-for", client.parse().unwrap());
                        r
                    })
                    .unwrap();
            tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
                .await
                .expect("handshake in time")
                .map(|(ws, _)| ws)
        }
    };
    let _a1 = via_proxy("203.0.113.50").await.expect("first");
    let _a2 = via_proxy("203.0.113.50").await.expect("second");
    assert_eq!(
        refused_status(via_proxy("203.0.113.50").await),
        (
            429,
            "too many connections from your address (limit 2)\n".into()
        )
    );
    let _b = via_proxy("203.0.113.51").await.expect("another client");
    let text = metrics(&server).await;
    for line in [
        "volley_refusals_total{reason=\"http_rate_limited\"} 2",
        "volley_refusals_total{reason=\"too_many_connections_from_ip\"} 1",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    server.shutdown().await;
}

/// A temporary web directory with one large file.
struct BigFile {
    dir: std::path::PathBuf,
    len: usize,
}

impl BigFile {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("volley-big-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let len = 16 << 20;
        std::fs::write(dir.join("game_bg.wasm"), vec![7u8; len]).unwrap();
        BigFile { dir, len }
    }
}

impl Drop for BigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads what the connection still delivers until it ends (EOF or reset),
/// `pause` between reads; returns the byte count.
async fn drain(stream: &mut TcpStream, pause: Duration) -> usize {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0;
    let deadline = Instant::now() + WAIT * 2;
    while Instant::now() < deadline {
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return total,
            Ok(Ok(n)) => total += n,
            Err(_) => panic!("connection neither ended nor delivered"),
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    panic!("connection still open after {total} bytes");
}

const GET_BIG: &[u8] = b"GET /game_bg.wasm HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn a_slow_reader_of_a_large_file_is_cut_and_its_slot_freed() {
    let big = BigFile::new("stall");
    let server = start(ServerConfig {
        web_dir: Some(big.dir.clone()),
        write_timeout: Duration::from_millis(300),
        per_ip: IpLimitsConfig {
            max_connections: 1,
            ..IpLimitsConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    // Asks for 16 MiB and reads nothing.
    let mut stream = tiny_window_from(&server, 2).await;
    stream.write_all(GET_BIG).await.unwrap();
    let line = "volley_refusals_total{reason=\"slow_http_reader\"} 1";
    let text = metrics_eventually(&server, line).await;
    assert!(text.contains(line), "{text}");
    // What was in flight arrives, then the connection ends, short of the file.
    let got = drain(&mut stream, Duration::ZERO).await;
    assert!(got < big.len, "{got}");
    // The address's only slot is free again.
    assert_eq!(http_from(&server, 2, "GET", "/health", "").await.0, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn a_trickling_reader_is_cut_by_the_http_timeout() {
    let big = BigFile::new("trickle");
    let server = start(ServerConfig {
        web_dir: Some(big.dir.clone()),
        http_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    })
    .await;
    let mut stream = tiny_window_from(&server, 2).await;
    stream.write_all(GET_BIG).await.unwrap();
    // 16 KiB every 20 ms for two seconds: progress all along (no stall), but
    // 16 MiB would take 20 s.
    let started = Instant::now();
    let mut got = 0;
    let mut buf = vec![0u8; 16 * 1024];
    while started.elapsed() < Duration::from_secs(2) {
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got += n,
            Err(_) => panic!("no data"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let line = "volley_refusals_total{reason=\"http_timeout\"} 1";
    let text = metrics_eventually(&server, line).await;
    assert!(text.contains(line), "{text}");
    got += drain(&mut stream, Duration::ZERO).await;
    assert!(got < big.len, "{got}");
    server.shutdown().await;
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn tickets_are_capped_bounded_in_time_and_required_for_ice() {
    let server = start(ServerConfig {
        ticket_secret: Some("s3cret".into()),
        ticket_max_ttl: Duration::from_secs(3600),
        max_connections_per_ticket: 1,
        ice: volley_server::ice::IceConfig {
            turn: vec!["turn:127.0.0.1:3478".into()],
            turn_secret: Some("turn-s3cret".into()),
            turn_ttl: Duration::from_secs(600),
            turn_user: "volley".into(),
            ..Default::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let now = unix_now();
    let ticket = volley_server::ticket::mint(b"s3cret", "vip", "alice", now + 60);
    // One connection per ticket here: a second one waits for the first to close.
    let (first, _) = join(&server, &format!("vip?ticket={ticket}")).await;
    assert_eq!(
        refused_status(try_connect_from(&server, 2, &format!("vip?ticket={ticket}")).await),
        (429, "ticket already in use (limit 1 connections)\n".into())
    );
    drop(first);
    let _second = join_eventually(&server, 2, &format!("vip?ticket={ticket}")).await;
    // Too long-lived, or spelled another way: refused.
    let long = volley_server::ticket::mint(b"s3cret", "vip", "alice", now + 7200);
    assert_eq!(
        refused_status(try_connect_from(&server, 3, &format!("vip?ticket={long}")).await),
        (401, "ticket lives too long (at most 3600 s)\n".into())
    );
    assert_eq!(
        refused_status(try_connect_from(&server, 3, &format!("vip?ticket=0{ticket}")).await),
        (401, "malformed ticket\n".into())
    );
    // /api/ice needs a ticket for the room; the TURN user is the ticket's.
    let (status, _, body) = http_with(&server, "GET", "/api/ice", "").await;
    assert_eq!(
        (status, body.as_str()),
        (401, "a ticket is required (?ticket=...)\n")
    );
    let path = format!("/api/ice?room=vip&ticket={ticket}");
    let (status, head, body) = http_with(&server, "GET", &path, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    let ice: serde_json::Value = serde_json::from_str(&body).unwrap();
    let username = ice["iceServers"][0]["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "alice");
    assert!(expiry.parse::<u64>().unwrap() >= now + 600);
    let other_room = format!("/api/ice?room=other&ticket={ticket}");
    assert_eq!(http_with(&server, "GET", &other_room, "").await.0, 401);
    let text = metrics(&server).await;
    assert!(refusals(&text, "ticket_in_use") >= 1, "{text}");
    for line in [
        "volley_refusals_total{reason=\"ticket_ttl_too_long\"} 1",
        "volley_refusals_total{reason=\"ticket_malformed\"} 1",
        "volley_refusals_total{reason=\"ticket_missing\"} 1",
        "volley_refusals_total{reason=\"ticket_forged\"} 1",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn without_tickets_each_client_address_is_its_own_turn_user() {
    let server = start(ServerConfig {
        ice: volley_server::ice::IceConfig {
            turn: vec!["turn:127.0.0.1:3478".into()],
            turn_secret: Some("s3cret".into()),
            ..volley_server::ice::IceConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let mut users = Vec::new();
    for last in [2, 3, 3] {
        let (status, _, body) = http_from(&server, last, "GET", "/api/ice", "").await;
        assert_eq!(status, 200, "{body}");
        let ice: serde_json::Value = serde_json::from_str(&body).unwrap();
        let username = ice["iceServers"][0]["username"].as_str().unwrap();
        users.push(username.split_once(':').unwrap().1.to_owned());
    }
    assert_eq!(
        users,
        ["volley.127.0.0.2", "volley.127.0.0.3", "volley.127.0.0.3"]
    );
    server.shutdown().await;
}
