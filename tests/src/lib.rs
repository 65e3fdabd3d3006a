//! Helpers for ledtrad's end-to-end tests: a broker (the embedded one, or the one named by
//! `LEDTRAD_TEST_BROKER`), agents on temporary databases, an operator key, and pushes.
//!
//! # Layout
//!
//! - [`wait`]: waiting until something holds, or failing with what was awaited and the last
//!   value seen (for states with no event to await).
//! - [`require`]: what a test needs from the machine (Mosquitto, Chromium, a mount), and the
//!   `LEDTRAD_REQUIRE_*` rule for when it is missing.
//! - This file: brokers, agents, keys, catalogues, pushes, a proxy that cuts connections, and
//!   a report listener. The tests are in `tests/`.

pub mod postgres;
pub mod require;
pub mod wait;

pub use postgres::TestDatabase;
pub use require::{mosquitto_installed, present_or_skip};
pub use wait::{wait_until, wait_until_blocking};

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ledtrad_agent::broker::EmbeddedBroker;
use ledtrad_agent::{AgentHandle, AgentStatus, Config, ManualClock, RawConfig, RawKey, RunningAgent};
use ledtrad_operator::{load_catalogue, push_envelope, sign_catalogue, OperatorKey, SignOptions};
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::{DeviceKind, FleetId, KeyId, UnixTime};

/// The environment variable naming an external broker, e.g. `mqtt://127.0.0.1:1883`.
pub const BROKER_ENV: &str = "LEDTRAD_TEST_BROKER";

static EMBEDDED: OnceLock<EmbeddedBroker> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The broker under test: `LEDTRAD_TEST_BROKER` if set, else one embedded broker per process.
pub fn broker() -> BrokerUrl {
    if let Ok(url) = std::env::var(BROKER_ENV) {
        return url.parse().unwrap_or_else(|e| panic!("{BROKER_ENV}: {e}"));
    }
    EMBEDDED.get_or_init(|| EmbeddedBroker::start(256).expect("embedded broker starts")).url().clone()
}

/// A small deterministic generator (xorshift) for the fault tests' random points, so a failing
/// run can be repeated.
pub struct Draw(pub u64);

impl Draw {
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A name unique to this process and call, so tests on a shared broker never see each other.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{n}-{}", std::process::id(), nanos % 100_000)
}

/// The path of the workspace program `bin` of `package`, built first if it is not (as
/// `cargo test --workspace` does anyway), for tests that run it as a process of its own.
pub fn program(package: &str, bin: &str) -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo).args(["build", "-q", "-p", package, "--bin", bin]).status();
    assert!(status.is_ok_and(|s| s.success()), "cargo build -p {package} --bin {bin} failed");
    // Tests run from target/<profile>/deps; programs are built into target/<profile>.
    let deps = std::env::current_exe().expect("the test's own path");
    deps.parent().and_then(std::path::Path::parent).expect("target/<profile>").join(bin)
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into()))
        .with_test_writer()
        .try_init();
}

/// A fixed operator key.
pub fn operator_key(seed: u8) -> OperatorKey {
    OperatorKey::from_secret(KeyId::try_new(format!("op-{seed}")).expect("valid id"), [seed; 32])
}

/// A catalogue of one offer `id` (campaign `ID-campaign`) for `kind` at `moment`, in
/// `category`, valid from 2026 to 2030.
pub fn one_offer_catalogue(id: &str, kind: &str, moment: &str, category: &str) -> Catalogue {
    let offer = serde_json::json!({
        "id": id, "campaign": format!("{id}-campaign"), "title": "T",
        "question": "Could this be something for you?", "body": "B", "category": category,
        "device_kinds": [kind], "moments": [moment], "value": 1.0,
        "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"
    });
    Catalogue::from_value(serde_json::json!({ "offer": [offer] })).expect("a valid one-offer catalogue")
}

/// The example catalogue shipped in `examples/catalogues/home.toml`, without its campaigns'
/// holdout arms: which devices are held out depends on their pseudonyms, which these tests draw
/// at random, and they look at what treatment devices do (the engine's tests cover holdout).
pub fn example_catalogue() -> Catalogue {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalogues/home.toml");
    let mut catalogue = load_catalogue(&path, None).expect("example catalogue is valid");
    for campaign in &mut catalogue.campaigns {
        campaign.holdout = 0.0;
    }
    catalogue
}

