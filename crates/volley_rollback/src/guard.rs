//! The check every rollback packet from a peer passes before ggrs sees it.
//!
//! ggrs 0.13 trusts its peers: a frame number near `i32::MAX` overflows its
//! arithmetic, an input far ahead makes its input queue replicate inputs up
//! to that frame (billions of steps, then an assertion), a crafted
//! run-length header makes it allocate exabytes, a checksum report while
//! desync detection is off trips a debug assertion, a forged `pong` makes
//! its frame-advantage arithmetic overflow, and a connection status that
//! calls a third player disconnected makes it drop that player (or roll
//! back outside its prediction window and panic), and an input that asks
//! for the sender's own disconnection, timed right after its last input,
//! makes it roll back to the current frame and panic. [`Guard::check`] refuses
//! or rewrites each of those, and hands on a message ggrs cannot trip over.
//! No peer's word drops a player: volley's peers agree on that among
//! themselves first (see [`crate::drops`]).

use ggrs::Message;

use crate::mirror::NULL_FRAME;
use crate::rle::{self, RleError};
use crate::wire::{self, WireBody, WireInput, WireMessage, WireStatus};

/// Largest rollback packet accepted (volley's unreliable message limit).
pub const MAX_PACKET: usize = 16 * 1024;

/// Largest encoded input of one player, in bytes. ggrs inputs are `Copy`
/// game inputs: a few bytes in practice.
pub const MAX_INPUT_BYTES: usize = 256;

/// Inputs in one packet at most (ggrs' own queue holds 128 frames).
pub const MAX_INPUTS_PER_PACKET: usize = 128;

/// How far back a `pong` may be: older ones are not answers to our reports.
pub const MAX_PONG_AGE_MS: u128 = 60_000;

/// ggrs' input queue length: the frames between the oldest unconfirmed and
/// the newest input must fit in it.
const INPUT_QUEUE: usize = 128;

