//! Broker and network faults, against a Mosquitto of the test's own (free loopback port,
//! persistence in a temporary directory, saved every 30 s as shipped): while agents send reports and the operator collects
//! them, the broker is killed and started again, or the network between agents and broker (a
//! proxy of the test's own adding 20 ms each way) drops every connection or goes away for a
//! while. Every report an agent queued must end up stored exactly once, and every agent must
//! end on the latest catalogue.
//!
//! The counts are small by default so the suite stays quick; set `LEDTRAD_FAULT_AGENTS` and
//! `LEDTRAD_FAULT_RESTARTS` for a longer run (the README quotes one with 50 agents and 100
//! restarts). Without a `mosquitto` binary the test says so and skips, unless
//! `LEDTRAD_REQUIRE_MOSQUITTO` is set (CI sets it).

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use ledtrad_agent::broker::{Mosquitto, Stop};
use ledtrad_operator::collect::ReportStore;
use ledtrad_operator::serve::{Running, ServeOptions};
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::{DeviceKind, FleetId, Moment, Purpose};
use ledtrad_tests::{envelope, grant, init_logs, operator_key, unique, Draw, TestAgent, T0};

/// The development config shipped for Mosquitto (saving every 30 s), queueing enough for the
/// collector while it reconnects.
const CONF: &str = include_str!("../../deploy/mosquitto/ledtrad.conf");

