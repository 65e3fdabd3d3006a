//! The one place the agent's messages leave the device (DESIGN §6). Only this module holds
//! the MQTT client and builds the messages for a consent purpose, from typed content (a
//! report, an offer request), checking each against the consent in force — which the gate
//! holds itself, set where the agent puts a consent change in force — when it is queued and
//! again when it is handed to the broker. Without it, the message is refused.
//! Reports wait in the SQLite outbox until then (a revocation deletes them in its own
//! transaction). A row leaves the outbox only when the broker acknowledged it (QoS 1 PUBACK)
//! and [`LINGER`] has passed since without the connection dropping: a row handed over but not
//! acknowledged when the connection drops, or acknowledged only just before, is handed over
//! again after the reconnect (a broker that crashes may lose what it acknowledged and had not
//! yet saved or passed on). So the broker may see a report twice, and the operator stores it
//! once by its id. Reports are handed over only while a report collector announces itself on
//! its retained presence topic: a broker that lost its sessions (rumqttd keeps them in memory
//! only) acknowledges a report nobody subscribes to and drops it. Status (online, versions) is
//! egress without consent, and it carries nothing personal. Home traffic is a class of its own
//! ([`Egress::home`]): it keeps a household's own devices in step, so it needs no personal
//! purpose, and it leaves only sealed with the home's key for the home's channel.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use ledtrad_protocol::codec;
use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::offers::{OfferRequest, MAX_INTERESTS};
use ledtrad_protocol::report::{Report, ReportId};
use ledtrad_protocol::status::DeviceStatus;
use ledtrad_protocol::topic::{Topic, ALL_COLLECTORS_FILTER, COLLECTOR_ONLINE};
use ledtrad_protocol::UnixTime;
use ledtrad_protocol::{DeviceId, FleetId, InstanceId, Purpose};
use rumqttc::v5::mqttbytes::v5::{Filter, PublishProperties, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::AsyncClient;

use crate::home::Sealed;
use crate::store::Store;

/// A message the gate did not send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The purpose of the message is not granted.
    #[error("not sent: '{0}' consent is not granted")]
    NoConsent(Purpose),
    /// The message breaks a rule of its purpose.
    #[error("not sent: {0}")]
    Invalid(String),
    /// The broker is not connected. Consent-bearing messages are not queued while offline:
    /// consent could be revoked before they would leave.
    #[error("not sent: the broker is not connected")]
    Offline,
    /// The outbox could not be written or read.
    #[error("not queued: {0}")]
    Storage(String),
    /// The MQTT client's queue refused it (full, or shutting down).
    #[error("not sent: the MQTT client refused it: {0}")]
    Client(String),
    /// Sealed for a home the device does not belong to (any more).
    #[error("not sent: sealed for a home this device does not belong to")]
    NotHome,
}

/// How long a row the broker acknowledged stays in the outbox, to be sent again if the
/// connection drops meanwhile: a broker that crashes loses what it had not saved (Mosquitto
/// saves every 30 s as shipped) or passed on yet, even when it had acknowledged it, and a
/// broker whose host died is noticed only after up to two keep-alives (60 s).
pub const LINGER: Duration = Duration::from_secs(180);

/// The most outbox rows handed to the MQTT client and not acknowledged at once: a long offline
/// spell's backlog goes in steps (each acknowledgement lets the next one go), so the client's
/// queue never overflows.
pub const MAX_UNACKNOWLEDGED: usize = 32;

/// How long a report the broker had no subscriber for waits before it is sent again (the
/// collector's session is gone: not started yet, expired, or lost with the broker's state).
pub const NO_SUBSCRIBER_RETRY: Duration = Duration::from_secs(30);

/// What the broker's acknowledgement said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Taken.
    Accepted,
    /// Taken, and dropped: no one subscribes to the topic (MQTT 5 reason 0x10).
    NoSubscribers,
    /// Refused (an ACL that does not allow the topic, say).
    Refused,
}

/// The egress gate.
pub struct Egress {
    client: AsyncClient,
    device: DeviceId,
    fleet: FleetId,
    connected: bool,
    in_force: ConsentState,
    sent: u64,
    blocked: u64,
    deliveries: Deliveries,
    /// The report collectors present, as their retained presence topics said. Kept across a
    /// reconnect to a broker that kept the session (changes meanwhile come with it, unless a
    /// restored broker lost them: see [`Egress::subscribe`]), forgotten when the broker kept
    /// none (it may have lost them with its state).
    collectors: BTreeSet<InstanceId>,
    /// Reports the last [`Egress::deliver`] kept back for want of a collector (not those it
    /// did not reach: enough to ask again for a collector at one tick or the next).
    reports_waiting: usize,
    /// The home's channel while the device belongs to a home.
    home: Option<Topic>,
}

