//! Transports: what moves a session's packets. Each is a thin driver around
//! the [`Endpoint`](crate::Endpoint): it reports connections and packets,
//! and carries out the endpoint's [`Transmit`](crate::Transmit)s.

mod comeback;
mod connection;
mod driven;
#[cfg(feature = "matchbox")]
mod matchbox;
mod mesh;
#[cfg(not(target_arch = "wasm32"))]
mod native;
mod redial;
#[cfg(target_arch = "wasm32")]
mod web;

use std::future::Future;
use std::pin::Pin;

use web_time::Instant;

use crate::builder::IceConfig;
use crate::endpoint::Endpoint;
use crate::tls::TlsRoots;
use crate::{Channel, PeerId};

#[cfg(feature = "matchbox")]
pub use matchbox::MatchboxTransport;
pub use mesh::MAX_PEERS;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::NativeTransport as PlatformTransport;
#[cfg(target_arch = "wasm32")]
pub(crate) use web::WebTransport as PlatformTransport;

/// Why a session's message loop ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// A session's message loop: spawn it on any executor and keep it running
/// (the session is dead once it returns).
#[cfg(not(target_arch = "wasm32"))]
pub type MessageLoopFuture = Pin<Box<dyn Future<Output = Result<(), TransportError>> + Send>>;
/// A session's message loop: spawn it on any executor and keep it running
/// (the session is dead once it returns).
#[cfg(target_arch = "wasm32")]
pub type MessageLoopFuture = Pin<Box<dyn Future<Output = Result<(), TransportError>>>>;

/// Opens a transport to a room: the transport, and its message loop (to
/// spawn on any executor). See [`SessionBuilder::build_with`](crate::SessionBuilder::build_with).
/// Its arguments: the room URL, the ICE configuration and the roots trusted
/// for a `wss://` room URL.
pub type OpenTransport = fn(&str, &IceConfig, &TlsRoots) -> (Box<dyn Transport>, MessageLoopFuture);

/// The I/O side of a `Session`: a thin driver that reports what happened on
/// the wire to the [`Endpoint`] and carries out its sends and closes. volley
/// brings its own (webrtc-rs natively, the browser's WebRTC in wasm) and,
/// with the `matchbox` feature, `MatchboxTransport`; implement it to carry
/// a session over something else.
pub trait Transport: Send + Sync {
    /// Our id, once the signaling server assigned it.
    fn id(&mut self) -> Option<PeerId>;
    /// Tells `endpoint` about connections opened and lost and packets
    /// received since the last call.
    fn poll(&mut self, endpoint: &mut Endpoint, now: Instant);
    /// Sends one packet.
    fn send(&mut self, peer: PeerId, channel: Channel, packet: Vec<u8>);
    /// Bytes handed to `send` on `channel` that the connection has not yet
    /// released (acknowledged, or abandoned on an unreliable channel).
    fn buffered(&mut self, peer: PeerId, channel: Channel) -> usize;
    /// Closes the connection to one peer (the others stay); `closing`
    /// says whether it may connect again.
    fn close(&mut self, peer: PeerId, closing: crate::Closing);
}
