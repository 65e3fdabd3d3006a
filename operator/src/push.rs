//! Publishing a signed envelope: retained, QoS 1, on the fleet's catalogue topic, and waiting
//! for the broker's acknowledgement before returning.

use std::time::Duration;

use ledtrad_protocol::broker::{BrokerUrl, Credentials};
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::FleetId;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, PubAckReason};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{ConnectionError, Event};
use rumqttc::Outgoing;

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
    /// The broker refused the login, or refused to connect without one.
    #[error("broker {broker} refused {} ({code}); {}", refused_what(.username), refused_fix(.username))]
    LoginRefused {
        /// The broker.
        broker: BrokerUrl,
        /// The username tried, if any.
        username: Option<String>,
        /// The broker's return code.
        code: String,
    },
    /// The broker took the message but would not publish it (MQTT 5 reason code).
    #[error("broker {broker} refused to publish on '{topic}' ({reason}); is this login allowed to write that topic in the broker's ACL?")]
    PublishRefused {
        /// The broker.
        broker: BrokerUrl,
        /// The topic.
        topic: String,
        /// The broker's reason code.
        reason: String,
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

fn refused_what(username: &Option<String>) -> String {
    match username {
        Some(name) => format!("the login as '{name}'"),
        None => "to connect without a login".into(),
    }
}

fn refused_fix(username: &Option<String>) -> &'static str {
    match username {
        Some(_) => {
            "check the username and the password file (--username, --password-file) against the broker's password file"
        }
        None => "give a username and a password file (--username, --password-file)",
    }
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
    publish_retained_as(broker, None, topic, payload, client_id).await
}

/// Like [`publish_retained`], logging in with `login` when given. A broker whose ACL does not
/// let the user write `topic` still acknowledges over MQTT 3.1.1, and drops the message: devices'
/// statuses show whether it arrived.
pub async fn publish_retained_as(
    broker: &BrokerUrl,
    login: Option<&Credentials>,
    topic: &Topic,
    payload: Vec<u8>,
    client_id: &str,
) -> Result<(), PushError> {
    let timeout = Duration::from_secs(15);
    let attempts = async {
        let mut attempts = Attempts::new();
        loop {
            let result = publish(broker, login, topic.name(), payload.clone(), client_id).await;
            if !attempts.again(broker, &result).await {
                return result;
            }
        }
    };
    tokio::time::timeout(timeout, attempts)
        .await
        .map_err(|_| PushError::Timeout { broker: broker.clone(), seconds: timeout.as_secs() })?
}

/// How many times a one-shot operator client tries when the broker drops its connection.
pub(crate) const ATTEMPTS: u32 = 4;

/// The tries of an operation that may be repeated (a retained publish, or reading retained
/// messages) when the broker drops the connection: at most [`ATTEMPTS`], waiting 200 ms, 400 ms,
/// 800 ms in between, each plus up to half again so that clients cut off together do not come
/// back together. Brokers drop connections when they restart, and rumqttd also, now and then,
/// closes a new connection in place of one that has just left.
pub(crate) struct Attempts {
    tried: u32,
    wait: Duration,
}

impl Attempts {
    pub(crate) fn new() -> Self {
        Attempts { tried: 1, wait: Duration::from_millis(200) }
    }

    /// Whether to try again after `result`; waits first when so.
    pub(crate) async fn again<T>(&mut self, broker: &BrokerUrl, result: &Result<T, PushError>) -> bool {
        let Err(PushError::Connection { detail, .. }) = result else { return false };
        if self.tried >= ATTEMPTS {
            return false;
        }
        tracing::warn!(%broker, %detail, attempt = self.tried, "connection dropped; trying again");
        let jitter = rand::random_range(0..=self.wait.as_millis() as u64 / 2);
        tokio::time::sleep(self.wait + Duration::from_millis(jitter)).await;
        self.wait *= 2;
        self.tried += 1;
        true
    }
}

async fn publish(
    broker: &BrokerUrl,
    login: Option<&Credentials>,
    topic: String,
    payload: Vec<u8>,
    client_id: &str,
) -> Result<(), PushError> {
    let connection = |detail: String| PushError::Connection { broker: broker.clone(), detail };
    let (client, mut eventloop) = crate::mqtt::connect_as(broker, login, client_id);
    client.publish(topic.clone(), QoS::AtLeastOnce, true, payload).await.map_err(|e| connection(e.to_string()))?;
    let mut disconnecting = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(ack))) if !disconnecting => {
                // Mosquitto acknowledges a publish its ACL denies with "not authorized".
                if !matches!(ack.reason, PubAckReason::Success | PubAckReason::NoMatchingSubscribers) {
                    let _ = client.disconnect().await;
                    return Err(PushError::PublishRefused {
                        broker: broker.clone(),
                        topic,
                        reason: format!("{:?}", ack.reason),
                    });
                }
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
            Err(e) => return Err(connection_error(broker, login, e)),
        }
    }
}

/// The push error for a failed connection: a refused login says so, anything else is a
/// connection problem.
pub(crate) fn connection_error(broker: &BrokerUrl, login: Option<&Credentials>, e: ConnectionError) -> PushError {
    match e {
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
        ) => PushError::LoginRefused {
            broker: broker.clone(),
            username: login.map(|l| l.username().to_string()),
            code: format!("{code:?}"),
        },
        e => PushError::Connection { broker: broker.clone(), detail: e.to_string() },
    }
}
