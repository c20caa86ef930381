//! Shared test support.
// Each test binary uses part of it.
#![allow(dead_code)]

pub mod apps;
pub mod browser;
pub mod coturn;
pub mod internet;
pub mod netns;
pub mod pki;
pub mod server;
