//! The WebSocket to the signaling server in the browser (matchbox's
//! protocol, see [`crate::signal`]), through `ws_stream_wasm`.

use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use ws_stream_wasm::{WsMessage, WsMeta, WsStream};

use crate::signal::{self, Request};
use crate::transport::TransportError;
use crate::transport::mesh::Heard;

/// Connection attempts before the session gives up on the server.
const CONNECT_ATTEMPTS: u32 = 3;

/// Between two connection attempts.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The receiving half of the connection.
pub(in crate::transport) struct Reader(SplitStream<WsStream>);

/// The sending half.
pub(in crate::transport) struct Writer(SplitSink<WsStream, WsMessage>);

/// Connects to `url` (`ws://` or `wss://`), trying [`CONNECT_ATTEMPTS`] times.
pub(super) async fn connect(url: &str) -> Result<(Reader, Writer), TransportError> {
    let mut attempt = 1;
    loop {
        match WsMeta::connect(url, None).await {
            Ok((_, stream)) => {
                let (sink, stream) = stream.split();
                return Ok((Reader(stream), Writer(sink)));
            }
            Err(e) if attempt < CONNECT_ATTEMPTS => {
                tracing::warn!("signaling server {url}: {e}; trying again");
                attempt += 1;
                futures_timer::Delay::new(RETRY_AFTER).await;
            }
            Err(e) => {
                return Err(TransportError(format!(
                    "cannot reach the signaling server at {url}: {e}"
                )));
            }
        }
    }
}

impl Writer {
    /// Sends a request.
    pub(super) async fn send(&mut self, request: &Request) -> Result<(), TransportError> {
        self.0
            .send(WsMessage::Text(signal::encode_request(request)))
            .await
            .map_err(|e| TransportError(format!("signaling: {e}")))
    }
}

impl Reader {
    /// Waits for the next message from the server (the browser has no
    /// frame size limit to set: `decode_event` refuses what is too large).
    pub(super) async fn next(&mut self) -> Heard {
        match self.0.next().await {
            Some(WsMessage::Text(text)) => Heard::text(&text),
            Some(WsMessage::Binary(_)) => Heard::Nothing,
            None => Heard::Closed("connection ended".into()),
        }
    }
}
