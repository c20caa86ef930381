//! One WebRTC connection to one peer (webrtc-rs 0.21): built, negotiated
//! through signaling, its data channels read where packets arrive.
//!
//! Fast set-up: webrtc-rs queues three packets on the way to a connection
//! without waking its driver, which then sends them only on the ICE agent's
//! next 200 ms tick (the first connectivity check after a trickled
//! candidate, the DTLS ClientHello, the SCTP INIT). [`Handler`] and
//! [`NativeConnection`] wake the driver at each of those points instead.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::BytesMut;
use futures_channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use web_time::Instant;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceCandidateType, RTCIceConnectionState, RTCIceServer,
    RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCSessionDescription, SettingEngineBuilder,
};
use webrtc::runtime::{Runtime, SmolRuntime};

use super::NativeChannels;
use super::relay_poke::RelayPoke;
use crate::builder::{IceConfig, IcePolicy};
use crate::signal::PeerSignal;
use crate::stats::{Candidate, CandidateKind, Link};
use crate::transport::connection::{Connection, Health, drive};
use crate::transport::driven::Incoming;
use crate::transport::mesh::{Context, PongBudget, Role};
use crate::{Channel, PeerId};

fn runtime() -> Arc<dyn Runtime> {
    // smol's executor has threads of its own: the connections run whatever
    // executor polls the session's message loop, and need no tokio.
    Arc::new(SmolRuntime)
}

/// Wakes a connection's driver (see the module docs).
#[derive(Default)]
pub(super) struct Waker {
    pc: OnceLock<Weak<dyn PeerConnection>>,
    channel: OnceLock<Weak<dyn DataChannel>>,
    /// Ports of the never-pairing candidates (each must be new).
    port: AtomicU16,
}

impl Waker {
    /// The next driver loop runs (flushes what handlers queued). Setting a
    /// data channel's low threshold to its default is the one public call
    /// that wakes the driver and changes nothing.
    pub(super) async fn wake(&self) {
        if let Some(channel) = self.channel.get().and_then(Weak::upgrade) {
            let _ = channel.set_buffered_amount_low_threshold(0).await;
        }
    }

    /// The driver's next timeout is due at once, so the DTLS ClientHello
    /// queued on pair selection leaves now: a new remote candidate makes
    /// the ICE agent ask for an immediate check. This one (TCP
    /// simultaneous-open, TEST-NET-1) can never pair with our UDP ones.
    async fn due_now(&self) {
        let Some(pc) = self.pc.get().and_then(Weak::upgrade) else {
            return;
        };
        let port = 9 + self.port.fetch_add(1, Ordering::Relaxed) % 1000;
        let candidate = RTCIceCandidateInit {
            candidate: format!("candidate:1 1 tcp 1 192.0.2.1 {port} typ host tcptype so"),
            ..Default::default()
        };
        let _ = pc.add_ice_candidate(candidate).await;
        self.wake().await;
    }
}

/// The connection's callbacks (run on its driver).
struct Handler {
    peer: PeerId,
    signals: UnboundedSender<(PeerId, PeerSignal)>,
    /// Our candidates, held until our SDP has gone (a native matchbox peer
    /// drops candidates that arrive before the description).
    pending: Mutex<Option<Vec<String>>>,
    waker: Arc<Waker>,
    health: UnboundedSender<Health>,
}

