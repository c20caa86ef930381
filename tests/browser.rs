//! The browser half, end to end: headless Chromium (through chromedriver)
//! loads the web bundle from an in-process volley-server and plays box_game
//! against a native headless bot and against another browser, and comes
//! back to its seat after a reload of its tab, and plays on while its
//! tab is hidden for 30 s, and watches a match of
//! bots as a spectator; and the
//! lobby's "new private room" link opens the game in that room. Inside a
//! private network namespace (see `volley_testkit::netns`), like every WebRTC test.

use std::time::Duration;

use serde_json::Value;
use volley_bots::BotRun;
use volley_testkit::browser::{Browser, browser_test, target_dir};
use volley_testkit::wait_for;

/// The frame whose checksums are compared.
const CHECKPOINT: i32 = 300;

/// The network part of the browser's RTT to a native bot on loopback: the
/// rest is at most one frame, while the page's only thread renders and a
/// pong waits for it (SwiftShader takes ~180 ms a frame on this machine).
/// A ping answered once per frame at either end would add a second frame.
const LOOPBACK_RTT_MS: f64 = 25.0;

/// The frame at which a browser player reloads its tab.
const RELOAD_AT: i64 = 200;

/// The frame whose checksums are compared after the reload.
const AFTER_RELOAD: i32 = 600;

/// How long the bots a browser spectator watches play: long enough for it
/// to show three checkpoints after its page loaded.
const WATCHED_UNTIL: i32 = 1500;

/// The browser's checksum of [`CHECKPOINT`], once confirmed there.
fn checkpoint(browser: &Browser, seen: &mut Value) -> Option<String> {
    checkpoint_at(browser, CHECKPOINT, seen)
}

/// The browser's checksum of `frame`, once confirmed there.
fn checkpoint_at(browser: &Browser, frame: i32, seen: &mut Value) -> Option<String> {
    let status = browser.game_status()?;
    *seen = status.clone();
    assert_eq!(status["desyncs"], 0, "desync in the browser: {status}");
    status["checkpoints"][frame.to_string()]
        .as_str()
        .map(str::to_string)
}

#[test]
fn a_browser_plays_box_game_against_a_native_bot() {
    browser_test(
        "a_browser_plays_box_game_against_a_native_bot",
        |server, driver| {
            let browser = driver.browser();
            let mut run = BotRun::new(&format!("ws://{}", server.addr()), 1, 2, CHECKPOINT);
            run.bots_per_room = 1;
            run.room_prefix = "e2e-native".into();
            run.linger = Duration::from_secs(5);
            run.timeout = Duration::from_secs(150);
            browser.goto(&format!(
                "http://{}/play/box_game?room=e2e-native&players=2",
                server.addr()
            ));
            let bot = std::thread::spawn(move || volley_bots::run_rooms(&run));
            let mut seen = Value::Null;
            let ours = wait_for(
                "the browser to confirm the checkpoint",
                Duration::from_secs(150),
                || checkpoint(&browser, &mut seen),
            );
            browser.screenshot(
                &target_dir()
                    .join("e2e")
                    .join("box_game_browser_vs_native.png"),
            );
            // The scoreboard and the overlay are the page's own text
            // (volley_games::hud), not drawn by Bevy.
            let hud = browser.eval(
                "return Array.from(document.querySelectorAll('.volley-hud'))\
                 .map(e => e.textContent).join('\\n');",
            );
            let hud = hud.as_str().unwrap_or_default();
            assert!(hud.contains("(you)") && hud.contains(" rtt "), "{hud}");
            let reports = bot.join().expect("the bot ran");
            let room = &reports[0];
            print!("{room}");
            println!("browser: {seen}");
            assert!(room.ok(), "{room}");
            let theirs = room.bots[0].checksum.map(|c| format!("{c:032x}"));
            assert_eq!(
                Some(ours),
                theirs,
                "browser and bot disagree at frame {CHECKPOINT}"
            );
            assert_eq!(seen["state"], "InGame", "{seen}");
            assert_eq!(seen["players"], 2, "{seen}");
            // The browser's own transport reports the path it took, and
            // both ends answer pings where they arrive, not once per frame.
            let link = seen["peers"]
                .as_object()
                .and_then(|peers| peers.values().next())
                .unwrap_or_else(|| panic!("no peer link in {seen}"));
            assert_eq!(link["path"][1], "Host", "{seen}");
            assert_ne!(link["path"][0], "Relay", "{seen}");
            let rtt = link["rtt_ms"].as_f64().unwrap_or(f64::MAX);
            let frame = seen["frame_ms"].as_f64().unwrap_or(0.0);
            println!("browser RTT {rtt:.1} ms, frame {frame:.1} ms");
            assert!(
                rtt < frame * 1.2 + LOOPBACK_RTT_MS,
                "RTT {rtt} ms, more than a frame: {seen}"
            );
        },
    );
}

