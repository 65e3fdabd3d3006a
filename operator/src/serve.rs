//! The offer service (`ledtrad-op serve`, DESIGN §4, §5, §11): answers devices' offer requests
//! from a catalogue, over MQTT 5 request/response. Instances subscribe to
//! `$share/ledtrad-offers/ledtrad/v1/offers/request`, so the broker hands each request to one
//! of them and several share the load on any MQTT 5 broker. A request carries only the coarse
//! context of DESIGN §6 (device kind, moment, time of day, up to three interest categories);
//! the answer goes to the request's response topic with its correlation data, and the device
//! still applies its own checks, eligibility, caps and consent to every offer.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use ledtrad_mqtt::Access;
use ledtrad_mqtt::{Backoff, Connection, LastWill, Polled};
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::codec;
use ledtrad_protocol::report::Report;
use ledtrad_protocol::topic::{Topic, ALL_REPORTS_FILTER, ALL_REPORTS_SHARED, COLLECTOR_ONLINE, OFFER_REQUEST_SHARED};
use ledtrad_protocol::{InstanceId, UnixTime};
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, SubAck, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event};
use tracing::{debug, info, warn};

use crate::collect::{CollectError, ReportStore, Stored};
use crate::offers::answer;
pub use crate::offers::{OfferService, ServiceError, DEFAULT_MAX_OFFERS};

mod counters;

pub use counters::{Counters, ServeSummary, StoredReport};

/// Where and how to serve.
pub struct ServeOptions {
    /// The broker.
    pub broker: BrokerUrl,
    /// What the service presents to it (a login, TLS).
    pub access: Access,
    /// The instance's name, unique among those on the broker: its MQTT client id is
    /// `ledtrad-op-serve-INSTANCE` and, as a collector, it announces itself on
    /// `ledtrad/v1/collector/INSTANCE`. A collector keeps its name from run to run: its broker
    /// session keeps the reports that arrive while it is away.
    pub instance: InstanceId,
    /// What to answer with; `None` to only collect reports.
    pub service: Option<OfferService>,
    /// Where to store the fleets' reports; `None` not to collect them.
    pub reports: Option<ReportStore>,
    /// How long the broker keeps a collector's session while it is away, in seconds
    /// ([`COLLECTOR_SESSION_SECS`] for a collector that runs for good; short for a run that
    /// ends, which would otherwise leave a session collecting reports for no one).
    pub session_secs: u32,
}

/// How long the broker keeps a collector's session, and the reports that arrive for it, while
/// the collector is away: a week.
pub const COLLECTOR_SESSION_SECS: u32 = 7 * 86_400;

