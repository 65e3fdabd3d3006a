//! The offer service's candidates: the device's own checks and rules, and when to ask.

use super::*;

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

#[test]
fn the_service_candidates_are_compiled_under_the_rules_of_the_catalogue_in_force() {
    let mut catalogue = build_catalogue();
    catalogue.policy.min_gap_minutes = Some(30);
    let mut dairy = ledtrad_protocol::catalogue::Campaign::new(CampaignId::try_new("dairy").unwrap());
    dairy.holdout = 0.2;
    catalogue.campaigns.push(dairy);
    let mut engine = build_engine(DeviceKind::Ereader);
    engine.handle_catalogue(&sign(&build_key(1), "op-1", "home", 4, NOW.plus_secs(86_400), catalogue), NOW).unwrap();
    let in_force = engine.catalogue().unwrap();
    let offers = vec![
        service_offer("crime-novel", |_| {}),
        service_offer("crime-novel", |o| o["title"] = "Again".into()),
        service_offer("butter-refill", |_| {}),
        service_offer("statement", |o| o["question"] = "Buy this.".into()),
        service_offer("dairy-read", |o| o["campaign"] = "dairy".into()),
    ];
    let candidates = crate::remote::ServiceCandidates::from_answer(in_force, offers).unwrap();
    // A second copy, an offer the catalogue holds and a statement are dropped.
    assert_eq!(candidates.counted, RemoteOffers { received: 5, kept: 2 });
    let remote = &candidates.catalogue;
    let ids: Vec<&str> = remote.offers.iter().map(|o| o.offer.id.as_str()).collect();
    assert_eq!(ids, ["crime-novel", "dairy-read"]);
    // The catalogue in force's version, expiry, device-wide rules and campaign holdouts apply.
    assert_eq!((remote.version, remote.expires_at), (4, NOW.plus_secs(86_400)));
    assert_eq!(remote.policy.min_gap_minutes, Some(30));
    assert_eq!(remote.holdouts.get(&CampaignId::try_new("dairy").unwrap()), Some(&0.2));
    // The service brings no prompts and no journeys of its own.
    assert!(remote.prompts.is_empty() && remote.journeys.is_empty());
    let too_many = vec![service_offer("x", |_| {}); MAX_REMOTE_OFFERS + 1];
    assert_eq!(
        crate::remote::ServiceCandidates::from_answer(in_force, too_many).unwrap_err(),
        RemoteError::TooMany(MAX_REMOTE_OFFERS + 1)
    );
}
