//! Rejoining a running match: a player whose connections died (a network
//! cut, then its peers let it go) is seated again in the same seat.
//!
//! ggrs cannot take a dropped player back, so the match restarts: every
//! player still in, and the ones coming back, start a new ggrs session
//! (an *epoch*) from the same confirmed state, with the same handles.
//!
//! 1. When the connection to a player of the match comes up, each side
//!    sends a [`Seating::View`]: the players it plays with (again whenever
//!    a drop completes). Two sides that lost each other each went on with
//!    the players they still had; the side with more players wins (a tie
//!    goes to the side with the lowest handle), and the other side's
//!    players are the ones coming back. A view that still counts the
//!    receiver is not weighed: its sender has not noticed yet.
//! 2. The winning side's *leader* (its lowest handle) schedules a
//!    [`Seating::Plan`]: at frame `at` of its epoch, a little ahead of
//!    every player's frame, the match restarts as the next epoch with the
//!    players named.
//! 3. Every player of the winning side saves the state of frame `at`
//!    (the last save of that frame wins: rollbacks re-save it) and, once
//!    `at` is confirmed, restarts from it. The leader sends the state to
//!    the players coming back ([`Seating::Handover`]); they restart from
//!    it. Frames played past `at` meanwhile are played again.
//!
//! [`Seats`] is the pure state machine (frames passed in); the Bevy driver
//! saves and loads the world and rebuilds the ggrs session. A player that
//! misses a plan is left behind in the old epoch; its peers fall silent,
//! it lets them go and comes back the same way.

use serde::{Deserialize, Serialize};

/// Largest state a [`Seating::Handover`] carries: the rollback world of
/// one frame, as the game registered it.
pub const MAX_HANDOVER_BYTES: usize = 4 << 20;

/// Largest encoded [`Seating`] a peer may send.
pub const MAX_SEATING_BYTES: usize = MAX_HANDOVER_BYTES + 64;

/// Frames between the leader's frame and the restart it plans, beyond the
/// prediction window and the input delay (which bound how far ahead of
/// it another player can be): time for the plan to reach everyone, when
/// no round trip to them is measured (`bevy_volley` otherwise allows the
/// slowest round trip and a few frames).
pub const PLAN_LEAD: i32 = 20;

/// Players a match can have: their set travels as a bitmask.
pub const MAX_SEATS: usize = 64;

/// What players of a match tell each other about who plays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seating {
    /// The sender's match: its epoch and the handles it plays with
    /// (`epoch` is `None` before its match started).
    View {
        /// Its epoch, if it plays.
        epoch: Option<u32>,
        /// The handles of its side, as a bitmask.
        present: u64,
    },
    /// The leader's plan: everyone in `present` restarts as epoch `epoch`
    /// from the state of frame `at` of the epoch before, which is match
    /// frame `base`.
    Plan {
        /// The epoch that starts.
        epoch: u32,
        /// The frame of the epoch before whose state it starts from.
        at: i32,
        /// That frame as counted since the match began.
        base: i32,
        /// Who plays from then on, as a bitmask of handles.
        present: u64,
        /// Every player's id, by handle (a restarted process knows none).
        players: Vec<u128>,
        /// The planner's side: the players who stayed (its lowest handle
        /// planned), as a bitmask.
        side: u64,
    },
    /// The state the plan starts from, for the players coming back.
    Handover {
        /// The epoch it starts.
        epoch: u32,
        /// The world, as the driver saved it.
        state: Vec<u8>,
    },
}

/// Why a [`Seating`] was refused (it counts against its sender).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeatingError {
    /// A handle beyond the match's players.
    #[error("a seating message names handles {0:#x}, beyond the match's players")]
    Handles(u64),
    /// A plan from a player that does not lead our side or the side we
    /// return to, or for an epoch we are not at.
    #[error("a plan from player {0}, who does not lead us to epoch {1}")]
    Plan(usize, u32),
    /// A plan's frames make no sense (a restart in our past is refused
    /// as well: we could not honour it).
    #[error("a plan for frame {at} at base {base}, when we are at frame {frame}")]
    Frame {
        /// The planned frame.
        at: i32,
        /// Its base.
        base: i32,
        /// Ours.
        frame: i32,
    },
    /// State from a player we do not follow, or for another epoch.
    #[error("state from player {0}, who did not plan our return")]
    Handover(usize),
    /// A plan whose players are not the match's (another count, repeated
    /// ids, or not us and the sender where the plan says).
    #[error("a plan with players that are not this match's")]
    Players,
}

