//! TLS for a simulated fleet: each agent with a certificate of its own (its identity is its
//! device id, issued from a fleet CA as the agent starts), and the simulator's own clients
//! (the audit, the operator's push, the report collector) with one of theirs. For `ledtrad-sim
//! run --mosquitto tls` the run starts a Mosquitto of its own from the shipped
//! `deploy/mosquitto/fleet-tls.conf` and `fleet.acl`; with `--broker mqtts://…` it uses the
//! files given on the command line.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;
use ledtrad_agent::broker::Mosquitto;
use ledtrad_mqtt::{Access, ClientCert, ClientTls, TlsFiles};
use ledtrad_operator::certs::{self, Subject};
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::DeviceId;
use serde::{Deserialize, Serialize};

const FLEET_TLS_CONF: &str = include_str!("../../deploy/mosquitto/fleet-tls.conf");
const FLEET_ACL: &str = include_str!("../../deploy/mosquitto/fleet.acl");
const PLAIN_CONF: &str = include_str!("../../deploy/mosquitto/ledtrad.conf");

/// The broker user of the simulator's own clients: the audit reads every device's traffic,
/// the operator pushes, the collector stores reports.
pub const SIM_USER: &str = "ledtrad-sim";

/// Days the certificates a run issues are valid.
const DAYS: u32 = 30;

/// Where agents' certificates come from: the CA that issues them, and where they are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceTls {
    /// The CA certificate agents check the broker's certificate against.
    pub ca_file: PathBuf,
    /// The CA directory (`ca.pem`, `ca.key`) that issues the agents' certificates.
    pub issuer: PathBuf,
    /// Where each agent's `ID.pem` and `ID.key` are written.
    pub certs: PathBuf,
}

impl DeviceTls {
    /// The certificate of device `id`, issued now unless it was already.
    pub fn certificate(&self, id: &DeviceId) -> anyhow::Result<ClientCert> {
        let cert = ClientCert { cert: self.certs.join(format!("{id}.pem")), key: self.certs.join(format!("{id}.key")) };
        if !cert.cert.exists() {
            certs::issue(&self.issuer, &Subject::Device(id.clone()), DAYS, &self.certs, SystemTime::now())
                .with_context(|| format!("issuing the certificate of device '{id}'"))?;
        }
        Ok(cert)
    }
}

/// A run's TLS: the simulator's own clients' access, and the CA that issues the agents'
/// certificates.
#[derive(Debug, Clone)]
pub struct RunTls {
    /// What the simulator's clients present.
    pub clients: Access,
    /// The CA certificate agents check the broker's against.
    pub ca_file: PathBuf,
    /// The CA directory that issues the agents' certificates.
    pub issuer: PathBuf,
}

impl RunTls {
    /// For a broker of the operator's: the simulator's clients use `clients` (a certificate the
    /// broker's ACL lets read and write the run's topics), and agents' certificates are issued
    /// from the CA directory `device_ca`.
    pub fn external(clients: &TlsFiles, device_ca: &Path) -> anyhow::Result<Self> {
        let tls = ClientTls::load(clients)?;
        for file in [certs::CA_CERT, certs::CA_KEY] {
            let path = device_ca.join(file);
            anyhow::ensure!(
                path.is_file(),
                "--device-ca {}: no {file}; give the directory `ledtrad-op certs init` wrote, whose CA the broker trusts",
                device_ca.display()
            );
        }
        Ok(Self {
            clients: Access { login: None, tls: Some(tls) },
            ca_file: clients.ca.clone(),
            issuer: device_ca.into(),
        })
    }

    /// The agents' side, with their certificates kept in `certs`.
    pub fn devices(&self, certs: PathBuf) -> DeviceTls {
        DeviceTls { ca_file: self.ca_file.clone(), issuer: self.issuer.clone(), certs }
    }
}

/// A Mosquitto of the run's own, plain or over mutual TLS, with its PKI; stopped when dropped.
pub struct OwnMosquitto {
    mosquitto: Mosquitto,
    tls: Option<RunTls>,
    _dir: tempfile::TempDir,
}

impl OwnMosquitto {
    /// Starts Mosquitto: over TLS, `fleet-tls.conf` with `fleet.acl` (plus a user for the
    /// simulator's own clients) and a fresh fleet CA; plain, `ledtrad.conf` (anonymous, no ACL).
    pub fn start(tls: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a directory for the run's Mosquitto")?;
        if !tls {
            let mosquitto = Mosquitto::start(PLAIN_CONF, &[], dir.path())?;
            return Ok(Self { mosquitto, tls: None, _dir: dir });
        }
        let now = SystemTime::now();
        let pki = dir.path().join("pki");
        certs::init(&pki, "ledtrad-sim fleet CA", DAYS, now)?;
        certs::issue(&pki, &Subject::Broker { hosts: vec!["127.0.0.1".into()] }, DAYS, &pki, now)?;
        let clients = dir.path().join("clients");
        let sim = certs::issue(&pki, &Subject::Service(SIM_USER.into()), DAYS, &clients, now)?;
        let acl = dir.path().join("fleet.acl");
        std::fs::write(&acl, format!("{FLEET_ACL}\nuser {SIM_USER}\ntopic readwrite #\n"))
            .with_context(|| format!("writing {}", acl.display()))?;
        let replace = [
            ("acl_file", format!("acl_file {}", acl.display())),
            ("cafile", format!("cafile {}", pki.join(certs::CA_CERT).display())),
            ("certfile", format!("certfile {}", pki.join("broker.pem").display())),
            ("keyfile", format!("keyfile {}", pki.join("broker.key").display())),
        ];
        let mosquitto = Mosquitto::start(FLEET_TLS_CONF, &replace, dir.path())?;
        let files =
            TlsFiles { ca: pki.join(certs::CA_CERT), client: Some(ClientCert { cert: sim.cert, key: sim.key }) };
        let tls = RunTls::external(&files, &pki)?;
        Ok(Self { mosquitto, tls: Some(tls), _dir: dir })
    }

    /// Its address (`mqtts://` over TLS).
    pub fn url(&self) -> &BrokerUrl {
        self.mosquitto.url()
    }

    /// The run's TLS, over TLS.
    pub fn tls(&self) -> Option<&RunTls> {
        self.tls.as_ref()
    }

    /// The CPU time Mosquitto has used so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&self.mosquitto.pid().to_string(), false)
    }
}

/// CPU time (user and system) of process `pid` ("self" for this one), in seconds, with its
/// waited-for children's when `children`. Linux's /proc counts in ticks of 1/100 s.
pub fn cpu_seconds(pid: &str, children: bool) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<u64> =
        stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    // utime, stime, cutime, cstime are fields 14–17: indices 11–14 after the name.
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    let ticks = field(11) + field(12) + if children { field(13) + field(14) } else { 0 };
    ticks as f64 / 100.0
}
