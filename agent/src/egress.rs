//! The one place the agent's messages leave the device (DESIGN §6). Only this module holds
//! the MQTT client; every message for a consent purpose is checked against the consent in
//! force when it is sent, and refused without it. Status (online, versions) is the only
//! egress without consent, and it carries nothing personal.

use ledtrad_protocol::codec;
use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::offers::{OfferRequest, MAX_INTERESTS};
use ledtrad_protocol::report::Report;
use ledtrad_protocol::status::DeviceStatus;
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::{DeviceId, FleetId, Purpose};
use rumqttc::{AsyncClient, QoS};

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
    sent: u64,
    blocked: u64,
}

impl Egress {
    pub(crate) fn new(client: AsyncClient, device: DeviceId, fleet: FleetId) -> Self {
        Self { client, device, fleet, connected: false, sent: 0, blocked: 0 }
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
        self.client
            .try_publish(topic.name(), QoS::AtLeastOnce, retain, payload)
            .map_err(|e| EgressError::Client(e.to_string()))?;
        self.sent += 1;
        Ok(())
    }

    fn require(&mut self, consent: ConsentState, purpose: Purpose) -> Result<(), EgressError> {
        if !consent.allows(purpose) {
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

    /// Sends an aggregated report; needs `measure`.
    pub fn report(&mut self, consent: ConsentState, report: &Report) -> Result<(), EgressError> {
        self.require(consent, Purpose::Measure)?;
        self.publish(Topic::Reports(self.fleet.clone()), false, codec::to_json(report))
    }

    /// Sends an offer request with coarse context; needs `request`.
    pub fn offer_request(&mut self, consent: ConsentState, request: &OfferRequest) -> Result<(), EgressError> {
        self.require(consent, Purpose::Request)?;
        if request.interests.len() > MAX_INTERESTS {
            return Err(EgressError::Invalid(format!(
                "an offer request carries at most {MAX_INTERESTS} interests, not {}",
                request.interests.len()
            )));
        }
        self.publish(Topic::OfferRequest, false, codec::to_json(request))
    }

    /// Subscribes to the fleet's catalogue topic (a subscription, not a message about anyone).
    pub(crate) fn subscribe_catalogue(&mut self) -> Result<(), EgressError> {
        self.client
            .try_subscribe(Topic::Catalogue(self.fleet.clone()).name(), QoS::AtLeastOnce)
            .map_err(|e| EgressError::Client(e.to_string()))
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
    use rumqttc::Request;

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
                topics.push(p.topic.clone());
            }
        }
        topics
    }

    fn report() -> Report {
        Report {
            campaign: CampaignId::try_new("dairy").unwrap(),
            arm: Arm::Treatment,
            day: 1,
            epsilon: 1.0,
            impressions: 1,
            accepts: 0,
            dismissals: 0,
            conversions: 0,
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Over any sequence of consent states, connection changes and sends, a message is
        /// queued exactly when its purpose is granted and the broker is connected.
        #[test]
        fn a_message_leaves_only_with_its_purposes_consent(
            steps in proptest::collection::vec((0u8..16, proptest::bool::ANY, 0u8..3, 0usize..5), 1..60),
        ) {
            let (mut egress, requests) = build_egress();
            for (bits, connected, kind, interests) in steps {
                let consent = Purpose::ALL
                    .into_iter()
                    .enumerate()
                    .fold(ConsentState::NONE, |s, (i, p)| s.with(p, bits & (1 << i) != 0));
                egress.set_connected(connected);
                let categories = ["food.dairy", "books.crime", "media.film", "food.drinks", "home.kitchen"];
                let request = OfferRequest {
                    device_kind: DeviceKind::Fridge,
                    moment: Moment::DoorOpened,
                    interests: categories[..interests]
                        .iter()
                        .map(|c| ledtrad_protocol::taxonomy::Category::try_new(c).unwrap())
                        .collect(),
                };
                let (result, purpose, topic) = match kind {
                    0 => (egress.report(consent, &report()), Some(Purpose::Measure), "ledtrad/v1/fleet/home/reports"),
                    1 => (egress.offer_request(consent, &request), Some(Purpose::Request), "ledtrad/v1/offers/request"),
                    _ => (egress.status(&status()), None, "ledtrad/v1/device/d1/status"),
                };
                let allowed = purpose.is_none_or(|p| consent.allows(p) && connected)
                    && !(kind == 1 && interests > ledtrad_protocol::offers::MAX_INTERESTS);
                let sent = queued(&requests);
                proptest::prop_assert_eq!(result.is_ok(), allowed);
                proptest::prop_assert_eq!(sent, if allowed { vec![topic.to_string()] } else { vec![] });
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
        }
    }

    #[test]
    fn nothing_leaves_for_a_purpose_without_consent() {
        let (mut egress, eventloop) = build_egress();
        let request = OfferRequest { device_kind: DeviceKind::Fridge, moment: Moment::DoorOpened, interests: vec![] };
        assert_eq!(egress.report(ConsentState::NONE, &report()), Err(EgressError::NoConsent(Purpose::Measure)));
        assert_eq!(
            egress.offer_request(ConsentState::all().with(Purpose::Request, false), &request),
            Err(EgressError::NoConsent(Purpose::Request))
        );
        assert_eq!(egress.blocked(), 2);
        assert!(queued(&eventloop).is_empty());
        let measure = ConsentState::NONE.with(Purpose::Measure, true);
        assert_eq!(egress.report(measure, &report()), Err(EgressError::Offline));
        assert!(queued(&eventloop).is_empty(), "nothing consent-bearing waits in a queue while offline");
        egress.set_connected(true);
        egress.report(measure, &report()).unwrap();
        assert_eq!(queued(&eventloop), vec!["ledtrad/v1/fleet/home/reports".to_string()]);
    }
}
