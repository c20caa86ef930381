//! Headless Bevy apps driven by hand, several in one thread.

use std::time::{Duration, Instant};

use bevy::app::App;
use bevy_volley::replication::ReplicationStatus;

/// Updates the apps every 2 ms while `keep_going` (at most `limit`).
pub fn pump(apps: &mut [App], limit: Duration, mut keep_going: impl FnMut(&mut [App]) -> bool) {
    let deadline = Instant::now() + limit;
    while keep_going(apps) {
        for app in apps.iter_mut() {
            app.update();
        }
        assert!(Instant::now() < deadline, "not done within {limit:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// An app's replication status.
pub fn status(app: &App) -> ReplicationStatus {
    app.world().resource::<ReplicationStatus>().clone()
}
