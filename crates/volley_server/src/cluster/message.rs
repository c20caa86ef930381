//! What cluster nodes tell each other over Redis pub/sub, as JSON.
//!
//! A node's channel is `<prefix>:to:<node id>`; what arrives there is read
//! like anything else from the network: size-capped, parsed strictly, a
//! signal's payload checked to be one JSON value (it is written into peers'
//! frames as it is), recipient lists bounded. A message that fails is
//! counted and dropped, never trusted.

use matchbox_protocol::PeerId;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::lobby::{RoomRequest, Seat, SeatClaim, ServerMessage, Watch};
use crate::refusal::Refusal;

/// Largest node message read: a signal (at most the server's message size,
/// 64 KiB by default) with room for its envelope.
pub const MAX_NODE_MESSAGE: usize = 256 * 1024;

/// Most recipients of one [`NodeMessage::Deliver`] (rooms hold at most
/// `--max-room-size` peers, 16 by default).
pub const MAX_RECIPIENTS: usize = 1024;

/// Longest node id, in bytes.
pub const MAX_NODE_ID: usize = 64;

/// A node's name in the cluster (`--node-id`): 1 to 64 characters from
/// `A-Za-z0-9_-.`, so that it can sit in Redis keys and channel names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

/// A node id outside the allowed characters or length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid node id {0:?}: 1 to 64 characters from A-Z a-z 0-9 _ - .")]
pub struct InvalidNodeId(pub String);

