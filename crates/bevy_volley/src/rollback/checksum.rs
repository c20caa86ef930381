//! Checksums by frame, and naming what differs when peers desync. Which
//! peer reports are taken is decided in [`volley_rollback::report`] (no
//! Bevy, fuzzed); this is the glue around it.

use std::collections::BTreeMap;
use std::hash::Hash;

use bevy::app::App;
use bevy::ecs::message::MessageReader;
use bevy::ecs::prelude::*;
use bevy_ggrs::{Checksum, ChecksumFlag, ChecksumPart, RollbackApp, RollbackFrameCount};
use tracing::warn;

use volley_net::{PeerId, SessionEvent};
use volley_rollback::report::Reports;
pub use volley_rollback::report::{ChecksumReport, differing_parts};

use super::RollbackStatus;
use crate::{NetPeerEvent, NetReceived, VolleySession};

/// Checksums kept per frame, for comparing peers after the fact.
pub const CHECKSUM_HISTORY: usize = 256;

/// Total checksums (and, in debug builds, each part's) of recent frames.
#[derive(Resource, Debug, Default)]
pub struct ChecksumHistory {
    frames: BTreeMap<i32, FrameChecksum>,
}

/// One frame's checksum.
#[derive(Debug, Clone, Default)]
pub struct FrameChecksum {
    /// The frame's total (bevy_ggrs' [`Checksum`]).
    pub total: u128,
    /// `(component or resource name, part)`; empty in release builds.
    pub parts: Vec<(String, u128)>,
}

impl ChecksumHistory {
    /// The checksum saved for `frame` (the last save wins: after a rollback
    /// the frame is saved again; once confirmed it no longer changes).
    pub fn get(&self, frame: i32) -> Option<&FrameChecksum> {
        self.frames.get(&frame)
    }

    fn record(&mut self, frame: i32, checksum: FrameChecksum) {
        self.frames.insert(frame, checksum);
        while self.frames.len() > CHECKSUM_HISTORY {
            self.frames.pop_first();
        }
    }
}

/// Whose [`ChecksumReport`]s we take, and within which limits
/// ([`volley_rollback::report`]).
#[derive(Resource, Default)]
pub(super) struct ReportsAsked(pub(super) Reports<PeerId>);

/// Names the checksum parts that differ from a peer's report. A report
/// nobody asked for beyond the one held per peer, or one over the limits,
/// counts against its sender. A peer that left is forgotten.
pub(super) fn compare_reports(
    mut reports: MessageReader<NetReceived<ChecksumReport>>,
    mut peer_events: MessageReader<NetPeerEvent>,
    history: Res<ChecksumHistory>,
    mut status: ResMut<RollbackStatus>,
    mut asked: ResMut<ReportsAsked>,
    mut volley: Option<ResMut<VolleySession>>,
) {
    for report in reports.read() {
        // (The payload is at most MAX_REPORT_BYTES: the copy is small.)
        if let Err(refused) = asked.0.receive(report.from, report.message.clone()) {
            status.invalid_packets += 1;
            if let Some(volley) = volley.as_mut() {
                volley.session().report_invalid(report.from, &refused);
            }
        }
    }
    for (from, report) in asked.0.take_ready() {
        let Some(ours) = history.get(report.frame) else {
            continue;
        };
        // Names come from the peer: shortened before they reach a log.
        let differing: Vec<String> = differing_parts(&ours.parts, &report.parts)
            .into_iter()
            .take(32)
            .map(|name| volley_net::guard::truncated(&name, 64))
            .collect();
        warn!(
            "volley: desync at frame {} with {}: differing checksum parts: {}",
            report.frame,
            from,
            if differing.is_empty() {
                "none reported (release build on one side?)".to_string()
            } else {
                differing.join(", ")
            }
        );
        if status.first_diagnosis.is_none() {
            status.first_diagnosis = Some((report.frame, differing));
        }
    }
    for NetPeerEvent(event) in peer_events.read() {
        if let SessionEvent::Left(peer, _) = event {
            asked.0.forget(*peer);
        }
    }
}

/// How to find one named checksum part: its flag entity's part.
type PartOf = fn(&mut World) -> Option<(Entity, u128)>;

fn part_of<T: Send + Sync + 'static>(world: &mut World) -> Option<(Entity, u128)> {
    let mut query = world.query_filtered::<(Entity, &ChecksumPart), With<ChecksumFlag<T>>>();
    query.iter(world).next().map(|(e, p)| (e, p.0))
}

/// Checksum parts with a name, for naming what differs in a desync.
#[derive(Resource, Default)]
pub(super) struct ChecksumNames(Vec<(&'static str, PartOf)>);

/// Registering checksummed state so a desync can name it. Each call does
/// what bevy_ggrs' `checksum_*_with_hash` does, and remembers the type's
/// name (Bevy keeps component names only with its `debug` feature).
///
/// The `Hash` of a checksummed type must write the same bytes on every
/// platform, or a browser (wasm32) and a desktop peer desync on identical
/// state: no `usize`/`isize` fields, no collections (their length is a
/// `usize`), and no derived `Hash` on enums, `Option` included (the
/// discriminant is hashed as an `isize`). Hash such fields by hand as fixed
/// widths.
pub trait ChecksumApp {
    /// Checksums component `T` of rollback entities (`Hash`), by name.
    fn checksum_component_named<T: Component + Hash>(&mut self) -> &mut Self;
    /// Checksums resource `T` (`Hash`), by name.
    fn checksum_resource_named<T: Resource + Hash>(&mut self) -> &mut Self;
}

impl ChecksumApp for App {
    fn checksum_component_named<T: Component + Hash>(&mut self) -> &mut Self {
        self.checksum_component_with_hash::<T>();
        name_part::<T>(self)
    }

    fn checksum_resource_named<T: Resource + Hash>(&mut self) -> &mut Self {
        self.checksum_resource_with_hash::<T>();
        name_part::<T>(self)
    }
}

fn name_part<T: Send + Sync + 'static>(app: &mut App) -> &mut App {
    let name = std::any::type_name::<T>();
    let name = name.rsplit("::").next().unwrap_or(name);
    app.init_resource::<ChecksumNames>();
    app.world_mut()
        .resource_mut::<ChecksumNames>()
        .0
        .push((name, part_of::<T>));
    app
}

/// Records the frame's checksum (and, in debug builds, its parts by name;
/// parts registered without a name — bevy_ggrs' own, for entities — are
/// listed by entity).
pub(super) fn record_checksum(world: &mut World) {
    // Recorded by match frame: a restarted match (see `seats`) counts on.
    let base = world
        .get_resource::<super::RollbackStatus>()
        .map_or(0, |s| s.base);
    let frame = base.saturating_add(world.resource::<RollbackFrameCount>().0);
    let total = world.get_resource::<Checksum>().map_or(0, |c| c.0);
    let mut parts = Vec::new();
    if cfg!(debug_assertions) {
        let names: Vec<(&'static str, PartOf)> = world
            .get_resource::<ChecksumNames>()
            .map(|n| n.0.clone())
            .unwrap_or_default();
        let mut named = Vec::new();
        for (name, find) in names {
            if let Some((entity, value)) = find(world) {
                named.push(entity);
                parts.push((name.to_string(), value));
            }
        }
        let mut query = world.query::<(Entity, &ChecksumPart)>();
        for (entity, part) in query.iter(world) {
            if !named.contains(&entity) {
                parts.push((format!("unnamed part {entity}"), part.0));
            }
        }
        parts.sort();
    }
    world
        .resource_mut::<ChecksumHistory>()
        .record(frame, FrameChecksum { total, parts });
}
