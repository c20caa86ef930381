//! Data path: volley_net against raw matchbox_socket, same machine, same run.
//!
//! `cargo bench -p volley_net --bench datapath [-- --rounds N --samples S --seconds T]`
//!
//! Everything runs inside a private network namespace (the benchmark re-runs
//! itself under `unshare`, like the WebRTC tests), with an in-process
//! volley-server and host candidates only. Measured, alternating raw and
//! volley:
//! - connect time, socket start → every peer connected to every other (for
//!   volley: the protocol handshake done too), full mesh of 2, 4 and 8;
//! - RTT of a 100-byte message echoed back, per channel (p50/p99);
//! - messages per second delivered, 100 bytes, per channel, sending until
//!   back-pressure: while fewer than `HIGH_WATER` bytes are in flight (sent,
//!   not yet received). The receiver's count is the one signal all three
//!   have: matchbox_socket's `send` never pushes back or reports its buffer,
//!   and volley's `Session::buffered` falls only as SCTP acknowledges (a
//!   loop paced by it measures the peer's delayed acks, not capacity).
//!
//! Every peer is polled from one thread every ~50 µs; the sockets' message
//! loops run on a 2-thread tokio runtime.
//!
//! Then the relay section: volley pairs forced through a TURN relay
//! (`IcePolicy::Relay`) on the namespace's veth address, volley-server's
//! built-in one against coturn (Debian's `turnserver`, skipped when it is
//! not installed), beside the direct host path: connect time of a pair and
//! RTT through the relay.

use std::collections::HashSet;
use std::time::{Duration, Instant};
use volley_testkit::coturn;
use volley_testkit::netns;
use volley_testkit::report::{self, quantile};

use matchbox_socket::{PeerId, PeerState, RtcIceServerConfig, WebRtcSocket};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

use volley_net::{Channel, IcePolicy, IceServer, Session, SessionEvent};
use volley_server::turn::TurnConfig;
use volley_server::{Server, ServerConfig};

#[derive(Serialize, Deserialize)]
struct Echo(Vec<u8>);

#[derive(Serialize, Deserialize)]
struct EchoUnreliable(Vec<u8>);

const PAYLOAD: usize = 100;

/// Back-pressure threshold of the throughput loop: 128 KiB in flight.
const HIGH_WATER: usize = 128 * 1024;

/// Most messages sent between two polls, so both ends keep being driven.
const MAX_BURST: usize = 1024;

struct Options {
    rounds: usize,
    samples: usize,
    seconds: f64,
    trials: usize,
}

fn options() -> Options {
    let args = report::Options::parse(&["rounds", "samples", "seconds", "trials"]);
    Options {
        rounds: args.get("rounds", 10),
        samples: args.get("samples", 1000),
        seconds: args.get("seconds", 2.0),
        trials: args.get("trials", 3),
    }
}

fn nap() {
    std::thread::sleep(Duration::from_micros(50));
}

/// A peer of either kind, behind one interface so both are driven alike.
trait Peer {
    fn poll(&mut self);
    fn connected(&self) -> usize;
    fn first_peer(&self) -> Option<PeerId>;
    fn send(&mut self, channel: Channel, to: PeerId, payload: Vec<u8>);
    fn receive(&mut self, channel: Channel) -> Vec<(PeerId, Vec<u8>)>;
    /// The end of a game frame: what was sent leaves now (volley batches
    /// until then; the others send at once).
    fn flush(&mut self) {}
}

struct Raw {
    socket: WebRtcSocket,
    peers: HashSet<PeerId>,
}

impl Peer for Raw {
    fn poll(&mut self) {
        for (peer, state) in self.socket.update_peers() {
            match state {
                PeerState::Connected => self.peers.insert(peer),
                PeerState::Disconnected => self.peers.remove(&peer),
            };
        }
    }
    fn connected(&self) -> usize {
        self.peers.len()
    }
    fn first_peer(&self) -> Option<PeerId> {
        self.peers.iter().next().copied()
    }
    fn send(&mut self, channel: Channel, to: PeerId, payload: Vec<u8>) {
        self.socket
            .channel_mut(channel.index())
            .send(payload.into(), to);
    }
    fn receive(&mut self, channel: Channel) -> Vec<(PeerId, Vec<u8>)> {
        self.socket
            .channel_mut(channel.index())
            .receive()
            .into_iter()
            .map(|(p, b)| (p, b.to_vec()))
            .collect()
    }
}

