//! The agent's tokio shell: one `select!` over MQTT events, commands from handles, the sensor
//! link, a periodic tick, the core's next timeout and shutdown. It reads the clock, feeds each
//! event to the [`AgentCore`] with the time, and carries answers back to their callers;
//! everything the agent decides is decided in the core.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ledtrad_mqtt::{Backoff, ClientOptions, Connection, LastWill, Polled, DEFAULT_RETRY_CAP, DEFAULT_RETRY_FIRST};
use ledtrad_protocol::codec;
use ledtrad_protocol::topic::Topic;
use rand::SeedableRng;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, PubAckReason, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop};
use rumqttc::Outgoing;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::api::listen::ApiAddress;
use crate::clock::Clock;
use crate::config::Config;
use crate::core::{offline_status, AgentCore, LinkState, MqttEvent, OfferStep, RequestToken};
use crate::egress::Ack;
use crate::events::EventHub;
use crate::handle::{AgentHandle, Command, OfferOutcome};
use crate::link::LinkEvent;
use crate::store::{Store, StoreError};

pub use crate::core::AGENT_VERSION;

/// The largest MQTT packet the agent sends or receives (catalogue envelopes are at most 1 MiB).
pub const MAX_PACKET_BYTES: usize = 2 * 1024 * 1024;

/// The most QoS 1 publishes the agent has in flight to the broker at once. The outbox hands
/// the client up to [`crate::egress::MAX_UNACKNOWLEDGED`]; those past this wait in the client's
/// queue for an acknowledgement.
const MAX_INFLIGHT: u16 = 8;

/// How often the core expires old feature values, retries the outbox and what the broker
/// did not take (subscriptions), and asks again for a missing collector.
const TICK: Duration = Duration::from_secs(60);

/// A running agent.
pub struct RunningAgent {
    handle: AgentHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    api: Option<std::net::SocketAddr>,
    events: Arc<EventHub>,
}

impl RunningAgent {
    /// A handle to drive the agent.
    pub fn handle(&self) -> AgentHandle {
        self.handle.clone()
    }

