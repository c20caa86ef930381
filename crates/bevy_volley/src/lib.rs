//! The Bevy face of volley: a [`VolleyPlugin`] that connects a
//! [`volley_net::Session`] to a room, typed network messages as Bevy
//! [`Message`]s, per-peer [`NetStats`], and the connection lifecycle as
//! [`ConnectionState`].
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_volley::prelude::*;
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! struct Greeting(String);
//!
//! fn greet(mut events: MessageReader<NetPeerEvent>, mut out: MessageWriter<NetSend<Greeting>>) {
//!     for NetPeerEvent(event) in events.read() {
//!         if let SessionEvent::Connected(peer) = event {
//!             out.write(NetSend::to(*peer, Greeting("hello".into())));
//!         }
//!     }
//! }
//!
//! fn print(mut greetings: MessageReader<NetReceived<Greeting>>) {
//!     for g in greetings.read() {
//!         println!("{} says {}", g.from, g.message.0);
//!     }
//! }
//!
//! App::new()
//!     .add_plugins((MinimalPlugins, VolleyPlugin::new("ws://127.0.0.1:3536/hello")))
//!     .add_net_message::<Greeting>(Channel::Reliable)
//!     .add_systems(Update, (greet, print))
//!     .run();
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(all(feature = "winit", target_arch = "wasm32"))]
pub mod hidden_tab;
pub mod replication;
pub mod rollback;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bevy::app::{App, Last, Plugin, PostUpdate, PreUpdate, Startup};
use bevy::ecs::message::{Message, MessageReader, MessageWriter};
use bevy::ecs::prelude::*;
use bevy::state::app::AppExtStates;
use bevy::state::state::{NextState, State, States};
use bevy::tasks::IoTaskPool;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, warn};
use volley_net::codec::DECODE_LIMIT;
pub use volley_net::{
    Channel, ConditionerConfig, IceConfig, IcePolicy, IceServer, IceTiming, LeftReason,
    Misbehaviour, NetError, OpenTransport, PeerId, PeerLimits, PeerStats, RESUME_WITHIN,
    ResumeStore, Session, SessionBuilder, SessionEvent, TlsRoots,
};

/// Everything a game needs in one `use`.
pub mod prelude {
    #[cfg(all(feature = "winit", target_arch = "wasm32"))]
    pub use crate::hidden_tab::PageHidden;
    pub use crate::{
        Channel, ConditionerConfig, ConnectionState, IceConfig, IcePolicy, IceServer, LeftReason,
        NetAppExt, NetPeerEvent, NetReceived, NetSend, NetStats, NetTarget, PeerId, PeerLimits,
        ResumeStore, SessionEvent, SignalingState, TlsRoots, VolleyPlugin, VolleySession,
        VolleySet,
    };
}

/// The connection lifecycle.
#[derive(States, Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// No session.
    #[default]
    Disconnected,
    /// Connecting to the signaling server.
    Signaling,
    /// In the room, fewer than `min_peers` peers connected.
    WaitingForPeers,
    /// At least `min_peers` peers connected (handshake done).
    InGame,
    /// The session ended (server gone, socket closed).
    Left,
}

/// The signaling server as the session sees it, beside
/// [`ConnectionState`]: losing it does not end the match (the connections
/// made stay, and the session comes back to the server by itself), so a
/// game may just show that it is reconnecting.
#[derive(States, Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SignalingState {
    /// Reachable (or not yet tried).
    #[default]
    Up,
    /// Lost: new peers cannot connect until it is back
    /// ([`SessionEvent::SignalingLost`] says why).
    Lost,
}

