//! Catalogues applied and refused, offers with their why and why not, the local API's input, and a restart.

use super::*;

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
        // A page from another origin is refused, even for a GET.
        (
            http.get(format!("{api}/v1/consent")).header("origin", "http://evil.example"),
            403,
            "Origin \"http://evil.example\" is not this agent's own",
        ),
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
    // `improve` can be granted, and the view says this version does not use it.
    assert_eq!(consent["not_used_by_this_version"], json!(["improve"]));
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
