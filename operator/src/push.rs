//! Publishing a signed envelope: retained, QoS 1, on the fleet's catalogue topic, and waiting
//! for the broker's acknowledgement before returning.

use std::time::Duration;

use ledtrad_mqtt::Access;
use ledtrad_mqtt::{Backoff, Connection, Polled};
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::envelope::Envelope;
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
    #[error("broker {broker} refused {} ({code}); {}", refused_what(.username, .certificate), refused_fix(.username, .certificate))]
    LoginRefused {
        /// The broker.
        broker: BrokerUrl,
        /// The username tried, if any.
        username: Option<String>,
        /// The client certificate presented, if any.
        certificate: Option<String>,
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

fn refused_what(username: &Option<String>, certificate: &Option<String>) -> String {
    match (username, certificate) {
        (Some(name), _) => format!("the login as '{name}'"),
        (None, Some(certificate)) => format!("the identity of certificate '{certificate}'"),
        (None, None) => "to connect without a login".into(),
    }
}

fn refused_fix(username: &Option<String>, certificate: &Option<String>) -> &'static str {
    match (username, certificate) {
        (Some(_), _) => {
            "check the username and the password file (--username, --password-file) against the broker's password file"
        }
        (None, Some(_)) => {
            "check that the broker takes the certificate's identity as the username (use_identity_as_username) and that its ACL knows that name"
        }
        (None, None) => "give a username and a password file (--username, --password-file), or a client certificate (--cert-file, --key-file)",
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
    publish_retained_as(broker, &Access::default(), topic, payload, client_id).await
}

/// Like [`publish_retained`], presenting `access` (a login, TLS). A broker whose ACL does not
/// let the user write `topic` still acknowledges over MQTT 3.1.1, and drops the message: devices'
/// statuses show whether it arrived.
pub async fn publish_retained_as(
    broker: &BrokerUrl,
    access: &Access,
    topic: &Topic,
    payload: Vec<u8>,
    client_id: &str,
) -> Result<(), PushError> {
    let timeout = Duration::from_secs(15);
    let attempts = async {
        let mut attempts = Attempts::new();
        loop {
            let result = publish(broker, access, topic.name(), payload.clone(), client_id).await;
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
/// messages) when the broker drops the connection: at most [`ATTEMPTS`], waiting the
/// transport's backoff in between (about 200–400 ms, then 400–800 ms, then 800–1600 ms: the
/// jitter keeps clients cut off together from coming back together). Brokers drop connections
/// when they restart, and rumqttd also, now and then, closes a new connection in place of one
/// that has just left.
pub(crate) struct Attempts {
    tried: u32,
    backoff: Backoff,
}

impl Attempts {
    pub(crate) fn new() -> Self {
        Attempts { tried: 1, backoff: Backoff::new(Duration::from_millis(400), Duration::from_millis(1600)) }
    }

    /// Whether to try again after `result`; waits first when so.
    pub(crate) async fn again<T>(&mut self, broker: &BrokerUrl, result: &Result<T, PushError>) -> bool {
        let Err(PushError::Connection { detail, .. }) = result else { return false };
        if self.tried >= ATTEMPTS {
            return false;
        }
        tracing::warn!(%broker, %detail, attempt = self.tried, "connection dropped; trying again");
        tokio::time::sleep(self.backoff.next_delay()).await;
        self.tried += 1;
        true
    }
}

async fn publish(
    broker: &BrokerUrl,
    access: &Access,
    topic: String,
    payload: Vec<u8>,
    client_id: &str,
) -> Result<(), PushError> {
    let connection = |detail: String| PushError::Connection { broker: broker.clone(), detail };
    let (client, mut eventloop) = crate::mqtt::connect_as(broker, access, client_id);
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
            Err(e) => return Err(connection_error(broker, access, e)),
        }
    }
}

/// The push error for a failed connection: a refused login says so, anything else is a
/// connection problem.
pub(crate) fn connection_error(broker: &BrokerUrl, access: &Access, e: ConnectionError) -> PushError {
    match e {
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
        ) => PushError::LoginRefused {
            broker: broker.clone(),
            username: access.username().map(str::to_string),
            certificate: access
                .tls
                .as_ref()
                .and_then(|tls| tls.files().client.as_ref())
                .map(|client| client.cert.display().to_string()),
            code: format!("{code:?}"),
        },
        e => {
            let detail = match ledtrad_mqtt::tls_problem(&e) {
                Some(fix) => format!("{e}: {fix}"),
                None => e.to_string(),
            };
            PushError::Connection { broker: broker.clone(), detail }
        }
    }
}

/// How [`keep_retained`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepEnd {
    /// Asked to stop.
    Stopped,
    /// Another envelope of the same or a higher version was retained on the topic in its place
    /// (a newer push, or the next step of a staged rollout): that one is its pusher's to keep.
    Replaced,
    /// The retained message was cleared on the broker.
    Cleared,
}