impl Handler {
    fn flush_candidates(&self) {
        let pending = lock(&self.pending).take();
        for candidate in pending.into_iter().flatten() {
            let _ = self
                .signals
                .unbounded_send((self.peer, PeerSignal::IceCandidate(candidate)));
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let Ok(json) = event
            .candidate
            .to_json()
            .map(|init| serde_json::to_string(&init).unwrap_or_default())
        else {
            return;
        };
        let mut pending = lock(&self.pending);
        match pending.as_mut() {
            Some(held) => held.push(json),
            None => {
                let _ = self
                    .signals
                    .unbounded_send((self.peer, PeerSignal::IceCandidate(json)));
            }
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        if state == RTCIceConnectionState::Connected {
            self.waker.due_now().await;
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        match state {
            RTCPeerConnectionState::Connected => {
                self.waker.wake().await; // the SCTP INIT
                let _ = self.health.unbounded_send(Health::Connected);
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                let _ = self.health.unbounded_send(Health::Gone);
            }
            _ => {}
        }
    }
}

/// The data channel layout matchbox uses: negotiated, id = index.
fn channel_init(channel: Channel) -> RTCDataChannelInit {
    let reliable = channel == Channel::Reliable;
    RTCDataChannelInit {
        ordered: reliable,
        negotiated: Some(channel.index() as u16),
        max_retransmits: (!reliable).then_some(0),
        ..Default::default()
    }
}

async fn build(
    config: &IceConfig,
    handler: Arc<Handler>,
) -> Result<Arc<dyn PeerConnection>, webrtc::error::Error> {
    let servers = config
        .servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .collect();
    let rtc_config = RTCConfigurationBuilder::new()
        .with_ice_servers(servers)
        .with_ice_transport_policy(match config.policy {
            IcePolicy::All => RTCIceTransportPolicy::All,
            IcePolicy::Relay => RTCIceTransportPolicy::Relay,
        })
        .build();
    let t = &config.timing;
    let settings = SettingEngineBuilder::new()
        .with_ice_connection_attempts(Some(t.check_interval), Some(t.max_binding_requests))
        .with_ice_timeouts(
            Some(t.disconnected_after),
            Some(t.failed_after),
            Some(t.keepalive),
        )
        .with_srflx_acceptance_min_wait(Some(t.srflx_wait))
        .with_prflx_acceptance_min_wait(Some(t.prflx_wait))
        .with_relay_acceptance_min_wait(Some(t.relay_wait))
        .with_multicast_dns_mode(if config.mdns {
            rtc::ice::mdns::MulticastDnsMode::QueryOnly
        } else {
            rtc::ice::mdns::MulticastDnsMode::Disabled
        })
        .build();
    let pc = PeerConnectionBuilder::<SocketAddr>::new()
        .with_configuration(rtc_config)
        .with_setting_engine(settings)
        .with_runtime(runtime())
        .with_handler(handler)
        .with_udp_addrs(config.bind.clone())
        .build()
        .await?;
    Ok(Arc::new(pc))
}

/// Reads one data channel until it closes: packets go to the session with
/// their arrival time, except pings on the unreliable channel, answered
/// here (so a peer's RTT does not include our frame time).
async fn read_channel(
    peer: PeerId,
    channel: Channel,
    dc: Arc<dyn DataChannel>,
    waker: Arc<Waker>,
    poke: Option<Arc<RelayPoke>>,
    incoming: UnboundedSender<Incoming<NativeChannels>>,
    health: UnboundedSender<Health>,
) {
    let mut pongs = PongBudget::new();
    while let Some(event) = dc.poll().await {
        match event {
            DataChannelEvent::OnOpen => {
                // The peer's negotiated channels are registered with SCTP
                // on the next driver loop: wake it before data arrives.
                waker.wake().await;
                let _ = health.unbounded_send(Health::ChannelOpen);
            }
            DataChannelEvent::OnMessage(message) => {
                let now = Instant::now();
                // What we received may be acknowledged through our relay.
                if let Some(poke) = &poke {
                    poke.traffic();
                }
                if channel == Channel::Unreliable
                    && let Some(pong) = pongs.pong(&message.data, now)
                {
                    let _ = dc.send(BytesMut::from(&pong[..])).await;
                    continue;
                }
                let packet = Vec::from(message.data);
                let _ = incoming.unbounded_send(Incoming::Packet(peer, channel, packet, now));
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
    let _ = health.unbounded_send(Health::Gone);
}

fn kind(typ: RTCIceCandidateType) -> Option<CandidateKind> {
    match typ {
        RTCIceCandidateType::Host => Some(CandidateKind::Host),
        RTCIceCandidateType::Srflx => Some(CandidateKind::ServerReflexive),
        RTCIceCandidateType::Prflx => Some(CandidateKind::PeerReflexive),
        RTCIceCandidateType::Relay => Some(CandidateKind::Relay),
        _ => None,
    }
}

/// The selected candidate pair, once there is one.
async fn selected_link(pc: &Arc<dyn PeerConnection>) -> Option<Link> {
    let sctp = pc.sctp().await?;
    let pair = sctp
        .transport()
        .ice_transport()
        .get_selected_candidate_pair()
        .await
        .ok()??;
    let end = |c: &webrtc::peer_connection::RTCIceCandidate| {
        kind(c.typ).map(|kind| Candidate {
            kind,
            address: format!("{}:{}", c.address, c.port),
        })
    };
    Some(Link {
        local: end(pair.local())?,
        remote: end(pair.remote())?,
    })
}

/// A remote candidate from signaling (`"null"` or garbage: none).
fn remote_candidate(json: &str) -> Option<RTCIceCandidateInit> {
    if json == "null" {
        return None;
    }
    match serde_json::from_str::<RTCIceCandidateInit>(json) {
        Ok(init) if !init.candidate.is_empty() => Some(init),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!("an ICE candidate that is not one: {e}");
            None
        }
    }
}

/// An offer or answer with `sdp`.
fn description(offer: bool, sdp: String) -> Result<RTCSessionDescription, String> {
    let description = if offer {
        RTCSessionDescription::offer(sdp)
    } else {
        RTCSessionDescription::answer(sdp)
    };
    description.map_err(|e| e.to_string())
}

/// A webrtc-rs connection, as [`drive`] uses it.
struct NativeConnection {
    pc: Arc<dyn PeerConnection>,
    handler: Arc<Handler>,
    waker: Arc<Waker>,
    channels: Vec<Arc<dyn DataChannel>>,
    poke: Option<Arc<RelayPoke>>,
}

impl Connection for NativeConnection {
    type Channels = NativeChannels;

    async fn create(&self, offer: bool) -> Result<String, String> {
        let created = if offer {
            self.pc.create_offer(None).await
        } else {
            self.pc.create_answer(None).await
        };
        created.map(|d| d.sdp).map_err(|e| e.to_string())
    }

    async fn set_local(&self, offer: bool, sdp: String) -> Result<(), String> {
        let description = description(offer, sdp)?;
        self.pc
            .set_local_description(description)
            .await
            .map_err(|e| e.to_string())
    }

    async fn set_remote(&self, offer: bool, sdp: String) -> Result<(), String> {
        let description = description(offer, sdp)?;
        self.pc
            .set_remote_description(description)
            .await
            .map_err(|e| e.to_string())?;
        self.waker.wake().await; // what the description let the agent queue
        Ok(())
    }

    async fn add_candidate(&self, json: &str) {
        if let Some(init) = remote_candidate(json) {
            let _ = self.pc.add_ice_candidate(init).await;
            self.waker.wake().await; // the first check, now
        }
    }

    fn release_candidates(&self) {
        self.handler.flush_candidates();
    }

    fn channels(&self) -> NativeChannels {
        NativeChannels(self.channels.clone(), self.poke.clone())
    }

    async fn link(&self) -> Option<Link> {
        let link = selected_link(&self.pc).await;
        if let (Some(poke), Some(link)) = (&self.poke, &link) {
            poke.selected(link.local.kind == CandidateKind::Relay);
        }
        link
    }
}

/// One peer's connection, from building it to its end (see
/// [`Stack::run`](crate::transport::mesh::Stack::run)).
pub(super) async fn run(
    peer: PeerId,
    role: Role,
    mut remote: UnboundedReceiver<PeerSignal>,
    cx: Context<NativeChannels>,
) -> (PeerId, bool) {
    let (health_tx, mut health) = mpsc::unbounded();
    let waker = Arc::new(Waker::default());
    let handler = Arc::new(Handler {
        peer,
        signals: cx.signals.clone(),
        pending: Mutex::new(Some(Vec::new())),
        waker: waker.clone(),
        health: health_tx.clone(),
    });
    let pc = match build(&cx.config, handler.clone()).await {
        Ok(pc) => pc,
        Err(e) => {
            tracing::warn!("cannot open a connection to {peer}: {e}");
            return (peer, false);
        }
    };
    let mut closer = CloseOnDrop(Some(pc.clone()));
    let _ = waker.pc.set(Arc::downgrade(&pc));
    // Only a connection that may use our relay needs the extra wakes.
    let (poke, _poking) = if cx.config.has_relay() {
        let (poke, task) = RelayPoke::start(waker.clone());
        (Some(poke), Some(task))
    } else {
        (None, None)
    };
    let mut channels = Vec::with_capacity(Channel::COUNT);
    let mut readers = Vec::with_capacity(Channel::COUNT);
    for channel in Channel::ALL {
        let label = format!("matchbox_socket_{}", channel.index());
        match pc
            .create_data_channel(&label, Some(channel_init(channel)))
            .await
        {
            Ok(dc) => {
                readers.push(smol::spawn(read_channel(
                    peer,
                    channel,
                    dc.clone(),
                    waker.clone(),
                    poke.clone(),
                    cx.incoming.clone(),
                    health_tx.clone(),
                )));
                channels.push(dc);
            }
            Err(e) => {
                tracing::warn!("cannot open data channel {label} to {peer}: {e}");
                closer.close().await;
                return (peer, false);
            }
        }
    }
    if let Some(first) = channels.first() {
        let _ = waker.channel.set(Arc::downgrade(first));
    }
    let connection = NativeConnection {
        pc,
        handler,
        waker,
        channels,
        poke,
    };
    let up = drive(&connection, peer, role, &mut remote, &mut health, &cx).await;
    drop(readers); // cancels the readers
    closer.close().await;
    let _ = cx.incoming.unbounded_send(Incoming::Down(peer));
    (peer, up)
}

/// Closes a connection however its task ends: a webrtc-rs connection
/// dropped unclosed keeps running (and the peer keeps us) until ICE gives
/// up, so a task dropped with the message loop closes it in the background.
struct CloseOnDrop(Option<Arc<dyn PeerConnection>>);

impl CloseOnDrop {
    async fn close(&mut self) {
        if let Some(pc) = self.0.take()
            && let Err(e) = pc.close().await
        {
            tracing::debug!("closing a connection: {e}");
        }
    }
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(pc) = self.0.take() {
            smol::spawn(async move {
                let _ = pc.close().await;
            })
            .detach();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding it; a poisoned lock still holds candidates.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
