//! Aggregated, noised measurement counts (DESIGN §12). No device id in the payload.

use serde::{Deserialize, Serialize};

use crate::id::CampaignId;

/// The arm of a campaign a device is in (treatment orders first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// Shown offers.
    Treatment,
    /// Held out: records "would have shown" and shows nothing.
    Holdout,
}

impl Arm {
    /// Its name, as in JSON: `treatment` or `holdout`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Treatment => "treatment",
            Self::Holdout => "holdout",
        }
    }
}

/// The noise mechanism devices apply to each count: two-sided geometric noise (the discrete
/// Laplace mechanism) with `alpha = exp(-epsilon)`, sensitivity 1. `uniform` gives samples in
/// `[0, 1)`. Counts are not clamped, so the noise is zero-mean and sums over devices are
/// unbiased.
pub fn add_noise(count: u32, epsilon: f64, mut uniform: impl FnMut() -> f64) -> i32 {
    let alpha = libm_exp(-epsilon);
    let mut geometric = || {
        let mut k = 0i32;
        while uniform() < alpha && k < 10_000 {
            k += 1;
        }
        k
    };
    let noise = geometric() - geometric();
    i32::try_from(count).unwrap_or(i32::MAX).saturating_add(noise)
}

/// The variance of the noise one count carries at `epsilon`: `2·alpha / (1 - alpha)²`.
pub fn noise_variance(epsilon: f64) -> f64 {
    let alpha = libm_exp(-epsilon);
    2.0 * alpha / ((1.0 - alpha) * (1.0 - alpha))
}

/// `e^x` without `std` (the series converges fast for the small |x| used here).
fn libm_exp(x: f64) -> f64 {
    // Range reduction: e^x = (e^(x/2^k))^(2^k).
    let k = 8;
    let y = x / f64::from(1u32 << k);
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..20 {
        term *= y / f64::from(n);
        sum += term;
    }
    for _ in 0..k {
        sum *= sum;
    }
    sum
}

/// The smallest and largest epsilon a device accepts for its reports.
pub const EPSILON_RANGE: core::ops::RangeInclusive<f64> = 0.05..=10.0;

/// The most a device counts of anything for one campaign on one day (an offer a few times an
/// hour all day long stays far below it).
pub const MAX_DAILY_COUNT: u32 = 1_000;

/// The largest magnitude a count of `epsilon`'s noise can plausibly reach: [`MAX_DAILY_COUNT`]
/// plus twenty standard deviations of the noise. A larger count is a broken or hostile sender.
pub fn plausible_bound(epsilon: f64) -> f64 {
    f64::from(MAX_DAILY_COUNT) + 20.0 * noise_variance(epsilon).sqrt()
}

/// Counts for one campaign and arm over one local day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The campaign.
    pub campaign: CampaignId,
    /// The arm.
    pub arm: Arm,
    /// Days since the epoch, device-local.
    pub day: u32,
    /// The version of the catalogue the counts were made under, so a staged rollout's canary
    /// can be compared with the devices that kept the version before (0: none applied).
    pub catalogue_version: u64,
    /// The privacy parameter of the noise on each count (see [`add_noise`]).
    pub epsilon: f64,
    /// Offers shown, noised (may be negative).
    pub impressions: i32,
    /// Offers accepted, noised.
    pub accepts: i32,
    /// Offers dismissed or refused, noised.
    pub dismissals: i32,
    /// Conversions, noised: in the holdout arm, conversions after a "would have shown".
    pub conversions: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_where_it_is_used() {
        for x in [-0.05f64, -0.5, -1.0, -2.0, -10.0] {
            let want = x.exp();
            assert!((libm_exp(x) - want).abs() < 1e-12 * want.max(1e-300) + 1e-15, "{x}");
        }
    }

    #[test]
    fn noise_is_zero_mean_with_the_stated_variance() {
        // A small deterministic generator (xorshift) keeps the test reproducible.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let n = 20_000;
        let samples: Vec<f64> = (0..n).map(|_| f64::from(add_noise(5, 1.0, &mut uniform) - 5)).collect();
        let mean = samples.iter().sum::<f64>() / f64::from(n);
        let var = samples.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / f64::from(n);
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var / noise_variance(1.0) - 1.0).abs() < 0.08, "variance {var} vs {}", noise_variance(1.0));
    }
}
