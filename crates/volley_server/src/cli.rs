//! The `volley-server` command line. Every flag can also come from the
//! environment (`VOLLEY_<FLAG>`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::ice::IceConfig;
use crate::lobby::LobbyConfig;
use crate::server::ServerConfig;

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
    pub ticket_secret: String,
}

/// Options of the server itself.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "VOLLEY_ADDR", default_value = "127.0.0.1:3536")]
    pub addr: SocketAddr,
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
    pub turn_secret: Option<String>,
    /// Lifetime of TURN credentials.
    #[arg(long, env = "VOLLEY_TURN_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub turn_ttl: Duration,
    /// User part of TURN usernames.
    #[arg(long, env = "VOLLEY_TURN_USER", default_value = "volley")]
    pub turn_user: String,
    /// Require `?ticket=` signed with this secret on every signaling connection.
    #[arg(long, env = "VOLLEY_TICKET_SECRET", hide_env_values = true)]
    pub ticket_secret: Option<String>,
    /// Largest WebSocket message, in bytes.
    #[arg(long, env = "VOLLEY_MAX_MESSAGE_SIZE", default_value_t = 64 * 1024)]
    pub max_message_size: usize,
    /// Sustained messages per second per connection.
    #[arg(long, env = "VOLLEY_RATE", default_value_t = 50)]
    pub rate: u32,
    /// Message burst per connection.
    #[arg(long, env = "VOLLEY_BURST", default_value_t = 200)]
    pub burst: u32,
    /// Open connections at most; more are refused with 503.
    #[arg(long, env = "VOLLEY_MAX_CONNECTIONS", default_value_t = 16_384)]
    pub max_connections: usize,
    /// Time for a client to send its HTTP request.
    #[arg(long, env = "VOLLEY_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// Close a peer that sends nothing (not even a pong) for this long.
    #[arg(long, env = "VOLLEY_IDLE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// How long a private room code stays reserved while its room is empty.
    #[arg(long, env = "VOLLEY_PRIVATE_ROOM_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub private_room_ttl: Duration,
    /// Worker threads. One thread serves over 20,000 matches/s on a 2-core
    /// machine at about half the CPU per match of a multi-threaded runtime
    /// (see the signaling benchmark); 0 means one per core, for more capacity.
    #[arg(long, env = "VOLLEY_THREADS", default_value_t = 1)]
    pub threads: usize,
}

impl ServeArgs {
    /// The server configuration these options describe.
    pub fn config(&self) -> ServerConfig {
        ServerConfig {
            addr: self.addr,
            lobby: LobbyConfig {
                max_room_size: usize::from(self.max_room_size),
                private_room_ttl: self.private_room_ttl,
                ..LobbyConfig::default()
            },
            max_message_size: self.max_message_size,
            rate_per_second: self.rate,
            rate_burst: self.burst,
            max_connections: self.max_connections,
            handshake_timeout: self.handshake_timeout,
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
            ..ServerConfig::default()
        }
    }
}
