//! The I/O around the [`Lobby`](crate::lobby::Lobby), by concern:
//!
//! - `accept`: the TCP accept loop, connection slots (global and per
//!   address), and the per-write deadline on every socket;
//! - `http`: the routes (`/health`, `/metrics`, `/api/rooms`, `/api/ice`,
//!   the web directory) and the per-address HTTP limits;
//! - `peer`: the checks before a WebSocket upgrade and one task per
//!   signaling peer (read, write, close);
//! - `actor`: the one task that owns the lobby and publishes the room list.
//!
//! Why not `matchbox_signaling`'s builder: it keeps room state behind shared
//! mutexes, gives each peer an unbounded queue and a 128 KiB read buffer, and
//! exposes no hook for per-connection limits, close reasons or a handshake
//! timeout. Here every queue is bounded, every write has a deadline and the
//! lobby has a single owner.

mod accept;
mod actor;
mod deadline;
mod http;
mod peer;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::cluster::redis::{Cluster, ClusterConfig, ClusterError, EVENT_QUEUE};
use crate::cluster::{NodeId, Router, RouterConfig};
use crate::forwarded::TrustedProxy;
use crate::ice::IceConfig;
use crate::limits::{IpAction, IpLimits, IpLimitsConfig, SWEEP_EVERY};
use crate::lobby::LobbyConfig;
use crate::metrics::Metrics;
use crate::refusal::Refusal;
use crate::secret::Secret;
use crate::tls::{RELOAD_CHECK_EVERY, TlsConfig};
use crate::turn::{TurnConfig, TurnError, TurnServer};

use actor::ToActor;

/// Everything the server can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Room sizes, private rooms, matchmaking grace.
    pub lobby: LobbyConfig,
    /// Largest WebSocket message accepted, in bytes.
    pub max_message_size: usize,
    /// Sustained messages per second per connection.
    pub rate_per_second: u32,
    /// Burst of messages per connection.
    pub rate_burst: u32,
    /// Open TCP connections at most (HTTP and WebSocket together).
    pub max_connections: usize,
    /// Per client address: connections, joins, room creations, HTTP requests.
    pub per_ip: IpLimitsConfig,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers name the client.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// Time for a client to send its HTTP request headers.
    pub handshake_timeout: Duration,
    /// A socket write (HTTP or WebSocket) that makes no progress for this
    /// long closes the connection: the client stopped reading.
    pub write_timeout: Duration,
    /// Longest life of an HTTP connection before any upgrade (a slow reader
    /// of a large file that still makes progress is cut here).
    pub http_timeout: Duration,
    /// A peer that sends nothing (not even a pong) for this long is closed.
    pub idle_timeout: Duration,
    /// Messages queued for one peer before it counts as too slow.
    pub outbound_queue: usize,
    /// How often the actor republishes the `GET /api/rooms` list when rooms
    /// changed (at least once a second otherwise, for the ages).
    pub rooms_refresh: Duration,
    /// Serve this directory to browsers.
    pub web_dir: Option<PathBuf>,
    /// STUN/TURN servers for `/api/ice`.
    pub ice: IceConfig,
    /// When set, every signaling connection and `/api/ice` need a valid
    /// `?ticket=`.
    pub ticket_secret: Option<Secret>,
    /// Tickets expiring further ahead than this are refused.
    pub ticket_max_ttl: Duration,
    /// Open signaling connections per ticket; 0 for no limit.
    pub max_connections_per_ticket: usize,
    /// Signs resume tokens (`?resume`, see [`crate::resume`]): give a
    /// restarted server and every node of a cluster the same one, so that
    /// players keep their seats. Unset: derived from `ticket_secret` when
    /// that is set, else random for this process.
    pub resume_secret: Option<Secret>,
    /// How long a resume token stays valid after it was handed out.
    pub resume_ttl: Duration,
    /// The built-in STUN/TURN server, when set: `/api/ice` names it, with
    /// credentials under `ice.turn_secret` (a random one when unset).
    pub turn: Option<TurnConfig>,
    /// When set, the port speaks TLS only: `https://` and `wss://`.
    pub tls: Option<TlsConfig>,
    /// When set, the node shares rooms, matchmaking and the lobby with the
    /// other nodes of a cluster through Redis (see [`crate::cluster`]).
    pub cluster: Option<ClusterConfig>,
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
            per_ip: IpLimitsConfig::default(),
            trusted_proxies: Vec::new(),
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            http_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(30),
            outbound_queue: 256,
            rooms_refresh: Duration::from_millis(250),
            web_dir: None,
            ice: IceConfig::default(),
            ticket_secret: None,
            ticket_max_ttl: Duration::from_secs(24 * 3600),
            max_connections_per_ticket: 2,
            resume_secret: None,
            resume_ttl: Duration::from_secs(24 * 3600),
            turn: None,
            tls: None,
            cluster: None,
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
    /// The built-in TURN server could not start.
    #[error(transparent)]
    Turn(#[from] TurnError),
    /// The node could not join its cluster.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// What every task shares.
struct Shared {
    config: ServerConfig,
    metrics: Arc<Metrics>,
    actor: mpsc::Sender<ToActor>,
    /// Open HTTP connections not (yet) upgraded.
    connections: AtomicUsize,
    /// Open signaling (WebSocket) connections.
    peers: AtomicUsize,
    /// Per-address limits (short critical sections, never across an await).
    ip_limits: Mutex<IpLimits>,
    /// The key of resume tokens: configured, or derived at bind.
    resume_secret: Secret,
    /// Open signaling connections per ticket (entries only while open).
    tickets: Mutex<HashMap<Box<str>, usize>>,
    /// `GET /api/rooms`'s body, published by the actor (in a cluster, by
    /// the Redis driver: every node's rooms).
    rooms: watch::Receiver<Bytes>,
    /// `GET /api/nodes`'s body: the cluster's live nodes (`[]` alone).
    nodes: watch::Receiver<Bytes>,
}

/// Locks a mutex whose data stays consistent even if a holder panicked
/// (every critical section in the server is a single update).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.config.trusted_proxies.iter().any(|p| p.contains(ip))
    }

    /// Admits `action` from `client` or says why not (the caller answers
    /// and counts the refusal).
    fn check_ip(&self, client: IpAddr, action: IpAction) -> Result<(), Refusal> {
        lock(&self.ip_limits).check(client, action, Instant::now())
    }

    fn sweep_ips(&self) {
        let mut limits = lock(&self.ip_limits);
        limits.sweep(Instant::now());
        self.metrics.tracked_ips.set(limits.tracked() as f64);
    }
}

