//! A forging peer in a replicated room over real WebRTC: two honest peers
//! follow one authority and share a moving world; a third joins and sends
//! them authority claims no election allows, plausible ones nobody
//! confirms, worlds over the entity and byte limits and deltas to slots
//! nobody registered. Both honest peers must drop it within 2 s, keep
//! their authority and tick rate, and end with the same world (inside a
//! private network namespace, see `volley_testkit::netns`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use serde::{Deserialize, Serialize};
use volley::bevy::prelude::*;
use volley::bevy::replication::{
    NetEntity, Replicated, ReplicationAppExt, ReplicationPlugin, is_authority,
};
use volley::bevy::{NetPeerEvent, SessionEvent, VolleySession, VolleySet};
use volley_bots::forger::ForgerPlugin;
use volley_testkit::apps::{pump, status};
use volley_testkit::server::with_server;

#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Pos(i32, i32);

const ENTITIES: i32 = 50;
const TICK_RATE: u32 = 30;
/// Smaller limits than the defaults: the forger's oversized worlds stay
/// cheap to send over a debug-build WebRTC stack.
const MAX_ENTITIES: usize = 1_000;
const MAX_WORLD_BYTES: usize = 64 << 10;

/// Whether the authority keeps moving things (cleared to let peers settle).
#[derive(Resource)]
struct Moving(bool);

fn populate(mut commands: Commands, existing: Query<(), With<NetEntity>>, mut done: Local<bool>) {
    if !*done && existing.is_empty() {
        for i in 0..ENTITIES {
            commands.spawn((Replicated, Pos(i, -i)));
        }
    }
    *done = true;
}

fn step(moving: Res<Moving>, mut bodies: Query<&mut Pos>) {
    if moving.0 {
        for mut p in &mut bodies {
            p.0 = (p.0 + 1) % 10_000;
        }
    }
}

/// (peer that left, why, when), as one honest peer saw it.
type Departures = Arc<Mutex<Vec<(PeerId, LeftReason, Instant)>>>;

fn honest(url: &str, departures: Departures) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        VolleyPlugin::new(url),
        ReplicationPlugin::default()
            .tick_rate(TICK_RATE)
            .max_entities(MAX_ENTITIES)
            .max_world_bytes(MAX_WORLD_BYTES),
    ))
    .replicate::<Pos>()
    .insert_resource(Moving(true))
    .add_systems(Update, (populate, step).chain().run_if(is_authority))
    .add_systems(
        PreUpdate,
        (move |mut events: MessageReader<NetPeerEvent>| {
            for NetPeerEvent(event) in events.read() {
                if let SessionEvent::Left(peer, why) = event {
                    departures
                        .lock()
                        .unwrap()
                        .push((*peer, why.clone(), Instant::now()));
                }
            }
        })
        .after(VolleySet::Poll),
    );
    app
}

fn snapshot(app: &mut App) -> BTreeMap<u64, Pos> {
    let world = app.world_mut();
    let mut q = world.query::<(&NetEntity, &Pos)>();
    q.iter(world).map(|(n, p)| (n.0, *p)).collect()
}

fn my_id(app: &mut App) -> Option<PeerId> {
    app.world_mut()
        .get_resource_mut::<VolleySession>()
        .and_then(|mut v| v.session().id())
}

