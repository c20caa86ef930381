//! Glue between the session and [`volley_net::replication::Election`]:
//! connections, departures, time, claims and handovers go in; a change of
//! authority makes us the [`Authority`] or a mirror of the new one. A claim
//! no honest peer makes counts against its sender.

use bevy::ecs::message::{MessageReader, MessageWriter};
use bevy::ecs::prelude::*;
use bevy::platform::time::Instant;
use tracing::debug;
use volley_net::replication::{
    Authority, Change, ClaimRefused, Election, ReplicationError, ReplicationMessage, Verdict,
};
use volley_net::{PeerId, Session, SessionEvent};

use super::{AuthorityChanged, Engine, HandOver, ReplicationReliable, ReplicationStatus};
use crate::{NetPeerEvent, VolleySession};

/// Feeds connections, departures and time into the election.
pub(super) fn elect_authority(
    volley: Option<ResMut<VolleySession>>,
    mut engine: ResMut<Engine>,
    mut status: ResMut<ReplicationStatus>,
    mut peer_events: MessageReader<NetPeerEvent>,
    mut changed: MessageWriter<AuthorityChanged>,
) {
    let events: Vec<SessionEvent> = peer_events.read().map(|e| e.0.clone()).collect();
    let Some(mut volley) = volley else { return };
    let session = volley.session();
    let Some(me) = session.id() else { return };
    let now = Instant::now();
    if engine.election.is_none() {
        let mut election = Election::new(me, now);
        for peer in session.connected_peers() {
            election.connected(peer, now);
        }
        engine.election = Some(election);
    }
    let mut changes = Vec::new();
    for event in &events {
        let Some(election) = engine.election.as_mut() else {
            return;
        };
        match event {
            SessionEvent::Connected(peer) => {
                election.connected(*peer, now);
                if let Some(authority) = engine.authority.as_mut() {
                    authority.add_peer(*peer);
                }
            }
            SessionEvent::Left(peer, _) => {
                changes.extend(election.left(*peer, now));
                if let Some(authority) = engine.authority.as_mut() {
                    authority.remove_peer(*peer);
                }
            }
            _ => {}
        }
    }
    if let Some(election) = engine.election.as_mut() {
        changes.extend(election.tick(now));
    }
    for change in changes {
        apply_change(&mut engine, &mut status, &mut changed, change);
    }
    sync(&mut engine, &mut status);
}

/// A replication message's say on who the authority is. Returns the
/// message when it is for the mirror or the authority (a world from the
/// authority we follow, an acknowledgement), `None` when it was consumed
/// (a handover, a held or refused claim).
pub(super) fn judge(
    engine: &mut Engine,
    status: &mut ReplicationStatus,
    changed: &mut MessageWriter<AuthorityChanged>,
    session: &mut Session,
    from: PeerId,
    message: ReplicationMessage,
) -> Option<ReplicationMessage> {
    let now = Instant::now();
    if let Err(e) = engine.mirror.validate(&message) {
        malformed(status, session, from, &e);
        return None;
    }
    let election = engine.election.as_mut()?;
    let (verdict, change) = match &message {
        ReplicationMessage::Handover { to } => {
            match election.handover(from, *to, now) {
                Ok(change) => {
                    if let Some(change) = change {
                        apply_change(engine, status, changed, change);
                    }
                }
                Err(refused) => forged(status, session, from, refused),
            }
            return None;
        }
        ReplicationMessage::Ack { .. } => return Some(message),
        ReplicationMessage::Full { term, .. } | ReplicationMessage::Delta { term, .. } => {
            election.claim(from, *term, now)
        }
    };
    if let Some(change) = change {
        apply_change(engine, status, changed, change);
    }
    match verdict {
        Verdict::Follow => Some(message),
        Verdict::Ignore => None,
        Verdict::Hold => {
            // Only a full world is worth keeping: deltas need its baseline.
            if matches!(message, ReplicationMessage::Full { .. })
                && let Some(election) = engine.election.as_mut()
            {
                election.keep(from, message);
            }
            None
        }
        Verdict::Refused(refused) => {
            forged(status, session, from, refused);
            None
        }
    }
}

