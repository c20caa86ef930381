//! Spectators over real sockets: a full `?next=2` group is listed with
//! what to watch it by, a spectator joins by that, its feeder offers to it
//! and the two signal each other (and nobody else); it is fed anew when its
//! feeder leaves and closed when the match ends; a group nobody plays in
//! has nothing to watch.

mod support;

use matchbox_protocol::JsonPeerEvent;
use support::*;
use volley_server::ServerConfig;

/// `GET /api/rooms`' `watch` for the room listed as `id`, once it has one
/// (the list is a snapshot republished every 250 ms).
async fn watch_link(server: &volley_server::ServerHandle, id: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, rooms) = http(server, "GET", "/api/rooms").await;
        let rooms: serde_json::Value = serde_json::from_str(&rooms).unwrap();
        let link = rooms.as_array().unwrap().iter().find_map(|r| {
            let watch = r["watch"].as_str().filter(|_| r["id"] == id)?;
            Some(watch.to_owned())
        });
        if let Some(link) = link {
            return link;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never watchable: {rooms}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_spectator_watches_a_full_group_through_one_player() {
    let server = start(ServerConfig::default()).await;
    let (mut a, a_id) = join(&server, "duel?next=2").await;
    let (mut b, b_id) = join(&server, "duel?next=2").await;
    assert_eq!(event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    let link = watch_link(&server, "duel?next=2").await;
    assert_eq!(link, format!("duel?next=2&spectate={a_id}"));

    // The spectator learns its id; a (first in join order) is its feeder,
    // told as of any new peer, and offers.
    let (mut s, s_id) = join(&server, &link).await;
    assert_eq!(event(&mut a).await, JsonPeerEvent::NewPeer(s_id));
    signal(&mut a, s_id, r#"{"Offer":"sdp"}"#).await;
    assert_eq!(
        event(&mut s).await,
        JsonPeerEvent::Signal {
            sender: a_id,
            data: serde_json::json!({"Offer": "sdp"})
        }
    );
    signal(&mut s, a_id, r#"{"Answer":"sdp"}"#).await;
    assert_eq!(
        event(&mut a).await,
        JsonPeerEvent::Signal {
            sender: s_id,
            data: serde_json::json!({"Answer": "sdp"})
        }
    );
    // Not to the other player: b never hears of the spectator at all.
    signal(&mut s, b_id, r#""sneaky""#).await;
    let text = metrics_eventually(&server, "volley_signals_dropped_total 1").await;
    assert!(text.contains("volley_signals_dropped_total 1"), "{text}");
    assert_eq!(metric(&text, "volley_spectators"), 1.0);

    // a leaves: the spectator hears its feeder went, b takes it over.
    leave(a).await;
    assert_eq!(event(&mut b).await, JsonPeerEvent::PeerLeft(a_id));
    assert_eq!(event(&mut s).await, JsonPeerEvent::PeerLeft(a_id));
    assert_eq!(event(&mut b).await, JsonPeerEvent::NewPeer(s_id));
    // b leaves too: the match is over.
    leave(b).await;
    assert_eq!(closed(&mut s).await, (4012, "the match is over".into()));
    metrics_until(&server, "volley_spectators", 0.0).await;
    server.shutdown().await;
}

#[tokio::test]
async fn nothing_to_watch_is_refused_with_a_reason() {
    let server = start(ServerConfig::default()).await;
    let unknown = "00000000-0000-0000-0000-000000000001";
    let mut ws = connect(&server, &format!("duel?next=2&spectate={unknown}")).await;
    assert_eq!(
        closed(&mut ws).await,
        (4010, "nothing to watch here: no match in play".into())
    );
    // A group still filling is not in play either; nor is a malformed id.
    let (_a, a_id) = join(&server, "duel?next=2").await;
    let mut ws = connect(&server, &format!("duel?next=2&spectate={a_id}")).await;
    assert_eq!(closed(&mut ws).await.0, 4010);
    let mut ws = connect(&server, "duel?next=2&spectate=nope").await;
    assert_eq!(closed(&mut ws).await.0, 4009);
    let text = metrics_eventually(
        &server,
        "volley_refusals_total{reason=\"invalid_spectate\"} 1",
    )
    .await;
    assert_eq!(refusals(&text, "nothing_to_watch"), 2);
    assert_eq!(refusals(&text, "invalid_spectate"), 1);
    server.shutdown().await;
}