#[test]
fn a_browser_player_reloads_its_tab_and_is_seated_again() {
    browser_test(
        "a_browser_player_reloads_its_tab_and_is_seated_again",
        |server, driver| {
            let browser = driver.browser();
            let mut run = BotRun::new(&format!("ws://{}", server.addr()), 1, 2, AFTER_RELOAD);
            run.bots_per_room = 1;
            run.room_prefix = "e2e-reload".into();
            run.linger = Duration::from_secs(10);
            run.timeout = Duration::from_secs(180);
            browser.goto(&format!(
                "http://{}/play/box_game?room=e2e-reload&players=2",
                server.addr()
            ));
            let bot = std::thread::spawn(move || volley_bots::run_rooms(&run));
            let before = wait_for(
                "the browser to reach the reload frame",
                Duration::from_secs(120),
                || {
                    let status = browser.game_status()?;
                    (status["frame"].as_i64() >= Some(RELOAD_AT)).then_some(status)
                },
            );
            println!("before the reload: {before}");
            // The page goes away (its WebSocket closes with 1001, its peer
            // connections close) and loads again from scratch: only the
            // tab's sessionStorage is left of it.
            let reloaded = std::time::Instant::now();
            browser.reload();
            let mut seen = Value::Null;
            let mut seated = None;
            let ours = wait_for(
                "the reloaded browser to confirm the frame after the reload",
                Duration::from_secs(150),
                || {
                    let sum = checkpoint_at(&browser, AFTER_RELOAD, &mut seen);
                    if seated.is_none() && seen["epoch"] == 1 {
                        seated = Some(reloaded.elapsed());
                    }
                    sum
                },
            );
            println!("seated again {seated:?} after the reload began (within 250 ms)");
            let reports = bot.join().expect("the bot ran");
            let room = &reports[0];
            print!("{room}");
            println!("browser after the reload: {seen}");
            assert!(room.ok(), "{room}");
            assert_eq!(seen["local_handle"], before["local_handle"], "{seen}");
            assert_eq!(seen["epoch"], 1, "seated again by one restart: {seen}");
            assert_eq!(room.bots[0].rejoins, 1, "{room}");
            let theirs = room.bots[0].checksum.map(|c| format!("{c:032x}"));
            assert_eq!(
                Some(ours),
                theirs,
                "browser and bot disagree at frame {AFTER_RELOAD}"
            );
        },
    );
}

/// The frame at which a browser player's window is minimised.
const HIDE_AT: i64 = 200;

/// How long it stays hidden.
const HIDDEN_FOR: Duration = Duration::from_secs(30);

/// The frame whose checksums are compared after it was hidden (from about
/// frame 200 to 2000, at 60 frames/s).
const AFTER_HIDDEN: i32 = 2400;

