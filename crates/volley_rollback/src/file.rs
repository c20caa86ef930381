//! The files volley writes and reads back (replays, desync dumps): a magic
//! (the format and its version), then bincode, read whole and within
//! [`MAX_FILE_BYTES`] (players send each other these files).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest file read, and most bytes a decoded value may take.
pub const MAX_FILE_BYTES: usize = 64 << 20;

/// Why a file's bytes were refused (each format names them in its error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Another format, or another version of it.
    Magic,
    /// Over [`MAX_FILE_BYTES`].
    TooLarge(usize),
    /// The bytes do not decode (whole).
    Decode(String),
}

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_FILE_BYTES>,
> {
    bincode::config::standard().with_limit::<MAX_FILE_BYTES>()
}

/// The magic, then the value.
pub(crate) fn encode<T: Serialize>(magic: &[u8; 8], value: &T) -> Result<Vec<u8>, Refused> {
    let mut bytes = magic.to_vec();
    bincode::serde::encode_into_std_write(value, &mut bytes, config())
        .map_err(|e| Refused::Decode(e.to_string()))?;
    Ok(bytes)
}

/// A value from a file's bytes: its magic first, nothing after it.
pub(crate) fn decode<T: DeserializeOwned>(magic: &[u8; 8], bytes: &[u8]) -> Result<T, Refused> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Refused::TooLarge(bytes.len()));
    }
    let body = bytes.strip_prefix(magic.as_slice()).ok_or(Refused::Magic)?;
    let (value, read): (T, usize) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| Refused::Decode(e.to_string()))?;
    if read != body.len() {
        return Err(Refused::Decode("bytes after the value".into()));
    }
    Ok(value)
}
