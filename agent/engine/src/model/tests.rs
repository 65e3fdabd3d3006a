//! Model tests in the engine: manifests that do not fit their model, bad model envelopes, and
//! the model in the decision pipeline (the runtimes' own tests are in `ledtrad-model`).

use ed25519_dalek::{Signer, SigningKey};
use ledtrad_protocol::codec;
use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::ScorerUsed;
use ledtrad_protocol::envelope::Envelope;
use ledtrad_protocol::model::{ModelManifest, SignedModel, MODEL_SIGNING_CONTEXT};
use ledtrad_protocol::{DeviceKind, FleetId, KeyId, Moment, Purpose};

use super::*;
use crate::tests::{build_engine, build_key, butter, good_envelope, personalise, NOW};
use crate::{Draw, Refusal};

const PROPENSITY: &[u8] = include_bytes!("../../../../examples/models/propensity.tflite");
const PROPENSITY_MANIFEST: &str = include_str!("../../../../examples/models/propensity.toml");
const INT8: &[u8] = include_bytes!("../../../../examples/models/propensity-int8.tflite");

fn build_manifest() -> ModelManifest {
    toml::from_str(PROPENSITY_MANIFEST).unwrap()
}

fn build_signed(version: u64, manifest: ModelManifest, tflite: &[u8]) -> SignedModel {
    SignedModel {
        fleet: FleetId::try_new("home").unwrap(),
        version,
        issued_at: NOW,
        expires_at: NOW.plus_secs(30 * 86_400),
        key_id: KeyId::try_new("op-1").unwrap(),
        manifest,
        tflite: tflite.to_vec(),
    }
}

/// A model envelope signed in `context` by `key`.
fn build_model_envelope(key: &SigningKey, context: &[u8], signed: &SignedModel) -> Vec<u8> {
    let bytes = codec::to_postcard(signed);
    let signature = key.sign(&Envelope::signing_input_in(context, &bytes)).to_bytes().to_vec();
    codec::to_postcard(&Envelope { key_id: signed.key_id.clone(), signed: bytes, signature })
}

fn good_model(version: u64) -> Vec<u8> {
    build_model_envelope(&build_key(1), MODEL_SIGNING_CONTEXT, &build_signed(version, build_manifest(), PROPENSITY))
}

#[test]
fn a_manifest_that_does_not_fit_its_model_is_refused() {
    let mut short = build_manifest();
    short.inputs.truncate(3);
    let err = FleetModel::load(&build_signed(1, short, PROPENSITY), RuntimeKind::Tract).unwrap_err();
    assert!(err.to_string().contains("takes 20 inputs but its manifest lists 3"), "{err}");
    let mut bad = build_manifest();
    bad.inputs[0].name = "fridge.mood".into();
    let err = FleetModel::load(&build_signed(1, bad, PROPENSITY), RuntimeKind::Tract).unwrap_err();
    assert!(err.to_string().contains("input[0].name") && err.to_string().contains("fridge.mood"), "{err}");
}

#[test]
fn every_bad_model_envelope_is_refused_and_the_applied_model_stays() {
    let mut engine = build_engine(DeviceKind::Fridge);
    assert_eq!(engine.handle_model(&good_model(2), NOW).unwrap().version, 2);
    let catalogue_signature = {
        // A catalogue signature must not pass for a model's, nor the other way round.
        let signed = build_signed(3, build_manifest(), PROPENSITY);
        build_model_envelope(&build_key(1), ledtrad_protocol::envelope::SIGNING_CONTEXT, &signed)
    };
    let mut other_fleet = build_signed(4, build_manifest(), PROPENSITY);
    other_fleet.fleet = FleetId::try_new("office").unwrap();
    let mut expired = build_signed(5, build_manifest(), PROPENSITY);
    expired.expires_at = NOW;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (catalogue_signature, "bad signature for key 'op-1': the model was altered"),
        (
            build_model_envelope(&build_key(2), MODEL_SIGNING_CONTEXT, &build_signed(6, build_manifest(), PROPENSITY)),
            "bad signature",
        ),
        (good_model(2), "model version 2 is not newer than the applied version 2"),
        (build_model_envelope(&build_key(1), MODEL_SIGNING_CONTEXT, &other_fleet), "model is for fleet 'office'"),
        (build_model_envelope(&build_key(1), MODEL_SIGNING_CONTEXT, &expired), "model version 5 expired"),
        (
            build_model_envelope(&build_key(1), MODEL_SIGNING_CONTEXT, &build_signed(7, build_manifest(), INT8)),
            "fully int8-quantized",
        ),
        (vec![1, 2, 3], "model envelope"),
        (vec![0; ledtrad_protocol::model::MAX_MODEL_ENVELOPE_BYTES + 1], "push a smaller model"),
    ];
    for (payload, want) in cases {
        let refusal = engine.handle_model(&payload, NOW).unwrap_err();
        assert!(refusal.to_string().contains(want), "{want:?} not in: {refusal}");
        assert_eq!(engine.model().map(|m| m.version), Some(2));
    }
    assert!(matches!(engine.handle_model(&[9; 4], NOW), Err(Refusal::Malformed { .. })));
    // After a restart the agent hands in the highest version it stored.
    let mut restarted = build_engine(DeviceKind::Fridge);
    restarted.set_model_floor(2);
    assert!(matches!(restarted.handle_model(&good_model(2), NOW), Err(Refusal::Rollback { .. })));
    assert!(restarted.handle_model(&good_model(3), NOW).is_ok());
}

