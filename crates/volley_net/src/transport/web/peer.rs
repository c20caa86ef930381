//! One WebRTC connection to one peer in the browser: an `RTCPeerConnection`
//! built from the session's [`IceConfig`] (every ICE server with its own
//! credentials, the transport policy), negotiated through signaling with
//! trickled candidates, its data channels read in their `message` events.

use std::cell::RefCell;
use std::rc::Rc;

use futures_channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use js_sys::{Array, ArrayBuffer, Reflect, Uint8Array};
use send_wrapper::SendWrapper;
use serde::Deserialize;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    MessageEvent, RtcConfiguration, RtcDataChannel, RtcDataChannelInit, RtcDataChannelType,
    RtcIceCandidateInit, RtcIceServer, RtcIceTransportPolicy, RtcPeerConnection,
    RtcPeerConnectionIceEvent, RtcPeerConnectionState, RtcSdpType, RtcSessionDescriptionInit,
};
use web_time::Instant;

use super::WebChannels;
use crate::builder::{IceConfig, IcePolicy};
use crate::signal::PeerSignal;
use crate::stats::{Candidate, CandidateKind, Link};
use crate::transport::connection::{Connection, Health, drive};
use crate::transport::driven::Incoming;
use crate::transport::mesh::{Context, PongBudget, Role};
use crate::{Channel, PeerId};

/// Our candidates, held until our description has gone (a native
/// matchbox peer drops candidates that arrive before it).
type Pending = Rc<RefCell<Option<Vec<String>>>>;

