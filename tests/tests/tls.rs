//! Mutual TLS on the fleet broker shipped in `deploy/mosquitto/fleet-tls.conf`, run in a real
//! Mosquitto with a PKI made by `ledtrad-op certs` (as a library): a device with a good
//! certificate works end to end (catalogue, status, offer requests, reports); no certificate,
//! one from another CA and an expired one are refused; and a device's certificate is its
//! identity under `fleet.acl`: it cannot publish another device's status or read its offers.
//!
//! Each test starts its own Mosquitto on a free loopback port and kills it when done. Without a
//! `mosquitto` binary the tests say so and skip, unless `LEDTRAD_REQUIRE_MOSQUITTO` is set.

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use ledtrad_agent::broker::Mosquitto;
use ledtrad_agent::config::{Config, ConfigError};
use ledtrad_mqtt::{Access, ClientCert, ClientOptions, ClientTls, TlsError, TlsFiles};
use ledtrad_operator::certs::{self, Subject};
use ledtrad_operator::collect::ReportStore;
use ledtrad_operator::serve::{start, OfferService, ServeOptions};
use ledtrad_operator::status::watch_statuses_as;
use ledtrad_operator::{publish_retained_as, sign_catalogue, SignOptions};
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::status::Connection;
use ledtrad_protocol::topic::{Topic, ALL_STATUS_FILTER};
use ledtrad_protocol::{DeviceId, DeviceKind, FleetId};
use ledtrad_tests::{grant, init_logs, one_offer_catalogue, operator_key, TestAgent, T0};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event};
use tokio::sync::mpsc;

/// How long a test waits for something that should happen.
const WAIT: Duration = Duration::from_secs(10);

const DAY: Duration = Duration::from_secs(86_400);

/// The clients of every test broker: the two service users of `fleet.acl` and three devices.
const IDENTITIES: [&str; 5] = ["operator", "offer-service", "fridge-a", "fridge-b", "kitchen-1"];

fn fleet() -> FleetId {
    FleetId::try_new("home-se").unwrap()
}

/// A fleet CA with a certificate for each of [`IDENTITIES`] and the broker, and a Mosquitto
/// running `fleet-tls.conf` with them; killed on drop.
struct TlsFleet {
    _mosquitto: Mosquitto,
    url: BrokerUrl,
    dir: tempfile::TempDir,
}

impl TlsFleet {
    /// Starts the broker, or returns `None` after saying why the test is skipped.
    fn start_or_skip() -> Option<Self> {
        ledtrad_tests::mosquitto_installed().then(|| Self::start(&[]))
    }

