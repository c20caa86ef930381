//! The I/O around the [`Lobby`]: an HTTP/1 accept loop (hyper), routes
//! (axum), one task per WebSocket peer, and one actor task that owns the lobby.
//!
//! Why not `matchbox_signaling`'s builder: it keeps room state behind shared
//! mutexes, gives each peer an unbounded queue and a 128 KiB read buffer, and
//! exposes no hook for per-connection limits, close reasons or a handshake
//! timeout. Here every queue is bounded and the lobby has a single owner.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::SinkExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rand::Rng;
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::close::CloseReason;
use crate::ice::{IceConfig, ice_servers};
use crate::limits::TokenBucket;
use crate::lobby::{
    Command, Event, Lobby, LobbyConfig, PeerId, PrivateRoomError, RoomInfo, RoomRequest,
};
use crate::metrics::Metrics;
use crate::ticket;
use crate::wire::{self, Request as PeerRequest};

/// Everything the server can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Room sizes and private rooms.
    pub lobby: LobbyConfig,
    /// Largest WebSocket message accepted, in bytes.
    pub max_message_size: usize,
    /// Sustained messages per second per connection.
    pub rate_per_second: u32,
    /// Burst of messages per connection.
    pub rate_burst: u32,
    /// Open TCP connections at most (HTTP and WebSocket together).
    pub max_connections: usize,
    /// Time for a client to send its HTTP request headers.
    pub handshake_timeout: Duration,
    /// A peer that sends nothing (not even a pong) for this long is closed.
    pub idle_timeout: Duration,
    /// Messages queued for one peer before it counts as too slow.
    pub outbound_queue: usize,
    /// Serve this directory to browsers.
    pub web_dir: Option<PathBuf>,
    /// STUN/TURN servers for `/api/ice`.
    pub ice: IceConfig,
    /// When set, every signaling connection needs a valid `?ticket=`.
    pub ticket_secret: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 3536)),
            lobby: LobbyConfig::default(),
            max_message_size: 64 * 1024,
            rate_per_second: 50,
            rate_burst: 200,
            max_connections: 16_384,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            outbound_queue: 256,
            web_dir: None,
            ice: IceConfig::default(),
            ticket_secret: None,
        }
    }
}

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Other socket errors.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What a peer's connection task receives from the actor.
#[derive(Debug)]
enum Outbound {
    Text(Utf8Bytes),
    Close(CloseReason),
}

/// What the actor receives.
enum ToActor {
    Join {
        peer: PeerId,
        room: RoomRequest,
        tx: mpsc::Sender<Outbound>,
        at: Instant,
    },
    Signal {
        from: PeerId,
        to: PeerId,
        data: String,
    },
    Left {
        peer: PeerId,
    },
    ListRooms {
        reply: oneshot::Sender<Vec<RoomInfo>>,
    },
    ReservePrivate {
        code: String,
        reply: oneshot::Sender<Result<(), PrivateRoomError>>,
    },
    Shutdown,
}

struct Shared {
    config: ServerConfig,
    metrics: Arc<Metrics>,
    actor: mpsc::Sender<ToActor>,
    /// Open HTTP connections not (yet) upgraded.
    connections: AtomicUsize,
    /// Open signaling (WebSocket) connections.
    peers: AtomicUsize,
}

/// Decrements a counter when dropped, so every exit path is counted.
struct CountGuard<'a>(&'a AtomicUsize);

impl<'a> CountGuard<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        CountGuard(counter)
    }

    /// For a count already taken (by the accept loop, before spawning).
    fn adopt(counter: &'a AtomicUsize) -> Self {
        CountGuard(counter)
    }
}

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A bound, not yet running server.
///
/// ```no_run
/// # async fn example() -> Result<(), volley_server::ServerError> {
/// use volley_server::{Server, ServerConfig};
/// let config = ServerConfig { addr: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
/// let server = Server::bind(config).await?;
/// println!("signaling on ws://{}/<room>", server.local_addr());
/// let handle = server.spawn();
/// // ... run clients against handle.addr() ...
/// handle.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    actor_rx: mpsc::Receiver<ToActor>,
}

