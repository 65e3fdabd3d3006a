//! Reading what worked: the operator side of measurement (DESIGN §12). Devices send counts
//! with zero-mean noise; summed over many devices the noise cancels out, so the sum is an
//! unbiased estimate with a known spread. Groups with too few devices are suppressed, since
//! their totals would say too much about the few households in them.

use std::collections::BTreeMap;

use ledtrad_protocol::report::{noise_variance, Arm, Report};
use ledtrad_protocol::CampaignId;
use serde::Serialize;

/// The default smallest number of devices a group needs to be reported.
pub const DEFAULT_MIN_DEVICES: usize = 50;

/// An estimated total with its 95% confidence half-width.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// The estimated total (the sum of the noised counts).
    pub total: f64,
    /// Half the width of the 95% interval the noise alone leaves around it.
    pub ci95: f64,
}

/// Totals for one campaign, arm and day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    /// Impressions.
    pub impressions: Estimate,
    /// Accepts.
    pub accepts: Estimate,
    /// Dismissals.
    pub dismissals: Estimate,
    /// Conversions.
    pub conversions: Estimate,
}

/// One group of reports: totals, or suppressed for having too few devices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// The campaign.
    pub campaign: CampaignId,
    /// The arm.
    pub arm: Arm,
    /// The local day.
    pub day: u32,
    /// The devices in the group: its reports, counting a device that changed catalogue
    /// version that day (one report per version) once.
    pub devices: usize,
    /// The totals, or `None` when the group has fewer devices than the minimum.
    pub totals: Option<Totals>,
}

/// The multiplier of a standard error that gives a 95% interval (normal approximation).
pub const Z95: f64 = 1.96;

/// Whether a group of `devices` is large enough to report at `min_devices` (at least one).
pub fn meets_minimum(devices: usize, min_devices: usize) -> bool {
    devices >= min_devices.max(1)
}

/// Whether a report can be summed: its epsilon is finite and positive, so its noise has a
/// known variance.
pub fn is_usable(report: &Report) -> bool {
    report.epsilon.is_finite() && report.epsilon > 0.0
}

/// Sums of noised counts over some reports, before any suppression: what [`aggregate`] and
/// the uplift summary build on. Each sum is an unbiased estimate of the true total (it may be
/// negative).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sums {
    /// Reports summed.
    pub reports: usize,
    /// Impressions.
    pub impressions: f64,
    /// Accepts.
    pub accepts: f64,
    /// Dismissals.
    pub dismissals: f64,
    /// Conversions.
    pub conversions: f64,
    /// The variance of the noise in each of the four sums (every count of a report carries
    /// noise of the same variance, set by its epsilon).
    pub noise_variance: f64,
}

impl Sums {
    /// Adds one report's counts and noise variance.
    pub fn add(&mut self, r: &Report) {
        self.reports += 1;
        self.impressions += f64::from(r.impressions);
        self.accepts += f64::from(r.accepts);
        self.dismissals += f64::from(r.dismissals);
        self.conversions += f64::from(r.conversions);
        self.noise_variance += noise_variance(r.epsilon);
    }

    /// Adds the sums of other reports.
    pub fn merge(&mut self, other: &Sums) {
        self.reports += other.reports;
        self.impressions += other.impressions;
        self.accepts += other.accepts;
        self.dismissals += other.dismissals;
        self.conversions += other.conversions;
        self.noise_variance += other.noise_variance;
    }

    /// The totals, each with the 95% interval the noise alone leaves around it.
    pub fn totals(&self) -> Totals {
        let estimate = |total| Estimate { total, ci95: Z95 * self.noise_variance.sqrt() };
        Totals {
            impressions: estimate(self.impressions),
            accepts: estimate(self.accepts),
            dismissals: estimate(self.dismissals),
            conversions: estimate(self.conversions),
        }
    }
}

/// The unsuppressed sums of one campaign, arm and day.
#[derive(Debug, Clone, PartialEq)]
pub struct DaySums {
    /// The campaign.
    pub campaign: CampaignId,
    /// The arm.
    pub arm: Arm,
    /// The local day.
    pub day: u32,
    /// The devices behind it, as far as reports tell: the most reports under one catalogue
    /// version (a device that changed version that day sends one report for each).
    pub devices: usize,
    /// The sums of its reports.
    pub sums: Sums,
}

