//! What can go wrong, why a peer left, and what the game is told.

use crate::codec::CodecError;
use crate::fragment::FragmentError;
use crate::frame::FrameError;
use crate::guard::Misbehaviour;
use crate::protocol::RegistryError;
use crate::{Channel, PeerId};

/// Everything that can go wrong, for a send or with a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// A registration was refused.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The type was never registered.
    #[error("{0} is not a registered message type")]
    NotRegistered(&'static str),
    /// Encoding or decoding a payload failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// An unreliable message above [`MAX_UNRELIABLE`](crate::MAX_UNRELIABLE).
    #[error("unreliable message of {size} bytes exceeds {limit} (send it reliably)")]
    TooLarge {
        /// Its size with framing.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No connected peer has this id.
    #[error("peer {0} is not connected")]
    UnknownPeer(PeerId),
    /// The peer registered other messages, another layout or app version.
    #[error("incompatible protocol: ours {ours:#018x}, theirs {theirs:#018x}")]
    IncompatibleProtocol {
        /// Our protocol hash.
        ours: u64,
        /// The peer's.
        theirs: u64,
    },
    /// A packet's header was broken.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Fragments were inconsistent or too large.
    #[error(transparent)]
    Fragment(#[from] FragmentError),
    /// A kind nobody registered.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// A registered kind on another channel than its own.
    #[error("message kind {kind} arrived on the {channel:?} channel")]
    WrongChannel {
        /// The kind.
        kind: u8,
        /// Where it arrived.
        channel: Channel,
    },
    /// A message larger than its type's limit
    /// ([`SessionBuilder::register_limited`](crate::SessionBuilder::register_limited)), refused before decoding.
    #[error("message kind {kind} of {size} bytes exceeds its limit of {limit}")]
    OverLimit {
        /// The kind.
        kind: u8,
        /// Its payload size.
        size: usize,
        /// The type's limit.
        limit: usize,
    },
}

/// Why a peer left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftReason {
    /// Its connection closed or failed.
    Disconnected,
    /// Its protocol hash differs: it is ignored from now on.
    IncompatibleProtocol {
        /// Our protocol hash.
        ours: u64,
        /// The peer's.
        theirs: u64,
    },
    /// It sent invalid packets or flooded us: it is ignored from now on.
    Misbehaving(Misbehaviour),
    /// The game closed it (`Session::disconnect`).
    Closed,
}

/// What happened to the session's peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A WebRTC connection to the peer opened; the handshake is under way.
    Joined(PeerId),
    /// The handshake is done: messages flow both ways.
    Connected(PeerId),
    /// The peer is gone.
    Left(PeerId, LeftReason),
    /// No WebRTC connection to the peer could be made (the reason says why
    /// and what may help, such as a TURN server); it never joined.
    Unreachable(PeerId, String),
    /// The signaling server was lost (why). Open connections stay; the
    /// session comes back to the server by itself, keeping its id, when
    /// the server handed out a resume token (volley-server does).
    SignalingLost(String),
    /// Back with the signaling server: new peers can connect again.
    SignalingRestored,
    /// A peer sent something invalid; it was dropped and counted.
    Error {
        /// Who sent it.
        peer: PeerId,
        /// What was wrong.
        error: NetError,
    },
}
