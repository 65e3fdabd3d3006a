//! Power cuts: the agent process (`ledtrad-agent run`) is killed with SIGKILL at random points
//! while consent changes, catalogue applies, signals, offers and feedback go on, and started
//! again on the same database. Every time: `PRAGMA integrity_check` is ok; each purpose is as
//! the last consent call that returned left it (or as the one in flight when it died); a
//! revoked `measure` leaves no report in the outbox; and no personalised offer is shown after
//! a revocation of `personalise` whose call returned.
//!
//! The agent runs on the real clock, so its catalogue lets personalised offers come often (no
//! caps to speak of, no quiet hours; answers are acceptances, since a dismissal blocks an offer
//! for two days), and reports, which it queues only when a day has ended, are queued by the
//! test between kills while `measure` is granted, as an earlier day's end would have (no
//! collector runs, so they stay): the checks above then have personalised offers and reports
//! to find.
//!
//! 40 kills by default; `LEDTRAD_CRASH_KILLS=1000` is the long run. Uses a Mosquitto of its own;
//! without one the test says so and skips, unless `LEDTRAD_REQUIRE_MOSQUITTO` is set.

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ledtrad_agent::broker::Mosquitto;
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::caps::{CampaignCaps, Caps, Policy};
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::FleetId;
use ledtrad_tests::{example_catalogue, init_logs, operator_key, unique, wait_until, Draw, T0};
use serde_json::{json, Value};

const CONF: &str = include_str!("../../deploy/mosquitto/ledtrad.conf");

/// The agent's program, built if it is not (as `cargo test --workspace` does anyway).
fn agent_program() -> PathBuf {
    ledtrad_tests::program("ledtrad-agent", "ledtrad-agent")
}

struct Agent {
    program: PathBuf,
    config: PathBuf,
    log: PathBuf,
    api: String,
    child: Option<Child>,
}

