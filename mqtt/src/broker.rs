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
    /// One per loopback address it listens on, 127.0.0.1 first.
    urls: Vec<BrokerUrl>,
}

/// The most connections the embedded broker expects on one address. A client's connections to
/// one address and port each take a port of the kernel's ephemeral range (28,232 on Linux by
/// default), so a broker for more listens on the same port of further loopback addresses
/// (127.0.0.2, 127.0.0.3, …) and its clients are spread over them ([`EmbeddedBroker::urls`]).
pub const CONNECTIONS_PER_ADDRESS: usize = 20_000;

/// The broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No free port could be found, or the listener did not come up (the message names the
    /// broker: the embedded one or Mosquitto).
    #[error("{0}")]
    Start(String),
}

/// How long a Mosquitto of a caller's own may take to listen: loading its persistence file
/// (a soak's thousand sessions and their queued messages) on a loaded machine takes seconds.
const MOSQUITTO_LISTEN_WITHIN: Duration = Duration::from_secs(60);

impl EmbeddedBroker {
    /// Starts a broker on a free loopback port and waits until it accepts connections.
    /// The broker lives until the process exits (rumqttd has no shutdown).
    pub fn start(max_connections: usize) -> Result<Self, BrokerError> {
        // rumqttd does not expose the bound address of port 0: find a free port first.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| BrokerError::Start(format!("embedded broker: no free loopback port: {e}")))?
            .port();
        Self::start_on(port, max_connections)
    }

    /// Starts a broker on loopback `port` and waits until it accepts connections. For more
    /// than [`CONNECTIONS_PER_ADDRESS`] connections it listens on further loopback addresses too.
    pub fn start_on(port: u16, max_connections: usize) -> Result<Self, BrokerError> {
        let addresses = max_connections.div_ceil(CONNECTIONS_PER_ADDRESS).max(1);
        if addresses > 254 {
            return Err(BrokerError::Start(format!(
                "embedded broker: {max_connections} connections need {addresses} loopback addresses, more than the 254 of 127.0.0.0/8 it uses; run fewer devices per broker"
            )));
        }
        let listens: Vec<SocketAddr> =
            (1..=addresses).map(|k| SocketAddr::from((Ipv4Addr::new(127, 0, 0, k as u8), port))).collect();
        for listen in &listens {
            // Something answering there is in use; a port whose last broker has just stopped
            // (connections of its own still closing) is not: rumqttd binds with SO_REUSEADDR.
            if std::net::TcpStream::connect_timeout(listen, Duration::from_millis(500)).is_ok() {
                return Err(BrokerError::Start(format!(
                    "embedded broker: {listen} is in use; stop what listens there or use another port in the broker address"
                )));
            }
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
        let servers = listens.iter().enumerate().map(|(k, &listen)| {
            let name = format!("ledtrad-v5-{}", k + 1);
            let server = ServerSettings {
                name: name.clone(),
                listen,
                tls: None,
                next_connection_delay_ms: 0,
                connections: connections.clone(),
            };
            (name, server)
        });
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
            v5: Some(servers.collect::<HashMap<_, _>>()),
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
            .map_err(|e| BrokerError::Start(format!("embedded broker: cannot start the broker thread: {e}")))?;
        let mut urls = Vec::with_capacity(listens.len());
        for listen in listens {
            if !listening_within_2s(listen) {
                return Err(BrokerError::Start(format!("embedded broker: did not listen on {listen} within 2 s")));
            }
            urls.push(BrokerUrl::tcp(listen.ip().to_string(), port));
        }
        Ok(Self { urls })
    }

    /// The broker's address (on 127.0.0.1).
    pub fn url(&self) -> &BrokerUrl {
        &self.urls[0]
    }

    /// Every address the broker listens on, 127.0.0.1 first: one for each
    /// [`CONNECTIONS_PER_ADDRESS`] connections it was started for. Spread clients over them.
    pub fn urls(&self) -> &[BrokerUrl] {
        &self.urls
    }
}

/// Whether something accepts connections at `listen` within 2 s (the broker's thread binds its
/// listeners on its own time; rumqttd says nothing when it has).
fn listening_within_2s(listen: SocketAddr) -> bool {
    for _ in 0..200 {
        if std::net::TcpStream::connect(listen).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A Mosquitto broker of the caller's own, as a child process, started from a shipped config
/// (`deploy/mosquitto/*.conf`) with the listener on a free loopback port, persistence in the
/// caller's directory and any other lines replaced: for benchmarks and for tests of the
/// deploy configs. Stopped when dropped.
#[derive(Debug)]
pub struct Mosquitto {
    child: std::process::Child,
    url: BrokerUrl,
    log: std::path::PathBuf,
    binary: std::path::PathBuf,
    config: std::path::PathBuf,
}

/// How a [`Mosquitto`] is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: it closes its connections and saves its persistence file first.
    Graceful,
    /// SIGKILL: gone at once, with what it had not saved yet.
    Kill,
}

/// Where Mosquitto's programs are looked for besides `PATH` (Debian puts them in sbin).
const SBIN: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/sbin"];

impl Mosquitto {
    /// A Mosquitto program (`mosquitto`, `mosquitto_passwd`) on `PATH` or in sbin.
    pub fn find_binary(name: &str) -> Option<std::path::PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(SBIN.map(std::path::PathBuf::from))
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    }

    /// Starts `mosquitto` with `shipped` (a config's text), its `listener` on a free loopback
    /// port (TLS, `mqtts://`, when the config has a `certfile`), `persistence_location` in `dir` and each `(key, line)` of `replace` in place of
    /// the line that starts with `key`; its log goes to `dir/mosquitto.log`. Waits until it
    /// listens.
    pub fn start(shipped: &str, replace: &[(&str, String)], dir: &std::path::Path) -> Result<Self, BrokerError> {
        let fail = |why: String| BrokerError::Start(format!("mosquitto: {why}"));
        let binary = Self::find_binary("mosquitto")
            .ok_or_else(|| fail("not installed; install it with 'apt-get install -y mosquitto'".into()))?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| fail(format!("no free loopback port: {e}")))?
            .port();
        let persistence = dir.join("persistence");
        std::fs::create_dir_all(&persistence).map_err(|e| fail(format!("{}: {e}", persistence.display())))?;
        let mut replace: Vec<(&str, String)> = replace.to_vec();
        replace.push(("listener", format!("listener {port} 127.0.0.1")));
        replace.push(("persistence_location", format!("persistence_location {}/", persistence.display())));
        let mut config = String::new();
        for line in shipped.lines() {
            let key = line.split_whitespace().next().unwrap_or("");
            let ours = replace.iter().find(|(k, _)| *k == key).map(|(_, l)| l.as_str());
            config.push_str(ours.unwrap_or(line));
            config.push('\n');
        }
        if let Some((key, _)) =
            replace.iter().find(|(k, _)| !shipped.lines().any(|l| l.split_whitespace().next() == Some(k)))
        {
            return Err(fail(format!("the config has no '{key}' line to replace")));
        }
        // Run as whoever runs this: as root, Mosquitto would otherwise switch to the
        // `mosquitto` user, who cannot read the caller's directory.
        let log = dir.join("mosquitto.log");
        config.push_str(&format!(
            "user root\nlog_dest file {}\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n",
            log.display()
        ));
        let file = dir.join("mosquitto.conf");
        std::fs::write(&file, config).map_err(|e| fail(format!("{}: {e}", file.display())))?;
        let child = Self::spawn(&binary, &file)?;
        // A listener with a certificate speaks TLS only (fleet-tls.conf).
        let tls = shipped.lines().any(|l| l.split_whitespace().next() == Some("certfile"));
        let url = BrokerUrl { tls, ..BrokerUrl::tcp("127.0.0.1", port) };
        let mut broker = Self { child, url, log, binary, config: file };
        broker.wait_listening()?;
        Ok(broker)
    }

