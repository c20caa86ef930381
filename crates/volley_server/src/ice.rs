//! The ICE servers handed to clients by `GET /api/ice`.
//!
//! TURN servers get ephemeral credentials in the TURN REST API form (as
//! coturn's `use-auth-secret` expects): username `expiry:user`, credential
//! base64(HMAC-SHA1(secret, username)). With nothing configured the list is
//! empty: on a LAN or loopback host candidates suffice, and unreachable STUN
//! servers only slow connection set-up down.
//!
//! On a `--ticket-secret` server the endpoint needs a ticket too (anyone
//! could otherwise use the TURN relay), and the TURN username carries the
//! ticket's user, so the relay's logs say who used it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;
use std::time::Duration;

use crate::secret::Secret;

/// ICE configuration from the command line.
#[derive(Debug, Clone)]
pub struct IceConfig {
    /// `stun:` URLs.
    pub stun: Vec<String>,
    /// `turn:`/`turns:` URLs.
    pub turn: Vec<String>,
    /// Shared secret with the TURN server; without it TURN URLs are not handed out.
    pub turn_secret: Option<Secret>,
    /// Lifetime of TURN credentials.
    pub turn_ttl: Duration,
    /// The user part of TURN usernames when no ticket names one, followed
    /// by `.` and the client's address (its /64 for IPv6): the built-in
    /// TURN server's per-user quotas then hold per client.
    pub turn_user: String,
}

impl Default for IceConfig {
    /// No servers; credentials, once there is a TURN server, for an hour
    /// under the user `volley` (the command line's defaults).
    fn default() -> Self {
        IceConfig {
            stun: Vec::new(),
            turn: Vec::new(),
            turn_secret: None,
            turn_ttl: Duration::from_secs(3600),
            turn_user: "volley".into(),
        }
    }
}

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    /// Server URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The body of `GET /api/ice`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceResponse {
    /// As in `RTCConfiguration`.
    #[serde(rename = "iceServers")]
    pub ice_servers: Vec<IceServer>,
}

/// Longest user part of a TURN username.
const MAX_TURN_USER: usize = 64;

/// The user part of a TURN username: `user` (a ticket's, chosen by whoever
/// minted it) reduced to `A-Z a-z 0-9 . _ @ -` so that it cannot smuggle a
/// `:` or control characters into the relay's parsing and logs.
fn turn_user(user: &str) -> String {
    user.chars()
        .take(MAX_TURN_USER)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Builds the ICE server list at `now` (unix seconds); TURN usernames carry
/// `user` (a ticket's user) or else the configured user.
pub fn ice_servers(config: &IceConfig, now: u64, user: Option<&str>) -> IceResponse {
    let mut ice_servers = Vec::new();
    if !config.stun.is_empty() {
        ice_servers.push(IceServer {
            urls: config.stun.clone(),
            username: None,
            credential: None,
        });
    }
    if let (false, Some(secret)) = (config.turn.is_empty(), &config.turn_secret) {
        let user = match user {
            Some(user) if !user.is_empty() => turn_user(user),
            _ => config.turn_user.clone(),
        };
        let expiry = now.saturating_add(config.turn_ttl.as_secs());
        let username = format!("{expiry}:{user}");
        ice_servers.push(IceServer {
            urls: config.turn.clone(),
            credential: Some(turn_credential(secret.expose(), &username)),
            username: Some(username),
        });
    }
    IceResponse { ice_servers }
}

/// base64(HMAC-SHA1(secret, username)).
pub fn turn_credential(secret: &[u8], username: &str) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_without_configuration() {
        let r = ice_servers(&IceConfig::default(), 0, None);
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"iceServers":[]}"#);
    }

    #[test]
    fn turn_rest_credentials() {
        // Reference value: python3 -c "import hmac,hashlib,base64;
        // print(base64.b64encode(hmac.new(b'secret', b'1700003600:volley', hashlib.sha1).digest()))"
        let config = IceConfig {
            stun: vec!["stun:stun.example:3478".into()],
            turn: vec!["turn:turn.example:3478".into()],
            turn_secret: Some("secret".into()),
            turn_ttl: Duration::from_secs(3600),
            turn_user: "volley".into(),
        };
        let r = ice_servers(&config, 1_700_000_000, None);
        assert_eq!(r.ice_servers.len(), 2);
        let turn = &r.ice_servers[1];
        assert_eq!(turn.username.as_deref(), Some("1700003600:volley"));
        assert_eq!(
            turn.credential.as_deref(),
            Some("sc3vx/NdrH2QqYDAzU8G+Ah15CQ=")
        );
        // TURN URLs without a secret would be useless: they are left out.
        let no_secret = IceConfig {
            turn_secret: None,
            ..config
        };
        assert_eq!(ice_servers(&no_secret, 0, None).ice_servers.len(), 1);
    }

    #[test]
    fn a_tickets_user_names_the_turn_user() {
        let config = IceConfig {
            turn: vec!["turn:turn.example:3478".into()],
            turn_secret: Some("secret".into()),
            turn_ttl: Duration::from_secs(60),
            turn_user: "volley".into(),
            ..IceConfig::default()
        };
        let username = |user| {
            ice_servers(&config, 100, user).ice_servers[0]
                .username
                .clone()
                .unwrap()
        };
        assert_eq!(username(Some("alice")), "160:alice");
        assert_eq!(username(Some("eve:1:\n\u{7}é")), "160:eve_1____");
        assert_eq!(username(Some("")), "160:volley");
        assert_eq!(username(None), "160:volley");
        assert_eq!(username(Some(&"x".repeat(500))).len(), 4 + MAX_TURN_USER);
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let config = IceConfig {
            turn_secret: Some("hunter2".into()),
            ..IceConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
