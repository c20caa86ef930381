//! The `volley-server` command line. Every flag can also come from the
//! environment (`VOLLEY_<FLAG>`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::cluster::NodeId;
use crate::cluster::redis::ClusterConfig;
use crate::forwarded::TrustedProxy;
use crate::ice::IceConfig;
use crate::limits::IpLimitsConfig;
use crate::lobby::LobbyConfig;
use crate::secret::Secret;
use crate::server::ServerConfig;
use crate::tls::{TlsConfig, TlsError};
use crate::turn::TurnConfig;

/// volley's signaling server: matchbox-compatible rooms and matchmaking,
/// lobby API, ICE configuration, metrics, limits.
#[derive(Debug, Parser)]
#[command(name = "volley-server", version, about)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Commands>,
    /// Server options.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Mint an access ticket for `--ticket-secret` servers and print it.
    Ticket(TicketArgs),
}

/// `volley-server ticket`.
#[derive(Debug, Args)]
pub struct TicketArgs {
    /// The room the ticket admits to (the URL path, without `?next=`).
    #[arg(long)]
    pub room: String,
    /// How long the ticket is valid, e.g. 90s, 10m, 2h.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Who the ticket is for.
    #[arg(long, default_value = "player")]
    pub user: String,
    /// The server's ticket secret.
    #[arg(long, env = "VOLLEY_TICKET_SECRET", hide_env_values = true)]
    pub ticket_secret: Secret,
}

