//! The built-in STUN and TURN server, so that one `volley-server` is all a
//! game needs on the internet: players behind a NAT learn their public
//! address from it (STUN), and those whose NATs cannot be traversed relay
//! through it (TURN).
//!
//! The protocol is webrtc-rs' `turn` crate (a port of pion/turn, the one
//! the native transport's stack comes from); this module only supplies:
//! - the credentials: the TURN REST form `/api/ice` mints, checked by
//!   [`crate::turn_auth`] (refusals counted by reason);
//! - the relays: UDP sockets from a configured port range, at most
//!   [`TurnConfig::max_allocations`] at once, each relaying at most
//!   [`TurnConfig::max_bytes_per_second`] (both directions; the excess is
//!   dropped, as a congested link would), every byte counted;
//! - per-user quotas ([`crate::turn_quota`]): allocations at once and bytes
//!   per second over all of a user's allocations.
//!
//! The relay hook of the `turn` crate is not told whose allocation it
//! makes. The crate handles a listening socket's requests one at a time
//! (authenticate, then allocate, within one request), so the user the
//! credentials check saw last is the allocating one; [`Current`] carries
//! it across.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rand::Rng;
use tokio::net::UdpSocket;
use tracing::{debug, info};
use turn::auth::{AuthHandler, generate_auth_key};
use turn::relay::RelayAddressGenerator;
use turn::server::Server;
use turn::server::config::{ConnConfig, ServerConfig};
use webrtc_util::Conn;

use crate::limits::TokenBucket;
use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::server::lock;
use crate::turn_auth::password_for;
use crate::turn_quota::{UserQuotas, user_of};

/// Ports tried, from a random start in the range, before an allocation
/// fails for want of a free one.
const PORT_TRIES: u16 = 32;

/// The built-in TURN server's settings (`--turn-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnConfig {
    /// UDP address STUN and TURN listen on (3478 is the standard port).
    pub listen: SocketAddr,
    /// The server's public address: the one `/api/ice` names and relays
    /// report. Needed when the server sits behind a NAT or listens on
    /// 0.0.0.0.
    pub public_ip: Option<IpAddr>,
    /// First and last UDP port of the relays (open them in the firewall).
    pub relay_ports: (u16, u16),
    /// Allocations at once, over all users; more are refused.
    pub max_allocations: usize,
    /// Allocations at once per user (see [`crate::turn_quota`]); 0: no limit.
    pub max_allocations_per_user: usize,
    /// Bytes per second per user over all its allocations (both
    /// directions); the excess is dropped. 0: no limit.
    pub max_bytes_per_second_per_user: u32,
    /// Bytes per second one allocation may relay (both directions); the
    /// excess is dropped. 0 switches the limit off.
    pub max_bytes_per_second: u32,
    /// Serve STUN only: every allocation is refused, and `/api/ice` names
    /// the server as a STUN server only.
    pub stun_only: bool,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 3478)),
            public_ip: None,
            relay_ports: (49152, 65535),
            max_allocations: 1000,
            // A 16-player mesh relayed for every peer needs 15 (twice, for
            // a native peer on two interfaces); a few players behind one
            // address share the rest.
            max_allocations_per_user: 64,
            // 16 Mbit/s.
            max_bytes_per_second_per_user: 2_000_000,
            // 4 Mbit/s: far above what a game's data channels carry.
            max_bytes_per_second: 500_000,
            stun_only: false,
        }
    }
}

impl TurnConfig {
    /// The address clients are told to use for STUN and TURN.
    pub fn public_addr(&self, bound: SocketAddr) -> SocketAddr {
        SocketAddr::new(self.public_ip.unwrap_or(bound.ip()), bound.port())
    }
}

/// Why the TURN server could not start.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// The listening socket.
    #[error("cannot bind the TURN server to {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A configuration the server refused.
    #[error("TURN server: {0}")]
    Config(String),
}

/// A running TURN server.
pub struct TurnServer {
    server: Server,
    addr: SocketAddr,
}

