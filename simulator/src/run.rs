//! One simulation run: broker, operator key, signed catalogue push, real agents per device on
//! a shared virtual clock (in this process or in worker processes), simulated days, the
//! audit, and the summary. [`shards`] drives the homes, here or in worker processes.

mod brokers;
mod operator;
mod place;
mod shards;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use ledtrad_agent::engine::Policy;
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::time::DAY_SECS;
use ledtrad_protocol::{DeviceId, UnixTime};

use crate::audit::Audit;
use crate::clock::STEP_MINUTES;
use crate::home::{Home, Population, SensorPath};
use crate::shard::{Counts, Finished, ShardSpec};
use crate::summary::{Egress, EgressBytes, Percentiles, SensorLink, Summary, Traffic};
use crate::tls::{OwnMosquitto, RunTls};
use brokers::BrokerProcesses;
pub use brokers::LISTENING as BROKER_LISTENING;
use operator::{applied, clean_shared_broker, push_catalogue, shared_store_count, Collectors};
use place::Place;
use shards::{start_shards, Shards};

/// Homes one process runs by default: each agent keeps about four files open (its database,
/// write-ahead log and shared memory, and its broker connection), and a process may have
/// 20,000 open on the machines this was built on (`ulimit -n`).
pub const HOMES_PER_PROCESS: usize = 1_000;

/// The broker a run starts for itself when given none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OwnBroker {
    /// rumqttd, in this process.
    #[default]
    Embedded,
    /// Mosquitto from `deploy/mosquitto/ledtrad.conf`: plain TCP, anonymous.
    Mosquitto,
    /// Mosquitto from `deploy/mosquitto/fleet-tls.conf` and `fleet.acl`: mutual TLS, a
    /// certificate for each agent.
    MosquittoTls,
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Number of homes.
    pub homes: usize,
    /// Simulated days.
    pub days: u64,
    /// Seed for homes, people and their answers.
    pub seed: u64,
    /// An external broker, or `None` for one of the run's own (`own_broker`).
    pub broker: Option<BrokerUrl>,
    /// For an external `mqtts://` broker: the simulator's clients' certificate and the CA that
    /// issues the agents' certificates.
    pub tls: Option<RunTls>,
    /// The broker the run starts for itself when it is given none.
    pub own_broker: OwnBroker,
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
    pub reports: Option<ledtrad_operator::collect::ReportsAt>,
    /// How sensor signals reach the agents.
    pub sensors: SensorPath,
    /// On the firmware path, the share of frames the link damages (one bit flipped each).
    pub link_flips: f64,
    /// Homes per process: with more homes than this, worker processes run them in slices.
    pub homes_per_process: usize,
    /// The `ledtrad-sim` executable to start workers from; without one, every home runs in
    /// this process.
    pub worker_exe: Option<std::path::PathBuf>,
    /// Spread the embedded broker over processes of at most this many connections each;
    /// `None` starts them only when this process may not hold a socket for every device.
    pub connections_per_broker: Option<usize>,
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
            tls: None,
            own_broker: OwnBroker::Embedded,
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
            connections_per_broker: None,
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

/// About how many devices the audit makes every decision again for, without personal inputs:
/// all of a run's up to this many, else those of every n-th home.
pub const REDECIDE_DEVICES: usize = 1_000;

