//! The first end-to-end path: an operator pushes a signed catalogue, agents apply it, and a
//! fridge signal becomes an offer on its screen — against the embedded broker, or the broker
//! named by `LEDTRAD_TEST_BROKER` (CI runs this suite against Mosquitto too).

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use ledtrad_operator::status::watch_statuses;
use ledtrad_operator::SignOptions;
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::envelope::Rollout;
use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
use ledtrad_protocol::status::Connection;
use ledtrad_protocol::{DeviceKind, FleetId};
use ledtrad_tests::{
    broker, clear_catalogue, envelope, init_logs, now, operator_key, publish_catalogue, push, revoke, traced_offer,
    unique, wait_until, TestAgent,
};
use serde_json::{json, Value};

fn fleet() -> FleetId {
    FleetId::try_new(unique("fleet")).unwrap()
}

async fn grant(http: &reqwest::Client, agent: &TestAgent, purpose: &str, granted: bool) -> Value {
    let response = http
        .put(format!("{}/v1/consent/{purpose}", agent.api()))
        .json(&json!({ "granted": granted, "text_version": "2026-11", "source": "device_ui" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn signal(http: &reqwest::Client, agent: &TestAgent, feature: &str, value: f64) -> Value {
    let response = http
        .post(format!("{}/v1/signals", agent.api()))
        .json(&json!({ "signals": [{ "feature": feature, "value": value }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn offer(http: &reqwest::Client, agent: &TestAgent, moment: &str) -> (u16, Option<Value>) {
    let response = http.get(format!("{}/v1/offer?moment={moment}", agent.api())).send().await.unwrap();
    let status = response.status().as_u16();
    let body = if status == 200 { Some(response.json().await.unwrap()) } else { None };
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_agent_applies_the_pushed_catalogue_and_says_so_on_its_status() {
    init_logs();
    let (key, fleet) = (operator_key(1), fleet());
    let mut agents = Vec::new();
    for kind in DeviceKind::ALL {
        agents.push(TestAgent::start(kind, &fleet, &key).await);
    }
    for agent in &agents {
        agent.wait_for("connection", |s| s.connected).await;
    }
    push(&key, &fleet, 1).await;
    for agent in &agents {
        let status = agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;
        assert_eq!(status.offers, 15);
    }
    // The operator's view, from the retained status topics on the broker.
    let devices: BTreeSet<_> = agents.iter().map(|a| a.config.device.clone()).collect();
    let statuses = watch_statuses(&broker(), &unique("watch"), Duration::from_secs(10), |seen| {
        devices.iter().all(|d| seen.get(d).is_some_and(|s| s.catalogue_version == Some(1)))
    })
    .await
    .unwrap();
    for device in &devices {
        let status = &statuses[device];
        assert_eq!((status.state, status.catalogue_version), (Connection::Online, Some(1)), "{device}");
    }
    // What `ledtrad-op status` prints: the fleet's devices by version (other fleets' left out).
    let summary = ledtrad_operator::status::summarise(&statuses, &fleet);
    assert_eq!((summary.devices, summary.online), (devices.len(), devices.len()));
    assert_eq!(summary.catalogue_versions.get("1"), Some(&devices.len()));
    // A later version replaces it everywhere.
    push(&key, &fleet, 2).await;
    for agent in &agents {
        agent.wait_for("version 2", |s| s.catalogue_version == Some(2)).await;
    }
    // A stopped agent says so on its retained status, keeping the version it had applied.
    let stopped = agents.pop().unwrap();
    let device = stopped.config.device.clone();
    let handle = stopped.handle();
    stopped.shutdown().await;
    assert!(handle.status().await.is_err(), "the handle reports a stopped agent");
    let statuses = watch_statuses(&broker(), &unique("watch"), Duration::from_secs(10), |seen| {
        seen.get(&device).is_some_and(|s| s.state == Connection::Offline)
    })
    .await
    .unwrap();
    assert_eq!((statuses[&device].state, statuses[&device].catalogue_version), (Connection::Offline, Some(2)));
    ledtrad_operator::publish_retained(
        &broker(),
        &ledtrad_protocol::topic::Topic::Status(device),
        Vec::new(),
        &unique("clean"),
    )
    .await
    .unwrap();
    for agent in agents {
        agent.stop().await;
    }
    clear_catalogue(&fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_butter_signal_becomes_an_offer_with_a_coarse_why_and_why_not() {
    init_logs();
    let (key, fleet, http) = (operator_key(1), fleet(), reqwest::Client::new());
    let agent = TestAgent::start(DeviceKind::Fridge, &fleet, &key).await;
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;

    let consent = grant(&http, &agent, "personalise", true).await;
    assert_eq!(consent["personalise"], true);
    assert_eq!(consent["measure"], false);
    let outcome = signal(&http, &agent, "fridge.butter.level", 0.05).await;
    assert_eq!(outcome["aggregated"], 1);

    let (status, body) = offer(&http, &agent, "door_opened").await;
    assert_eq!(status, 200);
    let body = body.unwrap();
    assert_eq!(body["offer"]["offer"], "butter-refill");
    assert!(body["offer"]["question"].as_str().unwrap().ends_with('?'));
    assert_eq!(body["offer"]["why"], "Because dairy runs low often in this home.");
    assert_eq!(body["offer"]["personalised"], true);

    // Why and why not.
    let id = body["decision"].as_u64().unwrap();
    let decision: Value =
        http.get(format!("{}/v1/decisions/{id}", agent.api())).send().await.unwrap().json().await.unwrap();
    let candidates = decision["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 15);
    let film = candidates.iter().find(|c| c["offer"] == "evening-film").unwrap();
    assert_eq!(film["verdict"]["rejected"]["reason"]["device_kind"]["kind"], "fridge");
    let used = decision["features_used"].as_array().unwrap();
    assert!(used.iter().any(|u| u["feature"] == "fridge.butter.level" && u["allowed_by"] == "personalise"));

    // Feedback once; a second answer is a conflict that says why.
    let fb = json!({ "decision": id, "kind": "accepted" });
    let r = http.post(format!("{}/v1/feedback", agent.api())).json(&fb).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = http.post(format!("{}/v1/feedback", agent.api())).json(&fb).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let err: Value = r.json().await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("already has feedback"));

    // A moment on which nothing fits: 204 with the decision id for "why not".
    let r = http.get(format!("{}/v1/offer?moment=book_finished", agent.api())).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers().get("ledtrad-decision").is_some());
    agent.stop().await;
    clear_catalogue(&fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_personalise_stops_personalised_offers_on_the_very_next_request() {
    init_logs();
    let (key, fleet, http) = (operator_key(1), fleet(), reqwest::Client::new());
    let agent = TestAgent::start(DeviceKind::Fridge, &fleet, &key).await;
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;
    grant(&http, &agent, "personalise", true).await;
    signal(&http, &agent, "fridge.milk.level", 0.1).await;
    let (_, body) = offer(&http, &agent, "door_opened").await;
    assert_eq!(body.unwrap()["offer"]["personalised"], true);

    let consent = grant(&http, &agent, "personalise", false).await;
    assert_eq!(consent["personalise"], false);
    // The very next request: no personalised offer, and the trace says why.
    let traced = traced_offer(&agent.handle(), ledtrad_protocol::Moment::DoorOpened).await;
    assert!(traced.shown.as_ref().is_none_or(|s| !s.personalised));
    assert!(traced.features_used.iter().all(|u| u.allowed_by.is_none()));
    let milk = traced.candidates.iter().find(|c| c.offer.as_str() == "milk-subscription").unwrap();
    assert_eq!(
        milk.verdict,
        ledtrad_protocol::decision::Verdict::Rejected {
            reason: ledtrad_protocol::decision::Rejection::NeedsConsent {
                purpose: ledtrad_protocol::Purpose::Personalise
            }
        }
    );
    // The reading was purged, and new personal signals are not taken without consent.
    let outcome = signal(&http, &agent, "fridge.milk.level", 0.1).await;
    assert_eq!(outcome["dropped_no_consent"], 1);
    let ledger = agent.handle().ledger().await.unwrap();
    assert_eq!(ledger.iter().map(|r| r.granted).collect::<Vec<_>>(), vec![true, false]);
    agent.stop().await;
    clear_catalogue(&fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_catalogues_are_refused_and_the_last_good_one_stays() {
    init_logs();
    let (key, fleet) = (operator_key(1), fleet());
    let agent = TestAgent::start(DeviceKind::Fridge, &fleet, &key).await;
    push(&key, &fleet, 5).await;
    agent.wait_for("version 5", |s| s.catalogue_version == Some(5)).await;
    let now = now();
    let day = 86_400;
    let other_fleet = FleetId::try_new("someone-else").unwrap();
    let cases = [
        (envelope(&operator_key(2), &fleet, 6, now, now.plus_secs(day)), "unknown key 'op-2'"),
        (
            {
                // Same key id, wrong key: the signature cannot verify.
                let mut impostor = operator_key(3);
                impostor.id = key.id.clone();
                envelope(&impostor, &fleet, 6, now, now.plus_secs(day))
            },
            "bad signature",
        ),
        (envelope(&key, &fleet, 4, now, now.plus_secs(day)), "version 4 is not newer than the applied version 5"),
        (envelope(&key, &other_fleet, 6, now, now.plus_secs(day)), "fleet 'someone-else'"),
        (
            envelope(
                &key,
                &fleet,
                6,
                ledtrad_protocol::UnixTime(now.secs() - 2 * day),
                ledtrad_protocol::UnixTime(now.secs() - day),
            ),
            "expired",
        ),
    ];
    for (i, (payload, why)) in cases.into_iter().enumerate() {
        publish_catalogue(&fleet, payload).await;
        let refused = i as u64 + 1;
        let status = agent.wait_for(why, |s| s.catalogues_refused == refused).await;
        assert_eq!(status.catalogue_version, Some(5));
        let reason = status.last_refusal.unwrap();
        assert!(reason.contains(why), "{reason} does not say {why:?}");
    }
    // The operator sees the refusal on the device's retained status.
    let device = agent.config.device.clone();
    let statuses = watch_statuses(&broker(), &unique("watch"), Duration::from_secs(10), |seen| {
        seen.get(&device).is_some_and(|s| s.last_refusal.as_deref().is_some_and(|r| r.contains("expired")))
    })
    .await
    .unwrap();
    assert_eq!(statuses[&device].catalogue_version, Some(5));
    // And the device still decides from version 5.
    let decision = agent.handle().offer(ledtrad_protocol::Moment::DoorOpened).await.unwrap().decision;
    assert_eq!(decision.catalogue_version, Some(5));
    agent.stop().await;
    clear_catalogue(&fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_are_counted_and_never_crash_the_agent() {
    init_logs();
    let (key, fleet) = (operator_key(1), fleet());
    let agent = TestAgent::start(DeviceKind::LockScreen, &fleet, &key).await;
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;
    let garbage: Vec<Vec<u8>> = vec![
        b"not a catalogue".to_vec(),
        vec![0xff; 64],
        b"{\"json\": true}".to_vec(),
        vec![0x00],
        vec![0x05, b'o', b'p', b'-', b'1', 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
    ];
    let n = garbage.len() as u64;
    for payload in garbage {
        publish_catalogue(&fleet, payload).await;
    }
    let status = agent.wait_for("malformed payloads counted", |s| s.catalogues_malformed == n).await;
    assert_eq!(status.catalogue_version, Some(1));
    assert!(status.last_refusal.unwrap().contains("catalogue envelope"));
    // A good push still applies afterwards.
    push(&key, &fleet, 2).await;
    agent.wait_for("version 2", |s| s.catalogue_version == Some(2)).await;
    agent.stop().await;
    clear_catalogue(&fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_api_input_gets_a_clear_error_and_changes_nothing() {
    init_logs();
    let (key, fleet, http) = (operator_key(1), fleet(), reqwest::Client::new());
    let agent = TestAgent::start(DeviceKind::Ereader, &fleet, &key).await;
    let api = agent.api();
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (http.get(format!("{api}/v1/offer?moment=lunch")), 400, "moment \"lunch\": unknown moment"),
        (http.get(format!("{api}/v1/offer")), 400, "missing ?moment="),
        (
            http.post(format!("{api}/v1/feedback"))
                .header("content-type", "application/json")
                .body("{\"decision\": 1}"),
            400,
            "missing field `kind`",
        ),
        (
            http.post(format!("{api}/v1/feedback")).json(&json!({"decision": 999, "kind": "accepted"})),
            404,
            "decision 999 is unknown",
        ),
        (
            http.put(format!("{api}/v1/consent/share_with_partners"))
                .json(&json!({"granted": true, "text_version": "1"})),
            400,
            "unknown consent purpose",
        ),
        (
            http.put(format!("{api}/v1/consent/measure")).json(&json!({"granted": true, "text_version": ""})),
            400,
            "text_version",
        ),
        (
            http.put(format!("{api}/v1/consent/measure")).header("content-type", "application/json").body("yes"),
            400,
            "consent body: not valid JSON",
        ),
        // A web page on the device cannot post JSON without a preflight, nor use another name.
        (
            http.put(format!("{api}/v1/consent/personalise"))
                .header("content-type", "text/plain")
                .body("{\"granted\": true, \"text_version\": \"1\"}"),
            415,
            "content-type: application/json",
        ),
        (http.get(format!("{api}/v1/consent")).header("host", "evil.example:7878"), 403, "Host \"evil.example:7878\""),
        (
            http.post(format!("{api}/v1/signals"))
                .json(&json!({"signals": [{"feature": "ereader.heart_rate", "value": 1}]})),
            400,
            "unknown feature \"ereader.heart_rate\"",
        ),
        (http.get(format!("{api}/v1/decisions/abc")), 400, "not a number"),
        (http.get(format!("{api}/v2/anything")), 404, "no such endpoint"),
        // Hostile bodies: each is refused whole, with what is wrong, and nothing applied.
        (
            http.put(format!("{api}/v1/consent/personalise"))
                .header("content-type", "application/json")
                .body("{\"granted\": false, \"granted\": true, \"text_version\": \"1\"}"),
            400,
            "duplicate field `granted`",
        ),
        (
            http.post(format!("{api}/v1/signals")).header("content-type", "application/json").body(format!(
                "{}1{}",
                "[".repeat(10_000),
                "]".repeat(10_000)
            )),
            400,
            "signals body",
        ),
        (
            http.post(format!("{api}/v1/feedback"))
                .header("content-type", "application/json")
                .body("{\"decision\": 1e400, \"kind\": \"accepted\"}"),
            400,
            "feedback body",
        ),
        (
            http.post(format!("{api}/v1/feedback"))
                .header("content-type", "application/json")
                .body("{\"decision\": 99999999999999999999999, \"kind\": \"accepted\"}"),
            400,
            "feedback body",
        ),
        (
            http.put(format!("{api}/v1/consent/personalise"))
                .header("content-type", "application/json")
                .body(b"{\"granted\": true, \"text_version\": \"\xff\xfe\"}".to_vec()),
            400,
            "consent body",
        ),
        // Just over the limit: the agent answers from the length alone, and a far larger body
        // would still be on its way, so the client would see a broken pipe instead.
        (
            http.post(format!("{api}/v1/signals")).header("content-type", "application/json").body(format!(
                "{{\"signals\": [{}]}}",
                "{\"feature\": \"ereader.session_minutes\", \"value\": 1},".repeat(1_400)
            )),
            413,
            "over the 65536 bytes the local API takes",
        ),
    ];
    for (request, status, words) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(words), "{error:?} does not say {words:?}");
    }
    let consent: Value = http.get(format!("{api}/v1/consent")).send().await.unwrap().json().await.unwrap();
    for purpose in ["personalise", "request", "measure", "improve"] {
        assert_eq!(consent[purpose], false, "{purpose}");
    }
    assert_eq!(consent["purposes_version"], 1);
    assert_eq!(
        consent["people"],
        json!({"owner": {"child": false, "personalise": false, "request": false, "measure": false, "improve": false}})
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restarts_with_its_catalogue_consent_and_caps() {
    init_logs();
    let (key, fleet, http) = (operator_key(1), fleet(), reqwest::Client::new());
    let agent = TestAgent::start(DeviceKind::Fridge, &fleet, &key).await;
    push(&key, &fleet, 3).await;
    agent.wait_for("version 3", |s| s.catalogue_version == Some(3)).await;
    grant(&http, &agent, "personalise", true).await;
    signal(&http, &agent, "fridge.butter.level", 0.05).await;
    let (_, body) = offer(&http, &agent, "door_opened").await;
    let body = body.unwrap();
    assert_eq!(body["offer"]["offer"], "butter-refill");
    // "Not for me": dairy is suppressed, and that too must survive the restart.
    let r = http
        .post(format!("{}/v1/feedback", agent.api()))
        .json(&json!({"decision": body["decision"], "kind": "not_for_me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The broker forgets the catalogue; the agent's database does not.
    clear_catalogue(&fleet).await;
    let agent = agent.restart().await;
    let handle = agent.handle();
    let status = handle.status().await.unwrap();
    assert_eq!(status.catalogue_version, Some(3));
    assert!(handle.consent().await.unwrap().allows(ledtrad_protocol::Purpose::Personalise));
    // butter-refill's cap of one a day survived the restart.
    handle
        .signals(vec![ledtrad_protocol::signal::Signal {
            feature: ledtrad_protocol::feature::FeatureName::try_new("fridge.butter.level").unwrap(),
            value: 0.05,
        }])
        .await
        .unwrap();
    let decision = traced_offer(&handle, ledtrad_protocol::Moment::DoorOpened).await;
    let refill = decision.candidates.iter().find(|c| c.offer.as_str() == "butter-refill").unwrap();
    assert!(format!("{:?}", refill.verdict).contains("DailyCap"), "{:?}", refill.verdict);
    signal(&http, &agent, "fridge.milk.level", 0.1).await;
    let decision = traced_offer(&handle, ledtrad_protocol::Moment::DoorOpened).await;
    let milk = decision.candidates.iter().find(|c| c.offer.as_str() == "milk-subscription").unwrap();
    assert!(format!("{:?}", milk.verdict).contains("CategorySuppressed"), "{:?}", milk.verdict);
    agent.stop().await;
}

/// rumqttd hands a new QoS 1 subscriber only as many retained messages as it has in-flight
/// slots (about 100) and drops the rest; the status watcher subscribes at QoS 0 so an operator
/// sees every device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_status_watch_sees_more_than_a_hundred_retained_statuses() {
    init_logs();
    let (client, mut eventloop) = ledtrad_operator::mqtt::connect(&broker(), &unique("many"));
    let fleet = fleet();
    let devices: Vec<ledtrad_protocol::DeviceId> =
        (0..150).map(|i| ledtrad_protocol::DeviceId::try_new(format!("{fleet}-d{i}")).unwrap()).collect();
    let publish_all = |payload: fn(&ledtrad_protocol::DeviceId, &FleetId) -> Vec<u8>| {
        let client = client.clone();
        let devices = devices.clone();
        let fleet = fleet.clone();
        async move {
            for device in &devices {
                let topic = ledtrad_protocol::topic::Topic::Status(device.clone()).name();
                client
                    .publish(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, true, payload(device, &fleet))
                    .await
                    .unwrap();
            }
        }
    };
    let status = |device: &ledtrad_protocol::DeviceId, fleet: &FleetId| {
        ledtrad_protocol::codec::to_json(&ledtrad_protocol::status::DeviceStatus {
            device: device.clone(),
            fleet: fleet.clone(),
            state: Connection::Online,
            agent_version: "test".into(),
            catalogue_version: Some(9),
            last_refusal: None,
            model_version: None,
            last_model_refusal: None,
            rollout_waiting: None,
        })
    };
    let pump = async {
        let mut acks = 0;
        while acks < devices.len() {
            if let Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::PubAck(_))) =
                eventloop.poll().await
            {
                acks += 1;
            }
        }
        eventloop
    };
    let (_, mut eventloop) = tokio::join!(publish_all(status), pump);
    let wanted: BTreeSet<_> = devices.iter().cloned().collect();
    let seen = watch_statuses(&broker(), &unique("watch"), Duration::from_secs(15), |seen| {
        wanted.iter().all(|d| seen.contains_key(d))
    })
    .await
    .unwrap();
    let found = wanted.iter().filter(|d| seen.contains_key(*d)).count();
    assert_eq!(found, devices.len());
    // Clear them from the broker.
    let pump = async {
        let mut acks = 0;
        while acks < devices.len() {
            if let Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::PubAck(_))) =
                eventloop.poll().await
            {
                acks += 1;
            }
        }
    };
    tokio::join!(publish_all(|_, _| Vec::new()), pump);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_leave_only_with_measure_consent() {
    init_logs();
    let (key, fleet, http) = (operator_key(1), fleet(), reqwest::Client::new());
    // The operator listens on the fleet's report topic.
    let mut reports = ledtrad_tests::ReportListener::start(&fleet).await;

    let agent = TestAgent::start(DeviceKind::Fridge, &fleet, &key).await;
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1", |s| s.catalogue_version == Some(1) && s.connected).await;
    // (With `personalise` granted the fridge has no consent prompt to put first.)
    grant(&http, &agent, "personalise", true).await;

    // Without `measure`, shown offers are not counted and nothing is sent.
    let (status, _) = offer(&http, &agent, "door_opened").await;
    assert_eq!(status, 200);
    assert_eq!(agent.handle().flush_reports().await.unwrap(), 0);
    // With it, the day's counts leave as a report without any device id. (One day later each
    // time: the contextual offer's cap is one a day.)
    grant(&http, &agent, "measure", true).await;
    agent.clock.advance(86_400);
    let (status, _) = offer(&http, &agent, "door_opened").await;
    assert_eq!(status, 200);
    assert_eq!(agent.handle().flush_reports().await.unwrap(), 1);
    let payload = reports.next(Duration::from_secs(10)).await.unwrap();
    let report: Value = serde_json::from_slice(&payload).unwrap();
    assert!(
        report.get("device").is_none() && !String::from_utf8_lossy(&payload).contains(agent.config.device.as_str())
    );
    assert!(report["campaign"].is_string());
    assert_eq!(report["epsilon"], 1.0);
    // The agent reports a completed day by itself: counts for today wait, yesterday's leave.
    agent.clock.advance(86_400);
    let (status, _) = offer(&http, &agent, "door_opened").await;
    assert_eq!(status, 200);
    agent.handle().tick().await.unwrap();
    assert!(reports.next(Duration::from_millis(300)).await.is_none(), "today is not over");
    agent.clock.advance(86_400);
    agent.handle().tick().await.unwrap();
    assert!(reports.next(Duration::from_secs(10)).await.is_some());
    // Revoked: counts gathered before the revocation are dropped, not sent.
    agent.clock.advance(86_400);
    let (status, _) = offer(&http, &agent, "door_opened").await;
    assert_eq!(status, 200);
    grant(&http, &agent, "measure", false).await;
    assert_eq!(agent.handle().flush_reports().await.unwrap(), 0);
    grant(&http, &agent, "measure", true).await;
    assert_eq!(agent.handle().flush_reports().await.unwrap(), 0);
    assert!(reports.next(Duration::from_millis(500)).await.is_none(), "no further report");
    agent.stop().await;
    clear_catalogue(&fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reconnects_after_its_connection_drops_and_follows_new_catalogues() {
    init_logs();
    let (key, fleet) = (operator_key(1), fleet());
    let proxy = ledtrad_tests::CutProxy::start().await;
    let agent = TestAgent::start_via(DeviceKind::Fridge, &fleet, &key, &proxy.url).await;
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1", |s| s.catalogue_version == Some(1) && s.connected).await;
    for round in 2..=3u64 {
        proxy.cut();
        agent.wait_for("the drop to be noticed", |s| !s.connected).await;
        // Offline, the agent keeps deciding from its catalogue.
        let decision = agent.handle().offer(ledtrad_protocol::Moment::DoorOpened).await.unwrap().decision;
        assert_eq!(decision.catalogue_version, Some(round - 1));
        push(&key, &fleet, round).await;
        let status = agent
            .wait_for("reconnect and the new version", |s| s.connected && s.catalogue_version == Some(round))
            .await;
        assert_eq!(status.catalogues_refused, 0);
    }
    agent.stop().await;
    clear_catalogue(&fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_fridge_uses_the_strictest_consent_of_the_people_it_serves() {
    init_logs();
    let (key, fleet, http) = (operator_key(1), fleet(), reqwest::Client::new());
    let agent = TestAgent::start(DeviceKind::Fridge, &fleet, &key).await;
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;
    let api = agent.api();
    let put = |path: &str, body: Value| {
        let request = http.put(format!("{api}{path}")).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let grant = json!({"granted": true, "text_version": "2026-11", "source": "device_ui"});
    // The owner alone: their consent applies.
    let (status, view) = put("/v1/consent/personalise", grant.clone()).await;
    assert_eq!((status, &view["sharing"], &view["personalise"]), (200, &json!("shared"), &json!(true)));
    // Bo joins and has not granted: the fridge may no longer personalise.
    let (_, view) = put("/v1/people/bo", json!({"child": false})).await;
    assert_eq!(view["personalise"], false);
    assert_eq!(signal(&http, &agent, "fridge.butter.level", 0.1).await["dropped_no_consent"], 1);
    let (_, view) = put("/v1/people/bo/consent/personalise", grant.clone()).await;
    assert_eq!(view["personalise"], true);
    assert_eq!(view["people"]["bo"]["personalise"], true);
    // A child in the household can never grant it, so the household as a whole does not.
    let (_, view) = put("/v1/people/kim", json!({"child": true})).await;
    assert_eq!(view["personalise"], false);
    let (status, err) = put("/v1/people/kim/consent/personalise", grant.clone()).await;
    assert_eq!(status, 400);
    assert!(err["error"]
        .as_str()
        .unwrap()
        .contains("person 'kim' is a child profile, which can never grant 'personalise'"));
    let (status, view) = put("/v1/people/kim/consent/measure", grant.clone()).await;
    assert_eq!((status, &view["people"]["kim"]["measure"]), (200, &json!(true)));
    // When the device maker reports who is present, only they count.
    let (_, view) = put("/v1/presence", json!({"present": ["owner", "bo"]})).await;
    assert_eq!(view["personalise"], true);
    assert_eq!(signal(&http, &agent, "fridge.butter.level", 0.1).await["aggregated"], 1);
    let (_, view) = put("/v1/presence", json!({"present": ["owner", "kim"]})).await;
    assert_eq!(view["personalise"], false);
    // Losing it purged the reading: granting again does not bring it back.
    put("/v1/presence", json!({"present": ["owner"]})).await;
    let decision = traced_offer(&agent.handle(), ledtrad_protocol::Moment::DoorOpened).await;
    let refill = decision.candidates.iter().find(|c| c.offer.as_str() == "butter-refill").unwrap();
    assert!(matches!(
        refill.verdict,
        ledtrad_protocol::decision::Verdict::Rejected { reason: ledtrad_protocol::decision::Rejection::NoData { .. } }
    ));
    let (_, view) = put("/v1/presence", json!({"present": null})).await;
    assert_eq!((&view["personalise"], &view["present"]), (&json!(false), &Value::Null));
    // Consent for someone who is not in the household is refused with the fix.
    let (status, err) = put("/v1/people/zoe/consent/measure", grant).await;
    assert_eq!(status, 404);
    assert!(err["error"].as_str().unwrap().contains("add them first with PUT /v1/people/zoe"));
    // The ledger names each person.
    let ledger = agent.handle().ledger().await.unwrap();
    let people: BTreeSet<_> = ledger.iter().map(|r| r.person.to_string()).collect();
    assert_eq!(people, ["bo", "kim", "owner"].iter().map(|s| s.to_string()).collect());
    agent.stop().await;
    clear_catalogue(&fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_can_export_and_erase_what_the_device_holds_about_them() {
    init_logs();
    let (key, fleet, http) = (operator_key(1), fleet(), reqwest::Client::new());
    let agent = TestAgent::start(DeviceKind::LockScreen, &fleet, &key).await;
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;
    let api = agent.api();
    grant(&http, &agent, "personalise", true).await;
    grant(&http, &agent, "measure", true).await;
    let r = http.put(format!("{api}/v1/people/guest")).json(&json!({"child": false})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    signal(&http, &agent, "lockscreen.unlocks", 3.0).await;
    signal(&http, &agent, "context.ambient_light", 0.1).await;
    let (status, body) = offer(&http, &agent, "screen_woken").await;
    assert_eq!(status, 200);
    let id = body.unwrap()["decision"].as_u64().unwrap();
    let r = http
        .post(format!("{api}/v1/feedback"))
        .json(&json!({"decision": id, "kind": "dismissed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let mine: Value = http.get(format!("{api}/v1/my-data")).send().await.unwrap().json().await.unwrap();
    assert_eq!((&mine["person"], &mine["device_data_about_person"]), (&json!("owner"), &json!(true)));
    assert_eq!(mine["consent_ledger"].as_array().unwrap().len(), 2);
    // The two sources and what is derived from them: unlocks in the last hour, per hour and
    // minutes since the last one; the light's mean over the hour and today's brightest.
    assert_eq!(mine["features"].as_array().unwrap().len(), 7);
    assert_eq!(mine["impressions"].as_array().unwrap().len(), 1);
    assert_eq!(mine["feedback"][0]["kind"], "dismissed");
    assert_eq!(mine["queued_reports"][0]["impressions"], 1);
    // Someone else's export from this personal device holds none of its data.
    let guest: Value = http.get(format!("{api}/v1/my-data?person=guest")).send().await.unwrap().json().await.unwrap();
    assert_eq!(guest["device_data_about_person"], false);
    assert!(guest["features"].as_array().unwrap().is_empty() && guest["impressions"].as_array().unwrap().is_empty());
    let r = http.get(format!("{api}/v1/my-data?person=nobody")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Erase: nothing left but the record of consent and of the erasure itself.
    let r = http.delete(format!("{api}/v1/my-data?source=device_ui")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let after: Value = r.json().await.unwrap();
    for field in ["features", "impressions", "feedback", "queued_reports"] {
        assert!(after[field].as_array().unwrap().is_empty(), "{field}: {after}");
    }
    assert_eq!(after["erasures"].as_array().unwrap().len(), 1);
    let revoked = after["consent_ledger"].as_array().unwrap().iter().filter(|r| r["text_version"] == "erasure").count();
    assert_eq!(revoked, 2);
    let again = agent.handle().my_data(None).await.unwrap();
    assert!(again.is_empty());
    let consent = agent.handle().consent().await.unwrap();
    assert!(ledtrad_protocol::Purpose::ALL.iter().all(|p| !consent.allows(*p)));
    assert_eq!(signal(&http, &agent, "lockscreen.unlocks", 1.0).await["dropped_no_consent"], 1);
    assert_eq!(agent.handle().flush_reports().await.unwrap(), 0);
    agent.stop().await;
    clear_catalogue(&fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_holds_against_decisions_and_reports_in_flight() {
    init_logs();
    let (key, fleet, http) = (operator_key(1), fleet(), reqwest::Client::new());
    let agent = TestAgent::start(DeviceKind::Fridge, &fleet, &key).await;
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1", |s| s.catalogue_version == Some(1) && s.connected).await;
    grant(&http, &agent, "personalise", true).await;
    grant(&http, &agent, "measure", true).await;
    let revoked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Every caller has made its first round before the revocation.
    let under_way = std::sync::Arc::new(tokio::sync::Barrier::new(5));
    // Several callers decide and flush reports as fast as they can while consent is revoked.
    let mut callers = Vec::new();
    for caller in 0..4u64 {
        let (handle, revoked, clock) = (agent.handle(), revoked.clone(), agent.clock.clone());
        let under_way = under_way.clone();
        callers.push(tokio::spawn(async move {
            let mut after = 0;
            // Until enough calls were made after the revocation (bounded, so it always ends).
            for i in 0..100_000u64 {
                if after >= 20 {
                    break;
                }
                if i == 1 {
                    under_way.wait().await;
                }
                let sent_after_revocation = revoked.load(std::sync::atomic::Ordering::SeqCst);
                if i % 7 == caller {
                    clock.advance(86_400); // new day: caps reset, so offers keep being shown
                }
                let butter = ledtrad_protocol::signal::Signal {
                    feature: ledtrad_protocol::feature::FeatureName::try_new("fridge.butter.level").unwrap(),
                    value: 0.05,
                };
                let signals = handle.signals(vec![butter]).await.unwrap();
                let decision = handle.offer(ledtrad_protocol::Moment::DoorOpened).await.unwrap().decision;
                let reports = handle.flush_reports().await.unwrap();
                if sent_after_revocation {
                    after += 1;
                    assert_eq!(signals.aggregated, 0, "a personal signal taken after the revocation returned");
                    assert!(decision.features_used.iter().all(|u| u.allowed_by.is_none()), "{decision:?}");
                    assert!(decision.shown.as_ref().is_none_or(|s| !s.personalised));
                    assert_eq!(reports, 0, "a report sent after the revocation returned");
                }
            }
            after
        }));
    }
    tokio::time::timeout(Duration::from_secs(10), under_way.wait()).await.expect("every caller under way");
    assert!(!revoke(&agent, ledtrad_protocol::Purpose::Personalise)
        .await
        .allows(ledtrad_protocol::Purpose::Personalise));
    assert!(!revoke(&agent, ledtrad_protocol::Purpose::Measure).await.allows(ledtrad_protocol::Purpose::Measure));
    revoked.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut after = 0;
    for caller in callers {
        after += caller.await.unwrap();
    }
    assert_eq!(after, 80, "every caller made its calls after the revocation");
    agent.stop().await;
    clear_catalogue(&fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_wait_in_the_outbox_while_offline_and_a_revocation_deletes_them() {
    init_logs();
    let (key, fleet, http) = (operator_key(1), fleet(), reqwest::Client::new());
    let mut reports = ledtrad_tests::ReportListener::start(&fleet).await;

    let proxy = ledtrad_tests::CutProxy::start().await;
    let agent = TestAgent::start_via(DeviceKind::Fridge, &fleet, &key, &proxy.url).await;
    push(&key, &fleet, 1).await;
    // The listener says it collects; the agent's status shows it knows.
    agent
        .wait_for("version 1, a collector", |s| s.catalogue_version == Some(1) && s.connected && s.collector_present)
        .await;
    grant(&http, &agent, "personalise", true).await;
    grant(&http, &agent, "measure", true).await;

    // Offline: the day's report waits in the outbox (and the person can see it there).
    proxy.pause();
    agent.wait_for("offline", |s| !s.connected).await;
    assert!(agent.handle().offer(ledtrad_protocol::Moment::DoorOpened).await.unwrap().decision.shown.is_some());
    assert_eq!(agent.handle().flush_reports().await.unwrap(), 1);
    let mine = agent.handle().my_data(None).await.unwrap();
    assert_eq!(mine.queued_messages.len(), 1);
    assert_eq!(mine.queued_messages[0].purpose, ledtrad_protocol::Purpose::Measure);
    // Back online: it leaves.
    proxy.resume();
    agent.wait_for("online", |s| s.connected).await;
    let first: Value = serde_json::from_slice(&reports.next(Duration::from_secs(10)).await.unwrap()).unwrap();
    // It leaves the outbox once the broker acknowledged it, which may come just after.
    let queued = || async { agent.handle().my_data(None).await.unwrap().queued_messages.len() };
    wait_until("the delivered report to leave the outbox", Duration::from_secs(10), queued, |n| *n == 0).await;

    // Offline again, a report queued, then `measure` revoked: it never leaves.
    proxy.pause();
    agent.wait_for("offline", |s| !s.connected).await;
    agent.clock.advance(86_400);
    assert!(agent.handle().offer(ledtrad_protocol::Moment::DoorOpened).await.unwrap().decision.shown.is_some());
    assert_eq!(agent.handle().flush_reports().await.unwrap(), 1);
    grant(&http, &agent, "measure", false).await;
    assert!(agent.handle().my_data(None).await.unwrap().queued_messages.is_empty());
    proxy.resume();
    agent.wait_for("online", |s| s.connected).await;
    // `measure` granted again and a day later, a fresh report goes: the first to come is that
    // one, so the revoked one (queued before it, in the same outbox) never left.
    grant(&http, &agent, "measure", true).await;
    agent.clock.advance(86_400);
    assert!(agent.handle().offer(ledtrad_protocol::Moment::DoorOpened).await.unwrap().decision.shown.is_some());
    assert_eq!(agent.handle().flush_reports().await.unwrap(), 1);
    let next: Value = serde_json::from_slice(&reports.next(Duration::from_secs(10)).await.unwrap()).unwrap();
    let day = |report: &Value| report["day"].as_u64().unwrap();
    assert_eq!(day(&next), day(&first) + 2, "the fresh report, not the revoked one: {next}");
    agent.stop().await;
    clear_catalogue(&fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_is_a_moment_and_a_yes_is_a_consent_grant_with_the_prompts_text() {
    init_logs();
    let (key, fleet, http) = (operator_key(1), fleet(), reqwest::Client::new());
    let agent = TestAgent::start(DeviceKind::Fridge, &fleet, &key).await;
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;
    let (status, body) = offer(&http, &agent, "door_opened").await;
    assert_eq!(status, 200);
    let body = body.unwrap();
    assert!(body.get("offer").is_none());
    assert_eq!(body["prompt"]["purpose"], "personalise");
    assert!(body["prompt"]["question"].as_str().unwrap().ends_with('?'));
    assert!(!body["prompt"]["incentive"].as_str().unwrap().is_empty());
    let id = body["decision"].as_u64().unwrap();
    let api = agent.api();
    let answer = |decision: u64, answer: &str, person: Option<&str>| {
        http.post(format!("{api}/v1/prompt-answer"))
            .json(&json!({"decision": decision, "answer": answer, "person": person}))
            .send()
    };
    let r = answer(id, "maybe", None).await.unwrap();
    assert_eq!(r.status(), 400);
    // The fridge is shared: a "yes" must say whose consent it is.
    let r = answer(id, "yes", None).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = answer(id, "yes", Some("owner")).await.unwrap();
    assert_eq!(r.status(), 200);
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["personalise"], true);
    let ledger = agent.handle().ledger().await.unwrap();
    let row = ledger.last().unwrap();
    assert_eq!(
        (row.purpose, row.granted, row.text_version.as_str()),
        (ledtrad_protocol::Purpose::Personalise, true, "2026-11")
    );
    // One answer per prompt.
    assert_eq!(answer(id, "no", None).await.unwrap().status(), 409);
    // Granted: no more prompts for it, offers as usual.
    agent.clock.advance(86_400);
    let decision = agent.handle().offer(ledtrad_protocol::Moment::DoorOpened).await.unwrap().decision;
    assert!(decision.prompt.is_none());
    agent.stop().await;
    clear_catalogue(&fleet).await;
}

/// Signs `file` (in `examples/models/`, with the shipped manifest) and publishes it retained
/// on `fleet`'s model topic, whether or not a device can run it; an empty `file` publishes an
/// empty payload, which clears the retained model on the broker.
async fn push_model(key: &ledtrad_operator::OperatorKey, fleet: &FleetId, version: u64, file: &str) {
    use ledtrad_operator::model::{load_model, sign_model};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models");
    let payload = if file.is_empty() {
        Vec::new()
    } else {
        let mut model = load_model(&dir.join("propensity.tflite"), &dir.join("propensity.toml")).unwrap();
        model.tflite = std::fs::read(dir.join(file)).unwrap();
        let options = ledtrad_operator::SignOptions {
            fleet: fleet.clone(),
            version,
            issued_at: ledtrad_tests::T0,
            expires_at: ledtrad_tests::T0.plus_secs(30 * 86_400),
        };
        sign_model(&model, key, &options).unwrap()
    };
    let topic = ledtrad_protocol::topic::Topic::Model(fleet.clone());
    ledtrad_operator::publish_retained(&broker(), &topic, payload, &unique("test-op")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_model_scores_decisions_a_bad_one_is_refused_and_a_restart_keeps_the_good_one() {
    init_logs();
    let (key, fleet) = (operator_key(1), fleet());
    let agent = TestAgent::start(DeviceKind::Fridge, &fleet, &key).await;
    push(&key, &fleet, 1).await;
    agent.wait_for("catalogue version 1", |s| s.catalogue_version == Some(1)).await;
    push_model(&key, &fleet, 1, "propensity.tflite").await;
    let status = agent.wait_for("model version 1", |s| s.model_version == Some(1)).await;
    assert_eq!(status.model.as_deref(), Some("propensity-mlp v1 (tract)"));
    let handle = agent.handle();
    let decision = handle.offer(ledtrad_protocol::Moment::DoorOpened).await.unwrap().decision;
    assert!(matches!(decision.scorer, ledtrad_protocol::decision::ScorerUsed::Model { version: 1, .. }));
    // A fully int8 model, properly signed, is refused with the reason; version 1 stays.
    push_model(&key, &fleet, 2, "propensity-int8.tflite").await;
    let status = agent.wait_for("a refusal", |s| s.models_refused == 1).await;
    assert_eq!(status.model_version, Some(1));
    assert!(status.last_model_refusal.as_deref().unwrap_or("").contains("fully int8-quantized"), "{status:?}");
    // The broker forgets the model; the agent's database does not.
    push_model(&key, &fleet, 0, "").await;
    let agent = agent.restart().await;
    let status = agent.handle().status().await.unwrap();
    assert_eq!(status.model_version, Some(1));
    let decision = agent.handle().offer(ledtrad_protocol::Moment::DoorOpened).await.unwrap().decision;
    assert!(matches!(decision.scorer, ledtrad_protocol::decision::ScorerUsed::Model { version: 1, .. }));
    agent.stop().await;
}

/// `n` fridge agents of `fleet` that applied version 1 of the example catalogue.
async fn fridges_on_version_1(n: usize, key: &ledtrad_operator::OperatorKey, fleet: &FleetId) -> Vec<TestAgent> {
    let mut agents = Vec::new();
    for _ in 0..n {
        agents.push(TestAgent::start(DeviceKind::Fridge, fleet, key).await);
    }
    push(key, fleet, 1).await;
    for agent in &agents {
        agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;
    }
    agents
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_rollout_reaches_its_canary_then_everyone_and_an_abort_brings_the_previous_offers_back() {
    init_logs();
    let (key, fleet) = (operator_key(1), fleet());
    let agents = fridges_on_version_1(8, &key, &fleet).await;
    // Version 2 (one offer fewer) to half of the fleet: who is in follows from the pseudonyms.
    let mut next = ledtrad_tests::example_catalogue();
    next.offers.retain(|o| o.id.as_str() != "fridge-care");
    let rollout = Rollout { share: 0.5 };
    let sign = |catalogue: &Catalogue, version: u64, rollout: Option<Rollout>| {
        let options =
            SignOptions { fleet: fleet.clone(), version, issued_at: now(), expires_at: now().plus_secs(86_400) };
        ledtrad_operator::sign::sign_rollout(catalogue, &key, &options, rollout).unwrap()
    };
    publish_catalogue(&fleet, sign(&next, 2, Some(rollout))).await;
    let canary: Vec<bool> = agents.iter().map(|a| rollout.includes(&a.config.device, &fleet, 2)).collect();
    for (agent, &in_canary) in agents.iter().zip(&canary) {
        let status = if in_canary {
            agent.wait_for("version 2", |s| s.catalogue_version == Some(2)).await
        } else {
            agent.wait_for("waiting for version 2", |s| s.rollout_waiting == Some(2)).await
        };
        assert_eq!(status.catalogue_version, Some(if in_canary { 2 } else { 1 }));
        assert_eq!(status.catalogues_refused, 0, "waiting is no refusal");
    }
    // Completed: the same version for all; the canary keeps it without a refusal.
    publish_catalogue(&fleet, sign(&next, 2, None)).await;
    for agent in &agents {
        let status = agent.wait_for("version 2 everywhere", |s| s.catalogue_version == Some(2)).await;
        assert_eq!((status.catalogues_refused, status.rollout_waiting), (0, None));
    }
    // Aborted: the previous offers as version 3, for everyone.
    publish_catalogue(&fleet, sign(&ledtrad_tests::example_catalogue(), 3, None)).await;
    for agent in &agents {
        let status = agent.wait_for("version 3", |s| s.catalogue_version == Some(3)).await;
        assert_eq!(status.offers, 15);
    }
    for agent in agents {
        agent.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_its_devices_refuse_is_seen_over_the_limit_and_aborted_to_the_previous_offers() {
    init_logs();
    let (key, fleet) = (operator_key(1), fleet());
    let agents = fridges_on_version_1(4, &key, &fleet).await;
    // Version 2 signed with a key no device pins: every device refuses it.
    push(&operator_key(9), &fleet, 2).await;
    for agent in &agents {
        agent.wait_for("the refusal", |s| s.last_refusal.as_deref().is_some_and(|r| r.contains("unknown key"))).await;
    }
    let devices = agents.len();
    let statuses = watch_statuses(&broker(), &unique("watch"), Duration::from_secs(10), |seen| {
        seen.values().filter(|s| s.fleet == fleet && s.last_refusal.is_some()).count() == devices
    })
    .await
    .unwrap();
    let progress = ledtrad_operator::status::rollout_progress(&statuses, &fleet, 2);
    assert_eq!((progress.applied, progress.refused), (0, devices));
    assert!(progress.over_refusal_limit(0.02));
    // The abort: the previous offers as version 3, signed with the pinned key.
    push(&key, &fleet, 3).await;
    for agent in &agents {
        agent.wait_for("version 3", |s| s.catalogue_version == Some(3)).await;
    }
    for agent in agents {
        agent.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_whose_offers_are_dismissed_more_than_the_rests_is_aborted_from_the_reports() {
    init_logs();
    let (key, fleet) = (operator_key(1), fleet());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("reports.db");
    let service =
        ledtrad_tests::start_service(None, Some(ledtrad_operator::collect::ReportStore::open(&db).unwrap())).await;
    // Eight fridges that measure, with little noise on their counts so a few impressions tell:
    // four in the canary of the rollout below, four not (by their pseudonyms).
    let rollout = Rollout { share: 0.5 };
    let (mut inside, mut outside) = (Vec::new(), Vec::new());
    while inside.len() < 4 || outside.len() < 4 {
        let id = unique("fridge");
        let side = if rollout.includes(&ledtrad_protocol::DeviceId::try_new(&id).unwrap(), &fleet, 2) {
            &mut inside
        } else {
            &mut outside
        };
        if side.len() < 4 {
            side.push(id);
        }
    }
    let mut agents = Vec::new();
    for id in inside.into_iter().chain(outside) {
        let agent = TestAgent::start_with(DeviceKind::Fridge, &fleet, &key, &broker(), |raw| {
            raw.device_id = id;
            raw.report_epsilon = Some(10.0);
        })
        .await;
        ledtrad_tests::grant(&agent, ledtrad_protocol::Purpose::Measure).await;
        agents.push(agent);
    }
    push(&key, &fleet, 1).await;
    for agent in &agents {
        agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;
    }
    // Version 2 to half of the fleet, whose people dismiss what it shows; the rest accept.
    let options =
        SignOptions { fleet: fleet.clone(), version: 2, issued_at: now(), expires_at: now().plus_secs(86_400) };
    let signed =
        ledtrad_operator::sign::sign_rollout(&ledtrad_tests::example_catalogue(), &key, &options, Some(rollout))
            .unwrap();
    publish_catalogue(&fleet, signed).await;
    let mut sent = 0;
    for agent in &agents {
        let canary = rollout.includes(&agent.config.device, &fleet, 2);
        let version = if canary { 2 } else { 1 };
        agent.wait_for("its version", |s| s.catalogue_version == Some(version)).await;
        for _ in 0..4 {
            let decision = agent.handle().offer(ledtrad_protocol::Moment::DoorOpened).await.unwrap().decision;
            if decision.shown.is_some() {
                let kind = if canary { FeedbackKind::Dismissed } else { FeedbackKind::Accepted };
                agent.handle().feedback(Feedback { decision: decision.id, kind }).await.unwrap();
            }
        }
        sent += agent.handle().flush_reports().await.unwrap();
    }
    // The collector takes every fleet's reports, and other tests send theirs: count this fleet's.
    let store = ledtrad_operator::report::open_existing(&db).unwrap();
    let stored = || std::future::ready(store.fleet(&fleet).unwrap().len());
    wait_until(&format!("all {sent} reports stored"), Duration::from_secs(10), stored, |n| *n >= sent).await;
    service.stop().await.unwrap();
    let comparison = ledtrad_operator::canary::compare_dismissals(&store.fleet(&fleet).unwrap(), 2, 3.0);
    assert!(comparison.canary.impressions >= 3.0 && comparison.rest.impressions >= 3.0, "{comparison:?}");
    assert!(comparison.over_dismiss_limit(1.5), "{comparison}");
    // The abort: the previous offers as version 3, for everyone.
    push(&key, &fleet, 3).await;
    for agent in &agents {
        agent.wait_for("version 3", |s| s.catalogue_version == Some(3)).await;
    }
    for agent in agents {
        agent.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_the_collector_cannot_write_is_kept_on_the_broker_and_stored_once_writing_works() {
    use rumqttc::v5::mqttbytes::{v5::Packet, QoS};
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reports.db");
    let collector =
        ledtrad_tests::start_service(None, Some(ledtrad_operator::collect::ReportStore::open(&path).unwrap())).await;
    // The store stops taking writes (its table gone from under it, as a failing disk would).
    let side = rusqlite::Connection::open(&path).unwrap();
    side.execute("ALTER TABLE reports RENAME TO reports_away", []).unwrap();
    let fleet = fleet();
    let id = "00000000000000000000000000c0ffee";
    let report = json!({"campaign": "dairy-winter", "arm": "treatment", "day": 20415, "catalogue_version": 1,
        "epsilon": 1.0, "impressions": 3, "accepts": 1, "dismissals": 0, "conversions": 0, "id": id});
    let (client, mut events) = ledtrad_operator::mqtt::connect(&ledtrad_tests::broker(), &unique("device"));
    let topic = ledtrad_protocol::topic::Topic::Reports(fleet.clone()).name();
    client.publish(topic, QoS::AtLeastOnce, false, report.to_string()).await.unwrap();
    let acked = tokio::time::timeout(Duration::from_secs(10), async {
        while !matches!(events.poll().await, Ok(rumqttc::v5::Event::Incoming(Packet::PubAck(_)))) {}
    });
    acked.await.expect("the broker takes the report");
    let refused = || std::future::ready(collector.counts().reports_refused);
    wait_until("the collector to try and fail to write it", Duration::from_secs(10), refused, |n| *n > 0).await;
    // Other tests' reports come to this collector too: look at this fleet's only.
    let ours = |table: &str| -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE fleet = ?1");
        side.query_row(&sql, [fleet.as_str()], |r| r.get(0)).unwrap()
    };
    // Not a wait: the store stays broken for a while (the collector tries again each second),
    // which is the fault.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(ours("reports_away"), 0, "tried again, and still not written");
    // Writing works again: the report held back is stored, once, without being sent again.
    side.execute("ALTER TABLE reports_away RENAME TO reports", []).unwrap();
    let stored = || std::future::ready(ours("reports"));
    wait_until("the report stored once writing works", Duration::from_secs(10), stored, |n| *n > 0).await;
    // A second report, sent after: once it is stored, the first would have been stored again
    // (the collector takes a connection's reports in order) if it were going to be.
    let marker = "00000000000000000000000000000bee";
    let mut later = report.clone();
    later["id"] = json!(marker);
    let topic = ledtrad_protocol::topic::Topic::Reports(fleet.clone()).name();
    client.publish(topic, QoS::AtLeastOnce, false, later.to_string()).await.unwrap();
    let acked = tokio::time::timeout(Duration::from_secs(10), async {
        while !matches!(events.poll().await, Ok(rumqttc::v5::Event::Incoming(Packet::PubAck(_)))) {}
    });
    acked.await.expect("the broker takes the later report");
    wait_until("the later report stored", Duration::from_secs(10), stored, |n| *n > 1).await;
    let stored = ledtrad_operator::collect::ReportStore::open(&path).unwrap().fleet(&fleet).unwrap();
    let ids: BTreeSet<_> = stored.iter().map(|r| r.id.map(|i| i.to_string())).collect();
    assert_eq!(ids, BTreeSet::from([Some(id.to_string()), Some(marker.to_string())]), "each stored once");
    assert_eq!(stored.len(), 2, "each stored once");
    let _ = client.try_disconnect();
    collector.stop().await.unwrap();
}

/// `push --keep`: the keeper pushes its catalogue again over an older one retained in its
/// place, gives way to a newer push, and ends when the retained catalogue is cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_catalogue_outlasts_an_older_push_gives_way_to_a_newer_one_and_ends_when_cleared() {
    use ledtrad_operator::{keep_retained, KeepEnd};
    use ledtrad_protocol::topic::Topic;
    init_logs();
    let (key, fleet) = (operator_key(1), fleet());
    let signed = |version| envelope(&key, &fleet, version, ledtrad_tests::T0, ledtrad_tests::T0.plus_secs(86_400));
    let keep = |payload: Vec<u8>| {
        let (again_tx, again) = tokio::sync::mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let topic = Topic::Catalogue(fleet.clone());
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            let again = move |n| {
                let _ = again_tx.send(n);
            };
            keep_retained(&broker(), None, &topic, payload, &unique("keep"), again, stopped).await
        });
        (task, again, stop)
    };
    publish_catalogue(&fleet, signed(2)).await;
    let (task, mut again, stop) = keep(signed(2));
    // An older envelope retained in its place (a stale keeper's late push): pushed again,
    // whether the keeper sees it retained when it subscribes or as it comes.
    publish_catalogue(&fleet, signed(1)).await;
    let republished = tokio::time::timeout(Duration::from_secs(10), again.recv()).await;
    assert_eq!(republished.unwrap(), Some(1), "the keeper pushed version 2 again over version 1");
    let agent = TestAgent::start(DeviceKind::Fridge, &fleet, &key).await;
    agent.wait_for("version 2, retained again", |s| s.catalogue_version == Some(2)).await;
    // A newer push: the keeper gives way to it.
    publish_catalogue(&fleet, signed(3)).await;
    let kept = tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap().unwrap();
    assert_eq!((kept.ended, kept.republished), (KeepEnd::Replaced, 1));
    drop(stop);
    // A keeper of version 3 ends when the retained catalogue is cleared. It starts over an
    // older envelope, which it pushes again once it has subscribed: only then is the clearing
    // sure to reach it (cleared before, it would take the catalogue as lost and push it again).
    publish_catalogue(&fleet, signed(2)).await;
    let (task, mut again, _stop) = keep(signed(3));
    let republished = tokio::time::timeout(Duration::from_secs(10), again.recv()).await;
    assert_eq!(republished.unwrap(), Some(1), "the keeper pushed version 3 again over version 2");
    clear_catalogue(&fleet).await;
    let kept = tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap().unwrap();
    assert_eq!((kept.ended, kept.republished), (KeepEnd::Cleared, 1));
    agent.wait_for("version 3", |s| s.catalogue_version == Some(3)).await;
    agent.stop().await;
}

/// An agent started again on a broker that kept its session learns afresh that a collector is
/// there (the embedded broker sends retained messages only for a subscription it did not
/// have), and its reports go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_started_again_on_a_kept_session_learns_the_collector_and_reports() {
    init_logs();
    let (key, fleet, http) = (operator_key(1), fleet(), reqwest::Client::new());
    let mut reports = ledtrad_tests::ReportListener::start(&fleet).await;
    let agent = TestAgent::start(DeviceKind::Fridge, &fleet, &key).await;
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1, a collector", |s| s.catalogue_version == Some(1) && s.collector_present).await;
    grant(&http, &agent, "personalise", true).await;
    grant(&http, &agent, "measure", true).await;
    let agent = agent.restart().await;
    agent.wait_for("a collector, after the restart", |s| s.connected && s.collector_present).await;
    assert!(agent.handle().offer(ledtrad_protocol::Moment::DoorOpened).await.unwrap().decision.shown.is_some());
    assert_eq!(agent.handle().flush_reports().await.unwrap(), 1);
    assert!(reports.next(Duration::from_secs(10)).await.is_some(), "the report reached the collector");
    agent.stop().await;
    clear_catalogue(&fleet).await;
}
