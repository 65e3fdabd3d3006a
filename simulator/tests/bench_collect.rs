//! `ledtrad-sim bench collect` end to end: every store stores every report once, through a
//! Mosquitto of the bench's own. Needs Mosquitto and PostgreSQL; skipped, saying so, where
//! either is missing, unless `LEDTRAD_REQUIRE_MOSQUITTO` / `LEDTRAD_REQUIRE_POSTGRES` are set
//! (as in CI).

use ledtrad_sim::collect_bench::{bench, CollectOptions, Setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_store_stores_every_report_once_and_says_how_fast() {
    if !ledtrad_tests::mosquitto_installed() {
        return;
    }
    // The bench makes its own databases on the server of the test's.
    let Some(database) = tokio::task::block_in_place(|| ledtrad_tests::TestDatabase::create("bench")) else {
        return;
    };
    let options = CollectOptions {
        setups: vec![Setup::Sqlite, Setup::Postgres, Setup::Postgres2],
        paced: 30,
        rate: 200,
        burst: 60,
        postgres: database.url().into(),
    };
    let figures = bench(&options).await.expect("bench runs");
    let stores: Vec<_> = figures.iter().map(|f| (f.store, f.collectors)).collect();
    assert_eq!(stores, [("sqlite", 1), ("postgres", 1), ("postgres-2", 2)]);
    for f in &figures {
        assert_eq!((f.bench, f.stored, f.duplicates), ("collect", 90, 0), "{f:?}");
        assert!(f.p50_ms > 0.0 && f.p50_ms <= f.p99_ms && f.reports_per_s > 0.0, "{f:?}");
    }
}

#[test]
fn a_store_is_named() {
    assert_eq!("postgres-2".parse::<Setup>(), Ok(Setup::Postgres2));
    let err = "mysql".parse::<Setup>().unwrap_err();
    assert!(err.contains("\"mysql\"") && err.contains("use sqlite, postgres or postgres-2"), "{err}");
}
