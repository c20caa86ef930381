//! Signaling load: `volley-server` against `matchbox_server`, same load
//! generator, alternating rounds, numbers printed side by side as ratios.
//!
//! Run with `cargo xtask bench` (which installs `matchbox_server` 0.15 from
//! crates.io) or `MATCHBOX_SERVER=/path/to/matchbox_server cargo bench -p
//! volley_server --bench signaling`. Without a matchbox binary only volley runs.
//!
//! Per round and server, on a fresh server process:
//! 1. *matches*: `--workers` concurrent workers each form 2-player `?next=2`
//!    matches back to back for `--seconds`: two WebSockets join a fresh room,
//!    the peer told of the other sends an offer, the other answers. Reported:
//!    matches/s, client-side time-to-match p50/p99 (connect → answer
//!    received), and the server process's own CPU time per match, read from
//!    /proc so the load generator on the other core does not blur it.
//! 2. *idle*: `--idle` peers join rooms of 8 and stay; reported: the server's
//!    RSS growth per idle peer.
//!
//! With `redis-server` on the PATH the same load also runs against volley
//! clusters of 1, 2 and 3 nodes on one Redis (`--nodes 1,2,3`; `--nodes 0`
//! skips them): each match's two players join through different nodes in
//! turn, the CPU per match is the nodes' and Redis' together, and the
//! time-to-match is the cross-node one. The idle phase runs on single
//! servers only.
//!
//! Options: `--rounds N --seconds S --workers W --idle P --volley-threads T --nodes L`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use volley_testkit::redis::Redis;
use volley_testkit::report;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Ws = WebSocketStream<TcpStream>;

struct Options {
    rounds: usize,
    seconds: f64,
    workers: usize,
    idle: usize,
    /// `--threads` for volley-server (1 is its default; 0: one per core).
    volley_threads: usize,
    /// Cluster sizes measured (empty: none).
    nodes: Vec<usize>,
}

fn options() -> Options {
    let args = report::Options::parse(&[
        "rounds",
        "seconds",
        "workers",
        "idle",
        "volley-threads",
        "nodes",
    ]);
    let nodes: String = args.get("nodes", "1,2,3".to_string());
    Options {
        rounds: args.get("rounds", 3),
        seconds: args.get("seconds", 3.0),
        workers: args.get("workers", 32),
        idle: args.get("idle", 10_000),
        volley_threads: args.get("volley-threads", 1),
        nodes: nodes
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .filter(|&n| (1..=3).contains(&n))
            .collect(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Volley,
    Matchbox,
    /// volley-server nodes on one Redis.
    Cluster(usize),
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Volley => "volley-server",
            Kind::Matchbox => "matchbox_server",
            Kind::Cluster(1) => "cluster of 1",
            Kind::Cluster(2) => "cluster of 2",
            Kind::Cluster(_) => "cluster of 3",
        }
    }
}

/// A server: one process, or a cluster's nodes and its Redis.
struct ServerProcess {
    children: Vec<Child>,
    addrs: Vec<SocketAddr>,
    redis: Option<Redis>,
}

impl ServerProcess {
    fn start(kind: Kind, matchbox: &Option<PathBuf>, o: &Options) -> ServerProcess {
        let Kind::Cluster(nodes) = kind else {
            let (child, addr) = Self::process(kind, matchbox, o, None);
            return ServerProcess {
                children: vec![child],
                addrs: vec![addr],
                redis: None,
            };
        };
        let redis = Redis::start();
        let mut children = Vec::new();
        let mut addrs = Vec::new();
        for node in 0..nodes {
            let (child, addr) =
                Self::process(Kind::Volley, matchbox, o, Some((&redis.url(), node)));
            children.push(child);
            addrs.push(addr);
        }
        // Every node sees the others (one heartbeat) before the load starts.
        std::thread::sleep(Duration::from_millis(1200));
        ServerProcess {
            children,
            addrs,
            redis: Some(redis),
        }
    }

