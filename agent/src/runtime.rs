//! The agent's one IO loop: a `select!` over MQTT events, commands from handles, a periodic
//! tick and shutdown, handing every decision to the engine.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledtrad_engine::trust::Refusal;
use ledtrad_engine::{DeviceProfile, Draw, Engine, SignalOutcome};
use ledtrad_protocol::consent::{ConsentSource, ConsentState, PURPOSES_VERSION};
use ledtrad_protocol::decision::Decision;
use ledtrad_protocol::feedback::Feedback;
use ledtrad_protocol::offers::{OfferRequest, OfferResponse, TimeOfDay};
use ledtrad_protocol::report::Arm;
use ledtrad_protocol::status::{Connection, DeviceStatus};
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::{codec, Moment, PersonId, Purpose, UnixTime};
use rand::{Rng, SeedableRng};
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode, LastWill, LastWillProperties, Packet, PubAckReason, SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use rumqttc::{NetworkOptions, Outgoing};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::clock::Clock;
use crate::config::Config;
use crate::egress::{Ack, Egress};
use crate::handle::{
    AgentError, AgentHandle, AgentStatus, Command, ConsentChange, ConsentView, ErasureRecord, FeatureValue,
    FeedbackRecord, MyData, OfferOutcome, PersonChange, PersonView, PromptAnswer, QueuedMessage, QueuedReport,
    RequestOutcome, SignalsOutcome, YesNo,
};
use crate::household::{askable, effective, Sharing};
use crate::link::{LinkEvent, LinkStatus};
use crate::reports::Tally;
use crate::store::{Household, ImpressionRow, LedgerRow, Store, StoreError};

/// The largest MQTT packet the agent sends or receives (catalogue envelopes are at most 1 MiB).
pub const MAX_PACKET_BYTES: usize = 2 * 1024 * 1024;

/// The most QoS 1 publishes the agent has in flight to the broker at once.
const MAX_INFLIGHT: u16 = 100;

/// How often the runtime expires old feature values, retries the outbox and what the broker
/// did not take (subscriptions), and asks again for a missing collector.
const TICK: Duration = Duration::from_secs(60);

/// The agent's version, published in its status.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the MQTT pump forwards to the runtime.
#[derive(Debug)]
enum MqttEvent {
    /// Connected; whether the broker says it kept this device's session (which may lack
    /// subscriptions made since its last save).
    Connected { session_present: bool },
    /// The connection dropped; the MQTT client discarded the `unsent` oldest publishes it had
    /// not sent yet (the outbox hands its rows over again).
    Disconnected { why: String, unsent: usize },
    /// The MQTT client numbered its oldest publish not numbered yet (0 for QoS 0).
    Numbered(u16),
    /// The MQTT client holds its oldest publish not numbered yet until this packet id is free.
    Held(u16),
    /// The broker acknowledged a publish, with what its reason code says.
    Acked { pkid: u16, ack: Ack },
    /// The broker refused the login (the return code, and as for `Disconnected`, the publishes
    /// discarded); the pump keeps retrying.
    LoginRefused(String, usize),
    Publish {
        topic: String,
        payload: Vec<u8>,
        /// MQTT 5 correlation data, on answers from the offer service.
        correlation: Option<Vec<u8>>,
    },
}

/// An offer request waiting for the offer service's answer; the caller of
/// [`AgentHandle::offer`] waits with it.
struct PendingRequest {
    correlation: [u8; 16],
    moment: Moment,
    /// Whether the request carried interest categories (the "why" then says so).
    interests_sent: bool,
    /// The local decision (nothing), which stands if no answer comes in time.
    local: OfferOutcome,
    reply: oneshot::Sender<OfferOutcome>,
    sent: Instant,
    deadline: tokio::time::Instant,
}

/// Offer requests so far.
#[derive(Debug, Clone, Copy, Default)]
struct RequestCounts {
    sent: u64,
    answered: u64,
    /// Timed out, unusable, or dropped by a consent change.
    unanswered: u64,
}

/// A running agent.
pub struct RunningAgent {
    handle: AgentHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    api: Option<std::net::SocketAddr>,
}

impl RunningAgent {
    /// A handle to drive the agent.
    pub fn handle(&self) -> AgentHandle {
        self.handle.clone()
    }

