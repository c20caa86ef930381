//! Resume tokens: a peer's proof that a seat is its own, so that it gets
//! it back after losing the server (its network gone for a while, the
//! server restarted, a cluster node lost) with the same peer id.
//!
//! `?resume` on the signaling URL asks for tokens: the server then sends
//! `{"ResumeToken":"<token>"}` after `IdAssigned`, and a fresh one when the
//! peer's group fills. `?resume=<token>` comes back. A token is
//! `<expiry>.<payload>.<signature>`: the payload is base64url JSON (the
//! peer id and its [`Seat`]), the signature HMAC-SHA256(secret,
//! "volley-resume\n<expiry>\n<payload>") in base64url, both without
//! padding. The server keeps nothing: any server given the same secret
//! (the same process restarted, every node of a cluster) takes it.
//!
//! ```
//! use volley_server::lobby::{PeerId, Seat, SeatClaim};
//! use volley_server::resume::{ResumeError, mint, verify};
//! let peer = PeerId(uuid::Uuid::from_u128(7));
//! let seat = Seat { name: "arena".into(), next: Some(2), claim: SeatClaim { group: Some(peer), sealed: true } };
//! let token = mint(b"secret", peer, &seat, 1_000);
//! assert_eq!(verify(b"secret", &token, 999), Ok((peer, seat)));
//! assert_eq!(verify(b"secret", &token, 1_001), Err(ResumeError::Expired));
//! assert_eq!(verify(b"other", &token, 999), Err(ResumeError::BadSignature));
//! ```

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::lobby::{MAX_ROOM_NAME, PeerId, Seat};
use crate::ticket::three_parts;

/// Longest token accepted, in bytes: a room name at its longest, a group
/// and a peer id fit in about 330.
pub const MAX_RESUME_TOKEN: usize = 512;

/// Why a resume token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ResumeError {
    /// Not of the form `expiry.payload.signature`, too long, or its payload
    /// does not decode.
    #[error("malformed resume token")]
    Malformed,
    /// Past its expiry: join afresh.
    #[error("resume token expired")]
    Expired,
    /// Not signed by this server's secret (forged, or from a server with
    /// another secret).
    #[error("resume token signature invalid")]
    BadSignature,
    /// For another room than the URL names.
    #[error("resume token is for another room")]
    WrongRoom,
}

impl ResumeError {
    /// The metric label of the refusal.
    pub fn label(&self) -> &'static str {
        match self {
            ResumeError::Malformed => "resume_malformed",
            ResumeError::Expired => "resume_expired",
            ResumeError::BadSignature => "resume_forged",
            ResumeError::WrongRoom => "resume_wrong_room",
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    peer: PeerId,
    seat: Seat,
}

fn mac(secret: &[u8], expiry: &str, payload: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"volley-resume\n");
    mac.update(expiry.as_bytes());
    mac.update(b"\n");
    mac.update(payload.as_bytes());
    mac
}

/// Mints `peer`'s token for `seat`, valid until `expiry` (unix seconds).
pub fn mint(secret: &[u8], peer: PeerId, seat: &Seat, expiry: u64) -> String {
    let json = serde_json::to_vec(&Payload {
        peer,
        seat: seat.clone(),
    })
    // Strings, numbers and uuids only: serializing cannot fail.
    .unwrap_or_default();
    let payload = URL_SAFE_NO_PAD.encode(json);
    let expiry = expiry.to_string();
    let sig = mac(secret, &expiry, &payload).finalize().into_bytes();
    format!("{expiry}.{payload}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Checks a token at `now` (unix seconds): the peer and its seat. The
/// signature is checked (in constant time) before the payload is read.
pub fn verify(secret: &[u8], token: &str, now: u64) -> Result<(PeerId, Seat), ResumeError> {
    if token.len() > MAX_RESUME_TOKEN {
        return Err(ResumeError::Malformed);
    }
    let (expiry, payload, sig) = three_parts(token).ok_or(ResumeError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| ResumeError::Malformed)?;
    mac(secret, expiry, payload)
        .verify_slice(&sig)
        .map_err(|_| ResumeError::BadSignature)?;
    let expiry: u64 = expiry.parse().map_err(|_| ResumeError::Malformed)?;
    if now > expiry {
        return Err(ResumeError::Expired);
    }
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| ResumeError::Malformed)?;
    let Payload { peer, seat } =
        serde_json::from_slice(&json).map_err(|_| ResumeError::Malformed)?;
    if seat.name.len() > MAX_ROOM_NAME {
        return Err(ResumeError::Malformed);
    }
    Ok((peer, seat))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lobby::SeatClaim;

    fn seat() -> Seat {
        Seat {
            name: "arena".into(),
            next: Some(4),
            claim: SeatClaim {
                group: Some(PeerId(uuid::Uuid::from_u128(9))),
                sealed: false,
            },
        }
    }

    #[test]
    fn every_one_byte_change_is_refused() {
        let peer = PeerId(uuid::Uuid::from_u128(1));
        let token = mint(b"k", peer, &seat(), 1_000);
        assert!(token.len() <= MAX_RESUME_TOKEN);
        assert_eq!(verify(b"k", &token, 1), Ok((peer, seat())));
        let bytes = token.as_bytes();
        let mut tried = 0;
        for i in 0..bytes.len() {
            for b in [b'0', b'.', b'A', b'_', b'-', 0xff] {
                if bytes[i] == b {
                    continue;
                }
                let mut changed = bytes.to_vec();
                changed[i] = b;
                let changed = String::from_utf8_lossy(&changed);
                assert!(verify(b"k", &changed, 1).is_err(), "{changed}");
                tried += 1;
            }
            let mut cut = bytes.to_vec();
            cut.remove(i);
            assert!(verify(b"k", &String::from_utf8_lossy(&cut), 1).is_err());
        }
        assert!(tried > 1000);
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in ["", "1", "1.2", "1.2.3.4", "x.e30.!!", &"9".repeat(600)] {
            assert!(verify(b"k", bad, 1).is_err(), "{bad}");
        }
        // Signed, but not a payload: refused as malformed, never a panic.
        let payload = URL_SAFE_NO_PAD.encode(b"{\"peer\":1}");
        let sig = mac(b"k", "5", &payload).finalize().into_bytes();
        let token = format!("5.{payload}.{}", URL_SAFE_NO_PAD.encode(sig));
        assert_eq!(verify(b"k", &token, 1), Err(ResumeError::Malformed));
    }
}
