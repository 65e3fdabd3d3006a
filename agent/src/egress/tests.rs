//! The egress gate's unit tests: delivery, acknowledgements and consent, on a real SQLite
//! outbox and an MQTT client whose requests the tests watch.

use super::*;
use ledtrad_protocol::report::Arm;
use ledtrad_protocol::{CampaignId, DeviceKind, Moment};
use rumqttc::v5::Request;

/// The monotonic time the tests stand at, unless they move it.
const T0: Duration = Duration::from_secs(1_000);

fn build_egress() -> (Egress, flume::Receiver<Request>) {
    let (tx, rx) = flume::bounded(100);
    let client = AsyncClient::from_senders(tx);
    let egress = Egress::new(client, DeviceId::try_new("d1").unwrap(), FleetId::try_new("home").unwrap());
    (egress, rx)
}

fn collector() -> InstanceId {
    InstanceId::try_new("collector").unwrap()
}

/// Connected, with a collector present (its retained presence arrives with the
/// subscription).
fn connect(egress: &mut Egress) {
    egress.set_connected(true);
    egress.on_collector(collector(), COLLECTOR_ONLINE);
}

fn queued(requests: &flume::Receiver<Request>) -> Vec<String> {
    let mut topics = Vec::new();
    while let Ok(request) = requests.try_recv() {
        if let Request::Publish(p) = request {
            topics.push(String::from_utf8_lossy(&p.topic).into_owned());
        }
    }
    topics
}

fn report() -> Report {
    Report {
        campaign: CampaignId::try_new("dairy").unwrap(),
        arm: Arm::Treatment,
        day: 1,
        catalogue_version: 1,
        epsilon: 1.0,
        impressions: 1,
        accepts: 0,
        dismissals: 0,
        conversions: 0,
        id: None,
    }
}

fn build_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("agent.db")).unwrap();
    (dir, store)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// Over any sequence of consent states, connection changes and sends, a message reaches
    /// the MQTT client only while its purpose is granted: reports wait in the outbox while
    /// offline and are dropped if `measure` is gone when they could leave; requests leave
    /// at once or not at all.
    #[test]
    fn a_message_leaves_only_with_its_purposes_consent(
        steps in proptest::collection::vec((0u8..16, proptest::bool::ANY, 0u8..3, 0usize..5), 1..40),
    ) {
        let (mut egress, requests) = build_egress();
        let (_dir, store) = build_store();
        egress.on_collector(collector(), COLLECTOR_ONLINE);
        let mut waiting = 0usize;
        for (bits, connected, kind, interests) in steps {
            let consent = Purpose::ALL
                .into_iter()
                .enumerate()
                .fold(ConsentState::NONE, |s, (i, p)| s.with(p, bits & (1 << i) != 0));
            egress.set_connected(connected);
            egress.set_consent(consent);
            let categories = ["food.dairy", "books.crime", "media.film", "food.drinks", "home.kitchen"];
            let request = OfferRequest {
                device_kind: DeviceKind::Fridge,
                moment: Moment::DoorOpened,
                interests: categories[..interests]
                    .iter()
                    .map(|c| ledtrad_protocol::taxonomy::Category::try_new(c).unwrap())
                    .collect(),
                time_of_day: ledtrad_protocol::offers::TimeOfDay::Evening,
            };
            let mut expected = Vec::new();
            match kind {
                0 => {
                    let result = egress.report(&store, &report(), UnixTime(1));
                    proptest::prop_assert_eq!(result.is_ok(), consent.allows(Purpose::Measure));
                    waiting += usize::from(result.is_ok());
                }
                1 => {
                    let allowed = consent.allows(Purpose::Request)
                        && connected
                        && interests <= ledtrad_protocol::offers::MAX_INTERESTS
                        && (interests == 0 || consent.allows(Purpose::Personalise));
                    proptest::prop_assert_eq!(egress.offer_request(&request, b"c", std::time::Duration::from_secs(1)).is_ok(), allowed);
                    if allowed {
                        expected.push("ledtrad/v1/offers/request".to_string());
                    }
                }
                _ => {
                    egress.status(&status()).unwrap();
                    expected.push("ledtrad/v1/device/d1/status".to_string());
                }
            }
            let handed = egress.deliver(&store, T0).unwrap();
            if connected {
                if consent.allows(Purpose::Measure) {
                    proptest::prop_assert_eq!(handed, waiting);
                    expected.extend(std::iter::repeat_n("ledtrad/v1/fleet/home/reports".to_string(), waiting));
                } else {
                    proptest::prop_assert_eq!(handed, 0);
                }
                waiting = 0;
            }
            let topics = queued(&requests);
            proptest::prop_assert_eq!(&topics, &expected);
            // The client numbers what it took, and the broker acknowledges it all.
            acknowledge_all(&mut egress, &store, &topics);
            proptest::prop_assert_eq!(store.outbox().unwrap().len(), waiting);
        }
    }
}

