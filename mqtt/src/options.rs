//! The one builder of MQTT client options: every ledtrad client (agent, operator, simulator)
//! connects through [`ClientOptions`], so keep-alive, last will, session, limits, TCP_NODELAY
//! and the login are set up in one place.

use std::collections::VecDeque;
use std::time::Duration;

use ledtrad_protocol::broker::{BrokerUrl, Credentials};
use rumqttc::v5::mqttbytes::v5::{LastWill as RawWill, LastWillProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, EventLoop, MqttOptions};
use rumqttc::{NetworkOptions, TlsConfiguration, Transport};

use crate::tls::ClientTls;

/// Keep-alive unless a client asks otherwise.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(30);

/// The largest packet a client sends or receives unless it asks otherwise: room for the
/// largest catalogue or model.
pub const DEFAULT_MAX_PACKET_BYTES: u32 = 2 * 1024 * 1024;

/// The most QoS 1 publishes a client has in flight unless it asks otherwise. rumqttc keeps a
/// slot per packet id it may have in flight, `u16::MAX` of them unless told: about 10 MB a
/// client.
pub const DEFAULT_MAX_INFLIGHT: u16 = 100;

/// How many requests (publishes, subscriptions, acks) the client's queue holds.
pub const DEFAULT_QUEUE: usize = 64;

/// How long a client waits for its connection (the TCP connection and the broker's CONNACK)
/// unless it asks otherwise: rumqttc's 5 s, which lets one-shot operator clients try again
/// within their own deadlines. A long-lived client that must not give up early asks for more
/// ([`ClientOptions::connect_timeout`]; the agent does).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a client presents to its broker besides its address: a login (username and password),
/// a TLS set-up (for `mqtts://`; with a client certificate for mutual TLS), both or neither.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Access {
    /// The login, for a broker that asks for one.
    pub login: Option<Credentials>,
    /// The TLS set-up, for an `mqtts://` broker.
    pub tls: Option<ClientTls>,
}

/// A broker address and an [`Access`] that do not go together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// An `mqtts://` broker without a CA file.
    #[error(
        "broker {0} is TLS (mqtts://) but no CA file is given; set ca_file (--ca-file) to the CA that signed the broker's certificate (ledtrad-op certs init writes it as ca.pem)"
    )]
    TlsWithoutCa(BrokerUrl),
    /// TLS files for a plain-TCP broker.
    #[error(
        "TLS files are given but broker {0} is plain TCP; write the broker as mqtts://{host}:8883 (or the port of its TLS listener), or drop ca_file, cert_file and key_file",
        host = .0.host
    )]
    TlsFilesWithoutTls(BrokerUrl),
}

impl Access {
    /// A login only.
    pub fn login(login: Option<Credentials>) -> Self {
        Self { login, tls: None }
    }

    /// Whether this access fits `broker`: TLS files if and only if the broker is `mqtts://`.
    pub fn check(&self, broker: &BrokerUrl) -> Result<(), AccessError> {
        match (broker.tls, self.tls.is_some()) {
            (true, false) => Err(AccessError::TlsWithoutCa(broker.clone())),
            (false, true) => Err(AccessError::TlsFilesWithoutTls(broker.clone())),
            _ => Ok(()),
        }
    }

    /// The username presented: the login's, else nothing (a broker that takes the certificate's
    /// identity as the username knows it from the certificate).
    pub fn username(&self) -> Option<&str> {
        self.login.as_ref().map(Credentials::username)
    }
}

/// A client's last will: published by the broker, QoS 1, when the connection is lost without
/// a DISCONNECT, `delay` after (a client back within it never triggers it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// The topic (from `ledtrad_protocol::topic`).
    pub topic: String,
    /// The payload (an empty retained payload clears the topic).
    pub payload: Vec<u8>,
    /// Whether the broker keeps it as the topic's retained message.
    pub retain: bool,
    /// How long the broker waits before publishing it.
    pub delay: Option<Duration>,
}

