//! Replays: the driver of [`volley_rollback::replay`]. A recording peer
//! ([`RollbackPlugin::record`]) feeds a [`Recorder`] what it would feed a
//! spectator, plus its checksums; playback ([`RollbackPlugin::replay`])
//! is a spectator fed from the file, checking every checkpoint it passes.
//!
//! [`RollbackPlugin::record`]: super::RollbackPlugin::record
//! [`RollbackPlugin::replay`]: super::RollbackPlugin::replay

use std::collections::VecDeque;
use std::path::PathBuf;

use bevy::ecs::prelude::*;
use volley_net::PeerId;
use volley_rollback::replay::{Recorder, Replay, Verdict};
use volley_rollback::watch::{MAX_BUFFERED, WATCH_DELAY, Watching};

use super::RollbackStatus;
use super::checksum::ChecksumHistory;
use super::watch::RollbackWatch;

/// The recorder among the spectators a peer feeds (no peer has this id).
pub(super) const RECORDER: PeerId = PeerId(uuid::Uuid::nil());

/// Frames between two writes of the recording's file.
const WRITE_EVERY: i32 = 300;

/// A match being recorded (see [`super::RollbackPlugin::record`]). The
/// file, if any, is written every few seconds of match and when the app
/// ends.
#[derive(Resource)]
pub struct RollbackRecording {
    recorder: Recorder,
    path: Option<PathBuf>,
    written: i32,
}

impl RollbackRecording {
    pub(super) fn new(app: &str, path: Option<PathBuf>) -> Self {
        RollbackRecording {
            recorder: Recorder::new(app),
            path,
            written: 0,
        }
    }

    /// The recording so far.
    pub fn replay(&self) -> &Replay {
        self.recorder.replay()
    }

    /// Writes the file (aside, then renamed over it).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if self.replay().segments.is_empty() {
            return Ok(());
        }
        let bytes = (self.replay().encode()).map_err(std::io::Error::other)?;
        let aside = path.with_extension("part");
        std::fs::write(&aside, bytes)?;
        std::fs::rename(aside, path)
    }

    pub(super) fn record(&mut self, message: &Watching) {
        self.recorder.record(message.clone());
    }
}

impl Drop for RollbackRecording {
    fn drop(&mut self) {
        if let Err(e) = self.save() {
            tracing::warn!("volley: cannot write the replay: {e}");
        }
    }
}

/// Keeps the recording peer's checksums of frames that are final, every
/// few frames, and writes the file now and then.
pub(super) fn record_checkpoints(
    recording: Option<ResMut<RollbackRecording>>,
    state: Res<RollbackWatch>,
    status: Res<RollbackStatus>,
    history: Res<ChecksumHistory>,
) {
    let Some(mut recording) = recording else {
        return;
    };
    // A player's inputs are final up to here, so is the state after them;
    // a spectator's frames are final once shown.
    let last = match status.spectating {
        true => status.confirmed_frame,
        false => state.watch.confirmed(),
    };
    while let Some(frame) = recording.recorder.next_checkpoint().filter(|f| *f <= last) {
        let total = history.get(frame).map(|c| c.total);
        recording.recorder.checkpoint(frame, total);
    }
    if last >= recording.written.saturating_add(WRITE_EVERY) {
        recording.written = last;
        if let Err(e) = recording.save() {
            tracing::warn!("volley: cannot write the replay: {e}");
        }
    }
}

/// A replay being played back (see [`super::RollbackPlugin::replay`]):
/// how far, and what its checkpoints said.
#[derive(Resource, Debug, Clone, Default)]
pub struct ReplayStatus {
    /// Checkpoints checked, skipped, and the first that differed.
    pub verdict: Verdict,
    /// Every frame played and every checkpoint looked at.
    pub done: bool,
    /// The last frame it plays to.
    pub end: i32,
    /// Why it does not play at all (a replay of another game).
    pub refused: Option<String>,
}

