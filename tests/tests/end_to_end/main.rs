//! The first end-to-end path: an operator pushes a signed catalogue, agents apply it, and a
//! fridge signal becomes an offer on its screen — against the embedded broker, or the broker
//! named by `LEDTRAD_TEST_BROKER` (CI runs this suite against Mosquitto too).
//!
//! `offers`: catalogues applied and refused, offers and their why, the local API's input and a
//! restart; `consent`: purposes granted and revoked, reports and the outbox, shared devices,
//! export and erasure; `home`: a home's screens as one household; `operator`: models, staged
//! rollouts, canaries, the collector, keeping a catalogue retained.

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use ledtrad_operator::status::watch_statuses;
use ledtrad_operator::SignOptions;
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::envelope::Rollout;
use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
use ledtrad_protocol::status::Connection;
use ledtrad_protocol::{DeviceKind, FleetId};
use ledtrad_tests::{
    broker, clear_catalogue, envelope, init_logs, now, operator_key, publish_catalogue, push, revoke, traced_offer,
    unique, wait_until, TestAgent,
};
use serde_json::{json, Value};

// The tests, by subject; the helpers below are theirs.
mod consent;
mod home;
mod moments;
mod offers;
mod operator;
mod socket;

fn fleet() -> FleetId {
    FleetId::try_new(unique("fleet")).unwrap()
}

async fn grant(http: &reqwest::Client, agent: &TestAgent, purpose: &str, granted: bool) -> Value {
    let response = http
        .put(format!("{}/v1/consent/{purpose}", agent.api()))
        .json(&json!({ "granted": granted, "text_version": "2026-11", "source": "device_ui" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn signal(http: &reqwest::Client, agent: &TestAgent, feature: &str, value: f64) -> Value {
    let response = http
        .post(format!("{}/v1/signals", agent.api()))
        .json(&json!({ "signals": [{ "feature": feature, "value": value }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn offer(http: &reqwest::Client, agent: &TestAgent, moment: &str) -> (u16, Option<Value>) {
    let response = http.get(format!("{}/v1/offer?moment={moment}", agent.api())).send().await.unwrap();
    let status = response.status().as_u16();
    let body = if status == 200 { Some(response.json().await.unwrap()) } else { None };
    (status, body)
}
