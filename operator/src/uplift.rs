//! What a campaign did: per-arm totals and rates from its devices' noised reports, the uplift
//! of the treatment arm over the holdout arm, and the daily series, each rate with a 95%
//! interval that counts both the sampling of people's answers and the devices' noise.
//!
//! Reports carry no device id, so distinct devices cannot be counted: an arm's `devices` is
//! the most reports it has on any one day (a device sends at most one report per campaign, arm
//! and day, two if the catalogue version changed that day), and `device_days` is how many
//! reports it has. Groups with fewer devices than the minimum are suppressed.
//!
//! A rate is a ratio of two noisy sums, `p = Y / X` (say conversions over impressions). Given
//! the true impressions `N`, each impression converts with probability `p` (binomial
//! sampling), and each sum carries the devices' zero-mean noise of known variance `V` (the sum
//! of [`noise_variance`](ledtrad_protocol::report::noise_variance) over its reports, the same
//! for both counts). The delta method gives `Var(p) ≈ (N·p·(1−p) + V·(1 + p²)) / N²`, with `N`
//! estimated by `X`. Arms are independent, so the uplift's variance is the sum of the two
//! rates' variances. The interval assumes every device converts at its arm's rate; devices
//! that differ widely would make the true spread wider.
//!
//! That interval rests on the normal approximation to the binomial, which holds when an arm
//! expects at least 5 conversions and 5 without (`n·p ≥ 5` and `n·(1−p) ≥ 5`, the textbook
//! rule). So an arm needs at least `max(30, ⌈5 / min(p, 1−p)⌉)` impressions, `p` being the
//! conversion rate of both arms pooled ([`needed_per_arm`]): 50 at 10%, 100 at 5%, and never
//! fewer than 30. With fewer there is no uplift to show, only "too few held out to tell".
//! A difference of two rates lies between −1 and +1 (−100 and +100 points), and a relative
//! uplift is never below −100%: an interval reaching past those bounds is clamped to them,
//! and says so ([`Uplift::clamped`]).

mod interval;

use ledtrad_protocol::report::{Arm, Report};
use ledtrad_protocol::{CampaignId, FleetId, UnixTime};
use serde::{Deserialize, Serialize};

use interval::normal;
pub use interval::{clamp, needed_per_arm, rate, Interval, MIN_PER_ARM};

use crate::reports::{meets_minimum, sum_by_day, Sums};

/// An arm's de-noised totals: the sums of the noised counts, shown as 0 where the noise took
/// a sum below 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Offers shown (in the holdout arm, moments an offer would have been shown).
    pub impressions: f64,
    /// Offers accepted (0 in the holdout arm).
    pub accepts: f64,
    /// Offers dismissed or refused (0 in the holdout arm).
    pub dismissals: f64,
    /// Conversions (in the holdout arm, after a "would have shown").
    pub conversions: f64,
}

impl Counts {
    fn of(sums: &Sums) -> Self {
        Counts {
            impressions: sums.impressions.max(0.0),
            accepts: sums.accepts.max(0.0),
            dismissals: sums.dismissals.max(0.0),
            conversions: sums.conversions.max(0.0),
        }
    }
}

/// An arm's figures, shown when the arm has enough devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmFigures {
    /// The de-noised totals.
    pub counts: Counts,
    /// Accepts over impressions: none in the holdout arm, which shows nothing, or without
    /// impressions.
    pub accept_rate: Option<Interval>,
    /// Conversions over impressions; none without impressions.
    pub conversion_rate: Option<Interval>,
}

/// The rates of one arm on one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayRates {
    /// Accepts over impressions (none in the holdout arm).
    pub accept_rate: Option<Interval>,
    /// Conversions over impressions.
    pub conversion_rate: Option<Interval>,
    /// Dismissals over impressions (none in the holdout arm).
    pub dismiss_rate: Option<Interval>,
}

/// One day of an arm's daily series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayPoint {
    /// Days since the epoch, device-local.
    pub day: u32,
    /// The day as a date, `YYYY-MM-DD`.
    pub date: String,
    /// Devices that reported that day (the day's reports).
    pub devices: usize,
    /// The day's rates, or none when the day has fewer devices than the minimum.
    pub rates: Option<DayRates>,
}

