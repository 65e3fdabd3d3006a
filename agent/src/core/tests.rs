//! The core's unit tests: plain values in, plain values out, without tokio, a broker or a
//! file. The store is an in-memory SQLite database; the MQTT client is a channel whose
//! requests the tests read; time is what each test hands in.

use std::path::Path;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::consent::ConsentSource;
use ledtrad_protocol::decision::DecisionId;
use ledtrad_protocol::envelope::{Envelope, SignedCatalogue};
use ledtrad_protocol::feedback::FeedbackKind;
use ledtrad_protocol::offers::OfferResponse;
use ledtrad_protocol::{codec, KeyId, Moment, OfferId, PersonId, Purpose, UnixTime};
use rand::SeedableRng;
use rumqttc::v5::Request;

use super::*;
use crate::handle::ConsentChange;

/// 2026-11-23T10:00:00Z.
const T0: UnixTime = UnixTime(1_795_428_000);

pub(super) fn at(secs: u64, mono_millis: u64) -> Now {
    Now::at(T0.plus_secs(secs), Duration::from_millis(mono_millis))
}

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

fn build_config(device: &str, kind: &str, extra: &str) -> Config {
    let key = hex::encode(signing_key().verifying_key().to_bytes());
    let text = format!(
        "device_id = \"{device}\"\nkind = \"{kind}\"\nfleet = \"home\"\nbroker = \"mqtt://127.0.0.1:1883\"\ndatabase = \"agent.db\"\nrng_seed = 7\n{extra}\n[[operator_keys]]\nid = \"op\"\npublic_key = \"{key}\"\n"
    );
    Config::from_toml(&text, "agent.toml").expect("a valid config")
}

/// A fridge's core on an in-memory database, and the requests its MQTT client was handed.
fn build_core(extra: &str) -> (AgentCore, flume::Receiver<Request>) {
    build_device("fridge-1", "fridge", extra)
}

/// A core of `kind` named `device`, as [`build_core`].
pub(super) fn build_device(device: &str, kind: &str, extra: &str) -> (AgentCore, flume::Receiver<Request>) {
    let (tx, rx) = flume::bounded(1_000);
    let store = Store::open(Path::new(":memory:")).expect("an in-memory database");
    let rng = rand::rngs::StdRng::seed_from_u64(7);
    let config = build_config(device, kind, extra);
    let core = AgentCore::restore(config, store, AsyncClient::from_senders(tx), rng, None, at(0, 0))
        .expect("the core restores");
    (core, rx)
}

fn grant(core: &mut AgentCore, person: Option<&str>, purpose: Purpose, granted: bool) {
    let change = ConsentChange { granted, source: ConsentSource::Api, text_version: "2026-11".into() };
    let person = person.map(|p| PersonId::try_new(p).unwrap());
    core.set_consent(person, purpose, change, at(1, 1)).expect("consent stored");
}

pub(super) fn example_envelope() -> Vec<u8> {
    envelope_with(|_| {})
}

/// The example catalogue, changed by `edit` first, signed as version 1.
fn envelope_with(edit: impl FnOnce(&mut toml::Table)) -> Vec<u8> {
    versioned_envelope(1, edit)
}

/// The example catalogue, changed by `edit` first, signed as `version`.
fn versioned_envelope(version: u64, edit: impl FnOnce(&mut toml::Table)) -> Vec<u8> {
    let text = include_str!("../../../examples/catalogues/home.toml");
    let mut table = text.parse::<toml::Table>().unwrap();
    edit(&mut table);
    let value = serde_json::to_value(table).unwrap();
    let signed = SignedCatalogue {
        fleet: ledtrad_protocol::FleetId::try_new("home").unwrap(),
        version,
        issued_at: T0,
        expires_at: T0.plus_secs(400 * 86_400),
        key_id: KeyId::try_new("op").unwrap(),
        catalogue: Catalogue::from_value(value).unwrap(),
        rollout: None,
    };
    let signed = codec::to_postcard(&signed);
    let signature = signing_key().sign(&Envelope::signing_input(&signed)).to_bytes().to_vec();
    codec::to_postcard(&Envelope { key_id: KeyId::try_new("op").unwrap(), signed, signature })
}

pub(super) fn publish(topic: Topic, payload: Vec<u8>, correlation: Option<Vec<u8>>) -> MqttEvent {
    MqttEvent::Publish { topic: topic.name(), payload, correlation }
}

