//! ICE servers from the signaling server's `GET /api/ice` (STUN, and TURN
//! with short-lived credentials), so clients need no ICE configuration of
//! their own. Parsing and URL derivation are pure; the fetch is the thin
//! I/O around them (`fetch` in the browser, a blocking GET on a helper
//! thread natively — the call is made once per session).

use std::time::Duration;

use crate::IceServer;
use crate::tls::TlsRoots;

/// Largest `/api/ice` body accepted.
pub const MAX_ICE_BODY: usize = 64 * 1024;

/// How long a fetch may take before the session goes on without it.
pub const ICE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why `/api/ice` gave nothing usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IceError {
    /// The room URL is not `ws://` or `wss://`.
    #[error("not a ws:// or wss:// URL: {0}")]
    NotWebSocket(String),
    /// The request failed (connection, status, timeout).
    #[error("GET {url} failed: {reason}")]
    Fetch {
        /// What was asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The body was not the expected JSON or too large.
    #[error("unexpected /api/ice answer: {0}")]
    Body(String),
}

/// `ws://host:port/room?x` → `http://host:port/api/ice` (`wss` → `https`).
/// A room URL with a `ticket=` passes it on with the room
/// (`/api/ice?room=ROOM&ticket=T`): a server with tickets wants one there too.
pub fn ice_url(room_url: &str) -> Result<String, IceError> {
    let (scheme, rest) = if let Some(rest) = room_url.strip_prefix("ws://") {
        ("http", rest)
    } else if let Some(rest) = room_url.strip_prefix("wss://") {
        ("https", rest)
    } else {
        return Err(IceError::NotWebSocket(room_url.to_string()));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(IceError::NotWebSocket(room_url.to_string()));
    }
    let after = &rest[authority.len()..];
    let (path, query) = after.split_once('?').unwrap_or((after, ""));
    let query = query.split('#').next().unwrap_or_default();
    let ticket = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("ticket="))
        .filter(|t| !t.is_empty());
    Ok(match ticket {
        Some(ticket) => {
            let room = path.trim_start_matches('/');
            format!("{scheme}://{authority}/api/ice?room={room}&ticket={ticket}")
        }
        None => format!("{scheme}://{authority}/api/ice"),
    })
}

#[derive(serde::Deserialize)]
struct Body {
    #[serde(rename = "iceServers")]
    ice_servers: Vec<Entry>,
}

/// `RTCIceServer`: `urls` is a string or a list.
#[derive(serde::Deserialize)]
struct Entry {
    urls: Urls,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    credential: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Urls {
    One(String),
    Many(Vec<String>),
}

/// Parses an `/api/ice` body (`{"iceServers": [...]}`).
pub fn parse_ice_body(body: &[u8]) -> Result<Vec<IceServer>, IceError> {
    if body.len() > MAX_ICE_BODY {
        return Err(IceError::Body(format!(
            "{} bytes exceeds {MAX_ICE_BODY}",
            body.len()
        )));
    }
    let parsed: Body = serde_json::from_slice(body).map_err(|e| IceError::Body(e.to_string()))?;
    Ok(parsed
        .ice_servers
        .into_iter()
        .map(|e| IceServer {
            urls: match e.urls {
                Urls::One(url) => vec![url],
                Urls::Many(urls) => urls,
            },
            username: e.username,
            credential: e.credential,
        })
        .filter(|s| !s.urls.is_empty())
        .collect())
}

/// Fetches and parses the ICE servers for `room_url`'s server, trusting
/// `tls` for an `https://` server (natively; the browser uses its own roots).
pub async fn fetch_ice_servers(room_url: &str, tls: &TlsRoots) -> Result<Vec<IceServer>, IceError> {
    let url = ice_url(room_url)?;
    let body = get(&url, tls).await.map_err(|reason| IceError::Fetch {
        url: url.clone(),
        reason,
    })?;
    parse_ice_body(&body)
}

#[cfg(not(target_arch = "wasm32"))]
async fn get(url: &str, tls: &TlsRoots) -> Result<Vec<u8>, String> {
    let (tx, rx) = futures_channel::oneshot::channel();
    let url = url.to_string();
    let tls = crate::tls::native::ureq_config(tls);
    std::thread::Builder::new()
        .name("volley-ice".into())
        .spawn(move || {
            let _ = tx.send(get_blocking(&url, tls));
        })
        .map_err(|e| e.to_string())?;
    rx.await.map_err(|_| "the fetch thread ended".to_string())?
}

#[cfg(not(target_arch = "wasm32"))]
fn get_blocking(url: &str, tls: ureq::tls::TlsConfig) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(ICE_TIMEOUT))
        .tls_config(tls)
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(MAX_ICE_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    Ok(body)
}

#[cfg(target_arch = "wasm32")]
async fn get(url: &str, _tls: &TlsRoots) -> Result<Vec<u8>, String> {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    let describe = |e: wasm_bindgen::JsValue| format!("{e:?}");
    let window = web_sys::window().ok_or("no window")?;
    // The same bound as natively: an unanswered fetch must not hold the session back.
    let init = web_sys::RequestInit::new();
    let millis = u32::try_from(ICE_TIMEOUT.as_millis()).unwrap_or(u32::MAX);
    init.set_signal(Some(&web_sys::AbortSignal::timeout_with_u32(millis)));
    let response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(describe)?;
    let response: web_sys::Response = response.dyn_into().map_err(describe)?;
    if !response.ok() {
        return Err(format!("HTTP {}", response.status()));
    }
    let text = JsFuture::from(response.text().map_err(describe)?)
        .await
        .map_err(describe)?;
    Ok(text.as_string().unwrap_or_default().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_url_from_room_urls() {
        assert_eq!(
            ice_url("ws://127.0.0.1:3536/room?next=2").unwrap(),
            "http://127.0.0.1:3536/api/ice"
        );
        assert_eq!(
            ice_url("wss://play.example/a").unwrap(),
            "https://play.example/api/ice"
        );
        assert!(ice_url("http://x/").is_err());
        assert!(ice_url("ws:///room").is_err());
    }

    #[test]
    fn bodies() {
        let body = br#"{"iceServers":[{"urls":["stun:s:3478"]},{"urls":"turn:t:3478","username":"u","credential":"c"}]}"#;
        let servers = parse_ice_body(body).unwrap();
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].urls, vec!["stun:s:3478"]);
        assert_eq!(servers[1].username.as_deref(), Some("u"));
        assert_eq!(parse_ice_body(br#"{"iceServers":[]}"#).unwrap(), vec![]);
        assert!(parse_ice_body(b"<html>").is_err());
        assert!(parse_ice_body(&vec![b' '; MAX_ICE_BODY + 1]).is_err());
    }

    #[test]
    fn a_ticket_travels_to_api_ice_with_its_room() {
        assert_eq!(
            ice_url("wss://example.org/arena?ticket=123.YQ.sig&next=2").unwrap(),
            "https://example.org/api/ice?room=arena&ticket=123.YQ.sig"
        );
        assert_eq!(
            ice_url("ws://127.0.0.1:3536/arena?next=2").unwrap(),
            "http://127.0.0.1:3536/api/ice"
        );
    }
}
