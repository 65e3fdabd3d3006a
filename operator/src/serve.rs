//! The offer service (`ledtrad-op serve`, DESIGN §4, §5, §11): answers devices' offer requests
//! from a catalogue, over MQTT 5 request/response. Instances subscribe to
//! `$share/ledtrad-offers/ledtrad/v1/offers/request`, so the broker hands each request to one
//! of them and several share the load on any MQTT 5 broker. A request carries only the coarse
//! context of DESIGN §6 (device kind, moment, time of day, up to three interest categories);
//! the answer goes to the request's response topic with its correlation data, and the device
//! still applies its own checks, eligibility, caps and consent to every offer.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ledtrad_protocol::broker::{BrokerUrl, Credentials};
use ledtrad_protocol::catalogue::{Catalogue, Offer, Problem};
use ledtrad_protocol::codec;
use ledtrad_protocol::offers::{OfferRequest, OfferResponse};
use ledtrad_protocol::topic::{Topic, COLLECTOR_ONLINE};
use ledtrad_protocol::{InstanceId, UnixTime};
use rumqttc::v5::mqttbytes::v5::{LastWill, LastWillProperties, Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use tracing::{debug, info, warn};

use crate::collect::{CollectError, ReportStore, Stored};

/// The shared-subscription group every offer-service instance joins.
pub const SHARE_GROUP: &str = "ledtrad-offers";

/// The default and the largest number of candidates in one answer.
pub const DEFAULT_MAX_OFFERS: usize = 5;

/// The filter offer-service instances subscribe with.
pub fn request_filter() -> String {
    format!("$share/{SHARE_GROUP}/{}", Topic::OfferRequest.name())
}

/// The filter a report collector subscribes with: every fleet's reports.
pub const REPORTS_FILTER: &str = "ledtrad/v1/fleet/+/reports";

/// A catalogue the service cannot answer from.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The catalogue has problems (the same checks as `ledtrad-op catalogue check`).
    #[error("the catalogue has {} problem(s), first: {}; run `ledtrad-op catalogue check` on it", .0.len(), .0[0])]
    Problems(Vec<Problem>),
    /// `max_offers` is out of range.
    #[error("--max-offers {0} is outside 1..={max}; devices take at most {max} candidates per answer", max = ledtrad_protocol::offers::MAX_REMOTE_OFFERS)]
    MaxOffers(usize),
}

/// Chooses candidates for offer requests from a catalogue.
#[derive(Debug, Clone)]
pub struct OfferService {
    offers: Vec<Offer>,
    max_offers: usize,
}

impl OfferService {
    /// A service answering from `catalogue`'s offers with up to `max_offers` candidates each.
    pub fn new(catalogue: Catalogue, max_offers: usize) -> Result<Self, ServiceError> {
        if !(1..=ledtrad_protocol::offers::MAX_REMOTE_OFFERS).contains(&max_offers) {
            return Err(ServiceError::MaxOffers(max_offers));
        }
        let problems = catalogue.problems();
        if !problems.is_empty() {
            return Err(ServiceError::Problems(problems));
        }
        Ok(Self { offers: catalogue.offers, max_offers })
    }

    /// How many offers the service answers from.
    pub fn len(&self) -> usize {
        self.offers.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.offers.is_empty()
    }

    /// The candidates for `request` at `now`: offers for the device's kind and moment that are
    /// valid now, those in one of the request's interest categories first, then by
    /// value times priority, ties by id; at most `max_offers`.
    pub fn answer(&self, request: &OfferRequest, now: UnixTime) -> OfferResponse {
        let interested = |o: &Offer| request.interests.iter().any(|i| o.category == i.path());
        let mut candidates: Vec<(bool, f64, &Offer)> = self
            .offers
            .iter()
            .filter(|o| o.device_kinds.contains(&request.device_kind) && o.moments.contains(&request.moment))
            .filter(|o| o.valid_from <= now && now < o.valid_until)
            .map(|o| (interested(o), o.value * o.priority, o))
            .collect();
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)).then_with(|| a.2.id.cmp(&b.2.id)));
        OfferResponse { offers: candidates.into_iter().take(self.max_offers).map(|(_, _, o)| o.clone()).collect() }
    }
}