    /// The local API's bound address, if it runs.
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.api
    }

    /// Stops the agent: publishes its offline status, disconnects, and waits for it to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits until the agent stops by itself (it does not, unless its runtime fails).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// A failure to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sensor link's reader could not start.
    #[error("the sensor link's reader thread could not start: {source}")]
    Link {
        /// The error.
        source: std::io::Error,
    },
    /// The local API could not listen.
    #[error("local API on {addr}: {source}; choose another `api` address in the config")]
    Api {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Starts an agent: opens its database, restores its state, connects to the broker and, if
/// configured, serves the local API.
pub async fn spawn(config: Config, clock: Arc<dyn Clock>) -> Result<RunningAgent, StartError> {
    let mut store = Store::open(&config.database)?;
    let profile = DeviceProfile {
        device: config.device.clone(),
        kind: config.kind,
        fleet: config.fleet.clone(),
        local: config.local,
        camouflage_share: config.camouflage_share,
        model_runtime: config.model_runtime,
        policy: config.policy,
    };
    let mut engine = Engine::new(profile, config.keys.clone());
    let now = clock.now();
    if !store.household()?.contains_key(&config.owner) {
        let (sharing, owner) = (config.sharing, config.owner.clone());
        store.put_person(&config.owner, false, now, &|h| effective(h, sharing, &owner, None))?;
    }
    let household = store.household()?;
    engine.set_consent(effective(&household, config.sharing, &config.owner, None));
    let mut applied_envelope = Vec::new();
    if let Some((version, envelope)) = store.latest_catalogue()? {
        match engine.handle_catalogue(&envelope, now) {
            Ok(_) => {
                info!(version, "restored catalogue");
                applied_envelope = envelope;
            }
            Err(e) => warn!(version, "stored catalogue no longer applies: {e}"),
        }
    }
    let mut applied_model = Vec::new();
    if let Some((version, envelope)) = store.latest_model()? {
        match engine.handle_model(&envelope, now) {
            Ok(model) => {
                info!(version, runtime = model.runtime(), "restored scoring model");
                applied_model = envelope;
            }
            Err(e) => warn!(version, "stored scoring model no longer applies, using the built-in scorers: {e}"),
        }
    }
    if let Some(highest) = store.highest_model_version()? {
        engine.set_model_floor(highest);
    }
    // Caps look back 30 days at most, besides all-time totals.
    for row in store.impressions_since(UnixTime(0))? {
        engine.restore_impression(&row.offer, &row.campaign, row.at);
    }
    for (offer, kind) in store.feedback()? {
        engine.restore_feedback(&offer, kind);
    }
    let ninety_days = ledtrad_engine::answers::NOT_FOR_ME_SECS;
    for (offer, category, kind, at) in store.answers_since(UnixTime(now.secs().saturating_sub(ninety_days)))? {
        engine.restore_answer(&offer, category.as_deref(), kind, at);
    }
    engine.resume_decision_ids(store.last_decision_id()? + 1);
    for (purpose, at) in store.prompt_refusals()? {
        engine.restore_prompt_refusal(purpose, at);
    }
    engine.set_askable(askable(&household, config.sharing, &config.owner, None));
    if let Some(highest) = store.highest_catalogue_version()? {
        engine.set_version_floor(highest);
    }

    let (client, eventloop) = mqtt_client(&config);
    let (mqtt_tx, mqtt_rx) = mpsc::channel(64);
    let pump = tokio::spawn(pump(eventloop, mqtt_tx));
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let handle = AgentHandle::from_sender(cmd_tx);
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();

    let (api, api_task) = match config.api {
        None => (None, None),
        Some(addr) => {
            let listener =
                tokio::net::TcpListener::bind(addr).await.map_err(|source| StartError::Api { addr, source })?;
            let bound = listener.local_addr().map_err(|source| StartError::Api { addr, source })?;
            info!(%bound, "local API listening");
            (Some(bound), Some(crate::api::serve(listener, handle.clone())))
        }
    };

    let rng = match config.rng_seed {
        Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
        None => rand::rngs::StdRng::from_os_rng(),
    };
    let mut egress = Egress::new(client, config.device.clone(), config.fleet.clone());
    egress.set_consent(engine.consent());
    let (link, link_rx) = match &config.sensor_link {
        None => (None, None),
        Some(source) => {
            let (tx, rx) = mpsc::channel(256);
            crate::link::spawn(source.clone(), tx).map_err(|source| StartError::Link { source })?;
            info!(%source, "reading the sensor board's link");
            let status = LinkStatus { source: source.to_string(), ..LinkStatus::default() };
            (Some(LinkState { status, last_seq: None }), Some(rx))
        }
    };
    let runtime = Runtime {
        egress,
        config,
        engine,
        store,
        clock,
        applied_envelope,
        applied_model,
        models_refused: 0,
        last_model_refusal: None,
        connected: false,
        subscriptions_owed: None,
        storage_failing: None,
        login_refused: false,
        refused: 0,
        malformed: 0,
        last_refusal: None,
        rollout_waiting: None,
        tally: Tally::default(),
        rng,
        present: None,
        pending: None,
        requests: RequestCounts::default(),
        link,
    };
    let task = tokio::spawn(async move {
        runtime
            .run(mqtt_rx, cmd_rx, link_rx, async {
                let _ = shutdown_rx.await;
            })
            .await;
        if let Some(api) = api_task {
            api.abort();
        }
        let mut pump = pump;
        if tokio::time::timeout(Duration::from_secs(2), &mut pump).await.is_err() {
            // A pump still reconnecting would keep using this device's client id.
            pump.abort();
        }
    });
    Ok(RunningAgent { handle, shutdown: Some(shutdown_tx), task, api })
}

/// How long the broker waits after a connection is lost before it says the device is offline
/// (its last will): a device back within it (a Wi-Fi blip, a broker restart) never shows as
/// offline.
pub const WILL_DELAY_SECS: u32 = 10;

/// How long the broker keeps a device's session while it is away: a day.
pub const SESSION_EXPIRY_SECS: u32 = 86_400;

fn mqtt_client(config: &Config) -> (AsyncClient, EventLoop) {
    let mut options =
        MqttOptions::new(format!("ledtrad-{}", config.device), config.broker.host.clone(), config.broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(Some(MAX_PACKET_BYTES as u32));
    // A persistent session: a broker that keeps it keeps what arrives for the subscriptions
    // across a dropped connection; the subscriptions are made again on every connection all
    // the same (see `Egress::subscribe`). But a new process starts clean (the pump keeps the
    // session from its first CONNACK on): rumqttd sends retained messages (the catalogue, the
    // model, the collectors' presence) only for a subscription new to the session, whatever
    // the retain handling asks, so an agent that knows none of them yet must not find its old
    // subscriptions kept.
    options.set_clean_start(true);
    options.set_session_expiry_interval(Some(SESSION_EXPIRY_SECS));
    // rumqttc's v5 client keeps a slot per packet id it may have in flight, u16::MAX of them
    // unless told otherwise: about 10 MB a client. A hundred is plenty.
    options.set_outgoing_inflight_upper_limit(MAX_INFLIGHT);
    // Without TCP_NODELAY a loopback request/response waits about 40 ms on delayed acks.
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    options.set_network_options(network);
    if let Some(login) = &config.mqtt_login {
        options.set_credentials(login.username(), login.password());
    }
    let offline = offline_status(config, None, None);
    options.set_last_will(LastWill::new(
        Topic::Status(config.device.clone()).name(),
        codec::to_json(&offline),
        QoS::AtLeastOnce,
        true,
        Some(LastWillProperties {
            delay_interval: Some(WILL_DELAY_SECS),
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: Vec::new(),
        }),
    ));
    AsyncClient::new(options, 64)
}

fn offline_status(config: &Config, version: Option<u64>, refusal: Option<String>) -> DeviceStatus {
    DeviceStatus {
        device: config.device.clone(),
        fleet: config.fleet.clone(),
        state: Connection::Offline,
        agent_version: AGENT_VERSION.into(),
        catalogue_version: version,
        last_refusal: refusal,
        model_version: None,
        last_model_refusal: None,
        rollout_waiting: None,
    }
}

/// Polls the MQTT event loop and forwards what the runtime needs. rumqttc reconnects on the
/// next poll after an error; the pump waits with exponential backoff and jitter in between.
/// After an error it empties the client's queue of publishes from the lost connection: the
/// outbox hands its rows over again itself, and would otherwise lose count of which publish is
/// which.
async fn pump(mut eventloop: EventLoop, tx: mpsc::Sender<MqttEvent>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let event = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(100);
                // Clean once, on this process's first connection (see `mqtt_client`).
                eventloop.options.set_clean_start(false);
                Some(MqttEvent::Connected { session_present: ack.session_present })
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                let correlation = p.properties.and_then(|props| props.correlation_data).map(|c| c.to_vec());
                Some(MqttEvent::Publish { topic, payload: p.payload.to_vec(), correlation })
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => Some(MqttEvent::Acked {
                pkid: ack.pkid,
                ack: match ack.reason {
                    PubAckReason::Success => Ack::Accepted,
                    PubAckReason::NoMatchingSubscribers => Ack::NoSubscribers,
                    _ => Ack::Refused,
                },
            }),
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if let Some(code) = ack.return_codes.iter().find(|c| !matches!(c, SubscribeReasonCode::Success(_))) {
                    warn!(
                        "the broker refused a subscription ({code:?}); is this device allowed to read its fleet's catalogue and model, its offers and ledtrad/v1/collector/+ in the broker's ACL?"
                    );
                }
                None
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Some(MqttEvent::Numbered(pkid)),
            Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => Some(MqttEvent::Held(pkid)),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => None,
            Err(e) => {
                // rumqttc drains its request queue into `pending` only when a connection
                // breaks, not when one fails to open: drain it always, so that nothing handed
                // over before this error (a report, say, before a revocation) goes out later.
                eventloop.clean();
                // Every publish the runtime has not seen numbered is discarded: those whose
                // numbering event is still buffered (the write failed after it), then those
                // still queued (packet id 0). Those numbered already were counted as they were.
                let mut unsent = 0;
                eventloop.state.events.retain(|event| {
                    let numbered = matches!(event, Event::Outgoing(Outgoing::Publish(_) | Outgoing::AwaitAck(_)));
                    unsent += usize::from(numbered);
                    !numbered
                });
                unsent += eventloop
                    .pending
                    .iter()
                    .filter(|r| matches!(r, rumqttc::v5::Request::Publish(p) if p.pkid == 0))
                    .count();
                eventloop.pending.clear();
                eventloop.state.collision = None;
                let event = match &e {
                    ConnectionError::ConnectionRefused(
                        code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
                    ) => MqttEvent::LoginRefused(format!("{code:?}"), unsent),
                    _ => MqttEvent::Disconnected { why: e.to_string(), unsent },
                };
                if tx.send(event).await.is_err() {
                    return;
                }
                let jitter = rand::random_range(0..=backoff.as_millis() as u64 / 2);
                tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                None
            }
        };
        if let Some(event) = event {
            if tx.send(event).await.is_err() {
                return;
            }
        }
    }
}