/// Everything a ledtrad MQTT 5 client is configured with. [`ClientOptions::new`] gives the
/// defaults every client shares (keep-alive 30 s, 2 MiB packets, 100 in flight, a clean start,
/// no session kept, TCP_NODELAY); the other methods change one setting each.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    broker: BrokerUrl,
    client_id: String,
    keep_alive: Duration,
    will: Option<LastWill>,
    session_expiry: Option<Duration>,
    clean_start: bool,
    max_packet_bytes: u32,
    max_inflight: u16,
    access: Access,
    manual_acks: bool,
    queue: usize,
    connect_timeout: Duration,
}

impl ClientOptions {
    /// The shared defaults for `client_id` on `broker`.
    pub fn new(broker: &BrokerUrl, client_id: impl Into<String>) -> Self {
        Self {
            broker: broker.clone(),
            client_id: client_id.into(),
            keep_alive: DEFAULT_KEEP_ALIVE,
            will: None,
            session_expiry: None,
            clean_start: true,
            max_packet_bytes: DEFAULT_MAX_PACKET_BYTES,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            access: Access::default(),
            manual_acks: false,
            queue: DEFAULT_QUEUE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// How long to wait for the connection and the broker's CONNACK (whole seconds; at least
    /// one).
    pub fn connect_timeout(mut self, within: Duration) -> Self {
        self.connect_timeout = within;
        self
    }

    /// The interval of keep-alive pings.
    pub fn keep_alive(mut self, every: Duration) -> Self {
        self.keep_alive = every;
        self
    }

    /// The last will the broker publishes if this client vanishes.
    pub fn last_will(mut self, will: LastWill) -> Self {
        self.will = Some(will);
        self
    }

    /// How long the broker keeps the session after the connection is lost (none: it ends with
    /// the connection), and whether the first connection starts a new one.
    pub fn session(mut self, expiry: Option<Duration>, clean_start: bool) -> Self {
        self.session_expiry = expiry;
        self.clean_start = clean_start;
        self
    }

    /// The largest packet sent or received.
    pub fn max_packet_bytes(mut self, bytes: u32) -> Self {
        self.max_packet_bytes = bytes;
        self
    }

    /// The most QoS 1 publishes in flight at once.
    pub fn max_inflight(mut self, publishes: u16) -> Self {
        self.max_inflight = publishes.max(1);
        self
    }

    /// The login presented to a broker that asks for one.
    pub fn login(mut self, login: Option<&Credentials>) -> Self {
        self.access.login = login.cloned();
        self
    }

    /// The login and TLS set-up presented to the broker (see [`Access::check`]: the caller
    /// checks they fit the broker when it reads them).
    pub fn access(mut self, access: &Access) -> Self {
        self.access = access.clone();
        self
    }

    /// Whether received QoS 1 publishes are acknowledged by the caller (`AsyncClient::ack`)
    /// instead of at once.
    pub fn manual_acks(mut self, manual: bool) -> Self {
        self.manual_acks = manual;
        self
    }

    /// How many requests the client's queue holds before `try_*` calls are refused.
    pub fn queue(mut self, requests: usize) -> Self {
        self.queue = requests.max(1);
        self
    }

    /// The broker.
    pub fn broker(&self) -> &BrokerUrl {
        &self.broker
    }

    /// The login, if any.
    pub fn login_given(&self) -> Option<&Credentials> {
        self.access.login.as_ref()
    }

    /// The rumqttc options these stand for, with TCP_NODELAY always on (without it a loopback
    /// round trip waits about 40 ms on delayed acks), and TLS for an `mqtts://` broker. An
    /// `mqtts://` broker without a TLS set-up gets one that trusts no CA, so it fails at the
    /// handshake rather than falling back to plain TCP; [`Access::check`] says so earlier.
    pub fn mqtt_options(&self) -> MqttOptions {
        let mut options = MqttOptions::new(self.client_id.clone(), self.broker.host.clone(), self.broker.port);
        options.set_keep_alive(self.keep_alive);
        options.set_max_packet_size(Some(self.max_packet_bytes));
        options.set_outgoing_inflight_upper_limit(self.max_inflight);
        options.set_clean_start(self.clean_start);
        options.set_session_expiry_interval(self.session_expiry.map(secs));
        options.set_manual_acks(self.manual_acks);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        let connect_secs = self.connect_timeout.as_secs().max(1);
        network.set_connection_timeout(connect_secs);
        options.set_network_options(network);
        // The v5 event loop times the connection and its CONNACK by this one.
        options.set_connection_timeout(connect_secs);
        if let Some(login) = &self.access.login {
            options.set_credentials(login.username(), login.password());
        }
        if self.broker.tls {
            let config = self.access.tls.as_ref().map_or_else(ClientTls::trusting_none, ClientTls::config);
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
        }
        if let Some(will) = &self.will {
            options.set_last_will(raw_will(will));
        }
        options
    }

    /// A client and its event loop (nothing connects until the loop is polled).
    pub fn connect(&self) -> (AsyncClient, EventLoop) {
        let (client, mut eventloop) = AsyncClient::new(self.mqtt_options(), self.queue);
        // rumqttc reserves room for 100 events (about 39 KB) that its loop cycles through, so
        // all of it ends up resident; a client hands its events on one or a few at a time.
        eventloop.state.events = VecDeque::new();
        (client, eventloop)
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

fn raw_will(will: &LastWill) -> RawWill {
    let properties = will.delay.map(|delay| LastWillProperties {
        delay_interval: Some(secs(delay)),
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
    });
    RawWill::new(will.topic.clone(), will.payload.clone(), QoS::AtLeastOnce, will.retain, properties)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker() -> BrokerUrl {
        "mqtt://127.0.0.1:1883".parse().unwrap()
    }

    #[test]
    fn defaults_and_each_setting_reach_the_rumqttc_options() {
        let login = Credentials::try_new("device", "s3cret").unwrap();
        let will = LastWill {
            topic: "ledtrad/v1/device/d-1/status".into(),
            payload: b"offline".to_vec(),
            retain: true,
            delay: Some(Duration::from_secs(10)),
        };
        let options = ClientOptions::new(&broker(), "ledtrad-d-1")
            .keep_alive(Duration::from_secs(20))
            .session(Some(Duration::from_secs(86_400)), true)
            .max_inflight(50)
            .login(Some(&login))
            .last_will(will)
            .mqtt_options();
        assert_eq!(options.client_id(), "ledtrad-d-1");
        assert_eq!(options.broker_address(), ("127.0.0.1".to_string(), 1883));
        assert_eq!(options.keep_alive(), Duration::from_secs(20));
        assert_eq!(options.session_expiry_interval(), Some(86_400));
        assert!(options.clean_start());
        assert_eq!(options.max_packet_size(), Some(DEFAULT_MAX_PACKET_BYTES));
        let login = options.credentials().unwrap();
        assert_eq!((&login.username[..], &login.password[..]), ("device", "s3cret"));
        let raw = options.last_will().unwrap();
        assert_eq!(
            (&raw.topic[..], &raw.message[..], raw.retain),
            (&b"ledtrad/v1/device/d-1/status"[..], &b"offline"[..], true)
        );
        assert_eq!(raw.properties.and_then(|p| p.delay_interval), Some(10));
        assert_eq!(options.connection_timeout(), DEFAULT_CONNECT_TIMEOUT.as_secs());
        assert_eq!(options.network_options().connection_timeout(), DEFAULT_CONNECT_TIMEOUT.as_secs());
        let patient = ClientOptions::new(&broker(), "c").connect_timeout(Duration::from_secs(7)).mqtt_options();
        assert_eq!(patient.connection_timeout(), 7);
    }

    #[test]
    fn a_new_event_loop_reserves_no_room_for_events() {
        let (_client, eventloop) = ClientOptions::new(&broker(), "c").connect();
        assert_eq!(eventloop.state.events.capacity(), 0, "the event queue grows as events come");
    }

    #[test]
    fn tls_files_must_fit_the_brokers_scheme() {
        let tls_broker: BrokerUrl = "mqtts://broker.example".parse().unwrap();
        let err = Access::default().check(&tls_broker).unwrap_err().to_string();
        assert!(err.contains("mqtts://broker.example:8883") && err.contains("ca_file (--ca-file)"), "{err}");
        assert!(Access::default().check(&broker()).is_ok());
        let options = ClientOptions::new(&tls_broker, "c").mqtt_options();
        assert!(matches!(options.transport(), Transport::Tls(_)), "an mqtts:// broker is never reached in clear");
        assert!(matches!(ClientOptions::new(&broker(), "c").mqtt_options().transport(), Transport::Tcp));
    }
}