/// What the service has done so far; read while it runs.
#[derive(Debug, Default)]
pub struct Counters {
    /// Offer requests received.
    pub requests: AtomicU64,
    /// Requests answered.
    pub answered: AtomicU64,
    /// Requests without a usable response topic or correlation data, or unreadable.
    pub refused: AtomicU64,
    /// Answers the MQTT client could not take (its queue full, or the connection closing).
    pub unsent: AtomicU64,
    /// Reports stored.
    pub reports: AtomicU64,
    /// Reports that could not be read or stored.
    pub reports_refused: AtomicU64,
    /// Reports received again that were stored already (a device sends a report again when the
    /// broker's acknowledgement of it was lost).
    pub reports_duplicate: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the counts.
    pub fn snapshot(&self) -> ServeSummary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServeSummary {
            requests: get(&self.requests),
            answered: get(&self.answered),
            refused: get(&self.refused),
            unsent: get(&self.unsent),
            reports: get(&self.reports),
            reports_refused: get(&self.reports_refused),
            reports_duplicate: get(&self.reports_duplicate),
        }
    }
}

/// The counts, as printed when the service stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ServeSummary {
    /// Offer requests received.
    pub requests: u64,
    /// Requests answered.
    pub answered: u64,
    /// Requests refused.
    pub refused: u64,
    /// Answers that could not be sent.
    pub unsent: u64,
    /// Reports stored.
    pub reports: u64,
    /// Reports refused.
    pub reports_refused: u64,
    /// Reports received again and not stored twice.
    pub reports_duplicate: u64,
}

