//! One simulation run: broker, operator key, signed catalogue push, real agents per device on
//! a shared virtual clock (in this process or in worker processes), simulated days, the
//! audit, and the summary.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use ledtrad_agent::engine::Policy;
use ledtrad_operator::status::watch_statuses;
use ledtrad_operator::{push_envelope, sign_catalogue, OperatorKey, SignOptions};
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::time::DAY_SECS;
use ledtrad_protocol::{FleetId, KeyId, UnixTime};

use crate::audit::Audit;
use crate::home::{Home, Population, SensorPath};
use crate::shard::{Counts, Finished, Shard, ShardSpec};
use crate::summary::{Egress, EgressBytes, Percentiles, SensorLink, Summary, Traffic};
use crate::worker::{Command, Reply, Worker};

/// The local time offset of the simulated homes (Central European Time).
pub const UTC_OFFSET_MINUTES: i32 = 60;

/// Minutes per simulation step.
pub const STEP_MINUTES: u64 = 10;

/// Homes one process runs by default: each agent keeps about four files open (its database,
/// write-ahead log and shared memory, and its broker connection), and a process may have
/// 20,000 open on the machines this was built on (`ulimit -n`).
pub const HOMES_PER_PROCESS: usize = 1_000;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Number of homes.
    pub homes: usize,
    /// Simulated days.
    pub days: u64,
    /// Seed for homes, people and their answers.
    pub seed: u64,
    /// An external broker, or `None` for the embedded one.
    pub broker: Option<BrokerUrl>,
    /// Who lives in the homes: consent, survey figures, household make-up, answers.
    pub population: Population,
    /// How offers are put (ledtrad's `clues`, or `blunt` to measure against).
    pub policy: Policy,
    /// The catalogue to push.
    pub catalogue: Catalogue,
    /// The first simulated day: the run starts at this date's local midnight (UTC+1).
    pub start: UnixTime,
    /// Whether to draw progress bars (on stderr).
    pub progress: bool,
    /// Where to store the fleet's reports for `ledtrad-op report`, if anywhere: the run then
    /// also runs the operator's report collector (`ledtrad-op serve --reports`).
    pub reports: Option<std::path::PathBuf>,
    /// How sensor signals reach the agents.
    pub sensors: SensorPath,
    /// On the firmware path, the share of frames the link damages (one bit flipped each).
    pub link_flips: f64,
    /// Homes per process: with more homes than this, worker processes run them in slices.
    pub homes_per_process: usize,
    /// The `ledtrad-sim` executable to start workers from; without one, every home runs in
    /// this process.
    pub worker_exe: Option<std::path::PathBuf>,
}

impl RunOptions {
    /// Options for `homes` homes over `days` days with every other choice at its default:
    /// mixed consent, ledtrad's policy, the shipped catalogue, the embedded broker.
    pub fn new(homes: usize, days: u64, seed: u64, catalogue: Catalogue, start: UnixTime) -> Self {
        Self {
            homes,
            days,
            seed,
            broker: None,
            population: Population::default(),
            policy: Policy::Clues,
            catalogue,
            start,
            progress: false,
            reports: None,
            sensors: SensorPath::Direct,
            link_flips: 0.0,
            homes_per_process: HOMES_PER_PROCESS,
            worker_exe: None,
        }
    }
}

fn bar(progress: bool, len: u64, message: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>36} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(message.to_string());
    bar
}

/// An id for this run, unique on a shared broker: process, run number in the process, and time.
fn run_id() -> String {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}-{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::SeqCst), nanos % 10_000)
}

/// The UTC instant of local midnight at the start of the day `start` names: the homes live at
/// UTC+1, so their midnight is an hour earlier in UTC.
pub fn local_midnight(start: UnixTime) -> UnixTime {
    UnixTime(start.secs().saturating_add_signed(-i64::from(UTC_OFFSET_MINUTES) * 60))
}

/// The homes, in this process or in worker processes.
enum Shards {
    Local(Box<Shard>),
    Remote(Vec<Worker>),
}

