//! What a laboratory report holds: the run's parameters, each policy's figures, the uplift
//! and whether it can be told, the days, and the decision-latency histogram.

use serde::{Deserialize, Serialize};

/// What a run, or a comparison of policies, simulated and what came of it: all a page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabReport {
    /// The page's heading, such as "clues vs blunt, 1,000 homes, 14 days".
    pub title: String,
    /// What was run: the scenario's parameters, each with where its value comes from.
    pub scenario: Vec<Parameter>,
    /// The people model's assumptions, one sentence each.
    pub assumptions: Vec<String>,
    /// One policy for `run`, two or more for `compare`: the summary table's columns, in order.
    pub policies: Vec<PolicyRun>,
}

/// One parameter of the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    /// Its name, such as "homes".
    pub name: String,
    /// Its value as it should be read, such as "1,000".
    pub value: String,
    /// Where the value comes from (a survey, a study), when it is not simply chosen.
    pub source: Option<String>,
}

/// One policy's run: its totals, its days, its decision latency and its devices' uplink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRun {
    /// The policy's name, such as "clues" or "blunt".
    pub policy: String,
    /// Devices (agents) run.
    pub devices: u64,
    /// People in the homes.
    pub people: u64,
    /// Decisions the devices' engines took.
    pub decisions: u64,
    /// Offers shown.
    pub shown: u64,
    /// Offers accepted.
    pub accepted: u64,
    /// Offers dismissed, "not for me" included.
    pub dismissed: u64,
    /// Of the dismissals, "not for me".
    pub not_for_me: u64,
    /// Conversions: offers taken up after an accept, and what households did unprompted.
    pub converted: u64,
    /// Consent revocations the simulated people made.
    pub revocations: u64,
    /// Decisions where a campaign's holdout arm showed nothing.
    pub held_out: u64,
    /// Consent violations the independent audit found (anything above 0 is a bug).
    pub consent_violations: u64,
    /// The uplift in conversion rate, treatment over holdout; none without a holdout.
    pub uplift: Option<UpliftFigure>,
    /// Each simulated day's figures.
    pub days: Vec<DayFigures>,
    /// The engine's decision-latency histogram, as [`latency_histogram`] makes it.
    pub latency_us: Vec<LatencyBucket>,
    /// Uplink payload bytes per device per simulated day, by purpose: `("status", 12.3)`,
    /// `("measure", ..)`, `("request", ..)`.
    pub uplink_bytes_per_device_day: Vec<(String, f64)>,
}

/// Conversion rate per shown/held-out decision, treatment over holdout. Rates are shares
/// (0..=1); points and its interval are percentage points, within −100 to +100. Below
/// [`needed`](UpliftFigure::needed) decisions in an arm the figures are kept but not shown:
/// there are too few to tell (the rule is the operator's,
/// [`needed_per_arm`](ledtrad_operator::uplift::needed_per_arm)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UpliftFigure {
    /// Conversions per shown decision in the treatment arm, a share.
    pub treatment_rate: f64,
    /// Conversions per held-out decision in the holdout arm, a share.
    pub holdout_rate: f64,
    /// The difference, treatment minus holdout, in percentage points.
    pub points: f64,
    /// The low end of its 95% confidence interval, in percentage points.
    pub low: f64,
    /// The high end of its 95% confidence interval, in percentage points.
    pub high: f64,
    /// Decisions held out (the holdout arm).
    pub held_out: u64,
    /// Offers shown of campaigns with a holdout arm (the treatment arm).
    pub treated: u64,
    /// The decisions each arm needs before the uplift can be told, at the two arms' pooled
    /// conversion rate; none when nothing converted (or everything did).
    pub needed: Option<u64>,
    /// Whether enough decisions were held out to tell ([`needed`](Self::needed) or more).
    pub enough_held_out: bool,
    /// Whether the interval reached past ±100 points and was clamped to them.
    pub clamped: bool,
}

impl UpliftFigure {
    /// Whether both arms have the decisions needed to tell an uplift.
    pub fn enough(&self) -> bool {
        self.enough_held_out && self.needed.is_some_and(|n| self.treated >= n)
    }

    /// Why the uplift cannot be told yet, with the counts, e.g. "too few held out to tell (1
    /// decision held out, 212 treated; needs at least 50)"; none when it can.
    pub fn too_few(&self) -> Option<String> {
        if self.enough() {
            return None;
        }
        let what = if self.enough_held_out { "treated" } else { "held out" };
        let plural = if self.held_out == 1 { "" } else { "s" };
        let counts = format!("{} decision{plural} held out, {} treated", self.held_out, self.treated);
        Some(match self.needed {
            Some(n) => format!("too few {what} to tell ({counts}; needs at least {n})"),
            None => format!("too few held out to tell ({counts}; no conversion yet to measure by)"),
        })
    }

    /// The figure with its interval, "+2.4 points (95% CI -1.0 to +5.8)", with `decimals`
    /// decimals, saying when the interval was clamped; or why it cannot be told yet.
    pub fn text(&self, decimals: usize) -> String {
        if let Some(too_few) = self.too_few() {
            return too_few;
        }
        let clamped = if self.clamped { ", clamped to ±100" } else { "" };
        format!(
            "{:+.decimals$} points (95% CI {:+.decimals$} to {:+.decimals$}{clamped})",
            self.points, self.low, self.high
        )
    }
}

/// One simulated day of one policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayFigures {
    /// The day, counted from 1.
    pub day: u32,
    /// Offers shown that day.
    pub shown: u64,
    /// Offers accepted that day.
    pub accepted: u64,
    /// Offers dismissed that day, "not for me" included.
    pub dismissed: u64,
    /// Consents revoked that day.
    pub revocations: u64,
    /// People in the homes at the day's end.
    pub people: u64,
    /// People granting `personalise` at the day's end.
    pub personalise: u64,
    /// People granting `measure` at the day's end.
    pub measure: u64,
    /// People granting `request` at the day's end.
    pub request: u64,
}

/// One bucket of a decision-latency histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyBucket {
    /// The bucket's inclusive upper edge in microseconds; `None` for the last, open bucket
    /// (above the largest edge). Not `f64::INFINITY`, which JSON cannot carry: serde_json
    /// writes it as `null` and then cannot read it back as a number.
    pub upper_us: Option<f64>,
    /// Decisions in the bucket.
    pub count: u64,
}

/// The histogram's upper edges in microseconds; one open bucket follows the last.
pub const LATENCY_EDGES_US: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000];

/// Decision times in nanoseconds as a histogram over [`LATENCY_EDGES_US`] and one open
/// bucket above them: always all 13 buckets, in order, so policies line up bucket by bucket.
/// A time exactly on an edge counts in the bucket the edge closes (1,000 ns is "≤1 µs").
pub fn latency_histogram(nanos: &[u64]) -> Vec<LatencyBucket> {
    let mut counts = [0u64; LATENCY_EDGES_US.len() + 1];
    for &n in nanos {
        let bucket = LATENCY_EDGES_US.iter().position(|&edge| n <= edge * 1_000).unwrap_or(LATENCY_EDGES_US.len());
        counts[bucket] += 1;
    }
    let uppers = LATENCY_EDGES_US.iter().map(|&edge| Some(edge as f64)).chain([None]);
    uppers.zip(counts).map(|(upper_us, count)| LatencyBucket { upper_us, count }).collect()
}
