//! Signing: the canonical (postcard) encoding of a [`SignedCatalogue`], an Ed25519 signature
//! over it with a domain-separation prefix, and the envelope that carries both.

use ed25519_dalek::Signer;
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::codec;
use ledtrad_protocol::envelope::{Envelope, Rollout, SignedCatalogue, MAX_ENVELOPE_BYTES, SIGNING_CONTEXT};
use ledtrad_protocol::{FleetId, UnixTime};

use crate::keys::OperatorKey;

/// What goes into the signed part besides the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOptions {
    /// The fleet the catalogue is for.
    pub fleet: FleetId,
    /// Its version; must be higher than what devices have applied.
    pub version: u64,
    /// When it is signed.
    pub issued_at: UnixTime,
    /// When devices stop accepting it.
    pub expires_at: UnixTime,
}

/// A catalogue that cannot be signed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignError {
    /// The expiry is not after the signing time.
    #[error("expiry {expires_at} is not after the signing time {issued_at}; give a later expiry")]
    ExpiryNotAfterIssue {
        /// Signing time.
        issued_at: UnixTime,
        /// Expiry.
        expires_at: UnixTime,
    },
    /// The model envelope would be over the size agents accept.
    #[error(
        "the signed model envelope is {size} bytes, over the {}-byte limit agents accept; push a smaller model",
        ledtrad_protocol::model::MAX_MODEL_ENVELOPE_BYTES
    )]
    ModelOversize {
        /// The envelope's size.
        size: usize,
    },
    /// A rollout share outside (0, 1].
    #[error("a rollout share of {share} is not above 0% and at most 100%; give one such as 5%")]
    BadShare {
        /// The share.
        share: f64,
    },
    /// The envelope would be over the size agents accept.
    #[error("the signed envelope is {size} bytes, over the {MAX_ENVELOPE_BYTES}-byte limit agents accept; split the catalogue")]
    Oversize {
        /// The envelope's size.
        size: usize,
    },
}

/// Signs `catalogue` and returns the envelope bytes to publish.
pub fn sign_catalogue(catalogue: &Catalogue, key: &OperatorKey, options: &SignOptions) -> Result<Vec<u8>, SignError> {
    sign_rollout(catalogue, key, options, None)
}

/// Signs `catalogue` for a staged rollout to a share of the fleet (`None`: all of it).
pub fn sign_rollout(
    catalogue: &Catalogue,
    key: &OperatorKey,
    options: &SignOptions,
    rollout: Option<Rollout>,
) -> Result<Vec<u8>, SignError> {
    if let Some(rollout) = rollout.filter(|r| !r.is_valid()) {
        return Err(SignError::BadShare { share: rollout.share });
    }
    let signed = SignedCatalogue {
        fleet: options.fleet.clone(),
        version: options.version,
        issued_at: options.issued_at,
        expires_at: options.expires_at,
        key_id: key.id.clone(),
        catalogue: catalogue.clone(),
        rollout,
    };
    let envelope = sign_envelope(&signed, SIGNING_CONTEXT, key, options)?;
    if envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(SignError::Oversize { size: envelope.len() });
    }
    Ok(envelope)
}

/// The envelope of `signed`: its canonical (postcard) encoding and an Ed25519 signature over
/// `context` followed by it. Checks the expiry comes after the signing time.
pub(crate) fn sign_envelope<T: serde::Serialize>(
    signed: &T,
    context: &[u8],
    key: &OperatorKey,
    options: &SignOptions,
) -> Result<Vec<u8>, SignError> {
    if options.expires_at <= options.issued_at {
        return Err(SignError::ExpiryNotAfterIssue { issued_at: options.issued_at, expires_at: options.expires_at });
    }
    let signed = codec::to_postcard(signed);
    let signature = key.signing.sign(&Envelope::signing_input_in(context, &signed)).to_bytes().to_vec();
    Ok(codec::to_postcard(&Envelope { key_id: key.id.clone(), signed, signature }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier};
    use ledtrad_protocol::KeyId;

    #[test]
    fn the_signature_covers_the_canonical_bytes() {
        let key = OperatorKey::from_secret(KeyId::try_new("op-1").unwrap(), [3; 32]);
        let catalogue = crate::load_catalogue(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalogues/home.toml")),
            None,
        )
        .unwrap();
        let options = SignOptions {
            fleet: FleetId::try_new("home").unwrap(),
            version: 7,
            issued_at: UnixTime(100),
            expires_at: UnixTime(200),
        };
        let bytes = sign_catalogue(&catalogue, &key, &options).unwrap();
        // Signing is deterministic (Ed25519), so the same input gives the same envelope.
        assert_eq!(bytes, sign_catalogue(&catalogue, &key, &options).unwrap());
        let envelope: Envelope = codec::from_postcard(&bytes, "envelope").unwrap();
        let signature = Signature::from_slice(&envelope.signature).unwrap();
        key.signing.verifying_key().verify(&Envelope::signing_input(&envelope.signed), &signature).unwrap();
        let signed: SignedCatalogue = codec::from_postcard(&envelope.signed, "signed").unwrap();
        assert_eq!(signed.version, 7);
        assert_eq!(signed.catalogue, catalogue);
        // The version can be read back unverified, to order envelopes; anything else has none.
        assert_eq!(Envelope::claimed_version(&bytes), Some(7));
        assert_eq!(Envelope::claimed_version(&bytes[..bytes.len() / 2]), None);
        assert_eq!(Envelope::claimed_version(b"online"), None);
        let bad = SignOptions { expires_at: UnixTime(100), ..options };
        assert!(sign_catalogue(&catalogue, &key, &bad).unwrap_err().to_string().contains("not after"));
    }
}
