//! Real ggrs sessions in memory: honest traffic passes the guard unchanged,
//! crafted traffic is refused or defused, and the match goes on.

use volley_rollback::guard::{GuardConfig, Rejected};
use volley_rollback::harness::Match;
use volley_rollback::rle::RleError;
use volley_rollback::wire::{self, WireBody, WireHeader, WireInput, WireMessage, WireStatus};

fn config(players: usize, desync: Option<u32>) -> GuardConfig {
    GuardConfig {
        players,
        max_prediction: 8,
        input_delay: 2,
        desync_interval: desync,
    }
}

fn encode(message: &WireMessage) -> Vec<u8> {
    bincode::serde::encode_to_vec(message, wire::config()).unwrap()
}

fn decode(bytes: &[u8]) -> WireMessage {
    bincode::serde::decode_from_slice(bytes, wire::config())
        .unwrap()
        .0
}

/// Runs until every peer confirmed `frames` frames (bounded).
fn run(game: &mut Match, players: usize, frames: i32, silent: &[usize]) {
    for _ in 0..20 * frames {
        if (0..players)
            .filter(|p| !silent.contains(p))
            .all(|p| game.confirmed(p) >= frames)
        {
            return;
        }
        game.step(silent);
    }
    panic!(
        "no progress: confirmed {:?}",
        (0..players).map(|p| game.confirmed(p)).collect::<Vec<_>>()
    );
}

fn assert_agree(game: &Match, peers: &[usize], frame: i32) {
    let states: Vec<_> = peers.iter().map(|p| game.state_at(*p, frame)).collect();
    assert!(states[0].is_some(), "no state at frame {frame}");
    assert!(
        states.windows(2).all(|w| w[0] == w[1]),
        "frame {frame}: {states:?}"
    );
}

#[test]
fn honest_traffic_passes_unchanged_and_peers_agree() {
    let mut game = Match::new(config(3, Some(10))).unwrap();
    game.keep_sent();
    run(&mut game, 3, 200, &[]);
    for peer in 0..3 {
        assert_eq!(game.rejected(peer), &[] as &[Rejected]);
    }
    assert_agree(&game, &[0, 1, 2], 150);
    let sent = game.sent();
    assert!(sent.len() > 500, "{} packets", sent.len());
    let mut kinds = std::collections::HashSet::new();
    for (_, _, bytes) in sent {
        // The mirror reads ggrs' own bytes and writes them back identically.
        let message = decode(bytes);
        assert_eq!(&encode(&message), bytes);
        kinds.insert(std::mem::discriminant(&message.body));
    }
    // Sync request and reply, input, ack, checksum report at least (quality
    // reports go every 200 ms).
    assert!(kinds.len() >= 5, "{} kinds of message", kinds.len());
}

/// The magic peer `from` stamps on its messages (an attacker knows its own).
fn magic_of(game: &Match, from: usize) -> u16 {
    let (_, _, bytes) = game
        .sent()
        .iter()
        .rev()
        .find(|(f, _, _)| *f == from)
        .unwrap();
    decode(bytes).header.magic
}

/// What a refusal must look like.
type Expect = fn(&Rejected) -> bool;

fn input(magic: u16, statuses: Vec<WireStatus>, start_frame: i32, bytes: Vec<u8>) -> Vec<u8> {
    encode(&WireMessage {
        header: WireHeader { magic },
        body: WireBody::Input(WireInput {
            peer_connect_status: statuses,
            disconnect_requested: false,
            start_frame,
            ack_frame: -1,
            bytes,
        }),
    })
}

#[test]
fn crafted_messages_are_refused_and_the_match_goes_on() {
    let mut game = Match::new(config(3, None)).unwrap();
    game.keep_sent();
    run(&mut game, 3, 60, &[]);
    let magic = magic_of(&game, 2);
    let connected = vec![
        WireStatus {
            disconnected: false,
            last_frame: 0
        };
        3
    ];
    let mut exabytes = vec![0xff; 8];
    exabytes.push(0x7f);
    let attacks: Vec<(Vec<u8>, Expect)> = vec![
        (
            input(magic, connected.clone(), i32::MAX - 1, vec![6, 1, 0, 7]),
            |r| matches!(r, Rejected::FrameOutOfWindow { .. }),
        ),
        (input(magic, connected.clone(), 0, exabytes), |r| {
            matches!(r, Rejected::Inputs(RleError::TooLong(_)))
        }),
        (input(magic, connected[..2].to_vec(), 0, vec![]), |r| {
            matches!(
                r,
                Rejected::StatusCount {
                    got: 2,
                    expected: 3
                }
            )
        }),
        (
            encode(&WireMessage {
                header: WireHeader { magic },
                body: WireBody::QualityReply { pong: 0 },
            }),
            |r| matches!(r, Rejected::ForgedPong { .. }),
        ),
        (
            encode(&WireMessage {
                header: WireHeader { magic },
                body: WireBody::ChecksumReport {
                    checksum: 1,
                    frame: i32::MIN,
                },
            }),
            |r| matches!(r, Rejected::UnexpectedChecksum),
        ),
        (vec![0xff; 32], |r| matches!(r, Rejected::Undecodable)),
    ];
    let count = attacks.len();
    for (bytes, _) in &attacks {
        game.inject(2, 0, bytes.clone());
        game.inject(2, 1, bytes.clone());
    }
    game.step(&[]);
    for peer in [0, 1] {
        let rejected = game.rejected(peer);
        assert_eq!(rejected.len(), count, "{rejected:?}");
        for ((_, expected), got) in attacks.iter().zip(rejected) {
            assert!(expected(got), "unexpected {got:?}");
        }
    }
    run(&mut game, 3, 200, &[]);
    assert_agree(&game, &[0, 1, 2], 180);
}

