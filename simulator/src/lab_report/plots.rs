//! The laboratory report's five plots, each one inline SVG with a title, a legend, axes with
//! ticks and labels. Only finite numbers reach the SVG: a figure that is not one is left out,
//! and a plot with nothing to draw says so.

use std::fmt::{self, Write as _};

use ledtrad_operator::html::escape;

use super::svg::{share_text, short, Area, Axis, Canvas, Key, Line, Mark, Span, Unit, LEFT, PLOT_H, RIGHT, WIDTH};
use super::{DayFigures, PolicyRun, UpliftFigure};

/// The policies' colours, in column order (Okabe and Ito's, told apart with most colour
/// blindness).
const COLOURS: [&str; 7] = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000"];

fn colour(policy: usize) -> &'static str {
    COLOURS[policy % COLOURS.len()]
}

/// How wide policy `i` of `n` draws its lines: the first widest, so a later line that runs
/// on top of it leaves it showing.
fn line_width(i: usize, n: usize) -> f64 {
    (2.0 + 1.5 * n.saturating_sub(i + 1) as f64).min(6.5)
}

/// Daily acceptance (solid) and dismissal (dashed) rates, one colour per policy.
pub(super) fn rates(out: &mut String, policies: &[PolicyRun]) -> fmt::Result {
    let share =
        |part: fn(&DayFigures) -> u64| move |d: &DayFigures| (d.shown > 0).then(|| part(d) as f64 / d.shown as f64);
    let mut lines = Vec::new();
    for (i, p) in policies.iter().enumerate() {
        let width = line_width(i, policies.len());
        let name = short(&p.policy);
        lines.push(Line::of(p, format!("{name}: acceptance"), colour(i), width, false, share(|d| d.accepted)));
        lines.push(Line::of(p, format!("{name}: dismissal"), colour(i), width, true, share(|d| d.dismissed)));
    }
    let axis = Axis::covering(lines.iter().flat_map(|l| l.points.iter().filter_map(|p| p.1)));
    let keys: Vec<Key> = lines.iter().map(Line::key).collect();
    let canvas = Canvas::open(out, "plot-rates", "Daily acceptance and dismissal rates per policy", &keys, 0.0)?;
    let area = canvas.area(LEFT, WIDTH - RIGHT);
    area.frame(out)?;
    area.grid(out, &axis, Unit::Percent, true)?;
    canvas.axis_labels(out, "share of offers shown", "day")?;
    let Some(span) = Span::of(policies) else {
        return canvas.close(out, &area, "no days to plot");
    };
    area.day_ticks(out, span, 14)?;
    if lines.iter().all(|l| l.points.iter().all(|p| p.1.is_none())) {
        return canvas.close(out, &area, "no day showed an offer");
    }
    for line in &lines {
        area.line(out, line, span, &axis, Unit::Percent)?;
    }
    canvas.close(out, &area, "")
}

/// The share of people granting each purpose at each day's end: one panel per purpose, one
/// colour per policy.
pub(super) fn consent(out: &mut String, policies: &[PolicyRun]) -> fmt::Result {
    /// How many people grant a purpose at a day's end.
    type Granting = fn(&DayFigures) -> u64;
    const PURPOSES: [(&str, Granting); 3] =
        [("personalise", |d| d.personalise), ("measure", |d| d.measure), ("request", |d| d.request)];
    const GAP: f64 = 26.0;
    const HEAD: f64 = 22.0;
    let keys: Vec<Key> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| Key {
            label: short(&p.policy),
            colour: colour(i),
            mark: Mark::Line { dashed: false, width: line_width(i, policies.len()) },
        })
        .collect();
    let canvas =
        Canvas::open(out, "plot-consent", "Consent over time: share of people granting each purpose", &keys, HEAD)?;
    canvas.axis_labels(out, "share of people", "day")?;
    let axis = Axis::UNIT;
    let span = Span::of(policies);
    let panel_w = (WIDTH - LEFT - RIGHT - 2.0 * GAP) / 3.0;
    let mut last = None;
    for (k, (purpose, granting)) in PURPOSES.into_iter().enumerate() {
        let x0 = LEFT + k as f64 * (panel_w + GAP);
        let area = canvas.area(x0, x0 + panel_w);
        area.frame(out)?;
        area.grid(out, &axis, Unit::Percent, k == 0)?;
        writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="600">{purpose}</text>"#,
            area.mid(),
            area.top - 8.0
        )?;
        let Some(span) = span else {
            last = Some(area);
            continue;
        };
        area.day_ticks(out, span, 5)?;
        for (i, p) in policies.iter().enumerate() {
            let line = Line::of(
                p,
                format!("{}: {purpose}", short(&p.policy)),
                colour(i),
                line_width(i, policies.len()),
                false,
                |d: &DayFigures| (d.people > 0).then(|| granting(d) as f64 / d.people as f64),
            );
            area.line(out, &line, span, &axis, Unit::Percent)?;
        }
        last = Some(area);
    }
    let note = if span.is_none() { "no days to plot" } else { "" };
    match last {
        Some(area) => canvas.close(out, &Area { x0: LEFT, ..area }, note),
        None => canvas.close(out, &canvas.area(LEFT, WIDTH - RIGHT), note),
    }
}

