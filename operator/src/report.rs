//! `ledtrad-op report`: a campaign's summary read from the report store, shown as a table (its
//! `Display`) or as JSON (its `Serialize`), and the text both the table and the HTML page
//! (`html`, which builds on this module) use.

use std::fmt;
use std::path::PathBuf;

use ledtrad_protocol::report::Arm;
use ledtrad_protocol::{CampaignId, FleetId};

use crate::collect::{CollectError, ReportStore, ReportsAt};
use crate::uplift::{date, summarise, CampaignSummary, Interval, NoUplift};

/// What writes the report database, for errors that have to say where it comes from.
pub const WRITTEN_BY: &str = "`ledtrad-op serve --reports FILE` (or `--reports postgres://…`)";

/// Why a campaign's report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The report database does not exist.
    #[error("report database '{}' does not exist; it is written by {WRITTEN_BY}: point at that file", path.display())]
    NoDatabase {
        /// The missing file.
        path: PathBuf,
    },
    /// The database holds no reports of the campaign.
    #[error("no reports for campaign '{campaign}'{} in '{store}'; {}", from_fleet(.fleet.as_ref()), campaigns_present(.present, .fleet.is_some()))]
    UnknownCampaign {
        /// The database file, or the PostgreSQL address without its password.
        store: String,
        /// The campaign asked for.
        campaign: CampaignId,
        /// The fleet asked for, if one was.
        fleet: Option<FleetId>,
        /// The campaigns that have reports, from any fleet.
        present: Vec<CampaignId>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] CollectError),
    /// The HTML page could not be written.
    #[error("cannot write the report page '{}': {source}; check the path and its permissions", path.display())]
    Page {
        /// The page's file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn from_fleet(fleet: Option<&FleetId>) -> String {
    fleet.map(|f| format!(" from fleet '{f}'")).unwrap_or_default()
}

fn campaigns_present(campaigns: &[CampaignId], fleet_given: bool) -> String {
    if campaigns.is_empty() {
        return "the database holds no reports yet".into();
    }
    let names: Vec<_> = campaigns.iter().map(CampaignId::as_str).collect();
    let from = if fleet_given { " (from any fleet)" } else { "" };
    format!("campaigns with reports{from}: {}", names.join(", "))
}

/// Reads `campaign`'s reports (from `fleet` only, when given) from the report database at
/// `db` and summarises them, suppressing groups of fewer than `min_devices` devices. The
/// database must exist: a mistyped path is an error, not a new, empty database.
pub fn load_summary(
    db: &ReportsAt,
    campaign: &CampaignId,
    fleet: Option<&FleetId>,
    min_devices: usize,
) -> Result<CampaignSummary, ReportError> {
    let store = open_existing(db)?;
    let reports = store.campaign(fleet, campaign)?;
    if reports.is_empty() {
        return Err(ReportError::UnknownCampaign {
            store: store.name().into(),
            campaign: campaign.clone(),
            fleet: fleet.cloned(),
            present: store.campaigns()?,
        });
    }
    Ok(summarise(campaign, fleet, &reports, min_devices))
}

/// Opens the report database at `db`, which must exist: a mistyped path is an error, not a
/// new, empty database. (A PostgreSQL database must hold the report table a collector made.)
pub fn open_existing(db: &ReportsAt) -> Result<ReportStore, ReportError> {
    if let ReportsAt::File(path) = db {
        if !path.is_file() {
            return Err(ReportError::NoDatabase { path: path.clone() });
        }
    }
    Ok(ReportStore::connect_to_read(db)?)
}

/// What the numbers mean, in one sentence for each page and table.
pub const NOTE_DEVICES: &str =
    "devices: the most reports on any one day (reports carry no device id, so devices cannot be counted directly); \
     device-days: reports";

/// What de-noising and the intervals mean.
pub const NOTE_NOISE: &str = "counts are sums of the devices' noised counts: the noise cancels out in the sum and is \
     shown no lower than 0; each 95% interval allows for both who happened to answer and the noise";

/// A rate as a percentage, e.g. `10.2%`.
pub fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// A rate with its interval, e.g. `10.2% (9.0–11.4)`, or `—` for none.
pub fn rate_text(rate: Option<&Interval>) -> String {
    rate.map_or_else(
        || "—".to_string(),
        |r| format!("{:.1}% ({:.1}–{:.1})", r.estimate * 100.0, r.low * 100.0, r.high * 100.0),
    )
}

/// The uplift, or why there is none, in one line.
pub fn uplift_text(summary: &CampaignSummary) -> String {
    match (&summary.uplift, summary.no_uplift) {
        (Some(u), _) => {
            let points = |v: f64| format!("{:+.1}", v * 100.0);
            let mut line = format!(
                "{} points (95% CI {} to {}) in conversion rate, treatment over holdout",
                points(u.absolute.estimate),
                points(u.absolute.low),
                points(u.absolute.high)
            );
            match &u.relative {
                Some(r) => {
                    line += &format!(
                        "; relative {:+.0}% (95% CI {:+.0}% to {:+.0}%)",
                        r.estimate * 100.0,
                        r.low * 100.0,
                        r.high * 100.0
                    )
                }
                None => line += "; no relative uplift: the holdout's conversion rate is 0",
            }
            if u.clamped {
                line += " (intervals clamped to what a rate difference can be: -100 to +100 points, relative no lower than -100%)";
            }
            line
        }
        (None, Some(why)) => format!("none: {why}"),
        (None, None) => format!("none: {}", NoUplift::NoReports),
    }
}

