//! The server's Prometheus metrics, one registry per server instance (so
//! several servers in one test process do not mix their counts).

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const TIME_TO_MATCH: &str = "volley_time_to_match_seconds";

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
}

impl Metrics {
    /// A fresh registry.
    pub fn new() -> Self {
        let buckets = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            60.0,
        ];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(TIME_TO_MATCH.into()), &buckets)
            .unwrap_or_else(|_| unreachable!("bucket list is not empty"))
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
            )
        });
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
        }
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
