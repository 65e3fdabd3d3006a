//! The fleet broker set-up shipped in `deploy/mosquitto/` (`fleet.conf`, `fleet.acl`), run in a
//! real Mosquitto with a password file made by `mosquitto_passwd`: what each user may read and
//! write, refused logins, and a real agent logging in with `mqtt_password_file`.
//!
//! Each test starts its own Mosquitto on a free loopback port with a temporary persistence
//! directory, and kills it when done. Without a `mosquitto` binary the tests say so and skip,
//! unless `LEDTRAD_REQUIRE_MOSQUITTO` is set (CI sets it after installing Mosquitto).

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ledtrad_agent::broker::Mosquitto;
use ledtrad_mqtt::Access;
use ledtrad_operator::collect::ReportStore;
use ledtrad_operator::serve::{start, OfferService, ServeOptions};
use ledtrad_operator::status::watch_statuses_as;
use ledtrad_operator::{publish_retained_as, sign_catalogue, SignOptions};
use ledtrad_protocol::broker::{BrokerUrl, Credentials};
use ledtrad_protocol::status::Connection;
use ledtrad_protocol::topic::{Topic, ALL_STATUS_FILTER};
use ledtrad_protocol::{DeviceId, DeviceKind, FleetId};
use ledtrad_tests::{envelope, grant, init_logs, one_offer_catalogue, operator_key, TestAgent, T0};
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};
use tokio::sync::mpsc;

/// How long a test waits for something that should happen.
const WAIT: Duration = Duration::from_secs(10);

/// The users of every test broker: the two service users of `fleet.acl` and four devices.
const USERS: [(&str, &str); 6] = [
    ("operator", "op-pw-1"),
    ("offer-service", "offers-pw-1"),
    ("fridge-a", "a-pw-1"),
    ("fridge-b", "b-pw-1"),
    ("kitchen-1", "k1-pw-1"),
    ("kitchen-2", "k2-pw-1"),
];

fn fleet() -> FleetId {
    FleetId::try_new("home-se").unwrap()
}

fn login(user: &str) -> Credentials {
    let (_, password) = USERS.iter().find(|(u, _)| *u == user).unwrap();
    Credentials::try_new(user, password).unwrap()
}

/// A Mosquitto running the deploy config in a temporary directory; killed on drop.
struct FleetBroker {
    /// Runs while the test holds it.
    _mosquitto: Mosquitto,
    url: BrokerUrl,
    dir: tempfile::TempDir,
}

impl FleetBroker {
    /// Starts the broker, or returns `None` after saying why the test is skipped.
    fn start_or_skip() -> Option<Self> {
        if !ledtrad_tests::mosquitto_installed() {
            return None;
        }
        Some(Self::start(&Mosquitto::find_binary("mosquitto_passwd").expect("it comes with mosquitto")))
    }

