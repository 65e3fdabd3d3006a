//! Engine tests: catalogue trust, the pipeline's stages, consent purges and feedback.

use ed25519_dalek::{Signer, SigningKey};
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::codec;
use ledtrad_protocol::decision::{Rejection, Verdict};
use ledtrad_protocol::envelope::{Envelope, SignedCatalogue};
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::KeyId;

use super::*;

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
    build_engine_with_policy(kind, crate::Policy::Clues)
}

fn build_engine_with_policy(kind: DeviceKind, policy: crate::Policy) -> Engine {
    let mut keys = TrustedKeys::new();
    keys.insert(KeyId::try_new("op-1").unwrap(), build_key(1).verifying_key());
    let profile = DeviceProfile {
        device: ledtrad_protocol::DeviceId::try_new("d-test").unwrap(),
        kind,
        fleet: FleetId::try_new("home").unwrap(),
        local: LocalTime::default(),
        camouflage_share: DEFAULT_CAMOUFLAGE_SHARE,
        model_runtime: crate::RuntimeKind::Tract,
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

#[test]
fn a_good_catalogue_applies() {
    let mut engine = build_engine(DeviceKind::Fridge);
    let applied = engine.handle_catalogue(&good_envelope(3), NOW).unwrap();
    assert_eq!(applied.version, 3);
    assert_eq!(applied.offers.len(), 3);
}

#[test]
fn every_bad_envelope_is_refused_and_the_last_good_one_stays() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(5), NOW).unwrap();
    let mut tampered = good_envelope(6);
    let n = tampered.len();
    tampered[n - 70] ^= 0x01;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (tampered, "bad signature"),
        (build_envelope(&build_key(2), "op-1", "home", 6, NOW.plus_secs(60)), "bad signature"),
        (build_envelope(&build_key(1), "op-9", "home", 6, NOW.plus_secs(60)), "unknown key 'op-9'"),
        (build_envelope(&build_key(1), "op-1", "office", 6, NOW.plus_secs(60)), "fleet 'office'"),
        (good_envelope(5), "catalogue version 5 is already applied"),
        (
            sign(&build_key(1), "op-1", "home", 5, NOW.plus_secs(60), {
                let mut other = build_catalogue();
                other.offers.pop();
                other
            }),
            "version 5 is not newer than the applied version 5",
        ),
        (good_envelope(4), "version 4 is not newer"),
        (build_envelope(&build_key(1), "op-1", "home", 6, NOW), "expired at 2026-11-23T18:00:00Z"),
        (vec![0xff; 10], "catalogue envelope: not valid postcard"),
        (vec![0; ledtrad_protocol::envelope::MAX_ENVELOPE_BYTES + 1], "over the limit"),
    ];
    for (payload, expected) in cases {
        let err = engine.handle_catalogue(&payload, NOW).unwrap_err();
        assert!(err.to_string().contains(expected), "{err} does not say {expected:?}");
        assert_eq!(engine.catalogue().map(|c| c.version), Some(5));
    }
}

#[test]
fn a_catalogue_signed_by_a_retired_key_is_refused_though_its_signature_holds() {
    let mut keys = TrustedKeys::new();
    keys.insert(KeyId::try_new("op-1").unwrap(), build_key(1).verifying_key());
    keys.insert(KeyId::try_new("op-2").unwrap(), build_key(2).verifying_key());
    keys.retire(KeyId::try_new("op-1").unwrap());
    let mut engine = Engine::new(build_engine(DeviceKind::Fridge).profile().clone(), keys);
    let err = engine.handle_catalogue(&good_envelope(1), NOW).unwrap_err();
    assert_eq!(err.to_string(), "catalogue signed with retired key 'op-1'; sign it with a current operator key");
    assert!(engine.catalogue().is_none());
    let current = build_envelope(&build_key(2), "op-2", "home", 1, NOW.plus_secs(60));
    assert_eq!(engine.handle_catalogue(&current, NOW).unwrap().version, 1);
}

#[test]
fn personalised_offer_is_shown_with_a_coarse_why_only_with_consent() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    engine.set_consent(personalise());
    engine.handle_signal(butter(0.05), NOW);
    let decision = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).clone();
    let shown = decision.shown.expect("an offer");
    assert_eq!(shown.offer.as_str(), "butter-refill");
    assert_eq!(shown.why, "Because dairy runs low often in this home.");
    assert!(!shown.why.contains("0.05"));
    assert!(shown.personalised);
    let butter_use = decision.features_used.iter().find(|u| u.feature.as_str() == "fridge.butter.level");
    assert_eq!(butter_use.map(|u| u.allowed_by), Some(Some(Purpose::Personalise)));
    // The lock-screen offer is a candidate with its reason.
    let film = decision.candidates.iter().find(|c| c.offer.as_str() == "film").unwrap();
    assert_eq!(film.verdict, Verdict::Rejected { reason: Rejection::DeviceKind { kind: DeviceKind::Fridge } });
}