struct Runtime {
    config: Config,
    engine: Engine,
    store: Store,
    egress: Egress,
    clock: Arc<dyn Clock>,
    applied_envelope: Vec<u8>,
    applied_model: Vec<u8>,
    models_refused: u64,
    last_model_refusal: Option<String>,
    connected: bool,
    /// Subscriptions not made yet on this connection (the client's queue was full), with
    /// whether the broker said it kept the session.
    subscriptions_owed: Option<bool>,
    /// The last write that failed, while the database cannot be written (full, read-only).
    storage_failing: Option<String>,
    login_refused: bool,
    refused: u64,
    malformed: u64,
    last_refusal: Option<String>,
    /// A catalogue version rolling out that does not include this device yet.
    rollout_waiting: Option<u64>,
    tally: Tally,
    rng: rand::rngs::StdRng,
    present: Option<BTreeSet<PersonId>>,
    /// The offer request waiting for an answer, if any (one at a time).
    pending: Option<PendingRequest>,
    requests: RequestCounts,
    /// The sensor board's link, if the config names one.
    link: Option<LinkState>,
}

/// The sensor board's link as the runtime follows it.
struct LinkState {
    status: LinkStatus,
    /// The last good frame's number.
    last_seq: Option<u8>,
}

/// The link's next event, or never when there is no link.
async fn next_link_event(link: &mut Option<mpsc::Receiver<LinkEvent>>) -> Option<LinkEvent> {
    match link {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Runtime {
    async fn run(
        mut self,
        mut mqtt: mpsc::Receiver<MqttEvent>,
        mut commands: mpsc::Receiver<Command>,
        mut link: Option<mpsc::Receiver<LinkEvent>>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(TICK);
        loop {
            let deadline = self.pending.as_ref().map(|p| p.deadline);
            tokio::select! {
                () = &mut shutdown => break,
                Some(event) = mqtt.recv() => self.handle_mqtt(event),
                Some(command) = commands.recv() => self.handle_command(command),
                Some(event) = next_link_event(&mut link) => self.handle_link(event),
                _ = tick.tick() => self.handle_tick(),
                () = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                    self.request_timed_out();
                }
                else => break,
            }
        }
        if self.pending.is_some() {
            self.request_timed_out();
        }
        let offline = offline_status(&self.config, self.version(), self.last_refusal.clone());
        self.egress.close(&offline);
        info!(device = %self.config.device, "agent stopped");
    }

    /// An event of the sensor board's link: frames counted, and good ones' readings handed to
    /// the engine as signals (which it takes only under the consent their features need).
    fn handle_link(&mut self, event: LinkEvent) {
        let now = self.clock.now();
        let Some(link) = &mut self.link else { return };
        match event {
            LinkEvent::Connected => {
                info!(source = %link.status.source, "sensor board link open");
                link.status.connected = true;
            }
            LinkEvent::Disconnected(why) => {
                if link.status.connected {
                    warn!(source = %link.status.source, "sensor board link lost: {why}; retrying");
                } else {
                    warn!(source = %link.status.source, "{why}; retrying");
                }
                link.status.connected = false;
            }
            LinkEvent::Corrupt(e) => {
                link.status.corrupt += 1;
                debug!(source = %link.status.source, "corrupt frame from the sensor board: {e}");
            }
            LinkEvent::Incomplete => {
                link.status.incomplete += 1;
                debug!(source = %link.status.source, "a frame from the sensor board was cut off");
            }
            LinkEvent::Frame(summary) => {
                let fresh = link.status.count_frame(link.last_seq, summary.seq);
                link.last_seq = Some(summary.seq);
                if !fresh {
                    return;
                }
                let (signals, skipped) = crate::link::signals(&summary);
                link.status.readings_skipped += skipped;
                for signal in signals {
                    if self.engine.handle_signal(signal, now) == SignalOutcome::Aggregated {
                        link.status.signals += 1;
                    }
                }
            }
        }
    }

    /// Now and then: expire old feature values, report completed days (at most once a day
    /// per campaign: a day's counts are reported once it is over), retry the outbox and
    /// subscriptions the client's queue did not take, and ask again for a missing collector.
    fn handle_tick(&mut self) {
        let now = self.clock.now();
        let dropped = self.engine.handle_timeout(now);
        if dropped > 0 {
            debug!(dropped, "feature values past their retention dropped");
        }
        let today = self.local_day(now);
        if self.tally.oldest_day().is_some_and(|day| day < today) {
            let queued = self.queue_reports(today);
            debug!(queued, "reports for completed days queued");
        }
        if let Err(e) = self.egress.forget_delivered(&self.store, std::time::Instant::now()) {
            warn!("outbox: {e}");
        }
        self.deliver();
        self.subscribe();
        match self.egress.ask_for_collectors() {
            Ok(true) => debug!("reports wait and no collector is known; asked the broker for their presence again"),
            Ok(false) => {}
            Err(e) => warn!("subscribe: {e}"),
        }
    }

    /// Notes whether a write worked: the first failure is logged as an error and shown in the
    /// status until a write works again, which is logged too. Nothing else changes: decisions
    /// go on from memory, and what had to be kept was refused whole.
    fn track<T>(&mut self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match (&result, self.storage_failing.is_some()) {
            (Err(e), false) => {
                error!("storage: {e}");
                self.storage_failing = Some(e.to_string());
            }
            (Err(e), true) => self.storage_failing = Some(e.to_string()),
            (Ok(_), true) => {
                info!(database = %self.config.database.display(), "storage: writes work again");
                self.storage_failing = None;
            }
            (Ok(_), false) => {}
        }
        result
    }

    fn version(&self) -> Option<u64> {
        self.engine.catalogue().map(|c| c.version)
    }

    fn publish_status(&mut self) {
        let status = DeviceStatus {
            state: Connection::Online,
            model_version: self.engine.model().map(|m| m.version),
            last_model_refusal: self.last_model_refusal.clone(),
            rollout_waiting: self.rollout_waiting,
            ..offline_status(&self.config, self.version(), self.last_refusal.clone())
        };
        if let Err(e) = self.egress.status(&status) {
            warn!("status: {e}");
        }
    }

    fn handle_mqtt(&mut self, event: MqttEvent) {
        match event {
            MqttEvent::Connected { session_present } => {
                info!(device = %self.config.device, broker = %self.config.broker, session_present, "connected");
                self.connected = true;
                self.login_refused = false;
                self.egress.set_connected(true);
                // A broker that kept no session (a first connection, an expired session, a
                // broker that lost its state) sends the retained catalogue, model and
                // collectors' presence with the new subscriptions; one that kept it may have
                // kept it from before its last save, so the subscriptions are made again all
                // the same (see `Egress::subscribe`).
                if !session_present {
                    self.egress.on_session_lost();
                }
                self.subscriptions_owed = Some(session_present);
                self.subscribe();
                // The last will may have said "offline" meanwhile.
                self.publish_status();
                self.deliver();
            }
            MqttEvent::Numbered(pkid) => self.egress.on_numbered(pkid),
            MqttEvent::Held(pkid) => self.egress.on_held(pkid),
            MqttEvent::Acked { pkid, ack } => {
                if ack == Ack::Refused {
                    warn!(pkid, "the broker refused a queued message; it is dropped");
                }
                if let Err(e) = self.egress.on_acked(&self.store, pkid, ack, std::time::Instant::now()) {
                    warn!("outbox: {e}");
                }
                self.deliver();
            }
            MqttEvent::Disconnected { why, unsent } => {
                if self.connected {
                    warn!(device = %self.config.device, broker = %self.config.broker, "disconnected: {why}; reconnecting");
                } else {
                    debug!(device = %self.config.device, broker = %self.config.broker, "still offline: {why}");
                }
                self.connected = false;
                self.egress.on_disconnected(unsent);
            }
            MqttEvent::LoginRefused(code, unsent) => {
                // Said once until the next connection: the pump retries with backoff.
                if !self.login_refused {
                    match &self.config.mqtt_login {
                        Some(login) => warn!(
                            broker = %self.config.broker,
                            "the broker refused the login as '{}' ({code}); check mqtt_username and mqtt_password_file against the broker's password file; retrying",
                            login.username()
                        ),
                        None => warn!(
                            broker = %self.config.broker,
                            "the broker refused to connect without a login ({code}); set mqtt_password_file (and mqtt_username if it is not the device_id); retrying"
                        ),
                    }
                }
                self.login_refused = true;
                self.connected = false;
                self.egress.on_disconnected(unsent);
            }
            MqttEvent::Publish { topic, payload, correlation } => match Topic::parse(&topic) {
                Ok(Topic::Catalogue(fleet)) if fleet == self.config.fleet => self.handle_catalogue(&payload),
                Ok(Topic::Model(fleet)) if fleet == self.config.fleet => self.handle_model(&payload),
                Ok(Topic::Offers(device)) if device == self.config.device => {
                    self.handle_offers(&payload, correlation.as_deref());
                }
                Ok(Topic::Collector(instance)) => {
                    if self.egress.on_collector(instance, &payload) {
                        debug!("a report collector is present; handing over queued reports");
                        self.deliver();
                    }
                }
                Ok(other) => debug!(topic = %other, "ignoring a message on a topic the agent does not handle"),
                Err(e) => warn!("ignoring a message: {e}"),
            },
        }
    }

    fn handle_catalogue(&mut self, payload: &[u8]) {
        if payload.is_empty() {
            info!(version = ?self.version(), "the retained catalogue was cleared on the broker; keeping the applied one");
            return;
        }
        if payload == self.applied_envelope.as_slice() {
            debug!("the applied catalogue was delivered again");
            return;
        }
        let now = self.clock.now();
        match self.engine.handle_catalogue(payload, now) {
            Ok(applied) => {
                let (version, offers) = (applied.version, applied.offers.len());
                let stored = self.store.save_catalogue(version, self.config.fleet.as_str(), payload, now);
                if let Err(e) = self.track(stored) {
                    error!("catalogue version {version} applied but not stored, it will be refetched from the broker after a restart: {e}");
                }
                self.applied_envelope = payload.to_vec();
                self.last_refusal = None;
                self.rollout_waiting = None;
                info!(version, offers, "catalogue applied");
            }
            Err(Refusal::AlreadyApplied { version }) => {
                debug!(version, "the applied catalogue was republished (a staged rollout widened or completed)");
                self.rollout_waiting = None;
            }
            Err(Refusal::NotInRollout { version, share }) => {
                info!(version, share, kept = ?self.version(), "a staged rollout does not include this device yet");
                self.rollout_waiting = Some(version);
            }
            Err(refusal) => {
                if refusal.is_malformed() {
                    self.malformed += 1;
                }
                self.refused += 1;
                warn!(kept = ?self.version(), "catalogue refused: {refusal}");
                self.last_refusal = Some(refusal.to_string());
            }
        }
        self.publish_status();
    }

    fn handle_model(&mut self, payload: &[u8]) {
        if payload.is_empty() || payload == self.applied_model.as_slice() {
            debug!("no new scoring model in the message; keeping the applied one");
            return;
        }
        let now = self.clock.now();
        match self.engine.handle_model(payload, now) {
            Ok(model) => {
                let (version, runtime) = (model.version, model.runtime());
                let stored = self.store.save_model(version, self.config.fleet.as_str(), payload, now);
                if let Err(e) = self.track(stored) {
                    error!("scoring model version {version} applied but not stored, it will be refetched from the broker after a restart: {e}");
                }
                self.applied_model = payload.to_vec();
                self.last_model_refusal = None;
                info!(version, runtime, "scoring model applied");
            }
            Err(refusal) => {
                self.models_refused += 1;
                warn!(kept = ?self.engine.model().map(|m| m.version), "scoring model refused: {refusal}");
                self.last_model_refusal = Some(refusal.to_string());
            }
        }
        self.publish_status();
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Offer(moment, reply) => {
                let outcome = self.offer(moment);
                self.request_offers(moment, outcome, reply);
            }
            Command::Feedback(feedback, reply) => {
                let _ = reply.send(self.feedback(feedback));
            }
            Command::Consent(reply) => {
                let _ = reply.send(self.consent_view());
            }
            Command::SetConsent(person, purpose, change, reply) => {
                let _ = reply.send(self.set_consent(person, purpose, change));
            }
            Command::PutPerson(person, change, reply) => {
                let _ = reply.send(self.put_person(person, change));
            }
            Command::SetPresence(present, reply) => {
                let _ = reply.send(self.set_presence(present));
            }
            Command::Decision(id, reply) => {
                let _ = reply.send(self.engine.decision(id));
            }
            Command::Signals(signals, reply) => {
                let now = self.clock.now();
                let mut outcome = SignalsOutcome::default();
                for signal in signals {
                    match self.engine.handle_signal(signal, now) {
                        SignalOutcome::Aggregated => outcome.aggregated += 1,
                        SignalOutcome::DroppedNoConsent => outcome.dropped_no_consent += 1,
                        SignalOutcome::DroppedComputed | SignalOutcome::DroppedOutOfRange => {
                            outcome.dropped_invalid += 1
                        }
                    }
                }
                let _ = reply.send(outcome);
            }
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::FlushReports(reply) => {
                let _ = reply.send(self.flush_reports());
            }
            Command::MyData(person, reply) => {
                let _ = reply.send(self.my_data(person));
            }
            Command::Erase(person, source, reply) => {
                let _ = reply.send(self.erase(person, source));
            }
            Command::Tick(reply) => {
                self.handle_tick();
                let _ = reply.send(());
            }
            Command::PromptAnswer(answer, reply) => {
                let _ = reply.send(self.prompt_answer(answer));
            }
            Command::Ledger(reply) => {
                let _ = reply.send(self.store.ledger().map_err(|e| AgentError::Storage(e.to_string())));
            }
        }
    }

    fn local_day(&self, now: UnixTime) -> u32 {
        u32::try_from(self.config.local.day(now)).unwrap_or(u32::MAX)
    }

    /// The random draws of one decision.
    fn draw(&mut self) -> Draw {
        Draw {
            camouflage: self.rng.random::<f64>(),
            pick: self.rng.random::<u64>(),
            explore: Some(self.rng.random::<u64>()),
        }
    }

    fn offer(&mut self, moment: Moment) -> OfferOutcome {
        let now = self.clock.now();
        let draw = self.draw();
        let started = Instant::now();
        let decision: &Decision = self.engine.decide(moment, now, draw);
        let decide_nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let decision = decision.clone();
        self.record_decision(&decision, now);
        OfferOutcome { decision, decide_nanos, request: None }
    }

    /// Stores a decision's impression and counts it for the reports.
    fn record_decision(&mut self, decision: &Decision, now: UnixTime) {
        if let Some(shown) = &decision.shown {
            let row = ImpressionRow {
                decision: decision.id,
                offer: shown.offer.clone(),
                campaign: shown.campaign.clone(),
                at: now,
            };
            let stored = self.store.record_impression(&row);
            if let Err(e) = self.track(stored) {
                debug!("impression of '{}' not stored; caps after a restart may undercount: {e}", shown.offer);
            }
            if self.engine.consent().allows(Purpose::Measure) {
                let version = decision.catalogue_version.unwrap_or(0);
                self.tally.impression(self.local_day(now), &shown.campaign, Arm::Treatment, version);
            }
        }
        if decision.would_have_shown.is_some() {
            if let (true, Some(campaign)) =
                (self.engine.consent().allows(Purpose::Measure), self.engine.decision_campaign(decision.id))
            {
                let version = decision.catalogue_version.unwrap_or(0);
                self.tally.impression(self.local_day(now), &campaign, Arm::Holdout, version);
            }
        }
    }

    /// Request mode: asks the offer service when the local decision found nothing it could
    /// show and asking is configured, consented and worthwhile: the caller's reply then waits
    /// for the answer or the timeout. Otherwise the local decision is the reply.
    fn request_offers(&mut self, moment: Moment, local: OfferOutcome, reply: oneshot::Sender<OfferOutcome>) {
        let now = self.clock.now();
        let ask = self.config.offer_request_timeout.filter(|_| {
            self.pending.is_none() && self.egress.connected() && self.engine.request_worthwhile(local.decision.id, now)
        });
        let Some(timeout) = ask else {
            let _ = reply.send(local);
            return;
        };
        let request = OfferRequest {
            device_kind: self.config.kind,
            moment,
            interests: self.engine.interests(),
            time_of_day: TimeOfDay::from_hour(self.config.local.hour(now)),
        };
        let correlation: [u8; 16] = self.rng.random();
        if let Err(e) = self.egress.offer_request(&request, &correlation, timeout) {
            debug!("offer request not sent, deciding locally: {e}");
            let _ = reply.send(local);
            return;
        }
        self.requests.sent += 1;
        let sent = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let interests_sent = !request.interests.is_empty();
        self.pending = Some(PendingRequest { correlation, moment, interests_sent, local, reply, sent, deadline });
    }

    /// The offer service's answer: decided on if it answers the pending request, ignored
    /// otherwise (late, or for a request this agent no longer waits for).
    fn handle_offers(&mut self, payload: &[u8], correlation: Option<&[u8]>) {
        let Some(pending) = self.pending.take_if(|p| correlation == Some(p.correlation.as_slice())) else {
            debug!("an offer-service answer for no waiting request (late, or not ours); ignored");
            return;
        };
        let response = match codec::from_json::<OfferResponse>(payload, "offer response") {
            Ok(response) => response,
            Err(e) => {
                warn!("the offer service's answer is unreadable, deciding without it: {e}");
                self.requests.unanswered += 1;
                return finish(pending, false, 0, 0);
            }
        };
        let now = self.clock.now();
        let draw = self.draw();
        let started = Instant::now();
        match self.engine.decide_remote(pending.moment, now, draw, response.offers, pending.interests_sent) {
            Ok((decision, counted)) => {
                let decide_nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                let decision = decision.clone();
                self.record_decision(&decision, now);
                self.requests.answered += 1;
                let outcome = OfferOutcome { decision, decide_nanos, request: None };
                finish(PendingRequest { local: outcome, ..pending }, true, counted.received, counted.kept);
            }
            Err(e) => {
                warn!("the offer service's answer cannot be used, deciding without it: {e}");
                self.requests.unanswered += 1;
                finish(pending, false, 0, 0);
            }
        }
    }

    /// No answer in time: the local decision stands.
    fn request_timed_out(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.requests.unanswered += 1;
            debug!(moment = %pending.moment, "the offer service did not answer in time; nothing shown");
            finish(pending, false, 0, 0);
        }
    }

    fn feedback(&mut self, feedback: Feedback) -> Result<(), AgentError> {
        let now = self.clock.now();
        let target = self.engine.check_feedback(feedback)?;
        // The answer (it rules offers out across restarts) and, only while `personalise`
        // allows it, the learning row are stored in one transaction before the engine changes,
        // so a storage failure changes nothing.
        let learning = self.engine.consent().allows(Purpose::Personalise) && !target.held_out;
        let stored = self.store.record_feedback_event(
            feedback.decision,
            &target.offer,
            target.category.as_deref(),
            target.kind,
            now,
            learning,
        );
        self.track(stored).map_err(storage)?;
        let applied = self.engine.handle_feedback(feedback, now)?;
        if self.engine.consent().allows(Purpose::Measure) {
            let arm = if applied.held_out { Arm::Holdout } else { Arm::Treatment };
            let version = applied.catalogue_version.unwrap_or(0);
            self.tally.feedback(self.local_day(now), &applied.campaign, arm, version, applied.kind);
        }
        Ok(())
    }

    fn effective(&self, household: &Household) -> ConsentState {
        effective(household, self.config.sharing, &self.config.owner, self.present.as_ref())
    }

    fn consent_view(&self) -> Result<ConsentView, AgentError> {
        let household = self.store.household().map_err(storage)?;
        Ok(ConsentView {
            purposes_version: PURPOSES_VERSION,
            grants: self.engine.consent().into(),
            sharing: self.config.sharing,
            owner: self.config.owner.clone(),
            people: household
                .iter()
                .map(|(id, m)| (id.clone(), PersonView { child: m.child, grants: m.consent.into() }))
                .collect(),
            present: self.present.as_ref().map(|p| p.iter().cloned().collect()),
        })
    }

    fn prompt_answer(&mut self, answer: PromptAnswer) -> Result<ConsentView, AgentError> {
        let now = self.clock.now();
        let prompt = self.engine.check_prompt_answer(answer.decision)?;
        let yes = answer.answer == YesNo::Yes;
        if yes {
            // On a shared device a "yes" is one person's: it must say whose.
            if self.config.sharing == Sharing::Shared && answer.person.is_none() {
                return Err(AgentError::BadRequest(
                    "this device is shared: say who answered with \"person\", so the consent is theirs".into(),
                ));
            }
            let change = ConsentChange {
                granted: true,
                source: ConsentSource::DeviceUi,
                text_version: prompt.text_version.clone(),
            };
            self.set_consent(answer.person, prompt.purpose, change)?;
        }
        let stored = self.store.record_prompt_answer(prompt.prompt.as_str(), prompt.purpose, yes, now);
        self.track(stored).map_err(storage)?;
        self.engine.handle_prompt_answer(answer.decision, yes, now)?;
        self.consent_view()
    }

    /// Puts `state` in force: the engine purges what it may no longer hold before this
    /// returns, and so do the tally and, for `personalise`, the stored learning data.
    fn apply_consent(&mut self, state: ConsentState, why: &str) {
        if let Ok(household) = self.store.household() {
            self.engine.set_askable(askable(
                &household,
                self.config.sharing,
                &self.config.owner,
                self.present.as_ref(),
            ));
        }
        let before = self.engine.consent();
        let purged = self.engine.set_consent(state);
        self.egress.set_consent(state);
        // A request waiting for its answer was sent under the consent now withdrawn: its answer
        // is not used, and the caller gets the local decision now.
        if Purpose::ALL.into_iter().any(|p| before.allows(p) && !state.allows(p)) {
            if let Some(pending) = self.pending.take() {
                self.requests.unanswered += 1;
                finish(pending, false, 0, 0);
            }
        }
        if !state.allows(Purpose::Measure) {
            self.tally.clear();
        }
        if before.allows(Purpose::Personalise) && !state.allows(Purpose::Personalise) {
            if let Err(e) = self.store.purge_personalise() {
                error!("stored feedback could not be purged after losing 'personalise': {e}");
            }
        }
        for lost in Purpose::ALL.into_iter().filter(|p| before.allows(*p) && !state.allows(*p)) {
            if let Err(e) = self.store.purge_outbox(lost) {
                error!("queued '{lost}' messages could not be purged: {e}");
            }
        }
        if before != state {
            info!(
                why,
                personalise = state.allows(Purpose::Personalise),
                request = state.allows(Purpose::Request),
                measure = state.allows(Purpose::Measure),
                improve = state.allows(Purpose::Improve),
                features_purged = purged.features,
                posteriors_purged = purged.posteriors,
                decisions_purged = purged.decisions,
                "consent in force changed"
            );
        }
    }

    fn set_consent(
        &mut self,
        person: Option<PersonId>,
        purpose: Purpose,
        change: ConsentChange,
    ) -> Result<ConsentView, AgentError> {
        let person = person.unwrap_or_else(|| self.config.owner.clone());
        let household = self.store.household().map_err(storage)?;
        let member = household.get(&person).ok_or_else(|| AgentError::UnknownPerson(person.clone()))?;
        if member.child && change.granted && !purpose.child_may_grant() {
            return Err(AgentError::BadRequest(format!(
                "person '{person}' is a child profile, which can never grant '{purpose}'"
            )));
        }
        let row = LedgerRow {
            person,
            purpose,
            granted: change.granted,
            at: self.clock.now(),
            source: change.source,
            text_version: change.text_version,
        };
        // The ledger is written first: if that fails, nothing changes.
        let (sharing, owner, present) = (self.config.sharing, self.config.owner.clone(), self.present.clone());
        let stored = self.store.append_consent(&row, &|h| effective(h, sharing, &owner, present.as_ref()));
        let (_, state) = self.track(stored).map_err(storage)?;
        self.apply_consent(state, "consent ledger");
        self.consent_view()
    }

    /// Whether the device's own data is about `person`.
    fn device_data_about(&self, person: &PersonId, household: &Household) -> bool {
        match self.config.sharing {
            Sharing::Personal => *person == self.config.owner,
            Sharing::Shared => household.contains_key(person),
        }
    }

    fn my_data(&self, person: Option<PersonId>) -> Result<MyData, AgentError> {
        let person = person.unwrap_or_else(|| self.config.owner.clone());
        let household = self.store.household().map_err(storage)?;
        if !household.contains_key(&person) {
            return Err(AgentError::UnknownPerson(person));
        }
        let about = self.device_data_about(&person, &household);
        let now = self.clock.now();
        let consent_ledger = self.store.ledger().map_err(storage)?.into_iter().filter(|r| r.person == person).collect();
        let erasures = self
            .store
            .erasures(&person)
            .map_err(storage)?
            .into_iter()
            .map(|(at, source)| ErasureRecord { at, source })
            .collect();
        // Rows the broker acknowledged wait out `egress::LINGER` in the outbox, sent.
        let queued_messages = if about {
            self.store
                .outbox()
                .map_err(storage)?
                .into_iter()
                .filter(|row| !self.egress.is_delivered(row.id))
                .map(|row| QueuedMessage {
                    purpose: row.purpose,
                    topic: row.topic,
                    queued_at: row.created_at,
                    payload: serde_json::from_slice(&row.payload).unwrap_or(serde_json::Value::Null),
                })
                .collect()
        } else {
            Vec::new()
        };
        let (features, impressions, feedback, queued_reports) = if about {
            (
                self.engine.features(now).into_iter().map(|(feature, value)| FeatureValue { feature, value }).collect(),
                self.store.impressions_since(UnixTime(0)).map_err(storage)?,
                self.store
                    .feedback_rows()
                    .map_err(storage)?
                    .into_iter()
                    .map(|(decision, offer, kind, at)| FeedbackRecord { decision, offer, kind, at })
                    .collect(),
                self.tally
                    .pending()
                    .into_iter()
                    .map(|p| QueuedReport {
                        day: p.day,
                        campaign: p.campaign,
                        arm: p.arm,
                        catalogue_version: p.catalogue_version,
                        impressions: p.impressions,
                        accepts: p.accepts,
                        dismissals: p.dismissals,
                        conversions: p.conversions,
                    })
                    .collect(),
            )
        } else {
            (Vec::new(), Vec::new(), Vec::new(), Vec::new())
        };
        Ok(MyData {
            person,
            device: self.config.device.clone(),
            sharing: self.config.sharing,
            device_data_about_person: about,
            consent_ledger,
            erasures,
            features,
            impressions,
            feedback,
            queued_reports,
            queued_messages,
        })
    }

    fn erase(&mut self, person: Option<PersonId>, source: ConsentSource) -> Result<MyData, AgentError> {
        let person = person.unwrap_or_else(|| self.config.owner.clone());
        let household = self.store.household().map_err(storage)?;
        if !household.contains_key(&person) {
            return Err(AgentError::UnknownPerson(person));
        }
        let about = self.device_data_about(&person, &household);
        let (sharing, owner, present) = (self.config.sharing, self.config.owner.clone(), self.present.clone());
        let (_, state) = self
            .store
            .erase(&person, about, self.clock.now(), source, &|h| effective(h, sharing, &owner, present.as_ref()))
            .map_err(storage)?;
        self.apply_consent(state, "erasure");
        if about {
            let purged = self.engine.erase();
            self.tally.clear();
            info!(%person, features = purged.features, decisions = purged.decisions, "erased what the device held about a person");
        }
        self.my_data(Some(person))
    }

    fn put_person(&mut self, person: PersonId, change: PersonChange) -> Result<ConsentView, AgentError> {
        let (sharing, owner, present) = (self.config.sharing, self.config.owner.clone(), self.present.clone());
        let (_, state) = self
            .store
            .put_person(&person, change.child, self.clock.now(), &|h| effective(h, sharing, &owner, present.as_ref()))
            .map_err(storage)?;
        self.apply_consent(state, "household changed");
        self.consent_view()
    }

    fn set_presence(&mut self, present: Option<Vec<PersonId>>) -> Result<ConsentView, AgentError> {
        self.present = present.map(|p| p.into_iter().collect());
        let household = self.store.household().map_err(storage)?;
        let state = self.effective(&household);
        self.apply_consent(state, "presence changed");
        self.consent_view()
    }

    /// Queues every count gathered so far as noised reports in the outbox (only with
    /// `measure`) and hands what is queued to the broker if connected. Returns how many
    /// reports were queued. (The agent itself reports each day once it is over, on its timer.)
    fn flush_reports(&mut self) -> usize {
        let queued = self.queue_reports(u32::MAX);
        self.deliver();
        queued
    }

    /// Queues the counts of days before `before` as noised reports (only with `measure`).
    fn queue_reports(&mut self, before: u32) -> usize {
        if !self.engine.consent().allows(Purpose::Measure) {
            self.tally.clear();
            return 0;
        }
        let now = self.clock.now();
        let mut queued = 0;
        for report in self.tally.drain_noised_before(before, self.config.report_epsilon, &mut self.rng) {
            match self.egress.report(&self.store, &report, now) {
                Ok(()) => queued += 1,
                Err(e) => warn!(campaign = %report.campaign, "report: {e}"),
            }
        }
        queued
    }

    /// Makes the subscriptions owed since the last connection (on a session the broker said it
    /// kept, or not), if the client's queue takes them; else the next tick tries again.
    fn subscribe(&mut self) {
        let Some(session_kept) = self.subscriptions_owed.filter(|_| self.connected) else { return };
        match self.egress.subscribe(session_kept) {
            Ok(()) => self.subscriptions_owed = None,
            Err(e) => warn!("subscribe: {e}; trying again within a minute"),
        }
    }

    /// Hands queued messages to the broker, if connected.
    fn deliver(&mut self) {
        if let Err(e) = self.egress.deliver(&self.store) {
            warn!("outbox: {e}");
        }
    }

    fn status(&self) -> AgentStatus {
        AgentStatus {
            device: self.config.device.clone(),
            kind: self.config.kind,
            fleet: self.config.fleet.clone(),
            connected: self.connected,
            catalogue_version: self.version(),
            offers: self.engine.catalogue().map_or(0, |c| c.offers.len()),
            catalogues_refused: self.refused,
            catalogues_malformed: self.malformed,
            last_refusal: self.last_refusal.clone(),
            rollout_waiting: self.rollout_waiting,
            model_version: self.engine.model().map(|m| m.version),
            model: self.engine.model().map(|m| format!("{} v{} ({})", m.name, m.version, m.runtime())),
            models_refused: self.models_refused,
            last_model_refusal: self.last_model_refusal.clone(),
            egress_sent: self.egress.sent(),
            egress_blocked: self.egress.blocked(),
            requests_sent: self.requests.sent,
            requests_answered: self.requests.answered,
            requests_unanswered: self.requests.unanswered,
            link: self.link.as_ref().map(|l| l.status.clone()),
            storage_error: self.storage_failing.clone(),
            collector_present: self.egress.collector_present(),
        }
    }
}

/// Answers a pending request's caller with its `local` decision (the one on the service's
/// offers when `answered`), saying what came of the request.
fn finish(pending: PendingRequest, answered: bool, received: usize, kept: usize) {
    let round_trip_micros = u64::try_from(pending.sent.elapsed().as_micros()).unwrap_or(u64::MAX);
    let request = RequestOutcome { answered, offers_received: received, offers_kept: kept, round_trip_micros };
    let _ = pending.reply.send(OfferOutcome { request: Some(request), ..pending.local });
}

fn storage(e: StoreError) -> AgentError {
    AgentError::Storage(e.to_string())
}
