//! The WebSocket to the signaling server (matchbox's protocol, see
//! [`crate::signal`]).

use std::time::Duration;

use async_tungstenite::WebSocketStream;
use async_tungstenite::smol::{ConnectStream, connect_async_with_config};
use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::{WebSocketReceiver, WebSocketSender};
use futures_util::StreamExt;

use crate::signal::{self, MAX_SIGNAL_BYTES, Request};
use crate::transport::TransportError;
use crate::transport::mesh::Heard;

/// Connection attempts before the session gives up on the server.
pub(super) const CONNECT_ATTEMPTS: u32 = 3;

/// Between two connection attempts.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// An open signaling connection.
pub(super) struct Signaling(WebSocketStream<ConnectStream>);

/// Its receiving half.
pub(in crate::transport) struct Reader(WebSocketReceiver<ConnectStream>);

/// Its sending half.
pub(in crate::transport) struct Writer(WebSocketSender<ConnectStream>);

impl Signaling {
    /// Connects to `url` (`ws://` or `wss://`), trying [`CONNECT_ATTEMPTS`] times.
    pub(super) async fn connect(url: &str) -> Result<Self, TransportError> {
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(MAX_SIGNAL_BYTES);
        config.max_frame_size = Some(MAX_SIGNAL_BYTES);
        let mut attempt = 1;
        loop {
            match connect_async_with_config(url, Some(config)).await {
                Ok((socket, _)) => return Ok(Signaling(socket)),
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

    /// Splits it into halves that can be used at once.
    pub(super) fn split(self) -> (Reader, Writer) {
        let (sender, receiver) = self.0.split();
        (Reader(receiver), Writer(sender))
    }
}

impl Writer {
    /// Sends a request.
    pub(super) async fn send(&mut self, request: &Request) -> Result<(), TransportError> {
        self.0
            .send(Message::Text(signal::encode_request(request).into()))
            .await
            .map_err(|e| TransportError(format!("signaling: {e}")))
    }
}

impl Reader {
    /// Waits for the next message from the server.
    pub(super) async fn next(&mut self) -> Heard {
        match self.0.next().await {
            Some(Ok(Message::Text(text))) => Heard::text(&text),
            Some(Ok(Message::Close(frame))) => {
                Heard::Closed(format!("closed by the server: {frame:?}"))
            }
            Some(Ok(_)) => Heard::Nothing,
            Some(Err(e)) => Heard::Closed(e.to_string()),
            None => Heard::Closed("connection ended".into()),
        }
    }
}