/// Options of the server itself.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "VOLLEY_ADDR", default_value = "127.0.0.1:3536")]
    pub addr: SocketAddr,
    /// Serve https:// and wss:// (TLS only) with this PEM certificate chain,
    /// leaf first (e.g. certbot's fullchain.pem). Read again when it changes.
    #[arg(long, env = "VOLLEY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (e.g. certbot's privkey.pem).
    #[arg(long, env = "VOLLEY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest room, and largest `?next=N` group.
    #[arg(long, env = "VOLLEY_MAX_ROOM_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u16).range(2..=1024))]
    pub max_room_size: u16,
    /// Serve this directory to browsers (`GET /` is its index.html).
    #[arg(long, env = "VOLLEY_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// STUN server URL handed to clients by /api/ice (repeat or comma-separate).
    #[arg(long, env = "VOLLEY_STUN", value_delimiter = ',')]
    pub stun: Vec<String>,
    /// TURN server URL handed out with ephemeral credentials (needs --turn-secret).
    #[arg(long, env = "VOLLEY_TURN", value_delimiter = ',')]
    pub turn: Vec<String>,
    /// Secret shared with the TURN server (coturn `static-auth-secret`).
    #[arg(long, env = "VOLLEY_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<Secret>,
    /// Lifetime of TURN credentials.
    #[arg(long, env = "VOLLEY_TURN_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub turn_ttl: Duration,
    /// User part of TURN usernames when no ticket names one (followed by
    /// `.` and the client's address).
    #[arg(long, env = "VOLLEY_TURN_USER", default_value = "volley")]
    pub turn_user: String,
    /// Run the built-in STUN/TURN server on this UDP address (e.g.
    /// 0.0.0.0:3478); /api/ice then names it first, with credentials under
    /// --turn-secret (a random secret of this process without one).
    #[arg(long, env = "VOLLEY_TURN_LISTEN")]
    pub turn_listen: Option<SocketAddr>,
    /// The built-in TURN server's public IP, as clients reach it (default:
    /// the --turn-listen address, which must then not be 0.0.0.0).
    #[arg(long, env = "VOLLEY_TURN_PUBLIC_IP")]
    pub turn_public_ip: Option<IpAddr>,
    /// UDP ports of the built-in TURN server's relays, `MIN-MAX`.
    #[arg(long, env = "VOLLEY_TURN_RELAY_PORTS", default_value = "49152-65535", value_parser = port_range)]
    pub turn_relay_ports: (u16, u16),
    /// Relay allocations at once on the built-in TURN server; more are refused.
    #[arg(long, env = "VOLLEY_TURN_MAX_ALLOCATIONS", default_value_t = 1000)]
    pub turn_max_allocations: usize,
    /// Allocations at once per user (a ticket's user, or a client address); 0: no limit.
    #[arg(
        long,
        env = "VOLLEY_TURN_MAX_ALLOCATIONS_PER_USER",
        default_value_t = 64
    )]
    pub turn_max_allocations_per_user: usize,
    /// Bytes per second one user may relay over all its allocations (both
    /// directions); 0: no limit.
    #[arg(
        long,
        env = "VOLLEY_TURN_MAX_BYTES_PER_SECOND_PER_USER",
        default_value_t = 2_000_000
    )]
    pub turn_max_bytes_per_second_per_user: u32,
    /// Bytes per second one relay allocation may carry (both directions;
    /// the excess is dropped). 0: no limit.
    #[arg(
        long,
        env = "VOLLEY_TURN_MAX_BYTES_PER_SECOND",
        default_value_t = 500_000
    )]
    pub turn_max_bytes_per_second: u32,
    /// Serve STUN only on --turn-listen (no relays; /api/ice names no TURN).
    #[arg(long, env = "VOLLEY_TURN_STUN_ONLY")]
    pub turn_stun_only: bool,
    /// Require `?ticket=` signed with this secret on every signaling
    /// connection and on /api/ice (`?room=<room>&ticket=<ticket>`); refused
    /// with 401 (ticket_missing, ticket_malformed, ticket_expired,
    /// ticket_forged, ticket_ttl_too_long).
    #[arg(long, env = "VOLLEY_TICKET_SECRET", hide_env_values = true)]
    pub ticket_secret: Option<Secret>,
    /// Refuse tickets that expire further ahead than this (401 ticket_ttl_too_long).
    #[arg(long, env = "VOLLEY_TICKET_MAX_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub ticket_max_ttl: Duration,
    /// Open signaling connections per ticket; more get 429 (ticket_in_use). 0: no limit.
    #[arg(long, env = "VOLLEY_MAX_CONNECTIONS_PER_TICKET", default_value_t = 2)]
    pub max_connections_per_ticket: usize,
    /// Largest WebSocket message, in bytes.
    #[arg(long, env = "VOLLEY_MAX_MESSAGE_SIZE", default_value_t = 64 * 1024)]
    pub max_message_size: usize,
    /// Sustained messages per second per connection.
    #[arg(long, env = "VOLLEY_RATE", default_value_t = 50)]
    pub rate: u32,
    /// Message burst per connection.
    #[arg(long, env = "VOLLEY_BURST", default_value_t = 200)]
    pub burst: u32,
    /// Open connections at most; more are refused with 503 (too_many_connections).
    #[arg(long, env = "VOLLEY_MAX_CONNECTIONS", default_value_t = 16_384)]
    pub max_connections: usize,
    /// Open connections (HTTP and WebSocket) per client address; more get
    /// 429 (too_many_connections_from_ip). IPv6 counts per /64. 0: no limit.
    #[arg(long, env = "VOLLEY_MAX_CONNECTIONS_PER_IP", default_value_t = 64)]
    pub max_connections_per_ip: u32,
    /// Signaling connections per client address per minute; more get 429
    /// (join_rate_limited). 0: no limit.
    #[arg(long, env = "VOLLEY_JOINS_PER_MINUTE_PER_IP", default_value_t = 60)]
    pub joins_per_minute_per_ip: u32,
    /// `POST /api/rooms` per client address per minute; more get 429
    /// (room_creation_rate_limited). 0: no limit.
    #[arg(
        long,
        env = "VOLLEY_ROOM_CREATIONS_PER_MINUTE_PER_IP",
        default_value_t = 10
    )]
    pub room_creations_per_minute_per_ip: u32,
    /// Private room codes one client address may hold at once; more get 429
    /// (too_many_private_rooms_from_ip). 0: no limit.
    #[arg(long, env = "VOLLEY_MAX_PRIVATE_ROOMS_PER_IP", default_value_t = 20)]
    pub max_private_rooms_per_ip: usize,
    /// Sustained HTTP requests per second per client address (WebSocket
    /// upgrades count as joins instead); more get 429 (http_rate_limited). 0: no limit.
    #[arg(long, env = "VOLLEY_HTTP_RATE_PER_IP", default_value_t = 20)]
    pub http_rate_per_ip: u32,
    /// HTTP request burst per client address (a page load fetches several files).
    #[arg(long, env = "VOLLEY_HTTP_BURST_PER_IP", default_value_t = 100)]
    pub http_burst_per_ip: u32,
    /// Client addresses tracked at most by the per-address limits (bounds
    /// their memory); when every one holds a connection, new addresses get
    /// 503 (too_many_clients).
    #[arg(long, env = "VOLLEY_MAX_TRACKED_IPS", default_value_t = 65_536)]
    pub max_tracked_ips: usize,
    /// A reverse proxy (address or CIDR block; repeat or comma-separate):
    /// only from these peers is the client address taken from
    /// `Forwarded: for=` / `X-Forwarded-For` (the right-most untrusted entry).
    #[arg(long, env = "VOLLEY_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxy: Vec<TrustedProxy>,
    /// Time for a client to send its HTTP request; then the connection is
    /// cut (handshake_timeout).
    #[arg(long, env = "VOLLEY_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// A socket write that makes no progress for this long means the client
    /// stopped reading: a WebSocket peer is closed (slow_consumer, its room
    /// hears PeerLeft), an HTTP connection is cut (slow_http_reader).
    #[arg(long, env = "VOLLEY_WRITE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,
    /// Longest life of an HTTP connection before any WebSocket upgrade; then
    /// it is cut (http_timeout). Bounds slow readers of large files.
    #[arg(long, env = "VOLLEY_HTTP_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub http_timeout: Duration,
    /// Close a peer that sends nothing (not even a pong) for this long.
    #[arg(long, env = "VOLLEY_IDLE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// How long a private room code stays reserved while its room is empty.
    #[arg(long, env = "VOLLEY_PRIVATE_ROOM_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub private_room_ttl: Duration,
    /// A `?next=N` group that loses a member this soon after filling up is
    /// reopened: the others hear PeerLeft and a newcomer takes the seat. 0s: never.
    #[arg(long, env = "VOLLEY_MATCH_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub match_grace: Duration,
    /// A peer lost without a goodbye keeps its seat this long: its
    /// room-mates are not told, and it may come back with its resume token
    /// (its match goes on meanwhile). 0s: never.
    #[arg(long, env = "VOLLEY_SEAT_HOLD", default_value = "15s", value_parser = humantime::parse_duration)]
    pub seat_hold: Duration,
    /// Spectators per room or match (`?spectate`); more are refused (close
    /// 4011, too_many_spectators). 0: no spectators.
    #[arg(long, env = "VOLLEY_MAX_SPECTATORS", default_value_t = 32)]
    pub max_spectators: usize,
    /// Spectators one peer feeds at most (a player, or a spectator relaying
    /// to others): what spectators cost a player, however many watch.
    #[arg(long, env = "VOLLEY_WATCH_FANOUT", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub watch_fanout: u16,
    /// Sign resume tokens (`?resume`) with this secret: give it to a
    /// restarted server and to every node of a cluster, so that players
    /// keep their seats. Default: derived from --ticket-secret when set,
    /// else random (seats then last as long as this process).
    #[arg(long, env = "VOLLEY_RESUME_SECRET", hide_env_values = true)]
    pub resume_secret: Option<Secret>,
    /// How long a resume token stays valid after it was handed out.
    #[arg(long, env = "VOLLEY_RESUME_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub resume_ttl: Duration,
    /// Join a cluster: share rooms, `?next=N` matchmaking, private codes and
    /// the room list with the other nodes on this Redis (`redis://host:port`).
    #[arg(long, env = "VOLLEY_REDIS", hide_env_values = true)]
    pub redis: Option<Secret>,
    /// This node's id in the cluster (A-Za-z0-9_-., at most 64), unique
    /// among live nodes. Default: `node-` and random letters.
    #[arg(long, env = "VOLLEY_NODE_ID", requires = "redis")]
    pub node_id: Option<NodeId>,
    /// The URL clients reach this node at, listed by `GET /api/nodes`
    /// (default: `ws://` or `wss://` and --addr).
    #[arg(long, env = "VOLLEY_ADVERTISE", requires = "redis")]
    pub advertise: Option<String>,
    /// A node that does not renew its Redis entry for this long is dead to
    /// the others: its peers leave their rooms, and peers whose rooms it held
    /// are told to join again (node_lost). Renewed every third of it.
    #[arg(long, env = "VOLLEY_NODE_TTL", default_value = "3s", value_parser = humantime::parse_duration)]
    pub node_ttl: Duration,
    /// Prefix of the cluster's Redis keys and channels.
    #[arg(long, env = "VOLLEY_REDIS_PREFIX", default_value = "volley")]
    pub redis_prefix: String,
    /// Worker threads. One thread serves over 20,000 matches/s on a 2-core
    /// machine at about half the CPU per match of a multi-threaded runtime
    /// (see the signaling benchmark); 0 means one per core, for more capacity.
    #[arg(long, env = "VOLLEY_THREADS", default_value_t = 1)]
    pub threads: usize,
}

