//! Catalogue trust (DESIGN §7): verify an envelope's signature against pinned operator keys,
//! then its fleet, version and expiry, before anything inside it is used.

use ed25519_dalek::{Signature, VerifyingKey};
use ledtrad_protocol::catalogue::Problem;
use ledtrad_protocol::codec;
use ledtrad_protocol::envelope::{Envelope, SignedCatalogue, MAX_ENVELOPE_BYTES};
use ledtrad_protocol::{FleetId, KeyId, UnixTime};

/// The operator public keys an agent trusts, by key id.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<(KeyId, VerifyingKey)>,
}

impl TrustedKeys {
    /// No keys: every catalogue is refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pins `key` under `id`, replacing an earlier key with the same id.
    pub fn insert(&mut self, id: KeyId, key: VerifyingKey) {
        self.keys.retain(|(k, _)| *k != id);
        self.keys.push((id, key));
    }

    /// The key pinned under `id`.
    pub fn get(&self, id: &KeyId) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, v)| v)
    }

    /// How many keys are pinned.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is pinned.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Why a pushed catalogue was refused. The last good catalogue stays in force in every case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The payload is larger than [`MAX_ENVELOPE_BYTES`].
    #[error("envelope of {size} bytes is over the limit of {MAX_ENVELOPE_BYTES}; split the catalogue")]
    Oversize {
        /// The payload's size.
        size: usize,
    },
    /// The payload is not an envelope.
    #[error("{0}; publish envelopes made by `ledtrad-op catalogue push`")]
    Malformed(String),
    /// The key id is not pinned in this agent's config.
    #[error("catalogue signed with unknown key '{0}'; pin its public key in the agent config under [[operator_keys]]")]
    UnknownKey(KeyId),
    /// The signature does not verify.
    #[error("bad signature for key '{0}': the catalogue was altered or signed with another key")]
    BadSignature(KeyId),
    /// The catalogue is for another fleet.
    #[error("catalogue is for fleet '{got}' but this device is in fleet '{want}'")]
    WrongFleet {
        /// This device's fleet.
        want: FleetId,
        /// The envelope's fleet.
        got: FleetId,
    },
    /// The version is not higher than the applied one.
    #[error("catalogue version {got} is not newer than the applied version {applied}; push a higher --version")]
    Rollback {
        /// The version applied now.
        applied: u64,
        /// The envelope's version.
        got: u64,
    },
    /// The envelope has expired.
    #[error("catalogue version {version} expired at {expires_at} (now {now}); re-sign it with a later expiry")]
    Expired {
        /// The envelope's version.
        version: u64,
        /// When it expired.
        expires_at: UnixTime,
        /// The time of the check.
        now: UnixTime,
    },
    /// The signed catalogue's content breaks the catalogue rules.
    #[error("catalogue version {version} has {} problem(s), first: {}", problems.len(), problems.first().map(ToString::to_string).unwrap_or_default())]
    Invalid {
        /// The envelope's version.
        version: u64,
        /// Every problem.
        problems: Vec<Problem>,
    },
}

/// Opens an envelope: size, decoding, key, signature, fleet, version and expiry, in that order,
/// so nothing unsigned is decoded beyond the envelope's outer shell.
pub fn open_envelope(
    payload: &[u8],
    keys: &TrustedKeys,
    fleet: &FleetId,
    applied: Option<u64>,
    now: UnixTime,
) -> Result<SignedCatalogue, Refusal> {
    if payload.len() > MAX_ENVELOPE_BYTES {
        return Err(Refusal::Oversize { size: payload.len() });
    }
    let envelope: Envelope =
        codec::from_postcard(payload, "catalogue envelope").map_err(|e| Refusal::Malformed(e.to_string()))?;
    let key = keys.get(&envelope.key_id).ok_or_else(|| Refusal::UnknownKey(envelope.key_id.clone()))?;
    let signature =
        Signature::from_slice(&envelope.signature).map_err(|_| Refusal::BadSignature(envelope.key_id.clone()))?;
    key.verify_strict(&Envelope::signing_input(&envelope.signed), &signature)
        .map_err(|_| Refusal::BadSignature(envelope.key_id.clone()))?;
    let signed: SignedCatalogue =
        codec::from_postcard(&envelope.signed, "signed catalogue").map_err(|e| Refusal::Malformed(e.to_string()))?;
    if signed.key_id != envelope.key_id {
        return Err(Refusal::BadSignature(envelope.key_id));
    }
    if signed.fleet != *fleet {
        return Err(Refusal::WrongFleet { want: fleet.clone(), got: signed.fleet });
    }
    if let Some(applied) = applied {
        if signed.version <= applied {
            return Err(Refusal::Rollback { applied, got: signed.version });
        }
    }
    if signed.expires_at <= now {
        return Err(Refusal::Expired { version: signed.version, expires_at: signed.expires_at, now });
    }
    let problems = signed.catalogue.problems();
    if !problems.is_empty() {
        return Err(Refusal::Invalid { version: signed.version, problems });
    }
    Ok(signed)
}
