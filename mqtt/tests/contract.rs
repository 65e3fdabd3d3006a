//! Contract tests: each pins one rumqttc behaviour ledtrad relies on, against a real broker
//! (the embedded rumqttd, and the broker `LEDTRAD_TEST_BROKER` names, Mosquitto in CI). If an
//! upgrade of rumqttc changes one of them, its test fails here before delivery breaks.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use ledtrad_mqtt::rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use ledtrad_mqtt::rumqttc::v5::mqttbytes::QoS;
use ledtrad_mqtt::rumqttc::v5::{Event, Request};
use ledtrad_mqtt::rumqttc::Outgoing;
use ledtrad_mqtt::{discard_unsent, Backoff, ClientOptions, Connection, LastWill, Polled};
use support::{brokers, connack, suback, unique, until, Kind, Relay};

/// The agent maps each queued publish to its outbox row by the one numbering event rumqttc
/// gives it (`Outgoing::Publish(pkid)`), in queue order, and matches PUBACKs by packet id:
/// ids count 1, 2, 3 up to the in-flight limit and start again at 1, and a SUBSCRIBE takes
/// its id from the same count.
#[tokio::test]
async fn publishes_are_numbered_in_queue_order_and_wrap_at_the_inflight_limit() {
    for (kind, broker) in brokers() {
        let topic = unique("contract/numbered");
        let (client, mut eventloop) = ClientOptions::new(&broker, unique("numbered")).max_inflight(3).connect();
        connack(&mut eventloop).await;
        client.try_subscribe(&topic, QoS::AtLeastOnce).unwrap();
        suback(&mut eventloop).await;
        for n in 0..5u8 {
            client.try_publish(&topic, QoS::AtLeastOnce, false, vec![n]).unwrap();
        }
        let (mut numbered, mut acked) = (Vec::new(), Vec::new());
        while acked.len() < 5 {
            until(&mut eventloop, "five numbered and acknowledged publishes", |e| {
                match e {
                    Event::Outgoing(Outgoing::Publish(pkid)) => numbered.push(*pkid),
                    Event::Outgoing(Outgoing::AwaitAck(pkid)) => panic!("{kind:?}: held back {pkid}"),
                    Event::Incoming(Packet::PubAck(ack)) => acked.push((ack.pkid, ack.reason)),
                    _ => return None,
                }
                Some(())
            })
            .await;
        }
        // The SUBSCRIBE took id 1.
        assert_eq!(numbered, [2, 3, 1, 2, 3], "{kind:?}");
        let ids: Vec<u16> = acked.iter().map(|(pkid, _)| *pkid).collect();
        assert_eq!(ids, [2, 3, 1, 2, 3], "{kind:?}");
        assert!(acked.iter().all(|(_, reason)| *reason == PubAckReason::Success), "{kind:?}: {acked:?}");
    }
}

/// The agent tells "nobody listens" (keep the report for later) from "refused" by the PUBACK
/// reason: Mosquitto says NoMatchingSubscribers; rumqttd always says Success.
#[tokio::test]
async fn a_puback_says_when_no_one_subscribes() {
    for (kind, broker) in brokers() {
        let (client, mut eventloop) = ClientOptions::new(&broker, unique("lonely")).connect();
        connack(&mut eventloop).await;
        client.try_publish(unique("contract/nobody"), QoS::AtLeastOnce, false, b"x".to_vec()).unwrap();
        let reason = until(&mut eventloop, "the PUBACK", |e| match e {
            Event::Incoming(Packet::PubAck(ack)) => Some(ack.reason),
            _ => None,
        })
        .await;
        let expected = match kind {
            Kind::Embedded => PubAckReason::Success,
            Kind::External => PubAckReason::NoMatchingSubscribers,
        };
        assert_eq!(reason, expected, "{kind:?}");
    }
}

