//! Broker and network faults, against a Mosquitto of the test's own (free loopback port,
//! persistence in a temporary directory, saved every 30 s as shipped): while agents send reports and the operator collects
//! them, the broker is killed and started again, or the network between agents and broker (a
//! proxy of the test's own adding 20 ms each way) drops every connection or goes away for a
//! while. Every report an agent queued must end up stored exactly once, and every agent must
//! end on the latest catalogue.
//!
//! The same with the embedded broker (`ledtrad-sim broker`, a process of its own), which comes
//! back from each kill with no sessions and no retained messages: the operator keeps the
//! catalogue retained (`ledtrad-op catalogue push --keep`, as a library) and pushes it again,
//! and the collector announces itself again once it has subscribed, before which the agents
//! keep their reports.
//!
//! The counts are small by default so the suite stays quick; set `LEDTRAD_FAULT_AGENTS` and
//! `LEDTRAD_FAULT_RESTARTS` for a longer run (the README quotes one with 50 agents and 100
//! restarts). Without a `mosquitto` binary the test says so and skips, unless
//! `LEDTRAD_REQUIRE_MOSQUITTO` is set (CI sets it).

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ledtrad_agent::broker::{Mosquitto, Stop};
use ledtrad_operator::collect::ReportStore;
use ledtrad_operator::serve::{Running, ServeOptions};
use ledtrad_operator::{KeepEnd, Kept, PushError};
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::{DeviceKind, FleetId, Moment, Purpose};
use ledtrad_tests::{
    envelope, grant, init_logs, operator_key, unique, wait_until, wait_until_blocking, Draw, TestAgent, T0,
};

/// The development config shipped for Mosquitto (saving every 30 s), queueing enough for the
/// collector while it reconnects.
const CONF: &str = include_str!("../../deploy/mosquitto/ledtrad.conf");

fn count(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Pushes the fleet's catalogue `version`; returns the envelope.
async fn push(url: &BrokerUrl, fleet: &FleetId, version: u64) -> Vec<u8> {
    let key = operator_key(1);
    let signed = envelope(&key, fleet, version, T0, T0.plus_secs(60 * 86_400));
    ledtrad_operator::push_envelope(url, fleet, signed.clone(), &unique("op")).await.expect("the push is acknowledged");
    signed
}

/// The operator keeping a pushed catalogue retained ([`ledtrad_operator::keep_retained`]).
struct Keeper {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<Kept, PushError>>,
}

impl Keeper {
    fn start(url: &BrokerUrl, fleet: &FleetId, envelope: Vec<u8>) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (url, topic) = (url.clone(), Topic::Catalogue(fleet.clone()));
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            ledtrad_operator::keep_retained(
                &url,
                &ledtrad_mqtt::Access::default(),
                &topic,
                envelope,
                &unique("keep"),
                |_| {},
                stopped,
            )
            .await
        });
        Keeper { stop, task }
    }

    /// Stops it and says how it ended.
    async fn stop(self) -> Kept {
        let _ = self.stop.send(());
        Self::ended(self.task).await
    }

    /// Waits until it ends by itself, and says how.
    async fn ended(task: tokio::task::JoinHandle<Result<Kept, PushError>>) -> Kept {
        tokio::time::timeout(Duration::from_secs(60), task).await.expect("the keeper ends").unwrap().unwrap()
    }
}

/// The embedded broker in a process of its own (`ledtrad-sim broker`), on a fixed loopback
/// port across restarts.
struct EmbeddedProcess {
    program: std::path::PathBuf,
    url: BrokerUrl,
    child: Child,
}

impl EmbeddedProcess {
    fn start() -> Self {
        let program = ledtrad_tests::program("ledtrad-sim", "ledtrad-sim");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = BrokerUrl::tcp("127.0.0.1", port);
        let child = Self::spawn(&program, port);
        let mut broker = EmbeddedProcess { program, url, child };
        broker.wait_listening();
        broker
    }

