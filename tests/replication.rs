//! State sync end to end: headless Bevy apps replicate 200 moving entities
//! over real WebRTC through an in-process server, with 10 % loss on the
//! unreliable channel; a peer joins late; the authority leaves and another
//! takes over. Inside a private network namespace (see `volley_testkit::netns`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use serde::{Deserialize, Serialize};
use volley::bevy::prelude::*;
use volley::bevy::replication::{
    HandOver, Interpolate, NetEntity, Owner, PlayerInput, PredictionAppExt, Replicated,
    ReplicationAppExt, ReplicationPlugin, is_authority,
};
use volley_testkit::apps::{pump, status};
use volley_testkit::server::with_server;

#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Pos(i32, i32);

#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Vel(i32, i32);

/// Positions are shown interpolated on the other peers.
impl Interpolate for Pos {
    fn interpolate(&self, to: &Self, t: f32) -> Self {
        let lerp = |a: i32, b: i32| a + ((b - a) as f32 * t).round() as i32;
        Pos(lerp(self.0, to.0), lerp(self.1, to.1))
    }
}

const ENTITIES: i32 = 200;

/// Whether the authority keeps moving things (cleared to let peers settle).
#[derive(Resource)]
struct Moving(bool);

/// The authority of an empty world populates it, once.
fn populate(mut commands: Commands, existing: Query<(), With<NetEntity>>, mut done: Local<bool>) {
    if *done || !existing.is_empty() {
        *done = true;
        return;
    }
    *done = true;
    for i in 0..ENTITIES {
        commands.spawn((Replicated, Pos(i * 10, -i * 10), Vel(i % 7 - 3, i % 5 - 2)));
    }
}

fn step(moving: Res<Moving>, mut bodies: Query<(&mut Pos, &mut Vel)>) {
    if !moving.0 {
        return;
    }
    for (mut p, mut v) in &mut bodies {
        p.0 += v.0;
        p.1 += v.1;
        if p.0.abs() > 5_000 {
            v.0 = -v.0;
        }
        if p.1.abs() > 5_000 {
            v.1 = -v.1;
        }
    }
}

fn app(url: &str, seed: u64) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        VolleyPlugin::new(url).conditioner(ConditionerConfig {
            latency: Duration::from_millis(5),
            jitter: Duration::ZERO,
            loss: 0.10,
            seed,
        }),
        // All 200 moving take ~250 KB/s at 60 ticks/s: a budget of 150 KB/s
        // makes the authority choose, and every entity still arrives.
        ReplicationPlugin::default()
            .tick_rate(60)
            .budget(Some(150_000)),
    ))
    .replicate_interpolated::<Pos>()
    .replicate::<Vel>()
    .insert_resource(Moving(true))
    .add_systems(Update, (populate, step).chain().run_if(is_authority));
    app
}

type Snapshot = BTreeMap<u64, (Option<Pos>, Option<Vel>)>;

fn snapshot(app: &mut App) -> Snapshot {
    let world = app.world_mut();
    let mut q = world.query::<(&NetEntity, Option<&Pos>, Option<&Vel>)>();
    q.iter(world)
        .map(|(n, p, v)| (n.0, (p.copied(), v.copied())))
        .collect()
}

/// Waits until every peer follows the same authority and has its world.
/// (Peers alone at first may each elect themselves; claims settle by term
/// and id, so agreement among all is the final state.)
fn settle_election(apps: &mut [App], has_world: impl Fn(&mut App) -> bool) {
    pump(apps, Duration::from_secs(30), |apps| {
        let first = status(&apps[0]).authority;
        !(first.is_some()
            && apps.iter().all(|a| status(a).authority == first)
            && apps.iter_mut().all(&has_world))
    });
}

/// The moving-entities world is there.
fn populated(app: &mut App) -> bool {
    snapshot(app).len() == ENTITIES as usize
}

fn authority_index(apps: &[App]) -> Option<usize> {
    apps.iter().position(|a| status(a).is_authority)
}

