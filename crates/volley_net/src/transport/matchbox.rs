//! The transport over `matchbox_socket` (its WebRTC socket and signaling).

use std::collections::HashSet;

use matchbox_socket::{PeerState, RtcIceServerConfig, WebRtcSocket};
use web_time::Instant;

use super::{MessageLoopFuture, Transport, TransportError};
use crate::builder::IceConfig;
use crate::endpoint::Endpoint;
use crate::tls::TlsRoots;
use crate::{Channel, PeerId};

/// A session's transport over an unmodified `matchbox_socket` with volley's
/// channel layout: the browser's WebRTC in wasm; natively, matchbox's own
/// webrtc-rs negotiation. It cannot close one peer (a closed peer is
/// ignored until it leaves), report a channel's buffer, or keep more than
/// one ICE server's credentials.
pub struct MatchboxTransport {
    socket: WebRtcSocket,
    /// Peers closed by the session: matchbox cannot close one peer, so
    /// they are ignored until they leave.
    closed: HashSet<PeerId>,
}

impl MatchboxTransport {
    /// Opens the socket; returns it with its message loop (an
    /// [`OpenTransport`](super::OpenTransport)). matchbox_socket trusts the
    /// public web PKI only: with [`TlsRoots::Only`] the message loop ends at
    /// once with an error saying so.
    pub fn open(
        room_url: &str,
        ice: &IceConfig,
        tls: &TlsRoots,
    ) -> (Box<dyn Transport>, MessageLoopFuture) {
        let ice_servers = &ice.servers;
        let mut builder = WebRtcSocket::builder(room_url);
        let mut ice = RtcIceServerConfig {
            urls: Vec::new(),
            username: None,
            credential: None,
        };
        // matchbox takes one ICE server entry: merge URLs, keep the first credentials.
        for server in ice_servers {
            ice.urls.extend(server.urls.iter().cloned());
            ice.username = ice.username.or_else(|| server.username.clone());
            ice.credential = ice.credential.or_else(|| server.credential.clone());
        }
        builder = builder.ice_server(ice);
        for channel in Channel::ALL {
            builder = builder.add_channel(match channel {
                Channel::Reliable => matchbox_socket::ChannelConfig::reliable(),
                Channel::Unreliable | Channel::Rollback => {
                    matchbox_socket::ChannelConfig::unreliable()
                }
            });
        }
        let (socket, message_loop) = builder.build();
        let own_roots = matches!(tls, TlsRoots::Only(_));
        let message_loop = Box::pin(async move {
            if own_roots {
                return Err(TransportError(
                    "the matchbox transport cannot trust its own TLS roots (TlsRoots::Only): \
                     use volley's transport, or a certificate from a public CA"
                        .into(),
                ));
            }
            message_loop
                .await
                .map_err(|e| TransportError(e.to_string()))
        });
        let transport = MatchboxTransport {
            socket,
            closed: HashSet::new(),
        };
        (Box::new(transport), message_loop)
    }
}

impl Transport for MatchboxTransport {
    fn id(&mut self) -> Option<PeerId> {
        self.socket.id()
    }

    fn poll(&mut self, endpoint: &mut Endpoint, now: Instant) {
        for (peer, state) in self.socket.update_peers() {
            match state {
                PeerState::Connected => endpoint.peer_connected(peer, now),
                PeerState::Disconnected => {
                    self.closed.remove(&peer);
                    endpoint.peer_disconnected(peer);
                }
            }
        }
        for channel in Channel::ALL {
            for (peer, packet) in self.socket.channel_mut(channel.index()).receive() {
                if !self.closed.contains(&peer) {
                    endpoint.receive_packet(peer, channel, Vec::from(packet), now);
                }
            }
        }
    }

    fn send(&mut self, peer: PeerId, channel: Channel, packet: Vec<u8>) {
        if !self.closed.contains(&peer) {
            self.socket
                .channel_mut(channel.index())
                .send(packet.into(), peer);
        }
    }

    /// matchbox_socket does not expose its channels' `bufferedAmount`.
    fn buffered(&mut self, _: PeerId, _: Channel) -> usize {
        0
    }

    /// matchbox_socket cannot close one peer: its packets are ignored from
    /// now on, whether it may come back or not (a new connection from it
    /// is matchbox's to make).
    fn close(&mut self, peer: PeerId, _: crate::Closing) {
        self.closed.insert(peer);
    }
}
