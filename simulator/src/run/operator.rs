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
    let mut applied = 0;
    for (b, broker) in place.brokers.iter().enumerate() {
        let here: BTreeSet<&DeviceId> =
            ids.iter().filter(|id| brokers == 1 || home_of(id).is_some_and(|h| h % brokers == b)).collect();
        let deadline = Instant::now() + watch_within(here.len());
        let mut on_version: BTreeSet<DeviceId> = BTreeSet::new();
        // A subscription is handed every retained status at once, at QoS 0: one the broker
        // could not hand over is read again by the next subscription, until the wait is over.
        for attempt in 1.. {
            let left = deadline.saturating_duration_since(Instant::now());
            if on_version.len() >= here.len() || left.is_zero() {
                break;
            }
            let watcher = format!("ledtrad-sim-watch-{}-{b}-{attempt}", place.run_id);
            let once = left.min(watch_within(here.len()) / 3);
            let statuses = watch_statuses_as(broker, &place.access, &watcher, once, |seen| {
                here.iter().all(|id| {
                    on_version.contains(*id) || seen.get(*id).is_some_and(|s| s.catalogue_version == Some(version))
                })
            })
            .await?;
            let read = statuses.into_iter().filter(|(id, s)| s.catalogue_version == Some(version) && here.contains(id));
            on_version.extend(read.map(|(id, _)| id));
        }
        applied += on_version.len();
    }
    Ok(applied)
}

/// How long the operator reads one broker's statuses: half a minute, and a second more for
/// every 500 devices on it.
fn watch_within(devices: usize) -> Duration {
    Duration::from_secs(30 + devices as u64 / 500)
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
