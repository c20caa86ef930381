//! The HTTP routes: `/health`, `/metrics`, `/api/rooms`, `/api/ice`, and the
//! web directory; WebSocket upgrades on any other path go to the signaling
//! peer. Every request first learns its client address (see
//! [`crate::forwarded`]) and passes the per-address request limit.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use rand::Rng;
use tokio::sync::oneshot;
use tower::ServiceExt;
use tracing::{debug, info};

use super::Shared;
use super::accept::Conn;
use super::actor::ToActor;
use super::peer;
use crate::cluster::ReserveError;
use crate::forwarded::client_ip;
use crate::ice::ice_servers;
use crate::limits::{IpAction, ip_key};
use crate::lobby::PrivateRoomError;
use crate::query;
use crate::refusal::Refusal;
use crate::ticket::{self, TicketError};

/// The client's address (a request extension set by [`client_limits`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientIp(pub IpAddr);

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/metrics", get(metrics))
        .route("/api/rooms", get(list_rooms).post(create_room))
        .route("/api/nodes", get(list_nodes))
        .route("/api/ice", get(ice))
        .fallback(signaling_or_web)
        .layer(DefaultBodyLimit::max(4096))
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            client_limits,
        ))
        .with_state(shared)
}

/// Finds the client's address and applies the per-address request rate
/// (upgrades are counted as joins instead, in [`peer::signaling`]).
async fn client_limits(
    State(shared): State<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<Arc<Conn>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.peer.ip());
    let client = client_ip(peer, &shared.config.trusted_proxies, request.headers());
    request.extensions_mut().insert(ClientIp(client));
    if !peer::is_websocket_upgrade(&request)
        && let Err(refusal) = shared.check_ip(client, IpAction::Http)
    {
        return refuse(&shared, refusal, client);
    }
    next.run(request).await
}

/// Answers a refusal over HTTP, counted and logged (per-address limits at
/// debug level: a flood must not become a flood of log lines).
pub(super) fn refuse(shared: &Shared, refusal: Refusal, client: IpAddr) -> Response {
    shared.metrics.refused(refusal.label());
    let status =
        StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if status == StatusCode::TOO_MANY_REQUESTS {
        debug!("refused a request from {client}: {refusal}");
    } else {
        info!("refused a request from {client}: {refusal}");
    }
    (status, format!("{refusal}\n")).into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
}

fn unavailable() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "server shutting down\n").into_response()
}

