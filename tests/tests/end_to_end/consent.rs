//! Consent end to end: purposes granted and revoked, reports and the outbox, a shared device, export and erasure.

use super::*;

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