#[test]
fn revoking_personalise_stops_personal_offers_on_the_next_decision() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    engine.set_consent(personalise());
    engine.handle_signal(butter(0.05), NOW);
    assert!(engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).shown.as_ref().unwrap().personalised);
    let purged = engine.set_consent(ConsentState::NONE);
    // The butter level and what is derived from it: its trend and the day's lowest level.
    assert_eq!(purged.features, 3);
    let decision = engine.decide_traced(Moment::DoorOpened, NOW.plus_secs(1), Draw::NONE).clone();
    let shown = decision.shown.unwrap();
    assert_eq!(shown.offer.as_str(), "fridge-care");
    assert!(!shown.personalised);
    assert!(decision.features_used.iter().all(|u| u.allowed_by.is_none()));
    let refill = decision.candidates.iter().find(|c| c.offer.as_str() == "butter-refill").unwrap();
    assert_eq!(refill.verdict, Verdict::Rejected { reason: Rejection::NeedsConsent { purpose: Purpose::Personalise } });
    // Granting again does not bring back the purged reading.
    engine.set_consent(personalise());
    let again = engine.decide_traced(Moment::DoorOpened, NOW.plus_secs(2), Draw::NONE).clone();
    let refill = again.candidates.iter().find(|c| c.offer.as_str() == "butter-refill").unwrap();
    assert!(matches!(refill.verdict, Verdict::Rejected { reason: Rejection::NoData { .. } }));
}

#[test]
fn the_daily_cap_holds_and_resets_the_next_day() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    engine.set_consent(personalise());
    engine.handle_signal(butter(0.05), NOW);
    let shown = |e: &mut Engine, t: UnixTime| {
        e.decide_traced(Moment::DoorOpened, t, Draw::NONE).shown.as_ref().map(|s| s.offer.to_string())
    };
    assert_eq!(shown(&mut engine, NOW).as_deref(), Some("butter-refill"));
    assert_eq!(shown(&mut engine, NOW).as_deref(), Some("butter-refill"));
    assert_eq!(shown(&mut engine, NOW).as_deref(), Some("fridge-care"), "cap of 2 per day");
    let tomorrow = NOW.plus_secs(86_400);
    engine.handle_signal(butter(0.05), tomorrow);
    assert_eq!(shown(&mut engine, tomorrow).as_deref(), Some("butter-refill"));
}

#[test]
fn nothing_matches_gives_no_offer_and_a_reason_for_each_candidate() {
    let mut engine = build_engine(DeviceKind::Ereader);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    let decision = engine.decide_traced(Moment::BookFinished, NOW, Draw::NONE);
    assert!(decision.shown.is_none());
    assert_eq!(decision.candidates.len(), 3);
    assert!(decision.candidates.iter().all(|c| matches!(c.verdict, Verdict::Rejected { .. })));
}

#[test]
fn feedback_is_checked_and_moves_the_score() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    engine.set_consent(personalise());
    let id = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).id;
    let accepted = Feedback { decision: id, kind: FeedbackKind::Accepted };
    assert_eq!(engine.handle_feedback(accepted, NOW).unwrap().offer.as_str(), "fridge-care");
    assert_eq!(engine.handle_feedback(accepted, NOW), Err(FeedbackError::AlreadyGiven(id.0)));
    let unknown = Feedback { decision: DecisionId(999), kind: FeedbackKind::Dismissed };
    assert_eq!(engine.handle_feedback(unknown, NOW), Err(FeedbackError::UnknownDecision(999)));
    // fridge-care's cap is one a day, so look again tomorrow.
    let next = engine.decide_traced(Moment::DoorOpened, NOW.plus_secs(86_400), Draw::NONE).clone();
    let score = next.candidates.iter().find_map(|c| match c.verdict {
        Verdict::Chosen { score } => Some(score),
        _ => None,
    });
    // Beta(1 + 1 accept + 2 × 0.5, 1 + 0 + 2 × 0.5): mean 3/5, times value 0.5.
    assert_eq!(score, Some(0.5 * (3.0 / 5.0)));
    let mut ereader = build_engine(DeviceKind::Ereader);
    ereader.handle_catalogue(&good_envelope(1), NOW).unwrap();
    let nothing = ereader.decide_traced(Moment::BookFinished, NOW, Draw::NONE).id;
    let fb = Feedback { decision: nothing, kind: FeedbackKind::Accepted };
    assert_eq!(ereader.handle_feedback(fb, NOW), Err(FeedbackError::NothingShown(nothing.0)));
}

#[test]
fn the_same_inputs_give_the_same_decisions() {
    let run = || {
        let mut engine = build_engine(DeviceKind::Fridge);
        engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
        engine.set_consent(personalise());
        (0..20u64)
            .map(|i| {
                engine.handle_signal(butter(0.01 * i as f64), NOW.plus_secs(i * 600));
                engine.decide_traced(Moment::DoorOpened, NOW.plus_secs(i * 600), Draw::NONE).clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn an_expired_catalogue_is_not_used_even_if_it_arrived_in_time() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    let after = NOW.plus_secs(7 * 86_400);
    let decision = engine.decide_traced(Moment::DoorOpened, after, Draw::NONE).clone();
    assert!(decision.shown.is_none());
    let expires = NOW.plus_secs(7 * 86_400);
    assert!(decision
        .candidates
        .iter()
        .all(|c| c.verdict == Verdict::Rejected { reason: Rejection::CatalogueExpired { at: expires } }));
}

#[test]
fn the_version_floor_refuses_old_catalogues_after_a_restart() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.set_version_floor(7);
    let err = engine.handle_catalogue(&good_envelope(7), NOW).unwrap_err();
    assert!(err.to_string().contains("version 7 is not newer than the applied version 7"), "{err}");
    assert_eq!(engine.handle_catalogue(&good_envelope(8), NOW).unwrap().version, 8);
}

#[test]
fn revoking_personalise_forgets_personal_decisions_but_keeps_contextual_ones() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    engine.set_consent(personalise());
    engine.handle_signal(butter(0.05), NOW);
    let personal = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).id;
    let contextual = engine.decide_traced(Moment::BookFinished, NOW, Draw::NONE).id;
    let purged = engine.set_consent(ConsentState::NONE);
    assert_eq!(purged.decisions, 1);
    assert!(engine.decision(personal).is_none());
    assert!(engine.decision(contextual).is_some());
    let fb = Feedback { decision: personal, kind: FeedbackKind::Accepted };
    assert_eq!(engine.handle_feedback(fb, NOW), Err(FeedbackError::UnknownDecision(personal.0)));
}

