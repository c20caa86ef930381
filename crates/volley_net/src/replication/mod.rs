//! State replication over the mesh, as pure state machines (no sockets, no
//! ECS): an elected [`Authority`] turns its world, tick by tick, into
//! per-peer messages; a [`Mirror`] on every other peer rebuilds the world
//! from them. The engine layer (bevy_volley) extracts and applies worlds and
//! moves the messages.
//!
//! - A newcomer (and every peer after a change of authority) gets the whole
//!   world reliably ([`ReplicationMessage::Full`]).
//! - Then every tick a [`ReplicationMessage::Delta`] against the last tick
//!   that peer acknowledged, unreliably: only what differs from that
//!   baseline, spawns and despawns included. A lost delta costs nothing but
//!   a larger next one, and a spawn or despawn is repeated in every delta
//!   until a tick containing it is acknowledged — reliable by construction.
//! - A mirror applies a delta onto its copy of the exact baseline tick, and
//!   acknowledges only deltas it could apply in full.
//!
//! Who the authority is, an [`Election`] decides on every peer alone from
//! what it sees (connections, departures, claims carried by worlds,
//! handovers), with rules a single hostile peer cannot use to take over
//! peers that follow an authority. A non-authority's inputs wait in an
//! [`InputQueue`] bounded per peer and drained a few per update.
//!
//! One concern per file: `authority.rs` (worlds → messages), `mirror.rs`
//! (messages → worlds, with [`MirrorLimits`]), `election.rs`, `inputs.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::PeerId;

mod authority;
mod election;
#[cfg(test)]
mod election_model;
mod inputs;
mod mirror;

pub use authority::{Authority, diff};
pub use election::{
    Change, ClaimRefused, ELECTION_WAIT, Election, HOLD_FOR, MAX_TERM, Verdict, claim_wins, elect,
};
pub use inputs::{InputQueue, InputRefused, MAX_INPUTS_PER_UPDATE, MAX_QUEUED_INPUTS};
pub use mirror::{MAX_ENTITIES, Mirror, MirrorLimits};

/// A replicated entity's id, the same on every peer.
pub type NetId = u64;

/// One entity's components by registration slot: encoded bytes, or `None`
/// when the entity lacks that component.
pub type Components = Vec<Option<Vec<u8>>>;

/// An entity's changed slots: (slot, the new value or `None` for removed).
pub type SlotChanges = Vec<(u8, Option<Vec<u8>>)>;

/// The replicated world at one tick.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorldState {
    /// Entities by id.
    pub entities: BTreeMap<NetId, Components>,
}

/// What travels between the authority and the mirrors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicationMessage {
    /// The whole world at `tick` (reliable).
    Full {
        /// The sender's authority term (see [`Authority::term`]).
        term: u32,
        /// The authority's tick.
        tick: u32,
        /// The receiver's last input the authority had applied by then
        /// (client-side prediction replays the ones after it).
        input_ack: u32,
        /// Every entity.
        world: WorldState,
    },
    /// The world at `tick` as changes from `baseline` (unreliable).
    Delta {
        /// As in `Full`.
        term: u32,
        /// The authority's tick.
        tick: u32,
        /// As in `Full`.
        input_ack: u32,
        /// A tick the receiver acknowledged.
        baseline: u32,
        /// Entities new or changed since the baseline: changed slots only
        /// for entities the baseline has, every slot for new ones.
        changed: Vec<(NetId, SlotChanges)>,
        /// Entities gone since the baseline.
        despawned: Vec<NetId>,
    },
    /// The authority hands over to `to` (reliable, to every peer): from
    /// now on `to` replicates, from its copy of the world.
    Handover {
        /// The new authority.
        to: PeerId,
    },
    /// A mirror has the world of `tick` (unreliable, to the authority).
    Ack {
        /// The tick.
        tick: u32,
    },
}

/// Something a mirror could not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    /// A delta against a baseline this mirror no longer (or never) had.
    #[error("delta against unknown baseline {0}")]
    UnknownBaseline(u32),
    /// A slot number beyond the registered components.
    #[error("component slot {slot} out of range ({slots} registered)")]
    BadSlot {
        /// The slot.
        slot: u8,
        /// Slots registered.
        slots: usize,
    },
    /// A message only an authority should receive, or vice versa.
    #[error("unexpected message")]
    Unexpected,
    /// A world with more entities than [`MirrorLimits::max_entities`].
    #[error("{entities} entities exceed the limit of {limit}")]
    TooManyEntities {
        /// Entities the message would make.
        entities: usize,
        /// The limit.
        limit: usize,
    },
}

impl ReplicationError {
    /// Whether no honest authority sends it (slots it does not have, more
    /// entities than the limit): held against the sender. The others come
    /// from reordering (a delta that overtook its baseline, an
    /// acknowledgement that reached a former authority).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            ReplicationError::BadSlot { .. } | ReplicationError::TooManyEntities { .. }
        )
    }
}

/// How a message must travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Reliable and ordered.
    Reliable,
    /// Unreliable.
    Unreliable,
}

/// Ticks of history the authority keeps for baselines.
pub const HISTORY: usize = 64;

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers the replication tests share.
    use super::*;

    pub fn peer(n: u128) -> PeerId {
        PeerId(uuid::Uuid::from_u128(n))
    }

    pub fn world(entities: &[(NetId, &[Option<&[u8]>])]) -> WorldState {
        WorldState {
            entities: entities
                .iter()
                .map(|(id, cs)| (*id, cs.iter().map(|c| c.map(<[u8]>::to_vec)).collect()))
                .collect(),
        }
    }

    /// Delivers the authority's messages to the mirror, dropping unreliable
    /// ones when `lose` says so; acks go back unless lost too.
    pub fn deliver(
        authority: &mut Authority,
        mirror: &mut Mirror,
        me: PeerId,
        messages: Vec<(PeerId, Delivery, ReplicationMessage)>,
        lose: bool,
    ) {
        for (to, delivery, message) in messages {
            assert_eq!(to, me);
            if lose && delivery == Delivery::Unreliable {
                continue;
            }
            if let Some(ReplicationMessage::Ack { tick }) = mirror.receive(message).unwrap()
                && !lose
            {
                authority.ack(me, tick);
            }
        }
    }
}
