//! Golden tests of the topic scheme (DESIGN §5): the exact names and filters on the wire, and
//! that each filter matches the topics it is meant for, so a change shows here first.

#![allow(clippy::unwrap_used)]

use ledtrad_protocol::topic::{
    Topic, ALL_COLLECTORS_FILTER, ALL_REPORTS_FILTER, ALL_REPORTS_SHARED, ALL_STATUS_FILTER, COLLECTOR_SHARE_GROUP,
    OFFER_REQUEST_SHARED, OFFER_SHARE_GROUP, PREFIX,
};
use ledtrad_protocol::{DeviceId, FleetId, InstanceId};

#[test]
fn golden_filters() {
    assert_eq!(PREFIX, "ledtrad/v1");
    assert_eq!(OFFER_SHARE_GROUP, "ledtrad-offers");
    assert_eq!(OFFER_REQUEST_SHARED, "$share/ledtrad-offers/ledtrad/v1/offers/request");
    assert_eq!(ALL_STATUS_FILTER, "ledtrad/v1/device/+/status");
    assert_eq!(ALL_REPORTS_FILTER, "ledtrad/v1/fleet/+/reports");
    assert_eq!(ALL_COLLECTORS_FILTER, "ledtrad/v1/collector/+");
}

#[test]
fn the_shared_request_filter_is_the_request_topic_in_the_offer_group() {
    assert_eq!(OFFER_REQUEST_SHARED, format!("$share/{OFFER_SHARE_GROUP}/{}", Topic::OfferRequest.name()));
}

#[test]
fn the_shared_report_filter_is_every_reports_topic_in_the_collector_group() {
    assert_eq!(ALL_REPORTS_SHARED, format!("$share/{COLLECTOR_SHARE_GROUP}/{ALL_REPORTS_FILTER}"));
}

#[test]
fn each_wildcard_filter_matches_its_own_kind_of_topic() {
    let fill = |filter: &str, id: &str| filter.replace('+', id);
    let device = DeviceId::try_new("d-7f3a").unwrap();
    let fleet = FleetId::try_new("home-se").unwrap();
    let collector = InstanceId::try_new("collector").unwrap();
    assert_eq!(Topic::parse(&fill(ALL_STATUS_FILTER, "d-7f3a")), Ok(Topic::Status(device)));
    assert_eq!(Topic::parse(&fill(ALL_REPORTS_FILTER, "home-se")), Ok(Topic::Reports(fleet)));
    assert_eq!(Topic::parse(&fill(ALL_COLLECTORS_FILTER, "collector")), Ok(Topic::Collector(collector)));
}
