//! The report store on PostgreSQL, for several collectors writing into one database (DESIGN
//! §11): the same rows and queries as the SQLite store. The synchronous `postgres` client runs
//! on a thread of its own, so the store can be called from the collector's async task as the
//! SQLite one is, and reconnects there when the database went away. Each insert is its own
//! transaction: when it returns, the report is committed, and only then is it acknowledged.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use ledtrad_protocol::{CampaignId, FleetId};
use postgres::config::Host;
use postgres::{Client, Config, NoTls};

use super::{CollectError, NewRow, RawCampaign, RawRow};

/// The schema, in order; each applied once, recorded in `ledtrad_migrations`.
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("../../migrations/postgres/0001_reports.sql"))];

/// Held while migrating, so that collectors starting together migrate once.
const MIGRATION_LOCK: i64 = 0x6c65_6474_7261_6401;

/// What to do when the database cannot be reached.
const UNREACHABLE: &str = "check that PostgreSQL runs at that address, that the database exists (createdb NAME) \
     and that this user may log in to it";

/// Work for the database thread.
type Job = Box<dyn FnOnce(&mut Link) + Send>;

/// The database thread's connection, made again when it was lost.
struct Link {
    config: Config,
    client: Option<Client>,
}

impl Link {
    fn client(&mut self) -> Result<&mut Client, postgres::Error> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(self.config.connect(NoTls)?);
        }
        Ok(self.client.as_mut().expect("connected just above"))
    }
}

/// Reports in a PostgreSQL database.
pub(super) struct PostgresReports {
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<JoinHandle<()>>,
    name: String,
}

impl PostgresReports {
    /// Connects to the database at `url` (`postgres://USER@HOST:PORT/DATABASE`) and migrates
    /// it to the current schema; with `create` false, one that holds no report table yet is
    /// refused (a reader pointed at the wrong database must not set one up there).
    pub(super) fn connect(url: &str, create: bool) -> Result<PostgresReports, CollectError> {
        let mut config: Config = url.parse().map_err(|e| CollectError::Open {
            store: redacted(url),
            detail: format!("not a PostgreSQL address: {e}"),
            fix: "write it as postgres://USER@HOST:PORT/DATABASE, e.g. postgres://ledtrad@127.0.0.1:5432/reports",
        })?;
        // The collector waits on the database between polls of its broker connection: a
        // database that is away must fail a call in seconds, not hang it.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(3));
        }
        config.keepalives(true).keepalives_idle(Duration::from_secs(10)).tcp_user_timeout(Duration::from_secs(10));
        if config.get_options().is_none() {
            config.options("-c statement_timeout=10000");
        }
        // As libpq does: a password from the environment rather than in the URL (where `ps`
        // shows it).
        if config.get_password().is_none() {
            if let Some(password) = std::env::var_os("PGPASSWORD") {
                config.password(password.as_encoded_bytes());
            }
        }
        if config.get_application_name().is_none() {
            config.application_name("ledtrad-op");
        }
        let name = display_name(&config);
        let (jobs, inbox) = mpsc::channel::<Job>();
        let mut link = Link { config, client: None };
        let worker = std::thread::Builder::new()
            .name("ledtrad-reports-db".into())
            .spawn(move || {
                for job in inbox {
                    job(&mut link);
                }
            })
            .map_err(|e| CollectError::Open { store: name.clone(), detail: e.to_string(), fix: UNREACHABLE })?;
        let store = PostgresReports { jobs: Some(jobs), worker: Some(worker), name };
        let migrated = store.call(move |client| migrate(client, create)).map_err(|e| match e {
            CollectError::Query { store, detail } => {
                let fix = if detail.contains("(42501)") {
                    "grant this user CREATE on the database (or let its owner run the first collector)"
                } else {
                    UNREACHABLE
                };
                CollectError::Open { store, detail, fix }
            }
            other => other,
        })?;
        let (detail, fix) = match migrated {
            Migrated::Current => return Ok(store),
            Migrated::Newer(applied) => (
                format!("its schema is at version {applied}, newer than this ledtrad-op knows"),
                "use the ledtrad-op that wrote it, or check that it is a report database",
            ),
            Migrated::NoReports => (
                "it holds no report table".to_string(),
                "check the database name; the first collector (`ledtrad-op serve --reports postgres://…`) makes the table",
            ),
        };
        Err(CollectError::Open { store: store.name.clone(), detail, fix })
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Runs `work` on the database thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, CollectError> {
        let stopped = || CollectError::Query { store: self.name.clone(), detail: "the database thread stopped".into() };
        let (answer, answered) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |link| {
            let _ = answer.send(link.client().and_then(work));
        });
        self.jobs.as_ref().ok_or_else(stopped)?.send(job).map_err(|_| stopped())?;
        answered
            .recv()
            .map_err(|_| stopped())?
            .map_err(|e| CollectError::Query { store: self.name.clone(), detail: describe(&e) })
    }

    /// Inserts a checked row unless its report id is stored; whether it was new.
    pub(super) fn insert(&self, row: &NewRow) -> Result<bool, CollectError> {
        let row = row.clone();
        self.call(move |client| {
            let inserted = client.execute(
                "INSERT INTO reports (received_at, fleet, campaign, arm, day, catalogue_version, epsilon, \
                 impressions, accepts, dismissals, conversions, report_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (report_id) DO NOTHING",
                &[
                    &row.received_at,
                    &row.fleet,
                    &row.campaign,
                    &row.arm,
                    &row.day,
                    &row.catalogue_version,
                    &row.epsilon,
                    &row.counts[0],
                    &row.counts[1],
                    &row.counts[2],
                    &row.counts[3],
                    &row.report_id,
                ],
            )?;
            Ok(inserted > 0)
        })
    }

    pub(super) fn select(
        &self,
        fleet: Option<&FleetId>,
        campaign: Option<&CampaignId>,
    ) -> Result<Vec<RawRow>, CollectError> {
        let campaign = campaign.map(|c| c.as_str().to_owned());
        let fleet = fleet.map(|f| f.as_str().to_owned());
        self.call(move |client| {
            let rows = client.query(
                "SELECT id, campaign, arm, day, catalogue_version, epsilon, impressions, accepts, dismissals, \
                 conversions, report_id \
                 FROM reports WHERE ($1::TEXT IS NULL OR campaign = $1) AND ($2::TEXT IS NULL OR fleet = $2) \
                 ORDER BY day, arm DESC, id",
                &[&campaign, &fleet],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(RawRow {
                        id: row.try_get(0)?,
                        campaign: row.try_get(1)?,
                        arm: row.try_get(2)?,
                        day: i64::from(row.try_get::<_, i32>(3)?),
                        catalogue_version: row.try_get(4)?,
                        epsilon: row.try_get(5)?,
                        counts: [row.try_get(6)?, row.try_get(7)?, row.try_get(8)?, row.try_get(9)?],
                        report_id: row.try_get(10)?,
                    })
                })
                .collect()
        })
    }

    pub(super) fn campaigns(&self) -> Result<Vec<String>, CollectError> {
        self.call(|client| {
            let rows = client.query("SELECT DISTINCT campaign COLLATE \"C\" FROM reports ORDER BY 1", &[])?;
            rows.iter().map(|row| row.try_get(0)).collect()
        })
    }

    pub(super) fn overview(&self, fleet: Option<&FleetId>) -> Result<Vec<RawCampaign>, CollectError> {
        let fleet = fleet.map(|f| f.as_str().to_owned());
        self.call(move |client| {
            let rows = client.query(
                "SELECT campaign, COUNT(*), COUNT(DISTINCT day), MIN(day)::BIGINT, MAX(day)::BIGINT, \
                 string_agg(DISTINCT fleet, ',') \
                 FROM reports WHERE ($1::TEXT IS NULL OR fleet = $1) GROUP BY campaign ORDER BY campaign COLLATE \"C\"",
                &[&fleet],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(RawCampaign {
                        campaign: row.try_get(0)?,
                        numbers: [row.try_get(1)?, row.try_get(2)?, row.try_get(3)?, row.try_get(4)?],
                        fleets: row.try_get(5)?,
                    })
                })
                .collect()
        })
    }

    pub(super) fn count(&self) -> Result<i64, CollectError> {
        self.call(|client| client.query_one("SELECT COUNT(*) FROM reports", &[])?.try_get(0))
    }
}

