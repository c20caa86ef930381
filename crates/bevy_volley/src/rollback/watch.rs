//! Spectators: the driver of [`volley_rollback::watch`]. Every peer feeds
//! the spectators that ask it; a spectator ([`RollbackPlugin::spectate`])
//! runs no ggrs session: it loads the state it is handed and simulates the
//! confirmed inputs it is fed, through bevy_ggrs' own schedules (so the
//! game's systems, snapshots and checksums run as they do for players).
//!
//! [`RollbackPlugin::spectate`]: super::RollbackPlugin::spectate

use bevy::ecs::message::MessageReader;
use bevy::ecs::prelude::*;
use bevy::time::Time;
use bevy_ggrs::ggrs::InputStatus;
use bevy_ggrs::{AdvanceWorld, ConfirmedFrameCount, PlayerInputs, RollbackFrameCount, SaveWorld};
use volley_net::{PeerId, SessionEvent};
use volley_rollback::watch::{MAX_FRAME_INPUTS, Snapshot, Watch, Watching, frames_to_show};

use super::replay::{RECORDER, RollbackRecording};
use super::state::{load_state, save_state};
use super::{RollbackConfig, RollbackEvent, RollbackInput, RollbackStatus, VolleyGgrs};
use crate::{NetPeerEvent, NetReceived, VolleySession};

/// This peer's side of watching, and what the driver keeps between frames.
#[derive(Resource)]
pub(super) struct RollbackWatch {
    pub(super) watch: Watch<PeerId>,
    /// A player's snapshot for its spectators: the epoch frame to save,
    /// and the state saved.
    target: Option<i32>,
    saved: Option<(i32, Vec<u8>)>,
    /// The epoch the recorded inputs belong to (a restart replays frames).
    epoch: u32,
    /// A snapshot a spectator is to load.
    pub(super) load: Option<Snapshot>,
    /// A spectator's frame within its epoch (ggrs counts from 0 in each).
    count: i32,
    /// A spectator's frames owed by its clock, in frames.
    owed: f64,
}

impl RollbackWatch {
    pub(super) fn new(spectator: bool) -> Self {
        RollbackWatch {
            watch: match spectator {
                true => Watch::spectator(),
                false => Watch::player(),
            },
            target: None,
            saved: None,
            epoch: 0,
            load: None,
            count: 0,
            owed: 0.0,
        }
    }
}

/// A frame's inputs as they travel: each player's input, and whether the
/// player was out of the match (ggrs' `Disconnected`).
type FrameInputs<I> = Vec<(I, bool)>;

fn codec() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_FRAME_INPUTS>,
> {
    bincode::config::standard().with_limit::<MAX_FRAME_INPUTS>()
}

fn encode<I: RollbackInput>(inputs: &[(I, InputStatus)]) -> Option<Vec<u8>> {
    let frame: FrameInputs<I> = inputs
        .iter()
        .map(|(input, status)| (*input, *status == InputStatus::Disconnected))
        .collect();
    bincode::serde::encode_to_vec(&frame, codec()).ok()
}

fn decode<I: RollbackInput>(bytes: &[u8], players: usize) -> Option<Vec<(I, InputStatus)>> {
    let (frame, _): (FrameInputs<I>, _) = bincode::serde::decode_from_slice(bytes, codec()).ok()?;
    (frame.len() == players).then(|| {
        frame
            .into_iter()
            .map(|(input, out)| match out {
                true => (input, InputStatus::Disconnected),
                false => (input, InputStatus::Confirmed),
            })
            .collect()
    })
}

/// Spectators' messages in, and a spectator's request to every peer that
/// connects. Inputs are decoded here, so a feed the game cannot read is
/// refused from its sender before it is held.
pub(super) fn watch_messages<I: RollbackInput>(
    mut peer_events: MessageReader<NetPeerEvent>,
    mut received: MessageReader<NetReceived<Watching>>,
    mut state: ResMut<RollbackWatch>,
    mut status: ResMut<RollbackStatus>,
    mut volley: Option<ResMut<VolleySession>>,
) {
    for NetPeerEvent(event) in peer_events.read() {
        match event {
            SessionEvent::Connected(peer) => {
                if let Some(ask) = state.watch.connected(*peer) {
                    send(volley.as_deref_mut(), *peer, &ask);
                }
            }
            SessionEvent::Left(peer, _) => state.watch.left(*peer),
            _ => {}
        }
    }
    for message in received.read() {
        let players = match &state.load {
            Some(load) => load.players.len(),
            None => status.players.len(),
        };
        let unreadable = match &message.message {
            Watching::Inputs { inputs, .. } if state.watch.source() == Some(message.from) => inputs
                .iter()
                .any(|bytes| decode::<I>(bytes, players).is_none()),
            _ => false,
        };
        let result = match unreadable {
            true => Err("inputs this game cannot read".to_string()),
            false => (state.watch)
                .receive(message.from, message.message.clone())
                .map_err(|e| e.to_string()),
        };
        match result {
            Ok(Some(load)) => state.load = Some(load),
            Ok(None) => {}
            Err(why) => {
                tracing::warn!(
                    "volley: refused a spectator's message from {}: {why}",
                    message.from
                );
                status.invalid_packets += 1;
                if let Some(volley) = volley.as_mut() {
                    volley.session().report_invalid(message.from, &why);
                }
            }
        }
    }
}

