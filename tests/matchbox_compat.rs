//! An unmodified `matchbox_socket` client works against `volley-server`:
//! two peers meet in a room, reach `PeerState::Connected` over real WebRTC on
//! loopback, and exchange a message.

use std::time::Duration;

use matchbox_socket::{MessageLoopFuture, PeerState, RtcIceServerConfig, WebRtcSocket};
use volley::server::{Server, ServerConfig};

struct Peer {
    socket: WebRtcSocket,
    message_loop: MessageLoopFuture,
    greeting: &'static str,
    connected: bool,
    received: Option<(String, String)>,
}

impl Peer {
    fn new(url: &str, greeting: &'static str) -> Self {
        let (socket, message_loop) = WebRtcSocket::builder(url)
            // Host candidates only: loopback needs no STUN, and none is reachable here.
            .ice_server(RtcIceServerConfig {
                urls: vec![],
                username: None,
                credential: None,
            })
            .add_reliable_channel()
            .build();
        Peer {
            socket,
            message_loop,
            greeting,
            connected: false,
            received: None,
        }
    }

    /// Sends the greeting once connected; records the first message received.
    fn update(&mut self) {
        for (peer, state) in self.socket.update_peers() {
            if state == PeerState::Connected {
                self.connected = true;
                self.socket
                    .channel_mut(0)
                    .send(self.greeting.as_bytes().into(), peer);
            }
        }
        for (from, packet) in self.socket.channel_mut(0).receive() {
            self.received = Some((
                from.to_string(),
                String::from_utf8_lossy(&packet).into_owned(),
            ));
        }
    }

    fn id(&mut self) -> String {
        self.socket.id().expect("id assigned").to_string()
    }
}

#[test]
fn two_matchbox_peers_connect_over_webrtc_and_exchange_a_message() {
    if !volley_testkit::netns::isolate(
        "two_matchbox_peers_connect_over_webrtc_and_exchange_a_message",
    ) {
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(two_peers());
}

async fn two_peers() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    let server = Server::bind(config).await.unwrap().spawn();
    let url = format!("ws://{}/webrtc_room", server.addr());
    let mut a = Peer::new(&url, "hello from a");
    let mut b = Peer::new(&url, "hello from b");
    // Both peers run until both have received: a peer that left early would
    // close the connection before its own greeting was flushed.
    let both = async {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        while a.received.is_none() || b.received.is_none() {
            tokio::select! {
                result = &mut a.message_loop => panic!("a's message loop ended: {result:?}"),
                result = &mut b.message_loop => panic!("b's message loop ended: {result:?}"),
                _ = tick.tick() => {}
            }
            a.update();
            b.update();
        }
    };
    tokio::time::timeout(Duration::from_secs(30), both)
        .await
        .expect("peers connect and exchange greetings within 30 s");
    assert!(a.connected && b.connected);
    let (a_id, b_id) = (a.id(), b.id());
    assert_eq!(a.received, Some((b_id, "hello from b".to_string())));
    assert_eq!(b.received, Some((a_id, "hello from a".to_string())));
    server.shutdown().await;
}
