//! Estimates with their 95% intervals: a rate from noised sums, a symmetric interval, the
//! clamp that keeps an interval within what it can be, and how many impressions an arm needs
//! before its interval means anything (see the parent module's docs for the statistics).

use serde::{Deserialize, Serialize};

use crate::reports::{Sums, Z95};

/// An estimate with its 95% interval. Rates are kept within 0 to 1, and so are their bounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The estimate.
    pub estimate: f64,
    /// The lower bound of the 95% interval.
    pub low: f64,
    /// The upper bound of the 95% interval.
    pub high: f64,
    /// The estimate's standard error.
    pub std_error: f64,
}

impl Interval {
    /// Whether `value` lies within the interval.
    pub fn contains(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }
}

/// `numerator` over the impressions of `sums` with its 95% interval, allowing for sampling and
/// the devices' noise in both sums (delta method); `None` without at least one impression.
pub fn rate(numerator: f64, sums: &Sums) -> Option<Interval> {
    let n = sums.impressions;
    if !n.is_finite() || n < 1.0 {
        return None;
    }
    let p = (numerator / n).clamp(0.0, 1.0);
    let variance = (n * p * (1.0 - p) + sums.noise_variance * (1.0 + p * p)) / (n * n);
    let std_error = variance.sqrt();
    Some(Interval { estimate: p, low: (p - Z95 * std_error).max(0.0), high: (p + Z95 * std_error).min(1.0), std_error })
}

/// An estimate with a symmetric 95% interval.
pub(super) fn normal(estimate: f64, std_error: f64) -> Interval {
    Interval { estimate, low: estimate - Z95 * std_error, high: estimate + Z95 * std_error, std_error }
}

/// The fewest impressions (or decisions) each arm needs before a conversion uplift can be told,
/// at the conversion rate `pooled` of both arms together: enough that an arm expects 5
/// conversions and 5 without (the normal approximation's rule), and at least 30. `None` when
/// `pooled` is 0 or 1 (or not a number): nothing converted, or everything did, and no number
/// of decisions would make the interval mean anything.
pub fn needed_per_arm(pooled: f64) -> Option<u64> {
    let rarer = pooled.min(1.0 - pooled);
    if !rarer.is_finite() || rarer <= 0.0 {
        return None;
    }
    Some(((5.0 / rarer).ceil() as u64).max(MIN_PER_ARM))
}

/// The fewest impressions an arm needs whatever the rate: below 30 the normal approximation
/// fails for every rate under 17%, and the interval is wider than ±17 points even at 50%.
pub const MIN_PER_ARM: u64 = 30;

/// `interval` kept within `low..=high`; whether it had to be.
pub fn clamp(interval: Interval, low: f64, high: f64) -> (Interval, bool) {
    let clamped = Interval {
        estimate: interval.estimate.clamp(low, high),
        low: interval.low.clamp(low, high),
        high: interval.high.clamp(low, high),
        std_error: interval.std_error,
    };
    (clamped, clamped != interval)
}
