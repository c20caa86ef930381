//! What a client writes into a URL, read without any I/O: the signaling
//! join (`/<room>?next=N&ticket=T`) and `/api/ice?room=R&ticket=T`. Kept
//! apart from the handlers so that every byte a client chooses here can be
//! tested and fuzzed on its own (`fuzz/fuzz_targets/signaling.rs`).
//!
//! Query strings are read as `application/x-www-form-urlencoded`, like
//! axum's `Query` extractor: percent-decoding is lossy (never an error),
//! unknown keys are ignored, and a key given twice is refused. The room is
//! the path as sent (not percent-decoded) without its leading slashes; the
//! lobby only accepts `A-Za-z0-9_-.` in it ([`RoomRequest::parse`]).
//!
//! ```
//! use volley_server::query;
//! let join = query::join("/arena", Some("next=2&ticket=1.dQ.x")).unwrap();
//! assert_eq!((join.room, join.next.as_deref()), ("arena", Some("2")));
//! assert!(query::join("/arena", Some("next=2&next=3")).is_err());
//! ```

use serde::Deserialize;

use crate::lobby::{PeerId, RoomRequest};
use crate::refusal::Refusal;
use crate::resume::{self, ResumeError};

/// A query string that does not decode: answered `400 Bad Request` before
/// anything else is looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Failed to deserialize query string: {0}")]
pub struct QueryError(String);

/// The signaling URL's parts: nothing checked yet but the query's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join<'a> {
    /// The path without its leading `/`s: the room name (and what a ticket
    /// is bound to).
    pub room: &'a str,
    /// `?next=`, raw: checked by [`Join::room_request`].
    pub next: Option<String>,
    /// `?ticket=`, checked by [`crate::ticket::verify`].
    pub ticket: Option<String>,
    /// `?resume` (empty: send me resume tokens) or `?resume=<token>` (and
    /// put me back in my seat), checked by [`Join::resumed`].
    pub resume: Option<String>,
}

#[derive(Deserialize)]
struct JoinQuery {
    next: Option<String>,
    ticket: Option<String>,
    resume: Option<String>,
}

/// Splits the signaling URL (`path`, and the query after `?` if any).
pub fn join<'a>(path: &'a str, query: Option<&str>) -> Result<Join<'a>, QueryError> {
    let JoinQuery {
        next,
        ticket,
        resume,
    } = form(query)?;
    Ok(Join {
        room: path.trim_start_matches('/'),
        next,
        ticket,
        resume,
    })
}

impl Join<'_> {
    /// What the peer asks the lobby for; refused (after the upgrade, as a
    /// close frame) when the room name or `next` is invalid.
    pub fn room_request(&self, max_room_size: usize) -> Result<RoomRequest, Refusal> {
        RoomRequest::parse(self.room, self.next.as_deref(), max_room_size)
    }

    /// Whether the client takes resume tokens (`?resume`, with or without one).
    pub fn wants_tokens(&self) -> bool {
        self.resume.is_some()
    }

    /// A returning peer (`?resume=<token>`): its id and seat, checked
    /// against `secret` at `now` (unix seconds) and against the URL's room
    /// and `next`. `Ok(None)` for a newcomer.
    pub fn resumed(
        &self,
        secret: &[u8],
        now: u64,
    ) -> Result<Option<(PeerId, RoomRequest)>, ResumeError> {
        let Some(token) = self.resume.as_deref().filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let (peer, seat) = resume::verify(secret, token, now)?;
        let next = self.next.as_deref().map(str::parse::<usize>);
        if seat.name != self.room || next.map(Result::ok) != seat.next.map(Some) {
            return Err(ResumeError::WrongRoom);
        }
        Ok(Some((peer, seat.request())))
    }
}

/// `/api/ice`'s query: the room a ticket is for, and the ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct IceQuery {
    /// The room the ticket is for (the signaling URL's path); empty if absent.
    #[serde(default)]
    pub room: String,
    /// The ticket.
    pub ticket: Option<String>,
}