/// Where the plugin's systems run, to order game systems against.
///
/// `Poll` and `Receive` run in `PreUpdate` (so `Update` sees this frame's
/// messages), `Send` in `PostUpdate` (so it sends what `Update` wrote),
/// `Flush` in `Last` (so what any system sent this frame leaves together).
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VolleySet {
    /// Drives the session: peers, handshakes, pings; writes [`NetPeerEvent`]s.
    Poll,
    /// Turns received payloads into [`NetReceived`] messages.
    Receive,
    /// Sends the [`NetSend`] messages written this frame.
    Send,
    /// Hands everything sent this frame to the network, packed into as few
    /// packets as possible ([`Session::flush`]).
    Flush,
}

/// A peer event from the session.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct NetPeerEvent(pub SessionEvent);

/// A message of type `T` received from a peer.
#[derive(Message, Debug, Clone)]
pub struct NetReceived<T: Send + Sync + 'static> {
    /// The sender.
    pub from: PeerId,
    /// The tick it was stamped with, if any.
    pub tick: Option<u32>,
    /// The payload.
    pub message: T,
}

/// Who a [`NetSend`] goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetTarget {
    /// One peer.
    Peer(PeerId),
    /// Every connected peer.
    All,
}

/// Write one to send `message` (on the channel `T` was registered with).
#[derive(Message, Debug, Clone)]
pub struct NetSend<T: Send + Sync + 'static> {
    /// Recipients.
    pub to: NetTarget,
    /// Optional simulation tick.
    pub tick: Option<u32>,
    /// The payload.
    pub message: T,
}

impl<T: Send + Sync + 'static> NetSend<T> {
    /// To one peer.
    pub fn to(peer: PeerId, message: T) -> Self {
        NetSend {
            to: NetTarget::Peer(peer),
            tick: None,
            message,
        }
    }

    /// To every connected peer.
    pub fn all(message: T) -> Self {
        NetSend {
            to: NetTarget::All,
            tick: None,
            message,
        }
    }
}

/// Per-peer link statistics, refreshed every frame.
#[derive(Resource, Debug, Clone, Default)]
pub struct NetStats {
    /// By peer.
    pub peers: HashMap<PeerId, PeerStats>,
}

type Registration = fn(SessionBuilder, Channel, usize) -> Result<SessionBuilder, NetError>;

fn register<T: Serialize + DeserializeOwned + Send + Sync + 'static>(
    builder: SessionBuilder,
    channel: Channel,
    max_bytes: usize,
) -> Result<SessionBuilder, NetError> {
    builder.register_limited::<T>(channel, max_bytes)
}

/// The message types the game registered (with their byte limits),
/// applied when the session is built.
#[derive(Resource, Default)]
struct Registrations(Vec<(Registration, Channel, usize)>);

/// The live session, once connected.
#[derive(Resource)]
pub struct VolleySession {
    session: Session,
    loop_ended: Arc<AtomicBool>,
}

/// The session being set up on the task pool (asking `/api/ice` first).
#[derive(Resource)]
struct PendingSession {
    slot: Arc<Mutex<Option<Session>>>,
    loop_ended: Arc<AtomicBool>,
}

impl VolleySession {
    /// The underlying session (for what the Bevy messages do not cover).
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }
}

/// Connects to `room_url` at startup and runs the session every frame.
#[derive(Resource, Clone)]
pub struct VolleyPlugin {
    room_url: String,
    app_version: String,
    conditioner: Option<ConditionerConfig>,
    ice: IceConfig,
    tls: TlsRoots,
    fallbacks: Vec<String>,
    resume: Option<ResumeStore>,
    server_ice: bool,
    min_peers: usize,
    peer_limits: PeerLimits,
    transport: Option<OpenTransport>,
}

