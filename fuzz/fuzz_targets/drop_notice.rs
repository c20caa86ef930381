//! Drop notices as bevy_volley receives them: a peer's bytes decoded by
//! volley's codec (`Bincode`) into a `DropNotice`, then into player 0's
//! `Drops` machine in a 4-player match, interleaved with our own drops and
//! polls at frames and times the input chooses. Nothing may panic, and:
//! a notice passes exactly when it is within the bounds (checked by hand),
//! a player is dropped in ggrs at most once and only after we dropped it,
//! and relayed inputs are within the bounds and come only for a player we
//! dropped.
//!
//! Input: operations, each a byte (`op % 4`; the peer is `1 + op / 4 % 3`,
//! the player `op / 4 % 4`): 0 a notice from the peer: a packet (u16 LE
//! length, bytes), decoded; 1 a notice from the peer shaped by the input
//! (player byte, last: u16 LE − 2, inputs byte, input length byte); 2 we
//! drop the player (last: byte − 1); 3 a poll (frame byte, ms u16 LE later,
//! the dropped players' last frames moved up by a byte).

#![no_main]

use libfuzzer_sys::fuzz_target;
use volley_fuzz::Input;
use volley_net::codec::{Bincode, Codec};
use volley_rollback::GuardConfig;
use volley_rollback::drops::{Action, DropNotice, Drops, MAX_RELAY_INPUTS};
use volley_rollback::{MAX_INPUT_BYTES, MAX_NOTICE_BYTES};

/// Operations read from one input.
const MAX_OPS: usize = 256;
/// Players in the match (we are 0).
const PLAYERS: usize = 4;

/// The bounds, checked by hand (the frame window aside).
fn within_bounds(from: usize, notice: &DropNotice, dropped: &[bool]) -> bool {
    let player = notice.player as usize;
    !dropped[from]
        && player < PLAYERS
        && player != from
        && player != 0
        && notice.inputs.len() <= MAX_RELAY_INPUTS
        && notice.inputs.iter().all(|i| i.len() <= MAX_INPUT_BYTES)
        && i64::from(notice.last) >= notice.inputs.len() as i64 - 1
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let config = GuardConfig {
        players: PLAYERS,
        max_prediction: 8,
        input_delay: 2,
        desync_interval: None,
    };
    let mut drops = Drops::new(config, 0);
    let mut dropped = [false; PLAYERS];
    let mut disconnected = [false; PLAYERS];
    let mut lasts = [-1i32; PLAYERS];
    let mut frame = 0i32;
    let mut now = 0u64;
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let op = input.u8();
        let from = 1 + usize::from(op / 4 % 3);
        let player = usize::from(op / 4 % 4);
        let notice = match op % 4 {
            0 => {
                let bytes = input.packet();
                if bytes.len() > MAX_NOTICE_BYTES {
                    continue; // volley refuses it undecoded
                }
                Bincode.decode::<DropNotice>(bytes).ok()
            }
            1 => {
                let player = u32::from(input.u8() % 6);
                let last = i32::from(input.u16()) - 2;
                let count = usize::from(input.u8()) % (MAX_RELAY_INPUTS + 8);
                let len = usize::from(input.u8()) + 4;
                Some(DropNotice {
                    player,
                    last,
                    inputs: vec![vec![1; len % (MAX_INPUT_BYTES + 2)]; count],
                })
            }
            2 => {
                let last = i32::from(input.u8()) - 1;
                let recent = vec![vec![0]; usize::try_from(last + 1).unwrap_or(0)];
                let fresh = drops.drop_player(player, last, recent, now).is_some();
                assert_eq!(fresh, player != 0 && !dropped[player]);
                if fresh {
                    dropped[player] = true;
                    lasts[player] = last;
                }
                None
            }
            _ => {
                frame = i32::from(input.u8());
                now += u64::from(input.u16());
                let up = i32::from(input.u8() % 4);
                for (p, last) in lasts.iter_mut().enumerate() {
                    if dropped[p] {
                        *last += up;
                    }
                }
                let seen = lasts;
                for action in drops.poll(frame, now, |p| seen[p]) {
                    match action {
                        Action::Relay { player, inputs } => {
                            assert!(dropped[player] && !disconnected[player]);
                            assert!(inputs.len() <= MAX_RELAY_INPUTS);
                            assert!(inputs.iter().all(|i| i.len() <= MAX_INPUT_BYTES));
                        }
                        Action::Disconnect { player, last } => {
                            assert!(dropped[player], "dropped in ggrs before we dropped it");
                            assert!(!disconnected[player], "dropped twice");
                            assert_ne!(frame, last + 1, "the frame ggrs panics on");
                            disconnected[player] = true;
                        }
                    }
                }
                None
            }
        };
        if let Some(notice) = notice {
            let fits = within_bounds(from, &notice, &dropped);
            let passed = drops.receive(from, notice, frame).is_ok();
            assert!(!passed || fits, "a notice over its bounds passed");
        }
    }
});