impl Server {
    /// Binds the listening socket.
    pub async fn bind(config: ServerConfig) -> Result<Self, ServerError> {
        let listener =
            TcpListener::bind(config.addr)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.addr,
                    source,
                })?;
        let (actor, actor_rx) = mpsc::channel(4096);
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                config,
                metrics: Arc::new(Metrics::new()),
                actor,
                connections: AtomicUsize::new(0),
                peers: AtomicUsize::new(0),
            }),
            actor_rx,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.addr)
    }

    /// Serves until `shutdown` completes, then closes every peer with a
    /// close frame (waiting at most two seconds for them).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            listener,
            shared,
            actor_rx,
        } = self;
        let lobby = Lobby::new(shared.config.lobby.clone());
        tokio::spawn(actor(lobby, actor_rx, shared.metrics.clone()));
        let router = router(shared.clone());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => accept(stream, &shared, &router),
                    Err(e) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        info!(
            "shutting down: closing {} peers",
            shared.peers.load(Ordering::Relaxed)
        );
        let _ = shared.actor.send(ToActor::Shutdown).await;
        let deadline = Instant::now() + Duration::from_secs(2);
        while shared.peers.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Runs the server on the current tokio runtime until the handle shuts it down.
    pub fn spawn(self) -> ServerHandle {
        let addr = self.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async {
            let _ = stopped.await;
        }));
        ServerHandle { addr, stop, task }
    }
}

/// A server running in the background (see [`Server::spawn`]).
pub struct ServerHandle {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl ServerHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every peer and waits for the server to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn accept(stream: TcpStream, shared: &Arc<Shared>, router: &Router) {
    // An upgraded connection leaves `connections` (hyper is done with it) and
    // is counted in `peers` instead.
    let open = shared.connections.load(Ordering::Relaxed) + shared.peers.load(Ordering::Relaxed);
    if open >= shared.config.max_connections {
        shared.metrics.refused("too_many_connections");
        debug!(
            "refused a connection: {} open",
            shared.config.max_connections
        );
        tokio::spawn(refuse(stream));
        return;
    }
    let _ = stream.set_nodelay(true);
    // Counted here, not in the task: the loop may accept many before any task runs.
    shared.connections.fetch_add(1, Ordering::Relaxed);
    let shared = shared.clone();
    let service = TowerToHyperService::new(router.clone());
    tokio::spawn(async move {
        let _open = CountGuard::adopt(&shared.connections);
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(shared.config.handshake_timeout)
            .max_buf_size(16 * 1024);
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        if let Err(e) = connection.await {
            if e.is_timeout() {
                shared.metrics.refused("handshake_timeout");
                info!("closed a connection: no complete request within the handshake timeout");
            } else {
                debug!("http connection ended: {e}");
            }
        }
    });
}

/// Answers 503 and closes without a reset: the request is read (at most
/// 16 KiB, at most one second) so that the close does not discard the answer.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 21\r\nconnection: close\r\n\r\ntoo many connections\n")
            .await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while total < 16 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => total += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/metrics", get(metrics))
        .route("/api/rooms", get(list_rooms).post(create_room))
        .route("/api/ice", get(ice))
        .fallback(signaling_or_web)
        .layer(DefaultBodyLimit::max(4096))
        .with_state(shared)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
}

fn unavailable() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "server shutting down\n").into_response()
}

async fn list_rooms(State(shared): State<Arc<Shared>>) -> Response {
    let (reply, rooms) = oneshot::channel();
    if shared
        .actor
        .send(ToActor::ListRooms { reply })
        .await
        .is_err()
    {
        return unavailable();
    }
    match rooms.await {
        Ok(rooms) => axum::Json(rooms).into_response(),
        Err(_) => unavailable(),
    }
}

/// Room codes: 12 characters without look-alikes (about 59 bits).
fn room_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..12)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

