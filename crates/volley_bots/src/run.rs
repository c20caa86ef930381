//! What bots play: the game, rooms × players, frames, and how they join.

use std::time::Duration;

use bevy_volley::{ConditionerConfig, TlsRoots};

/// The games bots can play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Game {
    /// [`volley_games::box_game`].
    #[value(name = "box_game")]
    BoxGame,
}

/// What to play: rooms × players of `game`, each bot until `frames` are confirmed.
#[derive(Debug, Clone)]
pub struct BotRun {
    /// Signaling server base URL (`ws://host:port`).
    pub server: String,
    /// A cluster's nodes (`ws://host:port` each): when not empty, bot `i`
    /// of a room joins through node `i % len` instead of `server`, so every
    /// room spans the nodes.
    pub servers: Vec<String>,
    /// The game.
    pub game: Game,
    /// Rooms played at once.
    pub rooms: usize,
    /// Bots per room.
    pub players: usize,
    /// Frames every bot must confirm.
    pub frames: i32,
    /// Seed of the input policies (bot `i` of room `r` uses a seed derived from it).
    pub seed: u64,
    /// Simulated bad network on every bot's sends.
    pub conditioner: Option<ConditionerConfig>,
    /// Give up after this long.
    pub timeout: Duration,
    /// The room name, or the prefix of the room names when there are
    /// several (a random one by default, so runs never meet).
    pub room_prefix: String,
    /// Frames of input delay.
    pub input_delay: usize,
    /// Bots per room (default: `players`; fewer leaves seats for others,
    /// e.g. a browser player).
    pub bots_per_room: usize,
    /// How long bots keep playing after all are done, so their last inputs
    /// reach peers that are not bots.
    pub linger: Duration,
    /// Bots (by index within their room) neither waited for nor judged:
    /// hostile ones, which honest peers drop.
    pub unjudged: Vec<usize>,
    /// The roots trusted for a `wss://` server.
    pub tls_roots: TlsRoots,
    /// The local addresses bot `i` (within its room) binds its connections
    /// to, when `bind[i]` is there and not empty (tests cut one bot's
    /// network by taking its address's link down).
    pub bind: Vec<Vec<std::net::SocketAddr>>,
    /// Where bot `i` keeps its seat's resume token, when `resume_files[i]`
    /// is there (a bot process restarted with it comes back to its seat).
    pub resume_files: Vec<std::path::PathBuf>,
    /// Spectator bots per room ([`BotRun::watch_url`]), judged like the
    /// players: each must confirm the frames they do, with their checksums.
    pub spectators: usize,
    /// The frame the slowest judged player has confirmed when the
    /// spectators join.
    pub spectate_at: i32,
    /// Checksums compared from this frame to `frames`, every frame (and
    /// every bot must have them all); `None` compares `frames` only.
    pub check_from: Option<i32>,
    /// The first bot of the first room records the match into this file.
    pub record: Option<std::path::PathBuf>,
    /// Every player bot dumps desynced worlds into this directory (see
    /// `RollbackPlugin::dump_desyncs`).
    pub desync_dir: Option<std::path::PathBuf>,
}

impl BotRun {
    /// `rooms` rooms of `players` bots playing box_game for `frames` frames.
    pub fn new(server: &str, rooms: usize, players: usize, frames: i32) -> Self {
        BotRun {
            server: server.trim_end_matches('/').to_string(),
            servers: Vec::new(),
            game: Game::BoxGame,
            rooms,
            players,
            frames,
            seed: 1,
            conditioner: None,
            timeout: Duration::from_secs(60),
            room_prefix: format!("bots-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            input_delay: 2,
            bots_per_room: players,
            linger: Duration::ZERO,
            unjudged: Vec::new(),
            tls_roots: TlsRoots::default(),
            bind: Vec::new(),
            resume_files: Vec::new(),
            spectators: 0,
            spectate_at: 0,
            check_from: None,
            record: None,
            desync_dir: None,
        }
    }

    /// The URL bots of room `r` join: a match of exactly `players`, in
    /// the room named `room_prefix` when there is one room, else
    /// `room_prefix-r`.
    pub fn room_url(&self, room: usize) -> String {
        let name = if self.rooms == 1 {
            self.room_prefix.clone()
        } else {
            format!("{}-{room}", self.room_prefix)
        };
        format!("{}/{name}?next={}", self.server, self.players)
    }

    /// The URL spectators of room `r` join: [`BotRun::room_url`], watching
    /// the match in play there (`spectate` with no group: the server picks
    /// the room's running match).
    pub fn watch_url(&self, room: usize) -> String {
        format!("{}&spectate=", self.room_url(room))
    }

    /// The nodes bot `bot` comes back through when its own is lost: the
    /// other [`BotRun::servers`], starting with the next.
    pub fn bot_fallbacks(&self, bot: usize) -> Vec<String> {
        let n = self.servers.len();
        (1..n)
            .map(|i| self.servers[(bot + i) % n].clone())
            .collect()
    }

    /// The URL bot `bot` of room `room` joins: [`BotRun::room_url`], through
    /// its node of [`BotRun::servers`] when there are several.
    pub fn bot_url(&self, room: usize, bot: usize) -> String {
        let url = self.room_url(room);
        match self.servers.get(bot % self.servers.len().max(1)) {
            Some(node) => url.replacen(&self.server, node.trim_end_matches('/'), 1),
            None => url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots_of_a_room_join_through_the_nodes_in_turn() {
        let mut run = BotRun::new("ws://a:1/", 2, 4, 60);
        run.room_prefix = "r".into();
        assert_eq!(run.bot_url(1, 3), "ws://a:1/r-1?next=4");
        run.servers = vec!["ws://a:1".into(), "ws://b:2/".into(), "ws://c:3".into()];
        let urls: Vec<String> = (0..4).map(|bot| run.bot_url(0, bot)).collect();
        assert_eq!(
            urls,
            [
                "ws://a:1/r-0?next=4",
                "ws://b:2/r-0?next=4",
                "ws://c:3/r-0?next=4",
                "ws://a:1/r-0?next=4"
            ]
        );
        assert_eq!(run.bot_fallbacks(2), ["ws://a:1", "ws://b:2/"]);
    }
}