    fn process(
        kind: Kind,
        matchbox: &Option<PathBuf>,
        o: &Options,
        cluster: Option<(&str, usize)>,
    ) -> (Child, SocketAddr) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = match kind {
            Kind::Volley => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_volley-server"));
                c.args(["--addr", &addr.to_string(), "--max-connections", "60000"]);
                // Thousands of peers from 32 loopback addresses: per-address
                // limits off.
                c.args([
                    "--max-connections-per-ip",
                    "0",
                    "--joins-per-minute-per-ip",
                    "0",
                    "--http-rate-per-ip",
                    "0",
                ]);
                c.args(["--threads", &o.volley_threads.to_string()]);
                if let Some((redis, node)) = cluster {
                    c.args(["--redis", redis, "--node-id", &format!("n{node}")]);
                }
                c
            }
            Kind::Cluster(_) => unreachable!("started node by node"),
            Kind::Matchbox => {
                let mut c = Command::new(matchbox.as_ref().expect("matchbox binary"));
                c.arg(addr.to_string());
                c
            }
        };
        // Logging off for both: matchbox_server logs every event at info.
        let child = command
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not start listening",
                kind.name()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        (child, addr)
    }

    /// Every process of the server: its nodes and Redis.
    fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.children.iter().map(Child::id).collect();
        pids.extend(self.redis.as_ref().and_then(Redis::pid));
        pids
    }

    /// (utime, stime) of all its processes together.
    fn cpu_split(&self) -> (Duration, Duration) {
        self.pids()
            .into_iter()
            .map(cpu_of)
            .fold((Duration::ZERO, Duration::ZERO), |(u, s), (pu, ps)| {
                (u + pu, s + ps)
            })
    }

    fn rss_kib(&self) -> u64 {
        self.pids().into_iter().map(rss_of).sum()
    }
}

/// (utime, stime) of one process.
fn cpu_of(pid: u32) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 of stat(5), counted after the comm field.
    let ticks =
        |i: usize| Duration::from_secs_f64(fields[i].parse::<f64>().unwrap() / clock_ticks());
    (ticks(11), ticks(12))
}

fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Connects from one of 127.0.0.2..=127.0.0.33 so that tens of thousands of
/// short connections do not exhaust one source address's ephemeral ports.
async fn connect(addr: SocketAddr, path: &str, n: usize) -> Ws {
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % 32) as u8));
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(source, 0))
        .expect("bind source");
    let stream = socket.connect(addr).await.expect("tcp connect");
    stream.set_nodelay(true).ok();
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        format!("ws://{addr}/{path}"),
        stream,
        Some(config),
    )
    .await
    .expect("websocket handshake");
    ws
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

fn id_of(text: &str, key: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value.get(key)?.as_str().map(str::to_owned)
}

fn signal(to: &str, data: &str) -> Message {
    Message::text(format!(
        r#"{{"Signal":{{"receiver":"{to}","data":{{"{data}":"v=0 bench"}}}}}}"#
    ))
}

/// One match: two peers meet in a fresh room and complete an offer/answer.
/// One `?next=2` match with an offer/answer relay: the time to match, and
/// the two relays' latencies (send → the other peer has it).
/// One 2-player match; in a cluster its players join through two nodes
/// (taken in turn).
async fn one_match(addrs: &[SocketAddr], worker: usize, n: usize) -> (Duration, [Duration; 2]) {
    let started = Instant::now();
    let path = format!("w{worker}m{n}?next=2");
    let node = |i: usize| addrs[(worker + i) % addrs.len()];
    let (mut a, mut b) = tokio::join!(
        connect(node(n), &path, 2 * n),
        connect(node(n + 1), &path, 2 * n + 1)
    );
    let (a_hello, b_hello) = tokio::join!(next_text(&mut a), next_text(&mut b));
    let a_id = id_of(&a_hello, "IdAssigned").expect("IdAssigned");
    let b_id = id_of(&b_hello, "IdAssigned").expect("IdAssigned");
    // Whoever joined first is told of the other and sends the offer.
    let (first, second, second_id) = tokio::select! {
        text = next_text(&mut a) => { assert_eq!(id_of(&text, "NewPeer"), Some(b_id.clone())); (&mut a, &mut b, b_id) }
        text = next_text(&mut b) => { assert_eq!(id_of(&text, "NewPeer"), Some(a_id.clone())); (&mut b, &mut a, a_id) }
    };
    let offer_sent = Instant::now();
    first
        .send(signal(&second_id, "Offer"))
        .await
        .expect("send offer");
    let offer = next_text(second).await;
    let offer_relay = offer_sent.elapsed();
    let sender =
        serde_json::from_str::<serde_json::Value>(&offer).expect("json")["Signal"]["sender"]
            .as_str()
            .expect("offer sender")
            .to_owned();
    let answer_sent = Instant::now();
    second
        .send(signal(&sender, "Answer"))
        .await
        .expect("send answer");
    let answer = next_text(first).await;
    let answer_relay = answer_sent.elapsed();
    assert!(answer.contains("Answer"), "{answer}");
    (started.elapsed(), [offer_relay, answer_relay])
}

struct MatchRun {
    matches: usize,
    seconds: f64,
    /// Server CPU in user space and in the kernel.
    user: Duration,
    system: Duration,
    latencies: Vec<Duration>,
    /// Signal relay latencies, measured while the load runs.
    relays: Vec<Duration>,
}

