//! Report collectors on PostgreSQL: two `ledtrad-op serve --reports postgres://…` processes on
//! the broker's shared subscription, reports published as devices publish them, and the
//! collectors killed with SIGKILL while reports flow and started again under their names.
//! Every report lands exactly once: none lost (a report is acknowledged only after its insert
//! committed, so one a collector took but did not store comes again), none twice (its id is
//! unique). Also: `ledtrad-op report --db postgres://…` lists what the collectors stored, and
//! a simulator run's reports land once each with two collectors beside its own, one of them
//! killed mid-run.
//!
//! Needs Mosquitto (a broker of its own) and PostgreSQL (a database of its own on the server
//! `LEDTRAD_TEST_POSTGRES` names); without them the test says so and skips, unless
//! `LEDTRAD_REQUIRE_MOSQUITTO` / `LEDTRAD_REQUIRE_POSTGRES` are set (CI sets them).

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ledtrad_agent::broker::Mosquitto;
use ledtrad_operator::collect::{ReportStore, ReportsAt};
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::report::{Arm, Report, ReportId};
use ledtrad_protocol::topic::{Topic, ALL_COLLECTORS_FILTER, COLLECTOR_ONLINE};
use ledtrad_protocol::{codec, CampaignId, FleetId};
use ledtrad_tests::{init_logs, unique, wait_until, TestDatabase};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

const CONF: &str = include_str!("../../deploy/mosquitto/ledtrad.conf");

/// Reports published in all.
const REPORTS: u32 = 3_000;

