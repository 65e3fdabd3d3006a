//! A real agent through the C API, against the embedded broker: a signed catalogue applied,
//! consent granted, a low butter level raising an offer that comes to the callback, feedback on
//! it; and what the callback may and may not do from inside.
// Every call here is unsafe C API use with live handles and valid (or deliberately NULL) pointers.
#![allow(unsafe_code, clippy::undocumented_unsafe_blocks)]

mod common;

use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::mpsc;

use common::{answer, c, events, expect, last_error, next_named, start, write_config, EVENT_WAIT};
use ledtrad::*;
use ledtrad_agent::broker::EmbeddedBroker;
use ledtrad_operator::{load_catalogue, push_envelope, sign_catalogue, OperatorKey, SignOptions};
use ledtrad_protocol::{FleetId, KeyId, UnixTime};

/// Signs the example catalogue (its holdout arms off: which devices are held out depends on
/// their ids) for `fleet`, valid from now for 30 days, and pushes it retained to `broker`.
fn push_catalogue(broker: &EmbeddedBroker, key: &OperatorKey, fleet: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/catalogues/home.toml");
    let mut catalogue = load_catalogue(&path, None).expect("the example catalogue is valid");
    for campaign in &mut catalogue.campaigns {
        campaign.holdout = 0.0;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs();
    let fleet = FleetId::try_new(fleet).expect("valid fleet");
    let options = SignOptions {
        fleet: fleet.clone(),
        version: 1,
        issued_at: UnixTime(now),
        expires_at: UnixTime(now + 30 * 86_400),
    };
    let envelope = sign_catalogue(&catalogue, key, &options).expect("signs");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(push_envelope(broker.url(), &fleet, envelope, "ffi-test-operator")).expect("push acknowledged");
}

#[test]
fn a_low_butter_level_brings_an_offer_to_the_callback_and_feedback_goes_back() {
    let broker = EmbeddedBroker::start(16).expect("embedded broker starts");
    let key = OperatorKey::from_secret(KeyId::try_new("op-7").expect("valid id"), [7; 32]);
    push_catalogue(&broker, &key, "ffi-round-trip");
    let dir = tempfile::tempdir().expect("temp dir");
    let agent = start(&write_config(dir.path(), "fridge-rt", "ffi-round-trip", &broker.url().to_string(), &key));
    let (_tx, events) = events(agent);

    let grant = c(r#"{"granted": true, "text_version": "2026-11", "source": "device_ui"}"#);
    expect(unsafe { ledtrad_set_consent(agent, c("personalise").as_ptr(), grant.as_ptr()) }, LedtradResult::Ok);
    let applied = next_named(&events, "catalogue");
    assert_eq!(applied, serde_json::json!({"version": 1, "applied": true}));

    let low = c(r#"{"signals": [{"feature": "fridge.butter.level", "value": 0.08}]}"#);
    expect(unsafe { ledtrad_signals(agent, low.as_ptr()) }, LedtradResult::Ok);
    let offer = next_named(&events, "offer");
    assert_eq!(offer["moment"], "inventory_low");
    assert_eq!(offer["offer"]["offer"], "butter-refill", "{offer}");
    assert!(offer["offer"]["question"].as_str().is_some_and(|q| q.ends_with('?')), "{offer}");

    let decision = offer["decision"].as_u64().expect("a decision id");
    let accepted = c(&format!(r#"{{"decision": {decision}, "kind": "accepted"}}"#));
    expect(unsafe { ledtrad_feedback(agent, accepted.as_ptr()) }, LedtradResult::Ok);
    expect(unsafe { ledtrad_feedback(agent, accepted.as_ptr()) }, LedtradResult::Refused);
    assert!(last_error().contains(&decision.to_string()), "{}", last_error());

    let consent = answer(|b, l, n| unsafe { ledtrad_consent(agent, b, l, n) });
    assert_eq!(consent["personalise"], true);
    let status = answer(|b, l, n| unsafe { ledtrad_status(agent, b, l, n) });
    assert_eq!((status["connected"].clone(), status["catalogue_version"].clone()), (true.into(), 1.into()));

    expect(unsafe { ledtrad_set_event_callback(agent, None, ptr::null_mut()) }, LedtradResult::Ok);
    expect(unsafe { ledtrad_agent_stop(agent) }, LedtradResult::Ok);
}

/// What the callback below did from inside: the results of its calls.
struct Inside {
    agent: *mut LedtradAgent,
    results: mpsc::Sender<(LedtradResult, LedtradResult, String)>,
}

unsafe extern "C" fn call_back_in(_name: *const c_char, _json: *const c_char, user_data: *mut c_void) {
    // SAFETY: the test registers an `Inside` that outlives the agent.
    let inside = unsafe { &*(user_data as *const Inside) };
    let mut needed = 0;
    // SAFETY: a live agent; a NULL buffer of length 0 asks for the size only.
    let status = unsafe { ledtrad_status(inside.agent, ptr::null_mut(), 0, &mut needed) };
    // SAFETY: as above; refused from inside the callback, so the handle stays live.
    let stop = unsafe { ledtrad_agent_stop(inside.agent) };
    let _ = inside.results.send((status, stop, last_error()));
}

#[test]
fn the_callback_may_call_the_agent_but_not_stop_it_and_events_wait_for_a_callback() {
    let key = OperatorKey::from_secret(KeyId::try_new("op-8").expect("valid id"), [8; 32]);
    let dir = tempfile::tempdir().expect("temp dir");
    let agent = start(&write_config(dir.path(), "fridge-cb", "ffi-callback", "mqtt://127.0.0.1:9", &key));

    // Before any callback: the consent event waits for one.
    let grant = c(r#"{"granted": true, "text_version": "2026-11"}"#);
    expect(unsafe { ledtrad_set_consent(agent, c("measure").as_ptr(), grant.as_ptr()) }, LedtradResult::Ok);
    let (tx, rx) = mpsc::channel();
    let inside = Box::new(Inside { agent, results: tx });
    let user_data = &*inside as *const Inside as *mut c_void;
    expect(unsafe { ledtrad_set_event_callback(agent, Some(call_back_in), user_data) }, LedtradResult::Ok);

    let (status, stop, message) = rx.recv_timeout(EVENT_WAIT).expect("the waiting event came to the callback");
    assert_eq!(status, LedtradResult::BufferTooSmall, "calls from inside work");
    assert_eq!(stop, LedtradResult::InvalidArgument);
    assert!(message.starts_with("ledtrad_agent_stop was called from inside the event callback"), "{message}");

    expect(unsafe { ledtrad_agent_stop(agent) }, LedtradResult::Ok);
    drop(inside);
}
