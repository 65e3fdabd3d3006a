//! The store of the fleet's reports (DESIGN §11, §12): every report the operator receives, as
//! received, read back per campaign for `ledtrad-op report`. Two back-ends behind one
//! interface, chosen by where the reports go ([`ReportsAt`]): a SQLite file (the default, for
//! one collector) or a PostgreSQL database (for several collectors on a shared subscription).
//! Both store each report once, by its id, and return from an insert only once it is
//! committed.

mod postgres;
mod sqlite;

use std::path::{Path, PathBuf};

use ledtrad_protocol::report::{Arm, InvalidReportId, Report, EPSILON_RANGE};
use ledtrad_protocol::{CampaignId, FleetId, UnixTime};

use self::postgres::PostgresReports;
use self::sqlite::SqliteReports;

/// Why the report store could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The store could not be opened, reached, set up or migrated as a report database.
    #[error("report database '{store}': {detail}; {fix}")]
    Open {
        /// The database file, or the PostgreSQL address without its password.
        store: String,
        /// What failed.
        detail: String,
        /// What to do about it.
        fix: &'static str,
    },
    /// A report's epsilon is not a number devices use, so its noise has no known spread.
    #[error(
        "report for campaign '{campaign}' has epsilon {epsilon}, outside the {}..={} devices use; it was not stored",
        EPSILON_RANGE.start(),
        EPSILON_RANGE.end()
    )]
    Epsilon {
        /// The report's campaign.
        campaign: CampaignId,
        /// The rejected epsilon.
        epsilon: f64,
    },
    /// A count no device can have sent.
    #[error("report for campaign '{campaign}' has {field} {value}, beyond the {bound:.0} a device can reach in a day with its noise; it was not stored")]
    Implausible {
        /// The report's campaign.
        campaign: CampaignId,
        /// The count.
        field: &'static str,
        /// Its value.
        value: i32,
        /// The bound it broke.
        bound: f64,
    },
    /// A report's catalogue version or day is beyond what the store keeps (its integers are
    /// signed).
    #[error("report for campaign '{campaign}' has {field} {value}, above {max}; it was not stored")]
    OutOfRange {
        /// The report's campaign.
        campaign: CampaignId,
        /// The field.
        field: &'static str,
        /// The rejected value.
        value: u64,
        /// The largest the store keeps.
        max: i64,
    },
    /// A report's payload is not a report.
    #[error("{0}")]
    Unreadable(String),
    /// A query failed (the database may be back later: the collector tries again).
    #[error("report database '{store}': {detail}")]
    Query {
        /// The database file, or the PostgreSQL address without its password.
        store: String,
        /// What failed.
        detail: String,
    },
    /// A stored row does not read back as a report (the database was changed by something
    /// else).
    #[error(
        "report database '{store}': row {id} is not a valid report ({detail}); delete the row or restore the database"
    )]
    BadRow {
        /// The database file, or the PostgreSQL address without its password.
        store: String,
        /// The row's id.
        id: i64,
        /// What is wrong with it.
        detail: String,
    },
}

/// Where reports are stored: a SQLite file, or a PostgreSQL database by its URL. Parsed from
/// the command line: `postgres://…` or `postgresql://…` is a database, anything else a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportsAt {
    /// A SQLite file.
    File(PathBuf),
    /// A PostgreSQL URL, e.g. `postgres://ledtrad@db.example:5432/reports`.
    Postgres(String),
}

impl ReportsAt {
    /// Whether several collectors can write into it at once (and so share the reports through
    /// a shared subscription).
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

impl std::str::FromStr for ReportsAt {
    type Err = String;

    /// `postgres://…` or `postgresql://…` (any case) is a database; anything else that looks
    /// like an address (`scheme://…`, a `postgres:` without its slashes) is refused rather
    /// than taken for a file name.
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(Self::Postgres(s.to_owned()));
        }
        if lower.contains("://") || lower.starts_with("postgres") && lower.contains(':') {
            let shown = s.split_once('@').map_or(s, |(_, host)| host);
            return Err(format!(
                "'…{shown}' is neither a file nor a PostgreSQL address; give a SQLite file's path, \
                 or postgres://USER@HOST:PORT/DATABASE"
            ));
        }
        Ok(Self::File(PathBuf::from(s)))
    }
}

impl From<PathBuf> for ReportsAt {
    fn from(path: PathBuf) -> Self {
        Self::File(path)
    }
}

impl From<&Path> for ReportsAt {
    fn from(path: &Path) -> Self {
        Self::File(path.into())
    }
}

/// What became of a report the store took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// It was new, and is stored.
    New,
    /// A report with its id is stored already (the device sent it again, or another collector
    /// stored it): nothing changed.
    Duplicate,
}

/// The fleet's received reports, in SQLite or PostgreSQL.
pub struct ReportStore {
    backend: Backend,
}

enum Backend {
    Sqlite(SqliteReports),
    Postgres(PostgresReports),
}

