//! Why a connection is refused or closed.
//!
//! Every refusal travels to the client as a WebSocket close frame (code +
//! human-readable reason), is logged once and counted in `/metrics` under its
//! [`CloseReason::label`]. Browsers can read a close frame's reason from
//! `CloseEvent.reason`, but never the body of a failed upgrade, which is why
//! lobby refusals happen after the upgrade.

use std::time::Duration;

/// The reason the server closes (or refuses) a signaling connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// The named room already holds `capacity` peers.
    #[error("room is full ({capacity} peers)")]
    RoomFull {
        /// The room's capacity.
        capacity: usize,
    },
    /// `?next=` was not a whole number between 2 and the server's room size.
    #[error("invalid next={value:?}: must be a whole number from 2 to {max}")]
    InvalidNext {
        /// The value as the client sent it.
        value: String,
        /// The largest group the server forms.
        max: usize,
    },
    /// The room name is too long or has characters outside the allowed set.
    #[error("invalid room name: at most {max} characters from A-Z a-z 0-9 _ - . (got {len} bytes)")]
    InvalidRoomName {
        /// The name's length in bytes.
        len: usize,
        /// The longest name allowed.
        max: usize,
    },
    /// A text frame that is not a matchbox `PeerRequest`.
    #[error("malformed request: {0}")]
    MalformedRequest(String),
    /// The protocol is JSON text; binary frames are refused.
    #[error("binary frames are not supported")]
    BinaryFrame,
    /// A message above the configured size limit.
    #[error("message too large (limit {limit} bytes)")]
    MessageTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The client sent more messages than its token bucket allows.
    #[error("rate limit exceeded ({per_second} messages/s, burst {burst})")]
    RateLimited {
        /// Sustained messages per second.
        per_second: u32,
        /// Burst size.
        burst: u32,
    },
    /// Nothing arrived (not even a pong) for the idle timeout.
    #[error("idle for {0:?}")]
    IdleTimeout(Duration),
    /// The client reads its socket too slowly: its outbound queue filled up.
    #[error("client too slow: outbound queue full")]
    SlowConsumer,
    /// The server is shutting down.
    #[error("server shutting down")]
    ServerShutdown,
    /// The peer id is already connected (cannot happen with random ids; kept
    /// so the state machine never has to trust its caller).
    #[error("duplicate peer id")]
    DuplicatePeer,
}

impl CloseReason {
    /// The WebSocket close code: standard codes where one fits (RFC 6455 §7.4),
    /// otherwise the application range 4000–4999.
    pub fn code(&self) -> u16 {
        match self {
            CloseReason::ServerShutdown => 1001,
            CloseReason::BinaryFrame => 1003,
            CloseReason::MalformedRequest(_) => 1007,
            CloseReason::RateLimited { .. } => 1008,
            CloseReason::MessageTooLarge { .. } => 1009,
            CloseReason::IdleTimeout(_) => 4000,
            CloseReason::RoomFull { .. } => 4001,
            CloseReason::InvalidNext { .. } => 4002,
            CloseReason::InvalidRoomName { .. } => 4003,
            CloseReason::SlowConsumer => 4004,
            CloseReason::DuplicatePeer => 4005,
        }
    }

    /// A short, stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::RoomFull { .. } => "room_full",
            CloseReason::InvalidNext { .. } => "invalid_next",
            CloseReason::InvalidRoomName { .. } => "invalid_room_name",
            CloseReason::MalformedRequest(_) => "malformed_request",
            CloseReason::BinaryFrame => "binary_frame",
            CloseReason::MessageTooLarge { .. } => "message_too_large",
            CloseReason::RateLimited { .. } => "rate_limited",
            CloseReason::IdleTimeout(_) => "idle_timeout",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::ServerShutdown => "server_shutdown",
            CloseReason::DuplicatePeer => "duplicate_peer",
        }
    }

    /// The reason text for the close frame. RFC 6455 caps a close frame's
    /// payload at 125 bytes (2 of them the code), so it is cut on a char
    /// boundary.
    pub fn frame_text(&self) -> String {
        let mut text = self.to_string();
        if text.len() > 123 {
            let mut end = 123;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_text_fits_a_close_frame() {
        let long = CloseReason::MalformedRequest("é".repeat(200));
        assert!(long.frame_text().len() <= 123);
        assert!(long.frame_text().starts_with("malformed request: é"));
        let next = CloseReason::InvalidNext {
            value: "x".into(),
            max: 16,
        };
        assert_eq!(
            next.frame_text(),
            "invalid next=\"x\": must be a whole number from 2 to 16"
        );
    }
}