struct Volley {
    session: Session,
    peers: HashSet<PeerId>,
}

impl Peer for Volley {
    fn poll(&mut self) {
        self.session.update();
        for event in self.session.events() {
            match event {
                SessionEvent::Connected(p) => {
                    self.peers.insert(p);
                }
                SessionEvent::Left(p, _) => {
                    self.peers.remove(&p);
                }
                _ => {}
            }
        }
    }
    fn connected(&self) -> usize {
        self.peers.len()
    }
    fn first_peer(&self) -> Option<PeerId> {
        self.peers.iter().next().copied()
    }
    fn send(&mut self, channel: Channel, to: PeerId, payload: Vec<u8>) {
        let sent = match channel {
            Channel::Reliable => self.session.send(to, &Echo(payload)),
            _ => self.session.send(to, &EchoUnreliable(payload)),
        };
        sent.expect("send");
    }
    fn flush(&mut self) {
        self.session.flush();
    }
    /// Like the raw socket's `receive`, which reads its channel at the
    /// moment of the call, this takes in what arrived first.
    fn receive(&mut self, channel: Channel) -> Vec<(PeerId, Vec<u8>)> {
        self.session.update();
        match channel {
            Channel::Reliable => self
                .session
                .receive::<Echo>()
                .into_iter()
                .map(|(p, e)| (p, e.0))
                .collect(),
            _ => self
                .session
                .receive::<EchoUnreliable>()
                .into_iter()
                .map(|(p, e)| (p, e.0))
                .collect(),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Raw,
    Volley,
    /// Plain UDP on loopback: the physical floor (RTT and throughput only).
    Udp,
    /// volley through the TURN relay [`RELAYS`]`[i]`, relay-only.
    Relayed(usize),
}

/// The TURN servers of the relay section: volley-server's, coturn's.
static RELAYS: OnceLock<Vec<IceServer>> = OnceLock::new();

/// The namespace's own non-loopback address (see `tests/support/netns.rs`):
/// coturn refuses to relay to loopback peers.
const VETH_IP: &str = "10.200.0.1";

/// The TURN secret of the relay section.
const SECRET: &str = "bench-secret";

/// coturn's port.
const COTURN_PORT: u16 = 3479;

/// Two UDP sockets on 127.0.0.1 that know each other, polled like the others.
struct Udp {
    socket: std::net::UdpSocket,
    other: std::net::SocketAddr,
    other_id: PeerId,
}

impl Peer for Udp {
    fn poll(&mut self) {}
    fn connected(&self) -> usize {
        1
    }
    fn first_peer(&self) -> Option<PeerId> {
        Some(self.other_id)
    }
    fn send(&mut self, _: Channel, _: PeerId, payload: Vec<u8>) {
        // A full loopback buffer drops the datagram, as the network would.
        let _ = self.socket.send_to(&payload, self.other);
    }
    fn receive(&mut self, _: Channel) -> Vec<(PeerId, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = self.socket.recv_from(&mut buf) {
            out.push((self.other_id, buf[..n].to_vec()));
        }
        out
    }
}

fn udp_pair() -> (Box<dyn Peer>, Box<dyn Peer>) {
    let bind = || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        socket.set_nonblocking(true).expect("non-blocking");
        socket
    };
    let (a, b) = (bind(), bind());
    let (a_addr, b_addr) = (
        a.local_addr().expect("an address"),
        b.local_addr().expect("an address"),
    );
    let id = |n: u128| PeerId(uuid::Uuid::from_u128(n));
    (
        Box::new(Udp {
            socket: a,
            other: b_addr,
            other_id: id(2),
        }),
        Box::new(Udp {
            socket: b,
            other: a_addr,
            other_id: id(1),
        }),
    )
}

fn no_ice() -> RtcIceServerConfig {
    RtcIceServerConfig {
        urls: vec![],
        username: None,
        credential: None,
    }
}

fn make(kind: Kind, url: &str, runtime: &tokio::runtime::Runtime) -> Box<dyn Peer> {
    match kind {
        Kind::Udp => unreachable!("UDP peers come in pairs: udp_pair()"),
        Kind::Raw => {
            let mut builder = WebRtcSocket::builder(url).ice_server(no_ice());
            for channel in Channel::ALL {
                builder = builder.add_channel(match channel {
                    Channel::Reliable => matchbox_socket::ChannelConfig::reliable(),
                    _ => matchbox_socket::ChannelConfig::unreliable(),
                });
            }
            let (socket, message_loop) = builder.build();
            runtime.spawn(message_loop);
            Box::new(Raw {
                socket,
                peers: HashSet::new(),
            })
        }
        Kind::Volley | Kind::Relayed(_) => {
            let mut builder = Session::builder(url)
                .register::<Echo>(Channel::Reliable)
                .and_then(|b| b.register::<EchoUnreliable>(Channel::Unreliable))
                .expect("register");
            if let Kind::Relayed(i) = kind {
                let relay = RELAYS.get().and_then(|r| r.get(i)).expect("relays set");
                builder = builder
                    .ice_policy(IcePolicy::Relay)
                    .ice_server(relay.clone());
            }
            let (session, message_loop) = builder.build();
            runtime.spawn(message_loop);
            Box::new(Volley {
                session,
                peers: HashSet::new(),
            })
        }
    }
}

/// Socket start → every peer connected to all others.
fn connect_time(kind: Kind, n: usize, url: &str, runtime: &tokio::runtime::Runtime) -> Duration {
    let started = Instant::now();
    let mut peers: Vec<Box<dyn Peer>> = (0..n).map(|_| make(kind, url, runtime)).collect();
    let deadline = started + Duration::from_secs(30);
    loop {
        for p in &mut peers {
            p.poll();
        }
        if peers.iter().all(|p| p.connected() == n - 1) {
            return started.elapsed();
        }
        if Instant::now() > deadline {
            let counts: Vec<usize> = peers.iter().map(|p| p.connected()).collect();
            let which = if kind == Kind::Raw { "raw" } else { "volley" };
            panic!("{n} {which} peers did not connect within 30 s: {counts:?}");
        }
        nap();
    }
}

fn pair(
    kind: Kind,
    url: &str,
    runtime: &tokio::runtime::Runtime,
) -> (Box<dyn Peer>, Box<dyn Peer>) {
    let mut a = make(kind, url, runtime);
    let mut b = make(kind, url, runtime);
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.connected() == 0 || b.connected() == 0 {
        a.poll();
        b.poll();
        assert!(Instant::now() < deadline, "pair did not connect");
        nap();
    }
    // Let the channels settle (RTT probes, SCTP warm-up) before measuring.
    let settle = Instant::now() + Duration::from_millis(300);
    while Instant::now() < settle {
        a.poll();
        b.poll();
        nap();
    }
    (a, b)
}

/// RTT samples of 100-byte echoes; lost ones (unreliable) time out after 100 ms.
fn rtt(
    a: &mut dyn Peer,
    b: &mut dyn Peer,
    channel: Channel,
    samples: usize,
) -> (Vec<Duration>, usize) {
    let to_b = a.first_peer().expect("a has a peer");
    let mut times = Vec::with_capacity(samples);
    let mut lost = 0;
    for seq in 0..samples as u32 {
        let mut payload = vec![0u8; PAYLOAD];
        payload[..4].copy_from_slice(&seq.to_le_bytes());
        let sent = Instant::now();
        a.send(channel, to_b, payload);
        a.flush();
        let timeout = sent + Duration::from_millis(100);
        'wait: loop {
            a.poll();
            b.poll();
            for (from, echo) in b.receive(channel) {
                b.send(channel, from, echo);
            }
            b.flush();
            for (_, back) in a.receive(channel) {
                if back[..4] == seq.to_le_bytes() {
                    times.push(sent.elapsed());
                    break 'wait;
                }
            }
            if Instant::now() > timeout {
                lost += 1;
                break;
            }
            nap();
        }
    }
    times.sort();
    (times, lost)
}