/// A connection slot of one client address, given back when dropped. It
/// follows the connection across the WebSocket upgrade.
struct IpSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl IpSlot {
    fn take(shared: &Arc<Shared>, ip: IpAddr) -> Result<Self, Refusal> {
        shared.check_ip(ip, IpAction::Connect)?;
        Ok(IpSlot {
            shared: shared.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        lock(&self.shared.ip_limits).close(self.ip, Instant::now());
    }
}

/// One of a ticket's connections, given back when dropped.
struct TicketSlot {
    shared: Arc<Shared>,
    ticket: Box<str>,
}

impl TicketSlot {
    /// Tickets have one spelling (see [`crate::ticket`]), so the text is the key.
    fn take(shared: &Arc<Shared>, ticket: &str) -> Result<Option<Self>, Refusal> {
        let limit = shared.config.max_connections_per_ticket;
        if limit == 0 {
            return Ok(None);
        }
        let mut tickets = lock(&shared.tickets);
        let open = tickets.entry(ticket.into()).or_insert(0);
        if *open >= limit {
            return Err(Refusal::TicketInUse { limit });
        }
        *open += 1;
        Ok(Some(TicketSlot {
            shared: shared.clone(),
            ticket: ticket.into(),
        }))
    }
}

impl Drop for TicketSlot {
    fn drop(&mut self) {
        let mut tickets = lock(&self.shared.tickets);
        if let Some(open) = tickets.get_mut(&self.ticket) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                tickets.remove(&self.ticket);
            }
        }
    }
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
    rooms_tx: watch::Sender<Bytes>,
    nodes_tx: watch::Sender<Bytes>,
    turn: Option<TurnServer>,
    cluster: Option<Cluster>,
}

/// How long a cluster node keeps claiming a room name nothing uses any more
/// (joins already on their way from other nodes still find it).
pub const NAME_LINGER: Duration = Duration::from_secs(10);

