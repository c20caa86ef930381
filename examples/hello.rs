//! Peers in one room greet each other; a panel shows each peer's RTT and traffic.
//!
//! Desktop: `cargo run -p volley_examples --bin hello -- --server ws://127.0.0.1:3536 --room hello`
//! (start `volley-server` first). In the browser the server is the page's own
//! origin and the room comes from `?room=` (default `hello`).

use bevy::prelude::*;
use serde::{Deserialize, Serialize};
use volley::bevy::prelude::*;
use volley_games::hud::{Hud, HudPlugin};
use volley_games::launch::{self, Launch};
use volley_games::status::StatusPlugin;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Greeting(String);

/// Greetings received, for the panel.
#[derive(Resource, Default)]
struct Inbox(Vec<String>);

#[derive(Component)]
struct Panel;

fn main() {
    let launch = Launch::from_env("hello", None);
    App::new()
        .add_plugins(DefaultPlugins.set(launch::window("volley hello")))
        .add_plugins((
            launch.plugin().app_version("hello-1"),
            StatusPlugin,
            HudPlugin,
        ))
        .add_net_message::<Greeting>(Channel::Reliable)
        .init_resource::<Inbox>()
        .add_systems(Startup, setup)
        .add_systems(
            Update,
            (greet_newcomers, read_greetings, draw_panel).chain(),
        )
        .run();
}

fn setup(mut commands: Commands) {
    commands.spawn(Camera2d);
    commands.spawn((
        Panel,
        Hud::top_left(18.0).at(12.0, 12.0).text("connecting…"),
    ));
}

fn greet_newcomers(
    mut events: MessageReader<NetPeerEvent>,
    mut out: MessageWriter<NetSend<Greeting>>,
    mut session: Option<ResMut<VolleySession>>,
) {
    let me = session
        .as_mut()
        .and_then(|s| s.session().id())
        .map(short)
        .unwrap_or_default();
    for NetPeerEvent(event) in events.read() {
        if let SessionEvent::Connected(peer) = event {
            out.write(NetSend::to(*peer, Greeting(format!("hello from {me}"))));
        }
    }
}

fn read_greetings(mut greetings: MessageReader<NetReceived<Greeting>>, mut inbox: ResMut<Inbox>) {
    for g in greetings.read() {
        inbox.0.push(format!("{}: {}", short(g.from), g.message.0));
    }
}

fn draw_panel(
    state: Res<State<ConnectionState>>,
    stats: Res<NetStats>,
    inbox: Res<Inbox>,
    mut panel: Query<&mut Hud, With<Panel>>,
) {
    let Ok(mut hud) = panel.single_mut() else {
        return;
    };
    // ASCII only: the default font has no dash or plus-minus glyphs.
    let mut lines = vec![format!("volley hello - {:?}", state.get())];
    let mut peers: Vec<_> = stats.peers.iter().collect();
    peers.sort_by_key(|(id, _)| **id);
    for (id, s) in peers {
        let rtt = s
            .rtt
            .map(|r| {
                format!(
                    "{:.1} ms +/- {:.1}",
                    r.as_secs_f64() * 1e3,
                    s.jitter.as_secs_f64() * 1e3
                )
            })
            .unwrap_or_else(|| "…".into());
        let sent: u64 = s.sent.iter().map(|t| t.bytes).sum();
        let received: u64 = s.received.iter().map(|t| t.bytes).sum();
        lines.push(format!(
            "peer {}  RTT {rtt}  loss {:.0}%  sent {:.1} KB  received {:.1} KB",
            short(*id),
            s.loss() * 100.0,
            sent as f64 / 1e3,
            received as f64 / 1e3
        ));
    }
    lines.extend(inbox.0.iter().rev().take(8).cloned());
    hud.set(lines.join("\n"));
}

fn short(id: PeerId) -> String {
    id.0.to_string()[..8].to_string()
}
