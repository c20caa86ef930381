//! Coming back to a lost signaling server, as a pure state machine (the
//! message loop does the waiting and connecting).
//!
//! Signaling only sets connections up: a session that loses the server
//! keeps every open connection and comes back in the background with its
//! resume token (see [`crate::signal`]), keeping its id. Without a token
//! (a server that hands none out, such as matchbox_server) it stays away,
//! since a new id would look like a new peer to everyone. Attempts back
//! off from [`FIRST_WAIT`] to [`MAX_WAIT`] and go to the room's own server
//! and then to each fallback in turn (other nodes of its cluster, which
//! take the same token); a server that refuses the token (HTTP 401) or
//! closes with a code saying the seat is gone ends them.

use std::time::Duration;

use crate::ResumeStore;
use crate::signal::is_resume_token;

/// Wait before the first attempt after a loss, doubled after each failure.
pub(super) const FIRST_WAIT: Duration = Duration::from_millis(250);

/// Longest wait between two attempts.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(5);

/// Close codes after which coming back is pointless: duplicate peer
/// (4005), seat gone (4007), replaced by a newer connection of ours
/// (4008), and a spectator's: invalid `spectate` (4009), nothing to watch
/// (4010), too many spectators (4011), the match is over (4012).
const FINAL_CLOSES: [u16; 7] = [4005, 4007, 4008, 4009, 4010, 4011, 4012];

/// A failed connection attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ConnectError {
    /// What went wrong.
    pub why: String,
    /// The server answered 401: it will not take this token (expired, or
    /// signed with another secret).
    pub refused: bool,
}

impl From<String> for ConnectError {
    fn from(why: String) -> Self {
        ConnectError {
            why,
            refused: false,
        }
    }
}

/// What to do next about the signaling server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Next {
    /// Try `url` after `wait`.
    Retry { wait: Duration, url: String },
    /// Stay away, for this reason.
    GiveUp(String),
}

/// The session's way back to its signaling server.
#[derive(Debug)]
pub(super) struct Comeback {
    /// The room URL, then the same room through each fallback server.
    urls: Vec<String>,
    /// Attempts since the last loss.
    attempts: usize,
    token: Option<String>,
    wait: Duration,
    /// Where the token is kept across restarts (see
    /// [`crate::SessionBuilder::resume_in`]).
    store: Option<ResumeStore>,
}

impl Comeback {
    pub(super) fn new(room_url: &str, fallbacks: &[String]) -> Self {
        let mut urls = vec![room_url.to_owned()];
        urls.extend(fallbacks.iter().filter_map(|f| through(room_url, f)));
        Comeback {
            urls,
            attempts: 0,
            token: None,
            wait: FIRST_WAIT,
            store: None,
        }
    }

    /// Keeps tokens in `store`, and starts with the one it holds if that
    /// is fresh at `now` (unix seconds; see [`ResumeStore`]).
    pub(super) fn stored_in(mut self, store: Option<ResumeStore>, now: u64) -> Self {
        self.token = store.as_ref().and_then(|s| s.load(now));
        self.store = store;
        self
    }

    /// Whether we hold a token (from the server, or stored).
    pub(super) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Drops the token (a stored one the server would not take).
    pub(super) fn forget(&mut self) {
        self.token = None;
        if let Some(store) = &self.store {
            store.remove();
        }
    }

    /// The first connection's URL: asks for resume tokens, and comes back
    /// to the stored seat when there is one.
    pub(super) fn first_url(&self) -> String {
        match &self.token {
            Some(token) => with_query(&self.urls[0], &format!("resume={token}")),
            None => with_query(&self.urls[0], "resume"),
        }
    }

    /// The server's latest token, at `now` (unix seconds); one that could
    /// not go into a URL as it is (too long, or other characters) is
    /// ignored. Stored, when asked.
    pub(super) fn token(&mut self, token: String, now: u64) {
        if !is_resume_token(&token) {
            tracing::warn!("signaling server: ignored an invalid resume token");
            return;
        }
        self.token = Some(token);
        self.touch(now);
    }

    /// The session is alive at `now` (unix seconds): the stored token's
    /// record says so, so a restart soon after comes back to the seat.
    pub(super) fn touch(&self, now: u64) {
        if let (Some(store), Some(token)) = (&self.store, &self.token)
            && let Err(e) = store.save(token, now)
        {
            tracing::warn!("cannot store the resume token: {e}");
        }
    }

    /// Back in: the next loss starts from the first wait again.
    pub(super) fn back(&mut self) {
        self.wait = FIRST_WAIT;
        self.attempts = 0;
    }

    /// The connection was lost (with the server's close code, if it sent
    /// one).
    pub(super) fn lost(&mut self, code: Option<u16>) -> Next {
        if let Some(code) = code.filter(|c| FINAL_CLOSES.contains(c)) {
            return Next::GiveUp(format!("the server closed with {code}: the seat is gone"));
        }
        self.retry()
    }

    /// An attempt to come back failed.
    pub(super) fn failed(&mut self, error: &ConnectError) -> Next {
        if error.refused {
            return Next::GiveUp(format!("the server refused our seat: {}", error.why));
        }
        self.retry()
    }

    fn retry(&mut self) -> Next {
        let Some(token) = &self.token else {
            return Next::GiveUp("the server handed out no resume token".into());
        };
        let wait = self.wait;
        self.wait = (self.wait * 2).min(MAX_WAIT);
        let url = &self.urls[self.attempts % self.urls.len()];
        self.attempts = self.attempts.wrapping_add(1);
        Next::Retry {
            wait,
            url: with_query(url, &format!("resume={token}")),
        }
    }
}

