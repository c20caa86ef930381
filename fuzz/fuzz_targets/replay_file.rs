//! Replay files as `volley-bots replay` and `--replay` read them: any
//! bytes into `Replay::decode`; whatever decodes is fed, segment by
//! segment, to a spectator's `Watch` as playback does. Nothing may panic,
//! a decoded replay round-trips (never longer), and playback shows
//! frames in order, each once, only frames the replay says it plays.
//!
//! Input: the file's bytes. Half the time they are put after the magic
//! (so the fuzzer reaches the decoder without guessing it).

#![no_main]

use libfuzzer_sys::fuzz_target;
use volley_rollback::replay::{REPLAY_MAGIC, Replay};
use volley_rollback::watch::Watch;

fuzz_target!(|data: &[u8]| {
    let bytes = match data.split_first() {
        Some((flag, rest)) if flag % 2 == 0 => [REPLAY_MAGIC.as_slice(), rest].concat(),
        _ => data.to_vec(),
    };
    let Ok(replay) = Replay::decode(&bytes) else {
        return;
    };
    // (bincode takes longer forms of a number than it writes: the value
    // round-trips, not the bytes.)
    let again = replay.encode().expect("a decoded replay encodes");
    assert!(again.len() <= bytes.len());
    assert_eq!(Replay::decode(&again).as_ref(), Ok(&replay));
    let mut watch = Watch::<u8>::spectator();
    let mut last: Option<i32> = None;
    for i in 0..replay.segments.len() {
        for message in replay.feed(i) {
            if let Ok(Some(load)) = watch.receive(0, message) {
                last = Some(load.frame - 1);
            }
        }
        while let Some((frame, _)) = watch.step() {
            assert!(replay.plays(frame), "a frame the replay does not play");
            if let Some(last) = last {
                assert_eq!(frame, last + 1, "frames out of order");
            }
            last = Some(frame);
        }
    }
    let _ = replay.end();
});
