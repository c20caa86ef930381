//! [`SessionBuilder`]: what a session registers and how it behaves. Pure:
//! [`SessionBuilder::endpoint`] makes the protocol core without a socket,
//! [`SessionBuilder::build`](crate::SessionBuilder::build) adds the
//! transport.

use std::any::TypeId;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use web_time::Instant;

use crate::Channel;
use crate::conditioner::ConditionerConfig;
use crate::endpoint::Endpoint;
use crate::error::NetError;
use crate::guard::PeerLimits;
use crate::inbox::Decoders;
use crate::protocol::Registry;
use crate::tls::TlsRoots;

/// A STUN or TURN server (as in `RTCIceServer`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
pub struct IceServer {
    /// `stun:`/`turn:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(default)]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default)]
    pub credential: Option<String>,
}

/// Which ICE candidates a connection may use (`RTCIceTransportPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IcePolicy {
    /// Host, server-reflexive and relay candidates: the best path wins.
    #[default]
    All,
    /// TURN relays only: no host or reflexive candidates are gathered, so
    /// peers never learn each other's addresses.
    Relay,
}

/// ICE timers of the native transport (webrtc-rs' `SettingEngine`). The
/// defaults are webrtc-rs' own, except that peer-reflexive and relay
/// candidates are accepted without a wait: a pair that works is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IceTiming {
    /// Between connectivity checks while connecting.
    pub check_interval: Duration,
    /// Checks per candidate pair before it fails.
    pub max_binding_requests: u16,
    /// Between keepalives once connected.
    pub keepalive: Duration,
    /// Silence after which a connection counts as disconnected.
    pub disconnected_after: Duration,
    /// Silence after which a connection has failed (the peer is gone).
    pub failed_after: Duration,
    /// How long the controlling side waits for better pairs before taking a
    /// server-reflexive one.
    pub srflx_wait: Duration,
    /// … a peer-reflexive one.
    pub prflx_wait: Duration,
    /// … a relay one.
    pub relay_wait: Duration,
    /// A connection not up this long after it began is given up, and the
    /// game told why ([`SessionEvent::Unreachable`](crate::SessionEvent)).
    /// Both transports.
    pub setup_timeout: Duration,
}

impl Default for IceTiming {
    fn default() -> Self {
        IceTiming {
            check_interval: Duration::from_millis(200),
            max_binding_requests: 7,
            keepalive: Duration::from_secs(2),
            disconnected_after: Duration::from_secs(5),
            failed_after: Duration::from_secs(25),
            srflx_wait: Duration::from_millis(500),
            prflx_wait: Duration::ZERO,
            relay_wait: Duration::ZERO,
            setup_timeout: Duration::from_secs(10),
        }
    }
}

/// How the native transport connects (ignored in the browser, which
/// decides for itself, except for the servers and the policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceConfig {
    /// STUN/TURN servers, each with its own credentials.
    pub servers: Vec<IceServer>,
    /// Which candidates may be used.
    pub policy: IcePolicy,
    /// Local UDP addresses to gather host candidates on. A wildcard
    /// (`0.0.0.0:0`) means every interface except loopback; loopback must
    /// be named (`127.0.0.1:0`). Port 0 picks a free port.
    pub bind: Vec<std::net::SocketAddr>,
    /// Accept the browsers' `.local` (mDNS) host candidates. Off by default
    /// natively: it binds a multicast socket per connection, which fails
    /// where there is no multicast route.
    pub mdns: bool,
    /// ICE timers.
    pub timing: IceTiming,
}

impl IceConfig {
    /// Whether a TURN server is configured (a relayed path is possible).
    #[cfg(feature = "transport")]
    pub(crate) fn has_relay(&self) -> bool {
        self.servers.iter().any(|s| {
            s.urls
                .iter()
                .any(|u| u.starts_with("turn:") || u.starts_with("turns:"))
        })
    }
}

impl Default for IceConfig {
    fn default() -> Self {
        IceConfig {
            servers: Vec::new(),
            policy: IcePolicy::All,
            bind: vec![
                std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ],
            mdns: false,
            timing: IceTiming::default(),
        }
    }
}

/// Configures a session (see `Session::builder`).
pub struct SessionBuilder {
    pub(crate) room_url: String,
    pub(crate) fallbacks: Vec<String>,
    pub(crate) resume: Option<crate::ResumeStore>,
    pub(crate) ice: IceConfig,
    pub(crate) tls: TlsRoots,
    pub(crate) app_version: String,
    registry: Registry,
    decoders: Decoders,
    conditioner: Option<ConditionerConfig>,
    ping_interval: Duration,
    limits: PeerLimits,
}

impl SessionBuilder {
    /// A builder for `room_url` (`ws://host:port/room`, or `…/room?next=N`
    /// to be matched into a group of N).
    ///
    /// Host candidates only until told otherwise: on a LAN or loopback they
    /// are all that is needed, and an unreachable STUN server only slows
    /// connection set-up down (volley-server's `/api/ice` says what to use).
    pub fn new(room_url: &str) -> Self {
        SessionBuilder {
            room_url: room_url.to_owned(),
            fallbacks: Vec::new(),
            resume: None,
            ice: IceConfig::default(),
            tls: TlsRoots::default(),
            app_version: String::new(),
            registry: Registry::default(),
            decoders: Decoders::default(),
            conditioner: None,
            ping_interval: Duration::from_millis(250),
            limits: PeerLimits::default(),
        }
    }

    /// The signaling server's room URL.
    pub fn room_url(&self) -> &str {
        &self.room_url
    }

