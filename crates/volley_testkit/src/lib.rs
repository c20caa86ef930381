//! What volley's tests and benchmarks share (`publish = false`): a private
//! network namespace per WebRTC test ([`netns`]), NAT routers inside it
//! ([`internet`]), a player's outage ([`outage`]), coturn ([`coturn`]), an in-process volley-server
//! ([`server`]), headless Chromium through chromedriver ([`browser`]),
//! certificates made at test time ([`pki`]), a real Redis ([`redis`]), and the benchmarks' options
//! and result tables ([`report`]).
//!
//! Everything here panics with a message on failure: it is test code, and a
//! panic is how a test fails.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "bevy")]
pub mod apps;
pub mod browser;
pub mod coturn;
pub mod internet;
pub mod netns;
pub mod outage;
pub mod pki;
pub mod redis;
pub mod report;
pub mod server;

use std::time::{Duration, Instant};

/// Polls `probe` every 250 ms until it yields, for at most `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
