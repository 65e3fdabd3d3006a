use ledtrad_protocol::report::ReportId;
use rusqlite::Connection;
use rusqlite_migration::{Migrations, M};

use super::*;

/// The SQLite connection under `store`, to look at or change the file as another program could.
fn conn(store: &ReportStore) -> &Connection {
    match &store.backend {
        Backend::Sqlite(s) => &s.conn,
        Backend::Postgres(_) => panic!("a SQLite store"),
    }
}

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
    let mode: String = conn(&store).query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    // Synced on every commit: a report acknowledged to the broker survives a power cut.
    let synchronous: i64 = conn(&store).query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
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
    conn(&store).execute("UPDATE reports SET report_id = 'zz' WHERE id = 1", []).unwrap();
    let error = store.fleet(&home).unwrap_err().to_string();
    assert!(error.contains("row 1 is not a valid report (report id \"zz\" is not 32 lowercase hex digits)"), "{error}");
}

#[test]
fn a_report_database_from_before_report_ids_is_migrated_and_keeps_its_reports() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let mut conn = Connection::open(&path).unwrap();
    Migrations::new(vec![M::up(include_str!("../../migrations/0001_reports.sql"))]).to_latest(&mut conn).unwrap();
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
    assert!(matches!(
        store.insert(&fleet("home"), &big, UnixTime(0)),
        Err(CollectError::OutOfRange { field: "catalogue version", .. })
    ));
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
    conn(&store).pragma_update(None, "ignore_check_constraints", true).unwrap();
    conn(&store).execute("UPDATE reports SET catalogue_version = -3", []).unwrap();
    let text = store.campaign(None, &CampaignId::try_new("dairy").unwrap()).unwrap_err().to_string();
    assert!(text.contains("row 1 is not a valid report (negative catalogue version)"), "{text}");
    conn(&store).execute("UPDATE reports SET campaign = 'Dairy Winter'", []).unwrap();
    let text = store.campaigns().unwrap_err().to_string();
    assert!(text.contains("a stored campaign is not valid: campaign id \"Dairy Winter\""), "{text}");
}

#[test]
fn a_store_is_a_file_or_a_postgres_address_and_nothing_that_looks_like_another() {
    assert_eq!("reports.db".parse(), Ok(ReportsAt::File("reports.db".into())));
    assert_eq!("/var/lib/ledtrad/reports.db".parse(), Ok(ReportsAt::File("/var/lib/ledtrad/reports.db".into())));
    let url = "Postgresql://ledtrad@db:5432/reports";
    assert_eq!(url.parse(), Ok(ReportsAt::Postgres(url.into())));
    assert!(url.parse::<ReportsAt>().unwrap().is_shared());
    for typo in ["postgres:/ledtrad@db/reports", "mysql://u:secret@db/reports", "postgres:ledtrad@db"] {
        let err = typo.parse::<ReportsAt>().unwrap_err();
        assert!(err.contains("is neither a file nor a PostgreSQL address") && !err.contains("secret"), "{err}");
    }
}