#[test]
fn erasing_forgets_features_learning_caps_and_decisions() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    engine.set_consent(personalise());
    engine.handle_signal(butter(0.05), NOW);
    let id = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).id;
    engine.handle_feedback(Feedback { decision: id, kind: FeedbackKind::Accepted }, NOW).unwrap();
    let purged = engine.erase();
    // The butter level, its trend and the day's lowest level.
    assert_eq!((purged.features, purged.posteriors, purged.decisions), (3, 1, 1));
    assert!(engine.features(NOW).is_empty());
    assert!(engine.decision(id).is_none());
    assert_eq!(engine.catalogue().map(|c| c.version), Some(1));
    // The caps start again: butter-refill (cap 2) can be shown twice more today.
    engine.handle_signal(butter(0.05), NOW);
    assert_eq!(
        engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).shown.as_ref().unwrap().offer.as_str(),
        "butter-refill"
    );
    assert!(engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).id.0 > id.0, "decision numbers do not repeat");
}

#[test]
fn checking_feedback_changes_nothing() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    let id = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).id;
    let fb = Feedback { decision: id, kind: FeedbackKind::Dismissed };
    assert!(engine.check_feedback(fb).is_ok());
    assert!(engine.check_feedback(fb).is_ok());
    engine.handle_feedback(fb, NOW).unwrap();
    assert_eq!(engine.check_feedback(fb), Err(FeedbackError::AlreadyGiven(id.0)));
}

#[test]
fn camouflage_draws_from_the_broadly_eligible_offers_and_says_so() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    engine.set_consent(personalise());
    engine.handle_signal(butter(0.5), NOW);
    // butter-refill's condition does not hold, so the top score is fridge-care; a camouflage
    // draw may still show butter-refill (broadly eligible), with a "why" that claims nothing.
    let draw = Draw { camouflage: 0.05, pick: 0, explore: None };
    let decision = engine.decide_traced(Moment::DoorOpened, NOW, draw).clone();
    assert!(decision.camouflage);
    let shown = decision.shown.unwrap();
    assert_eq!(shown.offer.as_str(), "butter-refill");
    assert_eq!(shown.why, "From this week's offers for every fridge.");
    assert!(!shown.personalised);
    // Above the share, the top score is shown as usual.
    let decision =
        engine.decide_traced(Moment::DoorOpened, NOW, Draw { camouflage: 0.1, pick: 0, explore: None }).clone();
    assert!(!decision.camouflage);
    assert_eq!(decision.shown.unwrap().offer.as_str(), "fridge-care");
}

#[test]
fn the_blunt_policy_states_the_offer_gives_the_reading_and_neither_penalises_nor_camouflages() {
    let mut engine = build_engine_with_policy(DeviceKind::Fridge, crate::Policy::Blunt);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    engine.set_consent(personalise());
    engine.handle_signal(butter(0.05), NOW);
    // A camouflage draw well inside the share changes nothing under this policy.
    let draw = Draw { camouflage: 0.0, pick: 1, explore: None };
    let decision = engine.decide_traced(Moment::DoorOpened, NOW, draw).clone();
    assert!(!decision.camouflage);
    let shown = decision.shown.expect("an offer");
    assert_eq!(shown.offer.as_str(), "butter-refill");
    assert_eq!(shown.why, "Because fridge.butter.level is at 5%.");
    assert!(!shown.question.ends_with('?'), "a statement: {:?}", shown.question);
    assert!(decision.scores.iter().all(|p| p.penalty == 0.0));
    // "clues" on the same inputs: a question, the coarse why.
    let mut clues = build_engine(DeviceKind::Fridge);
    clues.handle_catalogue(&good_envelope(1), NOW).unwrap();
    clues.set_consent(personalise());
    clues.handle_signal(butter(0.05), NOW);
    let shown = clues.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).clone().shown.unwrap();
    assert!(shown.question.ends_with('?'));
    assert_eq!(shown.why, "Because dairy runs low often in this home.");
    assert_eq!("blunt".parse::<crate::Policy>(), Ok(crate::Policy::Blunt));
    assert!("rude".parse::<crate::Policy>().unwrap_err().contains("\"rude\""));
}

#[test]
fn camouflage_never_reaches_past_consent_or_caps() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    // Without personalise, only fridge-care is broadly eligible, whatever the pick.
    for pick in 0..5 {
        let decision = engine
            .decide_traced(
                Moment::DoorOpened,
                NOW.plus_secs(pick * 86_400),
                Draw { camouflage: 0.0, pick, explore: None },
            )
            .clone();
        assert_eq!(decision.shown.unwrap().offer.as_str(), "fridge-care");
    }
    // fridge-care's cap of one a day is spent: nothing is broadly eligible, nothing shown.
    let decision = engine
        .decide_traced(Moment::DoorOpened, NOW.plus_secs(4 * 86_400), Draw { camouflage: 0.0, pick: 3, explore: None })
        .clone();
    assert!(decision.shown.is_none() && !decision.camouflage);
}