impl ServeArgs {
    /// The server configuration these options describe (reading the TLS
    /// certificate and key, when given).
    pub fn config(&self) -> Result<ServerConfig, TlsError> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsConfig::from_pem_files(cert, key)?),
            _ => None,
        };
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        let cluster = self.redis.as_ref().map(|redis| ClusterConfig {
            redis_url: redis.clone(),
            node: self.node_id.clone().unwrap_or_else(random_node_id),
            advertise: self
                .advertise
                .clone()
                .unwrap_or_else(|| format!("{scheme}://{}", self.addr)),
            node_ttl: self.node_ttl.max(Duration::from_millis(300)),
            prefix: self.redis_prefix.clone(),
        });
        Ok(ServerConfig {
            tls,
            cluster,
            addr: self.addr,
            lobby: LobbyConfig {
                max_room_size: usize::from(self.max_room_size),
                private_room_ttl: self.private_room_ttl,
                max_private_rooms_per_owner: self.max_private_rooms_per_ip,
                match_grace: self.match_grace,
                seat_hold: self.seat_hold,
                max_spectators: self.max_spectators,
                watch_fanout: usize::from(self.watch_fanout),
                ..LobbyConfig::default()
            },
            max_message_size: self.max_message_size,
            rate_per_second: self.rate,
            rate_burst: self.burst,
            max_connections: self.max_connections,
            per_ip: IpLimitsConfig {
                max_connections: self.max_connections_per_ip,
                joins_per_minute: self.joins_per_minute_per_ip,
                room_creations_per_minute: self.room_creations_per_minute_per_ip,
                http_per_second: self.http_rate_per_ip,
                http_burst: self.http_burst_per_ip,
                max_tracked_ips: self.max_tracked_ips,
            },
            trusted_proxies: self.trusted_proxy.clone(),
            handshake_timeout: self.handshake_timeout,
            write_timeout: self.write_timeout.max(Duration::from_millis(10)),
            http_timeout: self.http_timeout,
            idle_timeout: self.idle_timeout.max(Duration::from_millis(30)),
            web_dir: self.web_dir.clone(),
            ice: IceConfig {
                stun: self.stun.clone(),
                turn: self.turn.clone(),
                turn_secret: self.turn_secret.clone(),
                turn_ttl: self.turn_ttl,
                turn_user: self.turn_user.clone(),
            },
            ticket_secret: self.ticket_secret.clone(),
            ticket_max_ttl: self.ticket_max_ttl,
            resume_secret: self.resume_secret.clone(),
            resume_ttl: self.resume_ttl,
            max_connections_per_ticket: self.max_connections_per_ticket,
            turn: self.turn_listen.map(|listen| TurnConfig {
                listen,
                public_ip: self.turn_public_ip,
                relay_ports: self.turn_relay_ports,
                max_allocations: self.turn_max_allocations,
                max_allocations_per_user: self.turn_max_allocations_per_user,
                max_bytes_per_second_per_user: self.turn_max_bytes_per_second_per_user,
                max_bytes_per_second: self.turn_max_bytes_per_second,
                stun_only: self.turn_stun_only,
            }),
            ..ServerConfig::default()
        })
    }
}

