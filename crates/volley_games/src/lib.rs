//! Sample games for volley. Each game's simulation is a plugin with no
//! rendering, so headless bots and tests run exactly the code players run;
//! rendering and input sit behind the `render` feature.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod box_game;
#[cfg(feature = "render")]
pub mod hud;
#[cfg(all(feature = "render", target_arch = "wasm32", not(feature = "ui")))]
mod hud_dom;
#[cfg(feature = "ui")]
mod hud_ui;
pub mod launch;
pub mod status;
pub mod whiteboard;
