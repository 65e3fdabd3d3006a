//! Real brokers for the contract tests, and a TCP relay between client and broker that can
//! hold back what the client sends or cut the connection the way a network does.

#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ledtrad_mqtt::rumqttc::v5::mqttbytes::v5::Packet;
use ledtrad_mqtt::rumqttc::v5::{Event, EventLoop};
use ledtrad_protocol::broker::BrokerUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which broker a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The embedded rumqttd.
    Embedded,
    /// The broker `LEDTRAD_TEST_BROKER` names (Mosquitto in CI).
    External,
}

/// The brokers every contract holds on: the embedded one, and the one `LEDTRAD_TEST_BROKER`
/// names when it is set.
pub fn brokers() -> Vec<(Kind, BrokerUrl)> {
    let mut all = vec![(Kind::Embedded, embedded())];
    if let Ok(url) = std::env::var("LEDTRAD_TEST_BROKER") {
        all.push((Kind::External, url.parse().unwrap_or_else(|e| panic!("LEDTRAD_TEST_BROKER: {e}"))));
    }
    all
}

static EMBEDDED: OnceLock<BrokerUrl> = OnceLock::new();

/// One embedded broker per test process, the one the agent's demo and the simulator start.
fn embedded() -> BrokerUrl {
    EMBEDDED
        .get_or_init(|| {
            let broker = ledtrad_mqtt::broker::EmbeddedBroker::start(64).expect("the embedded broker starts");
            broker.url().clone()
        })
        .clone()
}

/// A name unique to this process and call, so tests on a shared broker never see each other.
pub fn unique(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{n}-{}", std::process::id(), nanos % 100_000)
}

/// Polls `eventloop` until `wanted` picks an event, or fails naming `what` after 10 s (or on a
/// connection error).
pub async fn until<T>(eventloop: &mut EventLoop, what: &str, mut wanted: impl FnMut(&Event) -> Option<T>) -> T {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(event) => {
                    if let Some(found) = wanted(&event) {
                        return found;
                    }
                }
                Err(e) => panic!("waiting for {what}: the connection failed: {e}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("waiting for {what}: nothing within 10 s"))
}

/// Polls until the CONNACK, and returns whether the broker kept a session.
pub async fn connack(eventloop: &mut EventLoop) -> bool {
    until(eventloop, "the CONNACK", |e| match e {
        Event::Incoming(Packet::ConnAck(ack)) => Some(ack.session_present),
        _ => None,
    })
    .await
}

/// Polls until the SUBACK.
pub async fn suback(eventloop: &mut EventLoop) {
    until(eventloop, "the SUBACK", |e| matches!(e, Event::Incoming(Packet::SubAck(_))).then_some(())).await
}

/// A TCP relay on a loopback port in front of a broker. It forwards both ways until told to
/// hold what the client sends ([`Relay::hold`]) or to cut every connection ([`Relay::cut`]),
/// which closes both sockets as a failing network or a crashed peer would (no DISCONNECT).
pub struct Relay {
    url: BrokerUrl,
    flowing: watch::Sender<bool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Relay {
    /// A relay to `broker`, forwarding.
    pub async fn start(broker: &BrokerUrl) -> Self {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let url = BrokerUrl::tcp("127.0.0.1", listener.local_addr().unwrap().port());
        let upstream = format!("{}:{}", broker.host, broker.port);
        let (flowing, gate) = watch::channel(true);
        let links = Arc::new(Mutex::new(Vec::new()));
        let accepted = links.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(broker) = TcpStream::connect(&upstream).await else { continue };
                let _ = client.set_nodelay(true);
                let _ = broker.set_nodelay(true);
                let link = tokio::spawn(forward(client, broker, gate.clone()));
                accepted.lock().unwrap().push(link);
            }
        });
        Self { url, flowing, links, accept }
    }

    /// The address clients connect to.
    pub fn url(&self) -> &BrokerUrl {
        &self.url
    }

    /// Stops passing on what clients send (the broker's answers still come through); it
    /// stays in the relay until [`Relay::cut`] drops it.
    pub fn hold(&self) {
        self.flowing.send_replace(false);
    }

    /// Closes every connection through the relay; new ones forward again.
    pub fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
        self.flowing.send_replace(true);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

async fn forward(client: TcpStream, broker: TcpStream, mut gate: watch::Receiver<bool>) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut broker_rx, mut broker_tx) = broker.into_split();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = client_rx.read(&mut buf).await.unwrap_or(0);
            if n == 0 || gate.wait_for(|flowing| *flowing).await.is_err() {
                return;
            }
            if broker_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async move {
        let _ = tokio::io::copy(&mut broker_rx, &mut client_tx).await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
