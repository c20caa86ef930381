//! Replays: a match as a file that plays again, frame for frame.
//!
//! A recording is what a spectator is fed (see [`crate::watch`]): the state
//! of a confirmed frame and every confirmed input after it, in *segments*
//! (a restart of the match, see [`crate::seats`], starts a new one from the
//! restarted state), plus the recording peer's checksums at checkpoints.
//! Playing it back is watching it: the same driver loads the state and
//! simulates the inputs, and every checkpoint it passes must match. A
//! doctored input or state changes the checksums after it; a doctored
//! file that does not decode, or whose frames do not follow each other,
//! is refused whole. (Checkpoints rewritten along with the inputs cannot
//! be told from a real match: a replay carries no signature.)
//!
//! [`Recorder`] turns the feed into a [`Replay`]; [`Replay::encode`] and
//! [`Replay::decode`] are the file; [`Replay::feed`] is what playback
//! hands the watcher.

use serde::{Deserialize, Serialize};

use crate::file::{self, Refused};
use crate::seats::{MAX_HANDOVER_BYTES, MAX_SEATS};
use crate::watch::{MAX_BATCH, MAX_FRAME_INPUTS, Snapshot, Watching};

/// The first bytes of a replay file (and its format's version).
pub const REPLAY_MAGIC: &[u8; 8] = b"VLYRPL01";

/// Largest replay file read: an hour at 60 frames/s of 4 players is
/// about 2 MiB of inputs, plus a state per restart.
pub const MAX_REPLAY_BYTES: usize = crate::file::MAX_FILE_BYTES;

/// Most segments (restarts + 1) a replay has.
pub const MAX_SEGMENTS: usize = 1024;

/// Frames between two checkpoints a recorder keeps.
pub const CHECKPOINT_EVERY: i32 = 10;

/// A recorded match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    /// What recorded it (the game's app version): playback checks it.
    pub app: String,
    /// The players' ids, by handle.
    pub players: Vec<u128>,
    /// The match, from state to state.
    pub segments: Vec<Segment>,
    /// The recording peer's checksums: `(frame, total)`, ascending.
    pub checkpoints: Vec<(i32, u128)>,
}

/// A stretch of the match from one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The match's epoch.
    pub epoch: u32,
    /// The match frame the epoch started at.
    pub base: i32,
    /// The match frame of the state.
    pub frame: i32,
    /// The world, as the driver saved it.
    pub state: Vec<u8>,
    /// Each frame's inputs from `frame` on, as the driver encoded them.
    pub inputs: Vec<Vec<u8>>,
}

/// Why a replay was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Not a replay file of this version.
    #[error("not a volley replay (or another version of the format)")]
    Magic,
    /// Over [`MAX_REPLAY_BYTES`].
    #[error("replay of {0} bytes is over {MAX_REPLAY_BYTES}")]
    TooLarge(usize),
    /// The bytes do not decode.
    #[error("replay does not decode: {0}")]
    Decode(String),
    /// Decoded, but its parts do not fit together.
    #[error("replay is inconsistent: {0}")]
    Inconsistent(&'static str),
}

impl From<Refused> for ReplayError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Magic => ReplayError::Magic,
            Refused::TooLarge(n) => ReplayError::TooLarge(n),
            Refused::Decode(e) => ReplayError::Decode(e),
        }
    }
}

impl Replay {
    /// The file's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, ReplayError> {
        Ok(file::encode(REPLAY_MAGIC, self)?)
    }

    /// Reads a file's bytes, within the limits, and checks that its parts
    /// fit together (see [`Replay::check`]).
    pub fn decode(bytes: &[u8]) -> Result<Replay, ReplayError> {
        let replay: Replay = file::decode(REPLAY_MAGIC, bytes)?;
        replay.check()?;
        Ok(replay)
    }

    /// Its parts fit together: players within a match's, segments in
    /// order (each starting at or after the one before began, on a base
    /// not before it), states and inputs within what a feed may carry,
    /// checkpoints ascending.
    pub fn check(&self) -> Result<(), ReplayError> {
        use ReplayError::Inconsistent;
        if self.players.is_empty() || self.players.len() > MAX_SEATS {
            return Err(Inconsistent("players"));
        }
        if self.segments.is_empty() || self.segments.len() > MAX_SEGMENTS {
            return Err(Inconsistent("segments"));
        }
        let mut last: Option<&Segment> = None;
        for segment in &self.segments {
            if segment.base < 0 || segment.frame < segment.base {
                return Err(Inconsistent("a segment's frames"));
            }
            if segment.state.len() > MAX_HANDOVER_BYTES
                || segment.inputs.iter().any(|i| i.len() > MAX_FRAME_INPUTS)
                || i32::try_from(segment.inputs.len()).is_err()
            {
                return Err(Inconsistent("a segment over the limits"));
            }
            if let Some(before) = last
                && (segment.frame < before.frame || segment.base < before.base)
            {
                return Err(Inconsistent("segments out of order"));
            }
            last = Some(segment);
        }
        if self.checkpoints.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(Inconsistent("checkpoints out of order"));
        }
        Ok(())
    }

    /// The frames segment `i` plays: from its state up to where the next
    /// one's epoch begins (what it recorded past that was played again).
    pub fn frames_of(&self, i: usize) -> std::ops::Range<i32> {
        let Some(segment) = self.segments.get(i) else {
            return 0..0;
        };
        let recorded = i32::try_from(segment.inputs.len()).unwrap_or(i32::MAX);
        let mut end = segment.frame.saturating_add(recorded);
        if let Some(next) = self.segments.get(i + 1) {
            end = end.min(next.base);
        }
        segment.frame..end.max(segment.frame)
    }

    /// Whether the replay plays `frame` (its checksum can be checked).
    pub fn plays(&self, frame: i32) -> bool {
        (0..self.segments.len()).any(|i| self.frames_of(i).contains(&frame))
    }

    /// The last frame it plays to.
    pub fn end(&self) -> i32 {
        (0..self.segments.len())
            .map(|i| self.frames_of(i).end)
            .max()
            .unwrap_or(0)
    }

    /// Segment `i` as a feed: its snapshot, then its inputs in batches.
    pub fn feed(&self, i: usize) -> Vec<Watching> {
        let Some(segment) = self.segments.get(i) else {
            return Vec::new();
        };
        let frames = self.frames_of(i);
        let count = usize::try_from(frames.end - frames.start).unwrap_or(0);
        let mut out = vec![Watching::Snapshot(Snapshot {
            epoch: segment.epoch,
            base: segment.base,
            frame: segment.frame,
            players: self.players.clone(),
            state: segment.state.clone(),
        })];
        let mut frame = segment.frame;
        for chunk in segment.inputs[..count].chunks(MAX_BATCH) {
            out.push(Watching::Inputs {
                frame,
                inputs: chunk.to_vec(),
            });
            frame = frame.saturating_add(chunk.len() as i32);
        }
        out
    }
}