#[test]
fn a_consent_prompt_takes_the_place_of_a_contextual_offer_once_a_day() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&prompt_envelope(1), NOW).unwrap();
    let first = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).clone();
    let prompt = first.prompt.clone().expect("a prompt is due");
    assert_eq!((prompt.purpose, prompt.text_version.as_str()), (Purpose::Personalise, "2026-11"));
    assert!(first.shown.is_none(), "the prompt replaces the contextual offer");
    let care = first.candidates.iter().find(|c| c.offer.as_str() == "fridge-care").unwrap();
    assert!(matches!(care.verdict, Verdict::Outscored { .. }));
    // Not twice in a day; the contextual offer is back (its cap was not spent).
    let second = engine.decide_traced(Moment::DoorOpened, NOW.plus_secs(60), Draw::NONE).clone();
    assert!(second.prompt.is_none());
    assert_eq!(second.shown.unwrap().offer.as_str(), "fridge-care");
    // Feedback is for offers; an answer is for prompts.
    let fb = Feedback { decision: first.id, kind: FeedbackKind::Accepted };
    assert_eq!(engine.handle_feedback(fb, NOW), Err(FeedbackError::NothingShown(first.id.0)));
    assert_eq!(engine.check_prompt_answer(second.id), Err(FeedbackError::NothingShown(second.id.0)));
    // "No" quiets it for 30 days.
    engine.handle_prompt_answer(first.id, false, NOW).unwrap();
    assert_eq!(engine.handle_prompt_answer(first.id, false, NOW), Err(FeedbackError::AlreadyGiven(first.id.0)));
    for day in 1..30 {
        let d = engine.decide_traced(Moment::DoorOpened, NOW.plus_secs(day * 86_400), Draw::NONE).clone();
        assert!(d.prompt.is_none(), "asked again on day {day}");
    }
}

#[test]
fn no_prompt_for_a_purpose_in_force_or_one_the_people_cannot_grant() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&prompt_envelope(1), NOW).unwrap();
    engine.set_askable(ConsentState::NONE.with(Purpose::Measure, true));
    assert!(
        engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).prompt.is_none(),
        "a child cannot grant personalise"
    );
    engine.set_askable(ConsentState::all());
    engine.set_consent(personalise());
    assert!(engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).prompt.is_none(), "already granted");
    // And never on another kind of device or moment.
    let mut reader = build_engine(DeviceKind::Ereader);
    reader.handle_catalogue(&prompt_envelope(1), NOW).unwrap();
    assert!(reader.decide_traced(Moment::BookFinished, NOW, Draw::NONE).prompt.is_none());
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
        model_runtime: crate::RuntimeKind::Tract,
        policy: crate::Policy::Clues,
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

#[test]
fn a_dismissal_blocks_the_offer_for_48_hours() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    engine.set_consent(personalise());
    engine.handle_signal(butter(0.05), NOW);
    let id = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).id;
    engine.handle_feedback(Feedback { decision: id, kind: FeedbackKind::Dismissed }, NOW).unwrap();
    let until = NOW.plus_secs(2 * 86_400);
    for later in [86_400, 2 * 86_400 - 1] {
        let t = NOW.plus_secs(later);
        engine.handle_signal(butter(0.05), t);
        let d = engine.decide_traced(Moment::DoorOpened, t, Draw::NONE).clone();
        assert_eq!(rejection_of(&d, "butter-refill"), Some(Rejection::DismissedRecently { until }));
    }
    engine.handle_signal(butter(0.05), until);
    let d = engine.decide_traced(Moment::DoorOpened, until, Draw::NONE).clone();
    assert_eq!(d.shown.unwrap().offer.as_str(), "butter-refill");
}

#[test]
fn not_for_me_suppresses_the_category_for_90_days_and_conversion_for_good() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    let id = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).id; // fridge-care (home.kitchen)
    engine.handle_feedback(Feedback { decision: id, kind: FeedbackKind::NotForMe }, NOW).unwrap();
    let later = NOW.plus_secs(89 * 86_400);
    engine
        .handle_catalogue(
            &sign(&build_key(1), "op-1", "home", 2, later.plus_secs(30 * 86_400), build_catalogue()),
            later,
        )
        .unwrap();
    let d = engine.decide_traced(Moment::DoorOpened, later, Draw::NONE).clone();
    let until = NOW.plus_secs(90 * 86_400);
    assert_eq!(
        rejection_of(&d, "fridge-care"),
        Some(Rejection::CategorySuppressed { category: "home.kitchen".into(), until })
    );
    assert!(d.shown.is_none());
    let d = engine.decide_traced(Moment::DoorOpened, until, Draw::NONE).clone();
    assert_eq!(d.shown.unwrap().offer.as_str(), "fridge-care");
    // Accepted, then taken up: never shown again, and a conversion counts once.
    engine.handle_feedback(Feedback { decision: d.id, kind: FeedbackKind::Accepted }, until).unwrap();
    engine.handle_feedback(Feedback { decision: d.id, kind: FeedbackKind::Converted }, until).unwrap();
    assert_eq!(
        engine.handle_feedback(Feedback { decision: d.id, kind: FeedbackKind::Converted }, until),
        Err(FeedbackError::AlreadyGiven(d.id.0))
    );
    let next = until.plus_secs(86_400);
    let d = engine.decide_traced(Moment::DoorOpened, next, Draw::NONE).clone();
    assert_eq!(rejection_of(&d, "fridge-care"), Some(Rejection::Converted));
}