async fn create_room(State(shared): State<Arc<Shared>>) -> Response {
    for _ in 0..3 {
        let code = room_code();
        let (reply, result) = oneshot::channel();
        let request = ToActor::ReservePrivate {
            code: code.clone(),
            reply,
        };
        if shared.actor.send(request).await.is_err() {
            return unavailable();
        }
        match result.await {
            Ok(Ok(())) => {
                return (
                    StatusCode::CREATED,
                    axum::Json(serde_json::json!({ "code": code })),
                )
                    .into_response();
            }
            Ok(Err(PrivateRoomError::CodeTaken)) => continue,
            Ok(Err(e @ PrivateRoomError::TooMany(_))) => {
                shared.metrics.refused("too_many_private_rooms");
                return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response();
            }
            Err(_) => return unavailable(),
        }
    }
    (StatusCode::SERVICE_UNAVAILABLE, "no free room code\n").into_response()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn ice(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    axum::Json(ice_servers(&shared.config.ice, unix_now()))
}

#[derive(Deserialize)]
struct SignalingQuery {
    next: Option<String>,
    ticket: Option<String>,
}

fn is_websocket_upgrade(request: &Request) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

async fn signaling_or_web(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    if is_websocket_upgrade(&request) {
        return signaling(shared, request).await;
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    match &shared.config.web_dir {
        Some(dir) => {
            let mut request = request;
            if let Some(path) = web_path(request.uri().path())
                && let Ok(uri) = path.parse()
            {
                *request.uri_mut() = uri;
            }
            let serve = tower_http::services::ServeDir::new(dir)
                .append_index_html_on_directories(true)
                .precompressed_gzip();
            match serve.oneshot(request).await {
                Ok(response) => response.map(Body::new),
                Err(never) => match never {},
            }
        }
        None if request.uri().path() == "/" => Html(
            "<!doctype html><title>volley-server</title><h1>volley-server</h1>\
             <p>Signaling at <code>ws://this-host/&lt;room&gt;</code>. \
             API: <a href=\"/api/rooms\">/api/rooms</a>, <a href=\"/api/ice\">/api/ice</a>, \
             <a href=\"/metrics\">/metrics</a>, <a href=\"/health\">/health</a>. \
             Start with <code>--web-dir</code> to serve games here.</p>",
        )
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Maps the game URLs onto the web directory's layout (`cargo xtask web`):
/// `/play/<game>` (any query) is `<game>/index.html`, `/play/<game>/<file>`
/// is `<game>/<file>`; other paths are served as they are.
fn web_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/play/")?;
    match rest.split_once('/') {
        None if !rest.is_empty() => Some(format!("/{rest}/index.html")),
        None => None,
        Some((game, file)) => Some(format!("/{game}/{file}")),
    }
}

async fn signaling(shared: Arc<Shared>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let query = match Query::<SignalingQuery>::try_from_uri(&parts.uri) {
        Ok(Query(query)) => query,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let name = parts.uri.path().trim_start_matches('/');
    if let Some(secret) = &shared.config.ticket_secret {
        let checked = match &query.ticket {
            None => Err(ticket::TicketError::Missing),
            Some(t) => ticket::verify(secret.as_bytes(), name, t, unix_now()),
        };
        if let Err(e) = checked {
            let label = match e {
                ticket::TicketError::Missing => "ticket_missing",
                ticket::TicketError::Malformed => "ticket_malformed",
                ticket::TicketError::Expired => "ticket_expired",
                ticket::TicketError::BadSignature => "ticket_forged",
            };
            shared.metrics.refused(label);
            info!("refused a connection to room {name:?}: {e}");
            return (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response();
        }
    }
    let room = RoomRequest::parse(
        name,
        query.next.as_deref(),
        shared.config.lobby.max_room_size,
    );
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let limit = shared.config.max_message_size;
    upgrade
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(limit.saturating_mul(4).max(64 * 1024))
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| peer(socket, shared, room))
}

/// One signaling peer, from upgrade to close.
async fn peer(mut socket: WebSocket, shared: Arc<Shared>, room: Result<RoomRequest, CloseReason>) {
    let _open = CountGuard::new(&shared.peers);
    shared.metrics.connections_total.increment(1);
    let room = match room {
        Ok(room) => room,
        Err(reason) => return close(socket, reason, &shared).await,
    };
    let peer = PeerId(Uuid::new_v4());
    let (tx, mut rx) = mpsc::channel(shared.config.outbound_queue);
    let join = ToActor::Join {
        peer,
        room,
        tx,
        at: Instant::now(),
    };
    if shared.actor.send(join).await.is_err() {
        return close(socket, CloseReason::ServerShutdown, &shared).await;
    }
    let reason = drive(&mut socket, &mut rx, peer, &shared).await;
    let _ = shared.actor.send(ToActor::Left { peer }).await;
    if let Some(reason) = reason {
        close(socket, reason, &shared).await;
    }
}

/// Pumps messages both ways until the connection ends; returns why the
/// server should close it, or `None` when the client went away.
async fn drive(
    socket: &mut WebSocket,
    rx: &mut mpsc::Receiver<Outbound>,
    peer: PeerId,
    shared: &Shared,
) -> Option<CloseReason> {
    let config = &shared.config;
    let idle = config.idle_timeout;
    // Clients that send their own keep-alives (matchbox sends one every 10 s)
    // are never pinged: matchbox_socket logs a warning for every ping frame.
    let check_every = idle / 4;
    let mut last_seen = Instant::now();
    let mut bucket = TokenBucket::new(config.rate_per_second, config.rate_burst, last_seen);
    let timer = tokio::time::sleep(check_every);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outbound::Text(text)) => {
                    if socket.send(Message::Text(text)).await.is_err() {
                        return None;
                    }
                }
                Some(Outbound::Close(reason)) => return Some(reason),
                // The actor dropped our queue: it was full.
                None => return Some(CloseReason::SlowConsumer),
            },
            incoming = socket.recv() => {
                let now = Instant::now();
                last_seen = now;
                let message = match incoming {
                    None => return None,
                    Some(Err(e)) => return read_error(e, config.max_message_size),
                    Some(Ok(message)) => message,
                };
                // Every frame counts, pings included: each one costs a pong.
                if !bucket.take(now) {
                    return Some(CloseReason::RateLimited {
                        per_second: config.rate_per_second,
                        burst: config.rate_burst,
                    });
                }
                match message {
                    Message::Close(_) => {
                        // Send the close reply tungstenite queued, bounded in time.
                        let _ = tokio::time::timeout(Duration::from_secs(1), socket.flush()).await;
                        return None;
                    }
                    Message::Binary(_) => return Some(CloseReason::BinaryFrame),
                    Message::Ping(_) | Message::Pong(_) => {}
                    Message::Text(text) => {
                        match wire::decode_request(text.as_str()) {
                            Ok(PeerRequest::KeepAlive) => {}
                            Ok(PeerRequest::Signal { to, data }) => {
                                let signal = ToActor::Signal { from: peer, to, data };
                                if shared.actor.send(signal).await.is_err() {
                                    return Some(CloseReason::ServerShutdown);
                                }
                            }
                            Err(e) => return Some(CloseReason::MalformedRequest(e.to_string())),
                        }
                    }
                }
            },
            () = &mut timer => {
                let quiet = last_seen.elapsed();
                if quiet >= idle {
                    return Some(CloseReason::IdleTimeout(idle));
                }
                if quiet >= idle / 2 && socket.send(Message::Ping(bytes::Bytes::new())).await.is_err() {
                    return None;
                }
                timer.as_mut().reset(tokio::time::Instant::now() + check_every);
            }
        }
    }
}