/// A world no honest authority sends: counted, and a strike for its sender.
pub(super) fn malformed(
    status: &mut ReplicationStatus,
    session: &mut Session,
    from: PeerId,
    why: &ReplicationError,
) {
    status.invalid_messages += 1;
    debug!("volley: replication message from {from} refused: {why}");
    session.report_invalid(from, why);
}

fn forged(status: &mut ReplicationStatus, session: &mut Session, from: PeerId, why: ClaimRefused) {
    status.forged_claims += 1;
    debug!("volley: forged authority claim from {from}: {why}");
    session.report_invalid(from, &why);
}

/// Makes us the authority or a mirror of the new one.
fn apply_change(
    engine: &mut Engine,
    status: &mut ReplicationStatus,
    changed: &mut MessageWriter<AuthorityChanged>,
    change: Change<ReplicationMessage>,
) {
    status.authority = Some(change.new);
    status.term = change.term;
    status.is_authority = change.is_us;
    engine.processed.clear();
    if change.is_us {
        let mut authority = Authority::new();
        authority.set_budget(engine.budget);
        authority.set_term(change.term);
        for peer in engine.election.iter().flat_map(Election::peers) {
            authority.add_peer(peer);
        }
        engine.authority = Some(authority);
        // Our world is the mirror's latest: go on from its tick.
        status.tick = engine.applied.map_or(status.tick, |t| t.max(status.tick));
    } else {
        engine.authority = None;
        engine.mirror.reset();
        engine.applied = None;
        engine.replay = change.confirmed.map(|message| (change.new, message));
    }
    debug!(
        "volley: replication authority {} at term {} (us: {})",
        change.new, change.term, change.is_us
    );
    changed.write(AuthorityChanged {
        old: change.old,
        new: change.new,
        is_us: change.is_us,
    });
}

/// Mirrors the election's state into the status and our authority.
fn sync(engine: &mut Engine, status: &mut ReplicationStatus) {
    let Some(election) = engine.election.as_ref() else {
        return;
    };
    let (authority, term, unconfirmed) = (
        election.authority(),
        election.term(),
        election.unconfirmed(),
    );
    if authority.is_none() && status.authority.is_some() {
        // A silent authority was forgotten: wait for one to speak.
        status.authority = None;
        status.is_authority = false;
        engine.authority = None;
    }
    status.term = term;
    status.unconfirmed_claims = unconfirmed;
    if let Some(ours) = engine.authority.as_mut() {
        ours.set_term(term);
    }
}

/// On the authority: hands over when asked, telling every peer first.
pub(super) fn hand_over(
    mut requests: MessageReader<HandOver>,
    volley: Option<ResMut<VolleySession>>,
    mut engine: ResMut<Engine>,
    mut status: ResMut<ReplicationStatus>,
    mut changed: MessageWriter<AuthorityChanged>,
) {
    let Some(HandOver(to)) = requests.read().last().copied() else {
        return;
    };
    let Some(mut volley) = volley else { return };
    let now = Instant::now();
    let Some(change) = engine.election.as_mut().and_then(|e| e.hand_over(to, now)) else {
        return;
    };
    let session = volley.session();
    let peers: Vec<PeerId> = session.connected_peers().collect();
    for peer in &peers {
        if let Err(e) = session.send(
            *peer,
            &ReplicationReliable(ReplicationMessage::Handover { to }),
        ) {
            debug!("volley: handover not sent to {peer}: {e}");
        }
    }
    // We become a mirror of the new authority (from its next full world);
    // the world we had stays as it is until then.
    apply_change(&mut engine, &mut status, &mut changed, change);
}