/// Which outbox row each publish handed to the MQTT client carries, until the broker
/// acknowledges it. The client numbers publishes (MQTT packet ids) in the order it takes them
/// and says so with one event each ([`Egress::on_numbered`]); the broker's PUBACK names the
/// number ([`Egress::on_acked`]).
#[derive(Debug, Default)]
struct Deliveries {
    /// Publishes handed to the client and not numbered yet, oldest first: the outbox row each
    /// carries, if any (a status or an offer request carries none).
    unnumbered: VecDeque<Option<i64>>,
    /// Rows sent and not acknowledged yet, by packet id.
    in_flight: HashMap<u16, i64>,
    /// A publish the client holds back because its packet id is still in use (the broker
    /// acknowledged out of order); it is numbered again when it goes.
    held: Option<(u16, Option<i64>)>,
    /// Rows the broker acknowledged on this connection, oldest first, with when: deleted once
    /// [`LINGER`] has passed, handed over again if the connection drops first.
    delivered: VecDeque<(Duration, i64)>,
    /// Rows handed over on this connection (in one of the above), not to be handed twice.
    handed: HashSet<i64>,
    /// Rows the broker had no subscriber for, and when they may go again.
    parked: HashMap<i64, Duration>,
    /// Rows the broker acknowledged.
    acknowledged: u64,
    /// Rows the broker refused (an ACL that does not allow the topic, say): dropped.
    refused: u64,
}

impl Egress {
    pub(crate) fn new(client: AsyncClient, device: DeviceId, fleet: FleetId) -> Self {
        Self {
            client,
            device,
            fleet,
            connected: false,
            in_force: ConsentState::NONE,
            sent: 0,
            blocked: 0,
            deliveries: Deliveries::default(),
            collectors: BTreeSet::new(),
            reports_waiting: 0,
            home: None,
        }
    }

    /// The MQTT client numbered the oldest publish it had not numbered yet (its
    /// `Outgoing::Publish` event; 0 for QoS 0).
    pub(crate) fn on_numbered(&mut self, pkid: u16) {
        let d = &mut self.deliveries;
        let row = match d.held.take() {
            Some((held, row)) if held == pkid => row,
            held => {
                d.held = held;
                d.unnumbered.pop_front().flatten()
            }
        };
        if let (Some(row), true) = (row, pkid != 0) {
            d.in_flight.insert(pkid, row);
        }
    }

    /// The MQTT client holds back the oldest publish it had not numbered, until `pkid` is
    /// acknowledged (its `Outgoing::AwaitAck` event).
    pub(crate) fn on_held(&mut self, pkid: u16) {
        let row = self.deliveries.unnumbered.pop_front().flatten();
        self.deliveries.held = Some((pkid, row));
    }

    /// The broker acknowledged `pkid` at `now`: a row it carried leaves the outbox [`LINGER`]
    /// later ([`Egress::forget_delivered`]); goes again after [`NO_SUBSCRIBER_RETRY`] when the
    /// broker had no subscriber for it (it dropped it); or leaves at once when the broker
    /// refused it: sending it again would not help.
    pub(crate) fn on_acked(&mut self, store: &Store, pkid: u16, ack: Ack, now: Duration) -> Result<(), EgressError> {
        let d = &mut self.deliveries;
        let Some(row) = d.in_flight.remove(&pkid) else { return Ok(()) };
        match ack {
            Ack::Accepted => {
                d.acknowledged += 1;
                d.delivered.push_back((now, row));
                Ok(())
            }
            Ack::NoSubscribers => {
                d.handed.remove(&row);
                d.parked.insert(row, now + NO_SUBSCRIBER_RETRY);
                Ok(())
            }
            Ack::Refused => {
                d.refused += 1;
                d.handed.remove(&row);
                store.outbox_remove(row).map_err(|e| EgressError::Storage(e.to_string()))
            }
        }
    }