/// Reads `/api/ice`'s query.
pub fn ice(query: Option<&str>) -> Result<IceQuery, QueryError> {
    form(query)
}

fn form<T: serde::de::DeserializeOwned>(query: Option<&str>) -> Result<T, QueryError> {
    serde_urlencoded::from_str(query.unwrap_or_default()).map_err(|e| QueryError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_are_split_and_decoded() {
        let join = join("//arena", Some("ticket=a%2Eb.c&next=4&other=x")).unwrap();
        assert_eq!(join.room, "arena");
        assert_eq!(join.next.as_deref(), Some("4"));
        assert_eq!(join.ticket.as_deref(), Some("a.b.c"));
        assert_eq!(
            join.room_request(16),
            Ok(RoomRequest {
                name: "arena".into(),
                next: Some(4),
                resume: None,
            })
        );
        let bare = super::join("/", None).unwrap();
        assert!(!bare.wants_tokens());
        assert_eq!((bare.room, bare.next, bare.ticket), ("", None, None));
        // Lossy percent-decoding and stray separators are not errors.
        assert_eq!(
            super::join("/r", Some("next=%FF%&&=&ticket"))
                .unwrap()
                .next
                .as_deref(),
            Some("\u{FFFD}%")
        );
    }

    #[test]
    fn resume_tokens_are_checked_against_the_url() {
        use crate::lobby::{Seat, SeatClaim};
        let peer = PeerId(uuid::Uuid::from_u128(3));
        let seat = Seat {
            name: "arena".into(),
            next: Some(2),
            claim: SeatClaim {
                group: Some(peer),
                sealed: true,
            },
        };
        let token = resume::mint(b"k", peer, &seat, 100);
        let asks = join("/arena", Some("next=2&resume")).unwrap();
        assert!(asks.wants_tokens());
        assert_eq!(asks.resumed(b"k", 1), Ok(None));
        let back = format!("next=2&resume={token}");
        assert_eq!(
            join("/arena", Some(&back)).unwrap().resumed(b"k", 1),
            Ok(Some((peer, seat.request())))
        );
        for (path, query) in [
            ("/other", back.clone()),
            ("/arena", format!("next=3&resume={token}")),
            ("/arena", format!("resume={token}")),
        ] {
            let join = join(path, Some(&query)).unwrap();
            assert_eq!(
                join.resumed(b"k", 1),
                Err(ResumeError::WrongRoom),
                "{path}?{query}"
            );
        }
        let forged = join("/arena", Some(&back)).unwrap();
        assert_eq!(forged.resumed(b"x", 1), Err(ResumeError::BadSignature));
    }

    #[test]
    fn repeated_keys_are_refused() {
        for query in ["next=2&next=3", "ticket=a&ticket=a", "resume&resume=x"] {
            assert!(join("/r", Some(query)).is_err(), "{query}");
        }
        assert!(ice(Some("room=a&room=b")).is_err());
    }

    #[test]
    fn rooms_are_checked_as_sent() {
        // The path is not percent-decoded: `%2F` stays in the name, refused.
        let join = join("/a%2Fb", Some("next=2")).unwrap();
        assert_eq!(join.room, "a%2Fb");
        assert!(matches!(
            join.room_request(16),
            Err(Refusal::InvalidRoomName { .. })
        ));
        let next = super::join("/r", Some("next=1")).unwrap();
        assert!(matches!(
            next.room_request(16),
            Err(Refusal::InvalidNext { .. })
        ));
    }

    #[test]
    fn ice_queries() {
        assert_eq!(ice(None), Ok(IceQuery::default()));
        assert_eq!(
            ice(Some("room=a%0Ab&ticket=t")),
            Ok(IceQuery {
                room: "a\nb".into(),
                ticket: Some("t".into()),
            })
        );
    }
}
