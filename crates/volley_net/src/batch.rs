//! Packing the small messages sent to one peer on one channel into one
//! DataChannel message.
//!
//! Every DataChannel message costs the WebRTC stack the same work whatever
//! its size (SCTP chunk, queues, events; in the browser one JavaScript
//! event), and that work, not the bytes, limits how many small messages a
//! peer can send: profiling the data path benchmark shows webrtc-rs's single
//! driver thread saturated at ~330,000 100-byte messages/s, volley's and
//! raw matchbox_socket's alike. So messages a game sends between two flushes
//! (`Session::update`/`Session::flush`, once per frame with the Bevy plugin)
//! travel together, as game netcode libraries pack messages into packets:
//!
//! `[KIND_BATCH][flags = 0][count: u16 LE]` then `count` times
//! `[len: u16 LE][frame: len bytes]`, each frame a whole framed message.
//!
//! A batch of one is sent as its bare frame, so a game sending one message
//! per frame pays nothing. A batch is at most [`MAX_BATCH`] bytes, one SCTP
//! packet, on both channels: losing an unreliable one loses no more than the
//! network would, and webrtc-rs slows down sharply on reliable messages
//! that span several SCTP packets (measured with the data path benchmark:
//! 100-byte messages in 1,150-byte batches ~590,000/s; in 4 KiB batches
//! ~98,000/s; in 16 KiB ones ~39,000/s). Nothing nests: a batch holds no
//! batches and no fragments.

use crate::frame::{self, FrameError, Header, KIND_BATCH};

/// Largest batch: what fits one SCTP packet in every WebRTC stack (path MTU
/// ~1,200 bytes less the SCTP headers). Larger messages travel alone.
pub const MAX_BATCH: usize = 1_150;

/// Batch header: kind, flags, count.
const HEAD: usize = 4;

/// Length prefix of each frame in a batch.
const PREFIX: usize = 2;

/// Frames waiting to leave to one peer on one channel (never the rollback
/// channel, which carries the rollback library's own framing).
#[derive(Debug, Default)]
pub struct Batch {
    buf: Vec<u8>,
    count: u16,
}

impl Batch {
    /// Whether `frame` can travel in a batch at all.
    pub fn fits_alone(frame: &[u8]) -> bool {
        HEAD + PREFIX + frame.len() <= MAX_BATCH
    }