impl VolleyPlugin {
    /// `room_url` as `ws://host:port/room` or `…/room?next=N`.
    ///
    /// In the browser the seat's resume token is kept in the tab's
    /// `sessionStorage` ([`ResumeStore::tab`]), so a reloaded tab comes back
    /// to its seat; natively nothing is kept unless asked
    /// ([`VolleyPlugin::resume_in`]).
    pub fn new(room_url: impl Into<String>) -> Self {
        let room_url = room_url.into();
        #[cfg(target_arch = "wasm32")]
        let resume = Some(ResumeStore::tab(&room_url));
        #[cfg(not(target_arch = "wasm32"))]
        let resume = None;
        VolleyPlugin {
            room_url,
            app_version: String::new(),
            conditioner: None,
            ice: IceConfig::default(),
            tls: TlsRoots::default(),
            fallbacks: Vec::new(),
            resume,
            server_ice: true,
            min_peers: 1,
            peer_limits: PeerLimits::default(),
            transport: None,
        }
    }

    /// What one peer may send before it is slowed down or dropped as
    /// misbehaving (`SessionEvent::Left(peer, LeftReason::Misbehaving(..))`).
    pub fn peer_limits(mut self, limits: PeerLimits) -> Self {
        self.peer_limits = limits;
        self
    }

    /// Peers with another app version are refused (part of the protocol hash).
    pub fn app_version(mut self, version: impl Into<String>) -> Self {
        self.app_version = version.into();
        self
    }

    /// Simulate a bad network on everything sent.
    pub fn conditioner(mut self, config: ConditionerConfig) -> Self {
        self.conditioner = Some(config);
        self
    }

    /// Adds a STUN/TURN server, used when the signaling server's
    /// `/api/ice` names none (by default there are none: host candidates
    /// only, which is all a LAN or loopback needs).
    pub fn ice_server(mut self, server: IceServer) -> Self {
        self.ice.servers.push(server);
        self
    }

    /// The whole ICE configuration (servers, [`IcePolicy`], bind addresses,
    /// [`IceTiming`], mDNS), as [`SessionBuilder::ice`] takes it: for
    /// example `IceConfig { policy: IcePolicy::Relay, ..IceConfig::default() }`
    /// for TURN relays only. Replaces the servers added so far.
    pub fn ice(mut self, ice: IceConfig) -> Self {
        self.ice = ice;
        self
    }

    /// The certificate authorities trusted for a `wss://` server, natively
    /// (default: the public web PKI; [`TlsRoots::from_pem`] for a private
    /// CA or a self-signed server). The browser uses its own.
    pub fn tls_roots(mut self, roots: TlsRoots) -> Self {
        self.tls = roots;
        self
    }

    /// Other nodes of the signaling server's cluster (`ws://host:port`) to
    /// come back through when the room URL's node is lost (see
    /// `SessionBuilder::fallback_servers`).
    pub fn fallback_servers(mut self, servers: impl IntoIterator<Item = String>) -> Self {
        self.fallbacks = servers.into_iter().collect();
        self
    }

    /// Where the seat's resume token is kept, so that the game restarted
    /// (or its tab reloaded) with the same room link within
    /// [`RESUME_WITHIN`] gets its seat back and a running match seats it
    /// again (see [`SessionBuilder::resume_in`]); `None` keeps nothing.
    pub fn resume_in(mut self, store: impl Into<Option<ResumeStore>>) -> Self {
        self.resume = store.into();
        self
    }

    /// [`VolleyPlugin::resume_in`] a file.
    pub fn resume_file(self, path: impl Into<std::path::PathBuf>) -> Self {
        self.resume_in(ResumeStore::File(path.into()))
    }

    /// Whether to ask the signaling server's `/api/ice` for STUN/TURN
    /// servers before connecting (default: yes).
    pub fn server_ice(mut self, ask: bool) -> Self {
        self.server_ice = ask;
        self
    }

    /// Carry the session over another transport than the platform's (for
    /// example `volley_net::MatchboxTransport::open`, with volley_net's
    /// `matchbox` feature).
    pub fn transport(mut self, open: OpenTransport) -> Self {
        self.transport = Some(open);
        self
    }

    /// Connected peers needed for [`ConnectionState::InGame`] (default 1).
    pub fn min_peers(mut self, n: usize) -> Self {
        self.min_peers = n;
        self
    }
}