async fn match_phase(server: &ServerProcess, o: &Options) -> MatchRun {
    let addrs = server.addrs.clone();
    let (user_before, system_before) = server.cpu_split();
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(o.seconds);
    let mut tasks = Vec::new();
    for worker in 0..o.workers {
        let addrs = addrs.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut relays = Vec::new();
            let mut n = 0;
            while Instant::now() < until {
                let (waited, relayed) =
                    tokio::time::timeout(Duration::from_secs(10), one_match(&addrs, worker, n))
                        .await
                        .expect("a match within 10 s");
                latencies.push(waited);
                relays.extend(relayed);
                n += 1;
            }
            (latencies, relays)
        }));
    }
    let mut latencies = Vec::new();
    let mut relays = Vec::new();
    for task in tasks {
        let (l, r) = task.await.expect("worker");
        latencies.extend(l);
        relays.extend(r);
    }
    let seconds = started.elapsed().as_secs_f64();
    // Let the server finish processing the last closes before reading its CPU.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (user, system) = server.cpu_split();
    MatchRun {
        matches: latencies.len(),
        seconds,
        user: user - user_before,
        system: system - system_before,
        latencies,
        relays,
    }
}

/// Idle peers counted when RSS is sampled (those above `--idle` are skipped).
const IDLE_STEPS: [usize; 3] = [1_000, 5_000, 10_000];

/// The idle peer counts sampled: the steps below `--idle`, and `--idle`.
fn idle_steps(o: &Options) -> Vec<usize> {
    IDLE_STEPS
        .iter()
        .copied()
        .filter(|n| *n < o.idle)
        .chain([o.idle])
        .collect()
}

/// Server RSS growth per idle peer, at each of `steps` peers connected.
async fn idle_phase(server: &ServerProcess, steps: &[usize]) -> Vec<f64> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = server.rss_kib();
    let addr = server.addrs[0];
    let peers = steps.iter().copied().max().unwrap_or(0);
    let mut held = Vec::with_capacity(peers);
    let mut batch = Vec::new();
    let mut per_peer = Vec::new();
    for n in 0..peers {
        batch.push(tokio::spawn(async move {
            let mut ws = connect(addr, &format!("idle{}", n / 8), n).await;
            let hello = next_text(&mut ws).await;
            assert!(hello.contains("IdAssigned"), "{hello}");
            ws
        }));
        if batch.len() == 64 || n + 1 == peers || steps.contains(&(n + 1)) {
            for task in batch.drain(..) {
                held.push(task.await.expect("idle peer"));
            }
        }
        if steps.contains(&(n + 1)) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let grown = server.rss_kib().saturating_sub(baseline);
            per_peer.push(grown as f64 / (n + 1) as f64);
        }
    }
    drop(held);
    per_peer
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

#[derive(Default)]
struct Totals {
    matches: usize,
    seconds: f64,
    cpu: Duration,
    latencies: Vec<Duration>,
    relays: Vec<Duration>,
    /// Per round, KiB per idle peer at each step.
    idle_kib: Vec<Vec<f64>>,
    /// Server CPU per match (µs), one entry per round.
    cpu_per_match: Vec<f64>,
}

fn main() {
    let o = options();
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("cannot raise the file descriptor limit: {e}");
    }
    let matchbox = std::env::var_os("MATCHBOX_SERVER").map(PathBuf::from);
    let mut kinds = vec![Kind::Volley];
    if matchbox.is_some() {
        kinds.push(Kind::Matchbox);
    } else {
        eprintln!(
            "MATCHBOX_SERVER not set: measuring volley-server alone (cargo xtask bench installs it)"
        );
    }
    let has_redis = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_redis {
        kinds.extend(o.nodes.iter().map(|&n| Kind::Cluster(n)));
    } else if !o.nodes.is_empty() {
        eprintln!("redis-server not found: no cluster runs (cargo xtask bench installs it)");
    }
    // The load generator runs on one thread, leaving the other core to the server.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut totals: Vec<Totals> = kinds.iter().map(|_| Totals::default()).collect();
    for round in 0..o.rounds {
        // Alternate which server goes first, so drift favours neither.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..kinds.len()).collect()
        } else {
            (0..kinds.len()).rev().collect()
        };
        for k in order {
            let kind = kinds[k];
            let server = ServerProcess::start(kind, &matchbox, &o);
            let run = runtime.block_on(match_phase(&server, &o));
            drop(server);
            // RSS per idle peer is a single server's figure.
            let idle = if matches!(kind, Kind::Cluster(_)) {
                Vec::new()
            } else {
                let server = ServerProcess::start(kind, &matchbox, &o);
                let idle = runtime.block_on(idle_phase(&server, &idle_steps(&o)));
                drop(server);
                idle
            };
            let per_match = |d: Duration| d.as_secs_f64() * 1e6 / run.matches.max(1) as f64;
            eprintln!(
                "round {round} {:>16}: {:>6} matches in {:.1}s, CPU/match {:.0} µs user + {:.0} µs kernel, {:.1} KiB/idle peer",
                kind.name(),
                run.matches,
                run.seconds,
                per_match(run.user),
                per_match(run.system),
                idle.last().copied().unwrap_or(f64::NAN)
            );
            let t = &mut totals[k];
            t.matches += run.matches;
            t.seconds += run.seconds;
            t.cpu += run.user + run.system;
            t.cpu_per_match.push(per_match(run.user + run.system));
            t.latencies.extend(run.latencies);
            t.relays.extend(run.relays);
            t.idle_kib.push(idle);
        }
    }
    report(&o, &kinds, &mut totals);
}

