//! Aggregated, noised measurement counts (DESIGN §12). No device id in the payload.

use alloc::string::String;
use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::id::CampaignId;

/// The arm of a campaign a device is in (treatment orders first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// A report's own identity: 128 random bits the device draws when it queues the report, sent
/// again unchanged when the report is sent again (after a lost acknowledgement), so the operator
/// stores each report once. Random rather than a per-device sequence: a sequence would need a
/// device's identity beside it, and reports carry none; nor can two of one device's reports be
/// linked by their ids. In JSON, 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReportId(pub u128);

impl fmt::Display for ReportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Why a text is not a report id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("report id {0:?} is not 32 lowercase hex digits")]
pub struct InvalidReportId(pub String);

impl core::str::FromStr for ReportId {
    type Err = InvalidReportId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        match u128::from_str_radix(s, 16) {
            Ok(id) if hex => Ok(ReportId(id)),
            _ => Err(InvalidReportId(s.into())),
        }
    }
}

impl Serialize for ReportId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ReportId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
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
    /// The report's identity, so a report sent twice is stored once (absent from agents that
    /// predate it: such reports are stored as they come).
    #[serde(default)]
    pub id: Option<ReportId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_ids_read_back_and_bad_ones_are_named() {
        let id = ReportId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        assert_eq!(id.to_string(), "0123456789abcdef0011223344556677");
        assert_eq!(id.to_string().parse::<ReportId>(), Ok(id));
        for bad in [
            "",
            "0123",
            "0123456789ABCDEF0011223344556677",
            "+123456789abcdef0011223344556677",
            "0123456789abcdef00112233445566778",
        ] {
            assert_eq!(bad.parse::<ReportId>(), Err(InvalidReportId(bad.into())), "{bad}");
        }
    }

    #[test]
    fn a_report_from_an_agent_without_report_ids_still_reads() {
        let json = r#"{"campaign":"dairy","arm":"treatment","day":1,"catalogue_version":1,"epsilon":1.0,"impressions":1,"accepts":0,"dismissals":0,"conversions":0}"#;
        let report: Report = crate::codec::from_json(json.as_bytes(), "report").unwrap();
        assert_eq!(report.id, None);
        let bad = json.replace("\"conversions\":0", "\"conversions\":0,\"id\":\"XYZ\"");
        let error = crate::codec::from_json::<Report>(bad.as_bytes(), "report").unwrap_err().to_string();
        assert!(error.contains("report id \"XYZ\" is not 32 lowercase hex digits"), "{error}");
    }

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
