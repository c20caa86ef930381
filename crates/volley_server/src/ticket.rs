//! Access tickets: `?ticket=<expiry>.<user>.<signature>`.
//!
//! The signature is HMAC-SHA256(secret, "room\nexpiry\nuser"), base64url
//! without padding, so a ticket is bound to one room and one user until its
//! expiry (unix seconds). The user is base64url too, so any string fits in a
//! URL. Verification is a pure function of the ticket and the current time.
//!
//! ```
//! use volley_server::ticket::{mint, verify};
//! let t = mint(b"secret", "arena", "alice", 1_000);
//! assert_eq!(verify(b"secret", "arena", &t, 999).unwrap().user, "alice");
//! assert!(verify(b"secret", "arena", &t, 1_001).is_err()); // expired
//! assert!(verify(b"secret", "other", &t, 999).is_err()); // another room
//! ```

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Longest ticket accepted, in bytes: refuses oversized input before decoding.
pub const MAX_TICKET_LEN: usize = 512;

/// What a valid ticket grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The user the ticket was minted for.
    pub user: String,
    /// Unix time (seconds) after which the ticket is refused.
    pub expiry: u64,
}

/// Why a ticket was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The server requires a ticket and none was given.
    #[error("a ticket is required (?ticket=...)")]
    Missing,
    /// Not of the form `expiry.user.signature`, or too long.
    #[error("malformed ticket")]
    Malformed,
    /// Past its expiry.
    #[error("ticket expired")]
    Expired,
    /// The signature does not match: forged, or for another room.
    #[error("ticket signature invalid (forged, or for another room)")]
    BadSignature,
}

fn mac(secret: &[u8], room: &str, expiry: u64, user: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(room.as_bytes());
    mac.update(b"\n");
    mac.update(expiry.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(user.as_bytes());
    mac
}

/// Mints a ticket for `user` in `room`, valid until `expiry` (unix seconds).
pub fn mint(secret: &[u8], room: &str, user: &str, expiry: u64) -> String {
    let sig = mac(secret, room, expiry, user).finalize().into_bytes();
    format!(
        "{expiry}.{}.{}",
        URL_SAFE_NO_PAD.encode(user),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

/// Checks a ticket for `room` at time `now` (unix seconds).
pub fn verify(secret: &[u8], room: &str, ticket: &str, now: u64) -> Result<Claims, TicketError> {
    if ticket.len() > MAX_TICKET_LEN {
        return Err(TicketError::Malformed);
    }
    let mut parts = ticket.split('.');
    let (Some(expiry), Some(user), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TicketError::Malformed);
    };
    let expiry: u64 = expiry.parse().map_err(|_| TicketError::Malformed)?;
    let user = URL_SAFE_NO_PAD
        .decode(user)
        .ok()
        .and_then(|u| String::from_utf8(u).ok())
        .ok_or(TicketError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TicketError::Malformed)?;
    // Constant-time comparison.
    mac(secret, room, expiry, &user)
        .verify_slice(&sig)
        .map_err(|_| TicketError::BadSignature)?;
    if now > expiry {
        return Err(TicketError::Expired);
    }
    Ok(Claims { user, expiry })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_and_malformed_tickets_are_refused() {
        let t = mint(b"k", "r", "u", 100);
        assert_eq!(verify(b"other", "r", &t, 1), Err(TicketError::BadSignature));
        let mut forged = t.clone();
        forged.replace_range(0..3, "999");
        assert_eq!(
            verify(b"k", "r", &forged, 1),
            Err(TicketError::BadSignature)
        );
        for bad in ["", "1.2", "a.b.c", "1.!!.x", "1.dQ.x.y", &"9".repeat(600)] {
            assert_eq!(
                verify(b"k", "r", bad, 1),
                Err(TicketError::Malformed),
                "{bad}"
            );
        }
    }
}
