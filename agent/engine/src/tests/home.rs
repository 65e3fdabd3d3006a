//! Home-wide caps: what the home's other screens showed today, handed in by the agent, counts
//! with this device's own impressions.

use std::collections::BTreeMap;

use super::*;
use crate::home::{DayShown, HomeShown};
use ledtrad_protocol::OfferId;

/// What the other screens showed on local day `day`: `offers` (offer, campaign, count).
fn elsewhere(day: u64, offers: &[(&str, &str, u32)]) -> HomeShown {
    let mut shown = DayShown { day, ..DayShown::default() };
    for (offer, campaign, n) in offers {
        shown.offers.insert(OfferId::try_new(*offer).unwrap(), *n);
        *shown.campaigns.entry(CampaignId::try_new(*campaign).unwrap()).or_default() += n;
        shown.total += n;
    }
    HomeShown::new([shown])
}

fn today() -> u64 {
    LocalTime::default().day(NOW)
}

fn fridge(catalogue: Catalogue) -> Engine {
    let mut engine = build_engine_for("d-home", catalogue);
    engine.set_consent(personalise());
    engine
}

fn decide(engine: &mut Engine, at: UnixTime) -> Decision {
    engine.handle_signal(butter(0.05), at);
    engine.decide_traced(Moment::DoorOpened, at, Draw::NONE).clone()
}

fn shown(d: &Decision) -> Option<&str> {
    d.shown.as_ref().map(|s| s.offer.as_str())
}

#[test]
fn an_offer_with_personal_conditions_is_shown_on_one_screen_of_a_home_per_day() {
    // On its own screen, its own daily cap of 2 holds as before.
    let mut engine = fridge(build_catalogue());
    assert_eq!(shown(&decide(&mut engine, NOW)), Some("butter-refill"));
    assert_eq!(shown(&decide(&mut engine, NOW.plus_secs(60))), Some("butter-refill"));
    // Another screen of the home showed it today: not here, whatever this screen's own count.
    let mut engine = fridge(build_catalogue());
    engine.set_home_shown(elsewhere(today(), &[("butter-refill", "dairy", 1)]));
    let d = decide(&mut engine, NOW);
    assert_eq!(shown(&d), Some("fridge-care"));
    assert_eq!(rejection_of(&d, "butter-refill"), Some(Rejection::ShownOnAnotherScreen));
    // Yesterday's counts count nothing today.
    engine.set_home_shown(elsewhere(today() - 1, &[("butter-refill", "dairy", 1)]));
    assert_eq!(shown(&decide(&mut engine, NOW.plus_secs(60))), Some("butter-refill"));
}

#[test]
fn an_offer_without_personal_conditions_has_no_home_cap_unless_it_names_one() {
    let mut catalogue = build_catalogue();
    catalogue.offers.remove(0);
    catalogue.offers[0].caps.per_day = 5;
    let mut engine = fridge(catalogue.clone());
    engine.set_home_shown(elsewhere(today(), &[("fridge-care", "care", 4)]));
    assert_eq!(shown(&decide(&mut engine, NOW)), Some("fridge-care"));
    // Two in the home a day: one here and one elsewhere reach it.
    catalogue.offers[0].caps.per_home_per_day = Some(2);
    let mut engine = fridge(catalogue);
    engine.set_home_shown(elsewhere(today(), &[("fridge-care", "care", 1)]));
    assert_eq!(shown(&decide(&mut engine, NOW)), Some("fridge-care"));
    let d = decide(&mut engine, NOW.plus_secs(60));
    assert_eq!(shown(&d), None);
    assert_eq!(rejection_of(&d, "fridge-care"), Some(Rejection::HomeOfferCap { per_home_per_day: 2 }));
}

#[test]
fn a_campaign_and_the_policy_cap_the_home_as_a_whole() {
    let mut catalogue = build_catalogue();
    catalogue.campaigns = vec![ledtrad_protocol::catalogue::Campaign {
        caps: ledtrad_protocol::caps::CampaignCaps { per_home_per_day: Some(1), ..Default::default() },
        ..ledtrad_protocol::catalogue::Campaign::new(CampaignId::try_new("care").unwrap())
    }];
    let mut engine = fridge(catalogue);
    engine.set_home_shown(elsewhere(today(), &[("other-care-tip", "care", 1)]));
    engine.handle_signal(butter(0.5), NOW);
    let d = engine.decide_traced(Moment::DoorOpened, NOW, Draw::NONE).clone();
    assert_eq!(
        rejection_of(&d, "fridge-care"),
        Some(Rejection::HomeCampaignCap { campaign: CampaignId::try_new("care").unwrap(), per_home_per_day: 1 })
    );
    // Three offers a day in the home: two elsewhere and one here reach it, for every offer.
    let mut catalogue = build_catalogue();
    catalogue.policy.home_per_day = Some(3);
    let mut engine = fridge(catalogue);
    engine.set_home_shown(elsewhere(today(), &[("film", "evenings", 2)]));
    assert_eq!(shown(&decide(&mut engine, NOW)), Some("butter-refill"));
    let d = decide(&mut engine, NOW.plus_secs(60));
    assert_eq!(shown(&d), None);
    assert_eq!(rejection_of(&d, "butter-refill"), Some(Rejection::HomeCap { per_day: 3 }));
}

#[test]
fn a_device_tells_its_home_what_it_showed_today() {
    let mut engine = fridge(build_catalogue());
    assert_eq!(engine.shown_today(NOW), DayShown { day: today(), ..DayShown::default() });
    decide(&mut engine, NOW);
    decide(&mut engine, NOW.plus_secs(60));
    decide(&mut engine, NOW.plus_secs(120));
    let told = engine.shown_today(NOW.plus_secs(180));
    let offers: BTreeMap<_, _> = told.offers.iter().map(|(o, n)| (o.as_str(), *n)).collect();
    let campaigns: BTreeMap<_, _> = told.campaigns.iter().map(|(c, n)| (c.as_str(), *n)).collect();
    assert_eq!(offers, BTreeMap::from([("butter-refill", 2), ("fridge-care", 1)]));
    assert_eq!(campaigns, BTreeMap::from([("dairy", 2), ("care", 1)]));
    assert_eq!((told.day, told.total), (today(), 3));
    // The next local day starts afresh.
    assert_eq!(engine.shown_today(NOW.plus_secs(86_400)).total, 0);
}
