//! A hostile player for tests: it plays like any bot, and from a chosen
//! frame on also sends every connected peer what a cheater's client would —
//! random bytes on every channel, structurally valid ggrs messages with
//! extreme fields, and a flood. Honest volley peers must drop it and play on.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bevy::app::{App, Plugin, PostUpdate};
use bevy::prelude::*;
use bevy_volley::rollback::RollbackStatus;
use bevy_volley::{Channel, PeerId, VolleySession, VolleySet};
use volley_rollback::wire::{self, WireBody, WireHeader, WireInput, WireMessage, WireStatus};

/// What the hostile player sends each frame once it attacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attacks {
    /// Random bytes on every channel.
    pub garbage: bool,
    /// ggrs messages with extreme fields on the rollback channel.
    pub ggrs: bool,
    /// This many extra pings a frame on the unreliable channel.
    pub flood: usize,
}

impl Default for Attacks {
    fn default() -> Self {
        Attacks {
            garbage: true,
            ggrs: true,
            flood: 200,
        }
    }
}

/// Makes a bot hostile from `from_frame` on (its rollback frame).
#[derive(Clone)]
pub struct HostilePlugin {
    /// The first frame it attacks at.
    pub from_frame: i32,
    /// What it sends.
    pub attacks: Attacks,
    /// Seeds its random bytes.
    pub seed: u64,
    /// When it first attacked (shared, so a test can read it after the run).
    pub started: Arc<Mutex<Option<Instant>>>,
}

impl HostilePlugin {
    /// Every attack from `from_frame` on.
    pub fn new(from_frame: i32, seed: u64) -> Self {
        HostilePlugin {
            from_frame,
            attacks: Attacks::default(),
            seed,
            started: Arc::default(),
        }
    }
}

#[derive(Resource)]
struct Hostile {
    plugin: HostilePlugin,
    rng: u64,
    sent: u64,
}

impl Plugin for HostilePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Hostile {
            plugin: self.clone(),
            rng: self.seed | 1,
            sent: 0,
        })
        .add_systems(PostUpdate, attack.after(VolleySet::Send));
    }
}

impl Hostile {
    fn next(&mut self) -> u64 {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = (self.next() as usize % max).max(1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// ggrs messages an honest peer never sends.
fn extreme_ggrs(players: usize, round: u64) -> Vec<u8> {
    let status = WireStatus {
        disconnected: false,
        last_frame: 0,
    };
    let input = |statuses: usize, start_frame: i32, bytes: Vec<u8>| {
        WireBody::Input(WireInput {
            peer_connect_status: vec![status; statuses],
            disconnect_requested: false,
            start_frame,
            ack_frame: i32::MAX,
            bytes,
        })
    };
    let mut exabytes = vec![0xff; 8];
    exabytes.push(0x7f);
    let body = match round % 5 {
        0 => input(players, i32::MAX - 1, vec![6, 1, 0, 7]),
        1 => input(players, 0, exabytes),
        2 => input(4096, 0, Vec::new()),
        3 => WireBody::QualityReply { pong: 0 },
        _ => WireBody::ChecksumReport {
            checksum: u128::MAX,
            frame: i32::MIN,
        },
    };
    let message = WireMessage {
        header: WireHeader { magic: 1 },
        body,
    };
    bincode::serde::encode_to_vec(&message, wire::config()).unwrap_or_default()
}

fn attack(
    mut hostile: ResMut<Hostile>,
    status: Option<Res<RollbackStatus>>,
    volley: Option<ResMut<VolleySession>>,
) {
    let (Some(status), Some(mut volley)) = (status, volley) else {
        return;
    };
    if status.local_handle.is_none() || status.frame < hostile.plugin.from_frame {
        return;
    }
    {
        let mut started = hostile
            .plugin
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        started.get_or_insert_with(Instant::now);
    }
    let session = volley.session();
    let peers: Vec<PeerId> = session.connected_peers().collect();
    let attacks = hostile.plugin.attacks;
    for peer in peers {
        let mut packets: Vec<(Channel, Vec<u8>)> = Vec::new();
        if attacks.garbage {
            for channel in Channel::ALL {
                packets.push((channel, hostile.bytes(64)));
            }
        }
        if attacks.ggrs {
            let round = hostile.next();
            packets.push((Channel::Rollback, extreme_ggrs(status.players.len(), round)));
        }
        // A ping is volley's kind 1 with 8 bytes of clock: valid, cheap to send.
        let ping = [1u8, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for _ in 0..attacks.flood {
            packets.push((Channel::Unreliable, ping.to_vec()));
        }
        for (channel, packet) in packets {
            if session.send_raw(peer, channel, packet).is_ok() {
                hostile.sent += 1;
            }
        }
    }
}