    fn start(passwd: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let password_file = dir.path().join("ledtrad.passwd");
        for (i, (user, password)) in USERS.iter().enumerate() {
            let mut command = Command::new(passwd);
            command.arg("-b");
            if i == 0 {
                command.arg("-c");
            }
            let output = command.arg(&password_file).arg(user).arg(password).output().unwrap();
            assert!(output.status.success(), "mosquitto_passwd: {}", String::from_utf8_lossy(&output.stderr));
        }
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mosquitto");
        let acl_file = dir.path().join("ledtrad.acl");
        std::fs::copy(deploy.join("fleet.acl"), &acl_file).unwrap();
        for file in [&password_file, &acl_file] {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        // fleet.conf as shipped, with this test's port and files in place of the system's.
        let shipped = std::fs::read_to_string(deploy.join("fleet.conf")).unwrap();
        for line in ["allow_anonymous false", "persistence true"] {
            assert!(shipped.lines().any(|l| l.trim() == line), "fleet.conf has no '{line}' line");
        }
        let replace = [
            ("password_file", format!("password_file {}", password_file.display())),
            ("acl_file", format!("acl_file {}", acl_file.display())),
        ];
        let mosquitto = Mosquitto::start(&shipped, &replace, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let url = mosquitto.url().clone();
        Self { _mosquitto: mosquitto, url, dir }
    }
}

/// A plain MQTT client logged in as one user, with the packets it received.
struct Client {
    client: AsyncClient,
    packets: mpsc::UnboundedReceiver<Packet>,
    publishes: VecDeque<(String, Vec<u8>)>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    /// Connects as `login` (or without one) and returns once the broker accepted, or its refusal.
    async fn connect(broker: &FleetBroker, login: Option<&Credentials>) -> Result<Self, ConnectionError> {
        static CLIENTS: AtomicU32 = AtomicU32::new(0);
        let name = login.map_or("anonymous", |l| l.username());
        // A client id of its own: a second connection with the same id would push this one off.
        let id = format!("test-{name}-{}", CLIENTS.fetch_add(1, Ordering::SeqCst));
        let mut options = MqttOptions::new(id, broker.url.host.clone(), broker.url.port);
        if let Some(login) = login {
            options.set_credentials(login.username(), login.password());
        }
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        loop {
            match tokio::time::timeout(WAIT, eventloop.poll()).await.expect("the broker answers the connect") {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        let (tx, packets) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                if let Event::Incoming(packet) = event {
                    let _ = tx.send(packet);
                }
            }
        });
        Ok(Self { client, packets, publishes: VecDeque::new(), task })
    }

    async fn connect_as(broker: &FleetBroker, user: &str) -> Self {
        Self::connect(broker, Some(&login(user))).await.unwrap_or_else(|e| panic!("{user} connects: {e}"))
    }

    /// The next packet `pick` takes within `wait`, keeping publishes that arrive meanwhile.
    async fn next_packet<T>(&mut self, wait: Duration, mut pick: impl FnMut(&Packet) -> Option<T>) -> Option<T> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let packet = tokio::time::timeout_at(deadline, self.packets.recv()).await.ok().flatten()?;
            if let Some(found) = pick(&packet) {
                return Some(found);
            }
            if let Packet::Publish(p) = packet {
                self.publishes.push_back((ledtrad_operator::mqtt::topic_of(&p).to_string(), p.payload.to_vec()));
            }
        }
    }

    async fn subscribe(&mut self, filter: &str) {
        self.client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        let acked = self.next_packet(WAIT, |p| matches!(p, Packet::SubAck(_)).then_some(())).await;
        assert!(acked.is_some(), "no SUBACK for {filter}");
    }

    /// Publishes with QoS 1 and waits for the broker's PUBACK, which Mosquitto sends for a
    /// publish its ACL refuses too (and then delivers to no one).
    async fn publish(&mut self, topic: &str, payload: &str, retain: bool) {
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec()).await.unwrap();
        let acked = self.next_packet(WAIT, |p| matches!(p, Packet::PubAck(_)).then_some(())).await;
        assert!(acked.is_some(), "no PUBACK for {topic}");
    }

    /// The next message received within `wait`.
    async fn message(&mut self, wait: Duration) -> Option<(String, String)> {
        let (topic, payload) = match self.publishes.pop_front() {
            Some(message) => message,
            None => {
                self.next_packet(wait, |p| match p {
                    Packet::Publish(p) => Some((ledtrad_operator::mqtt::topic_of(p).to_string(), p.payload.to_vec())),
                    _ => None,
                })
                .await?
            }
        };
        Some((topic, String::from_utf8(payload).unwrap()))
    }

    /// Every message until `last` arrives on `last`'s topic (which must come within [`WAIT`]).
    /// What must not arrive is published, and acknowledged by the broker, before `last`: once
    /// `last` is here, the broker has delivered or dropped it, so nothing is listened for after.
    async fn messages_until(&mut self, last: (&str, &str)) -> Vec<(String, String)> {
        let mut seen = Vec::new();
        loop {
            let message = self.message(WAIT).await.unwrap_or_else(|| panic!("{last:?} did not arrive; saw {seen:?}"));
            let done = message.0 == last.0 && message.1 == last.1;
            seen.push(message);
            if done {
                break;
            }
        }
        seen
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn offers(device: &str) -> String {
    Topic::Offers(DeviceId::try_new(device).unwrap()).name()
}

fn status(device: &str) -> String {
    Topic::Status(DeviceId::try_new(device).unwrap()).name()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_read_another_devices_offers() {
    let Some(broker) = FleetBroker::start_or_skip() else { return };
    let mut a = Client::connect_as(&broker, "fridge-a").await;
    let mut b = Client::connect_as(&broker, "fridge-b").await;
    a.subscribe(&offers("fridge-b")).await;
    a.subscribe(&offers("fridge-a")).await;
    b.subscribe(&offers("fridge-b")).await;

    let mut service = Client::connect_as(&broker, "offer-service").await;
    service.publish(&offers("fridge-b"), "for b", false).await;
    // Then one for A: had A been let read B's offers, B's would have reached it first.
    service.publish(&offers("fridge-a"), "for a", false).await;

    assert_eq!(b.messages_until((&offers("fridge-b"), "for b")).await, [(offers("fridge-b"), "for b".into())]);
    assert_eq!(a.messages_until((&offers("fridge-a"), "for a")).await, [(offers("fridge-a"), "for a".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_publish_a_catalogue_or_another_devices_status() {
    let Some(broker) = FleetBroker::start_or_skip() else {
        return;
    };
    let catalogue = Topic::Catalogue(fleet()).name();
    // A forged collector presence would have devices hand over reports no one collects.
    let presence = Topic::Collector("collector".parse().unwrap()).name();
    let mut b = Client::connect_as(&broker, "fridge-b").await;
    b.subscribe(&catalogue).await;
    b.subscribe(&presence).await;
    let mut operator = Client::connect_as(&broker, "operator").await;
    operator.subscribe(ALL_STATUS_FILTER).await;

    let mut a = Client::connect_as(&broker, "fridge-a").await;
    a.publish(&catalogue, "forged catalogue", true).await;
    a.publish(&status("fridge-b"), "forged status", true).await;
    a.publish(&presence, "online", true).await;
    let mut publisher = Client::connect_as(&broker, "operator").await;
    publisher.publish(&catalogue, "signed catalogue", true).await;
    b.publish(&status("fridge-b"), "b's status", true).await;

    assert_eq!(
        b.messages_until((&catalogue, "signed catalogue")).await,
        [(catalogue.clone(), "signed catalogue".into())]
    );
    assert_eq!(
        operator.messages_until((&status("fridge-b"), "b's status")).await,
        [(status("fridge-b"), "b's status".into())]
    );
    // Nor did the forged catalogue or presence stay retained for devices that subscribe later.
    let mut later = Client::connect_as(&broker, "fridge-a").await;
    later.subscribe(&catalogue).await;
    later.subscribe(&presence).await;
    assert_eq!(later.message(WAIT).await, Some((catalogue, "signed catalogue".into())));
    assert_eq!(later.message(Duration::from_millis(500)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_publishes_its_own_status_and_the_operator_reads_it() {
    let Some(broker) = FleetBroker::start_or_skip() else {
        return;
    };
    let mut operator = Client::connect_as(&broker, "operator").await;
    operator.subscribe(ALL_STATUS_FILTER).await;
    let mut a = Client::connect_as(&broker, "fridge-a").await;
    a.publish(&status("fridge-a"), "online", true).await;
    assert_eq!(operator.message(WAIT).await, Some((status("fridge-a"), "online".into())));
    // Retained: the operator reads it again on a later watch.
    let mut later = Client::connect_as(&broker, "operator").await;
    later.subscribe(ALL_STATUS_FILTER).await;
    assert_eq!(later.message(WAIT).await, Some((status("fridge-a"), "online".into())));
    // Another device cannot read it.
    let mut b = Client::connect_as(&broker, "fridge-b").await;
    b.subscribe(ALL_STATUS_FILTER).await;
    b.subscribe(&offers("fridge-b")).await;
    let mut service = Client::connect_as(&broker, "offer-service").await;
    service.publish(&offers("fridge-b"), "barrier", false).await;
    assert_eq!(b.messages_until((&offers("fridge-b"), "barrier")).await, [(offers("fridge-b"), "barrier".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_an_unknown_user_and_no_login_are_refused() {
    let Some(broker) = FleetBroker::start_or_skip() else {
        return;
    };
    for login in [
        Some(Credentials::try_new("fridge-a", "b-pw-1").unwrap()),
        Some(Credentials::try_new("fridge-z", "a-pw-1").unwrap()),
        None,
    ] {
        let refused = Client::connect(&broker, login.as_ref()).await.err();
        assert!(
            matches!(
                refused,
                Some(ConnectionError::ConnectionRefused(
                    ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword
                ))
            ),
            "{login:?}: {refused:?}"
        );
    }
    // The operator tools say which login the broker refused.
    let wrong = Credentials::try_new("operator", "not-it").unwrap();
    let err = publish_retained_as(
        &broker.url,
        &Access::login(Some(wrong.clone())),
        &Topic::Catalogue(fleet()),
        b"x".to_vec(),
        "test-op",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("refused the login as 'operator'"), "{err}");
}

/// Starts a fridge agent logging in as `device` with `password`, written to a password file.
async fn start_agent(
    broker: &FleetBroker,
    fleet: &FleetId,
    key: &ledtrad_operator::OperatorKey,
    device: &str,
    password: &str,
) -> TestAgent {
    let file = broker.dir.path().join(format!("{device}.password"));
    std::fs::write(&file, format!("{password}\n")).unwrap();
    TestAgent::start_with(DeviceKind::Fridge, fleet, key, &broker.url, |raw| {
        raw.device_id = device.into();
        raw.mqtt_password_file = Some(file);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_a_login_applies_the_operators_catalogue_and_reports_its_status() {
    init_logs();
    let Some(broker) = FleetBroker::start_or_skip() else { return };
    let (key, fleet) = (operator_key(1), fleet());
    let agent = start_agent(&broker, &fleet, &key, "kitchen-1", "k1-pw-1").await;
    let locked_out = start_agent(&broker, &fleet, &key, "kitchen-2", "k1-pw-1").await;
    agent.wait_for("connection", |s| s.connected).await;

    // A device's login cannot replace the fleet's catalogue; the operator's can.
    let device = login("kitchen-1");
    let forged = envelope(&operator_key(9), &fleet, 5, T0, T0.plus_secs(86_400));
    let refused = publish_retained_as(
        &broker.url,
        &Access::login(Some(device.clone())),
        &Topic::Catalogue(fleet.clone()),
        forged,
        "test-dev",
    )
    .await
    .expect_err("the broker refuses a device's catalogue");
    // MQTT 5 lets the broker say so, and the operator's tool passes it on.
    assert!(refused.to_string().contains("NotAuthorized"), "{refused}");
    assert!(refused.to_string().contains("allowed to write that topic"), "{refused}");
    let signed = envelope(&key, &fleet, 1, T0, T0.plus_secs(30 * 86_400));
    let operator = login("operator");
    publish_retained_as(
        &broker.url,
        &Access::login(Some(operator.clone())),
        &Topic::Catalogue(fleet.clone()),
        signed,
        "test-op",
    )
    .await
    .unwrap();
    let status = agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;
    assert_eq!((status.catalogues_refused, status.last_refusal), (0, None), "the forged catalogue never arrived");

    let id = agent.config.device.clone();
    let statuses = watch_statuses_as(&broker.url, &Access::login(Some(operator.clone())), "test-watch", WAIT, |seen| {
        seen.get(&id).is_some_and(|s| s.catalogue_version == Some(1))
    })
    .await
    .unwrap();
    assert_eq!((statuses[&id].state, statuses[&id].catalogue_version), (Connection::Online, Some(1)));

    // The agent with the wrong password never got in, so it has nothing.
    let status = locked_out.handle().status().await.unwrap();
    assert_eq!((status.connected, status.catalogue_version), (false, None));
    assert!(!statuses.contains_key(&locked_out.config.device));
    agent.shutdown().await;
    locked_out.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offer_service_answers_a_devices_request_and_collects_its_report_under_the_acl() {
    init_logs();
    let Some(broker) = FleetBroker::start_or_skip() else { return };
    let (key, fleet) = (operator_key(1), fleet());
    // The device's catalogue has nothing for an e-reader; the service's has a book.
    let local = one_offer_catalogue("butter", "fridge", "door_opened", "food.dairy");
    let options = SignOptions { fleet: fleet.clone(), version: 1, issued_at: T0, expires_at: T0.plus_secs(86_400) };
    let operator = login("operator");
    let signed = sign_catalogue(&local, &key, &options).unwrap();
    publish_retained_as(
        &broker.url,
        &Access::login(Some(operator.clone())),
        &Topic::Catalogue(fleet.clone()),
        signed,
        "test-op",
    )
    .await
    .unwrap();
    let books = one_offer_catalogue("novel", "ereader", "book_finished", "books.crime");
    let db = broker.dir.path().join("reports.db");
    let serve_options = ServeOptions {
        broker: broker.url.clone(),
        access: Access::login(Some(login("offer-service"))),
        instance: "test-offer-service".parse().unwrap(),
        service: Some(OfferService::new(books, 5).unwrap()),
        reports: Some(ReportStore::open(&db).unwrap()),
        session_secs: 60,
    };
    let service = start(serve_options, WAIT).await.unwrap();

    // A reader logging in as kitchen-1 (its device id), asking with `request` consent.
    let file = broker.dir.path().join("kitchen-1.password");
    std::fs::write(&file, "k1-pw-1\n").unwrap();
    let agent = TestAgent::start_with(DeviceKind::Ereader, &fleet, &key, &broker.url, |raw| {
        raw.device_id = "kitchen-1".into();
        raw.mqtt_password_file = Some(file);
        raw.offer_request_timeout_ms = Some(3_000);
    })
    .await;
    agent.wait_for("version 1", |s| s.connected && s.catalogue_version == Some(1)).await;
    grant(&agent, ledtrad_protocol::Purpose::Request).await;
    grant(&agent, ledtrad_protocol::Purpose::Measure).await;
    let outcome = agent.handle().offer(ledtrad_protocol::Moment::BookFinished).await.unwrap();
    assert!(outcome.request.is_some_and(|r| r.answered), "{:?}", outcome.request);
    assert_eq!(outcome.decision.shown.map(|s| s.offer.to_string()).as_deref(), Some("novel"));
    // Its report reaches the service's store.
    assert_eq!(agent.handle().flush_reports().await.unwrap(), 1);
    assert_eq!(service.wait_for_reports(1, WAIT).await, 1);
    service.stop().await.unwrap();
    agent.shutdown().await;
    assert_eq!(ReportStore::open(&db).unwrap().count().unwrap(), 1);
}
