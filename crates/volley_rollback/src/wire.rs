//! ggrs 0.13's message as it travels (bincode 2, standard config), mirrored
//! field for field so volley can read, check and rewrite every field before
//! ggrs sees one: ggrs' own types keep their fields private.
//!
//! A newtype variant holding a struct and a struct variant encode to the
//! same bincode bytes, so `WireBody::SyncRequest { .. }` reads what ggrs
//! writes for `MessageBody::SyncRequest(SyncRequest { .. })`. The tests hold
//! the two layouts together on messages a real ggrs session sent.

use serde::{Deserialize, Serialize};

/// bincode's settings on both sides of the pipe (what volley's ggrs socket
/// encodes with).
pub fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// `ggrs::Message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMessage {
    /// `MessageHeader`.
    pub header: WireHeader,
    /// `MessageBody`.
    pub body: WireBody,
}

/// `ggrs::network::messages::MessageHeader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireHeader {
    /// The sender's session magic (ggrs drops mismatches itself).
    pub magic: u16,
}

/// `ggrs::network::messages::MessageBody`, in its variant order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireBody {
    /// Synchronisation round trip, asked.
    SyncRequest {
        /// Echoed back.
        random_request: u32,
    },
    /// Synchronisation round trip, answered.
    SyncReply {
        /// The echo.
        random_reply: u32,
    },
    /// The sender's inputs from `start_frame` on.
    Input(WireInput),
    /// The sender has our inputs up to `ack_frame`.
    InputAck {
        /// Last frame received.
        ack_frame: i32,
    },
    /// Frame advantage and a clock to echo.
    QualityReport {
        /// The sender's frames ahead of us.
        frame_advantage: i16,
        /// The sender's clock (ms since the epoch), echoed as `pong`.
        ping: u128,
    },
    /// Our `ping`, echoed.
    QualityReply {
        /// Our clock when we sent the report.
        pong: u128,
    },
    /// The sender's checksum of a confirmed frame.
    ChecksumReport {
        /// The checksum.
        checksum: u128,
        /// The frame.
        frame: i32,
    },
    /// Nothing; keeps the connection counted alive.
    KeepAlive,
}

/// `ggrs::network::messages::Input`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireInput {
    /// The sender's view of every player (ggrs gossips disconnects with it).
    pub peer_connect_status: Vec<WireStatus>,
    /// The sender is leaving.
    pub disconnect_requested: bool,
    /// Frame of the first input in `bytes`.
    pub start_frame: i32,
    /// The sender has our inputs up to here.
    pub ack_frame: i32,
    /// Inputs, XOR-delta and run-length encoded (see [`crate::rle`]).
    pub bytes: Vec<u8>,
}

/// `ggrs::network::messages::ConnectionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireStatus {
    /// The sender considers the player gone.
    pub disconnected: bool,
    /// The player's last frame the sender knows.
    pub last_frame: i32,
}

/// The checked mirror as ggrs' own message (the same bytes, ggrs' type).
pub fn to_ggrs(message: &WireMessage) -> Option<ggrs::Message> {
    let bytes = bincode::serde::encode_to_vec(message, config()).ok()?;
    // The canonical re-encoding of checked inputs stays well within this.
    let config = config().with_limit::<{ 4 * crate::guard::MAX_PACKET }>();
    bincode::serde::decode_from_slice::<ggrs::Message, _>(&bytes, config)
        .ok()
        .map(|(message, _)| message)
}
