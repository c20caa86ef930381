//! Where a session keeps its seat's resume token so that a new start of the
//! same player — a restarted process, a reloaded browser tab — comes back
//! to its seat (see `SessionBuilder::resume_in`).
//!
//! A record is `<unix seconds> <token>`, rewritten whenever the server hands
//! out a token and at every signaling keepalive while the session lives. A
//! record older than [`RESUME_WITHIN`] is not used: by then the match that
//! seat belonged to has most likely ended, and coming back to it would
//! leave the player alone in a group nobody else returns to.

use std::time::Duration;

/// How recent a stored record must be to be used: a restart or reload
/// within this time of the session's last sign of life comes back to the
/// seat; a later one joins afresh.
pub const RESUME_WITHIN: Duration = Duration::from_secs(60);

/// Where the seat's resume token is kept across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeStore {
    /// A file, for a native process (written aside and renamed, so a
    /// crash never leaves half a record).
    File(std::path::PathBuf),
    /// The tab's `sessionStorage` under this key, for a browser: it
    /// survives a reload of the tab, not its closing. A duplicated tab
    /// copies it and takes the seat over from the original.
    #[cfg(target_arch = "wasm32")]
    TabStorage(String),
}

impl ResumeStore {
    /// The store a browser tab uses for `room_url`: its `sessionStorage`,
    /// under a key naming the room.
    #[cfg(target_arch = "wasm32")]
    pub fn tab(room_url: &str) -> Self {
        ResumeStore::TabStorage(format!("volley-resume {room_url}"))
    }

    /// The stored token, if the record is no older than [`RESUME_WITHIN`]
    /// at `now` (unix seconds). A stale or malformed record is removed.
    #[cfg(feature = "transport")]
    pub(crate) fn load(&self, now: u64) -> Option<String> {
        let record = self.read()?;
        let token = fresh_token(&record, now).map(str::to_owned);
        if token.is_none() {
            self.remove();
        }
        token
    }

    /// Stores `token` as of `now` (unix seconds).
    #[cfg(feature = "transport")]
    pub(crate) fn save(&self, token: &str, now: u64) -> Result<(), String> {
        self.write(&format!("{now} {token}"))
    }

    #[cfg(feature = "transport")]
    fn read(&self) -> Option<String> {
        match self {
            ResumeStore::File(file) => std::fs::read_to_string(file).ok(),
            #[cfg(target_arch = "wasm32")]
            ResumeStore::TabStorage(key) => tab_storage()?.get_item(key).ok().flatten(),
        }
    }

    #[cfg(feature = "transport")]
    fn write(&self, record: &str) -> Result<(), String> {
        match self {
            ResumeStore::File(file) => {
                let aside = file.with_extension("new");
                std::fs::write(&aside, record)
                    .and_then(|()| std::fs::rename(&aside, file))
                    .map_err(|e| format!("{}: {e}", file.display()))
            }
            #[cfg(target_arch = "wasm32")]
            ResumeStore::TabStorage(key) => tab_storage()
                .ok_or_else(|| "this page has no sessionStorage".to_owned())?
                .set_item(key, record)
                .map_err(|_| "sessionStorage refused the record".to_owned()),
        }
    }

    /// Forgets the stored token.
    #[cfg(feature = "transport")]
    pub(crate) fn remove(&self) {
        match self {
            ResumeStore::File(file) => {
                let _ = std::fs::remove_file(file);
            }
            #[cfg(target_arch = "wasm32")]
            ResumeStore::TabStorage(key) => {
                if let Some(storage) = tab_storage() {
                    let _ = storage.remove_item(key);
                }
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", feature = "transport"))]
fn tab_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

/// The token of `record` if it is well formed and no older than
/// [`RESUME_WITHIN`] at `now` (a record from the future, a clock set back,
/// counts as fresh).
#[cfg(any(feature = "transport", test))]
fn fresh_token(record: &str, now: u64) -> Option<&str> {
    let (at, token) = record.trim().split_once(' ')?;
    let at: u64 = at.parse().ok()?;
    let fresh = now.saturating_sub(at) <= RESUME_WITHIN.as_secs();
    (fresh && crate::signal::is_resume_token(token)).then_some(token)
}

/// Seconds since the unix epoch (0 if the clock is before it).
#[cfg(feature = "transport")]
pub(crate) fn unix_now() -> u64 {
    web_time::SystemTime::now()
        .duration_since(web_time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_used_while_fresh() {
        assert_eq!(fresh_token("100 1.ab.cd", 100), Some("1.ab.cd"));
        assert_eq!(fresh_token("100 1.ab.cd\n", 160), Some("1.ab.cd"));
        assert_eq!(fresh_token("100 1.ab.cd", 161), None);
        assert_eq!(fresh_token("200 1.ab.cd", 100), Some("1.ab.cd"));
        for bad in ["", "1.ab.cd", "x 1.ab.cd", "100 bad token", "100 a&b"] {
            assert_eq!(fresh_token(bad, 100), None, "{bad:?}");
        }
    }
}