fn report(o: &Options, kinds: &[Kind], totals: &mut [Totals]) {
    let steps = idle_steps(o);
    let rows: Vec<Vec<f64>> = totals
        .iter_mut()
        .map(|t| {
            t.latencies.sort();
            t.relays.sort();
            let mut row = vec![
                t.matches as f64 / t.seconds,
                t.cpu.as_secs_f64() * 1e6 / t.matches.max(1) as f64,
                percentile(&t.latencies, 0.5),
                percentile(&t.latencies, 0.99),
                percentile(&t.relays, 0.5),
                percentile(&t.relays, 0.99),
            ];
            // The median over rounds at each step.
            for step in 0..steps.len() {
                let mut at: Vec<f64> = t
                    .idle_kib
                    .iter()
                    .filter_map(|r| r.get(step).copied())
                    .collect();
                at.sort_by(f64::total_cmp);
                row.push(at.get(at.len() / 2).copied().unwrap_or(f64::NAN));
            }
            row
        })
        .collect();
    println!();
    println!(
        "signaling benchmark: {} rounds x {:.0} s, {} match workers, {} idle peers",
        o.rounds, o.seconds, o.workers, o.idle
    );
    let mut header = format!("{:<40}", "");
    for kind in kinds {
        header += &format!("{:>16}", kind.name());
    }
    let versus = kinds.get(1) == Some(&Kind::Matchbox);
    if versus {
        header += &format!("{:>18}", "volley/matchbox");
    }
    println!("{header}");
    let mut names: Vec<String> = [
        "matches/s",
        "server CPU per match (µs)",
        "time-to-match p50 (ms)",
        "time-to-match p99 (ms)",
        "signal relay p50 under load (ms)",
        "signal relay p99 under load (ms)",
    ]
    .map(String::from)
    .to_vec();
    for n in &steps {
        names.push(format!("RSS per idle peer at {n} peers (KiB)"));
    }
    let columns: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    let mut table = report::Table::new(
        "signaling",
        format!(
            "Signaling: same load generator, alternating runs; {} rounds x {:.0} s, {} ?next=2 match workers (offer/answer relay), {} idle peers",
            o.rounds, o.seconds, o.workers, o.idle
        ),
        &columns,
    );
    for (i, name) in names.iter().enumerate() {
        let better = if i == 0 {
            report::Better::Higher
        } else {
            report::Better::Lower
        };
        let values: Vec<f64> = rows.iter().map(|r| r[i]).collect();
        table.row(name.as_str(), better, &values);
    }
    table.save();
    for (i, name) in names.iter().enumerate() {
        let mut line = format!("{name:<40}");
        for row in &rows {
            line += &format!("{:>16.2}", row[i]);
        }
        if versus {
            line += &format!("{:>17.2}x", rows[0][i] / rows[1][i]);
        }
        println!("{line}");
    }
    // What going through Redis costs: each cluster against the single server.
    for (k, kind) in kinds.iter().enumerate() {
        if let Kind::Cluster(n) = kind {
            println!(
                "cluster of {n}: {:.0} µs server CPU per match (nodes + Redis), {:+.0} µs ({:.2}x) against one server without Redis",
                rows[k][1],
                rows[k][1] - rows[0][1],
                rows[k][1] / rows[0][1]
            );
        }
    }
    if versus {
        // The same round's two runs are closest in time: their ratio is the
        // least disturbed by the machine's drift.
        let mut ratios: Vec<f64> = totals[0]
            .cpu_per_match
            .iter()
            .zip(&totals[1].cpu_per_match)
            .map(|(v, m)| v / m)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "server CPU per match, volley/matchbox by round: [{}], median {:.2}x",
            shown.join(", "),
            ratios[ratios.len() / 2]
        );
    }
}