/// The correlation data of the offer requests the client was handed.
fn requests_sent(rx: &flume::Receiver<Request>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Ok(request) = rx.try_recv() {
        if let Request::Publish(p) = request {
            if let Some(c) = p.properties.and_then(|props| props.correlation_data) {
                out.push(c.to_vec());
            }
        }
    }
    out
}

#[test]
fn a_revocation_purges_what_its_purpose_kept_before_it_returns() {
    let (mut core, _rx) = build_core("sharing = \"personal\"");
    grant(&mut core, None, Purpose::Personalise, true);
    grant(&mut core, None, Purpose::Measure, true);
    core.store.enqueue(Purpose::Measure, "ledtrad/v1/fleet/home/reports", b"{}", T0).unwrap();
    let offer = OfferId::try_new("milk").unwrap();
    let campaign = ledtrad_protocol::CampaignId::try_new("dairy").unwrap();
    let shown = crate::store::ImpressionRow { decision: DecisionId(1), offer: offer.clone(), campaign, at: T0 };
    core.store.record_impression(&shown).unwrap();
    core.store.record_feedback_event(DecisionId(1), &offer, None, FeedbackKind::Accepted, T0, true).unwrap();

    grant(&mut core, None, Purpose::Measure, false);
    assert!(core.store.outbox().unwrap().is_empty(), "the queued report went with measure");
    assert!(!core.engine.consent().allows(Purpose::Measure));
    assert_eq!(core.store.feedback().unwrap().len(), 1, "personalise still holds its learning data");

    grant(&mut core, None, Purpose::Personalise, false);
    assert!(core.store.feedback().unwrap().is_empty(), "learning data went with personalise");
    assert!(!core.consent_view().unwrap().allows(Purpose::Personalise));
}

#[test]
fn who_is_present_decides_and_a_purpose_lost_with_presence_is_purged() {
    let (mut core, _rx) = build_core("");
    for person in ["anna", "bo"] {
        core.put_person(PersonId::try_new(person).unwrap(), crate::handle::PersonChange { child: false }, at(1, 1))
            .unwrap();
    }
    for person in [None, Some("anna")] {
        grant(&mut core, person, Purpose::Personalise, true);
    }
    let anna = PersonId::try_new("anna").unwrap();
    let bo = PersonId::try_new("bo").unwrap();
    core.set_presence(Some(vec![anna])).unwrap();
    assert!(core.engine.consent().allows(Purpose::Personalise), "anna alone has granted it");
    let offer = OfferId::try_new("milk").unwrap();
    let campaign = ledtrad_protocol::CampaignId::try_new("dairy").unwrap();
    let shown = crate::store::ImpressionRow { decision: DecisionId(1), offer: offer.clone(), campaign, at: T0 };
    core.store.record_impression(&shown).unwrap();
    core.store.record_feedback_event(DecisionId(1), &offer, None, FeedbackKind::Accepted, T0, true).unwrap();

    core.set_presence(Some(vec![bo])).unwrap();
    assert!(!core.engine.consent().allows(Purpose::Personalise), "bo has not");
    assert!(core.store.feedback().unwrap().is_empty(), "the learning data went in the presence change");
}

#[test]
fn an_offer_request_waits_on_the_monotonic_clock_and_times_out_with_the_local_decision() {
    let (mut core, rx) = build_core("offer_request_timeout_ms = 500");
    core.handle_mqtt(MqttEvent::Connected { session_present: false }, at(0, 0));
    core.handle_mqtt(publish(Topic::Catalogue(core.config.fleet.clone()), example_envelope(), None), at(0, 0));
    assert_eq!(core.status().catalogue_version, Some(1));
    grant(&mut core, None, Purpose::Request, true);

    let step = core.offer(Moment::BookFinished, at(10, 10_000));
    let OfferStep::Waiting(token) = step else { panic!("the service should be asked, got {step:?}") };
    assert_eq!(core.poll_timeout(), Some(Duration::from_millis(10_500)));
    assert_eq!(requests_sent(&rx).len(), 1);

    core.handle_timeout(at(10, 10_499));
    assert!(core.poll_answer().is_none(), "not yet due");
    core.handle_timeout(at(10, 10_500));
    let (answered_token, outcome) = core.poll_answer().expect("the caller gets the local decision");
    assert_eq!(answered_token, token);
    assert!(outcome.decision.shown.is_none());
    assert_eq!(outcome.request.map(|r| r.answered), Some(false));
    assert_eq!(core.poll_timeout(), None);
    assert_eq!((core.status().requests_sent, core.status().requests_unanswered), (1, 1));
}

