//! matchbox's signaling protocol, as the native transport speaks it: JSON
//! text frames over a WebSocket. Pure, so the decoder of the server's
//! (hostile, as any network input) frames can be fuzzed.
//!
//! ```text
//! → {"Signal":{"receiver":"<uuid>","data":{"Offer":"v=0…"}}}   and "KeepAlive"
//! ← {"IdAssigned":"<uuid>"} {"NewPeer":"<uuid>"} {"PeerLeft":"<uuid>"}
//!   {"Signal":{"sender":"<uuid>","data":{"Answer":"v=0…"}}}
//! ```
//! The peer already in the room gets `NewPeer` and makes the offer; ICE
//! candidates travel as a JSON string of `RTCIceCandidateInit` (browsers
//! may send `"null"` at the end of gathering).

use serde::{Deserialize, Serialize};

/// Largest signaling frame accepted: an SDP with every candidate of a
/// many-homed host stays well below.
pub const MAX_SIGNAL_BYTES: usize = 64 * 1024;

/// What peers send each other through the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerSignal {
    /// A JSON-encoded `RTCIceCandidateInit`, or `"null"`.
    IceCandidate(String),
    /// An SDP offer.
    Offer(String),
    /// An SDP answer.
    Answer(String),
}

/// From us to the server.
pub type Request = matchbox_protocol::PeerRequest<PeerSignal>;
/// From the server to us.
pub type Event = matchbox_protocol::PeerEvent<PeerSignal>;

/// Why a frame from the server was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// Larger than [`MAX_SIGNAL_BYTES`].
    #[error("signaling frame of {0} bytes exceeds {MAX_SIGNAL_BYTES}")]
    TooLarge(usize),
    /// Not one of the protocol's messages.
    #[error("not a signaling message: {0}")]
    Malformed(String),
}

/// Decodes a text frame from the server.
pub fn decode_event(text: &str) -> Result<Event, SignalError> {
    if text.len() > MAX_SIGNAL_BYTES {
        return Err(SignalError::TooLarge(text.len()));
    }
    serde_json::from_str(text).map_err(|e| SignalError::Malformed(e.to_string()))
}

/// Encodes a request as the text frame the server expects.
pub fn encode_request(request: &Request) -> String {
    // Strings and uuids only: serializing cannot fail.
    serde_json::to_string(request).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PeerId;

    #[test]
    fn speaks_matchbox_json() {
        let peer = PeerId(uuid::Uuid::from_u128(7));
        let request = Request::Signal {
            receiver: peer,
            data: PeerSignal::Offer("v=0".into()),
        };
        assert_eq!(
            encode_request(&request),
            r#"{"Signal":{"receiver":"00000000-0000-0000-0000-000000000007","data":{"Offer":"v=0"}}}"#
        );
        assert_eq!(encode_request(&Request::KeepAlive), r#""KeepAlive""#);
        assert_eq!(
            decode_event(r#"{"NewPeer":"00000000-0000-0000-0000-000000000007"}"#),
            Ok(Event::NewPeer(peer))
        );
        assert_eq!(
            decode_event(
                r#"{"Signal":{"sender":"00000000-0000-0000-0000-000000000007","data":{"IceCandidate":"null"}}}"#
            ),
            Ok(Event::Signal {
                sender: peer,
                data: PeerSignal::IceCandidate("null".into())
            })
        );
        assert!(matches!(decode_event("{}"), Err(SignalError::Malformed(_))));
        let huge = format!(r#"{{"IdAssigned":"{}"}}"#, "x".repeat(MAX_SIGNAL_BYTES));
        assert!(matches!(decode_event(&huge), Err(SignalError::TooLarge(_))));
    }
}
