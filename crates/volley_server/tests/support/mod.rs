//! Helpers shared by the socket-level tests: a server on 127.0.0.1 port 0,
//! WebSocket and raw HTTP clients (optionally from another loopback source
//! address, 127.0.0.2 and up, to act as another client), and bounded waits.
#![allow(dead_code)] // each test file uses a subset

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use matchbox_protocol::{JsonPeerEvent, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use volley_server::{Server, ServerConfig, ServerHandle};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const WAIT: Duration = Duration::from_secs(5);

pub async fn start(config: ServerConfig) -> ServerHandle {
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..config
    };
    Server::bind(config).await.unwrap().spawn()
}

pub async fn connect(server: &ServerHandle, path: &str) -> Ws {
    let url = format!("ws://{}/{path}", server.addr());
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("websocket handshake");
    ws
}

/// The next message, which must be a matchbox event.
pub async fn event<S>(ws: &mut WebSocketStream<S>) -> JsonPeerEvent
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    text(ws).await.parse().expect("a matchbox PeerEvent")
}

/// The next text message (pings and pongs skipped).
pub async fn text<S>(ws: &mut WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("an event in time")
            .expect("socket open")
            .expect("no socket error");
        match message {
            Message::Text(text) => return text.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

/// Leaves with a goodbye (a close frame): the server frees the seat at
/// once (a socket dropped without one keeps its seat for a while).
pub async fn leave(mut ws: Ws) {
    let _ = tokio::time::timeout(WAIT, ws.close(None)).await;
}

/// Joins and returns the assigned id.
pub async fn join(server: &ServerHandle, path: &str) -> (Ws, PeerId) {
    let mut ws = connect(server, path).await;
    match event(&mut ws).await {
        JsonPeerEvent::IdAssigned(id) => (ws, id),
        other => panic!("expected IdAssigned, got {other:?}"),
    }
}

/// Reads until the server's close frame; returns its code and reason.
pub async fn closed(ws: &mut Ws) -> (u16, String) {
    closed_within(ws, WAIT).await
}

/// [`closed`] within `wait` in all (pings and events before the close
/// frame are skipped, and listed if it never comes).
pub async fn closed_within(ws: &mut Ws, wait: Duration) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + wait;
    let mut skipped = Vec::new();
    loop {
        let Ok(message) = tokio::time::timeout_at(deadline, ws.next()).await else {
            panic!("not closed within {wait:?}; heard meanwhile: {skipped:?}");
        };
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) | None => panic!("closed without a reason"),
            Some(Ok(other)) => skipped.push(other),
            Some(Err(e)) => panic!("socket error before the close frame: {e}"),
        }
    }
}