/// What the driver does for [`Seats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatAction {
    /// Send this to the player with this handle.
    Send(usize, Seating),
    /// Stop the ggrs session: we return to the other side's match.
    Stop,
    /// Restart as `epoch` with `present`, from our own saved state of
    /// frame `at` (which is match frame `base`); when `handover` names
    /// players, send them that state too (and `plan` again, should their
    /// connection come back before they synchronized).
    Restart {
        /// The epoch that starts.
        epoch: u32,
        /// Who plays.
        present: u64,
        /// The match frame it starts at.
        base: i32,
        /// The saved frame to start from.
        at: i32,
        /// Players coming back, who need the state.
        handover: u64,
        /// Our plan, as sent, when we lead the restart.
        plan: Option<Seating>,
    },
    /// Restart as `epoch` from this state (we are coming back).
    Load {
        /// The epoch that starts.
        epoch: u32,
        /// Who plays.
        present: u64,
        /// The match frame it starts at.
        base: i32,
        /// The world to load.
        state: Vec<u8>,
    },
}

/// A restart the leader planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    leader: usize,
    epoch: u32,
    at: i32,
    base: i32,
    present: u64,
    side: u64,
}

impl Plan {
    /// A plan message's fields (planned by `leader`), and its players.
    fn read(leader: usize, message: Seating) -> Option<(Plan, Vec<u128>)> {
        let Seating::Plan {
            epoch,
            at,
            base,
            present,
            players,
            side,
        } = message
        else {
            return None;
        };
        let plan = Plan {
            leader,
            epoch,
            at,
            base,
            present,
            side,
        };
        Some((plan, players))
    }

    fn message(&self, players: &[u128]) -> Seating {
        Seating::Plan {
            epoch: self.epoch,
            at: self.at,
            base: self.base,
            present: self.present,
            players: players.to_vec(),
            side: self.side,
        }
    }
}

/// Where a player stands (see the module docs).
#[derive(Debug, Clone)]
pub struct Seats {
    me: usize,
    players: usize,
    /// Every player's id, by handle.
    ids: Vec<u128>,
    /// Our epoch and our side's players, once our match started.
    epoch: Option<u32>,
    present: u64,
    /// The match frame our epoch started at.
    base: i32,
    /// Players coming back, for our plan (when we lead).
    joining: u64,
    /// The restart planned (ours, or our leader's, or the one we return to).
    plan: Option<Plan>,
    /// The side we return to: its leader.
    following: Option<usize>,
    /// Players connected to us.
    connected: u64,
    /// The last view each player sent (its epoch, its side).
    views: Vec<Option<(Option<u32>, u64)>>,
}

