//! Engine tests beside the code: the fixtures every test module shares, with the tests of each
//! responsibility in a child module (catalogue trust, the pipeline's stages, feedback and
//! consent purges, the offer service's candidates).

mod feedback;
mod home;
mod influence;
mod pipeline;
mod remote;
mod share;
mod trust;

use ed25519_dalek::{Signer, SigningKey};
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::codec;
use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::{Decision, DecisionId, Rejection, Verdict};
use ledtrad_protocol::envelope::{Envelope, SignedCatalogue};
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::{CampaignId, DeviceKind, FleetId, KeyId, Moment, Purpose, UnixTime};

use crate::context::{Draw, Policy};
use crate::eligibility::in_holdout;
use crate::engine::{Engine, FeedbackError, RECENT_TRACES};
use crate::features::LocalTime;
use crate::model::RuntimeKind;
use crate::profile::{DeviceProfile, DEFAULT_CAMOUFLAGE_SHARE};
use crate::remote::{RemoteError, RemoteOffers, MAX_REMOTE_OFFERS};
use crate::scoring::{INTRUSIVENESS, TRACE_SCORES};
use crate::trust::{Refusal, TrustedKeys};

pub(crate) const NOW: UnixTime = UnixTime(1_795_456_800); // 2026-11-23T18:00:00Z

pub(crate) fn build_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub(crate) fn build_catalogue() -> Catalogue {
    Catalogue::from_value(catalogue_json()).expect("test catalogue is valid")
}

/// The test catalogue with a consent prompt for `personalise` on the fridge.
fn build_catalogue_with_prompt() -> Catalogue {
    let mut value = catalogue_json();
    value["prompt"] = serde_json::json!([{
        "id": "ask-personalise", "purpose": "personalise",
        "question": "Could the fridge suggest refills when things run low?",
        "incentive": "10% off every suggested refill", "text_version": "2026-11",
        "device_kinds": ["fridge"], "moments": ["door_opened"]
    }]);
    Catalogue::from_value(value).expect("test catalogue is valid")
}

fn catalogue_json() -> serde_json::Value {
    serde_json::json!({
        "offer": [
            {
                "id": "butter-refill", "campaign": "dairy", "title": "Butter",
                "question": "Could butter be something for you?", "body": "Refill.",
                "category": "food.dairy", "device_kinds": ["fridge"], "moments": ["door_opened"],
                "conditions": [{ "feature": "fridge.butter.level", "op": "lt", "value": 0.2 }],
                "value": 3.0, "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z",
                "caps": { "per_day": 2 }, "personalised": true
            },
            {
                "id": "fridge-care", "campaign": "care", "title": "Care",
                "question": "Would a tip be useful?", "body": "Tips.", "category": "home.kitchen",
                "device_kinds": ["fridge"], "moments": ["door_opened"], "value": 0.5,
                "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"
            },
            {
                "id": "film", "campaign": "evenings", "title": "Film", "question": "A film tonight?",
                "body": "Films.", "category": "media.film", "device_kinds": ["lock_screen"],
                "moments": ["screen_woken"], "value": 2.0,
                "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"
            }
        ]
    })
}

fn build_envelope(key: &SigningKey, key_id: &str, fleet: &str, version: u64, expires_at: UnixTime) -> Vec<u8> {
    sign(key, key_id, fleet, version, expires_at, build_catalogue())
}

fn prompt_envelope(version: u64) -> Vec<u8> {
    sign(&build_key(1), "op-1", "home", version, NOW.plus_secs(60 * 86_400), build_catalogue_with_prompt())
}

pub(crate) fn sign(
    key: &SigningKey,
    key_id: &str,
    fleet: &str,
    version: u64,
    expires_at: UnixTime,
    catalogue: Catalogue,
) -> Vec<u8> {
    sign_rollout(key, key_id, fleet, version, expires_at, catalogue, None)
}

/// [`sign`], in a staged rollout to `rollout` of the fleet.
fn sign_rollout(
    key: &SigningKey,
    key_id: &str,
    fleet: &str,
    version: u64,
    expires_at: UnixTime,
    catalogue: Catalogue,
    rollout: Option<ledtrad_protocol::envelope::Rollout>,
) -> Vec<u8> {
    let signed = SignedCatalogue {
        fleet: FleetId::try_new(fleet).unwrap(),
        version,
        issued_at: NOW,
        expires_at,
        key_id: KeyId::try_new(key_id).unwrap(),
        catalogue,
        rollout,
    };
    let signed = codec::to_postcard(&signed);
    let signature = key.sign(&Envelope::signing_input(&signed)).to_bytes().to_vec();
    codec::to_postcard(&Envelope { key_id: KeyId::try_new(key_id).unwrap(), signed, signature })
}

pub(crate) fn build_engine(kind: DeviceKind) -> Engine {
    build_engine_with_policy(kind, Policy::Clues)
}

fn build_engine_with_policy(kind: DeviceKind, policy: Policy) -> Engine {
    let mut keys = TrustedKeys::new();
    keys.insert(KeyId::try_new("op-1").unwrap(), build_key(1).verifying_key());
    let profile = DeviceProfile {
        device: ledtrad_protocol::DeviceId::try_new("d-test").unwrap(),
        kind,
        fleet: FleetId::try_new("home").unwrap(),
        local: LocalTime::default(),
        camouflage_share: DEFAULT_CAMOUFLAGE_SHARE,
        model_runtime: RuntimeKind::Tract,
        policy,
    };
    Engine::new(profile, keys)
}

pub(crate) fn good_envelope(version: u64) -> Vec<u8> {
    build_envelope(&build_key(1), "op-1", "home", version, NOW.plus_secs(7 * 86_400))
}

pub(crate) fn butter(value: f64) -> Signal {
    Signal { feature: FeatureName::try_new("fridge.butter.level").unwrap(), value }
}

pub(crate) fn personalise() -> ConsentState {
    ConsentState::NONE.with(Purpose::Personalise, true)
}

pub(crate) fn build_engine_for(device: &str, catalogue: Catalogue) -> Engine {
    let mut keys = TrustedKeys::new();
    keys.insert(KeyId::try_new("op-1").unwrap(), build_key(1).verifying_key());
    let profile = DeviceProfile {
        device: ledtrad_protocol::DeviceId::try_new(device).unwrap(),
        kind: DeviceKind::Fridge,
        fleet: FleetId::try_new("home").unwrap(),
        local: LocalTime::default(),
        camouflage_share: DEFAULT_CAMOUFLAGE_SHARE,
        model_runtime: RuntimeKind::Tract,
        policy: Policy::Clues,
    };
    let mut engine = Engine::new(profile, keys);
    engine
        .handle_catalogue(&sign(&build_key(1), "op-1", "home", 1, NOW.plus_secs(400 * 86_400), catalogue), NOW)
        .unwrap();
    engine
}

pub(crate) fn rejection_of(decision: &Decision, offer: &str) -> Option<Rejection> {
    decision.candidates.iter().find(|c| c.offer.as_str() == offer).and_then(|c| match &c.verdict {
        Verdict::Rejected { reason } => Some(reason.clone()),
        _ => None,
    })
}
