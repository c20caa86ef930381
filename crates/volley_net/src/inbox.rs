//! Received messages, one bounded queue per registered type: a payload is
//! decoded straight into its type's queue, without a box of its own.

use std::any::{Any, TypeId};
use std::collections::{HashMap, VecDeque};

use serde::de::DeserializeOwned;

use crate::PeerId;
use crate::codec::{Bincode, Codec, CodecError, DECODE_LIMIT};
use crate::error::NetError;

/// Received messages of one type `T`: (sender, tick, the decoded value).
type Queue<T> = VecDeque<(PeerId, Option<u32>, T)>;

/// A `Queue<T>` behind its type.
type Inbox = Box<dyn Any + Send + Sync>;

/// Decodes a payload of the type and appends it to that type's [`Inbox`],
/// which keeps at most `limit` messages (the oldest go first). Returns how
/// many were dropped.
type Decode = fn(&[u8], PeerId, Option<u32>, &mut Inbox, usize) -> Result<usize, CodecError>;

fn decode_into<T: DeserializeOwned + Send + Sync + 'static>(
    bytes: &[u8],
    peer: PeerId,
    tick: Option<u32>,
    inbox: &mut Inbox,
    limit: usize,
) -> Result<usize, CodecError> {
    let value = Bincode.decode::<T>(bytes)?;
    let mut dropped = 0;
    if let Some(queue) = inbox.downcast_mut::<Queue<T>>() {
        while queue.len() >= limit.max(1) {
            queue.pop_front();
            dropped += 1;
        }
        queue.push_back((peer, tick, value));
    }
    Ok(dropped)
}

/// Makes a type's empty [`Inbox`].
type NewInbox = fn() -> Inbox;

fn new_inbox<T: Send + Sync + 'static>() -> Inbox {
    Box::new(Queue::<T>::new())
}

/// How each registered type is decoded, and its payload limit.
#[derive(Default)]
pub(crate) struct Decoders(HashMap<TypeId, (Decode, NewInbox, usize)>);

impl Decoders {
    /// Decodes `T` with the generic [`DECODE_LIMIT`].
    pub(crate) fn add<T: DeserializeOwned + Send + Sync + 'static>(&mut self) {
        self.0.insert(
            TypeId::of::<T>(),
            (decode_into::<T>, new_inbox::<T>, DECODE_LIMIT),
        );
    }

    /// Lowers `T`'s payload limit.
    pub(crate) fn limit<T: 'static>(&mut self, max_bytes: usize) {
        if let Some(entry) = self.0.get_mut(&TypeId::of::<T>()) {
            entry.2 = max_bytes.min(DECODE_LIMIT);
        }
    }

    /// Empty inboxes for every type.
    pub(crate) fn into_inboxes(self) -> Inboxes {
        Inboxes {
            queues: self
                .0
                .iter()
                .map(|(id, (_, new, _))| (*id, new()))
                .collect(),
            decoders: self
                .0
                .into_iter()
                .map(|(id, (decode, _, limit))| (id, (decode, limit)))
                .collect(),
            overflowed: 0,
        }
    }
}

/// The queues of received messages.
pub(crate) struct Inboxes {
    decoders: HashMap<TypeId, (Decode, usize)>,
    queues: HashMap<TypeId, Inbox>,
    /// Messages dropped from full queues.
    pub(crate) overflowed: u64,
}

impl Inboxes {
    /// Decodes a payload of the registered `type_id` (kind `kind`) into its
    /// queue, which keeps at most `per_type` messages.
    pub(crate) fn push(
        &mut self,
        (type_id, kind): (TypeId, u8),
        payload: &[u8],
        (peer, tick): (PeerId, Option<u32>),
        per_type: usize,
    ) -> Result<(), NetError> {
        let (decode, limit) = *self
            .decoders
            .get(&type_id)
            .ok_or(NetError::UnknownKind(kind))?;
        if payload.len() > limit {
            return Err(NetError::OverLimit {
                kind,
                size: payload.len(),
                limit,
            });
        }
        let inbox = self
            .queues
            .get_mut(&type_id)
            .ok_or(NetError::UnknownKind(kind))?;
        self.overflowed += decode(payload, peer, tick, inbox, per_type)? as u64;
        Ok(())
    }

    /// Drains the `T` messages, in arrival order.
    pub(crate) fn drain<T: 'static>(&mut self) -> Vec<(PeerId, Option<u32>, T)> {
        self.queues
            .get_mut(&TypeId::of::<T>())
            .and_then(|inbox| inbox.downcast_mut::<Queue<T>>())
            .map(|queue| queue.drain(..).collect())
            .unwrap_or_default()
    }
}
