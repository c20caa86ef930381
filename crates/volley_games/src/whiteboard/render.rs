//! Drawing the board with gizmos, and the mouse as the pen.

use bevy::prelude::*;
use bevy::window::PrimaryWindow;
use bevy_volley::prelude::*;
use bevy_volley::replication::ReplicationStatus;

use super::{Cursor, LocalPen, Pen, Point, Stroke, color_of};
use crate::hud::{Hud, HudPlugin};

/// The palette, by colour index.
pub const PALETTE: [Color; 8] = [
    Color::srgb(0.30, 0.65, 1.00),
    Color::srgb(1.00, 0.42, 0.36),
    Color::srgb(0.42, 0.90, 0.45),
    Color::srgb(0.95, 0.80, 0.30),
    Color::srgb(0.80, 0.50, 1.00),
    Color::srgb(0.30, 0.90, 0.90),
    Color::srgb(1.00, 0.60, 0.80),
    Color::srgb(0.90, 0.90, 0.90),
];

/// Mouse input, the board drawn, a status line.
pub struct WhiteboardRenderPlugin;

impl Plugin for WhiteboardRenderPlugin {
    fn build(&self, app: &mut App) {
        if !app.is_plugin_added::<HudPlugin>() {
            app.add_plugins(HudPlugin);
        }
        app.init_resource::<PenState>()
            .add_systems(Startup, setup)
            .add_systems(Update, (mouse, draw, status_line));
    }
}

#[derive(Resource, Default)]
struct PenState {
    number: u32,
    drawing: bool,
    last: Option<Point>,
}

#[derive(Component)]
struct StatusLine;

fn setup(mut commands: Commands) {
    commands.spawn(Camera2d);
    commands.spawn((
        Hud::top_left(16.0).at(12.0, 8.0).text("connecting..."),
        StatusLine,
    ));
}

/// The pointer moves the cursor; the left button draws.
fn mouse(
    windows: Query<&Window, With<PrimaryWindow>>,
    cameras: Query<(&Camera, &GlobalTransform)>,
    buttons: Res<ButtonInput<MouseButton>>,
    mut volley: Option<ResMut<VolleySession>>,
    mut pen: ResMut<PenState>,
    mut out: MessageWriter<LocalPen>,
) {
    let (Ok(window), Ok((camera, transform))) = (windows.single(), cameras.single()) else {
        return;
    };
    let Some(at) = window
        .cursor_position()
        .and_then(|p| camera.viewport_to_world_2d(transform, p).ok())
        .map(|p| (p.x.round() as i16, p.y.round() as i16))
    else {
        if pen.drawing && !buttons.pressed(MouseButton::Left) {
            pen.drawing = false;
        }
        return;
    };
    let moved = pen.last != Some(at);
    if moved {
        out.write(LocalPen(Pen::Move(at)));
    }
    let me = volley.as_mut().and_then(|v| v.session().id());
    if buttons.just_pressed(MouseButton::Left) {
        pen.number += 1;
        pen.drawing = true;
        let color = me.map_or(0, color_of);
        out.write(LocalPen(Pen::Down {
            number: pen.number,
            color,
            at,
        }));
    } else if pen.drawing && buttons.pressed(MouseButton::Left) && moved {
        out.write(LocalPen(Pen::Line {
            number: pen.number,
            points: vec![at],
        }));
    }
    if !buttons.pressed(MouseButton::Left) {
        pen.drawing = false;
    }
    pen.last = Some(at);
}

fn point(p: Point) -> Vec2 {
    Vec2::new(f32::from(p.0), f32::from(p.1))
}

fn draw(mut gizmos: Gizmos, strokes: Query<&Stroke>, cursors: Query<&Cursor>) {
    let mut ordered: Vec<&Stroke> = strokes.iter().collect();
    ordered.sort_by_key(|s| s.order);
    for stroke in ordered {
        let color = PALETTE[usize::from(stroke.color) % PALETTE.len()];
        if stroke.points.len() == 1 {
            gizmos.circle_2d(
                Isometry2d::from_translation(point(stroke.points[0])),
                1.5,
                color,
            );
        } else {
            gizmos.linestrip_2d(stroke.points.iter().copied().map(point), color);
        }
    }
    for cursor in &cursors {
        let color = PALETTE[usize::from(cursor.color) % PALETTE.len()];
        gizmos.circle_2d(Isometry2d::from_translation(point(cursor.at)), 6.0, color);
    }
}

fn status_line(
    state: Res<State<ConnectionState>>,
    status: Res<ReplicationStatus>,
    stats: Res<NetStats>,
    strokes: Query<(), With<Stroke>>,
    mut hud: Query<&mut Hud, With<StatusLine>>,
) {
    let Ok(mut hud) = hud.single_mut() else {
        return;
    };
    let authority = match (status.authority, status.is_authority) {
        (_, true) => "you".to_string(),
        (Some(a), false) => a.0.to_string()[..8].to_string(),
        (None, _) => "-".to_string(),
    };
    hud.set(format!(
        "whiteboard - {:?} - {} peers - authority {authority} - {} strokes - draw with the left mouse button",
        state.get(),
        stats.peers.len() + 1,
        strokes.iter().count()
    ));
}