/// The time every test agent starts at: 2026-11-23T10:00:00Z. Tests run on a manual clock so
/// that what they see does not depend on when they run.
pub const T0: UnixTime = UnixTime(1_795_428_000);

/// The test agents' starting time (see [`T0`]).
pub fn now() -> UnixTime {
    T0
}

/// Signs the example catalogue for `fleet`.
pub fn envelope(
    key: &OperatorKey,
    fleet: &FleetId,
    version: u64,
    issued_at: UnixTime,
    expires_at: UnixTime,
) -> Vec<u8> {
    let options = SignOptions { fleet: fleet.clone(), version, issued_at, expires_at };
    sign_catalogue(&example_catalogue(), key, &options).expect("signs")
}

/// Signs and pushes the example catalogue, valid for 30 days from [`T0`].
pub async fn push(key: &OperatorKey, fleet: &FleetId, version: u64) {
    publish_catalogue(fleet, envelope(key, fleet, version, T0, T0.plus_secs(30 * 86_400))).await;
}

/// Publishes raw bytes retained on `fleet`'s catalogue topic.
pub async fn publish_catalogue(fleet: &FleetId, payload: Vec<u8>) {
    push_envelope(&broker(), fleet, payload, &unique("test-op")).await.expect("push acknowledged");
}

/// An agent under test, with its temporary database.
pub struct TestAgent {
    /// The running agent.
    pub agent: RunningAgent,
    /// Its config.
    pub config: Config,
    /// Its clock, starting at [`T0`].
    pub clock: ManualClock,
    _dir: tempfile::TempDir,
}

impl TestAgent {
    /// Starts an agent of `kind` in `fleet` that pins `key`, with the local API on a free port.
    pub async fn start(kind: DeviceKind, fleet: &FleetId, key: &OperatorKey) -> Self {
        Self::start_via(kind, fleet, key, &broker()).await
    }

    /// The agent's handle.
    pub fn handle(&self) -> AgentHandle {
        self.agent.handle()
    }

    /// The local API's base URL.
    pub fn api(&self) -> String {
        format!("http://{}", self.agent.api_addr().expect("API runs"))
    }

    /// Waits until the agent's status satisfies `pred`, panicking with `what` and the last
    /// status after 15 s.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&AgentStatus) -> bool) -> AgentStatus {
        let handle = self.handle();
        wait_until(what, Duration::from_secs(15), || handle.status(), |status| status.as_ref().map_or(true, &pred))
            .await
            .expect("agent runs")
    }

    /// Stops the agent and starts it again on the same database.
    pub async fn restart(self) -> Self {
        let Self { agent, config, clock, _dir } = self;
        agent.shutdown().await;
        let agent = ledtrad_agent::spawn(config.clone(), Arc::new(clock.clone())).await.expect("agent restarts");
        Self { agent, config, clock, _dir }
    }

    /// The agent's events, as its `/v1/events` clients get them.
    pub fn events(&self) -> Arc<ledtrad_agent::events::EventHub> {
        self.agent.events()
    }

    /// Stops the agent, leaving its retained offline status on the broker.
    pub async fn shutdown(self) {
        self.agent.shutdown().await;
    }

    /// Stops the agent and clears its retained status from the broker.
    pub async fn stop(self) {
        let device = self.config.device.clone();
        self.agent.shutdown().await;
        let _ =
            ledtrad_operator::publish_retained(&broker(), &Topic::Status(device), Vec::new(), &unique("test-clean"))
                .await;
    }
}

/// Clears `fleet`'s retained catalogue from the broker.
pub async fn clear_catalogue(fleet: &FleetId) {
    publish_catalogue(fleet, Vec::new()).await;
}