/// Stops the authority moving things, waits until every peer has its last
/// tick, and compares every peer's world with the authority's.
fn settle_and_compare(apps: &mut [App], label: &str) {
    let lead = authority_index(apps).expect("an authority");
    apps[lead].insert_resource(Moving(false));
    let started = Instant::now();
    pump(apps, Duration::from_secs(20), |apps| {
        if started.elapsed() > Duration::from_secs(19) {
            // About to fail: say what each peer has.
            let reference = snapshot(&mut apps[lead]);
            for (i, a) in apps.iter_mut().enumerate() {
                let mine = snapshot(a);
                let differing = mine
                    .iter()
                    .filter(|(id, v)| reference.get(id) != Some(v))
                    .count();
                eprintln!(
                    "{label}: peer {i} {:?}, {} entities, {differing} differ from peer {lead}",
                    status(a),
                    mine.len()
                );
            }
        }
        let lead_tick = status(&apps[lead]).tick;
        let reference = snapshot(&mut apps[lead]);
        !apps.iter_mut().enumerate().all(|(i, a)| {
            i == lead || (status(a).tick + 2 >= lead_tick && snapshot(a) == reference)
        })
    });
    let reference = snapshot(&mut apps[lead]);
    assert_eq!(
        reference.len(),
        ENTITIES as usize,
        "{label}: the authority's world"
    );
    for (i, a) in apps.iter_mut().enumerate() {
        assert_eq!(
            snapshot(a),
            reference,
            "{label}: peer {i} differs from the authority"
        );
    }
    apps[lead].insert_resource(Moving(true));
}

#[test]
fn peers_converge_on_the_authoritys_world_through_loss_late_join_and_handover() {
    if !volley_testkit::netns::isolate(
        "peers_converge_on_the_authoritys_world_through_loss_late_join_and_handover",
    ) {
        return;
    }
    with_server(|server| {
        let url = format!("ws://{}/sync", server.addr());
        let mut apps: Vec<App> = (0..3).map(|i| app(&url, i + 1)).collect();
        // Three peers: an authority emerges and populates the world.
        settle_election(&mut apps, populated);
        let lead = authority_index(&apps).expect("an authority");
        let authority = status(&apps[lead]).authority;

        // Up to tick 300, then a fourth peer joins and converges.
        pump(&mut apps, Duration::from_secs(30), |apps| {
            status(&apps[lead]).tick < 300
        });
        apps.push(app(&url, 4));
        pump(&mut apps, Duration::from_secs(30), |apps| {
            snapshot(&mut apps[3]).len() != ENTITIES as usize
        });
        settle_and_compare(&mut apps, "after the late join");

        // At tick 400 the authority leaves; another takes over.
        pump(&mut apps, Duration::from_secs(30), |apps| {
            status(&apps[lead]).tick < 400
        });
        let last_tick = status(&apps[lead]).tick;
        drop(apps.remove(lead));
        pump(&mut apps, Duration::from_secs(30), |apps| {
            let new = authority_index(apps);
            !(new.is_some()
                && apps
                    .iter()
                    .all(|a| status(a).authority == status(&apps[new.unwrap()]).authority))
        });
        let new_lead = authority_index(&apps).expect("a new authority");
        assert_ne!(status(&apps[new_lead]).authority, authority);
        // It goes on moving the same world, to tick 600 and beyond.
        pump(&mut apps, Duration::from_secs(30), |apps| {
            status(&apps[new_lead]).tick < 600.max(last_tick + 100)
        });
        settle_and_compare(&mut apps, "after the handover");
        for a in &apps {
            assert_eq!(status(a).invalid_messages, 0);
        }
    });
}

/// A peer-controlled entity, and what moves it.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Avatar(i32, i32);

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Nudge(i32, i32);

fn nudge(avatar: &mut Avatar, by: &Nudge) {
    avatar.0 += by.0;
    avatar.1 += by.1;
}

