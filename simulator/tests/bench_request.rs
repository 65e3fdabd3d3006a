//! `ledtrad-sim bench request` end to end on the embedded broker (the Mosquitto line needs the
//! `mosquitto` program, which the README's bench section covers).

use ledtrad_sim::request::{bench, BenchBroker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_round_trip_is_answered_by_the_offer_service_through_the_embedded_broker() {
    let figures = bench(&BenchBroker::Embedded, 10).await.expect("bench runs");
    assert_eq!((figures.bench, figures.broker.as_str()), ("request", "embedded"));
    assert_eq!((figures.requests, figures.answered), (10, 10));
    assert!(figures.p50_us > 0.0 && figures.p50_us <= figures.p99_us && figures.p99_us <= figures.p999_us);
    assert!(figures.rps > 0.0);
}

#[test]
fn a_broker_is_named_or_its_address_given() {
    assert_eq!("embedded".parse::<BenchBroker>(), Ok(BenchBroker::Embedded));
    assert_eq!("mosquitto".parse::<BenchBroker>(), Ok(BenchBroker::Mosquitto));
    assert!(matches!("mqtt://127.0.0.1:1883".parse::<BenchBroker>(), Ok(BenchBroker::Url(_))));
    let err = "rabbit".parse::<BenchBroker>().unwrap_err();
    assert!(err.contains("\"rabbit\"") && err.contains("use \"embedded\", \"mosquitto\""), "{err}");
}

/// Through a Mosquitto of the bench's own (the shipped development config). Skipped, saying so,
/// where `mosquitto` is not installed, unless `LEDTRAD_REQUIRE_MOSQUITTO` is set (as in CI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_round_trip_is_answered_through_a_mosquitto_of_the_benchs_own() {
    if !ledtrad_tests::mosquitto_installed() {
        return;
    }
    let figures = bench(&BenchBroker::Mosquitto, 20).await.expect("bench runs");
    assert_eq!((figures.broker.as_str(), figures.requests, figures.answered), ("mosquitto", 20, 20));
}
