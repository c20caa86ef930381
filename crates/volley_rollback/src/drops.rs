//! Dropping a player at the same frame on every peer.
//!
//! ggrs cuts a disconnected player's inputs at the last frame *this* peer
//! received from it. Two peers that got a leaving player's packets up to
//! different frames would play different inputs for it from there on and
//! desync (ggrs 0.13 gossips disconnect frames, but never moves its own
//! cut, and volley's guard takes no peer's word on drops anyway). So before
//! ggrs drops a player, the players still in agree on the cut:
//!
//! 1. each peer that drops the player (it left, misbehaved or fell silent)
//!    sends the others a [`DropNotice`]: the last frame it has of the
//!    player's inputs, and its latest inputs;
//! 2. once it has a notice from every player still in (or after
//!    [`AGREE_TIMEOUT_MS`]), the cut is the latest frame any of them has;
//! 3. a peer with less gets the missing inputs relayed into ggrs as if the
//!    player had sent them ([`Action::Relay`]), then every peer drops the
//!    player in ggrs ([`Action::Disconnect`]) at the same cut.
//!
//! Until then ggrs waits for the player's inputs, at most its prediction
//! window. [`Drops`] is the pure state machine (time passed in); the
//! driver moves notices and calls ggrs.
//!
//! A remaining player can lie in its notice about the dropped player's last
//! inputs, within the frame window: that is no more than it can do with its
//! own inputs (send different ones to different peers).

use serde::{Deserialize, Serialize};

use crate::guard::{GuardConfig, MAX_INPUT_BYTES, MAX_INPUTS_PER_PACKET};
use crate::mirror::NULL_FRAME;

/// How long a peer waits for the others' notices, and for relayed inputs
/// to reach ggrs, before it drops the player with what it has.
pub const AGREE_TIMEOUT_MS: u64 = 2_000;

/// Inputs one notice carries at most (one packet's worth).
pub const MAX_RELAY_INPUTS: usize = MAX_INPUTS_PER_PACKET;

/// Largest encoded [`DropNotice`]: what a peer may send.
pub const MAX_NOTICE_BYTES: usize = 64 + MAX_RELAY_INPUTS * (MAX_INPUT_BYTES + 4);

/// "I dropped `player`; I have its inputs up to `last`; here are my latest."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropNotice {
    /// The dropped player's handle.
    pub player: u32,
    /// The last frame of its inputs the sender has ([`NULL_FRAME`]: none).
    pub last: i32,
    /// Its inputs for the frames up to `last`, oldest first.
    pub inputs: Vec<Vec<u8>>,
}

/// Why a notice was refused (it counts against its sender).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    /// No such player, or the sender itself, or us.
    #[error("notice about player {0}, who cannot be dropped by its sender")]
    Player(u32),
    /// The sender is no player, or one we dropped.
    #[error("notice from player {0}, who is not in the match")]
    Sender(usize),
    /// More inputs than a notice carries, or a longer one than an input is.
    #[error("notice inputs over their bounds")]
    Inputs,
    /// A last frame no honest peer could have now (or inputs before frame 0).
    #[error("notice ends at frame {last}, outside {low}..={high}")]
    Frame {
        /// The notice's last frame.
        last: i64,
        /// Lowest acceptable.
        low: i64,
        /// Highest acceptable.
        high: i64,
    },
}

/// What the driver does for [`Drops::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Hand ggrs these inputs of `player`, from just after its last one
    /// (`Pipe::relay`).
    Relay {
        /// The dropped player.
        player: usize,
        /// The inputs, oldest first.
        inputs: Vec<Vec<u8>>,
    },
    /// Drop `player` in ggrs now (`P2PSession::disconnect_player`).
    Disconnect {
        /// The dropped player.
        player: usize,
        /// Where its inputs end, as agreed.
        last: i32,
    },
}

/// One player's drop, as this peer sees it.
#[derive(Debug, Clone, Default)]
struct Entry {
    /// We dropped it, at this time (our last frame of its inputs is what
    /// ggrs has, asked at each poll).
    dropped_at: Option<u64>,
    /// Notices about it, by sender handle.
    notices: Vec<Option<DropNotice>>,
    /// The cut, once agreed, and when.
    agreed: Option<(i32, u64)>,
    done: bool,
}

/// The agreement on every dropped player of one match.
#[derive(Debug, Clone)]
pub struct Drops {
    config: GuardConfig,
    me: usize,
    entries: Vec<Entry>,
}

impl Drops {
    /// The drops of a match with these settings, seen by player `me`.
    pub fn new(config: GuardConfig, me: usize) -> Self {
        let entry = Entry {
            notices: vec![None; config.players],
            ..Entry::default()
        };
        Drops {
            config,
            me,
            entries: vec![entry; config.players],
        }
    }

