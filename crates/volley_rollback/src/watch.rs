//! Spectators: anyone may watch a running match, joining at any time.
//!
//! A spectator is fed by exactly one peer, its *feeder*: a player, or a
//! spectator that relays what it is fed. The signaling server picks the
//! feeder and bounds how many spectators one peer feeds, so what a player
//! pays does not grow with the crowd. The feeder sends a
//! [`Watching::Snapshot`] (the registered rollback state of a confirmed
//! frame) and then every frame's confirmed inputs
//! ([`Watching::Inputs`]); the spectator loads the state and simulates
//! those inputs, a few frames behind the players and never predicting.
//!
//! A player knows a frame's inputs are final once the frame is confirmed:
//! the last simulation of a frame used its true inputs (ggrs rolls back on
//! every misprediction), so it records every simulation and sends what is
//! confirmed. A spectator's inputs are all final, so it relays them as
//! they come. A restarted match (see [`crate::seats`]) replays frames: the
//! feeder sends a new snapshot.
//!
//! [`Watch`] is the pure state machine (frames and bytes in, messages out);
//! the Bevy driver saves and loads the world and runs the frames. Inputs
//! are opaque bytes here: the driver encodes and decodes the game's type.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::seats::{MAX_HANDOVER_BYTES, MAX_SEATS};

/// Largest encoded [`Watching`] a peer may send (a snapshot and its frame).
pub const MAX_WATCH_BYTES: usize = MAX_HANDOVER_BYTES + 1024;

/// Most spectators one peer feeds, whatever the signaling server asks: a
/// peer that is sent more is refused beyond this.
pub const MAX_FED: usize = 4;

/// Most frames of inputs in one [`Watching::Inputs`].
pub const MAX_BATCH: usize = 64;

/// Largest encoded inputs of one frame (every player's input).
pub const MAX_FRAME_INPUTS: usize = 1024;

/// Most frames a spectator holds that it has not shown yet (20 s at 60
/// frames/s): a feeder that sends more is misbehaving.
pub const MAX_BUFFERED: usize = 1200;

/// Frames a spectator stays behind the newest inputs it has: the feed
/// arrives in bursts, and showing every frame once beats jumping.
pub const WATCH_DELAY: usize = 4;

/// Most frames a spectator simulates in one update while it catches up.
pub const MAX_CATCH_UP: usize = 16;

/// What spectators and their feeders send each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Watching {
    /// A spectator asks to be fed.
    Watch,
    /// The state of a confirmed frame; inputs follow from that frame on.
    Snapshot(Snapshot),
    /// Confirmed inputs of frames `frame`, `frame + 1`, … in order.
    Inputs {
        /// The first frame.
        frame: i32,
        /// Each frame's inputs, as the driver encoded them.
        inputs: Vec<Vec<u8>>,
    },
}

/// Why a [`Watching`] message was refused (it counts against its sender).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// A player was sent a snapshot or inputs: players follow nobody.
    #[error("a player was sent a spectator's feed")]
    NotWatching,
    /// Inputs that do not follow the last ones received.
    #[error("inputs from frame {got}, expected frame {expected}")]
    Gap {
        /// The frame expected next.
        expected: i32,
        /// The frame sent.
        got: i32,
    },
    /// Too many frames at once, too many held, or a frame too large.
    #[error("inputs over the limits ({frames} frames, {bytes} bytes for one frame)")]
    TooMuch {
        /// Frames sent (or held, when over [`MAX_BUFFERED`]).
        frames: usize,
        /// The largest frame's size.
        bytes: usize,
    },
    /// A snapshot whose frames or players make no sense.
    #[error("a snapshot of frame {frame} at base {base} for {players} players")]
    Snapshot {
        /// Its frame.
        frame: i32,
        /// Its base.
        base: i32,
        /// Its players.
        players: usize,
    },
}

/// The state of a confirmed frame: what a spectator loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The match's epoch (a restart sends a new snapshot).
    pub epoch: u32,
    /// The match frame the epoch started at.
    pub base: i32,
    /// The match frame whose state this is (before its inputs).
    pub frame: i32,
    /// The players' ids, by handle.
    pub players: Vec<u128>,
    /// The world, as the driver saved it.
    pub state: Vec<u8>,
}

/// One peer's side of watching: the spectators it feeds and, for a
/// spectator, the feed it follows. `P` names peers.
#[derive(Debug, Clone)]
pub struct Watch<P> {
    spectator: bool,
    /// Spectators fed: the next frame each is sent (`None`: it waits for
    /// a snapshot).
    fed: BTreeMap<P, Option<i32>>,
    /// Inputs by match frame: a player's recorded simulations (final up to
    /// `confirmed`), a spectator's feed (all final), from the oldest frame
    /// still needed.
    inputs: BTreeMap<i32, Vec<u8>>,
    /// The last frame whose inputs are final.
    confirmed: i32,
    /// A spectator's feeder, once a snapshot came from it.
    source: Option<P>,
    /// A spectator's next frame to simulate, once it has a state.
    shown: Option<i32>,
    /// Peers a spectator asked to be fed (each once per connection).
    asked: BTreeSet<P>,
}