/// A connection and its event handlers. Dropping it (the task ended, or
/// the message loop was dropped) unhooks the handlers and closes it.
struct WebConnection {
    pc: RtcPeerConnection,
    channels: Vec<RtcDataChannel>,
    /// Our candidates until our description has gone.
    pending: Pending,
    signals: UnboundedSender<(PeerId, PeerSignal)>,
    peer: PeerId,
    /// Kept alive while the browser may call them.
    handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Drop for WebConnection {
    fn drop(&mut self) {
        self.pc.set_onicecandidate(None);
        self.pc.set_onconnectionstatechange(None);
        for dc in &self.channels {
            dc.set_onopen(None);
            dc.set_onclose(None);
            dc.set_onmessage(None);
        }
        self.pc.close();
    }
}

/// A browser error, as text.
fn js_error(e: JsValue) -> String {
    e.as_string()
        .or_else(|| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

fn configuration(config: &IceConfig) -> RtcConfiguration {
    let servers = Array::new();
    for server in &config.servers {
        let entry = RtcIceServer::new();
        let urls: Array = server.urls.iter().map(|u| JsValue::from_str(u)).collect();
        entry.set_urls(&urls);
        if let Some(username) = &server.username {
            entry.set_username(username);
        }
        if let Some(credential) = &server.credential {
            entry.set_credential(credential);
        }
        servers.push(&entry);
    }
    let rtc = RtcConfiguration::new();
    rtc.set_ice_servers(&servers);
    rtc.set_ice_transport_policy(match config.policy {
        IcePolicy::All => RtcIceTransportPolicy::All,
        IcePolicy::Relay => RtcIceTransportPolicy::Relay,
    });
    rtc
}

/// The data channel layout matchbox uses: negotiated, id = index.
fn channel_init(channel: Channel) -> RtcDataChannelInit {
    let init = RtcDataChannelInit::new();
    let reliable = channel == Channel::Reliable;
    init.set_negotiated(true);
    init.set_id(channel.index() as u16);
    init.set_ordered(reliable);
    if !reliable {
        init.set_max_retransmits(0);
    }
    init
}

impl WebConnection {
    fn open(
        peer: PeerId,
        cx: &Context<WebChannels>,
        health: &UnboundedSender<Health>,
    ) -> Result<WebConnection, String> {
        let pc = RtcPeerConnection::new_with_configuration(&configuration(&cx.config))
            .map_err(js_error)?;
        let pending: Pending = Rc::new(RefCell::new(Some(Vec::new())));
        let mut connection = WebConnection {
            pc: pc.clone(),
            channels: Vec::with_capacity(Channel::COUNT),
            pending: pending.clone(),
            signals: cx.signals.clone(),
            peer,
            handlers: Vec::new(),
        };
        let (signals, pending) = (cx.signals.clone(), pending.clone());
        let on_candidate = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let event: RtcPeerConnectionIceEvent = event.unchecked_into();
            // The end of gathering (no candidate) is not signaled.
            let Some(candidate) = event.candidate() else {
                return;
            };
            let Some(json) = js_sys::JSON::stringify(&candidate.to_json())
                .ok()
                .and_then(|s| s.as_string())
            else {
                return;
            };
            match pending.borrow_mut().as_mut() {
                Some(held) => held.push(json),
                None => {
                    let _ = signals.unbounded_send((peer, PeerSignal::IceCandidate(json)));
                }
            }
        });
        pc.set_onicecandidate(Some(on_candidate.as_ref().unchecked_ref()));
        connection.handlers.push(on_candidate);

        let (state_pc, state_health) = (pc.clone(), health.clone());
        let on_state = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
            let news = match state_pc.connection_state() {
                RtcPeerConnectionState::Connected => Health::Connected,
                RtcPeerConnectionState::Failed | RtcPeerConnectionState::Closed => Health::Gone,
                _ => return,
            };
            let _ = state_health.unbounded_send(news);
        });
        pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));
        connection.handlers.push(on_state);

        for channel in Channel::ALL {
            let label = format!("matchbox_socket_{}", channel.index());
            let dc = pc.create_data_channel_with_data_channel_dict(&label, &channel_init(channel));
            dc.set_binary_type(RtcDataChannelType::Arraybuffer);
            connection.read(peer, channel, &dc, cx, health);
            connection.channels.push(dc);
        }
        Ok(connection)
    }

    /// Hooks a data channel's events: packets go to the session with their
    /// arrival time, except pings on the unreliable channel, answered here.
    fn read(
        &mut self,
        peer: PeerId,
        channel: Channel,
        dc: &RtcDataChannel,
        cx: &Context<WebChannels>,
        health: &UnboundedSender<Health>,
    ) {
        let opened = health.clone();
        let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
            let _ = opened.unbounded_send(Health::ChannelOpen);
        });
        let closed = health.clone();
        let on_close = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
            let _ = closed.unbounded_send(Health::Gone);
        });
        let (incoming, answer, mut pongs) = (cx.incoming.clone(), dc.clone(), PongBudget::new());
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let event: MessageEvent = event.unchecked_into();
            // Binary only (`binaryType` is arraybuffer); text is not ours.
            let Ok(buffer) = event.data().dyn_into::<ArrayBuffer>() else {
                return;
            };
            let packet = Uint8Array::new(&buffer).to_vec();
            let now = Instant::now();
            if channel == Channel::Unreliable
                && let Some(pong) = pongs.pong(&packet, now)
            {
                let _ = answer.send_with_u8_array(&pong);
                return;
            }
            let _ = incoming.unbounded_send(Incoming::Packet(peer, channel, packet, now));
        });
        dc.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        dc.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        dc.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        self.handlers.extend([on_open, on_close, on_message]);
    }

    /// The selected candidate pair, from `getStats()`.
    async fn selected_link(&self) -> Option<Link> {
        let report = JsFuture::from(self.pc.get_stats()).await.ok()?;
        let report: js_sys::Map = report.unchecked_into();
        let field = |stat: &JsValue, name: &str| Reflect::get(stat, &JsValue::from_str(name)).ok();
        let text = |stat: &JsValue, name: &str| field(stat, name).and_then(|v| v.as_string());
        // The transport names its pair (Chromium); otherwise the pair
        // marked selected (Firefox).
        let mut pair = None;
        report.for_each(&mut |stat, _| {
            let kind = text(&stat, "type");
            if kind.as_deref() == Some("transport")
                && let Some(id) = text(&stat, "selectedCandidatePairId")
            {
                let named = report.get(&JsValue::from_str(&id));
                if named.is_object() {
                    pair = Some(named);
                }
            } else if pair.is_none()
                && kind.as_deref() == Some("candidate-pair")
                && field(&stat, "selected").and_then(|v| v.as_bool()) == Some(true)
            {
                pair = Some(stat);
            }
        });
        let pair = pair?;
        let end = |id_field: &str| {
            let candidate = report.get(&JsValue::from_str(&text(&pair, id_field)?));
            let kind = match text(&candidate, "candidateType")?.as_str() {
                "host" => CandidateKind::Host,
                "srflx" => CandidateKind::ServerReflexive,
                "prflx" => CandidateKind::PeerReflexive,
                "relay" => CandidateKind::Relay,
                _ => return None,
            };
            // A remote peer-reflexive candidate's address is withheld (the
            // peer never signaled it: webrtc-stats' privacy rule), and its
            // kind is still the path's.
            let address = text(&candidate, "address")
                .or_else(|| text(&candidate, "ip"))
                .filter(|a| !a.is_empty());
            let port = field(&candidate, "port").and_then(|p| p.as_f64());
            let address = match (address, port) {
                (Some(address), Some(port)) => format!("{address}:{port}"),
                _ => String::new(),
            };
            Some(Candidate { kind, address })
        };
        Some(Link {
            local: end("localCandidateId")?,
            remote: end("remoteCandidateId")?,
        })
    }
}

