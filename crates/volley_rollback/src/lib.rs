//! The untrusted edge of volley's rollback: every ggrs message a peer sends
//! is decoded, checked and rewritten here ([`Guard::check`]) before ggrs
//! sees it, because ggrs 0.13 trusts its peers (see [`guard`] for how a
//! crafted message crashes it).
//!
//! No Bevy here, so the checks can be fuzzed on their own (`cargo xtask
//! fuzz`); `bevy_volley::rollback` calls them for every packet.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod guard;
#[cfg(feature = "harness")]
pub mod harness;
pub mod pipe;
pub mod rle;
pub mod wire;

pub use ggrs;
pub use guard::{
    Checked, Guard, GuardConfig, MAX_INPUT_BYTES, MAX_PACKET, Rejected, View, now_millis,
};
pub use pipe::{PIPE_INBOX, Pipe};
