//! The local API's OpenAPI description against a real agent (real broker, real SQLite, signed
//! catalogue): the description served is the one `ledtrad-agent openapi` prints; every route the
//! router answers is described; every status a route answers with is documented; and what it
//! sends (and what it takes) fits the documented schemas.

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

mod schema;

use ledtrad_protocol::{DeviceKind, FleetId};
use ledtrad_tests::{broker, clear_catalogue, init_logs, operator_key, push, unique, TestAgent};
use serde_json::{json, Value};

/// The routes the product has. One missing from the description (or from the router) fails.
const KNOWN: &[(&str, &str)] = &[
    ("get", "/v1/offer"),
    ("post", "/v1/feedback"),
    ("get", "/v1/decisions/{id}"),
    ("get", "/v1/consent"),
    ("put", "/v1/consent/{purpose}"),
    ("put", "/v1/people/{person}"),
    ("put", "/v1/people/{person}/consent/{purpose}"),
    ("put", "/v1/presence"),
    ("post", "/v1/prompt-answer"),
    ("get", "/v1/my-data"),
    ("delete", "/v1/my-data"),
    ("post", "/v1/signals"),
    ("get", "/v1/status"),
    ("get", "/v1/home"),
    ("post", "/v1/home"),
    ("delete", "/v1/home"),
    ("get", "/v1/home/code"),
    ("post", "/v1/home/join"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/events"),
    ("get", "/ui"),
    ("get", "/ui/"),
    ("get", "/ui/fridge"),
];

/// Paths asked with every method, beyond the documented ones: near misses, and where the API
/// might grow (events, pages), so a route served there but not described is found.
const PROBES: &[&str] = &[
    "/",
    "/v1",
    "/v1/",
    "/v1/events",
    "/v1/people",
    "/v1/home/",
    "/v1/homes",
    "/v1/decisions",
    "/v1/openapi",
    "/openapi.json",
    "/ui",
    "/ui/",
    "/ui/index.html",
    "/ui/fridge",
    "/ui/ui.js",
];

/// The device UI's files.
const UI_FILES: &[&str] =
    &["/ui/", "/ui/fridge", "/ui/lock-screen", "/ui/ereader", "/ui/consent", "/ui/my-data", "/ui/ui.css", "/ui/ui.js"];

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

/// Statuses a route may document without this test bringing them about: the guard's, driven
/// on some routes only, and 503, which needs a stopped agent or a failing disk (the storage
/// fault tests drive that).
const NOT_DRIVEN_EVERYWHERE: &[&str] = &["403", "413", "415", "503"];

fn fleet() -> FleetId {
    FleetId::try_new(unique("fleet")).unwrap()
}

/// A fridge with the example catalogue applied (and the device UI on, if `ui`), and the
/// description it serves.
async fn start(ui: bool) -> (TestAgent, FleetId, Value) {
    init_logs();
    let (key, fleet) = (operator_key(1), fleet());
    let agent = TestAgent::start_with(DeviceKind::Fridge, &fleet, &key, &broker(), |raw| raw.ui = ui).await;
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;
    let description: Value =
        reqwest::get(format!("{}/v1/openapi.json", agent.api())).await.unwrap().json().await.unwrap();
    (agent, fleet, description)
}

/// The documented operation for a concrete `method` and `path`, as (template, operation).
fn operation<'a>(description: &'a Value, method: &str, path: &str) -> Option<(&'a str, &'a Value)> {
    let paths = description["paths"].as_object()?;
    paths.iter().find_map(|(template, item)| {
        let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
        let fits = t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()));
        fits.then_some(())?;
        item.get(method).map(|op| (template.as_str(), op))
    })
}

/// A concrete path for a template.
fn fill(template: &str) -> String {
    template.replace("{id}", "1").replace("{purpose}", "personalise").replace("{person}", "owner")
}