/// The wall clock as ggrs reads it (ms since the Unix epoch; the browser's
/// clock in wasm): what [`View::now_millis`] wants.
pub fn now_millis() -> u128 {
    web_time::SystemTime::now()
        .duration_since(web_time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The session settings the checks depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardConfig {
    /// Players in the match.
    pub players: usize,
    /// ggrs' prediction window, in frames.
    pub max_prediction: usize,
    /// Local input delay, in frames (peers run with the same).
    pub input_delay: usize,
    /// Frames between checksum reports, or `None` when desync detection is off.
    pub desync_interval: Option<u32>,
}

impl GuardConfig {
    /// How many frames beyond ours a peer's input may be. An honest peer
    /// is at most `max_prediction` frames ahead of what it has from us, plus
    /// both sides' input delay; the margin covers a frame or two in flight.
    /// Capped so ggrs' 128-frame input queue cannot overflow.
    pub fn frames_ahead(&self) -> i32 {
        let honest = self.max_prediction + 2 * self.input_delay + 8;
        let room = INPUT_QUEUE.saturating_sub(self.max_prediction + 2);
        i32::try_from(honest.min(room)).unwrap_or(i32::MAX)
    }
}

/// What this peer knows when a packet arrives.
#[derive(Debug, Clone, Copy)]
pub struct View {
    /// Our current frame (0 before the session runs).
    pub frame: i32,
    /// Our wall clock in ms since the Unix epoch (what ggrs puts in `ping`).
    pub now_millis: u128,
    /// Player handles the sender controls (1 for a volley peer).
    pub sender_handles: usize,
}

/// Why a rollback packet was refused. Every refusal counts against the
/// sender (see `volley_net`'s misbehaviour limit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Larger than [`MAX_PACKET`].
    #[error("rollback packet of {0} bytes exceeds {MAX_PACKET}")]
    TooLarge(usize),
    /// Not a ggrs message (or trailing bytes after one).
    #[error("not a ggrs message")]
    Undecodable,
    /// An input message without one status per player.
    #[error("{got} connection statuses for {expected} players")]
    StatusCount {
        /// Statuses sent.
        got: usize,
        /// Players in the match.
        expected: usize,
    },
    /// A frame outside what an honest peer could send now.
    #[error("frame {frame} outside {low}..={high}")]
    FrameOutOfWindow {
        /// The frame (the last one, for an input run).
        frame: i64,
        /// Lowest acceptable.
        low: i64,
        /// Highest acceptable.
        high: i64,
    },
    /// The encoded inputs were broken or too large.
    #[error("input encoding: {0}")]
    Inputs(#[from] RleError),
    /// A checksum report while desync detection is off.
    #[error("checksum report while desync detection is off")]
    UnexpectedChecksum,
    /// A checksum report for a frame that is no multiple of the interval.
    #[error("checksum report for frame {frame}, not a multiple of {interval}")]
    ChecksumFrame {
        /// The frame.
        frame: i32,
        /// The interval.
        interval: u32,
    },
    /// A `pong` that is not the echo of a recent `ping` of ours.
    #[error("pong {pong} is not a recent ping (now {now})")]
    ForgedPong {
        /// What came back.
        pong: u128,
        /// Our clock.
        now: u128,
    },
}

/// Checks ggrs messages from peers against a session's settings.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    config: GuardConfig,
}

impl Guard {
    /// A guard for a session with these settings.
    pub fn new(config: GuardConfig) -> Self {
        Guard { config }
    }

    /// The settings.
    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// Decodes and checks one packet; returns the message ggrs may have.
    ///
    /// ```
    /// use volley_rollback::{Guard, GuardConfig, Rejected, View};
    ///
    /// let guard = Guard::new(GuardConfig {
    ///     players: 2,
    ///     max_prediction: 8,
    ///     input_delay: 2,
    ///     desync_interval: Some(10),
    /// });
    /// let view = View { frame: 0, now_millis: 0, sender_handles: 1 };
    /// assert_eq!(guard.check(&[0xff; 40], &view).unwrap_err(), Rejected::Undecodable);
    /// ```
    pub fn check(&self, bytes: &[u8], view: &View) -> Result<Message, Rejected> {
        let message = self.inspect(bytes, view)?;
        wire::to_ggrs(&message).ok_or(Rejected::Undecodable)
    }

    /// [`Guard::check`], answering with volley's mirror of the message
    /// (what [`Pipe::deliver`](crate::Pipe::deliver) takes).
    pub fn inspect(&self, bytes: &[u8], view: &View) -> Result<WireMessage, Rejected> {
        let mut message = self.decode(bytes)?;
        self.check_body(&mut message.body, view)?;
        Ok(message)
    }

    /// Decodes the mirror of a ggrs message with every length bounded.
    fn decode(&self, bytes: &[u8]) -> Result<WireMessage, Rejected> {
        if bytes.len() > MAX_PACKET {
            return Err(Rejected::TooLarge(bytes.len()));
        }
        let config = wire::config().with_limit::<MAX_PACKET>();
        match bincode::serde::decode_from_slice::<WireMessage, _>(bytes, config) {
            Ok((message, used)) if used == bytes.len() => Ok(message),
            _ => Err(Rejected::Undecodable),
        }
    }

    /// Checks (and rewrites) a body.
    fn check_body(&self, body: &mut WireBody, view: &View) -> Result<(), Rejected> {
        let ahead = i64::from(self.config.frames_ahead());
        let frame = i64::from(view.frame);
        match body {
            WireBody::SyncRequest { .. } | WireBody::SyncReply { .. } | WireBody::KeepAlive => {
                Ok(())
            }
            WireBody::InputAck { .. } => Ok(()), // only decides what we resend to the sender
            WireBody::Input(input) => self.check_input(input, view, frame, ahead),
            WireBody::QualityReport {
                frame_advantage, ..
            } => {
                // Only steers wait recommendations; an absurd value is clamped.
                let bound = i16::try_from(ahead).unwrap_or(i16::MAX);
                *frame_advantage = (*frame_advantage).clamp(-bound, bound);
                Ok(())
            }
            WireBody::QualityReply { pong } => {
                let now = view.now_millis;
                if *pong > now || now - *pong > MAX_PONG_AGE_MS {
                    return Err(Rejected::ForgedPong { pong: *pong, now });
                }
                Ok(())
            }
            WireBody::ChecksumReport { frame: at, .. } => {
                let interval = self
                    .config
                    .desync_interval
                    .filter(|i| *i > 0)
                    .ok_or(Rejected::UnexpectedChecksum)?;
                window(i64::from(*at), 0, frame + ahead)?;
                if u32::try_from(*at).is_ok_and(|f| f % interval != 0) {
                    return Err(Rejected::ChecksumFrame {
                        frame: *at,
                        interval,
                    });
                }
                Ok(())
            }
        }
    }

    fn check_input(
        &self,
        input: &mut WireInput,
        view: &View,
        frame: i64,
        ahead: i64,
    ) -> Result<(), Rejected> {
        let players = self.config.players;
        if input.peer_connect_status.len() != players {
            return Err(Rejected::StatusCount {
                got: input.peer_connect_status.len(),
                expected: players,
            });
        }
        let max_input = MAX_INPUT_BYTES.saturating_mul(view.sender_handles.max(1));
        let max_decoded = (max_input + 2) * MAX_INPUTS_PER_PACKET;
        let decoded = rle::decode_runs(&input.bytes, max_decoded)?;
        let count = rle::count_inputs(&decoded, max_input, MAX_INPUTS_PER_PACKET)?;
        let start = i64::from(input.start_frame);
        window(start, 0, frame + ahead)?;
        // `count` ≤ 128: no overflow in i64.
        let last = start + count as i64 - 1;
        window(last, -1, frame + ahead)?;
        input.bytes = rle::encode_runs(&decoded);
        // ggrs disconnects a sender that asks to be, at once, from its last
        // input on: one whose last input is the frame before ours makes ggrs
        // roll back to the current frame and panic ("must load frame in the
        // past"), and the sender can time that. Its leaving reaches us anyway
        // (volley's session, or silence).
        input.disconnect_requested = false;
        // ggrs drops a player any peer calls disconnected, from the frame
        // that peer names: no peer's word is taken for that (volley's peers
        // agree on drops among themselves, see `crate::drops`).
        for status in &mut input.peer_connect_status {
            *status = WireStatus {
                disconnected: false,
                last_frame: NULL_FRAME,
            };
        }
        Ok(())
    }
}

/// `frame` within `low..=high`.
fn window(frame: i64, low: i64, high: i64) -> Result<(), Rejected> {
    if frame < low || frame > high {
        return Err(Rejected::FrameOutOfWindow { frame, low, high });
    }
    Ok(())
}