impl NodeId {
    /// Checks the characters and the length.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidNodeId> {
        let id = id.into();
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if id.is_empty() || id.len() > MAX_NODE_ID || !id.chars().all(valid) {
            return Err(InvalidNodeId(id.chars().take(80).collect()));
        }
        Ok(NodeId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for NodeId {
    type Err = InvalidNodeId;
    fn from_str(id: &str) -> Result<Self, Self::Err> {
        NodeId::new(id)
    }
}

impl TryFrom<String> for NodeId {
    type Error = InvalidNodeId;
    fn try_from(id: String) -> Result<Self, Self::Error> {
        NodeId::new(id)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> String {
        id.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One message between nodes. The origin node holds a peer's WebSocket; the
/// home node holds the [`crate::lobby::Lobby`] of the peer's room name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeMessage {
    /// Origin → home: a peer asks for a room of the home's.
    Join {
        /// The peer (ids are random UUIDs, unique across nodes).
        peer: PeerId,
        /// What it asked for.
        room: RoomRequest,
    },
    /// Origin → home: a peer relays signaling data.
    Signal {
        /// The sender (a peer of the origin).
        from: PeerId,
        /// The receiver it named.
        to: PeerId,
        /// One JSON value.
        data: String,
    },
    /// Origin → home: a peer's connection ended.
    Left {
        /// The peer.
        peer: PeerId,
        /// Without a goodbye: its seat is held (see
        /// [`crate::lobby::LobbyConfig::seat_hold`]).
        dropped: bool,
    },
    /// Home → origin: write `message` to these peers of the origin.
    Deliver {
        /// Recipients, all peers of the origin.
        to: Vec<PeerId>,
        /// What to write.
        message: ServerMessage,
    },
    /// Home → origin: close this peer with a reason (the home forgot it).
    Close {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: Refusal,
    },
}

/// Why a node message was not read.
#[derive(Debug, thiserror::Error)]
pub enum NodeMessageError {
    /// Over [`MAX_NODE_MESSAGE`].
    #[error("node message of {0} bytes (limit {MAX_NODE_MESSAGE})")]
    TooLarge(usize),
    /// Not the JSON of a node message (or a signal's payload not one JSON value).
    #[error("malformed node message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A join whose room name a client could not have sent.
    #[error("node message with an invalid room name")]
    InvalidRoom,
    /// A delivery to more than [`MAX_RECIPIENTS`] peers.
    #[error("node message to {0} peers (limit {MAX_RECIPIENTS})")]
    TooManyRecipients(usize),
}

/// The JSON shape; `data` is a raw JSON value so that decoding checks it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
enum Wire<'a> {
    Join {
        peer: PeerId,
        room: String,
        next: Option<usize>,
        #[serde(default)]
        resume: Option<SeatClaim>,
        /// A spectator's (left out otherwise, for nodes that predate it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        watch: Option<Watch>,
    },
    Signal {
        from: PeerId,
        to: PeerId,
        #[serde(borrow)]
        data: &'a RawValue,
    },
    Left {
        peer: PeerId,
        #[serde(default)]
        dropped: bool,
    },
    Deliver {
        to: Vec<PeerId>,
        message: WireMessage<'a>,
    },
    Close {
        peer: PeerId,
        reason: Refusal,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
enum WireMessage<'a> {
    IdAssigned(PeerId),
    NewPeer(PeerId),
    PeerLeft(PeerId),
    Signal {
        sender: PeerId,
        #[serde(borrow)]
        data: &'a RawValue,
    },
    Seat(Seat),
}

/// A room name as a client's would be checked (`next` is the home lobby's
/// to check, against its own room size).
fn checked_name(name: String) -> Result<String, NodeMessageError> {
    RoomRequest::parse(&name, None, 0).map_err(|_| NodeMessageError::InvalidRoom)?;
    Ok(name)
}

/// A signal's payload as a raw JSON value; the lobby only relays payloads
/// it parsed as JSON, so this cannot fail for them.
fn raw(data: &str) -> Result<&RawValue, serde_json::Error> {
    serde_json::from_str(data)
}

impl NodeMessage {
    /// The JSON text.
    pub fn encode(&self) -> Result<String, serde_json::Error> {
        let wire = match self {
            NodeMessage::Join { peer, room } => Wire::Join {
                peer: *peer,
                room: room.name.clone(),
                next: room.next,
                resume: room.resume,
                watch: room.watch,
            },
            NodeMessage::Signal { from, to, data } => Wire::Signal {
                from: *from,
                to: *to,
                data: raw(data)?,
            },
            NodeMessage::Left { peer, dropped } => Wire::Left {
                peer: *peer,
                dropped: *dropped,
            },
            NodeMessage::Deliver { to, message } => Wire::Deliver {
                to: to.clone(),
                message: match message {
                    ServerMessage::IdAssigned(p) => WireMessage::IdAssigned(*p),
                    ServerMessage::NewPeer(p) => WireMessage::NewPeer(*p),
                    ServerMessage::PeerLeft(p) => WireMessage::PeerLeft(*p),
                    ServerMessage::Signal { sender, data } => WireMessage::Signal {
                        sender: *sender,
                        data: raw(data)?,
                    },
                    ServerMessage::Seat(seat) => WireMessage::Seat(seat.clone()),
                },
            },
            NodeMessage::Close { peer, reason } => Wire::Close {
                peer: *peer,
                reason: reason.clone(),
            },
        };
        serde_json::to_string(&wire)
    }

    /// Reads a message from another node, checking it as untrusted input.
    pub fn decode(bytes: &[u8]) -> Result<Self, NodeMessageError> {
        if bytes.len() > MAX_NODE_MESSAGE {
            return Err(NodeMessageError::TooLarge(bytes.len()));
        }
        Ok(match serde_json::from_slice::<Wire<'_>>(bytes)? {
            Wire::Join {
                peer,
                room,
                next,
                resume,
                watch,
            } => NodeMessage::Join {
                peer,
                room: RoomRequest {
                    name: checked_name(room)?,
                    next,
                    resume,
                    watch,
                },
            },
            Wire::Signal { from, to, data } => NodeMessage::Signal {
                from,
                to,
                data: data.get().to_owned(),
            },
            Wire::Left { peer, dropped } => NodeMessage::Left { peer, dropped },
            Wire::Deliver { to, message } => {
                if to.len() > MAX_RECIPIENTS {
                    return Err(NodeMessageError::TooManyRecipients(to.len()));
                }
                let message = match message {
                    WireMessage::IdAssigned(p) => ServerMessage::IdAssigned(p),
                    WireMessage::NewPeer(p) => ServerMessage::NewPeer(p),
                    WireMessage::PeerLeft(p) => ServerMessage::PeerLeft(p),
                    WireMessage::Signal { sender, data } => ServerMessage::Signal {
                        sender,
                        data: data.get().to_owned(),
                    },
                    WireMessage::Seat(seat) => ServerMessage::Seat(Seat {
                        name: checked_name(seat.name)?,
                        ..seat
                    }),
                };
                NodeMessage::Deliver { to, message }
            }
            Wire::Close { peer, reason } => NodeMessage::Close { peer, reason },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> PeerId {
        PeerId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn every_message_round_trips() {
        let messages = [
            NodeMessage::Join {
                peer: id(1),
                room: RoomRequest {
                    name: "arena".into(),
                    next: Some(4),
                    resume: Some(SeatClaim {
                        group: Some(id(8)),
                        sealed: true,
                    }),
                    watch: None,
                },
            },
            NodeMessage::Join {
                peer: id(2),
                room: RoomRequest {
                    name: "arena".into(),
                    next: Some(2),
                    resume: None,
                    watch: Some(Watch { group: Some(id(8)) }),
                },
            },
            NodeMessage::Signal {
                from: id(1),
                to: id(2),
                data: r#"{"Offer":"v=0\r\n"}"#.into(),
            },
            NodeMessage::Left {
                peer: id(3),
                dropped: true,
            },
            NodeMessage::Deliver {
                to: vec![id(3)],
                message: ServerMessage::Seat(Seat {
                    name: "arena".into(),
                    next: None,
                    claim: SeatClaim {
                        group: None,
                        sealed: false,
                    },
                }),
            },
            NodeMessage::Deliver {
                to: vec![id(1), id(2)],
                message: ServerMessage::Signal {
                    sender: id(3),
                    data: "[1,2]".into(),
                },
            },
            NodeMessage::Deliver {
                to: vec![id(1)],
                message: ServerMessage::NewPeer(id(9)),
            },
            NodeMessage::Close {
                peer: id(4),
                reason: Refusal::RoomFull { capacity: 16 },
            },
        ];
        for message in messages {
            let text = message.encode().unwrap();
            assert_eq!(NodeMessage::decode(text.as_bytes()).unwrap(), message);
        }
        // A player's join reads as before spectators: nodes that predate
        // them refuse unknown fields.
        let join = NodeMessage::Join {
            peer: id(1),
            room: RoomRequest::parse("arena", Some("2"), 16).unwrap(),
        };
        assert!(!join.encode().unwrap().contains("watch"));
    }

    #[test]
    fn hostile_messages_are_refused() {
        let peer = "00000000-0000-0000-0000-000000000001";
        let bad_room = format!(r#"{{"Join":{{"peer":"{peer}","room":"a b","next":null}}}}"#);
        assert!(matches!(
            NodeMessage::decode(bad_room.as_bytes()),
            Err(NodeMessageError::InvalidRoom)
        ));
        let bad_seat = format!(
            r#"{{"Deliver":{{"to":["{peer}"],"message":{{"Seat":{{"name":"a/b","next":null,"claim":{{"group":null,"sealed":false}}}}}}}}}}"#
        );
        assert!(matches!(
            NodeMessage::decode(bad_seat.as_bytes()),
            Err(NodeMessageError::InvalidRoom)
        ));
        let extra = format!(r#"{{"Left":{{"peer":"{peer}","x":1}}}}"#);
        assert!(NodeMessage::decode(extra.as_bytes()).is_err());
        let big = vec![b' '; MAX_NODE_MESSAGE + 1];
        assert!(matches!(
            NodeMessage::decode(&big),
            Err(NodeMessageError::TooLarge(_))
        ));
        let many = format!(
            r#"{{"Deliver":{{"to":[{}],"message":{{"NewPeer":"{peer}"}}}}}}"#,
            vec![format!("\"{peer}\""); MAX_RECIPIENTS + 1].join(",")
        );
        assert!(matches!(
            NodeMessage::decode(many.as_bytes()),
            Err(NodeMessageError::TooManyRecipients(_))
        ));
        for garbage in [&b""[..], b"null", b"{\"Join\":{}}", b"\xff\xfe"] {
            assert!(NodeMessage::decode(garbage).is_err());
        }
    }

    #[test]
    fn node_ids_are_checked() {
        assert!(NodeId::new("node-1.eu").is_ok());
        for bad in ["", "a b", "a:b", &"x".repeat(65)] {
            assert!(NodeId::new(bad).is_err(), "{bad:?}");
        }
    }
}