#[test]
fn a_held_out_device_records_what_it_would_have_shown_and_shows_nothing() {
    let mut catalogue = build_catalogue();
    catalogue.campaigns = vec![ledtrad_protocol::catalogue::Campaign {
        holdout: 0.5,
        ..ledtrad_protocol::catalogue::Campaign::new(CampaignId::try_new("care").unwrap())
    }];
    let care = CampaignId::try_new("care").unwrap();
    let ids: Vec<String> = (0..200).map(|i| format!("device-{i}")).collect();
    let held: Vec<&String> = ids
        .iter()
        .filter(|d| in_holdout(&ledtrad_protocol::DeviceId::try_new(d.as_str()).unwrap(), &care, 0.5))
        .collect();
    // About half, and the same ones every time.
    assert!((70..=130).contains(&held.len()), "{} of 200 held out", held.len());
    let out = ids.iter().find(|d| !held.contains(d)).unwrap();
    let mut inside = build_engine_for(held[0], catalogue.clone());
    let d = inside.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).clone();
    assert!(d.shown.is_none());
    assert_eq!(d.would_have_shown.as_ref().map(|o| o.as_str()), Some("fridge-care"));
    assert_eq!(rejection_of(&d, "fridge-care"), Some(Rejection::Holdout { campaign: care.clone() }));
    // The person may still do what the offer was about: a conversion counts for the holdout
    // arm, once, and nothing else can be said about an offer that was not shown.
    let answer = |kind| Feedback { decision: d.id, kind };
    assert_eq!(inside.handle_feedback(answer(FeedbackKind::Accepted), NOW), Err(FeedbackError::NothingShown(d.id.0)));
    let applied = inside.handle_feedback(answer(FeedbackKind::Converted), NOW).unwrap();
    assert!(applied.held_out);
    assert_eq!((applied.offer.as_str(), applied.campaign.clone()), ("fridge-care", care.clone()));
    assert_eq!(inside.handle_feedback(answer(FeedbackKind::Converted), NOW), Err(FeedbackError::AlreadyGiven(d.id.0)));
    let mut outside = build_engine_for(out, catalogue);
    let d = outside.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).clone();
    assert_eq!(d.shown.unwrap().offer.as_str(), "fridge-care");
    assert!(d.would_have_shown.is_none());
}

#[test]
fn personal_features_cost_an_intrusiveness_penalty_and_the_trace_shows_the_parts() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    engine.set_consent(personalise());
    engine.handle_signal(butter(0.05), NOW);
    let d = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).clone();
    let refill = d.scores.iter().find(|p| p.offer.as_str() == "butter-refill").unwrap();
    assert!((refill.penalty - INTRUSIVENESS).abs() < 1e-12, "one personal feature");
    assert!((refill.score - refill.value * refill.priority * (refill.propensity - refill.penalty)).abs() < 1e-12);
    let care = d.scores.iter().find(|p| p.offer.as_str() == "fridge-care").unwrap();
    assert_eq!(care.penalty, 0.0);
    assert!(d.scores.windows(2).all(|w| w[0].score >= w[1].score), "best first");
    assert!(d.scores.len() <= TRACE_SCORES);
}

#[test]
fn thompson_sampling_explores_by_the_callers_seed_and_repeats_with_it() {
    let run = |seed: u64| {
        let mut engine = build_engine(DeviceKind::Fridge);
        engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
        engine.set_consent(personalise());
        engine.handle_signal(butter(0.05), NOW);
        let d = engine
            .decide_traced(Moment::DoorOpened, NOW, Draw { camouflage: 1.0, pick: 0, explore: Some(seed) })
            .clone();
        d.scores.iter().map(|p| p.propensity).collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
    assert!(run(9).iter().all(|p| (0.0..=1.0).contains(p)));
}

#[test]
fn a_built_in_logistic_scorer_sets_the_prior_from_allowed_features() {
    let mut value = catalogue_json();
    value["offer"][1]["propensity"] =
        serde_json::json!({"bias": -1.0, "weights": [{"feature": "context.ambient_light", "weight": 4.0}]});
    let catalogue = Catalogue::from_value(value).unwrap();
    let mut engine = build_engine_for("d-logistic", catalogue);
    let light = FeatureName::try_new("context.ambient_light").unwrap();
    engine.handle_signal(Signal { feature: light, value: 0.5 }, NOW);
    let d = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).clone();
    let care = d.scores.iter().find(|p| p.offer.as_str() == "fridge-care").unwrap();
    let want = 1.0 / (1.0 + (-(-1.0f64 + 4.0 * 0.5)).exp());
    assert!((care.propensity - want).abs() < 1e-12, "{} vs {want}", care.propensity);
}

#[test]
fn only_the_last_decisions_keep_their_trace_but_older_ones_still_take_feedback() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    let first = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).id;
    assert!(engine.decision(first).is_some_and(|d| !d.candidates.is_empty()));
    for k in 0..RECENT_TRACES as u64 {
        engine.decide_traced(Moment::DoorOpened, NOW.plus_secs(86_400 * (k + 1)), Draw::NONE);
    }
    assert!(engine.decision(first).is_none(), "the trace of a decision past the last {RECENT_TRACES} is dropped");
    let kind = ledtrad_protocol::feedback::FeedbackKind::Dismissed;
    let feedback = ledtrad_protocol::feedback::Feedback { decision: first, kind };
    assert!(engine.check_feedback(feedback).is_ok(), "but feedback on it is still taken");
}