impl Plugin for VolleyPlugin {
    fn build(&self, app: &mut App) {
        if !app.is_plugin_added::<bevy::state::app::StatesPlugin>() {
            app.add_plugins(bevy::state::app::StatesPlugin);
        }
        app.insert_resource(self.clone())
            .init_resource::<Registrations>()
            .init_resource::<NetStats>()
            .init_state::<ConnectionState>()
            .init_state::<SignalingState>()
            .add_message::<NetPeerEvent>()
            .configure_sets(PreUpdate, (VolleySet::Poll, VolleySet::Receive).chain())
            .configure_sets(PostUpdate, VolleySet::Send)
            .configure_sets(Last, VolleySet::Flush)
            .add_systems(Startup, connect)
            .add_systems(Last, flush.in_set(VolleySet::Flush))
            .add_systems(
                PreUpdate,
                (install, ApplyDeferred, poll, track_signaling)
                    .chain()
                    .in_set(VolleySet::Poll),
            );
        #[cfg(all(feature = "winit", target_arch = "wasm32"))]
        hidden_tab::plugin(app);
    }
}

/// Registering network message types on the app.
pub trait NetAppExt {
    /// Registers `T` to travel on `channel`: adds [`NetReceived<T>`] and
    /// [`NetSend<T>`] messages. Call it while building the app (the session
    /// is built at startup with every registered type; all peers must
    /// register the same types in the same order).
    fn add_net_message<T>(&mut self, channel: Channel) -> &mut Self
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// [`NetAppExt::add_net_message`], refusing payloads of more than
    /// `max_bytes` before decoding them (each one counts against its
    /// sender): for types that are small by nature.
    fn add_net_message_limited<T>(&mut self, channel: Channel, max_bytes: usize) -> &mut Self
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static;
}

impl NetAppExt for App {
    fn add_net_message<T>(&mut self, channel: Channel) -> &mut Self
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.add_net_message_limited::<T>(channel, DECODE_LIMIT)
    }

    fn add_net_message_limited<T>(&mut self, channel: Channel, max_bytes: usize) -> &mut Self
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.init_resource::<Registrations>();
        self.world_mut().resource_mut::<Registrations>().0.push((
            register::<T>,
            channel,
            max_bytes,
        ));
        self.add_message::<NetReceived<T>>()
            .add_message::<NetSend<T>>()
            .add_systems(PreUpdate, receive::<T>.in_set(VolleySet::Receive))
            .add_systems(PostUpdate, send::<T>.in_set(VolleySet::Send))
    }
}

