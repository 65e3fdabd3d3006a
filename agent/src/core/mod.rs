//! The agent's core: synchronous, and free of IO of its own. It takes events — MQTT packets
//! and acknowledgements, link frames, ticks, commands from the local API — each with the time
//! (`now`, read by the shell from the agent's one [`Clock`](crate::Clock)), and puts what they
//! mean in force: consent transitions, delivery through the egress gate, offer requests,
//! report tallies and status. The shell (`runtime`) feeds events in and carries answers out;
//! it decides nothing.
//!
//! What the core writes goes through its [`Store`] (SQLite; its tests use an in-memory
//! database) and what it sends through the [`Egress`] gate's MQTT client handle (a channel
//! sender; its tests watch the requests). Offer requests wait for their answer inside the core:
//! [`AgentCore::poll_timeout`] says when the shell must wake it, and
//! [`AgentCore::poll_answer`] hands out the answers a request's caller waits for.

mod catalogue;
mod consent;
mod feedback;
mod home;
mod link;
mod moments;
mod my_data;
mod requests;
mod status;
mod storage;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use ledtrad_engine::{Engine, SignalOutcome};
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::{PersonId, UnixTime};
use rumqttc::v5::AsyncClient;
use tracing::{debug, error, info, warn};

use crate::clock::Now;
use crate::config::Config;
use crate::egress::{Ack, Egress};
use crate::events::UiEvent;
use crate::handle::{AgentError, SignalsOutcome};
use crate::household::{askable, effective};
use crate::reports::Tally;
use crate::store::{Store, StoreError};

pub use home::HOME_SETTLE_WAIT;
pub use link::LinkState;
pub use moments::MomentRules;
pub use requests::{OfferStep, RequestToken};
pub(crate) use status::offline_status;
pub use status::AGENT_VERSION;

/// What the MQTT connection reports to the core.
#[derive(Debug)]
pub enum MqttEvent {
    /// Connected; whether the broker says it kept this device's session (which may lack
    /// subscriptions made since its last save).
    Connected {
        /// The CONNACK's session-present flag.
        session_present: bool,
    },
    /// The connection dropped; the MQTT client discarded the `unsent` oldest publishes it had
    /// not sent yet (the outbox hands its rows over again).
    Disconnected {
        /// The error.
        why: String,
        /// Publishes discarded.
        unsent: usize,
    },
    /// The MQTT client numbered its oldest publish not numbered yet (0 for QoS 0).
    Numbered(u16),
    /// The MQTT client holds its oldest publish not numbered yet until this packet id is free.
    Held(u16),
    /// The broker acknowledged a publish, with what its reason code says.
    Acked {
        /// The packet id.
        pkid: u16,
        /// What the reason code says.
        ack: Ack,
    },
    /// The broker refused the login (the return code, and as for `Disconnected`, the publishes
    /// discarded); the connection keeps retrying.
    LoginRefused(String, usize),
    /// A message arrived.
    Publish {
        /// Its topic.
        topic: String,
        /// Its payload.
        payload: Vec<u8>,
        /// MQTT 5 correlation data, on answers from the offer service.
        correlation: Option<Vec<u8>>,
    },
}

/// The agent's state and the rules that change it.
pub struct AgentCore {
    config: Config,
    engine: Engine,
    store: Store,
    egress: Egress,
    inbound: catalogue::Inbound,
    connection: Connection,
    /// The last write that failed, while the database cannot be written (full, read-only).
    storage_failing: Option<String>,
    tally: Tally,
    rng: rand::rngs::StdRng,
    present: Option<BTreeSet<PersonId>>,
    requests: requests::Requests,
    /// The sensor board's link, if the config names one.
    link: Option<LinkState>,
    /// What raises moments.
    moments: moments::Moments,
    /// Events for a connected UI, oldest first, until the shell takes them.
    ui_events: VecDeque<UiEvent>,
    /// What pruning the database did.
    storage: storage::Storage,
    /// The home this device belongs to, if any.
    home: Option<home::Home>,
    home_counts: home::HomeCounts,
}

/// The broker connection as the core follows it.
#[derive(Debug, Default)]
struct Connection {
    connected: bool,
    /// Subscriptions not made yet on this connection (the client's queue was full), with
    /// whether the broker said it kept the session.
    subscriptions_owed: Option<bool>,
    login_refused: bool,
}

