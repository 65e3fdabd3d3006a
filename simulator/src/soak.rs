//! `ledtrad-sim soak`: many agents through simulated hours with the broker restarted every
//! 15 simulated minutes (SIGKILL and SIGTERM in turn), measuring what a long run would show:
//! reports lost or doubled, memory that grows, decisions that slow down. Each restart waits
//! until the collector stored what the broker acknowledged, so the simulated time runs no
//! faster than delivery.
//!
//! The broker is a Mosquitto of the soak's own (free loopback port, persistence in a temporary
//! directory): the embedded broker cannot be stopped and started again inside a process.
//! Agents decide, take answers and queue reports on a virtual clock while the broker comes and
//! goes; the operator's collector stores the reports. At the end every agent must have its
//! outbox empty (all acknowledged), and the collector must hold each report once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use ledtrad_agent::broker::{Mosquitto, Stop};
use ledtrad_agent::{ConsentChange, ManualClock, RawConfig, RawKey, RunningAgent};
use ledtrad_operator::collect::ReportStore;
use ledtrad_operator::serve::ServeOptions;
use ledtrad_operator::{push_envelope, sign_catalogue, OperatorKey, SignOptions};
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::consent::ConsentSource;
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::time::DAY_SECS;
use ledtrad_protocol::{DeviceKind, FleetId, KeyId, Moment, Purpose, UnixTime};
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Simulated minutes per step.
const STEP_MINUTES: u64 = 5;

/// The development config shipped for Mosquitto, saving on every change and queueing enough for
/// the collector while it reconnects.
const MOSQUITTO_CONF: &str = include_str!("../../deploy/mosquitto/ledtrad.conf");

/// What to soak.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// Simulated hours.
    pub hours: u64,
    /// Agents (fridges).
    pub devices: usize,
    /// Simulated minutes between broker restarts.
    pub restart_minutes: u64,
    /// Seed for who does what when.
    pub seed: u64,
    /// The catalogue pushed to the fleet.
    pub catalogue: Catalogue,
    /// When the simulated time starts.
    pub start: UnixTime,
    /// Draw a progress bar.
    pub progress: bool,
}

/// What a soak measured.
#[derive(Debug, Clone, Serialize)]
pub struct SoakFigures {
    /// Simulated hours.
    pub hours: u64,
    /// Agents.
    pub devices: usize,
    /// Broker restarts, and of them, kills (SIGKILL) and graceful stops (SIGTERM).
    pub broker_restarts: u64,
    /// Of the restarts, by SIGKILL.
    pub sigkill: u64,
    /// Of the restarts, by SIGTERM.
    pub sigterm: u64,
    /// Decisions taken.
    pub decisions: u64,
    /// Reports the agents queued.
    pub reports_queued: u64,
    /// Reports the broker acknowledged to the agents (queued, and out of their outboxes).
    pub reports_acknowledged: u64,
    /// Reports the operator's collector stored.
    pub reports_stored: u64,
    /// Reports the collector received again and did not store twice.
    pub duplicates_dropped: u64,
    /// Restarts that went ahead before the collector had stored what the broker acknowledged
    /// (it stored nothing for 30 s); each restart waits for it otherwise.
    pub restarts_before_collector_caught_up: u64,
    /// Resident memory of this process (the agents, the collector) after the first simulated
    /// hour, and at the end.
    pub rss_after_first_hour_bytes: u64,
    /// After the second simulated day (once the agents' bounded windows have filled at this
    /// soak's pace, apart from the month and 90-day ones); `None` for a shorter soak.
    pub rss_day2_bytes: Option<u64>,
    /// At the end of the simulated time (before the outboxes are drained).
    pub rss_end_bytes: u64,
    /// End minus first hour.
    pub rss_drift_bytes: i64,
    /// The agents' databases on disk (with their write-ahead logs), added up, after the first
    /// simulated hour: what SQLite's page caches (up to 2 MiB a connection) fill up from.
    pub databases_after_first_hour_bytes: u64,
    /// At the end.
    pub databases_end_bytes: u64,
    /// The largest agent's database with its write-ahead log at the end: what the device's
    /// flash must hold.
    pub databases_end_bytes_max: u64,
    /// The engine's time for full decisions (that weighed the catalogue's offers), 99th
    /// percentile, over the first simulated hour (µs).
    pub decide_p99_first_hour_us: f64,
    /// Over the last simulated hour (µs).
    pub decide_p99_last_hour_us: f64,
    /// Real seconds taken.
    pub wall_seconds: f64,
}

