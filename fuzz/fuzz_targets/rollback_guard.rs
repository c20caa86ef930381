//! Arbitrary bytes as a rollback packet from a peer: `Guard::check` must
//! refuse or accept them without panicking, under a session configuration
//! and a receiver's view chosen by the input, and under two fixed views.
//! What it accepts must pass again unchanged (the check is a fixed point:
//! a rewritten message is one ggrs could have sent).
//!
//! Input: `[players-1, max_prediction, input_delay, desync, frame: u32 LE,
//! clock: u32 LE, handles, unused]` then the packet (the unused byte once
//! chose dropped players, which the guard no longer reads: kept so the
//! corpus keeps its meaning).

#![no_main]

use libfuzzer_sys::fuzz_target;
use volley_fuzz::{Input, encode};
use volley_rollback::{Guard, GuardConfig, View};

/// A plausible wall clock (ms since the epoch), so `pong`s can be recent.
const EPOCH_MS: u128 = 1_750_000_000_000;

fn check(guard: &Guard, packet: &[u8], view: &View) {
    if let Ok(message) = guard.check(packet, view) {
        let bytes = encode(&message);
        let again = guard
            .check(&bytes, view)
            .expect("an accepted message passes the check again");
        assert_eq!(encode(&again), bytes, "the check is not a fixed point");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let players = 1 + usize::from(input.u8() % 4);
    let max_prediction = usize::from(input.u8() % 17);
    let input_delay = usize::from(input.u8() % 9);
    let desync = match input.u8() % 4 {
        0 => None,
        1 => Some(0),
        2 => Some(10),
        n => Some(u32::from(n)),
    };
    let guard = Guard::new(GuardConfig {
        players,
        max_prediction,
        input_delay,
        desync_interval: desync,
    });
    // ggrs frames run from 0 up.
    let frame = (input.u32() & 0x7fff_ffff) as i32;
    let now_millis = EPOCH_MS + u128::from(input.u32());
    let sender_handles = 1 + usize::from(input.u8()) % players;
    let _unused = input.u8();
    let packet = input.rest();

    check(
        &guard,
        packet,
        &View {
            frame,
            now_millis,
            sender_handles,
        },
    );
    check(
        &guard,
        packet,
        &View {
            frame: 0,
            now_millis: EPOCH_MS,
            sender_handles: 1,
        },
    );
    check(
        &guard,
        packet,
        &View {
            frame: 1000,
            now_millis: EPOCH_MS,
            sender_handles: 1,
        },
    );
});
