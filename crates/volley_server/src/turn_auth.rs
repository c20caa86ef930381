//! Checking, at the built-in TURN server, the credentials `/api/ice` hands
//! out (see [`crate::ice`]): username `expiry:user`, password
//! base64(HMAC-SHA1(secret, username)). Pure: the clock is passed in.
//!
//! ```
//! use volley_server::ice::turn_credential;
//! use volley_server::turn_auth::{TurnRefusal, password_for};
//! let secret = b"secret";
//! assert_eq!(
//!     password_for(secret, "1700003600:volley", 1_700_000_000),
//!     Ok(turn_credential(secret, "1700003600:volley"))
//! );
//! assert!(matches!(
//!     password_for(secret, "1700003600:volley", 1_700_003_601),
//!     Err(TurnRefusal::Expired { .. })
//! ));
//! ```

use crate::ice::turn_credential;

/// Longest username accepted (`expiry:user`: 20 digits, a colon, a user
/// part of at most 64 characters, with room to spare).
pub const MAX_TURN_USERNAME: usize = 128;

/// Why a TURN request's credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnRefusal {
    /// Not `expiry:user`, or longer than [`MAX_TURN_USERNAME`].
    #[error("malformed TURN username")]
    Malformed,
    /// The credentials' time is up.
    #[error("TURN credentials expired at {expiry} (now {now})")]
    Expired {
        /// When they expired (unix seconds).
        expiry: u64,
        /// Now (unix seconds).
        now: u64,
    },
}

impl TurnRefusal {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            TurnRefusal::Malformed => "turn_malformed_username",
            TurnRefusal::Expired { .. } => "turn_expired_credentials",
        }
    }
}

/// The password `username` must have been given with, if it is well formed
/// and not expired at `now` (unix seconds). The TURN server then checks the
/// request's message integrity with it: a wrong password fails there.
pub fn password_for(secret: &[u8], username: &str, now: u64) -> Result<String, TurnRefusal> {
    if username.len() > MAX_TURN_USERNAME {
        return Err(TurnRefusal::Malformed);
    }
    // The user part is only a label (the HMAC covers it): empty is fine.
    let (expiry, _user) = username.split_once(':').ok_or(TurnRefusal::Malformed)?;
    if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TurnRefusal::Malformed);
    }
    let expiry: u64 = expiry.parse().map_err(|_| TurnRefusal::Malformed)?;
    if expiry < now {
        return Err(TurnRefusal::Expired { expiry, now });
    }
    Ok(turn_credential(secret, username))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_ice_mints_is_accepted_until_it_expires() {
        let config = crate::ice::IceConfig {
            turn: vec!["turn:example:3478".into()],
            turn_secret: Some("s3cret".into()),
            turn_ttl: std::time::Duration::from_secs(60),
            turn_user: "volley".into(),
            ..Default::default()
        };
        let minted = crate::ice::ice_servers(&config, 1_000, Some("ann:evil\n"));
        let turn = &minted.ice_servers[0];
        let username = turn.username.as_deref().unwrap();
        assert_eq!(username, "1060:ann_evil_");
        assert_eq!(
            password_for(b"s3cret", username, 1_059).ok(),
            turn.credential.clone()
        );
        assert!(password_for(b"s3cret", username, 1_060).is_ok());
        assert_eq!(
            password_for(b"s3cret", username, 1_061),
            Err(TurnRefusal::Expired {
                expiry: 1_060,
                now: 1_061
            })
        );
        // Another secret gives another password: integrity fails later.
        assert_ne!(
            password_for(b"other", username, 1_000).ok(),
            turn.credential.clone()
        );
    }

    #[test]
    fn malformed_usernames_are_refused() {
        for name in [
            "",
            "volley",
            ":volley",
            "-5:volley",
            "+5:volley",
            "99999999999999999999999:x",
            &format!("1:{}", "a".repeat(MAX_TURN_USERNAME)),
        ] {
            assert_eq!(
                password_for(b"s", name, 0),
                Err(TurnRefusal::Malformed),
                "{name}"
            );
        }
    }
}