    /// Deletes the rows acknowledged [`LINGER`] or longer before `now`.
    pub(crate) fn forget_delivered(&mut self, store: &Store, now: Duration) -> Result<(), EgressError> {
        let d = &mut self.deliveries;
        while let Some(&(at, row)) = d.delivered.front() {
            if now.saturating_sub(at) < LINGER {
                break;
            }
            store.outbox_remove(row).map_err(|e| EgressError::Storage(e.to_string()))?;
            d.delivered.pop_front();
            d.handed.remove(&row);
        }
        Ok(())
    }

    /// Whether the broker has acknowledged outbox row `row` (it waits out [`LINGER`]).
    pub fn is_delivered(&self, row: i64) -> bool {
        self.deliveries.delivered.iter().any(|&(_, r)| r == row)
    }

    /// The connection dropped, and the MQTT client discarded the `unsent` oldest publishes it
    /// had not numbered yet. Every row not acknowledged is handed over again on the next
    /// connection, except those still waiting in the client's queue, which go then by themselves.
    pub(crate) fn on_disconnected(&mut self, unsent: usize) {
        self.connected = false;
        let d = &mut self.deliveries;
        let unsent = unsent.min(d.unnumbered.len());
        d.unnumbered.drain(..unsent);
        d.in_flight.clear();
        d.held = None;
        d.delivered.clear();
        // A collector may be back with the broker: parked rows go with the next connection.
        d.parked.clear();
        d.handed = d.unnumbered.iter().flatten().copied().collect();
    }

    /// A message on collector `instance`'s presence topic: [`COLLECTOR_ONLINE`] while it
    /// collects, empty once it has stopped. Returns whether reports may go now and could not
    /// before (the first collector came), so that the caller hands them over.
    pub(crate) fn on_collector(&mut self, instance: InstanceId, payload: &[u8]) -> bool {
        let before = self.collectors.is_empty();
        match payload {
            COLLECTOR_ONLINE => {
                self.collectors.insert(instance);
            }
            [] => {
                self.collectors.remove(&instance);
            }
            other => tracing::warn!(
                %instance,
                payload = %String::from_utf8_lossy(&other[..other.len().min(64)]),
                "ignoring a collector presence that is neither 'online' nor empty"
            ),
        }
        before && !self.collectors.is_empty()
    }

    /// The broker kept no session for the device: what it said of collectors may be gone with
    /// its state, and comes again, retained, with the new subscriptions.
    pub(crate) fn on_session_lost(&mut self) {
        self.collectors.clear();
    }

    /// Whether a report collector is present, so that reports go to the broker.
    pub fn collector_present(&self) -> bool {
        !self.collectors.is_empty()
    }

    /// Outbox rows the broker acknowledged, and rows it refused, so far.
    pub fn acknowledged(&self) -> (u64, u64) {
        (self.deliveries.acknowledged, self.deliveries.refused)
    }

    /// Rows the broker acknowledged on this connection that are still in the outbox (until
    /// [`LINGER`] has passed).
    pub fn acknowledged_kept(&self) -> usize {
        self.deliveries.delivered.len()
    }

    /// Rows handed to the MQTT client and not acknowledged yet.
    pub fn unacknowledged(&self) -> usize {
        self.deliveries.handed.len().saturating_sub(self.deliveries.delivered.len())
    }

    /// Sets the consent in force, which every consent-bearing message is checked against. The
    /// agent calls this in the one place it puts a consent change in force, right after the
    /// ledger write; nothing else can make the gate send for a purpose.
    pub(crate) fn set_consent(&mut self, in_force: ConsentState) {
        self.in_force = in_force;
    }

    /// Records whether the broker connection is up.
    pub(crate) fn set_connected(&mut self, connected: bool) {
        self.connected = connected;
    }

    /// Whether the broker connection is up.
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Messages refused for lack of consent so far.
    pub fn blocked(&self) -> u64 {
        self.blocked
    }

    fn publish(&mut self, topic: Topic, retain: bool, payload: Vec<u8>, row: Option<i64>) -> Result<(), EgressError> {
        self.publish_with(topic, QoS::AtLeastOnce, retain, payload, PublishProperties::default(), row)
    }

    fn publish_with(
        &mut self,
        topic: Topic,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
        properties: PublishProperties,
        row: Option<i64>,
    ) -> Result<(), EgressError> {
        self.client
            .try_publish_with_properties(topic.name(), qos, retain, payload, properties)
            .map_err(|e| EgressError::Client(e.to_string()))?;
        self.deliveries.unnumbered.push_back(row);
        if let Some(row) = row {
            self.deliveries.handed.insert(row);
        }
        self.sent += 1;
        Ok(())
    }

