//! The operator's side end to end: models, staged rollouts and canaries, the report collector, and a catalogue kept retained.

use super::*;

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
    let store = ledtrad_operator::report::open_existing(&db.clone().into()).unwrap();
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
            keep_retained(&broker(), &ledtrad_mqtt::Access::default(), &topic, payload, &unique("keep"), again, stopped)
                .await
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

/// Offline signing as an operator does it: `ledtrad-op catalogue sign` on a machine without a
/// broker, then `ledtrad-op publish` on the online host, which says what it sends and refuses
/// an envelope the fleet would refuse (not newer than what its devices report, or expired)
/// before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalogue_signed_offline_is_published_and_applied_and_an_older_or_expired_one_is_refused() {
    init_logs();
    let (key, fleet) = (operator_key(1), fleet());
    let agent = TestAgent::start(DeviceKind::Fridge, &fleet, &key).await;
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let (secret, _) = key.save(dir.path()).unwrap();
    let op = ledtrad_tests::program("ledtrad-operator", "ledtrad-op");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&op).args(args).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let catalogue = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalogues/home.toml");
    let envelope = dir.path().join("catalogue-2.env");
    let (secret, envelope_path, broker) = (secret.to_str().unwrap(), envelope.to_str().unwrap(), broker().to_string());
    // Signing needs no broker and takes none.
    let (code, stdout, stderr) =
        run(&["catalogue", "sign", catalogue, "--key", secret, "--fleet", fleet.as_str(), "--version", "2"]);
    assert_eq!(code, Some(2), "--out is required: {stdout}{stderr}");
    let sign = ["catalogue", "sign", catalogue, "--key", secret, "--fleet", fleet.as_str(), "--version", "2", "--out"];
    let (code, stdout, stderr) = run(&[&sign[..], &[envelope_path]].concat());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("catalogue version 2 of fleet '{fleet}': 15 offers, for every device")),
        "{stdout}"
    );
    let (code, _, stderr) = run(&[&sign[..], &[envelope_path]].concat());
    assert_eq!(code, Some(2));
    assert!(stderr.contains("exists already"), "an envelope is never overwritten: {stderr}");

    let (code, stdout, stderr) = run(&["publish", envelope_path, "--broker", &broker, "--wait", "2"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(&format!("published catalogue version 2 of fleet '{fleet}'")), "{stdout}");
    assert!(stdout.contains("its devices reported 1 at most"), "{stdout}");
    agent.wait_for("version 2", |s| s.catalogue_version == Some(2)).await;

    // Again: the device reports version 2 now, so version 2 is not newer.
    let (code, _, stderr) = run(&["publish", envelope_path, "--broker", &broker, "--wait", "2"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains(&format!("devices of fleet '{fleet}' report catalogue version 2")), "{stderr}");
    assert!(stderr.contains("--version 3 or more"), "{stderr}");

    // Expired: refused before connecting (the broker named here does not exist).
    let expired = dir.path().join("expired.env");
    let day = |d: u64| ledtrad_protocol::UnixTime(ledtrad_tests::T0.secs() - d * 86_400);
    let payload = ledtrad_tests::envelope(&key, &fleet, 3, day(10), day(1));
    ledtrad_operator::offline::write(&expired, &payload).unwrap();
    let (code, _, stderr) = run(&["publish", expired.to_str().unwrap(), "--broker", "mqtt://127.0.0.1:9"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("catalogue version 3") && stderr.contains("expired at"), "{stderr}");
    let status = agent.handle().status().await.unwrap();
    assert_eq!((status.catalogue_version, status.catalogues_refused), (Some(2), 0));
    agent.stop().await;
}
