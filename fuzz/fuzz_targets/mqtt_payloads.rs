//! Every MQTT payload ledtrad decodes, with its topic: offer answers (agent), offer requests,
//! reports and device statuses (operator). Catalogue and model envelopes have their own target.
#![no_main]

use ledtrad_protocol::codec;
use ledtrad_protocol::offers::{OfferRequest, OfferResponse};
use ledtrad_protocol::report::Report;
use ledtrad_protocol::status::DeviceStatus;
use ledtrad_protocol::topic::Topic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(topic) = Topic::parse(text) {
            assert_eq!(Topic::parse(&topic.name()).as_ref(), Ok(&topic), "a topic reads back as itself");
        }
    }
    let _ = codec::from_json::<OfferResponse>(data, "offer response");
    let _ = codec::from_json::<OfferRequest>(data, "offer request");
    if let Ok(report) = codec::from_json::<Report>(data, "report") {
        let again: Report = codec::from_json(&codec::to_json(&report), "report").expect("a report reads back");
        assert_eq!(again.id, report.id);
    }
    let _ = codec::from_json::<DeviceStatus>(data, "device status");
});
