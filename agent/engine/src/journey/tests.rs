//! Journeys: steps that follow answers, waits, groups, and a device that remembers its place.

use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::decision::{Decision, FeatureUse, Rejection};
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
use ledtrad_protocol::journey::{JourneyState, JourneyStop, Trigger};
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::time::DAY_SECS;
use ledtrad_protocol::{CampaignId, GroupId, Moment, OfferId, Purpose, StepId, UnixTime};

use crate::context::Draw;
use crate::engine::Engine;
use crate::tests::{build_engine_for, personalise, rejection_of, NOW};

const HOUR: u64 = 3600;

fn offer(id: &str, campaign: &str, personalised: bool) -> serde_json::Value {
    serde_json::json!({
        "id": id, "campaign": campaign, "title": id, "question": "Could this be something for you?",
        "body": "…", "category": "food.dairy", "device_kinds": ["fridge"], "moments": ["door_opened"],
        "value": 1.0, "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z",
        "personalised": personalised
    })
}

/// Oat milk first (a bigger pack for busy kitchens); after a yes, oat yoghurt a day later;
/// after a dismissal, oat milk again a week later. Beside it, a care journey whose second tip
/// follows two days after the first was shown.
fn build_journeys() -> Catalogue {
    Catalogue::from_value(serde_json::json!({
        "offer": [
            offer("oat-milk", "breakfast", false),
            offer("big-pack", "breakfast", true),
            offer("oat-yoghurt", "breakfast", false),
            offer("tip-1", "care", false),
            offer("tip-2", "care", false),
        ],
        "campaign": [
            {
                "id": "breakfast",
                "group": [{ "id": "busy", "conditions": [{ "feature": "fridge.door.opens", "op": "ge", "value": 10 }] }],
                "step": [
                    { "id": "intro", "offer": "oat-milk", "instead": [{ "group": "busy", "offer": "big-pack" }] },
                    { "id": "follow-up", "offer": "oat-yoghurt", "after": "intro", "when": "accepted", "delay_days": 1 },
                    { "id": "retry", "offer": "oat-milk", "after": "intro", "when": "dismissed", "delay_days": 7 }
                ]
            },
            {
                "id": "care",
                "step": [
                    { "id": "first", "offer": "tip-1" },
                    { "id": "second", "offer": "tip-2", "after": "first", "when": "shown", "delay_hours": 48 }
                ]
            }
        ]
    }))
    .expect("journey catalogue is valid")
}

fn step(id: &str) -> StepId {
    StepId::try_new(id).unwrap()
}

fn breakfast(step_id: &str, state: JourneyState) -> Option<Rejection> {
    Some(Rejection::Journey(Box::new(JourneyStop {
        campaign: CampaignId::try_new("breakfast").unwrap(),
        step: step(step_id),
        state,
    })))
}

fn shown(d: &Decision) -> Option<&str> {
    d.shown.as_ref().map(|s| s.offer.as_str())
}

/// Decides at a door opening at `at`.
fn decide(engine: &mut Engine, at: UnixTime) -> Decision {
    engine.decide_traced(Moment::DoorOpened, at, Draw::NONE)
}

fn answer(engine: &mut Engine, d: &Decision, kind: FeedbackKind, at: UnixTime) {
    engine.handle_feedback(Feedback { decision: d.id, kind }, at).unwrap();
}

/// An engine on the breakfast journey alone.
fn build_engine() -> Engine {
    let mut catalogue = build_journeys();
    catalogue.offers.retain(|o| o.campaign.as_str() == "breakfast");
    catalogue.campaigns.retain(|c| c.id.as_str() == "breakfast");
    build_engine_for("d-journey", catalogue)
}

#[test]
fn a_yes_opens_the_follow_up_a_day_later_and_closes_the_first_step() {
    let mut engine = build_engine();
    let d = decide(&mut engine, NOW);
    assert_eq!(shown(&d), Some("oat-milk"));
    assert_eq!(
        rejection_of(&d, "oat-yoghurt"),
        breakfast("follow-up", JourneyState::NotReached { after: step("intro"), when: Trigger::Accepted })
    );
    answer(&mut engine, &d, FeedbackKind::Accepted, NOW);
    let d = decide(&mut engine, NOW.plus_secs(HOUR));
    assert_eq!(shown(&d), None);
    let opens = NOW.plus_secs(DAY_SECS);
    assert_eq!(rejection_of(&d, "oat-yoghurt"), breakfast("follow-up", JourneyState::Waiting { until: opens }));
    let d = decide(&mut engine, opens.plus_secs(HOUR));
    assert_eq!(shown(&d), Some("oat-yoghurt"));
    assert_eq!(rejection_of(&d, "oat-milk"), breakfast("intro", JourneyState::Done));
}

#[test]
fn a_dismissal_waits_a_week_then_asks_again_once() {
    let mut engine = build_engine();
    let d = decide(&mut engine, NOW);
    answer(&mut engine, &d, FeedbackKind::Dismissed, NOW);
    // Past the 48-hour block, the journey still waits: the retry step opens after a week.
    let d = decide(&mut engine, NOW.plus_secs(3 * DAY_SECS));
    let opens = NOW.plus_secs(7 * DAY_SECS);
    assert_eq!(rejection_of(&d, "oat-milk"), breakfast("retry", JourneyState::Waiting { until: opens }));
    assert_eq!(
        rejection_of(&d, "oat-yoghurt"),
        breakfast("follow-up", JourneyState::NotReached { after: step("intro"), when: Trigger::Accepted })
    );
    let d = decide(&mut engine, opens);
    assert_eq!(shown(&d), Some("oat-milk"));
    // A yes to the retry closes it; the follow-up waits on the first step's answer, so the
    // journey ends here.
    answer(&mut engine, &d, FeedbackKind::Accepted, opens);
    let d = decide(&mut engine, opens.plus_secs(2 * DAY_SECS));
    assert_eq!(shown(&d), None);
    assert_eq!(rejection_of(&d, "oat-milk"), breakfast("retry", JourneyState::Done));
}