    fn require(&mut self, purpose: Purpose) -> Result<(), EgressError> {
        if !self.in_force.allows(purpose) {
            self.blocked += 1;
            return Err(EgressError::NoConsent(purpose));
        }
        if !self.connected {
            return Err(EgressError::Offline);
        }
        Ok(())
    }

    /// Publishes the device's retained status. Needs no consent: it says only whether the
    /// agent is online and which versions it runs.
    pub fn status(&mut self, status: &DeviceStatus) -> Result<(), EgressError> {
        self.publish(Topic::Status(self.device.clone()), true, codec::to_json(status), None)
    }

    /// Queues an aggregated report in the outbox; needs `measure`. It leaves with the next
    /// [`Egress::deliver`] while connected; a revocation of `measure` deletes it first. The
    /// report gets its id here, from the system's random source (not the agent's own
    /// generator, which a simulation seeds alike on many devices).
    pub fn report(&mut self, store: &Store, report: &Report, now: UnixTime) -> Result<(), EgressError> {
        if !self.in_force.allows(Purpose::Measure) {
            self.blocked += 1;
            return Err(EgressError::NoConsent(Purpose::Measure));
        }
        let topic = Topic::Reports(self.fleet.clone()).name();
        let report = Report { id: Some(report.id.unwrap_or_else(|| ReportId(rand::random()))), ..report.clone() };
        store
            .enqueue(Purpose::Measure, &topic, &codec::to_json(&report), now)
            .map_err(|e| EgressError::Storage(e.to_string()))?;
        Ok(())
    }

    /// Hands queued messages to the broker while connected, checking each against the consent
    /// in force once more (a message whose purpose is gone is dropped, not sent). A message
    /// already handed over on this connection is not handed over again; it stays queued until
    /// the broker acknowledges it. Reports wait while no collector is present. Returns how many
    /// were handed over.
    pub fn deliver(&mut self, store: &Store, now: Duration) -> Result<usize, EgressError> {
        if !self.connected {
            return Ok(0);
        }
        let storage = |e: crate::store::StoreError| EgressError::Storage(e.to_string());
        let mut handed = 0;
        self.reports_waiting = 0;
        for row in store.outbox().map_err(storage)? {
            if self.unacknowledged() >= MAX_UNACKNOWLEDGED {
                break;
            }
            if self.deliveries.handed.contains(&row.id) {
                continue;
            }
            if self.deliveries.parked.get(&row.id).is_some_and(|due| now < *due) {
                continue;
            }
            if !self.in_force.allows(row.purpose) {
                self.blocked += 1;
                store.outbox_remove(row.id).map_err(storage)?;
                continue;
            }
            let topic = Topic::parse(&row.topic).map_err(|e| EgressError::Invalid(e.to_string()))?;
            if matches!(topic, Topic::Reports(_)) && self.collectors.is_empty() {
                self.reports_waiting += 1;
                continue;
            }
            self.publish(topic, false, row.payload, Some(row.id))?;
            self.deliveries.parked.remove(&row.id);
            handed += 1;
        }
        Ok(handed)
    }

    /// Sends an offer request with coarse context; needs `request`, and `personalise` too when
    /// it carries interests. The answer comes on the device's own offers topic (the MQTT 5
    /// response topic) with `correlation` as its correlation data. A request is useful only for
    /// its moment: it is never queued, goes at QoS 0 (no redelivery after a reconnect), and
    /// tells the broker to drop it after `useful_for`.
    pub fn offer_request(
        &mut self,
        request: &OfferRequest,
        correlation: &[u8],
        useful_for: Duration,
    ) -> Result<(), EgressError> {
        self.require(Purpose::Request)?;
        // Interests come from what the device learned, which is `personalise`'s.
        if !request.interests.is_empty() && !self.in_force.allows(Purpose::Personalise) {
            self.blocked += 1;
            return Err(EgressError::NoConsent(Purpose::Personalise));
        }
        if request.interests.len() > MAX_INTERESTS {
            return Err(EgressError::Invalid(format!(
                "an offer request carries at most {MAX_INTERESTS} interests, not {}",
                request.interests.len()
            )));
        }
        let expiry = u32::try_from(useful_for.as_millis().div_ceil(1000)).unwrap_or(u32::MAX).max(1);
        let properties = PublishProperties {
            response_topic: Some(Topic::Offers(self.device.clone()).name()),
            correlation_data: Some(correlation.to_vec().into()),
            message_expiry_interval: Some(expiry),
            ..PublishProperties::default()
        };
        self.publish_with(Topic::OfferRequest, QoS::AtMostOnce, false, codec::to_json(request), properties, None)
    }

