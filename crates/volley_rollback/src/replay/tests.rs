use super::*;

fn snapshot(epoch: u32, base: i32, frame: i32) -> Watching {
    Watching::Snapshot(Snapshot {
        epoch,
        base,
        frame,
        players: vec![1, 2],
        state: vec![epoch as u8; 3],
    })
}

fn inputs(frame: i32, count: usize) -> Watching {
    Watching::Inputs {
        frame,
        inputs: (0..count)
            .map(|i| vec![(frame as usize + i) as u8])
            .collect(),
    }
}

/// A match of 100 frames from frame 10, restarted at frame 60 (frames
/// 60..70 of the first epoch were played again), its new state sent at 62.
fn recorded() -> Replay {
    let mut recorder = Recorder::new("box_game 1");
    recorder.record(snapshot(0, 0, 10));
    recorder.record(inputs(10, 40));
    recorder.record(inputs(99, 1)); // not following: dropped
    recorder.record(inputs(50, 20));
    assert_eq!(recorder.next_checkpoint(), Some(10));
    while let Some(frame) = recorder.next_checkpoint().filter(|f| *f < 70) {
        recorder.checkpoint(frame, Some(frame as u128));
    }
    recorder.checkpoint(20, Some(0)); // not after the last: dropped
    recorder.record(snapshot(1, 60, 62));
    assert_eq!(recorder.next_checkpoint(), Some(60), "back to the restart");
    recorder.record(inputs(62, 48));
    recorder.checkpoint(60, None); // not saved there: skipped
    assert_eq!(recorder.next_checkpoint(), Some(70));
    recorder.checkpoint(60, Some(1060));
    while let Some(frame) = recorder.next_checkpoint().filter(|f| *f < 110) {
        recorder.checkpoint(frame, Some(1000 + frame as u128));
    }
    recorder.replay().clone()
}

#[test]
fn a_recording_keeps_what_was_not_played_again() {
    let replay = recorded();
    assert_eq!(replay.segments.len(), 2);
    assert_eq!(
        replay.segments[0].inputs.len(),
        50,
        "cut at the restart's base"
    );
    assert_eq!(replay.frames_of(0), 10..60);
    assert_eq!(replay.frames_of(1), 62..110);
    assert_eq!(replay.end(), 110);
    assert!(replay.plays(59) && !replay.plays(60) && !replay.plays(61) && replay.plays(62));
    // Checkpoints from the restart's base on are the new epoch's.
    let frames: Vec<i32> = replay.checkpoints.iter().map(|(f, _)| *f).collect();
    assert_eq!(frames, vec![10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    assert_eq!(replay.checkpoints[5], (60, 1060));
}

#[test]
fn a_replay_feeds_each_segment_as_a_spectator_is_fed() {
    let replay = recorded();
    let mut watch = crate::watch::Watch::spectator();
    let mut shown = Vec::new();
    for i in 0..replay.segments.len() {
        for message in replay.feed(i) {
            watch.receive(0u8, message).unwrap();
        }
        while let Some((frame, bytes)) = watch.step() {
            shown.push((frame, bytes[0]));
        }
    }
    let frames: Vec<i32> = shown.iter().map(|(f, _)| *f).collect();
    let expected: Vec<i32> = (10..60).chain(62..110).collect();
    assert_eq!(frames, expected);
    assert!(shown.iter().all(|(f, b)| *b == *f as u8));
}

#[test]
fn files_round_trip_and_doctored_ones_are_refused() {
    let replay = recorded();
    let bytes = replay.encode().unwrap();
    assert_eq!(Replay::decode(&bytes), Ok(replay.clone()));
    assert_eq!(Replay::decode(b"VLYRPL00"), Err(ReplayError::Magic));
    assert!(matches!(
        Replay::decode(&bytes[..bytes.len() - 1]),
        Err(ReplayError::Decode(_))
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Replay::decode(&longer),
        Err(ReplayError::Decode(_))
    ));
    let huge = vec![0; MAX_REPLAY_BYTES + 1];
    assert_eq!(
        Replay::decode(&huge),
        Err(ReplayError::TooLarge(MAX_REPLAY_BYTES + 1))
    );
    let inconsistent = [
        Replay {
            players: Vec::new(),
            ..replay.clone()
        },
        Replay {
            segments: replay.segments.iter().rev().cloned().collect(),
            ..replay.clone()
        },
        Replay {
            checkpoints: vec![(20, 0), (10, 0)],
            ..replay.clone()
        },
        Replay {
            segments: Vec::new(),
            ..replay.clone()
        },
    ];
    for bad in inconsistent {
        let bytes = bad.encode().unwrap();
        assert!(
            matches!(Replay::decode(&bytes), Err(ReplayError::Inconsistent(_))),
            "{bad:?}"
        );
    }
    // Any single byte changed: refused, or a replay that still decodes
    // (whose checksums playback then checks) — never a panic.
    for i in 0..bytes.len() {
        let mut doctored = bytes.clone();
        doctored[i] ^= 0x41;
        let _ = Replay::decode(&doctored);
    }
}

/// The `replay_file` fuzz target's seed is a real replay (its first byte
/// odd: the bytes as they are). `VOLLEY_BLESS=1` writes it anew after a
/// change of the format.
#[test]
fn the_fuzz_seed_is_a_recorded_replay() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions/replay_file/recorded");
    let mut seed = vec![1];
    seed.extend(recorded().encode().unwrap());
    if std::env::var_os("VOLLEY_BLESS").is_some() {
        std::fs::write(&path, &seed).unwrap();
    }
    let on_disk = std::fs::read(&path).expect("the seed (VOLLEY_BLESS=1 writes it)");
    assert_eq!(Replay::decode(&on_disk[1..]), Ok(recorded()));
}
