//! Hidden browser tabs keep playing (feature `winit`, in a browser).
//!
//! On the web, bevy_winit runs an update per animation frame, and a
//! browser gives a hidden tab (another tab in front, a minimised window)
//! no animation frames at all, and timers at most once a second: the game
//! would stop, its peers would hear nothing from this player and drop it
//! after the rollback disconnect timeout (2 s). So while the page is
//! hidden, a tiny dedicated worker, whose timers a browser does not
//! throttle like the page's, ticks every [`HIDDEN_TICK`], and each tick
//! wakes Bevy's event loop for an update: the network, the simulation
//! and the status go on at the game's rate. Nothing ticks while the page
//! is visible.
//!
//! Nothing is drawn while hidden: the active cameras are switched off
//! (and on again when the page shows). Drawing frames nobody sees costs
//! the battery, and a browser does not show a hidden page's frames, so a
//! software renderer falls behind and, tens of seconds later, stalls the
//! page. [`PageHidden`] says whether the page is hidden (a game may pause
//! its music).
//!
//! bevy_winit only runs an update on a wake-up, rather than waiting for
//! the next animation frame (which a hidden page never gets), when no
//! window is visible; on the web, where winit ignores a window's
//! visibility, the primary window is therefore marked not visible. The
//! cost, while the page is visible: an input event between two animation
//! frames runs an update of its own (browsers deliver pointer moves once
//! per frame).
//!
//! A *frozen* page (Chromium freezes background tabs after minutes, and
//! on memory pressure) runs no code at all, workers included: its peers
//! drop it, and it comes back into its seat when it is thawed as after
//! any drop (see `rollback::seats`).

use std::time::Duration;

use bevy::app::{App, First, Startup};
use bevy::camera::Camera;
use bevy::ecs::prelude::*;
use bevy::window::{PrimaryWindow, Window};
use bevy::winit::{EventLoopProxyWrapper, WinitUserEvent};
use tracing::warn;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::{Closure, JsValue};

/// How often a hidden page is woken for an update: a frame at 60 frames/s
/// (rarer updates would each run several simulation frames, and answer
/// the peers' pings later).
pub const HIDDEN_TICK: Duration = Duration::from_millis(16);

/// The worker: ticks while told `true`, stops when told `false`.
const WORKER: &str = "let t = null; onmessage = (e) => { clearInterval(t); \
     t = e.data ? setInterval(() => postMessage(0), MS) : null; };";

/// Whether the page is hidden (a tab in the background, a minimised
/// window): updated at the start of every update.
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageHidden(pub bool);

/// A camera switched off while the page is hidden, to switch on again.
#[derive(Component)]
struct OffWhileHidden;

pub(crate) fn plugin(app: &mut App) {
    app.init_resource::<PageHidden>()
        .add_systems(Startup, keep_alive)
        .add_systems(First, follow_visibility);
}

/// Tracks the page's visibility; switches the active cameras off while it
/// is hidden, and back on when it shows.
fn follow_visibility(
    mut commands: Commands,
    mut hidden: ResMut<PageHidden>,
    mut cameras: Query<(Entity, &mut Camera, Has<OffWhileHidden>)>,
) {
    let now = web_sys::window()
        .and_then(|w| w.document())
        .is_some_and(|d| d.hidden());
    if now == hidden.0 {
        return;
    }
    hidden.0 = now;
    for (entity, mut camera, off) in &mut cameras {
        if now && camera.is_active {
            camera.is_active = false;
            commands.entity(entity).insert(OffWhileHidden);
        } else if !now && off {
            camera.is_active = true;
            commands.entity(entity).remove::<OffWhileHidden>();
        }
    }
}

/// Marks the primary window not visible and starts the worker; without
/// winit (a headless app, updated by a loop of its own) nothing is needed.
fn keep_alive(
    proxy: Option<Res<EventLoopProxyWrapper>>,
    mut windows: Query<&mut Window, With<PrimaryWindow>>,
) {
    let Some(proxy) = proxy else { return };
    for mut window in &mut windows {
        window.visible = false;
    }
    if let Err(e) = start_worker((**proxy).clone()) {
        warn!("volley: a hidden tab will not keep playing: {e:?}");
    }
}

fn start_worker(proxy: bevy::winit::EventLoopProxy<WinitUserEvent>) -> Result<(), JsValue> {
    let source = WORKER.replace("MS", &HIDDEN_TICK.as_millis().to_string());
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("text/javascript");
    let parts = js_sys::Array::of1(&JsValue::from_str(&source));
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)?;
    let worker = web_sys::Worker::new(&url)?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| JsValue::from_str("no document"))?;
    let tick = Closure::<dyn FnMut()>::new(move || {
        let _ = proxy.send_event(WinitUserEvent::WakeUp);
    });
    worker.set_onmessage(Some(tick.as_ref().unchecked_ref()));
    let ticker = worker.clone();
    let watched = document.clone();
    let visibility = Closure::<dyn FnMut()>::new(move || {
        let _ = ticker.post_message(&JsValue::from_bool(watched.hidden()));
    });
    document.add_event_listener_with_callback(
        "visibilitychange",
        visibility.as_ref().unchecked_ref(),
    )?;
    worker.post_message(&JsValue::from_bool(document.hidden()))?;
    // Both live as long as the page (the worker with them).
    tick.forget();
    visibility.forget();
    Ok(())
}
