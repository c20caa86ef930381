//! What a client writes into a URL, read without any I/O: the signaling
//! join (`/<room>?next=N&ticket=T`, a spectator's `/<room>?spectate` or
//! `/<room>?next=N&spectate=<group id>`) and `/api/ice?room=R&ticket=T`. Kept
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

use crate::lobby::{PeerId, RoomRequest, Watch};
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
    /// `?spectate` (empty: watch the named room) or `?spectate=<group id>`
    /// (with `?next=N`: watch that group), checked by [`Join::room_request`].
    pub spectate: Option<String>,
}

#[derive(Deserialize)]
struct JoinQuery {
    next: Option<String>,
    ticket: Option<String>,
    resume: Option<String>,
    spectate: Option<String>,
}

/// Splits the signaling URL (`path`, and the query after `?` if any).
pub fn join<'a>(path: &'a str, query: Option<&str>) -> Result<Join<'a>, QueryError> {
    let JoinQuery {
        next,
        ticket,
        resume,
        spectate,
    } = form(query)?;
    Ok(Join {
        room: path.trim_start_matches('/'),
        next,
        ticket,
        resume,
        spectate,
    })
}

impl Join<'_> {
    /// What the peer asks the lobby for; refused (after the upgrade, as a
    /// close frame) when the room name, `next` or `spectate` is invalid,
    /// or when a spectator brings a resume token.
    pub fn room_request(&self, max_room_size: usize) -> Result<RoomRequest, Refusal> {
        let mut request = RoomRequest::parse(self.room, self.next.as_deref(), max_room_size)?;
        if let Some(value) = &self.spectate {
            if self.token().is_some() {
                return Err(Watch::invalid(value));
            }
            request.watch = Some(Watch::parse(value, request.next)?);
        }
        Ok(request)
    }

    /// Whether the client takes resume tokens (`?resume`, with or without
    /// one). A spectator never does: it has no seat to come back to.
    pub fn wants_tokens(&self) -> bool {
        self.resume.is_some() && self.spectate.is_none()
    }

    /// A returning peer (`?resume=<token>`): its id and seat, checked
    /// against `secret` at `now` (unix seconds) and against the URL's room
    /// and `next`. `Ok(None)` for a newcomer, and for a spectator (whose
    /// token [`Join::room_request`] refuses).
    pub fn resumed(
        &self,
        secret: &[u8],
        now: u64,
    ) -> Result<Option<(PeerId, RoomRequest)>, ResumeError> {
        let Some(token) = self.token().filter(|_| self.spectate.is_none()) else {
            return Ok(None);
        };
        let (peer, seat) = resume::verify(secret, token, now)?;
        let next = self.next.as_deref().map(str::parse::<usize>);
        if seat.name != self.room || next.map(Result::ok) != seat.next.map(Some) {
            return Err(ResumeError::WrongRoom);
        }
        Ok(Some((peer, seat.request())))
    }

    /// `?resume=<token>`'s token, if not empty.
    fn token(&self) -> Option<&str> {
        self.resume.as_deref().filter(|t| !t.is_empty())
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
                watch: None,
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
        for query in [
            "next=2&next=3",
            "ticket=a&ticket=a",
            "resume&resume=x",
            "spectate&spectate",
        ] {
            assert!(join("/r", Some(query)).is_err(), "{query}");
        }
        assert!(ice(Some("room=a&room=b")).is_err());
    }

    #[test]
    fn spectators_name_a_room_or_a_group() {
        let group = PeerId(uuid::Uuid::from_u128(9));
        let watch = |room: &str, query: &str| join(room, Some(query)).unwrap().room_request(16);
        let named = watch("/arena", "spectate").unwrap();
        assert_eq!(named.watch, Some(Watch { group: None }));
        assert_eq!((named.name.as_str(), named.next), ("arena", None));
        let query = format!("next=2&spectate={group}");
        let grouped = watch("/arena", &query).unwrap();
        assert_eq!(grouped.watch, Some(Watch { group: Some(group) }));
        assert_eq!(grouped.next, Some(2));
        assert_eq!(watch("/arena", "").unwrap().watch, None);
        // Without an id: the name's match in play.
        let any = watch("/arena", "next=2&spectate").unwrap();
        assert_eq!(
            (any.watch, any.next),
            (Some(Watch { group: None }), Some(2))
        );
        // A group id needs its `next`; ids are UUIDs.
        for query in [
            format!("spectate={group}"),
            "next=2&spectate=abc".into(),
            "spectate=%FF".into(),
        ] {
            assert!(
                matches!(
                    watch("/arena", &query),
                    Err(Refusal::InvalidSpectate { .. })
                ),
                "{query}"
            );
        }
        // A spectator asking for tokens gets none; one bringing a token is
        // refused (and the token is not even read).
        let asks = join("/arena", Some("spectate&resume")).unwrap();
        assert!(!asks.wants_tokens());
        assert!(asks.room_request(16).is_ok());
        let token = join("/arena", Some("spectate&resume=1.x.y")).unwrap();
        assert_eq!(token.resumed(b"k", 1), Ok(None));
        assert!(matches!(
            token.room_request(16),
            Err(Refusal::InvalidSpectate { .. })
        ));
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
