//! Text and small bar graphs over a game (scores, the network overlay, a
//! ping graph). The games say what to show ([`Hud`], [`HudBars`]); how it
//! is drawn depends on the platform:
//! - the desktop (feature `ui`): Bevy's UI, with its default font;
//! - the browser: DOM elements over the canvas. The page then downloads no
//!   font, text shaping or UI layout: box_game's `.wasm` went from 18.3 to
//!   14.9 MB (3.4 to 2.7 MB brotli; docs/ARCHITECTURE.md, *The browser
//!   half*), and the browser draws text well anyway.
//!
//! ```
//! use bevy::prelude::*;
//! use volley_games::hud::Hud;
//!
//! #[derive(Component)]
//! struct Score;
//!
//! fn setup(mut commands: Commands) {
//!     commands.spawn((Hud::top_left(26.0).at(12.0, 8.0).text("waiting..."), Score));
//! }
//!
//! fn show(mut hud: Query<&mut Hud, With<Score>>) {
//!     if let Ok(mut hud) = hud.single_mut() {
//!         hud.set("P1: 3   P2: 5");
//!     }
//! }
//! # let mut app = App::new();
//! # app.add_systems(Startup, setup).add_systems(Update, show);
//! # app.update();
//! ```

use bevy::prelude::*;

/// The corner a HUD element is placed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    /// Offsets from the window's left and top edges.
    TopLeft,
    /// Offsets from the window's left and bottom edges (the element grows
    /// upwards).
    BottomLeft,
}

/// A block of text over the game, in logical pixels from a [`Corner`].
#[derive(Component, Debug, Clone, PartialEq)]
pub struct Hud {
    /// What it says (`\n` breaks lines).
    pub text: String,
    /// Where it is placed from.
    pub corner: Corner,
    /// From the corner: x right, y away from the edge.
    pub offset: Vec2,
    /// The font size.
    pub size: f32,
    /// The text's colour.
    pub color: Color,
}

impl Hud {
    /// Empty white text of `size` at the top left corner.
    pub fn top_left(size: f32) -> Hud {
        Hud {
            text: String::new(),
            corner: Corner::TopLeft,
            offset: Vec2::ZERO,
            size,
            color: Color::WHITE,
        }
    }

    /// Empty white text of `size` at the bottom left corner.
    pub fn bottom_left(size: f32) -> Hud {
        Hud {
            corner: Corner::BottomLeft,
            ..Hud::top_left(size)
        }
    }

    /// `x`, `y` pixels from the corner.
    pub fn at(mut self, x: f32, y: f32) -> Hud {
        self.offset = Vec2::new(x, y);
        self
    }

    /// In `color`.
    pub fn color(mut self, color: Color) -> Hud {
        self.color = color;
        self
    }

    /// Saying `text`.
    pub fn text(mut self, text: impl Into<String>) -> Hud {
        self.text = text.into();
        self
    }

    /// Changes the text (kept when equal: the platform writes only what
    /// differs).
    pub fn set(&mut self, text: impl AsRef<str>) {
        let text = text.as_ref();
        if self.text != text {
            text.clone_into(&mut self.text);
        }
    }
}

/// A row of bars over the game (a ping graph): each value is a bar's height
/// as a fraction of [`height`](HudBars::height), 0 to 1.
#[derive(Component, Debug, Clone, PartialEq)]
pub struct HudBars {
    /// One per bar, left to right; the count is fixed at spawn.
    pub values: Vec<f32>,
    /// Where it is placed from.
    pub corner: Corner,
    /// From the corner: x right, y away from the edge.
    pub offset: Vec2,
    /// A bar's width, in pixels (1 pixel between bars).
    pub bar_width: f32,
    /// A full bar's height, in pixels.
    pub height: f32,
    /// The bars' colour.
    pub color: Color,
}

/// Draws [`Hud`] and [`HudBars`] (see the module documentation). Added by
/// the games' render plugins.
pub struct HudPlugin;

impl Plugin for HudPlugin {
    fn build(&self, app: &mut App) {
        #[cfg(feature = "ui")]
        super::hud_ui::build(app);
        #[cfg(all(target_arch = "wasm32", not(feature = "ui")))]
        super::hud_dom::build(app);
        #[cfg(not(any(feature = "ui", target_arch = "wasm32")))]
        app.add_systems(Startup, || {
            warn!("volley_games: no HUD on the desktop without the `ui` feature");
        });
    }
}