/// `RTCIceCandidateInit` as peers signal it (JSON).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CandidateJson {
    candidate: String,
    #[serde(default)]
    sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    sdp_m_line_index: Option<u16>,
}

/// A remote candidate from signaling (`"null"` or garbage: none).
fn remote_candidate(json: &str) -> Option<RtcIceCandidateInit> {
    let parsed: CandidateJson = match serde_json::from_str(json) {
        Ok(parsed) => parsed,
        Err(e) => {
            if json != "null" {
                tracing::debug!("an ICE candidate that is not one: {e}");
            }
            return None;
        }
    };
    if parsed.candidate.is_empty() {
        return None;
    }
    let init = RtcIceCandidateInit::new(&parsed.candidate);
    init.set_sdp_mid(parsed.sdp_mid.as_deref());
    init.set_sdp_m_line_index(parsed.sdp_m_line_index);
    Some(init)
}

/// An offer or answer with `sdp`.
fn description(offer: bool, sdp: &str) -> RtcSessionDescriptionInit {
    let description = RtcSessionDescriptionInit::new(if offer {
        RtcSdpType::Offer
    } else {
        RtcSdpType::Answer
    });
    description.set_sdp(sdp);
    description
}

impl Connection for WebConnection {
    type Channels = WebChannels;

    async fn create(&self, offer: bool) -> Result<String, String> {
        let created = if offer {
            self.pc.create_offer()
        } else {
            self.pc.create_answer()
        };
        let created = JsFuture::from(created).await.map_err(js_error)?;
        Reflect::get(&created, &JsValue::from_str("sdp"))
            .ok()
            .and_then(|s| s.as_string())
            .ok_or_else(|| "the browser made a description without SDP".to_string())
    }

    async fn set_local(&self, offer: bool, sdp: String) -> Result<(), String> {
        let description = description(offer, &sdp);
        JsFuture::from(self.pc.set_local_description(&description))
            .await
            .map(drop)
            .map_err(js_error)
    }

    async fn set_remote(&self, offer: bool, sdp: String) -> Result<(), String> {
        let description = description(offer, &sdp);
        JsFuture::from(self.pc.set_remote_description(&description))
            .await
            .map(drop)
            .map_err(js_error)
    }

    async fn add_candidate(&self, json: &str) {
        let Some(candidate) = remote_candidate(json) else {
            return;
        };
        let added = self
            .pc
            .add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&candidate));
        if let Err(e) = JsFuture::from(added).await {
            tracing::debug!("a remote ICE candidate refused: {}", js_error(e));
        }
    }

    fn release_candidates(&self) {
        let held = self.pending.borrow_mut().take();
        for candidate in held.into_iter().flatten() {
            let _ = self
                .signals
                .unbounded_send((self.peer, PeerSignal::IceCandidate(candidate)));
        }
    }

    fn channels(&self) -> WebChannels {
        WebChannels(SendWrapper::new(self.channels.clone()))
    }

    async fn link(&self) -> Option<Link> {
        self.selected_link().await
    }
}

/// One peer's connection, from building it to its end (see
/// [`Stack::run`](crate::transport::mesh::Stack::run)).
pub(super) async fn run(
    peer: PeerId,
    role: Role,
    mut remote: UnboundedReceiver<PeerSignal>,
    cx: Context<WebChannels>,
) -> (PeerId, bool) {
    let (health_tx, mut health) = mpsc::unbounded();
    let connection = match WebConnection::open(peer, &cx, &health_tx) {
        Ok(connection) => connection,
        Err(e) => {
            tracing::warn!("cannot open a connection to {peer}: {e}");
            return (peer, false);
        }
    };
    drop(health_tx); // the handlers hold theirs
    let up = drive(&connection, peer, role, &mut remote, &mut health, &cx).await;
    drop(connection); // unhooks and closes
    let _ = cx.incoming.unbounded_send(Incoming::Down(peer));
    (peer, up)
}