#[test]
fn an_answer_with_the_requests_correlation_is_decided_on_and_a_revocation_drops_a_waiting_one() {
    let (mut core, rx) = build_core("offer_request_timeout_ms = 500");
    core.handle_mqtt(MqttEvent::Connected { session_present: false }, at(0, 0));
    core.handle_mqtt(publish(Topic::Catalogue(core.config.fleet.clone()), example_envelope(), None), at(0, 0));
    grant(&mut core, None, Purpose::Request, true);
    let _ = requests_sent(&rx);

    let OfferStep::Waiting(first) = core.offer(Moment::BookFinished, at(10, 10_000)) else { panic!("not asked") };
    let correlation = requests_sent(&rx).pop().expect("a request with correlation data");
    let answer = codec::to_json(&OfferResponse { offers: Vec::new() });
    let offers = Topic::Offers(core.config.device.clone());
    core.handle_mqtt(publish(offers.clone(), answer.clone(), Some(b"someone else's".to_vec())), at(10, 10_100));
    assert!(core.poll_answer().is_none(), "an answer to another request is ignored");
    core.handle_mqtt(publish(offers, answer, Some(correlation)), at(10, 10_100));
    let (token, outcome) = core.poll_answer().expect("answered");
    assert_eq!((token, outcome.request.map(|r| r.answered)), (first, Some(true)));

    let OfferStep::Waiting(second) = core.offer(Moment::BookFinished, at(20, 20_000)) else { panic!("not asked") };
    grant(&mut core, None, Purpose::Request, false);
    let (token, outcome) = core.poll_answer().expect("the revocation answers the caller at once");
    assert_eq!((token, outcome.request.map(|r| r.answered)), (second, Some(false)));
    assert_eq!(core.poll_timeout(), None);
}

fn butter(value: f64) -> Vec<ledtrad_protocol::signal::Signal> {
    let feature = ledtrad_protocol::feature::FeatureName::try_new("fridge.butter.level").unwrap();
    vec![ledtrad_protocol::signal::Signal { feature, value }]
}

fn offer_events(core: &mut AgentCore) -> Vec<crate::events::OfferBody> {
    std::iter::from_fn(|| core.poll_event())
        .filter_map(|e| match e {
            UiEvent::Offer(body) => Some(*body),
            _ => None,
        })
        .collect()
}

#[test]
fn a_level_running_low_raises_inventory_low_and_queues_what_it_shows() {
    let (mut core, _rx) = build_core("sharing = \"personal\"\ncamouflage_share = 0.0");
    core.handle_mqtt(publish(Topic::Catalogue(core.config.fleet.clone()), example_envelope(), None), at(0, 0));
    grant(&mut core, None, Purpose::Personalise, true);
    let _ = offer_events(&mut core);

    assert_eq!(core.handle_signals(butter(0.6), at(10, 10)).raised, None);
    let outcome = core.handle_signals(butter(0.1), at(20, 20));
    assert_eq!(outcome.raised, Some(Moment::InventoryLow));
    let shown = offer_events(&mut core);
    assert_eq!(shown.len(), 1, "one offer event");
    assert_eq!(shown[0].moment, Moment::InventoryLow);
    let offer = shown[0].offer.as_ref().expect("an offer to show");
    assert_eq!(offer.offer.as_str(), "butter-refill");
    assert!(offer.personalised);
    assert!(core.decision(shown[0].decision).is_some(), "the same decision GET /v1/offer makes, with its trace");

    assert_eq!(core.handle_signals(butter(0.05), at(30, 30)).raised, None, "still low: once");
}

#[test]
fn a_raised_moment_obeys_consent_and_the_caps() {
    let (mut core, _rx) = build_core("sharing = \"personal\"");
    core.handle_mqtt(publish(Topic::Catalogue(core.config.fleet.clone()), example_envelope(), None), at(0, 0));
    let _ = offer_events(&mut core);
    // Without personalise the engine does not take the level, and nothing is raised from it.
    assert_eq!(core.handle_signals(butter(0.1), at(10, 10)).raised, None);
    assert!(offer_events(&mut core).is_empty());

    // A door edge is raised whatever the consent; its offers are then contextual.
    let door = vec![ledtrad_protocol::signal::Signal {
        feature: ledtrad_protocol::feature::FeatureName::try_new("fridge.door.opens").unwrap(),
        value: 1.0,
    }];
    let mut shown = 0;
    for i in 0..20u64 {
        assert_eq!(core.handle_signals(door.clone(), at(100 + i * 60, 100 + i)).raised, Some(Moment::DoorOpened));
        for body in offer_events(&mut core) {
            assert!(!body.offer.as_ref().is_some_and(|o| o.personalised), "nothing personal without consent");
            shown += 1;
        }
    }
    assert!(shown > 0, "some door openings show an offer");
    assert!(shown <= 6, "the hourly cap holds for raised moments too: {shown} shown in 20 minutes");
    assert_eq!(core.moments.raised, 20, "every raised moment decided");
}

