//! Desync dumps (opt-in, [`RollbackPlugin::dump_desyncs`]): the world of
//! every frame ggrs compares with the peers is kept for a while, and when
//! ggrs reports that a frame's checksums differ, that frame's world is
//! written out as a [`Dump`](volley_rollback::desync::Dump), one file per
//! peer. `volley-bots desync OURS THEIRS` prints what differs between two
//! peers' dumps, component by component, entity by entity.
//!
//! Keeping costs one [`save_state`] every `desync_interval` frames (what a
//! returning player is handed), at most [`DESYNC_KEPT`] of them.
//!
//! [`RollbackPlugin::dump_desyncs`]: super::RollbackPlugin::dump_desyncs

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use bevy::ecs::message::MessageCursor;
use bevy::ecs::prelude::*;
use bevy_ggrs::RollbackFrameCount;
use tracing::warn;
use volley_net::PeerId;
use volley_rollback::desync::Dump;

use super::state::{describe_state, save_state};
use super::{DesyncDetected, RollbackConfig, RollbackStatus};

/// Compared frames whose world is kept (ggrs keeps its checksums of 32).
pub const DESYNC_KEPT: usize = 32;

/// Dumps written at most, per run: the first desynced frame is the one
/// that matters (later ones differ in all the first difference spread
/// to); a few more cover a peer that missed it.
pub const MAX_DESYNC_DUMPS: usize = 3;

/// The desync dumps this peer made, newest last.
#[derive(Resource, Debug, Default)]
pub struct DesyncDumps {
    /// Where they are written (`None`: kept here only, as in a browser).
    dir: Option<PathBuf>,
    /// The dumps made so far.
    pub dumps: Vec<DesyncDump>,
}

/// One desync dump.
#[derive(Debug, Clone)]
pub struct DesyncDump {
    /// The desynced match frame.
    pub frame: i32,
    /// The peer whose checksum differed.
    pub peer: PeerId,
    /// The file, when written.
    pub path: Option<PathBuf>,
    /// The file's bytes ([`Dump::decode`] reads them).
    pub bytes: Vec<u8>,
}

impl DesyncDumps {
    pub(super) fn new(dir: Option<PathBuf>) -> Self {
        DesyncDumps {
            dir,
            dumps: Vec::new(),
        }
    }
}

/// The worlds of the frames compared last: `(match frame, state)`.
#[derive(Resource, Default)]
pub(super) struct KeptWorlds(VecDeque<(i32, Vec<u8>)>);

/// Keeps the world of each frame ggrs compares (a multiple of the desync
/// interval in the epoch's frames); a rollback saves it again.
pub(super) fn keep_world(world: &mut World) {
    let interval = world.resource::<RollbackConfig>().desync_interval;
    let frame = world.resource::<RollbackFrameCount>().0;
    match i32::try_from(interval) {
        Ok(interval) if interval > 0 && frame > 0 && frame % interval == 0 => {}
        _ => return,
    }
    let frame = world
        .resource::<RollbackStatus>()
        .base
        .saturating_add(frame);
    let state = match save_state(world) {
        Ok(state) => state,
        Err(e) => {
            warn!("volley: the world of frame {frame} is not kept for desync dumps: {e}");
            return;
        }
    };
    let mut kept = world.resource_mut::<KeptWorlds>();
    kept.0.retain(|(f, _)| *f != frame);
    kept.0.push_back((frame, state));
    while kept.0.len() > DESYNC_KEPT {
        kept.0.pop_front();
    }
}

/// Writes a dump of each desynced frame (up to [`MAX_DESYNC_DUMPS`]).
pub(super) fn dump_desyncs<I: 'static>(
    world: &mut World,
    mut cursor: Local<MessageCursor<DesyncDetected>>,
) {
    let desyncs: Vec<DesyncDetected> = cursor
        .read(world.resource::<Messages<DesyncDetected>>())
        .copied()
        .collect();
    for desync in desyncs {
        let dumps = world.resource::<DesyncDumps>();
        if dumps.dumps.len() >= MAX_DESYNC_DUMPS
            || dumps.dumps.iter().any(|d| d.frame == desync.frame)
        {
            continue;
        }
        let dir = dumps.dir.clone();
        let kept = &world.resource::<KeptWorlds>().0;
        let Some(state) = kept
            .iter()
            .find(|(f, _)| *f == desync.frame)
            .map(|k| k.1.clone())
        else {
            warn!(
                "volley: the world of desynced frame {} is no longer kept",
                desync.frame
            );
            continue;
        };
        let ours = local_peer(world);
        let bytes = match dump(world, &desync, ours, &state, std::any::type_name::<I>()) {
            Ok(bytes) => bytes,
            Err(e) => {
                warn!("volley: no desync dump of frame {}: {e}", desync.frame);
                continue;
            }
        };
        let path = dir.and_then(|dir| write(&dir, desync.frame, ours, &bytes));
        world.resource_mut::<DesyncDumps>().dumps.push(DesyncDump {
            frame: desync.frame,
            peer: desync.peer,
            path,
            bytes,
        });
    }
}

/// Our peer id, once the match started.
fn local_peer(world: &World) -> Option<PeerId> {
    let status = world.resource::<RollbackStatus>();
    status.players.get(status.local_handle?).copied()
}

/// The dump of one desync, from the kept world of its frame.
fn dump(
    world: &mut World,
    desync: &DesyncDetected,
    ours: Option<PeerId>,
    state: &[u8],
    app: &str,
) -> Result<Vec<u8>, String> {
    let parts = describe_state(world, state).map_err(|e| e.to_string())?;
    let dump = Dump {
        app: app.to_string(),
        frame: desync.frame,
        peer: ours.map_or(0, |p| p.0.as_u128()),
        against: desync.peer.0.as_u128(),
        local_checksum: desync.local_checksum,
        remote_checksum: desync.remote_checksum,
        parts,
    };
    dump.encode().map_err(|e| e.to_string())
}

/// Writes `desync-<frame>-<our peer id>.vdsync` into `dir`.
fn write(dir: &Path, frame: i32, ours: Option<PeerId>, bytes: &[u8]) -> Option<PathBuf> {
    let ours = ours.map_or_else(|| "unknown".into(), |p| p.0.simple().to_string());
    let path = dir.join(format!("desync-{frame:06}-{ours}.vdsync"));
    let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, bytes));
    match written {
        Ok(()) => {
            warn!(
                "volley: desync at frame {frame}: this peer's world is in {} \
                 (compare with the other's: volley-bots desync OURS THEIRS)",
                path.display()
            );
            Some(path)
        }
        Err(e) => {
            warn!("volley: desync dump {} not written: {e}", path.display());
            None
        }
    }
}