#[test]
fn a_browser_tab_hidden_for_30_s_is_not_dropped() {
    browser_test(
        "a_browser_tab_hidden_for_30_s_is_not_dropped",
        |server, driver| {
            // A browser that throttles hidden pages as a desktop one does.
            let browser = driver.browser_throttled();
            let mut run = BotRun::new(&format!("ws://{}", server.addr()), 1, 2, AFTER_HIDDEN);
            run.bots_per_room = 1;
            run.room_prefix = "e2e-hidden".into();
            run.linger = Duration::from_secs(10);
            run.timeout = Duration::from_secs(240);
            browser.goto(&format!(
                "http://{}/play/box_game?room=e2e-hidden&players=2",
                server.addr()
            ));
            let bot = std::thread::spawn(move || volley_bots::run_rooms(&run));
            let before = wait_for(
                "the browser to reach the frame it is hidden at",
                Duration::from_secs(120),
                || {
                    let status = browser.game_status()?;
                    (status["frame"].as_i64() >= Some(HIDE_AT)).then_some(status)
                },
            );
            let hidden = std::time::Instant::now();
            let mut during = Value::Null;
            browser.hide();
            assert_eq!(browser.visibility(), "hidden");
            // Polled while hidden (a script still runs in a hidden page):
            // the game goes on, no restart, never dropped.
            while hidden.elapsed() < HIDDEN_FOR {
                std::thread::sleep(Duration::from_secs(10));
                during = browser.game_status().unwrap_or(Value::Null);
                assert_eq!(during["epoch"], 0, "restarted while hidden: {during}");
                assert_eq!(during["state"], "InGame", "{during}");
            }
            assert_eq!(browser.visibility(), "hidden", "shown again too early");
            let played =
                during["frame"].as_i64().unwrap_or(0) - before["frame"].as_i64().unwrap_or(0);
            println!("hidden for {HIDDEN_FOR:?}: {played} frames played: {during}");
            // Shown again, it draws again (a screenshot of the match).
            browser.show();
            assert_eq!(browser.visibility(), "visible");
            let mut after = Value::Null;
            let ours = wait_for(
                "the browser to confirm the frame after it was hidden",
                Duration::from_secs(150),
                || checkpoint_at(&browser, AFTER_HIDDEN, &mut after),
            );
            browser.screenshot(&target_dir().join("e2e").join("e2e-hidden.png"));
            let reports = bot.join().expect("the bot ran");
            let room = &reports[0];
            print!("{room}");
            println!("browser: {after}");
            assert!(room.ok(), "{room}");
            assert_eq!(after["local_handle"], before["local_handle"], "{after}");
            let theirs = room.bots[0].checksum.map(|c| format!("{c:032x}"));
            assert_eq!(
                Some(&ours),
                theirs.as_ref(),
                "browser and bot disagree at frame {AFTER_HIDDEN}"
            );
            assert_eq!(
                room.bots[0].rejoins, 0,
                "the hidden player was dropped: {room}"
            );
            assert_eq!(after["epoch"], 0, "seated again: {after}");
            // It played on at the game's rate while hidden.
            assert!(played >= 60 * 25, "{played} frames in {HIDDEN_FOR:?}");
        },
    );
}

#[test]
fn a_browser_spectator_joins_at_frame_300_and_shows_the_players_checksums() {
    browser_test(
        "a_browser_spectator_joins_at_frame_300_and_shows_the_players_checksums",
        |server, driver| {
            let browser = driver.browser();
            let mut run = BotRun::new(&format!("ws://{}", server.addr()), 1, 2, WATCHED_UNTIL);
            run.room_prefix = "e2e-watch".into();
            run.check_from = Some(300);
            run.linger = Duration::from_secs(2);
            run.timeout = Duration::from_secs(150);
            let (at_300, joined) = std::sync::mpsc::channel();
            let bots = std::thread::spawn(move || {
                let mut told = false;
                volley_bots::run_rooms_directed(
                    &run,
                    |_, _, _| {},
                    |frame| {
                        if frame >= 300 && !std::mem::replace(&mut told, true) {
                            let _ = at_300.send(frame);
                        }
                    },
                )
            });
            let frame = joined
                .recv_timeout(Duration::from_secs(90))
                .expect("the players reached frame 300");
            // The lobby's watch link, with no group: the room's match in
            // play. The page takes a few seconds to load (the debug
            // bundle): the spectator joins wherever the match is by then.
            browser.goto(&format!(
                "http://{}/play/box_game?room=e2e-watch&players=2&spectate=",
                server.addr()
            ));
            println!("the spectator's page opened at the players' frame {frame}");
            let mut seen = Value::Null;
            let shown = wait_for(
                "the spectator to confirm three checkpoints",
                Duration::from_secs(150),
                || {
                    let status = browser.game_status()?;
                    seen = status.clone();
                    assert_eq!(status["desyncs"], 0, "desync in the spectator: {status}");
                    let sums = status["checkpoints"].as_object()?;
                    (sums.len() >= 3).then(|| sums.clone())
                },
            );
            let reports = bots.join().expect("the bots ran");
            let room = &reports[0];
            print!("{room}");
            println!("spectator: {seen}");
            assert!(room.ok(), "{room}");
            assert_eq!(seen["spectating"], true, "{seen}");
            assert_eq!(seen["local_handle"], Value::Null, "{seen}");
            for (frame, sum) in shown.iter().take(3) {
                let frame: i32 = frame.parse().expect("a frame number");
                for bot in &room.bots {
                    let theirs = bot.checksums.get(&frame).map(|c| format!("{c:032x}"));
                    assert_eq!(sum.as_str(), theirs.as_deref(), "frame {frame}: {room}");
                }
            }
        },
    );
}