impl Agent {
    /// Starts the process and waits until its API answers.
    async fn start(&mut self, http: &reqwest::Client) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(&self.program)
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let child = std::cell::RefCell::new(self.child.as_mut().unwrap());
        let (api, child, log) = (&self.api, &child, &self.log);
        let look = || async move {
            if let Some(status) = child.borrow_mut().try_wait().unwrap() {
                panic!("the agent exited ({status}); its log:\n{}", std::fs::read_to_string(log).unwrap());
            }
            http.get(format!("{api}/v1/status")).send().await.map(|r| r.status())
        };
        let answers = |r: &reqwest::Result<reqwest::StatusCode>| r.as_ref().is_ok_and(|s| s.is_success());
        let _answered = wait_until("the agent's API to answer", Duration::from_secs(20), look, answers).await;
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

/// What the test knows of one purpose: the value the last call that returned set, and the
/// value of a call that was in flight when the agent died (it may or may not have landed).
#[derive(Clone, Copy, Debug)]
struct Known {
    acked: bool,
    in_flight: Option<bool>,
}

impl Known {
    fn allows(self, value: bool) -> bool {
        value == self.acked || self.in_flight == Some(value)
    }
}

async fn set(http: &reqwest::Client, api: &str, purpose: &str, granted: bool) -> bool {
    let body = json!({"granted": granted, "text_version": "2026-11"});
    let response = http.put(format!("{api}/v1/consent/{purpose}")).json(&body).send().await;
    matches!(response, Ok(r) if r.status().is_success())
}

/// Pushes the example catalogue with its caps lifted: on the real clock, its daily caps would
/// allow a personalised offer now and then only.
async fn push(url: &BrokerUrl, fleet: &FleetId, version: u64) {
    let mut catalogue = example_catalogue();
    for offer in &mut catalogue.offers {
        offer.caps = Caps { per_day: 100_000, ..Caps::default() };
    }
    for campaign in &mut catalogue.campaigns {
        campaign.caps = CampaignCaps::default();
    }
    catalogue.policy = Policy::default();
    let expires_at = ledtrad_tests::now().plus_secs(60 * 86_400);
    let options = ledtrad_operator::SignOptions { fleet: fleet.clone(), version, issued_at: T0, expires_at };
    let signed = ledtrad_operator::sign_catalogue(&catalogue, &operator_key(1), &options).unwrap();
    ledtrad_operator::push_envelope(url, fleet, signed, &unique("op")).await.expect("the push is acknowledged");
}

/// Queues `n` reports in the outbox of the (stopped) agent's database, as the end of an
/// earlier day would have.
fn queue_reports(database: &Path, fleet: &FleetId, n: usize) {
    let store = ledtrad_agent::store::Store::open(database).unwrap();
    let topic = Topic::Reports(fleet.clone()).name();
    for i in 0..n {
        let report = json!({"campaign": "dairy-winter", "arm": "treatment", "day": 20_000 + i, "catalogue_version": 1,
            "epsilon": 1.0, "impressions": 1, "accepts": 1, "dismissals": 0, "conversions": 0});
        store.enqueue(ledtrad_protocol::Purpose::Measure, &topic, report.to_string().as_bytes(), T0).unwrap();
    }
}

/// The reports waiting in the outbox.
fn reports_waiting(database: &Path) -> i64 {
    let db = rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    db.query_row("SELECT COUNT(*) FROM outbox WHERE purpose = 'measure'", [], |r| r.get(0)).unwrap()
}

/// Checks the database after a kill; returns whether `measure` stands revoked (and so no
/// report waits).
fn check_database(path: &Path, measure: Known) -> bool {
    let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let integrity: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    let revoked = !measure.acked && measure.in_flight != Some(true);
    if revoked {
        assert_eq!(reports_waiting(path), 0, "reports wait in the outbox after `measure` was revoked");
    }
    revoked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_any_point_the_agent_keeps_its_database_and_its_consent() {
    init_logs();
    if !ledtrad_tests::mosquitto_installed() {
        return;
    }
    let kills: usize = std::env::var("LEDTRAD_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(CONF, &[], dir.path()).unwrap();
    let url = broker.url().clone();
    let fleet = FleetId::try_new(unique("crash")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let database = dir.path().join("agent.db");
    let key = operator_key(1);
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"crash-fridge\"\nkind = \"fridge\"\nfleet = \"{fleet}\"\nbroker = \"{url}\"\n\
             database = \"{}\"\napi = \"127.0.0.1:{port}\"\ncamouflage_share = 0.0\n\n\
             [[operator_keys]]\nid = \"{}\"\npublic_key = \"{}\"\n",
            database.display(),
            key.id,
            key.public_hex()
        ),
    )
    .unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut agent = Agent {
        program: agent_program(),
        config,
        log: dir.path().join("agent.log"),
        api: format!("http://127.0.0.1:{port}"),
        child: None,
    };
    let mut version = 1;
    push(&url, &fleet, version).await;
    agent.start(&http).await;

    let mut draw = Draw(0x2545_f491_4f6c_dd1d);
    let mut personalise = Known { acked: false, in_flight: None };
    let mut measure = Known { acked: false, in_flight: None };
    let (mut shown, mut personalised, mut personalised_after_revocation) = (0u64, 0u64, 0u64);
    // Reports queued while `measure` was granted, and those a revocation then deleted.
    let (mut reports_queued, mut reports_revoked) = (0i64, 0i64);
    let mut started = Instant::now();
    for kill in 0..kills {
        if kill % 5 == 4 {
            version += 1;
            push(&url, &fleet, version).await;
        }
        let api = agent.api.clone();
        let mut steps = Draw(draw.below(u64::MAX));
        // The work between two power cuts: every call's outcome is recorded as it returns.
        let work = async {
            loop {
                match steps.below(6) {
                    0 => {
                        let value = steps.below(2) == 0;
                        personalise.in_flight = Some(value);
                        if set(&http, &api, "personalise", value).await {
                            personalise = Known { acked: value, in_flight: None };
                        }
                    }
                    1 => {
                        let value = steps.below(2) == 0;
                        measure.in_flight = Some(value);
                        if set(&http, &api, "measure", value).await {
                            measure = Known { acked: value, in_flight: None };
                        }
                    }
                    2 => {
                        let low = ["butter", "milk", "vegetables", "drinks"]
                            .map(|item| json!({"feature": format!("fridge.{item}.level"), "value": 0.05}));
                        let body = json!({"signals": low});
                        let _ = http.post(format!("{api}/v1/signals")).json(&body).send().await;
                    }
                    3 => {
                        let _ = http.get(format!("{api}/v1/my-data")).send().await;
                    }
                    _ => {
                        let Ok(r) = http.get(format!("{api}/v1/offer?moment=door_opened")).send().await else {
                            continue;
                        };
                        if r.status().as_u16() != 200 {
                            continue;
                        }
                        let Ok(offer) = r.json::<Value>().await else { continue };
                        shown += 1;
                        personalised += u64::from(offer["offer"]["personalised"] == true);
                        let revoked = !personalise.acked && personalise.in_flight.is_none();
                        if revoked && offer["offer"]["personalised"] == true {
                            personalised_after_revocation += 1;
                        }
                        let feedback = json!({"decision": offer["decision"], "kind": "accepted"});
                        let _ = http.post(format!("{api}/v1/feedback")).json(&feedback).send().await;
                    }
                }
            }
        };
        // Not a wait: the kill point, drawn at random, is the fault.
        let cut = tokio::time::sleep(Duration::from_millis(draw.below(300)));
        tokio::select! {
            () = work => {}
            () = cut => {}
        }
        agent.kill();
        let waiting_before = reports_waiting(&database);
        if check_database(&database, measure) {
            // Waiting before the revocation (no collector runs, so nothing took them), gone now.
            reports_revoked += reports_queued;
            reports_queued = 0;
        } else if measure.acked && measure.in_flight.is_none() && waiting_before < 20 {
            queue_reports(&database, &fleet, 3);
            reports_queued = waiting_before + 3;
        }
        agent.start(&http).await;
        let consent: Value = http.get(format!("{}/v1/consent", agent.api)).send().await.unwrap().json().await.unwrap();
        for (purpose, known) in [("personalise", &mut personalise), ("measure", &mut measure)] {
            let value = consent[purpose].as_bool().unwrap();
            assert!(known.allows(value), "after kill {kill}, {purpose} is {value}; the test knew {known:?}");
            *known = Known { acked: value, in_flight: None };
        }
        if kill == 0 {
            started = Instant::now();
        }
    }
    let status: Value = http.get(format!("{}/v1/status", agent.api)).send().await.unwrap().json().await.unwrap();
    println!(
        "{{\"kills\": {kills}, \"offers_shown\": {shown}, \"personalised\": {personalised}, \
         \"personalised_after_revocation\": {personalised_after_revocation}, \
         \"reports_deleted_by_revocation\": {reports_revoked}, \"catalogue_version\": {}, \"seconds\": {:.1}}}",
        status["catalogue_version"],
        started.elapsed().as_secs_f64()
    );
    assert_eq!(personalised_after_revocation, 0, "a personalised offer was shown after `personalise` was revoked");
    assert!(shown > 0, "offers were shown between the kills");
    assert!(personalised > 0, "personalised offers were shown, so their absence after a revocation means something");
    assert!(reports_revoked > 0, "revocations found reports waiting, so their absence after one means something");
    agent.kill();
    check_database(&database, measure);
    drop(broker);
}
