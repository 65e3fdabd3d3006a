//! The one place the agent's messages leave the device (DESIGN §6). Only this module holds
//! the MQTT client and builds the messages for a consent purpose, from typed content (a
//! report, an offer request), checking each against the consent in force — which the gate
//! holds itself, set where the agent puts a consent change in force — when it is queued and
//! again when it is handed to the broker. Without it, the message is refused.
//! Reports wait in the SQLite outbox until then (a revocation deletes them in its own
//! transaction). Rows leave the outbox when handed to the MQTT client; keeping them until the
//! broker's acknowledgement is part of the delivery guarantees still to come. Status (online, versions) is the only
//! egress without consent, and it carries nothing personal.

use ledtrad_protocol::codec;
use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::offers::{OfferRequest, MAX_INTERESTS};
use ledtrad_protocol::report::Report;
use ledtrad_protocol::status::DeviceStatus;
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::UnixTime;
use ledtrad_protocol::{DeviceId, FleetId, Purpose};
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::AsyncClient;

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
}

impl Egress {
    pub(crate) fn new(client: AsyncClient, device: DeviceId, fleet: FleetId) -> Self {
        Self { client, device, fleet, connected: false, in_force: ConsentState::NONE, sent: 0, blocked: 0 }
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

    fn publish(&mut self, topic: Topic, retain: bool, payload: Vec<u8>) -> Result<(), EgressError> {
        self.publish_with(topic, QoS::AtLeastOnce, retain, payload, PublishProperties::default())
    }

    fn publish_with(
        &mut self,
        topic: Topic,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
        properties: PublishProperties,
    ) -> Result<(), EgressError> {
        self.client
            .try_publish_with_properties(topic.name(), qos, retain, payload, properties)
            .map_err(|e| EgressError::Client(e.to_string()))?;
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
        self.publish(Topic::Status(self.device.clone()), true, codec::to_json(status))
    }

    /// Queues an aggregated report in the outbox; needs `measure`. It leaves with the next
    /// [`Egress::deliver`] while connected; a revocation of `measure` deletes it first.
    pub fn report(&mut self, store: &Store, report: &Report, now: UnixTime) -> Result<(), EgressError> {
        if !self.in_force.allows(Purpose::Measure) {
            self.blocked += 1;
            return Err(EgressError::NoConsent(Purpose::Measure));
        }
        let topic = Topic::Reports(self.fleet.clone()).name();
        store
            .enqueue(Purpose::Measure, &topic, &codec::to_json(report), now)
            .map_err(|e| EgressError::Storage(e.to_string()))?;
        Ok(())
    }

    /// Hands queued messages to the broker while connected, checking each against the consent
    /// in force once more (a message whose purpose is gone is dropped, not sent). Returns how
    /// many were handed over.
    pub fn deliver(&mut self, store: &Store) -> Result<usize, EgressError> {
        if !self.connected {
            return Ok(0);
        }
        let storage = |e: crate::store::StoreError| EgressError::Storage(e.to_string());
        let mut handed = 0;
        for row in store.outbox().map_err(storage)? {
            if !self.in_force.allows(row.purpose) {
                self.blocked += 1;
                store.outbox_remove(row.id).map_err(storage)?;
                continue;
            }
            let topic = Topic::parse(&row.topic).map_err(|e| EgressError::Invalid(e.to_string()))?;
            self.publish(topic, false, row.payload)?;
            store.outbox_remove(row.id).map_err(storage)?;
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
        useful_for: std::time::Duration,
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
        self.publish_with(Topic::OfferRequest, QoS::AtMostOnce, false, codec::to_json(request), properties)
    }

    /// Subscribes to the fleet's catalogue and model topics and the device's own offers topic
    /// (subscriptions, not messages about anyone).
    pub(crate) fn subscribe(&mut self) -> Result<(), EgressError> {
        let own = Topic::Offers(self.device.clone());
        for topic in [Topic::Catalogue(self.fleet.clone()), Topic::Model(self.fleet.clone()), own] {
            self.client
                .try_subscribe(topic.name(), QoS::AtLeastOnce)
                .map_err(|e| EgressError::Client(e.to_string()))?;
        }
        Ok(())
    }

    /// Publishes the offline status and disconnects cleanly.
    pub(crate) fn close(&mut self, offline: &DeviceStatus) {
        let _ = self.status(offline);
        let _ = self.client.try_disconnect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_protocol::report::Arm;
    use ledtrad_protocol::{CampaignId, DeviceKind, Moment};
    use rumqttc::v5::Request;

    fn build_egress() -> (Egress, flume::Receiver<Request>) {
        let (tx, rx) = flume::bounded(10);
        let client = AsyncClient::from_senders(tx);
        let egress = Egress::new(client, DeviceId::try_new("d1").unwrap(), FleetId::try_new("home").unwrap());
        (egress, rx)
    }

    fn queued(requests: &flume::Receiver<Request>) -> Vec<String> {
        let mut topics = Vec::new();
        while let Ok(request) = requests.try_recv() {
            if let Request::Publish(p) = request {
                topics.push(String::from_utf8_lossy(&p.topic).into_owned());
            }
        }
        topics
    }

    fn report() -> Report {
        Report {
            campaign: CampaignId::try_new("dairy").unwrap(),
            arm: Arm::Treatment,
            day: 1,
            catalogue_version: 1,
            epsilon: 1.0,
            impressions: 1,
            accepts: 0,
            dismissals: 0,
            conversions: 0,
        }
    }

    fn build_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("agent.db")).unwrap();
        (dir, store)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// Over any sequence of consent states, connection changes and sends, a message reaches
        /// the MQTT client only while its purpose is granted: reports wait in the outbox while
        /// offline and are dropped if `measure` is gone when they could leave; requests leave
        /// at once or not at all.
        #[test]
        fn a_message_leaves_only_with_its_purposes_consent(
            steps in proptest::collection::vec((0u8..16, proptest::bool::ANY, 0u8..3, 0usize..5), 1..40),
        ) {
            let (mut egress, requests) = build_egress();
            let (_dir, store) = build_store();
            let mut waiting = 0usize;
            for (bits, connected, kind, interests) in steps {
                let consent = Purpose::ALL
                    .into_iter()
                    .enumerate()
                    .fold(ConsentState::NONE, |s, (i, p)| s.with(p, bits & (1 << i) != 0));
                egress.set_connected(connected);
                egress.set_consent(consent);
                let categories = ["food.dairy", "books.crime", "media.film", "food.drinks", "home.kitchen"];
                let request = OfferRequest {
                    device_kind: DeviceKind::Fridge,
                    moment: Moment::DoorOpened,
                    interests: categories[..interests]
                        .iter()
                        .map(|c| ledtrad_protocol::taxonomy::Category::try_new(c).unwrap())
                        .collect(),
                    time_of_day: ledtrad_protocol::offers::TimeOfDay::Evening,
                };
                let mut expected = Vec::new();
                match kind {
                    0 => {
                        let result = egress.report(&store, &report(), UnixTime(1));
                        proptest::prop_assert_eq!(result.is_ok(), consent.allows(Purpose::Measure));
                        waiting += usize::from(result.is_ok());
                    }
                    1 => {
                        let allowed = consent.allows(Purpose::Request)
                            && connected
                            && interests <= ledtrad_protocol::offers::MAX_INTERESTS
                            && (interests == 0 || consent.allows(Purpose::Personalise));
                        proptest::prop_assert_eq!(egress.offer_request(&request, b"c", std::time::Duration::from_secs(1)).is_ok(), allowed);
                        if allowed {
                            expected.push("ledtrad/v1/offers/request".to_string());
                        }
                    }
                    _ => {
                        egress.status(&status()).unwrap();
                        expected.push("ledtrad/v1/device/d1/status".to_string());
                    }
                }
                let handed = egress.deliver(&store).unwrap();
                if connected {
                    if consent.allows(Purpose::Measure) {
                        proptest::prop_assert_eq!(handed, waiting);
                        expected.extend(std::iter::repeat_n("ledtrad/v1/fleet/home/reports".to_string(), waiting));
                    } else {
                        proptest::prop_assert_eq!(handed, 0);
                    }
                    waiting = 0;
                }
                proptest::prop_assert_eq!(queued(&requests), expected);
                proptest::prop_assert_eq!(store.outbox().unwrap().len(), waiting);
            }
        }
    }

    fn status() -> ledtrad_protocol::status::DeviceStatus {
        ledtrad_protocol::status::DeviceStatus {
            device: DeviceId::try_new("d1").unwrap(),
            fleet: FleetId::try_new("home").unwrap(),
            state: ledtrad_protocol::status::Connection::Online,
            agent_version: "test".into(),
            catalogue_version: None,
            last_refusal: None,
            model_version: None,
            last_model_refusal: None,
            rollout_waiting: None,
        }
    }

    #[test]
    fn nothing_leaves_for_a_purpose_without_consent() {
        let (mut egress, eventloop) = build_egress();
        let (_dir, store) = build_store();
        let request = OfferRequest {
            device_kind: DeviceKind::Fridge,
            moment: Moment::DoorOpened,
            interests: vec![],
            time_of_day: ledtrad_protocol::offers::TimeOfDay::Morning,
        };
        assert_eq!(egress.report(&store, &report(), UnixTime(1)), Err(EgressError::NoConsent(Purpose::Measure)));
        egress.set_consent(ConsentState::all().with(Purpose::Request, false));
        assert_eq!(
            egress.offer_request(&request, b"c", std::time::Duration::from_secs(1)),
            Err(EgressError::NoConsent(Purpose::Request))
        );
        assert_eq!(egress.blocked(), 2);
        assert!(queued(&eventloop).is_empty() && store.outbox().unwrap().is_empty());
        // With `measure` but offline, the report waits in the outbox, not in the client.
        egress.set_consent(ConsentState::NONE.with(Purpose::Measure, true));
        egress.report(&store, &report(), UnixTime(1)).unwrap();
        assert_eq!(egress.deliver(&store).unwrap(), 0);
        assert!(queued(&eventloop).is_empty(), "nothing consent-bearing waits in the client while offline");
        assert_eq!(store.outbox().unwrap().len(), 1);
        egress.set_connected(true);
        assert_eq!(egress.deliver(&store).unwrap(), 1);
        assert_eq!(queued(&eventloop), vec!["ledtrad/v1/fleet/home/reports".to_string()]);
        assert!(store.outbox().unwrap().is_empty());
    }
}
