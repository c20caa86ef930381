//! The server's Prometheus metrics, one registry per server instance (so
//! several servers in one test process do not mix their counts).

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const TIME_TO_MATCH: &str = "volley_time_to_match_seconds";
const REDIS_RTT: &str = "volley_cluster_redis_rtt_seconds";

/// Handles to every metric the server records.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Signaling peers currently connected.
    pub peers_connected: Gauge,
    /// Rooms and matches with at least one peer.
    pub rooms: Gauge,
    /// WebSocket connections accepted since start.
    pub connections_total: Counter,
    /// `?next=N` groups filled.
    pub matches_formed: Counter,
    /// Signals relayed to a peer of the same room.
    pub signals_relayed: Counter,
    /// Signals dropped: unknown receiver or another room.
    pub signals_dropped: Counter,
    /// Seconds from connecting to a full match, one sample per peer.
    pub time_to_match: Histogram,
    /// Client addresses the per-address limits currently track.
    pub tracked_ips: Gauge,
    /// Live allocations on the built-in TURN server.
    pub turn_allocations: Gauge,
    /// Allocations the built-in TURN server made since start.
    pub turn_allocations_total: Counter,
    /// Bytes the built-in TURN server relayed (both directions).
    pub turn_relayed_bytes: Counter,
    /// TLS handshakes completed (failures are refusals).
    pub tls_handshakes: Counter,
    /// Renewed certificates picked up from their files.
    pub tls_reloads: Counter,
    /// Live cluster nodes, this one included (0 without a cluster).
    pub cluster_nodes: Gauge,
    /// Whether Redis answered the last heartbeat (1) or not (0).
    pub cluster_redis_up: Gauge,
    /// Seconds per heartbeat: Redis round trips (two, three when a node died).
    pub cluster_redis_rtt: Histogram,
    /// Messages received from other nodes.
    pub cluster_received: Counter,
    /// Directory look-ups (joins and codes for names this node is not home to).
    pub cluster_claims: Counter,
    /// Peers in this node's rooms whose socket is on another node.
    pub cluster_remote_peers: Gauge,
    /// Peers that came back with a valid resume token.
    pub resumes: Counter,
    /// Seats held for peers whose connection was lost.
    pub seats_held: Gauge,
    /// Spectators watching (`?spectate`), waiting ones included.
    pub spectators: Gauge,
    /// Public rooms left out of this node's room list
    /// ([`crate::lobby::MAX_LISTED_ROOMS`]).
    pub rooms_unlisted: Gauge,
}

impl Metrics {
    /// A fresh registry.
    pub fn new() -> Self {
        let buckets = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            60.0,
        ];
        let rtt = [
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(TIME_TO_MATCH.into()), &buckets)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(REDIS_RTT.into()), &rtt))
            .unwrap_or_else(|_| unreachable!("bucket lists are not empty"))
            .build_recorder();
        let handle = recorder.handle();
        let (
            peers_connected,
            rooms,
            connections_total,
            matches_formed,
            signals_relayed,
            signals_dropped,
            time_to_match,
            tracked_ips,
            turn_allocations,
            turn_allocations_total,
            turn_relayed_bytes,
            tls_handshakes,
            tls_reloads,
            cluster,
            (resumes, seats_held, spectators, rooms_unlisted),
        ) = metrics::with_local_recorder(&recorder, || {
            (
                metrics::gauge!("volley_peers_connected"),
                metrics::gauge!("volley_rooms"),
                metrics::counter!("volley_connections_total"),
                metrics::counter!("volley_matches_formed_total"),
                metrics::counter!("volley_signals_relayed_total"),
                metrics::counter!("volley_signals_dropped_total"),
                metrics::histogram!(TIME_TO_MATCH),
                metrics::gauge!("volley_tracked_ips"),
                metrics::gauge!("volley_turn_allocations"),
                metrics::counter!("volley_turn_allocations_total"),
                metrics::counter!("volley_turn_relayed_bytes_total"),
                metrics::counter!("volley_tls_handshakes_total"),
                metrics::counter!("volley_tls_reloads_total"),
                (
                    metrics::gauge!("volley_cluster_nodes"),
                    metrics::gauge!("volley_cluster_redis_up"),
                    metrics::histogram!(REDIS_RTT),
                    metrics::counter!("volley_cluster_messages_received_total"),
                    metrics::counter!("volley_cluster_claims_total"),
                    metrics::gauge!("volley_cluster_remote_peers"),
                ),
                (
                    metrics::counter!("volley_resumes_total"),
                    metrics::gauge!("volley_seats_held"),
                    metrics::gauge!("volley_spectators"),
                    metrics::gauge!("volley_rooms_unlisted"),
                ),
            )
        });
        let (
            cluster_nodes,
            cluster_redis_up,
            cluster_redis_rtt,
            cluster_received,
            cluster_claims,
            cluster_remote_peers,
        ) = cluster;
        Metrics {
            recorder,
            handle,
            peers_connected,
            rooms,
            connections_total,
            matches_formed,
            signals_relayed,
            signals_dropped,
            time_to_match,
            tracked_ips,
            turn_allocations,
            turn_allocations_total,
            turn_relayed_bytes,
            tls_handshakes,
            tls_reloads,
            cluster_nodes,
            cluster_redis_up,
            cluster_redis_rtt,
            cluster_received,
            cluster_claims,
            cluster_remote_peers,
            resumes,
            seats_held,
            spectators,
            rooms_unlisted,
        }
    }

    /// Counts a message sent to another node, by kind (`join`, `signal`,
    /// `left`, `deliver`, `close`).
    pub fn cluster_sent(&self, kind: &'static str) {
        metrics::with_local_recorder(&self.recorder, || {
            metrics::counter!("volley_cluster_messages_sent_total", "kind" => kind).increment(1)
        });
    }

    /// Counts cluster messages lost: `queue_full` (the publish queue),
    /// `redis_error` (a publish that failed), `malformed` (one that arrived
    /// unreadable).
    pub fn cluster_dropped(&self, reason: &'static str, count: u64) {
        metrics::with_local_recorder(&self.recorder, || {
            metrics::counter!("volley_cluster_messages_dropped_total", "reason" => reason)
                .increment(count)
        });
    }

    /// Counts something the built-in TURN server refused (credentials,
    /// allocations over the cap, packets over an allocation's bandwidth).
    pub fn turn_refused(&self, reason: &'static str) {
        metrics::with_local_recorder(&self.recorder, || {
            metrics::counter!("volley_turn_refusals_total", "reason" => reason).increment(1)
        });
    }

    /// Counts a refused request or closed connection under its reason label
    /// ([`crate::refusal::Refusal::label`]).
    pub fn refused(&self, reason: &'static str) {
        metrics::with_local_recorder(&self.recorder, || {
            metrics::counter!("volley_refusals_total", "reason" => reason).increment(1)
        });
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Bounds the memory of pending histogram samples; call every few seconds.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