/// Runs a simulation and returns its summary.
pub async fn run(options: RunOptions) -> anyhow::Result<Summary> {
    let wall = Instant::now();
    let cpu = crate::tls::cpu_seconds("self", true);
    if options.homes == 0 {
        bail!("--homes must be at least 1");
    }
    let size = Size::of(&options)?;
    let in_workers = options.homes > options.homes_per_process.max(1) && options.worker_exe.is_some();
    let embedded = options.broker.is_none() && options.own_broker == OwnBroker::Embedded;
    let local_agents = if in_workers { 0 } else { size.devices };
    if options.connections_per_broker.is_some() && !embedded {
        bail!("--connections-per-broker spreads the run's embedded broker over processes; with --broker or --own-broker mosquitto there is none to spread");
    }
    let broker_plan = if embedded { broker_plan(&options, &size, local_agents)? } else { None };
    // Workers raise their own limit for their agents (`worker`); they start from this one.
    let in_process_broker = embedded && broker_plan.is_none();
    crate::files::allow(crate::files::needed(size.devices, in_process_broker, local_agents))?;
    let (place, audit) = Place::connect(&options, size.devices, broker_plan.as_deref()).await?;

    // A collector always runs (devices send reports only while one is present); without
    // --reports it stores into a file that goes with the run.
    let collector_dir = tempfile::tempdir().context("creating a directory for the run's report store")?;
    let store = options.reports.clone().unwrap_or_else(|| collector_dir.path().join("reports.db").into());
    let collector = Collectors::start(&place, &store).await?;
    let in_store_before = shared_store_count(&store, &place.fleet, 0, Duration::ZERO).await?;

    // Agents, one per device, each on its own database, all under one directory that goes with
    // the run, however it ends.
    let dir = tempfile::tempdir().context("creating a directory for the agents' databases")?;
    let (version, catalogue) = push_catalogue(&options, &place).await?;
    let spec = ShardSpec {
        catalogue,
        redecide_every: size.devices.div_ceil(REDECIDE_DEVICES),
        ..shard_spec(&options, &place, dir.path().join("shard-1"))
    };
    let mut shards = start_agents(&options, spec, size.devices, version).await?;
    let days = simulate_days(&mut shards, &audit, &options, size.devices).await?;
    // Let any late message arrive before judging.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut seen = Seen::of(&audit);
    let expected = seen.egress.measure.messages;
    let stored = if store.is_shared() {
        // Other collectors may share the reports: count what reached the store.
        let stored =
            shared_store_count(&store, &place.fleet, in_store_before + expected, Duration::from_secs(30)).await?;
        collector.stop().await?;
        stored.saturating_sub(in_store_before)
    } else {
        collector.wait_for_reports(expected, Duration::from_secs(10)).await;
        collector.stop().await?
    };
    let reports_stored = options.reports.is_some().then_some(stored);

    // The operator's view of the fleet as the day ends, every agent still running: a stopped
    // agent's status can be its last will, which knows no catalogue version.
    let applied = applied(&place, &size.ids, version).await?;
    let stopping = bar(options.progress, size.devices as u64, "stopping agents");
    let mut tally = Tally::of(shards.finish(&stopping).await?);
    stopping.finish_and_clear();
    seen.add_homes(&audit, &tally.homes);
    tally.counts.violations += crate::audit::message_violations(
        seen.egress.measure.messages,
        days.reports_expected,
        seen.egress.request.messages,
        tally.counts.any_request,
        seen.egress.unexpected.messages,
    ) + seen.home_plaintext;
    audit.stop();
    if options.broker.is_some() {
        clean_shared_broker(&place, &tally.ids).await?;
    }
    drop(dir);
    let measured = Measured { size, version, applied, days, seen, reports_stored, tally, wall, cpu };
    Ok(summarise(&options, place, measured))
}

/// How many devices and people the run's homes have: their make-up follows from the seed
/// alone, and the run sizes itself by it.
#[derive(Debug, Clone)]
struct Size {
    devices: usize,
    people: usize,
    /// Devices, by home.
    by_home: Vec<usize>,
    /// The devices' ids.
    ids: BTreeSet<DeviceId>,
}

impl Size {
    fn of(options: &RunOptions) -> anyhow::Result<Self> {
        let mut size = Self { devices: 0, people: 0, by_home: Vec::with_capacity(options.homes), ids: BTreeSet::new() };
        for h in 0..options.homes {
            let home = Home::new(options.seed, h, &options.population);
            size.devices += home.devices.len();
            size.people += home.people.len();
            size.by_home.push(home.devices.len());
            for device in &home.devices {
                size.ids.insert(crate::shard::device_id(options.seed, h, &device.name)?);
            }
        }
        Ok(size)
    }
}

/// The connections of each broker process when the embedded broker runs in several
/// (`--connections-per-broker`, or more devices than this process may hold sockets for
/// beside its `local_agents`' files, even with its limit raised as far as it may be); `None`
/// when it runs in this process.
fn broker_plan(options: &RunOptions, size: &Size, local_agents: usize) -> anyhow::Result<Option<Vec<usize>>> {
    if let Some(capacity) = options.connections_per_broker {
        if options.worker_exe.is_none() {
            bail!("broker processes are started from the ledtrad-sim executable; run through it");
        }
        return brokers::plan(&size.by_home, capacity).map(Some);
    }
    let needed = crate::files::needed(size.devices + brokers::RUN_CLIENTS, true, local_agents);
    let Err(too_many) = crate::files::allow(needed) else { return Ok(None) };
    if options.worker_exe.is_none() {
        return Err(too_many);
    }
    // A broker process holds its connections' sockets and little else.
    let room = crate::files::hard_limit()?.saturating_sub(crate::files::needed(0, false, 0));
    let capacity = usize::try_from(room).unwrap_or(usize::MAX).min(ledtrad_mqtt::broker::CONNECTIONS_PER_ADDRESS);
    // Too few files even for brokers in processes of their own: raising the limit is the fix.
    brokers::plan(&size.by_home, capacity).map(Some).map_err(|_| too_many)
}

