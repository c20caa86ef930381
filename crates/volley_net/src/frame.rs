//! The framing header every DataChannel packet starts with.
//!
//! `[kind: u8][flags: u8][tick: u32 LE, if flagged][payload…]`. Kinds below
//! [`FIRST_USER_KIND`] belong to the session (handshake, ping, pong,
//! fragments, batches); registered user messages take the kinds from there on.

/// The session's handshake message.
pub const KIND_HELLO: u8 = 0;
/// RTT probe, answered by [`KIND_PONG`].
pub const KIND_PING: u8 = 1;
/// Answer to [`KIND_PING`].
pub const KIND_PONG: u8 = 2;
/// One piece of a reliable packet too large for one DataChannel message.
pub const KIND_FRAGMENT: u8 = 3;
/// Several frames packed into one packet (see [`crate::batch`]).
pub const KIND_BATCH: u8 = 4;
/// The first kind given to registered user messages.
pub const FIRST_USER_KIND: u8 = 16;

const FLAG_TICK: u8 = 0b0000_0001;
/// Used by fragments: this piece starts a packet and carries its total length.
pub(crate) const FLAG_FIRST: u8 = 0b0000_0010;
const KNOWN_FLAGS: u8 = FLAG_TICK | FLAG_FIRST;

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the payload is.
    pub kind: u8,
    /// The simulation tick it belongs to, when the sender gave one.
    pub tick: Option<u32>,
    /// Raw flag bits (only [`FLAG_FIRST`] is meaningful beyond the tick flag).
    pub(crate) flags: u8,
}

impl Header {
    /// A header for `kind`, optionally stamped with a tick.
    pub fn new(kind: u8, tick: Option<u32>) -> Self {
        Header {
            kind,
            tick,
            flags: 0,
        }
    }
}

/// Why a packet could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than its header says.
    #[error("truncated packet ({0} bytes)")]
    Truncated(usize),
    /// Flag bits this version does not know.
    #[error("unknown header flags {0:#04x}")]
    UnknownFlags(u8),
    /// Bytes left over after the frames a batch announced.
    #[error("{0} bytes after a batch's announced frames")]
    BatchTrailing(usize),
    /// A kind that may not travel inside a batch (batches, fragments).
    #[error("kind {0} inside a batch")]
    Nested(u8),
}

/// Appends a header to `out`.
pub fn write_header(out: &mut Vec<u8>, header: Header) {
    let mut flags = header.flags & !FLAG_TICK;
    if header.tick.is_some() {
        flags |= FLAG_TICK;
    }
    out.push(header.kind);
    out.push(flags);
    if let Some(tick) = header.tick {
        out.extend_from_slice(&tick.to_le_bytes());
    }
}

/// Splits a packet into its header and payload.
pub fn read(packet: &[u8]) -> Result<(Header, &[u8]), FrameError> {
    let [kind, flags, rest @ ..] = packet else {
        return Err(FrameError::Truncated(packet.len()));
    };
    if flags & !KNOWN_FLAGS != 0 {
        return Err(FrameError::UnknownFlags(*flags));
    }
    let (tick, payload) = if flags & FLAG_TICK != 0 {
        let Some((tick, payload)) = rest.split_first_chunk::<4>() else {
            return Err(FrameError::Truncated(packet.len()));
        };
        (Some(u32::from_le_bytes(*tick)), payload)
    } else {
        (None, rest)
    };
    Ok((
        Header {
            kind: *kind,
            tick,
            flags: *flags,
        },
        payload,
    ))
}

/// Length of a ping's (and its pong's) payload: the sender's clock in µs.
const PING_PAYLOAD: usize = 8;

/// A ping carrying the sender's clock (`micros`, little-endian).
pub fn ping(micros: u64) -> Vec<u8> {
    let mut packet = Vec::with_capacity(2 + PING_PAYLOAD);
    write_header(&mut packet, Header::new(KIND_PING, None));
    packet.extend_from_slice(&micros.to_le_bytes());
    packet
}

/// The answer to `packet` when it is a well-formed ping (header without a
/// tick, then exactly the clock): the same clock under [`KIND_PONG`]. A
/// transport calls this where packets arrive, so the RTT a peer measures
/// does not include our frame time.
pub fn pong_for(packet: &[u8]) -> Option<Vec<u8>> {
    match read(packet) {
        Ok((header, payload))
            if header.kind == KIND_PING
                && header.tick.is_none()
                && payload.len() == PING_PAYLOAD =>
        {
            let mut pong = Vec::with_capacity(packet.len());
            write_header(&mut pong, Header::new(KIND_PONG, None));
            pong.extend_from_slice(payload);
            Some(pong)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        for tick in [None, Some(0), Some(u32::MAX)] {
            let mut packet = Vec::new();
            write_header(&mut packet, Header::new(FIRST_USER_KIND, tick));
            packet.extend_from_slice(b"hi");
            let (header, payload) = read(&packet).unwrap();
            assert_eq!(
                (header.kind, header.tick, payload),
                (FIRST_USER_KIND, tick, &b"hi"[..])
            );
        }
    }

    #[test]
    fn truncated_and_unknown() {
        assert_eq!(read(&[]), Err(FrameError::Truncated(0)));
        assert_eq!(read(&[16]), Err(FrameError::Truncated(1)));
        assert_eq!(read(&[16, FLAG_TICK, 1, 2]), Err(FrameError::Truncated(4)));
        assert_eq!(read(&[16, 0x80]), Err(FrameError::UnknownFlags(0x80)));
    }

    #[test]
    fn pong_answers_a_ping_only() {
        let ping = ping(42);
        let pong = pong_for(&ping).unwrap();
        let (header, payload) = read(&pong).unwrap();
        assert_eq!(
            (header.kind, payload),
            (KIND_PONG, &42u64.to_le_bytes()[..])
        );
        assert_eq!(pong_for(&pong), None);
        assert_eq!(pong_for(&ping[..ping.len() - 1]), None);
        let mut long = ping.clone();
        long.push(0);
        assert_eq!(pong_for(&long), None);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = read(&bytes);
        }
    }
}