/// What one arm of a campaign did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmSummary {
    /// The arm.
    pub arm: Arm,
    /// The most reports the arm has on any one day: the devices it reached, as near as
    /// reports without device ids allow.
    pub devices: usize,
    /// The arm's reports: one per device and day.
    pub device_days: usize,
    /// The figures, or none when the arm has fewer devices than the minimum (suppressed).
    pub figures: Option<ArmFigures>,
    /// The arm's days, in order.
    pub daily: Vec<DayPoint>,
}

/// The treatment arm's conversion rate against the holdout arm's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Uplift {
    /// Treatment rate minus holdout rate (a difference of rates: 0.01 is one percentage point),
    /// within −1 to +1.
    pub absolute: Interval,
    /// The absolute uplift over the holdout rate, no lower than −1; none when the holdout rate
    /// is 0.
    pub relative: Option<Interval>,
    /// Whether an interval reached past what it can be (a rate difference beyond ±1, a
    /// relative uplift below −1) and was clamped to it.
    pub clamped: bool,
}

/// Why a campaign's uplift cannot be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoUplift {
    /// The campaign has no usable reports.
    NoReports,
    /// No treatment reports.
    NoTreatment,
    /// No holdout reports.
    NoHoldout,
    /// An arm has fewer devices than the minimum.
    Suppressed {
        /// The arm.
        arm: Arm,
    },
    /// An arm's impressions come to nothing once de-noised, so it has no conversion rate.
    NoImpressions {
        /// The arm.
        arm: Arm,
    },
    /// An arm has too few impressions for the interval's normal approximation to hold (see
    /// the module's docs): the uplift cannot be told yet.
    TooFew {
        /// The arm with too few.
        arm: Arm,
        /// Its de-noised impressions.
        impressions: u64,
        /// The other arm's.
        other: u64,
        /// The impressions each arm needs at the pooled conversion rate, or none when no
        /// impression converted (or every one did), so that no number would do.
        needed: Option<u64>,
    },
}

impl std::fmt::Display for NoUplift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoUplift::NoReports => f.write_str("no reports for this campaign"),
            NoUplift::NoTreatment => {
                f.write_str("no treatment reports: no device reported showing the campaign's offers")
            }
            NoUplift::NoHoldout => f.write_str(
                "no holdout reports: the campaign holds out no devices, or none that allow measurement reported; \
                 give it a holdout share in the catalogue to measure uplift",
            ),
            NoUplift::Suppressed { arm } => {
                write!(f, "the {} arm has too few devices to report", arm.as_str())
            }
            NoUplift::NoImpressions { arm } => {
                write!(f, "the {} arm's impressions come to nothing once de-noised", arm.as_str())
            }
            NoUplift::TooFew { arm, impressions, other, needed } => {
                let (held, treated) = match arm {
                    Arm::Holdout => (impressions, other),
                    Arm::Treatment => (other, impressions),
                };
                let what = match arm {
                    Arm::Holdout => "held out",
                    Arm::Treatment => "treated",
                };
                write!(f, "too few {what} to tell ({held} held out, {treated} treated; ")?;
                match needed {
                    Some(n) => write!(f, "needs at least {n} in each arm)"),
                    None => f.write_str("no conversion in either arm yet to measure by)"),
                }
            }
        }
    }
}

/// A group left out for having fewer devices than the minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppressed {
    /// The arm.
    pub arm: Arm,
    /// The day, or none for the arm's totals (and with them all its days).
    pub day: Option<u32>,
    /// Its devices.
    pub devices: usize,
}

/// What a campaign did, as `ledtrad-op report` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignSummary {
    /// The campaign.
    pub campaign: CampaignId,
    /// The fleet the reports were read from, or none for every fleet.
    pub fleet: Option<FleetId>,
    /// The fewest devices a group needs to be shown.
    pub min_devices: usize,
    /// The arms that reported, treatment first.
    pub arms: Vec<ArmSummary>,
    /// The uplift, when both arms can be shown.
    pub uplift: Option<Uplift>,
    /// Why there is no uplift, when there is none.
    pub no_uplift: Option<NoUplift>,
    /// The groups left out: arms, then days of the arms that are shown.
    pub suppressed: Vec<Suppressed>,
}

impl CampaignSummary {
    /// The summary of `arm`, if it reported.
    pub fn arm(&self, arm: Arm) -> Option<&ArmSummary> {
        self.arms.iter().find(|a| a.arm == arm)
    }
}