/// The decision-latency histogram: one bar per policy in each bucket, as shares of the
/// policy's decisions.
pub(super) fn latency(out: &mut String, policies: &[PolicyRun]) -> fmt::Result {
    // The buckets of every policy, in order, the open one last; an edge that is not a number
    // cannot be placed, and its bucket is left out.
    let placed = |upper: Option<f64>| upper.is_none_or(|u| u.is_finite());
    let mut uppers: Vec<Option<f64>> =
        policies.iter().flat_map(|p| p.latency_us.iter().map(|b| b.upper_us)).filter(|u| placed(*u)).collect();
    uppers.sort_by(|a, b| a.unwrap_or(f64::MAX).total_cmp(&b.unwrap_or(f64::MAX)).then(a.is_none().cmp(&b.is_none())));
    uppers.dedup();
    let shares: Vec<Vec<Option<f64>>> = policies
        .iter()
        .map(|p| {
            let total: u64 = p.latency_us.iter().filter(|b| placed(b.upper_us)).map(|b| b.count).sum();
            uppers
                .iter()
                .map(|upper| {
                    let n: u64 = p.latency_us.iter().filter(|b| b.upper_us == *upper).map(|b| b.count).sum();
                    (total > 0).then(|| n as f64 / total as f64)
                })
                .collect()
        })
        .collect();
    let labels: Vec<String> = uppers
        .iter()
        .map(|upper| match upper {
            Some(u) => format!("≤{} µs", plain(*u)),
            None => match uppers.iter().rev().find_map(|u| *u) {
                Some(largest) => format!(">{} µs", plain(largest)),
                None => "any".to_string(),
            },
        })
        .collect();
    let names: Vec<String> = policies.iter().map(|p| p.policy.clone()).collect();
    let bars = Bars { names: &names, labels: &labels, values: &shares, unit: Unit::Percent, values_on_bars: false };
    bars.draw(
        out,
        ("plot-latency", "Decision latency: share of each policy's decisions per bucket"),
        ("share of decisions", "decision time"),
        "no decision times were measured",
    )
}

/// The uplift in conversion rate per policy: a point with its 95% interval, and zero.
pub(super) fn uplift(out: &mut String, policies: &[PolicyRun]) -> fmt::Result {
    // Only figures that can be told: numbers, from enough held-out decisions.
    let finite = |u: &&UpliftFigure| u.enough() && [u.points, u.low, u.high].iter().all(|v| v.is_finite());
    let figures: Vec<Option<&UpliftFigure>> = policies.iter().map(|p| p.uplift.as_ref().filter(finite)).collect();
    let axis = Axis::covering(figures.iter().flatten().flat_map(|u| [u.points, u.low, u.high]));
    let keys: Vec<Key> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| Key { label: short(&p.policy), colour: colour(i), mark: Mark::Point })
        .collect();
    let canvas =
        Canvas::open(out, "plot-uplift", "Uplift in conversion rate with its 95% confidence interval", &keys, 0.0)?;
    let area = canvas.area(LEFT, WIDTH - RIGHT);
    area.frame(out)?;
    area.grid(out, &axis, Unit::Points, true)?;
    canvas.axis_labels(out, "uplift (percentage points)", "policy")?;
    let zero = area.y(&axis, 0.0);
    writeln!(
        out,
        r##"<line x1="{:.1}" y1="{zero:.1}" x2="{:.1}" y2="{zero:.1}" stroke="#444" stroke-width="1.5" stroke-dasharray="5 3"/>"##,
        area.x0, area.x1
    )?;
    area.categories(out, &policies.iter().map(|p| p.policy.clone()).collect::<Vec<_>>())?;
    for (i, (p, figure)) in policies.iter().zip(&figures).enumerate() {
        let x = area.centre(i, policies.len());
        let Some(u) = figure else {
            writeln!(
                out,
                r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#777">no uplift</text>"##,
                area.top + PLOT_H / 2.0
            )?;
            continue;
        };
        let (low, high, at) = (area.y(&axis, u.low), area.y(&axis, u.high), area.y(&axis, u.points));
        let c = colour(i);
        writeln!(
            out,
            r#"<g stroke="{c}" stroke-width="2"><line x1="{x:.1}" y1="{low:.1}" x2="{x:.1}" y2="{high:.1}"/><line x1="{:.1}" y1="{low:.1}" x2="{:.1}" y2="{low:.1}"/><line x1="{:.1}" y1="{high:.1}" x2="{:.1}" y2="{high:.1}"/></g>"#,
            x - 7.0,
            x + 7.0,
            x - 7.0,
            x + 7.0
        )?;
        writeln!(
            out,
            r#"<circle cx="{x:.1}" cy="{at:.1}" r="5" fill="{c}"><title>{}: {:+.1} pp (95% CI {:+.1} to {:+.1}); conversion rate {} treatment, {} holdout</title></circle><text x="{:.1}" y="{:.1}">{:+.1} pp</text>"#,
            escape(&p.policy),
            u.points,
            u.low,
            u.high,
            share_text(u.treatment_rate),
            share_text(u.holdout_rate),
            x + 12.0,
            at + 4.0,
            u.points
        )?;
    }
    let note = if policies.is_empty() { "no policy was run" } else { "" };
    canvas.close(out, &area, note)
}

