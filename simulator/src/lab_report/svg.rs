//! The plots' drawing kit: an SVG canvas with its legend, plot areas with their axes, ticks
//! and labels, daily lines, value axes with round steps, and numbers written for people.

use std::fmt::{self, Write as _};

use ledtrad_operator::html::escape;
use ledtrad_operator::report::thousands;

use super::{DayFigures, PolicyRun};

/// The width of every plot: the page's column, about 62rem less its padding.
pub(super) const WIDTH: f64 = 960.0;
/// Left of the plot area: room for the y ticks' labels and the y axis label.
pub(super) const LEFT: f64 = 72.0;
/// Right of the plot area.
pub(super) const RIGHT: f64 = 16.0;
/// The plot area's height.
pub(super) const PLOT_H: f64 = 190.0;
/// Under the plot area: room for the x ticks' labels and the x axis label.
const BOTTOM: f64 = 60.0;
/// The height of one row of the legend.
const LEGEND_ROW: f64 = 22.0;
/// About how wide a character of the 12px text is, to lay the legend out.
const CHAR_W: f64 = 7.5;
/// How far the first and last days sit inside the plot area, so their points clear its edges.
const INSET: f64 = 18.0;
/// The longest policy or purpose name drawn whole in a legend or under an axis.
const LABEL_CHARS: usize = 28;

/// One policy's daily line.
pub(super) struct Line {
    label: String,
    colour: &'static str,
    width: f64,
    dashed: bool,
    /// Day and value, in day order; `None` where there is nothing to plot (a gap).
    pub(super) points: Vec<(u32, Option<f64>)>,
}

impl Line {
    pub(super) fn of(
        policy: &PolicyRun,
        label: String,
        colour: &'static str,
        width: f64,
        dashed: bool,
        value: impl Fn(&DayFigures) -> Option<f64>,
    ) -> Self {
        let mut points: Vec<(u32, Option<f64>)> =
            policy.days.iter().map(|d| (d.day, value(d).filter(|v| v.is_finite()))).collect();
        points.sort_by_key(|p| p.0);
        Self { label, colour, width, dashed, points }
    }

    pub(super) fn key(&self) -> Key {
        Key {
            label: self.label.clone(),
            colour: self.colour,
            mark: Mark::Line { dashed: self.dashed, width: self.width },
        }
    }
}

/// A legend entry.
pub(super) struct Key {
    pub(super) label: String,
    pub(super) colour: &'static str,
    pub(super) mark: Mark,
}

/// How a legend entry is drawn.
pub(super) enum Mark {
    Line {
        dashed: bool,
        width: f64,
    },
    Bar,
    /// A point with its interval.
    Point,
}

/// How a dashed line is dashed.
const DASH: &str = r#" stroke-dasharray="7 4""#;

/// An SVG being drawn: its legend on top, then one or more plot areas side by side.
pub(super) struct Canvas {
    /// The top of the plot areas.
    top: f64,
    height: f64,
}

impl Canvas {
    /// Opens the SVG and draws the legend, in rows as wide as the plot; `head` is room left
    /// between the legend and the plot areas (for panels' titles).
    pub(super) fn open(out: &mut String, id: &str, title: &str, keys: &[Key], head: f64) -> Result<Self, fmt::Error> {
        let mut placed = Vec::with_capacity(keys.len());
        let (mut x, mut row) = (LEFT, 0usize);
        for key in keys {
            let w = 32.0 + CHAR_W * key.label.chars().count() as f64 + 20.0;
            if x + w > WIDTH - RIGHT && x > LEFT {
                (x, row) = (LEFT, row + 1);
            }
            placed.push((x, 14.0 + LEGEND_ROW * row as f64));
            x += w;
        }
        let rows = if keys.is_empty() { 0 } else { row + 1 };
        let top = 8.0 + LEGEND_ROW * rows as f64 + 6.0 + head;
        let height = top + PLOT_H + BOTTOM;
        writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="{id}">
<title id="{id}">{}</title>"#,
            escape(title)
        )?;
        for (key, (x, y)) in keys.iter().zip(placed) {
            let c = key.colour;
            match key.mark {
                Mark::Line { dashed, width } => writeln!(
                    out,
                    r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{c}" stroke-width="{width:.1}"{}/>"#,
                    x + 26.0,
                    if dashed { DASH } else { "" }
                )?,
                Mark::Bar => {
                    writeln!(out, r#"<rect x="{:.1}" y="{:.1}" width="16" height="12" fill="{c}"/>"#, x + 5.0, y - 6.0)?
                }
                Mark::Point => writeln!(
                    out,
                    r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="{c}" stroke-width="2"/><circle cx="{0:.1}" cy="{y:.1}" r="4.5" fill="{c}"/>"#,
                    x + 13.0,
                    y - 8.0,
                    y + 8.0
                )?,
            }
            writeln!(out, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, x + 32.0, y + 4.0, escape(&key.label))?;
        }
        Ok(Self { top, height })
    }