/// Numbers `topics` as the MQTT client would (QoS 0 offer requests get 0) and acknowledges
/// every QoS 1 one.
fn acknowledge_all(egress: &mut Egress, store: &Store, topics: &[String]) {
    let mut acks = Vec::new();
    for topic in topics {
        if topic == "ledtrad/v1/offers/request" {
            egress.on_numbered(0);
        } else {
            let pkid = 1 + u16::try_from(acks.len()).unwrap();
            egress.on_numbered(pkid);
            acks.push(pkid);
        }
    }
    for pkid in acks {
        ack(egress, store, pkid, true);
    }
}

/// The broker acknowledges `pkid`, and [`LINGER`] passes.
fn ack(egress: &mut Egress, store: &Store, pkid: u16, accepted: bool) {
    let now = T0;
    egress.on_acked(store, pkid, if accepted { Ack::Accepted } else { Ack::Refused }, now).unwrap();
    egress.forget_delivered(store, now + LINGER).unwrap();
}

#[test]
fn a_report_acknowledged_just_before_the_connection_drops_is_sent_again() {
    let (mut egress, requests, _dir, store) = with_reports(2);
    assert_eq!(egress.deliver(&store, T0).unwrap(), 2);
    egress.on_numbered(1);
    egress.on_numbered(2);
    let t = T0;
    let ids: Vec<i64> = store.outbox().unwrap().iter().map(|r| r.id).collect();
    egress.on_acked(&store, 1, Ack::Accepted, t).unwrap();
    egress.on_acked(&store, 2, Ack::Accepted, t + LINGER / 2).unwrap();
    assert_eq!((egress.unacknowledged(), egress.is_delivered(ids[0]), egress.is_delivered(ids[1])), (0, true, true));
    egress.forget_delivered(&store, t + LINGER / 2).unwrap();
    assert_eq!(store.outbox().unwrap().len(), 2, "both wait out the linger");
    assert_eq!((store.outbox_len().unwrap(), egress.acknowledged_kept()), (2, 2));
    egress.forget_delivered(&store, t + LINGER).unwrap();
    assert_eq!(store.outbox().unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), [ids[1]]);
    assert_eq!((store.outbox_len().unwrap(), egress.acknowledged_kept()), (1, 1));
    // The broker crashes: what it acknowledged last may be lost with it, so it goes again.
    assert_eq!(queued(&requests).len(), 2);
    egress.on_disconnected(0);
    assert_eq!(egress.acknowledged_kept(), 0, "not acknowledged any more as far as the status says");
    connect(&mut egress);
    assert!(!egress.is_delivered(ids[1]));
    assert_eq!(egress.deliver(&store, T0).unwrap(), 1);
    assert_eq!(queued(&requests), ["ledtrad/v1/fleet/home/reports"]);
}

