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
//!
//! volley-server adds one event for clients that ask (`?resume` on the
//! URL): `{"ResumeToken":"<token>"}`, the proof of the client's seat. A
//! client that loses the server comes back with `?resume=<token>` and gets
//! its id and seat back; the server then tells it (`NewPeer`) of everyone
//! in the room, and it offers to those it has no connection with.

use serde::{Deserialize, Serialize};

use crate::PeerId;

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

/// From the server to us: matchbox's `PeerEvent`, and volley-server's
/// resume token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Our id; the first message.
    IdAssigned(PeerId),
    /// A peer to connect to (we offer).
    NewPeer(PeerId),
    /// A peer left the room.
    PeerLeft(PeerId),
    /// Signaling from another peer.
    Signal {
        /// Who sent it.
        sender: PeerId,
        /// What it says.
        data: PeerSignal,
    },
    /// Proof of our seat, to come back with (only checked as text here:
    /// [`is_resume_token`]).
    ResumeToken(String),
}

/// Longest resume token a client keeps.
pub const MAX_RESUME_TOKEN: usize = 512;

/// Whether `token` can go into a URL as it is (the server's are digits,
/// dots and base64url), and is not too long: a hostile server's token
/// must not rewrite the URL it is put into.
pub fn is_resume_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_RESUME_TOKEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

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
        assert_eq!(
            decode_event(r#"{"ResumeToken":"9.eyJ9.x-_"}"#),
            Ok(Event::ResumeToken("9.eyJ9.x-_".into()))
        );
        assert!(is_resume_token("9.eyJ9.x-_"));
        for bad in [
            "",
            "a&next=9",
            "a b",
            "a#",
            &"x".repeat(MAX_RESUME_TOKEN + 1),
        ] {
            assert!(!is_resume_token(bad), "{bad}");
        }
        let huge = format!(r#"{{"IdAssigned":"{}"}}"#, "x".repeat(MAX_SIGNAL_BYTES));
        assert!(matches!(decode_event(&huge), Err(SignalError::TooLarge(_))));
    }
}
