//! The report page: one self-contained HTML file (inline style and SVG, no scripts, nothing
//! fetched) with a campaign's table, uplift, a plot of its daily rates per arm, and what the
//! noise and the suppression mean; and writing it to a file.

use std::fmt::{self, Write as _};
use std::path::Path;

use ledtrad_protocol::report::Arm;

use crate::report::{count, heading, rate_text, suppressed_text, thousands, uplift_text, ReportError, NOTE_DEVICES};
use crate::uplift::{date, CampaignSummary, Interval};

/// Writes the summary's HTML page to `path`.
pub fn write_page(path: &Path, summary: &CampaignSummary) -> Result<(), ReportError> {
    std::fs::write(path, page(summary)).map_err(|source| ReportError::Page { path: path.into(), source })
}

/// The summary as an HTML page.
pub fn page(summary: &CampaignSummary) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_html(&mut out, summary);
    out
}

fn write_html(out: &mut String, s: &CampaignSummary) -> fmt::Result {
    let campaign = escape(s.campaign.as_str());
    write!(
        out,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ledtrad report: campaign {campaign}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.45; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ padding: .35rem .75rem; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }}
th:first-child, td:first-child {{ text-align: left; }}
thead th {{ border-bottom: 2px solid #999; }}
.suppressed {{ color: #777; font-style: italic; text-align: left; }}
.note {{ color: #444; font-size: .95rem; }}
svg text {{ font-family: system-ui, sans-serif; font-size: 12px; fill: #333; }}
</style>
</head>
<body>
<h1>Campaign <code>{campaign}</code></h1>
<p>{}</p>
<table>
<thead><tr><th>arm</th><th>devices</th><th>device-days</th><th>impressions</th><th>accepts</th><th>conversions</th><th>accept rate (95% CI)</th><th>conversion rate (95% CI)</th></tr></thead>
<tbody>
"#,
        escape(&heading(s))
    )?;
    for arm in &s.arms {
        write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            arm.arm.as_str(),
            count(arm.devices),
            count(arm.device_days)
        )?;
        match &arm.figures {
            Some(f) => writeln!(
                out,
                "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                thousands(f.counts.impressions),
                // The holdout arm shows nothing, so it has no accepts to count.
                if arm.arm == Arm::Holdout { "—".to_string() } else { thousands(f.counts.accepts) },
                thousands(f.counts.conversions),
                escape(&rate_text(f.accept_rate.as_ref())),
                escape(&rate_text(f.conversion_rate.as_ref()))
            )?,
            None => writeln!(
                out,
                r#"<td colspan="5" class="suppressed">suppressed: fewer than {} devices</td></tr>"#,
                s.min_devices
            )?,
        }
    }
    if s.arm(Arm::Holdout).is_none() {
        writeln!(out, r#"<tr><td>holdout</td><td colspan="7" class="suppressed">no reports</td></tr>"#)?;
    }
    writeln!(out, "</tbody>\n</table>")?;
    writeln!(out, "<p><strong>Uplift:</strong> {}</p>", escape(&uplift_text(s)))?;
    writeln!(out, "<p>{}</p>", escape(&suppressed_text(s)))?;
    writeln!(out, "<figure>")?;
    write_plot(out, s)?;
    writeln!(
        out,
        "<figcaption>Daily accept and conversion rates per arm, with their 95% intervals. A gap is a day with \
         fewer than {} devices, suppressed.</figcaption>\n</figure>",
        s.min_devices
    )?;
    write!(
        out,
        r#"<p class="note">Devices add random noise to every count before it leaves them, so no single report says
what one household did; summed over many devices the noise cancels out, and each interval above allows both for
who happened to answer and for that noise (counts the noise took below zero are shown as 0). An arm, or a day of
an arm, with fewer than {} devices is suppressed, because its totals would say too much about the few households
in it. {}.</p>
</body>
</html>
"#,
        s.min_devices,
        escape(&capitalised(NOTE_DEVICES))
    )
}

/// One line of the plot.
struct Series {
    label: &'static str,
    colour: &'static str,
    dashed: bool,
    points: Vec<(u32, Option<Interval>)>,
}

const WIDTH: f64 = 820.0;
const HEIGHT: f64 = 380.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 230.0;
/// How far apart the lines' points on one day are drawn, so their intervals do not hide
/// one another.
const DODGE: f64 = 5.0;
const INSET: f64 = 24.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 56.0;

fn series(s: &CampaignSummary) -> Vec<Series> {
    let daily = |arm: Arm, pick: fn(&crate::uplift::DayRates) -> Option<Interval>| {
        s.arm(arm)
            .map(|a| a.daily.iter().map(|d| (d.day, d.rates.as_ref().and_then(pick))).collect())
            .unwrap_or_default()
    };
    vec![
        Series {
            label: "treatment: accept rate",
            colour: "#1f6fb4",
            dashed: false,
            points: daily(Arm::Treatment, |r| r.accept_rate),
        },
        Series {
            label: "treatment: conversion rate",
            colour: "#c8322b",
            dashed: false,
            points: daily(Arm::Treatment, |r| r.conversion_rate),
        },
        Series {
            label: "holdout: conversion rate",
            colour: "#666666",
            dashed: true,
            points: daily(Arm::Holdout, |r| r.conversion_rate),
        },
    ]
    .into_iter()
    .filter(|series| !series.points.is_empty())
    .collect()
}

/// The smallest round top for the rate axis at or above `max`, and how many round steps
/// lead up to it.
fn axis_top(max: f64) -> (f64, u32) {
    const TOPS: [(f64, u32); 11] = [
        (0.01, 5),
        (0.02, 4),
        (0.05, 5),
        (0.1, 5),
        (0.2, 4),
        (0.3, 6),
        (0.4, 4),
        (0.5, 5),
        (0.6, 6),
        (0.8, 4),
        (1.0, 5),
    ];
    TOPS.into_iter().find(|&(top, _)| top >= max).unwrap_or((1.0, 5))
}

/// Where the plot's days and rates fall: days across, rates up from 0 to a round top.
struct Frame {
    first: u32,
    last: u32,
    top: f64,
    steps: u32,
    plot_w: f64,
    plot_h: f64,
}

impl Frame {
    fn of(lines: &[Series]) -> Self {
        let days: Vec<u32> = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)).collect();
        let (first, last) = (days.iter().copied().min().unwrap_or(0), days.iter().copied().max().unwrap_or(0));
        let max = lines.iter().flat_map(|l| l.points.iter().filter_map(|p| p.1.map(|r| r.high))).fold(0.0, f64::max);
        let (top, steps) = axis_top(max);
        Self { first, last, top, steps, plot_w: WIDTH - LEFT - RIGHT, plot_h: HEIGHT - TOP - BOTTOM }
    }

    /// Days sit a little inside the plot, so the first and last points clear its edges.
    fn x(&self, day: u32) -> f64 {
        if self.last == self.first {
            LEFT + self.plot_w / 2.0
        } else {
            LEFT + INSET + (self.plot_w - 2.0 * INSET) * f64::from(day - self.first) / f64::from(self.last - self.first)
        }
    }

    fn y(&self, rate: f64) -> f64 {
        TOP + self.plot_h * (1.0 - rate.clamp(0.0, self.top) / self.top)
    }
}

fn write_plot(out: &mut String, s: &CampaignSummary) -> fmt::Result {
    let lines = series(s);
    let frame = Frame::of(&lines);
    let (plot_w, plot_h) = (frame.plot_w, frame.plot_h);
    writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="plot-title">"#
    )?;
    writeln!(out, r#"<title id="plot-title">Daily accept and conversion rates per arm</title>"#)?;
    writeln!(out, r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa"/>"##)?;
    write_rate_axis(out, &frame)?;
    if !lines.is_empty() {
        write_day_axis(out, &frame)?;
    }
    write_axis_labels(out, &frame)?;
    if lines.iter().all(|l| l.points.iter().all(|p| p.1.is_none())) {
        writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">no day has {} devices or more to plot</text>"#,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0,
            s.min_devices
        )?;
    }
    for (i, line) in lines.iter().enumerate() {
        // The lines' points on one day are drawn apart, so their intervals do not hide one another.
        let dodge = DODGE * (i as f64 - (lines.len() as f64 - 1.0) / 2.0);
        write_series(out, &frame, line, dodge)?;
    }
    write_legend(out, &frame, &lines)?;
    writeln!(out, "</svg>")
}

/// The rate axis: round steps from 0 to the top, with grid lines.
fn write_rate_axis(out: &mut String, frame: &Frame) -> fmt::Result {
    let (top, steps) = (frame.top, frame.steps);
    for step in 0..=steps {
        let rate = top * f64::from(step) / f64::from(steps);
        let yy = frame.y(rate);
        let label = if top / f64::from(steps) < 0.01 {
            format!("{:.1}%", rate * 100.0)
        } else {
            format!("{:.0}%", rate * 100.0)
        };
        writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e2e2e2"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            LEFT + frame.plot_w,
            LEFT - 6.0,
            yy + 4.0
        )?;
    }
    Ok(())
}

/// The day axis: at most seven dates.
fn write_day_axis(out: &mut String, frame: &Frame) -> fmt::Result {
    let every = ((frame.last - frame.first) / 6).max(1);
    let mut day = frame.first;
    while day <= frame.last {
        let xx = frame.x(day);
        writeln!(
            out,
            r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#333"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + frame.plot_h,
            TOP + frame.plot_h + 5.0,
            TOP + frame.plot_h + 19.0,
            date(day)
        )?;
        day += every;
    }
    Ok(())
}

/// The axes' lines and their names.
fn write_axis_labels(out: &mut String, frame: &Frame) -> fmt::Result {
    let (plot_w, plot_h) = (frame.plot_w, frame.plot_h);
    writeln!(
        out,
        r##"<path d="M{LEFT} {TOP} V{:.1} H{:.1}" fill="none" stroke="#333"/>"##,
        TOP + plot_h,
        LEFT + plot_w
    )?;
    writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">day (device-local)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 12.0
    )?;
    writeln!(
        out,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">share of impressions</text>"#,
        TOP + plot_h / 2.0
    )
}

/// One series: its line, broken at suppressed days, and each day's point with its interval,
/// drawn `dodge` across from the day.
fn write_series(out: &mut String, frame: &Frame, line: &Series, dodge: f64) -> fmt::Result {
    let dash = if line.dashed { r#" stroke-dasharray="6 4""# } else { "" };
    let x = |day: u32| frame.x(day) + dodge;
    let mut path = String::new();
    let mut pen_down = false;
    for (day, rate) in &line.points {
        match rate {
            Some(r) => {
                write!(path, "{}{:.1} {:.1} ", if pen_down { "L" } else { "M" }, x(*day), frame.y(r.estimate))?;
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    writeln!(out, r#"<path d="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#, path.trim_end(), line.colour)?;
    for (day, rate) in &line.points {
        let Some(r) = rate else { continue };
        let xx = x(*day);
        writeln!(
            out,
            r#"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="{}" stroke-opacity="0.45"/><circle cx="{xx:.1}" cy="{:.1}" r="3" fill="{}"><title>{}, {}: {}</title></circle>"#,
            frame.y(r.low),
            frame.y(r.high),
            line.colour,
            frame.y(r.estimate),
            line.colour,
            line.label,
            date(*day),
            escape(&rate_text(Some(r)))
        )?;
    }
    Ok(())
}

/// The legend, right of the plot.
fn write_legend(out: &mut String, frame: &Frame, lines: &[Series]) -> fmt::Result {
    let lx = LEFT + frame.plot_w + 16.0;
    for (i, line) in lines.iter().enumerate() {
        let ly = TOP + 12.0 + 22.0 * i as f64;
        let dash = if line.dashed { r#" stroke-dasharray="6 4""# } else { "" };
        writeln!(
            out,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 24.0,
            line.colour,
            lx + 30.0,
            ly + 4.0,
            line.label
        )?;
    }
    Ok(())
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// `text` with the characters HTML gives a meaning escaped, safe in element content and in
/// quoted attribute values (the simulator's laboratory report uses it too).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uplift::summarise;
    use ledtrad_protocol::report::Report;
    use ledtrad_protocol::CampaignId;

    fn build_reports(arm: Arm, day: u32, devices: usize, conversions: i32) -> Vec<Report> {
        (0..devices)
            .map(|_| Report {
                campaign: CampaignId::try_new("dairy").unwrap(),
                arm,
                day,
                catalogue_version: 1,
                epsilon: 1.0,
                impressions: 5,
                accepts: i32::from(arm == Arm::Treatment),
                dismissals: 1,
                conversions,
                id: None,
            })
            .collect()
    }

    #[test]
    fn the_page_stands_alone_with_the_table_a_plot_and_what_suppression_means() {
        let mut reports = Vec::new();
        for day in 20_400..20_405 {
            // The third day has too few treatment devices, and leaves a gap.
            reports.extend(build_reports(Arm::Treatment, day, if day == 20_402 { 20 } else { 80 }, 1));
            reports.extend(build_reports(Arm::Holdout, day, 60, 0));
        }
        let summary = summarise(&CampaignId::try_new("dairy").unwrap(), None, &reports, 50);
        let html = page(&summary);
        assert!(html.starts_with("<!doctype html>") && html.ends_with("</html>\n"));
        for absent in ["<script", "<link", "src=", "href=", "@import", "url("] {
            assert!(!html.contains(absent), "{absent}");
        }
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(html.contains("<tr><td>treatment</td><td>80</td><td>340</td><td>1,700</td><td>340</td>"), "{html}");
        assert!(html.contains("<text x=\"58.0\" y=\"24.0\" text-anchor=\"end\">"), "the rate axis has a top label");
        assert!(html.contains(">2025-11-08</text>") && html.contains(">2025-11-12</text>"), "{html}");
        for label in ["treatment: accept rate", "treatment: conversion rate", "holdout: conversion rate"] {
            assert!(html.contains(&format!(">{label}</text>")), "legend {label}");
        }
        // Two treatment line pieces, either side of the gap, and one unbroken holdout line.
        let treatment_paths: Vec<_> =
            html.lines().filter(|l| l.starts_with("<path d=\"M") && l.contains("#1f6fb4")).collect();
        assert_eq!(treatment_paths.len(), 1);
        assert_eq!(treatment_paths[0].matches('M').count(), 2, "{}", treatment_paths[0]);
        assert!(html.contains("treatment on 2025-11-10 (20 devices)"), "{html}");
        assert!(html.contains("with fewer than 50 devices is suppressed"), "{html}");
        assert!(html.contains("Devices: the most reports on any one day"), "{html}");
    }

    #[test]
    fn a_page_without_plottable_days_says_so() {
        let reports = build_reports(Arm::Treatment, 20_400, 10, 1);
        let summary = summarise(&CampaignId::try_new("dairy").unwrap(), None, &reports, 50);
        let html = page(&summary);
        assert!(html.contains("no day has 50 devices or more to plot"), "{html}");
        assert!(html.contains(r#"<td colspan="5" class="suppressed">suppressed: fewer than 50 devices</td>"#));
        assert!(html.contains("no reports</td>"), "the missing holdout is named");
        let reports = build_reports(Arm::Holdout, 20_400, 60, 1);
        let html = page(&summarise(&CampaignId::try_new("dairy").unwrap(), None, &reports, 50));
        assert!(html.contains("<tr><td>holdout</td><td>60</td><td>60</td><td>300</td><td>—</td><td>60</td>"), "{html}");
    }

    #[test]
    fn text_is_escaped_and_the_axis_rounds_up() {
        assert_eq!(escape("<a href='x'>&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
        assert_eq!(
            (axis_top(0.0), axis_top(0.031), axis_top(0.1), axis_top(0.33), axis_top(3.0)),
            ((0.01, 5), (0.05, 5), (0.1, 5), (0.4, 4), (1.0, 5))
        );
    }
}