/// The agents' database files in `dir`, with their write-ahead logs, added up. The logs'
/// shared-memory indexes (`-shm`, 32 KiB each while a database is open) are left out: they
/// hold no data (SQLite rebuilds them from the log) and are counted in memory, not on flash.
fn directory_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("soak-") && !name.ends_with("-shm")
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// The largest agent database in `dir` with its write-ahead log (`soak-N.db` and
/// `soak-N.db-wal`).
fn largest_database_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut per_device = std::collections::HashMap::<String, u64>::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(device) = name.strip_suffix(".db").or_else(|| name.strip_suffix(".db-wal")) else { continue };
        if device.starts_with("soak-") {
            *per_device.entry(device.to_string()).or_default() += entry.metadata().map_or(0, |m| m.len());
        }
    }
    per_device.into_values().max().unwrap_or(0)
}

fn rss() -> u64 {
    crate::footprint::proc_status("VmRSS").unwrap_or(0)
}

fn p99_us(mut nanos: Vec<u64>) -> f64 {
    nanos.sort_unstable();
    crate::summary::percentile_us(&nanos, 0.99)
}

/// Runs the soak.
pub async fn soak(options: SoakOptions) -> anyhow::Result<SoakFigures> {
    if options.hours == 0 || options.devices == 0 {
        bail!("--hours and --devices must be at least 1");
    }
    if options.restart_minutes == 0 || options.restart_minutes % STEP_MINUTES != 0 {
        bail!("--restart-minutes {} must be a whole number of {STEP_MINUTES}-minute steps", options.restart_minutes);
    }
    let wall = Instant::now();
    let dir = tempfile::tempdir().context("creating a directory for the broker and the agents")?;
    let mut broker = start_broker(dir.path())?;
    let url = broker.url().clone();
    let reports_db = dir.path().join("reports.db");
    let collector = start_collector(&url, &reports_db).await?;
    let (fleet, key) = push_catalogue(&options, &url).await?;
    let clock = ManualClock::new(options.start);
    let agents = start_agents(&options, &fleet, &key, &url, dir.path(), &clock).await?;
    let soaked = soak_hours(&options, &agents, &mut broker, &clock, dir.path(), &collector).await?;
    // Memory at the end of the simulated time: draining reads every agent's export, whose
    // passing allocations are the harness's, not the agents'.
    let rss_end = rss();
    let unacknowledged = drain_outboxes(&options, &agents).await?;
    let store = ReportStore::open(&reports_db)?;
    let acknowledged = soaked.queued - unacknowledged;
    wait_for_stored(&collector, &store, acknowledged).await?;
    let databases_end = directory_bytes(dir.path());
    let databases_end_max = largest_database_bytes(dir.path());
    let stored = store.count()?;
    let duplicates = collector.counts().reports_duplicate;
    for agent in agents {
        agent.shutdown().await;
    }
    collector.stop().await?;
    Ok(SoakFigures {
        hours: options.hours,
        devices: options.devices,
        broker_restarts: soaked.sigkill + soaked.sigterm,
        sigkill: soaked.sigkill,
        sigterm: soaked.sigterm,
        decisions: soaked.decisions,
        reports_queued: soaked.queued,
        reports_acknowledged: acknowledged,
        reports_stored: stored,
        duplicates_dropped: duplicates,
        restarts_before_collector_caught_up: soaked.catch_up_given_up,
        rss_after_first_hour_bytes: soaked.rss_first_hour,
        rss_day2_bytes: soaked.rss_day2,
        rss_end_bytes: rss_end,
        rss_drift_bytes: rss_end as i64 - soaked.rss_first_hour as i64,
        databases_after_first_hour_bytes: soaked.databases_first_hour,
        databases_end_bytes: databases_end,
        databases_end_bytes_max: databases_end_max,
        decide_p99_first_hour_us: p99_us(soaked.first_hour),
        decide_p99_last_hour_us: p99_us(soaked.last_hour),
        wall_seconds: (wall.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    })
}

/// How long the collector may go without storing one more report before the soak stops
/// waiting for the rest.
const STORE_STALL: Duration = Duration::from_secs(60);

/// Waits until `collector` stored `acknowledged` reports in `store`, for as long as it keeps
/// storing (what the drain handed over at the end can take a while), ending early only when
/// it stores nothing for [`STORE_STALL`]. Each commit wakes the wait.
async fn wait_for_stored(
    collector: &ledtrad_operator::serve::Running,
    store: &ReportStore,
    acknowledged: u64,
) -> anyhow::Result<()> {
    let mut committed = collector.watch_stored();
    while store.count()? < acknowledged {
        if !next_commit(&mut committed, STORE_STALL).await {
            break;
        }
    }
    Ok(())
}

/// Waits for the collector's next commit (taking every one that came meanwhile); false when
/// none came within `stall`.
async fn next_commit(
    committed: &mut tokio::sync::mpsc::UnboundedReceiver<ledtrad_operator::serve::StoredReport>,
    stall: Duration,
) -> bool {
    match tokio::time::timeout(stall, committed.recv()).await {
        Ok(Some(_)) => {
            while committed.try_recv().is_ok() {}
            true
        }
        Ok(None) | Err(_) => false,
    }
}

/// A progress bar, drawn only when `progress` is on.
fn bar(progress: bool, len: u64, message: &str) -> ProgressBar {
    let bar = if progress { ProgressBar::new(len) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{msg:30} [{bar:40}] {pos}/{len} {elapsed}").expect("template"));
    bar.set_message(message.to_string());
    bar
}

/// The soak's own Mosquitto, keeping its state in `dir`: saving on every change and queueing
/// enough for the collector while it reconnects.
fn start_broker(dir: &Path) -> anyhow::Result<Mosquitto> {
    let replace = [
        ("autosave_interval", "autosave_interval 1\nautosave_on_changes true".to_string()),
        ("max_queued_messages", "max_queued_messages 1000000".to_string()),
    ];
    Mosquitto::start(MOSQUITTO_CONF, &replace, dir)
        .context("the soak restarts its own Mosquitto (the embedded broker cannot be restarted in-process)")
}

/// The operator's report collector, storing into `reports_db`.
async fn start_collector(url: &BrokerUrl, reports_db: &Path) -> anyhow::Result<ledtrad_operator::serve::Running> {
    let collector = ledtrad_operator::serve::start(
        ServeOptions {
            broker: url.clone(),
            access: ledtrad_mqtt::Access::default(),
            instance: ledtrad_protocol::InstanceId::try_new("sim-soak-collector")?,
            service: None,
            reports: Some(ReportStore::open(reports_db)?),
            session_secs: 600,
        },
        Duration::from_secs(10),
    )
    .await?;
    Ok(collector)
}

/// Signs the catalogue for the soak's fleet and pushes it, retained; returns the fleet and the
/// operator key the agents are to trust.
async fn push_catalogue(options: &SoakOptions, url: &BrokerUrl) -> anyhow::Result<(FleetId, OperatorKey)> {
    let fleet = FleetId::try_new("soak")?;
    let key = OperatorKey::generate(KeyId::try_new("soak-operator")?);
    let sign = SignOptions {
        fleet: fleet.clone(),
        version: 1,
        issued_at: options.start,
        expires_at: options.start.plus_secs((options.hours / 24 + 7) * DAY_SECS),
    };
    push_envelope(url, &fleet, sign_catalogue(&options.catalogue, &key, &sign)?, "ledtrad-sim-soak-op").await?;
    Ok((fleet, key))
}

/// Starts the fridges' agents, each on its own database in `dir`: every one allows
/// measurement, every other one personalisation too.
async fn start_agents(
    options: &SoakOptions,
    fleet: &FleetId,
    key: &OperatorKey,
    url: &BrokerUrl,
    dir: &Path,
    clock: &ManualClock,
) -> anyhow::Result<Vec<RunningAgent>> {
    let starting = bar(options.progress, options.devices as u64, "starting agents");
    let mut agents = Vec::with_capacity(options.devices);
    for d in 0..options.devices {
        let raw = RawConfig {
            device_id: format!("soak-{d}"),
            kind: DeviceKind::Fridge.as_str().into(),
            fleet: fleet.to_string(),
            broker: url.to_string(),
            mqtt_username: None,
            mqtt_password_file: None,
            database: dir.join(format!("soak-{d}.db")),
            api: None,
            sharing: None,
            report_epsilon: None,
            camouflage_share: None,
            model_runtime: None,
            rng_seed: Some(options.seed ^ (d as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            owner: None,
            utc_offset_minutes: crate::clock::UTC_OFFSET_MINUTES,
            timezone: None,
            offer_request_timeout_ms: None,
            sensor_link: None,
            sensor_baud: None,
            operator_keys: vec![RawKey { id: key.id.to_string(), public_key: key.public_hex(), retired: false }],
            // The simulated UI (or the test) chooses its moments itself.
            raise_moments: Some(false),
            ..RawConfig::default()
        };
        let config = ledtrad_agent::Config::from_raw(raw, "soak")?;
        let agent = ledtrad_agent::spawn(config, Arc::new(clock.clone())).await?;
        let handle = agent.handle();
        let grant = |purpose| {
            let change = ConsentChange { granted: true, source: ConsentSource::DeviceUi, text_version: "soak".into() };
            handle.set_consent(purpose, change)
        };
        grant(Purpose::Measure).await?;
        if d % 2 == 0 {
            grant(Purpose::Personalise).await?;
        }
        agents.push(agent);
        starting.inc(1);
    }
    starting.finish_and_clear();
    Ok(agents)
}

/// What the simulated hours brought.
#[derive(Debug, Default)]
struct Soaked {
    decisions: u64,
    /// Reports the agents queued.
    queued: u64,
    sigkill: u64,
    sigterm: u64,
    /// Decision times over the first and the last simulated hour, nanoseconds.
    first_hour: Vec<u64>,
    last_hour: Vec<u64>,
    rss_first_hour: u64,
    rss_day2: Option<u64>,
    databases_first_hour: u64,
    /// Restarts made before the collector had caught up, because it stored nothing for
    /// [`CATCH_UP_STALL`].
    catch_up_given_up: u64,
}

/// The simulated hours: fridges opened, reports flushed every hour, and the broker restarted
/// every `restart_minutes`.
async fn soak_hours(
    options: &SoakOptions,
    agents: &[RunningAgent],
    broker: &mut Mosquitto,
    clock: &ManualClock,
    dir: &Path,
    collector: &ledtrad_operator::serve::Running,
) -> anyhow::Result<Soaked> {
    let steps = options.hours * 60 / STEP_MINUTES;
    let steps_per_hour = 60 / STEP_MINUTES;
    let restart_every = options.restart_minutes / STEP_MINUTES;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed);
    let mut soaked = Soaked::default();
    let simulating = bar(options.progress, steps, "soaking");
    for step in 0..steps {
        clock.advance(STEP_MINUTES * 60);
        let (first_hour, last_hour) = (step < steps_per_hour, step >= steps.saturating_sub(steps_per_hour));
        open_doors(agents, &mut rng, &mut soaked, first_hour, last_hour).await?;
        // Each simulated hour, every agent reports what it counted.
        let (hour_done, restart) = ((step + 1) % steps_per_hour == 0, (step + 1) % restart_every == 0);
        if hour_done {
            for agent in agents {
                soaked.queued += agent.handle().flush_reports().await? as u64;
            }
        }
        // Each hour and before each restart, every agent does its periodic work: on its own it
        // does that every real minute, which is days of this soak's time, and the reports the
        // broker acknowledged would linger, and be handed over again after each restart, for
        // days instead of three minutes.
        if hour_done || restart {
            for agent in agents {
                agent.handle().tick().await?;
            }
        }
        if restart {
            if !caught_up(agents, collector, soaked.queued).await? {
                soaked.catch_up_given_up += 1;
            }
            let how = if (soaked.sigkill + soaked.sigterm) % 2 == 0 { Stop::Kill } else { Stop::Graceful };
            tokio::task::block_in_place(|| broker.stop(how))?;
            tokio::task::block_in_place(|| broker.restart())?;
            match how {
                Stop::Kill => soaked.sigkill += 1,
                Stop::Graceful => soaked.sigterm += 1,
            }
        }
        if step + 1 == steps_per_hour {
            soaked.rss_first_hour = rss();
            soaked.databases_first_hour = directory_bytes(dir);
        }
        let hour = (step + 1) / steps_per_hour;
        if (step + 1) % steps_per_hour == 0 && hour % 24 == 0 {
            day_done(hour / 24, options, &mut soaked, dir, collector.counts(), &simulating);
        }
        simulating.inc(1);
        simulating.set_message(format!(
            "hour {} of {}, {} restarts",
            step / steps_per_hour + 1,
            options.hours,
            soaked.sigkill + soaked.sigterm
        ));
    }
    simulating.finish_and_clear();
    Ok(soaked)
}

/// How long the collector may store nothing before a restart goes ahead without it having
/// caught up.
const CATCH_UP_STALL: Duration = Duration::from_secs(30);

/// Before a restart, waits until the collector stored every report the broker acknowledged so
/// far (`queued` less what the agents' outboxes hold unacknowledged), so that each restart
/// tests delivery rather than how fast a broker restored from its last save re-reads a backlog:
/// a restart every 15 simulated minutes is a fraction of a second of wall time, less than a
/// thousand agents' hour of reports takes to reach the collector. Returns false when the
/// collector stored nothing for [`CATCH_UP_STALL`] and the restart goes ahead all the same.
async fn caught_up(
    agents: &[RunningAgent],
    collector: &ledtrad_operator::serve::Running,
    queued: u64,
) -> anyhow::Result<bool> {
    let mut committed = collector.watch_stored();
    loop {
        // The common case costs no call on the agents: everything queued is stored.
        let stored = collector.counts().reports;
        if stored >= queued {
            return Ok(true);
        }
        let mut not_acknowledged = 0;
        for agent in agents {
            not_acknowledged += agent.handle().status().await?.outbox.not_acknowledged();
        }
        if stored + not_acknowledged >= queued {
            return Ok(true);
        }
        if !next_commit(&mut committed, CATCH_UP_STALL).await {
            return Ok(false);
        }
    }
}

/// The end of simulated day `day`: memory after day 2 kept, and every tenth day a line with
/// memory, the largest database so far and the reports queued against those the collector
/// stored (above the progress bar, or alone on stderr with `--json`, for a long run's
/// progress).
fn day_done(
    day: u64,
    options: &SoakOptions,
    soaked: &mut Soaked,
    dir: &Path,
    collected: ledtrad_operator::serve::ServeSummary,
    simulating: &ProgressBar,
) {
    let now = rss();
    if day == 2 {
        soaked.rss_day2 = Some(now);
    }
    if day % 10 == 0 {
        // Heap and stacks apart from mapped files (the databases' shared memory, the binary):
        // where growth comes from.
        let part = |field| crate::footprint::proc_status(field).unwrap_or(0) as f64 / 1e6;
        let line = format!(
            "day {day}: resident memory {:.1} MB (anonymous {:.1}, files {:.1}, shared {:.1}), largest database {:.0} KB, {} decisions, {} reports queued, {} stored ({} duplicates dropped)",
            now as f64 / 1e6,
            part("RssAnon"),
            part("RssFile"),
            part("RssShmem"),
            largest_database_bytes(dir) as f64 / 1e3,
            soaked.decisions,
            soaked.queued,
            collected.reports,
            collected.reports_duplicate
        );
        if options.progress {
            simulating.println(line);
        } else {
            eprintln!("{line}");
        }
    }
}

/// One step's moments: a tenth of the fridges open their door, some with the butter running
/// low, and the people answer what is shown. Decision times count towards the first or the
/// last hour as the step falls.
async fn open_doors(
    agents: &[RunningAgent],
    rng: &mut rand_chacha::ChaCha8Rng,
    soaked: &mut Soaked,
    first_hour: bool,
    last_hour: bool,
) -> anyhow::Result<()> {
    for agent in agents {
        if !rng.random_bool(0.1) {
            continue;
        }
        let handle = agent.handle();
        let level = rng.random_range(0.0..1.0);
        let signal = Signal { feature: FeatureName::try_new("fridge.butter.level")?, value: level };
        handle.signals(vec![signal]).await?;
        let outcome = handle.offer(Moment::DoorOpened).await?;
        soaked.decisions += 1;
        // Full decisions only: the ones the device-wide rules rule out first are cheap.
        if first_hour && outcome.weighed {
            soaked.first_hour.push(outcome.decide_nanos);
        }
        if last_hour && outcome.weighed {
            soaked.last_hour.push(outcome.decide_nanos);
        }
        if outcome.decision.shown.is_some() {
            let kind = if rng.random_bool(0.3) { FeedbackKind::Accepted } else { FeedbackKind::Dismissed };
            handle.feedback(Feedback { decision: outcome.decision.id, kind }).await?;
        }
    }
    Ok(())
}

/// Everything queued must leave the outboxes (an agent that met the broker down several times
/// in a row waits up to its longest backoff, 30 s). Returns the messages still queued after
/// two minutes, saying which devices hold them.
async fn drain_outboxes(options: &SoakOptions, agents: &[RunningAgent]) -> anyhow::Result<u64> {
    let draining = bar(options.progress, options.devices as u64, "waiting for the outboxes");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut unacknowledged = 0u64;
    for agent in agents {
        loop {
            let waiting = agent.handle().my_data(None).await?.queued_messages.len() as u64;
            if waiting == 0 || Instant::now() > deadline {
                if waiting > 0 {
                    // What to look at first: a device that is connected but knows no collector
                    // keeps its reports until it hears of one.
                    let status = agent.handle().status().await?;
                    draining.suspend(|| {
                        eprintln!(
                            "{}: {waiting} message(s) still queued after the wait (connected: {}, a collector known: {})",
                            status.device, status.connected, status.collector_present
                        );
                    });
                }
                unacknowledged += waiting;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        draining.inc(1);
    }
    draining.finish_and_clear();
    Ok(unacknowledged)
}
