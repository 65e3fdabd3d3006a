//! The embedded MQTT broker (rumqttd) for demos, the simulator and tests, so a newcomer needs
//! nothing installed. It speaks MQTT 5 only and keeps retained messages and sessions in memory only; real
//! deployments use Mosquitto (see `deploy/`).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use ledtrad_protocol::broker::BrokerUrl;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// A broker running on its own thread on a loopback port.
#[derive(Debug)]
pub struct EmbeddedBroker {
    url: BrokerUrl,
}

/// The broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No free port could be found, or the listener did not come up.
    #[error("embedded broker: {0}")]
    Start(String),
}

impl EmbeddedBroker {
    /// Starts a broker on a free loopback port and waits until it accepts connections.
    /// The broker lives until the process exits (rumqttd has no shutdown).
    pub fn start(max_connections: usize) -> Result<Self, BrokerError> {
        // rumqttd does not expose the bound address of port 0: find a free port first.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| BrokerError::Start(format!("no free loopback port: {e}")))?
            .port();
        Self::start_on(port, max_connections)
    }

    /// Starts a broker on loopback `port` and waits until it accepts connections.
    pub fn start_on(port: u16, max_connections: usize) -> Result<Self, BrokerError> {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        if TcpListener::bind(listen).is_err() {
            return Err(BrokerError::Start(format!(
                "{listen} is in use; stop what listens there or use another port in the broker address"
            )));
        }
        let connections = ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 2 * 1024 * 1024,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        };
        // MQTT 5 only: every part of ledtrad speaks it (offer requests need its response topic
        // and correlation data), and rumqttd drops a v5 client on a v4 listener.
        let server =
            ServerSettings { name: "ledtrad-v5".into(), listen, tls: None, next_connection_delay_ms: 0, connections };
        let config = Config {
            id: 0,
            router: RouterConfig {
                max_connections: max_connections + 16,
                // QoS 0 reads per batch; also bounds how many retained messages a new QoS 0
                // wildcard subscriber receives, so leave room for every device's status.
                max_outgoing_packet_count: (max_connections as u64 * 2).max(1000),
                max_segment_size: 16 * 1024 * 1024,
                max_segment_count: 10,
                custom_segment: None,
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
            },
            v5: Some(HashMap::from([("1".to_string(), server)])),
            ..Config::default()
        };
        std::thread::Builder::new()
            .name("ledtrad-broker".into())
            .spawn(move || {
                let mut broker = Broker::new(config);
                if let Err(e) = broker.start() {
                    tracing::error!("embedded broker stopped: {e}");
                }
            })
            .map_err(|e| BrokerError::Start(format!("cannot start the broker thread: {e}")))?;
        for _ in 0..200 {
            if std::net::TcpStream::connect(listen).is_ok() {
                return Ok(Self { url: BrokerUrl { host: "127.0.0.1".into(), port } });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(BrokerError::Start(format!("the broker did not listen on {listen} within 2 s")))
    }

    /// The broker's address.
    pub fn url(&self) -> &BrokerUrl {
        &self.url
    }
}
