//! The signed catalogue envelope (DESIGN §7). The operator signs the canonical (postcard)
//! encoding of a [`SignedCatalogue`]; agents verify the signature over those exact bytes
//! before decoding anything inside them.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::catalogue::Catalogue;
use crate::id::{FleetId, KeyId};
use crate::time::UnixTime;

/// The largest envelope an agent accepts, in bytes.
pub const MAX_ENVELOPE_BYTES: usize = 1024 * 1024;

/// Prepended to the signed bytes so a catalogue signature can never be mistaken for another
/// kind of signature made with the same key.
pub const SIGNING_CONTEXT: &[u8] = b"ledtrad/v1/catalogue\0";

/// What the operator signs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedCatalogue {
    /// The fleet this catalogue is for; others refuse it (mix-and-match).
    pub fleet: FleetId,
    /// Strictly increasing per fleet; lower or equal versions are refused (rollback).
    pub version: u64,
    /// When the operator signed it.
    pub issued_at: UnixTime,
    /// After this the envelope is refused (freeze).
    pub expires_at: UnixTime,
    /// The signing key, repeated inside the signature.
    pub key_id: KeyId,
    /// The offers.
    pub catalogue: Catalogue,
    /// A staged rollout: only some devices apply this version yet.
    pub rollout: Option<Rollout>,
}

/// A staged rollout (`ledtrad-op rollout`): only the devices whose pseudonym hashes below
/// `share` apply the version; the others keep the one they have, until the operator widens the
/// share or completes the rollout by publishing the same version again.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// The share of the fleet's devices that apply it, above 0 and at most 1.
    pub share: f64,
}

impl Rollout {
    /// Whether `device` applies `version` of `fleet` at this share: a deterministic hash of the
    /// three (FNV-1a), so widening the share keeps every device already in, and each version
    /// draws its own canary devices.
    pub fn includes(&self, device: &crate::id::DeviceId, fleet: &FleetId, version: u64) -> bool {
        let bytes = device.as_str().bytes().chain([b'/']).chain(fleet.as_str().bytes()).chain(version.to_le_bytes());
        crate::id::hash_fraction(bytes) < self.share
    }

    /// Whether the share is one a rollout can have.
    pub fn is_valid(&self) -> bool {
        self.share > 0.0 && self.share <= 1.0
    }
}

/// The bytes published on a fleet's catalogue topic (postcard-encoded); models travel in the
/// same shell on the model topic, signed in their own context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The key that signed `signed`.
    pub key_id: KeyId,
    /// The canonical encoding of a [`SignedCatalogue`].
    pub signed: Vec<u8>,
    /// An Ed25519 signature over [`SIGNING_CONTEXT`] followed by `signed` (64 bytes).
    pub signature: Vec<u8>,
}

/// What every signed content (catalogue, model) starts with, in its canonical encoding.
#[derive(Deserialize)]
struct Head {
    #[allow(dead_code)]
    fleet: FleetId,
    version: u64,
}

impl Envelope {
    /// The version `payload` (an envelope's bytes, as published) claims, read without checking
    /// its signature: for operator tools that order envelopes they published, never for
    /// trusting one. `None` when it is not an envelope.
    pub fn claimed_version(payload: &[u8]) -> Option<u64> {
        let envelope: Envelope = crate::codec::from_postcard(payload, "envelope").ok()?;
        postcard::take_from_bytes::<Head>(&envelope.signed).ok().map(|(head, _)| head.version)
    }

    /// The exact bytes a catalogue signature covers.
    pub fn signing_input(signed: &[u8]) -> Vec<u8> {
        Self::signing_input_in(SIGNING_CONTEXT, signed)
    }

    /// The exact bytes a signature in `context` covers (e.g.
    /// [`crate::model::MODEL_SIGNING_CONTEXT`] for models, which travel in the same shell).
    pub fn signing_input_in(context: &[u8], signed: &[u8]) -> Vec<u8> {
        let mut input = Vec::with_capacity(context.len() + signed.len());
        input.extend_from_slice(context);
        input.extend_from_slice(signed);
        input
    }
}