fn read_error(error: axum::Error, limit: usize) -> Option<CloseReason> {
    use tungstenite::error::{CapacityError, Error};
    match error.into_inner().downcast::<Error>() {
        Ok(e) if matches!(*e, Error::Capacity(CapacityError::MessageTooLong { .. })) => {
            Some(CloseReason::MessageTooLarge { limit })
        }
        Ok(e) if matches!(*e, Error::Utf8(_)) => Some(CloseReason::MalformedRequest(
            "text frame is not UTF-8".into(),
        )),
        _ => None, // reset or protocol error: nobody left to tell
    }
}

async fn close(mut socket: WebSocket, reason: CloseReason, shared: &Shared) {
    shared.metrics.refused(reason.label());
    info!("closing a peer: {reason}");
    let frame = CloseFrame {
        code: reason.code(),
        reason: Utf8Bytes::from(reason.frame_text()),
    };
    // Bounded: a client that stops reading must not keep the task alive.
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}

/// The one task that owns the lobby.
async fn actor(mut lobby: Lobby, mut rx: mpsc::Receiver<ToActor>, metrics: Arc<Metrics>) {
    let mut peers: HashMap<PeerId, mpsc::Sender<Outbound>> = HashMap::new();
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut shutting_down = false;
    loop {
        let message = tokio::select! {
            message = rx.recv() => match message {
                Some(message) => message,
                None => return,
            },
            _ = tick.tick() => {
                lobby.handle(Event::Tick { now: Instant::now() }, &mut out);
                metrics.upkeep();
                continue;
            }
        };
        match message {
            ToActor::Join { tx, .. } if shutting_down => {
                let _ = tx.try_send(Outbound::Close(CloseReason::ServerShutdown));
            }
            ToActor::Join { peer, room, tx, at } => {
                peers.insert(peer, tx);
                lobby.handle(Event::Joined { peer, room, at }, &mut out);
            }
            ToActor::Signal { from, to, data } => {
                lobby.handle(Event::Signal { from, to, data }, &mut out);
            }
            ToActor::Left { peer } => {
                peers.remove(&peer);
                lobby.handle(Event::Left { peer }, &mut out);
            }
            ToActor::ListRooms { reply } => {
                let _ = reply.send(lobby.public_rooms(Instant::now()));
            }
            ToActor::ReservePrivate { code, reply } => {
                let _ = reply.send(lobby.reserve_private(&code, Instant::now()));
            }
            ToActor::Shutdown => {
                shutting_down = true;
                for (_, tx) in peers.drain() {
                    let _ = tx.try_send(Outbound::Close(CloseReason::ServerShutdown));
                }
            }
        }
        for command in out.drain(..) {
            carry_out(command, &mut peers, &metrics);
        }
        metrics.peers_connected.set(lobby.peer_count() as f64);
        metrics.rooms.set(lobby.room_count() as f64);
    }
}