/// The authority gives every connected peer (and itself) an avatar.
fn give_avatars(
    mut commands: Commands,
    mut volley: Option<ResMut<VolleySession>>,
    owners: Query<&Owner>,
) {
    let Some(volley) = volley.as_mut() else {
        return;
    };
    let session = volley.session();
    let peers: Vec<PeerId> = session
        .id()
        .into_iter()
        .chain(session.connected_peers())
        .collect();
    for peer in peers {
        if !owners.iter().any(|o| o.0 == peer) {
            commands.spawn((Replicated, Owner(peer), Avatar(0, 0)));
        }
    }
}

fn predicting_app(url: &str, seed: u64) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        VolleyPlugin::new(url).conditioner(ConditionerConfig {
            latency: Duration::from_millis(60),
            jitter: Duration::ZERO,
            loss: 0.10,
            seed,
        }),
        ReplicationPlugin::default().tick_rate(60),
    ))
    .predict::<Avatar, Nudge>(nudge)
    .add_systems(Update, give_avatars.run_if(is_authority));
    app
}

fn my_avatar(app: &mut App) -> Option<Avatar> {
    let me = app
        .world_mut()
        .resource_mut::<VolleySession>()
        .session()
        .id()?;
    let world = app.world_mut();
    let mut q = world.query::<(&Owner, &Avatar)>();
    q.iter(world).find(|(o, _)| o.0 == me).map(|(_, a)| *a)
}

fn avatars(app: &mut App) -> BTreeMap<String, Avatar> {
    let world = app.world_mut();
    let mut q = world.query::<(&Owner, &Avatar)>();
    q.iter(world).map(|(o, a)| (o.0.to_string(), *a)).collect()
}

#[test]
fn a_peer_sees_its_own_inputs_at_once_and_ends_where_the_authority_says() {
    if !volley_testkit::netns::isolate(
        "a_peer_sees_its_own_inputs_at_once_and_ends_where_the_authority_says",
    ) {
        return;
    }
    with_server(|server| {
        let url = format!("ws://{}/predict", server.addr());
        let mut apps: Vec<App> = (0..2).map(|i| predicting_app(&url, i + 10)).collect();
        settle_election(&mut apps, |a| my_avatar(a).is_some());
        let client = apps
            .iter()
            .position(|a| !status(a).is_authority)
            .expect("a client");
        // 100 nudges, one per frame: each shows at once, 120 ms before the
        // authority could have answered.
        for i in 1..=100 {
            apps[client]
                .world_mut()
                .write_message(PlayerInput(Nudge(1, 2)));
            for app in apps.iter_mut() {
                app.update();
            }
            assert_eq!(
                my_avatar(&mut apps[client]),
                Some(Avatar(i, 2 * i)),
                "input {i} is predicted at once"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        // The authority applies them all; the client ends exactly there.
        pump(&mut apps, Duration::from_secs(20), |apps| {
            let a = avatars(&mut apps[0]);
            !(a == avatars(&mut apps[1]) && a.values().any(|v| *v == Avatar(100, 200)))
        });
        assert_eq!(my_avatar(&mut apps[client]), Some(Avatar(100, 200)));
    });
}

#[test]
fn the_authority_hands_over_on_request() {
    if !volley_testkit::netns::isolate("the_authority_hands_over_on_request") {
        return;
    }
    with_server(|server| {
        let url = format!("ws://{}/handover", server.addr());
        let mut apps: Vec<App> = (0..3).map(|i| app(&url, i + 20)).collect();
        settle_election(&mut apps, populated);
        let old = authority_index(&apps).expect("an authority");
        let heir = (old + 1) % apps.len();
        let heir_id = apps[heir]
            .world_mut()
            .resource_mut::<VolleySession>()
            .session()
            .id()
            .expect("an id");
        let tick = status(&apps[old]).tick;
        apps[old].world_mut().write_message(HandOver(heir_id));
        pump(&mut apps, Duration::from_secs(20), |apps| {
            !apps.iter().all(|a| status(a).authority == Some(heir_id))
        });
        assert!(status(&apps[heir]).is_authority);
        assert!(!status(&apps[old]).is_authority);
        // The heir goes on from where the world was.
        pump(&mut apps, Duration::from_secs(20), |apps| {
            status(&apps[heir]).tick < tick + 60
        });
        settle_and_compare(&mut apps, "after the handover on request");
    });
}