/// The close frame on the read half of a split socket (whose write half may
/// still be busy sending).
pub async fn close_frame(
    stream: &mut (
             impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
             + Unpin
         ),
) -> tokio_tungstenite::tungstenite::protocol::CloseFrame {
    loop {
        match tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.expect("a close reason"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

pub async fn signal(ws: &mut Ws, to: PeerId, data: &str) {
    let text = format!(r#"{{"Signal":{{"receiver":"{}","data":{data}}}}}"#, to.0);
    ws.send(Message::text(text)).await.unwrap();
}

/// A raw HTTP/1.1 request; returns (status, body).
pub async fn http(server: &ServerHandle, method: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http_with(server, method, path, "").await;
    (status, body)
}

/// A request with extra header lines; returns status, head and body.
pub async fn http_with(
    server: &ServerHandle,
    method: &str,
    path: &str,
    headers: &str,
) -> (u16, String, String) {
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(server.addr()))
        .await
        .expect("tcp connect in time")
        .unwrap();
    request(stream, method, path, headers).await
}

/// A pair in a well-behaved room that must keep working throughout.
pub struct Calm {
    pub a: Ws,
    pub b: Ws,
    pub b_id: PeerId,
    pub rounds: usize,
}

impl Calm {
    pub async fn new(server: &ServerHandle) -> Self {
        let (mut a, _) = join(server, "calm").await;
        let (b, b_id) = join(server, "calm").await;
        assert_eq!(event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
        Calm {
            a,
            b,
            b_id,
            rounds: 0,
        }
    }

    pub async fn still_works(&mut self) {
        self.rounds += 1;
        signal(&mut self.a, self.b_id, &self.rounds.to_string()).await;
        match event(&mut self.b).await {
            JsonPeerEvent::Signal { data, .. } => assert_eq!(data, serde_json::json!(self.rounds)),
            other => panic!("calm room got {other:?}"),
        }
    }
}

/// A TCP connection to the server from `127.0.0.<last>`.
pub async fn tcp_from(server: &ServerHandle, last: u8) -> TcpStream {
    tcp_from_with(server, last, None).await
}

/// [`tcp_from`], with a receive buffer of `recv_buffer` bytes if given.
pub async fn tcp_from_with(server: &ServerHandle, last: u8, recv_buffer: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    socket
        .bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
            0,
        ))
        .unwrap();
    tokio::time::timeout(WAIT, socket.connect(server.addr()))
        .await
        .expect("tcp connect in time")
        .unwrap()
}

/// A WebSocket handshake from `127.0.0.<last>`: the socket, or the refusal.
pub async fn try_connect_from(
    server: &ServerHandle,
    last: u8,
    path: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let stream = tcp_from(server, last).await;
    let url = format!("ws://{}/{path}", server.addr());
    tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)),
    )
    .await
    .expect("handshake in time")
    .map(|(ws, _)| ws)
}

/// Joins from `127.0.0.<last>` and returns the assigned id.
pub async fn join_from(server: &ServerHandle, last: u8, path: &str) -> (Ws, PeerId) {
    let mut ws = try_connect_from(server, last, path)
        .await
        .expect("websocket handshake");
    match event(&mut ws).await {
        JsonPeerEvent::IdAssigned(id) => (ws, id),
        other => panic!("expected IdAssigned, got {other:?}"),
    }
}

/// The HTTP status of a refused WebSocket handshake, and its body.
pub fn refused_status(result: Result<Ws, tokio_tungstenite::tungstenite::Error>) -> (u16, String) {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => (
            response.status().as_u16(),
            String::from_utf8_lossy(&response.body().clone().unwrap_or_default()).into_owned(),
        ),
        other => panic!("expected an HTTP refusal, got {:?}", other.map(|_| ())),
    }
}

/// A raw HTTP/1.1 request from `127.0.0.<last>` with extra header lines;
/// returns status, head (lower case) and body.
pub async fn http_from(
    server: &ServerHandle,
    last: u8,
    method: &str,
    path: &str,
    headers: &str,
) -> (u16, String, String) {
    let stream = tcp_from(server, last).await;
    request(stream, method, path, headers).await
}

async fn request(
    mut stream: TcpStream,
    method: &str,
    path: &str,
    headers: &str,
) -> (u16, String, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}Content-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_ascii_lowercase(), b.to_owned()))
        .unwrap_or_default();
    (status, head, body)
}

/// `/metrics`, asked from 127.0.0.250 (so that the limits under test, on
/// other addresses, do not refuse it).
pub async fn metrics(server: &ServerHandle) -> String {
    http_from(server, 250, "GET", "/metrics", "").await.2
}

/// Polls `/metrics` until it contains `line` (bounded); returns the last text.
pub async fn metrics_eventually(server: &ServerHandle, line: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = metrics(server).await;
        if text.contains(line) || std::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `volley_refusals_total{reason="<reason>"}` in a `/metrics` text (0 when absent).
pub fn refusals(text: &str, reason: &str) -> u64 {
    let prefix = format!("volley_refusals_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A metric's value in a `/metrics` text (0 when absent).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Polls a node's `/metrics` until `name` reads `value` (bounded).
pub async fn metrics_until(node: &ServerHandle, name: &str, value: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics(node).await;
        if metric(&text, name) == value {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never read {value}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
