//! The decision pipeline: each stage's reason, scoring, camouflage, holdout and prompts.

use super::*;

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
    let mut engine = build_engine_with_policy(DeviceKind::Fridge, Policy::Blunt);
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
    assert_eq!("blunt".parse::<Policy>(), Ok(Policy::Blunt));
    assert!("rude".parse::<Policy>().unwrap_err().contains("\"rude\""));
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
fn a_catalogue_signed_before_with_a_prompt_for_improve_applies_and_never_asks_for_it() {
    let mut catalogue = build_catalogue_with_prompt();
    catalogue.prompts[0].purpose = Purpose::Improve;
    let mut engine = build_engine(DeviceKind::Fridge);
    let envelope = sign(&build_key(1), "op-1", "home", 1, NOW.plus_secs(60 * 86_400), catalogue);
    engine.handle_catalogue(&envelope, NOW).expect("the catalogue applies");
    let decision = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE);
    assert!(decision.prompt.is_none(), "improve is not used by this version");
    assert_eq!(decision.shown.unwrap().offer.as_str(), "fridge-care");
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

/// `catalogue` with its "care" campaign holding out half its devices.
fn holding_out_half(mut catalogue: Catalogue) -> (Catalogue, CampaignId) {
    let care = CampaignId::try_new("care").unwrap();
    catalogue.campaigns = vec![ledtrad_protocol::catalogue::Campaign {
        holdout: 0.5,
        ..ledtrad_protocol::catalogue::Campaign::new(care.clone())
    }];
    (catalogue, care)
}

/// Whether `device` is in `campaign`'s holdout arm of half its devices.
fn held_out(device: &str, campaign: &CampaignId) -> bool {
    in_holdout(&ledtrad_protocol::DeviceId::try_new(device).unwrap(), campaign, 0.5)
}

#[test]
fn a_held_out_device_records_what_it_would_have_shown_and_shows_nothing() {
    let (catalogue, care) = holding_out_half(build_catalogue());
    let ids: Vec<String> = (0..200).map(|i| format!("device-{i}")).collect();
    let held: Vec<&String> = ids.iter().filter(|d| held_out(d, &care)).collect();
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

/// A held-out decision may put a prompt where its offer would have been: the prompt takes an
/// answer and the offer a conversion, each once.
#[test]
fn a_held_out_decision_that_prompts_takes_both_a_conversion_and_an_answer() {
    let (catalogue, care) = holding_out_half(build_catalogue_with_prompt());
    let held = (0..200).map(|i| format!("device-{i}")).find(|d| held_out(d, &care)).unwrap();
    let mut engine = build_engine_for(&held, catalogue);
    let d = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).clone();
    assert!(d.shown.is_none() && d.prompt.is_some(), "{d:?}");
    assert_eq!(d.would_have_shown.as_ref().map(|o| o.as_str()), Some("fridge-care"));
    assert_eq!(engine.check_prompt_answer(d.id).map(|p| p.purpose), Ok(Purpose::Personalise));
    engine.handle_prompt_answer(d.id, false, NOW).unwrap();
    assert_eq!(engine.handle_prompt_answer(d.id, false, NOW), Err(FeedbackError::AlreadyGiven(d.id.0)));
    let converted = Feedback { decision: d.id, kind: FeedbackKind::Converted };
    let applied = engine.handle_feedback(converted, NOW).unwrap();
    assert!(applied.held_out);
    assert_eq!((applied.offer.as_str(), applied.catalogue_version), ("fridge-care", Some(1)));
    assert_eq!(engine.decision_campaign(d.id), Some(care));
    assert_eq!(engine.handle_feedback(converted, NOW), Err(FeedbackError::AlreadyGiven(d.id.0)));
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
fn when_the_device_wide_rules_block_every_offer_gets_the_first_stage_it_fails() {
    let mut catalogue = build_catalogue();
    catalogue.policy.min_gap_minutes = Some(60);
    let mut engine = build_engine_for("d-gap", catalogue);
    let first = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).clone();
    assert_eq!(first.shown.unwrap().offer.as_str(), "fridge-care");
    assert_eq!(engine.weighed_offers(first.id), Some(true));
    let d = engine.decide_traced(Moment::DoorOpened, NOW.plus_secs(600), Draw::NONE);
    assert!(d.shown.is_none());
    let blocked = d.id;
    let gap = Some(Rejection::MinGap { until: NOW.plus_secs(3600) });
    assert_eq!(rejection_of(&d, "fridge-care"), gap);
    assert_eq!(rejection_of(&d, "butter-refill"), gap, "the device-wide rules come before consent");
    assert_eq!(rejection_of(&d, "film"), Some(Rejection::DeviceKind { kind: DeviceKind::Fridge }));
    assert_eq!(d.candidates.len(), 3);
    assert_eq!(engine.weighed_offers(blocked), Some(false), "no offer was read");
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

/// Twelve contextual fridge offers worth 1 to 12, each shown at most once a day.
fn ladder_catalogue() -> Catalogue {
    let offers: Vec<serde_json::Value> = (1..=12)
        .map(|v| {
            serde_json::json!({
                "id": format!("v{v}"), "campaign": "ladder", "title": "Step", "question": "This?",
                "body": "Step.", "category": "home.kitchen", "device_kinds": ["fridge"],
                "moments": ["door_opened"], "value": f64::from(v), "caps": { "per_day": 1 },
                "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"
            })
        })
        .collect();
    Catalogue::from_value(serde_json::json!({ "offer": offers })).unwrap()
}

#[test]
fn candidates_that_cannot_reach_the_best_few_are_scored_from_what_they_had_when_the_trace_is_read() {
    let mut engine = build_engine_for("d-ladder", ladder_catalogue());
    engine.set_consent(personalise());
    // Without exploration every propensity is the posterior mean, 0.5 before any answer: the
    // best five are worth 12 to 8 (scores 6 to 4), so offers worth 1 to 3 cannot reach them.
    let first = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE);
    assert_eq!(first.shown.as_ref().unwrap().offer.as_str(), "v12");
    assert_eq!(engine.pending_scores(first.id), Some(3));
    // Every offer shown and accepted in turn: every posterior mean is now 0.6.
    engine.handle_feedback(Feedback { decision: first.id, kind: FeedbackKind::Accepted }, NOW).unwrap();
    for k in 1..12 {
        let d = engine.decide_traced(Moment::DoorOpened, NOW.plus_secs(60 * k), Draw::NONE);
        assert_eq!(d.shown.as_ref().unwrap().offer.as_str(), format!("v{}", 12 - k));
        engine.handle_feedback(Feedback { decision: d.id, kind: FeedbackKind::Accepted }, NOW).unwrap();
    }
    // The first decision's trace still gives every candidate the score it had then.
    let again = engine.decision(first.id).unwrap();
    assert_eq!(again.candidates, first.candidates);
    for (v, c) in (1..=12).zip(&again.candidates) {
        let score = match c.verdict {
            Verdict::Outscored { score } | Verdict::Chosen { score } => score,
            Verdict::Rejected { .. } => panic!("{} was eligible", c.offer),
        };
        assert_eq!(score, f64::from(v) * 0.5, "{}", c.offer);
    }
}
