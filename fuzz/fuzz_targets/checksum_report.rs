//! Checksum reports as bevy_volley receives them: a peer's bytes decoded by
//! volley's codec (`Bincode`, with its limit) into a `ChecksumReport`, then
//! into the `Reports` state machine, interleaved with our own desyncs,
//! reads and leaves, for four peers. Nothing may panic, and the machine
//! must agree with a small model: a report over a limit is refused and
//! changes nothing, at most one report is held per peer, a report is ready
//! only once asked for, and whatever is kept is within the limits.
//!
//! Input: operations, each a byte (`op % 5`; the peer is `op / 5 % 4`):
//! 0 a report from the peer: a packet (u16 LE length, bytes), decoded;
//! 1 a report from the peer shaped by the input, near the limits: parts
//! (u16 LE % 300), name length (byte), name byte, frame (byte); encoded,
//! then decoded; 2 we desync with the peer; 3 the ready reports are taken;
//! 4 the peer leaves.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use libfuzzer_sys::fuzz_target;
use volley_fuzz::{Input, encode};
use volley_net::codec::{Bincode, Codec};
use volley_rollback::report::{
    ChecksumReport, MAX_PART_NAME, MAX_REPORT_BYTES, MAX_REPORT_PARTS, Received, Refused, Reports,
};

/// Operations read from one input.
const MAX_OPS: usize = 256;
/// Peers the reports come from.
const PEERS: u8 = 4;

/// What the machine should do, written the obvious way.
#[derive(Default)]
struct Model {
    /// Peers whose report we asked for and did not get yet.
    asked: BTreeSet<u8>,
    /// Peers we sent ours to since they (re)appeared.
    told: BTreeSet<u8>,
    /// The report each peer sent early.
    early: BTreeMap<u8, ChecksumReport>,
    /// Reports to compare, oldest first.
    ready: Vec<(u8, ChecksumReport)>,
}

/// The limits, checked by hand.
fn within_limits(report: &ChecksumReport) -> bool {
    report.parts.len() <= MAX_REPORT_PARTS
        && report.parts.iter().all(|(n, _)| n.len() <= MAX_PART_NAME)
        && encode(report).len() <= MAX_REPORT_BYTES
}

fn receive(reports: &mut Reports<u8>, model: &mut Model, from: u8, report: ChecksumReport) {
    let fits = within_limits(&report);
    assert_eq!(report.check().is_ok(), fits, "the limits disagree");
    let (held, ready) = (reports.held_count(), reports.ready_count());
    match reports.receive(from, report.clone()) {
        Err(Refused::Unasked) => {
            assert!(fits && !model.asked.contains(&from) && model.early.contains_key(&from));
        }
        Err(_) => {
            assert!(!fits, "a report within the limits refused as oversized");
            assert_eq!((reports.held_count(), reports.ready_count()), (held, ready));
        }
        Ok(Received::Ready) => {
            assert!(fits && model.asked.remove(&from), "taken unasked");
            model.ready.push((from, report));
        }
        Ok(Received::Held) => {
            assert!(fits && !model.asked.contains(&from));
            assert!(model.early.insert(from, report).is_none(), "two held");
        }
    }
}

/// A report of `parts` parts whose names are `len` bytes of `fill`.
fn shaped(input: &mut Input<'_>) -> ChecksumReport {
    let parts = usize::from(input.u16() % 300);
    let len = usize::from(input.u8());
    let fill = char::from(b'a' + input.u8() % 26);
    let frame = i32::from(input.u8()) - 8;
    ChecksumReport {
        frame,
        parts: (0..parts)
            .map(|i| (fill.to_string().repeat(len), i as u128 * 0x1_0000_0001))
            .collect(),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mut reports = Reports::<u8>::default();
    let mut model = Model::default();
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let op = input.u8();
        let peer = op / 5 % PEERS;
        match op % 5 {
            0 => {
                let bytes = input.packet();
                if let Ok(report) = Bincode.decode::<ChecksumReport>(bytes) {
                    // The canonical encoding is never longer than the wire's.
                    assert!(report.encoded_len() <= bytes.len());
                    receive(&mut reports, &mut model, peer, report);
                }
            }
            1 => {
                let report = shaped(&mut input);
                let bytes = encode(&report);
                assert_eq!(report.encoded_len(), bytes.len());
                let decoded: ChecksumReport = Bincode.decode(&bytes).expect("a report decodes");
                assert_eq!(decoded, report);
                receive(&mut reports, &mut model, peer, decoded);
            }
            2 => {
                let first = reports.desynced(peer);
                assert_eq!(first, model.told.insert(peer));
                match model.early.remove(&peer) {
                    Some(report) => model.ready.push((peer, report)),
                    None => {
                        model.asked.insert(peer);
                    }
                }
            }
            3 => {
                let taken = reports.take_ready();
                assert_eq!(taken, std::mem::take(&mut model.ready));
                assert!(taken.iter().all(|(_, r)| r.check().is_ok()));
            }
            _ => {
                reports.forget(peer);
                model.asked.remove(&peer);
                model.told.remove(&peer);
                model.early.remove(&peer);
                model.ready.retain(|(p, _)| *p != peer);
            }
        }
        // After every step: exactly the model's state, all of it within
        // the limits.
        assert!(reports.held_count() <= usize::from(PEERS));
        assert_eq!(reports.held_count(), model.early.len());
        assert_eq!(reports.ready_count(), model.ready.len());
        for p in 0..PEERS {
            assert_eq!(reports.held(p), model.early.get(&p));
            assert_eq!(reports.is_expected(p), model.asked.contains(&p));
            if let Some(held) = reports.held(p) {
                assert!(within_limits(held), "an oversized report is kept");
            }
        }
    }
});
