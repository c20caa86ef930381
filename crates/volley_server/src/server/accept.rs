//! The accept side: connection slots (global, then per client address), the
//! TLS handshake when the server has a certificate, the hyper connection
//! with its deadlines, and raw refusals for connections refused before
//! hyper ever sees them.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tower::ServiceExt;
use tracing::{debug, info};

use super::deadline::{WriteDeadline, is_stall};
use super::{CountGuard, IpSlot, ServerConfig, Shared, lock};
use crate::refusal::Refusal;
use crate::tls::{TlsConfig, looks_like_plain_http};

/// What the routes know about the connection a request came on (a request
/// extension).
pub(super) struct Conn {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The peer address's connection slot; a WebSocket upgrade takes it
    /// along, so the slot lives exactly as long as the socket. `None` for a
    /// trusted proxy (its clients are counted at the upgrade) or when
    /// per-address connection limits are off.
    pub slot: Mutex<Option<IpSlot>>,
}

impl Conn {
    pub fn take_slot(&self) -> Option<IpSlot> {
        lock(&self.slot).take()
    }
}

pub(super) fn accept(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>, router: &Router) {
    // An upgraded connection leaves `connections` (hyper is done with it) and
    // is counted in `peers` instead.
    let open = shared.connections.load(Ordering::Relaxed) + shared.peers.load(Ordering::Relaxed);
    if open >= shared.config.max_connections {
        return refuse(stream, Refusal::TooManyConnections, shared);
    }
    let slot = if shared.is_trusted_proxy(peer.ip()) {
        None
    } else {
        match IpSlot::take(shared, peer.ip()) {
            Ok(slot) => Some(slot),
            Err(refusal) => return refuse(stream, refusal, shared),
        }
    };
    let _ = stream.set_nodelay(true);
    // Counted here, not in the task: the loop may accept many before any task runs.
    shared.connections.fetch_add(1, Ordering::Relaxed);
    let conn = Arc::new(Conn {
        peer,
        slot: Mutex::new(slot),
    });
    let router = router.clone();
    let shared = shared.clone();
    tokio::spawn(async move {
        let _open = CountGuard::adopt(&shared.connections);
        let config = &shared.config;
        let refusal = match &config.tls {
            None => {
                let io = WriteDeadline::new(stream, config.write_timeout);
                serve(io, router, conn, config).await
            }
            Some(tls) => match handshake(stream, tls, &shared).await {
                Ok(io) => serve(io, router, conn, config).await,
                Err(None) => return,
                Err(Some(refusal)) => {
                    // Scanners and stray clients: many on a public port.
                    shared.metrics.refused(refusal.label());
                    return debug!("cut a connection from {peer}: {refusal}");
                }
            },
        };
        let Some(refusal) = refusal else { return };
        shared.metrics.refused(refusal.label());
        info!("cut a connection from {peer}: {refusal}");
    });
}

/// The TLS handshake within the handshake timeout. A client speaking plain
/// HTTP is answered in plain HTTP ([`Refusal::PlainHttpOnTls`]): `Err(None)`,
/// already handled; a failed or late handshake is `Err(Some(refusal))`.
async fn handshake(
    stream: TcpStream,
    tls: &TlsConfig,
    shared: &Shared,
) -> Result<TlsStream<WriteDeadline<TcpStream>>, Option<Refusal>> {
    let config = &shared.config;
    let deadline = tokio::time::Instant::now() + config.handshake_timeout;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Err(_) => return Err(Some(Refusal::TlsHandshakeTimeout)),
        Ok(Ok(0) | Err(_)) => return Err(None),
        Ok(Ok(_)) if looks_like_plain_http(first[0]) => {
            refuse_plain(stream, Refusal::PlainHttpOnTls, shared);
            return Err(None);
        }
        Ok(Ok(_)) => {}
    }
    let io = WriteDeadline::new(stream, config.write_timeout);
    match tokio::time::timeout_at(deadline, tls.acceptor().accept(io)).await {
        Ok(Ok(stream)) => {
            shared.metrics.tls_handshakes.increment(1);
            Ok(stream)
        }
        Err(_) => Err(Some(Refusal::TlsHandshakeTimeout)),
        Ok(Err(e)) if is_stall(&e) => Err(Some(Refusal::SlowHttpReader)),
        Ok(Err(e)) => {
            debug!("TLS handshake failed: {e}");
            Err(Some(Refusal::TlsHandshakeFailed))
        }
    }
}

/// Serves HTTP/1.1 (and its WebSocket upgrade) on `io` until the client is
/// done; `Some` when the connection was cut for a limit.
async fn serve<S>(io: S, router: Router, conn: Arc<Conn>, config: &ServerConfig) -> Option<Refusal>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = conn.peer;
    let service = router.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(conn.clone());
        request
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.handshake_timeout)
        .max_buf_size(16 * 1024);
    let connection = http
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .with_upgrades();
    match tokio::time::timeout(config.http_timeout, connection).await {
        Ok(Ok(())) => None,
        Err(_) => Some(Refusal::HttpTimeout),
        Ok(Err(e)) if e.is_timeout() => Some(Refusal::HandshakeTimeout),
        Ok(Err(e)) if is_stall(&e) => Some(Refusal::SlowHttpReader),
        Ok(Err(e)) => {
            debug!("http connection from {peer} ended: {e}");
            None
        }
    }
}

/// Refuses a connection before it reaches hyper: in plain HTTP when the
/// port speaks it; when it speaks TLS, by closing (an answer would need a
/// handshake, the costly part of a connection, for a client that is being
/// refused because there are too many).
fn refuse(stream: TcpStream, refusal: Refusal, shared: &Shared) {
    if shared.config.tls.is_some() {
        shared.metrics.refused(refusal.label());
        return debug!("refused a connection: {refusal}");
    }
    refuse_plain(stream, refusal, shared);
}

/// Answers a refused connection in plain HTTP and closes it without a reset:
/// the request is read (at most 16 KiB, at most one second) so that the
/// close does not discard the answer. Logged at debug: under a flood these
/// are many.
fn refuse_plain(stream: TcpStream, refusal: Refusal, shared: &Shared) {
    shared.metrics.refused(refusal.label());
    debug!("refused a connection: {refusal}");
    let status =
        StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let body = format!("{refusal}\n");
    let response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    );
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = stream;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            let mut total = 0;
            while total < 16 * 1024 {
                match stream.read(&mut sink).await? {
                    0 => break,
                    n => total += n,
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
    });
}
