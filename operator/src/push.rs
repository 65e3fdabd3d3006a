//! Publishing a signed envelope: retained, QoS 1, on the fleet's catalogue topic, and waiting
//! for the broker's acknowledgement before returning.

use std::time::Duration;

use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::FleetId;
use rumqttc::{Event, Outgoing, Packet, QoS};

/// A push that did not complete.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The broker could not be reached or dropped the connection.
    #[error("broker {broker}: {detail}; is an MQTT broker listening there?")]
    Connection {
        /// The broker.
        broker: BrokerUrl,
        /// What happened.
        detail: String,
    },
    /// The broker did not acknowledge in time.
    #[error("broker {broker} did not acknowledge the catalogue within {seconds} s")]
    Timeout {
        /// The broker.
        broker: BrokerUrl,
        /// The time waited.
        seconds: u64,
    },
}

/// Publishes `envelope` retained with QoS 1 on `fleet`'s catalogue topic and waits for PUBACK.
/// An empty payload clears the retained catalogue on the broker (devices keep theirs).
pub async fn push_envelope(
    broker: &BrokerUrl,
    fleet: &FleetId,
    envelope: Vec<u8>,
    client_id: &str,
) -> Result<(), PushError> {
    publish_retained(broker, &Topic::Catalogue(fleet.clone()), envelope, client_id).await
}

/// Publishes `payload` retained with QoS 1 on `topic` and waits for PUBACK.
pub async fn publish_retained(
    broker: &BrokerUrl,
    topic: &Topic,
    payload: Vec<u8>,
    client_id: &str,
) -> Result<(), PushError> {
    let timeout = Duration::from_secs(15);
    tokio::time::timeout(timeout, publish(broker, topic.name(), payload, client_id))
        .await
        .map_err(|_| PushError::Timeout { broker: broker.clone(), seconds: timeout.as_secs() })?
}

async fn publish(broker: &BrokerUrl, topic: String, payload: Vec<u8>, client_id: &str) -> Result<(), PushError> {
    let connection = |detail: String| PushError::Connection { broker: broker.clone(), detail };
    let (client, mut eventloop) = crate::mqtt::connect(broker, client_id);
    client.publish(topic, QoS::AtLeastOnce, true, payload).await.map_err(|e| connection(e.to_string()))?;
    let mut disconnecting = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) if !disconnecting => {
                disconnecting = true;
                client.disconnect().await.map_err(|e| connection(e.to_string()))?;
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return Ok(()),
            Ok(_) => {}
            Err(e) if disconnecting => {
                // The broker may close first once it has our DISCONNECT.
                let _ = e;
                return Ok(());
            }
            Err(e) => return Err(connection(e.to_string())),
        }
    }
}