    /// Marks `player` dropped from the start: absent when a restarted
    /// match began, it has no inputs to agree on (every player cuts it
    /// before its first frame, see [`crate::seats`]).
    pub fn absent(&mut self, player: usize) {
        if player != self.me
            && let Some(entry) = self.entries.get_mut(player)
        {
            entry.dropped_at = Some(0);
            entry.done = true;
        }
    }

    /// Whether we dropped `player`.
    pub fn dropped(&self, player: usize) -> bool {
        self.entries
            .get(player)
            .is_some_and(|e| e.dropped_at.is_some())
    }

    /// The players still in, other than us (who notices go to).
    pub fn others(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.entries.len()).filter(|p| *p != self.me && !self.dropped(*p))
    }

    /// We drop `player`, of whose inputs ggrs has up to `last`, `recent`
    /// the latest of them (oldest first). Returns the notice for
    /// [`Drops::others`]; `None` if it was dropped already, or is us.
    ///
    /// ```
    /// use volley_rollback::drops::{Action, Drops};
    /// use volley_rollback::GuardConfig;
    ///
    /// let config = GuardConfig { players: 2, max_prediction: 8, input_delay: 2, desync_interval: None };
    /// let mut drops = Drops::new(config, 0);
    /// let notice = drops.drop_player(1, 41, vec![vec![7]], 0).unwrap();
    /// assert_eq!((notice.last, notice.inputs.len()), (41, 1));
    /// // Nobody else to agree with: ggrs may drop it at once.
    /// assert_eq!(drops.poll(50, 0, |_| 41), vec![Action::Disconnect { player: 1, last: 41 }]);
    /// ```
    pub fn drop_player(
        &mut self,
        player: usize,
        last: i32,
        mut recent: Vec<Vec<u8>>,
        now_ms: u64,
    ) -> Option<DropNotice> {
        if player == self.me {
            return None;
        }
        let entry = self.entries.get_mut(player)?;
        if entry.dropped_at.is_some() {
            return None;
        }
        entry.dropped_at = Some(now_ms);
        let keep = recent
            .len()
            .min(MAX_RELAY_INPUTS)
            .min(usize::try_from(last.saturating_add(1)).unwrap_or(0));
        recent.drain(..recent.len() - keep);
        Some(DropNotice {
            player: u32::try_from(player).unwrap_or(u32::MAX),
            last,
            inputs: recent,
        })
    }

    /// A notice from player `from`, checked against our current `frame`.
    pub fn receive(
        &mut self,
        from: usize,
        notice: DropNotice,
        frame: i32,
    ) -> Result<(), NoticeError> {
        if from >= self.entries.len() || from == self.me || self.dropped(from) {
            return Err(NoticeError::Sender(from));
        }
        let player = usize::try_from(notice.player).unwrap_or(usize::MAX);
        if player >= self.entries.len() || player == from || player == self.me {
            return Err(NoticeError::Player(notice.player));
        }
        if notice.inputs.len() > MAX_RELAY_INPUTS
            || notice.inputs.iter().any(|i| i.len() > MAX_INPUT_BYTES)
        {
            return Err(NoticeError::Inputs);
        }
        let last = i64::from(notice.last);
        // ≤ MAX_RELAY_INPUTS: no overflow in i64.
        let low = i64::from(NULL_FRAME) + notice.inputs.len() as i64;
        let high = i64::from(frame) + i64::from(self.config.frames_ahead());
        if last < low || last > high {
            return Err(NoticeError::Frame { last, low, high });
        }
        let entry = &mut self.entries[player];
        if entry.agreed.is_none() {
            entry.notices[from] = Some(notice);
        }
        Ok(())
    }

    /// What to do now, at our `frame`; `last_of(player)` is the last frame
    /// of the player's inputs ggrs has (the pipe's mirror).
    pub fn poll(&mut self, frame: i32, now_ms: u64, last_of: impl Fn(usize) -> i32) -> Vec<Action> {
        let still_in: Vec<bool> = (0..self.entries.len())
            .map(|p| p != self.me && !self.dropped(p))
            .collect();
        let mut actions = Vec::new();
        for (player, entry) in self.entries.iter_mut().enumerate() {
            let Some(since) = entry.dropped_at else {
                continue;
            };
            if entry.done {
                continue;
            }
            let have = last_of(player);
            if entry.agreed.is_none() {
                let voters = |q: &usize| still_in[*q] && *q != player;
                let waiting = (0..still_in.len())
                    .filter(voters)
                    .any(|q| entry.notices[q].is_none());
                if waiting && now_ms.saturating_sub(since) < AGREE_TIMEOUT_MS {
                    continue;
                }
                let latest = (0..still_in.len())
                    .filter(voters)
                    .filter_map(|q| entry.notices[q].as_ref())
                    .max_by_key(|n| n.last);
                let mut cut = have;
                if let Some(notice) = latest.filter(|n| n.last > cut)
                    && let Some(missing) = inputs_after(notice, have)
                {
                    cut = notice.last;
                    actions.push(Action::Relay {
                        player,
                        inputs: missing,
                    });
                }
                entry.agreed = Some((cut, now_ms));
            }
            let Some((cut, agreed_at)) = entry.agreed else {
                continue;
            };
            let arrived = have >= cut || now_ms.saturating_sub(agreed_at) >= AGREE_TIMEOUT_MS;
            // ggrs 0.13 panics dropping a player whose last input is the
            // frame before its current one ("must load frame in the past"):
            // a frame later it is safe.
            if arrived && frame != have.saturating_add(1) {
                entry.done = true;
                actions.push(Action::Disconnect { player, last: have });
            }
        }
        actions
    }
}

