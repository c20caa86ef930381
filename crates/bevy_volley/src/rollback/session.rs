//! The ggrs session's life: started when the room has its players, ggrs'
//! events turned into Bevy messages (players leave through `drop`).

use bevy::ecs::message::MessageWriter;
use bevy::ecs::prelude::*;
use bevy_ggrs::ggrs::{self, DesyncDetection, GgrsEvent, PlayerType};
use bevy_ggrs::{ConfirmedFrameCount, RollbackFrameCount, SyncTestMismatch};
use tracing::{info, warn};
use volley_net::PeerId;
use volley_rollback::drops::{AGREE_TIMEOUT_MS, Drops};

use super::checksum::{ChecksumHistory, ChecksumReport, ReportsAsked};
use super::drop::{RollbackDrops, notify_delay, silence_limit};
use super::pipe::{RollbackGuard, RollbackPipe};
use super::seats::RollbackSeats;
use super::watch::RollbackWatch;
use super::{
    DesyncDetected, RollbackConfig, RollbackEvent, RollbackInput, RollbackStatus, VolleyGgrs,
    player_order,
};
use crate::{NetSend, VolleySession};

pub(super) fn start_sync_test<I: RollbackInput>(
    check_distance: usize,
) -> impl FnMut(Commands, Res<RollbackConfig>, ResMut<RollbackStatus>) {
    move |mut commands, config, mut status| {
        let session = ggrs::SessionBuilder::<VolleyGgrs<I>>::new()
            .with_num_players(config.players)
            .and_then(|b| b.with_fps(config.fps))
            .map(|b| {
                b.with_check_distance(check_distance)
                    .with_input_delay(config.input_delay)
                    .with_max_prediction_window(config.max_prediction)
            })
            .and_then(|mut b| {
                for handle in 0..config.players {
                    b = b.add_player(PlayerType::Local, handle)?;
                }
                b.start_synctest_session()
            });
        match session {
            Ok(session) => {
                status.local_handle = Some(0);
                commands.insert_resource(bevy_ggrs::Session::SyncTest(session));
            }
            Err(e) => warn!("volley: cannot start the sync test: {e}"),
        }
    }
}

pub(super) fn sync_test_mismatch(
    mismatch: On<SyncTestMismatch>,
    mut status: ResMut<RollbackStatus>,
) {
    status.desyncs += 1;
    warn!(
        "volley: sync test mismatch at frame {}: frames {:?} re-simulated differently",
        mismatch.event().current_frame,
        mismatch.event().mismatched_frames
    );
}

/// Starts the P2P session once, when `players` peers (us included) are connected.
#[allow(clippy::too_many_arguments)]
pub(super) fn start_p2p<I: RollbackInput>(
    mut commands: Commands,
    volley: Option<ResMut<VolleySession>>,
    existing: Option<Res<bevy_ggrs::Session<VolleyGgrs<I>>>>,
    config: Res<RollbackConfig>,
    pipe: Res<RollbackPipe>,
    guard: Res<RollbackGuard>,
    mut drops: ResMut<RollbackDrops>,
    mut seats: ResMut<RollbackSeats>,
    watch: Res<RollbackWatch>,
    mut status: ResMut<RollbackStatus>,
    mut events: MessageWriter<RollbackEvent>,
) {
    if existing.is_some() || status.local_handle.is_some() {
        return;
    }
    let Some(mut volley) = volley else { return };
    let session = volley.session();
    let Some(me) = session.id() else { return };
    // Spectators we feed are no players (one that has not asked yet sends
    // no view, so the match waits for it to ask).
    let mut everyone: Vec<PeerId> = (session.connected_peers())
        .filter(|p| !watch.watch.feeds(p))
        .collect();
    everyone.push(me);
    if everyone.len() < config.players {
        return;
    }
    let players: Vec<PeerId> = player_order(everyone)
        .into_iter()
        .take(config.players)
        .collect();
    let Some(local_handle) = players.iter().position(|p| *p == me) else {
        // The room has more peers than players and we came late: watch only.
        return;
    };
    // Every other player's view first: if one plays a match already, we
    // are a player coming back (a restarted process, a reloaded page) and
    // wait for its plan instead (see `seats`).
    let others = players.iter().filter(|p| **p != me);
    let views: Option<Vec<Option<u32>>> = others.map(|p| seats.heard.get(p).copied()).collect();
    match views {
        None => return,
        Some(views) if views.iter().any(Option::is_some) => return,
        Some(_) => {}
    }
    match build_p2p::<I>(&config, &players, local_handle, pipe.0.clone()) {
        Ok(session) => {
            info!("volley: rollback session started as player {local_handle} of {players:?}");
            status.local_handle = Some(local_handle);
            status.players = players.clone();
            drops.drops = Some(Drops::new(*guard.0.config(), local_handle));
            let ids = players.iter().map(|p| p.0.as_u128()).collect();
            let mut seating = volley_rollback::Seats::new(local_handle, ids);
            seating.started();
            seats.seats = Some(seating);
            commands.insert_resource(bevy_ggrs::Session::P2P(session));
            events.write(RollbackEvent::Started {
                local_handle,
                players,
            });
        }
        Err(e) => warn!("volley: cannot start the rollback session: {e}"),
    }
}

