//! The embedded broker for many devices: past one address's share of connections it listens
//! on further loopback addresses, one broker behind all of them.

#![allow(clippy::unwrap_used)]

mod support;

use ledtrad_mqtt::broker::{BrokerError, EmbeddedBroker, CONNECTIONS_PER_ADDRESS};
use ledtrad_mqtt::rumqttc::v5::mqttbytes::v5::Packet;
use ledtrad_mqtt::rumqttc::v5::mqttbytes::QoS;
use ledtrad_mqtt::rumqttc::v5::Event;
use ledtrad_mqtt::ClientOptions;
use support::{connack, suback, unique, until};

#[tokio::test]
async fn a_broker_for_more_connections_than_one_address_takes_listens_on_more_as_one_broker() {
    let broker = EmbeddedBroker::start(2 * CONNECTIONS_PER_ADDRESS + 1).unwrap();
    let urls = broker.urls();
    let hosts: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
    let port = urls[0].port;
    assert_eq!(
        hosts,
        ["127.0.0.1", "127.0.0.2", "127.0.0.3"].map(|h| format!("mqtt://{h}:{port}")),
        "three addresses, one port"
    );
    assert_eq!(broker.url(), &urls[0]);

    // A message published on the first address reaches a subscriber on the last.
    let topic = unique("embedded/spread");
    let (subscriber, mut listening) = ClientOptions::new(&urls[2], unique("sub")).connect();
    connack(&mut listening).await;
    subscriber.try_subscribe(&topic, QoS::AtLeastOnce).unwrap();
    suback(&mut listening).await;
    let (publisher, mut sending) = ClientOptions::new(&urls[0], unique("pub")).connect();
    connack(&mut sending).await;
    publisher.try_publish(&topic, QoS::AtLeastOnce, false, b"across".to_vec()).unwrap();
    tokio::spawn(async move { while sending.poll().await.is_ok() {} });
    let payload = until(&mut listening, "the message from another address", |e| match e {
        Event::Incoming(Packet::Publish(p)) => Some(p.payload.to_vec()),
        _ => None,
    })
    .await;
    assert_eq!(payload, b"across");

    let small = EmbeddedBroker::start(16).unwrap();
    assert_eq!(small.urls().len(), 1, "a broker for a few clients keeps to 127.0.0.1");
}

#[test]
fn a_broker_for_more_than_loopback_holds_is_refused_with_the_fix() {
    let Err(BrokerError::Start(why)) = EmbeddedBroker::start(255 * CONNECTIONS_PER_ADDRESS) else {
        panic!("started");
    };
    assert!(why.contains("254") && why.contains("fewer devices"), "{why}");
}
