//! Checksum reports: when ggrs detects a desync with a peer, each side may
//! send the other its checksum parts of that frame by name, so the receiver
//! can say *what* differs. The report is a peer's message like any other,
//! so [`Reports`] only takes one when we asked for it (we desynced with
//! that peer) or holds one per peer that arrives before our own detection,
//! and only within the size limits below; everything else is refused, and
//! the caller counts it against the sender.
//!
//! No Bevy here: `bevy_volley::rollback` keeps the history and the logs,
//! this decides what is kept (and is fuzzed on its own).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Most parts one [`ChecksumReport`] may carry. A game registers a few
/// checksummed types; bevy_ggrs adds one unnamed part per registration.
pub const MAX_REPORT_PARTS: usize = 256;

/// Longest part name, in bytes. Names are type names (the last path
/// segment) or `unnamed part <entity>`: a few dozen bytes.
pub const MAX_PART_NAME: usize = 128;

/// Largest report, in encoded bytes (bincode 2 standard, as volley sends
/// it). Tighter than parts × name length: a report is held per peer, so
/// what one may cost us is bounded here, whatever its shape.
pub const MAX_REPORT_BYTES: usize = 16 * 1024;

/// Sent to a peer we desynced with (debug builds): our checksum parts of
/// that frame, so it can name what differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumReport {
    /// The frame.
    pub frame: i32,
    /// `(name, part)` pairs, sorted by name.
    pub parts: Vec<(String, u128)>,
}

impl ChecksumReport {
    /// Whether the report is within [`MAX_REPORT_PARTS`], [`MAX_PART_NAME`]
    /// and [`MAX_REPORT_BYTES`]: checked on what we receive, and on our own
    /// before sending it (an honest peer must never be refused).
    pub fn check(&self) -> Result<(), Refused> {
        let parts = self.parts.len();
        if parts > MAX_REPORT_PARTS {
            return Err(Refused::TooManyParts { parts });
        }
        if let Some(bytes) = self
            .parts
            .iter()
            .map(|(name, _)| name.len())
            .find(|len| *len > MAX_PART_NAME)
        {
            return Err(Refused::NameTooLong { bytes });
        }
        let bytes = self.encoded_len();
        if bytes > MAX_REPORT_BYTES {
            return Err(Refused::TooLarge { bytes });
        }
        Ok(())
    }

    /// Its size encoded as volley sends it, counted without encoding it.
    pub fn encoded_len(&self) -> usize {
        let mut size = bincode::enc::write::SizeWriter::default();
        match bincode::serde::encode_into_writer(self, &mut size, bincode::config::standard()) {
            Ok(()) => size.bytes_written,
            // Counting cannot fail; if it did, the report would not be taken.
            Err(_) => usize::MAX,
        }
    }
}

/// Why a report was not taken. Every refusal counts against its sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// More than [`MAX_REPORT_PARTS`] parts.
    #[error("checksum report with {parts} parts (at most {MAX_REPORT_PARTS})")]
    TooManyParts {
        /// The parts it carried.
        parts: usize,
    },
    /// A part name longer than [`MAX_PART_NAME`].
    #[error("checksum report with a part name of {bytes} bytes (at most {MAX_PART_NAME})")]
    NameTooLong {
        /// The name's length.
        bytes: usize,
    },
    /// More than [`MAX_REPORT_BYTES`] encoded.
    #[error("checksum report of {bytes} bytes (at most {MAX_REPORT_BYTES})")]
    TooLarge {
        /// Its encoded size.
        bytes: usize,
    },
    /// Nobody asked for it (we did not desync with the sender) and one from
    /// the sender is held already.
    #[error("unasked checksum report (one from this peer is held already)")]
    Unasked,
}

/// What became of a report that was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// We asked for it: ready to compare ([`Reports::take_ready`]).
    Ready,
    /// It came before our own detection: held until we desync with the
    /// sender ([`Reports::desynced`]) or it leaves ([`Reports::forget`]).
    Held,
}

/// Whose reports we take, per peer `P`: one for each desync we saw with
/// that peer, and one held that arrives before we see it.
#[derive(Debug, Clone)]
pub struct Reports<P> {
    /// Peers we desynced with whose report we still expect.
    expected: BTreeSet<P>,
    /// Peers we sent ours to.
    sent: BTreeSet<P>,
    /// Reports that came before we saw the desync ourselves.
    held: BTreeMap<P, ChecksumReport>,
    /// Reports to compare, in arrival order.
    ready: Vec<(P, ChecksumReport)>,
}

impl<P> Default for Reports<P> {
    fn default() -> Self {
        Reports {
            expected: BTreeSet::new(),
            sent: BTreeSet::new(),
            held: BTreeMap::new(),
            ready: Vec::new(),
        }
    }
}

impl<P: Ord + Copy> Reports<P> {
    /// We detected a desync with `peer`: its report is expected (one held
    /// already becomes ready). True the first time for this peer — the
    /// moment to send it ours, once.
    pub fn desynced(&mut self, peer: P) -> bool {
        match self.held.remove(&peer) {
            Some(report) => self.ready.push((peer, report)),
            None => {
                self.expected.insert(peer);
            }
        }
        self.sent.insert(peer)
    }

    /// A report from `from`, decoded. Checked against the limits before
    /// anything is kept; then taken if expected, else held if none from
    /// `from` is held yet, else refused.
    pub fn receive(&mut self, from: P, report: ChecksumReport) -> Result<Received, Refused> {
        report.check()?;
        if self.expected.remove(&from) {
            self.ready.push((from, report));
            return Ok(Received::Ready);
        }
        match self.held.entry(from) {
            Entry::Occupied(_) => Err(Refused::Unasked),
            Entry::Vacant(slot) => {
                slot.insert(report);
                Ok(Received::Held)
            }
        }
    }

