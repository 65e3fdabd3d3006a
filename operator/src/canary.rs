//! Judging a staged rollout's canary by what people do with it: its dismiss rate against the
//! rest of the fleet's over the same days, from the reports the devices send (each report
//! names the catalogue version its counts were made under). `ledtrad-op rollout status
//! --abort-if-dismissals 1.5x` aborts on it.

use ledtrad_protocol::report::{Arm, Report};
use serde::Serialize;

use crate::reports::{is_usable, Sums};

/// The default least number of (de-noised) impressions each side needs before the canary is
/// judged.
pub const DEFAULT_MIN_IMPRESSIONS: f64 = 200.0;

/// One side of the comparison: impressions and dismissals in the treatment arm, summed over
/// every campaign.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Side {
    /// Reports summed.
    pub reports: usize,
    /// Impressions (de-noised sum).
    pub impressions: f64,
    /// Dismissals and "not for me" (de-noised sum).
    pub dismissals: f64,
    /// Dismissals over impressions; `None` without impressions.
    pub dismiss_rate: Option<f64>,
}

impl Side {
    fn of(sums: &Sums) -> Self {
        let dismiss_rate = (sums.impressions > 0.0).then(|| (sums.dismissals / sums.impressions).clamp(0.0, 1.0));
        Self { reports: sums.reports, impressions: sums.impressions, dismissals: sums.dismissals, dismiss_rate }
    }
}

/// The canary (devices on the version rolling out) against the rest of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CanaryComparison {
    /// The version rolling out.
    pub version: u64,
    /// The first local day the canary reported on; the rest is counted from then on too.
    pub since_day: Option<u32>,
    /// Devices on the version.
    pub canary: Side,
    /// Devices on any other version, over the same days.
    pub rest: Side,
    /// The canary's dismiss rate over the rest's; `None` until both have a rate (infinite when
    /// the rest dismissed nothing and the canary did).
    pub ratio: Option<f64>,
    /// The impressions each side needs before it is judged.
    pub min_impressions: f64,
}

impl CanaryComparison {
    /// Whether both sides have the impressions to be judged.
    pub fn enough(&self) -> bool {
        self.canary.impressions >= self.min_impressions && self.rest.impressions >= self.min_impressions
    }

    /// Whether the canary dismisses more than `limit` times as often as the rest, with enough
    /// impressions on both sides.
    pub fn over_dismiss_limit(&self, limit: f64) -> bool {
        self.enough() && self.ratio.is_some_and(|r| r > limit)
    }
}

/// Compares the dismiss rate of the devices that report under catalogue `version` with that of
/// the others, over the days since the canary first reported. Holdout reports show nothing and
/// are left out.
pub fn compare_dismissals(reports: &[Report], version: u64, min_impressions: f64) -> CanaryComparison {
    let treated = || reports.iter().filter(|r| r.arm == Arm::Treatment && is_usable(r));
    let since_day = treated().filter(|r| r.catalogue_version == version).map(|r| r.day).min();
    let (mut canary, mut rest) = (Sums::default(), Sums::default());
    for r in treated().filter(|r| since_day.is_some_and(|d| r.day >= d)) {
        if r.catalogue_version == version {
            canary.add(r);
        } else {
            rest.add(r);
        }
    }
    let (canary, rest) = (Side::of(&canary), Side::of(&rest));
    let ratio = match (canary.dismiss_rate, rest.dismiss_rate) {
        (Some(c), Some(r)) if r > 0.0 => Some(c / r),
        (Some(c), Some(_)) if c > 0.0 => Some(f64::INFINITY),
        (Some(_), Some(_)) => Some(1.0),
        _ => None,
    };
    CanaryComparison { version, since_day, canary, rest, ratio, min_impressions }
}

impl std::fmt::Display for CanaryComparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = |s: &Side| s.dismiss_rate.map_or_else(|| "—".to_string(), |r| format!("{:.1}%", r * 100.0));
        write!(
            f,
            "dismissals: version {} {} of {:.0} impressions, the rest {} of {:.0}",
            self.version,
            rate(&self.canary),
            self.canary.impressions.max(0.0),
            rate(&self.rest),
            self.rest.impressions.max(0.0)
        )?;
        match self.ratio {
            Some(r) if self.enough() => writeln!(f, " ({r:.2}×)"),
            _ => writeln!(f, " (not judged until each side has {:.0} impressions)", self.min_impressions),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_protocol::CampaignId;

    fn report(version: u64, day: u32, arm: Arm, impressions: i32, dismissals: i32) -> Report {
        Report {
            campaign: CampaignId::try_new("dairy").unwrap(),
            arm,
            day,
            catalogue_version: version,
            epsilon: 1.0,
            impressions,
            accepts: 0,
            dismissals,
            conversions: 0,
        }
    }

    #[test]
    fn the_canary_is_compared_with_the_rest_over_the_same_days() {
        let reports = vec![
            // Before the canary: not counted for the rest either.
            report(1, 9, Arm::Treatment, 500, 400),
            report(2, 10, Arm::Treatment, 150, 45),
            report(2, 11, Arm::Treatment, 100, 30),
            report(1, 10, Arm::Treatment, 300, 30),
            report(1, 11, Arm::Holdout, 900, 0),
        ];
        let c = compare_dismissals(&reports, 2, 200.0);
        assert_eq!(c.since_day, Some(10));
        assert_eq!((c.canary.impressions, c.canary.dismissals), (250.0, 75.0));
        assert_eq!((c.rest.reports, c.rest.impressions), (1, 300.0));
        assert!((c.ratio.unwrap() - 3.0).abs() < 1e-9);
        assert!(c.over_dismiss_limit(1.5) && !c.over_dismiss_limit(3.5));
        assert!(c.to_string().contains("30.0% of 250 impressions, the rest 10.0% of 300 (3.00×)"), "{c}");
    }

    #[test]
    fn too_few_impressions_are_not_judged() {
        let reports = vec![report(2, 10, Arm::Treatment, 50, 50), report(1, 10, Arm::Treatment, 300, 3)];
        let c = compare_dismissals(&reports, 2, 200.0);
        assert!(!c.enough() && !c.over_dismiss_limit(1.5));
        assert!(c.to_string().contains("not judged until each side has 200 impressions"), "{c}");
        // No reports under the version at all: nothing to compare.
        let c = compare_dismissals(&reports, 7, 0.0);
        assert_eq!((c.since_day, c.ratio), (None, None));
        assert!(!c.over_dismiss_limit(1.5));
        // The rest dismissed nothing and the canary did: over any limit.
        let c = compare_dismissals(&[report(2, 10, Arm::Treatment, 5, 2), report(1, 10, Arm::Treatment, 5, 0)], 2, 5.0);
        assert!(c.over_dismiss_limit(1.5));
    }
}