#[test]
fn a_browser_a_volley_bot_and_a_matchbox_bot_play_one_match() {
    browser_test(
        "a_browser_a_volley_bot_and_a_matchbox_bot_play_one_match",
        |server, driver| {
            let browser = driver.browser();
            let mut run = BotRun::new(&format!("ws://{}", server.addr()), 1, 3, CHECKPOINT);
            run.bots_per_room = 2;
            run.room_prefix = "e2e-mixed".into();
            run.linger = Duration::from_secs(5);
            run.timeout = Duration::from_secs(150);
            browser.goto(&format!(
                "http://{}/play/box_game?room=e2e-mixed&players=3",
                server.addr()
            ));
            // Bot 1 negotiates through unmodified matchbox_socket, bot 0
            // through volley's own transport; the browser through Chromium.
            let bots = std::thread::spawn(move || {
                volley_bots::run_rooms_with(&run, |app, _, bot| {
                    if bot == 1 {
                        let plugin = app
                            .world()
                            .resource::<volley::bevy::VolleyPlugin>()
                            .clone()
                            .transport(volley::net::MatchboxTransport::open);
                        app.insert_resource(plugin);
                    }
                })
            });
            let mut seen = Value::Null;
            let ours = wait_for(
                "the browser to confirm the checkpoint",
                Duration::from_secs(150),
                || checkpoint(&browser, &mut seen),
            );
            let reports = bots.join().expect("the bots ran");
            let room = &reports[0];
            print!("{room}");
            println!("browser: {seen}");
            assert!(room.ok(), "{room}");
            for bot in &room.bots {
                assert_eq!(
                    Some(&ours),
                    bot.checksum.map(|c| format!("{c:032x}")).as_ref(),
                    "browser and bots disagree at frame {CHECKPOINT}"
                );
            }
            assert_eq!(seen["players"], 3, "{seen}");
        },
    );
}

#[test]
fn two_browsers_play_box_game_against_each_other() {
    browser_test(
        "two_browsers_play_box_game_against_each_other",
        |server, driver| {
            let (a, b) = (driver.browser(), driver.browser());
            let url = format!(
                "http://{}/play/box_game?room=e2e-browsers&players=2",
                server.addr()
            );
            a.goto(&url);
            b.goto(&url);
            let (mut seen_a, mut seen_b) = (Value::Null, Value::Null);
            let (mut sum_a, mut sum_b) = (None, None);
            wait_for(
                "both browsers to confirm the checkpoint",
                Duration::from_secs(150),
                || {
                    if sum_a.is_none() {
                        sum_a = checkpoint(&a, &mut seen_a);
                    }
                    if sum_b.is_none() {
                        sum_b = checkpoint(&b, &mut seen_b);
                    }
                    (sum_a.is_some() && sum_b.is_some()).then_some(())
                },
            );
            println!("a: {seen_a}\nb: {seen_b}");
            assert_eq!(sum_a, sum_b, "the browsers disagree at frame {CHECKPOINT}");
            let handles = [&seen_a["local_handle"], &seen_b["local_handle"]];
            assert!(
                handles.contains(&&Value::from(0)) && handles.contains(&&Value::from(1)),
                "{handles:?}"
            );
        },
    );
}

