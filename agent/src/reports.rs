//! Measurement counts kept on the device (DESIGN §12): per campaign and local day, gathered
//! only while `measure` is granted, noised before they leave (two-sided geometric noise at a
//! configurable epsilon, stated in each report), and dropped on revocation.

use std::collections::BTreeMap;

use ledtrad_protocol::feedback::FeedbackKind;
use ledtrad_protocol::report::{add_noise, Arm, Report};
use ledtrad_protocol::CampaignId;
use rand::Rng;

/// The default local-differential-privacy parameter for each count (smaller is noisier).
pub const DEFAULT_EPSILON: f64 = 1.0;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    impressions: u32,
    accepts: u32,
    dismissals: u32,
    conversions: u32,
}

/// What a tally's counts are kept under: one report each.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    day: u32,
    campaign: CampaignId,
    arm: Arm,
    catalogue_version: u64,
}

/// Counts waiting to be reported, per day, campaign, arm and catalogue version.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    counts: BTreeMap<Key, Counts>,
}

/// The counts of one report before noise, for a person's data export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Local day number.
    pub day: u32,
    /// The campaign.
    pub campaign: CampaignId,
    /// The arm.
    pub arm: Arm,
    /// The catalogue version the counts were made under.
    pub catalogue_version: u64,
    /// Impressions (in the holdout arm, "would have shown").
    pub impressions: u32,
    /// Accepts.
    pub accepts: u32,
    /// Dismissals and "not for me".
    pub dismissals: u32,
    /// Conversions.
    pub conversions: u32,
}

impl Tally {
    fn counts(&mut self, day: u32, campaign: &CampaignId, arm: Arm, catalogue_version: u64) -> &mut Counts {
        let key = Key { day, campaign: campaign.clone(), arm, catalogue_version };
        self.counts.entry(key).or_default()
    }

    /// Counts an impression, or in the holdout arm a "would have shown", made under catalogue
    /// `catalogue_version`.
    pub fn impression(&mut self, day: u32, campaign: &CampaignId, arm: Arm, catalogue_version: u64) {
        self.counts(day, campaign, arm, catalogue_version).impressions += 1;
    }

    /// Counts feedback; in the holdout arm only conversions come (after a "would have shown").
    pub fn feedback(&mut self, day: u32, campaign: &CampaignId, arm: Arm, catalogue_version: u64, kind: FeedbackKind) {
        let c = self.counts(day, campaign, arm, catalogue_version);
        match kind {
            FeedbackKind::Accepted => c.accepts += 1,
            FeedbackKind::Dismissed | FeedbackKind::NotForMe => c.dismissals += 1,
            FeedbackKind::Converted => c.conversions += 1,
        }
    }

    /// Forgets everything (on revocation of `measure`).
    pub fn clear(&mut self) {
        self.counts.clear();
    }

    /// The counts waiting, before noise.
    pub fn pending(&self) -> Vec<Pending> {
        self.counts
            .iter()
            .map(|(k, n)| Pending {
                day: k.day,
                campaign: k.campaign.clone(),
                arm: k.arm,
                catalogue_version: k.catalogue_version,
                impressions: n.impressions,
                accepts: n.accepts,
                dismissals: n.dismissals,
                conversions: n.conversions,
            })
            .collect()
    }

    /// The earliest day with counts waiting.
    pub fn oldest_day(&self) -> Option<u32> {
        self.counts.keys().map(|k| k.day).min()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Takes every count as a report noised at `epsilon`, leaving the tally empty.
    pub fn drain_noised(&mut self, epsilon: f64, rng: &mut impl Rng) -> Vec<Report> {
        self.drain_noised_before(u32::MAX, epsilon, rng)
    }

    /// Takes the counts of days before `day` (completed days) as noised reports, keeping the
    /// rest: each day is reported once, when it is over.
    pub fn drain_noised_before(&mut self, day: u32, epsilon: f64, rng: &mut impl Rng) -> Vec<Report> {
        let (done, later): (BTreeMap<_, _>, BTreeMap<_, _>) =
            std::mem::take(&mut self.counts).into_iter().partition(|(k, _)| k.day < day);
        self.counts = later;
        done.into_iter()
            .map(|(k, c)| {
                let mut uniform = || rng.random::<f64>();
                let impressions = add_noise(c.impressions, epsilon, &mut uniform);
                let accepts = add_noise(c.accepts, epsilon, &mut uniform);
                let dismissals = add_noise(c.dismissals, epsilon, &mut uniform);
                let conversions = add_noise(c.conversions, epsilon, &mut uniform);
                Report {
                    campaign: k.campaign,
                    arm: k.arm,
                    day: k.day,
                    catalogue_version: k.catalogue_version,
                    epsilon,
                    impressions,
                    accepts,
                    dismissals,
                    conversions,
                    // Drawn by the egress gate when it queues the report (see `Egress::report`).
                    id: None,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn only_completed_days_leave_when_asked_for_them() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut tally = Tally::default();
        let campaign = CampaignId::try_new("dairy").unwrap();
        tally.impression(3, &campaign, Arm::Treatment, 1);
        tally.impression(4, &campaign, Arm::Treatment, 1);
        let reports = tally.drain_noised_before(4, 1.0, &mut rng);
        assert_eq!(reports.iter().map(|r| r.day).collect::<Vec<_>>(), vec![3]);
        assert_eq!(tally.oldest_day(), Some(4));
    }

    #[test]
    fn each_arm_is_reported_on_its_own() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut tally = Tally::default();
        let campaign = CampaignId::try_new("dairy").unwrap();
        tally.impression(3, &campaign, Arm::Treatment, 1);
        tally.impression(3, &campaign, Arm::Holdout, 1);
        tally.feedback(3, &campaign, Arm::Holdout, 1, FeedbackKind::Converted);
        assert_eq!(tally.oldest_day(), Some(3));
        let reports = tally.drain_noised(50.0_f64.min(10.0), &mut rng);
        let arms: Vec<Arm> = reports.iter().map(|r| r.arm).collect();
        assert_eq!(arms, vec![Arm::Treatment, Arm::Holdout]);
        assert!(reports.iter().all(|r| r.epsilon == 10.0 && r.campaign == campaign));
    }

    #[test]
    fn each_catalogue_version_is_reported_on_its_own() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut tally = Tally::default();
        let campaign = CampaignId::try_new("dairy").unwrap();
        tally.impression(3, &campaign, Arm::Treatment, 4);
        tally.feedback(3, &campaign, Arm::Treatment, 4, FeedbackKind::Dismissed);
        tally.impression(3, &campaign, Arm::Treatment, 5);
        assert_eq!(tally.pending().len(), 2);
        assert_eq!((tally.pending()[0].dismissals, tally.pending()[1].dismissals), (1, 0));
        let versions: Vec<u64> = tally.drain_noised(1.0, &mut rng).iter().map(|r| r.catalogue_version).collect();
        assert_eq!(versions, vec![4, 5]);
    }

    #[test]
    fn noise_is_centred_and_counts_are_drained() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut tally = Tally::default();
        let campaign = CampaignId::try_new("dairy").unwrap();
        let mut total = 0i64;
        let runs = 4_000;
        for _ in 0..runs {
            for _ in 0..10 {
                tally.impression(3, &campaign, Arm::Treatment, 1);
            }
            let reports = tally.drain_noised(DEFAULT_EPSILON, &mut rng);
            assert_eq!(reports.len(), 1);
            assert!(tally.is_empty());
            total += i64::from(reports[0].impressions);
        }
        let mean = total as f64 / f64::from(runs);
        assert!((mean - 10.0).abs() < 0.2, "mean {mean}");
    }
}
