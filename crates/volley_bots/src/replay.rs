//! Playing a recorded box_game match back headlessly, as fast as frames
//! run, checking every checkpoint (`volley-bots replay FILE`).
//!
//! ```no_run
//! let bytes = std::fs::read("match.replay").unwrap();
//! let status = volley_bots::replay::play(&bytes).unwrap();
//! assert!(status.verdict.mismatch.is_none());
//! ```

use std::time::Duration;

use bevy::app::PluginsState;
use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevy_volley::rollback::{Replay, ReplayError, ReplayStatus, RollbackPlugin};
use volley_games::box_game::{self, BoxInput};

/// Why a replay could not be played to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlayError {
    /// The file is no replay, or a doctored one that does not hold
    /// together.
    #[error("{0}")]
    Replay(#[from] ReplayError),
    /// A replay of another game.
    #[error("{0}")]
    Refused(String),
    /// It stopped short of its end.
    #[error("the replay stopped at frame {frame} of {end}")]
    Stuck {
        /// The frame it reached.
        frame: i32,
        /// Its last frame.
        end: i32,
    },
}

/// Plays `bytes` (a replay file) to its end: what the checkpoints said.
/// A checkpoint that differs is in the verdict, not an error.
pub fn play(bytes: &[u8]) -> Result<ReplayStatus, PlayError> {
    let replay = Replay::decode(bytes)?;
    let end = replay.end();
    let players = replay.players.len();
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        RollbackPlugin::<BoxInput>::replay(replay, false),
    ))
    .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_nanos(
        1_000_000_000 / 60 + 1,
    )));
    box_game::add_bot(&mut app, players, 0);
    while app.plugins_state() == PluginsState::Adding {
        bevy::tasks::tick_global_task_pools_on_main_thread();
    }
    app.finish();
    app.cleanup();
    // Every update shows up to MAX_CATCH_UP frames; a few to start.
    let updates = usize::try_from(end).unwrap_or(0) + 100;
    for _ in 0..updates {
        app.update();
        let status = app.world().resource::<ReplayStatus>();
        if let Some(why) = &status.refused {
            return Err(PlayError::Refused(why.clone()));
        }
        if status.done {
            return Ok(status.clone());
        }
    }
    let frame = app
        .world()
        .get_resource::<bevy_volley::rollback::RollbackStatus>()
        .map_or(0, |s| s.frame);
    Err(PlayError::Stuck { frame, end })
}
