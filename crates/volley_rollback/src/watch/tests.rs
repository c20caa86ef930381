use proptest::prelude::*;

use super::*;

const PLAYER: u8 = 0;
const A: u8 = 1;
const B: u8 = 2;

fn snapshot(frame: i32) -> Watching {
    Watching::Snapshot(Snapshot {
        epoch: 0,
        base: 0,
        frame,
        players: vec![10, 11],
        state: vec![7],
    })
}

/// Delivers everything `from` sends `to`, in order.
fn deliver(from: u8, out: Vec<(u8, Watching)>, to: u8, watch: &mut Watch<u8>) {
    for (peer, message) in out {
        if peer == to {
            watch.receive(from, message).unwrap();
        }
    }
}

fn shown(watch: &mut Watch<u8>) -> Vec<(i32, Vec<u8>)> {
    std::iter::from_fn(|| watch.step().map(|(f, b)| (f, b.to_vec()))).collect()
}

#[test]
fn a_player_feeds_a_spectator_its_confirmed_inputs() {
    let mut player = Watch::player();
    let mut spectator = Watch::spectator();
    assert_eq!(spectator.connected(PLAYER), Some(Watching::Watch));
    assert_eq!(
        spectator.connected(PLAYER),
        None,
        "asked once per connection"
    );
    assert_eq!(player.connected(A), None, "players ask nobody");
    assert!(!player.is_feeding());
    player.receive(A, Watching::Watch).unwrap();
    assert!(player.feeds(&A) && player.wants_snapshot());
    // Frames 10.. simulated, 10 and 11 twice (a rollback): the last wins.
    for frame in 10..20 {
        player.record(frame, vec![frame as u8]);
    }
    player.record(10, vec![100]);
    player.record(11, vec![111]);
    player.confirm(12);
    assert_eq!(player.snapshot_taken(10), vec![A]);
    assert!(!player.wants_snapshot());
    // A late simulation of a confirmed frame changes nothing.
    player.record(12, vec![0]);
    let load = spectator.receive(PLAYER, snapshot(10)).unwrap().unwrap();
    assert_eq!((load.frame, load.players.len()), (10, 2));
    deliver(PLAYER, player.poll(), A, &mut spectator);
    assert_eq!(
        shown(&mut spectator),
        vec![(10, vec![100]), (11, vec![111]), (12, vec![12])]
    );
    assert!(player.poll().is_empty(), "nothing new");
    player.confirm(15);
    deliver(PLAYER, player.poll(), A, &mut spectator);
    assert_eq!(spectator.buffered(), 3);
    assert_eq!(shown(&mut spectator).len(), 3);
    assert_eq!(spectator.shown(), Some(16));
}

#[test]
fn long_feeds_go_in_batches() {
    let mut player = Watch::player();
    player.receive(A, Watching::Watch).unwrap();
    for frame in 0..200 {
        player.record(frame, vec![1, 2, 3]);
    }
    player.snapshot_taken(0);
    player.confirm(199);
    let out = player.poll();
    assert_eq!(out.len(), 200usize.div_ceil(MAX_BATCH));
    let mut spectator = Watch::spectator();
    spectator.receive(PLAYER, snapshot(0)).unwrap();
    deliver(PLAYER, out, A, &mut spectator);
    assert_eq!(spectator.buffered(), 200);
}

#[test]
fn a_spectator_relays_from_the_frame_it_shows() {
    let mut player = Watch::player();
    let mut a = Watch::spectator();
    let mut b = Watch::spectator();
    player.receive(A, Watching::Watch).unwrap();
    (0..30).for_each(|f| player.record(f, vec![f as u8]));
    player.snapshot_taken(0);
    player.confirm(29);
    a.receive(PLAYER, snapshot(0)).unwrap();
    deliver(PLAYER, player.poll(), A, &mut a);
    for _ in 0..10 {
        assert!(a.step().is_some());
    }
    // B connects to A (the server made A its feeder); both ask, the race
    // the protocol allows.
    assert_eq!(b.connected(A), Some(Watching::Watch));
    assert_eq!(a.connected(B), Some(Watching::Watch));
    a.receive(B, Watching::Watch).unwrap();
    b.receive(A, Watching::Watch).unwrap();
    assert!(a.feeds(&B) && b.feeds(&A));
    assert!(a.wants_snapshot());
    let frame = a.shown().unwrap();
    assert_eq!(a.snapshot_taken(frame), vec![B]);
    b.receive(A, snapshot(frame)).unwrap();
    assert_eq!(b.source(), Some(A));
    assert!(!b.feeds(&A), "a spectator never feeds its own feeder");
    // A snapshot from a peer we feed is never followed.
    assert_eq!(a.receive(B, snapshot(3)), Ok(None));
    assert_eq!(a.source(), Some(PLAYER));
    a.forget_before(0);
    deliver(A, a.poll(), B, &mut b);
    let relayed = shown(&mut b);
    assert_eq!(relayed.first().map(|(f, _)| *f), Some(10));
    assert_eq!(relayed.last(), Some(&(29, vec![29])));
}