/// To a spectator over the network, or to this peer's own recording.
fn deliver(
    volley: Option<&mut VolleySession>,
    recording: Option<&mut RollbackRecording>,
    to: PeerId,
    message: &Watching,
) {
    match (to == RECORDER, recording) {
        (true, Some(recording)) => recording.record(message),
        (true, None) => {}
        (false, _) => send(volley, to, message),
    }
}

/// [`deliver`], for an exclusive system.
fn deliver_all(world: &mut World, out: Vec<(PeerId, Watching)>) {
    if out.is_empty() {
        return;
    }
    // Out of the world while the recording is borrowed (a replay has none).
    let mut volley = world.remove_resource::<VolleySession>();
    let mut recording = world.get_resource_mut::<RollbackRecording>();
    for (to, message) in &out {
        deliver(volley.as_mut(), recording.as_deref_mut(), *to, message);
    }
    if let Some(volley) = volley {
        world.insert_resource(volley);
    }
}

fn send(volley: Option<&mut VolleySession>, to: PeerId, message: &Watching) {
    if let Some(volley) = volley
        && let Err(e) = volley.session().send(to, message)
    {
        tracing::debug!("volley: spectator message to {to} not sent: {e}");
    }
}

/// A player records every simulation of a frame while it feeds someone
/// (the last one of a confirmed frame used its true inputs).
pub(super) fn record_inputs<I: RollbackInput>(
    inputs: Option<Res<PlayerInputs<VolleyGgrs<I>>>>,
    frame: Res<RollbackFrameCount>,
    status: Res<RollbackStatus>,
    mut state: ResMut<RollbackWatch>,
) {
    let Some(inputs) = inputs else { return };
    if state.watch.is_spectator() || !state.watch.is_feeding() {
        return;
    }
    // Inside AdvanceWorld the count is already the frame being made.
    let from = status.base.saturating_add(frame.0).saturating_sub(1);
    if let Some(bytes) = encode::<I>(&inputs) {
        state.watch.record(from, bytes);
    }
}

/// A player saves the frame its spectators' snapshot is of, each time it
/// is saved (the last save, after the rollbacks, is the confirmed one).
pub(super) fn save_watched(world: &mut World) {
    let frame = world.resource::<RollbackFrameCount>().0;
    let wanted = world.get_resource::<RollbackWatch>().and_then(|w| w.target);
    if wanted != Some(frame) {
        return;
    }
    match save_state(world) {
        Ok(bytes) => world.resource_mut::<RollbackWatch>().saved = Some((frame, bytes)),
        Err(e) => tracing::warn!("volley: cannot save the state for spectators: {e}"),
    }
}

/// After the ggrs update, a player sends its spectators what is confirmed:
/// a snapshot to those that wait for one (of a frame a little ahead, sent
/// once confirmed), then inputs.
pub(super) fn feed_watchers<I: RollbackInput>(
    session: Option<Res<bevy_ggrs::Session<VolleyGgrs<I>>>>,
    frame: Res<RollbackFrameCount>,
    confirmed: Res<ConfirmedFrameCount>,
    status: Res<RollbackStatus>,
    mut state: ResMut<RollbackWatch>,
    mut volley: Option<ResMut<VolleySession>>,
    mut recording: Option<ResMut<RollbackRecording>>,
) {
    let state = &mut *state;
    if state.epoch != status.epoch {
        state.epoch = status.epoch;
        state.watch.restarted(status.base);
        (state.target, state.saved) = (None, None);
    }
    if session.is_none() || status.local_handle.is_none() {
        return;
    }
    // ggrs may know a frame's inputs before it simulated the frame: only
    // frames simulated (and recorded) count.
    let simulated = frame.0.saturating_sub(1);
    let last = status.base.saturating_add(confirmed.0.min(simulated));
    state.watch.confirm(last);
    if state.watch.wants_snapshot() && state.target.is_none() {
        state.target = Some(frame.0 + 1);
    }
    // ggrs saves a frame as it leaves it: the snapshot goes out once its
    // frame is saved and confirmed, or is planned again if it was missed.
    if let Some(target) = state.target {
        let saved = state.saved.as_ref().is_some_and(|(at, _)| *at == target);
        if saved && confirmed.0 >= target {
            let at = status.base.saturating_add(target);
            let bytes = state.saved.take().map(|(_, bytes)| bytes);
            let snapshot = snapshot(&status, at, bytes.unwrap_or_default());
            for to in state.watch.snapshot_taken(at) {
                deliver(
                    volley.as_deref_mut(),
                    recording.as_deref_mut(),
                    to,
                    &snapshot,
                );
            }
            state.target = None;
        } else if !saved && frame.0 > target {
            tracing::debug!("volley: the spectators' frame was not saved; again");
            state.target = None;
        }
    }
    for (to, inputs) in state.watch.poll() {
        deliver(volley.as_deref_mut(), recording.as_deref_mut(), to, &inputs);
    }
    let keep = status.base.saturating_add(confirmed.0).saturating_sub(8);
    state.watch.forget_before(keep);
}

