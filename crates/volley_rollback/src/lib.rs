//! The untrusted edge of volley's rollback: every ggrs message a peer sends
//! is decoded, checked and rewritten here ([`Guard::check`]) before ggrs
//! sees it, because ggrs 0.13 trusts its peers (see [`guard`] for how a
//! crafted message crashes it).
//!
//! Beside it: [`mirror`], what ggrs has received, decoded as ggrs decodes
//! it; [`drops`], how the peers still in agree on where a dropped player's
//! inputs end; [`report`], which checksum reports (what a peer sends when
//! we desync) are taken, within which limits; [`seats`], how a player who
//! lost the others is seated again in a running match; [`watch`], how
//! spectators are fed a running match; [`replay`], a match as a file;
//! [`desync`], a desynced world as a file, and what differs between two.
//!
//! No Bevy here, so the checks can be fuzzed on their own (`cargo xtask
//! fuzz`); `bevy_volley::rollback` calls them for every packet.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod desync;
mod drop_driver;
pub mod drops;
mod file;
pub mod guard;
#[cfg(feature = "harness")]
pub mod harness;
pub mod mirror;
pub mod pipe;
pub mod replay;
pub mod report;
pub mod rle;
pub mod seats;
pub mod watch;
pub mod wire;

pub use drops::{Action, DropNotice, Drops, MAX_NOTICE_BYTES, NoticeError};
pub use ggrs;
pub use guard::{Guard, GuardConfig, MAX_INPUT_BYTES, MAX_PACKET, Rejected, View, now_millis};
pub use mirror::{Unusable, decodes_as};
pub use pipe::{PIPE_INBOX, Pipe};
pub use report::{
    ChecksumReport, MAX_PART_NAME, MAX_REPORT_BYTES, MAX_REPORT_PARTS, Reports, differing_parts,
};
pub use seats::{MAX_HANDOVER_BYTES, MAX_SEATING_BYTES, SeatAction, Seating, SeatingError, Seats};
pub use watch::{MAX_WATCH_BYTES, Watch, WatchError, Watching};