#[test]
fn when_the_device_wide_rules_block_every_offer_gets_the_first_stage_it_fails() {
    let mut catalogue = build_catalogue();
    catalogue.policy.min_gap_minutes = Some(60);
    let mut engine = build_engine_for("d-gap", catalogue);
    let first = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE);
    assert_eq!(first.shown.unwrap().offer.as_str(), "fridge-care");
    let d = engine.decide_traced(Moment::DoorOpened, NOW.plus_secs(600), Draw::NONE);
    assert!(d.shown.is_none());
    let gap = Some(Rejection::MinGap { until: NOW.plus_secs(3600) });
    assert_eq!(rejection_of(&d, "fridge-care"), gap);
    assert_eq!(rejection_of(&d, "butter-refill"), gap, "the device-wide rules come before consent");
    assert_eq!(rejection_of(&d, "film"), Some(Rejection::DeviceKind { kind: DeviceKind::Fridge }));
    assert_eq!(d.candidates.len(), 3);
    // Past the gap, offers are weighed one by one again.
    let d = engine.decide_traced(Moment::DoorOpened, NOW.plus_secs(3600), Draw::NONE);
    assert_eq!(rejection_of(&d, "fridge-care"), Some(Rejection::DailyCap { per_day: 1 }));
}

#[test]
fn every_stage_names_its_own_reason_in_the_trace() {
    use ledtrad_protocol::caps::{QuietHours, Window};
    let care = |engine: &mut Engine, at: UnixTime, moment: Moment| {
        let d = engine.decide_traced(moment, at, Draw::NONE);
        rejection_of(&d, "fridge-care")
    };
    let day = 86_400;
    // The moment, and the validity window.
    let mut engine = build_engine_for("d-stages", build_catalogue());
    assert_eq!(care(&mut engine, NOW, Moment::InventoryLow), Some(Rejection::Moment { moment: Moment::InventoryLow }));
    let mut catalogue = build_catalogue();
    catalogue.offers[1].valid_from = NOW.plus_secs(day);
    let mut engine = build_engine_for("d-stages", catalogue);
    assert_eq!(care(&mut engine, NOW, Moment::DoorOpened), Some(Rejection::NotYetValid { from: NOW.plus_secs(day) }));
    let mut catalogue = build_catalogue();
    catalogue.offers[1].valid_until = NOW.plus_secs(day);
    let mut engine = build_engine_for("d-stages", catalogue);
    let later = NOW.plus_secs(2 * day);
    assert_eq!(care(&mut engine, later, Moment::DoorOpened), Some(Rejection::Expired { until: NOW.plus_secs(day) }));
    // A condition that does not hold.
    let mut engine = build_engine_for("d-stages", build_catalogue());
    engine.set_consent(personalise());
    engine.handle_signal(butter(0.5), NOW);
    let d = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE);
    assert_eq!(
        rejection_of(&d, "butter-refill"),
        Some(Rejection::ConditionNotMet {
            feature: FeatureName::try_new("fridge.butter.level").unwrap(),
            op: ledtrad_protocol::catalogue::Op::Lt,
            threshold: 0.2
        })
    );
    // The offer's weekly cap, then the campaign's.
    let mut catalogue = build_catalogue();
    catalogue.offers[1].caps.per_week = Some(1);
    let mut engine = build_engine_for("d-stages", catalogue);
    assert_eq!(care(&mut engine, NOW, Moment::DoorOpened), None);
    assert_eq!(
        care(&mut engine, NOW.plus_secs(day), Moment::DoorOpened),
        Some(Rejection::OfferCap { window: Window::Week, limit: 1 })
    );
    let mut catalogue = build_catalogue();
    catalogue.campaigns = vec![ledtrad_protocol::catalogue::Campaign {
        caps: ledtrad_protocol::caps::CampaignCaps { per_week: Some(1), ..Default::default() },
        ..ledtrad_protocol::catalogue::Campaign::new(CampaignId::try_new("care").unwrap())
    }];
    let mut engine = build_engine_for("d-stages", catalogue);
    assert_eq!(care(&mut engine, NOW, Moment::DoorOpened), None);
    assert_eq!(
        care(&mut engine, NOW.plus_secs(day), Moment::DoorOpened),
        Some(Rejection::CampaignCap { campaign: CampaignId::try_new("care").unwrap(), window: Window::Week, limit: 1 })
    );
    // The device's daily cap, and its quiet hours (18:00 is inside 17 to 19).
    let mut catalogue = build_catalogue();
    catalogue.policy.device_per_day = Some(1);
    catalogue.offers[1].caps.per_day = 5;
    let mut engine = build_engine_for("d-stages", catalogue);
    assert_eq!(care(&mut engine, NOW, Moment::DoorOpened), None);
    assert_eq!(
        care(&mut engine, NOW.plus_secs(60), Moment::DoorOpened),
        Some(Rejection::DeviceCap { window: Window::Day, limit: 1 })
    );
    let mut catalogue = build_catalogue();
    catalogue.policy.quiet_hours = Some(QuietHours { from: 17, to: 19 });
    let mut engine = build_engine_for("d-stages", catalogue);
    assert_eq!(care(&mut engine, NOW, Moment::DoorOpened), Some(Rejection::QuietHours { from: 17, to: 19 }));
    assert_eq!(care(&mut engine, NOW.plus_secs(3600), Moment::DoorOpened), None, "19:00 is no longer quiet");
}

#[test]
fn a_signed_catalogue_with_too_many_offers_is_refused_and_the_last_good_one_stays() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    let mut catalogue = build_catalogue();
    let template = catalogue.offers[1].clone();
    catalogue.offers = (0..=ledtrad_protocol::catalogue::MAX_OFFERS)
        .map(|i| ledtrad_protocol::catalogue::Offer {
            id: ledtrad_protocol::OfferId::try_new(format!("care-{i}")).unwrap(),
            ..template.clone()
        })
        .collect();
    let envelope = sign(&build_key(1), "op-1", "home", 2, NOW.plus_secs(86_400), catalogue);
    let err = engine.handle_catalogue(&envelope, NOW).unwrap_err().to_string();
    assert!(err.contains("2001 offers is over the limit of 2000"), "{err}");
    assert_eq!(engine.catalogue().map(|c| c.version), Some(1));
}

