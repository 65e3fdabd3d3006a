//! The simulator's independent audit of what reaches the broker: a spy subscribed to every
//! topic counts this run's messages and bytes by purpose, so a message sent without consent is
//! caught on the wire, not taken on the agent's word.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::Decision;
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::Purpose;
use ledtrad_protocol::{FleetId, HomeId};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::Event;
use tokio::task::JoinHandle;

/// Whether a decision broke the consent the simulator knows the device works under: it read
/// a feature whose purpose is not granted, or showed a personalised offer without
/// `personalise`.
pub fn decision_violates(consent: ConsentState, decision: &Decision) -> bool {
    let read = decision.features_used.iter().any(|u| u.allowed_by.is_some_and(|p| !consent.allows(p)));
    let shown = decision.shown.as_ref().is_some_and(|s| s.personalised) && !consent.allows(Purpose::Personalise);
    read || shown
}

/// Whether a shown offer's "why" is consistent with its decision's trace: a camouflage draw
/// that personal data did not bring about says it is one of this week's offers; a personalised
/// offer names the coarse phrase of a personal feature the decision read with consent, or says
/// it was picked on the device (from what it noticed or what the home answered) or suggested
/// for the home's interests; any other offer names no personal feature; and no "why" ever
/// carries a number (a reading).
pub fn why_consistent(kind: ledtrad_protocol::DeviceKind, decision: &Decision) -> bool {
    let Some(shown) = &decision.shown else { return true };
    if shown.why.chars().any(|c| c.is_ascii_digit()) {
        return false;
    }
    let personal_phrases: Vec<&str> =
        decision.features_used.iter().filter(|u| u.allowed_by.is_some()).map(|u| u.feature.spec().why).collect();
    if decision.camouflage && !shown.personalised {
        return shown.why == format!("From this week's offers for every {}.", kind.label());
    }
    if shown.personalised {
        personal_phrases.iter().any(|p| shown.why == format!("Because {p}."))
            || shown.why.starts_with(&format!("Picked on this {}", kind.label()))
            || shown.why == format!("Suggested for the kinds of offers taken up on this {}.", kind.label())
    } else {
        ledtrad_protocol::feature::FEATURES.iter().filter(|f| f.purpose.is_some()).all(|f| !shown.why.contains(f.why))
    }
}

/// Violations on the wire: reports beyond what the devices with `measure` could have sent
/// (reports carry no device id, so they are judged by count), any offer request when no
/// device has `request`, and any message on this run's topics that nobody should send.
pub fn message_violations(
    reports_seen: u64,
    reports_expected: u64,
    requests_seen: u64,
    any_request_consent: bool,
    unexpected: u64,
) -> u64 {
    let requests = if any_request_consent { 0 } else { requests_seen };
    reports_seen.saturating_sub(reports_expected) + requests + unexpected
}

/// Messages and payload bytes seen for one class of traffic.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Messages.
    pub messages: AtomicU64,
    /// Payload bytes.
    pub bytes: AtomicU64,
}

impl Traffic {
    fn add(&self, bytes: usize) {
        self.messages.fetch_add(1, Ordering::SeqCst);
        self.bytes.fetch_add(bytes as u64, Ordering::SeqCst);
    }

    /// (messages, bytes) so far.
    pub fn get(&self) -> (u64, u64) {
        (self.messages.load(Ordering::SeqCst), self.bytes.load(Ordering::SeqCst))
    }
}

/// What the spy has seen of this run's traffic, by class.
#[derive(Debug, Default)]
pub struct Seen {
    /// Device status (needs no consent).
    pub status: Traffic,
    /// Reports (purpose `measure`).
    pub measure: Traffic,
    /// Offer requests (purpose `request`).
    pub request: Traffic,
    /// Catalogues pushed by the operator.
    pub catalogue: Traffic,
    /// Anything else on this run's topics: nobody in the simulation should send it.
    pub unexpected: Traffic,
    /// The home channels, by home: messages, payload bytes, and those whose bytes are not
    /// sealed (see [`home_plaintext`]). A run counts its own homes' only
    /// ([`Seen::home_traffic`]): on a shared broker other runs' homes talk too.
    pub homes: std::sync::Mutex<std::collections::HashMap<HomeId, (u64, u64, u64)>>,
}