impl Drop for PostgresReports {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has done what it was given.
        drop(self.jobs.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// What [`migrate`] found.
enum Migrated {
    /// The schema is current (now).
    Current,
    /// The database is at this version, newer than this ledtrad-op knows; left as it is.
    Newer(i32),
    /// No report table, and none was to be made.
    NoReports,
}

/// Applies the migrations the database lacks (`create`: from none), under a lock held until
/// the transaction ends.
fn migrate(client: &mut Client, create: bool) -> Result<Migrated, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    let fresh: bool = tx.query_one("SELECT to_regclass('ledtrad_migrations') IS NULL", &[])?.try_get(0)?;
    if fresh && !create {
        return Ok(Migrated::NoReports);
    }
    if fresh {
        tx.batch_execute(
            "CREATE TABLE ledtrad_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )?;
    }
    let applied: i32 = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM ledtrad_migrations", &[])?.try_get(0)?;
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if applied > known {
        return Ok(Migrated::Newer(applied));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        tx.batch_execute(sql)?;
        tx.execute("INSERT INTO ledtrad_migrations (version) VALUES ($1)", &[version])?;
    }
    tx.commit()?;
    Ok(Migrated::Current)
}

/// An error with what the server said, where it said something.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// The database's address without its password, to name it in logs and errors.
fn display_name(config: &Config) -> String {
    let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{host}:{port}/{database}")
}

/// `url` without any password in it or its query (which may hold one), for an address that
/// does not parse.
fn redacted(url: &str) -> String {
    let url = url.split_once('?').map_or(url, |(address, _)| address);
    let Some((scheme, rest)) = url.split_once("://") else { return url.into() };
    match rest.rsplit_once('@') {
        Some((login, host)) => {
            let user = login.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_named_without_its_password() {
        assert_eq!(redacted("postgres://u:p@ss@db:5432/r"), "postgres://u@db:5432/r");
        assert_eq!(redacted("postgres://u@db/r?password=secret"), "postgres://u@db/r");
        assert_eq!(redacted("postgres://db/r"), "postgres://db/r");
        let config: Config = "postgres://ledtrad:secret@db.example:6543/reports".parse().unwrap();
        assert_eq!(display_name(&config), "postgres://ledtrad@db.example:6543/reports");
    }

    #[test]
    fn a_bad_address_is_named_with_the_form_to_use() {
        let Err(e) = PostgresReports::connect("postgres://u:secret@db:port/r", true) else { panic!("connected") };
        let text = e.to_string();
        assert!(text.contains("'postgres://u@db:port/r': not a PostgreSQL address"), "{text}");
        assert!(text.contains("write it as postgres://USER@HOST:PORT/DATABASE") && !text.contains("secret"), "{text}");
    }
}