/// A ggrs P2P session of `players` (by handle), `me` local, over `pipe`.
pub(super) fn build_p2p<I: RollbackInput>(
    config: &RollbackConfig,
    players: &[PeerId],
    me: usize,
    pipe: volley_rollback::Pipe<PeerId>,
) -> Result<ggrs::P2PSession<VolleyGgrs<I>>, ggrs::GgrsError> {
    let desync = if config.desync_interval == 0 {
        DesyncDetection::Off
    } else {
        DesyncDetection::On {
            interval: config.desync_interval,
        }
    };
    // Volley drops a silent player itself (see `drop`), so that the others
    // agree on its last input first; ggrs' own timeout is only a backstop.
    let backstop = config.disconnect_timeout
        + std::time::Duration::from_millis(2 * AGREE_TIMEOUT_MS)
        + std::time::Duration::from_secs(5);
    let mut builder = ggrs::SessionBuilder::<VolleyGgrs<I>>::new()
        .with_num_players(players.len())?
        .with_fps(config.fps)?
        .with_input_delay(config.input_delay)
        .with_max_prediction_window(config.max_prediction)
        .with_desync_detection_mode(desync)
        .with_disconnect_notify_delay(notify_delay(config))
        .with_disconnect_timeout(backstop);
    for (handle, peer) in players.iter().enumerate() {
        let kind = if handle == me {
            PlayerType::Local
        } else {
            PlayerType::Remote(*peer)
        };
        builder = builder.add_player(kind, handle)?;
    }
    builder.start_p2p_session(pipe)
}

/// Turns ggrs events into Bevy messages; on the first desync with a peer,
/// sends it our checksum parts (debug builds) so it can name what differs.
#[allow(clippy::too_many_arguments)]
pub(super) fn ggrs_events<I: RollbackInput>(
    session: Option<ResMut<bevy_ggrs::Session<VolleyGgrs<I>>>>,
    config: Res<RollbackConfig>,
    mut drops: ResMut<RollbackDrops>,
    mut status: ResMut<RollbackStatus>,
    frame: Res<RollbackFrameCount>,
    confirmed: Res<ConfirmedFrameCount>,
    history: Res<ChecksumHistory>,
    mut desyncs: MessageWriter<DesyncDetected>,
    mut events: MessageWriter<RollbackEvent>,
    mut reports: MessageWriter<NetSend<ChecksumReport>>,
    mut asked: ResMut<ReportsAsked>,
) {
    let Some(mut session) = session else { return };
    status.frame = status.base.saturating_add(frame.0);
    status.confirmed_frame = status.base.saturating_add(confirmed.0);
    let bevy_ggrs::Session::P2P(p2p) = &mut *session else {
        return;
    };
    for event in p2p.events() {
        match event {
            GgrsEvent::DesyncDetected {
                frame,
                local_checksum,
                remote_checksum,
                addr,
            } => {
                let frame = status.base.saturating_add(frame);
                status.desyncs += 1;
                warn!(
                    "volley: desync with {addr} at frame {frame}: ours {local_checksum:#x}, theirs {remote_checksum:#x}"
                );
                desyncs.write(DesyncDetected {
                    frame,
                    local_checksum,
                    remote_checksum,
                    peer: addr,
                });
                // Either side may explain the first desync; a report from
                // a peer we did not desync with is refused.
                let first = asked.0.desynced(addr);
                if cfg!(debug_assertions)
                    && first
                    && let Some(ours) = history.get(frame)
                {
                    let report = ChecksumReport {
                        frame,
                        parts: ours.parts.clone(),
                    };
                    // Within the limits the peer checks, or not sent at all.
                    match report.check() {
                        Ok(()) => {
                            reports.write(NetSend::to(addr, report));
                        }
                        Err(e) => warn!("volley: our checksum report is not sent: {e}"),
                    }
                }
            }
            GgrsEvent::Synchronizing { addr, total, count } => {
                events.write(RollbackEvent::Synchronizing {
                    peer: addr,
                    count,
                    total,
                });
            }
            GgrsEvent::Synchronized { addr } => {
                events.write(RollbackEvent::Synchronized(addr));
            }
            GgrsEvent::Disconnected { addr } => {
                if !status.dropped.contains(&addr) {
                    status.dropped.push(addr);
                }
                events.write(RollbackEvent::Disconnected(addr));
            }
            GgrsEvent::NetworkInterrupted { addr, .. } => {
                drops
                    .silent
                    .insert(addr, bevy::platform::time::Instant::now());
                events.write(RollbackEvent::NetworkInterrupted {
                    peer: addr,
                    timeout_ms: silence_limit(&config).as_millis(),
                });
            }
            GgrsEvent::NetworkResumed { addr } => {
                drops.silent.remove(&addr);
                events.write(RollbackEvent::NetworkResumed(addr));
            }
            GgrsEvent::WaitRecommendation { skip_frames } => {
                events.write(RollbackEvent::WaitRecommendation(skip_frames));
            }
        }
    }
}