/// The room at `room_url` through `server` (`ws://host:port`): the
/// server's origin with the room URL's path and query. `None` when either
/// is not a URL with an origin.
fn through(room_url: &str, server: &str) -> Option<String> {
    let origin_end = |url: &str| {
        let after = url.find("://")? + 3;
        Some(url[after..].find('/').map_or(url.len(), |i| after + i))
    };
    let rest = &room_url[origin_end(room_url)?..];
    let server = server.trim_end_matches('/');
    let end = origin_end(server)?;
    Some(format!("{}{rest}", &server[..end]))
}

/// `url` with `pair` added to its query.
fn with_query(url: &str, pair: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let sep = match base.contains('?') {
        true if base.ends_with('?') || base.ends_with('&') => "",
        true => "&",
        false => "?",
    };
    match fragment {
        Some(fragment) => format!("{base}{sep}{pair}#{fragment}"),
        None => format!("{base}{sep}{pair}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_ask_for_tokens_then_carry_them() {
        for (url, first) in [
            ("ws://h/r", "ws://h/r?resume"),
            ("ws://h/r?next=2", "ws://h/r?next=2&resume"),
            ("ws://h/r?", "ws://h/r?resume"),
            ("ws://h/r?next=2#x", "ws://h/r?next=2&resume#x"),
        ] {
            assert_eq!(Comeback::new(url, &[]).first_url(), first);
        }
        let mut comeback = Comeback::new("ws://h/r?next=2", &[]);
        comeback.token("1.ab.cd".into(), 0);
        comeback.token("evil&next=9".into(), 0); // ignored
        assert_eq!(
            comeback.lost(None),
            Next::Retry {
                wait: FIRST_WAIT,
                url: "ws://h/r?next=2&resume=1.ab.cd".into()
            }
        );
    }

    #[test]
    fn waits_back_off_and_reset() {
        let mut comeback = Comeback::new("ws://h/r", &[]);
        comeback.token("t".into(), 0);
        let failed = ConnectError::from("refused".to_string());
        let mut waits = vec![];
        for _ in 0..8 {
            if let Next::Retry { wait, .. } = comeback.failed(&failed) {
                waits.push(wait.as_millis());
            }
        }
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        comeback.back();
        assert!(
            matches!(comeback.lost(Some(1001)), Next::Retry { wait, .. } if wait == FIRST_WAIT)
        );
    }

    #[test]
    fn attempts_go_round_the_fallbacks() {
        let fallbacks = [
            "wss://b:2/".to_string(),
            "c:3".to_string(),
            "ws://d".to_string(),
        ];
        let mut comeback = Comeback::new("ws://a:1/r?next=4", &fallbacks);
        comeback.token("t".into(), 0);
        let mut tried = vec![];
        for _ in 0..4 {
            if let Next::Retry { url, .. } = comeback.lost(None) {
                tried.push(url);
            }
        }
        assert_eq!(
            tried,
            [
                "ws://a:1/r?next=4&resume=t",
                "wss://b:2/r?next=4&resume=t",
                "ws://d/r?next=4&resume=t",
                "ws://a:1/r?next=4&resume=t",
            ]
        );
        comeback.back();
        assert!(
            matches!(comeback.lost(None), Next::Retry { url, .. } if url.starts_with("ws://a:1/"))
        );
    }

    #[test]
    fn some_ends_are_final() {
        assert!(matches!(
            Comeback::new("ws://h/r", &[]).lost(None),
            Next::GiveUp(_)
        ));
        let mut comeback = Comeback::new("ws://h/r", &[]);
        comeback.token("t".into(), 0);
        for code in FINAL_CLOSES {
            assert!(matches!(comeback.lost(Some(code)), Next::GiveUp(_)));
        }
        let refused = ConnectError {
            why: "401".into(),
            refused: true,
        };
        assert!(matches!(comeback.failed(&refused), Next::GiveUp(_)));
        assert!(matches!(comeback.lost(Some(4006)), Next::Retry { .. }));
    }

    #[test]
    fn a_stored_token_comes_back_and_a_new_one_replaces_it() {
        let dir = std::env::temp_dir().join(format!("volley-comeback-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("seat");
        let _ = std::fs::remove_file(&file);
        let url = "ws://a:1/room?next=2";
        let store = || Some(ResumeStore::File(file.clone()));
        let mut fresh = Comeback::new(url, &[]).stored_in(store(), 1000);
        assert_eq!(fresh.first_url(), "ws://a:1/room?next=2&resume");
        fresh.token("1.abc.def".into(), 1000);
        fresh.token("bad token/with?chars".into(), 1001);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "1000 1.abc.def");
        fresh.touch(1030);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "1030 1.abc.def");
        let restarted = Comeback::new(url, &[]).stored_in(store(), 1090);
        assert_eq!(
            restarted.first_url(),
            "ws://a:1/room?next=2&resume=1.abc.def"
        );
        let mut refused = restarted;
        refused.forget();
        assert!(!file.exists());
        assert_eq!(refused.first_url(), "ws://a:1/room?next=2&resume");
        // Too old: the match is most likely over; removed, joins afresh.
        fresh.touch(1030);
        assert!(!Comeback::new(url, &[]).stored_in(store(), 1091).has_token());
        assert!(!file.exists());
        std::fs::write(&file, "1000 not a token!").unwrap();
        assert!(!Comeback::new(url, &[]).stored_in(store(), 1000).has_token());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