/// Summarises `campaign` from `reports` (other campaigns' reports, and reports with an unusable
/// epsilon, are left out), suppressing groups with fewer than `min_devices` devices. `fleet`
/// only records where the reports came from.
pub fn summarise(
    campaign: &CampaignId,
    fleet: Option<&FleetId>,
    reports: &[Report],
    min_devices: usize,
) -> CampaignSummary {
    let days: Vec<_> = sum_by_day(reports).into_iter().filter(|d| &d.campaign == campaign).collect();
    let mut arms = Vec::new();
    let mut suppressed = Vec::new();
    for arm in [Arm::Treatment, Arm::Holdout] {
        let arm_days: Vec<_> = days.iter().filter(|d| d.arm == arm).collect();
        if arm_days.is_empty() {
            continue;
        }
        let mut total = Sums::default();
        arm_days.iter().for_each(|d| total.merge(&d.sums));
        let devices = arm_days.iter().map(|d| d.devices).max().unwrap_or(0);
        let shown = meets_minimum(devices, min_devices);
        if !shown {
            suppressed.push(Suppressed { arm, day: None, devices });
        }
        let daily = arm_days
            .iter()
            .map(|d| {
                let day_shown = meets_minimum(d.devices, min_devices);
                if shown && !day_shown {
                    suppressed.push(Suppressed { arm, day: Some(d.day), devices: d.devices });
                }
                DayPoint {
                    day: d.day,
                    date: date(d.day),
                    devices: d.devices,
                    rates: day_shown.then(|| day_rates(arm, &d.sums)),
                }
            })
            .collect();
        let figures = shown.then(|| ArmFigures {
            counts: Counts::of(&total),
            accept_rate: shows_offers(arm).then(|| rate(total.accepts, &total)).flatten(),
            conversion_rate: rate(total.conversions, &total),
        });
        arms.push(ArmSummary { arm, devices, device_days: total.reports, figures, daily });
    }
    let (uplift, no_uplift) = match uplift(&arms) {
        Ok(u) => (Some(u), None),
        Err(why) => (None, Some(why)),
    };
    CampaignSummary {
        campaign: campaign.clone(),
        fleet: fleet.cloned(),
        min_devices,
        arms,
        uplift,
        no_uplift,
        suppressed,
    }
}

/// A local day number as `YYYY-MM-DD`.
pub fn date(day: u32) -> String {
    let (y, m, d, ..) = UnixTime(u64::from(day) * ledtrad_protocol::time::DAY_SECS).to_civil();
    format!("{y:04}-{m:02}-{d:02}")
}

/// Whether the arm shows offers (and so has accepts and dismissals).
fn shows_offers(arm: Arm) -> bool {
    arm == Arm::Treatment
}

fn day_rates(arm: Arm, sums: &Sums) -> DayRates {
    let offers = shows_offers(arm);
    DayRates {
        accept_rate: offers.then(|| rate(sums.accepts, sums)).flatten(),
        conversion_rate: rate(sums.conversions, sums),
        dismiss_rate: offers.then(|| rate(sums.dismissals, sums)).flatten(),
    }
}

fn uplift(arms: &[ArmSummary]) -> Result<Uplift, NoUplift> {
    if arms.is_empty() {
        return Err(NoUplift::NoReports);
    }
    let conversion = |arm: Arm, missing: NoUplift| {
        let summary = arms.iter().find(|a| a.arm == arm).ok_or(missing)?;
        let figures = summary.figures.as_ref().ok_or(NoUplift::Suppressed { arm })?;
        figures.conversion_rate.ok_or(NoUplift::NoImpressions { arm })
    };
    let treatment = conversion(Arm::Treatment, NoUplift::NoTreatment)?;
    let holdout = conversion(Arm::Holdout, NoUplift::NoHoldout)?;
    enough_per_arm(arms)?;
    let (t, h) = (treatment.estimate, holdout.estimate);
    let (vt, vh) = (treatment.std_error.powi(2), holdout.std_error.powi(2));
    let (absolute, absolute_clamped) = clamp(normal(t - h, (vt + vh).sqrt()), -1.0, 1.0);
    // t/h − 1 by the delta method: ∂/∂t = 1/h, ∂/∂h = −t/h².
    let relative =
        (h > 0.0).then(|| clamp(normal(t / h - 1.0, (vt / (h * h) + t * t * vh / h.powi(4)).sqrt()), -1.0, f64::MAX));
    let relative_clamped = relative.is_some_and(|(_, c)| c);
    Ok(Uplift { absolute, relative: relative.map(|(r, _)| r), clamped: absolute_clamped || relative_clamped })
}

