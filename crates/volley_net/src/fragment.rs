//! Splitting reliable packets that are too large for one DataChannel message.
//!
//! DataChannel implementations refuse or drop messages from about 64 KiB up
//! (webrtc-rs advertises `max-message-size:65536`), so a reliable packet
//! larger than [`CHUNK`] travels as fragments: the first carries the total
//! length, the rest only bytes. The reliable channel is ordered, so
//! reassembly needs no ids — just a bound on the total size.

use crate::frame::{self, FLAG_FIRST, FrameError, Header, KIND_FRAGMENT};

/// Payload bytes per fragment. Well under every implementation's limit, and
/// small enough that a large transfer does not stall other reliable messages
/// for long.
pub const CHUNK: usize = 16 * 1024;

/// Splits `packet` (already framed) into fragments if it exceeds [`CHUNK`].
pub fn split(packet: Vec<u8>) -> Vec<Vec<u8>> {
    if packet.len() <= CHUNK {
        return vec![packet];
    }
    let total = packet.len() as u32;
    packet
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, chunk)| {
            let mut out = Vec::with_capacity(chunk.len() + 8);
            let mut header = Header::new(KIND_FRAGMENT, None);
            if i == 0 {
                header.flags |= FLAG_FIRST;
            }
            frame::write_header(&mut out, header);
            if i == 0 {
                out.extend_from_slice(&total.to_le_bytes());
            }
            out.extend_from_slice(chunk);
            out
        })
        .collect()
}

/// Why fragments were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    /// The announced total exceeds the receiver's limit.
    #[error("reassembled message of {total} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Announced size.
        total: usize,
        /// The limit.
        limit: usize,
    },
    /// A continuation arrived with no packet started.
    #[error("fragment continuation without a first fragment")]
    Orphan,
    /// A first fragment arrived while another packet was incomplete.
    #[error("new fragmented packet before the previous one completed")]
    Interrupted,
    /// More bytes arrived than the first fragment announced.
    #[error("fragments overflow the announced size")]
    Overflow,
    /// The fragment header itself was broken.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Reassembles one peer's fragments on the ordered reliable channel.
#[derive(Debug)]
pub struct Reassembler {
    limit: usize,
    pending: Option<(usize, Vec<u8>)>,
}

impl Reassembler {
    /// Accepts packets of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Reassembler {
            limit,
            pending: None,
        }
    }

    /// Feeds the payload of a [`KIND_FRAGMENT`] packet; returns the whole
    /// packet once its last piece arrived. After an error the partial packet
    /// is dropped.
    pub fn push(
        &mut self,
        header: Header,
        payload: &[u8],
    ) -> Result<Option<Vec<u8>>, FragmentError> {
        let result = self.push_inner(header, payload);
        if result.is_err() {
            self.pending = None;
        }
        result
    }

    fn push_inner(
        &mut self,
        header: Header,
        payload: &[u8],
    ) -> Result<Option<Vec<u8>>, FragmentError> {
        let bytes = if header.flags & FLAG_FIRST != 0 {
            if self.pending.is_some() {
                return Err(FragmentError::Interrupted);
            }
            let Some((total, rest)) = payload.split_first_chunk::<4>() else {
                return Err(FrameError::Truncated(payload.len()).into());
            };
            let total = u32::from_le_bytes(*total) as usize;
            if total > self.limit {
                return Err(FragmentError::TooLarge {
                    total,
                    limit: self.limit,
                });
            }
            // Grows as pieces arrive: a lying first fragment reserves nothing.
            self.pending = Some((total, Vec::with_capacity(rest.len().min(total))));
            rest
        } else {
            payload
        };
        let Some((total, buffer)) = self.pending.as_mut() else {
            return Err(FragmentError::Orphan);
        };
        if buffer.len() + bytes.len() > *total {
            return Err(FragmentError::Overflow);
        }
        buffer.extend_from_slice(bytes);
        if buffer.len() == *total {
            return Ok(self.pending.take().map(|(_, b)| b));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reassemble(
        r: &mut Reassembler,
        pieces: &[Vec<u8>],
    ) -> Result<Option<Vec<u8>>, FragmentError> {
        let mut last = None;
        for piece in pieces {
            let (header, payload) = frame::read(piece)?;
            assert_eq!(header.kind, KIND_FRAGMENT);
            last = r.push(header, payload)?;
        }
        Ok(last)
    }

    #[test]
    fn one_mebibyte_round_trip() {
        let packet: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
        let pieces = split(packet.clone());
        assert_eq!(pieces.len(), 64);
        assert!(pieces.iter().all(|p| p.len() <= CHUNK + 6));
        let mut r = Reassembler::new(2 << 20);
        assert_eq!(reassemble(&mut r, &pieces), Ok(Some(packet)));
    }

    #[test]
    fn hostile_fragments_are_refused() {
        let pieces = split(vec![1; 3 * CHUNK]);
        let mut r = Reassembler::new(CHUNK);
        assert!(matches!(
            reassemble(&mut r, &pieces[..1]),
            Err(FragmentError::TooLarge { .. })
        ));
        let mut r = Reassembler::new(1 << 20);
        assert_eq!(
            reassemble(&mut r, &pieces[1..2]),
            Err(FragmentError::Orphan)
        );
        assert_eq!(
            reassemble(&mut r, &[pieces[0].clone(), pieces[0].clone()]),
            Err(FragmentError::Interrupted)
        );
        // After an error the next packet starts clean.
        assert_eq!(reassemble(&mut r, &pieces), Ok(Some(vec![1; 3 * CHUNK])));
        // A packet of CHUNK + 10 bytes whose last piece brings 20.
        let small = split(vec![2; CHUNK + 10]);
        let mut longer = small[1].clone();
        longer.extend_from_slice(&[2; 10]);
        let mut r = Reassembler::new(1 << 20);
        assert_eq!(
            reassemble(&mut r, &[small[0].clone(), longer]),
            Err(FragmentError::Overflow)
        );
    }

    proptest! {
        #[test]
        fn random_fragments_never_panic(pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8)) {
            let mut r = Reassembler::new(1024);
            for piece in pieces {
                if let Ok((header, payload)) = frame::read(&piece) {
                    let _ = r.push(header, payload);
                }
            }
        }
    }
}