/// `catalogue` signed as `version` for the test fleet, in a rollout to `share` (`None`: all).
fn rollout_envelope(version: u64, share: Option<f64>, catalogue: Catalogue) -> Vec<u8> {
    let rollout = share.map(|share| ledtrad_protocol::envelope::Rollout { share });
    sign_rollout(&build_key(1), "op-1", "home", version, NOW.plus_secs(30 * 86_400), catalogue, rollout)
}

#[test]
fn a_staged_rollout_reaches_its_share_widens_without_reapplying_and_completes() {
    let mut next = build_catalogue();
    next.offers[1].value = 0.9;
    let mut engines: Vec<Engine> =
        (0..400).map(|i| build_engine_for(&format!("device-{i}"), build_catalogue())).collect();
    let versions = |engines: &[Engine]| engines.iter().filter(|e| e.catalogue().unwrap().version == 2).count();
    // A 10% canary: about a tenth apply version 2, the rest keep version 1 and say why.
    for e in &mut engines {
        match e.handle_catalogue(&rollout_envelope(2, Some(0.1), next.clone()), NOW) {
            Ok(_) => {}
            Err(refusal) => {
                assert!(refusal.is_benign(), "{refusal}");
                assert_eq!(
                    refusal.to_string(),
                    "catalogue version 2 is rolling out to 10% of the fleet, not yet to this device"
                );
            }
        }
    }
    let canary = versions(&engines);
    assert!((20..=60).contains(&canary), "{canary} of 400 in a 10% canary");
    let in_canary: Vec<bool> = engines.iter().map(|e| e.catalogue().unwrap().version == 2).collect();
    // Widened to half: the canary keeps it (the same version again is no refusal), others join.
    for (e, was_in) in engines.iter_mut().zip(&in_canary) {
        match e.handle_catalogue(&rollout_envelope(2, Some(0.5), next.clone()), NOW) {
            Ok(_) => assert!(!was_in),
            Err(refusal) => {
                assert!(refusal.is_benign(), "{refusal}");
                assert_eq!(*was_in, matches!(refusal, Refusal::AlreadyApplied { version: 2 }));
            }
        }
    }
    let half = versions(&engines);
    assert!((160..=240).contains(&half) && half > canary, "{half} of 400 at 50%");
    // Completed: everyone has version 2.
    for e in &mut engines {
        let _ = e.handle_catalogue(&rollout_envelope(2, None, next.clone()), NOW);
    }
    assert_eq!(versions(&engines), 400);
    // Other offers under a version already applied are still a rollback.
    let err = engines[0].handle_catalogue(&rollout_envelope(2, None, build_catalogue()), NOW).unwrap_err();
    assert!(!err.is_benign() && err.to_string().contains("version 2 is not newer"), "{err}");
}

#[test]
fn an_aborted_rollout_brings_every_device_back_to_the_previous_offers_with_a_higher_version() {
    let mut next = build_catalogue();
    next.offers[1].value = 0.9;
    let mut engines: Vec<Engine> =
        (0..50).map(|i| build_engine_for(&format!("device-{i}"), build_catalogue())).collect();
    for e in &mut engines {
        let _ = e.handle_catalogue(&rollout_envelope(2, Some(0.5), next.clone()), NOW);
    }
    // The abort: the previous offers, signed as version 3, for all.
    for e in &mut engines {
        let applied = e.handle_catalogue(&rollout_envelope(3, None, build_catalogue()), NOW).unwrap();
        assert_eq!((applied.version, applied.offers[1].offer.value), (3, 0.5));
    }
}

/// An offer as the offer service would send it, for an e-reader at a finished book.
fn service_offer(id: &str, edit: impl FnOnce(&mut serde_json::Value)) -> ledtrad_protocol::catalogue::Offer {
    let mut value = serde_json::json!({
        "id": id, "campaign": "reading", "title": "Next read",
        "question": "Could a new crime novel be something for you?", "body": "New this week.",
        "category": "books.crime", "device_kinds": ["ereader"], "moments": ["book_finished"],
        "value": 1.0, "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z",
        "caps": { "per_day": 1 }
    });
    edit(&mut value);
    serde_json::from_value(value).unwrap()
}

