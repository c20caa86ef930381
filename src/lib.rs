//! volley: peer-to-peer multiplayer for Bevy.
//!
//! This umbrella crate re-exports the volley crates behind features:
//! `server` (default) brings [`server`], the signaling server library;
//! `net` (default) brings [`net`], the engine-agnostic client;
//! `bevy` (default) brings [`bevy`], the Bevy plugin.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
pub use volley_server as server;

#[cfg(feature = "net")]
pub use volley_net as net;

#[cfg(feature = "bevy")]
pub use bevy_volley as bevy;
