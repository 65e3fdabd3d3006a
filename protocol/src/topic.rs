//! The MQTT topic scheme of DESIGN §5, built and parsed only here.
//!
//! Catalogue and model topics are per fleet, never per segment: subscribing to a segment
//! topic would tell the broker the segment.

use alloc::format;
use alloc::string::String;
use core::fmt;

use crate::id::{DeviceId, FleetId, HomeId, InstanceId, InvalidId};

/// The prefix of every ledtrad topic.
pub const PREFIX: &str = "ledtrad/v1";

/// The shared-subscription group every offer-service instance joins.
pub const OFFER_SHARE_GROUP: &str = "ledtrad-offers";

/// The shared subscription offer-service instances use, so several share the load: the
/// request topic in the [`OFFER_SHARE_GROUP`] group.
pub const OFFER_REQUEST_SHARED: &str = "$share/ledtrad-offers/ledtrad/v1/offers/request";

/// The filter that matches every device's status topic.
pub const ALL_STATUS_FILTER: &str = "ledtrad/v1/device/+/status";

/// The filter that matches every fleet's report topic.
pub const ALL_REPORTS_FILTER: &str = "ledtrad/v1/fleet/+/reports";

/// The shared-subscription group report collectors on a shared store (PostgreSQL) join.
pub const COLLECTOR_SHARE_GROUP: &str = "ledtrad-collectors";

/// The shared subscription collectors on a shared store use, so that the broker hands each
/// report to one of them: every fleet's report topic in the [`COLLECTOR_SHARE_GROUP`] group.
pub const ALL_REPORTS_SHARED: &str = "$share/ledtrad-collectors/ledtrad/v1/fleet/+/reports";

/// The filter that matches every collector's presence topic.
pub const ALL_COLLECTORS_FILTER: &str = "ledtrad/v1/collector/+";

/// The retained payload of a collector's presence topic while it collects. The topic is
/// cleared (an empty retained payload) when the collector stops, or by its last will.
pub const COLLECTOR_ONLINE: &[u8] = b"online";

/// A ledtrad topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Signed catalogue envelope, operator → devices, retained.
    Catalogue(FleetId),
    /// Signed scoring model, operator → devices, retained.
    Model(FleetId),
    /// Device status, device → operator, retained, also the last will.
    Status(DeviceId),
    /// Offer requests, device → offer service.
    OfferRequest,
    /// Offers for one device's requests, offer service → device.
    Offers(DeviceId),
    /// Aggregated reports, device → operator.
    Reports(FleetId),
    /// Commands to one device, operator → device.
    Commands(DeviceId),
    /// A report collector's presence, operator → devices, retained: [`COLLECTOR_ONLINE`]
    /// while it has its subscription in place, cleared when it stops or its will fires.
    /// Devices hand reports to the broker only while a collector is present, since a broker
    /// without a queue for it (one that lost its sessions in a restart) drops them.
    Collector(InstanceId),
    /// A home's channel, between the devices of one home: every payload sealed with the home
    /// key (XChaCha20-Poly1305), so the broker sees ciphertext, sizes and the pseudonym only.
    Home(HomeId),
}

/// A topic that is not in the scheme.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic has no ledtrad shape.
    #[error("topic {0:?} is not a ledtrad v1 topic (expected e.g. \"ledtrad/v1/fleet/<fleet>/catalogue\")")]
    Unknown(String),
    /// An id inside the topic is invalid.
    #[error("topic {topic:?}: {source}")]
    BadId {
        /// The topic.
        topic: String,
        /// The id problem.
        source: InvalidId,
    },
}

