//! ggrs' input encoding, read strictly: a run-length layer (the
//! `bitfield-rle` crate: varint headers, runs of 0x00/0xff or literal
//! bytes) around a list of `[u16 length][bytes]` inputs, each XORed with the
//! one before.
//!
//! ggrs decodes this with `bitfield-rle`, which sizes its output from the
//! headers before reading (a crafted header asks for exabytes), indexes past
//! the end of short buffers and overflows its varint arithmetic. Here every
//! length is checked against a bound first; what passes is re-encoded by
//! `bitfield-rle` itself, so ggrs only ever decodes its own canonical output.

/// Why an input encoding was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RleError {
    /// A varint header ran past the end or past 63 bits.
    #[error("broken varint header at byte {0}")]
    Varint(usize),
    /// Literal bytes announced beyond the end of the packet.
    #[error("literal run of {len} bytes at {at} runs past the end")]
    Truncated {
        /// Announced length.
        len: u64,
        /// Where.
        at: usize,
    },
    /// The decoded size would pass the bound.
    #[error("decoded inputs exceed {0} bytes")]
    TooLong(usize),
    /// An input's 2-byte length prefix was cut off or its bytes run past the end.
    #[error("input list truncated")]
    InputTruncated,
    /// One input is longer than an input may be.
    #[error("an input of {len} bytes exceeds {max}")]
    InputTooLong {
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// More inputs in one packet than the bound.
    #[error("more than {0} inputs in one packet")]
    TooManyInputs(usize),
}

/// Reads one LEB128 varint of at most 9 bytes (63 bits).
fn varint(buf: &[u8], at: usize) -> Result<(u64, usize), RleError> {
    let mut value = 0u64;
    for i in 0..9 {
        let byte = *buf.get(at + i).ok_or(RleError::Varint(at))?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(RleError::Varint(at))
}

/// Undoes the run-length layer, refusing anything that decodes to more than
/// `max` bytes before allocating it.
pub fn decode_runs(buf: &[u8], max: usize) -> Result<Vec<u8>, RleError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let (header, used) = varint(buf, at)?;
        at += used;
        let repeat = header & 1 == 1;
        let len = if repeat { header >> 2 } else { header >> 1 };
        let room = (max - out.len()) as u64;
        if len > room {
            return Err(RleError::TooLong(max));
        }
        let len_usize = len as usize; // ≤ room ≤ max: fits
        if repeat {
            let fill = if header & 2 == 2 { 0xff } else { 0 };
            out.resize(out.len() + len_usize, fill);
        } else {
            let end = at
                .checked_add(len_usize)
                .filter(|end| *end <= buf.len())
                .ok_or(RleError::Truncated { len, at })?;
            out.extend_from_slice(&buf[at..end]);
            at = end;
        }
    }
    Ok(out)
}

/// Checks the input list inside the decoded runs: whole `[u16 len][bytes]`
/// entries, each at most `max_input` bytes, at most `max_inputs` of them.
/// Returns how many inputs it holds.
pub fn count_inputs(
    decoded: &[u8],
    max_input: usize,
    max_inputs: usize,
) -> Result<usize, RleError> {
    let mut at = 0;
    let mut count = 0;
    while at < decoded.len() {
        let prefix = decoded.get(at..at + 2).ok_or(RleError::InputTruncated)?;
        let len = usize::from(u16::from_le_bytes([prefix[0], prefix[1]]));
        if len > max_input {
            return Err(RleError::InputTooLong {
                len,
                max: max_input,
            });
        }
        at += 2;
        if decoded.len() - at < len {
            return Err(RleError::InputTruncated);
        }
        at += len;
        count += 1;
        if count > max_inputs {
            return Err(RleError::TooManyInputs(max_inputs));
        }
    }
    Ok(count)
}

