//! Bad input through the C API: NULL pointers, text that is not UTF-8, bad JSON, unknown names,
//! a missing config, buffers too small. Each is a clear error code and message, never a crash.
//! The agents here have no broker to reach: what they are asked needs none.
// Every call here is unsafe C API use with live handles and valid (or deliberately NULL) pointers.
#![allow(unsafe_code, clippy::undocumented_unsafe_blocks)]

mod common;

use std::ffi::c_char;
use std::ptr;

use common::{answer, c, expect, last_error, start, write_config};
use ledtrad::*;
use ledtrad_operator::OperatorKey;
use ledtrad_protocol::KeyId;

/// A port nothing listens on: the agent keeps trying to connect, and answers all the same.
const NO_BROKER: &str = "mqtt://127.0.0.1:9";

fn key() -> OperatorKey {
    OperatorKey::from_secret(KeyId::try_new("op-1").expect("valid id"), [1; 32])
}

#[test]
fn starting_without_a_path_or_a_good_config_says_what_to_pass() {
    let mut out = ptr::NonNull::<LedtradAgent>::dangling().as_ptr();
    expect(unsafe { ledtrad_agent_start(ptr::null(), &mut out) }, LedtradResult::InvalidArgument);
    assert_eq!(last_error(), "config_path is NULL: pass the path of the agent's TOML config");
    assert!(out.is_null(), "*out is NULL on failure");

    expect(unsafe { ledtrad_agent_start(c("agent.toml").as_ptr(), ptr::null_mut()) }, LedtradResult::InvalidArgument);
    assert!(last_error().starts_with("out is NULL"), "{}", last_error());

    let not_utf8 = c"conf\xffig.toml";
    expect(unsafe { ledtrad_agent_start(not_utf8.as_ptr(), &mut out) }, LedtradResult::InvalidArgument);
    assert!(last_error().starts_with("config_path is not UTF-8 (byte 4 of 12 is not)"), "{}", last_error());

    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.toml");
    let path = c(missing.to_str().expect("UTF-8"));
    expect(unsafe { ledtrad_agent_start(path.as_ptr(), &mut out) }, LedtradResult::Config);
    let message = last_error();
    assert!(message.contains("missing.toml") && message.contains("ledtrad-agent check-config"), "{message}");

    let config = write_config(dir.path(), "fridge-1", "home-se", NO_BROKER, &key());
    let text = std::fs::read_to_string(&config).expect("written").replace("\"fridge\"", "\"toaster\"");
    std::fs::write(&config, text).expect("written");
    let path = c(config.to_str().expect("UTF-8"));
    expect(unsafe { ledtrad_agent_start(path.as_ptr(), &mut out) }, LedtradResult::Config);
    assert!(last_error().contains("field 'kind': \"toaster\""), "{}", last_error());
    assert!(out.is_null());
}

#[test]
fn an_agent_that_cannot_start_says_why_and_leaves_no_handle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = taken.local_addr().expect("its address");
    let config = write_config(dir.path(), "fridge-5", "home-se", NO_BROKER, &key());
    let text = std::fs::read_to_string(&config).expect("written");
    std::fs::write(&config, text.replace("camouflage_share", &format!("api = \"{addr}\"\ncamouflage_share")))
        .expect("written");
    let mut out = ptr::NonNull::<LedtradAgent>::dangling().as_ptr();
    let path = c(config.to_str().expect("UTF-8"));
    expect(unsafe { ledtrad_agent_start(path.as_ptr(), &mut out) }, LedtradResult::Start);
    assert!(last_error().contains(&format!("local API on {addr}")), "{}", last_error());
    assert!(out.is_null());
}

#[test]
fn a_null_agent_is_an_error_and_stopping_null_does_nothing() {
    let json = c("{}");
    expect(unsafe { ledtrad_signals(ptr::null(), json.as_ptr()) }, LedtradResult::InvalidArgument);
    assert!(last_error().starts_with("agent is NULL: pass the handle ledtrad_agent_start gave"), "{}", last_error());
    let mut needed = 0;
    expect(unsafe { ledtrad_consent(ptr::null(), ptr::null_mut(), 0, &mut needed) }, LedtradResult::InvalidArgument);
    expect(unsafe { ledtrad_set_event_callback(ptr::null(), None, ptr::null_mut()) }, LedtradResult::InvalidArgument);
    expect(unsafe { ledtrad_agent_stop(ptr::null_mut()) }, LedtradResult::Ok);
    let version = unsafe { std::ffi::CStr::from_ptr(ledtrad_version()) };
    assert_eq!(version.to_str(), Ok(env!("CARGO_PKG_VERSION")));
}