/// What the router does with `method path`: `None` when no route is there (the fallback's
/// "no such endpoint", or 405 for a path served with other methods), else the status.
async fn ask(http: &reqwest::Client, api: &str, method: &str, path: &str) -> Option<u16> {
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    let response = http
        .request(method, format!("{api}{path}"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status == 405 {
        return None;
    }
    if status == 404 {
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if body["error"].as_str().is_some_and(|e| e.starts_with("no such endpoint")) {
            return None;
        }
    }
    Some(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_description_served_is_the_one_printed_and_valid_json_of_openapi_3_1() {
    let (agent, fleet, served) = start(false).await;
    let printed: Value = serde_json::from_str(&ledtrad_agent::api::description_json()).unwrap();
    assert_eq!(served, printed, "GET /v1/openapi.json and `ledtrad-agent openapi` differ");
    assert_eq!(served["openapi"], "3.1.0");
    let program = ledtrad_tests::program("ledtrad-agent", "ledtrad-agent");
    let output = std::process::Command::new(program).arg("openapi").output().unwrap();
    assert!(output.status.success(), "ledtrad-agent openapi failed: {}", String::from_utf8_lossy(&output.stderr));
    let from_cli: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(from_cli, served, "the subcommand prints another description than the agent serves");
    agent.stop().await;
    clear_catalogue(&fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_the_router_answers_is_described_and_every_described_route_is_answered() {
    // The device UI off: its paths answer that it is off, which must be described too.
    let (agent, fleet, description) = start(false).await;
    let (http, api) = (reqwest::Client::new(), agent.api());
    let mut problems = Vec::new();
    for (method, template) in KNOWN {
        if description["paths"][template].get(method).is_none() {
            problems.push(format!(
                "{} {template} is a route of the product but not in the description",
                method.to_uppercase()
            ));
        }
    }
    let documented: Vec<(String, String)> = description["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(template, item)| item.as_object().unwrap().keys().map(move |m| (m.clone(), template.clone())))
        .filter(|(method, _)| METHODS.contains(&method.as_str()))
        .collect();
    for (method, template) in &documented {
        if ask(&http, &api, method, &fill(template)).await.is_none() {
            problems
                .push(format!("{} {template} is described but the router does not serve it", method.to_uppercase()));
        }
    }
    let paths = documented.iter().map(|(_, t)| fill(t)).chain(PROBES.iter().map(|p| p.to_string()));
    for path in paths.collect::<std::collections::BTreeSet<_>>() {
        for method in METHODS {
            if let Some(status) = ask(&http, &api, method, &path).await {
                if operation(&description, method, &path).is_none() {
                    problems.push(format!(
                        "{} {path} answers {status} but is not in the description",
                        method.to_uppercase()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "the router and its description disagree:\n{}", problems.join("\n"));
    agent.stop().await;
    clear_catalogue(&fleet).await;
}

/// One request and its answer, as seen on the wire.
struct Seen {
    method: String,
    template: &'static str,
    status: u16,
    sent: Option<Value>,
    /// The body, when it is JSON.
    body: Option<Value>,
    /// The body's media type (without parameters), when it has one.
    media: Option<String>,
    headers: reqwest::header::HeaderMap,
}

/// Sends requests and keeps what was seen, to hold against the description at the end.
struct Recorder {
    http: reqwest::Client,
    api: String,
    seen: Vec<Seen>,
}

impl Recorder {
    /// Sends `request` (for the route `template`) and returns its status and JSON body.
    async fn send(&mut self, template: &'static str, request: reqwest::RequestBuilder) -> (u16, Value) {
        let request = request.build().unwrap();
        let method = request.method().as_str().to_ascii_lowercase();
        let sent = request.body().and_then(reqwest::Body::as_bytes).and_then(|b| serde_json::from_slice(b).ok());
        let response = self.http.execute(request).await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let media = headers.get("content-type").and_then(|c| c.to_str().ok());
        let media = media.map(|c| c.split(';').next().unwrap_or(c).trim().to_string());
        // A stream does not end: its headers are what there is to check.
        let bytes = match media.as_deref() {
            Some("text/event-stream") => Default::default(),
            _ => response.bytes().await.unwrap(),
        };
        let body = (media.as_deref() == Some("application/json")).then(|| {
            serde_json::from_slice::<Value>(&bytes)
                .unwrap_or_else(|e| panic!("{method} {template} answered {status} with a body that is not JSON ({e})"))
        });
        let media = media.filter(|m| m == "text/event-stream" || !bytes.is_empty());
        self.seen.push(Seen { method, template, status, sent, body: body.clone(), media, headers });
        (status, body.unwrap_or(Value::Null))
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.api))
    }

    fn put(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.http.put(format!("{}{path}", self.api)).json(&body)
    }

    fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.api)).json(&body)
    }

    fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.delete(format!("{}{path}", self.api))
    }
}

/// Everything wrong with one exchange against the description.
fn judge(description: &Value, seen: &Seen) -> Vec<String> {
    let (method, template, status) = (&seen.method, seen.template, seen.status);
    let name = format!("{} {template} -> {status}", method.to_uppercase());
    let Some(op) = description["paths"][template].get(method) else {
        return vec![format!("{name}: the route is not described")];
    };
    let mut problems = Vec::new();
    if let (Some(sent), true) = ((seen.sent.as_ref()), (200..300).contains(&status)) {
        let rule = &op["requestBody"]["content"]["application/json"]["schema"];
        if let Err(e) = schema::check(description, rule, sent) {
            problems.push(format!("{name}: the accepted request body does not fit its schema: {e}"));
        }
    }
    let Some(response) = op["responses"].get(status.to_string()) else {
        problems.push(format!("{name}: the status is not documented"));
        return problems;
    };
    let documented: Vec<&String> = response["content"].as_object().into_iter().flatten().map(|(m, _)| m).collect();
    match &seen.media {
        None if !documented.is_empty() => problems.push(format!("{name}: documented with a body, but sent none")),
        Some(media) if !documented.contains(&media) => {
            problems.push(format!("{name}: sent {media}, but the description has {documented:?}"));
        }
        _ => {}
    }
    if let Some(body) = &seen.body {
        let rule = &response["content"]["application/json"]["schema"];
        if let Err(e) = schema::check(description, rule, body) {
            problems.push(format!("{name}: the body does not fit its schema: {e}"));
        }
    }
    for header in response["headers"].as_object().into_iter().flatten().map(|(h, _)| h) {
        if !seen.headers.contains_key(header.as_str()) {
            problems.push(format!("{name}: the documented header {header:?} is missing"));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_a_route_answers_with_is_documented_and_its_body_fits() {
    let (agent, fleet, description) = start(true).await;
    // Redirects are answers to check, not to follow.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut r = Recorder { http, api: agent.api(), seen: Vec::new() };
    drive(&mut r, &agent).await;
    // The device UI's files when it is off.
    let (off, off_fleet, _) = start(false).await;
    r.api = off.api();
    for file in UI_FILES.iter().chain(&["/ui"]) {
        assert_eq!(r.send(file, r.get(file)).await.0, 404, "{file}");
    }
    off.stop().await;
    clear_catalogue(&off_fleet).await;

    let mut problems: Vec<String> = r.seen.iter().flat_map(|seen| judge(&description, seen)).collect();
    // Every documented status was brought about, but those only some routes are driven to.
    for (template, item) in description["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for status in op["responses"].as_object().unwrap().keys() {
                let seen = r
                    .seen
                    .iter()
                    .any(|s| s.template == template && &s.method == method && s.status.to_string() == *status);
                if !seen && !NOT_DRIVEN_EVERYWHERE.contains(&status.as_str()) {
                    problems.push(format!(
                        "{} {template} documents {status}, which no request here brought about",
                        method.to_uppercase()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{} exchanges; against the description:\n{}", r.seen.len(), problems.join("\n"));
    agent.stop().await;
    clear_catalogue(&fleet).await;
}

/// Each route's success and error paths, in an order that makes each possible.
async fn drive(r: &mut Recorder, agent: &TestAgent) {
    // The guard, on a route of each kind.
    let (status, _) = r.send("/v1/consent", r.get("/v1/consent").header("host", "evil.example")).await;
    assert_eq!(status, 403);
    let raw = r.http.post(format!("{}/v1/feedback", r.api)).body("{}");
    assert_eq!(r.send("/v1/feedback", raw).await.0, 415);
    let huge = json!({ "signals": vec![json!({"feature": "fridge.butter.level", "value": 0.5}); 2000] });
    assert_eq!(r.send("/v1/signals", r.post("/v1/signals", huge)).await.0, 413);

    // A fresh fridge is asked for `personalise` first, at its first moment.
    let (status, body) = r.send("/v1/offer", r.get("/v1/offer?moment=door_opened")).await;
    assert_eq!((status, &body["prompt"]["purpose"]), (200, &json!("personalise")), "{body}");
    let prompted = body["decision"].clone();
    assert_eq!(r.send("/v1/offer", r.get("/v1/offer")).await.0, 400);
    assert_eq!(r.send("/v1/offer", r.get("/v1/offer?moment=book_finished")).await.0, 204);
    assert_eq!(r.send("/v1/offer", r.get("/v1/offer?moment=lunch")).await.0, 400);

    let answer = |decision: &Value, answer: &str| json!({"decision": decision, "answer": answer, "person": "owner"});
    assert_eq!(r.send("/v1/prompt-answer", r.post("/v1/prompt-answer", json!({"decision": 1}))).await.0, 400);
    assert_eq!(r.send("/v1/prompt-answer", r.post("/v1/prompt-answer", answer(&json!(999_999), "yes"))).await.0, 404);
    assert_eq!(r.send("/v1/prompt-answer", r.post("/v1/prompt-answer", answer(&prompted, "yes"))).await.0, 200);
    assert_eq!(r.send("/v1/prompt-answer", r.post("/v1/prompt-answer", answer(&prompted, "no"))).await.0, 409);

    // With `personalise`, low butter is an offer; feedback on it once.
    agent.clock.advance(86_400);
    let butter = json!({"signals": [{"feature": "fridge.butter.level", "value": 0.05}]});
    assert_eq!(r.send("/v1/signals", r.post("/v1/signals", butter)).await.0, 200);
    let one = json!({"feature": "fridge.butter.level", "value": 0.05});
    assert_eq!(r.send("/v1/signals", r.post("/v1/signals", one)).await.0, 200);
    assert_eq!(r.send("/v1/signals", r.post("/v1/signals", json!({"feature": "fridge.caviar"}))).await.0, 400);
    let (status, body) = r.send("/v1/offer", r.get("/v1/offer?moment=door_opened")).await;
    assert_eq!((status, &body["offer"]["offer"]), (200, &json!("butter-refill")), "{body}");
    let shown = body["decision"].clone();
    let feedback = json!({"decision": shown, "kind": "accepted"});
    assert_eq!(r.send("/v1/feedback", r.post("/v1/feedback", feedback.clone())).await.0, 204);
    assert_eq!(r.send("/v1/feedback", r.post("/v1/feedback", feedback)).await.0, 409);
    assert_eq!(
        r.send("/v1/feedback", r.post("/v1/feedback", json!({"decision": 999_999, "kind": "accepted"}))).await.0,
        404
    );
    assert_eq!(r.send("/v1/feedback", r.post("/v1/feedback", json!({"decision": 1, "kind": "maybe"}))).await.0, 400);

    let id = shown.as_u64().unwrap();
    assert_eq!(r.send("/v1/decisions/{id}", r.get(&format!("/v1/decisions/{id}"))).await.0, 200);
    assert_eq!(r.send("/v1/decisions/{id}", r.get(&format!("/v1/decisions/{prompted}"))).await.0, 200);
    assert_eq!(r.send("/v1/decisions/{id}", r.get("/v1/decisions/abc")).await.0, 400);
    assert_eq!(r.send("/v1/decisions/{id}", r.get("/v1/decisions/999999")).await.0, 404);

    // Consent, people and presence.
    let change = |granted: bool| json!({"granted": granted, "text_version": "2026-11", "source": "device_ui"});
    assert_eq!(r.send("/v1/consent", r.get("/v1/consent")).await.0, 200);
    assert_eq!(r.send("/v1/consent/{purpose}", r.put("/v1/consent/measure", change(true))).await.0, 200);
    assert_eq!(r.send("/v1/consent/{purpose}", r.put("/v1/consent/share_with_partners", change(true))).await.0, 400);
    assert_eq!(r.send("/v1/people/{person}", r.put("/v1/people/anna", json!({"child": false}))).await.0, 200);
    assert_eq!(r.send("/v1/people/{person}", r.put("/v1/people/Anna", json!({"child": false}))).await.0, 400);
    let person_consent = "/v1/people/{person}/consent/{purpose}";
    assert_eq!(r.send(person_consent, r.put("/v1/people/anna/consent/personalise", change(true))).await.0, 200);
    assert_eq!(r.send(person_consent, r.put("/v1/people/anna/consent/personalise", json!({}))).await.0, 400);
    assert_eq!(r.send(person_consent, r.put("/v1/people/bo/consent/personalise", change(true))).await.0, 404);
    assert_eq!(r.send("/v1/presence", r.put("/v1/presence", json!({"present": ["anna"]}))).await.0, 200);
    assert_eq!(r.send("/v1/presence", r.put("/v1/presence", json!({"present": null}))).await.0, 200);
    assert_eq!(r.send("/v1/presence", r.put("/v1/presence", json!({"here": 1}))).await.0, 400);

    // The home: none yet; this fridge's owner is the default one, which a home refuses.
    assert_eq!(r.send("/v1/home", r.get("/v1/home")).await.0, 200);
    assert_eq!(r.send("/v1/home/code", r.get("/v1/home/code")).await.0, 400);
    assert_eq!(r.send("/v1/home", r.http.post(format!("{}/v1/home", r.api))).await.0, 400);
    assert_eq!(r.send("/v1/home/join", r.post("/v1/home/join", json!({"code": "7QK2M"}))).await.0, 400);
    assert_eq!(r.send("/v1/home/join", r.post("/v1/home/join", json!({"key": 1}))).await.0, 400);
    // Anna's lock screen makes one, shows its code, is joined again with it, and leaves.
    let fleet = agent.config.fleet.clone();
    let anna = TestAgent::start_with(DeviceKind::LockScreen, &fleet, &operator_key(1), &broker(), |raw| {
        raw.owner = Some("anna".into())
    })
    .await;
    let api = std::mem::replace(&mut r.api, anna.api());
    let (status, made) = r.send("/v1/home", r.http.post(format!("{}/v1/home", r.api))).await;
    assert_eq!(status, 200);
    let (status, shown) = r.send("/v1/home/code", r.get("/v1/home/code")).await;
    assert_eq!((status, &shown["code"]), (200, &made["code"]));
    let (status, joined) = r.send("/v1/home/join", r.post("/v1/home/join", json!({"code": made["code"]}))).await;
    assert_eq!((status, &joined["home"]), (200, &made["home"]));
    assert_eq!(r.send("/v1/home", r.delete("/v1/home")).await.0, 200);
    r.api = api;
    anna.stop().await;

    // Export and erasure; status; the description itself.
    assert_eq!(r.send("/v1/my-data", r.get("/v1/my-data")).await.0, 200);
    assert_eq!(r.send("/v1/my-data", r.get("/v1/my-data?person=anna")).await.0, 200);
    assert_eq!(r.send("/v1/my-data", r.get("/v1/my-data?person=Anna")).await.0, 400);
    assert_eq!(r.send("/v1/my-data", r.get("/v1/my-data?person=bo")).await.0, 404);
    assert_eq!(r.send("/v1/my-data", r.delete("/v1/my-data?source=fax")).await.0, 400);
    assert_eq!(r.send("/v1/my-data", r.delete("/v1/my-data?person=bo")).await.0, 404);
    assert_eq!(r.send("/v1/my-data", r.delete("/v1/my-data?person=anna&source=device_ui")).await.0, 200);
    assert_eq!(r.send("/v1/status", r.get("/v1/status")).await.0, 200);
    assert_eq!(r.send("/v1/openapi.json", r.get("/v1/openapi.json")).await.0, 200);

    // The events stream, and the device UI (on for this agent).
    assert_eq!(r.send("/v1/events", r.get("/v1/events")).await.0, 200);
    assert_eq!(r.send("/ui", r.get("/ui")).await.0, 308);
    for file in UI_FILES {
        assert_eq!(r.send(file, r.get(file)).await.0, 200, "{file}");
    }
    assert_eq!(r.send("/ui/{file}", r.get("/ui/index.html")).await.0, 404);
}
