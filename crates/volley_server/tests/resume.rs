//! Seats that outlive connections: a peer that asks (`?resume`) gets a
//! resume token; lost without a goodbye, its seat is held and it comes
//! back with the token to the same id and room, its room-mates told
//! nothing (so is a browser page that goes away, close code 1001); a
//! restarted server given the same secret takes the token too;
//! forged tokens are refused.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use matchbox_protocol::{JsonPeerEvent, PeerId};
use support::*;
use volley_server::lobby::LobbyConfig;
use volley_server::{Server, ServerConfig};

/// What volley-server says to a client that takes tokens.
#[derive(Debug, PartialEq)]
enum Said {
    Event(JsonPeerEvent),
    Token(String),
}

async fn said(ws: &mut Ws) -> Said {
    let text = text(ws).await;
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    match value.get("ResumeToken").and_then(|t| t.as_str()) {
        Some(token) => Said::Token(token.to_owned()),
        None => Said::Event(text.parse().expect("a matchbox PeerEvent")),
    }
}

/// Joins `path` (which asks for tokens): the id and the token.
async fn join_resumable(server: &volley_server::ServerHandle, path: &str) -> (Ws, PeerId, String) {
    let mut ws = connect(server, path).await;
    let Said::Event(JsonPeerEvent::IdAssigned(id)) = said(&mut ws).await else {
        panic!("no id first")
    };
    let Said::Token(token) = said(&mut ws).await else {
        panic!("no token after the id")
    };
    (ws, id, token)
}

/// Nothing arrives for a while.
async fn quiet(ws: &mut Ws) {
    let heard = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
    assert!(heard.is_err(), "expected nothing, heard {heard:?}");
}

fn config(hold: Duration) -> ServerConfig {
    ServerConfig {
        resume_secret: Some("resume-s3cret".into()),
        lobby: LobbyConfig {
            seat_hold: hold,
            ..LobbyConfig::default()
        },
        ..ServerConfig::default()
    }
}

