//! A home's screens as one household, over the broker under test: joined through the local
//! API with the code one screen shows, a revocation made on the fridge stops personalised
//! offers on the lock screen.

use ledtrad_agent::events::Subscription;

use super::*;

/// Starts a device of `kind` whose owner is anna.
async fn anna_s(kind: DeviceKind, fleet: &FleetId, key: &ledtrad_operator::OperatorKey) -> TestAgent {
    TestAgent::start_with(kind, fleet, key, &broker(), |raw| raw.owner = Some("anna".into())).await
}

async fn call(http: &reqwest::Client, request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let _ = http;
    body
}

/// Waits for the next `consent` event whose view satisfies `holds`.
async fn consent_event(events: &mut Subscription, what: &str, holds: impl Fn(&Value) -> bool) -> Value {
    let wait = async {
        loop {
            let event = events.live.recv().await.expect("the agent runs");
            if event.name == "consent" {
                let view: Value = serde_json::from_str(&event.data).unwrap();
                if holds(&view) {
                    return view;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait).await.unwrap_or_else(|_| panic!("no consent event: {what}"))
}

#[tokio::test]
async fn a_revocation_on_the_fridge_stops_personalised_offers_on_the_lock_screen() {
    init_logs();
    let (key, fleet) = (operator_key(41), fleet());
    push(&key, &fleet, 1).await;
    let fridge = anna_s(DeviceKind::Fridge, &fleet, &key).await;
    let lock = anna_s(DeviceKind::LockScreen, &fleet, &key).await;
    for agent in [&fridge, &lock] {
        agent.wait_for("the catalogue applied and connected", |s| s.catalogue_version == Some(1) && s.connected).await;
    }
    let http = reqwest::Client::new();

    // The fridge makes the home and shows its code; the lock screen is joined with it.
    let made = call(&http, http.post(format!("{}/v1/home", fridge.api()))).await;
    let code = made["code"].as_str().expect("a code to show").to_string();
    let joined = call(&http, http.post(format!("{}/v1/home/join", lock.api())).json(&json!({ "code": code }))).await;
    assert_eq!(joined["home"], made["home"]);
    assert_eq!(joined["code"], Value::Null);

    // Anna allows personalisation on her lock screen; the fridge hears it.
    let mut fridge_events = fridge.events().subscribe(None).unwrap();
    grant(&http, &lock, "personalise", true).await;
    consent_event(&mut fridge_events, "anna's grant heard on the fridge", |v| {
        v["people"]["anna"]["personalise"] == true
    })
    .await;

    // A busy day on the lock screen: the personalised delivery offer is shown.
    let unlocks = json!({"signals": [{"feature": "lockscreen.unlocks", "value": 25}]});
    call(&http, http.post(format!("{}/v1/signals", lock.api())).json(&unlocks)).await;
    let offer = call(&http, http.get(format!("{}/v1/offer?moment=screen_woken", lock.api()))).await;
    assert_eq!((&offer["offer"]["offer"], &offer["offer"]["personalised"]), (&json!("grocery-delivery"), &json!(true)));

    // Anna revokes it on the fridge: the lock screen puts it in force when it hears it.
    let mut lock_events = lock.events().subscribe(None).unwrap();
    let revoke = json!({"granted": false, "text_version": "2026-11", "source": "device_ui"});
    call(&http, http.put(format!("{}/v1/people/anna/consent/personalise", fridge.api())).json(&revoke)).await;
    let view =
        consent_event(&mut lock_events, "the revocation heard on the lock screen", |v| v["personalise"] == false).await;
    assert_eq!(view["people"]["anna"]["personalise"], false);

    // No personalised offer any more, and no personal value left behind.
    let response = http.get(format!("{}/v1/offer?moment=screen_woken", lock.api())).send().await.unwrap();
    if response.status() == 200 {
        let offer: Value = response.json().await.unwrap();
        assert_ne!(offer["offer"]["personalised"], true, "{offer}");
    }
    let my_data = call(&http, http.get(format!("{}/v1/my-data", lock.api()))).await;
    assert!(!my_data.to_string().contains("lockscreen.unlocks"), "{my_data}");

    // The broker carried only sealed bytes: nothing in the home's status talks of anna.
    let status = call(&http, http.get(format!("{}/v1/home", lock.api()))).await;
    assert!(status["heard"].as_u64().unwrap() >= 1 && status["refused"] == 0, "{status}");

    fridge.stop().await;
    lock.stop().await;
    clear_catalogue(&fleet).await;
}