/// Sums reports per (campaign, arm, day), in that order (treatment before holdout), skipping
/// reports that are not [usable](is_usable). Nothing is suppressed: callers that show the sums
/// must drop the groups that do not [meet the minimum](meets_minimum).
pub fn sum_by_day(reports: &[Report]) -> Vec<DaySums> {
    // Per group: the sums, and the reports under each catalogue version.
    type ByVersion = (Sums, BTreeMap<u64, usize>);
    let mut groups: BTreeMap<(CampaignId, Arm, u32), ByVersion> = BTreeMap::new();
    for r in reports.iter().filter(|r| is_usable(r)) {
        let (sums, versions) = groups.entry((r.campaign.clone(), r.arm, r.day)).or_default();
        sums.add(r);
        *versions.entry(r.catalogue_version).or_default() += 1;
    }
    groups
        .into_iter()
        .map(|((campaign, arm, day), (sums, versions))| DaySums {
            campaign,
            arm,
            day,
            devices: versions.values().copied().max().unwrap_or(0),
            sums,
        })
        .collect()
}

/// Sums reports per (campaign, arm, day), dropping the totals of groups with fewer than
/// `min_devices` reports. Reports with a non-finite or non-positive epsilon are skipped.
pub fn aggregate(reports: &[Report], min_devices: usize) -> Vec<Group> {
    sum_by_day(reports)
        .into_iter()
        .map(|DaySums { campaign, arm, day, devices, sums }| Group {
            campaign,
            arm,
            day,
            devices,
            totals: meets_minimum(devices, min_devices).then(|| sums.totals()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_protocol::report::add_noise;
    use rand::{Rng, SeedableRng};

    fn build_reports(devices: usize, impressions_each: u32, epsilon: f64, seed: u64) -> Vec<Report> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut uniform = || rng.random::<f64>();
        (0..devices)
            .map(|_| Report {
                campaign: CampaignId::try_new("dairy").unwrap(),
                arm: Arm::Treatment,
                day: 7,
                catalogue_version: 1,
                epsilon,
                impressions: add_noise(impressions_each, epsilon, &mut uniform),
                accepts: add_noise(1, epsilon, &mut uniform),
                dismissals: add_noise(0, epsilon, &mut uniform),
                conversions: add_noise(0, epsilon, &mut uniform),
                id: None,
            })
            .collect()
    }

    #[test]
    fn the_noise_cancels_out_in_aggregate_within_its_interval() {
        let mut covered = 0;
        for seed in 0..100 {
            let groups = aggregate(&build_reports(200, 3, 1.0, seed), DEFAULT_MIN_DEVICES);
            assert_eq!(groups.len(), 1);
            let totals = groups[0].totals.as_ref().unwrap();
            let (truth, est) = (600.0, totals.impressions);
            if (est.total - truth).abs() <= est.ci95 {
                covered += 1;
            }
            assert!((totals.accepts.total - 200.0).abs() < 4.0 * totals.accepts.ci95);
        }
        // A 95% interval should hold the truth about 95 times in 100.
        assert!((88..=100).contains(&covered), "covered {covered} of 100");
    }

    #[test]
    fn a_device_that_changed_version_counts_once() {
        // 30 devices each sent a report under version 1 and one under version 2 that day.
        let mut reports = build_reports(30, 3, 1.0, 4);
        reports.extend(build_reports(30, 3, 1.0, 5).into_iter().map(|r| Report { catalogue_version: 2, ..r }));
        let groups = aggregate(&reports, 50);
        assert_eq!((groups[0].devices, groups[0].totals.is_none()), (30, true));
    }

    #[test]
    fn small_groups_are_suppressed() {
        let groups = aggregate(&build_reports(49, 3, 1.0, 1), DEFAULT_MIN_DEVICES);
        assert_eq!((groups[0].devices, groups[0].totals.is_none()), (49, true));
        let mut reports = build_reports(60, 3, 1.0, 2);
        reports[0].epsilon = f64::NAN;
        let groups = aggregate(&reports, DEFAULT_MIN_DEVICES);
        assert_eq!(groups[0].devices, 59);
        assert!(groups[0].totals.is_some());
    }
}