    fn spawn(program: &std::path::Path, port: u16) -> Child {
        Command::new(program)
            .args(["broker", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ledtrad-sim broker starts")
    }

    fn wait_listening(&mut self) {
        let (child, port) = (&mut self.child, self.url.port);
        let look = || {
            assert!(child.try_wait().unwrap().is_none(), "ledtrad-sim broker exited");
            std::net::TcpStream::connect(("127.0.0.1", port)).map(drop)
        };
        let _listening =
            wait_until_blocking("ledtrad-sim broker to listen", Duration::from_secs(10), look, Result::is_ok);
    }

    /// SIGKILL, or Ctrl-C (SIGINT) for a graceful stop; either way its state is gone.
    fn stop(&mut self, how: Stop) {
        let signal = if how == Stop::Kill { "-KILL" } else { "-INT" };
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill {signal}");
        self.child.wait().unwrap();
    }

    fn restart(&mut self) {
        self.child = Self::spawn(&self.program, self.url.port);
        self.wait_listening();
    }
}

impl Drop for EmbeddedProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The broker under test.
enum Broker {
    Mosquitto(Mosquitto),
    Embedded(EmbeddedProcess),
}

impl Broker {
    fn url(&self) -> BrokerUrl {
        match self {
            Broker::Mosquitto(m) => m.url().clone(),
            Broker::Embedded(e) => e.url.clone(),
        }
    }

    fn stop(&mut self, how: Stop) {
        match self {
            Broker::Mosquitto(m) => m.stop(how).unwrap(),
            Broker::Embedded(e) => e.stop(how),
        }
    }

    fn restart(&mut self) {
        match self {
            Broker::Mosquitto(m) => m.restart().unwrap(),
            Broker::Embedded(e) => e.restart(),
        }
    }
}

/// The operator's collector, with the stable client id a persistent session needs.
async fn collector(url: &BrokerUrl, reports: &std::path::Path) -> Running {
    let options = ServeOptions {
        broker: url.clone(),
        access: ledtrad_mqtt::Access::default(),
        instance: "faults".parse().unwrap(),
        service: None,
        reports: Some(ReportStore::open(reports).unwrap()),
        session_secs: 600,
    };
    ledtrad_operator::serve::start(options, Duration::from_secs(10)).await.expect("the collector starts")
}

/// What goes wrong each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The broker is killed (SIGKILL or SIGTERM) and started again.
    BrokerRestart,
    /// The network between the agents and the broker (a proxy adding 20 ms each way) drops
    /// every connection, or goes away for a while and comes back.
    Flapping,
    /// The embedded broker (a process of its own) is killed (SIGKILL or Ctrl-C) and started
    /// again, with no sessions and no retained messages.
    EmbeddedRestart,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_sent_through_broker_restarts_are_stored_exactly_once() {
    faults(Fault::BrokerRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_sent_over_a_slow_flapping_network_are_stored_exactly_once() {
    faults(Fault::Flapping).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_sent_through_embedded_broker_restarts_are_stored_exactly_once() {
    faults(Fault::EmbeddedRestart).await;
}

/// The resident memory of this process (the agents run in it), from /proc.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next());
    kb.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 1024
}

async fn faults(fault: Fault) {
    init_logs();
    if fault != Fault::EmbeddedRestart && !ledtrad_tests::mosquitto_installed() {
        return;
    }
    let (agents_wanted, restarts) = (count("LEDTRAD_FAULT_AGENTS", 10), count("LEDTRAD_FAULT_RESTARTS", 12));
    let dir = tempfile::tempdir().unwrap();
    // The shipped save every 30 s: a SIGKILL loses what the broker acknowledged since, which
    // the agents send again (they keep what was acknowledged for `LINGER`).
    let replace = [("max_queued_messages", "max_queued_messages 100000".to_string())];
    let mut broker = match fault {
        Fault::EmbeddedRestart => Broker::Embedded(EmbeddedProcess::start()),
        _ => Broker::Mosquitto(Mosquitto::start(CONF, &replace, dir.path()).unwrap()),
    };
    let url = broker.url();
    let reports_db = dir.path().join("reports.db");
    let mut collecting = collector(&url, &reports_db).await;
    let mut duplicates_before = 0;
    let fleet = FleetId::try_new(unique("faults")).unwrap();
    let key = operator_key(1);
    let mut version = 1;
    let signed = push(&url, &fleet, version).await;
    // The embedded broker forgets retained messages when it restarts: the operator keeps the
    // catalogue there, each push's keeper ending when the next push replaces its envelope.
    let keeps = fault == Fault::EmbeddedRestart;
    let mut keeper = keeps.then(|| Keeper::start(&url, &fleet, signed));
    let mut republished = 0;
    let proxy = ledtrad_tests::CutProxy::start_to(&url, Duration::from_millis(20)).await;
    let agents_url = match fault {
        Fault::BrokerRestart | Fault::EmbeddedRestart => url.clone(),
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
        // Not waits: how long after the traffic starts the fault comes, and how long it lasts,
        // drawn at random, are the fault.
        let going_wrong = async {
            tokio::time::sleep(Duration::from_millis(down_after)).await;
            match fault {
                Fault::BrokerRestart | Fault::EmbeddedRestart => {
                    tokio::task::block_in_place(|| broker.stop(how));
                    tokio::time::sleep(Duration::from_millis(back_after)).await;
                    tokio::task::block_in_place(|| broker.restart());
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
            (Fault::BrokerRestart | Fault::EmbeddedRestart, Stop::Kill, _) => kills += 1,
            (Fault::BrokerRestart | Fault::EmbeddedRestart, Stop::Graceful, _) => graceful += 1,
            (Fault::Flapping, _, true) => outages += 1,
            (Fault::Flapping, _, false) => cuts += 1,
        }
        if round % 5 == 4 {
            version += 1;
            let signed = push(&url, &fleet, version).await;
            republished += replace_keeper(&mut keeper, &url, &fleet, signed).await;
        }
    }
    version += 1;
    let signed = push(&url, &fleet, version).await;
    republished += replace_keeper(&mut keeper, &url, &fleet, signed).await;
    if keeps {
        // Once more, with the latest catalogue retained and the collector away: the broker
        // comes back without either. A device that subscribes only then gets the catalogue from
        // the keeper, and the devices keep the reports they would send again until the
        // collector is back (the broker would acknowledge them and drop them).
        duplicates_before = collecting.stop().await.unwrap().reports_duplicate;
        tokio::task::block_in_place(|| broker.stop(Stop::Kill));
        kills += 1;
        tokio::task::block_in_place(|| broker.restart());
        let late = TestAgent::start_via(DeviceKind::Fridge, &fleet, &key, &agents_url).await;
        late.wait_for("the latest catalogue, pushed again", |s| s.catalogue_version == Some(version)).await;
        agents.push(late);
        for agent in &agents {
            let status = || async { agent.handle().status().await.unwrap() };
            wait_until("the agent back on the broker", Duration::from_secs(60), status, |s| s.connected).await;
            // Fresh reports too, which no collector has seen yet.
            agent.clock.advance(6 * 3600);
            agent.handle().offer(Moment::DoorOpened).await.unwrap();
            queued += agent.handle().flush_reports().await.unwrap();
        }
        // They hold those reports: no collector is known to them.
        for agent in &agents {
            agent.wait_for("no collector known", |s| !s.collector_present).await;
        }
        collecting = collector(&url, &reports_db).await;
    }

    // Every agent ends on the latest catalogue with its outbox empty: everything acknowledged.
    // An agent that met the broker down several times in a row waits up to its longest
    // reconnect backoff (30 s) before it tries again.
    for agent in &agents {
        let look = || async {
            let version = agent.handle().status().await.unwrap().catalogue_version;
            (version, agent.handle().my_data(None).await.unwrap().queued_messages.len())
        };
        let what = "the latest catalogue and an empty outbox (version, messages queued)";
        wait_until(what, Duration::from_secs(90), look, |seen| *seen == (Some(version), 0)).await;
    }
    let store = ReportStore::open(&reports_db).unwrap();
    // Wait for the collector; a surplus (a duplicate stored) fails below.
    let stored = || std::future::ready(store.fleet(&fleet).unwrap().len());
    wait_until("every queued report stored", Duration::from_secs(30), stored, |n| *n >= queued).await;
    if let Some(keeper) = keeper {
        let kept = keeper.stop().await;
        assert_eq!(kept.ended, KeepEnd::Stopped);
        republished += kept.republished;
    }
    let reports = store.fleet(&fleet).unwrap();
    let duplicates = duplicates_before + collecting.counts().reports_duplicate;
    println!(
        "{{\"fault\": \"{fault:?}\", \"agents\": {agents_wanted}, \"rounds\": {restarts}, \"sigkill\": {kills}, \
         \"sigterm\": {graceful}, \"cuts\": {cuts}, \"outages\": {outages}, \"reports_queued\": {queued}, \
         \"reports_stored\": {}, \"duplicates_dropped\": {}, \"latest_version\": {version}, \
         \"catalogue_pushed_again\": {republished}, \"rss_before\": {rss_before}, \"rss_after\": {}, \"seconds\": {:.1}}}",
        reports.len(),
        duplicates,
        rss_bytes(),
        started.elapsed().as_secs_f64()
    );
    assert!(queued >= agents_wanted, "the agents queued reports ({queued})");
    assert_eq!(reports.len(), queued, "every queued report stored exactly once");
    let ids: std::collections::BTreeSet<_> = reports.iter().map(|r| r.id.expect("an id")).collect();
    assert_eq!(ids.len(), queued);
    if keeps {
        assert!(republished > 0, "the restarted broker had lost the catalogue, and the keeper pushed it again");
    }
    for agent in agents {
        agent.shutdown().await;
    }
    collecting.stop().await.unwrap();
}

/// After a push, where the run keeps the catalogue, the previous keeper ends, its envelope replaced,
/// and one for the new envelope takes over; returns how many times the previous one pushed again.
async fn replace_keeper(keeper: &mut Option<Keeper>, url: &BrokerUrl, fleet: &FleetId, signed: Vec<u8>) -> u64 {
    // Only where the run keeps the catalogue (the embedded broker): Mosquitto saves it.
    if keeper.is_none() {
        return 0;
    }
    let Some(previous) = keeper.replace(Keeper::start(url, fleet, signed)) else { return 0 };
    // Its stop stays unsent (dropping it would stop it) until it has ended by itself.
    let Keeper { stop, task } = previous;
    let kept = Keeper::ended(task).await;
    drop(stop);
    assert_eq!(kept.ended, KeepEnd::Replaced, "the next push replaced its envelope");
    kept.republished
}

/// The operator's programs as a user runs them: `ledtrad-sim broker`, and `ledtrad-op catalogue
/// push --keep`, which pushes the catalogue again when the broker comes back without it and
/// says how often when stopped with Ctrl-C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_keep_pushes_the_catalogue_again_after_the_embedded_broker_restarts() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let op = ledtrad_tests::program("ledtrad-operator", "ledtrad-op");
    let keys = dir.path().join("keys");
    let keygen = Command::new(&op).args(["keygen", "--id", "op", "--out"]).arg(&keys).output().unwrap();
    assert!(keygen.status.success(), "{}", String::from_utf8_lossy(&keygen.stderr));
    let mut broker = EmbeddedProcess::start();
    let fleet = unique("keep");
    let catalogue = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalogues/home.toml");
    let mut keeper = Command::new(&op)
        .args(["catalogue", "push", catalogue, "--version", "3", "--keep", "--fleet", &fleet])
        .args(["--broker", &broker.url.to_string(), "--key"])
        .arg(keys.join("op.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let topic = Topic::Catalogue(FleetId::try_new(fleet.as_str()).unwrap());
    let url = broker.url.clone();
    let held = |held: &bool| *held;
    wait_until("the pushed catalogue", Duration::from_secs(30), || has_retained(&url, &topic), held).await;
    tokio::task::block_in_place(|| broker.stop(Stop::Kill));
    tokio::task::block_in_place(|| broker.restart());
    assert!(!has_retained(&url, &topic).await, "the embedded broker forgets retained messages");
    wait_until("the catalogue pushed again", Duration::from_secs(30), || has_retained(&url, &topic), held).await;
    let interrupt = Command::new("kill").args(["-INT", &keeper.id().to_string()]).status().unwrap();
    assert!(interrupt.success());
    let output = tokio::task::block_in_place(|| {
        let exited = || keeper.try_wait().unwrap();
        wait_until_blocking("ledtrad-op to stop on Ctrl-C", Duration::from_secs(10), exited, Option::is_some);
        keeper.wait_with_output().unwrap()
    });
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("pushed catalogue '{catalogue}' version 3")), "{stdout}");
    assert!(stderr.contains("keeping catalogue version 3 retained"), "{stderr}");
    assert!(stderr.contains("the broker came back without catalogue version 3; pushed it again"), "{stderr}");
    assert!(stdout.contains("pushed it again 1 time(s); stopped"), "{stdout}");
}

/// Whether the broker holds a retained message on `topic` (one comes within 300 ms of the
/// subscription's acknowledgement).
async fn has_retained(url: &BrokerUrl, topic: &Topic) -> bool {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::Event;
    let (client, mut events) = ledtrad_operator::mqtt::connect(url, &unique("look"));
    let look = async {
        let mut acknowledged = None;
        loop {
            let wait = acknowledged
                .map_or(Duration::from_secs(5), |at: Instant| Duration::from_millis(300).saturating_sub(at.elapsed()));
            match tokio::time::timeout(wait, events.poll()).await {
                Err(_) => return false,
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    client.try_subscribe(topic.name(), rumqttc::v5::mqttbytes::QoS::AtLeastOnce).unwrap();
                }
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => acknowledged = Some(Instant::now()),
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => return p.retain && !p.payload.is_empty(),
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return false,
            }
        }
    };
    let found = look.await;
    let _ = client.try_disconnect();
    found
}

/// A broker restored from its last save can say it kept a device's session and still have lost
/// subscriptions made since, and the "online" a collector published meanwhile. Here, while the
/// agent cannot reach the broker (a proxy between them refuses it), a client with the agent's
/// id takes its session and unsubscribes all of it; then the collector comes back and a newer
/// catalogue is pushed, so that nothing waits in the session for the agent. Back on that
/// session, the agent must subscribe again and get both as retained messages, and its report
/// must reach the collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_kept_session_lost_its_subscriptions_subscribes_again() {
    init_logs();
    if !ledtrad_tests::mosquitto_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(CONF, &[], dir.path()).unwrap();
    let url = broker.url().clone();
    let proxy = ledtrad_tests::CutProxy::start_to(&url, Duration::ZERO).await;
    let reports_db = dir.path().join("reports.db");
    let fleet = FleetId::try_new(unique("lost-subscriptions")).unwrap();
    push(&url, &fleet, 1).await;
    let collecting = collector(&url, &reports_db).await;
    let agent = TestAgent::start_via(DeviceKind::Fridge, &fleet, &operator_key(1), &proxy.url).await;
    grant(&agent, Purpose::Measure).await;
    grant(&agent, Purpose::Personalise).await;
    agent.wait_for("version 1, a collector", |s| s.catalogue_version == Some(1) && s.collector_present).await;
    collecting.stop().await.unwrap();
    agent.wait_for("the collector gone", |s| !s.collector_present).await;

    proxy.pause();
    agent.wait_for("the agent cut off", |s| !s.connected).await;
    take_away_subscriptions(&url, &agent.config.device, &fleet).await;
    let collecting = collector(&url, &reports_db).await;
    push(&url, &fleet, 2).await;
    proxy.resume();
    agent
        .wait_for("version 2 and the collector, subscribed again", |s| {
            s.connected && s.catalogue_version == Some(2) && s.collector_present
        })
        .await;
    agent.clock.advance(6 * 3600);
    let shown = agent.handle().offer(Moment::DoorOpened).await.unwrap().decision.shown;
    assert!(shown.is_some(), "an offer is shown");
    assert_eq!(agent.handle().flush_reports().await.unwrap(), 1);
    let stored = collecting.wait_for_reports(1, Duration::from_secs(15)).await;
    assert_eq!(stored, 1, "the report reached the collector");
    agent.shutdown().await;
    collecting.stop().await.unwrap();
}

/// Takes the MQTT session the broker keeps for `device`'s agent, unsubscribes all that an
/// agent of `fleet` subscribes to, and leaves the session to the broker.
async fn take_away_subscriptions(url: &BrokerUrl, device: &ledtrad_protocol::DeviceId, fleet: &FleetId) {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::Event;
    let filters = [
        Topic::Catalogue(fleet.clone()).name(),
        Topic::Model(fleet.clone()).name(),
        Topic::Offers(device.clone()).name(),
        ledtrad_protocol::topic::ALL_COLLECTORS_FILTER.to_string(),
    ];
    let mut options = ledtrad_operator::mqtt::options(url, &format!("ledtrad-{device}"));
    options.set_clean_start(false);
    options.set_session_expiry_interval(Some(ledtrad_agent::runtime::SESSION_EXPIRY_SECS));
    let (client, mut events) = rumqttc::v5::AsyncClient::new(options, 16);
    let mut unsubscribed = 0;
    while unsubscribed < filters.len() {
        match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                assert!(ack.session_present, "the broker keeps the agent's session");
                for filter in &filters {
                    client.try_unsubscribe(filter.clone()).unwrap();
                }
            }
            Ok(Ok(Event::Incoming(Packet::UnsubAck(_)))) => unsubscribed += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("taking the agent's session: {e}"),
            Err(_) => panic!("taking the agent's session: no answer from the broker in 10 s"),
        }
    }
    client.try_disconnect().unwrap();
    while !matches!(events.poll().await, Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_)) {}
}
