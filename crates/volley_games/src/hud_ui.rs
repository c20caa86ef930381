//! [`Hud`] and [`HudBars`] drawn by Bevy's UI (feature `ui`: the desktop).

use bevy::prelude::*;

use crate::hud::{Corner, Hud, HudBars};

pub(crate) fn build(app: &mut App) {
    app.add_systems(
        PostUpdate,
        (add_text, add_bars, sync_text, sync_bars).chain(),
    );
}

/// An absolutely placed node at `offset` from `corner`.
fn placed(corner: Corner, offset: Vec2) -> Node {
    let mut node = Node {
        position_type: PositionType::Absolute,
        left: px(offset.x),
        ..default()
    };
    match corner {
        Corner::TopLeft => node.top = px(offset.y),
        Corner::BottomLeft => node.bottom = px(offset.y),
    }
    node
}

fn add_text(mut commands: Commands, added: Query<(Entity, &Hud), Added<Hud>>) {
    for (entity, hud) in &added {
        commands.entity(entity).insert((
            Text::new(hud.text.clone()),
            TextFont::from_font_size(hud.size),
            TextColor(hud.color),
            placed(hud.corner, hud.offset),
        ));
    }
}

fn sync_text(mut changed: Query<(&Hud, &mut Text, &mut TextColor), Changed<Hud>>) {
    for (hud, mut text, mut color) in &mut changed {
        if text.0 != hud.text {
            text.0.clone_from(&hud.text);
        }
        color.set_if_neq(TextColor(hud.color));
    }
}

/// One bar of a [`HudBars`]: its index.
#[derive(Component)]
struct Bar(usize);

fn add_bars(mut commands: Commands, added: Query<(Entity, &HudBars), Added<HudBars>>) {
    for (entity, bars) in &added {
        let node = Node {
            height: px(bars.height),
            align_items: AlignItems::End,
            column_gap: px(1.0),
            ..placed(bars.corner, bars.offset)
        };
        commands.entity(entity).insert(node).with_children(|row| {
            for i in 0..bars.values.len() {
                row.spawn((
                    Node {
                        width: px(bars.bar_width),
                        height: px(0.0),
                        ..default()
                    },
                    BackgroundColor(bars.color),
                    Bar(i),
                ));
            }
        });
    }
}

fn sync_bars(
    changed: Query<(&HudBars, &Children), Changed<HudBars>>,
    mut nodes: Query<(&Bar, &mut Node)>,
) {
    for (bars, children) in &changed {
        for child in children {
            if let Ok((Bar(i), mut node)) = nodes.get_mut(*child) {
                let value = bars.values.get(*i).copied().unwrap_or(0.0);
                node.height = px(value.clamp(0.0, 1.0) * bars.height);
            }
        }
    }
}