#[test]
fn a_peer_cannot_make_others_drop_a_third_player() {
    let mut game = Match::new(config(3, Some(10))).unwrap();
    game.keep_sent();
    run(&mut game, 3, 60, &[]);
    let magic = magic_of(&game, 2);
    // Peer 2 tells peer 0 that player 1 left long ago.
    let mut statuses = vec![
        WireStatus {
            disconnected: false,
            last_frame: 0
        };
        3
    ];
    statuses[1] = WireStatus {
        disconnected: true,
        last_frame: 3,
    };
    for _ in 0..20 {
        game.inject(2, 0, input(magic, statuses.clone(), 0, vec![]));
        game.step(&[]);
    }
    run(&mut game, 3, 200, &[]);
    // Player 1 still plays at peer 0, and all three agree.
    assert!(game.connected(0, 1) && game.connected(0, 2));
    assert_agree(&game, &[0, 1, 2], 190);
}

#[test]
fn peers_that_drop_a_player_agree_on_the_frame() {
    let mut game = Match::new(config(3, Some(10))).unwrap();
    run(&mut game, 3, 60, &[]);
    // Player 2 falls silent; peers 0 and 1 drop it a few frames apart.
    for _ in 0..3 {
        game.step(&[2]);
    }
    game.drop_player(0, 2);
    for _ in 0..3 {
        game.step(&[2]);
    }
    game.drop_player(1, 2);
    play_on_without_player_2(&mut game);
}

/// Peers 0 and 1 play on without player 2, dropped by both, in sync (the
/// state folds every input: one difference stays a difference).
fn play_on_without_player_2(game: &mut Match) {
    for _ in 0..400 {
        game.step(&[2]);
    }
    assert!(!game.connected(0, 2) && !game.connected(1, 2));
    let confirmed = game.confirmed(0).min(game.confirmed(1));
    assert!(confirmed > 200, "confirmed {confirmed}");
    assert_agree(game, &[0, 1], confirmed - 5);
}

/// The race that desynced 3-player matches: the leaving player's last
/// packets reach one peer and not the other, so the two have its inputs up
/// to different frames when they drop it.
#[test]
fn peers_that_got_different_last_inputs_agree_on_the_cut() {
    for (behind, gap) in [(0, 1), (0, 3), (0, 6), (1, 4)] {
        let mut game = Match::new(config(3, Some(10))).unwrap();
        run(&mut game, 3, 60, &[]);
        // Player 2's packets to peer `behind` are lost for `gap` frames;
        // the other peer still gets them. Then player 2 is gone.
        let ahead = 1 - behind;
        game.cut(2, behind);
        for _ in 0..gap {
            game.step(&[]);
        }
        game.step(&[2]);
        game.drop_player(ahead, 2);
        game.step(&[2]);
        game.drop_player(behind, 2);
        play_on_without_player_2(&mut game);
    }
}

#[test]
fn dropping_an_up_to_date_player_without_input_delay() {
    let mut cfg = config(2, None);
    cfg.input_delay = 0;
    let mut game = Match::new(cfg).unwrap();
    run(&mut game, 2, 60, &[]);
    game.step(&[]);
    game.drop_player(0, 1);
    for _ in 0..100 {
        game.step(&[1]);
    }
    assert!(game.confirmed(0) > 100);
}

/// A match restarted while a player is away (`volley_rollback::seats`):
/// ggrs must synchronize with every player and cannot drop one before a
/// frame is saved; the pipes answer the absent player's synchronization
/// and the others cut it at frame 1. They play on and agree.
#[test]
fn a_match_starts_without_an_absent_player_and_plays_on() {
    let players = 3;
    let mut game = Match::without(config(players, Some(10)), &[2]).unwrap();
    run(&mut game, players, 200, &[2]);
    assert_agree(&game, &[0, 1], 150);
    assert!(game.rejected(0).is_empty() && game.rejected(1).is_empty());
}