/// Serves until `shutdown` completes or the broker refuses the login. Reconnects (and
/// subscribes again) by itself when the connection drops. `ready` is called each time the
/// subscriptions are in place.
///
/// A collector (with `reports`) keeps a persistent session on the broker for
/// [`COLLECTOR_SESSION_SECS`], and acknowledges each report only once it is stored (or refused
/// for good): a report the broker took while the collector was away, or that was on its way
/// when the collector stopped, comes again when it is back. A report that could not be written
/// (the disk full, say) is not acknowledged, and is tried again every second: the broker holds
/// the rest meanwhile.
///
/// A collector announces itself, retained, on its presence topic (`ledtrad/v1/collector/NAME`)
/// each time its subscription is in place, and clears it when it stops; its last will clears
/// it too, 10 s after the connection is lost. Devices hand reports to the broker only while a
/// collector is present: a broker that lost its sessions in a restart (rumqttd keeps them in
/// memory only) would acknowledge them and drop them until the collector is subscribed again.
///
/// Collectors on a shared store (PostgreSQL) subscribe through the shared subscription
/// `$share/ledtrad-collectors/…`, so that the broker hands each report to one of them; a
/// report two of them see (one redelivered after a collector was lost) is stored once, by its
/// id. Each is acknowledged only after its insert committed.
///
/// An instance that both answers requests and collects reports keeps two sessions: requests
/// on a clean one (`ledtrad-op-serve-NAME-offers`), so that the broker never hands requests to a shared
/// subscription left behind by an instance that is gone, and reports on the persistent one.
pub async fn serve(
    options: ServeOptions,
    counters: Arc<Counters>,
    mut ready: impl FnMut(),
    shutdown: impl Future<Output = ()>,
) -> Result<(), crate::push::PushError> {
    let client_id = format!("ledtrad-op-serve-{}", options.instance);
    if options.service.is_none() || options.reports.is_none() {
        return serve_one(options, client_id, counters, ready, shutdown).await;
    }
    let ServeOptions { broker, access, instance, service, reports, session_secs } = options;
    let offers = ServeOptions {
        broker: broker.clone(),
        access: access.clone(),
        instance: instance.clone(),
        service,
        reports: None,
        session_secs,
    };
    let collecting = ServeOptions { broker, access, instance, service: None, reports, session_secs };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let offers_ready = {
        let tx = ready_tx.clone();
        move || {
            let _ = tx.send(0);
        }
    };
    let collector_ready = move || {
        let _ = ready_tx.send(1);
    };
    let both = async {
        tokio::try_join!(
            serve_one(offers, format!("{client_id}-offers"), counters.clone(), offers_ready, stopped(stop_rx.clone())),
            serve_one(collecting, client_id, counters, collector_ready, stopped(stop_rx)),
        )
        .map(|_| ())
    };
    // Ready once both have their subscriptions, and each time one has them again after that.
    let readiness = async {
        let mut seen = [false; 2];
        while let Some(which) = ready_rx.recv().await {
            seen[which] = true;
            if seen == [true, true] {
                ready();
            }
        }
        std::future::pending::<()>().await;
    };
    let stop = async {
        shutdown.await;
        let _ = stop_tx.send(true);
        std::future::pending::<()>().await;
    };
    tokio::select! {
        result = both => result,
        () = readiness => Ok(()),
        () = stop => Ok(()),
    }
}

/// How long after a collector's connection is lost the broker clears its presence (its last
/// will): a collector back within it (a broker restart, a network blip) never shows as gone.
pub const PRESENCE_WILL_DELAY_SECS: u32 = 10;

/// How long a stopping collector waits for the broker to take its farewell.
const FAREWELL: std::time::Duration = std::time::Duration::from_secs(2);

/// The longest an offer service or collector waits between two connection attempts.
pub const RETRY_CAP: std::time::Duration = std::time::Duration::from_secs(10);

/// One MQTT session of [`serve`]: the offer service's (requests) or the collector's (reports),
/// until `shutdown` completes or the broker refuses the login.
async fn serve_one(
    options: ServeOptions,
    client_id: String,
    counters: Arc<Counters>,
    mut ready: impl FnMut(),
    shutdown: impl Future<Output = ()>,
) -> Result<(), crate::push::PushError> {
    let mut session = Session::open(options, &client_id, counters);
    let mut retry = tokio::time::interval(std::time::Duration::from_secs(1));
    // After a slow store (a database that is away), wait a second again rather than catch up.
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        session.send_owed();
        let polled = tokio::select! {
            () = &mut shutdown => break,
            _ = retry.tick(), if !session.unstored.is_empty() => {
                session.store_again();
                continue;
            }
            polled = session.connection.poll() => polled,
        };
        match polled {
            Polled::Event(Event::Incoming(Packet::ConnAck(ack))) => session.on_connected(ack.session_present),
            Polled::Event(Event::Incoming(Packet::SubAck(ack))) => {
                if session.on_subscribed(&ack) {
                    ready();
                }
            }
            Polled::Event(Event::Incoming(Packet::Publish(p))) => session.on_publish(p),
            Polled::Event(_) => {}
            Polled::Lost { error, retry_in, .. } => session.on_lost(error, retry_in)?,
        }
    }
    session.farewell().await;
    Ok(())
}

