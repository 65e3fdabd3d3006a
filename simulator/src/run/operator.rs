//! The operator's side of a run, on every broker of it: the signed catalogue pushed, the
//! report collectors, the devices' statuses read back, and a shared broker left clean.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ledtrad_operator::collect::ReportsAt;
use ledtrad_operator::serve::Running;
use ledtrad_operator::status::watch_statuses_as;
use ledtrad_operator::{publish_retained_as, sign_catalogue, SignOptions};
use ledtrad_protocol::time::DAY_SECS;
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::{DeviceId, FleetId};

use super::place::Place;
use super::RunOptions;
use crate::shard::home_of;

/// The operator signs and pushes the catalogue, retained, to every broker before the agents
/// start: each gets it as it subscribes, as a device joining a fleet does, rather than all at
/// once. Returns its version and the signed envelope.
pub(super) async fn push_catalogue(options: &RunOptions, place: &Place) -> anyhow::Result<(u64, Vec<u8>)> {
    let version = 1;
    let sign = SignOptions {
        fleet: place.fleet.clone(),
        version,
        issued_at: place.local_midnight,
        expires_at: place.local_midnight.plus_secs((options.days + 7) * DAY_SECS),
    };
    let envelope = sign_catalogue(&options.catalogue, &place.key, &sign)?;
    let topic = Topic::Catalogue(place.fleet.clone());
    let client = format!("ledtrad-sim-op-{}", place.run_id);
    for broker in &place.brokers {
        publish_retained_as(broker, &place.access, &topic, envelope.clone(), &client).await?;
    }
    Ok((version, envelope))
}

/// The operator's report collectors (`ledtrad-op serve --reports`, as a library), one on each
/// broker, all storing into one store.
pub(super) struct Collectors(Vec<Running>);

impl Collectors {
    /// Starts a collector on each of the run's brokers, storing into `at` (a SQLite file or a
    /// PostgreSQL database).
    pub(super) async fn start(place: &Place, at: &ReportsAt) -> anyhow::Result<Self> {
        let mut running = Vec::with_capacity(place.brokers.len());
        for (n, broker) in place.brokers.iter().enumerate() {
            let options = ledtrad_operator::serve::ServeOptions {
                broker: broker.clone(),
                access: place.access.clone(),
                instance: ledtrad_protocol::InstanceId::try_new(format!("sim-collector-{}-{n}", place.run_id))?,
                service: None,
                reports: Some(ledtrad_operator::collect::ReportStore::connect(at)?),
                session_secs: 60,
            };
            running.push(ledtrad_operator::serve::start(options, Duration::from_secs(10)).await?);
        }
        Ok(Self(running))
    }

    fn stored(&self) -> u64 {
        self.0.iter().map(|c| c.counts().reports).sum()
    }

    /// Waits until they stored `reports` in all, or `within` passed.
    pub(super) async fn wait_for_reports(&self, reports: u64, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.stored() < reports && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops them all; returns the reports they stored, or the first error.
    pub(super) async fn stop(self) -> anyhow::Result<u64> {
        let mut stored = 0;
        let mut first_error = None;
        for collector in self.0 {
            match collector.stop().await {
                Ok(summary) => stored += summary.reports,
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        first_error.map_or(Ok(stored), |e| Err(e.into()))
    }
}

/// The operator's view: how many devices report catalogue `version` on their retained status,
/// read on the broker each device's home uses.
pub(super) async fn applied(place: &Place, ids: &BTreeSet<DeviceId>, version: u64) -> anyhow::Result<usize> {
    let brokers = place.brokers.len();
    let watcher = format!("ledtrad-sim-watch-{}", place.run_id);
    let mut applied = 0;
    for (b, broker) in place.brokers.iter().enumerate() {
        let here: Vec<&DeviceId> =
            ids.iter().filter(|id| brokers == 1 || home_of(id).is_some_and(|h| h % brokers == b)).collect();
        let has_version = |s: Option<&ledtrad_protocol::status::DeviceStatus>| {
            s.is_some_and(|s| s.catalogue_version == Some(version))
        };
        let statuses = watch_statuses_as(broker, &place.access, &watcher, Duration::from_secs(30), |seen| {
            here.iter().all(|id| has_version(seen.get(*id)))
        })
        .await?;
        applied += here.iter().filter(|id| has_version(statuses.get(**id))).count();
    }
    Ok(applied)
}

/// Leaves nothing retained behind on a shared broker.
pub(super) async fn clean_shared_broker(place: &Place, ids: &BTreeSet<DeviceId>) -> anyhow::Result<()> {
    let cleaner = format!("ledtrad-sim-clean-{}", place.run_id);
    let catalogue = Topic::Catalogue(place.fleet.clone());
    for topic in std::iter::once(catalogue).chain(ids.iter().map(|id| Topic::Status(id.clone()))) {
        publish_retained_as(&place.broker, &place.access, &topic, Vec::new(), &cleaner).await?;
    }
    Ok(())
}

/// How many reports of the run's `fleet` a shared store (PostgreSQL, which other collectors
/// may write into too) holds, once it holds `wanted` or `within` passed; 0 for a store of the
/// run's own.
pub(super) async fn shared_store_count(
    at: &ReportsAt,
    fleet: &FleetId,
    wanted: u64,
    within: Duration,
) -> anyhow::Result<u64> {
    if !at.is_shared() {
        return Ok(0);
    }
    let (at, fleet) = (at.clone(), fleet.clone());
    tokio::task::spawn_blocking(move || {
        let store = ledtrad_operator::collect::ReportStore::connect(&at)?;
        let deadline = Instant::now() + within;
        loop {
            let count: u64 = store.overview(Some(&fleet))?.iter().map(|c| c.reports).sum();
            if count >= wanted || Instant::now() >= deadline {
                return Ok(count);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await?
}
