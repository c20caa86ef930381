//! What a run of bots reports: per bot and per room.

use std::fmt;
use std::time::Duration;

use volley_net::Link;

/// One bot's outcome.
#[derive(Debug, Clone, Default)]
pub struct BotReport {
    /// Its player handle.
    pub handle: Option<usize>,
    /// App start → rollback session started (all peers connected).
    pub connect_time: Option<Duration>,
    /// Frames confirmed.
    pub confirmed_frame: i32,
    /// Rollbacks and the frames they re-simulated.
    pub rollbacks: u64,
    /// Frames re-simulated.
    pub rollback_frames: u64,
    /// Desyncs detected.
    pub desyncs: u64,
    /// Mean RTT to its peers at the end.
    pub rtt: Option<Duration>,
    /// Its checksum of the target frame.
    pub checksum: Option<u128>,
    /// Scores by handle at the end.
    pub scores: Vec<u32>,
    /// The first desync a peer explained: frame and differing checksum parts.
    pub diagnosis: Option<(i32, Vec<String>)>,
    /// Frames confirmed per second from the session's start to the target
    /// frame (60 at best: below it, the bot could not keep up).
    pub frame_rate: Option<f64>,
    /// The path to a peer (the first one whose path is known).
    pub link: Option<Link>,
    /// A peer it could not connect to: when (since start) and why.
    pub unreachable: Option<(Duration, String)>,
    /// Times it lost the signaling server.
    pub signaling_lost: u32,
    /// Times it came back to the signaling server.
    pub signaling_restored: u32,
    /// Restarts of the match it took part in (players seated again).
    pub rejoins: u64,
    /// It watched the match (a spectator) instead of playing.
    pub spectator: bool,
    /// Its checksums of every frame from [`crate::BotRun::check_from`].
    pub checksums: std::collections::BTreeMap<i32, u128>,
}

/// One room's outcome.
#[derive(Debug, Clone)]
pub struct RoomReport {
    /// Room index.
    pub room: usize,
    /// Bots, by join order.
    pub bots: Vec<BotReport>,
    /// The frame whose checksums are compared.
    pub frame: i32,
    /// Why it failed, if it did.
    pub failure: Option<String>,
}

impl RoomReport {
    /// Every bot confirmed the frame with the same checksum, and nobody desynced.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }

    pub(crate) fn judge(&mut self, timed_out: bool, check_from: Option<i32>) {
        let checksums: Vec<Option<u128>> = self.bots.iter().map(|b| b.checksum).collect();
        // Empty without `check_from`.
        let frames = check_from.unwrap_or(self.frame + 1)..=self.frame;
        let incomplete = self
            .bots
            .iter()
            .position(|b| frames.clone().any(|f| !b.checksums.contains_key(&f)));
        let differing = frames.clone().find(|f| {
            let mut seen = self.bots.iter().filter_map(|b| b.checksums.get(f));
            let first = seen.next();
            seen.any(|c| Some(c) != first)
        });
        let desyncs: u64 = self.bots.iter().map(|b| b.desyncs).sum();
        self.failure = if checksums.iter().any(Option::is_none) {
            Some(if timed_out {
                format!(
                    "timed out: confirmed frames {:?}",
                    self.bots
                        .iter()
                        .map(|b| b.confirmed_frame)
                        .collect::<Vec<_>>()
                )
            } else {
                "a bot has no checksum".to_string()
            })
        } else if checksums.windows(2).any(|w| w[0] != w[1]) {
            Some(format!("checksums differ at frame {}", self.frame))
        } else if let Some(frame) = differing {
            Some(format!("checksums differ at frame {frame}"))
        } else if let Some(bot) = incomplete {
            Some(format!(
                "bot {bot} has no checksum for some frames of {frames:?}"
            ))
        } else if desyncs > 0 {
            Some(format!("{desyncs} desyncs detected"))
        } else {
            None
        };
    }
}

impl fmt::Display for RoomReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "room {}: {}",
            self.room,
            self.failure.as_deref().unwrap_or("ok")
        )?;
        for bot in &self.bots {
            writeln!(
                f,
                "  {:>11}  connect {:>7}  frames {:>5}  rollbacks {:>4} ({:>5} frames)  desyncs {}  rtt {:>8}  checksum {}  scores {:?}",
                match (bot.handle, bot.spectator) {
                    (Some(h), _) => format!("player {h}"),
                    (None, true) => "spectator".to_string(),
                    (None, false) => "player -".to_string(),
                },
                bot.connect_time
                    .map_or("-".to_string(), |d| format!("{} ms", d.as_millis())),
                bot.confirmed_frame,
                bot.rollbacks,
                bot.rollback_frames,
                bot.desyncs,
                bot.rtt.map_or("-".to_string(), |d| format!(
                    "{:.2} ms",
                    d.as_secs_f64() * 1e3
                )),
                bot.checksum
                    .map_or("-".to_string(), |c| format!("{:08x}", c as u32)),
                bot.scores
            )?;
            if bot.rejoins > 0 {
                writeln!(
                    f,
                    "    match restarted {} times to seat players again",
                    bot.rejoins
                )?;
            }
            if bot.signaling_lost > 0 {
                writeln!(
                    f,
                    "    lost the signaling server {} times, back {} times",
                    bot.signaling_lost, bot.signaling_restored
                )?;
            }
            if let Some((frame, parts)) = &bot.diagnosis {
                writeln!(
                    f,
                    "    desync at frame {frame}: differing {}",
                    parts.join(", ")
                )?;
            }
        }
        Ok(())
    }
}