    pub(super) fn area(&self, x0: f64, x1: f64) -> Area {
        Area { x0, x1, top: self.top }
    }

    pub(super) fn axis_labels(&self, out: &mut String, y_label: &str, x_label: &str) -> fmt::Result {
        writeln!(
            out,
            r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            self.top + PLOT_H / 2.0,
            escape(y_label)
        )?;
        writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (LEFT + WIDTH - RIGHT) / 2.0,
            self.height - 12.0,
            escape(x_label)
        )
    }

    /// Writes `note` (if any) over `area`, and closes the SVG.
    pub(super) fn close(&self, out: &mut String, area: &Area, note: &str) -> fmt::Result {
        if !note.is_empty() {
            writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#777">{}</text>"##,
                (area.x0 + area.x1) / 2.0,
                area.top + PLOT_H / 2.0,
                escape(note)
            )?;
        }
        writeln!(out, "</svg>")
    }
}

/// A plot area: from `x0` to `x1`, `PLOT_H` high from `top`.
#[derive(Clone, Copy)]
pub(super) struct Area {
    pub(super) x0: f64,
    pub(super) x1: f64,
    pub(super) top: f64,
}

impl Area {
    fn bottom(&self) -> f64 {
        self.top + PLOT_H
    }

    pub(super) fn mid(&self) -> f64 {
        (self.x0 + self.x1) / 2.0
    }

    pub(super) fn y(&self, axis: &Axis, v: f64) -> f64 {
        self.bottom() - PLOT_H * axis.at(v)
    }

    fn day_x(&self, span: Span, day: u32) -> f64 {
        if span.last == span.first {
            return self.mid();
        }
        let along = f64::from(day.saturating_sub(span.first)) / f64::from(span.last - span.first);
        self.x0 + INSET + (self.x1 - self.x0 - 2.0 * INSET) * along
    }