    /// Starts the broker with the certificates of `revoked` on its revocation list.
    fn start(revoked: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let pki = dir.path().join("pki");
        certs::init(&pki, "test fleet CA", certs::CA_DAYS, now).unwrap();
        certs::issue(&pki, &Subject::Broker { hosts: vec!["127.0.0.1".into()] }, 30, &pki, now).unwrap();
        for identity in IDENTITIES {
            let subject = match DeviceId::try_new(identity) {
                Ok(device) if identity.starts_with("fridge") || identity.starts_with("kitchen") => {
                    Subject::Device(device)
                }
                _ => Subject::Service(identity.into()),
            };
            certs::issue(&pki, &subject, 30, &dir.path().join("clients"), now).unwrap();
        }
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mosquitto");
        let acl_file = dir.path().join("ledtrad.acl");
        std::fs::copy(deploy.join("fleet.acl"), &acl_file).unwrap();
        // fleet-tls.conf as shipped, with this test's port and files in place of the system's,
        // and its revocation list when there is one.
        let mut shipped = std::fs::read_to_string(deploy.join("fleet-tls.conf")).unwrap();
        let crl_line = "# crlfile /etc/mosquitto/certs/ca.crl";
        assert!(shipped.contains(crl_line), "fleet-tls.conf shows where the revocation list goes");
        if !revoked.is_empty() {
            for name in revoked {
                certs::revoke(&pki, name, 30, now).unwrap();
            }
            shipped = shipped.replace(crl_line, &format!("crlfile {}", pki.join(certs::CRL).display()));
        }
        for line in ["require_certificate true", "use_identity_as_username true", "allow_anonymous false"] {
            assert!(shipped.lines().any(|l| l.trim() == line), "fleet-tls.conf has no '{line}' line");
        }
        assert!(!shipped.lines().any(|l| l.starts_with("password_file")), "fleet-tls.conf has no password file");
        assert_eq!(shipped.lines().filter(|l| l.starts_with("listener")).count(), 1, "one listener, TLS");
        let replace = [
            ("acl_file", format!("acl_file {}", acl_file.display())),
            ("cafile", format!("cafile {}", pki.join(certs::CA_CERT).display())),
            ("certfile", format!("certfile {}", pki.join("broker.pem").display())),
            ("keyfile", format!("keyfile {}", pki.join("broker.key").display())),
        ];
        let mosquitto = Mosquitto::start(&shipped, &replace, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let url = mosquitto.url().clone();
        assert!(url.tls, "{url}");
        Self { _mosquitto: mosquitto, url, dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("pki").join(certs::CA_CERT)
    }

    fn client_cert(&self, identity: &str) -> ClientCert {
        let clients = self.dir.path().join("clients");
        ClientCert { cert: clients.join(format!("{identity}.pem")), key: clients.join(format!("{identity}.key")) }
    }

    /// Access with `identity`'s certificate.
    fn access(&self, identity: &str) -> Access {
        let files = TlsFiles { ca: self.ca(), client: Some(self.client_cert(identity)) };
        Access { login: None, tls: Some(ClientTls::load(&files).unwrap()) }
    }
}

/// A plain MQTT client with the packets it received.
struct Client {
    client: AsyncClient,
    packets: mpsc::UnboundedReceiver<Packet>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    /// Connects with `access` and returns once the broker accepted, or its refusal.
    async fn connect(url: &BrokerUrl, access: &Access) -> Result<Self, ConnectionError> {
        static CLIENTS: AtomicU32 = AtomicU32::new(0);
        let id = format!("test-tls-{}", CLIENTS.fetch_add(1, Ordering::SeqCst));
        let (client, mut eventloop) = ClientOptions::new(url, id).access(access).queue(16).connect();
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
        Ok(Self { client, packets, task })
    }

    async fn connect_as(fleet: &TlsFleet, identity: &str) -> Self {
        Self::connect(&fleet.url, &fleet.access(identity)).await.unwrap_or_else(|e| panic!("{identity} connects: {e}"))
    }

    /// The next packet `pick` takes within [`WAIT`].
    async fn next<T>(&mut self, mut pick: impl FnMut(&Packet) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let packet = tokio::time::timeout_at(deadline, self.packets.recv()).await.ok().flatten();
            if let Some(found) = pick(&packet.expect("the packet waited for")) {
                return found;
            }
        }
    }

    async fn subscribe(&mut self, filter: &str) {
        self.client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        self.next(|p| matches!(p, Packet::SubAck(_)).then_some(())).await;
    }

    /// Publishes with QoS 1 and waits for the PUBACK (Mosquitto sends one for a publish its ACL
    /// refuses too, and delivers it to no one).
    async fn publish(&mut self, topic: &str, payload: &str, retain: bool) {
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec()).await.unwrap();
        self.next(|p| matches!(p, Packet::PubAck(_)).then_some(())).await;
    }

