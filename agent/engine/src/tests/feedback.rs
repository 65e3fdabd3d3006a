//! Feedback, answers and consent purges: what the engine learns and forgets.

use super::*;

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
fn answers_found_by_slot_stay_right_after_an_erasure() {
    // A dismissal of fridge-care takes the answers' first slot; after an erasure a dismissal
    // of butter-refill takes it again: fridge-care must not read butter-refill's answers.
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    engine.set_consent(personalise());
    let care = ledtrad_protocol::OfferId::try_new("fridge-care").unwrap();
    let butter = ledtrad_protocol::OfferId::try_new("butter-refill").unwrap();
    engine.restore_answer(&care, Some("home.kitchen"), FeedbackKind::Dismissed, NOW);
    let d = engine.decide_traced(Moment::DoorOpened, NOW.plus_secs(60), Draw::NONE);
    assert!(matches!(rejection_of(&d, "fridge-care"), Some(Rejection::DismissedRecently { .. })));
    engine.erase();
    engine.restore_answer(&butter, Some("food.dairy"), FeedbackKind::Dismissed, NOW);
    engine.handle_signal(butter_signal(), NOW.plus_secs(120));
    let d = engine.decide_traced(Moment::DoorOpened, NOW.plus_secs(120), Draw::NONE);
    assert!(matches!(rejection_of(&d, "butter-refill"), Some(Rejection::DismissedRecently { .. })));
    assert_eq!(d.shown.map(|s| s.offer.to_string()).as_deref(), Some("fridge-care"), "its dismissal was erased");
}

fn butter_signal() -> Signal {
    butter(0.05)
}