/// A spectator: loads a snapshot it is handed, feeds its own spectators,
/// and shows the frames it holds at the game's rate (faster while it is
/// behind), running bevy_ggrs' save and advance schedules itself.
pub(super) fn spectate<I: RollbackInput>(world: &mut World) {
    if let Some(load) = world.resource_mut::<RollbackWatch>().load.take() {
        start_watching::<I>(world, load);
    }
    feed_from_here(world);
    let delta = world.resource::<Time>().delta_secs_f64();
    let fps = world.resource::<RollbackConfig>().fps as f64;
    let Some(mut inputs) = world.remove_resource::<Stash<I>>() else {
        return;
    };
    let players = world.resource::<RollbackStatus>().players.len();
    let base = world.resource::<RollbackStatus>().base;
    let steps = {
        let mut state = world.resource_mut::<RollbackWatch>();
        state.owed = (state.owed + delta * fps).min(MAX_OWED);
        let steps = frames_to_show(state.owed as usize, state.watch.buffered());
        state.owed = (state.owed - steps as f64).max(0.0);
        steps
    };
    for _ in 0..steps {
        let mut state = world.resource_mut::<RollbackWatch>();
        let count = state.count;
        let Some(frame) = state
            .watch
            .step()
            .and_then(|(_, b)| decode::<I>(b, players))
        else {
            break;
        };
        state.count += 1;
        world.insert_resource(RollbackFrameCount(count));
        world.insert_resource(ConfirmedFrameCount(count));
        world.run_schedule(SaveWorld);
        world.insert_resource(RollbackFrameCount(count + 1));
        *inputs.0 = frame;
        world.insert_resource(inputs.0);
        world.run_schedule(AdvanceWorld);
        let Some(back) = world.remove_resource::<PlayerInputs<VolleyGgrs<I>>>() else {
            return; // a game system took it: nothing to run frames with
        };
        inputs = Stash(back);
    }
    world.insert_resource(inputs);
    let count = world.resource::<RollbackWatch>().count;
    // bevy_ggrs resets these while it has no session of its own.
    world.insert_resource(RollbackFrameCount(count));
    world.insert_resource(ConfirmedFrameCount(count - 1));
    let mut status = world.resource_mut::<RollbackStatus>();
    status.frame = base.saturating_add(count);
    status.confirmed_frame = status.frame - 1;
}

/// Most frames a spectator's clock owes at once (a stalled update, a
/// hidden tab): beyond them it catches up as it would when behind.
pub(super) const MAX_OWED: f64 = 4.0;

/// bevy_ggrs' `PlayerInputs`, which only bevy_ggrs can make (see
/// [`harvest`]): a spectator refills it for every frame it shows.
#[derive(Resource)]
struct Stash<I: RollbackInput>(PlayerInputs<VolleyGgrs<I>>);