#[test]
fn a_group_gets_its_own_offer_and_its_features_are_read_only_with_consent() {
    let opens = FeatureName::try_new("fridge.door.opens").unwrap();
    let busy = |engine: &mut Engine| {
        for _ in 0..12 {
            engine.handle_signal(Signal { feature: opens, value: 1.0 }, NOW);
        }
    };
    // Without consent the group is not read: the step shows its own offer.
    let mut engine = build_engine();
    busy(&mut engine);
    let d = decide(&mut engine, NOW);
    assert_eq!(shown(&d), Some("oat-milk"));
    assert!(!d.features_used.iter().any(|u| u.feature == opens), "{:?}", d.features_used);
    assert_eq!(rejection_of(&d, "big-pack"), Some(Rejection::NeedsConsent { purpose: Purpose::Personalise }));
    // With it, a busy kitchen gets the bigger pack, and the trace says why the other is not shown.
    let mut engine = build_engine();
    engine.set_consent(personalise());
    busy(&mut engine);
    let d = decide(&mut engine, NOW);
    assert_eq!(shown(&d), Some("big-pack"));
    assert!(d.features_used.contains(&FeatureUse { feature: opens, allowed_by: Some(Purpose::Personalise) }));
    assert_eq!(
        rejection_of(&d, "oat-milk"),
        breakfast(
            "intro",
            JourneyState::OtherOffer {
                offer: OfferId::try_new("big-pack").unwrap(),
                group: Some(GroupId::try_new("busy").unwrap())
            }
        )
    );
    // A yes to the group's offer answers the step: the follow-up opens as for anyone.
    answer(&mut engine, &d, FeedbackKind::Accepted, NOW);
    assert_eq!(shown(&decide(&mut engine, NOW.plus_secs(DAY_SECS + HOUR))), Some("oat-yoghurt"));
    // A quiet kitchen is not in the group.
    let mut engine = build_engine();
    engine.set_consent(personalise());
    engine.handle_signal(Signal { feature: opens, value: 1.0 }, NOW);
    assert_eq!(shown(&decide(&mut engine, NOW)), Some("oat-milk"));
}

#[test]
fn a_step_can_follow_an_impression_without_an_answer() {
    let mut catalogue = build_journeys();
    catalogue.offers.retain(|o| o.campaign.as_str() == "care");
    catalogue.campaigns.retain(|c| c.id.as_str() == "care");
    let mut engine = build_engine_for("d-journey", catalogue);
    assert_eq!(shown(&decide(&mut engine, NOW)), Some("tip-1"));
    let d = decide(&mut engine, NOW.plus_secs(DAY_SECS));
    assert_eq!(shown(&d), Some("tip-1"), "unanswered, the first step stays open");
    let care = CampaignId::try_new("care").unwrap();
    assert_eq!(
        rejection_of(&d, "tip-2"),
        Some(Rejection::Journey(Box::new(JourneyStop {
            campaign: care,
            step: step("second"),
            state: JourneyState::Waiting { until: NOW.plus_secs(2 * DAY_SECS) }
        })))
    );
    let d = decide(&mut engine, NOW.plus_secs(2 * DAY_SECS));
    assert!(rejection_of(&d, "tip-2").is_none(), "{:?}", d.candidates);
}

#[test]
fn a_restarted_device_picks_the_journey_up_where_it_was_from_its_stored_history() {
    let mut engine = build_engine();
    let d = decide(&mut engine, NOW);
    answer(&mut engine, &d, FeedbackKind::Accepted, NOW);
    // What the agent hands back in on start: impressions and answers from its database.
    let mut restarted = build_engine();
    let (milk, breakfast_id) = (OfferId::try_new("oat-milk").unwrap(), CampaignId::try_new("breakfast").unwrap());
    restarted.restore_impression(&milk, &breakfast_id, NOW);
    restarted.restore_answer(&milk, Some("food.dairy"), FeedbackKind::Accepted, NOW);
    for at in [NOW.plus_secs(HOUR), NOW.plus_secs(DAY_SECS + HOUR)] {
        let (a, b) = (decide(&mut engine, at), decide(&mut restarted, at));
        assert_eq!(a.candidates, b.candidates);
        assert_eq!(shown(&a), shown(&b));
    }
}

#[test]
fn a_journey_answered_longer_ago_than_it_remembers_starts_over() {
    let mut engine = build_engine();
    let d = decide(&mut engine, NOW);
    answer(&mut engine, &d, FeedbackKind::Accepted, NOW);
    let d = decide(&mut engine, NOW.plus_secs(2 * DAY_SECS));
    assert_eq!(shown(&d), Some("oat-yoghurt"));
    answer(&mut engine, &d, FeedbackKind::Dismissed, NOW.plus_secs(2 * DAY_SECS));
    let d = decide(&mut engine, NOW.plus_secs(30 * DAY_SECS));
    assert_eq!(shown(&d), None, "both steps answered");
    // Past the journey's memory of the first answer, it starts again, whether or not the
    // agent's timer has dropped the old answers yet.
    let later = NOW.plus_secs(ledtrad_protocol::journey::MEMORY_SECS + DAY_SECS);
    let d = decide(&mut engine, later);
    assert_eq!(shown(&d), Some("oat-milk"), "{:?}", d.candidates);
    engine.handle_timeout(later);
    assert_eq!(shown(&decide(&mut engine, later.plus_secs(DAY_SECS))), Some("oat-milk"));
}