impl Server {
    /// Binds the listening socket (and starts the TURN server if configured).
    pub async fn bind(mut config: ServerConfig) -> Result<Self, ServerError> {
        let listener =
            TcpListener::bind(config.addr)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.addr,
                    source,
                })?;
        let (actor, actor_rx) = mpsc::channel(4096);
        let (rooms_tx, rooms) = watch::channel(Bytes::from_static(b"[]"));
        let (nodes_tx, nodes) = watch::channel(Bytes::from_static(b"[]"));
        let metrics = Arc::new(Metrics::new());
        let cluster = match config.cluster.clone() {
            Some(cluster) => Some(Cluster::connect(cluster).await?),
            None => None,
        };
        let turn = match config.turn.clone() {
            Some(turn) => Some(start_turn(&turn, &mut config, metrics.clone()).await?),
            None => None,
        };
        let resume_secret = match &config.resume_secret {
            Some(secret) => secret.clone(),
            None => resume_secret(config.ticket_secret.as_ref()),
        };
        Ok(Server {
            listener,
            turn,
            cluster,
            nodes_tx,
            shared: Arc::new(Shared {
                ip_limits: Mutex::new(IpLimits::new(config.per_ip.clone())),
                resume_secret,
                config,
                metrics,
                actor,
                connections: AtomicUsize::new(0),
                peers: AtomicUsize::new(0),
                tickets: Mutex::new(HashMap::new()),
                rooms,
                nodes,
            }),
            actor_rx,
            rooms_tx,
        })
    }

    /// The built-in TURN server's bound UDP address, when it runs.
    pub fn turn_addr(&self) -> Option<SocketAddr> {
        self.turn.as_ref().map(TurnServer::local_addr)
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
            rooms_tx,
            nodes_tx,
            turn,
            cluster,
        } = self;
        let me = match &cluster {
            Some(cluster) => cluster.node().clone(),
            None => NodeId::new("local").unwrap_or_else(|_| unreachable!("a valid id")),
        };
        let router = Router::new(RouterConfig {
            me,
            clustered: cluster.is_some(),
            linger: NAME_LINGER,
            lobby: shared.config.lobby.clone(),
        });
        // In a cluster the actor's list is this node's share, merged by the driver.
        let (rooms_tx, cluster) = match cluster {
            None => (rooms_tx, None),
            Some(cluster) => {
                let (local_tx, local_rx) = watch::channel(Bytes::from_static(b"[]"));
                let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
                let link = cluster.start(
                    events_tx,
                    shared.metrics.clone(),
                    local_rx,
                    rooms_tx,
                    nodes_tx,
                );
                (local_tx, Some(actor::ClusterLink { link, events }))
            }
        };
        tokio::spawn(actor::run(
            router,
            actor_rx,
            cluster,
            shared.metrics.clone(),
            rooms_tx,
            shared.config.rooms_refresh,
            actor::Tokens {
                secret: shared.resume_secret.clone(),
                ttl: shared.config.resume_ttl,
            },
        ));
        let router = http::router(shared.clone());
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        let mut reload = tokio::time::interval(RELOAD_CHECK_EVERY);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => accept::accept(stream, peer, &shared, &router),
                    Err(e) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = sweep.tick() => shared.sweep_ips(),
                _ = reload.tick() => reload_certificate(&shared),
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
        if let Some(turn) = turn {
            turn.close().await;
        }
        Ok(())
    }

    /// Runs the server on the current tokio runtime until the handle shuts it down.
    pub fn spawn(self) -> ServerHandle {
        let addr = self.local_addr();
        let turn_addr = self.turn_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async {
            let _ = stopped.await;
        }));
        ServerHandle {
            addr,
            turn_addr,
            stop,
            task,
        }
    }
}

/// Picks up a renewed certificate (see [`TlsConfig::reload_if_changed`]).
fn reload_certificate(shared: &Shared) {
    let Some(tls) = &shared.config.tls else {
        return;
    };
    match tls.reload_if_changed() {
        Ok(true) => {
            shared.metrics.tls_reloads.increment(1);
            info!("TLS: a new certificate is in use");
        }
        Ok(false) => {}
        Err(e) => warn!("TLS: keeping the current certificate: {e}"),
    }
}

/// The resume tokens' key when none is configured: one derived from the
/// ticket secret (every node given that one agrees), else a random one.
fn resume_secret(tickets: Option<&Secret>) -> Secret {
    use hmac::{Hmac, Mac};
    let key = match tickets {
        Some(tickets) => {
            // HMAC takes keys of any length: this cannot fail.
            let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(tickets.expose())
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
            mac.update(b"volley resume tokens");
            mac.finalize().into_bytes().into()
        }
        None => {
            info!(
                "resume tokens are signed with a key of this process: set --resume-secret for players to keep their seats across restarts and nodes"
            );
            rand::random::<[u8; 32]>()
        }
    };
    hex_secret(&key)
}

/// A secret of this process from its key's bytes, as text.
fn hex_secret(key: &[u8]) -> Secret {
    Secret::from(key.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Starts the built-in TURN server and names it in `/api/ice`: its public
/// address as both a STUN and a TURN server, credentials from the
/// configured TURN secret or, without one, a random secret of this process.
async fn start_turn(
    turn: &TurnConfig,
    config: &mut ServerConfig,
    metrics: Arc<Metrics>,
) -> Result<TurnServer, ServerError> {
    let secret = match &config.ice.turn_secret {
        Some(secret) => secret.clone(),
        None => {
            let secret = hex_secret(&rand::random::<[u8; 32]>());
            config.ice.turn_secret = Some(secret.clone());
            secret
        }
    };
    let server = TurnServer::start(turn, secret, metrics).await?;
    let public = turn.public_addr(server.local_addr());
    config.ice.stun.insert(0, format!("stun:{public}"));
    if !turn.stun_only {
        let url = format!("turn:{public}?transport=udp");
        config.ice.turn.insert(0, url);
    }
    Ok(server)
}

/// A server running in the background (see [`Server::spawn`]).
pub struct ServerHandle {
    addr: SocketAddr,
    turn_addr: Option<SocketAddr>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl ServerHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The built-in TURN server's bound UDP address, when it runs.
    pub fn turn_addr(&self) -> Option<SocketAddr> {
        self.turn_addr
    }

    /// Stops accepting, closes every peer and waits for the server to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let config = ServerConfig {
            ticket_secret: Some("tick3t-s3cret".into()),
            ice: IceConfig {
                turn_secret: Some("turn-s3cret".into()),
                ..IceConfig::default()
            },
            cluster: Some(ClusterConfig::new(
                "redis://user:s3cret@127.0.0.1:6379",
                NodeId::new("n1").unwrap(),
                "ws://127.0.0.1:3536",
            )),
            ..ServerConfig::default()
        };
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("ticket_secret: Some(<redacted>)"), "{shown}");
    }
}