impl TurnServer {
    /// Binds `config.listen` and serves STUN and TURN with credentials
    /// checked against `secret`, counting into `metrics`.
    pub async fn start(
        config: &TurnConfig,
        secret: Secret,
        metrics: Arc<Metrics>,
    ) -> Result<TurnServer, TurnError> {
        let (min, max) = config.relay_ports;
        if min == 0 || max < min {
            return Err(TurnError::Config(format!(
                "bad relay port range {min}-{max}"
            )));
        }
        let socket = UdpSocket::bind(config.listen)
            .await
            .map_err(|source| TurnError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = socket.local_addr().unwrap_or(config.listen);
        let current = Current::default();
        let relays = Relays {
            bind_ip: config.listen.ip(),
            public_ip: config.public_addr(addr).ip(),
            ports: (min, max),
            max_allocations: if config.stun_only {
                0
            } else {
                config.max_allocations
            },
            max_bytes_per_second: config.max_bytes_per_second,
            live: Arc::new(AtomicUsize::new(0)),
            quotas: Arc::new(Mutex::new(UserQuotas::new(
                config.max_allocations_per_user,
                config.max_bytes_per_second_per_user,
            ))),
            current: current.clone(),
            metrics: metrics.clone(),
        };
        let server = Server::new(ServerConfig {
            conn_configs: vec![ConnConfig {
                conn: Arc::new(socket),
                relay_addr_generator: Box::new(relays),
            }],
            realm: "volley".into(),
            auth_handler: Arc::new(RestAuth {
                secret,
                metrics,
                current,
            }),
            channel_bind_timeout: std::time::Duration::ZERO, // the default, 10 min
            alloc_close_notify: None,
        })
        .await
        .map_err(|e| TurnError::Config(e.to_string()))?;
        info!(
            "STUN/TURN on udp {addr} (public {}), relays on ports {min}-{max}",
            config.public_addr(addr)
        );
        Ok(TurnServer { server, addr })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and closes every allocation.
    pub async fn close(self) {
        if let Err(e) = self.server.close().await {
            debug!("closing the TURN server: {e}");
        }
    }
}

/// The user whose request the server is handling (see the module docs).
#[derive(Clone, Default)]
struct Current(Arc<Mutex<String>>);

impl Current {
    fn set(&self, user: &str) {
        let mut current = lock(&self.0);
        current.clear();
        current.push_str(user);
    }

    fn get(&self) -> String {
        lock(&self.0).clone()
    }
}

/// Credentials in the TURN REST form (see [`crate::turn_auth`]).
struct RestAuth {
    secret: Secret,
    metrics: Arc<Metrics>,
    current: Current,
}

impl AuthHandler for RestAuth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        _src: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match password_for(self.secret.expose(), username, now) {
            Ok(password) => {
                self.current.set(user_of(username));
                Ok(generate_auth_key(username, realm, &password))
            }
            Err(refusal) => {
                self.metrics.turn_refused(refusal.label());
                Err(turn::Error::Other(refusal.to_string()))
            }
        }
    }
}

/// Makes the relay sockets (see the module docs).
struct Relays {
    bind_ip: IpAddr,
    public_ip: IpAddr,
    ports: (u16, u16),
    max_allocations: usize,
    max_bytes_per_second: u32,
    live: Arc<AtomicUsize>,
    quotas: Arc<Mutex<UserQuotas>>,
    current: Current,
    metrics: Arc<Metrics>,
}

impl Relays {
    async fn bind(&self, requested: u16) -> Result<UdpSocket, turn::Error> {
        if requested != 0 {
            return UdpSocket::bind((self.bind_ip, requested))
                .await
                .map_err(|e| turn::Error::Other(e.to_string()));
        }
        let (min, max) = self.ports;
        let span = max - min;
        let start = rand::rng().random_range(0..=span);
        let mut last = None;
        for i in 0..PORT_TRIES.min(span.saturating_add(1)) {
            let port = min + (start.wrapping_add(i) % span.saturating_add(1).max(1));
            match UdpSocket::bind((self.bind_ip, port)).await {
                Ok(socket) => return Ok(socket),
                Err(e) => last = Some(e),
            }
        }
        Err(turn::Error::Other(format!(
            "no free relay port in {min}-{max}: {}",
            last.map_or_else(String::new, |e| e.to_string())
        )))
    }
}