    /// Other signaling servers (`ws://host:port`, each a node of the same
    /// cluster) to come back through when the room URL's server is lost:
    /// the session tries its own server first, then each of these in turn,
    /// with the room URL's path and query. Behind one load-balanced URL
    /// none are needed. volley's own transports only.
    pub fn fallback_servers(mut self, servers: impl IntoIterator<Item = String>) -> Self {
        self.fallbacks = servers.into_iter().collect();
        self
    }

    /// Keeps the seat's resume token in `store` (rewritten whenever the
    /// server hands out a new one and at every signaling keepalive) and,
    /// when it holds a recent one, comes back with it: a process restarted
    /// or a tab reloaded with the same room link gets its seat — its id,
    /// its room — back, and a running match seats it again. A token the
    /// server refuses, or one older than [`crate::RESUME_WITHIN`], is
    /// forgotten and the session joins afresh. volley's own transports only.
    pub fn resume_in(mut self, store: impl Into<Option<crate::ResumeStore>>) -> Self {
        self.resume = store.into();
        self
    }

    /// [`SessionBuilder::resume_in`] a file.
    pub fn resume_file(self, path: impl Into<std::path::PathBuf>) -> Self {
        self.resume_in(crate::ResumeStore::File(path.into()))
    }

    /// What one peer may send before it is slowed down or dropped.
    pub fn peer_limits(mut self, limits: PeerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Adds a STUN/TURN server (each keeps its own credentials).
    pub fn ice_server(mut self, server: IceServer) -> Self {
        self.ice.servers.push(server);
        self
    }

    /// The STUN/TURN servers the session will use.
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.ice.servers
    }

    /// Which ICE candidates connections may use ([`IcePolicy::Relay`]:
    /// TURN relays only).
    pub fn ice_policy(mut self, policy: IcePolicy) -> Self {
        self.ice.policy = policy;
        self
    }

    /// The local UDP addresses to gather host candidates on (native only;
    /// see [`IceConfig::bind`]).
    pub fn bind(mut self, addresses: Vec<std::net::SocketAddr>) -> Self {
        self.ice.bind = addresses;
        self
    }

    /// ICE timers (native only).
    pub fn ice_timing(mut self, timing: IceTiming) -> Self {
        self.ice.timing = timing;
        self
    }

    /// Accept the browsers' mDNS (`.local`) host candidates (native only;
    /// see [`IceConfig::mdns`]).
    pub fn mdns(mut self, on: bool) -> Self {
        self.ice.mdns = on;
        self
    }

    /// Replaces the whole ICE configuration (servers included).
    pub fn ice(mut self, ice: IceConfig) -> Self {
        self.ice = ice;
        self
    }

    /// The whole ICE configuration.
    pub fn ice_config(&self) -> &IceConfig {
        &self.ice
    }

    /// The certificate authorities trusted for a `wss://` room URL and its
    /// `https://…/api/ice` (natively; the browser uses its own). Default:
    /// the public web PKI.
    pub fn tls_roots(mut self, roots: TlsRoots) -> Self {
        self.tls = roots;
        self
    }

    /// Part of the protocol hash: peers of different app versions refuse each other.
    pub fn app_version(mut self, version: &str) -> Self {
        self.app_version = version.to_owned();
        self
    }

    /// Registers `T` on `channel` under its Rust type name.
    pub fn register<T>(self, channel: Channel) -> Result<Self, NetError>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.register_named::<T>(std::any::type_name::<T>(), channel)
    }

    /// Registers `T` like [`SessionBuilder::register`], refusing (and
    /// counting against the sender, see [`PeerLimits::strikes`]) any payload
    /// of more than `max_bytes` before it is decoded: a type that is small
    /// by nature should not let a peer make us decode up to the generic
    /// [`crate::codec::DECODE_LIMIT`].
    pub fn register_limited<T>(self, channel: Channel, max_bytes: usize) -> Result<Self, NetError>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let mut builder = self.register::<T>(channel)?;
        builder.decoders.limit::<T>(max_bytes);
        Ok(builder)
    }

    /// Registers `T` on `channel` under an explicit, stable `name`.
    pub fn register_named<T>(mut self, name: &str, channel: Channel) -> Result<Self, NetError>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.registry.register(TypeId::of::<T>(), name, channel)?;
        self.decoders.add::<T>();
        Ok(self)
    }

    /// Simulates latency, jitter and loss on everything this session sends.
    pub fn conditioner(mut self, config: ConditionerConfig) -> Self {
        self.conditioner = Some(config);
        self
    }

    /// How often RTT is probed on the unreliable channel.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// The session's protocol core, without a transport: the caller feeds
    /// it connections, packets and time, and carries out its transmits.
    ///
    /// ```
    /// use volley_net::{Channel, SessionBuilder};
    /// use web_time::Instant;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Chat(String);
    ///
    /// let endpoint = SessionBuilder::new("ws://unused")
    ///     .register::<Chat>(Channel::Reliable)?
    ///     .endpoint(Instant::now());
    /// assert_eq!(endpoint.connected_peers().count(), 0);
    /// # Ok::<(), volley_net::NetError>(())
    /// ```
    pub fn endpoint(self, now: Instant) -> Endpoint {
        Endpoint::new(
            self.registry.protocol_hash(&self.app_version),
            self.app_version,
            self.registry,
            self.decoders.into_inboxes(),
            self.limits,
            self.ping_interval,
            self.conditioner,
            now,
        )
    }
}