/// Reports wait in the outbox while no collector is present: on a broker that lost its
/// sessions, the collector's subscription is gone until it is back, and the broker would
/// acknowledge and drop them. Presence is forgotten when the broker kept no session.
#[test]
fn reports_wait_for_a_collector_and_its_presence_is_forgotten_with_the_session() {
    let (mut egress, requests) = build_egress();
    let (_dir, store) = build_store();
    egress.set_consent(ConsentState::NONE.with(Purpose::Measure, true));
    egress.set_connected(true);
    egress.report(&store, &report(), UnixTime(1)).unwrap();
    egress.status(&status()).unwrap();
    assert_eq!(egress.deliver(&store, T0).unwrap(), 0, "no collector yet");
    assert_eq!(queued(&requests), ["ledtrad/v1/device/d1/status"], "status needs none");
    assert!(!egress.on_collector(collector(), b"maybe"), "an unknown presence is ignored");
    assert!(egress.on_collector(collector(), COLLECTOR_ONLINE), "the first collector lets reports go");
    let other = InstanceId::try_new("collector-2").unwrap();
    assert!(!egress.on_collector(other.clone(), COLLECTOR_ONLINE), "a second changes nothing");
    assert!(!egress.on_collector(collector(), b""));
    assert!(egress.collector_present(), "one is still there");
    assert_eq!(egress.deliver(&store, T0).unwrap(), 1);
    assert_eq!(queued(&requests), ["ledtrad/v1/fleet/home/reports"]);
    egress.on_numbered(0);
    egress.on_numbered(1);
    // The connection drops and comes back to a broker that kept the session: the
    // collector is still known (what changed meanwhile comes with the session).
    egress.on_disconnected(0);
    egress.set_connected(true);
    assert!(egress.collector_present());
    // The broker restarted and lost its state: not acknowledged, so it goes again, but
    // only once a collector says it is back.
    egress.on_disconnected(0);
    egress.set_connected(true);
    egress.on_session_lost();
    assert!(!egress.collector_present());
    assert_eq!(egress.deliver(&store, T0).unwrap(), 0);
    assert!(egress.on_collector(other, COLLECTOR_ONLINE));
    assert_eq!(egress.deliver(&store, T0).unwrap(), 1);
    assert_eq!(store.outbox().unwrap().len(), 1);
}

/// The retain rule of each filter in the SUBSCRIBE requests queued, by filter.
fn subscriptions(requests: &flume::Receiver<Request>) -> Vec<Vec<(String, RetainForwardRule)>> {
    let mut subscribes = Vec::new();
    while let Ok(request) = requests.try_recv() {
        if let Request::Subscribe(s) = request {
            subscribes.push(s.filters.into_iter().map(|f| (f.path, f.retain_forward_rule)).collect());
        }
    }
    subscribes
}

/// Subscriptions are made on every connection: on a session the broker kept, retained
/// messages come only where a subscription was lost, except the collectors' presence while
/// none is known; and while reports wait without a collector, the presence is asked for
/// again now and then (an "online" queued for the device may have been lost with the
/// broker's state).
#[test]
fn subscriptions_are_made_again_and_a_missing_collector_is_asked_for() {
    use RetainForwardRule::{OnEverySubscribe as Every, OnNewSubscribe as New};
    let (mut egress, requests) = build_egress();
    let (_dir, store) = build_store();
    let rules = |subscribes: Vec<Vec<(String, RetainForwardRule)>>| -> Vec<Vec<RetainForwardRule>> {
        subscribes.into_iter().map(|filters| filters.into_iter().map(|(_, rule)| rule).collect()).collect()
    };
    egress.subscribe(false).unwrap();
    let first = subscriptions(&requests);
    let paths: Vec<&str> = first[0].iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "ledtrad/v1/fleet/home/catalogue",
            "ledtrad/v1/fleet/home/model",
            "ledtrad/v1/device/d1/offers",
            ALL_COLLECTORS_FILTER
        ]
    );
    assert_eq!(rules(first), [[Every, Every, Every, Every]], "a new session: everything retained");
    egress.subscribe(true).unwrap();
    assert_eq!(rules(subscriptions(&requests)), [[New, New, New, Every]], "no collector known yet");
    egress.on_collector(collector(), COLLECTOR_ONLINE);
    egress.subscribe(true).unwrap();
    assert_eq!(rules(subscriptions(&requests)), [[New, New, New, New]], "a collector known: only what was lost");

    // Asked for only while connected, with reports waiting, and no collector known.
    egress.set_consent(ConsentState::NONE.with(Purpose::Measure, true));
    egress.set_connected(true);
    egress.report(&store, &report(), UnixTime(1)).unwrap();
    egress.on_collector(collector(), b"");
    assert!(!egress.ask_for_collectors().unwrap(), "nothing kept back yet");
    assert_eq!(egress.deliver(&store, T0).unwrap(), 0);
    assert!(egress.ask_for_collectors().unwrap());
    assert_eq!(rules(subscriptions(&requests)), [[Every]]);
    egress.on_disconnected(0);
    assert!(!egress.ask_for_collectors().unwrap(), "offline");
    egress.set_connected(true);
    egress.on_collector(collector(), COLLECTOR_ONLINE);
    assert!(!egress.ask_for_collectors().unwrap(), "a collector is known");
    assert_eq!(egress.deliver(&store, T0).unwrap(), 1);
    egress.on_collector(collector(), b"");
    assert_eq!(egress.deliver(&store, T0).unwrap(), 0, "handed over already");
    assert!(!egress.ask_for_collectors().unwrap(), "none waits any more");
    assert!(subscriptions(&requests).is_empty());
}