/// The notice's inputs for the frames after `have`, if it reaches back that far.
fn inputs_after(notice: &DropNotice, have: i32) -> Option<Vec<Vec<u8>>> {
    let len = i64::try_from(notice.inputs.len()).ok()?;
    let first = i64::from(notice.last) - len + 1;
    let skip = usize::try_from(i64::from(have) + 1 - first).ok()?;
    notice.inputs.get(skip..).map(<[Vec<u8>]>::to_vec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(players: usize) -> GuardConfig {
        GuardConfig {
            players,
            max_prediction: 8,
            input_delay: 2,
            desync_interval: None,
        }
    }

    fn inputs(from: i32, to: i32) -> Vec<Vec<u8>> {
        (from..=to).map(|f| vec![f as u8]).collect()
    }

    #[test]
    fn the_peer_behind_gets_the_missing_inputs_and_both_cut_at_the_latest() {
        // Player 2 leaves; peer 0 has its inputs to 40, peer 1 to 44.
        let mut a = Drops::new(config(3), 0);
        let mut b = Drops::new(config(3), 1);
        let to_b = a.drop_player(2, 40, inputs(30, 40), 0).unwrap();
        assert_eq!(a.poll(45, 1, |_| 40), vec![], "waits for peer 1");
        let to_a = b.drop_player(2, 44, inputs(30, 44), 5).unwrap();
        a.receive(1, to_a, 45).unwrap();
        b.receive(0, to_b, 46).unwrap();
        assert_eq!(
            a.poll(46, 6, |_| 40),
            vec![Action::Relay {
                player: 2,
                inputs: inputs(41, 44)
            }]
        );
        // Not before ggrs took the relayed inputs.
        assert_eq!(a.poll(46, 7, |_| 40), vec![]);
        assert_eq!(
            a.poll(47, 8, |_| 44),
            vec![Action::Disconnect {
                player: 2,
                last: 44
            }]
        );
        assert_eq!(
            b.poll(47, 6, |_| 44),
            vec![Action::Disconnect {
                player: 2,
                last: 44
            }]
        );
        assert_eq!(a.poll(48, 9, |_| 44), vec![], "once");
    }

    #[test]
    fn a_silent_peer_does_not_hold_the_drop_forever() {
        let mut a = Drops::new(config(3), 0);
        a.drop_player(2, 40, inputs(30, 40), 0).unwrap();
        assert_eq!(a.poll(45, AGREE_TIMEOUT_MS - 1, |_| 40), vec![]);
        assert_eq!(
            a.poll(45, AGREE_TIMEOUT_MS, |_| 40),
            vec![Action::Disconnect {
                player: 2,
                last: 40
            }]
        );
    }

    #[test]
    fn the_frame_after_the_last_input_waits_a_frame() {
        let mut a = Drops::new(config(2), 0);
        a.drop_player(1, 40, inputs(30, 40), 0).unwrap();
        assert_eq!(a.poll(41, 0, |_| 40), vec![]);
        assert_eq!(
            a.poll(42, 0, |_| 40),
            vec![Action::Disconnect {
                player: 1,
                last: 40
            }]
        );
    }

    #[test]
    fn a_player_that_left_no_longer_votes() {
        let mut a = Drops::new(config(4), 0);
        a.drop_player(3, 40, inputs(30, 40), 0).unwrap();
        // Player 2 leaves too before sending its notice about 3.
        a.drop_player(2, 39, inputs(30, 39), 1).unwrap();
        a.receive(
            1,
            DropNotice {
                player: 3,
                last: 40,
                inputs: inputs(35, 40),
            },
            41,
        )
        .unwrap();
        a.receive(
            1,
            DropNotice {
                player: 2,
                last: 39,
                inputs: inputs(35, 39),
            },
            41,
        )
        .unwrap();
        let actions = a.poll(45, 2, |_| 40);
        assert!(actions.contains(&Action::Disconnect {
            player: 3,
            last: 40
        }));
        assert!(
            a.receive(
                2,
                DropNotice {
                    player: 3,
                    last: 40,
                    inputs: vec![]
                },
                41
            )
            .is_err(),
            "notices from a dropped player are refused"
        );
    }

    #[test]
    fn notices_are_bounded() {
        let mut a = Drops::new(config(3), 0);
        let bad = |player, last, inputs| DropNotice {
            player,
            last,
            inputs,
        };
        assert_eq!(
            a.receive(1, bad(1, 0, vec![]), 10),
            Err(NoticeError::Player(1))
        );
        assert_eq!(
            a.receive(1, bad(0, 0, vec![]), 10),
            Err(NoticeError::Player(0))
        );
        assert_eq!(
            a.receive(1, bad(9, 0, vec![]), 10),
            Err(NoticeError::Player(9))
        );
        assert_eq!(
            a.receive(0, bad(2, 0, vec![]), 10),
            Err(NoticeError::Sender(0))
        );
        assert_eq!(
            a.receive(7, bad(2, 0, vec![]), 10),
            Err(NoticeError::Sender(7))
        );
        assert_eq!(
            a.receive(1, bad(2, 5, vec![vec![0; MAX_INPUT_BYTES + 1]]), 10),
            Err(NoticeError::Inputs)
        );
        assert_eq!(
            a.receive(1, bad(2, 500, vec![vec![0]; MAX_RELAY_INPUTS + 1]), 10),
            Err(NoticeError::Inputs)
        );
        assert!(matches!(
            a.receive(1, bad(2, i32::MAX, vec![]), 10),
            Err(NoticeError::Frame { .. })
        ));
        // Three inputs cannot end before frame 2.
        assert!(matches!(
            a.receive(1, bad(2, 1, inputs(0, 2)), 10),
            Err(NoticeError::Frame { .. })
        ));
        assert_eq!(a.receive(1, bad(2, 2, inputs(0, 2)), 10), Ok(()));
    }

    /// The dropped player's true input at `frame`.
    fn truth(frame: i32) -> Vec<u8> {
        vec![(frame as u8) ^ 0x5a]
    }

    proptest! {
        /// The model: whatever frames the remaining peers have the dropped
        /// player's inputs up to, whenever they drop it and however their
        /// notices cross, every one of them cuts at the latest frame with
        /// the true inputs up to there, once.
        #[test]
        fn everyone_left_cuts_at_the_latest_frame_with_the_true_inputs(
            players in 3usize..=5,
            lasts in proptest::collection::vec(30i32..=60, 4),
            dropped_at in proptest::collection::vec(0u64..30, 4),
            delays in proptest::collection::vec(1u64..50, 16),
        ) {
            let gone = players - 1;
            let peers = players - 1;
            let mut drops: Vec<Drops> = (0..peers).map(|me| Drops::new(config(players), me)).collect();
            let mut have: Vec<i32> = lasts[..peers].to_vec();
            let mut cuts: Vec<Option<i32>> = vec![None; peers];
            // (delivery time, from, to, notice)
            let mut wire: Vec<(u64, usize, usize, DropNotice)> = Vec::new();
            for now in 0..200u64 {
                for me in 0..peers {
                    if dropped_at[me] == now {
                        let recent = (0..=have[me]).map(truth).collect();
                        let notice = drops[me].drop_player(gone, have[me], recent, now).unwrap();
                        for to in drops[me].others().collect::<Vec<_>>() {
                            let delay = delays[(me * 4 + to) % delays.len()];
                            wire.push((now + delay, me, to, notice.clone()));
                        }
                    }
                }
                let (due, later): (Vec<_>, Vec<_>) = wire.into_iter().partition(|(at, ..)| *at <= now);
                wire = later;
                for (_, from, to, notice) in due {
                    prop_assert_eq!(drops[to].receive(from, notice, 100), Ok(()));
                }
                for me in 0..peers {
                    let mine = have[me];
                    for action in drops[me].poll(100, now, |_| mine) {
                        match action {
                            Action::Relay { player, inputs } => {
                                prop_assert_eq!(player, gone);
                                let expected: Vec<Vec<u8>> =
                                    (have[me] + 1..have[me] + 1 + inputs.len() as i32).map(truth).collect();
                                prop_assert_eq!(&inputs, &expected);
                                have[me] += inputs.len() as i32;
                            }
                            Action::Disconnect { player, last } => {
                                prop_assert_eq!(player, gone);
                                prop_assert!(cuts[me].replace(last).is_none(), "dropped twice");
                            }
                        }
                    }
                }
            }
            let latest = *lasts[..peers].iter().max().unwrap();
            for me in 0..peers {
                prop_assert_eq!(cuts[me], Some(latest));
                prop_assert_eq!(have[me], latest);
            }
        }
    }
}
