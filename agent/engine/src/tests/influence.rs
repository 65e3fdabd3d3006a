//! Whether personal data influenced the offer shown: worked out by deciding again without it,
//! so an offer without personal conditions is marked personalised when the household's answers
//! or another offer's personal scorer picked it, and only then.

use super::*;

/// Two offers for the fridge without conditions: `tips` (value `tips_value`, no scorer) and
/// `snack`, marked personalised, whose built-in scorer reads the butter level (low butter,
/// likely taken).
fn two_offers(tips_value: f64) -> Catalogue {
    let offer = |id: &str, value: f64| {
        serde_json::json!({
            "id": id, "campaign": id, "title": id, "question": "Could this be something for you?",
            "body": "b", "category": "food.dairy", "device_kinds": ["fridge"], "moments": ["door_opened"],
            "value": value, "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"
        })
    };
    let mut snack = offer("snack", 1.0);
    snack["personalised"] = serde_json::json!(true);
    snack["propensity"] = serde_json::json!({"weights": [{"feature": "fridge.butter.level", "weight": -10.0}]});
    Catalogue::from_value(serde_json::json!({ "offer": [offer("tips", tips_value), snack] })).unwrap()
}

/// What the engine would show now (a preview: no impression is counted, so caps stay as they are).
fn shown(engine: &mut Engine) -> (String, bool, String) {
    let decision = engine.preview(Moment::DoorOpened, NOW, Draw::NONE);
    let shown = decision.shown.expect("an offer");
    (shown.offer.to_string(), shown.personalised, shown.why)
}

#[test]
fn an_offer_the_households_answers_picked_is_personalised_and_says_so() {
    let catalogue = Catalogue::from_value(serde_json::json!({ "offer": [
        { "id": "tips", "campaign": "tips", "title": "Tips", "question": "A tip?", "body": "b",
          "category": "home.kitchen", "device_kinds": ["fridge"], "moments": ["door_opened"], "value": 1.0,
          "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z" },
        { "id": "recipes", "campaign": "recipes", "title": "Recipes", "question": "A recipe?", "body": "b",
          "category": "food.dairy", "device_kinds": ["fridge"], "moments": ["door_opened"], "value": 1.0,
          "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z" }
    ]}))
    .unwrap();
    let mut engine = build_engine_for("d-answers", catalogue);
    engine.set_consent(personalise());
    // Without answers the two tie and the first listed wins, whatever personal data there is.
    engine.handle_signal(butter(0.1), NOW);
    assert_eq!(shown(&mut engine), ("tips".into(), false, "From this week's offers for every fridge.".into()));
    // The household took recipes up before: the posterior learned from it picks recipes.
    let recipes = ledtrad_protocol::OfferId::try_new("recipes").unwrap();
    for _ in 0..3 {
        engine.restore_feedback(&recipes, FeedbackKind::Accepted);
    }
    assert_eq!(
        shown(&mut engine),
        ("recipes".into(), true, "Picked on this fridge from what this home answered before.".into())
    );
    // Revoking `personalise` forgets the posteriors: the choice is the one without them.
    engine.set_consent(ConsentState::NONE);
    assert_eq!(shown(&mut engine).0, "tips");
    assert!(!shown(&mut engine).1);
}

#[test]
fn an_offer_shown_because_a_personal_scorer_ruled_another_out_is_personalised() {
    // snack's scorer reads a full butter dish as "unlikely" (0.2 after its penalty), so tips
    // (0.35) is shown; without the butter level snack would score 0.45 and be shown instead.
    let mut engine = build_engine_for("d-noticed", two_offers(0.7));
    engine.set_consent(personalise());
    engine.handle_signal(butter(0.9), NOW);
    let decision = engine.preview(Moment::DoorOpened, NOW, Draw::NONE);
    let tips = decision.shown.as_ref().expect("an offer");
    assert_eq!(tips.offer.as_str(), "tips");
    assert!(tips.personalised);
    assert_eq!(tips.why, "Picked on this fridge from what it noticed in this home.");
    // The scorer's read is on the record.
    assert!(decision.features_used.iter().any(|u| u.feature.as_str() == "fridge.butter.level"));
}

#[test]
fn an_offer_that_wins_with_or_without_personal_data_is_not_personalised() {
    // tips (0.5) beats snack with the butter level (0.2) and without it (0.45).
    let mut engine = build_engine_for("d-either", two_offers(1.0));
    engine.set_consent(personalise());
    engine.handle_signal(butter(0.9), NOW);
    assert_eq!(shown(&mut engine), ("tips".into(), false, "From this week's offers for every fridge.".into()));
}

#[test]
fn a_preview_decides_without_counting_keeping_or_numbering() {
    let mut catalogue = build_catalogue();
    catalogue.offers[1].caps.per_day = 1;
    let mut engine = build_engine_for("d-preview", catalogue);
    let first = engine.preview(Moment::DoorOpened, NOW, Draw::NONE);
    let again = engine.preview(Moment::DoorOpened, NOW, Draw::NONE);
    assert_eq!(first, again);
    assert!(engine.decision(first.id).is_none(), "a preview is not kept");
    let decided = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE);
    assert_eq!(decided.id, first.id, "a preview takes no decision number");
    assert_eq!(decided.shown, first.shown);
    // The decision counted its impression: the cap of one a day now holds.
    assert!(engine.preview(Moment::DoorOpened, NOW, Draw::NONE).shown.is_none());
}

#[test]
fn a_camouflage_draw_that_only_a_personal_offer_brought_about_is_personalised() {
    // butter is eligible only with the butter level; tips fails its hour condition, so it is
    // only broadly eligible. A camouflage draw shows tips in butter's place; without the
    // butter level nothing would have been shown at all.
    let catalogue = Catalogue::from_value(serde_json::json!({ "offer": [
        { "id": "butter", "campaign": "dairy", "title": "Butter", "question": "Butter?", "body": "b",
          "category": "food.dairy", "device_kinds": ["fridge"], "moments": ["door_opened"], "value": 1.0,
          "conditions": [{ "feature": "fridge.butter.level", "op": "lt", "value": 0.2 }], "personalised": true,
          "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z" },
        { "id": "tips", "campaign": "tips", "title": "Tips", "question": "A tip?", "body": "b",
          "category": "home.kitchen", "device_kinds": ["fridge"], "moments": ["door_opened"], "value": 1.0,
          "conditions": [{ "feature": "context.hour", "op": "ge", "value": 23.0 }],
          "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z" }
    ]}))
    .unwrap();
    let mut engine = build_engine_for("d-camouflage", catalogue);
    engine.set_consent(personalise());
    engine.handle_signal(butter(0.05), NOW);
    let draw = Draw { camouflage: 0.0, pick: 1, explore: None };
    let decision = engine.preview(Moment::DoorOpened, NOW, draw);
    assert!(decision.camouflage);
    let shown = decision.shown.expect("a camouflage draw");
    assert_eq!(shown.offer.as_str(), "tips");
    assert!(shown.personalised);
    assert_eq!(shown.why, "Picked on this fridge from what it noticed in this home.");
    // With the butter dish full nothing is eligible, so the same draw shows nothing.
    engine.handle_signal(butter(0.9), NOW);
    assert!(engine.preview(Moment::DoorOpened, NOW, draw).shown.is_none(), "nothing eligible, nothing drawn");
}