impl AgentCore {
    /// The core of an agent whose database is `store`: restores the household, the catalogue
    /// and model it applied, its history and consent, and sends through `client`. `rng` draws
    /// for decisions and report noise; `link` is the sensor board's link, if configured.
    pub fn restore(
        config: Config,
        mut store: Store,
        client: AsyncClient,
        rng: rand::rngs::StdRng,
        link: Option<LinkState>,
        now: Now,
    ) -> Result<Self, StoreError> {
        let mut engine = Engine::new(config.engine_profile(), config.keys.clone());
        if let Some(shared) = &config.shared_catalogues {
            engine.share_catalogues(shared.clone());
        }
        let now = now.wall;
        if !store.household()?.contains_key(&config.owner) {
            let (sharing, owner) = (config.sharing, config.owner.clone());
            let effective = |h: &crate::store::Household| effective(h, sharing, &owner, None);
            store.put_person(&config.owner, false, now, &effective)?;
        }
        let household = store.household()?;
        engine.set_consent(effective(&household, config.sharing, &config.owner, None));
        let inbound = catalogue::restore_signed(&mut engine, &store, now)?;
        restore_history(&mut engine, &store, now)?;
        engine.set_askable(askable(&household, config.sharing, &config.owner, None));
        let mut egress = Egress::new(client, config.device.clone(), config.fleet.clone());
        egress.set_consent(engine.consent());
        let mut core = Self {
            egress,
            config,
            engine,
            store,
            inbound,
            connection: Connection::default(),
            storage_failing: None,
            tally: Tally::default(),
            rng,
            present: None,
            requests: requests::Requests::default(),
            link,
            moments: moments::Moments::default(),
            ui_events: VecDeque::new(),
            storage: storage::Storage::default(),
            home: None,
            home_counts: home::HomeCounts::default(),
        };
        core.restore_home()?;
        Ok(core)
    }

    /// An MQTT event.
    pub fn handle_mqtt(&mut self, event: MqttEvent, now: Now) {
        match event {
            MqttEvent::Connected { session_present } => self.on_connected(session_present, now),
            MqttEvent::Numbered(pkid) => self.egress.on_numbered(pkid),
            MqttEvent::Held(pkid) => self.egress.on_held(pkid),
            MqttEvent::Acked { pkid, ack } => {
                if ack == Ack::Refused {
                    warn!(pkid, "the broker refused a queued message; it is dropped");
                }
                if let Err(e) = self.egress.on_acked(&self.store, pkid, ack, now.mono) {
                    warn!("outbox: {e}");
                }
                self.deliver(now);
            }
            MqttEvent::Disconnected { why, unsent } => {
                let (device, broker) = (&self.config.device, &self.config.broker);
                if self.connection.connected {
                    warn!(%device, %broker, "disconnected: {why}; reconnecting");
                } else {
                    debug!(%device, %broker, "still offline: {why}");
                }
                self.connection.connected = false;
                self.egress.on_disconnected(unsent);
                self.home_settled(now, "connection lost");
            }
            MqttEvent::LoginRefused(code, unsent) => self.on_login_refused(&code, unsent),
            MqttEvent::Publish { topic, payload, correlation } => {
                self.on_publish(&topic, &payload, correlation.as_deref(), now)
            }
        }
    }

    fn on_connected(&mut self, session_present: bool, now: Now) {
        info!(device = %self.config.device, broker = %self.config.broker, session_present, "connected");
        self.connection.connected = true;
        self.connection.login_refused = false;
        self.egress.set_connected(true);
        // A broker that kept no session (a first connection, an expired session, a broker that
        // lost its state) sends the retained catalogue, model and collectors' presence with the
        // new subscriptions; one that kept it may have kept it from before its last save, so
        // the subscriptions are made again all the same (see `Egress::subscribe`).
        if !session_present {
            self.egress.on_session_lost();
        }
        self.connection.subscriptions_owed = Some(session_present);
        self.subscribe();
        self.hello(now, session_present);
        // The last will may have said "offline" meanwhile.
        self.publish_status();
        self.deliver(now);
    }