/// The state of one [`serve_one`] session across its connections.
struct Session {
    options: ServeOptions,
    client: AsyncClient,
    connection: Connection,
    counters: Arc<Counters>,
    /// The collector's presence topic.
    presence: String,
    /// Subscriptions still to be acknowledged on this connection.
    acks_wanted: usize,
    /// A collector's reports stored and not acknowledged yet (the client's queue was full),
    /// each with the broker session it came in: an acknowledgement is for that session only (a
    /// broker that kept no session takes one for a message it never sent as a protocol error).
    to_ack: VecDeque<(u64, Publish)>,
    /// Reports it could not store yet, oldest first, with their session.
    unstored: VecDeque<(u64, Publish)>,
    /// Counts the broker sessions: a CONNACK without a session present starts a new one.
    session: u64,
    /// Subscriptions and the presence announcement the client's queue could not take yet (it
    /// fills with acknowledgements when reports flood in after a reconnect): sent first.
    owed: VecDeque<Owed>,
    /// Between a lost connection and the next CONNACK nothing is queued: the CONNACK says
    /// whether the acknowledgements waiting still belong to the broker's session.
    connected: bool,
}

impl Session {
    /// The client for `options`: a collector keeps a persistent session, acknowledges by hand
    /// and leaves a delayed last will that clears its presence.
    fn open(options: ServeOptions, client_id: &str, counters: Arc<Counters>) -> Self {
        let presence = Topic::Collector(options.instance.clone()).name();
        let mut mqtt = crate::mqtt::client_options(&options.broker, &options.access, client_id);
        if options.reports.is_some() {
            let secs = std::time::Duration::from_secs(u64::from(options.session_secs));
            let will = LastWill {
                topic: presence.clone(),
                payload: Vec::new(),
                retain: true,
                delay: Some(std::time::Duration::from_secs(u64::from(PRESENCE_WILL_DELAY_SECS))),
            };
            mqtt = mqtt.session(Some(secs), false).manual_acks(true).last_will(will);
        }
        let (client, eventloop) = mqtt.connect();
        let backoff = Backoff::new(std::time::Duration::from_millis(100), RETRY_CAP);
        Self {
            options,
            client,
            connection: Connection::new(eventloop, backoff),
            counters,
            presence,
            acks_wanted: 0,
            to_ack: VecDeque::new(),
            unstored: VecDeque::new(),
            session: 0,
            owed: VecDeque::new(),
            connected: false,
        }
    }

    /// Hands the client what is owed, and the acknowledgements of stored reports, as far as
    /// its queue takes them (it must not wait on the queue: this task polls the event loop).
    fn send_owed(&mut self) {
        while let Some(request) = self.owed.front().filter(|_| self.connected) {
            let sent = match request {
                Owed::Subscribe(filter) => self.client.try_subscribe(*filter, QoS::AtLeastOnce).is_ok(),
                Owed::Announce => {
                    self.client.try_publish(self.presence.clone(), QoS::AtLeastOnce, true, COLLECTOR_ONLINE).is_ok()
                }
            };
            if !sent {
                break;
            }
            self.owed.pop_front();
        }
        while let Some((came_in, p)) = self.to_ack.front().filter(|_| self.connected) {
            if *came_in == self.session && self.client.try_ack(p).is_err() {
                break;
            }
            self.to_ack.pop_front();
        }
    }

    /// Tries again to store the reports that could not be stored, oldest first.
    fn store_again(&mut self) {
        while let Some((_, p)) = self.unstored.front() {
            if take(&self.options, &self.client, &self.counters, p, true) == Taken::Again {
                break;
            }
            self.to_ack.extend(self.unstored.pop_front());
        }
    }

