//! Access tickets: `?ticket=<expiry>.<user>.<signature>`.
//!
//! The signature is HMAC-SHA256(secret, "room\nexpiry\nuser"), base64url
//! without padding, so a ticket is bound to one room and one user until its
//! expiry (unix seconds). The user is base64url too, so any string fits in a
//! URL. Verification is a pure function of the ticket and the current time.
//!
//! Every ticket has exactly one spelling (the expiry in plain decimal, no
//! sign or leading zero; base64 without padding or stray bits), so the
//! server can count connections per ticket by its text. Tickets whose expiry
//! lies further ahead than the server's maximum lifetime are refused: a
//! leaked long-lived ticket would otherwise be good for years.
//!
//! ```
//! use std::time::Duration;
//! use volley_server::ticket::{mint, verify};
//! let day = Duration::from_secs(86_400);
//! let t = mint(b"secret", "arena", "alice", 1_000);
//! assert_eq!(verify(b"secret", "arena", &t, 999, day).unwrap().user, "alice");
//! assert!(verify(b"secret", "arena", &t, 1_001, day).is_err()); // expired
//! assert!(verify(b"secret", "other", &t, 999, day).is_err()); // another room
//! assert!(verify(b"secret", "arena", &t, 0, Duration::from_secs(60)).is_err()); // lives too long
//! ```

use std::time::Duration;

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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum TicketError {
    /// The server requires a ticket and none was given.
    #[error("a ticket is required (?ticket=...)")]
    Missing,
    /// Not of the form `expiry.user.signature` in its one canonical
    /// spelling, or too long.
    #[error("malformed ticket")]
    Malformed,
    /// Past its expiry.
    #[error("ticket expired")]
    Expired,
    /// The signature does not match: forged, or for another room.
    #[error("ticket signature invalid (forged, or for another room)")]
    BadSignature,
    /// Valid, but it expires further ahead than the server's maximum ticket
    /// lifetime (`--ticket-max-ttl`).
    #[error("ticket lives too long (at most {max_secs} s)")]
    TtlTooLong {
        /// The longest lifetime accepted, in seconds.
        max_secs: u64,
    },
}

impl TicketError {
    /// The metric label of the refusal.
    pub fn label(&self) -> &'static str {
        match self {
            TicketError::Missing => "ticket_missing",
            TicketError::Malformed => "ticket_malformed",
            TicketError::Expired => "ticket_expired",
            TicketError::BadSignature => "ticket_forged",
            TicketError::TtlTooLong { .. } => "ticket_ttl_too_long",
        }
    }
}

/// `a.b.c` split in its three parts (tickets and resume tokens); `None`
/// for any other number of dots.
pub(crate) fn three_parts(text: &str) -> Option<(&str, &str, &str)> {
    let mut parts = text.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(c), None) => Some((a, b, c)),
        _ => None,
    }
}