    /// Appends `frame` (which [`Batch::fits_alone`]); when it does not fit
    /// in what is already waiting, that leaves first and is returned.
    pub fn push(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        let full = self.buf.len() + PREFIX + frame.len() > MAX_BATCH;
        let ready = if full { self.take() } else { None };
        if self.count == 0 {
            self.buf.clear();
            frame::write_header(&mut self.buf, Header::new(KIND_BATCH, None));
            self.buf.extend_from_slice(&0u16.to_le_bytes());
        }
        // Both fit in u16: a batch is at most `MAX_BATCH` long.
        self.buf
            .extend_from_slice(&(frame.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(frame);
        self.count += 1;
        ready
    }

    /// What is waiting, as one packet: the bare frame when there is only one.
    pub fn take(&mut self) -> Option<Vec<u8>> {
        let count = std::mem::take(&mut self.count);
        match count {
            0 => None,
            1 => Some(self.buf[HEAD + PREFIX..].to_vec()),
            n => {
                self.buf[2..HEAD].copy_from_slice(&n.to_le_bytes());
                Some(std::mem::take(&mut self.buf))
            }
        }
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// How many messages `packet` carries, for the receiver's per-update budget:
/// a batch's announced count (at least 1; a batch is checked against it when
/// read), 1 for anything else.
pub fn weight(packet: &[u8]) -> usize {
    match packet {
        [KIND_BATCH, _, lo, hi, ..] => usize::from(u16::from_le_bytes([*lo, *hi])).max(1),
        _ => 1,
    }
}

/// The frames in a batch's payload (what follows its 2-byte header), which
/// must hold exactly the announced count. A malformed batch yields one error
/// where it stops making sense, after the frames before it.
pub fn frames(payload: &[u8]) -> Frames<'_> {
    match payload.split_first_chunk::<2>() {
        Some((count, rest)) => Frames {
            rest,
            left: u16::from_le_bytes(*count),
            broken: false,
        },
        // No count: reading one frame fails on the missing bytes.
        None => Frames {
            rest: payload,
            left: 1,
            broken: false,
        },
    }
}

/// Iterator over a batch's frames: see [`frames`].
#[derive(Debug)]
pub struct Frames<'a> {
    rest: &'a [u8],
    left: u16,
    broken: bool,
}

impl<'a> Frames<'a> {
    fn fail(&mut self, error: FrameError) -> Option<Result<&'a [u8], FrameError>> {
        self.broken = true;
        Some(Err(error))
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<&'a [u8], FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.broken {
            return None;
        }
        if self.left == 0 {
            return match self.rest.len() {
                0 => None,
                trailing => self.fail(FrameError::BatchTrailing(trailing)),
            };
        }
        self.left -= 1;
        let Some((len, tail)) = self.rest.split_first_chunk::<PREFIX>() else {
            return self.fail(FrameError::Truncated(self.rest.len()));
        };
        let len = usize::from(u16::from_le_bytes(*len));
        if len > tail.len() {
            return self.fail(FrameError::Truncated(tail.len()));
        }
        let (frame, rest) = tail.split_at(len);
        self.rest = rest;
        Some(Ok(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpack(packet: &[u8]) -> Vec<Result<Vec<u8>, FrameError>> {
        let (header, payload) = frame::read(packet).unwrap();
        assert_eq!(header.kind, KIND_BATCH);
        frames(payload).map(|f| f.map(<[u8]>::to_vec)).collect()
    }

    #[test]
    fn one_frame_leaves_bare_and_several_leave_as_one_batch() {
        let mut batch = Batch::default();
        assert_eq!(batch.take(), None);
        assert!(batch.push(&[20, 0, 1]).is_none());
        assert_eq!(batch.take(), Some(vec![20, 0, 1]));
        assert!(batch.is_empty());
        for frame in [&[20u8, 0, 1][..], &[21, 0], &[22, 0, 9, 9]] {
            assert!(batch.push(frame).is_none());
        }
        let packet = batch.take().unwrap();
        assert_eq!(weight(&packet), 3);
        assert_eq!(
            unpack(&packet),
            vec![Ok(vec![20, 0, 1]), Ok(vec![21, 0]), Ok(vec![22, 0, 9, 9])]
        );
    }

    #[test]
    fn a_full_batch_leaves_before_the_frame_that_does_not_fit() {
        let mut batch = Batch::default();
        let frame = vec![20u8; 500];
        assert!(Batch::fits_alone(&frame));
        assert!(batch.push(&frame).is_none());
        assert!(batch.push(&frame).is_none());
        let full = batch.push(&frame).expect("third does not fit");
        assert!(full.len() <= MAX_BATCH);
        assert_eq!(unpack(&full).len(), 2);
        assert_eq!(batch.take(), Some(frame));
        assert!(Batch::fits_alone(&[0; MAX_BATCH - 6]));
        assert!(!Batch::fits_alone(&[0; MAX_BATCH - 5]));
    }

    #[test]
    fn malformed_batches_are_errors_after_the_good_frames() {
        // Announces 2, holds 1.
        let short = [KIND_BATCH, 0, 2, 0, 1, 0, 20];
        let got = unpack(&short);
        assert_eq!(got[0], Ok(vec![20]));
        assert!(got[1].is_err());
        assert_eq!(got.len(), 2);
        // A length beyond the end.
        assert!(unpack(&[KIND_BATCH, 0, 1, 0, 9, 0, 20])[0].is_err());
        // Trailing bytes.
        let got = unpack(&[KIND_BATCH, 0, 1, 0, 1, 0, 20, 7]);
        assert_eq!(got, vec![Ok(vec![20]), Err(FrameError::BatchTrailing(1))]);
        // No count at all.
        assert_eq!(unpack(&[KIND_BATCH, 0, 1]).len(), 1);
        assert_eq!(weight(&[KIND_BATCH, 0, 0, 0]), 1);
        assert_eq!(weight(&[20, 0, 0, 9]), 1);
    }
}
