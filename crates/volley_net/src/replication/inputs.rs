//! On the authority, the inputs other peers send (client-side prediction):
//! each peer's wait in a bounded queue and at most a few are applied per
//! update, so a peer sending thousands cannot make the authority run the
//! game's step function thousands of times in one frame, while an honest
//! burst (inputs held up by a lost packet) is applied over a few frames.

use std::collections::{HashMap, VecDeque};

use crate::PeerId;

/// Inputs applied per peer per update by default: a 240 Hz client against
/// a 60 Hz authority sends 4.
pub const MAX_INPUTS_PER_UPDATE: usize = 16;

/// Inputs waiting per peer by default: about 4 s of a 60 Hz client.
pub const MAX_QUEUED_INPUTS: usize = 256;

/// Why an input was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InputRefused {
    /// The peer's queue is full: it sends faster than any game loop.
    #[error("more than {0} inputs waiting")]
    QueueFull(usize),
}

/// Per-peer queues of sequenced inputs, applied a bounded number per update.
#[derive(Debug)]
pub struct InputQueue<I> {
    per_update: usize,
    capacity: usize,
    peers: HashMap<PeerId, Queue<I>>,
}

#[derive(Debug)]
struct Queue<I> {
    /// The newest sequence number queued or applied.
    last: u32,
    waiting: VecDeque<(u32, I)>,
    /// The newest sequence number applied.
    applied: u32,
}

impl<I> Default for InputQueue<I> {
    fn default() -> Self {
        InputQueue::new(MAX_INPUTS_PER_UPDATE, MAX_QUEUED_INPUTS)
    }
}

impl<I> InputQueue<I> {
    /// At most `per_update` applied and `capacity` waiting, per peer.
    pub fn new(per_update: usize, capacity: usize) -> Self {
        InputQueue {
            per_update: per_update.max(1),
            capacity: capacity.max(1),
            peers: HashMap::new(),
        }
    }

    /// Queues `peer`'s input number `seq`. One not newer than the last
    /// queued is a duplicate and dropped (`Ok(false)`): numbers only grow.
    pub fn push(&mut self, peer: PeerId, seq: u32, input: I) -> Result<bool, InputRefused> {
        let queue = self.peers.entry(peer).or_insert_with(|| Queue {
            last: 0,
            waiting: VecDeque::new(),
            applied: 0,
        });
        if seq <= queue.last {
            return Ok(false);
        }
        if queue.waiting.len() >= self.capacity {
            return Err(InputRefused::QueueFull(self.capacity));
        }
        queue.last = seq;
        queue.waiting.push_back((seq, input));
        Ok(true)
    }

    /// This update's inputs: up to the per-update bound from each peer,
    /// oldest first, in peer order.
    pub fn drain_update(&mut self) -> Vec<(PeerId, I)> {
        let mut peers: Vec<PeerId> = self.peers.keys().copied().collect();
        peers.sort();
        let mut out = Vec::new();
        for peer in peers {
            let Some(queue) = self.peers.get_mut(&peer) else {
                continue;
            };
            for _ in 0..self.per_update {
                let Some((seq, input)) = queue.waiting.pop_front() else {
                    break;
                };
                queue.applied = seq;
                out.push((peer, input));
            }
        }
        out
    }

    /// The newest of `peer`'s inputs applied (0: none): what the
    /// authority's worlds tell it.
    pub fn applied(&self, peer: PeerId) -> u32 {
        self.peers.get(&peer).map_or(0, |q| q.applied)
    }

    /// Inputs waiting from `peer`.
    pub fn waiting(&self, peer: PeerId) -> usize {
        self.peers.get(&peer).map_or(0, |q| q.waiting.len())
    }

    /// Forgets a peer (it left).
    pub fn remove(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
    }

    /// Forgets everyone (authority changed).
    pub fn clear(&mut self) {
        self.peers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::peer;
    use super::*;

    #[test]
    fn a_burst_is_applied_over_several_updates_and_a_flood_refused() {
        let mut q = InputQueue::new(4, 10);
        let (a, b) = (peer(1), peer(2));
        for seq in 1..=10 {
            assert_eq!(q.push(a, seq, seq), Ok(true));
        }
        assert_eq!(q.push(a, 11, 11), Err(InputRefused::QueueFull(10)));
        assert_eq!(q.push(a, 5, 5), Ok(false), "a duplicate");
        assert_eq!(q.push(b, 1, 100), Ok(true));
        let first = q.drain_update();
        assert_eq!(first, vec![(a, 1), (a, 2), (a, 3), (a, 4), (b, 100)]);
        assert_eq!((q.applied(a), q.applied(b)), (4, 1));
        assert_eq!(q.drain_update().len(), 4);
        assert_eq!(q.drain_update(), vec![(a, 9), (a, 10)]);
        assert_eq!(q.applied(a), 10);
        assert_eq!(q.waiting(a), 0);
        // A peer that jumps to the last number only stops itself.
        assert_eq!(q.push(b, u32::MAX, 7), Ok(true));
        assert_eq!(q.push(b, 2, 8), Ok(false));
        q.remove(b);
        assert_eq!(q.applied(b), 0);
    }
}
