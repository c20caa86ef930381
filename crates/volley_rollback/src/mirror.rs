//! What ggrs has received from each peer, decoded the way ggrs decodes it.
//!
//! ggrs keeps a remote player's inputs private, yet volley needs them: to
//! relay a dropped player's last inputs to a peer that missed them (see
//! [`crate::drops`]), and to know that every input ggrs will take
//! deserializes as the game's input type (ggrs stops reading a packet at
//! the first one that does not, a partial read volley could not follow).
//! So the [`Pipe`](crate::Pipe) shows every message to a [`Mirror`] the
//! moment ggrs takes it, and the mirror follows ggrs 0.13's rules: a
//! sender's messages carry one magic; an input run decodes against the
//! input before its first frame, which must still be kept (ggrs keeps
//! `2 × max_prediction` frames behind the last); frames already received
//! are skipped.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use crate::guard::{MAX_INPUT_BYTES, MAX_INPUTS_PER_PACKET};
use crate::rle::{self, RleError};
use crate::wire::{WireBody, WireMessage};

/// ggrs' frame number for "none".
pub const NULL_FRAME: i32 = -1;

/// Frames of each peer's inputs kept for relaying, behind its last.
pub const KEPT_FRAMES: i32 = 128;

/// Whether bytes decode as the game's input (what ggrs' `bincode 1`
/// `deserialize` accepts: fixed-width integers, trailing bytes allowed).
pub type InputCheck = fn(&[u8]) -> bool;

/// The [`InputCheck`] for input type `I`.
pub fn decodes_as<I: serde::de::DeserializeOwned>(bytes: &[u8]) -> bool {
    bincode1::deserialize::<I>(bytes).is_ok()
}

/// Why a message that passed the guard must still not reach ggrs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// The sender's messages carried another magic before.
    #[error("magic {got:#06x}, the sender's is {expected:#06x}")]
    Magic {
        /// The sender's first magic.
        expected: u16,
        /// This message's.
        got: u16,
    },
    /// An input does not deserialize as the game's input type.
    #[error("the input for frame {0} is not the game's input type")]
    Input(i32),
    /// The input encoding is broken.
    #[error("input encoding: {0}")]
    Encoding(#[from] RleError),
}

/// One sender's inputs as ggrs has them.
#[derive(Debug, Clone)]
struct Received {
    magic: Option<u16>,
    /// Frame → input bytes; [`NULL_FRAME`] is ggrs' blank (all-zero) input.
    frames: BTreeMap<i32, Vec<u8>>,
}

impl Default for Received {
    fn default() -> Self {
        Received {
            magic: None,
            frames: BTreeMap::from([(NULL_FRAME, Vec::new())]),
        }
    }
}

impl Received {
    fn last(&self) -> i32 {
        self.frames
            .last_key_value()
            .map_or(NULL_FRAME, |(frame, _)| *frame)
    }
}

/// Every sender's inputs as ggrs has them, by address.
#[derive(Debug, Clone)]
pub struct Mirror<A> {
    /// Frames ggrs keeps behind a sender's last input.
    ggrs_keeps: i32,
    check: InputCheck,
    peers: HashMap<A, Received>,
}

impl<A: Clone + Eq + Hash> Mirror<A> {
    /// A mirror of a ggrs session with this prediction window, whose inputs
    /// `check` accepts (see [`decodes_as`]).
    pub fn new(max_prediction: usize, check: InputCheck) -> Self {
        let window = i32::try_from(max_prediction).unwrap_or(i32::MAX / 2);
        Mirror {
            ggrs_keeps: window.saturating_mul(2),
            check,
            peers: HashMap::new(),
        }
    }

    /// Takes `message` from `from` as ggrs is about to; an error means ggrs
    /// must not have it (nothing was taken).
    ///
    /// ```
    /// use volley_rollback::mirror::{Mirror, NULL_FRAME, Unusable};
    /// use volley_rollback::wire::{WireBody, WireHeader, WireMessage};
    ///
    /// let mut mirror = Mirror::new(8, |_| true);
    /// let keep_alive = |magic| WireMessage { header: WireHeader { magic }, body: WireBody::KeepAlive };
    /// mirror.accept(&"a", &keep_alive(7)).unwrap();
    /// assert!(matches!(mirror.accept(&"a", &keep_alive(8)), Err(Unusable::Magic { .. })));
    /// assert_eq!(mirror.last(&"a"), NULL_FRAME);
    /// ```
    pub fn accept(&mut self, from: &A, message: &WireMessage) -> Result<(), Unusable> {
        let peer = self.peers.entry(from.clone()).or_default();
        match peer.magic {
            Some(expected) if expected != message.header.magic => {
                return Err(Unusable::Magic {
                    expected,
                    got: message.header.magic,
                });
            }
            _ => peer.magic = Some(message.header.magic),
        }
        let WireBody::Input(input) = &message.body else {
            return Ok(());
        };
        let last = peer.last();
        let decode_from = if last == NULL_FRAME {
            NULL_FRAME
        } else {
            input.start_frame.saturating_sub(1)
        };
        let kept = decode_from >= last.saturating_sub(self.ggrs_keeps);
        let Some(reference) = peer.frames.get(&decode_from).filter(|_| kept) else {
            return Ok(()); // ggrs cannot decode it either, and drops it
        };
        let bound = (MAX_INPUT_BYTES + 2) * MAX_INPUTS_PER_PACKET;
        let decoded = rle::decode_runs(&input.bytes, bound)?;
        let inputs = rle::delta_decode(reference, &decoded)?;
        let mut fresh = Vec::new();
        for (frame, bytes) in (input.start_frame..).zip(inputs) {
            if frame <= last {
                continue;
            }
            if !(self.check)(&bytes) {
                return Err(Unusable::Input(frame));
            }
            fresh.push((frame, bytes));
        }
        if fresh.is_empty() {
            return Ok(());
        }
        peer.frames.extend(fresh);
        let oldest = peer.last().saturating_sub(KEPT_FRAMES.max(self.ggrs_keeps));
        peer.frames.retain(|frame, _| *frame >= oldest);
        Ok(())
    }

    /// The last frame of `from`'s inputs ggrs has ([`NULL_FRAME`]: none).
    pub fn last(&self, from: &A) -> i32 {
        self.peers.get(from).map_or(NULL_FRAME, Received::last)
    }

    /// `from`'s magic, once it sent anything.
    pub fn magic(&self, from: &A) -> Option<u16> {
        self.peers.get(from).and_then(|p| p.magic)
    }

    /// `from`'s input at `frame`, if kept ([`NULL_FRAME`]: the blank input, empty).
    pub fn input(&self, from: &A, frame: i32) -> Option<&[u8]> {
        self.peers
            .get(from)
            .and_then(|p| p.frames.get(&frame))
            .map(Vec::as_slice)
    }

    /// Up to `count` of `from`'s latest inputs, oldest first.
    pub fn recent(&self, from: &A, count: usize) -> Vec<Vec<u8>> {
        let Some(peer) = self.peers.get(from) else {
            return Vec::new();
        };
        let mut recent: Vec<Vec<u8>> = peer
            .frames
            .iter()
            .rev()
            .filter(|(frame, _)| **frame != NULL_FRAME)
            .take(count)
            .map(|(_, bytes)| bytes.clone())
            .collect();
        recent.reverse();
        recent
    }
}
