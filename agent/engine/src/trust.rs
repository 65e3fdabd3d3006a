//! Trust in what operators push (DESIGN §7): verify a catalogue's or a model's envelope against
//! pinned operator keys, then its fleet, version and expiry, before anything inside it is used.

use core::fmt;

use ed25519_dalek::{Signature, VerifyingKey};
use ledtrad_protocol::catalogue::Problem;
use ledtrad_protocol::codec;
use ledtrad_protocol::envelope::{Envelope, SignedCatalogue, MAX_ENVELOPE_BYTES};
use ledtrad_protocol::model::{SignedModel, MAX_MODEL_ENVELOPE_BYTES, MODEL_SIGNING_CONTEXT};
use ledtrad_protocol::{FleetId, KeyId, UnixTime};

/// The operator public keys an agent trusts, by key id, and the retired ones it refuses.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<(KeyId, VerifyingKey)>,
    retired: Vec<KeyId>,
}

impl TrustedKeys {
    /// No keys: every catalogue is refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pins `key` under `id`, replacing an earlier key with the same id.
    pub fn insert(&mut self, id: KeyId, key: VerifyingKey) {
        self.keys.retain(|(k, _)| *k != id);
        self.retired.retain(|k| *k != id);
        self.keys.push((id, key));
    }

    /// Retires the key under `id`: what it signs is refused from now on, even where its
    /// signature holds (after a key rotation, or when a key may have leaked).
    pub fn retire(&mut self, id: KeyId) {
        self.keys.retain(|(k, _)| *k != id);
        if !self.retired.contains(&id) {
            self.retired.push(id);
        }
    }

    /// Whether the key under `id` is retired.
    pub fn is_retired(&self, id: &KeyId) -> bool {
        self.retired.contains(id)
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

/// What a signed envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artefact {
    /// An offer catalogue.
    Catalogue,
    /// A scoring model.
    Model,
}

impl Artefact {
    /// The signing context and the size limit of this kind of envelope.
    fn rules(self) -> (&'static [u8], usize) {
        match self {
            Self::Catalogue => (ledtrad_protocol::envelope::SIGNING_CONTEXT, MAX_ENVELOPE_BYTES),
            Self::Model => (MODEL_SIGNING_CONTEXT, MAX_MODEL_ENVELOPE_BYTES),
        }
    }

    /// The envelope's name in decoding errors.
    fn envelope_name(self) -> &'static str {
        match self {
            Self::Catalogue => "catalogue envelope",
            Self::Model => "model envelope",
        }
    }

    /// What an operator does when the envelope is too big.
    fn shrink(self) -> &'static str {
        match self {
            Self::Catalogue => "split the catalogue",
            Self::Model => "push a smaller model",
        }
    }

    /// The command that makes such envelopes.
    fn push_command(self) -> &'static str {
        match self {
            Self::Catalogue => "ledtrad-op catalogue push",
            Self::Model => "ledtrad-op model push",
        }
    }
}

impl fmt::Display for Artefact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Catalogue => "catalogue",
            Self::Model => "model",
        })
    }
}

