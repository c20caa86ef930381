//! matchbox's JSON wire protocol, on the server side.
//!
//! Requests are parsed with the signal payload kept as raw JSON (it is relayed,
//! never interpreted), and events are written directly: the only variable
//! parts are UUIDs, whose text form needs no escaping, and a payload that was
//! already validated as JSON when it arrived. Tests check the output against
//! `matchbox_protocol`'s own serde types.

use matchbox_protocol::{PeerId, PeerRequest};
use serde_json::value::RawValue;

use crate::lobby::ServerMessage;

/// A parsed client request.
#[derive(Debug)]
pub enum Request {
    /// Relay `data` (raw JSON text) to `to`.
    Signal {
        /// The receiver.
        to: PeerId,
        /// The raw JSON value.
        data: String,
    },
    /// Keeps idle connections open through proxies; nothing to do.
    KeepAlive,
}

/// Parses a text frame as a matchbox `PeerRequest`.
pub fn decode_request(text: &str) -> Result<Request, serde_json::Error> {
    Ok(
        match serde_json::from_str::<PeerRequest<Box<RawValue>>>(text)? {
            PeerRequest::Signal { receiver, data } => Request::Signal {
                to: receiver,
                data: Box::<str>::from(data).into(),
            },
            PeerRequest::KeepAlive => Request::KeepAlive,
        },
    )
}

/// Writes a server message as a matchbox `PeerEvent` JSON text; `None`
/// for a seat, which each receiver gets as its own token
/// ([`encode_token`]).
pub fn encode(message: &ServerMessage) -> Option<String> {
    Some(match message {
        ServerMessage::IdAssigned(id) => format!(r#"{{"IdAssigned":"{}"}}"#, id.0),
        ServerMessage::NewPeer(id) => format!(r#"{{"NewPeer":"{}"}}"#, id.0),
        ServerMessage::PeerLeft(id) => format!(r#"{{"PeerLeft":"{}"}}"#, id.0),
        ServerMessage::Signal { sender, data } => {
            format!(r#"{{"Signal":{{"sender":"{}","data":{data}}}}}"#, sender.0)
        }
        ServerMessage::Seat(_) => return None,
    })
}

/// Writes a resume token (see [`crate::resume`]: base64url and digits
/// only, nothing to escape) as volley's own event.
pub fn encode_token(token: &str) -> String {
    format!(r#"{{"ResumeToken":"{token}"}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;
    use matchbox_protocol::JsonPeerEvent;
    use std::str::FromStr;
    use uuid::Uuid;

    #[test]
    fn encoding_matches_matchbox_protocol() {
        let a = PeerId(Uuid::from_u128(0x1234));
        let Request::Signal { to, data } =
            decode_request(r#"{"Signal":{"receiver":"00000000-0000-0000-0000-000000001234","data":{"Offer":"v=0\r\n\"x\""}}}"#)
                .unwrap()
        else {
            panic!("not a signal")
        };
        assert_eq!(to, a);
        let cases = [
            (ServerMessage::IdAssigned(a), JsonPeerEvent::IdAssigned(a)),
            (ServerMessage::NewPeer(a), JsonPeerEvent::NewPeer(a)),
            (ServerMessage::PeerLeft(a), JsonPeerEvent::PeerLeft(a)),
            (
                ServerMessage::Signal { sender: a, data },
                JsonPeerEvent::Signal {
                    sender: a,
                    data: serde_json::json!({"Offer": "v=0\r\n\"x\""}),
                },
            ),
        ];
        for (ours, theirs) in cases {
            let text = encode(&ours).unwrap();
            assert_eq!(JsonPeerEvent::from_str(&text).unwrap(), theirs, "{text}");
        }
    }

    #[test]
    fn keep_alive_and_garbage() {
        assert!(matches!(
            decode_request(r#""KeepAlive""#),
            Ok(Request::KeepAlive)
        ));
        for bad in [
            "",
            "{",
            "null",
            r#"{"Signal":{}}"#,
            r#"{"Signal":{"receiver":"x","data":1}}"#,
        ] {
            assert!(decode_request(bad).is_err(), "{bad}");
        }
    }
}