    fn on_login_refused(&mut self, code: &str, unsent: usize) {
        // Said once until the next connection: the connection retries with backoff.
        if !self.connection.login_refused {
            let broker = &self.config.broker;
            let certificate = self.config.mqtt.tls.as_ref().and_then(|tls| tls.files().client.as_ref());
            match (&self.config.mqtt.login, certificate) {
                (None, Some(client)) => warn!(
                    %broker,
                    "the broker refused this device's certificate '{}' as its identity ({code}); is its identity the device_id, and does the broker take it as the username (use_identity_as_username)? retrying",
                    client.cert.display()
                ),
                (Some(login), _) => warn!(
                    %broker,
                    "the broker refused the login as '{}' ({code}); check mqtt_username and mqtt_password_file against the broker's password file; retrying",
                    login.username()
                ),
                (None, None) => warn!(
                    %broker,
                    "the broker refused to connect without a login ({code}); set mqtt_password_file (and mqtt_username if it is not the device_id); retrying"
                ),
            }
        }
        self.connection.login_refused = true;
        self.connection.connected = false;
        self.egress.on_disconnected(unsent);
    }

    fn on_publish(&mut self, topic: &str, payload: &[u8], correlation: Option<&[u8]>, now: Now) {
        match Topic::parse(topic) {
            Ok(Topic::Catalogue(fleet)) if fleet == self.config.fleet => self.handle_catalogue(payload, now),
            Ok(Topic::Model(fleet)) if fleet == self.config.fleet => self.handle_model(payload, now),
            Ok(Topic::Offers(device)) if device == self.config.device => self.handle_offers(payload, correlation, now),
            Ok(home @ Topic::Home(_)) => self.on_home_message(&home, payload, now),
            Ok(Topic::Collector(instance)) => {
                if self.egress.on_collector(instance, payload) {
                    debug!("a report collector is present; handing over queued reports");
                    self.deliver(now);
                }
            }
            Ok(other) => debug!(topic = %other, "ignoring a message on a topic the agent does not handle"),
            Err(e) => warn!("ignoring a message: {e}"),
        }
    }

    /// Frees what the core holds only while at work (the database's page cache): the shell
    /// calls it each time it has handled what came in.
    pub fn rest(&self) {
        self.store.release_memory();
    }

    /// Now and then: expire old feature values, report completed days (at most once a day
    /// per campaign: a day's counts are reported once it is over), keep the database bounded
    /// (once a day, or when it is over its budget), retry the outbox and subscriptions the
    /// client's queue did not take, and ask again for a missing collector. Returns whether it
    /// pruned the database (the shell then gives what was freed back to the system).
    pub fn handle_tick(&mut self, now: Now) -> bool {
        let dropped = self.engine.handle_timeout(now.wall);
        if dropped > 0 {
            debug!(dropped, "feature values past their retention dropped");
        }
        let pruned = self.keep_storage_bounded(now);
        let today = self.local_day(now.wall);
        if self.tally.oldest_day().is_some_and(|day| day < today) {
            let queued = self.queue_reports(today, now);
            debug!(queued, "reports for completed days queued");
        }
        self.retell_home(now);
        if let Err(e) = self.egress.forget_delivered(&self.store, now.mono) {
            warn!("outbox: {e}");
        }
        self.deliver(now);
        self.subscribe();
        match self.egress.ask_for_collectors() {
            Ok(true) => debug!("reports wait and no collector is known; asked the broker for their presence again"),
            Ok(false) => {}
            Err(e) => warn!("subscribe: {e}"),
        }
        pruned
    }

    /// Signals handed in by the device maker; they may raise a moment (see `moments`).
    pub fn handle_signals(&mut self, signals: Vec<ledtrad_protocol::signal::Signal>, now: Now) -> SignalsOutcome {
        let mut outcome = SignalsOutcome::default();
        let mut taken = Vec::with_capacity(signals.len());
        for signal in signals {
            let result = self.engine.handle_signal(signal, now.wall);
            match result {
                SignalOutcome::Aggregated => outcome.aggregated += 1,
                SignalOutcome::DroppedNoConsent => outcome.dropped_no_consent += 1,
                SignalOutcome::DroppedComputed | SignalOutcome::DroppedOutOfRange => outcome.dropped_invalid += 1,
            }
            taken.push((signal, result));
        }
        outcome.raised = self.raise_from_signals(&taken, moments::Origin::Api, now);
        outcome
    }