/// What every shard runs, for all the run's homes, keeping the agents' databases in `dir`.
fn shard_spec(options: &RunOptions, place: &Place, dir: std::path::PathBuf) -> ShardSpec {
    ShardSpec {
        seed: options.seed,
        homes: (0, options.homes),
        population: options.population,
        policy: options.policy,
        brokers: place.device_brokers.iter().map(ToString::to_string).collect(),
        tls: place.tls.as_ref().map(|tls| tls.devices(dir.join("certs"))),
        fleet: place.fleet.to_string(),
        key: (place.key.id.to_string(), place.key.public_hex()),
        local_midnight: place.local_midnight,
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
        dir,
        catalogue: Vec::new(),
        redecide_every: 0,
    }
}

/// Starts the agents and waits until every one applied catalogue `version`.
async fn start_agents(options: &RunOptions, spec: ShardSpec, devices: usize, version: u64) -> anyhow::Result<Shards> {
    let starting = bar(options.progress, devices as u64, "starting agents");
    let mut shards = start_shards(options, spec, &starting).await?;
    starting.finish_and_clear();
    let applying = bar(options.progress, devices as u64, "applying catalogue");
    shards.wait_applied(version, applied_within(devices), &applying).await?;
    applying.finish_and_clear();
    Ok(shards)
}

/// How long a run's devices may take to connect and apply the catalogue: two minutes, and a
/// second more for every 250 devices (they all connect to the brokers at once), within what a
/// worker may take over one command.
fn applied_within(devices: usize) -> Duration {
    let secs = 120 + devices as u64 / 250;
    Duration::from_secs(secs).min(crate::worker::REPLY_WITHIN - Duration::from_secs(30))
}

/// What the simulated days brought.
struct Days {
    /// Reports the devices with `measure` should have sent.
    reports_expected: u64,
    /// Wall-clock seconds the simulated days took.
    simulated_wall: f64,
}

/// The simulated days, every shard in step, each ended by the devices' reports.
async fn simulate_days(
    shards: &mut Shards,
    audit: &Audit,
    options: &RunOptions,
    devices: usize,
) -> anyhow::Result<Days> {
    let mut reports_expected = 0u64;
    let steps_per_day = 24 * 60 / STEP_MINUTES;
    let simulating = bar(options.progress, options.days * steps_per_day, "simulating");
    let simulated_from = Instant::now();
    let mut online = devices;
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
                "day {} {:02}:{:02}, {online} of {devices} online",
                day + 1,
                minutes / 60,
                minutes % 60
            ));
        }
        // End of day: agents send their reports where `measure` allows it.
        reports_expected += shards.end_day().await?;
        // Thousands of agents report at once; the last day's reports get longer, as nothing
        // after them would count them.
        let wait = if day + 1 == options.days { 60 } else { 10 } + devices as u64 / 1_000;
        let wait_until = Instant::now() + Duration::from_secs(wait);
        while audit.reports() < reports_expected && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    simulating.finish_and_clear();
    Ok(Days { reports_expected, simulated_wall: simulated_from.elapsed().as_secs_f64() })
}

/// What the audit saw on the broker.
struct Seen {
    /// The devices' messages, by class.
    egress: Egress,
    /// Every message on the run's topics, the operator's catalogue included.
    broker_messages: u64,
    /// Their payload bytes.
    broker_bytes: u64,
    /// Home channel messages readable without the home's key.
    home_plaintext: u64,
}

impl Seen {
    fn of(audit: &Audit) -> Self {
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
            // Known once the shards say which homes are this run's.
            home: Traffic { messages: 0, bytes: 0 },
        };
        let catalogue = traffic(&seen.catalogue);
        let broker_messages = egress.status.messages
            + egress.measure.messages
            + egress.request.messages
            + egress.unexpected.messages
            + catalogue.messages;
        let broker_bytes = egress.status.bytes
            + egress.measure.bytes
            + egress.request.bytes
            + egress.unexpected.bytes
            + catalogue.bytes;
        Self { egress, broker_messages, broker_bytes, home_plaintext: 0 }
    }

    /// Adds the home channel traffic of this run's `homes`.
    fn add_homes(&mut self, audit: &Audit, homes: &BTreeSet<ledtrad_protocol::HomeId>) {
        let (messages, bytes, plaintext) = audit.seen.home_traffic(homes);
        self.egress.home = Traffic { messages, bytes };
        self.broker_messages += messages;
        self.broker_bytes += bytes;
        self.home_plaintext = plaintext;
    }
}