fn carry_out(
    command: Command,
    peers: &mut HashMap<PeerId, mpsc::Sender<Outbound>>,
    metrics: &Metrics,
) {
    match command {
        Command::Send { to, message } => {
            if matches!(message, crate::lobby::ServerMessage::Signal { .. }) {
                metrics.signals_relayed.increment(1);
            }
            let text = Utf8Bytes::from(wire::encode(&message));
            for peer in to {
                let Some(tx) = peers.get(&peer) else { continue };
                if tx.try_send(Outbound::Text(text.clone())).is_err() {
                    // Full (or already gone): dropping the sender closes the
                    // peer as too slow; its task then reports `Left`.
                    warn!("peer {peer} is not reading its socket: closing it");
                    peers.remove(&peer);
                }
            }
        }
        Command::Close { peer, reason } => {
            if let Some(tx) = peers.remove(&peer) {
                let _ = tx.try_send(Outbound::Close(reason));
            }
        }
        Command::MatchFormed { waited, .. } => {
            metrics.matches_formed.increment(1);
            for wait in waited {
                metrics.time_to_match.record(wait.as_secs_f64());
            }
        }
        Command::SignalDropped { from, to } => {
            metrics.signals_dropped.increment(1);
            debug!("dropped a signal from {from} to {to}: not in the same room");
        }
    }
}
