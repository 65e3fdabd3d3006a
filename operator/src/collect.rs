//! The store of the fleet's reports (DESIGN §12): every report the operator receives, as
//! received, in one SQLite file (WAL mode, migrations from `operator/migrations`), read back per
//! campaign for `ledtrad-op report`.

use std::path::{Path, PathBuf};

use ledtrad_protocol::report::{Arm, InvalidReportId, Report, EPSILON_RANGE};
use ledtrad_protocol::{CampaignId, FleetId, UnixTime};
use rusqlite::{params, Connection, ErrorCode};
use rusqlite_migration::{Migrations, M};

/// What to do about a file that is not a report database.
const NOT_A_REPORT_DATABASE: &str = "point --db at the reports file written by `ledtrad-op serve --reports FILE`, \
     or move this file away to start a new one";

/// Why the report store could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The file could not be opened, set up or migrated as a report database.
    #[error("report database '{}': {detail}; {fix}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
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
    /// A report's catalogue version is beyond what the store keeps (SQLite integers are signed).
    #[error("report for campaign '{campaign}' has catalogue version {version}, above {}; it was not stored", i64::MAX)]
    CatalogueVersion {
        /// The report's campaign.
        campaign: CampaignId,
        /// The rejected version.
        version: u64,
    },
    /// A report's payload is not a report.
    #[error("{0}")]
    Unreadable(String),
    /// A query failed.
    #[error("report database '{}': {detail}", path.display())]
    Query {
        /// The database file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// A stored row does not read back as a report (the file was changed by something else).
    #[error("report database '{}': row {id} is not a valid report ({detail}); delete the row or restore the file", path.display())]
    BadRow {
        /// The database file.
        path: PathBuf,
        /// The row's id.
        id: i64,
        /// What is wrong with it.
        detail: String,
    },
}

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../migrations/0001_reports.sql")),
        M::up(include_str!("../migrations/0002_report_ids.sql")),
    ])
}

/// What became of a report the store took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// It was new, and is stored.
    New,
    /// A report with its id is stored already (the device sent it again): nothing changed.
    Duplicate,
}

/// The fleet's received reports, in one SQLite file.
pub struct ReportStore {
    conn: Connection,
    path: PathBuf,
}