#[test]
fn the_offer_services_candidates_go_through_the_devices_own_checks_and_rules() {
    let mut ereader = build_engine(DeviceKind::Ereader);
    ereader.handle_catalogue(&good_envelope(1), NOW).unwrap();
    ereader.set_consent(ConsentState::NONE.with(Purpose::Request, true));
    // The catalogue has nothing for an e-reader: asking the service is worth it.
    let local = ereader.decide(Moment::BookFinished, NOW, Draw::NONE).id;
    assert!(ereader.request_worthwhile(local, NOW));
    let offers = vec![
        service_offer("statement", |o| o["question"] = "Buy this crime novel.".into()),
        service_offer("sensitive", |o| o["category"] = "health.mental".into()),
        service_offer("fridge-care", |_| {}),
        service_offer("crime-novel", |_| {}),
    ];
    let (decision, counted) =
        ereader.decide_remote(Moment::BookFinished, NOW, Draw::NONE, offers.clone(), false).unwrap();
    // A statement, a sensitive category and an id the catalogue already holds are dropped.
    assert_eq!(counted, RemoteOffers { received: 4, kept: 1 });
    let (id, shown) = (decision.id, decision.shown.clone().unwrap());
    assert_eq!((shown.offer.as_str(), shown.campaign.as_str()), ("crime-novel", "reading"));
    assert_eq!(shown.why, "From this week's offers for every e-reader.", "no interests were sent");
    assert_eq!(decision.catalogue_version, Some(1));
    // The trace names the service's offer, and feedback on it is taken like any other.
    let traced = ereader.decision(id).unwrap();
    assert_eq!(traced.candidates.len(), 1);
    assert_eq!(ereader.decision_campaign(id).unwrap().as_str(), "reading");
    // Feedback on it still knows its campaign and category once its trace is gone.
    for _ in 0..RECENT_TRACES {
        ereader.decide(Moment::BookFinished, NOW, Draw::NONE);
    }
    assert!(ereader.decision(id).is_none(), "the trace is gone");
    let applied = ereader.handle_feedback(Feedback { decision: id, kind: FeedbackKind::Dismissed }, NOW).unwrap();
    assert_eq!(applied.category.as_deref(), Some("books.crime"));
    // Its caps hold on the device: the same offer again the same day is capped (and blocked).
    let (again, _) = ereader.decide_remote(Moment::BookFinished, NOW.plus_secs(60), Draw::NONE, offers, false).unwrap();
    assert!(again.shown.is_none());
    // Offers chosen for the interests a request carried say so.
    let other = vec![service_offer("cookbook", |o| o["category"] = "books.cooking".into())];
    let (suggested, _) =
        ereader.decide_remote(Moment::BookFinished, NOW.plus_secs(120), Draw::NONE, other, true).unwrap();
    assert_eq!(suggested.shown.as_ref().unwrap().why, "Suggested for the kinds of offers taken up on this e-reader.");
    let too_many = vec![service_offer("x", |_| {}); MAX_REMOTE_OFFERS + 1];
    assert_eq!(
        ereader.decide_remote(Moment::BookFinished, NOW, Draw::NONE, too_many, false).unwrap_err(),
        RemoteError::TooMany(MAX_REMOTE_OFFERS + 1)
    );
}

#[test]
fn the_service_is_asked_only_with_request_consent_a_catalogue_and_an_open_moment() {
    let mut ereader = build_engine(DeviceKind::Ereader);
    let no_catalogue = ereader.decide(Moment::BookFinished, NOW, Draw::NONE).id;
    ereader.set_consent(ConsentState::NONE.with(Purpose::Request, true));
    assert!(!ereader.request_worthwhile(no_catalogue, NOW), "no catalogue: no rules to show under");
    assert_eq!(
        ereader.decide_remote(Moment::BookFinished, NOW, Draw::NONE, vec![], false).unwrap_err(),
        RemoteError::NoCatalogue
    );
    ereader.handle_catalogue(&good_envelope(1), NOW).unwrap();
    ereader.set_consent(ConsentState::NONE);
    let without = ereader.decide(Moment::BookFinished, NOW, Draw::NONE).id;
    assert!(!ereader.request_worthwhile(without, NOW), "no request consent");
    ereader.set_consent(ConsentState::NONE.with(Purpose::Request, true));
    let open = ereader.decide(Moment::BookFinished, NOW, Draw::NONE).id;
    assert!(ereader.request_worthwhile(open, NOW));
    assert!(!ereader.request_worthwhile(open, NOW.plus_secs(8 * 86_400)), "the catalogue expired");
    // A fridge whose catalogue has an offer for the moment shows it: nothing to ask.
    let mut fridge = build_engine(DeviceKind::Fridge);
    fridge.handle_catalogue(&good_envelope(1), NOW).unwrap();
    fridge.set_consent(ConsentState::NONE.with(Purpose::Request, true));
    let shown = fridge.decide(Moment::DoorOpened, NOW, Draw::NONE).id;
    assert!(!fridge.request_worthwhile(shown, NOW));
}

#[test]
fn interests_come_from_what_was_learned_under_personalise_only() {
    let mut fridge = build_engine(DeviceKind::Fridge);
    fridge.handle_catalogue(&good_envelope(1), NOW).unwrap();
    let accept = |fridge: &mut Engine| {
        let d = fridge.decide(Moment::DoorOpened, NOW, Draw::NONE).clone();
        fridge.handle_feedback(Feedback { decision: d.id, kind: FeedbackKind::Accepted }, NOW).unwrap();
        d.shown.unwrap().offer
    };
    // An accept given without personalise is not learned, so it never becomes an interest.
    fridge.set_consent(ConsentState::NONE.with(Purpose::Request, true));
    accept(&mut fridge);
    assert!(fridge.interests().is_empty());
    fridge.set_consent(ConsentState::all());
    assert!(fridge.interests().is_empty(), "what was answered before personalise stays out");
    let butter =
        ledtrad_protocol::signal::Signal { feature: FeatureName::try_new("fridge.butter.level").unwrap(), value: 0.1 };
    fridge.handle_signal(butter, NOW);
    let offer = accept(&mut fridge);
    let category = fridge.catalogue().unwrap().offers.iter().find(|o| o.offer.id == offer).unwrap().category;
    assert_eq!(fridge.interests(), vec![category]);
    // Revoking purges it, and granting again does not bring it back.
    fridge.set_consent(ConsentState::all().with(Purpose::Personalise, false));
    assert!(fridge.interests().is_empty());
    fridge.set_consent(ConsentState::all());
    assert!(fridge.interests().is_empty());
}
