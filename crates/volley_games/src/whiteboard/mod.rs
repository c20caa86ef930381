//! whiteboard: a shared canvas. Everyone's cursor and strokes appear for
//! everyone live; strokes stay when their author leaves, and a latecomer
//! sees everything drawn before.
//!
//! The board is replicated state ([`bevy_volley::replication`]): only the
//! authority changes it, so every peer — the authority included — sends
//! its pen as [`Pen`] requests, and the authority turns them into
//! [`Stroke`] and [`Cursor`] entities. When the authority leaves, the next
//! one already has the board and goes on. Drawing and mouse input:
//! [`render`] (feature `render`).

#[cfg(feature = "render")]
pub mod render;

use bevy::prelude::*;
use bevy_volley::prelude::*;
use bevy_volley::replication::{
    NetEntity, Replicated, ReplicationAppExt, ReplicationPlugin, ReplicationStatus, is_authority,
};
use serde::{Deserialize, Serialize};

/// The app version every whiteboard peer announces.
pub const APP_VERSION: &str = "whiteboard-1";

/// Points a stroke may hold; a longer line continues in a new stroke.
pub const MAX_POINTS: usize = 512;

/// Strokes kept on the board; the oldest go first.
pub const MAX_STROKES: usize = 2_000;

/// Coordinates on the board, in pixels from its centre (y up).
pub type Point = (i16, i16);

/// A finished or growing line.
#[derive(Component, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stroke {
    /// Who drew it.
    pub author: PeerId,
    /// The author's stroke number.
    pub number: u32,
    /// Its colour (index into the palette).
    pub color: u8,
    /// The points, in drawing order.
    pub points: Vec<Point>,
    /// Board-wide order of creation (older strokes are removed first).
    pub order: u64,
}

/// A peer's pointer on the board.
#[derive(Component, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Whose.
    pub peer: PeerId,
    /// Where.
    pub at: Point,
    /// Its colour.
    pub color: u8,
}

/// What a peer's pen does, sent to the authority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Pen {
    /// The pointer moved (unreliable: the next one replaces it).
    Move(Point),
    /// A new stroke starts at a point.
    Down {
        /// The author's stroke number.
        number: u32,
        /// Colour.
        color: u8,
        /// First point.
        at: Point,
    },
    /// The stroke goes on.
    Line {
        /// The author's stroke number.
        number: u32,
        /// The next points.
        points: Vec<Point>,
    },
}

/// Pen messages that must arrive (strokes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PenReliable(pub Pen);

/// Pen messages that may be lost (pointer moves).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PenUnreliable(pub Pen);

/// Pen actions of this peer, written by input (or a test) and delivered to
/// the authority by [`WhiteboardPlugin`].
#[derive(Message, Debug, Clone, PartialEq)]
pub struct LocalPen(pub Pen);

/// The board's state and rules (no rendering).
pub struct WhiteboardPlugin {
    /// Replication ticks per second.
    pub tick_rate: u32,
}

impl Default for WhiteboardPlugin {
    fn default() -> Self {
        WhiteboardPlugin { tick_rate: 30 }
    }
}

/// Pen actions waiting for the authority (ours and others').
#[derive(Resource, Default)]
struct Inbox(Vec<(PeerId, Pen)>);

/// Board-wide stroke counter (on the authority).
#[derive(Resource, Default)]
struct NextOrder(u64);

impl Plugin for WhiteboardPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(ReplicationPlugin::default().tick_rate(self.tick_rate))
            .replicate::<Stroke>()
            .replicate::<Cursor>()
            .add_net_message::<PenReliable>(Channel::Reliable)
            .add_net_message::<PenUnreliable>(Channel::Unreliable)
            .add_message::<LocalPen>()
            .init_resource::<Inbox>()
            .init_resource::<NextOrder>()
            .add_systems(
                Update,
                (
                    send_pen,
                    collect_pen,
                    (apply_pen, drop_cursors_of_leavers, trim).run_if(is_authority),
                )
                    .chain(),
            );
    }
}