    /// A CONNACK: subscribes (again) to what this session serves.
    fn on_connected(&mut self, session_present: bool) {
        self.session += u64::from(!session_present);
        self.connected = true;
        self.owed.clear();
        if self.options.service.is_some() {
            self.owed.push_back(Owed::Subscribe(OFFER_REQUEST_SHARED));
        }
        // Collectors on a shared store share the reports: the broker hands each to one of
        // them. A collector on its own file takes every report.
        match &self.options.reports {
            Some(store) if store.is_shared() => self.owed.push_back(Owed::Subscribe(ALL_REPORTS_SHARED)),
            Some(_) => self.owed.push_back(Owed::Subscribe(ALL_REPORTS_FILTER)),
            None => {}
        }
        self.acks_wanted = self.owed.len();
        info!(broker = %self.options.broker, "connected; subscribing");
    }

    /// A SUBACK; whether the subscriptions are all in place now.
    fn on_subscribed(&mut self, ack: &SubAck) -> bool {
        if let Some(code) = ack.return_codes.iter().find(|c| !matches!(c, SubscribeReasonCode::Success(_))) {
            warn!(broker = %self.options.broker, "the broker refused a subscription ({code:?}); is this login allowed to read the request and report topics in the broker's ACL?");
        }
        self.acks_wanted = self.acks_wanted.saturating_sub(1);
        if self.acks_wanted > 0 {
            return false;
        }
        // Present only now that the reports have somewhere to go.
        if self.options.reports.is_some() {
            self.owed.push_back(Owed::Announce);
        }
        true
    }

    /// A request or a report.
    fn on_publish(&mut self, p: Publish) {
        // A collector acknowledges by hand (see [`serve`]), in order, and not past a report it
        // could not store; an offer service's client does so itself.
        let taken = match self.unstored.is_empty() {
            true => take(&self.options, &self.client, &self.counters, &p, false),
            false => Taken::Again,
        };
        match (self.options.reports.is_some(), taken) {
            (false, _) => {}
            (true, Taken::Done) => self.to_ack.push_back((self.session, p)),
            (true, Taken::Again) => self.unstored.push_back((self.session, p)),
        }
    }

    /// The connection was lost: a refused login ends the session, anything else is retried.
    fn on_lost(&mut self, error: ConnectionError, retry_in: std::time::Duration) -> Result<(), crate::push::PushError> {
        self.connected = false;
        let error = crate::push::connection_error(&self.options.broker, &self.options.access, error);
        if matches!(error, crate::push::PushError::LoginRefused { .. }) {
            return Err(error);
        }
        warn!("{error}; reconnecting in {} ms", retry_in.as_millis());
        Ok(())
    }

    /// A collector clears its presence (devices then keep their reports) and disconnects
    /// cleanly, so that the broker keeps the session for the reports still to come.
    async fn farewell(mut self) {
        if let Some(store) = &self.options.reports {
            // A collector on a shared store leaves the group: the broker hands the others
            // what arrives while it is stopped, instead of queueing its share for it.
            if store.is_shared() {
                let _ = self.client.try_unsubscribe(ALL_REPORTS_SHARED);
            }
            let _ = self.client.try_publish(self.presence.clone(), QoS::AtLeastOnce, true, Vec::new());
            let _ = self.client.try_disconnect();
            self.connection.finish(FAREWELL).await;
        } else {
            let _ = self.client.try_disconnect();
        }
    }
}

/// An offer service running on its own task ([`start`]).
pub struct Running {
    counters: Arc<Counters>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), crate::push::PushError>>,
}

/// A service that did not come up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// It could not connect, or the broker refused it.
    #[error(transparent)]
    Broker(#[from] crate::push::PushError),
    /// Its subscriptions were not acknowledged in time.
    #[error(
        "the offer service did not subscribe on {broker} within {seconds} s; is an MQTT 5 broker listening there?"
    )]
    NotReady {
        /// The broker.
        broker: BrokerUrl,
        /// The time waited.
        seconds: u64,
    },
}