impl Topic {
    /// Parses a topic name received from the broker.
    pub fn parse(topic: &str) -> Result<Self, TopicError> {
        let unknown = || TopicError::Unknown(topic.into());
        let rest = topic.strip_prefix(PREFIX).and_then(|r| r.strip_prefix('/')).ok_or_else(unknown)?;
        let parts: alloc::vec::Vec<&str> = rest.split('/').collect();
        let bad = |source| TopicError::BadId { topic: topic.into(), source };
        match parts.as_slice() {
            ["fleet", fleet, leaf] => {
                let fleet = FleetId::try_new(*fleet).map_err(bad)?;
                match *leaf {
                    "catalogue" => Ok(Self::Catalogue(fleet)),
                    "model" => Ok(Self::Model(fleet)),
                    "reports" => Ok(Self::Reports(fleet)),
                    _ => Err(unknown()),
                }
            }
            ["device", device, leaf] => {
                let device = DeviceId::try_new(*device).map_err(bad)?;
                match *leaf {
                    "status" => Ok(Self::Status(device)),
                    "offers" => Ok(Self::Offers(device)),
                    "commands" => Ok(Self::Commands(device)),
                    _ => Err(unknown()),
                }
            }
            ["offers", "request"] => Ok(Self::OfferRequest),
            ["collector", instance] => Ok(Self::Collector(InstanceId::try_new(*instance).map_err(bad)?)),
            ["home", home, "sync"] => Ok(Self::Home(HomeId::try_new(*home).map_err(bad)?)),
            _ => Err(unknown()),
        }
    }

    /// The topic name.
    pub fn name(&self) -> String {
        match self {
            Self::Catalogue(f) => format!("{PREFIX}/fleet/{f}/catalogue"),
            Self::Model(f) => format!("{PREFIX}/fleet/{f}/model"),
            Self::Reports(f) => format!("{PREFIX}/fleet/{f}/reports"),
            Self::Status(d) => format!("{PREFIX}/device/{d}/status"),
            Self::Offers(d) => format!("{PREFIX}/device/{d}/offers"),
            Self::Commands(d) => format!("{PREFIX}/device/{d}/commands"),
            Self::OfferRequest => format!("{PREFIX}/offers/request"),
            Self::Collector(i) => format!("{PREFIX}/collector/{i}"),
            Self::Home(h) => format!("{PREFIX}/home/{h}/sync"),
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> FleetId {
        FleetId::try_new("home-se").unwrap()
    }

    fn device() -> DeviceId {
        DeviceId::try_new("d-7f3a").unwrap()
    }

    #[test]
    fn every_topic_round_trips_with_the_exact_name() {
        let cases = [
            (Topic::Catalogue(fleet()), "ledtrad/v1/fleet/home-se/catalogue"),
            (Topic::Model(fleet()), "ledtrad/v1/fleet/home-se/model"),
            (Topic::Reports(fleet()), "ledtrad/v1/fleet/home-se/reports"),
            (Topic::Status(device()), "ledtrad/v1/device/d-7f3a/status"),
            (Topic::Offers(device()), "ledtrad/v1/device/d-7f3a/offers"),
            (Topic::Commands(device()), "ledtrad/v1/device/d-7f3a/commands"),
            (Topic::OfferRequest, "ledtrad/v1/offers/request"),
            (Topic::Collector(InstanceId::try_new("collector").unwrap()), "ledtrad/v1/collector/collector"),
            (Topic::Home(HomeId::try_new("5e1f").unwrap()), "ledtrad/v1/home/5e1f/sync"),
        ];
        for (topic, name) in cases {
            assert_eq!(topic.name(), name);
            assert_eq!(Topic::parse(name), Ok(topic));
        }
    }

    #[test]
    fn foreign_and_malformed_topics_are_refused() {
        for t in
            ["ledtrad/v2/fleet/a/catalogue", "ledtrad/v1/fleet/a/segments", "other", "ledtrad/v1/fleet/a/b/catalogue"]
        {
            assert_eq!(Topic::parse(t), Err(TopicError::Unknown(t.into())));
        }
        assert!(matches!(Topic::parse("ledtrad/v1/fleet/A B/catalogue"), Err(TopicError::BadId { .. })));
    }
}