#[async_trait]
impl RelayAddressGenerator for Relays {
    fn validate(&self) -> Result<(), turn::Error> {
        Ok(()) // checked in `TurnServer::start`
    }

    async fn allocate_conn(
        &self,
        _use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        // Reserve a slot first, so concurrent allocations cannot overshoot.
        let reserved = self
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_allocations).then_some(n + 1)
            });
        if reserved.is_err() {
            self.metrics.turn_refused("turn_allocations_full");
            return Err(turn::Error::Other("too many TURN allocations".into()));
        }
        let user = self.current.get();
        if let Err(refusal) = lock(&self.quotas).admit(&user, Instant::now()) {
            self.live.fetch_sub(1, Ordering::AcqRel);
            self.metrics.turn_refused(refusal.label());
            return Err(turn::Error::Other(refusal.to_string()));
        }
        let socket = match self.bind(requested_port).await {
            Ok(socket) => socket,
            Err(e) => {
                self.live.fetch_sub(1, Ordering::AcqRel);
                lock(&self.quotas).release(&user);
                self.metrics.turn_refused("turn_no_relay_port");
                return Err(e);
            }
        };
        let port = socket.local_addr().map_or(0, |a| a.port());
        self.metrics.turn_allocations.increment(1.0);
        self.metrics.turn_allocations_total.increment(1);
        let bucket = (self.max_bytes_per_second > 0).then(|| {
            // A second's worth of burst.
            let rate = self.max_bytes_per_second;
            Mutex::new(TokenBucket::new(rate, rate, Instant::now()))
        });
        let relay = Metered {
            socket,
            bucket,
            user,
            quotas: self.quotas.clone(),
            released: AtomicBool::new(false),
            live: self.live.clone(),
            metrics: self.metrics.clone(),
        };
        Ok((Arc::new(relay), SocketAddr::new(self.public_ip, port)))
    }
}

/// A relay socket that counts its bytes, enforces its allocation's and its
/// user's bandwidth and frees its slots when closed or dropped.
struct Metered {
    socket: UdpSocket,
    bucket: Option<Mutex<TokenBucket>>,
    user: String,
    quotas: Arc<Mutex<UserQuotas>>,
    released: AtomicBool,
    live: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Metered {
    /// Whether `len` more bytes are within the allocation's and the user's
    /// bandwidth.
    fn allow(&self, len: usize) -> bool {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        let now = Instant::now();
        let refused = if !self
            .bucket
            .as_ref()
            .is_none_or(|bucket| lock(bucket).take_n(now, len))
        {
            Some("turn_bandwidth")
        } else if !lock(&self.quotas).allow(&self.user, len, now) {
            Some("turn_user_bandwidth")
        } else {
            None
        };
        match refused {
            None => self.metrics.turn_relayed_bytes.increment(u64::from(len)),
            Some(reason) => self.metrics.turn_refused(reason),
        }
        refused.is_none()
    }

    fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.live.fetch_sub(1, Ordering::AcqRel);
            lock(&self.quotas).release(&self.user);
            self.metrics.turn_allocations.decrement(1.0);
        }
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.release();
    }
}

#[async_trait]
impl Conn for Metered {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        Ok(self.socket.connect(addr).await?)
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        loop {
            let n = self.socket.recv(buf).await?;
            if self.allow(n) {
                return Ok(n);
            }
        }
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.socket.recv_from(buf).await?;
            if self.allow(n) {
                return Ok((n, from));
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        if !self.allow(buf.len()) {
            return Ok(buf.len()); // dropped, as a full link would
        }
        Ok(self.socket.send(buf).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if !self.allow(buf.len()) {
            return Ok(buf.len());
        }
        Ok(self.socket.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.socket.peer_addr().ok()
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.release();
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