    /// The next message.
    async fn message(&mut self) -> (String, String) {
        self.next(|p| match p {
            Packet::Publish(p) => {
                Some((ledtrad_operator::mqtt::topic_of(p).to_string(), String::from_utf8(p.payload.to_vec()).unwrap()))
            }
            _ => None,
        })
        .await
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn topic(make: fn(DeviceId) -> Topic, device: &str) -> String {
    make(DeviceId::try_new(device).unwrap()).name()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_with_its_certificate_applies_the_catalogue_asks_for_offers_and_reports() {
    init_logs();
    let Some(tls) = TlsFleet::start_or_skip() else { return };
    let (key, fleet) = (operator_key(1), fleet());
    // The operator, with its certificate, publishes the fleet's catalogue.
    let local = one_offer_catalogue("butter", "fridge", "door_opened", "food.dairy");
    let options = SignOptions { fleet: fleet.clone(), version: 1, issued_at: T0, expires_at: T0.plus_secs(86_400) };
    let signed = sign_catalogue(&local, &key, &options).unwrap();
    publish_retained_as(&tls.url, &tls.access("operator"), &Topic::Catalogue(fleet.clone()), signed, "test-op")
        .await
        .unwrap();
    // The offer service and collector, with its own.
    let books = one_offer_catalogue("novel", "ereader", "book_finished", "books.crime");
    let db = tls.dir.path().join("reports.db");
    let service = start(
        ServeOptions {
            broker: tls.url.clone(),
            access: tls.access("offer-service"),
            instance: "test-offer-service".parse().unwrap(),
            service: Some(OfferService::new(books, 5).unwrap()),
            reports: Some(ReportStore::open(&db).unwrap()),
            session_secs: 60,
        },
        WAIT,
    )
    .await
    .unwrap();

    // A reader whose agent config names its certificate files and no password.
    let client = tls.client_cert("kitchen-1");
    let agent = TestAgent::start_with(DeviceKind::Ereader, &fleet, &key, &tls.url, |raw| {
        raw.device_id = "kitchen-1".into();
        raw.ca_file = Some(tls.ca());
        raw.cert_file = Some(client.cert);
        raw.key_file = Some(client.key);
        raw.offer_request_timeout_ms = Some(3_000);
    })
    .await;
    agent.wait_for("version 1", |s| s.connected && s.catalogue_version == Some(1)).await;

    // Its status reaches the operator.
    let id = agent.config.device.clone();
    let statuses = watch_statuses_as(&tls.url, &tls.access("operator"), "test-watch", WAIT, |seen| {
        seen.get(&id).is_some_and(|s| s.catalogue_version == Some(1))
    })
    .await
    .unwrap();
    assert_eq!((statuses[&id].state, statuses[&id].catalogue_version), (Connection::Online, Some(1)));

    // An offer request is answered, and its report stored.
    grant(&agent, ledtrad_protocol::Purpose::Request).await;
    grant(&agent, ledtrad_protocol::Purpose::Measure).await;
    let outcome = agent.handle().offer(ledtrad_protocol::Moment::BookFinished).await.unwrap();
    assert!(outcome.request.is_some_and(|r| r.answered), "{:?}", outcome.request);
    assert_eq!(outcome.decision.shown.map(|s| s.offer.to_string()).as_deref(), Some("novel"));
    assert_eq!(agent.handle().flush_reports().await.unwrap(), 1);
    assert_eq!(service.wait_for_reports(1, WAIT).await, 1);
    service.stop().await.unwrap();
    agent.shutdown().await;
    assert_eq!(ReportStore::open(&db).unwrap().count().unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_certificate_another_cas_and_an_expired_one_are_refused_by_the_broker() {
    let Some(tls) = TlsFleet::start_or_skip() else { return };
    let now = SystemTime::now();
    // The broker's TLS alert, and the fix the transport reads from it.
    let refused = |what: &str, result: Result<Client, ConnectionError>, alert: &str, fix: &str| match result {
        Ok(_) => panic!("{what}: the broker let it in"),
        Err(e) => {
            assert!(e.to_string().contains(alert), "{what}: {e}");
            let problem = ledtrad_mqtt::tls_problem(&e).unwrap_or_else(|| panic!("{what}: {e} is a TLS problem"));
            assert!(problem.contains(fix), "{what}: {problem}");
        }
    };

    // The fleet's CA but no client certificate.
    let anonymous =
        Access { login: None, tls: Some(ClientTls::load(&TlsFiles { ca: tls.ca(), client: None }).unwrap()) };
    refused("no certificate", Client::connect(&tls.url, &anonymous).await, "CertificateRequired", "set cert_file");

    // A certificate for a known device id, from another CA.
    let other = tls.dir.path().join("other");
    certs::init(&other, "another CA", certs::CA_DAYS, now).unwrap();
    let device = Subject::Device(DeviceId::try_new("fridge-a").unwrap());
    let stranger = certs::issue(&other, &device, 30, &other.join("clients"), now).unwrap();
    let files = TlsFiles { ca: tls.ca(), client: Some(ClientCert { cert: stranger.cert, key: stranger.key }) };
    let access = Access { login: None, tls: Some(ClientTls::load(&files).unwrap()) };
    refused("another CA's certificate", Client::connect(&tls.url, &access).await, "UnknownCA", "does not trust");

    // An expired certificate from the fleet's CA: refused on the device before it connects,
    // and by the broker when a client presents it anyway.
    let pki = tls.dir.path().join("pki");
    let issued_at = now - 10 * DAY;
    let expired = certs::issue(&pki, &device, 2, &tls.dir.path().join("expired"), issued_at).unwrap();
    let files = TlsFiles { ca: tls.ca(), client: Some(ClientCert { cert: expired.cert.clone(), key: expired.key }) };
    assert!(matches!(ClientTls::load(&files), Err(TlsError::Expired { .. })));
    let access = Access { login: None, tls: Some(ClientTls::load_at(&files, issued_at + DAY).unwrap()) };
    refused("an expired certificate", Client::connect(&tls.url, &access).await, "CertificateExpired", "expired");

    // A client that does not trust the broker's CA says so.
    let theirs = TlsFiles { ca: other.join(certs::CA_CERT), client: Some(tls.client_cert("fridge-a")) };
    let access = Access { login: None, tls: Some(ClientTls::load(&theirs).unwrap()) };
    refused("the broker of another CA", Client::connect(&tls.url, &access).await, "UnknownIssuer", "ca_file");

    // The agent refuses it at start, naming the field and the fix.
    let client = tls.client_cert("fridge-a");
    let config = |cert: &Path| {
        format!(
            "device_id = \"fridge-a\"\nkind = \"fridge\"\nfleet = \"home-se\"\nbroker = \"{}\"\ndatabase = \"a.db\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            tls.url,
            tls.ca().display(),
            cert.display(),
            client.key.display()
        )
    };
    let err = Config::from_toml(&config(&expired.cert), "agent.toml").unwrap_err();
    assert!(matches!(&err, ConfigError::Field { field: "cert_file", .. }), "{err}");
    assert!(err.to_string().contains("expired at"), "{err}");
    // A good certificate with another's key, and a plain broker with TLS files, are refused too.
    let err = Config::from_toml(&config(&tls.client_cert("fridge-b").cert), "agent.toml").unwrap_err();
    assert!(matches!(&err, ConfigError::Field { field: "key_file", .. }), "{err}");
    let plain = config(&client.cert).replace(&tls.url.to_string(), "mqtt://127.0.0.1:1883");
    let err = Config::from_toml(&plain, "agent.toml").unwrap_err().to_string();
    assert!(err.contains("mqtts://127.0.0.1:8883"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_devices_certificate_is_refused_and_the_others_are_not() {
    if !ledtrad_tests::mosquitto_installed() {
        return;
    }
    let tls = TlsFleet::start(&["fridge-b"]);
    let err = Client::connect(&tls.url, &tls.access("fridge-b")).await.err().expect("the broker refuses fridge-b");
    assert!(err.to_string().contains("CertificateRevoked"), "{err}");
    assert!(ledtrad_mqtt::tls_problem(&err).is_some_and(|p| p.contains("revoked")), "{err}");
    let mut a = Client::connect_as(&tls, "fridge-a").await;
    a.publish(&topic(Topic::Status, "fridge-a"), "online", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_devices_certificate_is_its_identity_under_the_acl() {
    let Some(tls) = TlsFleet::start_or_skip() else { return };
    let offers = |device| topic(Topic::Offers, device);
    let status = |device| topic(Topic::Status, device);
    let mut operator = Client::connect_as(&tls, "operator").await;
    operator.subscribe(ALL_STATUS_FILTER).await;
    let mut a = Client::connect_as(&tls, "fridge-a").await;
    a.subscribe(&offers("fridge-b")).await;
    a.subscribe(&offers("fridge-a")).await;

    // A cannot read B's offers: B's, sent first, would reach it before its own.
    let mut service = Client::connect_as(&tls, "offer-service").await;
    service.publish(&offers("fridge-b"), "for b", false).await;
    service.publish(&offers("fridge-a"), "for a", false).await;
    assert_eq!(a.message().await, (offers("fridge-a"), "for a".into()));

    // A cannot publish B's status; B can.
    a.publish(&status("fridge-b"), "forged", true).await;
    let mut b = Client::connect_as(&tls, "fridge-b").await;
    b.publish(&status("fridge-b"), "b's own", true).await;
    assert_eq!(operator.message().await, (status("fridge-b"), "b's own".into()));
}

#[test]
fn the_agent_names_its_tls_when_checked_and_refuses_an_embedded_broker_for_mqtts() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let now = SystemTime::now();
    certs::init(&pki, "CA", certs::CA_DAYS, now).unwrap();
    let device = Subject::Device(DeviceId::try_new("kitchen-7f3a").unwrap());
    let issued = certs::issue(&pki, &device, 30, dir.path(), now).unwrap();
    let key = operator_key(1);
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"kitchen-7f3a\"\nkind = \"fridge\"\nfleet = \"home-se\"\nbroker = \"mqtts://127.0.0.1:18883\"\nca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\ndatabase = {:?}\n[[operator_keys]]\nid = \"{}\"\npublic_key = \"{}\"\n",
            pki.join(certs::CA_CERT).display().to_string(),
            issued.cert.display().to_string(),
            issued.key.display().to_string(),
            dir.path().join("agent.db").display().to_string(),
            key.id,
            key.public_hex()
        ),
    )
    .unwrap();
    let agent = ledtrad_tests::program("ledtrad-agent", "ledtrad-agent");
    let checked = std::process::Command::new(&agent).arg("check-config").arg(&config).output().unwrap();
    let text = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    assert!(text.contains("broker mqtts://127.0.0.1:18883 (mutual TLS, certificate"), "{text}");
    let run = std::process::Command::new(&agent)
        .args(["run", "--embedded-broker", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && err.contains("--embedded-broker speaks plain TCP only"), "{err}");
}
