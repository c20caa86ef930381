//! Why the server refuses a request or closes a connection.
//!
//! One type for every refusal, wherever it happens: each carries how it
//! reaches the client ([`Answer`]: an HTTP status before the WebSocket
//! upgrade, a close code after it, or nothing when the client is not
//! listening), a human-readable reason, and a stable metric label — every
//! refusal is logged once and counted in `/metrics` as
//! `volley_refusals_total{reason="<label>"}`. Browsers can read a close
//! frame's reason from `CloseEvent.reason` but never the body of a failed
//! upgrade, which is why lobby refusals happen after the upgrade; limits that
//! must stop a client before it costs anything answer over HTTP.

use std::time::Duration;

use crate::resume::ResumeError;
use crate::ticket::TicketError;

/// How a refusal reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP response with this status and the reason as the body (before
    /// any upgrade).
    Http(u16),
    /// A WebSocket close frame with this code and the reason as its text.
    Close(u16),
    /// Nothing: the connection is cut (the client is not reading, or never
    /// finished its request).
    Cut,
}

/// The reason the server refuses a request or closes a connection. It
/// travels between cluster nodes as JSON (a home node closing a peer whose
/// socket is on another node).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Refusal {
    // --- Before the upgrade: HTTP. ---
    /// Every connection slot of the server is taken (`--max-connections`).
    #[error("too many connections")]
    TooManyConnections,
    /// This address already holds its share of connections
    /// (`--max-connections-per-ip`).
    #[error("too many connections from your address (limit {limit})")]
    TooManyConnectionsFromIp {
        /// The limit.
        limit: u32,
    },
    /// The table of client addresses is full of addresses with open
    /// connections (`--max-tracked-ips`).
    #[error("too many clients")]
    TooManyClients,
    /// Too many HTTP requests from this address (`--http-rate-per-ip`).
    #[error("too many requests from your address ({per_second}/s, burst {burst})")]
    HttpRateLimited {
        /// Sustained requests per second.
        per_second: u32,
        /// Burst size.
        burst: u32,
    },
    /// Too many signaling connections opened from this address
    /// (`--joins-per-minute-per-ip`).
    #[error("too many joins from your address ({per_minute} per minute)")]
    JoinRateLimited {
        /// Joins per minute.
        per_minute: u32,
    },
    /// Too many `POST /api/rooms` from this address
    /// (`--room-creations-per-minute-per-ip`).
    #[error("too many rooms created from your address ({per_minute} per minute)")]
    RoomCreationRateLimited {
        /// Creations per minute.
        per_minute: u32,
    },
    /// Every private room code the server keeps is taken.
    #[error("too many private rooms ({0})")]
    TooManyPrivateRooms(usize),
    /// This address holds its share of private room codes
    /// (`--max-private-rooms-per-ip`).
    #[error("too many private rooms held by your address ({0})")]
    TooManyPrivateRoomsFromIp(usize),
    /// A missing, malformed, expired, forged or too long-lived ticket.
    #[error(transparent)]
    Ticket(#[from] TicketError),
    /// A malformed, expired, forged or misplaced resume token
    /// (`?resume=`, see `crate::resume`).
    #[error(transparent)]
    Resume(#[from] ResumeError),
    /// The ticket already holds its share of connections
    /// (`--max-connections-per-ticket`).
    #[error("ticket already in use (limit {limit} connections)")]
    TicketInUse {
        /// The limit.
        limit: usize,
    },

    // --- After the upgrade: close frames. ---
    /// The named room already holds `capacity` peers.
    #[error("room is full ({capacity} peers)")]
    RoomFull {
        /// The room's capacity.
        capacity: usize,
    },
    /// `?next=` was not a whole number between 2 and the server's room size.
    #[error("invalid next={value:?}: must be a whole number from 2 to {max}")]
    InvalidNext {
        /// The value as the client sent it.
        value: String,
        /// The largest group the server forms.
        max: usize,
    },
    /// The room name is too long or has characters outside the allowed set.
    #[error("invalid room name: at most {max} characters from A-Z a-z 0-9 _ - . (got {len} bytes)")]
    InvalidRoomName {
        /// The name's length in bytes.
        len: usize,
        /// The longest name allowed.
        max: usize,
    },
    /// A text frame that is not a matchbox `PeerRequest`.
    #[error("malformed request: {0}")]
    MalformedRequest(String),
    /// The protocol is JSON text; binary frames are refused.
    #[error("binary frames are not supported")]
    BinaryFrame,
    /// A message above the configured size limit.
    #[error("message too large (limit {limit} bytes)")]
    MessageTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The client sent more messages than its token bucket allows.
    #[error("rate limit exceeded ({per_second} messages/s, burst {burst})")]
    RateLimited {
        /// Sustained messages per second.
        per_second: u32,
        /// Burst size.
        burst: u32,
    },
    /// Nothing arrived (not even a pong) for the idle timeout.
    #[error("idle for {0:?}")]
    IdleTimeout(Duration),
    /// The client does not read its socket: a write made no progress within
    /// `--write-timeout`, or its outbound queue filled up. No close frame is
    /// actually sent (it would not be read); the socket is dropped.
    #[error("client too slow: not reading its socket")]
    SlowConsumer,
    /// The server is shutting down.
    #[error("server shutting down")]
    ServerShutdown,
    /// The peer id is already connected (cannot happen with random ids; kept
    /// so the state machine never has to trust its caller).
    #[error("duplicate peer id")]
    DuplicatePeer,
    /// A cluster node cannot reach Redis, and the room is not one it holds:
    /// it cannot learn where the room lives (`--redis`). Try again shortly.
    #[error("the cluster's directory is unreachable: try again shortly")]
    ClusterUnavailable,
    /// The cluster node holding the peer's room stopped answering (or this
    /// node lost its place in the cluster): join the room again.
    #[error("the server node holding this room was lost: join again")]
    NodeLost,
    /// A returning peer's seat is gone: its room filled up meanwhile, or its
    /// group closed. Join afresh.
    #[error("your seat is gone: join again")]
    SeatLost,
    /// The same peer came back on another connection (`?resume=`), which
    /// replaces this one.
    #[error("replaced by a newer connection of the same peer")]
    Replaced,
    /// `?spectate=` was neither empty (the named room, or with `?next=N`
    /// the name's match in play) nor a group's id with `?next=N`, or it
    /// came with a resume token (a spectator has no seat).
    #[error("invalid spectate={value:?}: empty, or a group id with next=N; no resume token")]
    InvalidSpectate {
        /// The value as the client sent it (cut).
        value: String,
    },
    /// A spectator asked for a named room with no member present, or a
    /// `?next=N` group that is not in play (unknown, or not full).
    #[error("nothing to watch here: no match in play")]
    NothingToWatch,
    /// The room already has `max` spectators (`--max-spectators`).
    #[error("too many spectators ({max})")]
    TooManySpectators {
        /// The limit.
        max: usize,
    },
    /// The room a spectator watched ended: its last member left.
    #[error("the match is over")]
    MatchOver,

    // --- Cut without an answer. ---
    /// No complete request head within `--handshake-timeout`.
    #[error("no complete request within the handshake timeout")]
    HandshakeTimeout,
    /// An HTTP response write made no progress within `--write-timeout`.
    #[error("HTTP client too slow: not reading its socket")]
    SlowHttpReader,
    /// An HTTP connection outlived `--http-timeout`.
    #[error("HTTP connection open too long")]
    HttpTimeout,
    /// No completed TLS handshake within `--handshake-timeout`.
    #[error("no TLS handshake within the handshake timeout")]
    TlsHandshakeTimeout,
    /// The TLS handshake failed (not TLS, no shared protocol version or
    /// cipher suite, or the client refused the certificate).
    #[error("TLS handshake failed")]
    TlsHandshakeFailed,
    /// Plain HTTP sent to a port that speaks TLS: answered in plain HTTP so
    /// that a `ws://` or `http://` URL gets a clear error.
    #[error("this server speaks TLS: use https:// and wss://")]
    PlainHttpOnTls,
}

impl Refusal {
    /// How the refusal reaches the client. Close codes are standard where one
    /// fits (RFC 6455 §7.4), otherwise in the application range 4000–4999.
    pub fn answer(&self) -> Answer {
        use Refusal::*;
        match self {
            TooManyConnections | TooManyClients | TooManyPrivateRooms(_) => Answer::Http(503),
            TooManyConnectionsFromIp { .. }
            | HttpRateLimited { .. }
            | JoinRateLimited { .. }
            | RoomCreationRateLimited { .. }
            | TooManyPrivateRoomsFromIp(_)
            | TicketInUse { .. } => Answer::Http(429),
            Ticket(_) | Resume(_) => Answer::Http(401),
            PlainHttpOnTls => Answer::Http(400),
            ServerShutdown => Answer::Close(1001),
            BinaryFrame => Answer::Close(1003),
            MalformedRequest(_) => Answer::Close(1007),
            RateLimited { .. } => Answer::Close(1008),
            MessageTooLarge { .. } => Answer::Close(1009),
            IdleTimeout(_) => Answer::Close(4000),
            RoomFull { .. } => Answer::Close(4001),
            InvalidNext { .. } => Answer::Close(4002),
            InvalidRoomName { .. } => Answer::Close(4003),
            SlowConsumer => Answer::Close(4004),
            DuplicatePeer => Answer::Close(4005),
            NodeLost => Answer::Close(4006),
            SeatLost => Answer::Close(4007),
            Replaced => Answer::Close(4008),
            InvalidSpectate { .. } => Answer::Close(4009),
            NothingToWatch => Answer::Close(4010),
            TooManySpectators { .. } => Answer::Close(4011),
            MatchOver => Answer::Close(4012),
            ClusterUnavailable => Answer::Close(1013),
            HandshakeTimeout | SlowHttpReader | HttpTimeout | TlsHandshakeTimeout
            | TlsHandshakeFailed => Answer::Cut,
        }
    }

    /// The status when answered over HTTP: its own for HTTP refusals, 503
    /// for the rest (a close reason can only reach an HTTP client when the
    /// server is going away).
    pub fn http_status(&self) -> u16 {
        match self.answer() {
            Answer::Http(status) => status,
            Answer::Close(_) | Answer::Cut => 503,
        }
    }

    /// The close code when answered with a close frame: its own for close
    /// refusals, 1008 (policy violation) for the rest.
    pub fn close_code(&self) -> u16 {
        match self.answer() {
            Answer::Close(code) => code,
            Answer::Http(_) | Answer::Cut => 1008,
        }
    }

    /// A short, stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        use Refusal::*;
        match self {
            TooManyConnections => "too_many_connections",
            TooManyConnectionsFromIp { .. } => "too_many_connections_from_ip",
            TooManyClients => "too_many_clients",
            HttpRateLimited { .. } => "http_rate_limited",
            JoinRateLimited { .. } => "join_rate_limited",
            RoomCreationRateLimited { .. } => "room_creation_rate_limited",
            TooManyPrivateRooms(_) => "too_many_private_rooms",
            TooManyPrivateRoomsFromIp(_) => "too_many_private_rooms_from_ip",
            Ticket(e) => e.label(),
            Resume(e) => e.label(),
            TicketInUse { .. } => "ticket_in_use",
            RoomFull { .. } => "room_full",
            InvalidNext { .. } => "invalid_next",
            InvalidRoomName { .. } => "invalid_room_name",
            MalformedRequest(_) => "malformed_request",
            BinaryFrame => "binary_frame",
            MessageTooLarge { .. } => "message_too_large",
            RateLimited { .. } => "rate_limited",
            IdleTimeout(_) => "idle_timeout",
            SlowConsumer => "slow_consumer",
            ServerShutdown => "server_shutdown",
            DuplicatePeer => "duplicate_peer",
            ClusterUnavailable => "cluster_unavailable",
            NodeLost => "node_lost",
            SeatLost => "seat_lost",
            Replaced => "replaced",
            InvalidSpectate { .. } => "invalid_spectate",
            NothingToWatch => "nothing_to_watch",
            TooManySpectators { .. } => "too_many_spectators",
            MatchOver => "match_over",
            HandshakeTimeout => "handshake_timeout",
            SlowHttpReader => "slow_http_reader",
            HttpTimeout => "http_timeout",
            TlsHandshakeTimeout => "tls_handshake_timeout",
            TlsHandshakeFailed => "tls_handshake_failed",
            PlainHttpOnTls => "plain_http_on_tls",
        }
    }

    /// The reason text for the close frame. RFC 6455 caps a close frame's
    /// payload at 125 bytes (2 of them the code), so it is cut on a char
    /// boundary.
    pub fn frame_text(&self) -> String {
        let mut text = self.to_string();
        if text.len() > 123 {
            let mut end = 123;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_text_fits_a_close_frame() {
        let long = Refusal::MalformedRequest("é".repeat(200));
        assert!(long.frame_text().len() <= 123);
        assert!(long.frame_text().starts_with("malformed request: é"));
        let next = Refusal::InvalidNext {
            value: "x".into(),
            max: 16,
        };
        assert_eq!(
            next.frame_text(),
            "invalid next=\"x\": must be a whole number from 2 to 16"
        );
    }

    #[test]
    fn a_long_spectate_value_still_fits_its_reason() {
        let refusal = crate::lobby::Watch::invalid(&"ü".repeat(100));
        assert_eq!(refusal.close_code(), 4009);
        let text = refusal.frame_text();
        assert!(text.len() <= 123, "{text}");
        let uuid = "00000000-0000-0000-0000-000000000001";
        let whole = crate::lobby::Watch::invalid(uuid).frame_text();
        assert!(whole.ends_with("no resume token"), "{whole}");
    }

    #[test]
    fn answers_and_labels() {
        let cases = [
            (Refusal::TooManyConnections, Answer::Http(503)),
            (
                Refusal::TooManyConnectionsFromIp { limit: 1 },
                Answer::Http(429),
            ),
            (Refusal::Ticket(TicketError::Expired), Answer::Http(401)),
            (Refusal::SlowConsumer, Answer::Close(4004)),
            (Refusal::ServerShutdown, Answer::Close(1001)),
            (Refusal::SlowHttpReader, Answer::Cut),
            (Refusal::TlsHandshakeFailed, Answer::Cut),
            (Refusal::PlainHttpOnTls, Answer::Http(400)),
            (Refusal::NothingToWatch, Answer::Close(4010)),
            (Refusal::TooManySpectators { max: 1 }, Answer::Close(4011)),
            (Refusal::MatchOver, Answer::Close(4012)),
        ];
        for (refusal, answer) in cases {
            assert_eq!(refusal.answer(), answer, "{refusal:?}");
        }
        assert_eq!(Refusal::SlowConsumer.close_code(), 4004);
        assert_eq!(Refusal::SlowConsumer.http_status(), 503);
        assert_eq!(Refusal::TooManyClients.http_status(), 503);
        assert_eq!(
            Refusal::JoinRateLimited { per_minute: 1 }.http_status(),
            429
        );
        assert_eq!(
            Refusal::Ticket(TicketError::BadSignature).label(),
            "ticket_forged"
        );
    }
}
