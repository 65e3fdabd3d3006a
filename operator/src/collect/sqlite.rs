//! The report store in one SQLite file (WAL mode, synced on every commit, migrations from
//! `operator/migrations`): the default, for one collector.

use std::path::Path;

use ledtrad_protocol::{CampaignId, FleetId};
use rusqlite::{params, Connection, ErrorCode};
use rusqlite_migration::{Migrations, M};

use super::{CollectError, NewRow, RawCampaign, RawRow};

/// What to do about a file that is not a report database.
const NOT_A_REPORT_DATABASE: &str = "point --db at the reports file written by `ledtrad-op serve --reports FILE`, \
     or move this file away to start a new one";

pub(super) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../migrations/0001_reports.sql")),
        M::up(include_str!("../../migrations/0002_report_ids.sql")),
    ])
}

/// Reports in one SQLite file.
pub(super) struct SqliteReports {
    pub(super) conn: Connection,
    name: String,
}

impl SqliteReports {
    /// Opens the report database at `path`, creating it (and its directory) if missing and
    /// migrating it to the current schema.
    pub(super) fn open(path: &Path) -> Result<SqliteReports, CollectError> {
        let name = path.display().to_string();
        let open_err = |detail: String, fix| CollectError::Open { store: name.clone(), detail, fix };
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
        Ok(SqliteReports { conn, name })
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    fn query_err(&self, e: impl std::fmt::Display) -> CollectError {
        CollectError::Query { store: self.name.clone(), detail: e.to_string() }
    }

    /// Inserts a checked row unless its report id is stored; whether it was new.
    pub(super) fn insert(&self, row: &NewRow) -> Result<bool, CollectError> {
        let inserted = self
            .conn
            .execute(
                "INSERT INTO reports (received_at, fleet, campaign, arm, day, catalogue_version, epsilon, \
                 impressions, accepts, dismissals, conversions, report_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (report_id) DO NOTHING",
                params![
                    row.received_at,
                    row.fleet,
                    row.campaign,
                    row.arm,
                    row.day,
                    row.catalogue_version,
                    row.epsilon,
                    row.counts[0],
                    row.counts[1],
                    row.counts[2],
                    row.counts[3],
                    row.report_id
                ],
            )
            .map_err(|e| self.query_err(e))?;
        Ok(inserted > 0)
    }

    pub(super) fn select(
        &self,
        fleet: Option<&FleetId>,
        campaign: Option<&CampaignId>,
    ) -> Result<Vec<RawRow>, CollectError> {
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
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.query_err(e))
    }

    pub(super) fn campaigns(&self) -> Result<Vec<String>, CollectError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT campaign FROM reports ORDER BY campaign")
            .map_err(|e| self.query_err(e))?;
        let names = stmt.query_map([], |row| row.get::<_, String>(0)).map_err(|e| self.query_err(e))?;
        names.collect::<Result<Vec<_>, _>>().map_err(|e| self.query_err(e))
    }

    pub(super) fn overview(&self, fleet: Option<&FleetId>) -> Result<Vec<RawCampaign>, CollectError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT campaign, COUNT(*), COUNT(DISTINCT day), MIN(day), MAX(day), GROUP_CONCAT(DISTINCT fleet) \
                 FROM reports WHERE (?1 IS NULL OR fleet = ?1) GROUP BY campaign ORDER BY campaign",
            )
            .map_err(|e| self.query_err(e))?;
        let rows = stmt
            .query_map(params![fleet.map(FleetId::as_str)], |row| {
                Ok(RawCampaign {
                    campaign: row.get(0)?,
                    numbers: [row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?],
                    fleets: row.get(5)?,
                })
            })
            .map_err(|e| self.query_err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.query_err(e))
    }

    pub(super) fn count(&self) -> Result<i64, CollectError> {
        self.conn.query_row("SELECT COUNT(*) FROM reports", [], |row| row.get(0)).map_err(|e| self.query_err(e))
    }
}