/// `node-` and eight random hex digits.
fn random_node_id() -> NodeId {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    NodeId::new(format!("node-{}", &suffix[..8])).unwrap_or_else(|_| unreachable!("a valid id"))
}

/// `MIN-MAX`, both non-zero ports, `MIN <= MAX`.
fn port_range(text: &str) -> Result<(u16, u16), String> {
    let (min, max) = text
        .split_once('-')
        .ok_or_else(|| format!("expected MIN-MAX, got {text:?}"))?;
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("not a port: {p:?}"))
    };
    let (min, max) = (port(min)?, port(max)?);
    if min > max {
        return Err(format!("{min} > {max}"));
    }
    Ok((min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_defaults_are_the_library_defaults() {
        let config = Cli::parse_from(["volley-server"]).serve.config().unwrap();
        assert!(config.tls.is_none());
        let library = ServerConfig::default();
        assert_eq!(config.per_ip, library.per_ip);
        assert_eq!(config.write_timeout, library.write_timeout);
        assert_eq!(config.http_timeout, library.http_timeout);
        assert_eq!(config.handshake_timeout, library.handshake_timeout);
        assert_eq!(config.ticket_max_ttl, library.ticket_max_ttl);
        assert_eq!(
            config.max_connections_per_ticket,
            library.max_connections_per_ticket
        );
        assert_eq!(config.max_connections, library.max_connections);
        assert_eq!(config.turn, None);
        assert_eq!(config.ice.turn_ttl, library.ice.turn_ttl);
        assert_eq!(config.ice.turn_user, library.ice.turn_user);
        let turn = Cli::parse_from(["volley-server", "--turn-listen", "127.0.0.1:3478"])
            .serve
            .config()
            .unwrap()
            .turn
            .expect("--turn-listen runs the TURN server");
        let defaults = TurnConfig::default();
        assert_eq!(turn.relay_ports, defaults.relay_ports);
        assert_eq!(turn.max_allocations, defaults.max_allocations);
        assert_eq!(turn.max_bytes_per_second, defaults.max_bytes_per_second);
        assert_eq!(
            turn.max_allocations_per_user,
            defaults.max_allocations_per_user
        );
        assert_eq!(
            turn.max_bytes_per_second_per_user,
            defaults.max_bytes_per_second_per_user
        );
        assert_eq!(port_range("1-1"), Ok((1, 1)));
        for bad in ["0-5", "5-1", "5", "a-b"] {
            assert!(port_range(bad).is_err(), "{bad}");
        }
        assert_eq!(config.lobby.match_grace, library.lobby.match_grace);
        assert_eq!(config.lobby.seat_hold, library.lobby.seat_hold);
        assert_eq!(config.lobby.max_spectators, library.lobby.max_spectators);
        assert_eq!(config.lobby.watch_fanout, library.lobby.watch_fanout);
        let spectators = Cli::parse_from([
            "volley-server",
            "--max-spectators",
            "0",
            "--watch-fanout",
            "3",
        ]);
        let lobby = spectators.serve.config().unwrap().lobby;
        assert_eq!((lobby.max_spectators, lobby.watch_fanout), (0, 3));
        assert!(Cli::try_parse_from(["volley-server", "--watch-fanout", "0"]).is_err());
        assert_eq!(config.resume_ttl, library.resume_ttl);
        assert_eq!(
            config.lobby.max_private_rooms_per_owner,
            library.lobby.max_private_rooms_per_owner
        );
    }

    #[test]
    fn limits_and_proxies_parse() {
        let cli = Cli::parse_from([
            "volley-server",
            "--trusted-proxy",
            "10.0.0.1,fd00::/8",
            "--trusted-proxy",
            "192.168.0.0/16",
            "--max-connections-per-ip",
            "0",
            "--ticket-secret",
            "hunter2",
            "--resume-secret",
            "hunter3",
        ]);
        let config = cli.serve.config().unwrap();
        assert_eq!(config.trusted_proxies.len(), 3);
        assert_eq!(config.per_ip.max_connections, 0);
        let shown = format!("{cli:?} {config:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("hunter3"));
        assert!(
            Cli::try_parse_from(["volley-server", "--trusted-proxy", "proxy.example"]).is_err()
        );
    }

    #[test]
    fn tls_needs_both_files_and_names_a_missing_one() {
        assert!(Cli::try_parse_from(["volley-server", "--tls-cert", "c.pem"]).is_err());
        assert!(Cli::try_parse_from(["volley-server", "--tls-key", "k.pem"]).is_err());
        let cli = Cli::parse_from([
            "volley-server",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
        ]);
        let error = cli.serve.config().unwrap_err().to_string();
        assert!(error.contains("/nonexistent/cert.pem"), "{error}");
    }
}