impl Seen {
    /// The home channel traffic of `homes`: messages, payload bytes, and messages readable
    /// without the home's key.
    pub fn home_traffic(&self, homes: &std::collections::BTreeSet<HomeId>) -> (u64, u64, u64) {
        let seen = self.homes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        homes.iter().filter_map(|h| seen.get(h)).fold((0, 0, 0), |t, c| (t.0 + c.0, t.1 + c.1, t.2 + c.2))
    }
}

/// Whether a home channel payload can be read without the home's key: it reads as JSON, it
/// decodes as a home message, or it carries a purpose's name, a feature's or a device id of
/// this run (`device_prefix`) in the clear. A person's id is caught by the decoding: a message
/// that names one in the clear is a home message in the clear.
pub fn home_plaintext(payload: &[u8], device_prefix: &str) -> bool {
    if serde_json::from_slice::<serde_json::Value>(payload).is_ok()
        || ledtrad_agent::home::sync::HomeMessage::decode(payload).is_ok()
    {
        return true;
    }
    let purposes = Purpose::ALL.map(Purpose::as_str);
    let words = purposes.iter().copied().chain(["fridge.", "lockscreen.", "ereader.", "context.", device_prefix]);
    words.filter(|w| !w.is_empty()).any(|w| payload.windows(w.len()).any(|bytes| bytes == w.as_bytes()))
}

/// A spy subscribed to every topic (`#`) on each of the run's brokers, counting this run's
/// traffic.
pub struct Audit {
    /// What it has seen so far, on all of them.
    pub seen: Arc<Seen>,
    tasks: Vec<JoinHandle<()>>,
}

impl Audit {
    /// Subscribes to `#` on every one of `brokers` (and waits for each SUBACK) before
    /// returning, so nothing sent afterwards is missed. Traffic of other fleets and devices on
    /// a shared broker is ignored; this run's devices are those whose id starts with
    /// `device_prefix`.
    pub async fn start(
        brokers: &[BrokerUrl],
        access: &ledtrad_mqtt::Access,
        fleet: &FleetId,
        device_prefix: &str,
        client_id: &str,
    ) -> anyhow::Result<Self> {
        let mut audit = Self { seen: Arc::new(Seen::default()), tasks: Vec::with_capacity(brokers.len()) };
        for broker in brokers {
            match spy(broker, access, fleet, device_prefix, client_id, audit.seen.clone()).await {
                Ok(task) => audit.tasks.push(task),
                Err(e) => {
                    audit.stop();
                    return Err(e);
                }
            }
        }
        Ok(audit)
    }

    /// Reports seen so far.
    pub fn reports(&self) -> u64 {
        self.seen.measure.get().0
    }

