//! Encodings: JSON for operators and the local API, postcard for device links and envelopes.
//! Decoding errors name what was being decoded so logs say which payload was bad.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A payload that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: not valid {format}: {detail}")]
pub struct DecodeError {
    /// What the payload was meant to be, e.g. "catalogue envelope".
    pub what: &'static str,
    /// "JSON" or "postcard".
    pub format: &'static str,
    /// The decoder's message.
    pub detail: String,
}

/// Encodes `value` as compact JSON.
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these types into memory cannot fail: every map key is a string.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Decodes JSON; `what` names the payload in the error.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError { what, format: "JSON", detail: e.to_string() })
}

/// Encodes `value` with postcard.
pub fn to_postcard<T: Serialize>(value: &T) -> Vec<u8> {
    // postcard into a growable vector fails only on sequences of unknown length, which these
    // types do not have.
    postcard::to_allocvec(value).unwrap_or_default()
}

/// Decodes postcard; trailing bytes are an error, so one encoding has one meaning.
pub fn from_postcard<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let err = |detail: String| DecodeError { what, format: "postcard", detail };
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| err(e.to_string()))?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(err(alloc::format!("{} unexpected trailing bytes", rest.len())))
    }
}