    fn spawn(binary: &std::path::Path, config: &std::path::Path) -> Result<std::process::Child, BrokerError> {
        std::process::Command::new(binary)
            .arg("-c")
            .arg(config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| BrokerError::Start(format!("mosquitto: cannot start: {e}")))
    }

    fn wait_listening(&mut self) -> Result<(), BrokerError> {
        let fail = |why: String| BrokerError::Start(format!("mosquitto: {why}"));
        let port = self.url.port;
        let deadline = std::time::Instant::now() + MOSQUITTO_LISTEN_WITHIN;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(fail(format!("exited ({status}) before listening; its log:\n{}", self.log_text())));
            }
            if std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let within = MOSQUITTO_LISTEN_WITHIN.as_secs();
        Err(fail(format!("did not listen on port {port} within {within} s; its log:\n{}", self.log_text())))
    }

    /// Stops the broker (`how`) and waits until it has exited. A SIGTERM that arrives while
    /// Mosquitto is busy starting up can go unheeded (seen about once in tens of thousands of
    /// restarts): it is sent again every 5 s, and after three tries the broker is killed.
    pub fn stop(&mut self, how: Stop) -> Result<(), BrokerError> {
        let fail = |why: String| BrokerError::Start(format!("mosquitto: {why}"));
        match how {
            Stop::Kill => self.child.kill().map_err(|e| fail(format!("cannot kill: {e}")))?,
            Stop::Graceful => {
                for _ in 0..3 {
                    self.terminate().map_err(fail)?;
                    if self.exited_within(Duration::from_secs(5)).map_err(|e| fail(e.to_string()))? {
                        return Ok(());
                    }
                }
                self.child.kill().map_err(|e| fail(format!("cannot kill after three SIGTERMs: {e}")))?;
            }
        }
        self.child.wait().map_err(|e| fail(e.to_string()))?;
        Ok(())
    }

    /// Sends SIGTERM.
    fn terminate(&self) -> Result<(), String> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(|e| format!("cannot signal: {e}"))?;
        if !status.success() {
            return Err(format!("kill -TERM failed ({status})"));
        }
        Ok(())
    }

    /// Whether the broker exits within `limit`.
    fn exited_within(&mut self, limit: Duration) -> std::io::Result<bool> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(false)
    }

    /// Starts the broker again, after [`Mosquitto::stop`], on the same port, config and
    /// persistence file; waits until it listens.
    pub fn restart(&mut self) -> Result<(), BrokerError> {
        self.child = Self::spawn(&self.binary, &self.config)?;
        self.wait_listening()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The broker's address.
    pub fn url(&self) -> &BrokerUrl {
        &self.url
    }

    /// What the broker logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
