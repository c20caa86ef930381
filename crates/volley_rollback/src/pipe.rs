//! The ggrs socket volley hands to a session: two queues behind a lock,
//! shared with whoever moves packets (ggrs owns its socket inside its
//! session, so the transport side needs a handle of its own).
//!
//! What ggrs sends is encoded on the way out; what comes in must already
//! have passed the [`Guard`](crate::Guard).

use std::collections::VecDeque;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ggrs::{Message, NonBlockingSocket};

use crate::wire;

/// Checked messages kept until ggrs polls them (every frame once its
/// session runs; before that, the oldest go first).
pub const PIPE_INBOX: usize = 4096;

/// A cloneable handle on one ggrs socket, addressed by `A`.
pub struct Pipe<A>(Arc<Mutex<Queues<A>>>);

struct Queues<A> {
    inbox: VecDeque<(A, Message)>,
    outbox: Vec<(A, Vec<u8>)>,
}

impl<A> Clone for Pipe<A> {
    fn clone(&self) -> Self {
        Pipe(self.0.clone())
    }
}

impl<A> Default for Pipe<A> {
    fn default() -> Self {
        Pipe(Arc::new(Mutex::new(Queues {
            inbox: VecDeque::new(),
            outbox: Vec::new(),
        })))
    }
}

impl<A> Pipe<A> {
    fn lock(&self) -> MutexGuard<'_, Queues<A>> {
        // A panic elsewhere while holding the lock leaves plain queues behind.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands ggrs a checked message from `from` (at most [`PIPE_INBOX`] wait).
    pub fn deliver(&self, from: A, message: Message) {
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
}

impl<A: Clone + PartialEq + Eq + Hash + Send + Sync> NonBlockingSocket<A> for Pipe<A> {
    fn send_to(&mut self, msg: &Message, addr: &A) {
        // Encoding a ggrs message into a Vec cannot fail; nothing to send if it did.
        if let Ok(bytes) = bincode::serde::encode_to_vec(msg, wire::config()) {
            self.lock().outbox.push((addr.clone(), bytes));
        }
    }

    fn receive_all_messages(&mut self) -> Vec<(A, Message)> {
        self.lock().inbox.drain(..).collect()
    }
}