/// A connection that fails to open leaves the requests in the client's channel (rumqttc
/// drains them into `pending` only when an open connection breaks): `discard_unsent` drains
/// them, counts them (packet id 0: never numbered) and nothing goes out later.
#[tokio::test]
async fn publishes_queued_before_a_refused_connection_are_counted_and_discarded() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nowhere = ledtrad_protocol::broker::BrokerUrl::tcp("127.0.0.1", port);
    let (client, mut eventloop) = ClientOptions::new(&nowhere, unique("refused")).connect();
    for n in 0..3u8 {
        client.try_publish("contract/refused", QoS::AtLeastOnce, false, vec![n]).unwrap();
    }
    assert!(eventloop.poll().await.is_err(), "nothing listens on port {port}");
    assert!(eventloop.pending.is_empty(), "rumqttc now moves the queue on a failed open: revisit discard_unsent");
    assert_eq!(discard_unsent(&mut eventloop), 3);
    assert!(eventloop.pending.is_empty());
    assert_eq!(discard_unsent(&mut eventloop), 0, "the channel was drained");
}

/// When an open connection breaks, rumqttc hands the publishes in flight back to `pending`
/// with their packet ids, to send again; the agent's pump discards them (its outbox hands them
/// over again) and counts none of them as unsent, since the agent saw them numbered. The next
/// connection then sends none of them again, and numbering goes on where it was.
#[tokio::test]
async fn a_broken_connection_hands_its_inflight_publishes_back_and_they_are_discarded() {
    for (kind, broker) in brokers() {
        let relay = Relay::start(&broker).await;
        let (client, eventloop) = ClientOptions::new(relay.url(), unique("broken")).connect();
        let mut connection =
            Connection::new(eventloop, Backoff::new(Duration::from_millis(10), Duration::from_millis(20)));
        let first = next_event(&mut connection, "the first CONNACK").await;
        assert!(matches!(first, Event::Incoming(Packet::ConnAck(_))), "{kind:?}: {first:?}");
        relay.hold();
        client.try_publish("contract/broken", QoS::AtLeastOnce, false, b"1".to_vec()).unwrap();
        client.try_publish("contract/broken", QoS::AtLeastOnce, false, b"2".to_vec()).unwrap();
        let mut numbered = Vec::new();
        while numbered.len() < 2 {
            if let Event::Outgoing(Outgoing::Publish(pkid)) =
                next_event(&mut connection, "two numbered publishes").await
            {
                numbered.push(pkid);
            }
        }
        relay.cut();
        let eventloop = connection.eventloop_mut();
        while eventloop.poll().await.is_ok() {}
        let handed_back: Vec<u16> = eventloop
            .pending
            .iter()
            .filter_map(|r| if let Request::Publish(p) = r { Some(p.pkid) } else { None })
            .collect();
        assert_eq!(handed_back, numbered, "{kind:?}");
        assert_eq!(discard_unsent(eventloop), 0, "{kind:?}: both were numbered already");
        assert!(eventloop.pending.is_empty() && eventloop.state.collision.is_none());
        let reconnected = next_event(&mut connection, "the CONNACK after the cut").await;
        assert!(matches!(reconnected, Event::Incoming(Packet::ConnAck(_))), "{kind:?}: {reconnected:?}");
        client.try_publish("contract/broken", QoS::AtLeastOnce, false, b"3".to_vec()).unwrap();
        let next = next_event(&mut connection, "the next publish's number").await;
        assert!(matches!(next, Event::Outgoing(Outgoing::Publish(3))), "{kind:?}: {next:?}");
    }
}

/// The agent starts clean once, then keeps its session: after the first CONNACK a
/// [`Connection`] that keeps sessions reconnects without a clean start. Mosquitto keeps the
/// session of the clean first connection (MQTT 5: the expiry decides); rumqttd keeps only the
/// session of a connection that did not start clean, so it says "present" from the second
/// reconnection on. A client starting clean finds none.
#[tokio::test]
async fn a_kept_session_is_present_on_return_and_a_clean_start_drops_it() {
    for (kind, broker) in brokers() {
        let relay = Relay::start(&broker).await;
        let id = unique("session");
        let options = ClientOptions::new(relay.url(), id.clone()).session(Some(Duration::from_secs(300)), true);
        let (_client, eventloop) = options.connect();
        let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(20));
        let mut connection = Connection::new(eventloop, backoff).keeping_session_after_first();
        assert!(!session_present(&mut connection).await, "{kind:?}: a clean start keeps no session");
        relay.cut();
        let kept_from_the_clean_start = kind == Kind::External;
        assert_eq!(session_present(&mut connection).await, kept_from_the_clean_start, "{kind:?}: first return");
        relay.cut();
        assert!(session_present(&mut connection).await, "{kind:?}: the session was kept");
        drop(connection);
        relay.cut();
        let (_fresh, mut eventloop) = options.connect();
        assert!(!connack(&mut eventloop).await, "{kind:?}: a clean start drops the kept session");
    }
}