fn bit(handle: usize) -> u64 {
    1u64.checked_shl(u32::try_from(handle).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// The lowest handle of a side.
fn leader(present: u64) -> Option<usize> {
    (present != 0).then(|| present.trailing_zeros() as usize)
}

/// Whether side `a` wins over side `b`: more players, or as many and the
/// lowest handle.
pub fn beats(a: u64, b: u64) -> bool {
    match a.count_ones().cmp(&b.count_ones()) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => a != b && a.trailing_zeros() < b.trailing_zeros(),
    }
}

impl Seats {
    /// Player `me` of the match of `ids` (by handle, at most
    /// [`MAX_SEATS`]), before the match starts.
    pub fn new(me: usize, mut ids: Vec<u128>) -> Self {
        ids.truncate(MAX_SEATS);
        let players = ids.len();
        Seats {
            me,
            players,
            ids,
            epoch: None,
            present: 0,
            base: 0,
            joining: 0,
            plan: None,
            following: None,
            connected: 0,
            views: vec![None; players],
        }
    }

    /// A player that is not in a match yet (a restarted process, a
    /// reloaded page) and heard that one runs: `plan` from `from` (by id)
    /// seats player `me` again. It then waits for the state.
    pub fn from_plan(me: u128, from: u128, plan: Seating) -> Result<Seats, SeatingError> {
        let (mut plan, players) = Plan::read(0, plan).ok_or(SeatingError::Players)?;
        let mut sorted = players.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if players.is_empty() || players.len() > MAX_SEATS || sorted.len() != players.len() {
            return Err(SeatingError::Players);
        }
        // The planner leads the side that stayed: the lowest handle of the
        // players except those coming back (we may have the lowest).
        let (Some(handle), Some(planner)) = (
            players.iter().position(|p| *p == me),
            players.iter().position(|p| *p == from),
        ) else {
            return Err(SeatingError::Players);
        };
        if leader(plan.side) != Some(planner) || plan.side & bit(handle) != 0 {
            return Err(SeatingError::Players);
        }
        let mut seats = Seats::new(handle, players);
        seats.check(plan.present)?;
        if plan.present & bit(handle) == 0
            || plan.side & !plan.present != 0
            || plan.at < 0
            || plan.base < plan.at
        {
            return Err(SeatingError::Plan(planner, plan.epoch));
        }
        plan.leader = planner;
        seats.following = Some(planner);
        seats.plan = Some(plan);
        Ok(seats)
    }

    /// Our handle.
    pub fn me(&self) -> usize {
        self.me
    }

    /// Every player's id, by handle.
    pub fn ids(&self) -> &[u128] {
        &self.ids
    }

    fn all(&self) -> u64 {
        if self.players >= MAX_SEATS {
            u64::MAX
        } else {
            bit(self.players) - 1
        }
    }

    /// The match started (epoch 0) with every player.
    pub fn started(&mut self) {
        self.epoch = Some(0);
        self.present = self.all();
    }

    /// Our epoch, once playing.
    pub fn epoch(&self) -> Option<u32> {
        self.epoch
    }

    /// Our side's players.
    pub fn present(&self) -> u64 {
        self.present
    }

    /// The match frame our epoch started at.
    pub fn base(&self) -> i32 {
        self.base
    }

    /// The frame whose state to save, while a restart is planned.
    pub fn saving(&self) -> Option<i32> {
        self.plan
            .filter(|p| self.following.is_none() && Some(p.epoch) == self.epoch.map(|e| e + 1))
            .map(|p| p.at)
    }

    /// Whether we wait for the other side's state.
    pub fn returning(&self) -> bool {
        self.following.is_some()
    }

    fn view_message(&self) -> Seating {
        Seating::View {
            epoch: self.epoch,
            present: self.present,
        }
    }

    /// The connection to player `handle` came up: tell it where we stand.
    pub fn connected(&mut self, handle: usize) -> Vec<SeatAction> {
        if handle == self.me || handle >= self.players {
            return Vec::new();
        }
        self.connected |= bit(handle);
        vec![SeatAction::Send(handle, self.view_message())]
    }

    /// The connection to player `handle` is gone.
    pub fn disconnected(&mut self, handle: usize) {
        self.connected &= !bit(handle);
        self.joining &= !bit(handle);
        if let Some(view) = self.views.get_mut(handle) {
            *view = None;
        }
        // A plan we return by stays: its leader sends it again when the
        // connection is back.
    }

    /// Player `handle` is out of our side (dropped at an agreed frame):
    /// the players connected to us but not on our side hear of it.
    pub fn dropped(&mut self, handle: usize) -> Vec<SeatAction> {
        if self.present & bit(handle) == 0 {
            return Vec::new();
        }
        self.present &= !bit(handle);
        self.joining &= !bit(handle);
        let others = self.connected & !self.present;
        (0..self.players)
            .filter(|h| others & bit(*h) != 0)
            .map(|h| SeatAction::Send(h, self.view_message()))
            .collect()
    }

    /// A message from player `from`, at our `frame` of our epoch.
    pub fn receive(
        &mut self,
        from: usize,
        message: Seating,
        frame: i32,
    ) -> Result<Vec<SeatAction>, SeatingError> {
        match message {
            Seating::View { epoch, present } => self.view(from, epoch, present),
            plan @ Seating::Plan { .. } => {
                let Some((plan, players)) = Plan::read(from, plan) else {
                    return Err(SeatingError::Players);
                };
                if players != self.ids {
                    return Err(SeatingError::Players);
                }
                self.plan(from, plan, frame)
            }
            Seating::Handover { epoch, state } => self.handover(from, epoch, state),
        }
    }

    fn check(&self, mask: u64) -> Result<(), SeatingError> {
        if mask & !self.all() != 0 {
            return Err(SeatingError::Handles(mask));
        }
        Ok(())
    }

    fn view(
        &mut self,
        from: usize,
        epoch: Option<u32>,
        theirs: u64,
    ) -> Result<Vec<SeatAction>, SeatingError> {
        self.check(theirs)?;
        if let Some(view) = self.views.get_mut(from) {
            *view = Some((epoch, theirs));
        }
        Ok(Vec::new())
    }

    /// Weighs the views of the connected players who are not on our side
    /// (judged again at every tick: our side changes as drops complete).
    fn weigh(&mut self) {
        for handle in 0..self.players {
            if handle == self.me
                || self.present & bit(handle) != 0
                || self.connected & bit(handle) == 0
            {
                continue;
            }
            let Some((epoch, theirs)) = self.views[handle] else {
                continue;
            };
            // A side that still counts us has not noticed it lost us (or
            // its game is hung): it sends a new view once its drops are
            // done, and is weighed then.
            if epoch.is_some() && theirs & bit(self.me) != 0 {
                continue;
            }
            // A player not in a match, or on a side ours beats, comes back to us.
            let theirs = if epoch.is_none() { 0 } else { theirs };
            if theirs == 0 || beats(self.present, theirs) {
                if leader(self.present) == Some(self.me) && self.plan.is_none() {
                    self.joining |= bit(handle);
                }
            } else if self.following.is_none()
                && let Some(leader) = leader(theirs)
                && self.present & bit(leader) == 0
            {
                // Theirs wins: we go back to it, through its leader.
                self.following = Some(leader);
                self.plan = None;
                self.joining = 0;
            }
        }
    }

    fn plan(
        &mut self,
        from: usize,
        plan: Plan,
        frame: i32,
    ) -> Result<Vec<SeatAction>, SeatingError> {
        self.check(plan.present)?;
        self.check(plan.side)?;
        let refused = SeatingError::Plan(from, plan.epoch);
        let ours = self.epoch.ok_or(refused.clone())?;
        // A plan we already started by: its leader repeats it for a player
        // whose connection came back.
        if plan.epoch <= ours {
            return Ok(Vec::new());
        }
        if leader(plan.side) != Some(from)
            || plan.present & bit(self.me) == 0
            || plan.side & !plan.present != 0
        {
            return Err(refused);
        }
        if plan.side & bit(self.me) == 0 {
            // The side that stayed takes us back, if it beats ours.
            if !beats(plan.side, self.present) {
                return Err(refused);
            }
            if self
                .plan
                .is_some_and(|p| p.epoch == plan.epoch && self.following == Some(from))
            {
                return Ok(Vec::new());
            }
            self.following = Some(from);
            self.joining = 0;
            self.plan = Some(plan);
            return Ok(vec![SeatAction::Stop]);
        }
        if plan.epoch != ours.wrapping_add(1) {
            return Err(refused);
        }
        if plan.base != self.base.saturating_add(plan.at) || plan.at < 0 {
            return Err(SeatingError::Frame {
                at: plan.at,
                base: plan.base,
                frame,
            });
        }
        if plan.at <= frame {
            // Too late for us (the plan took long to arrive): we are left
            // behind, and come back like any player who lost the others.
            return Ok(Vec::new());
        }
        self.plan = Some(plan);
        Ok(Vec::new())
    }

    fn handover(
        &mut self,
        from: usize,
        epoch: u32,
        state: Vec<u8>,
    ) -> Result<Vec<SeatAction>, SeatingError> {
        if self.epoch.is_some_and(|ours| epoch <= ours) {
            return Ok(Vec::new()); // repeated with its plan
        }
        match self.plan {
            Some(plan) if self.following == Some(from) && plan.epoch == epoch => {
                self.start(plan);
                Ok(vec![SeatAction::Load {
                    epoch,
                    present: plan.present,
                    base: plan.base,
                    state,
                }])
            }
            _ => Err(SeatingError::Handover(from)),
        }
    }

    fn start(&mut self, plan: Plan) {
        self.epoch = Some(plan.epoch);
        self.present = plan.present;
        self.base = plan.base;
        self.plan = None;
        self.following = None;
        self.joining &= !plan.present;
    }

    /// After a ggrs update: our `frame` and `confirmed` frame in our epoch,
    /// and whether we hold a saved state of the planned frame. The leader
    /// plans for the players coming back; everyone restarts once the
    /// planned frame is confirmed.
    pub fn tick(&mut self, frame: i32, confirmed: i32, saved: bool, lead: i32) -> Vec<SeatAction> {
        let Some(epoch) = self.epoch else {
            return Vec::new();
        };
        self.weigh();
        if self.following.is_some() {
            return Vec::new();
        }
        let mut actions = Vec::new();
        if self.plan.is_none() && self.joining != 0 && leader(self.present) == Some(self.me) {
            let at = frame.saturating_add(lead.max(1));
            let plan = Plan {
                leader: self.me,
                epoch: epoch.wrapping_add(1),
                at,
                base: self.base.saturating_add(at),
                present: self.present | self.joining,
                side: self.present,
            };
            self.plan = Some(plan);
            for handle in (0..self.players).filter(|h| *h != self.me && plan.present & bit(*h) != 0)
            {
                actions.push(SeatAction::Send(handle, plan.message(&self.ids)));
            }
        }
        if let Some(plan) = self.plan
            && confirmed >= plan.at
            && saved
        {
            let (handover, message) = if plan.leader == self.me {
                (plan.present & !self.present, Some(plan.message(&self.ids)))
            } else {
                (0, None)
            };
            self.start(plan);
            actions.push(SeatAction::Restart {
                epoch: plan.epoch,
                present: plan.present,
                base: plan.base,
                at: plan.at,
                handover,
                plan: message,
            });
        }
        actions
    }
}

#[cfg(test)]
mod tests;
