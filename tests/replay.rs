//! Replays: a 4-player box_game match played by bots over real WebRTC (in
//! a private network namespace) is recorded by one of them, then played
//! back headlessly with every checkpoint equal; a doctored copy is caught.

use std::time::Duration;

use volley::bevy::rollback::Replay;
use volley_bots::replay::{PlayError, play};
use volley_bots::{BotRun, run_rooms};
use volley_testkit::server::with_server;

#[test]
fn a_recorded_match_replays_and_a_doctored_one_is_caught() {
    if !volley_testkit::netns::isolate("a_recorded_match_replays_and_a_doctored_one_is_caught") {
        return;
    }
    let file = std::env::temp_dir().join(format!("volley-replay-{}.replay", std::process::id()));
    with_server(|server| {
        let mut run = BotRun::new(&format!("ws://{}", server.addr()), 1, 4, 600);
        run.record = Some(file.clone());
        run.timeout = Duration::from_secs(90);
        let reports = run_rooms(&run);
        print!("{}", reports[0]);
        assert!(reports[0].ok(), "{}", reports[0]);
    });
    // The bot's app is gone: the file is whole.
    let bytes = std::fs::read(&file).expect("the match was recorded");
    let _ = std::fs::remove_file(&file);
    let status = play(&bytes).expect("the replay plays");
    println!("replayed: {status:?}");
    assert_eq!(status.verdict.mismatch, None);
    assert!(status.end >= 600, "{status:?}");
    assert!(status.verdict.verified >= 59, "{status:?}");
    assert_eq!(status.verdict.skipped, 0, "no restart in this match");

    // One player's input changed at frame 300: the next checkpoint differs.
    let mut doctored = Replay::decode(&bytes).expect("it decodes");
    let segment = &mut doctored.segments[0];
    let at = usize::try_from(300 - segment.frame).expect("recorded from before 300");
    let frame = &mut segment.inputs[at];
    // (BoxInput(u8), out) per player, bincode: [count, input, out, ...].
    frame[1] = if frame[1] == 1 { 2 } else { 1 };
    let status = play(&doctored.encode().unwrap()).expect("a doctored replay still plays");
    let (differs, _, _) = status
        .verdict
        .mismatch
        .expect("the doctored input is caught");
    assert!((301..=310).contains(&differs), "caught at frame {differs}");

    // A doctored state: refused when loaded, or caught by the checksums.
    let mut doctored = Replay::decode(&bytes).unwrap();
    let state = &mut doctored.segments[0].state;
    let last = state.len() - 1;
    state[last] ^= 0x01;
    match play(&doctored.encode().unwrap()) {
        Ok(status) => assert!(status.verdict.mismatch.is_some(), "{status:?}"),
        Err(e) => assert!(matches!(e, PlayError::Stuck { .. }), "{e}"),
    }

    // Bytes that do not hold together are refused whole.
    assert!(matches!(
        play(&bytes[..bytes.len() / 2]),
        Err(PlayError::Replay(_))
    ));
}