/// Splits a checked input list (see [`count_inputs`]) into inputs, undoing
/// the XOR with the input before, the first against `reference` (what ggrs
/// does; an empty reference stands for its all-zero blank input).
pub fn delta_decode(reference: &[u8], decoded: &[u8]) -> Result<Vec<Vec<u8>>, RleError> {
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    let mut at = 0;
    while at < decoded.len() {
        let prefix = decoded.get(at..at + 2).ok_or(RleError::InputTruncated)?;
        let len = usize::from(u16::from_le_bytes([prefix[0], prefix[1]]));
        at += 2;
        let bytes = decoded
            .get(at..at.saturating_add(len))
            .ok_or(RleError::InputTruncated)?;
        at += len;
        let base = inputs.last().map_or(reference, Vec::as_slice);
        let mut input = bytes.to_vec();
        for (b, r) in input.iter_mut().zip(base) {
            *b ^= r;
        }
        inputs.push(input);
    }
    Ok(inputs)
}

/// The input list ggrs would send for `inputs` after `reference`: each
/// `[u16 length][bytes]`, XORed with the one before (run-length encode it
/// with [`encode_runs`]).
pub fn delta_encode(reference: &[u8], inputs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut base = reference;
    for input in inputs {
        // Inputs are at most MAX_INPUT_BYTES long: the length fits a u16.
        let len = u16::try_from(input.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        for (i, b) in input.iter().take(usize::from(len)).enumerate() {
            out.push(b ^ base.get(i).copied().unwrap_or(0));
        }
        base = input;
    }
    out
}

/// The canonical run-length encoding of `decoded`, as ggrs writes it.
pub fn encode_runs(decoded: &[u8]) -> Vec<u8> {
    bitfield_rle::encode(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_header_asking_for_exabytes_is_refused_before_allocating() {
        // A repeat run of 2^61 zero bytes.
        let mut buf = vec![0xff; 8];
        buf.push(0x7f);
        assert_eq!(decode_runs(&buf, 1024), Err(RleError::TooLong(1024)));
    }

    #[test]
    fn truncated_headers_and_literals_are_errors() {
        assert_eq!(decode_runs(&[0x80], 64), Err(RleError::Varint(0)));
        assert_eq!(decode_runs(&[0xff; 12], 64), Err(RleError::Varint(0)));
        // A literal run of 5 bytes with 2 present.
        assert!(matches!(
            decode_runs(&[5 << 1, 1, 2], 64),
            Err(RleError::Truncated { len: 5, .. })
        ));
    }

    #[test]
    fn input_lists_are_bounded() {
        assert_eq!(count_inputs(&[], 8, 4), Ok(0));
        assert_eq!(count_inputs(&[1, 0, 7], 8, 4), Ok(1));
        assert_eq!(count_inputs(&[1], 8, 4), Err(RleError::InputTruncated));
        assert_eq!(
            count_inputs(&[3, 0, 7], 8, 4),
            Err(RleError::InputTruncated)
        );
        assert_eq!(
            count_inputs(&[9, 0], 8, 4),
            Err(RleError::InputTooLong { len: 9, max: 8 })
        );
        assert_eq!(
            count_inputs(&[0, 0, 0, 0, 0, 0], 8, 2),
            Err(RleError::TooManyInputs(2))
        );
    }

    proptest! {
        /// What bitfield-rle writes, we read back unchanged (and so the
        /// canonical re-encoding ggrs gets decodes to what we checked).
        #[test]
        fn reads_what_bitfield_rle_writes(data in proptest::collection::vec(
            prop_oneof![Just(0u8), Just(255u8), any::<u8>()], 0..600)) {
            let encoded = encode_runs(&data);
            prop_assert_eq!(decode_runs(&encoded, 4096).unwrap(), data.clone());
            prop_assert_eq!(bitfield_rle::decode(&encoded).unwrap(), data);
        }

        /// Delta coding round-trips against any reference, inputs of any lengths.
        #[test]
        fn delta_coding_round_trips(
            reference in proptest::collection::vec(any::<u8>(), 0..6),
            inputs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..6), 0..8),
        ) {
            let list = delta_encode(&reference, &inputs);
            prop_assert_eq!(count_inputs(&list, 8, 8).unwrap(), inputs.len());
            prop_assert_eq!(delta_decode(&reference, &list).unwrap(), inputs);
        }

        /// Arbitrary bytes never panic and never decode past the bound.
        #[test]
        fn arbitrary_bytes_stay_bounded(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(out) = decode_runs(&buf, 256) {
                prop_assert!(out.len() <= 256);
                prop_assert_eq!(bitfield_rle::decode(encode_runs(&out)).unwrap(), out);
            }
        }
    }
}