/// Parses an expiry written in plain decimal: no sign, no leading zero, no
/// spaces, so that one ticket has exactly one spelling.
fn canonical_expiry(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if !digits || leading_zero {
        return None;
    }
    text.parse().ok()
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

/// Checks a ticket for `room` at time `now` (unix seconds); a ticket that
/// expires more than `max_ttl` after `now` is refused.
pub fn verify(
    secret: &[u8],
    room: &str,
    ticket: &str,
    now: u64,
    max_ttl: Duration,
) -> Result<Claims, TicketError> {
    if ticket.len() > MAX_TICKET_LEN {
        return Err(TicketError::Malformed);
    }
    let (expiry, user, sig) = three_parts(ticket).ok_or(TicketError::Malformed)?;
    let expiry = canonical_expiry(expiry).ok_or(TicketError::Malformed)?;
    let user = URL_SAFE_NO_PAD
        .decode(user)
        .ok()
        .and_then(|u| String::from_utf8(u).ok())
        .ok_or(TicketError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TicketError::Malformed)?;
    // The MAC reads "room\nexpiry\nuser", unambiguous only while the room
    // holds no newline: else a ticket minted for a user "<digits>\n<name>"
    // would read as one for room "<room>\n<expiry>" and user <name>.
    // Signaling rooms cannot hold one; `/api/ice`'s `?room=` can.
    if room.contains('\n') {
        return Err(TicketError::BadSignature);
    }
    // Constant-time comparison.
    mac(secret, room, expiry, &user)
        .verify_slice(&sig)
        .map_err(|_| TicketError::BadSignature)?;
    if now > expiry {
        return Err(TicketError::Expired);
    }
    if expiry - now > max_ttl.as_secs() {
        return Err(TicketError::TtlTooLong {
            max_secs: max_ttl.as_secs(),
        });
    }
    Ok(Claims { user, expiry })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn forged_and_malformed_tickets_are_refused() {
        let t = mint(b"k", "r", "u", 100);
        assert_eq!(
            verify(b"other", "r", &t, 1, DAY),
            Err(TicketError::BadSignature)
        );
        let mut forged = t.clone();
        forged.replace_range(0..3, "999");
        assert_eq!(
            verify(b"k", "r", &forged, 1, DAY),
            Err(TicketError::BadSignature)
        );
        for bad in ["", "1.2", "a.b.c", "1.!!.x", "1.dQ.x.y", &"9".repeat(600)] {
            assert_eq!(
                verify(b"k", "r", bad, 1, DAY),
                Err(TicketError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_room_with_a_newline_takes_no_ticket() {
        // Minted for "arena" and a user that starts with an expiry: the
        // same MAC input as room "arena\n100", expiry 500, user "mallory".
        let t = mint(b"k", "arena", "500\nmallory", 100);
        let (_, sig) = t.rsplit_once('.').unwrap();
        let reread = format!("500.{}.{sig}", URL_SAFE_NO_PAD.encode("mallory"));
        assert_eq!(
            verify(b"k", "arena\n100", &reread, 1, DAY),
            Err(TicketError::BadSignature)
        );
        assert!(verify(b"k", "arena", &t, 1, DAY).is_ok());
    }

    #[test]
    fn every_one_byte_change_is_refused() {
        let t = mint(b"k", "arena", "alice", 1_000);
        let bytes = t.as_bytes();
        let alphabet = b"0123456789.-_=+/ aAzZ\xff";
        let mut tried = 0;
        for i in 0..=bytes.len() {
            let mut changed: Vec<Vec<u8>> = Vec::new();
            if i < bytes.len() {
                let mut cut = bytes.to_vec();
                cut.remove(i);
                changed.push(cut);
            }
            for &b in alphabet {
                let mut put = bytes.to_vec();
                put.insert(i, b);
                changed.push(put);
                if i < bytes.len() && bytes[i] != b {
                    let mut swapped = bytes.to_vec();
                    swapped[i] = b;
                    changed.push(swapped);
                }
            }
            for c in changed {
                let c = String::from_utf8_lossy(&c);
                assert!(verify(b"k", "arena", &c, 1, DAY).is_err(), "{c}");
                tried += 1;
            }
        }
        assert!(tried > 1000);
    }

    #[test]
    fn only_the_canonical_spelling_is_accepted() {
        let t = mint(b"k", "r", "u", 100);
        assert!(verify(b"k", "r", &t, 1, DAY).is_ok());
        // The same signature under other spellings of 100 is not the same ticket.
        let rest = t.strip_prefix("100").unwrap();
        for expiry in ["0100", "+100", " 100", "100 ", "1_00", "00100"] {
            let respelled = format!("{expiry}{rest}");
            assert_eq!(
                verify(b"k", "r", &respelled, 1, DAY),
                Err(TicketError::Malformed),
                "{respelled}"
            );
        }
        assert_eq!(canonical_expiry("0"), Some(0));
        assert_eq!(canonical_expiry("18446744073709551615"), Some(u64::MAX));
        assert_eq!(canonical_expiry("18446744073709551616"), None);
        // Padding or stray bits in the base64 parts are other spellings too.
        let (expiry_user, sig) = t.rsplit_once('.').unwrap();
        assert_eq!(
            verify(b"k", "r", &format!("{expiry_user}.{sig}="), 1, DAY),
            Err(TicketError::Malformed)
        );
    }

    #[test]
    fn lifetimes_beyond_the_maximum_are_refused() {
        let now = 1_000_000;
        let hour = Duration::from_secs(3600);
        let ok = mint(b"k", "r", "u", now + 3600);
        assert_eq!(
            verify(b"k", "r", &ok, now, hour).unwrap().expiry,
            now + 3600
        );
        let long = mint(b"k", "r", "u", now + 3601);
        assert_eq!(
            verify(b"k", "r", &long, now, hour),
            Err(TicketError::TtlTooLong { max_secs: 3600 })
        );
        // The same ticket becomes acceptable as its expiry draws near.
        assert!(verify(b"k", "r", &long, now + 1, hour).is_ok());
        let forever = mint(b"k", "r", "u", u64::MAX);
        assert!(verify(b"k", "r", &forever, now, hour).is_err());
    }
}