    /// The local API's bound address, if it runs.
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.api
    }

    /// The events a connected UI follows (`GET /v1/events`), to follow them in-process.
    pub fn events(&self) -> Arc<EventHub> {
        self.events.clone()
    }

    /// Stops the agent: publishes its offline status, disconnects, and waits for it to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits until the agent stops by itself (it does not, unless its runtime fails).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// A failure to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sensor link's reader could not start.
    #[error("the sensor link's reader thread could not start: {source}")]
    Link {
        /// The error.
        source: std::io::Error,
    },
    /// The local API's Unix socket could not be set up.
    #[error("local API socket: {0}")]
    Socket(#[from] crate::api::listen::SocketError),
    /// The local API could not listen.
    #[error("local API on {addr}: {source}; choose another `api` address in the config")]
    Api {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Starts an agent: opens its database, restores its core, connects to the broker and, if
/// configured, serves the local API.
pub async fn spawn(config: Config, clock: Arc<dyn Clock>) -> Result<RunningAgent, StartError> {
    let store = Store::open(&config.database)?;
    let (client, eventloop) = mqtt_client(&config);
    let rng = match config.rng_seed {
        Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
        None => rand::rngs::StdRng::from_os_rng(),
    };
    let (link, link_rx) = match &config.sensor_link {
        None => (None, None),
        Some(source) => {
            let (tx, rx) = mpsc::channel(256);
            crate::link::spawn(source.clone(), tx).map_err(|source| StartError::Link { source })?;
            info!(%source, "reading the sensor board's link");
            (Some(LinkState::new(source.to_string())), Some(rx))
        }
    };
    let core = AgentCore::restore(config.clone(), store, client, rng, link, clock.reading())?;

    // The MQTT events go boxed, as the commands do (see `AgentHandle::from_sender`).
    let (mqtt_tx, mqtt_rx) = mpsc::channel(64);
    let (closing_tx, closing_rx) = watch::channel(false);
    let pump = tokio::spawn(pump(eventloop, mqtt_tx, closing_rx));
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let handle = AgentHandle::from_sender(cmd_tx);
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let events = Arc::new(EventHub::new(epoch()));
    let (api, api_task) = match &config.api {
        None => (None, None),
        Some(ApiAddress::Tcp(addr)) => {
            let addr = *addr;
            let listener =
                tokio::net::TcpListener::bind(addr).await.map_err(|source| StartError::Api { addr, source })?;
            let bound = listener.local_addr().map_err(|source| StartError::Api { addr, source })?;
            info!(%bound, "local API listening");
            (Some(bound), Some(crate::api::serve(listener, handle.clone(), events.clone(), config.ui)))
        }
        Some(ApiAddress::Unix(socket)) => {
            let listener = crate::api::listen::bind_unix(socket)?;
            info!(socket = %socket.path.display(), mode = format!("{:o}", socket.mode), "local API listening");
            (None, Some(crate::api::serve(listener, handle.clone(), events.clone(), config.ui)))
        }
    };
    let socket = match &config.api {
        Some(ApiAddress::Unix(socket)) => Some(socket.path.clone()),
        _ => None,
    };
    let shell = Shell { core: Box::new(core), clock, waiting: Vec::new(), events: events.clone() };
    let task = tokio::spawn(async move {
        shell
            .run(mqtt_rx, cmd_rx, link_rx, async {
                let _ = shutdown_rx.await;
            })
            .await;
        if let Some(api) = api_task {
            api.abort();
        }
        if let Some(path) = socket {
            let _ = std::fs::remove_file(path);
        }
        let _ = closing_tx.send(true);
        let mut pump = pump;
        if tokio::time::timeout(Duration::from_secs(2), &mut pump).await.is_err() {
            // A pump still reconnecting would keep using this device's client id.
            pump.abort();
        }
    });
    Ok(RunningAgent { handle, shutdown: Some(shutdown_tx), task, api, events })
}

/// Tells this run's event ids from an earlier run's: the real time of the start in
/// milliseconds (whatever clock the agent decides by).
fn epoch() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// How long the broker waits after a connection is lost before it says the device is offline
/// (its last will): a device back within it (a Wi-Fi blip, a broker restart) never shows as
/// offline.
pub const WILL_DELAY_SECS: u32 = 10;

/// How long the agent waits for the broker's CONNACK (rumqttc's default is 5 s). A broker
/// taking thousands of connections at once (a fleet back after an outage, a simulated fleet
/// starting) answers some late; an agent that gave up would connect again under the same
/// client id, and the broker would drop the connection it was about to acknowledge, sending
/// the reports in flight again and making the rush longer.
pub const CONNACK_WAIT: Duration = Duration::from_secs(30);

/// How long the broker keeps a device's session while it is away: a day.
pub const SESSION_EXPIRY_SECS: u32 = 86_400;

fn mqtt_client(config: &Config) -> (AsyncClient, EventLoop) {
    // A persistent session: a broker that keeps it keeps what arrives for the subscriptions
    // across a dropped connection; the subscriptions are made again on every connection all
    // the same (see `Egress::subscribe`). But a new process starts clean (the pump keeps the
    // session from its first CONNACK on): rumqttd sends retained messages (the catalogue, the
    // model, the collectors' presence) only for a subscription new to the session, whatever
    // the retain handling asks, so an agent that knows none of them yet must not find its old
    // subscriptions kept.
    let will = LastWill {
        topic: Topic::Status(config.device.clone()).name(),
        payload: codec::to_json(&offline_status(config, None, None)),
        retain: true,
        delay: Some(Duration::from_secs(WILL_DELAY_SECS.into())),
    };
    ClientOptions::new(&config.broker, format!("ledtrad-{}", config.device))
        .keep_alive(Duration::from_secs(30))
        .max_packet_bytes(MAX_PACKET_BYTES as u32)
        // rumqttc's v5 client keeps a slot per packet id it may have in flight, u16::MAX of
        // them unless told otherwise: about 10 MB a client; a slot is about 390 bytes. 8
        // publishes in flight keep a device's few messages flowing.
        .max_inflight(MAX_INFLIGHT)
        .session(Some(Duration::from_secs(SESSION_EXPIRY_SECS.into())), true)
        .access(&config.mqtt)
        .last_will(will)
        .queue(64)
        .connect_timeout(CONNACK_WAIT)
        .connect()
}

/// Polls the MQTT connection and forwards what the core needs. The connection reconnects with
/// backoff and jitter, keeps the session from its first CONNACK on, and after an error
/// discards the publishes of the lost connection still queued: the outbox hands its rows over
/// again itself, and would otherwise lose count of which publish is which. Once `closing`
/// says the agent stops, a wait before the next attempt is cut short, so the last status and
/// the DISCONNECT go out at once if the broker can be reached.
async fn pump(eventloop: EventLoop, tx: mpsc::Sender<Box<MqttEvent>>, mut closing: watch::Receiver<bool>) {
    let mut connection = Connection::new(eventloop, Backoff::new(DEFAULT_RETRY_FIRST, DEFAULT_RETRY_CAP))
        .keeping_session_after_first()
        .discarding_unsent();
    loop {
        if connection.is_waiting() && *closing.borrow() {
            connection.skip_wait();
        }
        let polled = if connection.is_waiting() {
            tokio::select! {
                polled = connection.poll() => polled,
                // Only the wait is cut short: a poll under way is never dropped.
                _ = closing.changed() => continue,
            }
        } else {
            connection.poll().await
        };
        let event = match polled {
            Polled::Event(Event::Outgoing(Outgoing::Disconnect)) => return,
            Polled::Event(event) => mqtt_event(event),
            Polled::Lost { error, unsent, .. } => Some(match &error {
                ConnectionError::ConnectionRefused(
                    code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
                ) => MqttEvent::LoginRefused(format!("{code:?}"), unsent),
                _ => MqttEvent::Disconnected { why: connection_problem(&error), unsent },
            }),
        };
        if let Some(event) = event {
            // Once the agent stops, nobody reads the events; the pump goes on all the same until
            // the offline status and the DISCONNECT are out (the agent's task gives it 2 s).
            // Returning here would drop the connection with them still queued, and the broker
            // would publish the will (which knows no catalogue version) instead.
            let _ = tx.send(Box::new(event)).await;
        }
    }
}

/// A lost connection in words, with the fix when TLS refused it.
fn connection_problem(error: &ConnectionError) -> String {
    match ledtrad_mqtt::tls_problem(error) {
        Some(fix) => format!("{error}: {fix}"),
        None => error.to_string(),
    }
}

/// What the core needs of an MQTT event, if anything.
fn mqtt_event(event: Event) -> Option<MqttEvent> {
    match event {
        Event::Incoming(Packet::ConnAck(ack)) => Some(MqttEvent::Connected { session_present: ack.session_present }),
        Event::Incoming(Packet::Publish(p)) => {
            let topic = String::from_utf8_lossy(&p.topic).into_owned();
            let correlation = p.properties.and_then(|props| props.correlation_data).map(|c| c.to_vec());
            Some(MqttEvent::Publish { topic, payload: p.payload.to_vec(), correlation })
        }
        Event::Incoming(Packet::PubAck(ack)) => Some(MqttEvent::Acked {
            pkid: ack.pkid,
            ack: match ack.reason {
                PubAckReason::Success => Ack::Accepted,
                PubAckReason::NoMatchingSubscribers => Ack::NoSubscribers,
                _ => Ack::Refused,
            },
        }),
        Event::Incoming(Packet::SubAck(ack)) => {
            if let Some(code) = ack.return_codes.iter().find(|c| !matches!(c, SubscribeReasonCode::Success(_))) {
                warn!(
                    "the broker refused a subscription ({code:?}); is this device allowed to read its fleet's catalogue and model, its offers and ledtrad/v1/collector/+ in the broker's ACL?"
                );
            }
            None
        }
        Event::Outgoing(Outgoing::Publish(pkid)) => Some(MqttEvent::Numbered(pkid)),
        Event::Outgoing(Outgoing::AwaitAck(pkid)) => Some(MqttEvent::Held(pkid)),
        _ => None,
    }
}

/// The shell around a core: its clock, and the callers waiting for their offer (an offer
/// request's answer, or the home channel in step after a reconnection).
struct Shell {
    // Boxed: the task's future holds the shell more than once (in the task's state and in
    // `run`'s), and the core is about 3.5 KB.
    core: Box<AgentCore>,
    clock: Arc<dyn Clock>,
    waiting: Vec<(RequestToken, oneshot::Sender<OfferOutcome>)>,
    events: Arc<EventHub>,
}

/// The core's periodic work; after a prune, what it freed goes back to the system (the
/// process's heap, so this is the shell's to do, not the core's).
fn tick_core(core: &mut AgentCore, now: crate::clock::Now) {
    if core.handle_tick(now) && crate::memory::give_back_freed() {
        tracing::debug!("memory freed by the prune given back to the system");
    }
}

/// The link's next event, or never when there is no link.
async fn next_link_event(link: &mut Option<mpsc::Receiver<LinkEvent>>) -> Option<LinkEvent> {
    match link {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Shell {
    async fn run(
        mut self,
        mut mqtt: mpsc::Receiver<Box<MqttEvent>>,
        mut commands: mpsc::Receiver<Box<Command>>,
        mut link: Option<mpsc::Receiver<LinkEvent>>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(TICK);
        loop {
            let wake = self.core.poll_timeout().map(|due| due.saturating_sub(self.clock.monotonic()));
            tokio::select! {
                () = &mut shutdown => break,
                Some(event) = mqtt.recv() => self.core.handle_mqtt(*event, self.clock.reading()),
                Some(command) = commands.recv() => self.handle_command(*command),
                Some(event) = next_link_event(&mut link) => self.core.handle_link(event, self.clock.reading()),
                _ = tick.tick() => tick_core(&mut self.core, self.clock.reading()),
                () = tokio::time::sleep(wake.unwrap_or_default()), if wake.is_some() => {
                    self.core.handle_timeout(self.clock.reading());
                }
                else => break,
            }
            self.answer_waiting();
            self.publish_events();
            self.core.rest();
        }
        self.core.close(self.clock.reading());
        self.answer_waiting();
    }

    /// Hands the core's events to the UI's clients.
    fn publish_events(&mut self) {
        while let Some(event) = self.core.poll_event() {
            self.events.publish(&event);
        }
    }

    /// Hands answers to the callers waiting for them.
    fn answer_waiting(&mut self) {
        while let Some((token, outcome)) = self.core.poll_answer() {
            if let Some(i) = self.waiting.iter().position(|(waiting, _)| *waiting == token) {
                let (_, reply) = self.waiting.swap_remove(i);
                let _ = reply.send(outcome);
            }
        }
    }

    /// Runs a command on the core and sends its answer back.
    fn handle_command(&mut self, command: Command) {
        let now = self.clock.reading();
        let core = &mut self.core;
        match command {
            Command::Offer(moment, reply) => match core.offer(moment, now) {
                OfferStep::Decided(outcome) => {
                    let _ = reply.send(*outcome);
                }
                OfferStep::Waiting(token) => self.waiting.push((token, reply)),
            },
            Command::Feedback(feedback, reply) => {
                let _ = reply.send(core.feedback(feedback, now));
            }
            Command::Consent(reply) => {
                let _ = reply.send(core.consent_view());
            }
            Command::SetConsent(person, purpose, change, reply) => {
                let _ = reply.send(core.set_consent(person, purpose, change, now));
            }
            Command::PutPerson(person, change, reply) => {
                let _ = reply.send(core.put_person(person, change, now));
            }
            Command::SetPresence(present, reply) => {
                let _ = reply.send(core.set_presence(present));
            }
            Command::Answers(id, reply) => {
                let _ = reply.send(core.answers(id));
            }
            Command::Decision(id, reply) => {
                let _ = reply.send(core.decision(id));
            }
            Command::Signals(signals, reply) => {
                let _ = reply.send(core.handle_signals(signals, now));
            }
            Command::Status(reply) => {
                let _ = reply.send(core.status());
            }
            Command::FlushReports(reply) => {
                let _ = reply.send(core.flush_reports(now));
            }
            Command::MyData(person, reply) => {
                let _ = reply.send(core.my_data(person, now));
            }
            Command::Erase(person, source, reply) => {
                let _ = reply.send(core.erase(person, source, now));
            }
            Command::Tick(reply) => {
                tick_core(core, now);
                let _ = reply.send(());
            }
            Command::PromptAnswer(answer, reply) => {
                let _ = reply.send(core.prompt_answer(answer, now));
            }
            Command::Ledger(reply) => {
                let _ = reply.send(core.ledger());
            }
            Command::Home(command, reply) => {
                let _ = reply.send(core.home(command, now));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_waits_longer_for_its_connack_than_a_one_shot_client() {
        let key = "11".repeat(32);
        let text = format!(
            "device_id = \"fridge-1\"\nkind = \"fridge\"\nfleet = \"home\"\nbroker = \"mqtt://127.0.0.1:1883\"\ndatabase = \"agent.db\"\n[[operator_keys]]\nid = \"op\"\npublic_key = \"{key}\"\n"
        );
        let config = Config::from_toml(&text, "agent.toml").expect("a valid config");
        let (_client, eventloop) = mqtt_client(&config);
        assert_eq!(eventloop.options.connection_timeout(), CONNACK_WAIT.as_secs());
        assert!(CONNACK_WAIT > ledtrad_mqtt::DEFAULT_CONNECT_TIMEOUT);
    }
}