impl ReportStore {
    /// Opens the report database at `path`, creating it (and its directory) if missing and
    /// migrating it to the current schema.
    pub fn open(path: &Path) -> Result<ReportStore, CollectError> {
        let open_err = |detail: String, fix| CollectError::Open { path: path.into(), detail, fix };
        let sqlite_err = |e: rusqlite::Error| {
            let fix = match e.sqlite_error_code() {
                Some(ErrorCode::NotADatabase) => NOT_A_REPORT_DATABASE,
                Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen) => {
                    "check that the file and its directory are readable and writable by this user"
                }
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                    "another program holds it locked; try again when it is done"
                }
                _ => "check the file, or move it away to start a new one",
            };
            open_err(e.to_string(), fix)
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                open_err(format!("cannot create its directory: {e}"), "check the path and its permissions")
            })?;
        }
        let mut conn = Connection::open(path).map_err(sqlite_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sqlite_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sqlite_err)?;
        // FULL: a report is on disk when its insert returns. The collector then acknowledges it
        // and the broker forgets it, so a commit lost with the power would be a report lost.
        conn.pragma_update(None, "synchronous", "FULL").map_err(sqlite_err)?;
        migrations().to_latest(&mut conn).map_err(|e| match e {
            rusqlite_migration::Error::MigrationDefinition(
                rusqlite_migration::MigrationDefinitionError::DatabaseTooFarAhead,
            ) => open_err(
                "its schema is newer than this ledtrad-op knows".into(),
                "use the ledtrad-op that wrote it, or check that it is a report database",
            ),
            rusqlite_migration::Error::RusqliteError { err, .. } => sqlite_err(err),
            other => open_err(format!("migration failed: {other}"), NOT_A_REPORT_DATABASE),
        })?;
        Ok(ReportStore { conn, path: path.into() })
    }

    fn query_err(&self, e: impl std::fmt::Display) -> CollectError {
        CollectError::Query { path: self.path.clone(), detail: e.to_string() }
    }

    /// Stores `report`, received from `fleet` at `received_at`. A report whose epsilon is not
    /// finite or outside [`EPSILON_RANGE`], or with a count beyond
    /// [`ledtrad_protocol::report::plausible_bound`], is refused, and nothing is stored: one
    /// such report would outweigh a whole fleet's. A report whose id is stored already is a
    /// device sending it again, and is not stored twice.
    pub fn insert(&self, fleet: &FleetId, report: &Report, received_at: UnixTime) -> Result<Stored, CollectError> {
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
        let version = i64::try_from(report.catalogue_version).map_err(|_| CollectError::CatalogueVersion {
            campaign: report.campaign.clone(),
            version: report.catalogue_version,
        })?;
        let inserted = self
            .conn
            .execute(
                "INSERT INTO reports (received_at, fleet, campaign, arm, day, catalogue_version, epsilon, \
                 impressions, accepts, dismissals, conversions, report_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (report_id) DO NOTHING",
                params![
                    i64::try_from(received_at.secs()).unwrap_or(i64::MAX),
                    fleet.as_str(),
                    report.campaign.as_str(),
                    report.arm.as_str(),
                    report.day,
                    version,
                    report.epsilon,
                    report.impressions,
                    report.accepts,
                    report.dismissals,
                    report.conversions,
                    report.id.map(|id| id.to_string())
                ],
            )
            .map_err(|e| self.query_err(e))?;
        Ok(if inserted == 0 { Stored::Duplicate } else { Stored::New })
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
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, campaign, arm, day, catalogue_version, epsilon, impressions, accepts, dismissals, conversions, \
                 report_id \
                 FROM reports WHERE (?1 IS NULL OR campaign = ?1) AND (?2 IS NULL OR fleet = ?2) ORDER BY day, arm DESC, id",
            )
            .map_err(|e| self.query_err(e))?;
        let rows = stmt
            .query_map(params![campaign.map(CampaignId::as_str), fleet.map(FleetId::as_str)], |row| {
                Ok(RawRow {
                    id: row.get(0)?,
                    campaign: row.get(1)?,
                    arm: row.get(2)?,
                    day: row.get(3)?,
                    catalogue_version: row.get(4)?,
                    epsilon: row.get(5)?,
                    counts: [row.get(6)?, row.get(7)?, row.get(8)?, row.get(9)?],
                    report_id: row.get(10)?,
                })
            })
            .map_err(|e| self.query_err(e))?;
        let mut reports = Vec::new();
        for row in rows {
            let row = row.map_err(|e| self.query_err(e))?;
            reports.push(row.into_report().map_err(|(id, detail)| CollectError::BadRow {
                path: self.path.clone(),
                id,
                detail,
            })?);
        }
        Ok(reports)
    }

    /// The campaigns that have reports, in order.
    pub fn campaigns(&self) -> Result<Vec<CampaignId>, CollectError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT campaign FROM reports ORDER BY campaign")
            .map_err(|e| self.query_err(e))?;
        let names = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(|e| self.query_err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.query_err(e))?;
        names
            .into_iter()
            .map(|name| {
                CampaignId::try_new(name).map_err(|e| CollectError::Query {
                    path: self.path.clone(),
                    detail: format!("a stored campaign is not valid: {e}"),
                })
            })
            .collect()
    }

    /// Each campaign that has reports (from `fleet` only, when given), by name: how many
    /// reports, over which days, from which fleets.
    pub fn overview(&self, fleet: Option<&FleetId>) -> Result<Vec<StoredCampaign>, CollectError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT campaign, COUNT(*), COUNT(DISTINCT day), MIN(day), MAX(day), GROUP_CONCAT(DISTINCT fleet) \
                 FROM reports WHERE (?1 IS NULL OR fleet = ?1) GROUP BY campaign ORDER BY campaign",
            )
            .map_err(|e| self.query_err(e))?;
        let rows = stmt
            .query_map(params![fleet.map(FleetId::as_str)], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    [row.get::<_, i64>(1)?, row.get(2)?, row.get(3)?, row.get(4)?],
                    row.get::<_, String>(5)?,
                ))
            })
            .map_err(|e| self.query_err(e))?;
        let invalid = |detail: String| CollectError::Query { path: self.path.clone(), detail };
        let mut campaigns = Vec::new();
        for row in rows {
            let (campaign, [reports, days, first, last], fleets) = row.map_err(|e| self.query_err(e))?;
            let number =
                |n: i64| u32::try_from(n).map_err(|_| invalid(format!("a stored count or day is out of range: {n}")));
            let mut fleets = fleets
                .split(',')
                .map(|f| FleetId::try_new(f).map_err(|e| invalid(format!("a stored fleet is not valid: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            fleets.sort();
            campaigns.push(StoredCampaign {
                campaign: CampaignId::try_new(campaign)
                    .map_err(|e| invalid(format!("a stored campaign is not valid: {e}")))?,
                reports: u64::from(number(reports)?),
                days: number(days)?,
                first_day: number(first)?,
                last_day: number(last)?,
                fleets,
            });
        }
        Ok(campaigns)
    }

    /// How many reports are stored.
    pub fn count(&self) -> Result<u64, CollectError> {
        let n: i64 =
            self.conn.query_row("SELECT COUNT(*) FROM reports", [], |row| row.get(0)).map_err(|e| self.query_err(e))?;
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

/// A row as SQLite gives it, before its values are checked.
struct RawRow {
    id: i64,
    campaign: String,
    arm: String,
    day: u32,
    catalogue_version: i64,
    epsilon: f64,
    counts: [i32; 4],
    report_id: Option<String>,
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
        let catalogue_version =
            u64::try_from(self.catalogue_version).map_err(|_| (id, "negative catalogue version".to_string()))?;
        let [impressions, accepts, dismissals, conversions] = self.counts;
        let report_id = self.report_id.map(|text| text.parse().map_err(|e: InvalidReportId| (id, e.to_string())));
        Ok(Report {
            campaign,
            arm,
            day: self.day,
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
mod tests {
    use super::*;
    use ledtrad_protocol::report::ReportId;

    fn build_report(campaign: &str, arm: Arm, day: u32, epsilon: f64) -> Report {
        Report {
            campaign: CampaignId::try_new(campaign).unwrap(),
            arm,
            day,
            catalogue_version: 4,
            epsilon,
            impressions: 3,
            accepts: -1,
            dismissals: 0,
            conversions: 2,
            id: None,
        }
    }

    fn fleet(name: &str) -> FleetId {
        FleetId::try_new(name).unwrap()
    }

    #[test]
    fn reports_read_back_per_campaign_and_fleet_as_they_were_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reports/fleet.db");
        let store = ReportStore::open(&path).unwrap();
        let home = fleet("home");
        let a = build_report("dairy", Arm::Holdout, 20_400, 1.0);
        let b = build_report("dairy", Arm::Treatment, 20_400, 0.5);
        let c = build_report("dairy", Arm::Treatment, 20_399, 1.0);
        for r in [&a, &b, &c] {
            store.insert(&home, r, UnixTime(1_762_000_000)).unwrap();
        }
        store.insert(&fleet("office"), &build_report("books", Arm::Treatment, 20_400, 1.0), UnixTime(0)).unwrap();
        store.insert(&fleet("office"), &a, UnixTime(0)).unwrap();
        assert_eq!(store.count().unwrap(), 5);
        assert_eq!(store.campaign(Some(&home), &a.campaign).unwrap(), vec![c.clone(), b.clone(), a.clone()]);
        assert_eq!(store.campaign(None, &a.campaign).unwrap().len(), 4);
        let names: Vec<_> = store.campaigns().unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(names, ["books", "dairy"]);
        // Reopening migrates nothing and keeps everything; the file is in WAL mode.
        drop(store);
        let store = ReportStore::open(&path).unwrap();
        assert_eq!(store.count().unwrap(), 5);
        let mode: String = store.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        // Synced on every commit: a report acknowledged to the broker survives a power cut.
        let synchronous: i64 = store.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(synchronous, 2, "FULL");
    }

    #[test]
    fn a_report_sent_twice_is_stored_once_and_reports_without_ids_as_they_come() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let store = ReportStore::open(&path).unwrap();
        let home = fleet("home");
        let with_id = |id: u128| Report { id: Some(ReportId(id)), ..build_report("dairy", Arm::Treatment, 1, 1.0) };
        assert_eq!(store.insert(&home, &with_id(1), UnixTime(0)).unwrap(), Stored::New);
        assert_eq!(store.insert(&home, &with_id(2), UnixTime(0)).unwrap(), Stored::New);
        assert_eq!(store.insert(&home, &with_id(1), UnixTime(5)).unwrap(), Stored::Duplicate);
        // Even from another fleet, or changed on the way: the id is what a report is.
        let changed = Report { impressions: 7, ..with_id(2) };
        assert_eq!(store.insert(&fleet("office"), &changed, UnixTime(5)).unwrap(), Stored::Duplicate);
        let old = build_report("dairy", Arm::Treatment, 1, 1.0);
        assert_eq!(store.insert(&home, &old, UnixTime(0)).unwrap(), Stored::New);
        assert_eq!(store.insert(&home, &old, UnixTime(0)).unwrap(), Stored::New);
        assert_eq!(store.count().unwrap(), 4);
        let ids: Vec<_> = store.fleet(&home).unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, [Some(ReportId(1)), Some(ReportId(2)), None, None]);
        // A stored id changed to something that is not one is named with its row.
        store.conn.execute("UPDATE reports SET report_id = 'zz' WHERE id = 1", []).unwrap();
        let error = store.fleet(&home).unwrap_err().to_string();
        assert!(
            error.contains("row 1 is not a valid report (report id \"zz\" is not 32 lowercase hex digits)"),
            "{error}"
        );
    }

    #[test]
    fn a_report_database_from_before_report_ids_is_migrated_and_keeps_its_reports() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let mut conn = Connection::open(&path).unwrap();
        Migrations::new(vec![M::up(include_str!("../migrations/0001_reports.sql"))]).to_latest(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO reports (received_at, fleet, campaign, arm, day, catalogue_version, epsilon, impressions, \
             accepts, dismissals, conversions) VALUES (0, 'home', 'dairy', 'holdout', 3, 1, 1.0, 4, 1, 0, 0)",
            [],
        )
        .unwrap();
        drop(conn);
        let store = ReportStore::open(&path).unwrap();
        let reports = store.fleet(&fleet("home")).unwrap();
        assert_eq!((reports.len(), reports[0].impressions, reports[0].id), (1, 4, None));
        let with_id = Report { id: Some(ReportId(9)), ..reports[0].clone() };
        assert_eq!(store.insert(&fleet("home"), &with_id, UnixTime(0)).unwrap(), Stored::New);
    }

    #[test]
    fn a_report_with_an_epsilon_devices_do_not_use_is_refused_and_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = ReportStore::open(&dir.path().join("r.db")).unwrap();
        for epsilon in [f64::NAN, f64::INFINITY, 0.0, -1.0, 0.01, 10.5] {
            let err = store.insert(&fleet("home"), &build_report("dairy", Arm::Treatment, 1, epsilon), UnixTime(0));
            let text = err.unwrap_err().to_string();
            assert!(text.contains(&format!("epsilon {epsilon}, outside the 0.05..=10")), "{text}");
            assert!(text.ends_with("it was not stored"), "{text}");
        }
        let mut big = build_report("dairy", Arm::Treatment, 1, 1.0);
        big.catalogue_version = u64::MAX;
        assert!(matches!(store.insert(&fleet("home"), &big, UnixTime(0)), Err(CollectError::CatalogueVersion { .. })));
        // One forged count would outweigh a fleet's; a noisy small one is fine.
        let forged = Report { impressions: i32::MAX, ..build_report("dairy", Arm::Treatment, 1, 1.0) };
        let text = store.insert(&fleet("home"), &forged, UnixTime(0)).unwrap_err().to_string();
        assert!(text.contains("has impressions 2147483647, beyond the 1027 a device can reach"), "{text}");
        let negative = Report { dismissals: -5_000, ..build_report("dairy", Arm::Treatment, 1, 1.0) };
        assert!(matches!(store.insert(&fleet("home"), &negative, UnixTime(0)), Err(CollectError::Implausible { .. })));
        assert_eq!(store.count().unwrap(), 0);
        assert!(store.campaigns().unwrap().is_empty());
        let noisy = Report { dismissals: -7, ..build_report("dairy", Arm::Treatment, 1, 1.0) };
        store.insert(&fleet("home"), &noisy, UnixTime(0)).unwrap();
        assert_eq!(store.count().unwrap(), 1);
    }

    #[test]
    fn a_file_that_is_not_a_report_database_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "this is not a database, only some text that is long enough to have a header".repeat(20))
            .unwrap();
        let text = ReportStore::open(&path).err().unwrap().to_string();
        assert!(text.starts_with(&format!("report database '{}': ", path.display())), "{text}");
        assert!(text.contains("ledtrad-op serve --reports FILE"), "{text}");
        // A database from a newer schema is not touched.
        let newer = dir.path().join("newer.db");
        Connection::open(&newer).unwrap().pragma_update(None, "user_version", 9).unwrap();
        let text = ReportStore::open(&newer).err().unwrap().to_string();
        assert!(text.contains("its schema is newer than this ledtrad-op knows"), "{text}");
    }

    #[test]
    fn a_changed_row_is_reported_by_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = ReportStore::open(&dir.path().join("r.db")).unwrap();
        store.insert(&fleet("home"), &build_report("dairy", Arm::Treatment, 1, 1.0), UnixTime(0)).unwrap();
        // As another program could: past the table's checks.
        store.conn.pragma_update(None, "ignore_check_constraints", true).unwrap();
        store.conn.execute("UPDATE reports SET catalogue_version = -3", []).unwrap();
        let text = store.campaign(None, &CampaignId::try_new("dairy").unwrap()).unwrap_err().to_string();
        assert!(text.contains("row 1 is not a valid report (negative catalogue version)"), "{text}");
        store.conn.execute("UPDATE reports SET campaign = 'Dairy Winter'", []).unwrap();
        let text = store.campaigns().unwrap_err().to_string();
        assert!(text.contains("a stored campaign is not valid: campaign id \"Dairy Winter\""), "{text}");
    }
}
