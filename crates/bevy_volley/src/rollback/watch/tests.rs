use std::time::Duration;

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevy_ggrs::{GgrsSchedule, LocalInputs, LocalPlayers, ReadInputs};

use super::*;
use crate::rollback::{ChecksumHistory, RollbackPlugin, RollbackStateApp};

/// The whole game: a running hash of every input.
#[derive(
    Resource, Clone, Default, Hash, PartialEq, Debug, serde::Serialize, serde::Deserialize,
)]
struct Sum(u64);

fn step(inputs: Res<PlayerInputs<VolleyGgrs<u8>>>, mut sum: ResMut<Sum>) {
    for (input, _) in inputs.iter() {
        sum.0 = sum.0.wrapping_mul(31).wrapping_add(u64::from(*input));
    }
}

fn input(frame: i32, handle: usize) -> u8 {
    (frame * 7 + handle as i32) as u8
}

fn read(mut commands: Commands, local: Res<LocalPlayers>, frame: Res<RollbackFrameCount>) {
    let inputs = local.0.iter().map(|h| (*h, input(frame.0, *h))).collect();
    commands.insert_resource(LocalInputs::<VolleyGgrs<u8>>(inputs));
}

fn app(rollback: RollbackPlugin<u8>) -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, rollback))
        .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_nanos(
            1_000_000_000 / 60 + 1,
        )))
        .add_message::<crate::NetPeerEvent>()
        .init_resource::<Sum>()
        .rollback_state_resource::<Sum>()
        .add_systems(ReadInputs, read)
        .add_systems(GgrsSchedule, step);
    app
}

#[test]
fn a_spectator_shows_the_frames_it_is_fed_with_the_players_checksums() {
    // The reference: a player's world (a sync test re-simulates, as
    // rollback does), its state at frame 10 and its checksums after.
    let mut player = app(RollbackPlugin::sync_test(2, 2).input_delay(0));
    let mut snapshot = None;
    for _ in 0..100 {
        player.update();
        let frame = player.world().resource::<RollbackFrameCount>().0;
        if frame == 10 && snapshot.is_none() {
            snapshot = Some(save_state(player.world_mut()).unwrap());
        }
        if frame >= 40 {
            break;
        }
    }
    let snapshot = snapshot.expect("the player reached frame 10");

    let mut spectator = app(RollbackPlugin::spectate(2));
    let feeder = PeerId(uuid::Uuid::from_u128(9));
    let mut feed = spectator.world_mut().resource_mut::<RollbackWatch>();
    let load = feed
        .watch
        .receive(
            feeder,
            Watching::Snapshot(Snapshot {
                epoch: 0,
                base: 0,
                frame: 10,
                players: vec![1, 2],
                state: snapshot,
            }),
        )
        .unwrap();
    feed.load = load;
    let frames: Vec<Vec<u8>> = (10..30)
        .map(|f| {
            let inputs = [
                (input(f, 0), InputStatus::Confirmed),
                (input(f, 1), InputStatus::Confirmed),
            ];
            encode::<u8>(&inputs).unwrap()
        })
        .collect();
    let inputs = Watching::Inputs {
        frame: 10,
        inputs: frames,
    };
    feed.watch.receive(feeder, inputs).unwrap();
    for _ in 0..60 {
        spectator.update();
    }
    let status = spectator.world().resource::<RollbackStatus>();
    assert!(status.spectating);
    assert_eq!(status.frame, 30, "every frame fed is shown, no more");
    let ours = spectator.world().resource::<ChecksumHistory>();
    let theirs = player.world().resource::<ChecksumHistory>();
    for frame in 10..30 {
        let (ours, theirs) = (ours.get(frame), theirs.get(frame));
        assert!(ours.is_some(), "frame {frame} not checksummed");
        assert_eq!(
            ours.map(|c| c.total),
            theirs.map(|c| c.total),
            "frame {frame}"
        );
    }
}

#[test]
fn inputs_travel_with_who_was_out() {
    let inputs = [
        (3u8, InputStatus::Predicted),
        (0, InputStatus::Disconnected),
    ];
    let bytes = encode::<u8>(&inputs).unwrap();
    assert_eq!(
        decode::<u8>(&bytes, 2),
        Some(vec![
            (3, InputStatus::Confirmed),
            (0, InputStatus::Disconnected)
        ])
    );
    assert_eq!(decode::<u8>(&bytes, 3), None, "another number of players");
    assert_eq!(decode::<u8>(&[0xff; 8], 2), None);
}

#[test]
fn bevy_ggrs_hands_over_its_inputs() {
    let inputs = harvest::<u8>(3).expect("harvested");
    assert_eq!(inputs.len(), 3);
}