/// The snapshot the actor last published: no work per request.
async fn list_rooms(State(shared): State<Arc<Shared>>) -> Response {
    let body = shared.rooms.borrow().clone();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The cluster's live nodes and their advertised URLs (`[]` without a
/// cluster): where a client goes when its node is lost.
async fn list_nodes(State(shared): State<Arc<Shared>>) -> Response {
    let body = shared.nodes.borrow().clone();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Room codes: 12 characters without look-alikes (about 59 bits).
fn room_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..12)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

async fn create_room(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let client = client_of(&request);
    if let Err(refusal) = shared.check_ip(client, IpAction::CreateRoom) {
        return refuse(&shared, refusal, client);
    }
    for _ in 0..3 {
        let code = room_code();
        let (reply, result) = oneshot::channel();
        let request = ToActor::ReservePrivate {
            code: code.clone(),
            owner: Some(ip_key(client)),
            reply,
        };
        if shared.actor.send(request).await.is_err() {
            return unavailable();
        }
        let refusal = match result.await {
            Ok(Ok(())) => {
                return (
                    StatusCode::CREATED,
                    axum::Json(serde_json::json!({ "code": code })),
                )
                    .into_response();
            }
            Ok(Err(ReserveError::Lobby(PrivateRoomError::CodeTaken))) => continue,
            Ok(Err(ReserveError::Lobby(PrivateRoomError::TooMany(n)))) => {
                Refusal::TooManyPrivateRooms(n)
            }
            Ok(Err(ReserveError::Lobby(PrivateRoomError::TooManyForOwner(n)))) => {
                Refusal::TooManyPrivateRoomsFromIp(n)
            }
            Ok(Err(ReserveError::ClusterUnavailable)) => Refusal::ClusterUnavailable,
            Err(_) => return unavailable(),
        };
        return refuse(&shared, refusal, client);
    }
    (StatusCode::SERVICE_UNAVAILABLE, "no free room code\n").into_response()
}

pub(super) fn client_of(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ClientIp>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0)
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `GET /api/ice[?room=<room>&ticket=<ticket>]`: never cached, since the
/// TURN credentials in it expire and name their user.
async fn ice(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let client = client_of(&request);
    let user = match &shared.config.ticket_secret {
        // Per client, for the TURN server's per-user quotas.
        None => Some(format!(
            "{}.{}",
            shared.config.ice.turn_user,
            ip_key(client)
        )),
        Some(secret) => {
            let query = match query::ice(request.uri().query()) {
                Ok(query) => query,
                Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
            };
            let checked = match &query.ticket {
                None => Err(TicketError::Missing),
                Some(t) => ticket::verify(
                    secret.expose(),
                    &query.room,
                    t,
                    unix_now(),
                    shared.config.ticket_max_ttl,
                ),
            };
            match checked {
                Ok(claims) => Some(claims.user),
                Err(e) => return refuse(&shared, Refusal::Ticket(e), client),
            }
        }
    };
    let mut response =
        axum::Json(ice_servers(&shared.config.ice, unix_now(), user.as_deref())).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn signaling_or_web(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    if peer::is_websocket_upgrade(&request) {
        return peer::signaling(shared, request).await;
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    match &shared.config.web_dir {
        Some(dir) => {
            let mut request = request;
            if let Some(path) = web_path(request.uri().path())
                && let Ok(uri) = path.parse()
            {
                *request.uri_mut() = uri;
            }
            let cache = cache_control(request.uri().path());
            let serve = tower_http::services::ServeDir::new(dir)
                .append_index_html_on_directories(true)
                .precompressed_br()
                .precompressed_gzip();
            let mut response = match serve.oneshot(request).await {
                Ok(response) => response.map(Body::new),
                Err(never) => match never {},
            };
            if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            }
            response
        }
        None if request.uri().path() == "/" => Html(
            "<!doctype html><title>volley-server</title><h1>volley-server</h1>\
             <p>Signaling at <code>ws://this-host/&lt;room&gt;</code>. \
             API: <a href=\"/api/rooms\">/api/rooms</a>, <a href=\"/api/ice\">/api/ice</a>, \
             <a href=\"/metrics\">/metrics</a>, <a href=\"/health\">/health</a>. \
             Start with <code>--web-dir</code> to serve games here.</p>",
        )
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// How long a browser may keep a file of the web directory: forever for
/// the bundles' content-hashed files (`<game>-<16 hex>.js`,
/// `<game>-<16 hex>_bg.wasm`: a new build has new names), otherwise only
/// after asking again (pages and manifests name the current files).
fn cache_control(path: &str) -> &'static str {
    let file = path.rsplit('/').next().unwrap_or_default();
    let stem = file
        .strip_suffix("_bg.wasm")
        .or_else(|| file.strip_suffix(".js"));
    let hashed = stem
        .and_then(|stem| stem.rsplit_once('-'))
        .is_some_and(|(name, hash)| {
            !name.is_empty() && hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())
        });
    if hashed {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

/// Maps the game URLs onto the web directory's layout (`cargo xtask web`):
/// `/play/<game>` (any query) is `<game>/index.html`, `/play/<game>/<file>`
/// is `<game>/<file>`; other paths are served as they are.
fn web_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/play/")?;
    match rest.split_once('/') {
        None if !rest.is_empty() => Some(format!("/{rest}/index.html")),
        None => None,
        Some((game, file)) => Some(format!("/{game}/{file}")),
    }
}

#[cfg(test)]
mod tests {
    use super::cache_control;

    #[test]
    fn only_content_hashed_bundle_files_are_immutable() {
        let forever = "public, max-age=31536000, immutable";
        assert_eq!(
            cache_control("/box_game/box_game-0123456789abcdef.js"),
            forever
        );
        assert_eq!(
            cache_control("/box_game/box_game-0123456789abcdef_bg.wasm"),
            forever
        );
        for path in [
            "/box_game/index.html",
            "/box_game/manifest.json",
            "/box_game/box_game.js",
            "/box_game/box_game-0123.js",
            "/box_game/-0123456789abcdef.js",
            "/box_game/box_game-0123456789abcdeg.js",
            "/",
            "/games.json",
        ] {
            assert_eq!(cache_control(path), "no-cache", "{path}");
        }
    }
}
