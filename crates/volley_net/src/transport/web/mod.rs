//! The browser transport: the browser's `RTCPeerConnection` through
//! web-sys, speaking matchbox's signaling protocol with matchbox's data
//! channel layout, like the native one (so browsers, native volley peers
//! and unmodified matchbox_socket peers share rooms).
//!
//! The message loop ([`super::mesh`]) runs on the page's event loop: the
//! signaling WebSocket ([`signaling`]) and one task per peer connection
//! ([`peer::run`]). Packets are taken in the data channels' `message`
//! events, stamped with their arrival time; pings are answered there, so
//! a peer's RTT does not include our frame time.

mod peer;
mod signaling;

use futures_channel::mpsc::UnboundedReceiver;
use futures_util::future::LocalBoxFuture;
use send_wrapper::SendWrapper;
use web_sys::RtcDataChannel;

use super::comeback::ConnectError;
use super::driven::PeerChannels;
use super::mesh::{self, Context, Heard, Role, Stack};
use super::{MessageLoopFuture, Transport, TransportError};
use crate::builder::IceConfig;
use crate::signal::{PeerSignal, Request};
use crate::tls::TlsRoots;
use crate::{Channel, PeerId};

/// A connected peer's data channels, by channel index. The browser's
/// objects live on the page's one thread, where the session runs too.
pub(in crate::transport) struct WebChannels(SendWrapper<Vec<RtcDataChannel>>);

impl PeerChannels for WebChannels {
    fn send(&self, channel: Channel, packet: Vec<u8>) {
        if let Some(dc) = self.0.get(channel.index()) {
            // A closed channel throws: the peer is gone, its `Down` follows.
            let _ = dc.send_with_u8_array(&packet);
        }
    }

    fn buffered(&self, channel: Channel) -> usize {
        self.0
            .get(channel.index())
            .map_or(0, |dc| dc.buffered_amount() as usize)
    }
}

/// The browser's WebRTC and WebSocket.
pub(crate) struct WebTransport;

impl WebTransport {
    /// Connects to the room; returns the transport and its message loop.
    /// When the room URL's server is lost, the session comes back through
    /// it or `fallbacks` (servers of the same cluster).
    pub(crate) fn open_via(
        room_url: &str,
        fallbacks: &[String],
        resume: Option<crate::ResumeStore>,
        ice: &IceConfig,
        tls: &TlsRoots,
    ) -> (Box<dyn Transport>, MessageLoopFuture) {
        let (transport, message_loop) =
            mesh::open::<WebTransport>(room_url, fallbacks, resume, ice, tls);
        (Box::new(transport), Box::pin(message_loop))
    }
}

impl Stack for WebTransport {
    type Channels = WebChannels;
    type Reader = signaling::Reader;
    type Writer = signaling::Writer;
    type Peer = LocalBoxFuture<'static, (PeerId, bool)>;

    /// The browser checks the certificate against its own roots.
    async fn connect(
        url: &str,
        _tls: &TlsRoots,
    ) -> Result<(Self::Reader, Self::Writer), ConnectError> {
        signaling::connect(url).await
    }

    async fn next(reader: &mut Self::Reader) -> Heard {
        reader.next().await
    }

    async fn send(writer: &mut Self::Writer, request: &Request) -> Result<(), TransportError> {
        writer.send(request).await
    }

    fn run(
        peer: PeerId,
        role: Role,
        remote: UnboundedReceiver<PeerSignal>,
        cx: Context<WebChannels>,
    ) -> Self::Peer {
        Box::pin(peer::run(peer, role, remote, cx))
    }
}