/// Whether both arms have the impressions [`needed_per_arm`] asks at their pooled conversion
/// rate; the holdout arm is judged first, as the smaller one.
fn enough_per_arm(arms: &[ArmSummary]) -> Result<(), NoUplift> {
    let counts = |arm: Arm| arms.iter().find(|a| a.arm == arm).and_then(|a| a.figures.as_ref()).map(|f| f.counts);
    let (Some(t), Some(h)) = (counts(Arm::Treatment), counts(Arm::Holdout)) else { return Ok(()) };
    let pooled = (t.conversions + h.conversions) / (t.impressions + h.impressions);
    let needed = needed_per_arm(pooled);
    let whole = |n: f64| n.round() as u64;
    for (arm, mine, other) in [(Arm::Holdout, h, t), (Arm::Treatment, t, h)] {
        if needed.is_none_or(|n| whole(mine.impressions) < n) {
            let (impressions, other) = (whole(mine.impressions), whole(other.impressions));
            return Err(NoUplift::TooFew { arm, impressions, other, needed });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::DEFAULT_MIN_DEVICES;
    use ledtrad_protocol::report::add_noise;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// The true rates of a simulated arm.
    struct Truth {
        arm: Arm,
        devices_per_day: usize,
        accept: f64,
        dismiss: f64,
        convert: f64,
    }

    fn binomial(n: u32, p: f64, rng: &mut StdRng) -> u32 {
        (0..n).map(|_| u32::from(rng.random::<f64>() < p)).sum()
    }

    fn noised(count: u32, epsilon: f64, rng: &mut StdRng) -> i32 {
        add_noise(count, epsilon, || rng.random::<f64>())
    }

    /// Reports of simulated devices over `days` days: each device-day has 0 to 6 impressions,
    /// each accepted, dismissed and converted with the arm's true rates, counted with noise.
    fn build_reports(arms: &[Truth], days: u32, epsilon: f64, seed: u64) -> Vec<Report> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut reports = Vec::new();
        for day in 20_400..20_400 + days {
            for truth in arms {
                for _ in 0..truth.devices_per_day {
                    let impressions = rng.random_range(0..=6);
                    let (accepts, dismissals) = if truth.arm == Arm::Treatment {
                        let accepts = binomial(impressions, truth.accept, &mut rng);
                        (accepts, binomial(impressions - accepts, truth.dismiss, &mut rng))
                    } else {
                        (0, 0)
                    };
                    let conversions = binomial(impressions, truth.convert, &mut rng);
                    reports.push(Report {
                        campaign: CampaignId::try_new("dairy").unwrap(),
                        arm: truth.arm,
                        day,
                        catalogue_version: 3,
                        epsilon,
                        impressions: noised(impressions, epsilon, &mut rng),
                        accepts: noised(accepts, epsilon, &mut rng),
                        dismissals: noised(dismissals, epsilon, &mut rng),
                        conversions: noised(conversions, epsilon, &mut rng),
                        id: None,
                    });
                }
            }
        }
        reports
    }

    fn treatment(devices_per_day: usize) -> Truth {
        Truth { arm: Arm::Treatment, devices_per_day, accept: 0.3, dismiss: 0.5, convert: 0.10 }
    }

    fn holdout(devices_per_day: usize) -> Truth {
        Truth { arm: Arm::Holdout, devices_per_day, accept: 0.0, dismiss: 0.0, convert: 0.06 }
    }

    fn dairy() -> CampaignId {
        CampaignId::try_new("dairy").unwrap()
    }

    #[test]
    fn the_uplift_interval_covers_the_true_uplift_about_95_times_in_100() {
        let (mut uplift_covered, mut accept_covered, mut holdout_covered) = (0, 0, 0);
        for seed in 0..100 {
            let reports = build_reports(&[treatment(300), holdout(150)], 7, 1.0, seed);
            let s = summarise(&dairy(), None, &reports, DEFAULT_MIN_DEVICES);
            let uplift = s.uplift.unwrap();
            uplift_covered += i32::from(uplift.absolute.contains(0.10 - 0.06));
            let t = s.arm(Arm::Treatment).unwrap().figures.as_ref().unwrap();
            accept_covered += i32::from(t.accept_rate.unwrap().contains(0.3));
            let h = s.arm(Arm::Holdout).unwrap().figures.as_ref().unwrap();
            holdout_covered += i32::from(h.conversion_rate.unwrap().contains(0.06));
            assert!(h.accept_rate.is_none());
            assert!(uplift.relative.is_some());
        }
        for (what, covered) in
            [("uplift", uplift_covered), ("accept rate", accept_covered), ("holdout", holdout_covered)]
        {
            assert!((88..=100).contains(&covered), "{what}: covered {covered} of 100");
        }
    }

    #[test]
    fn an_interval_for_sampling_alone_would_be_too_narrow() {
        // The noise is most of the spread at these sizes: the interval must be wider than a
        // binomial one, or it would miss the truth far more often than 5 times in 100.
        let reports = build_reports(&[treatment(300), holdout(150)], 7, 1.0, 7);
        let s = summarise(&dairy(), None, &reports, DEFAULT_MIN_DEVICES);
        let h = s.arm(Arm::Holdout).unwrap().figures.as_ref().unwrap();
        let (p, n) = (h.conversion_rate.unwrap().estimate, h.counts.impressions);
        let binomial_only = (p * (1.0 - p) / n).sqrt();
        assert!(h.conversion_rate.unwrap().std_error > 2.0 * binomial_only);
    }

    #[test]
    fn arms_and_days_with_too_few_devices_are_suppressed() {
        let mut reports = build_reports(&[treatment(60), holdout(40)], 2, 1.0, 1);
        // The second day's treatment reports drop to 30.
        let mut seen = 0;
        reports.retain(|r| {
            let keep = !(r.day == 20_401 && r.arm == Arm::Treatment) || seen < 30;
            seen += usize::from(r.day == 20_401 && r.arm == Arm::Treatment);
            keep
        });
        let s = summarise(&dairy(), None, &reports, DEFAULT_MIN_DEVICES);
        let t = s.arm(Arm::Treatment).unwrap();
        assert_eq!((t.devices, t.device_days), (60, 90));
        assert!(t.figures.is_some());
        assert!(t.daily[0].rates.is_some() && t.daily[1].rates.is_none());
        let h = s.arm(Arm::Holdout).unwrap();
        assert_eq!((h.devices, h.device_days, h.figures.is_none()), (40, 80, true));
        assert!(h.daily.iter().all(|d| d.rates.is_none()));
        assert_eq!(
            s.suppressed,
            [
                Suppressed { arm: Arm::Treatment, day: Some(20_401), devices: 30 },
                Suppressed { arm: Arm::Holdout, day: None, devices: 40 },
            ]
        );
        assert_eq!((s.uplift, s.no_uplift), (None, Some(NoUplift::Suppressed { arm: Arm::Holdout })));
        // A lower minimum shows them all.
        let s = summarise(&dairy(), None, &reports, 30);
        assert!(s.suppressed.is_empty() && s.arms.iter().all(|a| a.figures.is_some()));
        // Though not enough to tell an uplift by: once de-noised, about one conversion is
        // left among 400 impressions, and each arm would need thousands.
        assert!(
            matches!(s.no_uplift, Some(NoUplift::TooFew { arm: Arm::Holdout, needed: Some(2_000..), .. })),
            "{s:?}"
        );
    }

    #[test]
    fn no_reports_give_no_arms_and_say_so() {
        let s = summarise(&dairy(), None, &[], DEFAULT_MIN_DEVICES);
        assert!(s.arms.is_empty() && s.suppressed.is_empty());
        assert_eq!((s.uplift, s.no_uplift), (None, Some(NoUplift::NoReports)));
        // Another campaign's reports are not this one's.
        let other = build_reports(&[treatment(60)], 1, 1.0, 2);
        let s = summarise(&CampaignId::try_new("books").unwrap(), None, &other, DEFAULT_MIN_DEVICES);
        assert_eq!(s.no_uplift, Some(NoUplift::NoReports));
    }

    #[test]
    fn a_campaign_without_a_holdout_has_rates_but_no_uplift_and_says_why() {
        let reports = build_reports(&[treatment(80)], 3, 1.0, 3);
        let fleet = FleetId::try_new("home").unwrap();
        let s = summarise(&dairy(), Some(&fleet), &reports, DEFAULT_MIN_DEVICES);
        assert_eq!(s.arms.len(), 1);
        assert_eq!(s.fleet, Some(fleet));
        assert!(s.arms[0].figures.as_ref().unwrap().conversion_rate.is_some());
        assert_eq!((s.uplift, s.no_uplift), (None, Some(NoUplift::NoHoldout)));
        assert!(NoUplift::NoHoldout.to_string().contains("give it a holdout share"));
    }

    #[test]
    fn de_noised_counts_and_rates_are_never_below_zero() {
        // Nothing happened: the noise alone takes some sums below 0.
        let truth = Truth { arm: Arm::Treatment, devices_per_day: 60, accept: 0.0, dismiss: 0.0, convert: 0.0 };
        let reports = build_reports(&[truth], 1, 0.5, 4);
        let sums = sum_by_day(&reports)[0].sums;
        assert!(sums.accepts < 0.0 || sums.conversions < 0.0 || sums.dismissals < 0.0, "{sums:?}");
        let s = summarise(&dairy(), None, &reports, DEFAULT_MIN_DEVICES);
        let f = s.arms[0].figures.as_ref().unwrap();
        assert!(f.counts.accepts >= 0.0 && f.counts.dismissals >= 0.0 && f.counts.conversions >= 0.0);
        for rate in [f.accept_rate, f.conversion_rate].into_iter().flatten() {
            assert!(rate.low >= 0.0 && rate.estimate >= 0.0 && rate.high <= 1.0, "{rate:?}");
        }
    }

    #[test]
    fn a_holdout_arm_with_too_few_impressions_is_too_few_to_tell() {
        // Three held-out devices on one day: a handful of impressions, whatever the noise.
        let reports = build_reports(&[treatment(300), holdout(3)], 1, 1.0, 5);
        let s = summarise(&dairy(), None, &reports, 1);
        assert_eq!(s.uplift, None);
        let Some(why @ NoUplift::TooFew { arm: Arm::Holdout, impressions, other, needed: Some(needed) }) = s.no_uplift
        else {
            panic!("{:?}", s.no_uplift)
        };
        assert!(impressions < needed && other >= needed, "{why:?}");
        let text = why.to_string();
        assert!(text.starts_with("too few held out to tell ("), "{text}");
        assert!(text.ends_with(&format!("treated; needs at least {needed} in each arm)")), "{text}");
    }

    #[test]
    fn each_arm_needs_five_conversions_and_five_without_and_at_least_30() {
        assert_eq!(needed_per_arm(0.1), Some(50));
        assert_eq!(needed_per_arm(0.05), Some(100));
        assert_eq!(needed_per_arm(0.95), Some(100));
        assert_eq!(needed_per_arm(0.5), Some(30));
        assert_eq!(needed_per_arm(0.0), None);
        assert_eq!(needed_per_arm(1.0), None);
        assert_eq!(needed_per_arm(f64::NAN), None);
    }

    fn build_arm(arm: Arm, conversions: f64, estimate: f64, std_error: f64) -> ArmSummary {
        let counts = Counts { impressions: 100.0, accepts: 0.0, dismissals: 0.0, conversions };
        let conversion_rate = Some(Interval { estimate, low: 0.0, high: 1.0, std_error });
        let figures = Some(ArmFigures { counts, accept_rate: None, conversion_rate });
        ArmSummary { arm, devices: 100, device_days: 100, figures, daily: Vec::new() }
    }

    #[test]
    fn an_uplift_interval_that_would_cross_100_points_is_clamped_and_says_so() {
        // Noisy arms far apart: 90 points ± 55 would reach 145 points, and the relative
        // uplift's interval would reach far below −100%.
        let arms = [build_arm(Arm::Treatment, 95.0, 0.95, 0.2), build_arm(Arm::Holdout, 5.0, 0.05, 0.2)];
        let u = uplift(&arms).unwrap();
        assert!(u.clamped);
        assert!((u.absolute.estimate - 0.9).abs() < 1e-9 && u.absolute.low > 0.3 && u.absolute.high == 1.0, "{u:?}");
        let relative = u.relative.unwrap();
        assert!(relative.low == -1.0 && relative.high > 100.0, "{relative:?}");
        // Close arms need no clamping.
        let close = [build_arm(Arm::Treatment, 12.0, 0.12, 0.03), build_arm(Arm::Holdout, 8.0, 0.08, 0.03)];
        assert!(!uplift(&close).unwrap().clamped);
    }

    #[test]
    fn days_read_as_dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(20_400), "2025-11-08");
    }
}