/// Loads a snapshot and shows the match from its frame on.
fn start_watching<I: RollbackInput>(world: &mut World, load: Snapshot) {
    if let Err(e) = load_state(world, &load.state) {
        // The feeder's state does not fit our game: it counts against it.
        let source = world.resource::<RollbackWatch>().watch.source();
        tracing::warn!("volley: cannot load the match to watch: {e}");
        world.resource_mut::<RollbackStatus>().invalid_packets += 1;
        if let (Some(source), Some(mut volley)) =
            (source, world.get_resource_mut::<VolleySession>())
        {
            volley.session().report_invalid(source, &e.to_string());
        }
        return;
    }
    if !world.contains_resource::<Stash<I>>() {
        match harvest::<I>(load.players.len()) {
            Some(inputs) => world.insert_resource(Stash(inputs)),
            None => {
                tracing::warn!("volley: bevy_ggrs gave no inputs to show frames with");
                return;
            }
        }
    }
    let players: Vec<PeerId> = (load.players.iter())
        .map(|id| PeerId(uuid::Uuid::from_u128(*id)))
        .collect();
    let first = !world.resource::<RollbackStatus>().spectating;
    world.resource_mut::<RollbackWatch>().count = load.frame - load.base;
    let mut status = world.resource_mut::<RollbackStatus>();
    status.spectating = true;
    status.players = players.clone();
    status.epoch = load.epoch;
    status.base = load.base;
    status.frame = load.frame;
    status.confirmed_frame = load.frame - 1;
    tracing::info!("volley: watching the match from frame {}", load.frame);
    if first {
        world.write_message(RollbackEvent::Watching {
            players,
            frame: load.frame,
        });
    }
}

/// A spectator's own spectators are fed from the frame it shows next.
fn feed_from_here(world: &mut World) {
    let state = world.resource::<RollbackWatch>();
    let wants = state
        .watch
        .wants_snapshot()
        .then_some(state.watch.shown())
        .flatten();
    if let Some(frame) = wants {
        match save_state(world) {
            Ok(bytes) => {
                let snapshot = snapshot(world.resource::<RollbackStatus>(), frame, bytes);
                let to = world
                    .resource_mut::<RollbackWatch>()
                    .watch
                    .snapshot_taken(frame);
                let out = to
                    .into_iter()
                    .map(|peer| (peer, snapshot.clone()))
                    .collect();
                deliver_all(world, out);
            }
            Err(e) => tracing::warn!("volley: cannot save the state for spectators: {e}"),
        }
    }
    let out = world.resource_mut::<RollbackWatch>().watch.poll();
    deliver_all(world, out);
    world.resource_mut::<RollbackWatch>().watch.forget_before(0);
}

/// The snapshot of match frame `frame` of the match `status` describes.
fn snapshot(status: &RollbackStatus, frame: i32, state: Vec<u8>) -> Watching {
    Watching::Snapshot(Snapshot {
        epoch: status.epoch,
        base: status.base,
        frame,
        players: status.players.iter().map(|p| p.0.as_u128()).collect(),
        state,
    })
}

/// One `PlayerInputs` from bevy_ggrs, which makes them only inside its
/// own driver: a one-frame sync test of `players` players in a scratch
/// app, whose inputs are taken out of the world while the frame runs.
fn harvest<I: RollbackInput>(players: usize) -> Option<PlayerInputs<VolleyGgrs<I>>> {
    use bevy::app::App;
    use bevy_ggrs::ggrs::{PlayerType, SessionBuilder};
    use bevy_ggrs::{GgrsPlugin, GgrsSchedule, LocalInputs, LocalPlayers, ReadInputs};
    use std::sync::{Arc, Mutex};

    let slot: Arc<Mutex<Option<PlayerInputs<VolleyGgrs<I>>>>> = Arc::default();
    let taken = slot.clone();
    let mut builder = SessionBuilder::<VolleyGgrs<I>>::new()
        .with_num_players(players)
        .ok()?
        .with_check_distance(0);
    for handle in 0..players {
        builder = builder.add_player(PlayerType::Local, handle).ok()?;
    }
    let session = builder.start_synctest_session().ok()?;
    let mut app = App::new();
    app.add_plugins(GgrsPlugin::<VolleyGgrs<I>>::default())
        .insert_resource(bevy_ggrs::Session::SyncTest(session))
        .add_systems(
            ReadInputs,
            |mut commands: Commands, local: Res<LocalPlayers>| {
                let inputs = local.0.iter().map(|h| (*h, I::default())).collect();
                commands.insert_resource(LocalInputs::<VolleyGgrs<I>>(inputs));
            },
        )
        .add_systems(GgrsSchedule, move |world: &mut World| {
            if let Some(inputs) = world.remove_resource::<PlayerInputs<VolleyGgrs<I>>>()
                && let Ok(mut slot) = taken.lock()
            {
                *slot = Some(inputs);
            }
        });
    // Bevy's clock, stepped by hand: one frame's worth per update (the
    // first update of an app has no delta).
    app.add_plugins(bevy::time::TimePlugin).insert_resource(
        bevy::time::TimeUpdateStrategy::ManualDuration(std::time::Duration::from_millis(20)),
    );
    for _ in 0..4 {
        app.update();
        if let Some(inputs) = slot.lock().ok()?.take() {
            return Some(inputs);
        }
    }
    None
}

#[cfg(test)]
mod tests;