#[test]
fn a_feeder_lost_is_replaced_by_the_next_snapshot() {
    let mut spectator = Watch::spectator();
    spectator.receive(PLAYER, snapshot(5)).unwrap();
    // Another peer's snapshot or inputs are ignored while we follow.
    assert_eq!(spectator.receive(A, snapshot(50)), Ok(None));
    let inputs = Watching::Inputs {
        frame: 5,
        inputs: vec![vec![1]],
    };
    assert_eq!(spectator.receive(A, inputs.clone()), Ok(None));
    assert_eq!(spectator.buffered(), 0);
    spectator.left(PLAYER);
    assert_eq!(spectator.source(), None);
    let load = spectator.receive(A, snapshot(50)).unwrap().unwrap();
    assert_eq!(load.frame, 50);
    assert_eq!(spectator.source(), Some(A));
}

#[test]
fn a_restart_sends_a_new_snapshot() {
    let mut player = Watch::player();
    player.receive(A, Watching::Watch).unwrap();
    (0..40).for_each(|f| player.record(f, vec![1]));
    player.snapshot_taken(0);
    player.confirm(30);
    assert!(!player.poll().is_empty());
    // The match restarts from frame 25: frames from there are replayed.
    player.restarted(25);
    assert!(player.wants_snapshot());
    assert_eq!(player.confirmed(), 24);
    assert!(player.poll().is_empty(), "nothing until the new snapshot");
    (25..35).for_each(|f| player.record(f, vec![2]));
    player.confirm(27);
    player.snapshot_taken(26);
    let out = player.poll();
    assert_eq!(
        out,
        vec![(
            A,
            Watching::Inputs {
                frame: 26,
                inputs: vec![vec![2], vec![2]]
            }
        )]
    );
}

#[test]
fn hostile_feeds_are_refused() {
    let mut player = Watch::<u8>::player();
    assert_eq!(player.receive(A, snapshot(0)), Err(WatchError::NotWatching));
    let mut spectator = Watch::spectator();
    spectator.receive(PLAYER, snapshot(10)).unwrap();
    let gap = Watching::Inputs {
        frame: 12,
        inputs: vec![vec![0]],
    };
    assert_eq!(
        spectator.receive(PLAYER, gap),
        Err(WatchError::Gap {
            expected: 10,
            got: 12
        })
    );
    let many = Watching::Inputs {
        frame: 10,
        inputs: vec![vec![0]; MAX_BATCH + 1],
    };
    assert!(matches!(
        spectator.receive(PLAYER, many),
        Err(WatchError::TooMuch { .. })
    ));
    let large = Watching::Inputs {
        frame: 10,
        inputs: vec![vec![0; MAX_FRAME_INPUTS + 1]],
    };
    assert!(matches!(
        spectator.receive(PLAYER, large),
        Err(WatchError::TooMuch { .. })
    ));
    // Held frames are bounded too.
    let mut frame = 10;
    let refused = loop {
        let batch = Watching::Inputs {
            frame,
            inputs: vec![vec![0]; MAX_BATCH],
        };
        match spectator.receive(PLAYER, batch) {
            Ok(_) => frame += MAX_BATCH as i32,
            Err(e) => break e,
        }
        assert!(frame < 10 + 2 * MAX_BUFFERED as i32, "never refused");
    };
    assert!(matches!(refused, WatchError::TooMuch { .. }));
    assert!(spectator.buffered() <= MAX_BUFFERED);
    for bad in [(-1, 0), (5, 6)] {
        let mut fresh = Watch::spectator();
        let message = Watching::Snapshot(Snapshot {
            epoch: 0,
            base: bad.1,
            frame: bad.0,
            players: vec![1],
            state: Vec::new(),
        });
        assert!(matches!(
            fresh.receive(PLAYER, message),
            Err(WatchError::Snapshot { .. })
        ));
    }
    let nobody = Watching::Snapshot(Snapshot {
        epoch: 0,
        base: 0,
        frame: 0,
        players: Vec::new(),
        state: Vec::new(),
    });
    assert!(Watch::spectator().receive(PLAYER, nobody).is_err());
}