#[tokio::test]
async fn a_lost_peer_keeps_its_seat_and_comes_back_with_its_token() {
    let server = start(config(Duration::from_secs(2))).await;
    let (mut a, id_a, _) = join_resumable(&server, "arena?resume").await;
    let (b, id_b, token_b) = join_resumable(&server, "arena?resume").await;
    assert_eq!(
        said(&mut a).await,
        Said::Event(JsonPeerEvent::NewPeer(id_b))
    );
    // Clients that do not ask get no token: matchbox's protocol only.
    let (mut plain, id_plain) = join(&server, "arena").await;
    assert_eq!(
        said(&mut a).await,
        Said::Event(JsonPeerEvent::NewPeer(id_plain))
    );
    quiet(&mut plain).await;
    // b is lost without a goodbye: a hears nothing, the seat is held.
    drop(b);
    metrics_until(&server, "volley_seats_held", 1.0).await;
    quiet(&mut a).await;
    // Back with its token: the same id, told of everyone; a hears nothing.
    let mut b = connect(&server, &format!("arena?resume={token_b}")).await;
    assert_eq!(
        said(&mut b).await,
        Said::Event(JsonPeerEvent::IdAssigned(id_b))
    );
    let mut told = vec![];
    for _ in 0..2 {
        match said(&mut b).await {
            Said::Event(JsonPeerEvent::NewPeer(p)) => told.push(p),
            other => panic!("expected NewPeer, got {other:?}"),
        }
    }
    told.sort();
    let mut expected = vec![id_a, id_plain];
    expected.sort();
    assert_eq!(told, expected);
    assert!(matches!(said(&mut b).await, Said::Token(_)));
    quiet(&mut a).await;
    signal(&mut b, id_a, r#"{"from":"b"}"#).await;
    assert!(matches!(
        said(&mut a).await,
        Said::Event(JsonPeerEvent::Signal { sender, .. }) if sender == id_b
    ));
    let text = metrics(&server).await;
    assert_eq!(metric(&text, "volley_resumes_total"), 1.0, "{text}");
    assert_eq!(metric(&text, "volley_seats_held"), 0.0, "{text}");
    // Back again while the old connection is still open: the old one is
    // closed as replaced, a still hears nothing.
    let mut again = connect(&server, &format!("arena?resume={token_b}")).await;
    assert_eq!(
        said(&mut again).await,
        Said::Event(JsonPeerEvent::IdAssigned(id_b))
    );
    assert_eq!(closed(&mut b).await.0, 4008);
    quiet(&mut a).await;
    // Lost for good: a hears it left once the hold ends.
    drop(again);
    assert_eq!(
        said(&mut a).await,
        Said::Event(JsonPeerEvent::PeerLeft(id_b))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn forged_and_misplaced_tokens_are_refused() {
    let server = start(config(Duration::from_secs(2))).await;
    let (_a, _, token) = join_resumable(&server, "arena?next=2&resume").await;
    let mut forged = token.clone().into_bytes();
    // A signature byte changed (not the last character, whose spare bits
    // would make it malformed instead).
    let at = forged.len() - 5;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for (path, label) in [
        (format!("arena?next=2&resume={forged}"), "resume_forged"),
        (format!("other?next=2&resume={token}"), "resume_wrong_room"),
        (format!("arena?resume={token}"), "resume_wrong_room"),
        ("arena?next=2&resume=1.2".to_string(), "resume_malformed"),
    ] {
        let url = format!("ws://{}/{path}", server.addr());
        let refused = tokio_tungstenite::connect_async(url).await;
        let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = refused else {
            panic!("{path}: not refused")
        };
        assert_eq!(response.status().as_u16(), 401, "{path}");
        let text = metrics(&server).await;
        assert!(refusals(&text, label) >= 1, "{label}: {text}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_restarted_server_gives_a_match_its_seats_back() {
    let first = start(config(Duration::from_secs(15))).await;
    let addr = first.addr();
    let (mut a, id_a, _) = join_resumable(&first, "duo?next=2&resume").await;
    // b fills the group: its token, and a's second one, are for a full group.
    let (_b, id_b, token_b) = join_resumable(&first, "duo?next=2&resume").await;
    assert_eq!(
        said(&mut a).await,
        Said::Event(JsonPeerEvent::NewPeer(id_b))
    );
    let Said::Token(token_a) = said(&mut a).await else {
        panic!("no token for the full group")
    };
    first.shutdown().await;
    let second = Server::bind(ServerConfig {
        addr,
        ..config(Duration::from_secs(15))
    })
    .await
    .unwrap()
    .spawn();
    let mut a = connect(&second, &format!("duo?next=2&resume={token_a}")).await;
    assert_eq!(
        said(&mut a).await,
        Said::Event(JsonPeerEvent::IdAssigned(id_a))
    );
    assert!(matches!(said(&mut a).await, Said::Token(_)));
    // A newcomer does not take b's seat: the group reopened full.
    let (mut c, id_c) = join(&second, "duo?next=2").await;
    let mut b = connect(&second, &format!("duo?next=2&resume={token_b}")).await;
    assert_eq!(
        said(&mut b).await,
        Said::Event(JsonPeerEvent::IdAssigned(id_b))
    );
    assert_eq!(
        said(&mut b).await,
        Said::Event(JsonPeerEvent::NewPeer(id_a))
    );
    assert!(matches!(said(&mut b).await, Said::Token(_)));
    quiet(&mut a).await;
    quiet(&mut c).await;
    let _ = id_c;
    second.shutdown().await;
}

#[tokio::test]
async fn a_page_going_away_keeps_its_seat_a_goodbye_does_not() {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let server = start(config(Duration::from_secs(30))).await;
    let (mut a, _, _) = join_resumable(&server, "hall?resume").await;
    let (mut b, id_b, token_b) = join_resumable(&server, "hall?resume").await;
    assert_eq!(
        said(&mut a).await,
        Said::Event(JsonPeerEvent::NewPeer(id_b))
    );
    // A browser closes with 1001 when its tab reloads: held, nobody told.
    let away = CloseFrame {
        code: CloseCode::Away,
        reason: "".into(),
    };
    b.close(Some(away)).await.expect("close sent");
    metrics_until(&server, "volley_seats_held", 1.0).await;
    quiet(&mut a).await;
    let mut back = connect(&server, &format!("hall?resume={token_b}")).await;
    assert_eq!(
        said(&mut back).await,
        Said::Event(JsonPeerEvent::IdAssigned(id_b))
    );
    // Any other close is a goodbye: the room-mates hear it at once, well
    // within the 30 s hold.
    let (mut c, id_c, _) = join_resumable(&server, "hall?resume").await;
    assert_eq!(
        said(&mut a).await,
        Said::Event(JsonPeerEvent::NewPeer(id_c))
    );
    c.close(None).await.expect("close sent");
    let left = tokio::time::timeout(Duration::from_secs(5), said(&mut a)).await;
    assert_eq!(
        left.expect("told within 5 s"),
        Said::Event(JsonPeerEvent::PeerLeft(id_c))
    );
    server.shutdown().await;
}
