//! Moments the agent raises itself, and the events a UI follows on `GET /v1/events`.

use ledtrad_agent::events::client::EventStream;
use ledtrad_tests::TestAgent;

use super::*;

/// A fridge that raises its own moments, with the catalogue applied and `personalise` granted,
/// and a client following its events.
async fn raising_fridge() -> (TestAgent, EventStream, reqwest::Client) {
    let (key, fleet) = (operator_key(1), fleet());
    let agent =
        TestAgent::start_with(DeviceKind::Fridge, &fleet, &key, &broker(), |raw| raw.raise_moments = Some(true)).await;
    agent.wait_for("connection", |s| s.connected).await;
    let mut events = EventStream::connect(&agent.api(), None).await.unwrap();
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;
    let applied = events.next_named("catalogue").await.unwrap().expect("a catalogue event");
    assert_eq!(serde_json::from_str::<Value>(&applied.data).unwrap(), json!({"version": 1, "applied": true}));
    let http = reqwest::Client::new();
    grant(&http, &agent, "personalise", true).await;
    let consent = events.next_named("consent").await.unwrap().expect("a consent event");
    assert_eq!(serde_json::from_str::<Value>(&consent.data).unwrap()["personalise"], json!(true));
    (agent, events, http)
}

async fn post_signal(http: &reqwest::Client, agent: &TestAgent, feature: &str, value: f64) -> Value {
    let response = http
        .post(format!("{}/v1/signals", agent.api()))
        .json(&json!({"signals": [{"feature": feature, "value": value}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_running_low_shows_an_offer_on_the_event_stream_with_no_caller_asking() {
    init_logs();
    let (agent, mut events, http) = raising_fridge().await;

    let outcome = post_signal(&http, &agent, "fridge.butter.level", 0.1).await;
    assert_eq!(outcome["raised"], json!("inventory_low"));
    let event = events.next_named("offer").await.unwrap().expect("an offer event");
    assert!(event.id.is_some(), "offer events have ids");
    let body: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(body["moment"], json!("inventory_low"));
    assert_eq!(body["offer"]["offer"], json!("butter-refill"));
    assert_eq!(body["offer"]["personalised"], json!(true));

    // The same decision as GET /v1/offer: feedback goes to it, and its trace says so.
    let decision = body["decision"].as_u64().unwrap();
    let response = http
        .post(format!("{}/v1/feedback", agent.api()))
        .json(&json!({"decision": decision, "kind": "accepted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let trace: Value =
        http.get(format!("{}/v1/decisions/{decision}", agent.api())).send().await.unwrap().json().await.unwrap();
    assert_eq!(trace["shown"]["offer"], json!("butter-refill"));
    assert_eq!(trace["answers"][0]["kind"], json!("accepted"), "the feedback is in the decision's trace: {trace}");

    // A client that comes back with the last id it saw gets what came after it again.
    let outcome = post_signal(&http, &agent, "fridge.door.opens", 1.0).await;
    assert_eq!(outcome["raised"], json!("door_opened"));
    let mut again = EventStream::connect(&agent.api(), event.id.as_deref()).await.unwrap();
    let next = again.next().await.unwrap().expect("the events after it");
    assert_ne!(next.id, event.id);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_personalise_a_level_raises_nothing_and_a_door_shows_only_contextual_offers() {
    init_logs();
    let (agent, mut events, http) = raising_fridge().await;
    grant(&http, &agent, "personalise", false).await;
    let consent = events.next_named("consent").await.unwrap().expect("a consent event");
    assert_eq!(serde_json::from_str::<Value>(&consent.data).unwrap()["personalise"], json!(false));

    let outcome = post_signal(&http, &agent, "fridge.butter.level", 0.1).await;
    assert_eq!(outcome["dropped_no_consent"], json!(1));
    assert_eq!(outcome.get("raised"), None, "a personal level raises nothing without consent");
    let outcome = post_signal(&http, &agent, "fridge.door.opens", 1.0).await;
    assert_eq!(outcome["raised"], json!("door_opened"));
    let event = events.next_named("offer").await.unwrap().expect("an offer event");
    let body: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(body["moment"], json!("door_opened"));
    // The first decision after a revocation may put a consent prompt instead of an offer.
    match body.get("offer") {
        Some(offer) => assert_eq!(offer["personalised"], json!(false), "{body}"),
        None => assert!(body.get("prompt").is_some(), "an offer event shows something: {body}"),
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_door_edge_from_the_sensor_board_shows_an_offer_on_the_event_stream() {
    use ledtrad_protocol::link::{encode, Edge, Event, LINK_VERSION, MAX_FRAME};
    use std::io::Write as _;

    init_logs();
    let board = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = board.local_addr().unwrap();
    let (key, fleet) = (operator_key(1), fleet());
    let agent = TestAgent::start_with(DeviceKind::Fridge, &fleet, &key, &broker(), |raw| {
        raw.raise_moments = Some(true);
        raw.sensor_link = Some(format!("tcp://{addr}"));
    })
    .await;
    let (mut socket, _) = tokio::task::spawn_blocking(move || board.accept()).await.unwrap().unwrap();
    let mut events = EventStream::connect(&agent.api(), None).await.unwrap();
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;

    let mut out = [0u8; MAX_FRAME];
    let frame = encode(Event { version: LINK_VERSION, seq: 1, edge: Edge::DoorOpened }, &mut out).unwrap().to_vec();
    socket.write_all(&frame).unwrap();
    let event = events.next_named("offer").await.unwrap().expect("an offer event");
    let body: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(body["moment"], json!("door_opened"), "{body}");
    let status = agent.handle().status().await.unwrap();
    assert_eq!(status.link.map(|l| l.events), Some(1));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledtrad_agent_events_prints_each_event_as_a_line_of_json() {
    use std::io::BufRead as _;

    init_logs();
    let program =
        tokio::task::spawn_blocking(|| ledtrad_tests::program("ledtrad-agent", "ledtrad-agent")).await.unwrap();
    let (agent, _events, http) = raising_fridge().await;
    let api = agent.api().trim_start_matches("http://").to_string();
    let mut child = std::process::Command::new(program)
        .args(["events", "--api", &api])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first_line = tokio::task::spawn_blocking(move || std::io::BufReader::new(stdout).lines().next());
    // The stream is open once the agent counts the command as a client; a signal then raises a moment.
    let hub = agent.events();
    let look = || std::future::ready(hub.clients());
    wait_until("the command follows the events", Duration::from_secs(30), look, |n| *n > 1).await;
    post_signal(&http, &agent, "fridge.butter.level", 0.1).await;
    let line = first_line.await.unwrap().expect("a line").unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!((&event["event"], &event["data"]["moment"]), (&json!("offer"), &json!("inventory_low")), "{line}");
    assert!(event["id"].is_string(), "{line}");
    agent.shutdown().await;
}
