//! The operator's MQTT connection settings, shared by push and status watching.

use std::time::Duration;

use ledtrad_protocol::broker::BrokerUrl;
use rumqttc::{AsyncClient, EventLoop, MqttOptions};

/// The largest packet the operator client sends or receives.
pub const MAX_PACKET_BYTES: usize = 2 * 1024 * 1024;

/// A client for `broker` with TCP_NODELAY set and room for the largest catalogue.
pub fn connect(broker: &BrokerUrl, client_id: &str) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    eventloop.network_options.set_tcp_nodelay(true);
    (client, eventloop)
}