/// Why a pushed catalogue or model was refused. What was in force stays in force in every case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The payload is over its size limit.
    #[error("{what} envelope of {size} bytes is over the limit of {limit}; {}", what.shrink())]
    Oversize {
        /// What the envelope was meant to carry.
        what: Artefact,
        /// The payload's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The payload is not an envelope.
    #[error("{reason}; publish envelopes made by `{}`", what.push_command())]
    Malformed {
        /// What the envelope was meant to carry.
        what: Artefact,
        /// What could not be decoded.
        reason: String,
    },
    /// The key id is not pinned in this agent's config.
    #[error("{what} signed with unknown key '{key}'; pin its public key in the agent config under [[operator_keys]]")]
    UnknownKey {
        /// What the envelope carries.
        what: Artefact,
        /// The key id.
        key: KeyId,
    },
    /// The key id is pinned as retired in this agent's config.
    #[error("{what} signed with retired key '{key}'; sign it with a current operator key")]
    RetiredKey {
        /// What the envelope carries.
        what: Artefact,
        /// The key id.
        key: KeyId,
    },
    /// The signature does not verify.
    #[error("bad signature for key '{key}': the {what} was altered or signed with another key")]
    BadSignature {
        /// What the envelope carries.
        what: Artefact,
        /// The key id.
        key: KeyId,
    },
    /// The envelope is for another fleet.
    #[error("{what} is for fleet '{got}' but this device is in fleet '{want}'")]
    WrongFleet {
        /// What the envelope carries.
        what: Artefact,
        /// This device's fleet.
        want: FleetId,
        /// The envelope's fleet.
        got: FleetId,
    },
    /// The version is the one applied, with the same offers: a staged rollout widened or
    /// completed. Nothing to do; not a refusal to report.
    #[error("catalogue version {version} is already applied")]
    AlreadyApplied {
        /// The version.
        version: u64,
    },
    /// A staged rollout of this version does not include this device yet: it keeps the
    /// catalogue it has. Not a refusal to report; the status says it waits.
    #[error("catalogue version {version} is rolling out to {:.0}% of the fleet, not yet to this device", share * 100.0)]
    NotInRollout {
        /// The version rolling out.
        version: u64,
        /// The share of the fleet that applies it.
        share: f64,
    },
    /// The version is not higher than the applied one.
    #[error("{what} version {got} is not newer than the applied version {applied}; push a higher --version")]
    Rollback {
        /// What the envelope carries.
        what: Artefact,
        /// The version applied now.
        applied: u64,
        /// The envelope's version.
        got: u64,
    },
    /// The envelope has expired.
    #[error("{what} version {version} expired at {expires_at} (now {now}); re-sign it with a later expiry")]
    Expired {
        /// What the envelope carries.
        what: Artefact,
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
    /// The signed model cannot be used: its manifest is wrong or its runtime cannot load it.
    #[error("model version {version}: {reason}")]
    InvalidModel {
        /// The envelope's version.
        version: u64,
        /// What is wrong and what would fix it.
        reason: String,
    },
}

impl Refusal {
    /// Whether this is no refusal at all but a catalogue the device has, or is not due yet in a
    /// staged rollout: nothing to count or report.
    pub fn is_benign(&self) -> bool {
        matches!(self, Self::AlreadyApplied { .. } | Self::NotInRollout { .. })
    }

    /// The refused envelope's version, where it could be read.
    pub fn version(&self) -> Option<u64> {
        match self {
            Self::AlreadyApplied { version }
            | Self::NotInRollout { version, .. }
            | Self::Expired { version, .. }
            | Self::Invalid { version, .. }
            | Self::InvalidModel { version, .. } => Some(*version),
            Self::Rollback { got, .. } => Some(*got),
            _ => None,
        }
    }

    /// Whether the payload was not a readable envelope at all (counted as malformed).
    pub fn is_malformed(&self) -> bool {
        matches!(self, Self::Malformed { .. } | Self::Oversize { .. })
    }
}

/// The signed fields every envelope's content carries.
pub trait SignedContent: serde::de::DeserializeOwned {
    /// What it is.
    const WHAT: Artefact;
    /// Its fleet.
    fn fleet(&self) -> &FleetId;
    /// Its version.
    fn version(&self) -> u64;
    /// Its expiry.
    fn expires_at(&self) -> UnixTime;
    /// The key id inside the signature.
    fn key_id(&self) -> &KeyId;
}

/// Both signed kinds carry the same signed fields under the same names.
macro_rules! signed_content {
    ($ty:ty, $what:expr) => {
        impl SignedContent for $ty {
            const WHAT: Artefact = $what;
            fn fleet(&self) -> &FleetId {
                &self.fleet
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn expires_at(&self) -> UnixTime {
                self.expires_at
            }
            fn key_id(&self) -> &KeyId {
                &self.key_id
            }
        }
    };
}

signed_content!(SignedCatalogue, Artefact::Catalogue);
signed_content!(SignedModel, Artefact::Model);

/// Opens an envelope: size, decoding, key, signature, fleet, version and expiry, in that order,
/// so nothing unsigned is decoded beyond the envelope's outer shell.
pub fn open_signed<T: SignedContent>(
    payload: &[u8],
    keys: &TrustedKeys,
    fleet: &FleetId,
    applied: Option<u64>,
    now: UnixTime,
) -> Result<T, Refusal> {
    let what = T::WHAT;
    let (context, limit) = what.rules();
    if payload.len() > limit {
        return Err(Refusal::Oversize { what, size: payload.len(), limit });
    }
    let malformed = |e: codec::DecodeError| Refusal::Malformed { what, reason: e.to_string() };
    let envelope: Envelope = codec::from_postcard(payload, what.envelope_name()).map_err(malformed)?;
    if keys.is_retired(&envelope.key_id) {
        return Err(Refusal::RetiredKey { what, key: envelope.key_id.clone() });
    }
    let key = keys.get(&envelope.key_id).ok_or_else(|| Refusal::UnknownKey { what, key: envelope.key_id.clone() })?;
    let bad_signature = || Refusal::BadSignature { what, key: envelope.key_id.clone() };
    let signature = Signature::from_slice(&envelope.signature).map_err(|_| bad_signature())?;
    key.verify_strict(&Envelope::signing_input_in(context, &envelope.signed), &signature)
        .map_err(|_| bad_signature())?;
    // Signed with a pinned key yet unreadable: made by a ledtrad-op whose encoding differs.
    let other_version = |e: codec::DecodeError| {
        Refusal::Malformed {
        what,
        reason: format!("{e} (the signature holds: it was signed by a ledtrad-op of another version; sign it again with the one of this agent's version)"),
    }
    };
    let signed: T = codec::from_postcard(&envelope.signed, "signed content").map_err(other_version)?;
    if *signed.key_id() != envelope.key_id {
        return Err(bad_signature());
    }
    if signed.fleet() != fleet {
        return Err(Refusal::WrongFleet { what, want: fleet.clone(), got: signed.fleet().clone() });
    }
    if let Some(applied) = applied {
        if signed.version() <= applied {
            return Err(Refusal::Rollback { what, applied, got: signed.version() });
        }
    }
    if signed.expires_at() <= now {
        return Err(Refusal::Expired { what, version: signed.version(), expires_at: signed.expires_at(), now });
    }
    Ok(signed)
}

/// Opens a catalogue envelope ([`open_signed`]) and checks the catalogue's content.
pub fn open_envelope(
    payload: &[u8],
    keys: &TrustedKeys,
    fleet: &FleetId,
    applied: Option<u64>,
    now: UnixTime,
) -> Result<SignedCatalogue, Refusal> {
    let signed: SignedCatalogue = open_signed(payload, keys, fleet, applied, now)?;
    let problems = signed.catalogue.problems();
    if !problems.is_empty() {
        return Err(Refusal::Invalid { version: signed.version, problems });
    }
    Ok(signed)
}