    /// Stops the subscriptions.
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Subscribes to `#` on `broker` and counts what arrives into `counts` on a task of its own.
async fn spy(
    broker: &BrokerUrl,
    access: &ledtrad_mqtt::Access,
    fleet: &FleetId,
    device_prefix: &str,
    client_id: &str,
    counts: Arc<Seen>,
) -> anyhow::Result<JoinHandle<()>> {
    let (client, mut eventloop) = ledtrad_operator::mqtt::connect_as(broker, access, client_id);
    client.subscribe("#", QoS::AtLeastOnce).await?;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => break,
            Ok(_) => {}
            Err(e) => anyhow::bail!("audit subscription to {broker}: {e}"),
        }
    }
    let (fleet, prefix) = (fleet.clone(), device_prefix.to_string());
    Ok(tokio::spawn(async move {
        let _client = client;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) if !p.retain => {
                    let ours_device = |d: &ledtrad_protocol::DeviceId| d.as_str().starts_with(&prefix);
                    let class = match Topic::parse(ledtrad_operator::mqtt::topic_of(&p)) {
                        Ok(Topic::Status(d)) if ours_device(&d) => Some(&counts.status),
                        Ok(Topic::Reports(f)) if f == fleet => Some(&counts.measure),
                        Ok(Topic::OfferRequest) => Some(&counts.request),
                        Ok(Topic::Catalogue(f)) if f == fleet => Some(&counts.catalogue),
                        Ok(Topic::Model(f)) if f == fleet => Some(&counts.unexpected),
                        Ok(Topic::Offers(d) | Topic::Commands(d)) if ours_device(&d) => Some(&counts.unexpected),
                        Ok(Topic::Home(home)) => {
                            let plain = u64::from(home_plaintext(&p.payload, &prefix));
                            let mut homes = counts.homes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            let seen = homes.entry(home).or_default();
                            *seen = (seen.0 + 1, seen.1 + p.payload.len() as u64, seen.2 + plain);
                            None
                        }
                        _ => None,
                    };
                    if let Some(class) = class {
                        class.add(p.payload.len());
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }))
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
            shown: Some(Box::new(ShownOffer {
                offer: OfferId::try_new("o").unwrap(),
                campaign: CampaignId::try_new("c").unwrap(),
                title: "t".into(),
                question: "q?".into(),
                body: "b".into(),
                image: None,
                why: "w".into(),
                personalised,
            })),
            candidates: vec![],
            features_used: vec![FeatureUse { feature: FeatureName::try_new(feature).unwrap(), allowed_by }],
            camouflage: false,
            prompt: None,
            would_have_shown: None,
            scores: vec![],
            scorer: Default::default(),
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
    fn a_why_must_match_its_trace() {
        use ledtrad_protocol::DeviceKind::Fridge;
        let mut d = build_decision("fridge.butter.level", Some(Purpose::Personalise), true);
        d.shown.as_mut().unwrap().why = "Because dairy runs low often in this home.".into();
        assert!(why_consistent(Fridge, &d));
        d.shown.as_mut().unwrap().why = "Because your butter is at 3%.".into();
        assert!(!why_consistent(Fridge, &d), "a reading in a why");
        d.shown.as_mut().unwrap().why = "Because drinks run low in this home.".into();
        assert!(!why_consistent(Fridge, &d), "a feature that was not read");
        let mut c = build_decision("context.hour", None, false);
        c.camouflage = true;
        c.shown.as_mut().unwrap().why = "From this week's offers for every fridge.".into();
        assert!(why_consistent(Fridge, &c));
        c.shown.as_mut().unwrap().why = "Because dairy runs low often in this home.".into();
        assert!(!why_consistent(Fridge, &c), "camouflage claiming to know");
    }

    #[test]
    fn a_home_message_in_the_clear_is_caught_and_a_sealed_one_is_not() {
        use ledtrad_agent::home::sync::{HomeBody, HomeMessage};
        use ledtrad_agent::home::HomeKey;
        let anna = ledtrad_protocol::PersonId::try_new("p1").unwrap();
        let message = HomeMessage {
            from: ledtrad_protocol::DeviceId::try_new("s7-h0-fridge").unwrap(),
            seq: 1,
            body: HomeBody::Household { people: vec![(anna, false)], rows: vec![] },
        };
        let plain = message.encode();
        assert!(home_plaintext(&plain, "s7-"), "postcard in the clear");
        assert!(home_plaintext(br#"{"person": "p1"}"#, "s7-"), "JSON");
        assert!(home_plaintext(b"\x01\x02 personalise \x03", "s7-"), "a purpose's name");
        let key = HomeKey::generate();
        for _ in 0..1_000 {
            let bytes = key.seal(&key.topic(), &plain);
            assert!(!home_plaintext(&bytes, "s7-"), "sealed bytes read as plain: {bytes:?}");
        }
    }

    #[test]
    fn extra_reports_and_unconsented_requests_are_violations() {
        assert_eq!(message_violations(10, 10, 0, false, 0), 0);
        assert_eq!(message_violations(12, 10, 0, false, 0), 2);
        assert_eq!(message_violations(0, 0, 3, false, 0), 3);
        assert_eq!(message_violations(0, 0, 3, true, 0), 0);
        assert_eq!(message_violations(0, 0, 0, true, 4), 4);
    }
}
