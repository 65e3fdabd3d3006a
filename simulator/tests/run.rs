//! The simulator end to end on the embedded broker: every device applies the pushed
//! catalogue, offers are shown, no consent is violated, and the same seed gives the same run.

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use ledtrad_operator::load::parse_catalogue;
use ledtrad_protocol::UnixTime;
use ledtrad_sim::home::{ConsentMode, Home};
use ledtrad_sim::run::{run, OwnBroker, RunOptions};
use ledtrad_sim::summary::Summary;

fn options(seed: u64, consent: ConsentMode) -> RunOptions {
    let start = UnixTime::parse_rfc3339("2026-11-23T00:00:00Z").unwrap();
    let catalogue = parse_catalogue(Path::new("home.toml"), ledtrad_sim::EXAMPLE_CATALOGUE, Some(start)).unwrap();
    let mut options = RunOptions::new(4, 1, seed, catalogue, start);
    options.broker = std::env::var("LEDTRAD_TEST_BROKER").ok().map(|u| u.parse().unwrap());
    options.population.consent = consent;
    options
}

fn first_population() -> ledtrad_sim::home::Population {
    ledtrad_sim::home::Population { consent: ConsentMode::Mixed, ..Default::default() }
}

/// The parts of a summary that depend only on the seed (not on timing).
fn outcome(s: &Summary) -> Vec<u64> {
    vec![
        s.decisions,
        s.shown,
        s.shown_personalised,
        s.accepted,
        s.dismissed,
        s.not_for_me,
        s.unanswered,
        s.signals,
        s.converted,
        s.held_out,
        s.reports_expected,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_consent_day_shows_offers_without_violations_and_repeats_exactly() {
    // The first run also keeps the fleet's reports, as the operator's collector does.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("reports.db");
    let first = run(RunOptions { reports: Some(db.clone().into()), ..options(11, ConsentMode::Mixed) }).await.unwrap();
    assert_eq!(first.reports_stored, Some(first.reports_seen));
    let store = ledtrad_operator::collect::ReportStore::open(&db).unwrap();
    assert_eq!(store.count().unwrap(), first.reports_seen);
    let devices: usize = (0..4).map(|h| Home::new(11, h, &first_population()).devices.len()).sum();
    assert_eq!(first.devices, devices);
    assert_eq!(first.catalogue_version_applied, devices);
    assert!(first.shown > 0, "{first:?}");
    assert_eq!(first.consent_violations, 0);
    assert_eq!(first.why_inconsistent, 0);
    // Every decision was made again without personal inputs; each one personal data changed
    // is marked, and none happened without consent.
    assert_eq!(first.decisions_redecided, first.decisions);
    assert_eq!((first.personal_influence_unmarked, first.personal_influence_without_consent), (0, 0));
    // The home's screens heard each other's counts, and no shown offer broke a home cap.
    assert_eq!(first.home_cap_violations, 0);
    assert!(first.home_caps_lag_ms.screens > 0, "{:?}", first.home_caps_lag_ms);
    assert_eq!(first.home_caps_lag_ms.late, 0);
    assert_eq!(first.reports_seen, first.reports_expected);
    assert_eq!(first.egress.measure.messages, first.reports_expected);
    assert!(first.egress_bytes_by_purpose.measure > 0);
    assert_eq!(first.egress.unexpected.messages, 0);
    assert!(first.decision_latency_us.samples as u64 == first.decisions);
    let full = first.full_decision_latency_us.samples;
    assert!(full > 0 && full <= first.decision_latency_us.samples, "{full} full decisions");
    // The scale figures: simulated time against wall time, the broker's traffic, memory, and
    // each device's uplink per day, which for reports is what the spy saw over device-days.
    assert!(first.sim_ratio > 1.0, "{}", first.sim_ratio);
    let device_traffic = first.egress.status.messages + first.egress.measure.messages;
    assert!(first.broker_messages > device_traffic, "the operator's catalogue is counted too");
    assert!(first.peak_rss_bytes > 0);
    let per_device_day = first.egress.measure.bytes as f64 / (first.devices as f64 * first.days as f64);
    assert!((first.uplink_bytes_per_device_day.measure - per_device_day).abs() < 0.1);
    let second = run(options(11, ConsentMode::Mixed)).await.unwrap();
    assert_eq!(outcome(&first), outcome(&second));
    let other = run(options(12, ConsentMode::Mixed)).await.unwrap();
    assert_ne!(outcome(&first), outcome(&other));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_consent_only_contextual_offers_are_shown_and_nothing_is_reported() {
    let summary = run(options(3, ConsentMode::None)).await.unwrap();
    assert!(summary.shown > 0);
    assert_eq!(summary.shown_personalised, 0);
    assert_eq!((summary.reports_seen, summary.reports_expected), (0, 0));
    // The spy on `#` saw only status traffic from the devices.
    assert!(summary.egress.status.messages >= summary.devices as u64);
    assert_eq!(
        summary.egress.measure.messages + summary.egress.request.messages + summary.egress.unexpected.messages,
        0
    );
    assert_eq!(summary.egress_bytes_by_purpose.measure + summary.egress_bytes_by_purpose.request, 0);
    assert_eq!(summary.consent_violations, 0);
    // Made again without personal inputs, no decision changes.
    assert_eq!((summary.decisions_redecided, summary.personal_influence), (summary.decisions, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_firmware_a_clean_link_loses_nothing_and_a_noisy_one_is_counted() {
    let firmware = |flips| RunOptions {
        sensors: ledtrad_sim::home::SensorPath::Firmware,
        link_flips: flips,
        ..options(21, ConsentMode::All)
    };
    let clean = run(firmware(0.0)).await.unwrap();
    let link = clean.sensor_link.expect("the firmware path reports its links");
    let population = ledtrad_sim::home::Population { consent: ConsentMode::All, ..Default::default() };
    let boards: u64 = (0..4)
        .flat_map(|h| Home::new(21, h, &population).devices)
        .filter(|d| d.kind != ledtrad_protocol::DeviceKind::Ereader)
        .count() as u64;
    assert_eq!(link.boards, boards, "fridges and lock screens have boards");
    // A summary per board for each 10-minute window closed (143 in a day of 144 steps), and
    // an event frame for each door edge, an opening and a closing each time a fridge is used.
    assert!(link.events_read > 0 && link.events_read % 2 == 0, "{link:?}");
    assert_eq!(link.frames_sent, boards * 143 + link.events_read);
    assert_eq!((link.frames_read, link.corrupt, link.dropped, link.incomplete), (link.frames_sent, 0, 0, 0));
    assert!(link.signals > 0 && clean.shown > 0 && clean.consent_violations == 0, "{clean:?}");

    let noisy = run(firmware(0.05)).await.unwrap();
    let link = noisy.sensor_link.expect("links");
    assert!(link.frames_flipped > 0);
    // Every damaged frame is caught (a flipped byte that became a delimiter splits one in two),
    // and none is read as good.
    assert_eq!(link.frames_read, link.frames_sent - link.frames_flipped);
    assert!(link.corrupt >= link.frames_flipped && link.corrupt <= 2 * link.frames_flipped, "{link:?}");
    assert!(link.dropped <= link.frames_flipped, "{link:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mutual_tls_each_agent_has_its_certificate_and_the_run_is_the_same() {
    if !ledtrad_tests::mosquitto_installed() {
        return;
    }
    let plain = run(RunOptions { own_broker: OwnBroker::Mosquitto, broker: None, ..options(11, ConsentMode::Mixed) })
        .await
        .unwrap();
    let tls = run(RunOptions { own_broker: OwnBroker::MosquittoTls, broker: None, ..options(11, ConsentMode::Mixed) })
        .await
        .unwrap();
    assert!(tls.tls && !plain.tls);
    assert_eq!((plain.broker.as_str(), tls.broker.as_str()), ("mosquitto", "mosquitto (TLS)"));
    // Every agent got in with its own certificate (under fleet.acl, its identity gives it its
    // own status topic only) and applied the catalogue; the audit saw every report.
    assert_eq!(tls.catalogue_version_applied, tls.devices);
    assert_eq!((tls.consent_violations, tls.why_inconsistent), (0, 0));
    assert_eq!(tls.reports_seen, tls.reports_expected);
    assert_eq!(outcome(&plain), outcome(&tls), "the transport does not change what happens");
    assert!(tls.broker_cpu_seconds.is_some_and(|s| s >= 0.0) && tls.cpu_seconds > 0.0, "{tls:?}");
}
