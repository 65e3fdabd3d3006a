//! Judging a staged rollout's canary by what people do with it: its dismiss rate against the
//! rest of the fleet's over the same days, from the reports the devices send (each report
//! names the catalogue version its counts were made under). `ledtrad-op rollout status
//! --abort-if-dismissals 1.5x` aborts on it, only when the canary's rate is above the limit
//! times the rest's by more than the devices' noise and chance explain (one-sided, 95%), so a
//! healthy rollout is not rolled back on noise.

use ledtrad_protocol::report::{Arm, Report};
use serde::Serialize;

use crate::reports::{is_usable, Sums};
use crate::uplift::{rate, Interval};

/// The one-sided 95% point of the normal distribution.
const Z95_ONE_SIDED: f64 = 1.645;

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
    /// Dismissals over impressions with its 95% interval; `None` without impressions.
    pub dismiss_rate: Option<Interval>,
}

impl Side {
    fn of(sums: &Sums) -> Self {
        let dismiss_rate = rate(sums.dismissals, sums);
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
    /// The canary's dismiss rate over the rest's; `None` until both have a rate above 0.
    pub ratio: Option<f64>,
    /// The impressions each side needs before it is judged.
    pub min_impressions: f64,
}

impl CanaryComparison {
    /// Whether both sides have the impressions to be judged.
    pub fn enough(&self) -> bool {
        self.canary.impressions >= self.min_impressions && self.rest.impressions >= self.min_impressions
    }

    /// How far the canary's dismiss rate is above `limit` times the rest's, in standard errors
    /// of that difference; `None` until both sides have a rate.
    pub fn z_over(&self, limit: f64) -> Option<f64> {
        let (c, r) = (self.canary.dismiss_rate?, self.rest.dismiss_rate?);
        let se = (c.std_error.powi(2) + limit * limit * r.std_error.powi(2)).sqrt();
        (se > 0.0).then(|| (c.estimate - limit * r.estimate) / se)
    }

    /// Whether the canary dismisses more than `limit` times as often as the rest, beyond what
    /// chance and the devices' noise explain (one-sided, 95%), with enough impressions on both
    /// sides.
    pub fn over_dismiss_limit(&self, limit: f64) -> bool {
        self.enough() && self.z_over(limit).is_some_and(|z| z > Z95_ONE_SIDED)
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
        (Some(c), Some(r)) if r.estimate > 0.0 => Some(c.estimate / r.estimate),
        _ => None,
    };
    CanaryComparison { version, since_day, canary, rest, ratio, min_impressions }
}

impl std::fmt::Display for CanaryComparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = |s: &Side| s.dismiss_rate.map_or_else(|| "—".to_string(), |r| format!("{:.1}%", r.estimate * 100.0));
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
            _ if !self.enough() => {
                writeln!(f, " (not judged until each side has {:.0} impressions)", self.min_impressions)
            }
            Some(r) => writeln!(f, " ({r:.2}×)"),
            None => writeln!(f),
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
            id: None,
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
        // 30% against 10%: well above 1.5 times, not significantly above 2.5 times.
        assert!(c.over_dismiss_limit(1.5) && !c.over_dismiss_limit(2.5));
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
        // A few dismissals against none: noise and chance explain it.
        let c = compare_dismissals(&[report(2, 10, Arm::Treatment, 5, 2), report(1, 10, Arm::Treatment, 5, 0)], 2, 5.0);
        assert!(!c.over_dismiss_limit(1.5));
    }

    /// Healthy rollouts (the canary dismisses as often as the rest) with noised counts are
    /// hardly ever aborted; a canary dismissed three times as often nearly always is, given
    /// 1,000 impressions a side (at 200 the devices' noise leaves it about even).
    #[test]
    fn noise_alone_rarely_aborts_and_a_real_difference_does() {
        use ledtrad_protocol::report::add_noise;
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut run = |canary_rate: f64, rest_rate: f64| {
            let mut reports = Vec::new();
            for (version, p) in [(2, canary_rate), (1, rest_rate)] {
                for _ in 0..100 {
                    let shown: u32 = 10;
                    let dismissed = (0..shown).filter(|_| rng.random_bool(p)).count() as u32;
                    let mut uniform = || rng.random::<f64>();
                    let r = Report {
                        impressions: add_noise(shown, 1.0, &mut uniform),
                        dismissals: add_noise(dismissed, 1.0, &mut uniform),
                        ..report(version, 10, Arm::Treatment, 0, 0)
                    };
                    reports.push(r);
                }
            }
            compare_dismissals(&reports, 2, 150.0).over_dismiss_limit(1.5)
        };
        let healthy = (0..200).filter(|_| run(0.05, 0.05)).count();
        let bad = (0..200).filter(|_| run(0.45, 0.15)).count();
        assert!(healthy <= 4, "{healthy} of 200 healthy rollouts aborted");
        assert!(bad >= 180, "only {bad} of 200 bad rollouts aborted");
    }
}
