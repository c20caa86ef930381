//! The server over real sockets on 127.0.0.1 (port 0): protocol, rooms,
//! matchmaking, HTTP API, tickets, and hostile clients. Every wait is bounded.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use matchbox_protocol::JsonPeerEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};
use volley_server::ServerConfig;

use support::*;

#[tokio::test]
async fn rooms_relay_and_announce_like_matchbox() {
    let server = start(ServerConfig::default()).await;
    let (mut a, a_id) = join(&server, "room_a").await;
    let (mut b, b_id) = join(&server, "room_a").await;
    assert_eq!(event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    signal(&mut a, b_id, r#"{"Offer":"sdp"}"#).await;
    assert_eq!(
        event(&mut b).await,
        JsonPeerEvent::Signal {
            sender: a_id,
            data: serde_json::json!({"Offer": "sdp"})
        }
    );
    b.close(None).await.unwrap();
    assert_eq!(event(&mut a).await, JsonPeerEvent::PeerLeft(b_id));
    server.shutdown().await;
}

#[tokio::test]
async fn three_rooms_side_by_side_and_a_cross_room_signal_is_dropped() {
    let server = start(ServerConfig::default()).await;
    let mut rooms = Vec::new();
    for name in ["r1", "r2", "r3"] {
        let (mut first, first_id) = join(&server, name).await;
        let (second, second_id) = join(&server, name).await;
        assert_eq!(event(&mut first).await, JsonPeerEvent::NewPeer(second_id));
        rooms.push((first, first_id, second, second_id));
    }
    // r1's first peer signals r2's second peer: not relayed, not fatal.
    let target = rooms[1].3;
    signal(&mut rooms[0].0, target, r#""sneaky""#).await;
    // Every room still relays inside itself, and r2's peer sees only that.
    for (first, first_id, second, second_id) in &mut rooms {
        signal(first, *second_id, r#""hi""#).await;
        assert_eq!(
            event(second).await,
            JsonPeerEvent::Signal {
                sender: *first_id,
                data: serde_json::json!("hi")
            }
        );
    }
    let (_, metrics) = http(&server, "GET", "/metrics").await;
    assert!(
        metrics.contains("volley_signals_dropped_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("volley_signals_relayed_total 3"),
        "{metrics}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn next_forms_fresh_matches_and_bad_requests_get_reasons() {
    let server = start(ServerConfig {
        lobby: volley_server::lobby::LobbyConfig {
            max_room_size: 3,
            ..Default::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let (mut a, _) = join(&server, "duel?next=2").await;
    let (_b, b_id) = join(&server, "duel?next=2").await;
    let (mut c, _) = join(&server, "duel?next=2").await;
    let (_d, d_id) = join(&server, "duel?next=2").await;
    assert_eq!(event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    assert_eq!(event(&mut c).await, JsonPeerEvent::NewPeer(d_id));
    for (query, reason) in [
        (
            "0",
            "invalid next=\"0\": must be a whole number from 2 to 3",
        ),
        ("1", "invalid next=\"1\""),
        ("4", "invalid next=\"4\""),
        ("99999999999999999999999999", "invalid next="),
        ("two", "invalid next=\"two\""),
    ] {
        let mut ws = connect(&server, &format!("duel?next={query}")).await;
        let (code, text) = closed(&mut ws).await;
        assert_eq!(code, 4002);
        assert!(text.starts_with(reason), "{text}");
    }
    let mut ws = connect(&server, "bad%20name").await;
    assert_eq!(closed(&mut ws).await.0, 4003);
    // Room capacity 3: the fourth joiner is refused.
    let mut full = Vec::new();
    for _ in 0..3 {
        full.push(join(&server, "small").await);
    }
    let mut ws = connect(&server, "small").await;
    assert_eq!(
        closed(&mut ws).await,
        (4001, "room is full (3 peers)".into())
    );
    let (_, metrics) = http(&server, "GET", "/metrics").await;
    assert!(
        metrics.contains("volley_matches_formed_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("volley_refusals_total{reason=\"invalid_next\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("volley_refusals_total{reason=\"room_full\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("volley_time_to_match_seconds_count 4"),
        "{metrics}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn hostile_clients_get_close_reasons_while_a_calm_room_keeps_working() {
    let server = start(ServerConfig {
        handshake_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    })
    .await;
    let mut calm = Calm::new(&server).await;

    // Malformed JSON.
    let (mut ws, _) = join(&server, "hostile").await;
    ws.send(Message::text("{not json")).await.unwrap();
    let (code, reason) = closed(&mut ws).await;
    assert_eq!(code, u16::from(CloseCode::Invalid));
    assert!(reason.starts_with("malformed request"), "{reason}");
    calm.still_works().await;

    // A binary frame.
    let (mut ws, _) = join(&server, "hostile").await;
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(
        closed(&mut ws).await,
        (1003, "binary frames are not supported".into())
    );
    calm.still_works().await;

    // A 1 MiB frame: refused from its header, never buffered.
    let (ws, _) = join(&server, "hostile").await;
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        let _ = sink.send(Message::text("x".repeat(1 << 20))).await;
        sink
    });
    let frame = close_frame(&mut stream).await;
    assert_eq!(u16::from(frame.code), 1009);
    assert_eq!(
        frame.reason.as_str(),
        "message too large (limit 65536 bytes)"
    );
    drop(writer.await);
    calm.still_works().await;

    // 1,000 messages per second.
    let (ws, _) = join(&server, "hostile").await;
    let (mut sink, mut stream) = ws.split();
    let flood = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for _ in 0..2000 {
            tick.tick().await;
            if sink.send(Message::text(r#""KeepAlive""#)).await.is_err() {
                break;
            }
        }
    });
    let frame = close_frame(&mut stream).await;
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(
        frame.reason.as_str(),
        "rate limit exceeded (50 messages/s, burst 200)"
    );
    flood.abort();
    calm.still_works().await;

    // Never completing the HTTP handshake: silent, and half a request.
    for partial in [&b""[..], b"GET /hostile HTTP/1.1\r\nHost: x\r\n"] {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(partial).await.unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "connection closed by the server");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        calm.still_works().await;
    }

    let (_, metrics) = http(&server, "GET", "/metrics").await;
    for reason in [
        "malformed_request",
        "binary_frame",
        "message_too_large",
        "rate_limited",
    ] {
        let line = format!("volley_refusals_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    assert!(
        metrics.contains("volley_refusals_total{reason=\"handshake_timeout\"} 2"),
        "{metrics}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_stops_answering_is_dropped_and_announced() {
    let server = start(ServerConfig {
        idle_timeout: Duration::from_millis(600),
        ..ServerConfig::default()
    })
    .await;
    let (mut a, _) = join(&server, "idle").await;
    // b never reads again, so it never answers the server's pings.
    let (_b, b_id) = join(&server, "idle").await;
    assert_eq!(event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    // a keeps answering (reading answers pings) and sees b leave.
    assert_eq!(event(&mut a).await, JsonPeerEvent::PeerLeft(b_id));
    server.shutdown().await;
}

#[tokio::test]
async fn http_api_lists_rooms_creates_private_codes_and_hands_out_ice() {
    let server = start(ServerConfig {
        ice: volley_server::ice::IceConfig {
            stun: vec!["stun:127.0.0.1:3478".into()],
            ..Default::default()
        },
        ..ServerConfig::default()
    })
    .await;
    assert_eq!(
        http(&server, "GET", "/health").await,
        (200, r#"{"status":"ok"}"#.into())
    );
    let (status, created) = http(&server, "POST", "/api/rooms").await;
    assert_eq!(status, 201);
    let code = serde_json::from_str::<serde_json::Value>(&created).unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(code.len(), 12);
    let (_p1, _) = join(&server, &code).await;
    let (_p2, _) = join(&server, "lobby").await;
    let (_p3, _) = join(&server, "lobby").await;
    let (_p4, _) = join(&server, "quick?next=4").await;
    // The list is a snapshot the actor republishes (every 250 ms by default)
    // after rooms change.
    let expected: Vec<(String, u64, u64)> =
        vec![("lobby".into(), 2, 16), ("quick?next=4".into(), 1, 4)];
    let deadline = std::time::Instant::now() + WAIT;
    let listed = loop {
        let (status, rooms) = http(&server, "GET", "/api/rooms").await;
        assert_eq!(status, 200);
        let rooms: serde_json::Value = serde_json::from_str(&rooms).unwrap();
        let listed: Vec<(String, u64, u64)> = rooms
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert!(r["age_secs"].is_u64());
                (
                    r["id"].as_str().unwrap().to_owned(),
                    r["players"].as_u64().unwrap(),
                    r["capacity"].as_u64().unwrap(),
                )
            })
            .collect();
        if listed == expected || std::time::Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listed, expected);
    let (_, head, ice) = http_with(&server, "GET", "/api/ice", "").await;
    assert_eq!(ice, r#"{"iceServers":[{"urls":["stun:127.0.0.1:3478"]}]}"#);
    assert!(head.contains("cache-control: no-store"), "{head}");
    let (_, metrics) = http(&server, "GET", "/metrics").await;
    assert!(metrics.contains("volley_peers_connected 4"), "{metrics}");
    assert!(metrics.contains("volley_rooms 3"), "{metrics}");
    let (status, index) = http(&server, "GET", "/").await;
    assert_eq!(status, 200);
    assert!(index.contains("volley-server"));
    assert_eq!(http(&server, "GET", "/nothing/here").await.0, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn web_dir_is_served_to_browsers_while_upgrades_still_signal() {
    let dir = std::env::temp_dir().join(format!("volley-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>lobby page</h1>").unwrap();
    std::fs::create_dir_all(dir.join("game")).unwrap();
    std::fs::write(dir.join("game/index.html"), "<h1>the game</h1>").unwrap();
    std::fs::write(dir.join("game/game_bg.wasm"), b"\0asm raw").unwrap();
    std::fs::write(dir.join("game/game_bg.wasm.gz"), b"packed").unwrap();
    // A content-hashed bundle file, precompressed both ways.
    let hashed = "game/game-0123456789abcdef_bg.wasm";
    std::fs::write(dir.join(hashed), b"\0asm raw").unwrap();
    std::fs::write(dir.join(format!("{hashed}.gz")), b"gzipped").unwrap();
    std::fs::write(dir.join(format!("{hashed}.br")), b"brotli").unwrap();
    let server = start(ServerConfig {
        web_dir: Some(dir.clone()),
        ..ServerConfig::default()
    })
    .await;
    assert_eq!(
        http(&server, "GET", "/").await,
        (200, "<h1>lobby page</h1>".into())
    );
    // A game's page, whatever the query; its files beside it.
    assert_eq!(
        http(&server, "GET", "/play/game?room=abc&players=2").await,
        (200, "<h1>the game</h1>".into())
    );
    let (status, head, body) = http_with(
        &server,
        "GET",
        "/play/game/game_bg.wasm",
        "Accept-Encoding: gzip\r\n",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "packed"));
    assert!(head.contains("content-type: application/wasm"), "{head}");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let (_, head, body) = http_with(&server, "GET", "/play/game/game_bg.wasm", "").await;
    assert_eq!(body, "\0asm raw");
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(head.contains("cache-control: no-cache"), "{head}");
    // Brotli when the browser takes it; a hashed file is cached for good.
    let (status, head, body) = http_with(
        &server,
        "GET",
        "/play/game/game-0123456789abcdef_bg.wasm",
        "Accept-Encoding: gzip, deflate, br\r\n",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "brotli"));
    assert!(head.contains("content-encoding: br"), "{head}");
    assert!(
        head.contains("cache-control: public, max-age=31536000, immutable"),
        "{head}"
    );
    let (_, head, _) = http_with(&server, "GET", "/play/game?room=x", "").await;
    assert!(head.contains("cache-control: no-cache"), "{head}");
    assert_eq!(http(&server, "GET", "/play/nothing").await.0, 404);
    let (_ws, _) = join(&server, "").await;
    server.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn tickets_are_checked_before_the_upgrade() {
    let server = start(ServerConfig {
        ticket_secret: Some("s3cret".into()),
        ..ServerConfig::default()
    })
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = volley_server::ticket::mint(b"s3cret", "vip", "alice", now + 60);
    let expired = volley_server::ticket::mint(b"s3cret", "vip", "alice", now - 1);
    let forged = volley_server::ticket::mint(b"guess", "vip", "alice", now + 60);
    let other_room = volley_server::ticket::mint(b"s3cret", "other", "alice", now + 60);
    for (query, reason) in [
        (String::new(), "a ticket is required (?ticket=...)"),
        (format!("?ticket={expired}"), "ticket expired"),
        (
            format!("?ticket={forged}"),
            "ticket signature invalid (forged, or for another room)",
        ),
        (
            format!("?ticket={other_room}"),
            "ticket signature invalid (forged, or for another room)",
        ),
        ("?ticket=garbage".into(), "malformed ticket"),
    ] {
        let url = format!("ws://{}/vip{query}", server.addr());
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401);
                let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
                assert_eq!(body.trim_end(), reason);
            }
            other => panic!("expected 401, got {:?}", other.map(|_| ())),
        }
    }
    let (_ws, _) = join(&server, &format!("vip?ticket={good}")).await;
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_peers_with_a_reason() {
    let server = start(ServerConfig::default()).await;
    let (mut ws, _) = join(&server, "bye").await;
    let stopping = tokio::spawn(server.shutdown());
    assert_eq!(closed(&mut ws).await, (1001, "server shutting down".into()));
    stopping.await.unwrap();
}

#[tokio::test]
async fn ping_floods_count_against_the_rate_limit() {
    let server = start(ServerConfig {
        rate_per_second: 10,
        rate_burst: 20,
        ..ServerConfig::default()
    })
    .await;
    let (mut ws, _) = join(&server, "pings").await;
    for _ in 0..50 {
        if ws.send(Message::Ping(vec![1].into())).await.is_err() {
            break;
        }
    }
    assert_eq!(
        closed(&mut ws).await,
        (1008, "rate limit exceeded (10 messages/s, burst 20)".into())
    );
    server.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_cap_get_503() {
    let server = start(ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    })
    .await;
    let (_a, _) = join(&server, "cap").await;
    let (_b, _) = join(&server, "cap").await;
    assert_eq!(
        http(&server, "GET", "/health").await,
        (503, "too many connections\n".into())
    );
    let (_, metrics) = {
        drop(_a);
        // The slot frees once the server has seen the close.
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let response = http(&server, "GET", "/metrics").await;
            if response.0 == 200 || std::time::Instant::now() > deadline {
                break response;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert!(
        metrics.contains("volley_refusals_total{reason=\"too_many_connections\"} 1"),
        "{metrics}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_match_broken_while_connecting_takes_a_newcomer() {
    let server = start(ServerConfig::default()).await;
    let (mut a, _) = join(&server, "duo?next=2").await;
    let (b, b_id) = join(&server, "duo?next=2").await;
    assert_eq!(event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    // b drops out within the grace period: a is told, and the seat reopens.
    drop(b);
    assert_eq!(event(&mut a).await, JsonPeerEvent::PeerLeft(b_id));
    let (_c, c_id) = join(&server, "duo?next=2").await;
    assert_eq!(event(&mut a).await, JsonPeerEvent::NewPeer(c_id));
    let text = http(&server, "GET", "/metrics").await.1;
    assert!(text.contains("volley_matches_formed_total 2"), "{text}");
    server.shutdown().await;
}