impl Shards {
    /// Sends `command` to every worker, then reads every reply.
    async fn all(workers: &mut [Worker], command: &Command) -> anyhow::Result<Vec<Reply>> {
        for w in workers.iter_mut() {
            w.send(command).await?;
        }
        let mut replies = Vec::with_capacity(workers.len());
        for w in workers.iter_mut() {
            replies.push(w.reply().await?);
        }
        Ok(replies)
    }

    async fn wait_applied(&mut self, version: u64, within: Duration, bar: &ProgressBar) -> anyhow::Result<()> {
        match self {
            Self::Local(shard) => shard.wait_applied(version, within, || bar.inc(1)).await,
            Self::Remote(workers) => {
                Self::all(workers, &Command::WaitApplied { version, within_secs: within.as_secs() }).await?;
                bar.set_position(bar.length().unwrap_or(0));
                Ok(())
            }
        }
    }

    async fn begin_day(&mut self, day: u64, steps_per_day: u64) -> anyhow::Result<()> {
        match self {
            Self::Local(shard) => shard.begin_day(day, steps_per_day),
            Self::Remote(workers) => {
                Self::all(workers, &Command::BeginDay { day, steps_per_day }).await?;
            }
        }
        Ok(())
    }

    /// One step everywhere; the agents online, when asked.
    async fn step(&mut self, day: u64, step: u64, count_online: bool) -> anyhow::Result<Option<usize>> {
        match self {
            Self::Local(shard) => {
                shard.step(day, step).await?;
                Ok(if count_online { Some(shard.online().await?) } else { None })
            }
            Self::Remote(workers) => {
                let replies = Self::all(workers, &Command::Step { day, step, count_online }).await?;
                let online = replies.iter().map(|r| if let Reply::Stepped { online } = r { *online } else { None });
                Ok(online.sum())
            }
        }
    }

    async fn end_day(&mut self) -> anyhow::Result<u64> {
        match self {
            Self::Local(shard) => shard.end_day().await,
            Self::Remote(workers) => {
                let replies = Self::all(workers, &Command::EndDay).await?;
                Ok(replies
                    .iter()
                    .map(|r| if let Reply::DayEnded { reports_expected } = r { *reports_expected } else { 0 })
                    .sum())
            }
        }
    }

    async fn finish(self, bar: &ProgressBar) -> anyhow::Result<Vec<Finished>> {
        match self {
            Self::Local(shard) => Ok(vec![shard.finish(|| bar.inc(1)).await?]),
            Self::Remote(mut workers) => {
                let replies = Self::all(&mut workers, &Command::Finish).await?;
                for mut w in workers {
                    let _ = w.wait().await;
                }
                bar.set_position(bar.length().unwrap_or(0));
                Ok(replies
                    .into_iter()
                    .filter_map(|r| if let Reply::Finished(f) = r { Some(*f) } else { None })
                    .collect())
            }
        }
    }
}

/// Starts the homes: in this process, or split over worker processes when there are more
/// than `homes_per_process`.
async fn start_shards(options: &RunOptions, spec: ShardSpec, bar: &ProgressBar) -> anyhow::Result<Shards> {
    let per = options.homes_per_process.max(1);
    if options.homes <= per {
        return Ok(Shards::Local(Box::new(Shard::start(spec, || bar.inc(1)).await?)));
    }
    let Some(exe) = &options.worker_exe else {
        bail!(
            "{} homes need worker processes ({per} per process fit the open-file limit); run them through the ledtrad-sim executable",
            options.homes
        );
    };
    let slices = options.homes.div_ceil(per);
    let mut workers = Vec::with_capacity(slices);
    for n in 0..slices {
        let mut worker = Worker::spawn(exe, n + 1)?;
        let homes = (n * options.homes / slices, (n + 1) * options.homes / slices);
        let dir = spec.dir.with_file_name(format!("shard-{}", n + 1));
        worker.send(&Command::Start(Box::new(ShardSpec { homes, dir, ..spec.clone() }))).await?;
        workers.push(worker);
    }
    for worker in &mut workers {
        if let Reply::Started { devices } = worker.reply().await? {
            bar.inc(devices as u64);
        }
    }
    Ok(Shards::Remote(workers))
}

