//! Where a sample connects: from the command line on the desktop
//! (`--server ws://HOST:PORT --room NAME --players N`, `--spectate GROUP`
//! to watch a match, and `--tls-root CA.pem` for a `wss://` server with a
//! private CA, `--record FILE` to record the match and `--replay FILE` to
//! play one back), from the page's own URL in the browser
//! (`/play/<game>?room=NAME&players=N`, `&spectate=GROUP` to watch, the
//! server being the page's origin, so one bundle works behind any host
//! name). An empty `GROUP` watches the room's match in play.

/// The window every sample opens: titled, and in the browser drawn into
/// the page's `#volley-canvas` (see `assets/web/game.html`), filling it.
#[cfg(feature = "render")]
pub fn window(title: &str) -> bevy::window::WindowPlugin {
    bevy::window::WindowPlugin {
        primary_window: Some(bevy::window::Window {
            title: title.into(),
            canvas: Some("#volley-canvas".into()),
            fit_canvas_to_parent: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

use bevy_volley::{TlsRoots, VolleyPlugin};

/// Server, room and player count of a sample game.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// `ws://host:port` (or `wss://`).
    pub server: String,
    /// The room name.
    pub room: String,
    /// Players per match, when the game is matched in groups.
    pub players: Option<usize>,
    /// The roots trusted for a `wss://` server (desktop only).
    pub tls_roots: TlsRoots,
    /// Watch rather than play: the match's group id (empty: the match in
    /// play in the room).
    pub spectate: Option<String>,
    /// Record the match into this file (`--record FILE`, desktop only).
    pub record: Option<std::path::PathBuf>,
    /// Play this recorded match back instead (`--replay FILE`, desktop
    /// only).
    pub replay: Option<std::path::PathBuf>,
}

impl Launch {
    /// Reads the command line (native) or the page URL (wasm), with these defaults.
    pub fn from_env(default_room: &str, default_players: Option<usize>) -> Launch {
        #[cfg(not(target_arch = "wasm32"))]
        {
            Launch::from_args(std::env::args().skip(1), default_room, default_players)
        }
        #[cfg(target_arch = "wasm32")]
        {
            Launch::from_page(default_room, default_players)
        }
    }

    /// Parses `--server`, `--room`, `--players` (others are ignored with a warning).
    pub fn from_args(
        args: impl IntoIterator<Item = String>,
        default_room: &str,
        default_players: Option<usize>,
    ) -> Launch {
        let mut launch = Launch {
            server: "ws://127.0.0.1:3536".to_string(),
            room: default_room.to_string(),
            players: default_players,
            tls_roots: TlsRoots::default(),
            spectate: None,
            record: None,
            replay: None,
        };
        let mut args = args.into_iter().peekable();
        while let Some(arg) = args.next() {
            if arg == "--spectate" {
                let group = args.next_if(|next| !next.starts_with("--"));
                launch.spectate = Some(group_id(&group.unwrap_or_default()));
                continue;
            }
            let mut value = || args.next().unwrap_or_default();
            match arg.as_str() {
                "--server" => launch.server = value(),
                "--room" => launch.room = value(),
                "--players" => launch.players = value().parse().ok().or(default_players),
                "--record" => launch.record = Some(value().into()),
                "--replay" => launch.replay = Some(value().into()),
                "--tls-root" => match TlsRoots::from_pem_file(std::path::Path::new(&value())) {
                    Ok(roots) => launch.tls_roots = roots,
                    Err(e) => eprintln!("--tls-root: {e}; trusting the public web PKI"),
                },
                other => eprintln!("ignoring unknown argument {other}"),
            }
        }
        launch.server = launch.server.trim_end_matches('/').to_string();
        launch
    }

    /// The network plugin for this launch: [`Launch::room_url`] with the
    /// trusted roots.
    pub fn plugin(&self) -> VolleyPlugin {
        VolleyPlugin::new(self.room_url()).tls_roots(self.tls_roots.clone())
    }

    /// The signaling URL for [`bevy_volley::VolleyPlugin::new`]: the room,
    /// as a match of `players` when set.
    pub fn room_url(&self) -> String {
        let url = match self.players {
            Some(n) => format!("{}/{}?next={n}", self.server, self.room),
            None => format!("{}/{}", self.server, self.room),
        };
        match (&self.spectate, self.players) {
            (None, _) => url,
            (Some(group), Some(_)) => format!("{url}&spectate={group}"),
            (Some(_), None) => format!("{url}?spectate"),
        }
    }

    #[cfg(target_arch = "wasm32")]
    fn from_page(default_room: &str, default_players: Option<usize>) -> Launch {
        let location = web_sys::window().map(|w| w.location());
        let (protocol, host, search) = location
            .map(|l| {
                (
                    l.protocol().unwrap_or_default(),
                    l.host().unwrap_or_default(),
                    l.search().unwrap_or_default(),
                )
            })
            .unwrap_or_default();
        let scheme = if protocol == "https:" { "wss" } else { "ws" };
        Launch::from_query(
            &format!("{scheme}://{host}"),
            &search,
            default_room,
            default_players,
        )
    }

    /// Reads `room` and `players` from a URL query string (`?room=a&players=2`).
    pub fn from_query(
        server: &str,
        query: &str,
        default_room: &str,
        default_players: Option<usize>,
    ) -> Launch {
        let param = |name: &str| {
            query
                .trim_start_matches('?')
                .split('&')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .filter(|v| !v.is_empty())
        };
        Launch {
            server: server.to_string(),
            room: param("room").unwrap_or(default_room).to_string(),
            players: param("players")
                .and_then(|p| p.parse().ok())
                .or(default_players),
            tls_roots: TlsRoots::default(),
            spectate: (query.trim_start_matches('?').split('&'))
                .find_map(|kv| kv.strip_prefix("spectate"))
                .filter(|rest| rest.is_empty() || rest.starts_with('='))
                .map(|rest| group_id(rest.trim_start_matches('='))),
            record: None,
            replay: None,
        }
    }
}

/// A group id as it may go into the room URL: a uuid's characters only
/// (a link's `spectate` must not add parameters of its own).
fn group_id(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_hexdigit() || *c == '-')
        .take(36)
        .collect()
}

/// Reads a replay file (`--replay FILE`).
pub fn read_replay(path: &std::path::Path) -> Result<bevy_volley::rollback::Replay, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    bevy_volley::rollback::Replay::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// What the samples' overlays read of the network, for an app without one
/// (a replay played back): no peers, no connection.
pub fn offline(app: &mut bevy::app::App) {
    use bevy::state::app::AppExtStates;
    app.init_resource::<bevy_volley::NetStats>()
        .init_state::<bevy_volley::ConnectionState>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_and_queries() {
        let args = ["--server", "ws://h:1/", "--room", "r", "--players", "3"];
        let launch = Launch::from_args(args.map(String::from), "d", Some(2));
        assert_eq!(launch.room_url(), "ws://h:1/r?next=3");
        let launch = Launch::from_args(Vec::new(), "d", None);
        assert_eq!(launch.room_url(), "ws://127.0.0.1:3536/d");
        let launch = Launch::from_query("ws://x", "?players=4&room=abc", "d", Some(2));
        assert_eq!(launch.room_url(), "ws://x/abc?next=4");
        let launch = Launch::from_query("ws://x", "?rooms=no&players=many", "d", Some(2));
        assert_eq!(launch.room_url(), "ws://x/d?next=2");
        let watch = ["--players", "2", "--spectate", "00ff-1", "--room", "r"];
        let launch = Launch::from_args(watch.map(String::from), "d", None);
        assert_eq!(
            launch.room_url(),
            "ws://127.0.0.1:3536/r?next=2&spectate=00ff-1"
        );
        let launch = Launch::from_args(["--spectate"].map(String::from), "d", None);
        assert_eq!(launch.room_url(), "ws://127.0.0.1:3536/d?spectate");
        let page = "?room=abc&spectate=12ab%26resume%3Dx&players=2";
        let launch = Launch::from_query("ws://x", page, "d", None);
        assert_eq!(launch.room_url(), "ws://x/abc?next=2&spectate=12ab26ee3D");
        let launch = Launch::from_query("ws://x", "?room=abc&spectate", "d", Some(2));
        assert_eq!(launch.room_url(), "ws://x/abc?next=2&spectate=");
        let launch = Launch::from_query("ws://x", "?spectated=1", "d", None);
        assert_eq!(launch.spectate, None);
        let missing = ["--tls-root", "/nonexistent/ca.pem"].map(String::from);
        let launch = Launch::from_args(missing, "d", None);
        assert_eq!(launch.tls_roots, TlsRoots::PublicWeb);
    }
}