/// What playback keeps between frames.
#[derive(Resource)]
pub(super) struct Playback {
    replay: Replay,
    /// The segment being played (`None` before the first).
    segment: Option<usize>,
    /// Its feed, not yet handed over.
    queue: VecDeque<Watching>,
    /// The next checkpoint to look at.
    checkpoint: usize,
    /// Shown at the game's rate (else as fast as frames run).
    realtime: bool,
}

impl Playback {
    pub(super) fn new(replay: Replay, realtime: bool) -> Self {
        Playback {
            replay,
            segment: None,
            queue: VecDeque::new(),
            checkpoint: 0,
            realtime,
        }
    }
}

/// Hands the watcher the replay's feed: a segment's snapshot once the one
/// before is all shown, its inputs as fast as it holds them (or only a
/// few frames ahead, in real time).
pub(super) fn play_back(mut playback: ResMut<Playback>, mut state: ResMut<RollbackWatch>) {
    let playback = &mut *playback;
    let shown = state.watch.shown();
    let next = playback.segment.map_or(0, |i| i + 1);
    let finished = match playback.segment {
        None => true,
        Some(i) => playback.queue.is_empty() && shown >= Some(playback.replay.frames_of(i).end),
    };
    if finished && next < playback.replay.segments.len() {
        playback.segment = Some(next);
        playback.queue = playback.replay.feed(next).into();
    }
    let room = match playback.realtime {
        true => WATCH_DELAY + 1,
        false => MAX_BUFFERED,
    };
    while let Some(message) = playback.queue.pop_front() {
        let message = match message {
            Watching::Inputs { frame, mut inputs } => {
                let free = room.saturating_sub(state.watch.buffered());
                if free == 0 {
                    playback
                        .queue
                        .push_front(Watching::Inputs { frame, inputs });
                    break;
                }
                if inputs.len() > free {
                    let rest = inputs.split_off(free);
                    let later = frame.saturating_add(free as i32);
                    playback.queue.push_front(Watching::Inputs {
                        frame: later,
                        inputs: rest,
                    });
                }
                Watching::Inputs { frame, inputs }
            }
            other => other,
        };
        // Fed as if from a recorder: an id no peer has.
        match state.watch.receive(RECORDER, message) {
            Ok(Some(load)) => state.load = Some(load),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("volley: the replay's feed does not follow: {e}");
                playback.queue.clear();
                break;
            }
        }
    }
}

/// Checks every checkpoint the playback has passed.
pub(super) fn verify_replay(
    mut playback: ResMut<Playback>,
    state: Res<RollbackWatch>,
    status: Res<RollbackStatus>,
    history: Res<ChecksumHistory>,
    mut report: ResMut<ReplayStatus>,
) {
    let playback = &mut *playback;
    report.end = playback.replay.end();
    while let Some(&(frame, recorded)) = playback.replay.checkpoints.get(playback.checkpoint) {
        if !playback.replay.plays(frame) {
            report.verdict.skipped += 1;
        } else if frame > status.confirmed_frame || !status.spectating {
            break;
        } else {
            match history.get(frame).map(|c| c.total) {
                Some(ours) if ours == recorded => report.verdict.verified += 1,
                ours => {
                    let ours = ours.unwrap_or_default();
                    if report.verdict.mismatch.is_none() {
                        tracing::warn!(
                            "volley: the replay differs at frame {frame}: recorded {recorded:#x}, replayed {ours:#x}"
                        );
                    }
                    report
                        .verdict
                        .mismatch
                        .get_or_insert((frame, recorded, ours));
                }
            }
        }
        playback.checkpoint += 1;
    }
    let all_shown = state.watch.shown() >= Some(report.end);
    let last_segment = playback.segment.map(|i| i + 1) == Some(playback.replay.segments.len());
    report.done = all_shown
        && last_segment
        && playback.queue.is_empty()
        && playback.checkpoint == playback.replay.checkpoints.len();
}