/// Runs a simulation and returns its summary.
pub async fn run(options: RunOptions) -> anyhow::Result<Summary> {
    let wall = Instant::now();
    if options.homes == 0 {
        bail!("--homes must be at least 1");
    }
    // The homes' make-up follows from the seed alone; the run sizes itself by it.
    let (devices_total, people_total) = (0..options.homes).fold((0, 0), |(d, p), h| {
        let home = Home::new(options.seed, h, &options.population);
        (d + home.devices.len(), p + home.people.len())
    });
    let (broker, broker_label) = match &options.broker {
        Some(url) => (url.clone(), url.to_string()),
        None => {
            let embedded = ledtrad_agent::broker::EmbeddedBroker::start(devices_total + 16)?;
            let url = embedded.url().clone();
            // The broker lives until the process ends.
            std::mem::forget(embedded);
            (url, "embedded".to_string())
        }
    };
    let run_id = run_id();
    let fleet = FleetId::try_new(format!("sim-{run_id}"))?;
    let key = OperatorKey::generate(KeyId::try_new("sim-operator")?);
    let local_midnight = local_midnight(options.start);
    let audit = Audit::start(&broker, &fleet, &format!("s{}-h", options.seed), &format!("ledtrad-sim-audit-{run_id}"))
        .await
        .with_context(|| format!("connecting to the broker at {broker}"))?;

    // A collector always runs (devices send reports only while one is present); without
    // --reports it stores into a file that goes with the run.
    let collector_dir = tempfile::tempdir().context("creating a directory for the run's report store")?;
    let store = options.reports.clone().unwrap_or_else(|| collector_dir.path().join("reports.db"));
    let collector = start_collector(&broker, &store, &run_id).await?;

    // Agents, one per device, each on its own database, all under one directory that goes with
    // the run, however it ends.
    let dir = tempfile::tempdir().context("creating a directory for the agents' databases")?;
    let spec = ShardSpec {
        seed: options.seed,
        homes: (0, options.homes),
        population: options.population,
        policy: options.policy,
        broker: broker.to_string(),
        fleet: fleet.to_string(),
        key: (key.id.to_string(), key.public_hex()),
        local_midnight,
        sensors: options.sensors,
        link_flips: options.link_flips,
        offers: options
            .catalogue
            .offers
            .iter()
            .map(|o| (o.id.clone(), o.campaign.clone(), o.category.clone()))
            .collect(),
        measured_campaigns: options
            .catalogue
            .campaigns
            .iter()
            .filter(|c| c.holdout > 0.0)
            .map(|c| c.id.clone())
            .collect(),
        dir: dir.path().join("shard-1"),
    };
    // The operator signs and pushes the catalogue, retained, before the agents start: each gets
    // it as it subscribes, as a device joining a fleet does, rather than all at once.
    let version = 1;
    let sign = SignOptions {
        fleet: fleet.clone(),
        version,
        issued_at: local_midnight,
        expires_at: local_midnight.plus_secs((options.days + 7) * DAY_SECS),
    };
    let envelope = sign_catalogue(&options.catalogue, &key, &sign)?;
    push_envelope(&broker, &fleet, envelope, &format!("ledtrad-sim-op-{run_id}")).await?;
    let starting = bar(options.progress, devices_total as u64, "starting agents");
    let mut shards = start_shards(&options, spec, &starting).await?;
    starting.finish_and_clear();

    // Wait until every agent applied it.
    let applying = bar(options.progress, devices_total as u64, "applying catalogue");
    shards.wait_applied(version, Duration::from_secs(120), &applying).await?;
    applying.finish_and_clear();

    // The simulated days, every shard in step.
    let mut reports_expected = 0u64;
    let steps_per_day = 24 * 60 / STEP_MINUTES;
    let simulating = bar(options.progress, options.days * steps_per_day, "simulating");
    let simulated_from = Instant::now();
    let mut online = devices_total;
    for day in 0..options.days {
        shards.begin_day(day, steps_per_day).await?;
        for step in 0..steps_per_day {
            // Who is online, four times a simulated day (it asks every agent).
            let count_online = options.progress && step % (steps_per_day / 4) == 0;
            if let Some(now_online) = shards.step(day, step, count_online).await? {
                online = now_online;
            }
            let minutes = step * STEP_MINUTES;
            simulating.inc(1);
            simulating.set_message(format!(
                "day {} {:02}:{:02}, {online} of {devices_total} online",
                day + 1,
                minutes / 60,
                minutes % 60
            ));
        }
        // End of day: agents send their reports where `measure` allows it.
        reports_expected += shards.end_day().await?;
        // Thousands of agents report at once; the last day's reports get longer, as nothing
        // after them would count them.
        let wait = if day + 1 == options.days { 60 } else { 10 } + devices_total as u64 / 1_000;
        let wait_until = Instant::now() + Duration::from_secs(wait);
        while audit.reports() < reports_expected && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    simulating.finish_and_clear();
    let simulated_wall = simulated_from.elapsed().as_secs_f64();
    // Let any late message arrive before judging.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = &audit.seen;
    let traffic = |t: &crate::audit::Traffic| {
        let (messages, bytes) = t.get();
        Traffic { messages, bytes }
    };
    let egress = Egress {
        status: traffic(&seen.status),
        measure: traffic(&seen.measure),
        request: traffic(&seen.request),
        unexpected: traffic(&seen.unexpected),
    };
    let reports_seen = egress.measure.messages;
    let catalogue = traffic(&seen.catalogue);
    let broker_messages = egress.status.messages
        + egress.measure.messages
        + egress.request.messages
        + egress.unexpected.messages
        + catalogue.messages;
    let broker_bytes =
        egress.status.bytes + egress.measure.bytes + egress.request.bytes + egress.unexpected.bytes + catalogue.bytes;
    collector.wait_for_reports(reports_seen, Duration::from_secs(10)).await;
    let stored = collector.stop().await?.reports;
    let reports_stored = options.reports.is_some().then_some(stored);

    let stopping = bar(options.progress, devices_total as u64, "stopping agents");
    let finished = shards.finish(&stopping).await?;
    stopping.finish_and_clear();
    let mut counts = Counts::default();
    let mut ids = BTreeSet::new();
    let mut sensor_link: Option<SensorLink> = None;
    let mut workers_peak_rss = 0;
    for f in finished {
        counts.add(f.counts);
        ids.extend(f.devices);
        workers_peak_rss += f.peak_rss_bytes;
        if let Some(l) = f.sensor_link {
            sensor_link = Some(sensor_link.unwrap_or_default().plus(l));
        }
    }
    counts.violations += crate::audit::message_violations(
        reports_seen,
        reports_expected,
        egress.request.messages,
        counts.any_request,
        egress.unexpected.messages,
    );
    audit.stop();

    // The operator's view: which version each device reports on its retained status.
    let statuses = watch_statuses(&broker, &format!("ledtrad-sim-watch-{run_id}"), Duration::from_secs(30), |seen| {
        ids.iter().all(|id| seen.get(id).is_some_and(|s| s.catalogue_version == Some(version)))
    })
    .await?;
    let applied =
        ids.iter().filter(|id| statuses.get(*id).is_some_and(|s| s.catalogue_version == Some(version))).count();

    if options.broker.is_some() {
        // Leave nothing retained behind on a shared broker.
        let cleaner = format!("ledtrad-sim-clean-{run_id}");
        ledtrad_operator::push_envelope(&broker, &fleet, Vec::new(), &cleaner).await?;
        for id in &ids {
            let topic = ledtrad_protocol::topic::Topic::Status(id.clone());
            ledtrad_operator::publish_retained(&broker, &topic, Vec::new(), &cleaner).await?;
        }
    }

    drop(dir);
    let device_days = (devices_total as u64 * options.days).max(1);
    let per_device_day = |bytes: u64| (bytes as f64 / device_days as f64 * 10.0).round() / 10.0;
    Ok(Summary {
        homes: options.homes,
        devices: devices_total,
        people: people_total,
        days: options.days,
        seed: options.seed,
        consent: options.population.consent,
        policy: options.policy,
        broker: broker_label,
        catalogue_version: version,
        catalogue_version_applied: applied,
        decisions: counts.decisions,
        shown: counts.shown,
        shown_personalised: counts.shown_personalised,
        accepted: counts.accepted,
        dismissed: counts.dismissed,
        not_for_me: counts.not_for_me,
        unanswered: counts.unanswered,
        signals: counts.signals,
        consent_violations: counts.violations,
        why_inconsistent: counts.why_inconsistent,
        shown_camouflaged: counts.camouflaged,
        revocations: counts.revocations,
        prompts_shown: counts.prompts,
        held_out: counts.held_out,
        converted: counts.converted,
        uplift: crate::summary::Uplift::of(
            counts.converted_shown,
            counts.shown_measured,
            counts.converted_held_out,
            counts.held_out,
        ),
        prompts_declined: counts.prompts_declined,
        reports_seen,
        reports_expected,
        reports_stored,
        sensors: options.sensors,
        sensor_link,
        egress_bytes_by_purpose: EgressBytes {
            measure: egress.measure.bytes,
            request: egress.request.bytes,
            personalise: 0,
            improve: 0,
        },
        egress,
        decision_latency_us: Percentiles::of_nanos(counts.decide_nanos.clone()),
        offer_call_latency_us: Percentiles::of_nanos(counts.call_nanos),
        latency_histogram: crate::lab_report::latency_histogram(&counts.decide_nanos),
        wall_seconds: (wall.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        sim_ratio: ((options.days * DAY_SECS) as f64 / simulated_wall.max(1e-3)).round(),
        broker_messages,
        broker_bytes,
        processes: if options.homes > options.homes_per_process.max(1) {
            options.homes.div_ceil(options.homes_per_process.max(1)) + 1
        } else {
            1
        },
        peak_rss_bytes: crate::footprint::proc_status("VmHWM").unwrap_or(0) + workers_peak_rss,
        uplink_bytes_per_device_day: crate::summary::UplinkPerDeviceDay {
            status: per_device_day(egress.status.bytes),
            measure: per_device_day(egress.measure.bytes),
            request: per_device_day(egress.request.bytes),
        },
        daily: counts.daily,
    })
}

/// Starts the operator's report collector (`ledtrad-op serve --reports`, as a library) for a
/// run, storing into `path`.
async fn start_collector(
    broker: &BrokerUrl,
    path: &std::path::Path,
    run_id: &str,
) -> anyhow::Result<ledtrad_operator::serve::Running> {
    let options = ledtrad_operator::serve::ServeOptions {
        broker: broker.clone(),
        login: None,
        instance: ledtrad_protocol::InstanceId::try_new(format!("sim-collector-{run_id}"))?,
        service: None,
        reports: Some(ledtrad_operator::collect::ReportStore::open(path)?),
        session_secs: 60,
    };
    Ok(ledtrad_operator::serve::start(options, Duration::from_secs(10)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_agent::{RawConfig, RawKey};

    #[test]
    fn the_simulated_hours_are_the_agents_local_hours() {
        let start = UnixTime::parse_rfc3339("2026-11-23T00:00:00Z").unwrap();
        let local = ledtrad_agent::config::Config::from_raw(
            RawConfig {
                device_id: "d".into(),
                kind: "fridge".into(),
                fleet: "f".into(),
                broker: "mqtt://127.0.0.1:1883".into(),
                mqtt_username: None,
                mqtt_password_file: None,
                database: "x.db".into(),
                api: None,
                sharing: None,
                report_epsilon: None,
                camouflage_share: None,
                model_runtime: None,
                rng_seed: None,
                owner: None,
                utc_offset_minutes: UTC_OFFSET_MINUTES,
                timezone: None,
                offer_request_timeout_ms: None,
                sensor_link: None,
                sensor_baud: None,
                operator_keys: vec![RawKey {
                    id: "k".into(),
                    public_key: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a".into(),
                    retired: false,
                }],
            },
            "test",
        )
        .unwrap()
        .local;
        let midnight = local_midnight(start);
        for hour in 0..24 {
            let now = midnight.plus_secs(hour * 3600 + 59 * 60);
            assert_eq!(local.hour(now), hour);
            assert_eq!(local.day(now), start.secs() / DAY_SECS, "every step of a simulated day is one local day");
        }
    }
}