/// What [`keep_retained`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// Times the payload was published again because the broker had come back without it.
    pub republished: u64,
    /// How it ended.
    pub ended: KeepEnd,
}

/// The longest a keeper waits between two connection attempts.
pub const KEEP_RETRY_CAP: Duration = Duration::from_secs(5);

/// How long after its subscription is acknowledged the keeper waits for the broker's retained
/// message before it takes it as gone.
const RETAINED_SETTLE: Duration = Duration::from_secs(1);

/// Keeps the signed envelope `payload` (published already, as by [`publish_retained_as`])
/// retained on `topic`: stays connected, reconnecting with backoff, and subscribes to `topic`
/// on each connection. When the broker then sends no retained message on it within a second (a
/// broker that keeps retained messages in memory only, such as the embedded one, has
/// restarted), or holds an envelope of a lower version (an older keeper's late push), it
/// publishes the payload again. Ends when `shutdown` completes, when another envelope of the
/// same or a higher version is retained in its place ([`KeepEnd::Replaced`]), or when the
/// retained message is cleared ([`KeepEnd::Cleared`]). `republished` is called each time it
/// published again.
pub async fn keep_retained(
    broker: &BrokerUrl,
    access: &Access,
    topic: &Topic,
    payload: Vec<u8>,
    client_id: &str,
    mut republished: impl FnMut(u64),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Kept, PushError> {
    let (client, eventloop) = crate::mqtt::connect_as(broker, access, client_id);
    let mut link = Connection::new(eventloop, Backoff::new(Duration::from_millis(100), KEEP_RETRY_CAP));
    let name = topic.name();
    let ours = Envelope::claimed_version(&payload);
    let connection = |detail: String| PushError::Connection { broker: broker.clone(), detail };
    let mut kept = Kept { republished: 0, ended: KeepEnd::Stopped };
    // Set from the subscription's acknowledgement until the retained message came (or was
    // published again): when to take it as gone. And whether it came on this connection.
    let mut settle: Option<tokio::time::Instant> = None;
    let mut seen = false;
    tokio::pin!(shutdown);
    loop {
        let wait = settle.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let event = tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep_until(wait), if settle.is_some() => {
                settle = None;
                client
                    .try_publish(name.clone(), QoS::AtLeastOnce, true, payload.clone())
                    .map_err(|e| connection(e.to_string()))?;
                kept.republished += 1;
                republished(kept.republished);
                continue;
            }
            polled = link.poll() => polled,
        };
        let event = match event {
            Polled::Event(event) => event,
            Polled::Lost { error, retry_in, .. } => {
                let error = connection_error(broker, access, error);
                if matches!(error, PushError::LoginRefused { .. }) {
                    return Err(error);
                }
                settle = None;
                tracing::debug!(%broker, "{error}; keeping '{name}' again in {} ms", retry_in.as_millis());
                continue;
            }
        };
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                (settle, seen) = (None, false);
                client.try_subscribe(name.clone(), QoS::AtLeastOnce).map_err(|e| connection(e.to_string()))?;
            }
            Event::Incoming(Packet::SubAck(_)) if !seen => {
                tracing::debug!(%broker, "keeper subscribed to '{name}'");
                settle = Some(tokio::time::Instant::now() + RETAINED_SETTLE);
            }
            Event::Incoming(Packet::PubAck(ack))
                if !matches!(ack.reason, PubAckReason::Success | PubAckReason::NoMatchingSubscribers) =>
            {
                return Err(PushError::PublishRefused {
                    broker: broker.clone(),
                    topic: name,
                    reason: format!("{:?}", ack.reason),
                });
            }
            Event::Incoming(Packet::Publish(p)) if p.topic == name.as_bytes() => {
                tracing::debug!(%broker, retain = p.retain, same = (p.payload == payload), "keeper saw '{name}'");
                (settle, seen) = (None, true);
                if p.payload.is_empty() {
                    kept.ended = KeepEnd::Cleared;
                    break;
                }
                if p.payload != payload {
                    if Envelope::claimed_version(&p.payload) >= ours {
                        kept.ended = KeepEnd::Replaced;
                        break;
                    }
                    // Older: due again now.
                    settle = Some(tokio::time::Instant::now());
                }
            }
            _ => {}
        }
    }
    let _ = client.try_disconnect();
    link.finish(Duration::from_secs(2)).await;
    Ok(kept)
}