/// 100-byte messages delivered per second, a → b, sending until
/// back-pressure (see the module docs) between polls.
fn throughput(a: &mut dyn Peer, b: &mut dyn Peer, channel: Channel, seconds: f64) -> f64 {
    let to_b = a.first_peer().expect("a has a peer");
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let (mut sent, mut received) = (0usize, 0usize);
    let mut last_arrival = Instant::now();
    while Instant::now() < until {
        for _ in 0..MAX_BURST {
            let waiting = (sent - received) * PAYLOAD;
            if waiting >= HIGH_WATER {
                break;
            }
            a.send(channel, to_b, vec![7u8; PAYLOAD]);
            sent += 1;
        }
        a.poll();
        b.poll();
        let arrived = b.receive(channel).len();
        received += arrived;
        if arrived > 0 {
            last_arrival = Instant::now();
        } else if last_arrival.elapsed() > Duration::from_millis(20) {
            // Nothing for 20 ms: what is still in flight was lost
            // (unreliable channels, UDP); stop counting it as waiting.
            sent = received;
        }
        nap();
    }
    let rate = received as f64 / started.elapsed().as_secs_f64();
    // Drain what is still queued so the next measurement starts clean.
    let drain = Instant::now() + Duration::from_millis(500);
    while Instant::now() < drain {
        a.poll();
        b.poll();
        b.receive(channel);
        nap();
    }
    rate
}

