//! Spectators' messages as bevy_volley receives them: a peer's bytes
//! decoded by volley's codec (`Bincode`, with its limit) into a `Watching`,
//! then into a spectator's and a player's `Watch`, interleaved with
//! connections, leaves, a player's recordings and the frames shown, for
//! four peers. Nothing may panic, and after every step: a peer feeds at
//! most `MAX_FED` spectators and never its own feeder, a spectator holds
//! at most `MAX_BUFFERED` frames, and the frames it shows follow each
//! other, each once.
//!
//! Input: operations, each a byte (`op % 7`; the peer is `op / 7 % 4`):
//! 0 a message from the peer: a packet (u16 LE length, bytes), decoded;
//! 1 a snapshot from the peer, at a frame (u16 LE); 2 inputs from the
//! peer: a frame (u16 LE), a count (byte), a size (byte); 3 the peer
//! connects; 4 the peer leaves; 5 the player records and confirms a frame
//! (byte: how far behind it confirms), then polls; 6 the spectator shows
//! frames (byte), takes a snapshot for those it feeds and polls.

#![no_main]

use libfuzzer_sys::fuzz_target;
use volley_fuzz::Input;
use volley_net::codec::{Bincode, Codec};
use volley_rollback::watch::{MAX_BUFFERED, MAX_FED, Snapshot, Watch, Watching};

/// Operations read from one input.
const MAX_OPS: usize = 256;
/// Peers the messages come from.
const PEERS: u8 = 4;

fn check(watch: &Watch<u8>) {
    assert!(watch.fed().count() <= MAX_FED, "feeds too many");
    if let Some(source) = watch.source() {
        assert!(!watch.feeds(&source), "feeds its own feeder");
    }
    assert!(watch.buffered() <= MAX_BUFFERED, "holds too much");
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mut spectator = Watch::<u8>::spectator();
    let mut player = Watch::<u8>::player();
    let mut simulated = 0i32;
    let mut last_shown: Option<i32> = None;
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let op = input.u8();
        let peer = op / 7 % PEERS;
        let message = match op % 7 {
            0 => Bincode.decode::<Watching>(input.packet()).ok(),
            1 => Some(Watching::Snapshot(Snapshot {
                epoch: 0,
                base: 0,
                frame: i32::from(input.u16()),
                players: vec![1, 2],
                state: Vec::new(),
            })),
            2 => {
                let frame = i32::from(input.u16());
                let count = usize::from(input.u8());
                let size = usize::from(input.u8()) * 8;
                Some(Watching::Inputs {
                    frame,
                    inputs: vec![vec![0; size]; count],
                })
            }
            3 => {
                spectator.connected(peer);
                player.connected(peer);
                None
            }
            4 => {
                spectator.left(peer);
                player.left(peer);
                None
            }
            5 => {
                let behind = i32::from(input.u8() % 16);
                player.record(simulated, vec![simulated as u8]);
                simulated += 1;
                player.confirm(simulated - 1 - behind);
                if player.wants_snapshot() {
                    player.snapshot_taken(player.confirmed() + 1);
                }
                for (to, _) in player.poll() {
                    assert!(player.feeds(&to));
                }
                player.forget_before(player.confirmed() - 8);
                None
            }
            _ => {
                if let Some(frame) = spectator.shown().filter(|_| spectator.wants_snapshot()) {
                    spectator.snapshot_taken(frame);
                }
                let sent = spectator.poll();
                assert!(sent.iter().all(|(to, _)| spectator.feeds(to)));
                for _ in 0..input.u8() {
                    let Some((frame, _)) = spectator.step() else {
                        break;
                    };
                    if let Some(last) = last_shown {
                        assert_eq!(frame, last + 1, "frames shown out of order");
                    }
                    last_shown = Some(frame);
                }
                spectator.forget_before(0);
                None
            }
        };
        if let Some(message) = message {
            let before = spectator.shown();
            if let Ok(Some(load)) = spectator.receive(peer, message.clone()) {
                assert_eq!(spectator.shown(), Some(load.frame));
                assert_eq!(spectator.source(), Some(peer));
                last_shown = Some(load.frame - 1);
            } else {
                assert!(spectator.shown() == before, "moved without a snapshot");
            }
            let _ = player.receive(peer, message);
        }
        check(&spectator);
        check(&player);
        assert!(player.source().is_none() && player.shown().is_none());
    }
});