/// Uplink bytes per device per day, grouped by purpose, one bar per policy.
pub(super) fn uplink(out: &mut String, policies: &[PolicyRun]) -> fmt::Result {
    let mut purposes: Vec<String> = Vec::new();
    for (purpose, _) in policies.iter().flat_map(|p| &p.uplink_bytes_per_device_day) {
        if !purposes.contains(purpose) {
            purposes.push(purpose.clone());
        }
    }
    let values: Vec<Vec<Option<f64>>> = policies
        .iter()
        .map(|p| {
            purposes
                .iter()
                .map(|purpose| {
                    let bytes = p.uplink_bytes_per_device_day.iter().filter(|(name, _)| name == purpose);
                    bytes.map(|(_, b)| *b).find(|b| b.is_finite())
                })
                .collect()
        })
        .collect();
    let names: Vec<String> = policies.iter().map(|p| p.policy.clone()).collect();
    let bars = Bars { names: &names, labels: &purposes, values: &values, unit: Unit::Bytes, values_on_bars: true };
    bars.draw(
        out,
        ("plot-uplink", "Uplink bytes per device per day, by purpose"),
        ("bytes per device per day", "purpose"),
        "no uplink was measured",
    )
}

/// Grouped bars: one group per label, one bar per policy in each.
struct Bars<'a> {
    names: &'a [String],
    labels: &'a [String],
    /// Per policy, per label.
    values: &'a [Vec<Option<f64>>],
    unit: Unit,
    /// Whether each bar's value is written over it.
    values_on_bars: bool,
}

impl Bars<'_> {
    fn draw(
        &self,
        out: &mut String,
        (id, title): (&str, &str),
        (y_label, x_label): (&str, &str),
        empty: &str,
    ) -> fmt::Result {
        let keys: Vec<Key> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| Key { label: short(name), colour: colour(i), mark: Mark::Bar })
            .collect();
        let axis = Axis::covering(self.values.iter().flatten().flatten().copied());
        let canvas = Canvas::open(out, id, title, &keys, 0.0)?;
        let area = canvas.area(LEFT, WIDTH - RIGHT);
        area.frame(out)?;
        area.grid(out, &axis, self.unit, true)?;
        canvas.axis_labels(out, y_label, x_label)?;
        let slot = (area.x1 - area.x0) / self.labels.len().max(1) as f64;
        let bar_w = (slot * 0.8 / self.names.len().max(1) as f64).min(56.0);
        let base = area.y(&axis, 0.0);
        area.categories(out, self.labels)?;
        for (k, label) in self.labels.iter().enumerate() {
            let centre = area.centre(k, self.labels.len());
            for (i, name) in self.names.iter().enumerate() {
                let Some(v) = self.values.get(i).and_then(|v| v.get(k)).copied().flatten() else { continue };
                let x = centre + bar_w * (i as f64 - self.names.len() as f64 / 2.0);
                let top = area.y(&axis, v);
                let text = self.unit.value_text(v);
                writeln!(
                    out,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}, {}: {text}</title></rect>"#,
                    top.min(base),
                    (bar_w - 2.0).max(1.0),
                    (top - base).abs(),
                    colour(i),
                    escape(name),
                    escape(label)
                )?;
                if self.values_on_bars && bar_w >= 30.0 {
                    writeln!(
                        out,
                        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{text}</text>"#,
                        x + bar_w / 2.0 - 1.0,
                        top.min(base) - 4.0
                    )?;
                }
            }
        }
        let nothing = self.values.iter().flatten().all(Option::is_none);
        canvas.close(out, &area, if nothing { empty } else { "" })
    }
}

/// An edge in microseconds as written under the latency plot: whole, no separators.
fn plain(us: f64) -> String {
    if us.fract() == 0.0 {
        format!("{us:.0}")
    } else {
        format!("{us}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_edges_are_written_plain() {
        assert_eq!((plain(5_000.0), plain(0.5)), ("5000".into(), "0.5".into()));
    }
}
