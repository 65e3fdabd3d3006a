//! Where a run happens: the broker (its own embedded one or Mosquitto, or one the options
//! name), the run's own fleet and operator key there, and the audit's spy connected to it.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context as _;
use ledtrad_mqtt::Access;
use ledtrad_operator::OperatorKey;
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::{FleetId, KeyId, UnixTime};

use super::{OwnBroker, RunOptions};
use crate::audit::Audit;
use crate::clock::local_midnight;
use crate::tls::{OwnMosquitto, RunTls};

/// An id for this run, unique on a shared broker: process, run number in the process, and time.
fn run_id() -> String {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}-{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::SeqCst), nanos % 10_000)
}

/// Where a run happens: its broker, and its own fleet and operator key there.
pub(super) struct Place {
    pub(super) broker: BrokerUrl,
    /// The addresses the devices connect to: the broker's, or the embedded broker's several
    /// when it takes more connections than one address can.
    pub(super) device_brokers: Vec<BrokerUrl>,
    /// The broker as the summary names it: its URL, "embedded", "mosquitto" or "mosquitto (TLS)".
    pub(super) broker_label: String,
    /// What the simulator's own clients present to the broker.
    pub(super) access: Access,
    /// Where the agents' certificates come from, over TLS.
    pub(super) tls: Option<RunTls>,
    /// A Mosquitto of the run's own, if it started one.
    pub(super) mosquitto: Option<OwnMosquitto>,
    pub(super) run_id: String,
    pub(super) fleet: FleetId,
    pub(super) key: OperatorKey,
    pub(super) local_midnight: UnixTime,
}

impl Place {
    /// Starts the run's own broker unless the options name one, and connects the audit there.
    pub(super) async fn connect(options: &RunOptions, devices: usize) -> anyhow::Result<(Self, Audit)> {
        let mut mosquitto = None;
        let mut device_brokers = None;
        let (broker, broker_label, tls) = match (&options.broker, options.own_broker) {
            (Some(url), _) => (url.clone(), url.to_string(), options.tls.clone()),
            (None, OwnBroker::Embedded) => {
                let embedded = ledtrad_agent::broker::EmbeddedBroker::start(devices + 16)?;
                let url = embedded.url().clone();
                device_brokers = Some(embedded.urls().to_vec());
                // The broker lives until the process ends.
                std::mem::forget(embedded);
                (url, "embedded".to_string(), None)
            }
            (None, own) => {
                let started = OwnMosquitto::start(own == OwnBroker::MosquittoTls)?;
                let label = if started.tls().is_some() { "mosquitto (TLS)" } else { "mosquitto" };
                let found = (started.url().clone(), label.to_string(), started.tls().cloned());
                mosquitto = Some(started);
                found
            }
        };
        let access = tls.as_ref().map_or_else(Access::default, |t| t.clients.clone());
        access.check(&broker)?;
        let run_id = run_id();
        let fleet = FleetId::try_new(format!("sim-{run_id}"))?;
        let key = OperatorKey::generate(KeyId::try_new("sim-operator")?);
        let local_midnight = local_midnight(options.start);
        let audit = Audit::start(
            &broker,
            &access,
            &fleet,
            &format!("s{}-h", options.seed),
            &format!("ledtrad-sim-audit-{run_id}"),
        )
        .await
        .with_context(|| format!("connecting to the broker at {broker}"))?;
        let device_brokers = device_brokers.unwrap_or_else(|| vec![broker.clone()]);
        let place =
            Self { broker, device_brokers, broker_label, access, tls, mosquitto, run_id, fleet, key, local_midnight };
        Ok((place, audit))
    }
}