    /// The background and the axes' lines.
    pub(super) fn frame(&self, out: &mut String) -> fmt::Result {
        writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{PLOT_H}" fill="#fafafa"/><path d="M{:.1} {:.1} V{:.1} H{:.1}" fill="none" stroke="#333"/>"##,
            self.x0,
            self.top,
            self.x1 - self.x0,
            self.x0,
            self.top,
            self.bottom(),
            self.x1
        )
    }

    /// The y axis's grid lines, and its ticks' labels where `labelled`.
    pub(super) fn grid(&self, out: &mut String, axis: &Axis, unit: Unit, labelled: bool) -> fmt::Result {
        for v in axis.ticks() {
            let y = self.y(axis, v);
            write!(
                out,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e2e2e2"/><line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#333"/>"##,
                self.x0 + 0.5,
                self.x1,
                self.x0 - 5.0,
                self.x0
            )?;
            if labelled {
                write!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                    self.x0 - 8.0,
                    y + 4.0,
                    unit.tick_text(v, axis.step)
                )?;
            }
            writeln!(out)?;
        }
        Ok(())
    }

    /// Ticks and labels for the days, every day or every few so there are about `most`.
    pub(super) fn day_ticks(&self, out: &mut String, span: Span, most: u32) -> fmt::Result {
        let every = (span.last - span.first).div_ceil(most.max(1)).max(1);
        let mut day = span.first;
        while day <= span.last {
            let x = self.day_x(span, day);
            writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{day}</text>"##,
                self.bottom(),
                self.bottom() + 5.0,
                self.bottom() + 19.0
            )?;
            day = match day.checked_add(every) {
                Some(next) => next,
                None => break,
            };
        }
        Ok(())
    }

    /// The middle of category `k` of `n`, spread evenly along the area.
    pub(super) fn centre(&self, k: usize, n: usize) -> f64 {
        self.x0 + (self.x1 - self.x0) / n.max(1) as f64 * (k as f64 + 0.5)
    }

    /// The categories' ticks and labels under the x axis: smaller where the labels would
    /// touch, and on two staggered rows where even that is not enough.
    pub(super) fn categories(&self, out: &mut String, labels: &[String]) -> fmt::Result {
        let labels: Vec<String> = labels.iter().map(|l| short(l)).collect();
        let slot = (self.x1 - self.x0) / labels.len().max(1) as f64;
        let widest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64 * CHAR_W;
        let (size, stagger) = match widest {
            w if w <= slot - 8.0 => (12.0, false),
            w if w * 11.0 / 12.0 <= slot - 8.0 => (11.0, false),
            _ => (11.0, true),
        };
        for (k, label) in labels.iter().enumerate() {
            let x = self.centre(k, labels.len());
            let drop = if stagger && k % 2 == 1 { 14.0 } else { 0.0 };
            writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="{size}">{}</text>"##,
                self.bottom(),
                self.bottom() + 5.0 + drop,
                self.bottom() + 19.0 + drop,
                escape(label)
            )?;
        }
        Ok(())
    }

    /// A line through a policy's days, broken where a day has no value, with a point (and
    /// its value on hover) on each day that has one.
    pub(super) fn line(&self, out: &mut String, line: &Line, span: Span, axis: &Axis, unit: Unit) -> fmt::Result {
        let mut path = String::new();
        let mut pen_down = false;
        for (day, value) in &line.points {
            match value {
                Some(v) => {
                    let (x, y) = (self.day_x(span, *day), self.y(axis, *v));
                    write!(path, "{}{x:.1} {y:.1} ", if pen_down { "L" } else { "M" })?;
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if path.is_empty() {
            return Ok(());
        }
        writeln!(
            out,
            r#"<path d="{}" fill="none" stroke="{}" stroke-width="{:.1}" stroke-linejoin="round"{}/>"#,
            path.trim_end(),
            line.colour,
            line.width,
            if line.dashed { DASH } else { "" }
        )?;
        for (day, value) in &line.points {
            let Some(v) = value else { continue };
            writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"><title>{}, day {day}: {}</title></circle>"#,
                self.day_x(span, *day),
                self.y(axis, *v),
                line.colour,
                escape(&line.label),
                unit.value_text(*v)
            )?;
        }
        Ok(())
    }
}

/// The first and last day of any policy.
#[derive(Clone, Copy)]
pub(super) struct Span {
    first: u32,
    last: u32,
}

impl Span {
    pub(super) fn of(policies: &[PolicyRun]) -> Option<Self> {
        let days = || policies.iter().flat_map(|p| p.days.iter().map(|d| d.day));
        Some(Self { first: days().min()?, last: days().max()? })
    }
}

/// A value axis: round steps from `lo` to `hi`, zero among them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
}

impl Axis {
    /// From 0 to 1 in fifths: where there is nothing to cover, and for shares of people.
    pub(super) const UNIT: Self = Self { lo: 0.0, hi: 1.0, step: 0.2 };

