//! `ledtrad-sim bench collect`: how fast the operator's report collectors store reports, and
//! how long a report waits from its publish to its commit, through a Mosquitto of the bench's
//! own, for each store: SQLite with one collector, PostgreSQL with one, PostgreSQL with two on
//! the shared subscription. Each store runs on a fresh broker and a fresh database.
//!
//! Two phases per store, reported apart: reports at a steady pace (the latency a report sees
//! when the collectors keep up: p50 and p99 from publish to commit), then a burst of reports
//! published as fast as the broker takes them (the rate the collectors store a backlog at,
//! as after a fleet's midnight). Every report is counted: the figures say how many were stored
//! and how many came twice.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ledtrad_operator::collect::{ReportStore, ReportsAt};
use ledtrad_operator::serve::{Running, ServeOptions, StoredReport};
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::report::{Arm, Report, ReportId};
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::{codec, CampaignId, FleetId, InstanceId};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, MqttOptions};
use serde::Serialize;

use crate::summary::percentile_us;

/// Where reports are stored, and by how many collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// One collector on a SQLite file.
    Sqlite,
    /// One collector on PostgreSQL.
    Postgres,
    /// Two collectors on PostgreSQL, sharing the reports.
    Postgres2,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Postgres2 => "postgres-2",
        }
    }

    fn collectors(self) -> usize {
        if self == Self::Postgres2 {
            2
        } else {
            1
        }
    }
}

impl std::str::FromStr for Setup {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" => Ok(Self::Postgres),
            "postgres-2" => Ok(Self::Postgres2),
            other => Err(format!("{other:?} is not a store to bench; use sqlite, postgres or postgres-2")),
        }
    }
}

/// What to bench.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// The stores, in order.
    pub setups: Vec<Setup>,
    /// Reports sent at a steady pace.
    pub paced: usize,
    /// The pace, reports a second.
    pub rate: u32,
    /// Reports sent at once.
    pub burst: usize,
    /// A PostgreSQL database on the server where the bench makes (and drops) its own.
    pub postgres: String,
}

/// One store's figures.
#[derive(Debug, Clone, Serialize)]
pub struct CollectFigures {
    /// "collect".
    pub bench: &'static str,
    /// "sqlite", "postgres" or "postgres-2".
    pub store: &'static str,
    /// Collectors sharing the reports.
    pub collectors: usize,
    /// Reports sent at a steady pace, and the pace (a second).
    pub paced: usize,
    /// The pace, reports a second.
    pub rate: u32,
    /// Median from a paced report's publish to its commit, ms.
    pub p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub p99_ms: f64,
    /// Reports sent at once.
    pub burst: usize,
    /// Reports stored a second in the burst (its reports over the time from its first publish
    /// to its last commit).
    pub reports_per_s: f64,
    /// The burst's 99th percentile from publish to commit, ms (mostly waiting behind the
    /// backlog).
    pub burst_p99_ms: f64,
    /// Reports stored in all (paced and burst): each one once.
    pub stored: u64,
    /// Reports that came again and were not stored twice.
    pub duplicates: u64,
}

/// How long a phase may take to be stored before the bench gives up.
const PHASE_LIMIT: Duration = Duration::from_secs(600);

/// The development config, with room to queue a burst for collectors that are behind.
fn mosquitto_conf() -> String {
    include_str!("../../deploy/mosquitto/ledtrad.conf").replace("max_queued_messages 1000\n", "max_queued_messages 0\n")
}

/// Benches each of `options.setups` in turn.
pub async fn bench(options: &CollectOptions) -> anyhow::Result<Vec<CollectFigures>> {
    let mut figures = Vec::new();
    for setup in &options.setups {
        figures.push(bench_one(*setup, options).await.with_context(|| format!("the {} store", setup.name()))?);
    }
    Ok(figures)
}