/// The suppressed groups, in one line.
pub fn suppressed_text(summary: &CampaignSummary) -> String {
    if summary.suppressed.is_empty() {
        return format!("suppressed: none (every arm and day has at least {} devices)", summary.min_devices);
    }
    // One entry per arm: the whole arm, or its days.
    let mut groups = Vec::new();
    for arm in [Arm::Treatment, Arm::Holdout] {
        let name = arm.as_str();
        let of_arm: Vec<_> = summary.suppressed.iter().filter(|s| s.arm == arm).collect();
        if let Some(whole) = of_arm.iter().find(|s| s.day.is_none()) {
            groups.push(format!("the {name} arm and all its days ({} devices)", whole.devices));
        } else if !of_arm.is_empty() {
            let days: Vec<_> =
                of_arm.iter().filter_map(|s| s.day.map(|d| format!("{} ({} devices)", date(d), s.devices))).collect();
            groups.push(format!("{name} on {}", days.join(", ")));
        }
    }
    format!("suppressed, fewer than {} devices: {}", summary.min_devices, groups.join("; "))
}

/// `n` rounded (and no lower than 0), with thousands separated by commas.
pub fn thousands(n: f64) -> String {
    group_digits(&format!("{:.0}", n.max(0.0)))
}

/// `n` with thousands separated by commas.
pub fn count(n: usize) -> String {
    group_digits(&n.to_string())
}

