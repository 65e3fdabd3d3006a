//! The laboratory report as a reader sees it: the page screenshotted by headless Chromium.
//! Skipped, saying so, where `chromium` is not installed, unless `LEDTRAD_REQUIRE_CHROMIUM` is
//! set (as in CI). With `LEDTRAD_KEEP_SCREENSHOT=DIR` the page and its screenshot are kept in
//! DIR, to look at.

use std::path::Path;

use ledtrad_sim::lab_report::{
    chromium, latency_histogram, page, screenshot, DayFigures, LabReport, Parameter, PolicyRun, UpliftFigure,
    INSTALL_HINT,
};

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 3000;

/// A policy's fortnight; `lift` sets it apart from the other.
fn build_policy(policy: &str, lift: u64) -> PolicyRun {
    let days: Vec<DayFigures> = (1..=14u32)
        .map(|day| {
            let d = u64::from(day);
            DayFigures {
                day,
                shown: 2_000 + (d * 137) % 600,
                accepted: 180 + lift * 20 + (d * 53) % 90,
                dismissed: 700 - lift * 60 + (d * 71) % 160,
                revocations: d % 3,
                people: 2_400,
                personalise: 1_700 - d * (6 + lift * 4),
                measure: 1_300 - d * 5,
                request: 1_000 - d * (3 + lift),
            }
        })
        .collect();
    let nanos: Vec<u64> = (0..5_000u64).map(|i| 600 + (i * i * (7 + lift)) % (40_000 + lift * 400_000)).collect();
    let sum = |pick: fn(&DayFigures) -> u64| days.iter().map(pick).sum::<u64>();
    PolicyRun {
        policy: policy.to_string(),
        devices: 3_000,
        people: 2_400,
        decisions: 96_000,
        shown: sum(|d| d.shown),
        accepted: sum(|d| d.accepted),
        dismissed: sum(|d| d.dismissed),
        not_for_me: sum(|d| d.dismissed) / 4,
        converted: 900 + lift * 300,
        revocations: 40 + lift * 70,
        held_out: 3_100,
        consent_violations: 0,
        uplift: Some(UpliftFigure {
            treatment_rate: 0.041 + lift as f64 * 0.01,
            holdout_rate: 0.033,
            points: 0.8 + lift as f64 * 1.0,
            low: -0.4 + lift as f64 * 0.9,
            high: 2.0 + lift as f64 * 1.1,
            held_out: 3_100,
            treated: 30_000,
            needed: Some(100),
            enough_held_out: true,
            clamped: false,
        }),
        days,
        latency_us: latency_histogram(&nanos),
        uplink_bytes_per_device_day: vec![
            ("status".to_string(), 96.0),
            ("measure".to_string(), 410.0 - lift as f64 * 120.0),
            ("request".to_string(), 1_250.0 + lift as f64 * 900.0),
        ],
    }
}

fn build_report() -> LabReport {
    let parameter = |name: &str, value: &str, source: Option<&str>| Parameter {
        name: name.to_string(),
        value: value.to_string(),
        source: source.map(str::to_string),
    };
    LabReport {
        title: "clues vs blunt, 1,000 homes, 14 days".to_string(),
        scenario: vec![
            parameter("homes", "1,000", None),
            parameter("days", "14", None),
            parameter("seed", "7", None),
            parameter("share who would share data for a benefit", "38%", Some("a survey of 1,000 Swedes, 2024")),
            parameter("share who want to share as little as possible", "61%", Some("a survey of 1,000 Swedes, 2024")),
        ],
        assumptions: vec![
            "Each person answers an offer within the hour or not at all.".to_string(),
            "People who dismiss the same kind of offer three times revoke personalise.".to_string(),
            "Consent drawn at the start holds unless a person revokes it.".to_string(),
        ],
        policies: vec![build_policy("clues", 1), build_policy("blunt", 0)],
    }
}

/// The width and height in a PNG's header (its first chunk, IHDR, comes right after the
/// signature).
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "the PNG signature");
    assert_eq!(&png[12..16], b"IHDR", "the first chunk is the header");
    let word = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    (word(16), word(20))
}

/// Whether headless Chromium is there; without it a test skips, saying so, or fails where
/// `LEDTRAD_REQUIRE_CHROMIUM` is set. Past this check every failure to screenshot fails the test.
fn chromium_installed() -> bool {
    ledtrad_tests::present_or_skip(
        chromium().is_some(),
        "chromium is not installed",
        ledtrad_tests::require::REQUIRE_CHROMIUM,
        INSTALL_HINT,
    )
}

fn shoot(html: &str, dir: &Path, name: &str) -> Vec<u8> {
    let (page_path, png_path) = (dir.join(format!("{name}.html")), dir.join(format!("{name}.png")));
    std::fs::write(&page_path, html).expect("the page is written");
    screenshot(&page_path, &png_path, WIDTH, HEIGHT).expect("chromium screenshots the page");
    std::fs::read(&png_path).expect("the screenshot is there")
}

#[test]
fn the_report_page_renders_in_chromium_at_the_size_asked_for() {
    if !chromium_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let report = shoot(&page(&build_report()), dir.path(), "report");
    let blank = shoot("<html></html>", dir.path(), "blank");
    assert_eq!(png_size(&report), (WIDTH, HEIGHT));
    assert_eq!(png_size(&blank), (WIDTH, HEIGHT));
    // A blank page compresses to little; tables, text and five plots do not.
    assert!(report.len() > 30_000, "the report's screenshot is {} bytes", report.len());
    assert!(
        report.len() >= 3 * blank.len(),
        "the report's screenshot ({} bytes) is not three times a blank page's ({} bytes)",
        report.len(),
        blank.len()
    );
    if let Some(keep) = std::env::var_os("LEDTRAD_KEEP_SCREENSHOT") {
        let keep = Path::new(&keep);
        std::fs::create_dir_all(keep).expect("the directory to keep the screenshot in");
        for file in ["report.html", "report.png"] {
            std::fs::copy(dir.path().join(file), keep.join(file)).expect("the screenshot is kept");
        }
    }
}

#[test]
fn a_page_that_is_not_there_is_named() {
    if !chromium_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let missing = dir.path().join("missing.html");
    let err = screenshot(&missing, &dir.path().join("missing.png"), WIDTH, HEIGHT).unwrap_err();
    assert!(format!("{err:#}").contains("missing.html"), "{err:#}");
}