/// The shards' results added up.
struct Tally {
    counts: Counts,
    ids: BTreeSet<DeviceId>,
    /// The run's homes' pseudonyms.
    homes: BTreeSet<ledtrad_protocol::HomeId>,
    sensor_link: Option<SensorLink>,
    workers_peak_rss: u64,
}

impl Tally {
    fn of(finished: Vec<Finished>) -> Self {
        let mut tally = Tally {
            counts: Counts::default(),
            ids: BTreeSet::new(),
            homes: BTreeSet::new(),
            sensor_link: None,
            workers_peak_rss: 0,
        };
        for f in finished {
            tally.counts.add(f.counts);
            tally.ids.extend(f.devices);
            tally.homes.extend(f.homes);
            tally.workers_peak_rss += f.peak_rss_bytes;
            if let Some(l) = f.sensor_link {
                tally.sensor_link = Some(tally.sensor_link.unwrap_or_default().plus(l));
            }
        }
        tally
    }
}

/// Everything a run measured, for its summary.
struct Measured {
    size: Size,
    version: u64,
    applied: usize,
    days: Days,
    seen: Seen,
    reports_stored: Option<u64>,
    tally: Tally,
    /// When the run began.
    wall: Instant,
    /// The simulator's CPU seconds when the run began.
    cpu: f64,
}

/// The run's summary from what it measured.
fn summarise(options: &RunOptions, place: Place, m: Measured) -> Summary {
    let Measured { size, version, applied, days, seen, reports_stored, tally, wall, cpu } = m;
    let Tally { mut counts, sensor_link, workers_peak_rss, .. } = tally;
    let egress = seen.egress;
    let device_days = (size.devices as u64 * options.days).max(1);
    let per_device_day = |bytes: u64| (bytes as f64 / device_days as f64 * 10.0).round() / 10.0;
    Summary {
        homes: options.homes,
        devices: size.devices,
        people: size.people,
        days: options.days,
        seed: options.seed,
        consent: options.population.consent,
        policy: options.policy,
        broker: place.broker_label.clone(),
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
        decisions_redecided: counts.redecided,
        personal_influence: counts.personal_influence,
        personal_influence_unmarked: counts.personal_influence_unmarked,
        personal_influence_without_consent: counts.personal_influence_without_consent,
        shown_camouflaged: counts.camouflaged,
        revocations: counts.revocations,
        cross_device_consent_lag_ms: crate::summary::ScreenLag::of_micros(
            std::mem::take(&mut counts.consent_lag_micros),
            counts.consent_late,
        ),
        home_plaintext: seen.home_plaintext,
        home_caps_lag_ms: crate::summary::ScreenLag::of_micros(
            std::mem::take(&mut counts.home_caps_lag_micros),
            counts.home_caps_late,
        ),
        home_cap_violations: counts.home_cap_violations,
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
        reports_seen: egress.measure.messages,
        reports_expected: days.reports_expected,
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
        full_decision_latency_us: Percentiles::of_nanos(std::mem::take(&mut counts.decide_full_nanos)),
        offer_call_latency_us: Percentiles::of_nanos(counts.call_nanos),
        latency_histogram: crate::lab_report::latency_histogram(&counts.decide_nanos),
        wall_seconds: (wall.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        cpu_seconds: ((crate::tls::cpu_seconds("self", true) - cpu) * 100.0).round() / 100.0,
        broker_cpu_seconds: place
            .mosquitto
            .as_ref()
            .map(OwnMosquitto::cpu_seconds)
            .or_else(|| place.broker_processes.as_ref().map(BrokerProcesses::cpu_seconds)),
        tls: place.broker.tls,
        sim_ratio: ((options.days * DAY_SECS) as f64 / days.simulated_wall.max(1e-3)).round(),
        broker_messages: seen.broker_messages,
        broker_bytes: seen.broker_bytes,
        processes: if options.homes > options.homes_per_process.max(1) {
            options.homes.div_ceil(options.homes_per_process.max(1)) + 1
        } else {
            1
        } + place.broker_processes.as_ref().map_or(0, |b| b.urls().len()),
        peak_rss_bytes: crate::footprint::proc_status("VmHWM").unwrap_or(0)
            + workers_peak_rss
            + place.broker_processes.as_ref().map_or(0, BrokerProcesses::peak_rss_bytes),
        uplink_bytes_per_device_day: crate::summary::UplinkPerDeviceDay {
            status: per_device_day(egress.status.bytes),
            measure: per_device_day(egress.measure.bytes),
            request: per_device_day(egress.request.bytes),
            home: per_device_day(egress.home.bytes),
        },
        daily: counts.daily,
    }
}