/// What the trials of one kind on one channel measured.
#[derive(Default)]
struct Trials {
    /// RTT samples, pooled.
    times: Vec<Duration>,
    /// Echoes that never came back.
    lost: usize,
    /// Messages per second, one per trial.
    rates: Vec<f64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    netns::benchmark_inside(false);
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(async {
        // Every peer joins from 127.0.0.1: the per-address join rate
        // (60/min by default) would refuse later rounds.
        let config = ServerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            per_ip: volley_server::limits::IpLimitsConfig::unlimited(),
            turn: Some(TurnConfig {
                listen: format!("{VETH_IP}:0").parse().unwrap(),
                relay_ports: (44_000, 44_999),
                max_allocations: 100_000,
                max_bytes_per_second: 0,
                ..TurnConfig::default()
            }),
            ice: volley_server::ice::IceConfig {
                turn_secret: Some(SECRET.into()),
                ..Default::default()
            },
            ..ServerConfig::default()
        };
        Server::bind(config).await.expect("server").spawn()
    });
    let base = format!("ws://{}", server.addr());
    let kinds = [Kind::Raw, Kind::Volley];
    let name = |k: Kind| match k {
        Kind::Raw => "raw matchbox",
        Kind::Volley => "volley",
        Kind::Udp => "plain UDP",
        Kind::Relayed(_) => "volley relayed",
    };
    let mut room = 0;
    let mut next_url = || {
        room += 1;
        format!("{base}/bench{room}")
    };

    println!(
        "data path: volley_net vs raw matchbox_socket 0.15 (loopback in a private netns, host candidates)"
    );
    println!(
        "\nconnect time, socket start -> full mesh connected, p50 / p99 of {} rounds",
        o.rounds
    );
    println!(
        "{:<16}{:>18}{:>18}{:>18}",
        "", "2 peers", "4 peers", "8 peers"
    );
    let mut connect = [
        [Vec::new(), Vec::new(), Vec::new()],
        [Vec::new(), Vec::new(), Vec::new()],
    ];
    for round in 0..o.rounds {
        for (i, n) in [2, 4, 8].into_iter().enumerate() {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for k in order {
                let t = connect_time(kinds[k], n, &next_url(), &runtime);
                connect[k][i].push(ms(t));
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    // [kind][peers] = (p50, p99)
    let mut connect_q = [[(0.0, 0.0); 3]; 2];
    for k in 0..2 {
        let mut line = format!("{:<16}", name(kinds[k]));
        for i in 0..3 {
            let q = (
                quantile(&mut connect[k][i], 0.5),
                quantile(&mut connect[k][i], 0.99),
            );
            connect_q[k][i] = q;
            line += &format!("{:>9.0} /{:>5.0}ms", q.0, q.1);
        }
        println!("{line}");
    }
    let mut line = format!("{:<16}", "volley/raw");
    for (volley, raw) in connect_q[1].iter().zip(&connect_q[0]) {
        line += &format!("{:>9.2}x/{:>5.2}x", volley.0 / raw.0, volley.1 / raw.1);
    }
    println!("{line}");

    println!(
        "\n100-byte messages, 2 peers ({} trials of {} RTT samples and {:.0} s of throughput per channel; median throughput)",
        o.trials, o.samples, o.seconds
    );
    println!(
        "{:<16}{:<12}{:>12}{:>12}{:>8}{:>14}",
        "", "channel", "RTT p50", "RTT p99", "lost", "msgs/s"
    );
    // Trials alternate the kinds (raw, volley, UDP; then volley, raw, UDP, …)
    // on fresh pairs; RTT samples are pooled, throughput is the median.
    let kinds3 = [Kind::Raw, Kind::Volley, Kind::Udp];
    // [kind][channel]
    let mut runs: Vec<Vec<Trials>> = (0..3)
        .map(|_| (0..2).map(|_| Trials::default()).collect())
        .collect();
    for trial in 0..o.trials {
        let order = if trial % 2 == 0 { [0, 1, 2] } else { [1, 0, 2] };
        for k in order {
            let (mut a, mut b) = match kinds3[k] {
                Kind::Udp => udp_pair(),
                kind => pair(kind, &next_url(), &runtime),
            };
            for (c, channel) in [Channel::Reliable, Channel::Unreliable]
                .into_iter()
                .enumerate()
            {
                let (times, lost) = rtt(a.as_mut(), b.as_mut(), channel, o.samples);
                let rate = throughput(a.as_mut(), b.as_mut(), channel, o.seconds);
                let run = &mut runs[k][c];
                run.times.extend(times);
                run.lost += lost;
                run.rates.push(rate);
            }
        }
    }
    let mut rows = Vec::new();
    let mut cdf = Vec::new();
    for (k, kind) in kinds3.into_iter().enumerate() {
        for (c, channel) in [Channel::Reliable, Channel::Unreliable]
            .into_iter()
            .enumerate()
        {
            let Trials { times, lost, rates } = &mut runs[k][c];
            times.sort();
            let p = |q: f64| {
                times
                    .get(((times.len().max(1) - 1) as f64 * q) as usize)
                    .copied()
                    .map(ms)
                    .unwrap_or(f64::NAN)
            };
            let rate = quantile(rates, 0.5);
            let percentiles: Vec<f64> = (1..=99).map(|q| p(f64::from(q) / 100.0)).collect();
            let channel_name = channel.name().split('-').next().unwrap_or_default();
            cdf.push((format!("{} {channel_name}", name(kind)), percentiles));
            println!(
                "{:<16}{:<12}{:>10.3}ms{:>10.3}ms{:>8}{:>14.0}",
                name(kind),
                channel_name,
                p(0.5),
                p(0.99),
                lost,
                rate
            );
            rows.push((p(0.5), p(0.99), rate));
        }
    }
    let mut table = report::Table::new(
        "datapath",
        format!(
            "Data path: volley_net vs raw matchbox_socket 0.15, loopback in a private netns, host candidates; connect over {} rounds, 100-byte messages, {} trials of {} RTT samples and {:.0} s of throughput per channel sending until back-pressure",
            o.rounds, o.trials, o.samples, o.seconds
        ),
        &["volley_net", "raw matchbox_socket", "plain UDP (floor)"],
    );
    for (i, n) in [2, 4, 8].iter().enumerate() {
        table.row(
            format!("connect p50, {n} peers (ms)"),
            report::Better::Lower,
            &[connect_q[1][i].0, connect_q[0][i].0],
        );
        table.row(
            format!("connect p99, {n} peers (ms)"),
            report::Better::Lower,
            &[connect_q[1][i].1, connect_q[0][i].1],
        );
    }
    for (c, channel) in ["reliable", "unreliable"].iter().enumerate() {
        let (raw, volley, udp) = (rows[c], rows[c + 2], rows[c + 4]);
        table.row(
            format!("RTT p50, {channel} (ms)"),
            report::Better::Lower,
            &[volley.0, raw.0, udp.0],
        );
        table.row(
            format!("RTT p99, {channel} (ms)"),
            report::Better::Lower,
            &[volley.1, raw.1, udp.1],
        );
        table.row(
            format!("messages/s, {channel}"),
            report::Better::Higher,
            &[volley.2, raw.2, udp.2],
        );
    }
    table.save();
    report::save_series(
        "latency_cdf",
        "RTT of 100-byte echoes (ms) by percentile, 1 to 99",
        &cdf,
    );
    for (c, channel) in ["reliable", "unreliable"].iter().enumerate() {
        let (raw, volley) = (rows[c], rows[c + 2]);
        println!(
            "{:<16}{:<12}{:>11.2}x{:>11.2}x{:>8}{:>13.2}x",
            "volley/raw",
            channel,
            volley.0 / raw.0,
            volley.1 / raw.1,
            "",
            volley.2 / raw.2
        );
    }
    relay_section(&o, &server, &runtime, &mut next_url);
    runtime.block_on(server.shutdown());
}

/// A TURN server's entry with credentials as `/api/ice` mints them.
fn turn_entry(addr: &str) -> IceServer {
    let config = volley_server::ice::IceConfig {
        turn: vec![format!("turn:{addr}?transport=udp")],
        turn_secret: Some(SECRET.into()),
        ..Default::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let entry = volley_server::ice::ice_servers(&config, now, None)
        .ice_servers
        .remove(0);
    IceServer {
        urls: entry.urls,
        username: entry.username,
        credential: entry.credential,
    }
}

/// Connect time and RTT of a pair through volley-server's TURN and through
/// coturn, beside the direct path (see the module docs).
fn relay_section(
    o: &Options,
    server: &volley_server::ServerHandle,
    runtime: &tokio::runtime::Runtime,
    next_url: &mut dyn FnMut() -> String,
) {
    let listen = format!("{VETH_IP}:{COTURN_PORT}")
        .parse()
        .expect("an address");
    let coturn = coturn::Coturn::start(listen, (45_000, 45_999), SECRET);
    let ours = server
        .turn_addr()
        .expect("the TURN server runs")
        .to_string();
    let _ = RELAYS.set(vec![
        turn_entry(&ours),
        turn_entry(&format!("{VETH_IP}:{COTURN_PORT}")),
    ]);
    let names = ["volley-server TURN", "coturn", "direct (host)"];
    let kinds = [Kind::Relayed(0), Kind::Relayed(1), Kind::Volley];
    let run = |k: usize| k != 1 || coturn.is_some();
    if coturn.is_none() {
        println!("\ncoturn (turnserver) is not installed: its column is left empty");
    }
    // [kind] connect times (ms), RTT samples per channel.
    let mut connect: [Vec<f64>; 3] = Default::default();
    let mut times: [[Vec<Duration>; 2]; 3] = Default::default();
    // Relayed echoes take tens of ms here (see the README): fewer of them.
    let (rounds, trials, samples) = (o.rounds.min(5), o.trials.min(1), o.samples.min(200));
    for round in 0..rounds {
        for k in [0, 1, 2].into_iter().cycle().skip(round % 3).take(3) {
            if run(k) {
                connect[k].push(ms(connect_time(kinds[k], 2, &next_url(), runtime)));
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    for _ in 0..trials {
        for k in (0..3).filter(|k| run(*k)) {
            let (mut a, mut b) = pair(kinds[k], &next_url(), runtime);
            for (c, channel) in [Channel::Reliable, Channel::Unreliable]
                .into_iter()
                .enumerate()
            {
                let (got, _) = rtt(a.as_mut(), b.as_mut(), channel, samples);
                times[k][c].extend(got);
            }
        }
    }
    let pick = |v: &mut Vec<Duration>, q: f64| {
        let mut v: Vec<f64> = v.iter().map(|d| ms(*d)).collect();
        quantile(&mut v, q)
    };
    println!(
        "\nrelay: a 2-peer pair forced through a TURN relay (relay-only) vs direct, {rounds} rounds; 100-byte RTT, {trials} trials of {samples} samples"
    );
    println!("{:<22}{:>18}{:>18}{:>18}", "", names[0], names[1], names[2]);
    let mut table = report::Table::new(
        "relay",
        format!(
            "Relayed paths: a volley pair forced through a TURN relay (IcePolicy::Relay) on a private namespace's veth, volley-server's built-in TURN vs coturn {}, beside the direct host path; connect over {} rounds, RTT of 100-byte echoes over {} trials of {} samples",
            if coturn.is_some() {
                "4.6"
            } else {
                "(not installed)"
            },
            rounds,
            trials,
            samples
        ),
        &names,
    );
    let mut line = |name: &str, values: [f64; 3]| {
        println!(
            "{name:<22}{:>16.3}ms{:>16.3}ms{:>16.3}ms",
            values[0], values[1], values[2]
        );
        table.row(format!("{name} (ms)"), report::Better::Lower, &values);
    };
    for (label, p) in [("p50", 0.5), ("p99", 0.99)] {
        let values = [0, 1, 2].map(|k| quantile(&mut connect[k], p));
        line(&format!("connect {label}"), values);
    }
    for (c, channel) in ["reliable", "unreliable"].into_iter().enumerate() {
        for (label, p) in [("p50", 0.5), ("p99", 0.99)] {
            let values = [0, 1, 2].map(|k| pick(&mut times[k][c], p));
            line(&format!("RTT {label}, {channel}"), values);
        }
    }
    table.save();
}
