//! Spectators: bots join a running box_game match as spectators (over
//! real WebRTC, in a private network namespace) and must show exactly
//! the frames the players confirm, without slowing the players down.

use std::time::Duration;

use volley_bots::{BotRun, RoomReport, run_rooms};
use volley_testkit::server::with_server;

fn assert_room(label: &str, report: &RoomReport, spectators: usize) {
    print!("{label} {report}");
    assert!(report.ok(), "{label}: {report}");
    let watching = report.bots.iter().filter(|b| b.spectator).count();
    assert_eq!(watching, spectators, "{label}: {report}");
    assert!(
        report.bots.iter().all(|b| b.connect_time.is_some()),
        "{label}: {report}"
    );
}

#[test]
fn a_spectator_joins_at_frame_300_and_shows_the_players_checksums() {
    if !volley_testkit::netns::isolate(
        "a_spectator_joins_at_frame_300_and_shows_the_players_checksums",
    ) {
        return;
    }
    with_server(|server| {
        let mut run = BotRun::new(&format!("ws://{}", server.addr()), 1, 2, 600);
        run.spectators = 1;
        run.spectate_at = 300;
        run.check_from = Some(400);
        run.timeout = Duration::from_secs(90);
        let reports = run_rooms(&run);
        assert_room("one spectator", &reports[0], 1);
        // Every frame from 400 to 600, on every bot, spectator included.
        for bot in &reports[0].bots {
            assert_eq!(bot.checksums.len(), 201, "{}", reports[0]);
        }
    });
}

#[test]
fn eight_spectators_leave_the_players_at_full_speed() {
    if !volley_testkit::netns::isolate("eight_spectators_leave_the_players_at_full_speed") {
        return;
    }
    with_server(|server| {
        let mut run = BotRun::new(&format!("ws://{}", server.addr()), 1, 2, 600);
        run.spectators = 8;
        run.spectate_at = 60;
        run.check_from = Some(400);
        run.timeout = Duration::from_secs(120);
        let reports = run_rooms(&run);
        let report = &reports[0];
        assert_room("eight spectators", report, 8);
        for player in report.bots.iter().filter(|b| !b.spectator) {
            let rate = player.frame_rate.unwrap_or(0.0);
            println!("player {:?}: {rate:.1} frames/s", player.handle);
            assert!(rate >= 55.0, "a player ran at {rate:.1} frames/s: {report}");
        }
    });
}
