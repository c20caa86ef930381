//! Several volley-server nodes sharing rooms, matchmaking and the lobby
//! through Redis (`volley-server --redis URL --node-id ID`).
//!
//! The design, like Colyseus' presence layer: every room name has one home
//! node, whose [`Lobby`](crate::lobby::Lobby) holds everything by that name
//! (the named room, its `?next=N` groups, a private code). Redis keeps the
//! directory (name → home, claimed atomically, taken over when the home's
//! liveness key expires), the nodes' liveness and room lists, and carries
//! messages between nodes over pub/sub. A peer connected to another node is
//! a remote member of the home's lobby: its join, signals and leave travel
//! there, and what the lobby says to it travels back. Matchmaking stays in
//! one lobby per name, so a group is formed exactly once (no peer in two
//! groups, none over N) and signals stay inside their room, with the lobby's
//! own checks; nothing in the lobby knows about the cluster.
//!
//! - [`message`]: what nodes say to each other, decoded as untrusted input.
//! - [`router`]: the pure state machine around one node's lobby.
//! - `redis` (feature `server`): the driver — directory scripts, heartbeats,
//!   pub/sub, the cluster-wide room list.

pub mod message;
#[cfg(feature = "server")]
pub mod redis;
pub mod router;
#[cfg(test)]
mod router_tests;

pub use message::{NodeId, NodeMessage};
pub use router::{Action, Input, ReserveError, Router, RouterConfig};
