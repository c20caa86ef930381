//! [`Hud`] and [`HudBars`] as DOM elements over the canvas (the browser
//! without the `ui` feature): `position: fixed` above the canvas, below
//! the page's loader and notices, and transparent to the pointer.

use std::collections::HashMap;

use bevy::prelude::*;
use web_sys::{Document, Element};

use crate::hud::{Corner, Hud, HudBars};

pub(crate) fn build(app: &mut App) {
    app.insert_non_send(Elements::default())
        .add_systems(PostUpdate, (show_text, show_bars, remove));
}

/// The page's element of each HUD entity (the browser's objects stay on the
/// page's one thread, hence a non-send resource).
#[derive(Default)]
struct Elements(HashMap<Entity, Element>);

/// The placement part of an element's style.
fn placement(corner: Corner, offset: Vec2) -> String {
    let edge = match corner {
        Corner::TopLeft => "top",
        Corner::BottomLeft => "bottom",
    };
    format!(
        "position:fixed;z-index:1;pointer-events:none;user-select:none;left:{}px;{edge}:{}px;",
        offset.x, offset.y
    )
}

/// `color` as CSS (`#rrggbb`).
fn css(color: Color) -> String {
    color.to_srgba().to_hex()
}

/// The element shown for `entity`, made with `style` (and `fill`ed) the
/// first time; `None` when the page refuses.
fn element_of(
    elements: &mut Elements,
    entity: Entity,
    style: &str,
    fill: impl FnOnce(&Document, &Element) -> Option<()>,
) -> Option<Element> {
    if let Some(element) = elements.0.get(&entity) {
        return Some(element.clone());
    }
    let document = web_sys::window()?.document()?;
    let element = document.create_element("div").ok()?;
    element.set_attribute("class", "volley-hud").ok()?;
    element.set_attribute("style", style).ok()?;
    fill(&document, &element)?;
    document.body()?.append_child(&element).ok()?;
    elements.0.insert(entity, element.clone());
    Some(element)
}

/// Sets an element's style only when it differs (no restyle otherwise).
fn set_style(element: &Element, style: &str) {
    if element.get_attribute("style").as_deref() != Some(style) {
        let _ = element.set_attribute("style", style);
    }
}

fn show_text(mut elements: NonSendMut<Elements>, changed: Query<(Entity, &Hud), Changed<Hud>>) {
    for (entity, hud) in &changed {
        let style = format!(
            "{}font:{}px ui-monospace,monospace;color:{};white-space:pre;",
            placement(hud.corner, hud.offset),
            hud.size,
            css(hud.color)
        );
        let Some(element) = element_of(&mut elements, entity, &style, |_, _| Some(())) else {
            continue;
        };
        set_style(&element, &style);
        if element.text_content().as_deref() != Some(hud.text.as_str()) {
            element.set_text_content(Some(&hud.text));
        }
    }
}

fn show_bars(
    mut elements: NonSendMut<Elements>,
    changed: Query<(Entity, &HudBars), Changed<HudBars>>,
) {
    for (entity, bars) in &changed {
        let style = format!(
            "{}display:flex;align-items:flex-end;gap:1px;height:{}px;",
            placement(bars.corner, bars.offset),
            bars.height
        );
        let add_bars = |document: &Document, row: &Element| {
            for _ in &bars.values {
                let bar = document.create_element("div").ok()?;
                row.append_child(&bar).ok()?;
            }
            Some(())
        };
        let Some(row) = element_of(&mut elements, entity, &style, add_bars) else {
            continue;
        };
        set_style(&row, &style);
        let children = row.children();
        for (i, value) in bars.values.iter().enumerate() {
            let Some(bar) = u32::try_from(i).ok().and_then(|i| children.item(i)) else {
                break;
            };
            let style = format!(
                "width:{}px;height:{:.1}px;background:{};",
                bars.bar_width,
                value.clamp(0.0, 1.0) * bars.height,
                css(bars.color)
            );
            set_style(&bar, &style);
        }
    }
}

/// Takes the elements of despawned HUD entities off the page.
fn remove(
    mut elements: NonSendMut<Elements>,
    mut text: RemovedComponents<Hud>,
    mut bars: RemovedComponents<HudBars>,
) {
    for entity in text.read().chain(bars.read()) {
        if let Some(element) = elements.0.remove(&entity) {
            element.remove();
        }
    }
}