fn count(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn push(url: &BrokerUrl, fleet: &FleetId, version: u64) {
    let key = operator_key(1);
    let signed = envelope(&key, fleet, version, T0, T0.plus_secs(60 * 86_400));
    ledtrad_operator::push_envelope(url, fleet, signed, &unique("op")).await.expect("the push is acknowledged");
}

/// The operator's collector, with the stable client id a persistent session needs.
async fn collector(url: &BrokerUrl, reports: &std::path::Path) -> Running {
    let options = ServeOptions {
        broker: url.clone(),
        login: None,
        client_id: "ledtrad-op-serve-faults".into(),
        service: None,
        reports: Some(ReportStore::open(reports).unwrap()),
        session_secs: 600,
    };
    ledtrad_operator::serve::start(options, Duration::from_secs(10)).await.expect("the collector starts")
}

/// Waits until `done` holds, checking every 50 ms, or panics naming `what` after `within`.
async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, within: Duration, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What goes wrong each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The broker is killed (SIGKILL or SIGTERM) and started again.
    BrokerRestart,
    /// The network between the agents and the broker (a proxy adding 20 ms each way) drops
    /// every connection, or goes away for a while and comes back.
    Flapping,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_sent_through_broker_restarts_are_stored_exactly_once() {
    faults(Fault::BrokerRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_sent_over_a_slow_flapping_network_are_stored_exactly_once() {
    faults(Fault::Flapping).await;
}

/// The resident memory of this process (the agents run in it), from /proc.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next());
    kb.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 1024
}

async fn faults(fault: Fault) {
    init_logs();
    if Mosquitto::find_binary("mosquitto").is_none() {
        assert!(std::env::var_os("LEDTRAD_REQUIRE_MOSQUITTO").is_none(), "mosquitto is not installed");
        eprintln!("skipped: mosquitto is not installed (apt-get install -y mosquitto)");
        return;
    }
    let (agents_wanted, restarts) = (count("LEDTRAD_FAULT_AGENTS", 10), count("LEDTRAD_FAULT_RESTARTS", 12));
    let dir = tempfile::tempdir().unwrap();
    // The shipped save every 30 s: a SIGKILL loses what the broker acknowledged since, which
    // the agents send again (they keep what was acknowledged for `LINGER`).
    let replace = [("max_queued_messages", "max_queued_messages 100000".to_string())];
    let mut broker = Mosquitto::start(CONF, &replace, dir.path()).unwrap();
    let url = broker.url().clone();
    let reports_db = dir.path().join("reports.db");
    let collecting = collector(&url, &reports_db).await;
    let fleet = FleetId::try_new(unique("faults")).unwrap();
    let key = operator_key(1);
    let mut version = 1;
    push(&url, &fleet, version).await;
    let proxy = ledtrad_tests::CutProxy::start_to(&url, Duration::from_millis(20)).await;
    let agents_url = match fault {
        Fault::BrokerRestart => url.clone(),
        Fault::Flapping => proxy.url.clone(),
    };
    let mut agents = Vec::new();
    for _ in 0..agents_wanted {
        let agent = TestAgent::start_via(DeviceKind::Fridge, &fleet, &key, &agents_url).await;
        grant(&agent, Purpose::Measure).await;
        agents.push(agent);
    }
    for agent in &agents {
        agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;
    }

    let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
    let (mut queued, mut kills, mut graceful, mut cuts, mut outages) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let started = Instant::now();
    let rss_before = rss_bytes();
    for round in 0..restarts {
        // Each agent shows an offer (from its own catalogue: it decides offline too) and queues
        // the report, while the broker goes down at a random point and comes back.
        let traffic = async {
            let mut queued = 0;
            for agent in &agents {
                agent.clock.advance(6 * 3600);
                agent.handle().offer(Moment::DoorOpened).await.unwrap();
                queued += agent.handle().flush_reports().await.unwrap();
            }
            queued
        };
        let how = match std::env::var("LEDTRAD_FAULT_STOP").as_deref() {
            Ok("kill") => Stop::Kill,
            Ok("term") => Stop::Graceful,
            _ if draw.below(2) == 0 => Stop::Kill,
            _ => Stop::Graceful,
        };
        let (down_after, back_after) = (draw.below(150), draw.below(400));
        let outage = draw.below(2) == 0;
        let going_wrong = async {
            tokio::time::sleep(Duration::from_millis(down_after)).await;
            match fault {
                Fault::BrokerRestart => {
                    tokio::task::block_in_place(|| broker.stop(how)).unwrap();
                    tokio::time::sleep(Duration::from_millis(back_after)).await;
                    tokio::task::block_in_place(|| broker.restart()).unwrap();
                }
                Fault::Flapping if outage => {
                    proxy.pause();
                    tokio::time::sleep(Duration::from_millis(back_after)).await;
                    proxy.resume();
                }
                Fault::Flapping => proxy.cut(),
            }
        };
        let (sent, ()) = tokio::join!(traffic, going_wrong);
        queued += sent;
        match (fault, how, outage) {
            (Fault::BrokerRestart, Stop::Kill, _) => kills += 1,
            (Fault::BrokerRestart, Stop::Graceful, _) => graceful += 1,
            (Fault::Flapping, _, true) => outages += 1,
            (Fault::Flapping, _, false) => cuts += 1,
        }
        if round % 5 == 4 {
            version += 1;
            push(&url, &fleet, version).await;
        }
    }
    version += 1;
    push(&url, &fleet, version).await;

    // Every agent ends on the latest catalogue with its outbox empty: everything acknowledged.
    // An agent that met the broker down several times in a row waits up to its longest
    // reconnect backoff (30 s) before it tries again.
    for agent in &agents {
        wait_until("the latest catalogue and an empty outbox", Duration::from_secs(90), || async {
            let status = agent.handle().status().await.unwrap();
            status.catalogue_version == Some(version)
                && agent.handle().my_data(None).await.unwrap().queued_messages.is_empty()
        })
        .await;
    }
    let store = ReportStore::open(&reports_db).unwrap();
    // Wait for the collector; a surplus (a duplicate stored) or a loss fails below.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while store.fleet(&fleet).unwrap().len() < queued {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let reports = store.fleet(&fleet).unwrap();
    let counts = collecting.counts();
    println!(
        "{{\"fault\": \"{fault:?}\", \"agents\": {agents_wanted}, \"rounds\": {restarts}, \"sigkill\": {kills}, \
         \"sigterm\": {graceful}, \"cuts\": {cuts}, \"outages\": {outages}, \"reports_queued\": {queued}, \
         \"reports_stored\": {}, \"duplicates_dropped\": {}, \"latest_version\": {version}, \"rss_before\": {rss_before}, \
         \"rss_after\": {}, \"seconds\": {:.1}}}",
        reports.len(),
        counts.reports_duplicate,
        rss_bytes(),
        started.elapsed().as_secs_f64()
    );
    assert!(queued >= agents_wanted, "the agents queued reports ({queued})");
    assert_eq!(reports.len(), queued, "every queued report stored exactly once");
    let ids: std::collections::BTreeSet<_> = reports.iter().map(|r| r.id.expect("an id")).collect();
    assert_eq!(ids.len(), queued);
    for agent in agents {
        agent.shutdown().await;
    }
    collecting.stop().await.unwrap();
}