/// Starts [`serve`] on its own task and returns once its subscriptions are in place (within
/// `within`), for tools and tests that run the service beside other work.
pub async fn start(options: ServeOptions, within: std::time::Duration) -> Result<Running, StartError> {
    let broker = options.broker.clone();
    let counters = Arc::new(Counters::default());
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut task = tokio::spawn(serve(
        options,
        counters.clone(),
        move || {
            if let Some(tx) = ready_tx.take() {
                let _ = tx.send(());
            }
        },
        async {
            let _ = stopped.await;
        },
    ));
    let waited = tokio::time::timeout(within, async {
        tokio::select! {
            subscribed = ready => subscribed.map_err(|_| None),
            ended = &mut task => Err(match ended {
                Ok(Err(e)) => Some(e),
                _ => None,
            }),
        }
    })
    .await;
    match waited {
        Ok(Ok(())) => Ok(Running { counters, stop, task }),
        Ok(Err(Some(e))) => Err(StartError::Broker(e)),
        _ => {
            task.abort();
            Err(StartError::NotReady { broker, seconds: within.as_secs() })
        }
    }
}

impl Running {
    /// What it has done so far.
    pub fn counts(&self) -> ServeSummary {
        self.counters.snapshot()
    }

    /// Each report committed from now on ([`Counters::watch_stored`]).
    pub fn watch_stored(&self) -> tokio::sync::mpsc::UnboundedReceiver<StoredReport> {
        self.counters.watch_stored()
    }

    /// Waits until it has stored `reports` reports in all, or `within` passed; returns how many
    /// it stored.
    pub async fn wait_for_reports(&self, reports: u64, within: std::time::Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + within;
        while self.counts().reports < reports && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.counts().reports
    }

    /// Stops it, and returns what it did.
    pub async fn stop(self) -> Result<ServeSummary, crate::push::PushError> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Err(e)) => Err(e),
            _ => Ok(self.counters.snapshot()),
        }
    }
}

/// A request the serving task owes the broker, sent without waiting (the task polls the event
/// loop, so it must not wait on the client's queue) as soon as the queue takes it.
enum Owed {
    /// Subscribe to a filter.
    Subscribe(&'static str),
    /// Say, retained, that the collector is present.
    Announce,
}

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    /// Acted on, or refused for good.
    Done,
    /// A report that could not be written yet.
    Again,
}

/// Acts on one message (`again`: a report tried before, whose failure was counted then).
fn take(options: &ServeOptions, client: &AsyncClient, counters: &Counters, p: &Publish, again: bool) -> Taken {
    let now = UnixTime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    match Topic::parse(crate::mqtt::topic_of(p)) {
        Ok(Topic::OfferRequest) => {
            let Some(service) = &options.service else { return Taken::Done };
            Counters::add(&counters.requests);
            match answer(service, p, now) {
                Ok((topic, properties, response)) => {
                    match client.try_publish_with_properties(topic, QoS::AtLeastOnce, false, response, properties) {
                        Ok(()) => Counters::add(&counters.answered),
                        Err(e) => {
                            Counters::add(&counters.unsent);
                            warn!("an answer was not sent: {e}");
                        }
                    }
                }
                Err(why) => {
                    Counters::add(&counters.refused);
                    debug!("offer request refused: {why}");
                }
            }
        }
        Ok(Topic::Reports(fleet)) => {
            let Some(store) = &options.reports else { return Taken::Done };
            let stored = codec::from_json::<Report>(&p.payload, "report")
                .map_err(|e| CollectError::Unreadable(e.to_string()))
                .and_then(|report| Ok((store.insert(&fleet, &report, now)?, report.id)));
            match stored {
                Ok((Stored::New, id)) => counters.committed(id),
                Ok((Stored::Duplicate, _)) => Counters::add(&counters.reports_duplicate),
                Err(why @ CollectError::Query { .. }) => {
                    // Not acknowledged: tried again every second, the broker holding the rest.
                    if !again {
                        Counters::add(&counters.reports_refused);
                        warn!(fleet = %fleet, "report not stored yet; trying again every second: {why}");
                    }
                    return Taken::Again;
                }
                Err(why) => {
                    Counters::add(&counters.reports_refused);
                    warn!(fleet = %fleet, "report not stored: {why}");
                }
            }
        }
        _ => {}
    }
    Taken::Done
}
