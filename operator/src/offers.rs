//! The offer service's choice (DESIGN §5, §11): which of a catalogue's offers answer one
//! device's offer request, and the MQTT 5 answer to it (response topic, correlation data).
//! Plain values in and out; `serve` carries them over MQTT.

use ledtrad_protocol::catalogue::{Catalogue, Offer, Problem};
use ledtrad_protocol::codec;
use ledtrad_protocol::offers::{OfferRequest, OfferResponse};
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::UnixTime;
use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};

/// The default and the largest number of candidates in one answer.
pub const DEFAULT_MAX_OFFERS: usize = 5;

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

/// The answer to one request: where it goes, its properties and its payload, or why there is
/// none.
pub(crate) fn answer(
    service: &OfferService,
    p: &Publish,
    now: UnixTime,
) -> Result<(String, PublishProperties, Vec<u8>), String> {
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
    use rumqttc::v5::mqttbytes::QoS;

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