/// An egress with `measure` granted, connected, and `reports` reports queued.
fn with_reports(reports: usize) -> (Egress, flume::Receiver<Request>, tempfile::TempDir, Store) {
    let (mut egress, requests) = build_egress();
    let (dir, store) = build_store();
    egress.set_consent(ConsentState::NONE.with(Purpose::Measure, true));
    connect(&mut egress);
    for _ in 0..reports {
        egress.report(&store, &report(), UnixTime(1)).unwrap();
    }
    (egress, requests, dir, store)
}

#[test]
fn a_report_leaves_the_outbox_only_when_the_broker_acknowledges_it() {
    let (mut egress, requests, _dir, store) = with_reports(1);
    egress.status(&status()).unwrap();
    assert_eq!(egress.deliver(&store, T0).unwrap(), 1);
    assert_eq!(queued(&requests).len(), 2);
    assert_eq!(store.outbox().unwrap().len(), 1, "handed over is not delivered");
    // Numbered 7 (the status) and 8 (the report); handed over once per connection.
    egress.on_numbered(7);
    egress.on_numbered(8);
    assert_eq!(egress.deliver(&store, T0).unwrap(), 0);
    ack(&mut egress, &store, 7, true);
    assert_eq!(store.outbox().unwrap().len(), 1, "the status's acknowledgement is not the report's");
    ack(&mut egress, &store, 8, true);
    assert!(store.outbox().unwrap().is_empty());
    assert_eq!((egress.acknowledged(), egress.unacknowledged()), ((1, 0), 0));
    // A late duplicate acknowledgement changes nothing.
    ack(&mut egress, &store, 8, true);
}

#[test]
fn reports_unacknowledged_when_the_connection_drops_are_handed_over_again() {
    let (mut egress, requests, _dir, store) = with_reports(3);
    assert_eq!(egress.deliver(&store, T0).unwrap(), 3);
    assert_eq!(queued(&requests).len(), 3);
    // The first went out and was acknowledged, the second went out, the third was still in
    // the client's queue when the connection dropped, and the client discarded it.
    egress.on_numbered(1);
    egress.on_numbered(2);
    ack(&mut egress, &store, 1, true);
    egress.on_disconnected(1);
    assert_eq!(egress.deliver(&store, T0).unwrap(), 0, "nothing is handed over while offline");
    assert_eq!(store.outbox().unwrap().len(), 2);
    connect(&mut egress);
    assert_eq!(egress.deliver(&store, T0).unwrap(), 2);
    assert_eq!(queued(&requests).len(), 2);
    // A stale acknowledgement from the old connection does not delete anything.
    ack(&mut egress, &store, 2, true);
    assert_eq!(store.outbox().unwrap().len(), 2);
    egress.on_numbered(3);
    egress.on_numbered(4);
    ack(&mut egress, &store, 4, true);
    ack(&mut egress, &store, 3, true);
    assert!(store.outbox().unwrap().is_empty());
}

#[test]
fn a_publish_taken_after_the_drop_keeps_its_place() {
    // The client discarded one publish (the first report); the second was handed over
    // after the drop but before the agent heard of it, and goes on the next connection.
    let (mut egress, requests, _dir, store) = with_reports(1);
    assert_eq!(egress.deliver(&store, T0).unwrap(), 1);
    egress.report(&store, &report(), UnixTime(2)).unwrap();
    assert_eq!(egress.deliver(&store, T0).unwrap(), 1);
    assert_eq!(queued(&requests).len(), 2);
    egress.on_disconnected(1);
    connect(&mut egress);
    // Only the discarded one is handed over again; the other is numbered when it goes.
    assert_eq!(egress.deliver(&store, T0).unwrap(), 1);
    egress.on_numbered(1);
    egress.on_numbered(2);
    ack(&mut egress, &store, 1, true);
    ack(&mut egress, &store, 2, true);
    assert!(store.outbox().unwrap().is_empty());
}