/// A `ledtrad-op serve` collector process, killed and started again by name.
struct Collector {
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Collector {
    fn new(program: &Path, broker: &BrokerUrl, db: &str, instance: &str, dir: &Path) -> Collector {
        let args = ["serve", "--broker", &broker.to_string(), "--reports", db, "--instance", instance]
            .map(String::from)
            .to_vec();
        Collector { program: program.into(), args, log: dir.join(format!("{instance}.log")), child: None }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(&self.program)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL: no farewell, no acknowledgement of what it holds.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

fn report(n: u32) -> Report {
    Report {
        campaign: CampaignId::try_new(["dairy", "bakery", "books"][n as usize % 3]).unwrap(),
        arm: if n % 4 == 0 { Arm::Holdout } else { Arm::Treatment },
        day: 20_400 + n % 7,
        catalogue_version: 3,
        epsilon: 1.0,
        impressions: 2,
        accepts: 1,
        dismissals: 0,
        conversions: 0,
        id: Some(ReportId(0x1ed7_0000_0000_0000_0000_0000_0000_0000 + u128::from(n))),
    }
}

/// How many reports the database holds, and how many distinct ids.
async fn stored(db: &str) -> (u64, usize) {
    let at: ReportsAt = db.parse().unwrap();
    tokio::task::spawn_blocking(move || {
        let store = ReportStore::connect(&at).unwrap();
        let fleet = FleetId::try_new("collect").unwrap();
        // Both from one read: the rows, and their distinct ids.
        let ids: Vec<_> = store.fleet(&fleet).unwrap().into_iter().map(|r| r.id).collect();
        (ids.len() as u64, ids.iter().collect::<BTreeSet<_>>().len())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_killed_while_reports_flow_store_every_report_exactly_once() {
    init_logs();
    if !ledtrad_tests::mosquitto_installed() {
        return;
    }
    let Some(database) = tokio::task::block_in_place(|| TestDatabase::create("collect")) else { return };
    let dir = tempfile::tempdir().unwrap();
    // A killed collector's session holds its share of what arrives while it is away. On a busy
    // machine starting it again can take seconds, and past the shipped config's queue of 1,000
    // Mosquitto drops QoS 1 messages without a word: the queue here holds the whole run, so
    // what is tested is the collectors' exactly-once, not the machine's speed.
    let queue = [("max_queued_messages", format!("max_queued_messages {}", 2 * REPORTS))];
    let broker = Mosquitto::start(CONF, &queue, dir.path()).unwrap();
    let url = broker.url().clone();
    let op = ledtrad_tests::program("ledtrad-operator", "ledtrad-op");
    let mut collectors =
        ["collector-a", "collector-b"].map(|name| Collector::new(&op, &url, database.url(), name, dir.path()));

    // A device-like client: publishes reports, and watches the collectors' presence.
    let mut options = MqttOptions::new(unique("reporter"), url.host.clone(), url.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_outgoing_inflight_upper_limit(50);
    let (client, mut events) = AsyncClient::new(options, 256);
    let (present_tx, present) = tokio::sync::watch::channel(BTreeSet::<String>::new());
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let topic = String::from_utf8_lossy(&p.topic).to_string();
                let name = topic.rsplit('/').next().unwrap_or_default().to_string();
                present_tx.send_modify(|set| {
                    if p.payload.as_ref() == COLLECTOR_ONLINE {
                        set.insert(name);
                    } else {
                        set.remove(&name);
                    }
                });
            }
        }
    });
    client.subscribe(ALL_COLLECTORS_FILTER, QoS::AtLeastOnce).await.unwrap();
    // Until exactly `n` collectors are present (a killed one's last will clears its presence).
    let wait_present = |n: usize| {
        let mut present = present.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(60), present.wait_for(|set| set.len() == n))
                .await
                .expect("collectors announce themselves within a minute")
                .unwrap();
        }
    };
    for collector in &mut collectors {
        collector.start();
    }
    wait_present(2).await;

    // Reports flow on a task of their own while the collectors are killed and started again.
    let topic = Topic::Reports(FleetId::try_new("collect").unwrap()).name();
    let publisher = tokio::spawn({
        let client = client.clone();
        async move {
            // About 500 a second, ten every 20 ms.
            let mut pace = tokio::time::interval(Duration::from_millis(20));
            for n in 0..REPORTS {
                if n % 10 == 0 {
                    pace.tick().await;
                }
                client.publish(topic.clone(), QoS::AtLeastOnce, false, codec::to_json(&report(n))).await.unwrap();
            }
        }
    });
    let db = database.url().to_string();
    for (round, at) in [(0usize, 400u64), (1, 1_200), (0, 2_000)] {
        wait_until("reports to flow", Duration::from_secs(60), || stored(&db), |(n, _)| *n >= at).await;
        collectors[round].kill();
        // The other collector takes the new reports meanwhile; the killed one's session keeps
        // its share and what it held unacknowledged.
        let (before, _) = stored(&db).await;
        wait_until("the other collector to go on", Duration::from_secs(60), || stored(&db), |(n, _)| *n > before + 50)
            .await;
        collectors[round].start();
    }
    publisher.await.unwrap();
    let (count, distinct) = wait_until(
        "every report to be stored",
        Duration::from_secs(120),
        || stored(&db),
        |(n, _)| *n >= u64::from(REPORTS),
    )
    .await;
    assert_eq!((count, distinct), (u64::from(REPORTS), REPORTS as usize), "each report exactly once");
    // Killed and started once more, the collectors are handed whatever their sessions still
    // held: nothing is stored twice.
    for collector in &mut collectors {
        collector.kill();
    }
    wait_present(0).await;
    for collector in &mut collectors {
        collector.start();
    }
    wait_present(2).await;
    assert_eq!(stored(&db).await, (u64::from(REPORTS), REPORTS as usize));

    // The operator reads the campaigns from the same database.
    let out = Command::new(&op).args(["report", "--db", database.url(), "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reports: u64 = list["campaigns"].as_array().unwrap().iter().map(|c| c["reports"].as_u64().unwrap()).sum();
    assert_eq!(reports, u64::from(REPORTS));
    drop(collectors);
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulator_runs_reports_land_once_each_with_a_collector_killed_mid_run() {
    init_logs();
    if !ledtrad_tests::mosquitto_installed() {
        return;
    }
    let Some(database) = tokio::task::block_in_place(|| TestDatabase::create("simrun")) else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(CONF, &[], dir.path()).unwrap();
    let url = broker.url().clone();
    let op = ledtrad_tests::program("ledtrad-operator", "ledtrad-op");
    let sim = ledtrad_tests::program("ledtrad-sim", "ledtrad-sim");
    let mut collectors =
        ["collector-a", "collector-b"].map(|name| Collector::new(&op, &url, database.url(), name, dir.path()));
    for collector in &mut collectors {
        collector.start();
    }
    // The run brings a collector of its own; the three share the reports.
    let mut run = Command::new(&sim)
        .args(["run", "--homes", "60", "--days", "4", "--consent", "mixed", "--json", "--broker"])
        .arg(url.to_string())
        .args(["--reports", database.url()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let db = database.url().to_string();
    let count = |db: String| async move { database_count(&db).await };
    wait_until("the first reports", Duration::from_secs(300), || count(db.clone()), |n| *n > 0).await;
    collectors[0].kill();
    // Started again once more reports came, or the run ended first.
    let killed_at = count(db.clone()).await;
    let mut look = tokio::time::interval(Duration::from_millis(100));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        look.tick().await;
        assert!(tokio::time::Instant::now() < deadline, "neither more reports nor the run's end in 300 s");
        if count(db.clone()).await > killed_at || run.try_wait().unwrap().is_some() {
            break;
        }
    }
    collectors[0].start();
    let out = tokio::task::spawn_blocking(move || run.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "the run failed: {}", String::from_utf8_lossy(&out.stdout));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let seen = summary["reports_seen"].as_u64().unwrap();
    assert!(seen > 10, "a run with reports to share: {seen}");
    let (count, distinct) = wait_until(
        "the run's reports in the database",
        Duration::from_secs(60),
        || stored_any(&db),
        |(n, _)| *n >= seen,
    )
    .await;
    assert_eq!((count, distinct as u64), (seen, seen), "each report the run sent is stored exactly once");
}

/// How many reports the database holds, from any fleet.
async fn database_count(db: &str) -> u64 {
    stored_any(db).await.0
}

/// How many reports the database holds, from any fleet, and how many distinct ids.
async fn stored_any(db: &str) -> (u64, usize) {
    let at: ReportsAt = db.parse().unwrap();
    tokio::task::spawn_blocking(move || {
        let store = ReportStore::connect(&at).unwrap();
        let mut ids = Vec::new();
        for campaign in store.campaigns().unwrap() {
            ids.extend(store.campaign(None, &campaign).unwrap().into_iter().map(|r| r.id));
        }
        (ids.len() as u64, ids.iter().collect::<BTreeSet<_>>().len())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_database_no_collector_wrote_is_refused_and_sets_nothing_up() {
    let Some(database) = tokio::task::block_in_place(|| TestDatabase::create("empty")) else { return };
    let op = ledtrad_tests::program("ledtrad-operator", "ledtrad-op");
    let out = Command::new(&op).args(["report", "--db", database.url()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("it holds no report table; check the database name"), "{stderr}");
    // Still nothing there: a collector's first start makes the table, and then it reads.
    let at: ReportsAt = database.url().parse().unwrap();
    let (refused, then) = tokio::task::spawn_blocking(move || {
        let refused = ReportStore::connect_to_read(&at).is_err();
        ReportStore::connect(&at).unwrap();
        (refused, ReportStore::connect_to_read(&at).map(|s| s.count().unwrap()).unwrap())
    })
    .await
    .unwrap();
    assert_eq!((refused, then), (true, 0));
}