    /// The reports ready to compare with our own checksums, oldest first.
    pub fn take_ready(&mut self) -> Vec<(P, ChecksumReport)> {
        std::mem::take(&mut self.ready)
    }

    /// `peer` left: nothing of it is kept.
    pub fn forget(&mut self, peer: P) {
        self.expected.remove(&peer);
        self.sent.remove(&peer);
        self.held.remove(&peer);
        self.ready.retain(|(p, _)| *p != peer);
    }

    /// The report held from `peer`, if any.
    pub fn held(&self, peer: P) -> Option<&ChecksumReport> {
        self.held.get(&peer)
    }

    /// Reports held (one per peer at most).
    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    /// Whether a report from `peer` is expected.
    pub fn is_expected(&self, peer: P) -> bool {
        self.expected.contains(&peer)
    }

    /// Reports ready and not yet taken.
    pub fn ready_count(&self) -> usize {
        self.ready.len()
    }
}

/// The names whose parts differ, or that only one side has, sorted.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(parts: usize, name_len: usize) -> ChecksumReport {
        ChecksumReport {
            frame: 7,
            parts: (0..parts)
                .map(|i| (format!("{i:0>name_len$}"), u128::MAX))
                .collect(),
        }
    }

    fn small() -> ChecksumReport {
        ChecksumReport {
            frame: 3,
            parts: vec![("Player".into(), 1), ("Round".into(), 2)],
        }
    }

    #[test]
    fn encoded_len_is_bincode_standard() {
        for r in [small(), report(0, 0), report(40, 100)] {
            let bytes = bincode::serde::encode_to_vec(&r, bincode::config::standard()).unwrap();
            assert_eq!(r.encoded_len(), bytes.len());
        }
    }

    #[test]
    fn too_many_parts_are_refused() {
        // Short names: only the part count is over.
        assert!(report(MAX_REPORT_PARTS, 3).check().is_ok());
        assert_eq!(
            report(MAX_REPORT_PARTS + 1, 3).check(),
            Err(Refused::TooManyParts {
                parts: MAX_REPORT_PARTS + 1
            })
        );
    }

    #[test]
    fn long_names_are_refused() {
        assert!(report(2, MAX_PART_NAME).check().is_ok());
        assert_eq!(
            report(2, MAX_PART_NAME + 1).check(),
            Err(Refused::NameTooLong {
                bytes: MAX_PART_NAME + 1
            })
        );
    }

    #[test]
    fn large_reports_are_refused() {
        // Every part and every name within its limit, the whole too large.
        let r = report(MAX_REPORT_PARTS, MAX_PART_NAME);
        let bytes = r.encoded_len();
        assert!(bytes > MAX_REPORT_BYTES);
        assert_eq!(r.check(), Err(Refused::TooLarge { bytes }));
        // Honest reports fit: 256 parts with 40-byte names.
        assert!(report(MAX_REPORT_PARTS, 40).check().is_ok());
    }

    #[test]
    fn oversized_reports_are_never_kept() {
        let mut reports = Reports::default();
        reports.desynced(1);
        let big = report(MAX_REPORT_PARTS + 1, 1);
        assert!(reports.receive(1, big.clone()).is_err());
        assert!(reports.receive(2, big).is_err());
        assert_eq!(reports.held_count(), 0);
        assert!(reports.take_ready().is_empty());
        // Still expected: the refusal did not use up the expectation.
        assert!(reports.is_expected(1));
    }

    #[test]
    fn an_expected_report_is_ready_once() {
        let mut reports = Reports::default();
        assert!(reports.desynced(1), "first desync: send ours");
        assert_eq!(reports.receive(1, small()), Ok(Received::Ready));
        assert_eq!(reports.take_ready(), vec![(1, small())]);
        assert!(!reports.is_expected(1));
        // The next one from that peer is held, then one more is refused.
        assert_eq!(reports.receive(1, small()), Ok(Received::Held));
        assert_eq!(reports.receive(1, small()), Err(Refused::Unasked));
        // Another desync takes the held one; ours is not sent again.
        assert!(!reports.desynced(1));
        assert_eq!(reports.take_ready(), vec![(1, small())]);
        assert_eq!(reports.held_count(), 0);
    }

    #[test]
    fn one_early_report_is_held_per_peer() {
        let mut reports = Reports::default();
        assert_eq!(reports.receive(1, small()), Ok(Received::Held));
        assert_eq!(reports.receive(2, small()), Ok(Received::Held));
        assert_eq!(reports.receive(1, small()), Err(Refused::Unasked));
        assert_eq!(reports.held_count(), 2);
        assert!(reports.take_ready().is_empty());
        reports.desynced(2);
        assert_eq!(reports.take_ready(), vec![(2, small())]);
        assert!(!reports.is_expected(2), "the held one answered it");
        assert_eq!(reports.held(1), Some(&small()));
    }

    #[test]
    fn a_peer_that_left_is_forgotten() {
        let mut reports = Reports::default();
        reports.receive(1, small()).unwrap();
        reports.desynced(2);
        reports.receive(2, small()).unwrap();
        reports.forget(1);
        reports.forget(2);
        assert_eq!(reports.held_count(), 0);
        assert_eq!(reports.ready_count(), 0);
        // A peer id seen again starts over: ours would be sent again.
        assert!(reports.desynced(2));
    }

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