/// Where and how to serve.
pub struct ServeOptions {
    /// The broker.
    pub broker: BrokerUrl,
    /// Its login, if it asks for one.
    pub login: Option<Credentials>,
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
    let ServeOptions { broker, login, instance, service, reports, session_secs } = options;
    let offers = ServeOptions {
        broker: broker.clone(),
        login: login.clone(),
        instance: instance.clone(),
        service,
        reports: None,
        session_secs,
    };
    let collecting = ServeOptions { broker, login, instance, service: None, reports, session_secs };
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

async fn serve_one(
    options: ServeOptions,
    client_id: String,
    counters: Arc<Counters>,
    mut ready: impl FnMut(),
    shutdown: impl Future<Output = ()>,
) -> Result<(), crate::push::PushError> {
    let mut mqtt = crate::mqtt::options(&options.broker, &client_id);
    if let Some(login) = &options.login {
        mqtt.set_credentials(login.username(), login.password());
    }
    let presence = Topic::Collector(options.instance.clone()).name();
    if options.reports.is_some() {
        mqtt.set_clean_start(false);
        mqtt.set_session_expiry_interval(Some(options.session_secs));
        mqtt.set_manual_acks(true);
        let delayed = LastWillProperties {
            delay_interval: Some(PRESENCE_WILL_DELAY_SECS),
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: Vec::new(),
        };
        mqtt.set_last_will(LastWill::new(presence.clone(), Vec::new(), QoS::AtLeastOnce, true, Some(delayed)));
    }
    let (client, mut eventloop) = AsyncClient::new(mqtt, 64);
    tokio::pin!(shutdown);
    let mut acks_wanted = 0usize;
    let mut backoff = std::time::Duration::from_millis(100);
    // A collector's reports stored and not acknowledged yet (the client's queue was full), and
    // reports it could not store yet, oldest first.
    // Each with the broker session it came in: an acknowledgement is for that session only (a
    // broker that kept no session takes one for a message it never sent as a protocol error).
    let (mut to_ack, mut unstored) = (VecDeque::<(u64, Publish)>::new(), VecDeque::<(u64, Publish)>::new());
    let mut session = 0u64;
    // Subscriptions and the presence announcement the client's queue could not take yet (it
    // fills with acknowledgements when reports flood in after a reconnect): sent first.
    let mut owed = VecDeque::<Owed>::new();
    // Between a lost connection and the next CONNACK nothing is queued: the CONNACK says
    // whether the acknowledgements waiting still belong to the broker's session.
    let mut connected = false;
    let mut retry = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        while let Some(request) = owed.front().filter(|_| connected) {
            let sent = match request {
                Owed::Subscribe(filter) => client.try_subscribe(filter.clone(), QoS::AtLeastOnce).is_ok(),
                Owed::Announce => {
                    client.try_publish(presence.clone(), QoS::AtLeastOnce, true, COLLECTOR_ONLINE).is_ok()
                }
            };
            if !sent {
                break;
            }
            owed.pop_front();
        }
        while let Some((came_in, p)) = to_ack.front().filter(|_| connected) {
            if *came_in == session && client.try_ack(p).is_err() {
                break;
            }
            to_ack.pop_front();
        }
        let event = tokio::select! {
            () = &mut shutdown => break,
            _ = retry.tick(), if !unstored.is_empty() => {
                while let Some((_, p)) = unstored.front() {
                    if take(&options, &client, &counters, p, true) == Taken::Again {
                        break;
                    }
                    to_ack.extend(unstored.pop_front());
                }
                continue;
            }
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = std::time::Duration::from_millis(100);
                session += u64::from(!ack.session_present);
                connected = true;
                owed.clear();
                if options.service.is_some() {
                    owed.push_back(Owed::Subscribe(request_filter()));
                }
                if options.reports.is_some() {
                    owed.push_back(Owed::Subscribe(REPORTS_FILTER.to_string()));
                }
                acks_wanted = owed.len();
                info!(broker = %options.broker, "connected; subscribing");
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if let Some(code) = ack
                    .return_codes
                    .iter()
                    .find(|c| !matches!(c, rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)))
                {
                    warn!(broker = %options.broker, "the broker refused a subscription ({code:?}); is this login allowed to read the request and report topics in the broker's ACL?");
                }
                acks_wanted = acks_wanted.saturating_sub(1);
                if acks_wanted == 0 {
                    // Present only now that the reports have somewhere to go.
                    if options.reports.is_some() {
                        owed.push_back(Owed::Announce);
                    }
                    ready();
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                // A collector acknowledges by hand (see [`serve`]), in order, and not past a
                // report it could not store; an offer service's client does so itself.
                let taken = match unstored.is_empty() {
                    true => take(&options, &client, &counters, &p, false),
                    false => Taken::Again,
                };
                match (options.reports.is_some(), taken) {
                    (false, _) => {}
                    (true, Taken::Done) => to_ack.push_back((session, p)),
                    (true, Taken::Again) => unstored.push_back((session, p)),
                }
            }
            Ok(_) => {}
            Err(e) => {
                connected = false;
                let error = crate::push::connection_error(&options.broker, options.login.as_ref(), e);
                if matches!(error, crate::push::PushError::LoginRefused { .. }) {
                    return Err(error);
                }
                warn!("{error}; reconnecting in {} ms", backoff.as_millis());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
            }
        }
    }
    if options.reports.is_some() {
        // Clear the presence (devices then keep their reports) and disconnect cleanly, so that
        // the broker keeps the session for the reports still to come.
        let _ = client.try_publish(presence, QoS::AtLeastOnce, true, Vec::new());
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(FAREWELL, async {
            while !matches!(eventloop.poll().await, Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_)) {}
        })
        .await;
    } else {
        let _ = client.try_disconnect();
    }
    Ok(())
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
    Subscribe(String),
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
            let stored = codec::from_json(&p.payload, "report")
                .map_err(|e| CollectError::Unreadable(e.to_string()))
                .and_then(|report| store.insert(&fleet, &report, now));
            match stored {
                Ok(Stored::New) => Counters::add(&counters.reports),
                Ok(Stored::Duplicate) => Counters::add(&counters.reports_duplicate),
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

/// The answer to one request: where it goes, its properties and its payload, or why there is
/// none.
fn answer(service: &OfferService, p: &Publish, now: UnixTime) -> Result<(String, PublishProperties, Vec<u8>), String> {
    let properties = p.properties.as_ref().ok_or("no MQTT 5 properties (response topic, correlation data)")?;
    let topic = properties.response_topic.as_deref().ok_or("no response topic")?;
    // Answers go only to a device's own offers topic, never to a topic of the sender's choice.
    if !matches!(Topic::parse(topic), Ok(Topic::Offers(_))) {
        return Err(format!("response topic '{topic}' is not a device's offers topic"));
    }
    let correlation = properties.correlation_data.clone().ok_or("no correlation data")?;
    let request: OfferRequest = codec::from_json(&p.payload, "offer request").map_err(|e| e.to_string())?;
    if request.interests.len() > ledtrad_protocol::offers::MAX_INTERESTS {
        return Err(format!("{} interests, more than a request may carry", request.interests.len()));
    }
    let response = codec::to_json(&service.answer(&request, now));
    let properties = PublishProperties { correlation_data: Some(correlation), ..PublishProperties::default() };
    Ok((topic.to_string(), properties, response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_protocol::device::{DeviceKind, Moment};
    use ledtrad_protocol::offers::TimeOfDay;
    use ledtrad_protocol::taxonomy::Category;

    fn offer(id: &str, category: &str, kinds: &str, value: f64) -> serde_json::Value {
        let moment = if kinds == "fridge" { "door_opened" } else { "book_finished" };
        serde_json::json!({
            "id": id, "campaign": "c", "title": "T", "question": "Could this be something for you?",
            "body": "B", "category": category, "device_kinds": [kinds], "moments": [moment],
            "value": value, "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"
        })
    }

    fn build_service(max: usize) -> OfferService {
        let catalogue = Catalogue::from_value(serde_json::json!({ "offer": [
            offer("crime", "books.crime", "ereader", 1.0),
            offer("cookbook", "books.cooking", "ereader", 3.0),
            offer("film", "media.film", "ereader", 2.0),
            offer("butter", "food.dairy", "fridge", 9.0),
        ]}))
        .unwrap();
        OfferService::new(catalogue, max).unwrap()
    }

    fn request(interests: &[&str]) -> OfferRequest {
        OfferRequest {
            device_kind: DeviceKind::Ereader,
            moment: Moment::BookFinished,
            interests: interests.iter().map(|c| Category::try_new(c).unwrap()).collect(),
            time_of_day: TimeOfDay::Evening,
        }
    }

    fn ids(response: &OfferResponse) -> Vec<&str> {
        response.offers.iter().map(|o| o.id.as_str()).collect()
    }

    #[test]
    fn candidates_match_kind_and_moment_interests_first_then_value() {
        let service = build_service(5);
        let now = UnixTime(1_795_456_800);
        assert_eq!(ids(&service.answer(&request(&[]), now)), vec!["cookbook", "film", "crime"]);
        assert_eq!(ids(&service.answer(&request(&["books.crime"]), now)), vec!["crime", "cookbook", "film"]);
        // At most max_offers.
        assert_eq!(ids(&build_service(2).answer(&request(&["media.film"]), now)), vec!["film", "cookbook"]);
        // Out of validity: nothing.
        assert!(service.answer(&request(&[]), UnixTime(1_000)).offers.is_empty());
    }

    #[test]
    fn a_bad_catalogue_or_limit_is_named() {
        let bad = Catalogue::from_value(serde_json::json!({ "offer": [offer("x", "food.dairy", "fridge", 1.0)] }))
            .map(|mut c| {
                c.offers[0].question = "Buy butter.".into();
                c
            })
            .unwrap();
        let err = OfferService::new(bad, 5).unwrap_err().to_string();
        assert!(err.contains("1 problem(s)") && err.contains("catalogue check"), "{err}");
        assert_eq!(build_service(5).len(), 4);
        let catalogue =
            Catalogue::from_value(serde_json::json!({ "offer": [offer("x", "food.dairy", "fridge", 1.0)] })).unwrap();
        let err = OfferService::new(catalogue, 0).unwrap_err().to_string();
        assert!(err.contains("--max-offers 0 is outside 1..=32"), "{err}");
    }

    #[test]
    fn answers_go_only_to_a_devices_offers_topic_with_the_correlation_data() {
        let service = build_service(5);
        let payload = codec::to_json(&request(&[]));
        let publish = |response_topic: Option<&str>, correlation: Option<&[u8]>| Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: Topic::OfferRequest.name().into_bytes().into(),
            pkid: 1,
            payload: payload.clone().into(),
            properties: Some(PublishProperties {
                response_topic: response_topic.map(str::to_string),
                correlation_data: correlation.map(|c| c.to_vec().into()),
                ..PublishProperties::default()
            }),
        };
        let now = UnixTime(1_795_456_800);
        let (topic, properties, body) =
            answer(&service, &publish(Some("ledtrad/v1/device/reader-1/offers"), Some(b"abc")), now).unwrap();
        assert_eq!(topic, "ledtrad/v1/device/reader-1/offers");
        assert_eq!(properties.correlation_data.as_deref(), Some(&b"abc"[..]));
        let response: OfferResponse = codec::from_json(&body, "answer").unwrap();
        assert_eq!(response.offers.len(), 3);
        for (topic, correlation, why) in [
            (Some("ledtrad/v1/fleet/home/catalogue"), Some(&b"abc"[..]), "not a device's offers topic"),
            (None, Some(&b"abc"[..]), "no response topic"),
            (Some("ledtrad/v1/device/reader-1/offers"), None, "no correlation data"),
        ] {
            let err = answer(&service, &publish(topic, correlation), now).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }
}
