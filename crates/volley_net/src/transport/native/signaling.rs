//! The WebSocket to the signaling server (matchbox's protocol, see
//! [`crate::signal`]).

use async_tungstenite::smol::{ConnectStream, connect_async_with_tls_connector_and_config};
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::{Error, Message};
use async_tungstenite::{WebSocketReceiver, WebSocketSender};
use futures_util::StreamExt;

use crate::signal::{self, MAX_SIGNAL_BYTES, Request};
use crate::tls::TlsRoots;
use crate::transport::TransportError;
use crate::transport::comeback::ConnectError;
use crate::transport::mesh::Heard;

/// The receiving half of the connection.
pub(in crate::transport) struct Reader(WebSocketReceiver<ConnectStream>);

/// The sending half.
pub(in crate::transport) struct Writer(WebSocketSender<ConnectStream>);

/// Connects to `url` (`ws://` or `wss://`, trusting `tls`), with the
/// protocol's frame limit.
pub(super) async fn connect(url: &str, tls: &TlsRoots) -> Result<(Reader, Writer), ConnectError> {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(MAX_SIGNAL_BYTES);
    config.max_frame_size = Some(MAX_SIGNAL_BYTES);
    let connector = crate::tls::native::connector(tls)?;
    let (socket, _) = connect_async_with_tls_connector_and_config(url, connector, Some(config))
        .await
        .map_err(|e| {
            let refused = matches!(&e, Error::Http(r) if r.status().as_u16() == 401);
            ConnectError {
                why: e.to_string(),
                refused,
            }
        })?;
    let (sender, receiver) = socket.split();
    Ok((Reader(receiver), Writer(sender)))
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
            Some(Ok(Message::Close(frame))) => Heard::Closed {
                code: frame.as_ref().map(|f| u16::from(f.code)),
                why: format!("closed by the server: {frame:?}"),
            },
            Some(Ok(_)) => Heard::Nothing,
            Some(Err(e)) => Heard::Closed {
                why: e.to_string(),
                code: None,
            },
            None => Heard::Closed {
                why: "connection ended".into(),
                code: None,
            },
        }
    }
}