#[test]
fn moments_of_another_device_kind_or_with_raising_off_are_not_raised() {
    let (mut core, _rx) = build_core("raise_moments = false");
    core.handle_mqtt(publish(Topic::Catalogue(core.config.fleet.clone()), example_envelope(), None), at(0, 0));
    grant(&mut core, None, Purpose::Personalise, true);
    assert_eq!(core.handle_signals(butter(0.1), at(10, 10)).raised, None);
    assert!(offer_events(&mut core).is_empty());

    let (mut core, _rx) = build_core("");
    let unlock = vec![ledtrad_protocol::signal::Signal {
        feature: ledtrad_protocol::feature::FeatureName::try_new("lockscreen.unlocks").unwrap(),
        value: 1.0,
    }];
    assert_eq!(core.handle_signals(unlock, at(10, 10)).raised, None, "a fridge has no lock screen");
}

#[test]
fn the_ui_hears_of_consent_changes_and_catalogues() {
    let (mut core, _rx) = build_core("");
    core.handle_mqtt(publish(Topic::Catalogue(core.config.fleet.clone()), example_envelope(), None), at(0, 0));
    core.handle_mqtt(publish(Topic::Catalogue(core.config.fleet.clone()), b"junk".to_vec(), None), at(0, 0));
    grant(&mut core, None, Purpose::Measure, true);
    let events: Vec<_> = std::iter::from_fn(|| core.poll_event()).collect();
    let names: Vec<_> = events.iter().map(UiEvent::name).collect();
    assert_eq!(names, ["catalogue", "catalogue", "consent"]);
    let UiEvent::Catalogue(applied) = &events[0] else { unreachable!() };
    assert!(applied.applied && applied.version == Some(1));
    let UiEvent::Catalogue(refused) = &events[1] else { unreachable!() };
    assert!(!refused.applied && refused.reason.is_some());
    let UiEvent::Consent(view) = &events[2] else { unreachable!() };
    assert!(view.allows(Purpose::Measure));
}

#[test]
fn a_raised_moment_in_quiet_hours_shows_nothing() {
    let (mut core, _rx) = build_core("sharing = \"personal\"");
    let quiet = envelope_with(|t| {
        let policy = "quiet_hours = { from = 22, to = 7 }".parse::<toml::Table>().unwrap();
        t.insert("policy".into(), toml::Value::Table(policy));
    });
    core.handle_mqtt(publish(Topic::Catalogue(core.config.fleet.clone()), quiet, None), at(0, 0));
    assert_eq!(core.status().catalogue_version, Some(1));
    let _ = offer_events(&mut core);
    let door = vec![ledtrad_protocol::signal::Signal {
        feature: ledtrad_protocol::feature::FeatureName::try_new("fridge.door.opens").unwrap(),
        value: 1.0,
    }];
    // T0 is 10:00 UTC (the config's offset is 0): 23:00 is quiet, 10:00 the next day is not.
    assert_eq!(core.handle_signals(door.clone(), at(13 * 3600, 1)).raised, Some(Moment::DoorOpened));
    assert!(offer_events(&mut core).is_empty(), "nothing shown in quiet hours");
    assert_eq!(core.handle_signals(door, at(24 * 3600, 2)).raised, Some(Moment::DoorOpened));
    assert_eq!(offer_events(&mut core).len(), 1, "the same moment shows an offer outside them");
}