#[test]
fn the_lobby_makes_a_private_room_link_that_opens_the_game() {
    browser_test(
        "the_lobby_makes_a_private_room_link_that_opens_the_game",
        |server, driver| {
            let browser = driver.browser();
            browser.goto(&format!("http://{}/", server.addr()));
            wait_for(
                "the lobby to list the games",
                Duration::from_secs(20),
                || {
                    let n = browser
                        .eval("return document.querySelectorAll('#private-game option').length;");
                    (n.as_u64() >= Some(1)).then_some(())
                },
            );
            browser.eval(
                "document.getElementById('private-game').value = 'box_game'; \
             document.getElementById('new-private-room').click(); return null;",
            );
            let link = wait_for("the private room link", Duration::from_secs(20), || {
                let href = browser.eval(
                    "const a = document.getElementById('private-link'); \
                 return document.getElementById('share').hidden ? null : a.href;",
                );
                href.as_str().map(str::to_string)
            });
            let prefix = format!("http://{}/play/box_game?room=", server.addr());
            let code = link
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix("&players=2"))
                .unwrap_or_else(|| panic!("unexpected link {link}"));
            assert_eq!(code.len(), 12, "{link}");
            browser.goto(&link);
            let status = wait_for(
                "the game to join the private room",
                Duration::from_secs(90),
                || {
                    browser
                        .game_status()
                        .filter(|s| s["state"] == "WaitingForPeers")
                },
            );
            println!("{status}");
            let url = browser.eval("return location.href;");
            assert_eq!(url.as_str(), Some(link.as_str()));
        },
    );
}

#[test]
fn the_whiteboard_in_a_browser_shows_a_desktop_peers_stroke_and_keeps_it() {
    use volley::bevy::replication::ReplicationStatus;
    use volley_games::whiteboard::{self, LocalPen, Pen, WhiteboardPlugin};

    browser_test(
        "the_whiteboard_in_a_browser_shows_a_desktop_peers_stroke_and_keeps_it",
        |server, driver| {
            let browser = driver.browser();
            browser.goto(&format!(
                "http://{}/play/whiteboard?room=e2e-board",
                server.addr()
            ));
            let mut native = bevy::app::App::new();
            native.add_plugins((
                bevy::MinimalPlugins,
                volley::bevy::VolleyPlugin::new(format!("ws://{}/e2e-board", server.addr()))
                    .app_version(whiteboard::APP_VERSION),
                WhiteboardPlugin::default(),
            ));
            let pump = |native: &mut bevy::app::App,
                        what: &str,
                        done: &mut dyn FnMut(&mut bevy::app::App) -> bool| {
                let deadline = std::time::Instant::now() + Duration::from_secs(90);
                while !done(native) {
                    native.update();
                    assert!(
                        std::time::Instant::now() < deadline,
                        "timed out waiting for {what}"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
            };
            // Both sides follow the same authority (pen strokes sent while
            // two fresh peers still settle who it is can be lost).
            pump(&mut native, "agreement on the authority", &mut |native| {
                let ours = native
                    .world()
                    .resource::<ReplicationStatus>()
                    .authority
                    .map(|a| a.to_string());
                ours.is_some()
                    && browser.game_status().is_some_and(|s| {
                        s["state"] == "InGame"
                            && s["replication_tick"].as_u64() > Some(0)
                            && s["authority"].as_str() == ours.as_deref()
                    })
            });
            // The desktop peer draws a zigzag.
            let points: Vec<(i16, i16)> = (0..40)
                .map(|i| (-300 + i * 15, if i % 2 == 0 { -80 } else { 80 }))
                .collect();
            native
                .world_mut()
                .write_message(LocalPen(Pen::Move((0, 0))));
            native.world_mut().write_message(LocalPen(Pen::Down {
                number: 1,
                color: 1,
                at: points[0],
            }));
            native.world_mut().write_message(LocalPen(Pen::Line {
                number: 1,
                points: points[1..].to_vec(),
            }));
            // The browser has its stroke and cursor.
            pump(&mut native, "the stroke in the browser", &mut |_| {
                browser
                    .game_status()
                    .is_some_and(|s| s["replicated"].as_u64() >= Some(2))
            });
            std::thread::sleep(Duration::from_millis(500));
            browser.screenshot(&target_dir().join("e2e").join("whiteboard_browser.png"));
            // The desktop peer leaves: the browser keeps the stroke (its cursor
            // goes) and is the authority now.
            drop(native);
            let status = wait_for(
                "the browser to keep the board alone",
                Duration::from_secs(60),
                || {
                    browser
                        .game_status()
                        .filter(|s| s["is_authority"] == true && s["replicated"] == 1)
                },
            );
            println!("{status}");
        },
    );
}