    /// Subscribes to the fleet's catalogue and model topics, the device's own offers topic and
    /// the collectors' presence topics (subscriptions, not messages about anyone), on every
    /// connection. A broker that says it kept the session may still have lost subscriptions made
    /// since its last save (Mosquitto restored after a crash): on such a session the broker is
    /// asked for retained messages only where a subscription is new to it, so that a lost one
    /// brings the catalogue again and a kept one does not. The collectors' presence is asked for
    /// every time while none is known: an "online" queued for the device may have been lost
    /// with the broker's state, and reports would wait for it for good.
    pub(crate) fn subscribe(&mut self, session_kept: bool) -> Result<(), EgressError> {
        let rule = |always: bool| match always {
            true => RetainForwardRule::OnEverySubscribe,
            false => RetainForwardRule::OnNewSubscribe,
        };
        let own = Topic::Offers(self.device.clone());
        let topics = [Topic::Catalogue(self.fleet.clone()), Topic::Model(self.fleet.clone()), own];
        let filters = topics
            .into_iter()
            .chain(self.home.clone())
            .map(|t| Filter { retain_forward_rule: rule(!session_kept), ..Filter::new(t.name(), QoS::AtLeastOnce) })
            .chain([self.presence_filter(rule(!session_kept || self.collectors.is_empty()))]);
        // One SUBSCRIBE, so one SUBACK says they are all in place.
        self.client.try_subscribe_many(filters).map_err(|e| EgressError::Client(e.to_string()))
    }

    /// While reports wait for a collector and none is known, asks the broker again for the
    /// collectors' retained presence (called now and then): what said "online" may have been
    /// lost. Mosquitto answers with the retained messages; rumqttd sends them only for a
    /// subscription new to the session, but it loses sessions and "online" together, and a
    /// new session gets them. Returns whether it asked.
    pub(crate) fn ask_for_collectors(&mut self) -> Result<bool, EgressError> {
        if !self.connected || !self.collectors.is_empty() || self.reports_waiting == 0 {
            return Ok(false);
        }
        let filter = self.presence_filter(RetainForwardRule::OnEverySubscribe);
        self.client.try_subscribe_many([filter]).map_err(|e| EgressError::Client(e.to_string()))?;
        Ok(true)
    }

    /// Joins the home's channel (`Some`) or leaves it: subscribes or unsubscribes now when
    /// connected, and on every connection from now on.
    pub(crate) fn set_home(&mut self, home: Option<Topic>) -> Result<(), EgressError> {
        let left = std::mem::replace(&mut self.home, home.clone());
        if !self.connected || left == home {
            return Ok(());
        }
        if let Some(left) = left {
            self.client.try_unsubscribe(left.name()).map_err(|e| EgressError::Client(e.to_string()))?;
        }
        if let Some(joined) = home {
            self.client
                .try_subscribe(joined.name(), QoS::AtLeastOnce)
                .map_err(|e| EgressError::Client(e.to_string()))?;
        }
        Ok(())
    }

    /// Sends a message to the device's home. Home traffic is its own class: it needs no
    /// personal purpose (it keeps the household's own devices in step), and it leaves only
    /// sealed with the home's key, for the home's own channel.
    pub fn home(&mut self, sealed: Sealed) -> Result<(), EgressError> {
        if self.home.as_ref() != Some(sealed.topic()) {
            return Err(EgressError::NotHome);
        }
        if !self.connected {
            return Err(EgressError::Offline);
        }
        let topic = sealed.topic().clone();
        self.publish(topic, false, sealed.into_bytes(), None)
    }

    fn presence_filter(&self, retain_forward_rule: RetainForwardRule) -> Filter {
        Filter { retain_forward_rule, ..Filter::new(ALL_COLLECTORS_FILTER, QoS::AtLeastOnce) }
    }

    /// Publishes the offline status and disconnects cleanly.
    pub(crate) fn close(&mut self, offline: &DeviceStatus) {
        let _ = self.status(offline);
        let _ = self.client.try_disconnect();
    }
}

#[cfg(test)]
mod tests;