#[test]
fn a_held_publish_is_numbered_when_it_goes_and_refusals_are_dropped() {
    let (mut egress, _requests, _dir, store) = with_reports(2);
    assert_eq!(egress.deliver(&store, T0).unwrap(), 2);
    egress.on_held(5);
    egress.on_numbered(6);
    egress.on_numbered(5);
    ack(&mut egress, &store, 6, false);
    ack(&mut egress, &store, 5, true);
    assert!(store.outbox().unwrap().is_empty());
    assert_eq!(egress.acknowledged(), (1, 1));
}

#[test]
fn a_report_no_one_subscribed_to_goes_again_later() {
    let (mut egress, requests, _dir, store) = with_reports(1);
    assert_eq!(egress.deliver(&store, T0).unwrap(), 1);
    egress.on_numbered(1);
    egress.on_acked(&store, 1, Ack::NoSubscribers, T0).unwrap();
    assert_eq!(store.outbox().unwrap().len(), 1, "the broker dropped it: it stays");
    assert_eq!(egress.deliver(&store, T0).unwrap(), 0, "not at once");
    assert_eq!(egress.deliver(&store, T0 + NO_SUBSCRIBER_RETRY).unwrap(), 1, "once the wait has passed");
    egress.on_numbered(2);
    egress.on_acked(&store, 2, Ack::NoSubscribers, T0 + NO_SUBSCRIBER_RETRY).unwrap();
    // After a reconnect (the collector may be back) it goes.
    egress.on_disconnected(0);
    connect(&mut egress);
    assert_eq!(egress.deliver(&store, T0).unwrap(), 1);
    assert_eq!(queued(&requests).len(), 3);
    egress.on_numbered(3);
    ack(&mut egress, &store, 3, true);
    assert!(store.outbox().unwrap().is_empty());
}

#[test]
fn a_backlog_goes_in_steps() {
    let (mut egress, requests, _dir, store) = with_reports(MAX_UNACKNOWLEDGED + 8);
    assert_eq!(egress.deliver(&store, T0).unwrap(), MAX_UNACKNOWLEDGED);
    assert_eq!(queued(&requests).len(), MAX_UNACKNOWLEDGED);
    egress.on_numbered(1);
    ack(&mut egress, &store, 1, true);
    assert_eq!(egress.deliver(&store, T0).unwrap(), 1);
    assert_eq!(store.outbox().unwrap().len(), MAX_UNACKNOWLEDGED + 7);
}

fn status() -> ledtrad_protocol::status::DeviceStatus {
    ledtrad_protocol::status::DeviceStatus {
        device: DeviceId::try_new("d1").unwrap(),
        fleet: FleetId::try_new("home").unwrap(),
        state: ledtrad_protocol::status::Connection::Online,
        agent_version: "test".into(),
        catalogue_version: None,
        last_refusal: None,
        model_version: None,
        last_model_refusal: None,
        rollout_waiting: None,
    }
}

#[test]
fn nothing_leaves_for_a_purpose_without_consent() {
    let (mut egress, eventloop) = build_egress();
    let (_dir, store) = build_store();
    let request = OfferRequest {
        device_kind: DeviceKind::Fridge,
        moment: Moment::DoorOpened,
        interests: vec![],
        time_of_day: ledtrad_protocol::offers::TimeOfDay::Morning,
    };
    assert_eq!(egress.report(&store, &report(), UnixTime(1)), Err(EgressError::NoConsent(Purpose::Measure)));
    egress.set_consent(ConsentState::all().with(Purpose::Request, false));
    assert_eq!(
        egress.offer_request(&request, b"c", std::time::Duration::from_secs(1)),
        Err(EgressError::NoConsent(Purpose::Request))
    );
    assert_eq!(egress.blocked(), 2);
    assert!(queued(&eventloop).is_empty() && store.outbox().unwrap().is_empty());
    // With `measure` but offline, the report waits in the outbox, not in the client.
    egress.set_consent(ConsentState::NONE.with(Purpose::Measure, true));
    egress.report(&store, &report(), UnixTime(1)).unwrap();
    assert_eq!(egress.deliver(&store, T0).unwrap(), 0);
    assert!(queued(&eventloop).is_empty(), "nothing consent-bearing waits in the client while offline");
    assert_eq!(store.outbox().unwrap().len(), 1);
    connect(&mut egress);
    assert_eq!(egress.deliver(&store, T0).unwrap(), 1);
    assert_eq!(queued(&eventloop), vec!["ledtrad/v1/fleet/home/reports".to_string()]);
    assert_eq!(store.outbox().unwrap().len(), 1, "it stays until the broker acknowledges it");
}