/// Our pen goes to the authority (or straight into the inbox when we are it).
fn send_pen(
    mut local: MessageReader<LocalPen>,
    status: Res<ReplicationStatus>,
    mut volley: Option<ResMut<VolleySession>>,
    mut inbox: ResMut<Inbox>,
) {
    let me = volley.as_mut().and_then(|v| v.session().id());
    for LocalPen(pen) in local.read() {
        let (Some(me), Some(authority)) = (me, status.authority) else {
            continue; // not connected yet: nowhere to draw
        };
        if status.is_authority {
            inbox.0.push((me, pen.clone()));
            continue;
        }
        let Some(volley) = volley.as_mut() else {
            continue;
        };
        let sent = match pen {
            Pen::Move(_) => volley
                .session()
                .send(authority, &PenUnreliable(pen.clone())),
            _ => volley.session().send(authority, &PenReliable(pen.clone())),
        };
        if let Err(e) = sent {
            tracing::debug!("whiteboard: pen not sent: {e}");
        }
    }
}

/// Pen messages from peers, for the authority.
fn collect_pen(
    mut reliable: MessageReader<NetReceived<PenReliable>>,
    mut unreliable: MessageReader<NetReceived<PenUnreliable>>,
    status: Res<ReplicationStatus>,
    mut inbox: ResMut<Inbox>,
) {
    let incoming = reliable
        .read()
        .map(|m| (m.from, m.message.0.clone()))
        .chain(unreliable.read().map(|m| (m.from, m.message.0.clone())));
    if status.is_authority {
        inbox.0.extend(incoming);
    } else {
        inbox.0.clear();
    }
}

/// A stable colour for a peer.
pub fn color_of(peer: PeerId) -> u8 {
    (peer.0.as_u128() % 8) as u8
}

fn clamp_point((x, y): Point) -> Point {
    (x.clamp(-2000, 2000), y.clamp(-2000, 2000))
}

/// The authority turns pen actions into board entities.
fn apply_pen(
    mut commands: Commands,
    mut inbox: ResMut<Inbox>,
    mut next: ResMut<NextOrder>,
    mut strokes: Query<&mut Stroke>,
    mut cursors: Query<&mut Cursor>,
) {
    let pending: Vec<(PeerId, Pen)> = std::mem::take(&mut inbox.0);
    let mut pending = pending.into_iter();
    let mut started_now: Vec<(PeerId, u32)> = Vec::new();
    while let Some((peer, pen)) = pending.next() {
        match pen {
            Pen::Move(at) => {
                let at = clamp_point(at);
                match cursors.iter_mut().find(|c| c.peer == peer) {
                    Some(mut cursor) => cursor.at = at,
                    None => {
                        commands.spawn((
                            Replicated,
                            Cursor {
                                peer,
                                at,
                                color: color_of(peer),
                            },
                        ));
                    }
                }
            }
            Pen::Down { number, color, at } => {
                started_now.push((peer, number));
                next.0 += 1;
                commands.spawn((
                    Replicated,
                    Stroke {
                        author: peer,
                        number,
                        color: color % 8,
                        points: vec![clamp_point(at)],
                        order: next.0,
                    },
                ));
            }
            Pen::Line { number, points } => {
                // Started by a Down this frame? Then the stroke is not
                // queryable yet: this and what follows wait a frame, in order.
                if let Some(mut stroke) = strokes
                    .iter_mut()
                    .find(|s| s.author == peer && s.number == number)
                {
                    let room = MAX_POINTS.saturating_sub(stroke.points.len());
                    stroke
                        .points
                        .extend(points.into_iter().take(room).map(clamp_point));
                } else if started_now.contains(&(peer, number)) {
                    inbox.0.push((peer, Pen::Line { number, points }));
                    inbox.0.extend(pending);
                    return;
                }
                // Otherwise a stroke this authority never saw start (it
                // took over mid-stroke): its points are dropped.
            }
        }
    }
}

/// Cursors go with their peer; strokes stay.
fn drop_cursors_of_leavers(
    mut commands: Commands,
    mut events: MessageReader<NetPeerEvent>,
    cursors: Query<(Entity, &Cursor)>,
) {
    for NetPeerEvent(event) in events.read() {
        if let SessionEvent::Left(peer, _) = event {
            for (entity, cursor) in &cursors {
                if cursor.peer == *peer {
                    commands.entity(entity).despawn();
                }
            }
        }
    }
}

/// Keeps the board within [`MAX_STROKES`].
fn trim(mut commands: Commands, strokes: Query<(Entity, &Stroke), With<NetEntity>>) {
    let count = strokes.iter().count();
    if count <= MAX_STROKES {
        return;
    }
    let mut by_age: Vec<(u64, Entity)> = strokes.iter().map(|(e, s)| (s.order, e)).collect();
    by_age.sort_unstable();
    for (_, entity) in by_age.into_iter().take(count - MAX_STROKES) {
        commands.entity(entity).despawn();
    }
}