#[test]
fn a_running_agent_refuses_bad_json_and_unknown_names_with_the_fix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let agent = start(&write_config(dir.path(), "fridge-2", "home-se", NO_BROKER, &key()));

    expect(unsafe { ledtrad_signals(agent, c("{\"signals\": [").as_ptr()) }, LedtradResult::InvalidArgument);
    assert!(last_error().starts_with("signals body") && last_error().contains("send {\"signals\""), "{}", last_error());
    expect(unsafe { ledtrad_signals(agent, ptr::null()) }, LedtradResult::InvalidArgument);
    assert!(last_error().starts_with("json is NULL: pass the signals as JSON"), "{}", last_error());
    let signal = c(r#"{"feature": "fridge.butter.level", "value": 0.5}"#);
    expect(unsafe { ledtrad_signals(agent, signal.as_ptr()) }, LedtradResult::Ok);

    expect(unsafe { ledtrad_feedback(agent, c("{\"decision\": 1}").as_ptr()) }, LedtradResult::InvalidArgument);
    assert!(last_error().contains("\"kind\": \"accepted\""), "{}", last_error());
    let unknown = c(r#"{"decision": 999, "kind": "accepted"}"#);
    expect(unsafe { ledtrad_feedback(agent, unknown.as_ptr()) }, LedtradResult::Refused);
    assert!(last_error().contains("999"), "{}", last_error());

    let grant = c(r#"{"granted": true, "text_version": "2026-11"}"#);
    expect(unsafe { ledtrad_set_consent(agent, c("sell").as_ptr(), grant.as_ptr()) }, LedtradResult::InvalidArgument);
    assert!(last_error().starts_with("purpose \"sell\""), "{}", last_error());
    let bad = c(r#"{"granted": "yes"}"#);
    expect(unsafe { ledtrad_set_consent(agent, c("measure").as_ptr(), bad.as_ptr()) }, LedtradResult::InvalidArgument);
    assert!(last_error().starts_with("consent body"), "{}", last_error());

    let mut buf = [0 as c_char; 256];
    let mut needed = 0;
    let lunch = c("lunch");
    expect(
        unsafe { ledtrad_offer(agent, lunch.as_ptr(), buf.as_mut_ptr(), buf.len(), &mut needed) },
        LedtradResult::InvalidArgument,
    );
    assert!(last_error().starts_with("moment \"lunch\"") && last_error().contains("door_opened"), "{}", last_error());
    let not_utf8 = c"door\xe9";
    expect(
        unsafe { ledtrad_offer(agent, not_utf8.as_ptr(), buf.as_mut_ptr(), buf.len(), &mut needed) },
        LedtradResult::InvalidArgument,
    );
    assert!(last_error().starts_with("moment is not UTF-8"), "{}", last_error());

    expect(unsafe { ledtrad_agent_stop(agent) }, LedtradResult::Ok);
}

#[test]
fn a_buffer_too_small_gives_the_size_and_the_same_decision_on_the_second_try() {
    let dir = tempfile::tempdir().expect("temp dir");
    let agent = start(&write_config(dir.path(), "fridge-3", "home-se", NO_BROKER, &key()));
    let moment = c("door_opened");

    let mut needed = 0;
    let result = unsafe { ledtrad_offer(agent, moment.as_ptr(), ptr::null_mut(), 0, &mut needed) };
    expect(result, LedtradResult::BufferTooSmall);
    assert!(last_error().contains(&format!("needs {needed} bytes")), "{}", last_error());
    let mut buf = vec![0 as c_char; needed];
    expect(
        unsafe { ledtrad_offer(agent, moment.as_ptr(), buf.as_mut_ptr(), buf.len(), &mut needed) },
        LedtradResult::Ok,
    );
    let first: serde_json::Value =
        serde_json::from_slice(unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_bytes()).expect("JSON");
    assert_eq!(first["moment"], "door_opened");
    assert!(first.get("offer").is_none(), "no catalogue yet, nothing to show: {first}");

    // The retry was the same decision; the next call is a new one.
    let next = answer(|b, l, n| unsafe { ledtrad_offer(agent, moment.as_ptr(), b, l, n) });
    assert_eq!(next["decision"].as_u64(), first["decision"].as_u64().map(|d| d + 1), "{first} then {next}");

    let mut small = [0 as c_char; 4];
    expect(
        unsafe { ledtrad_consent(agent, small.as_mut_ptr(), small.len(), &mut needed) },
        LedtradResult::BufferTooSmall,
    );
    assert!(needed > small.len());
    let consent = answer(|b, l, n| unsafe { ledtrad_consent(agent, b, l, n) });
    assert_eq!(consent["personalise"], false);

    expect(unsafe { ledtrad_agent_stop(agent) }, LedtradResult::Ok);
}

#[test]
fn threads_share_a_handle_and_each_keeps_its_own_last_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let agent = start(&write_config(dir.path(), "fridge-4", "home-se", NO_BROKER, &key()));
    let shared = agent as usize;
    expect(unsafe { ledtrad_signals(agent, c("[").as_ptr()) }, LedtradResult::InvalidArgument);
    let threads: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let agent = shared as *const LedtradAgent;
                assert_eq!(last_error(), "", "a new thread has no error yet");
                for _ in 0..20 {
                    let status = answer(|b, l, n| unsafe { ledtrad_status(agent, b, l, n) });
                    assert_eq!(status["device"], "fridge-4");
                    let signal = c(&format!(r#"{{"feature": "fridge.milk.level", "value": 0.{i}}}"#));
                    expect(unsafe { ledtrad_signals(agent, signal.as_ptr()) }, LedtradResult::Ok);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no thread failed");
    }
    assert!(last_error().starts_with("signals body"), "this thread's error stays: {}", last_error());
    expect(unsafe { ledtrad_agent_stop(agent) }, LedtradResult::Ok);
}