    /// An event for a connected UI, if one is waiting (oldest first).
    pub fn poll_event(&mut self) -> Option<UiEvent> {
        self.ui_events.pop_front()
    }

    /// A recent decision.
    pub fn decision(&self, id: ledtrad_protocol::decision::DecisionId) -> Option<ledtrad_protocol::decision::Decision> {
        self.engine.decision(id)
    }

    /// The consent ledger, oldest first.
    pub fn ledger(&self) -> Result<Vec<crate::store::LedgerRow>, AgentError> {
        self.store.ledger().map_err(storage)
    }

    /// When the shell must call [`AgentCore::handle_timeout`] next, on the monotonic clock.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.requests.deadline().into_iter().chain(self.home_deadline()).min()
    }

    /// Whatever was due by `now` (an offer request's deadline, the end of the wait for the
    /// home's channel).
    pub fn handle_timeout(&mut self, now: Now) {
        if self.requests.deadline().is_some_and(|due| now.mono >= due) {
            self.request_timed_out();
        }
        if self.home_deadline().is_some_and(|due| now.mono >= due) {
            warn!("the home's channel did not answer within {HOME_SETTLE_WAIT:?} of connecting; deciding on what this device holds");
            self.home_settled(now, "waited long enough");
        }
    }

    /// Stops: a request still waiting gets its local decision (offers held for the home are
    /// decided), and the device says it is
    /// offline and disconnects.
    pub fn close(&mut self, now: Now) {
        self.home_settled(now, "stopping");
        self.request_timed_out();
        let offline = offline_status(&self.config, self.version(), self.inbound.last_refusal.clone());
        self.egress.close(&offline);
        info!(device = %self.config.device, "agent stopped");
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

    fn local_day(&self, now: UnixTime) -> u32 {
        u32::try_from(self.config.local.day(now)).unwrap_or(u32::MAX)
    }

    /// Makes the subscriptions owed since the last connection (on a session the broker said it
    /// kept, or not), if the client's queue takes them; else the next tick tries again.
    fn subscribe(&mut self) {
        let Some(session_kept) = self.connection.subscriptions_owed.filter(|_| self.connection.connected) else {
            return;
        };
        match self.egress.subscribe(session_kept) {
            Ok(()) => self.connection.subscriptions_owed = None,
            Err(e) => warn!("subscribe: {e}; trying again within a minute"),
        }
    }

    /// Hands queued messages to the broker, if connected.
    fn deliver(&mut self, now: Now) {
        if let Err(e) = self.egress.deliver(&self.store, now.mono) {
            warn!("outbox: {e}");
        }
    }
}

/// Hands the engine what it needs of the past: impressions (caps look back 30 days at most,
/// besides all-time totals, which add the counts folded from pruned impressions), feedback
/// (and the counts folded from pruned learning rows), answers, decision numbering and prompt
/// refusals.
fn restore_history(engine: &mut Engine, store: &Store, now: UnixTime) -> Result<(), StoreError> {
    for row in store.impressions_since(UnixTime(0))? {
        engine.restore_impression(&row.offer, &row.campaign, row.at);
    }
    for (offer, campaign, count) in store.impression_totals()? {
        engine.restore_impression_total(&offer, &campaign, count);
    }
    for (offer, kind) in store.feedback()? {
        engine.restore_feedback(&offer, kind);
    }
    for (offer, accepts, rejections) in store.learning_totals()? {
        engine.restore_posterior_counts(&offer, accepts, rejections);
    }
    let ninety_days = ledtrad_engine::answers::NOT_FOR_ME_SECS;
    for (offer, category, kind, at) in store.answers_since(UnixTime(now.secs().saturating_sub(ninety_days)))? {
        engine.restore_answer(&offer, category.as_deref(), kind, at);
    }
    engine.resume_decision_ids(store.last_decision_id()? + 1);
    for (purpose, at) in store.prompt_refusals()? {
        engine.restore_prompt_refusal(purpose, at);
    }
    Ok(())
}

fn storage(e: StoreError) -> AgentError {
    AgentError::Storage(e.to_string())
}
