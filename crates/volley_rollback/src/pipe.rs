//! The ggrs socket volley hands to a session: two queues behind a lock,
//! shared with whoever moves packets (ggrs owns its socket inside its
//! session, so the transport side needs a handle of its own).
//!
//! What ggrs sends is encoded on the way out. What comes in must already
//! have passed the [`Guard`](crate::Guard); when ggrs takes it, the
//! [`Mirror`] reads it too (and keeps back what ggrs could not follow).

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ggrs::{Message, NonBlockingSocket};

use crate::mirror::{InputCheck, Mirror, NULL_FRAME, Unusable};
use crate::rle;
use crate::wire::{self, WireBody, WireHeader, WireInput, WireMessage, WireStatus};

/// Checked messages kept until ggrs polls them (every frame once its
/// session runs; before that, the oldest go first).
pub const PIPE_INBOX: usize = 4096;

/// Messages the mirror kept back, kept until taken.
const REFUSED_KEPT: usize = 256;

/// A cloneable handle on one ggrs socket, addressed by `A`.
pub struct Pipe<A>(Arc<Mutex<Queues<A>>>);

struct Queues<A> {
    inbox: VecDeque<(A, WireMessage)>,
    outbox: Vec<(A, Vec<u8>)>,
    mirror: Mirror<A>,
    refused: Vec<(A, Unusable)>,
    /// Players absent when the session started (see [`Pipe::absent`]).
    absent: HashSet<A>,
}

impl<A> Clone for Pipe<A> {
    fn clone(&self) -> Self {
        Pipe(self.0.clone())
    }
}

impl<A: Clone + Eq + Hash> Pipe<A> {
    /// The socket of a session with this prediction window, whose inputs
    /// `check` accepts (see [`decodes_as`](crate::mirror::decodes_as)).
    pub fn new(max_prediction: usize, check: InputCheck) -> Self {
        Pipe(Arc::new(Mutex::new(Queues {
            inbox: VecDeque::new(),
            outbox: Vec::new(),
            mirror: Mirror::new(max_prediction, check),
            refused: Vec::new(),
            absent: HashSet::new(),
        })))
    }

    /// Marks players absent from a session that starts without them (a
    /// match restarted while they are away): ggrs cannot start without
    /// synchronizing with every player, nor drop one before frame 1, so
    /// the pipe answers their synchronization itself and sends them
    /// nothing; the driver drops them in ggrs once the session runs.
    pub fn absent(&self, players: impl IntoIterator<Item = A>) {
        self.lock().absent.extend(players);
    }

    fn lock(&self) -> MutexGuard<'_, Queues<A>> {
        // A panic elsewhere while holding the lock leaves plain queues behind.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands ggrs a checked message from `from` (at most [`PIPE_INBOX`] wait).
    pub fn deliver(&self, from: A, message: WireMessage) {
        let mut queues = self.lock();
        if queues.inbox.len() >= PIPE_INBOX {
            queues.inbox.pop_front();
        }
        queues.inbox.push_back((from, message));
    }

    /// What ggrs sent since the last call, encoded, with its addressee.
    pub fn take_outgoing(&self) -> Vec<(A, Vec<u8>)> {
        std::mem::take(&mut self.lock().outbox)
    }

    /// Messages kept from ggrs since the last call, and why (each counts
    /// against its sender like a refused packet).
    pub fn take_refused(&self) -> Vec<(A, Unusable)> {
        std::mem::take(&mut self.lock().refused)
    }

    /// The last frame of `from`'s inputs ggrs has taken ([`NULL_FRAME`]: none).
    pub fn last_input(&self, from: &A) -> i32 {
        self.lock().mirror.last(from)
    }

    /// Up to `count` of `from`'s latest inputs ggrs has, oldest first, and
    /// the frame of the last.
    pub fn recent_inputs(&self, from: &A, count: usize) -> (i32, Vec<Vec<u8>>) {
        let queues = self.lock();
        (queues.mirror.last(from), queues.mirror.recent(from, count))
    }

    /// Hands ggrs `inputs` of `from` as if it had sent them, for frames from
    /// just after its last one on. `false` when ggrs has nothing from `from`
    /// to continue (no magic yet).
    pub fn relay(&self, from: &A, inputs: &[Vec<u8>], players: usize) -> bool {
        let mut queues = self.lock();
        let last = queues.mirror.last(from);
        let (Some(magic), Some(reference)) =
            (queues.mirror.magic(from), queues.mirror.input(from, last))
        else {
            return false;
        };
        let list = rle::delta_encode(reference, inputs);
        let message = WireMessage {
            header: WireHeader { magic },
            body: WireBody::Input(WireInput {
                // Says nothing about anyone's connection.
                peer_connect_status: vec![
                    WireStatus {
                        disconnected: false,
                        last_frame: NULL_FRAME,
                    };
                    players
                ],
                disconnect_requested: false,
                start_frame: last.saturating_add(1),
                ack_frame: NULL_FRAME,
                bytes: rle::encode_runs(&list),
            }),
        };
        queues.inbox.push_back((from.clone(), message));
        true
    }
}

impl<A: Clone + PartialEq + Eq + Hash + Send + Sync> NonBlockingSocket<A> for Pipe<A> {
    fn send_to(&mut self, msg: &Message, addr: &A) {
        // Encoding a ggrs message into a Vec cannot fail; nothing to send if it did.
        if let Ok(bytes) = bincode::serde::encode_to_vec(msg, wire::config()) {
            let mut queues = self.lock();
            if !queues.absent.contains(addr) {
                queues.outbox.push((addr.clone(), bytes));
                return;
            }
            let sync = bincode::serde::decode_from_slice::<WireMessage, _>(&bytes, wire::config());
            if let Ok((
                WireMessage {
                    header,
                    body: WireBody::SyncRequest { random_request },
                },
                _,
            )) = sync
            {
                let reply = WireMessage {
                    header,
                    body: WireBody::SyncReply {
                        random_reply: random_request,
                    },
                };
                queues.inbox.push_back((addr.clone(), reply));
            }
        }
    }

    fn receive_all_messages(&mut self) -> Vec<(A, Message)> {
        let mut queues = self.lock();
        let Queues {
            inbox,
            mirror,
            refused,
            ..
        } = &mut *queues;
        let mut taken = Vec::with_capacity(inbox.len());
        for (from, message) in inbox.drain(..) {
            // A checked message always converts; the mirror only sees what ggrs will.
            let Some(for_ggrs) = wire::to_ggrs(&message) else {
                continue;
            };
            match mirror.accept(&from, &message) {
                Ok(()) => taken.push((from, for_ggrs)),
                Err(why) => {
                    if refused.len() < REFUSED_KEPT {
                        refused.push((from, why));
                    }
                }
            }
        }
        taken
    }
}
