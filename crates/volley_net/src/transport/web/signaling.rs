//! The WebSocket to the signaling server in the browser (matchbox's
//! protocol, see [`crate::signal`]), through `ws_stream_wasm`.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use ws_stream_wasm::{WsMessage, WsMeta, WsStream};

use crate::signal::{self, Request};
use crate::transport::TransportError;
use crate::transport::comeback::ConnectError;
use crate::transport::mesh::Heard;

/// The receiving half of the connection.
pub(in crate::transport) struct Reader(SplitStream<WsStream>);

/// The sending half.
pub(in crate::transport) struct Writer(SplitSink<WsStream, WsMessage>);

/// Connects to `url` (`ws://` or `wss://`).
/// The browser does not tell why an upgrade failed, so a refused token
/// cannot be told apart: coming back stops only at a close code.
pub(super) async fn connect(url: &str) -> Result<(Reader, Writer), ConnectError> {
    let (_, stream) = WsMeta::connect(url, None)
        .await
        .map_err(|e| ConnectError::from(e.to_string()))?;
    let (sink, stream) = stream.split();
    Ok((Reader(stream), Writer(sink)))
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
            None => Heard::Closed {
                why: "connection ended".into(),
                code: None,
            },
        }
    }
}