fn group_digits(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The header line: campaign, fleet, reports and days.
pub fn heading(summary: &CampaignSummary) -> String {
    let reports: usize = summary.arms.iter().map(|a| a.device_days).sum();
    let mut days: Vec<u32> = summary.arms.iter().flat_map(|a| a.daily.iter().map(|d| d.day)).collect();
    days.sort_unstable();
    days.dedup();
    let fleet = summary.fleet.as_ref().map_or_else(|| "every fleet".to_string(), |f| format!("fleet '{f}'"));
    let span = match (days.first(), days.last()) {
        (Some(first), Some(last)) if first != last => {
            format!(" over {} days, {} to {}", days.len(), date(*first), date(*last))
        }
        (Some(only), _) => format!(" on {}", date(*only)),
        _ => String::new(),
    };
    format!("campaign '{}', {fleet}: {} reports{span}", summary.campaign, count(reports))
}

impl fmt::Display for CampaignSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}\n", heading(self))?;
        writeln!(
            f,
            "{:<10} {:>8} {:>12} {:>12}  {:<22} conversion rate (95% CI)",
            "arm", "devices", "device-days", "impressions", "accept rate (95% CI)"
        )?;
        for arm in &self.arms {
            let (devices, device_days) = (count(arm.devices), count(arm.device_days));
            match &arm.figures {
                Some(fig) => writeln!(
                    f,
                    "{:<10} {devices:>8} {device_days:>12} {:>12}  {:<22} {}",
                    arm.arm.as_str(),
                    thousands(fig.counts.impressions),
                    rate_text(fig.accept_rate.as_ref()),
                    rate_text(fig.conversion_rate.as_ref())
                )?,
                None => writeln!(
                    f,
                    "{:<10} {devices:>8} {device_days:>12} {:>12}  suppressed: fewer than {} devices",
                    arm.arm.as_str(),
                    "—",
                    self.min_devices
                )?,
            }
        }
        if self.arms.iter().all(|a| a.arm != Arm::Holdout) {
            writeln!(f, "{:<10} {:>8} {:>12} {:>12}  no reports", "holdout", "—", "—", "—")?;
        }
        writeln!(f, "\nuplift: {}", uplift_text(self))?;
        writeln!(f, "{}", suppressed_text(self))?;
        writeln!(f, "{NOTE_DEVICES}")?;
        writeln!(f, "{NOTE_NOISE}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_protocol::report::Report;
    use ledtrad_protocol::UnixTime;

    #[test]
    fn an_uplift_clamped_to_what_a_rate_difference_can_be_says_so() {
        let interval = |estimate, low, high| Interval { estimate, low, high, std_error: 0.28 };
        let uplift = crate::uplift::Uplift {
            absolute: interval(0.9, 0.346, 1.0),
            relative: Some(interval(18.0, -1.0, 167.0)),
            clamped: true,
        };
        let summary = CampaignSummary {
            campaign: CampaignId::try_new("dairy").unwrap(),
            fleet: None,
            min_devices: 1,
            arms: Vec::new(),
            uplift: Some(uplift),
            no_uplift: None,
            suppressed: Vec::new(),
        };
        let text = uplift_text(&summary);
        assert!(text.starts_with("+90.0 points (95% CI +34.6 to +100.0)"), "{text}");
        assert!(text.contains("relative +1800% (95% CI -100% to +16700%)"), "{text}");
        assert!(text.ends_with("(intervals clamped to what a rate difference can be: -100 to +100 points, relative no lower than -100%)"), "{text}");
    }

    fn build_report(arm: Arm, day: u32, impressions: i32, accepts: i32, conversions: i32) -> Report {
        Report {
            campaign: CampaignId::try_new("dairy").unwrap(),
            arm,
            day,
            catalogue_version: 1,
            epsilon: 1.0,
            impressions,
            accepts,
            dismissals: 0,
            conversions,
            id: None,
        }
    }

    /// A database with `treatment` and `holdout` reports a day for two days (the second day's
    /// holdout has 10 fewer), each counting 4 impressions, 1 accept (treatment) and a
    /// conversion on every fifth (treatment) or eleventh (holdout) report.
    fn build_db(dir: &std::path::Path, treatment: usize, holdout: usize) -> ReportsAt {
        let path = dir.join("reports.db");
        let store = ReportStore::open(&path).unwrap();
        let fleet = FleetId::try_new("home").unwrap();
        for day in [20_400, 20_401] {
            for i in 0..treatment {
                let r = build_report(Arm::Treatment, day, 4, 1, i32::from(i % 5 == 0));
                store.insert(&fleet, &r, UnixTime(0)).unwrap();
            }
            for i in 0..holdout - if day == 20_401 { 10 } else { 0 } {
                store
                    .insert(&fleet, &build_report(Arm::Holdout, day, 4, 0, i32::from(i % 11 == 0)), UnixTime(0))
                    .unwrap();
            }
        }
        path.into()
    }

    fn dairy() -> CampaignId {
        CampaignId::try_new("dairy").unwrap()
    }

    #[test]
    fn the_table_shows_each_arm_the_uplift_and_what_was_suppressed() {
        let dir = tempfile::tempdir().unwrap();
        let db = build_db(dir.path(), 100, 55);
        let home = FleetId::try_new("home").unwrap();
        let text = load_summary(&db, &dairy(), Some(&home), 50).unwrap().to_string();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], "campaign 'dairy', fleet 'home': 300 reports over 2 days, 2025-11-08 to 2025-11-09");
        assert!(lines[2].starts_with("arm         devices  device-days  impressions  accept rate (95% CI)"), "{text}");
        assert!(lines[3].starts_with("treatment       100          200          800  25.0% ("), "{text}");
        assert!(
            lines[4].starts_with("holdout          55          100          400  —                      2.5% ("),
            "{text}"
        );
        assert!(lines[6].starts_with("uplift: +2.5 points (95% CI "), "{text}");
        assert_eq!(lines[7], "suppressed, fewer than 50 devices: holdout on 2025-11-09 (45 devices)");
        assert!(text.contains("reports carry no device id"), "{text}");
    }

    #[test]
    fn a_small_arm_is_shown_as_suppressed_not_as_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let db = build_db(dir.path(), 100, 40);
        let summary = load_summary(&db, &dairy(), None, 50).unwrap();
        let text = summary.to_string();
        let holdout = text.lines().find(|l| l.starts_with("holdout")).unwrap();
        assert_eq!(holdout, "holdout          40           70            —  suppressed: fewer than 50 devices");
        assert!(text.contains("uplift: none: the holdout arm has too few devices to report"), "{text}");
        assert!(text.contains("suppressed, fewer than 50 devices: the holdout arm and all its days (40 devices)"));
        assert!(text.starts_with("campaign 'dairy', every fleet: "), "{text}");
    }

    #[test]
    fn a_missing_database_or_campaign_says_where_reports_come_from_and_what_there_is() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.db");
        let text = load_summary(&missing.clone().into(), &dairy(), None, 50).unwrap_err().to_string();
        assert!(text.contains("nope.db' does not exist; it is written by `ledtrad-op serve --reports FILE`"), "{text}");
        assert!(!missing.exists(), "a report does not create the database");
        let db = build_db(dir.path(), 10, 20);
        let text = load_summary(&db, &CampaignId::try_new("bread").unwrap(), None, 50).unwrap_err().to_string();
        assert!(text.starts_with("no reports for campaign 'bread' in '"), "{text}");
        assert!(text.ends_with("; campaigns with reports: dairy"), "{text}");
        let office = FleetId::try_new("office").unwrap();
        let text = load_summary(&db, &dairy(), Some(&office), 50).unwrap_err().to_string();
        assert!(text.contains("campaign 'dairy' from fleet 'office'"), "{text}");
        assert!(text.ends_with("campaigns with reports (from any fleet): dairy"), "{text}");
        let empty: ReportsAt = dir.path().join("empty.db").into();
        ReportStore::connect(&empty).unwrap();
        let text = load_summary(&empty, &dairy(), None, 50).unwrap_err().to_string();
        assert!(text.ends_with("the database holds no reports yet"), "{text}");
    }

    #[test]
    fn numbers_read_easily() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(-12.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(count(12_345), "12,345");
        assert_eq!(rate_text(None), "—");
        assert_eq!(percent(0.1234), "12.3%");
    }
}