#[test]
fn a_peer_feeds_at_most_max_fed() {
    let mut player = Watch::<u8>::player();
    for peer in 1..=(MAX_FED as u8 + 3) {
        player.receive(peer, Watching::Watch).unwrap();
    }
    assert_eq!(player.fed().count(), MAX_FED);
    player.left(1);
    player.receive(100, Watching::Watch).unwrap();
    assert!(player.feeds(&100));
}

#[test]
fn pacing_catches_up_within_bounds() {
    assert_eq!(frames_to_show(1, 0), 0, "nothing held, nothing shown");
    assert_eq!(frames_to_show(1, 3), 1, "in time: the clock's frames");
    assert_eq!(frames_to_show(0, WATCH_DELAY), 0);
    assert_eq!(frames_to_show(0, WATCH_DELAY + 3), 3, "behind: catch up");
    assert_eq!(frames_to_show(2, 500), MAX_CATCH_UP);
    assert_eq!(frames_to_show(40, 10), 10, "never more than held");
}

proptest! {
    /// Whatever the player's rollbacks, spectators (fed directly or
    /// through a relay, joining at any time) show exactly the final
    /// inputs, each frame once, in order.
    #[test]
    fn spectators_show_the_final_inputs(
        steps in proptest::collection::vec((0u8..4, 0u8..255), 1..200),
        join in 0usize..100,
        relay_after in 0usize..100,
    ) {
        let mut truth: Vec<u8> = Vec::new();
        let mut player = Watch::player();
        let mut a = Watch::spectator();
        let mut b = Watch::spectator();
        let mut simulated = 0i32;
        let (mut a_frames, mut b_frames) = (Vec::new(), Vec::new());
        for (i, (kind, value)) in steps.iter().copied().enumerate() {
            if i == join {
                player.receive(A, Watching::Watch).unwrap();
            }
            if i == join + relay_after {
                a.receive(B, Watching::Watch).unwrap();
                b.receive(A, Watching::Watch).unwrap();
            }
            // Simulate a frame with a guess, then the truth arrives for
            // some frames (a rollback re-simulates them), then confirm.
            truth.push(value);
            player.record(simulated, vec![value.wrapping_add(kind)]);
            simulated += 1;
            let confirmed = (simulated - 1 - i32::from(kind)).max(-1);
            for f in (player.confirmed() + 1).max(0)..=confirmed {
                player.record(f, vec![truth[f as usize]]);
            }
            player.confirm(confirmed);
            if player.wants_snapshot() && confirmed >= 0 {
                let frame = player.confirmed() + 1;
                player.snapshot_taken(frame);
                // Not yet final: the snapshot goes out once it is.
                a.receive(PLAYER, snapshot(frame)).unwrap();
                for f in frame..simulated {
                    player.record(f, vec![truth[f as usize].wrapping_add(kind)]);
                }
            }
            deliver(PLAYER, player.poll(), A, &mut a);
            player.forget_before(player.confirmed() - 8);
            if a.wants_snapshot() && let Some(frame) = a.shown() {
                a.snapshot_taken(frame);
                b.receive(A, snapshot(frame)).unwrap();
            }
            deliver(A, a.poll(), B, &mut b);
            a.forget_before(0);
            if let Some((f, bytes)) = a.step() {
                a_frames.push((f, bytes.to_vec()));
            }
            b_frames.extend(shown(&mut b));
            b.forget_before(0);
        }
        let confirmed = player.confirmed();
        if join + 8 < steps.len() {
            prop_assert!(!a_frames.is_empty(), "the spectator saw nothing");
        }
        if join + relay_after + 8 < steps.len() {
            prop_assert!(!b_frames.is_empty(), "the relay fed nothing");
        }
        for frames in [&a_frames, &b_frames] {
            for pair in frames.windows(2) {
                prop_assert_eq!(pair[1].0, pair[0].0 + 1, "each frame once, in order");
            }
            for (f, bytes) in frames.iter() {
                prop_assert!(*f <= confirmed);
                prop_assert_eq!(bytes, &vec![truth[*f as usize]]);
            }
        }
    }
}
