//! Replication messages from peers: first their say on who the authority
//! is (see `election.rs`), then into the mirror (worlds from the authority)
//! or our authority (acknowledgements). A malformed world counts against
//! its sender.

use bevy::ecs::message::{MessageReader, MessageWriter};
use bevy::ecs::prelude::*;
use tracing::debug;
use volley_net::PeerId;
use volley_net::replication::ReplicationMessage;

use super::election::{judge, malformed};
use super::{
    AuthorityChanged, Engine, ReplicationReliable, ReplicationStatus, ReplicationUnreliable,
};
use crate::{NetReceived, VolleySession};

/// Feeds replication messages into the mirror (from the authority) or the
/// authority (acknowledgements).
pub(super) fn receive(
    volley: Option<ResMut<VolleySession>>,
    mut engine: ResMut<Engine>,
    mut status: ResMut<ReplicationStatus>,
    mut changed: MessageWriter<AuthorityChanged>,
    mut reliable: MessageReader<NetReceived<ReplicationReliable>>,
    mut unreliable: MessageReader<NetReceived<ReplicationUnreliable>>,
) {
    let replay = engine.replay.take();
    let incoming: Vec<(PeerId, ReplicationMessage)> = reliable
        .read()
        .map(|m| (m.from, m.message.0.clone()))
        .chain(unreliable.read().map(|m| (m.from, m.message.0.clone())))
        .collect();
    let Some(mut volley) = volley else { return };
    let session = volley.session();
    // A confirmed claim's world: from the authority already.
    if let Some((from, message)) = replay {
        to_mirror(&mut engine, &mut status, session, from, message);
    }
    for (from, message) in incoming {
        let Some(message) = judge(
            &mut engine,
            &mut status,
            &mut changed,
            session,
            from,
            message,
        ) else {
            continue;
        };
        if let ReplicationMessage::Ack { tick } = message {
            let followed = engine
                .authority
                .as_mut()
                .is_some_and(|authority| authority.ack(from, tick));
            if followed && let Some(election) = engine.election.as_mut() {
                election.acked(from);
            }
            continue;
        }
        if engine.authority.is_some() || Some(from) != status.authority {
            continue; // a former authority's last words
        }
        to_mirror(&mut engine, &mut status, session, from, message);
    }
}

fn to_mirror(
    engine: &mut Engine,
    status: &mut ReplicationStatus,
    session: &mut volley_net::Session,
    from: PeerId,
    message: ReplicationMessage,
) {
    match engine.mirror.receive(message) {
        Ok(Some(ack)) => {
            if let Err(e) = session.send(from, &ReplicationUnreliable(ack)) {
                debug!("volley: ack not sent: {e}");
            }
        }
        Ok(None) => {}
        Err(e) if e.is_malformed() => malformed(status, session, from, &e),
        // A delta that overtook the full world it builds on: expected.
        Err(e) => debug!("volley: replication message from {from} dropped: {e}"),
    }
}