#[test]
fn the_model_scores_the_candidates_and_reads_only_what_consent_allows() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    engine.handle_model(&good_model(1), NOW).unwrap();
    // Without consent: the model runs, fed the missing values of every personal input.
    let decision = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).clone();
    assert_eq!(
        decision.scorer,
        ScorerUsed::Model { name: "propensity-mlp".into(), version: 1, runtime: "tract".into() }
    );
    assert!(decision.features_used.iter().all(|u| u.allowed_by.is_none()), "{:?}", decision.features_used);
    let contextual = decision.scores.iter().find(|s| s.offer.as_str() == "fridge-care").unwrap().propensity;
    assert!((0.0..=1.0).contains(&contextual));
    // With consent and butter low, the personal features are read, recorded, and move the
    // prior of the dairy offer.
    engine.set_consent(personalise());
    engine.handle_signal(butter(0.05), NOW);
    let decision = engine.decide_traced(Moment::DoorOpened, NOW.plus_secs(60), Draw::NONE).clone();
    assert!(decision
        .features_used
        .iter()
        .any(|u| u.feature.as_str() == "fridge.butter.level" && u.allowed_by == Some(Purpose::Personalise)));
    assert!(decision.scores.iter().any(|s| s.offer.as_str() == "butter-refill"));
    // Revoking drops what the model read: the next decision reads nothing personal again.
    engine.set_consent(ConsentState::NONE);
    let decision = engine.decide_traced(Moment::DoorOpened, NOW.plus_secs(120), Draw::NONE);
    assert!(decision.features_used.iter().all(|u| u.allowed_by.is_none()));
}

#[test]
fn the_model_changes_the_choice_against_the_built_in_scorer() {
    // The same device, catalogue and features, scored with and without the model.
    let decide = |with_model: bool| {
        let mut engine = build_engine(DeviceKind::Fridge);
        engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
        if with_model {
            engine.handle_model(&good_model(1), NOW).unwrap();
        }
        engine.set_consent(personalise());
        engine.handle_signal(butter(0.05), NOW);
        let d = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE);
        d.scores.iter().map(|s| (s.offer.to_string(), s.propensity)).collect::<Vec<_>>()
    };
    let (builtin, model) = (decide(false), decide(true));
    assert_eq!(builtin.len(), model.len());
    assert_ne!(builtin, model, "the model's priors must differ from the built-in 0.5");
}

#[test]
fn the_offer_inputs_read_the_offer() {
    use ledtrad_protocol::model::InputSource;
    use ledtrad_protocol::taxonomy::Category;

    let inputs = OfferInputs {
        value: 2.5,
        priority: 1.5,
        category: crate::compiled::category_bit(Category::try_new("food.dairy").unwrap()),
        personalised: true,
    };
    let read = |source: InputSource| OfferInput::of(&source).map(|input| input.read(&inputs));
    assert_eq!(read(InputSource::OfferValue), Some(2.5));
    assert_eq!(read(InputSource::OfferPriority), Some(1.5));
    assert_eq!(read(InputSource::OfferPersonalised), Some(1.0));
    assert_eq!(read(InputSource::OfferCategory("food")), Some(1.0));
    assert_eq!(read(InputSource::OfferCategory("food.dairy")), Some(1.0));
    assert_eq!(read(InputSource::OfferCategory("books")), Some(0.0));
    assert_eq!(read(InputSource::Moment(Moment::DoorOpened)), None);
}