impl ReportStore {
    /// Opens the SQLite report database at `path`, creating it (and its directory) if missing
    /// and migrating it to the current schema.
    pub fn open(path: &Path) -> Result<ReportStore, CollectError> {
        Ok(ReportStore { backend: Backend::Sqlite(SqliteReports::open(path)?) })
    }

    /// Opens the store at `at`: a SQLite file as [`ReportStore::open`] does, or a PostgreSQL
    /// database, connected to and migrated to the current schema (collectors starting
    /// together migrate it once).
    pub fn connect(at: &ReportsAt) -> Result<ReportStore, CollectError> {
        match at {
            ReportsAt::File(path) => Self::open(path),
            ReportsAt::Postgres(url) => {
                Ok(ReportStore { backend: Backend::Postgres(PostgresReports::connect(url, true)?) })
            }
        }
    }

    /// Opens the store at `at` to read it: as [`ReportStore::connect`], but a PostgreSQL
    /// database with no report table is refused, not set up. (A missing SQLite file is the
    /// caller's to refuse: see `report::open_existing`.)
    pub fn connect_to_read(at: &ReportsAt) -> Result<ReportStore, CollectError> {
        match at {
            ReportsAt::File(path) => Self::open(path),
            ReportsAt::Postgres(url) => {
                Ok(ReportStore { backend: Backend::Postgres(PostgresReports::connect(url, false)?) })
            }
        }
    }

    /// The store's name for logs and errors: the file, or the database's address without its
    /// password.
    pub fn name(&self) -> &str {
        match &self.backend {
            Backend::Sqlite(s) => s.name(),
            Backend::Postgres(p) => p.name(),
        }
    }

    /// Whether several collectors can write into this store at once.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Stores `report`, received from `fleet` at `received_at`, and returns once it is
    /// committed. A report whose epsilon is not finite or outside [`EPSILON_RANGE`], or with a
    /// count beyond [`ledtrad_protocol::report::plausible_bound`], is refused, and nothing is
    /// stored: one such report would outweigh a whole fleet's. A report whose id is stored
    /// already is a device sending it again (or another collector having stored it), and is
    /// not stored twice.
    pub fn insert(&self, fleet: &FleetId, report: &Report, received_at: UnixTime) -> Result<Stored, CollectError> {
        let row = NewRow::checked(fleet, report, received_at)?;
        let new = match &self.backend {
            Backend::Sqlite(s) => s.insert(&row)?,
            Backend::Postgres(p) => p.insert(&row)?,
        };
        Ok(if new { Stored::New } else { Stored::Duplicate })
    }

    /// Every stored report of `campaign` (from `fleet` only, when given), by day, arm and the
    /// order they arrived in.
    pub fn campaign(&self, fleet: Option<&FleetId>, campaign: &CampaignId) -> Result<Vec<Report>, CollectError> {
        self.select(fleet, Some(campaign))
    }

    /// Every stored report of `fleet`, whatever the campaign, by day, arm and arrival.
    pub fn fleet(&self, fleet: &FleetId) -> Result<Vec<Report>, CollectError> {
        self.select(Some(fleet), None)
    }

    fn select(&self, fleet: Option<&FleetId>, campaign: Option<&CampaignId>) -> Result<Vec<Report>, CollectError> {
        let rows = match &self.backend {
            Backend::Sqlite(s) => s.select(fleet, campaign)?,
            Backend::Postgres(p) => p.select(fleet, campaign)?,
        };
        rows.into_iter()
            .map(|row| {
                row.into_report().map_err(|(id, detail)| CollectError::BadRow { store: self.name().into(), id, detail })
            })
            .collect()
    }

    /// The campaigns that have reports, in order.
    pub fn campaigns(&self) -> Result<Vec<CampaignId>, CollectError> {
        let names = match &self.backend {
            Backend::Sqlite(s) => s.campaigns()?,
            Backend::Postgres(p) => p.campaigns()?,
        };
        names.into_iter().map(|name| CampaignId::try_new(name).map_err(|e| self.invalid("campaign", e))).collect()
    }

    /// Each campaign that has reports (from `fleet` only, when given), by name: how many
    /// reports, over which days, from which fleets.
    pub fn overview(&self, fleet: Option<&FleetId>) -> Result<Vec<StoredCampaign>, CollectError> {
        let rows = match &self.backend {
            Backend::Sqlite(s) => s.overview(fleet)?,
            Backend::Postgres(p) => p.overview(fleet)?,
        };
        rows.into_iter().map(|row| self.stored_campaign(row)).collect()
    }

    fn stored_campaign(&self, row: RawCampaign) -> Result<StoredCampaign, CollectError> {
        let RawCampaign { campaign, numbers: [reports, days, first, last], fleets } = row;
        let number = |n: i64| {
            u32::try_from(n).map_err(|_| CollectError::Query {
                store: self.name().into(),
                detail: format!("a stored count or day is out of range: {n}"),
            })
        };
        let mut fleets = fleets
            .split(',')
            .map(|f| FleetId::try_new(f).map_err(|e| self.invalid("fleet", e)))
            .collect::<Result<Vec<_>, _>>()?;
        fleets.sort();
        Ok(StoredCampaign {
            campaign: CampaignId::try_new(campaign).map_err(|e| self.invalid("campaign", e))?,
            reports: u64::from(number(reports)?),
            days: number(days)?,
            first_day: number(first)?,
            last_day: number(last)?,
            fleets,
        })
    }

