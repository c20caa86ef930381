//! volley's engine-agnostic client: typed reliable and unreliable messages
//! between WebRTC peers, natively and in the browser.
//!
//! A [`Session`] drives the protocol core ([`Endpoint`]) over a
//! [`Transport`] (webrtc-rs natively, the browser's WebRTC in wasm) with a
//! fixed channel layout ([`Channel`]), exchanges a protocol hash with every peer before any
//! message flows, frames and decodes registered message types with a size
//! limit, fragments large reliable messages, measures RTT and loss, and can
//! simulate a bad network ([`ConditionerConfig`]).
//!
//! ```no_run
//! use volley_net::{Channel, Session, SessionEvent};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Chat(String);
//!
//! # fn main() -> Result<(), volley_net::NetError> {
//! let (mut session, message_loop) = Session::builder("ws://127.0.0.1:3536/lobby")
//!     .register::<Chat>(Channel::Reliable)?
//!     .build();
//! // Drive `message_loop` on your executor (bevy_volley does it on Bevy's task pools).
//! # drop(message_loop);
//! loop {
//!     session.update();
//!     for event in session.events() {
//!         if let SessionEvent::Connected(peer) = event {
//!             session.send(peer, &Chat("hello".into()))?;
//!         }
//!     }
//!     for (peer, Chat(text)) in session.receive::<Chat>() {
//!         println!("{peer}: {text}");
//!     }
//! #   break;
//! }
//! # Ok(()) }
//! ```
//!
//! The default feature `transport` brings the [`Session`] and the ICE
//! fetch; `matchbox` adds [`MatchboxTransport`] (an unmodified
//! `matchbox_socket` underneath). Without `transport` only the pure modules
//! build: framing, fragments, the codec, the registry, the peer limits and
//! replication — every decoder of peer bytes, which `fuzz/` exercises.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod batch;
mod builder;
pub mod codec;
pub mod conditioner;
mod endpoint;
#[cfg(test)]
mod endpoint_tests;
mod error;
pub mod fragment;
pub mod frame;
pub mod guard;
pub mod handshake;
#[cfg(feature = "transport")]
pub mod ice;
mod inbox;
pub mod protocol;
pub mod replication;
mod resume_store;
#[cfg(feature = "transport")]
mod session;
pub mod signal;
pub mod stats;
pub mod tls;
#[cfg(feature = "transport")]
mod transport;

pub use builder::{IceConfig, IcePolicy, IceServer, IceTiming, SessionBuilder};
pub use conditioner::ConditionerConfig;
pub use endpoint::{Closing, Endpoint, MAX_UNRELIABLE, ROLLBACK_INBOX, Transmit};
pub use error::{LeftReason, NetError, SessionEvent};
pub use guard::{Misbehaviour, PeerLimits};
/// A peer's id (the same type `matchbox_socket` uses).
pub use matchbox_protocol::PeerId;
pub use resume_store::{RESUME_WITHIN, ResumeStore};
#[cfg(feature = "transport")]
pub use session::Session;
pub use stats::{Candidate, CandidateKind, Link, PeerStats};
pub use tls::TlsRoots;
#[cfg(feature = "transport")]
pub use transport::MAX_PEERS;
#[cfg(feature = "matchbox")]
pub use transport::MatchboxTransport;
#[cfg(feature = "transport")]
pub use transport::{MessageLoopFuture, OpenTransport, Transport, TransportError};

/// The fixed channel layout every volley peer opens, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Channel {
    /// Reliable and ordered: the handshake, and messages that must arrive.
    Reliable = 0,
    /// Unreliable and unordered: state that the next update replaces; pings.
    Unreliable = 1,
    /// Unreliable, reserved for rollback inputs (ggrs).
    Rollback = 2,
}

impl Channel {
    /// How many channels a session opens.
    pub const COUNT: usize = 3;
    /// Every channel, in index order.
    pub const ALL: [Channel; Channel::COUNT] =
        [Channel::Reliable, Channel::Unreliable, Channel::Rollback];

    /// The channel's index in the socket.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable name (part of the protocol hash).
    pub fn name(self) -> &'static str {
        match self {
            Channel::Reliable => "reliable-ordered",
            Channel::Unreliable => "unreliable",
            Channel::Rollback => "rollback-unreliable",
        }
    }
}
