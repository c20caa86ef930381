//! A hostile player in a 3-player box_game match over real WebRTC: it plays,
//! then sends random bytes on every channel, ggrs messages with extreme
//! fields and a flood. Both honest players must drop it within 2 s, keep
//! their frame rate and stay in sync (inside a private network namespace,
//! see `volley_testkit::netns`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use volley::bevy::{LeftReason, NetPeerEvent, PeerId, SessionEvent, VolleySet};
use volley_bots::hostile::HostilePlugin;
use volley_bots::{BotRun, run_rooms_with};
use volley_testkit::server::with_server;

/// (bot, peer that left, why, when) as the honest bots saw it.
type Departures = Arc<Mutex<Vec<(usize, PeerId, LeftReason, Instant)>>>;

#[test]
fn a_hostile_player_is_dropped_by_both_and_the_match_goes_on() {
    if !volley_testkit::netns::isolate("a_hostile_player_is_dropped_by_both_and_the_match_goes_on")
    {
        return;
    }
    with_server(|server| {
        let mut run = BotRun::new(&format!("ws://{}", server.addr()), 1, 3, 600);
        run.unjudged = vec![2];
        run.timeout = Duration::from_secs(90);
        let hostile = HostilePlugin::new(120, 99);
        let started = hostile.started.clone();
        let departures = Departures::default();
        let reports = run_rooms_with(&run, |app, _, bot| {
            if bot == 2 {
                app.add_plugins(hostile.clone());
                return;
            }
            let log = departures.clone();
            app.add_systems(
                PreUpdate,
                (move |mut events: MessageReader<NetPeerEvent>| {
                    for NetPeerEvent(event) in events.read() {
                        if let SessionEvent::Left(peer, why) = event {
                            log.lock()
                                .unwrap()
                                .push((bot, *peer, why.clone(), Instant::now()));
                        }
                    }
                })
                .after(VolleySet::Poll),
            );
        });
        let room = &reports[0];
        print!("{room}");
        let started = started.lock().unwrap().expect("the hostile bot attacked");
        let departures = departures.lock().unwrap();
        for bot in [0, 1] {
            let (_, _, why, at) = departures
                .iter()
                .find(|(b, ..)| *b == bot)
                .unwrap_or_else(|| panic!("bot {bot} never dropped the hostile peer"));
            assert!(
                matches!(why, LeftReason::Misbehaving(_)),
                "bot {bot}: {why:?}"
            );
            let after = at.saturating_duration_since(started);
            println!(
                "bot {bot} dropped the hostile peer {after:?} after its first attack: {why:?}"
            );
            assert!(after < Duration::from_secs(2), "bot {bot} took {after:?}");
        }
        // Nobody else left, and the two honest players agree.
        assert_eq!(departures.len(), 2, "{departures:?}");
        assert!(room.ok(), "{room}");
        for bot in &room.bots {
            let rate = bot.frame_rate.expect("a frame rate");
            assert!(rate >= 55.0, "{rate:.1} frames/s\n{room}");
        }
    });
}
