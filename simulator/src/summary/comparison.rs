//! Runs of the same households under different policies, side by side: one row per figure, one
//! column per run.

use super::Summary;

/// A row of the comparison: one cell per run.
type Column<'a> = Box<dyn Fn(&Summary) -> String + 'a>;

/// Runs of the same households under different policies, side by side.
pub fn comparison(runs: &[Summary]) -> String {
    let Some(first) = runs.first() else { return String::new() };
    let rate =
        |n: u64, of: u64| if of == 0 { "-".to_string() } else { format!("{:.1}%", 100.0 * n as f64 / of as f64) };
    let consent_end = |s: &Summary| s.daily.last().map_or_else(|| "-".to_string(), |d| rate(d.personalise, d.people));
    let rows: Vec<(&str, Column<'_>)> = vec![
        ("decisions", Box::new(|s: &Summary| s.decisions.to_string())),
        ("offers shown", Box::new(|s: &Summary| s.shown.to_string())),
        ("personalised", Box::new(|s: &Summary| rate(s.shown_personalised, s.shown))),
        ("acceptance (of shown)", Box::new(|s: &Summary| rate(s.accepted, s.shown))),
        ("dismissals (of shown)", Box::new(|s: &Summary| rate(s.dismissed, s.shown))),
        ("not for me (of shown)", Box::new(|s: &Summary| rate(s.not_for_me, s.shown))),
        ("conversions", Box::new(|s: &Summary| s.converted.to_string())),
        ("revocations", Box::new(|s: &Summary| s.revocations.to_string())),
        ("personalise at the end", Box::new(consent_end)),
        (
            "uplift, conversion (95% CI)",
            Box::new(|s: &Summary| {
                s.uplift.map_or_else(
                    || "-".into(),
                    |u| match u.too_few() {
                        Some(_) => format!("too few to tell ({} held out)", u.held_out),
                        None => {
                            let clamped = if u.clamped { ", clamped" } else { "" };
                            format!("{:+.2} pts ({:+.2} to {:+.2}{clamped})", u.points, u.low, u.high)
                        }
                    },
                )
            }),
        ),
        ("consent violations", Box::new(|s: &Summary| s.consent_violations.to_string())),
        ("offers over a home cap", Box::new(|s: &Summary| s.home_cap_violations.to_string())),
    ];
    let mut out = format!(
        "ledtrad simulation: the same {} homes ({} devices, {} people) over {} days, seed {}, under each policy\n",
        first.homes, first.devices, first.people, first.days, first.seed
    );
    let label = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    let cells: Vec<Vec<String>> = rows.iter().map(|(_, f)| runs.iter().map(f).collect()).collect();
    let width = cells
        .iter()
        .flatten()
        .map(|c| c.chars().count())
        .chain(runs.iter().map(|s| s.policy.as_str().len()))
        .max()
        .unwrap_or(0);
    out.push_str(&format!("  {:<label$}", ""));
    for s in runs {
        out.push_str(&format!("  {:>width$}", s.policy.as_str()));
    }
    out.push('\n');
    for ((name, _), row) in rows.iter().zip(cells) {
        out.push_str(&format!("  {name:<label$}"));
        for cell in row {
            out.push_str(&format!("  {cell:>width$}"));
        }
        out.push('\n');
    }
    out
}
