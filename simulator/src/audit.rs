//! The simulator's independent audit of what reaches the broker: it subscribes to the offer
//! request topic and the fleet's report topic and counts every message, so a message sent
//! without consent is caught on the wire, not taken on the agent's word.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::Decision;
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::FleetId;
use ledtrad_protocol::Purpose;
use rumqttc::{Event, Packet, QoS};
use tokio::task::JoinHandle;

/// Whether a decision broke the consent the simulator knows the device works under: it read
/// a feature whose purpose is not granted, or showed a personalised offer without
/// `personalise`.
pub fn decision_violates(consent: ConsentState, decision: &Decision) -> bool {
    let read = decision.features_used.iter().any(|u| u.allowed_by.is_some_and(|p| !consent.allows(p)));
    let shown = decision.shown.as_ref().is_some_and(|s| s.personalised) && !consent.allows(Purpose::Personalise);
    read || shown
}

/// Violations on the wire: reports beyond what the devices with `measure` could have sent
/// (reports carry no device id, so they are judged by count), and any offer request when no
/// device has `request`.
pub fn message_violations(
    reports_seen: u64,
    reports_expected: u64,
    requests_seen: u64,
    any_request_consent: bool,
) -> u64 {
    let requests = if any_request_consent { 0 } else { requests_seen };
    reports_seen.saturating_sub(reports_expected) + requests
}

/// Counts of messages seen on the audited topics.
#[derive(Debug, Default)]
pub struct Seen {
    /// Offer requests (purpose `request`).
    pub requests: AtomicU64,
    /// Reports (purpose `measure`).
    pub reports: AtomicU64,
}

/// A running audit subscription.
pub struct Audit {
    /// What it has seen so far.
    pub seen: Arc<Seen>,
    task: JoinHandle<()>,
}

impl Audit {
    /// Subscribes (and waits for the broker's SUBACK) before returning, so nothing sent
    /// afterwards is missed.
    pub async fn start(broker: &BrokerUrl, fleet: &FleetId, client_id: &str) -> anyhow::Result<Self> {
        let (client, mut eventloop) = ledtrad_operator::mqtt::connect(broker, client_id);
        client.subscribe(Topic::OfferRequest.name(), QoS::AtLeastOnce).await?;
        client.subscribe(Topic::Reports(fleet.clone()).name(), QoS::AtLeastOnce).await?;
        let mut acks = 0;
        while acks < 2 {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => acks += 1,
                Ok(_) => {}
                Err(e) => anyhow::bail!("audit subscription to {broker}: {e}"),
            }
        }
        let seen = Arc::new(Seen::default());
        let counts = seen.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => match Topic::parse(&p.topic) {
                        Ok(Topic::OfferRequest) => counts.requests.fetch_add(1, Ordering::SeqCst),
                        Ok(Topic::Reports(_)) => counts.reports.fetch_add(1, Ordering::SeqCst),
                        _ => 0,
                    },
                    Ok(_) => 0,
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        0
                    }
                };
            }
        });
        Ok(Self { seen, task })
    }

    /// Reports seen so far.
    pub fn reports(&self) -> u64 {
        self.seen.reports.load(Ordering::SeqCst)
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        self.seen.requests.load(Ordering::SeqCst)
    }

    /// Stops the subscription.
    pub fn stop(self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_protocol::decision::{DecisionId, FeatureUse, ShownOffer};
    use ledtrad_protocol::feature::FeatureName;
    use ledtrad_protocol::{CampaignId, Moment, OfferId, UnixTime};

    fn build_decision(feature: &str, allowed_by: Option<Purpose>, personalised: bool) -> Decision {
        Decision {
            id: DecisionId(1),
            moment: Moment::DoorOpened,
            at: UnixTime(0),
            catalogue_version: Some(1),
            shown: Some(ShownOffer {
                offer: OfferId::try_new("o").unwrap(),
                campaign: CampaignId::try_new("c").unwrap(),
                title: "t".into(),
                question: "q?".into(),
                body: "b".into(),
                image: None,
                why: "w".into(),
                personalised,
            }),
            candidates: vec![],
            features_used: vec![FeatureUse { feature: FeatureName::try_new(feature).unwrap(), allowed_by }],
        }
    }

    #[test]
    fn a_personal_feature_read_without_consent_is_a_violation() {
        let personal = build_decision("fridge.butter.level", Some(Purpose::Personalise), false);
        assert!(decision_violates(ConsentState::NONE, &personal));
        assert!(!decision_violates(ConsentState::NONE.with(Purpose::Personalise, true), &personal));
        let contextual = build_decision("context.hour", None, false);
        assert!(!decision_violates(ConsentState::NONE, &contextual));
        let shown = build_decision("context.hour", None, true);
        assert!(decision_violates(ConsentState::all().with(Purpose::Personalise, false), &shown));
    }

    #[test]
    fn extra_reports_and_unconsented_requests_are_violations() {
        assert_eq!(message_violations(10, 10, 0, false), 0);
        assert_eq!(message_violations(12, 10, 0, false), 2);
        assert_eq!(message_violations(0, 0, 3, false), 3);
        assert_eq!(message_violations(0, 0, 3, true), 0);
    }
}