#[test]
fn a_database_over_its_budget_is_pruned_on_the_tick_and_the_status_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = flume::bounded(1_000);
    let store = Store::open(&dir.path().join("agent.db")).unwrap();
    let rng = rand::rngs::StdRng::seed_from_u64(7);
    let config = build_config("fridge-1", "fridge", "database_budget_bytes = 262144\nsharing = \"personal\"");
    let mut core = AgentCore::restore(config, store, AsyncClient::from_senders(tx), rng, None, at(0, 0)).unwrap();
    grant(&mut core, None, Purpose::Measure, true);
    core.store.enqueue(Purpose::Measure, "ledtrad/v1/fleet/home/reports", b"{}", T0).unwrap();
    assert!(core.handle_tick(at(2, 2)), "the first tick of a day prunes, and says so to the shell");
    let first = core.status().storage;
    assert_eq!((first.budget_bytes, first.pruned_by_budget), (262_144, 0));
    assert!(first.last_prune.is_some(), "the first tick of a day prunes");
    assert!(!core.handle_tick(at(60, 3)), "the next tick of the day, under the budget, does not");
    // Two weeks of impressions, all within their window, past the budget.
    let campaign = ledtrad_protocol::CampaignId::try_new("a-campaign-with-a-long-name").unwrap();
    for i in 0..4_000u64 {
        let offer = OfferId::try_new(format!("an-offer-with-a-long-name-{}", i % 100)).unwrap();
        let row = crate::store::ImpressionRow {
            decision: DecisionId(i + 1),
            offer,
            campaign: campaign.clone(),
            at: T0.plus_secs(i * 300),
        };
        core.store.record_impression(&row).unwrap();
    }
    assert!(core.status().storage.database_bytes > 262_144);
    // Two weeks on, a new day: nothing is past its window, but the database is over its budget.
    let now = at(14 * 86_400, 4);
    assert!(core.handle_tick(now));
    let storage = core.status().storage;
    assert!(storage.pruned_by_budget > 0 && storage.pruned_by_retention == 0, "{storage:?}");
    assert!(storage.database_bytes <= 262_144, "{storage:?}");
    assert_eq!(storage.last_prune, Some(now.wall));
    assert_eq!(core.store.outbox().unwrap().len(), 1, "the unacknowledged report stays");
    assert_eq!(core.ledger().unwrap().len(), 1, "and so does the consent ledger");
    // The export shows what pruning kept of the impressions: their lifetime counts.
    let data = core.my_data(None, now).unwrap();
    let counted: u32 = data.impression_totals.iter().map(|t| t.count).sum();
    assert_eq!(counted as usize + data.impressions.len(), 4_000);
}

#[test]
fn the_applied_catalogue_delivered_again_is_known_by_its_digest_and_a_new_one_still_applies() {
    let (mut core, _rx) = build_core("");
    let fleet = core.config.fleet.clone();
    core.handle_mqtt(publish(Topic::Catalogue(fleet.clone()), example_envelope(), None), at(0, 0));
    core.handle_mqtt(publish(Topic::Catalogue(fleet.clone()), example_envelope(), None), at(1, 1000));
    // Version 1 again with other content: not the applied envelope, so it is opened and refused.
    let other = envelope_with(|t| {
        t.remove("prompt");
    });
    core.handle_mqtt(publish(Topic::Catalogue(fleet), other, None), at(2, 2000));
    let names: Vec<_> = std::iter::from_fn(|| core.poll_event()).map(|e| e.name()).collect();
    assert_eq!(names, ["catalogue", "catalogue"], "the second delivery of the applied envelope is not handled again");
    let status = core.status();
    assert_eq!((status.catalogue_version, status.catalogues_refused), (Some(1), 1));
}

#[test]
fn an_earlier_catalogue_redelivered_after_a_reconnect_is_ignored_but_an_unseen_older_one_is_refused() {
    let (mut core, _rx) = build_core("");
    let topic = || Topic::Catalogue(core_fleet());
    core.handle_mqtt(publish(topic(), versioned_envelope(1, |_| {}), None), at(0, 0));
    core.handle_mqtt(publish(topic(), versioned_envelope(2, |_| {}), None), at(1, 1000));
    // A persistent session's queue can hand back version 1 after the retained version 2.
    core.handle_mqtt(publish(topic(), versioned_envelope(1, |_| {}), None), at(2, 2000));
    let status = core.status();
    assert_eq!((status.catalogue_version, status.catalogues_refused), (Some(2), 0));
    // A version 1 this device never applied is a rollback, refused and counted.
    let other = versioned_envelope(1, |t| {
        t.remove("prompt");
    });
    core.handle_mqtt(publish(topic(), other, None), at(3, 3000));
    let status = core.status();
    assert_eq!((status.catalogue_version, status.catalogues_refused), (Some(2), 1));
    assert!(status.last_refusal.unwrap().contains("not newer"));
}

fn core_fleet() -> ledtrad_protocol::FleetId {
    ledtrad_protocol::FleetId::try_new("home").unwrap()
}