/// Devices learn the catalogue, the model and the collectors' presence from retained messages
/// sent on a new subscription, with the retain flag set.
#[tokio::test]
async fn a_retained_message_reaches_a_new_subscription() {
    for (kind, broker) in brokers() {
        let topic = unique("contract/retained");
        let (publisher, mut publishing) = ClientOptions::new(&broker, unique("retainer")).connect();
        connack(&mut publishing).await;
        publisher.try_publish(&topic, QoS::AtLeastOnce, true, b"catalogue".to_vec()).unwrap();
        until(&mut publishing, "the PUBACK", |e| matches!(e, Event::Incoming(Packet::PubAck(_))).then_some(())).await;
        let (reader, mut eventloop) = ClientOptions::new(&broker, unique("reader")).connect();
        connack(&mut eventloop).await;
        reader.try_subscribe(&topic, QoS::AtLeastOnce).unwrap();
        let (retain, payload) = until(&mut eventloop, "the retained message", |e| match e {
            Event::Incoming(Packet::Publish(p)) => Some((p.retain, p.payload.to_vec())),
            _ => None,
        })
        .await;
        assert_eq!((retain, &payload[..]), (true, &b"catalogue"[..]), "{kind:?}");
        publisher.try_publish(&topic, QoS::AtLeastOnce, true, Vec::new()).unwrap();
        until(&mut publishing, "the PUBACK of the clearing", |e| {
            matches!(e, Event::Incoming(Packet::PubAck(_))).then_some(())
        })
        .await;
    }
}

/// A device's offline status (its last will) is published retained once the connection is
/// lost, but only after its delay, so a blip never shows a device offline.
#[tokio::test]
async fn the_last_will_is_published_after_its_delay() {
    for (kind, broker) in brokers() {
        let topic = unique("contract/will");
        let (watcher, mut watching) = ClientOptions::new(&broker, unique("watcher")).connect();
        connack(&mut watching).await;
        watcher.try_subscribe(&topic, QoS::AtLeastOnce).unwrap();
        suback(&mut watching).await;
        let relay = Relay::start(&broker).await;
        let will = LastWill {
            topic: topic.clone(),
            payload: b"offline".to_vec(),
            retain: true,
            delay: Some(Duration::from_secs(1)),
        };
        let options = ClientOptions::new(relay.url(), unique("mortal"))
            .session(Some(Duration::from_secs(60)), true)
            .last_will(will);
        let (_client, mut eventloop) = options.connect();
        connack(&mut eventloop).await;
        relay.cut();
        let lost = Instant::now();
        let payload = until(&mut watching, "the last will", |e| match e {
            Event::Incoming(Packet::Publish(p)) => Some(p.payload.to_vec()),
            _ => None,
        })
        .await;
        let waited = lost.elapsed();
        assert_eq!(payload, b"offline", "{kind:?}");
        assert!(waited >= Duration::from_millis(900), "{kind:?}: the will came after {waited:?}, before its 1 s delay");
        watcher.try_publish(&topic, QoS::AtLeastOnce, true, Vec::new()).unwrap();
    }
}

async fn next_event(connection: &mut Connection, what: &str) -> Event {
    match tokio::time::timeout(Duration::from_secs(10), connection.poll()).await {
        Ok(Polled::Event(event)) => event,
        Ok(Polled::Lost { error, .. }) => panic!("waiting for {what}: the connection failed: {error}"),
        Err(_) => panic!("waiting for {what}: nothing within 10 s"),
    }
}

/// Polls through losses until a CONNACK, and returns whether the session was present.
async fn session_present(connection: &mut Connection) -> bool {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Polled::Event(Event::Incoming(Packet::ConnAck(ack))) = connection.poll().await {
                return ack.session_present;
            }
        }
    })
    .await;
    found.expect("a CONNACK within 10 s")
}
