//! The laboratory report: one self-contained HTML page (inline style and SVG, no scripts,
//! nothing fetched) saying what a run, or a comparison of policies, simulated, what the people
//! model assumes, each policy's figures side by side and five plots of them; and a screenshot
//! of it with headless Chromium, to look at it as a reader would.

mod figures;
mod plots;
mod screenshot;
mod svg;

pub use figures::{
    latency_histogram, DayFigures, LabReport, LatencyBucket, Parameter, PolicyRun, UpliftFigure, LATENCY_EDGES_US,
};
pub use screenshot::{chromium, screenshot, INSTALL_HINT};

use std::fmt::{self, Write as _};

use ledtrad_operator::html::escape;
use ledtrad_operator::report::count;
/// The report as an HTML page.
pub fn page(report: &LabReport) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_page(&mut out, report);
    out
}

fn write_page(out: &mut String, report: &LabReport) -> fmt::Result {
    let title = escape(&report.title);
    write!(
        out,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ledtrad laboratory report: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.45; }}
h2 {{ margin: 1.6rem 0 .6rem; font-size: 1.3rem; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ padding: .3rem .75rem; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }}
th:first-child, td:first-child {{ text-align: left; }}
thead th {{ border-bottom: 2px solid #999; }}
table.scenario td, table.scenario th {{ text-align: left; white-space: normal; }}
.none {{ color: #777; }}
.bad {{ color: #b00020; font-weight: 600; }}
.note {{ color: #444; font-size: .95rem; }}
figure {{ margin: .5rem 0 1rem; }}
figcaption {{ color: #444; font-size: .95rem; margin-top: .4rem; }}
svg {{ max-width: 100%; height: auto; }}
svg text {{ font-family: system-ui, sans-serif; font-size: 12px; fill: #333; }}
</style>
</head>
<body>
<h1>{title}</h1>
"#
    )?;
    write_scenario(out, &report.scenario)?;
    write_assumptions(out, &report.assumptions)?;
    write_summary(out, &report.policies)?;
    let policies = &report.policies;
    figure(
        out,
        "Daily acceptance and dismissal",
        "Each day's accepted and dismissed offers as shares of the offers shown that day; a gap is a \
         day that showed none.",
        |out| plots::rates(out, policies),
    )?;
    figure(out, "Consent over time", "The share of people granting each purpose at each day's end.", |out| {
        plots::consent(out, policies)
    })?;
    figure(
        out,
        "Decision latency",
        "How long the engine took per decision, as shares of each policy's decisions per bucket.",
        |out| plots::latency(out, policies),
    )?;
    figure(
        out,
        "Uplift in conversion rate",
        "Conversions per shown decision (treatment) minus conversions per held-out decision \
         (holdout), in percentage points, with the 95% confidence interval. An interval that \
         crosses zero does not tell the policy's offers from no offers.",
        |out| plots::uplift(out, policies),
    )?;
    figure(out, "Uplink traffic", "Payload bytes each device sent per simulated day, by purpose.", |out| {
        plots::uplink(out, policies)
    })?;
    out.push_str("</body>\n</html>\n");
    Ok(())
}

fn write_scenario(out: &mut String, scenario: &[Parameter]) -> fmt::Result {
    writeln!(out, "<h2>Scenario</h2>")?;
    if scenario.is_empty() {
        return writeln!(out, r#"<p class="note">No parameters were recorded.</p>"#);
    }
    writeln!(
        out,
        r#"<table class="scenario">
<thead><tr><th>parameter</th><th>value</th><th>source</th></tr></thead>
<tbody>"#
    )?;
    for p in scenario {
        let source = p.source.as_deref().map_or_else(|| r#"<span class="none">—</span>"#.to_string(), escape);
        writeln!(out, "<tr><td>{}</td><td>{}</td><td>{source}</td></tr>", escape(&p.name), escape(&p.value))?;
    }
    writeln!(out, "</tbody>\n</table>")
}

fn write_assumptions(out: &mut String, assumptions: &[String]) -> fmt::Result {
    writeln!(out, "<h2>What the model assumes</h2>")?;
    if assumptions.is_empty() {
        return writeln!(out, r#"<p class="note">No assumptions were recorded.</p>"#);
    }
    writeln!(out, "<ul>")?;
    for a in assumptions {
        writeln!(out, "<li>{}</li>", escape(a))?;
    }
    writeln!(out, "</ul>")
}

/// One row of the summary table: its label and how to show a policy's cell.
type Row = (&'static str, fn(&PolicyRun) -> String);

const ROWS: [Row; 11] = [
    ("devices", |p| counted(p.devices)),
    ("people", |p| counted(p.people)),
    ("decisions", |p| counted(p.decisions)),
    ("offers shown", |p| counted(p.shown)),
    ("acceptance rate", |p| rate(p.accepted, p.shown)),
    ("dismissal rate", |p| rate(p.dismissed, p.shown)),
    ("\u{201c}not for me\u{201d}", |p| counted(p.not_for_me)),
    ("conversions", |p| counted(p.converted)),
    ("revocations", |p| counted(p.revocations)),
    ("consent violations", |p| {
        let n = counted(p.consent_violations);
        if p.consent_violations == 0 {
            n
        } else {
            format!(r#"<span class="bad">{n}</span>"#)
        }
    }),
    ("uplift in conversion rate (95% CI)", |p| uplift_text(p.uplift.as_ref())),
];

fn write_summary(out: &mut String, policies: &[PolicyRun]) -> fmt::Result {
    writeln!(out, "<h2>Results</h2>")?;
    if policies.is_empty() {
        return writeln!(out, r#"<p class="note">No policy was run.</p>"#);
    }
    write!(
        out,
        r#"<table class="summary">
<thead><tr><th></th>"#
    )?;
    for p in policies {
        write!(out, "<th>{}</th>", escape(&p.policy))?;
    }
    writeln!(out, "</tr></thead>\n<tbody>")?;
    for (label, cell) in ROWS {
        write!(out, "<tr><td>{label}</td>")?;
        for p in policies {
            write!(out, "<td>{}</td>", cell(p))?;
        }
        writeln!(out, "</tr>")?;
    }
    writeln!(out, "</tbody>\n</table>")?;
    writeln!(
        out,
        r#"<p class="note">Rates are shares of the offers shown; dismissals include &ldquo;not for me&rdquo;. Uplift is in percentage points (pp), treatment over holdout.</p>"#
    )
}

/// A heading, the plot and what it shows.
fn figure(
    out: &mut String,
    heading: &str,
    caption: &str,
    plot: impl FnOnce(&mut String) -> fmt::Result,
) -> fmt::Result {
    writeln!(out, "<h2>{}</h2>\n<figure>", escape(heading))?;
    plot(out)?;
    writeln!(out, "<figcaption>{}</figcaption>\n</figure>", escape(caption))
}

/// `n` with thousands separated by commas.
fn counted(n: u64) -> String {
    usize::try_from(n).map_or_else(|_| n.to_string(), count)
}

/// `part` of `whole` as a percentage with one decimal; a dash when `whole` is 0.
fn rate(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "—".to_string();
    }
    format!("{:.1}%", 100.0 * part as f64 / whole as f64)
}

/// The uplift and its interval in one line, saying when it was clamped to ±100 points, or
/// that too few were held out to tell; a dash without one, or with a figure that is not a
/// number.
fn uplift_text(uplift: Option<&UpliftFigure>) -> String {
    match uplift {
        Some(u) if u.too_few().is_some() => u.too_few().unwrap_or_default(),
        Some(u) if [u.points, u.low, u.high].iter().all(|v| v.is_finite()) => {
            let clamped = if u.clamped { ", clamped to ±100" } else { "" };
            format!("{:+.1} pp ({:+.1} to {:+.1}{clamped})", u.points, u.low, u.high)
        }
        _ => "—".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn build_policy(policy: &str, days: u32) -> PolicyRun {
        PolicyRun {
            policy: policy.to_string(),
            devices: 3_000,
            people: 2_400,
            decisions: 123_456,
            shown: 12_000,
            accepted: 1_500,
            dismissed: 4_000,
            not_for_me: 900,
            converted: 700,
            revocations: 12,
            held_out: 1_200,
            consent_violations: 0,
            uplift: Some(UpliftFigure {
                treatment_rate: 0.06,
                holdout_rate: 0.04,
                points: 2.0,
                low: 0.5,
                high: 3.5,
                held_out: 1_200,
                treated: 12_000,
                needed: Some(100),
                enough_held_out: true,
                clamped: false,
            }),
            days: (1..=days)
                .map(|day| DayFigures {
                    day,
                    shown: 800 + u64::from(day) * 10,
                    accepted: 100 + u64::from(day),
                    dismissed: 250,
                    revocations: 1,
                    people: 2_400,
                    personalise: 1_500 - u64::from(day),
                    measure: 1_100,
                    request: 900,
                })
                .collect(),
            latency_us: latency_histogram(&[800, 1_500, 1_900, 3_000, 40_000, 7_000_000]),
            uplink_bytes_per_device_day: vec![
                ("status".to_string(), 12.3),
                ("measure".to_string(), 240.0),
                ("request".to_string(), 1_310.5),
            ],
        }
    }

    fn build_report(policies: Vec<PolicyRun>) -> LabReport {
        LabReport {
            title: "clues vs blunt, 1,000 homes, 14 days".to_string(),
            scenario: vec![
                Parameter { name: "homes".to_string(), value: "1,000".to_string(), source: None },
                Parameter {
                    name: "share sharing for a benefit".to_string(),
                    value: "38%".to_string(),
                    source: Some("a survey of 1,000 Swedes".to_string()),
                },
            ],
            assumptions: vec!["People who dismiss an offer twice say it is not for them.".to_string()],
            policies,
        }
    }

    /// Every "inf" in `html` is part of a word, not Rust's text for an infinite float.
    fn no_infinity(html: &str) -> bool {
        html.match_indices("inf").all(|(i, _)| html[i + 3..].starts_with(|c: char| c.is_ascii_alphabetic()))
    }

    #[test]
    fn hostile_text_is_escaped_everywhere() {
        let mut policy = build_policy("<script>alert('policy')</script>", 3);
        policy.uplink_bytes_per_device_day.push(("<script>purpose</script>".to_string(), 1.0));
        let mut report = build_report(vec![policy]);
        report.title = "<script>alert(1)</script> & \"more\"".to_string();
        report.scenario[0].source = Some("<img src=x onerror=alert(1)>".to_string());
        report.assumptions.push("</li><script>x</script>".to_string());
        let html = page(&report);
        for absent in ["<script", "<img", "<link", "src=\"", "href=", "@import", "url("] {
            assert!(!html.contains(absent), "{absent} in {html}");
        }
        assert!(html.contains("<h1>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;more&quot;</h1>"), "{html}");
        assert!(html.contains("<th>&lt;script&gt;alert(&#39;policy&#39;)&lt;/script&gt;</th>"), "{html}");
    }

    #[test]
    fn a_report_with_nothing_shown_and_nothing_measured_has_no_nan_or_infinity() {
        let empty = PolicyRun {
            policy: "empty".to_string(),
            devices: 0,
            people: 0,
            decisions: 0,
            shown: 0,
            accepted: 0,
            dismissed: 0,
            not_for_me: 0,
            converted: 0,
            revocations: 0,
            held_out: 0,
            consent_violations: 0,
            uplift: None,
            days: Vec::new(),
            latency_us: Vec::new(),
            uplink_bytes_per_device_day: Vec::new(),
        };
        // Figures that are not numbers, and days with nobody in them, beside it.
        let mut odd = build_policy("odd", 2);
        odd.uplift = Some(UpliftFigure {
            treatment_rate: f64::NAN,
            holdout_rate: 0.0,
            points: f64::NAN,
            low: f64::NEG_INFINITY,
            high: f64::INFINITY,
            held_out: 1_200,
            treated: 12_000,
            needed: Some(100),
            enough_held_out: true,
            clamped: false,
        });
        odd.days[1] = DayFigures {
            day: 2,
            shown: 0,
            accepted: 0,
            dismissed: 0,
            revocations: 0,
            people: 0,
            personalise: 0,
            measure: 0,
            request: 0,
        };
        odd.uplink_bytes_per_device_day =
            vec![("status".to_string(), f64::NAN), ("measure".to_string(), f64::INFINITY)];
        odd.latency_us =
            vec![LatencyBucket { upper_us: Some(f64::NAN), count: 3 }, LatencyBucket { upper_us: None, count: 1 }];
        for report in [build_report(vec![empty.clone()]), build_report(vec![empty, odd]), build_report(Vec::new())] {
            let html = page(&report);
            assert!(!html.contains("NaN") && no_infinity(&html), "{html}");
            assert_eq!(html.matches("<svg").count(), 5);
        }
        let html = page(&build_report(Vec::new()));
        assert!(html.contains("No policy was run."), "{html}");
        assert!(no_infinity("information") && !no_infinity("x=\"inf\""));
    }

    #[test]
    fn latency_buckets_close_on_their_edges() {
        let histogram = latency_histogram(&[0, 1_000, 1_001, 2_000, 4_999_999, 5_000_000, 5_000_001, u64::MAX]);
        assert_eq!(histogram.len(), 13);
        let count = |upper: Option<f64>| histogram.iter().find(|b| b.upper_us == upper).map(|b| b.count);
        assert_eq!(count(Some(1.0)), Some(2), "0 and exactly 1,000 ns are at most 1 µs");
        assert_eq!(count(Some(2.0)), Some(2));
        assert_eq!(count(Some(5_000.0)), Some(2));
        assert_eq!(count(None), Some(2), "5,000,001 ns and more are in the open bucket");
        assert_eq!(histogram.iter().map(|b| b.count).sum::<u64>(), 8);
        assert!(latency_histogram(&[]).iter().all(|b| b.count == 0));
    }

    #[test]
    fn the_open_bucket_survives_json() {
        let report = build_report(vec![build_policy("clues", 2)]);
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains(r#"{"upper_us":null,"count":1}"#), "{json}");
        assert_eq!(serde_json::from_str::<LabReport>(&json).unwrap(), report);
    }

    #[test]
    fn the_summary_has_one_column_per_policy() {
        let mut blunt = build_policy("blunt", 14);
        blunt.consent_violations = 2;
        blunt.uplift = None;
        let html = page(&build_report(vec![build_policy("clues", 14), blunt, build_policy("quiet", 14)]));
        assert!(html.contains("<thead><tr><th></th><th>clues</th><th>blunt</th><th>quiet</th></tr></thead>"), "{html}");
        let summary = &html[html.find(r#"<table class="summary">"#).unwrap()..];
        let body = &summary[..summary.find("</tbody>").unwrap()];
        let rows: Vec<&str> = body.lines().filter(|l| l.starts_with("<tr>")).collect();
        assert_eq!(rows.len(), ROWS.len());
        assert!(rows.iter().all(|r| r.matches("<td>").count() == 4), "{rows:#?}");
        assert!(html.contains("<tr><td>decisions</td><td>123,456</td>"), "{html}");
        assert!(html.contains("<tr><td>acceptance rate</td><td>12.5%</td>"), "{html}");
        assert!(html.contains("<tr><td>dismissal rate</td><td>33.3%</td>"), "{html}");
        assert!(html.contains(r#"<td><span class="bad">2</span></td>"#), "{html}");
        assert!(html.contains("<td>+2.0 pp (+0.5 to +3.5)</td><td>—</td>"), "{html}");
    }

    /// The demo once printed "uplift in conversion rate −84.61 points (95% CI −104.23 to
    /// −65.00)" from one held-out decision.
    #[test]
    fn one_held_out_decision_is_too_few_to_tell_and_draws_no_interval() {
        let mut tiny = build_policy("clues", 3);
        tiny.uplift = Some(UpliftFigure {
            treatment_rate: 0.154,
            holdout_rate: 1.0,
            points: -84.61,
            low: -100.0,
            high: -65.0,
            held_out: 1,
            treated: 212,
            needed: Some(50),
            enough_held_out: false,
            clamped: true,
        });
        assert_eq!(
            uplift_text(tiny.uplift.as_ref()),
            "too few held out to tell (1 decision held out, 212 treated; needs at least 50)"
        );
        let html = page(&build_report(vec![tiny]));
        assert!(
            html.contains("<td>too few held out to tell (1 decision held out, 212 treated; needs at least 50)</td>")
        );
        assert!(!html.contains("84.6") && !html.contains("-100") && !html.contains("−100"), "{html}");
        let plot = &html[html.find(r#"id="plot-uplift""#).unwrap()..];
        assert!(plot[..plot.find("</svg>").unwrap()].contains(">no uplift</text>"));
    }

    #[test]
    fn an_interval_clamped_to_100_points_says_so() {
        let mut sure = build_policy("clues", 3);
        sure.uplift = Some(UpliftFigure {
            treatment_rate: 1.0,
            holdout_rate: 0.017,
            points: 98.333,
            low: 95.095,
            high: 100.0,
            held_out: 60,
            treated: 60,
            needed: Some(30),
            enough_held_out: true,
            clamped: true,
        });
        assert_eq!(uplift_text(sure.uplift.as_ref()), "+98.3 pp (+95.1 to +100.0, clamped to ±100)");
    }

    #[test]
    fn each_of_the_five_plots_is_there_with_its_title() {
        let html = page(&build_report(vec![build_policy("clues", 14), build_policy("blunt", 14)]));
        assert!(html.starts_with("<!doctype html>") && html.ends_with("</html>\n"));
        assert_eq!(html.matches("<svg").count(), 5);
        for title in [
            "Daily acceptance and dismissal rates per policy",
            "Consent over time",
            "Decision latency",
            "Uplift in conversion rate",
            "Uplink bytes per device per day",
        ] {
            assert!(html.contains(&format!("\">{title}")), "{title}");
        }
        for label in ["≤1 µs", "&gt;5000 µs", "clues: acceptance", "blunt: dismissal", "personalise", "request"] {
            assert!(html.contains(&format!(">{label}</text>")), "{label}");
        }
        assert!(no_infinity(&html) && !html.contains("NaN"));
    }

    #[test]
    fn counts_and_rates_read_as_people_read_them() {
        assert_eq!(
            (counted(0), counted(1_234_567), counted(u64::MAX)),
            ("0".into(), "1,234,567".into(), "18,446,744,073,709,551,615".into())
        );
        assert_eq!((rate(1, 3), rate(0, 0), rate(3, 3)), ("33.3%".into(), "—".into(), "100.0%".into()));
    }
}