impl<P: Copy + Ord> Watch<P> {
    /// A player's side: it feeds and never follows.
    pub fn player() -> Self {
        Self::new(false)
    }

    /// A spectator's side: it follows one feeder and may feed others.
    pub fn spectator() -> Self {
        Self::new(true)
    }

    fn new(spectator: bool) -> Self {
        Watch {
            spectator,
            fed: BTreeMap::new(),
            inputs: BTreeMap::new(),
            confirmed: -1,
            source: None,
            shown: None,
            asked: BTreeSet::new(),
        }
    }

    /// Whether this side watches (rather than plays).
    pub fn is_spectator(&self) -> bool {
        self.spectator
    }

    /// Whether `peer` is a spectator this side feeds (a player must not
    /// count it among the match's players).
    pub fn feeds(&self, peer: &P) -> bool {
        self.fed.contains_key(peer)
    }

    /// Whether anyone is fed (a player records inputs only then).
    pub fn is_feeding(&self) -> bool {
        !self.fed.is_empty()
    }

    /// The spectators fed, and the frame each is sent next.
    pub fn fed(&self) -> impl Iterator<Item = (&P, &Option<i32>)> {
        self.fed.iter()
    }

    /// A spectator's feeder.
    pub fn source(&self) -> Option<P> {
        self.source
    }

    /// A spectator's next frame to simulate.
    pub fn shown(&self) -> Option<i32> {
        self.shown
    }

    /// The last frame whose inputs are known to be final.
    pub fn confirmed(&self) -> i32 {
        self.confirmed
    }

    /// Frames a spectator holds and has not shown.
    pub fn buffered(&self) -> usize {
        match self.shown {
            Some(shown) => usize::try_from(self.confirmed - shown + 1).unwrap_or(0),
            None => 0,
        }
    }

    /// A connection to `peer` came up: a spectator asks it to feed us
    /// (returns the request to send) unless it is fed by us.
    pub fn connected(&mut self, peer: P) -> Option<Watching> {
        let ask = self.spectator && !self.fed.contains_key(&peer) && self.asked.insert(peer);
        ask.then_some(Watching::Watch)
    }

    /// A peer is gone: it is fed no more, and a spectator whose feeder
    /// it was waits for a new one (it keeps showing what it holds).
    pub fn left(&mut self, peer: P) {
        self.fed.remove(&peer);
        self.asked.remove(&peer);
        if self.source == Some(peer) {
            self.source = None;
        }
    }

    /// A message from `from`: `Ok(Some(snapshot))` when a spectator is to
    /// load a snapshot. Benign races (a spectator asked by its own feeder,
    /// a snapshot or inputs from a peer that is not our feeder) are
    /// ignored.
    pub fn receive(&mut self, from: P, message: Watching) -> Result<Option<Snapshot>, WatchError> {
        match message {
            Watching::Watch => {
                // Its own feeder asked it before learning it feeds it.
                let ours = self.source == Some(from);
                if !ours && (self.fed.contains_key(&from) || self.fed.len() < MAX_FED) {
                    self.fed.entry(from).or_insert(None);
                }
                Ok(None)
            }
            Watching::Snapshot(_) | Watching::Inputs { .. } if !self.spectator => {
                Err(WatchError::NotWatching)
            }
            Watching::Snapshot(snapshot) => {
                let Snapshot {
                    base,
                    frame,
                    ref players,
                    ..
                } = snapshot;
                // One feeder at a time, and never one we feed from our
                // state (a peer asked before it knew we would feed it
                // counts only once we have a state).
                let followable = self.source.is_none_or(|s| s == from);
                let ours = self.shown.is_some() && self.fed.contains_key(&from);
                if !followable || ours {
                    return Ok(None);
                }
                if base < 0 || frame < base || players.is_empty() || players.len() > MAX_SEATS {
                    return Err(WatchError::Snapshot {
                        frame,
                        base,
                        players: players.len(),
                    });
                }
                self.source = Some(from);
                self.fed.remove(&from);
                self.shown = Some(frame);
                self.confirmed = frame - 1;
                self.inputs.clear();
                // Our state jumped: whoever we feed starts again from it.
                self.fed.values_mut().for_each(|next| *next = None);
                Ok(Some(snapshot))
            }
            Watching::Inputs { frame, inputs } => {
                if self.source != Some(from) {
                    return Ok(None);
                }
                let expected = self.confirmed.saturating_add(1);
                if frame != expected {
                    return Err(WatchError::Gap {
                        expected,
                        got: frame,
                    });
                }
                let largest = inputs.iter().map(Vec::len).max().unwrap_or(0);
                let held = self.buffered().saturating_add(inputs.len());
                if inputs.len() > MAX_BATCH || largest > MAX_FRAME_INPUTS || held > MAX_BUFFERED {
                    return Err(WatchError::TooMuch {
                        frames: inputs.len().max(held),
                        bytes: largest,
                    });
                }
                for bytes in inputs {
                    self.confirmed += 1;
                    self.inputs.insert(self.confirmed, bytes);
                }
                Ok(None)
            }
        }
    }