    /// The axis with four to six round steps that covers zero and every finite value, with a
    /// little room beyond them.
    pub(super) fn covering(values: impl IntoIterator<Item = f64>) -> Self {
        let (lo, hi) =
            values.into_iter().filter(|v| v.is_finite()).fold((0.0_f64, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        // Headroom, so a point's interval or a bar's label at the extreme stays inside.
        let (lo, hi) = (lo * 1.05, hi * 1.05);
        let raw = (hi - lo) / 6.0;
        if !raw.is_finite() || raw <= 0.0 {
            return Self::UNIT;
        }
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .into_iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * magnitude);
        let (lo, hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
        if [lo, hi, step].iter().all(|v| v.is_finite()) && hi > lo && step > 0.0 {
            Self { lo, hi, step }
        } else {
            Self::UNIT
        }
    }

    pub(super) fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let n = ((self.hi - self.lo) / self.step).round().clamp(0.0, 50.0) as u32;
        (0..=n).map(|i| self.lo + self.step * f64::from(i))
    }

    /// Where `v` sits between `lo` (0) and `hi` (1), kept inside.
    pub(super) fn at(&self, v: f64) -> f64 {
        let along = (v - self.lo) / (self.hi - self.lo);
        if along.is_finite() {
            along.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// What an axis's numbers are.
#[derive(Debug, Clone, Copy)]
pub(super) enum Unit {
    /// Shares, written as percentages.
    Percent,
    /// Percentage points, signed.
    Points,
    /// Bytes.
    Bytes,
}

impl Unit {
    /// A tick's label, with as many decimals as the step needs.
    pub(super) fn tick_text(self, v: f64, step: f64) -> String {
        match self {
            Self::Percent => format!("{}%", fixed(v * 100.0, step * 100.0)),
            Self::Points if v.abs() < step / 2.0 => "0".to_string(),
            Self::Points if v > 0.0 => format!("+{}", fixed(v, step)),
            Self::Points | Self::Bytes => fixed(v, step),
        }
    }

    /// A value, on hover or over a bar.
    pub(super) fn value_text(self, v: f64) -> String {
        match self {
            Self::Percent => share_text(v),
            Self::Points => format!("{v:+.1} pp"),
            Self::Bytes if v.abs() >= 10.0 => format!("{}{}", if v < 0.0 { "-" } else { "" }, thousands(v.abs())),
            Self::Bytes => format!("{v:.1}"),
        }
    }
}

/// A share as a percentage with one decimal; a dash for what is not a number.
pub(super) fn share_text(v: f64) -> String {
    if v.is_finite() {
        format!("{:.1}%", v * 100.0)
    } else {
        "—".to_string()
    }
}

/// `v` with the decimals a tick `step` needs (none for whole steps, thousands separated).
fn fixed(v: f64, step: f64) -> String {
    let decimals = (0..6)
        .find(|&d| {
            let scaled = step * 10f64.powi(d);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(6) as usize;
    // No "-0" at zero.
    let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
    if decimals == 0 {
        format!("{}{}", if v < 0.0 { "-" } else { "" }, thousands(v.abs()))
    } else {
        format!("{v:.decimals$}")
    }
}

/// `text` cut to `LABEL_CHARS` characters, with an ellipsis where it was cut.
pub(super) fn short(text: &str) -> String {
    if text.chars().count() <= LABEL_CHARS {
        return text.to_string();
    }
    text.chars().take(LABEL_CHARS - 1).chain(['…']).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_round_up_and_cover_zero() {
        let close = |a: Axis, b: Axis| [a.lo - b.lo, a.hi - b.hi, a.step - b.step].iter().all(|d| d.abs() < 1e-12);
        assert!(close(Axis::covering([0.13]), Axis { lo: 0.0, hi: 0.15, step: 0.025 }));
        assert_eq!(Axis::covering([]), Axis::UNIT);
        assert_eq!(Axis::covering([f64::NAN, f64::INFINITY]), Axis::UNIT);
        assert_eq!(Axis::covering([-0.8, 3.5]), Axis { lo: -1.0, hi: 4.0, step: 1.0 });
        assert_eq!(Axis::covering([1_310.5]), Axis { lo: 0.0, hi: 1_500.0, step: 250.0 });
        assert_eq!(Axis::covering([f64::MAX, -f64::MAX]), Axis::UNIT);
        let ticks: Vec<String> = Axis::covering([0.13]).ticks().map(|v| Unit::Percent.tick_text(v, 0.025)).collect();
        assert_eq!(ticks, ["0.0%", "2.5%", "5.0%", "7.5%", "10.0%", "12.5%", "15.0%"]);
        let ticks: Vec<String> = Axis::covering([-0.8, 3.5]).ticks().map(|v| Unit::Points.tick_text(v, 1.0)).collect();
        assert_eq!(ticks, ["-1", "0", "+1", "+2", "+3", "+4"]);
        assert_eq!(
            (fixed(2_000.0, 500.0), fixed(0.25, 0.25), fixed(-0.0, 0.5)),
            ("2,000".into(), "0.25".into(), "0.0".into())
        );
    }

    #[test]
    fn long_names_are_cut() {
        assert_eq!(short("clues"), "clues");
        assert_eq!(short(&"x".repeat(40)).chars().count(), LABEL_CHARS);
        assert!(short(&"x".repeat(40)).ends_with('…'));
    }
}