    fn invalid(&self, what: &str, e: impl std::fmt::Display) -> CollectError {
        CollectError::Query { store: self.name().into(), detail: format!("a stored {what} is not valid: {e}") }
    }

    /// How many reports are stored.
    pub fn count(&self) -> Result<u64, CollectError> {
        let n = match &self.backend {
            Backend::Sqlite(s) => s.count()?,
            Backend::Postgres(p) => p.count()?,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// A campaign as the store holds it: its reports and the days they cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCampaign {
    /// The campaign.
    pub campaign: CampaignId,
    /// Its reports (device-days).
    pub reports: u64,
    /// The days with at least one report.
    pub days: u32,
    /// The first day with a report (days since 1970-01-01).
    pub first_day: u32,
    /// The last day with a report.
    pub last_day: u32,
    /// The fleets that sent them, by name.
    pub fleets: Vec<FleetId>,
}

/// A report checked and put in the store's types, ready to insert.
#[derive(Debug, Clone)]
struct NewRow {
    received_at: i64,
    fleet: String,
    campaign: String,
    arm: &'static str,
    day: i32,
    catalogue_version: i64,
    epsilon: f64,
    counts: [i32; 4],
    report_id: Option<String>,
}

impl NewRow {
    /// The row for `report`, or why it is refused.
    fn checked(fleet: &FleetId, report: &Report, received_at: UnixTime) -> Result<NewRow, CollectError> {
        if !report.epsilon.is_finite() || !EPSILON_RANGE.contains(&report.epsilon) {
            return Err(CollectError::Epsilon { campaign: report.campaign.clone(), epsilon: report.epsilon });
        }
        let bound = ledtrad_protocol::report::plausible_bound(report.epsilon);
        let counts = [
            ("impressions", report.impressions),
            ("accepts", report.accepts),
            ("dismissals", report.dismissals),
            ("conversions", report.conversions),
        ];
        if let Some((field, value)) = counts.into_iter().find(|(_, v)| f64::from(v.unsigned_abs()) > bound) {
            return Err(CollectError::Implausible { campaign: report.campaign.clone(), field, value, bound });
        }
        let out_of_range =
            |field, value, max| CollectError::OutOfRange { campaign: report.campaign.clone(), field, value, max };
        let catalogue_version = i64::try_from(report.catalogue_version)
            .map_err(|_| out_of_range("catalogue version", report.catalogue_version, i64::MAX))?;
        let day = i32::try_from(report.day).map_err(|_| out_of_range("day", report.day.into(), i32::MAX.into()))?;
        Ok(NewRow {
            received_at: i64::try_from(received_at.secs()).unwrap_or(i64::MAX),
            fleet: fleet.as_str().to_owned(),
            campaign: report.campaign.as_str().to_owned(),
            arm: report.arm.as_str(),
            day,
            catalogue_version,
            epsilon: report.epsilon,
            counts: [report.impressions, report.accepts, report.dismissals, report.conversions],
            report_id: report.id.map(|id| id.to_string()),
        })
    }
}

/// A row as the database gives it, before its values are checked.
struct RawRow {
    id: i64,
    campaign: String,
    arm: String,
    day: i64,
    catalogue_version: i64,
    epsilon: f64,
    counts: [i32; 4],
    report_id: Option<String>,
}

/// A campaign's line of the overview as the database gives it: its reports, days, first and
/// last day, and its fleets joined by commas.
struct RawCampaign {
    campaign: String,
    numbers: [i64; 4],
    fleets: String,
}

impl RawRow {
    /// The report, or the row's id and what is wrong with it.
    fn into_report(self) -> Result<Report, (i64, String)> {
        let id = self.id;
        let campaign = CampaignId::try_new(self.campaign).map_err(|e| (id, e.to_string()))?;
        let arm = match self.arm.as_str() {
            "treatment" => Arm::Treatment,
            "holdout" => Arm::Holdout,
            other => return Err((id, format!("unknown arm {other:?}"))),
        };
        let day = u32::try_from(self.day).map_err(|_| (id, format!("day {} out of range", self.day)))?;
        let catalogue_version =
            u64::try_from(self.catalogue_version).map_err(|_| (id, "negative catalogue version".to_string()))?;
        let [impressions, accepts, dismissals, conversions] = self.counts;
        let report_id = self.report_id.map(|text| text.parse().map_err(|e: InvalidReportId| (id, e.to_string())));
        Ok(Report {
            campaign,
            arm,
            day,
            catalogue_version,
            epsilon: self.epsilon,
            impressions,
            accepts,
            dismissals,
            conversions,
            id: report_id.transpose()?,
        })
    }
}

#[cfg(test)]
mod tests;
