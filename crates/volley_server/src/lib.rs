//! volley's signaling server.
//!
//! Wire-compatible with matchbox: an unmodified `matchbox_socket` client
//! connects to `ws://HOST:PORT/<room>` (or `/<room>?next=N` for matchmaking in
//! groups of N) and gets `IdAssigned`, `NewPeer`, `PeerLeft` and relayed
//! `Signal`s. Beside it: a lobby API (`/api/rooms`, `/api/ice`), `/health`,
//! Prometheus `/metrics`, optional access tickets, and limits on everything a
//! client controls.
//!
//! The room logic is the pure [`lobby::Lobby`] state machine; [`server`] is the
//! I/O around it.
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

pub mod cli;
pub mod close;
pub mod ice;
pub mod limits;
pub mod lobby;
pub mod metrics;
pub mod server;
pub mod ticket;
pub mod wire;

pub use close::CloseReason;
pub use server::{Server, ServerConfig, ServerError, ServerHandle};