#[test]
fn a_forging_peer_is_dropped_and_the_replicated_world_stays() {
    if !volley_testkit::netns::isolate("a_forging_peer_is_dropped_and_the_replicated_world_stays") {
        return;
    }
    with_server(|server| {
        let url = format!("ws://{}/forged", server.addr());
        let departures: [Departures; 2] = Default::default();
        let mut apps: Vec<App> = departures.iter().map(|d| honest(&url, d.clone())).collect();
        // The honest pair settles on an authority that someone follows.
        pump(&mut apps, Duration::from_secs(30), |apps| {
            let a = status(&apps[0]).authority;
            !(a.is_some()
                && status(&apps[1]).authority == a
                && status(&apps[0]).term >= 1
                && status(&apps[1]).term >= 1
                && snapshot(&mut apps[0]).len() == ENTITIES as usize
                && snapshot(&mut apps[1]).len() == ENTITIES as usize)
        });
        let authority = status(&apps[0]).authority;
        let lead = usize::from(!status(&apps[0]).is_authority);

        // The forger joins and attacks once connected to both, in its own
        // thread: its own cost (encoding megabytes of forged worlds) must
        // not slow the honest peers' loop down.
        let forger = ForgerPlugin {
            max_entities: MAX_ENTITIES,
            max_world_bytes: MAX_WORLD_BYTES,
            ..ForgerPlugin::new(2)
        };
        let started = forger.started.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let forger_id = Arc::new(Mutex::new(None));
        let thread = {
            let (url, stop, forger_id) = (url.clone(), stop.clone(), forger_id.clone());
            std::thread::spawn(move || {
                let mut hostile = App::new();
                hostile.add_plugins((MinimalPlugins, VolleyPlugin::new(&url), forger));
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    hostile.update();
                    *forger_id.lock().unwrap() = my_id(&mut hostile);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        pump(&mut apps, Duration::from_secs(30), |_| {
            started.lock().unwrap().is_none()
        });
        let started = started.lock().unwrap().expect("the forger attacked");
        let hostile_id = forger_id.lock().unwrap().expect("the forger's id");
        let tick_before = status(&apps[lead]).tick;
        pump(&mut apps, Duration::from_secs(10), |_| {
            !departures.iter().all(|d| {
                d.lock()
                    .unwrap()
                    .iter()
                    .any(|(peer, ..)| *peer == hostile_id)
            })
        });
        for (i, d) in departures.iter().enumerate() {
            let d = d.lock().unwrap();
            assert_eq!(d.len(), 1, "peer {i}: only the forger left: {d:?}");
            let (peer, why, at) = &d[0];
            assert_eq!(*peer, hostile_id);
            assert!(
                matches!(why, LeftReason::Misbehaving(_)),
                "peer {i}: {why:?}"
            );
            let after = at.saturating_duration_since(started);
            println!("peer {i} dropped the forger {after:?} after its first attack: {why:?}");
            assert!(after < Duration::from_secs(2), "peer {i} took {after:?}");
            let s = status(&apps[i]);
            println!("peer {i}: {s:?}");
            assert_eq!(s.authority, authority, "peer {i} kept its authority");
            assert!(
                s.forged_claims + s.invalid_messages > 0,
                "peer {i} saw nothing"
            );
        }
        // The authority kept ticking through the attack (measured over at
        // least a second from its start).
        pump(&mut apps, Duration::from_secs(5), |_| {
            started.elapsed() < Duration::from_secs(1)
        });
        let window = started.elapsed();
        let ticks = status(&apps[lead]).tick - tick_before;
        let expected = window.as_secs_f64() * f64::from(TICK_RATE);
        println!(
            "{ticks} ticks in {window:?} from the attack's start ({expected:.0} at full rate)"
        );
        assert!(
            f64::from(ticks) >= 0.8 * expected,
            "{ticks} ticks in {window:?}"
        );

        // The forger gone, the follower ends with the authority's world.
        stop.store(true, Ordering::Relaxed);
        thread.join().expect("the forger's thread");
        apps[lead].insert_resource(Moving(false));
        let started = Instant::now();
        pump(&mut apps, Duration::from_secs(10), |apps| {
            let reference = snapshot(&mut apps[lead]);
            started.elapsed() < Duration::from_millis(500)
                || snapshot(&mut apps[1 - lead]) != reference
        });
        assert_eq!(snapshot(&mut apps[0]), snapshot(&mut apps[1]));
        assert_eq!(snapshot(&mut apps[0]).len(), ENTITIES as usize);
    });
}
