//! Publishing a signed envelope: retained, QoS 1, on the fleet's catalogue topic, and waiting
//! for the broker's acknowledgement before returning.

use std::time::Duration;

use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::FleetId;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

/// The largest packet the operator client sends or receives.
pub const MAX_PACKET_BYTES: usize = 1024 * 1024;

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
pub async fn push_envelope(broker: &BrokerUrl, fleet: &FleetId, envelope: Vec<u8>, client_id: &str) -> Result<(), PushError> {
    let timeout = Duration::from_secs(15);
    tokio::time::timeout(timeout, publish(broker, Topic::Catalogue(fleet.clone()).name(), envelope, client_id))
        .await
        .map_err(|_| PushError::Timeout { broker: broker.clone(), seconds: timeout.as_secs() })?
}

async fn publish(broker: &BrokerUrl, topic: String, payload: Vec<u8>, client_id: &str) -> Result<(), PushError> {
    let connection = |detail: String| PushError::Connection { broker: broker.clone(), detail };
    let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    eventloop.network_options.set_tcp_nodelay(true);
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
