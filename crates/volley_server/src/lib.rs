//! volley's signaling server.
//!
//! Wire-compatible with matchbox: an unmodified `matchbox_socket` client
//! connects to `ws://HOST:PORT/<room>` (or `/<room>?next=N` for matchmaking in
//! groups of N) and gets `IdAssigned`, `NewPeer`, `PeerLeft` and relayed
//! `Signal`s. Beside it: a lobby API (`/api/rooms`, `/api/ice`), `/health`,
//! Prometheus `/metrics`, optional access tickets, and limits on everything a
//! client controls.
//!
//! The room logic is the pure [`lobby::Lobby`] state machine; `server` is the
//! I/O around it (feature `server`, on by default: without it only the pure
//! modules build, for the fuzz targets). Nothing one client sends can crash,
//! hijack or starve anyone else: every queue is bounded, every socket write
//! has a deadline, and every limit (per connection, per client address, per
//! ticket, global) refuses with a [`Refusal`] that names it and is counted in
//! `/metrics`.
//!
//! ```no_run
//! # async fn example() -> Result<(), volley_server::ServerError> {
//! let config = volley_server::ServerConfig::default(); // 127.0.0.1:3536
//! let server = volley_server::Server::bind(config).await?;
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "server")]
pub mod cli;
pub mod cluster;
pub mod forwarded;
pub mod ice;
pub mod limits;
pub mod lobby;
#[cfg(feature = "server")]
pub mod metrics;
pub mod query;
pub mod refusal;
pub mod resume;
pub mod secret;
#[cfg(feature = "server")]
pub mod server;
pub mod ticket;
#[cfg(feature = "server")]
pub mod tls;
#[cfg(feature = "server")]
pub mod turn;
pub mod turn_auth;
pub mod turn_quota;
pub mod wire;

pub use refusal::{Answer, Refusal};
pub use secret::Secret;
#[cfg(feature = "server")]
pub use server::{Server, ServerConfig, ServerError, ServerHandle};
