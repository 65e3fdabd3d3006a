//! Where a run happens: the broker (its own embedded one or Mosquitto, or one the options
//! name), the run's own fleet and operator key there, and the audit's spy connected to it.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context as _;
use ledtrad_mqtt::Access;
use ledtrad_operator::OperatorKey;
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::{FleetId, KeyId, UnixTime};

use super::brokers::BrokerProcesses;
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
    /// The addresses the devices connect to, home h's devices to `device_brokers[h % n]`: the
    /// broker's, the embedded broker's several when it takes more connections than one address
    /// can, or one for each broker process.
    pub(super) device_brokers: Vec<BrokerUrl>,
    /// The brokers the run's own clients connect to: every broker process, else the one broker.
    pub(super) brokers: Vec<BrokerUrl>,
    /// The embedded broker's processes, when it runs in several; they end with the run.
    pub(super) broker_processes: Option<BrokerProcesses>,
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
    /// Starts the run's own broker unless the options name one (in processes of the
    /// connections `broker_plan` gives, if it gives any), and connects the audit there.
    pub(super) async fn connect(
        options: &RunOptions,
        devices: usize,
        broker_plan: Option<&[usize]>,
    ) -> anyhow::Result<(Self, Audit)> {
        let mut mosquitto = None;
        let mut device_brokers = None;
        let mut broker_processes = None;
        let (broker, broker_label, tls) = match (&options.broker, options.own_broker, broker_plan) {
            (Some(url), _, _) => (url.clone(), url.to_string(), options.tls.clone()),
            (None, OwnBroker::Embedded, Some(plan)) => {
                let exe = options.worker_exe.as_deref().context("broker processes need the ledtrad-sim executable")?;
                let started = BrokerProcesses::start(exe, plan).await?;
                let url = started.urls().first().cloned().context("a broker plan of no broker")?;
                device_brokers = Some(started.urls().to_vec());
                broker_processes = Some(started);
                (url, format!("embedded ({} processes)", plan.len()), None)
            }
            (None, OwnBroker::Embedded, None) => {
                let embedded = ledtrad_agent::broker::EmbeddedBroker::start(devices + 16)?;
                let url = embedded.url().clone();
                device_brokers = Some(embedded.urls().to_vec());
                // The broker lives until the process ends.
                std::mem::forget(embedded);
                (url, "embedded".to_string(), None)
            }
            (None, own, _) => {
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
        let brokers = match &broker_processes {
            Some(started) => started.urls().to_vec(),
            None => vec![broker.clone()],
        };
        let audit = Audit::start(
            &brokers,
            &access,
            &fleet,
            &format!("s{}-h", options.seed),
            &format!("ledtrad-sim-audit-{run_id}"),
        )
        .await
        .with_context(|| format!("connecting to the broker at {broker}"))?;
        let device_brokers = device_brokers.unwrap_or_else(|| vec![broker.clone()]);
        let place = Self {
            broker,
            device_brokers,
            brokers,
            broker_processes,
            broker_label,
            access,
            tls,
            mosquitto,
            run_id,
            fleet,
            key,
            local_midnight,
        };
        Ok((place, audit))
    }
}
