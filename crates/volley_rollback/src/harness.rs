//! A small ggrs match in memory, for tests and fuzzing: real ggrs P2P
//! sessions of a trivial game whose packets travel through queues, each
//! received packet through the [`Guard`] as in volley, dropped players
//! agreed on through [`Drops`] as in volley. Anyone can [`Match::inject`]
//! bytes as if a player sent them, or [`Match::cut`] a link.

use std::collections::VecDeque;

use ggrs::{
    DesyncDetection, GgrsError, GgrsRequest, P2PSession, PlayerType, PredictRepeatLast,
    SessionBuilder,
};

use crate::drops::{DropNotice, Drops};
use crate::guard::{Guard, GuardConfig, Rejected, View, now_millis};
use crate::mirror::decodes_as;
use crate::pipe::Pipe;

/// Simulated milliseconds per step (the agreement's clock).
const STEP_MS: u64 = 16;

/// The match's game: one byte of input per player; the state folds them.
pub struct Game;

impl ggrs::Config for Game {
    type Input = u8;
    type InputPredictor = PredictRepeatLast;
    type State = u64;
    type Address = usize;
}

struct Peer {
    session: P2PSession<Game>,
    pipe: Pipe<usize>,
    state: u64,
    /// The frame `state` belongs to.
    at_frame: i32,
    frame_states: VecDeque<(i32, u64)>,
    dropped: Vec<bool>,
    drops: Drops,
    /// Players absent from the start, to cut once a frame is saved.
    absent: Vec<usize>,
    rejected: Vec<Rejected>,
}

/// `players` ggrs peers (addresses and handles `0..players`) in one process.
pub struct Match {
    guard: Guard,
    peers: Vec<Peer>,
    /// (from, to, bytes) in flight.
    wire: VecDeque<(usize, usize, Vec<u8>)>,
    /// Drop notices in flight (from, to, notice).
    notices: VecDeque<(usize, usize, DropNotice)>,
    /// Links whose packets are lost (from, to).
    cut: Vec<(usize, usize)>,
    /// Every packet an honest peer sent (from, to, bytes), for tests.
    sent: Vec<(usize, usize, Vec<u8>)>,
    keep_sent: bool,
    frame: u64,
}

impl Match {
    /// Starts the sessions (not yet synchronized: call [`Match::step`]).
    pub fn new(config: GuardConfig) -> Result<Self, GgrsError> {
        let mut peers = Vec::with_capacity(config.players);
        for me in 0..config.players {
            let pipe = Pipe::new(config.max_prediction, decodes_as::<u8>);
            let desync = match config.desync_interval {
                Some(interval) if interval > 0 => DesyncDetection::On { interval },
                _ => DesyncDetection::Off,
            };
            let mut builder = SessionBuilder::<Game>::new()
                .with_num_players(config.players)?
                .with_max_prediction_window(config.max_prediction)
                .with_input_delay(config.input_delay)
                .with_desync_detection_mode(desync);
            for handle in 0..config.players {
                let kind = if handle == me {
                    PlayerType::Local
                } else {
                    PlayerType::Remote(handle)
                };
                builder = builder.add_player(kind, handle)?;
            }
            peers.push(Peer {
                session: builder.start_p2p_session(pipe.clone())?,
                pipe,
                state: 0,
                at_frame: 0,
                frame_states: VecDeque::new(),
                dropped: vec![false; config.players],
                drops: Drops::new(config, me),
                absent: Vec::new(),
                rejected: Vec::new(),
            });
        }
        Ok(Match {
            guard: Guard::new(config),
            peers,
            wire: VecDeque::new(),
            notices: VecDeque::new(),
            cut: Vec::new(),
            sent: Vec::new(),
            keep_sent: false,
            frame: 0,
        })
    }

    /// A match restarted without the players in `absent` (see
    /// [`crate::seats`]): the others' pipes answer the absent players'
    /// synchronization and cut them once frame 1 is reached. Pass the
    /// absent players as `silent` to [`Match::step`].
    pub fn without(config: GuardConfig, absent: &[usize]) -> Result<Self, GgrsError> {
        let mut game = Match::new(config)?;
        for (me, peer) in game.peers.iter_mut().enumerate() {
            if absent.contains(&me) {
                continue;
            }
            peer.pipe.absent(absent.iter().copied());
            for handle in absent {
                peer.drops.absent(*handle);
                if let Some(flag) = peer.dropped.get_mut(*handle) {
                    *flag = true;
                }
            }
            peer.absent = absent.to_vec();
        }
        Ok(game)
    }

    /// Keeps a copy of every packet the honest peers send ([`Match::sent`]).
    pub fn keep_sent(&mut self) {
        self.keep_sent = true;
    }

    /// Packets the honest peers sent so far (with [`Match::keep_sent`]).
    pub fn sent(&self) -> &[(usize, usize, Vec<u8>)] {
        &self.sent
    }

    /// Puts `bytes` on the wire as if `from` sent them to `to`.
    pub fn inject(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        self.wire.push_back((from, to, bytes));
    }