async fn bench_one(setup: Setup, options: &CollectOptions) -> anyhow::Result<CollectFigures> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let broker = ledtrad_agent::broker::Mosquitto::start(&mosquitto_conf(), &[], dir.path())?;
    let database = match setup {
        Setup::Sqlite => None,
        Setup::Postgres | Setup::Postgres2 => Some(BenchDatabase::create(&options.postgres).await?),
    };
    let at = match &database {
        None => ReportsAt::File(dir.path().join("reports.db")),
        Some(db) => ReportsAt::Postgres(db.url.clone()),
    };
    let mut collectors = Vec::new();
    for n in 0..setup.collectors() {
        collectors.push(start_collector(broker.url(), &at, n).await?);
    }
    let (stored_tx, mut stored) = tokio::sync::mpsc::unbounded_channel();
    for collector in &collectors {
        let mut watch = collector.watch_stored();
        let tx = stored_tx.clone();
        tokio::spawn(async move {
            while let Some(report) = watch.recv().await {
                let _ = tx.send(report);
            }
        });
    }
    let publisher = Publisher::connect(broker.url()).await?;
    let pace = Duration::from_secs_f64(1.0 / f64::from(options.rate.max(1)));
    let paced = publisher.send(0, options.paced, Some(pace), &mut stored).await?;
    let burst = publisher.send(options.paced, options.burst, None, &mut stored).await?;
    let mut duplicates = 0;
    let mut total = 0;
    for collector in collectors {
        let counts = collector.stop().await?;
        duplicates += counts.reports_duplicate;
        total += counts.reports;
    }
    let in_store = tokio::task::spawn_blocking(move || ReportStore::connect(&at)?.count()).await??;
    anyhow::ensure!(
        in_store == total && total == (options.paced + options.burst) as u64,
        "{total} reports stored by the collectors and {in_store} in the store, of {} sent",
        options.paced + options.burst
    );
    drop(database);
    Ok(CollectFigures {
        bench: "collect",
        store: setup.name(),
        collectors: setup.collectors(),
        paced: options.paced,
        rate: options.rate,
        p50_ms: paced.quantile_ms(0.5),
        p99_ms: paced.quantile_ms(0.99),
        burst: options.burst,
        reports_per_s: burst.rate(),
        burst_p99_ms: burst.quantile_ms(0.99),
        stored: total,
        duplicates,
    })
}

async fn start_collector(broker: &BrokerUrl, at: &ReportsAt, n: usize) -> anyhow::Result<Running> {
    let at = at.clone();
    let store = tokio::task::spawn_blocking(move || ReportStore::connect(&at)).await??;
    let options = ServeOptions {
        broker: broker.clone(),
        access: ledtrad_mqtt::Access::default(),
        instance: InstanceId::try_new(format!("bench-collector-{n}"))?,
        service: None,
        reports: Some(store),
        session_secs: 60,
    };
    Ok(ledtrad_operator::serve::start(options, Duration::from_secs(10)).await?)
}

/// A device-like client that publishes reports.
struct Publisher {
    client: AsyncClient,
    topic: String,
}

/// A phase's reports: when each was published and committed.
struct Phase {
    first_publish: Instant,
    last_commit: Instant,
    waits: Vec<u64>,
}

impl Phase {
    fn quantile_ms(&self, q: f64) -> f64 {
        (percentile_us(&self.waits, q) / 10.0).round() / 100.0
    }

    fn rate(&self) -> f64 {
        let secs = self.last_commit.duration_since(self.first_publish).as_secs_f64();
        if secs > 0.0 {
            (self.waits.len() as f64 / secs).round()
        } else {
            0.0
        }
    }
}