/// A TCP proxy on loopback in front of the broker whose connections a test can cut, to
/// exercise reconnects.
pub struct CutProxy {
    /// The address agents connect to.
    pub url: BrokerUrl,
    cut: tokio::sync::watch::Sender<u64>,
    paused: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    /// Starts a proxy to the broker under test.
    pub async fn start() -> Self {
        Self::start_to(&broker(), Duration::ZERO).await
    }

    /// Starts a proxy to `upstream` that holds every chunk of bytes, each way, for `latency`
    /// before passing it on (in order).
    pub async fn start_to(upstream: &BrokerUrl, latency: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let upstream = format!("{}:{}", upstream.host, upstream.port);
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refusing = paused.clone();
        let task = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                if refusing.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(up) = tokio::net::TcpStream::connect(upstream).await else { return };
                    let (down_read, down_write) = down.into_split();
                    let (up_read, up_write) = up.into_split();
                    tokio::select! {
                        () = relay(down_read, up_write, latency) => {}
                        () = relay(up_read, down_write, latency) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self { url: BrokerUrl::tcp("127.0.0.1", port), cut, paused, task }
    }

    /// Cuts every connection and refuses new ones until [`CutProxy::resume`]: the broker is
    /// unreachable.
    pub fn pause(&self) {
        self.paused.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut();
    }

    /// Accepts connections again.
    pub fn resume(&self) {
        self.paused.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Drops every connection open through the proxy now.
    pub fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

/// Copies `from` to `to`, each chunk `latency` after it was read, until either side closes.
async fn relay(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, latency: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reading = async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            if tx.send((tokio::time::Instant::now() + latency, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    let writing = async move {
        while let Some((due, chunk)) = rx.recv().await {
            // Not a wait: the latency is the fault the proxy adds.
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
    };
    // What was read before the sender closed still goes.
    tokio::join!(reading, writing);
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestAgent {
    /// Like [`TestAgent::start`], connecting through `broker` instead of the broker under test.
    pub async fn start_via(kind: DeviceKind, fleet: &FleetId, key: &OperatorKey, broker: &BrokerUrl) -> Self {
        Self::start_with(kind, fleet, key, broker, |_| {}).await
    }

    /// Like [`TestAgent::start_via`], with the raw config changed by `edit` first (a chosen
    /// device id, a broker login, ...).
    pub async fn start_with(
        kind: DeviceKind,
        fleet: &FleetId,
        key: &OperatorKey,
        broker: &BrokerUrl,
        edit: impl FnOnce(&mut RawConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut raw = RawConfig {
            device_id: unique(kind.as_str()).replace('_', "-"),
            kind: kind.as_str().into(),
            fleet: fleet.to_string(),
            broker: broker.to_string(),
            mqtt_username: None,
            mqtt_password_file: None,
            database: dir.path().join("agent.db"),
            api: Some("127.0.0.1:0".into()),
            sharing: None,
            report_epsilon: None,
            // Tests look at the top-scoring offer; camouflage has its own tests in the engine.
            camouflage_share: Some(0.0),
            model_runtime: None,
            rng_seed: Some(7),
            owner: None,
            utc_offset_minutes: 0,
            timezone: None,
            offer_request_timeout_ms: None,
            sensor_link: None,
            sensor_baud: None,
            operator_keys: vec![RawKey { id: key.id.to_string(), public_key: key.public_hex(), retired: false }],
            // Tests ask for offers at their own moments; tests of raised moments turn this on.
            raise_moments: Some(false),
            ..RawConfig::default()
        };
        edit(&mut raw);
        let config = Config::from_raw(raw, "test").expect("valid config");
        let clock = ManualClock::new(T0);
        let agent = ledtrad_agent::spawn(config.clone(), Arc::new(clock.clone())).await.expect("agent starts");
        Self { agent, config, clock, _dir: dir }
    }
}

/// An operator-side subscriber to a fleet's report topic.
pub struct ReportListener {
    reports: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

impl ReportListener {
    /// Subscribes to `fleet`'s reports and returns once the broker acknowledged it. Subscribes
    /// again after each reconnect: the session is clean, and brokers drop connections. Like a
    /// collector, it announces itself on a presence topic of its own once subscribed (devices
    /// send reports only while a collector is present); its last will clears that.
    pub async fn start(fleet: &FleetId) -> Self {
        use rumqttc::v5::mqttbytes::v5::{LastWill, Packet};
        use rumqttc::v5::mqttbytes::QoS;
        let presence =
            Topic::Collector(ledtrad_protocol::InstanceId::try_new(unique("listener")).expect("a valid name")).name();
        let mut options = ledtrad_operator::mqtt::options(&broker(), &unique("reports"));
        options.set_last_will(LastWill::new(presence.clone(), Vec::new(), QoS::AtLeastOnce, true, None));
        let (client, mut events) = rumqttc::v5::AsyncClient::new(options, 64);
        let topic = Topic::Reports(fleet.clone()).name();
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let (tx, reports) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            loop {
                match events.poll().await {
                    Ok(rumqttc::v5::Event::Incoming(Packet::ConnAck(_))) => {
                        client.try_subscribe(&topic, QoS::AtLeastOnce).expect("subscribe");
                    }
                    Ok(rumqttc::v5::Event::Incoming(Packet::SubAck(_))) => {
                        let online = ledtrad_protocol::topic::COLLECTOR_ONLINE;
                        client.try_publish(&presence, QoS::AtLeastOnce, true, online).expect("announce");
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(rumqttc::v5::Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(p.payload.to_vec());
                    }
                    Ok(_) => {}
                    // Not a wait: a pause before the client reconnects, as any client's backoff.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        subscribed.await.expect("the broker acknowledges the subscription");
        Self { reports, task }
    }

    /// The next report's payload within `wait`, or `None`.
    pub async fn next(&mut self, wait: Duration) -> Option<Vec<u8>> {
        tokio::time::timeout(wait, self.reports.recv()).await.ok().flatten()
    }
}

impl Drop for ReportListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Grants `purpose` for the agent's owner from the device UI.
pub async fn grant(agent: &TestAgent, purpose: ledtrad_protocol::Purpose) {
    let change = ledtrad_agent::ConsentChange {
        granted: true,
        source: ledtrad_protocol::consent::ConsentSource::DeviceUi,
        text_version: "2026-11".into(),
    };
    agent.handle().set_consent(purpose, change).await.expect("consent stored");
}

/// Starts an offer service (`ledtrad-op serve`, as a library) on the broker under test,
/// answering from `catalogue` and/or collecting reports into `reports`. Every instance with a
/// catalogue shares the requests on the broker, so one test at a time should run one.
pub async fn start_service(
    catalogue: Option<Catalogue>,
    reports: Option<ledtrad_operator::collect::ReportStore>,
) -> ledtrad_operator::serve::Running {
    let options = ledtrad_operator::serve::ServeOptions {
        broker: broker(),
        access: ledtrad_mqtt::Access::default(),
        instance: ledtrad_protocol::InstanceId::try_new(unique("serve")).expect("a valid name"),
        service: catalogue.map(|c| ledtrad_operator::serve::OfferService::new(c, 5).expect("service catalogue")),
        reports,
        session_secs: 60,
    };
    ledtrad_operator::serve::start(options, Duration::from_secs(10)).await.expect("the service starts")
}

/// Revokes `purpose` for the agent's owner from the device UI, returning the consent view.
pub async fn revoke(agent: &TestAgent, purpose: ledtrad_protocol::Purpose) -> ledtrad_agent::ConsentView {
    let change = ledtrad_agent::ConsentChange {
        granted: false,
        source: ledtrad_protocol::consent::ConsentSource::DeviceUi,
        text_version: "2026-11".into(),
    };
    agent.handle().set_consent(purpose, change).await.expect("revocation is stored")
}

/// Asks the agent behind `handle` for an offer at `moment` and returns the decision with its
/// full trace (every candidate's verdict), as `GET /v1/decisions/{id}` serves it.
pub async fn traced_offer(
    handle: &ledtrad_agent::AgentHandle,
    moment: ledtrad_protocol::Moment,
) -> ledtrad_protocol::decision::Decision {
    let decision = handle.offer(moment).await.expect("offer").decision;
    handle.decision(decision.id).await.expect("decision").expect("the last decision is traced")
}