fn connect(
    mut commands: Commands,
    config: Res<VolleyPlugin>,
    registrations: Res<Registrations>,
    mut next: ResMut<NextState<ConnectionState>>,
) {
    let mut builder = Session::builder(&config.room_url)
        .app_version(&config.app_version)
        .peer_limits(config.peer_limits);
    builder = builder
        .ice(config.ice.clone())
        .tls_roots(config.tls.clone())
        .fallback_servers(config.fallbacks.clone());
    builder = builder.resume_in(config.resume.clone());
    if let Some(c) = config.conditioner {
        builder = builder.conditioner(c);
    }
    for (register, channel, max_bytes) in &registrations.0 {
        builder = match register(builder, *channel, *max_bytes) {
            Ok(builder) => builder,
            Err(e) => {
                warn!("volley: cannot register a message type: {e}");
                next.set(ConnectionState::Left);
                return;
            }
        };
    }
    let slot = Arc::new(Mutex::new(None));
    let loop_ended = Arc::new(AtomicBool::new(false));
    let (ready, ended) = (slot.clone(), loop_ended.clone());
    let ask_server = config.server_ice;
    let transport = config.transport;
    IoTaskPool::get()
        .spawn(async move {
            let builder = if ask_server {
                builder.with_server_ice().await
            } else {
                builder
            };
            let (session, message_loop) = match transport {
                Some(open) => builder.build_with(open),
                None => builder.build(),
            };
            *lock(&ready) = Some(session);
            if let Err(e) = message_loop.await {
                warn!("volley: session ended: {e}");
            }
            ended.store(true, Ordering::Release);
        })
        .detach();
    info!("volley: connecting to {}", config.room_url);
    commands.insert_resource(PendingSession { slot, loop_ended });
    next.set(ConnectionState::Signaling);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding it; a poisoned slot is still a slot.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Installs the session once its task has built it.
fn install(mut commands: Commands, pending: Option<Res<PendingSession>>) {
    let Some(pending) = pending else { return };
    if let Some(session) = lock(&pending.slot).take() {
        commands.insert_resource(VolleySession {
            session,
            loop_ended: pending.loop_ended.clone(),
        });
        commands.remove_resource::<PendingSession>();
    }
}

fn poll(
    session: Option<ResMut<VolleySession>>,
    config: Res<VolleyPlugin>,
    state: Res<State<ConnectionState>>,
    mut next: ResMut<NextState<ConnectionState>>,
    mut events: MessageWriter<NetPeerEvent>,
    mut stats: ResMut<NetStats>,
) {
    let Some(mut volley) = session else { return };
    if volley.loop_ended.load(Ordering::Acquire) {
        if *state.get() != ConnectionState::Left {
            next.set(ConnectionState::Left);
        }
        return;
    }
    let session = &mut volley.session;
    session.update();
    for event in session.events() {
        if let SessionEvent::Left(peer, _) = &event {
            stats.peers.remove(peer);
        }
        events.write(NetPeerEvent(event));
    }
    let connected: Vec<PeerId> = session.connected_peers().collect();
    for peer in &connected {
        if let Some(s) = session.stats(*peer) {
            stats.peers.insert(*peer, s.clone());
        }
    }
    let wanted = match state.get() {
        ConnectionState::Signaling if session.id().is_some() => ConnectionState::WaitingForPeers,
        ConnectionState::WaitingForPeers if connected.len() >= config.min_peers => {
            ConnectionState::InGame
        }
        ConnectionState::InGame if connected.len() < config.min_peers => {
            ConnectionState::WaitingForPeers
        }
        other => *other,
    };
    if wanted != *state.get() {
        next.set(wanted);
    }
}

fn track_signaling(
    session: Option<Res<VolleySession>>,
    state: Res<State<SignalingState>>,
    mut next: ResMut<NextState<SignalingState>>,
) {
    let Some(volley) = session else { return };
    let reachable = match volley.session.signaling_up() {
        true => SignalingState::Up,
        false => SignalingState::Lost,
    };
    if reachable != *state.get() {
        next.set(reachable);
    }
}

fn flush(session: Option<ResMut<VolleySession>>) {
    if let Some(mut volley) = session {
        volley.session.flush();
    }
}

fn receive<T: Send + Sync + 'static>(
    session: Option<ResMut<VolleySession>>,
    mut out: MessageWriter<NetReceived<T>>,
) {
    let Some(mut volley) = session else { return };
    for (from, tick, message) in volley.session.receive_with_tick::<T>() {
        out.write(NetReceived {
            from,
            tick,
            message,
        });
    }
}

fn send<T: Serialize + Send + Sync + 'static>(
    session: Option<ResMut<VolleySession>>,
    mut requests: MessageReader<NetSend<T>>,
) {
    let Some(mut volley) = session else {
        requests.clear();
        return;
    };
    for request in requests.read() {
        let result = match request.to {
            NetTarget::Peer(peer) => {
                volley
                    .session
                    .send_with_tick(peer, &request.message, request.tick)
            }
            NetTarget::All => volley
                .session
                .broadcast_with_tick(&request.message, request.tick),
        };
        if let Err(e) = result {
            warn!("volley: not sent: {e}");
        }
    }
}
