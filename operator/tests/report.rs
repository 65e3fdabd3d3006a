//! `ledtrad-op report`: the table, the JSON and the HTML page from a report database, and its
//! errors.

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ledtrad_operator::collect::ReportStore;
use ledtrad_operator::report::load_summary;
use ledtrad_operator::uplift::CampaignSummary;
use ledtrad_protocol::report::{add_noise, Arm, Report};
use ledtrad_protocol::{CampaignId, FleetId, UnixTime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod common;
use common::op;

/// A report database of fleet `home` with five days of campaign `dairy-winter`: 120 treatment
/// devices a day (converting 12% of impressions) and 60 holdout devices (6%), noised as devices
/// do, plus a few reports of campaign `bread` from fleet `office`.
fn build_db(dir: &Path) -> PathBuf {
    let path = dir.join("reports.db");
    let store = ReportStore::open(&path).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let noised = |count: u32, rng: &mut StdRng| add_noise(count, 1.0, || rng.random::<f64>());
    let (home, office) = (FleetId::try_new("home").unwrap(), FleetId::try_new("office").unwrap());
    for day in 20_400..20_405 {
        for (arm, devices, convert) in [(Arm::Treatment, 120, 0.12), (Arm::Holdout, 60, 0.06)] {
            for _ in 0..devices {
                let impressions = rng.random_range(1..=5);
                let count = |p: f64, rng: &mut StdRng| -> u32 {
                    (0..impressions).map(|_| u32::from(rng.random::<f64>() < p)).sum()
                };
                let treated = arm == Arm::Treatment;
                let accepts = if treated { count(0.3, &mut rng) } else { 0 };
                let dismissals = if treated { count(0.4, &mut rng) } else { 0 };
                let conversions = count(convert, &mut rng);
                let report = Report {
                    campaign: CampaignId::try_new("dairy-winter").unwrap(),
                    arm,
                    day,
                    catalogue_version: 2,
                    epsilon: 1.0,
                    impressions: noised(impressions, &mut rng),
                    accepts: noised(accepts, &mut rng),
                    dismissals: noised(dismissals, &mut rng),
                    conversions: noised(conversions, &mut rng),
                    id: None,
                };
                store.insert(&home, &report, UnixTime(1_762_600_000)).unwrap();
            }
        }
    }
    let mut bread = Report {
        campaign: CampaignId::try_new("bread").unwrap(),
        arm: Arm::Treatment,
        day: 20_400,
        catalogue_version: 1,
        epsilon: 1.0,
        impressions: 2,
        accepts: 0,
        dismissals: 1,
        conversions: 0,
        id: None,
    };
    store.insert(&office, &bread, UnixTime(1_762_600_000)).unwrap();
    bread.day += 1;
    store.insert(&office, &bread, UnixTime(1_762_600_000)).unwrap();
    path
}

#[test]
fn report_prints_a_table_per_arm_with_the_uplift_and_suppression() {
    let dir = tempfile::tempdir().unwrap();
    let db = build_db(dir.path());
    let (code, stdout, stderr) = op(&["report", "--db", db.to_str().unwrap(), "--campaign", "dairy-winter"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(lines[0], "campaign 'dairy-winter', every fleet: 900 reports over 5 days, 2025-11-08 to 2025-11-12");
    assert!(lines[2].starts_with("arm ") && lines[2].contains("accept rate (95% CI)"), "{stdout}");
    assert!(lines[3].starts_with("treatment       120          600  "), "{stdout}");
    assert!(lines[4].starts_with("holdout          60          300  "), "{stdout}");
    assert!(lines[6].starts_with("uplift: +") && lines[6].contains("points (95% CI "), "{stdout}");
    assert!(stdout.contains("suppressed: none (every arm and day has at least 50 devices)"), "{stdout}");
    assert!(stdout.contains("reports carry no device id"), "{stdout}");
    // With a higher minimum the holdout arm is suppressed, and so is the uplift.
    let (code, stdout, _) = op(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "--campaign",
        "dairy-winter",
        "--fleet",
        "home",
        "--min-devices",
        "100",
    ]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("holdout          60          300            —  suppressed: fewer than 100 devices"),
        "{stdout}"
    );
    assert!(stdout.contains("uplift: none: the holdout arm has too few devices to report"), "{stdout}");
    assert!(stdout.contains("the holdout arm and all its days (60 devices)"), "{stdout}");
}

#[test]
fn report_json_is_one_object_that_reads_back_as_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let db = build_db(dir.path());
    let (code, stdout, stderr) =
        op(&["report", "--db", db.to_str().unwrap(), "--campaign", "dairy-winter", "--fleet", "home", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let parsed: CampaignSummary = serde_json::from_str(&stdout).unwrap();
    let campaign = CampaignId::try_new("dairy-winter").unwrap();
    let fleet = FleetId::try_new("home").unwrap();
    assert_eq!(parsed, load_summary(&db.clone().into(), &campaign, Some(&fleet), 50).unwrap());
    assert_eq!(serde_json::to_string(&parsed).unwrap() + "\n", stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["arms"][0]["arm"], "treatment");
    assert_eq!(json["arms"][1]["devices"], 60);
    assert_eq!(json["arms"][1]["figures"]["accept_rate"], serde_json::Value::Null);
    assert_eq!(json["arms"][0]["daily"][4]["date"], "2025-11-12");
    assert!(json["uplift"]["absolute"]["low"].as_f64().unwrap() < json["uplift"]["absolute"]["high"].as_f64().unwrap());
}

#[test]
fn report_html_writes_a_page_with_the_table_and_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let db = build_db(dir.path());
    let page = dir.path().join("dairy.html");
    let (code, stdout, stderr) =
        op(&["report", "--db", db.to_str().unwrap(), "--campaign", "dairy-winter", "--html", page.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("campaign 'dairy-winter'"), "the table is still printed: {stdout}");
    assert!(stderr.contains("wrote the report page") && stderr.contains("dairy.html"), "{stderr}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<table>") && html.contains("<tr><td>treatment</td><td>120</td><td>600</td>"), "{html}");
    assert!(html.contains("<svg") && html.contains("holdout: conversion rate</text>"), "{html}");
    assert!(!html.contains("<script") && !html.contains("href="), "nothing is fetched or run");
}

#[test]
fn report_errors_name_the_database_and_the_campaigns_there_are() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.db");
    let (code, _, stderr) = op(&["report", "--db", missing.to_str().unwrap(), "--campaign", "dairy-winter"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("none.db' does not exist"), "{stderr}");
    assert!(stderr.contains("written by `ledtrad-op serve --reports FILE`"), "{stderr}");
    assert!(!missing.exists());
    let db = build_db(dir.path());
    let (code, _, stderr) = op(&["report", "--db", db.to_str().unwrap(), "--campaign", "milk"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no reports for campaign 'milk'"), "{stderr}");
    assert!(stderr.contains("campaigns with reports: bread, dairy-winter"), "{stderr}");
    let (code, _, stderr) =
        op(&["report", "--db", db.to_str().unwrap(), "--campaign", "dairy-winter", "--min-devices", "0"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--min-devices"), "{stderr}");
}

#[test]
fn report_without_a_campaign_lists_the_campaigns_with_their_reports_days_and_fleets() {
    let dir = tempfile::tempdir().unwrap();
    let db = build_db(dir.path());
    let path = db.to_str().unwrap();
    let (code, stdout, stderr) = op(&["report", "--db", path]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<_> = stdout.lines().collect();
    assert!(lines[0].ends_with("reports.db': 2 campaigns"), "{stdout}");
    assert!(lines[1].starts_with("campaign") && lines[1].ends_with("fleets"), "{stdout}");
    let fields = |line: &str| line.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(fields(lines[2]), ["bread", "2", "2", "2025-11-08", "2025-11-09", "office"], "{stdout}");
    assert_eq!(fields(lines[3]), ["dairy-winter", "900", "5", "2025-11-08", "2025-11-12", "home"], "{stdout}");
    assert_eq!(lines[4], "read one with --campaign NAME");

    let (code, stdout, stderr) = op(&["report", "--db", path, "--fleet", "office", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let campaigns = json["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), 1, "{json}");
    assert_eq!(campaigns[0]["campaign"], "bread");
    assert_eq!((campaigns[0]["reports"].as_u64(), campaigns[0]["fleets"][0].as_str()), (Some(2), Some("office")));

    let (code, stdout, _) = op(&["report", "--db", path, "--fleet", "school"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("holds no reports from fleet 'school' yet"), "{stdout}");
    let (code, _, stderr) = op(&["report", "--db", path, "--html", dir.path().join("p.html").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--html writes one campaign's page: add --campaign NAME"), "{stderr}");
    let (code, _, stderr) = op(&["report", "--db", dir.path().join("none.db").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("none.db' does not exist"), "{stderr}");
}
