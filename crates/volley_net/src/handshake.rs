//! The handshake message, and its decoder: the first thing a peer's bytes
//! meet on the reliable channel. Pure, so it can be fuzzed without a socket.

use serde::{Deserialize, Serialize};

use crate::codec::{Bincode, Codec, CodecError};

/// The handshake. Each side repeats its `Hello` (every 100 ms) until the
/// other confirms it with `got_yours`: the first message on a fresh data
/// channel can be lost in webrtc-rs when both sides open their negotiated
/// channels at once, so a single Hello is not enough.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's [`WIRE_VERSION`](crate::protocol::WIRE_VERSION).
    pub wire: u32,
    /// The sender's protocol hash ([`Registry::protocol_hash`](crate::protocol::Registry::protocol_hash)).
    pub hash: u64,
    /// The sender's application version (only shown when the hashes differ).
    pub app_version: String,
    /// The sender has received (and accepted) the receiver's Hello.
    pub got_yours: bool,
}

/// Decodes a Hello payload (the bytes after the frame header), as a session
/// does, with [`Bincode`]'s size limit.
pub fn decode_hello(bytes: &[u8]) -> Result<Hello, CodecError> {
    Bincode.decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let hello = Hello {
            wire: 1,
            hash: 0xdead_beef,
            app_version: "1.0".into(),
            got_yours: true,
        };
        let mut bytes = Vec::new();
        Bincode.encode(&hello, &mut bytes).unwrap();
        assert_eq!(decode_hello(&bytes), Ok(hello));
        assert!(decode_hello(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_hello(&[0xff; 16]).is_err());
    }
}