    /// Loses every packet `from` sends to `to` from now on.
    pub fn cut(&mut self, from: usize, to: usize) {
        self.cut.push((from, to));
    }

    /// `at` drops player `handle` (what volley does when the peer leaves or
    /// misbehaves): it tells the others, and ggrs drops the player once they
    /// agree on where its inputs end.
    pub fn drop_player(&mut self, at: usize, handle: usize) {
        let now = self.now();
        let peer = &mut self.peers[at];
        if let Some(flag) = peer.dropped.get_mut(handle) {
            *flag = true;
        }
        if let Some(notice) = peer.drops.drop_from_pipe(handle, &handle, &peer.pipe, now) {
            for to in peer.drops.others() {
                self.notices.push_back((at, to, notice.clone()));
            }
        }
    }

    fn now(&self) -> u64 {
        self.frame.saturating_mul(STEP_MS)
    }

    /// Delivers what is on the wire through the guards, then lets every
    /// peer not in `silent` add an input and advance one frame.
    pub fn step(&mut self, silent: &[usize]) {
        let now = now_millis();
        while let Some((from, to, bytes)) = self.wire.pop_front() {
            let Some(peer) = self.peers.get_mut(to) else {
                continue;
            };
            if silent.contains(&to)
                || self.cut.contains(&(from, to))
                || peer.dropped.get(from).copied().unwrap_or(true)
            {
                continue;
            }
            let view = View {
                frame: peer.session.current_frame(),
                now_millis: now,
                sender_handles: 1,
            };
            match self.guard.inspect(&bytes, &view) {
                Ok(message) => peer.pipe.deliver(from, message),
                Err(rejected) => peer.rejected.push(rejected),
            }
        }
        let pending = std::mem::take(&mut self.notices);
        for (from, to, notice) in pending {
            if silent.contains(&to) {
                self.notices.push_back((from, to, notice));
            } else if let Some(peer) = self.peers.get_mut(to) {
                let frame = peer.session.current_frame();
                // A refused notice is the sender's problem, as in volley.
                let _ = peer.drops.receive(from, notice, frame);
            }
        }
        self.frame += 1;
        let now = self.now();
        let addrs: Vec<usize> = (0..self.peers.len()).collect();
        for (me, peer) in self.peers.iter_mut().enumerate() {
            if silent.contains(&me) {
                continue;
            }
            if peer.session.current_frame() >= 1 {
                for handle in peer.absent.drain(..) {
                    let _ = peer.session.disconnect_player(handle);
                }
            }
            peer.drops.drive(&mut peer.session, &peer.pipe, &addrs, now);
            peer.session.poll_remote_clients();
            let input = (self.frame.wrapping_mul(me as u64 + 7) % 5) as u8;
            if peer.session.add_local_input(me, input).is_ok()
                && let Ok(requests) = peer.session.advance_frame()
            {
                peer.handle(requests);
            }
            let outgoing = peer.pipe.take_outgoing();
            for (to, bytes) in outgoing {
                if self.keep_sent {
                    self.sent.push((me, to, bytes.clone()));
                }
                self.wire.push_back((me, to, bytes));
            }
        }
    }

    /// Peer `at`'s current frame.
    pub fn frame(&self, at: usize) -> i32 {
        self.peers[at].session.current_frame()
    }

    /// Peer `at`'s confirmed frame.
    pub fn confirmed(&self, at: usize) -> i32 {
        self.peers[at].session.confirmed_frame()
    }

    /// Peer `at`'s state at `frame` (after simulating the frame before), if still kept.
    pub fn state_at(&self, at: usize, frame: i32) -> Option<u64> {
        self.peers[at]
            .frame_states
            .iter()
            .rev()
            .find(|(f, _)| *f == frame)
            .map(|(_, s)| *s)
    }

    /// Whether peer `at` still runs its endpoint for remote player `handle`.
    pub fn connected(&self, at: usize, handle: usize) -> bool {
        !matches!(
            self.peers[at].session.network_stats(handle),
            Err(GgrsError::NotSynchronized)
        )
    }

    /// What peer `at`'s guard refused so far.
    pub fn rejected(&self, at: usize) -> &[Rejected] {
        &self.peers[at].rejected
    }
}

impl Peer {
    fn handle(&mut self, requests: Vec<GgrsRequest<Game>>) {
        for request in requests {
            match request {
                GgrsRequest::SaveGameState { cell, frame } => {
                    cell.save(frame, Some(self.state), Some(u128::from(self.state)));
                }
                GgrsRequest::LoadGameState { cell, frame } => {
                    self.state = cell.load().unwrap_or_default();
                    self.at_frame = frame;
                }
                GgrsRequest::AdvanceFrame { inputs } => {
                    for (input, _) in inputs {
                        self.state = self.state.wrapping_mul(31).wrapping_add(u64::from(input));
                    }
                    self.at_frame += 1;
                    self.frame_states.push_back((self.at_frame, self.state));
                    if self.frame_states.len() > 512 {
                        self.frame_states.pop_front();
                    }
                }
            }
        }
    }
}
