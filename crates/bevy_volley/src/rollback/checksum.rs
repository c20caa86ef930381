//! Checksums by frame, and naming what differs when peers desync.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

use bevy::app::App;
use bevy::ecs::message::MessageReader;
use bevy::ecs::prelude::*;
use bevy_ggrs::{Checksum, ChecksumFlag, ChecksumPart, RollbackApp, RollbackFrameCount};
use tracing::warn;

use volley_net::PeerId;

use super::RollbackStatus;
use crate::{NetReceived, VolleySession};

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

/// Sent to a peer we desynced with (debug builds): our checksum parts of
/// that frame, so it can name what differs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ChecksumReport {
    /// The frame.
    pub frame: i32,
    /// `(name, part)` pairs, sorted by name.
    pub parts: Vec<(String, u128)>,
}

/// Most parts one [`ChecksumReport`] may carry.
pub const MAX_REPORT_PARTS: usize = 256;

/// Whose [`ChecksumReport`] we take: a peer we desynced with (once), and
/// one report held per peer that arrives before our own detection does.
#[derive(Resource, Default)]
pub(super) struct ReportsAsked {
    /// Peers we desynced with whose report we still expect.
    pub(super) expected: HashSet<PeerId>,
    /// Peers we sent ours to.
    pub(super) sent: HashSet<PeerId>,
    /// Reports that came before we saw the desync ourselves.
    held: HashMap<PeerId, ChecksumReport>,
}

/// Names the checksum parts that differ from a peer's report. A report
/// nobody asked for beyond the one held per peer, or one with too many
/// parts, counts against its sender.
pub(super) fn compare_reports(
    mut reports: MessageReader<NetReceived<ChecksumReport>>,
    history: Res<ChecksumHistory>,
    mut status: ResMut<RollbackStatus>,
    mut asked: ResMut<ReportsAsked>,
    mut volley: Option<ResMut<VolleySession>>,
) {
    let mut ready = Vec::new();
    for report in reports.read() {
        let from = report.from;
        let oversized = report.message.parts.len() > MAX_REPORT_PARTS;
        if !oversized && asked.expected.remove(&from) {
            ready.push((from, report.message.clone()));
        } else if !oversized && !asked.held.contains_key(&from) {
            asked.held.insert(from, report.message.clone());
        } else {
            status.invalid_packets += 1;
            if let Some(volley) = volley.as_mut() {
                volley
                    .session()
                    .report_invalid(from, &"unexpected or oversized checksum report");
            }
        }
    }
    let due: Vec<PeerId> = asked
        .expected
        .iter()
        .filter(|p| asked.held.contains_key(*p))
        .copied()
        .collect();
    for peer in due {
        asked.expected.remove(&peer);
        if let Some(report) = asked.held.remove(&peer) {
            ready.push((peer, report));
        }
    }
    for (from, report) in ready {
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
}

/// The names whose parts differ, or that only one side has.
pub fn differing_parts(ours: &[(String, u128)], theirs: &[(String, u128)]) -> Vec<String> {
    let ours: BTreeMap<&str, u128> = ours.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let theirs: BTreeMap<&str, u128> = theirs.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let mut names: Vec<&str> = ours.keys().chain(theirs.keys()).copied().collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter(|n| ours.get(n) != theirs.get(n))
        .map(str::to_string)
        .collect()
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
    let frame = world.resource::<RollbackFrameCount>().0;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_parts_names_changed_and_missing() {
        let ours = vec![("A".to_string(), 1), ("B".to_string(), 2)];
        let theirs = vec![
            ("A".to_string(), 1),
            ("B".to_string(), 3),
            ("C".to_string(), 4),
        ];
        assert_eq!(differing_parts(&ours, &theirs), vec!["B", "C"]);
        assert!(differing_parts(&ours, &ours).is_empty());
    }
}