/// Builds a [`Replay`] from a feed (what a spectator would be sent) and
/// the recording peer's checksums.
#[derive(Debug, Clone)]
pub struct Recorder {
    replay: Replay,
    /// The next checkpoint's frame, once recording began.
    next: Option<i32>,
}

/// The first checkpoint frame at or after `frame`.
fn on_grid(frame: i32) -> i32 {
    let up = frame.saturating_add(CHECKPOINT_EVERY - 1);
    up.div_euclid(CHECKPOINT_EVERY) * CHECKPOINT_EVERY
}

impl Recorder {
    /// A recording of a match of `app`.
    pub fn new(app: impl Into<String>) -> Self {
        Recorder {
            replay: Replay {
                app: app.into(),
                players: Vec::new(),
                segments: Vec::new(),
                checkpoints: Vec::new(),
            },
            next: None,
        }
    }

    /// The next message of the feed. A snapshot starts a segment (and cuts
    /// what was recorded from its epoch's base on: played again); inputs
    /// must follow the segment's last ones (anything else is dropped).
    pub fn record(&mut self, message: Watching) {
        match message {
            Watching::Watch => {}
            Watching::Snapshot(Snapshot {
                epoch,
                base,
                frame,
                players,
                state,
            }) => {
                if self.replay.segments.len() >= MAX_SEGMENTS {
                    return;
                }
                if let Some(last) = self.replay.segments.last_mut() {
                    let keep = usize::try_from(base.saturating_sub(last.frame)).unwrap_or(0);
                    last.inputs.truncate(keep);
                }
                self.replay.checkpoints.retain(|(f, _)| *f < base);
                self.next = Some(match self.next {
                    None => on_grid(frame),
                    Some(next) => next.min(on_grid(base)),
                });
                self.replay.players = players;
                self.replay.segments.push(Segment {
                    epoch,
                    base,
                    frame,
                    state,
                    inputs: Vec::new(),
                });
            }
            Watching::Inputs { frame, inputs } => {
                let Some(last) = self.replay.segments.last_mut() else {
                    return;
                };
                let next = last.frame.saturating_add(last.inputs.len() as i32);
                if frame == next {
                    last.inputs.extend(inputs);
                }
            }
        }
    }

    /// The frame whose checksum is wanted next (every
    /// [`CHECKPOINT_EVERY`] frames), once recording began.
    pub fn next_checkpoint(&self) -> Option<i32> {
        self.next
    }

    /// The recording peer's checksum of a confirmed frame (`None`: it has
    /// none; the checkpoint is skipped).
    pub fn checkpoint(&mut self, frame: i32, total: Option<u128>) {
        if let Some(total) = total
            && self
                .replay
                .checkpoints
                .last()
                .is_none_or(|(f, _)| *f < frame)
        {
            self.replay.checkpoints.push((frame, total));
        }
        if self.next.is_some_and(|next| next <= frame) {
            self.next = Some(on_grid(frame.saturating_add(1)));
        }
    }

    /// The replay so far.
    pub fn replay(&self) -> &Replay {
        &self.replay
    }
}

/// What playing a replay back found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Checkpoints passed with the recorded checksum.
    pub verified: usize,
    /// Checkpoints in frames the replay does not play (a restart's gap).
    pub skipped: usize,
    /// The first checkpoint whose checksum differs: frame, recorded, ours.
    pub mismatch: Option<(i32, u128, u128)>,
}

#[cfg(test)]
mod tests;
