//! The ICE servers handed to clients by `GET /api/ice`.
//!
//! TURN servers get ephemeral credentials in the TURN REST API form (as
//! coturn's `use-auth-secret` expects): username `expiry:user`, credential
//! base64(HMAC-SHA1(secret, username)). With nothing configured the list is
//! empty: on a LAN or loopback host candidates suffice, and unreachable STUN
//! servers only slow connection set-up down.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;
use std::time::Duration;

/// ICE configuration from the command line.
#[derive(Debug, Clone, Default)]
pub struct IceConfig {
    /// `stun:` URLs.
    pub stun: Vec<String>,
    /// `turn:`/`turns:` URLs.
    pub turn: Vec<String>,
    /// Shared secret with the TURN server; without it TURN URLs are not handed out.
    pub turn_secret: Option<String>,
    /// Lifetime of TURN credentials.
    pub turn_ttl: Duration,
    /// The user part of TURN usernames.
    pub turn_user: String,
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

/// Builds the ICE server list at `now` (unix seconds).
pub fn ice_servers(config: &IceConfig, now: u64) -> IceResponse {
    let mut ice_servers = Vec::new();
    if !config.stun.is_empty() {
        ice_servers.push(IceServer {
            urls: config.stun.clone(),
            username: None,
            credential: None,
        });
    }
    if let (false, Some(secret)) = (config.turn.is_empty(), &config.turn_secret) {
        let username = format!("{}:{}", now + config.turn_ttl.as_secs(), config.turn_user);
        ice_servers.push(IceServer {
            urls: config.turn.clone(),
            credential: Some(turn_credential(secret.as_bytes(), &username)),
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
        let r = ice_servers(&IceConfig::default(), 0);
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
        let r = ice_servers(&config, 1_700_000_000);
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
        assert_eq!(ice_servers(&no_secret, 0).ice_servers.len(), 1);
    }
}
