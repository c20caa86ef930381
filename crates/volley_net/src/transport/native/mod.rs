//! The native transport: webrtc-rs 0.21 directly, speaking matchbox's
//! signaling protocol unchanged (so volley-server, matchbox_server and
//! unmodified matchbox_socket peers, native or browser, share rooms with
//! it), with matchbox's data channel layout.
//!
//! The message loop ([`super::mesh`]) runs on smol: the signaling
//! WebSocket ([`signaling`]) and one task per peer connection
//! ([`peer::run`]). Packets are read where they arrive, on the
//! connections' own threads, stamped with their arrival time; pings are
//! answered there.

mod peer;
mod relay_poke;
mod signaling;

use std::sync::Arc;

use bytes::BytesMut;
use futures_channel::mpsc::UnboundedReceiver;
use futures_util::future::BoxFuture;
use webrtc::data_channel::DataChannel;

use super::comeback::ConnectError;
use super::driven::PeerChannels;
use super::mesh::{self, Context, Heard, Role, Stack};
use super::{MessageLoopFuture, Transport, TransportError};
use crate::builder::IceConfig;
use crate::signal::{PeerSignal, Request};
use crate::tls::TlsRoots;
use crate::{Channel, PeerId};

/// A connected peer's data channels, by channel index, and the extra
/// driver wakes of a relayed connection.
pub(in crate::transport) struct NativeChannels(
    Vec<Arc<dyn DataChannel>>,
    Option<Arc<relay_poke::RelayPoke>>,
);

impl PeerChannels for NativeChannels {
    /// Sends on the session's thread: queueing a packet in webrtc-rs takes
    /// its connection's lock (held by its driver only briefly) and wakes
    /// the driver. Without a send-buffer limit, `send` never waits for room.
    fn send(&self, channel: Channel, packet: Vec<u8>) {
        if let Some(dc) = self.0.get(channel.index()) {
            // Vec → Bytes → BytesMut moves the buffer (no copy).
            let _ = now_or_block(dc.send(BytesMut::from(bytes::Bytes::from(packet))));
            if let Some(poke) = &self.1 {
                poke.traffic();
            }
        }
    }

    fn buffered(&self, channel: Channel) -> usize {
        self.0
            .get(channel.index())
            .and_then(|dc| now_or_block(dc.outstanding_bytes()).ok())
            .unwrap_or(0)
    }
}

/// Runs `future` on this thread: most calls into a connection complete at
/// the first poll (its lock is free), and `smol::block_on` costs a wake-up
/// of smol's I/O thread every time; it is kept for when the lock is taken.
pub(super) fn now_or_block<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => smol::block_on(future),
    }
}

/// webrtc-rs and async-tungstenite on smol.
pub(crate) struct NativeTransport;

impl NativeTransport {
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
            mesh::open::<NativeTransport>(room_url, fallbacks, resume, ice, tls);
        (Box::new(transport), Box::pin(message_loop))
    }
}

impl Stack for NativeTransport {
    type Channels = NativeChannels;
    type Reader = signaling::Reader;
    type Writer = signaling::Writer;
    type Peer = BoxFuture<'static, (PeerId, bool)>;

    async fn connect(
        url: &str,
        tls: &TlsRoots,
    ) -> Result<(Self::Reader, Self::Writer), ConnectError> {
        signaling::connect(url, tls).await
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
        cx: Context<NativeChannels>,
    ) -> Self::Peer {
        Box::pin(peer::run(peer, role, remote, cx))
    }
}
