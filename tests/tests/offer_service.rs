//! Request mode end to end: an agent whose catalogue has nothing for a moment asks the offer
//! service (`ledtrad-op serve`, here as a library) over the broker under test, with MQTT 5
//! response topic and correlation data, only with `request` consent, and falls back to its
//! local decision when no answer comes in time. The service also collects the fleet's reports.

use ledtrad_operator::collect::ReportStore;
use ledtrad_operator::{sign_catalogue, SignOptions};
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::{DeviceKind, FleetId, Moment, Purpose};
use ledtrad_tests::{
    broker, grant, init_logs, operator_key, publish_catalogue, revoke, start_service, unique, TestAgent, T0,
};

fn offer(id: &str, kind: &str, moment: &str, category: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "campaign": format!("{id}-campaign"), "title": "T",
        "question": "Could this be something for you?", "body": "B", "category": category,
        "device_kinds": [kind], "moments": [moment], "value": 1.0,
        "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"
    })
}

/// The device's own catalogue: nothing for an e-reader.
fn local_catalogue() -> Catalogue {
    Catalogue::from_value(serde_json::json!({ "offer": [offer("butter", "fridge", "door_opened", "food.dairy")] }))
        .expect("valid")
}

/// The offer service's catalogue: a book for a finished book.
fn service_catalogue() -> Catalogue {
    Catalogue::from_value(serde_json::json!({ "offer": [
        offer("crime-novel", "ereader", "book_finished", "books.crime"),
        offer("cookbook", "ereader", "book_finished", "books.cooking"),
    ]}))
    .expect("valid")
}

async fn reader(fleet: &FleetId, timeout_ms: u64) -> TestAgent {
    let key = operator_key(1);
    let agent = TestAgent::start_with(DeviceKind::Ereader, fleet, &key, &broker(), |raw| {
        raw.offer_request_timeout_ms = Some(timeout_ms);
    })
    .await;
    let options =
        SignOptions { fleet: fleet.clone(), version: 1, issued_at: T0, expires_at: T0.plus_secs(30 * 86_400) };
    publish_catalogue(fleet, sign_catalogue(&local_catalogue(), &key, &options).expect("signs")).await;
    agent.wait_for("catalogue and connection", |s| s.connected && s.catalogue_version == Some(1)).await;
    agent
}

/// One test, as every instance on a broker shares the requests: a second test's service
/// would answer this one's requests (which is the point of the shared subscription).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moment_the_catalogue_has_nothing_for_is_answered_by_the_offer_service_with_request_consent() {
    init_logs();
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("reports.db");
    let service = start_service(Some(service_catalogue()), Some(ReportStore::open(&db).expect("store"))).await;
    let fleet = FleetId::try_new(unique("request")).expect("fleet");
    let agent = reader(&fleet, 3_000).await;

    // Without `request` consent nothing is asked: the local decision (nothing) stands.
    let outcome = agent.handle().offer(Moment::BookFinished).await.expect("offer");
    assert!(outcome.decision.shown.is_none() && outcome.request.is_none());

    grant(&agent, Purpose::Request).await;
    grant(&agent, Purpose::Measure).await;
    let outcome = agent.handle().offer(Moment::BookFinished).await.expect("offer");
    let request = outcome.request.expect("the service was asked");
    assert!(request.answered, "{request:?}");
    assert_eq!((request.offers_received, request.offers_kept), (2, 2));
    let shown = outcome.decision.shown.expect("the service's offer is shown");
    assert!(["crime-novel", "cookbook"].contains(&shown.offer.as_str()), "{}", shown.offer);
    // The decision is the device's own: traced, and feedback on it is taken.
    let traced = agent.handle().decision(outcome.decision.id).await.expect("decision").expect("traced");
    assert_eq!(traced.candidates.len(), 2);
    // The local API's answer says where the offer came from.
    let url = format!("{}/v1/offer?moment=book_finished", agent.api());
    let body: serde_json::Value = reqwest::get(&url).await.expect("GET").json().await.expect("JSON");
    assert_eq!(body["request"]["answered"], true, "{body}");
    assert!(body["offer"]["offer"].is_string(), "{body}");
    let status = agent.handle().status().await.expect("status");
    assert_eq!((status.requests_sent, status.requests_answered, status.requests_unanswered), (2, 2, 0));
    let counted = service.counts();
    assert_eq!((counted.requests, counted.answered, counted.refused), (2, 2, 0));

    // The impression's report reaches the service's report store.
    let flushed = u64::try_from(agent.handle().flush_reports().await.expect("flush")).expect("count");
    assert!(flushed >= 1);
    assert_eq!(service.wait_for_reports(flushed, std::time::Duration::from_secs(10)).await, flushed);
    // Without a service the request times out and the local decision stands.
    service.stop().await.expect("the service stops");
    let outcome = agent.handle().offer(Moment::BookFinished).await.expect("offer");
    let request = outcome.request.expect("asked");
    assert!(!request.answered && outcome.decision.shown.is_none(), "{request:?}");
    let status = agent.handle().status().await.expect("status");
    assert_eq!(status.requests_unanswered, 1);
    // Withdrawing `request` while an answer is awaited ends the wait at once: no answer is used.
    let handle = agent.handle();
    let waiting = tokio::spawn(async move { handle.offer(Moment::BookFinished).await });
    agent.wait_for("the request sent, its answer awaited", |s| s.requests_sent == 4).await;
    let started = std::time::Instant::now();
    revoke(&agent, Purpose::Request).await;
    let outcome = waiting.await.expect("joined").expect("offer");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "ended by the revocation, not the timeout");
    assert!(outcome.request.is_some_and(|r| !r.answered) && outcome.decision.shown.is_none());
    assert_eq!(agent.handle().status().await.expect("status").requests_unanswered, 2);
    agent.shutdown().await;

    let store = ReportStore::open(&db).expect("store");
    let reports = store.campaign(Some(&fleet), &shown.campaign).expect("read");
    assert_eq!(reports.len(), 1, "one report for the campaign of the service's offer");
    assert_eq!(reports[0].catalogue_version, 1);
}