    /// A player simulated match frame `frame` with these inputs (the last
    /// simulation of a frame wins; final ones are kept as they are).
    pub fn record(&mut self, frame: i32, inputs: Vec<u8>) {
        if !self.spectator && frame > self.confirmed {
            self.inputs.insert(frame, inputs);
        }
    }

    /// A player's frames up to `confirmed` are final.
    pub fn confirm(&mut self, confirmed: i32) {
        if !self.spectator {
            self.confirmed = self.confirmed.max(confirmed);
        }
    }

    /// A player's match restarted from match frame `base`: what was
    /// recorded from there on is played again, and every spectator fed
    /// needs a state of the new epoch.
    pub fn restarted(&mut self, base: i32) {
        self.inputs.split_off(&base);
        self.confirmed = self.confirmed.min(base - 1);
        self.fed.values_mut().for_each(|next| *next = None);
    }

    /// Whether a spectator fed waits for a snapshot.
    pub fn wants_snapshot(&self) -> bool {
        self.fed.values().any(Option::is_none)
    }

    /// The state of match frame `frame` was saved: the spectators that
    /// waited for one are sent it, then inputs from `frame` on.
    pub fn snapshot_taken(&mut self, frame: i32) -> Vec<P> {
        let mut to = Vec::new();
        for (peer, next) in &mut self.fed {
            if next.is_none() {
                *next = Some(frame);
                to.push(*peer);
            }
        }
        to
    }

    /// The final inputs each fed spectator has not been sent yet, in
    /// batches of at most [`MAX_BATCH`] frames. One whose next frame is no
    /// longer held waits for a snapshot again.
    pub fn poll(&mut self) -> Vec<(P, Watching)> {
        let mut out = Vec::new();
        for (peer, next) in &mut self.fed {
            let Some(from) = *next else { continue };
            if from > self.confirmed {
                continue;
            }
            if !self.inputs.contains_key(&from) {
                *next = None;
                continue;
            }
            let frames: Vec<Vec<u8>> = self
                .inputs
                .range(from..=self.confirmed)
                .map(|(_, bytes)| bytes.clone())
                .collect();
            let mut frame = from;
            for chunk in frames.chunks(MAX_BATCH) {
                out.push((
                    *peer,
                    Watching::Inputs {
                        frame,
                        inputs: chunk.to_vec(),
                    },
                ));
                frame = frame.saturating_add(chunk.len() as i32);
            }
            *next = Some(frame);
        }
        out
    }

    /// Drops inputs nobody needs: a player keeps those after
    /// `keep_from` and any a spectator fed still needs; a spectator keeps
    /// those from the frame it shows next.
    pub fn forget_before(&mut self, keep_from: i32) {
        let needed = self.fed.values().flatten().copied().min();
        let mut oldest = match self.shown {
            Some(shown) => shown,
            None => keep_from,
        };
        if let Some(needed) = needed {
            oldest = oldest.min(needed);
        }
        self.inputs = self.inputs.split_off(&oldest);
    }

    /// A spectator's next frame to simulate and its inputs, if it has
    /// them; the frame counts as shown.
    pub fn step(&mut self) -> Option<(i32, &[u8])> {
        let shown = self.shown?;
        let bytes = self.inputs.get(&shown)?;
        self.shown = Some(shown + 1);
        Some((shown, bytes.as_slice()))
    }
}

/// How many frames a spectator simulates this update: the frames its
/// clock owes (`owed`, at the game's rate), or more while it is more than
/// [`WATCH_DELAY`] frames behind the newest inputs it holds, at most
/// [`MAX_CATCH_UP`] — never more than it holds.
pub fn frames_to_show(owed: usize, buffered: usize) -> usize {
    let behind = buffered.saturating_sub(WATCH_DELAY);
    owed.max(behind).min(MAX_CATCH_UP).min(buffered)
}

#[cfg(test)]
mod tests;
