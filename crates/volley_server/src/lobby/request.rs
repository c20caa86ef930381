//! What a peer asks the lobby for: a room, and, when it comes back, the
//! seat it had; or, for a spectator, the room or group it watches.

use matchbox_protocol::PeerId;

use crate::refusal::Refusal;

/// Longest room name accepted, in bytes.
pub const MAX_ROOM_NAME: usize = 64;

/// What a connecting peer asked for: a room name and, optionally, matchmaking.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomRequest {
    /// The room name (the URL path without its `/`; may be empty).
    pub name: String,
    /// `None` joins the named room; `Some(n)` joins the next group of `n`.
    pub next: Option<usize>,
    /// A returning peer's seat, from its verified resume token: it goes
    /// back to that seat rather than to a new one.
    pub resume: Option<SeatClaim>,
    /// A spectator's request (`?spectate`): it watches the room or group
    /// that `name` and `next` name, without a seat in it.
    pub watch: Option<Watch>,
}

/// What a spectator watches, beyond its request's room name and `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// The `?next=N` group's id ([`SeatClaim::group`]); `None` for the
    /// named room.
    pub group: Option<PeerId>,
}

impl Watch {
    /// Validates the raw `spectate` query value against the request's
    /// `next`: empty watches the named room (no `next`) or the oldest
    /// `?next=N` group in play under the name, a group's id (a UUID)
    /// watches that group.
    pub fn parse(value: &str, next: Option<usize>) -> Result<Self, Refusal> {
        match (value.is_empty(), next) {
            (true, _) => Ok(Watch { group: None }),
            (false, Some(_)) => match peer_id(value) {
                Some(group) => Ok(Watch { group: Some(group) }),
                None => Err(Watch::invalid(value)),
            },
            _ => Err(Watch::invalid(value)),
        }
    }

    /// The refusal of a `spectate` value (cut to a UUID's length and a bit).
    pub(crate) fn invalid(value: &str) -> Refusal {
        Refusal::InvalidSpectate {
            value: value.chars().take(40).collect(),
        }
    }
}

/// A peer id from its text (a UUID), read as matchbox's JSON spells it:
/// the `uuid` crate is only a dependency of the `server` feature.
fn peer_id(text: &str) -> Option<PeerId> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

/// Where a returning peer sat, beyond its room's name and `next`: enough
/// to find its group again, or to open it afresh on a server that never
/// knew it (restarted, or another node of a cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeatClaim {
    /// Its `?next=N` group: the id of the peer that opened it, unique since
    /// peer ids are (`None` in a named room).
    pub group: Option<PeerId>,
    /// The group had filled: opened afresh, it takes only its own members
    /// back, never a newcomer.
    pub sealed: bool,
}

/// A peer's seat, as the lobby tells it (the server hands it on as a
/// signed resume token, see `crate::resume`): when it joins, and again
/// when its group fills.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seat {
    /// The room name.
    pub name: String,
    /// The group size of a `?next=N` group.
    pub next: Option<usize>,
    /// Which group, and whether it had filled.
    pub claim: SeatClaim,
}

impl Seat {
    /// What to ask the lobby for to sit here again.
    pub fn request(&self) -> RoomRequest {
        RoomRequest {
            name: self.name.clone(),
            next: self.next,
            resume: Some(self.claim),
            watch: None,
        }
    }
}

impl RoomRequest {
    /// Validates a room name and the raw `next` query value (a whole number
    /// from 2 to `max_room_size`).
    pub fn parse(name: &str, next: Option<&str>, max_room_size: usize) -> Result<Self, Refusal> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if name.len() > MAX_ROOM_NAME || !name.chars().all(valid_char) {
            return Err(Refusal::InvalidRoomName {
                len: name.len(),
                max: MAX_ROOM_NAME,
            });
        }
        let next = match next {
            None => None,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (2..=max_room_size).contains(&n) => Some(n),
                _ => {
                    return Err(Refusal::InvalidNext {
                        value: raw.chars().take(32).collect(),
                        max: max_room_size,
                    });
                }
            },
        };
        Ok(RoomRequest {
            name: name.to_owned(),
            next,
            resume: None,
            watch: None,
        })
    }
}