impl Publisher {
    async fn connect(broker: &BrokerUrl) -> anyhow::Result<Publisher> {
        let mut options =
            MqttOptions::new(format!("bench-reporter-{}", std::process::id()), broker.host.clone(), broker.port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_outgoing_inflight_upper_limit(100);
        let (client, mut events) = AsyncClient::new(options, 1024);
        tokio::spawn(async move { while events.poll().await.is_ok() {} });
        let topic = Topic::Reports(FleetId::try_new("bench")?).name();
        Ok(Publisher { client, topic })
    }

    /// Publishes reports `from..from + count` (every `pace`, or at once) and waits until each
    /// is committed.
    async fn send(
        &self,
        from: usize,
        count: usize,
        pace: Option<Duration>,
        stored: &mut tokio::sync::mpsc::UnboundedReceiver<StoredReport>,
    ) -> anyhow::Result<Phase> {
        let mut published = HashMap::with_capacity(count);
        let mut ticks = pace.map(tokio::time::interval);
        let first_publish = Instant::now();
        for n in from..from + count {
            if let Some(ticks) = &mut ticks {
                ticks.tick().await;
            }
            let report = report(n);
            published.insert(report.id, Instant::now());
            self.client.publish(self.topic.clone(), QoS::AtLeastOnce, false, codec::to_json(&report)).await?;
        }
        let mut waits = Vec::with_capacity(count);
        let mut last_commit = first_publish;
        let deadline = tokio::time::Instant::now() + PHASE_LIMIT;
        while waits.len() < count {
            let StoredReport { id, at } = tokio::time::timeout_at(deadline, stored.recv())
                .await
                .with_context(|| format!("{} of {count} reports stored in {PHASE_LIMIT:?}", waits.len()))?
                .context("the collectors stopped")?;
            if let Some(sent) = published.remove(&id) {
                waits.push(u64::try_from(at.duration_since(sent).as_nanos()).unwrap_or(u64::MAX));
                last_commit = last_commit.max(at);
            }
        }
        waits.sort_unstable();
        Ok(Phase { first_publish, last_commit, waits })
    }
}

fn report(n: usize) -> Report {
    Report {
        campaign: CampaignId::try_new(["dairy", "bakery", "books"][n % 3]).expect("a valid campaign id"),
        arm: if n % 4 == 0 { Arm::Holdout } else { Arm::Treatment },
        day: 20_400 + (n % 7) as u32,
        catalogue_version: 1,
        epsilon: 1.0,
        impressions: 3,
        accepts: 1,
        dismissals: 0,
        conversions: 0,
        id: Some(ReportId(0xbe7c_0000_0000_0000_0000_0000_0000_0000 + n as u128)),
    }
}

/// A PostgreSQL database made for one run of the bench, dropped after it.
struct BenchDatabase {
    admin: String,
    name: String,
    url: String,
}

impl BenchDatabase {
    async fn create(admin: &str) -> anyhow::Result<BenchDatabase> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let name = format!("ledtrad_bench_{}_{nanos}", std::process::id());
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => anyhow::bail!(
                "--postgres {admin:?} is not a database URL; write it as postgres://USER@HOST:PORT/DATABASE"
            ),
        };
        admin_sql(admin, format!("CREATE DATABASE {name}")).await.with_context(|| {
            format!("making a database for the bench on {admin} (the user needs CREATEDB; scripts/postgres sets up one that has it)")
        })?;
        Ok(BenchDatabase { admin: admin.into(), name, url })
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        let (admin, sql) = (self.admin.clone(), format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        // Its own thread: the client blocks, and this may be dropped on the runtime.
        let dropped = std::thread::spawn(move || connect(&admin).and_then(|mut c| Ok(c.batch_execute(&sql)?)));
        if let Ok(Err(e)) = dropped.join() {
            tracing::warn!("could not drop the bench's database {}: {e:#}", self.name);
        }
    }
}

async fn admin_sql(admin: &str, sql: String) -> anyhow::Result<()> {
    let admin = admin.to_owned();
    tokio::task::spawn_blocking(move || Ok(connect(&admin)?.batch_execute(&sql)?)).await?
}

fn connect(url: &str) -> anyhow::Result<postgres::Client> {
    let mut config: postgres::Config = url.parse().with_context(|| format!("--postgres {url:?}"))?;
    config.connect_timeout(Duration::from_secs(10));
    Ok(config.connect(postgres::NoTls)?)
}
