//! A verdict as a decision keeps it: 8 bytes per offer naming the stage the offer failed, with
//! only the values neither the catalogue nor the decision's occasion holds, or where its score
//! is. The trace names them into the protocol's [`Verdict`]s when it is read, so a decision over
//! a large catalogue allocates nothing per offer (no campaign id or category copied into each
//! rejection) and the last [`crate::RECENT_TRACES`] traces keep a sixth of the memory full
//! verdicts would take.

use ledtrad_protocol::caps::Window;
use ledtrad_protocol::decision::{Rejection, Verdict};
use ledtrad_protocol::{Purpose, UnixTime};

use crate::compiled::AppliedCatalogue;
use crate::context::Occasion;
use crate::scoring::{KeptScoring, Pending};

/// Why an offer was not eligible, by stage (the order of [`crate::eligibility`]'s stages).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Reason {
    CatalogueExpired,
    DeviceKind,
    Moment,
    NotYetValid,
    Expired,
    NeedsConsent(Purpose),
    /// The offer's condition at this index had no value.
    NoData(u16),
    /// The offer's condition at this index did not hold.
    ConditionNotMet(u16),
    /// The offer's own cap over the window, of the limit (per local day: a daily cap).
    OfferCap(Window, u32),
    ShownOnAnotherScreen,
    /// The offer's cap per home per local day.
    HomeOfferCap(u32),
    /// The offer's campaign's cap over the window, of the limit.
    CampaignCap(Window, u32),
    /// The campaign's cap per home per local day.
    HomeCampaignCap(u32),
    Converted,
    /// "Not for me" to the offer's category, until then ([`short_time`]).
    CategorySuppressed(u32),
    /// Dismissed, and not shown again until then ([`short_time`]).
    DismissedRecently(u32),
    /// The campaign's journey; the stop is in the decision's journey verdicts.
    Journey,
    Holdout,
}

impl Reason {
    /// Whether it is the feature conditions that rule the offer out (such an offer may still be
    /// a camouflage draw).
    pub fn failed_conditions(self) -> bool {
        matches!(self, Self::NoData(_) | Self::ConditionNotMet(_))
    }

    /// The rejection as the protocol says it, for `offer` at `at`. `journeys` are the decision's
    /// journey verdicts by offer position (`i` is the offer's).
    pub fn name(
        self,
        catalogue: &AppliedCatalogue,
        i: usize,
        at: Occasion,
        journeys: &[(usize, Rejection)],
    ) -> Rejection {
        let offer = &catalogue.offers[i];
        let condition = |k: u16| &catalogue.conditions_of(i)[usize::from(k)];
        let campaign = || offer.offer.campaign.clone();
        match self {
            Self::CatalogueExpired => Rejection::CatalogueExpired { at: catalogue.expires_at },
            Self::DeviceKind => Rejection::DeviceKind { kind: at.kind },
            Self::Moment => Rejection::Moment { moment: at.moment },
            Self::NotYetValid => Rejection::NotYetValid { from: offer.offer.valid_from },
            Self::Expired => Rejection::Expired { until: offer.offer.valid_until },
            Self::NeedsConsent(purpose) => Rejection::NeedsConsent { purpose },
            Self::NoData(k) => Rejection::NoData { feature: condition(k).feature },
            Self::ConditionNotMet(k) => {
                let c = condition(k);
                Rejection::ConditionNotMet { feature: c.feature, op: c.op, threshold: c.threshold }
            }
            Self::OfferCap(Window::Day, per_day) => Rejection::DailyCap { per_day },
            Self::OfferCap(window, limit) => Rejection::OfferCap { window, limit },
            Self::ShownOnAnotherScreen => Rejection::ShownOnAnotherScreen,
            Self::HomeOfferCap(per_home_per_day) => Rejection::HomeOfferCap { per_home_per_day },
            Self::CampaignCap(window, limit) => Rejection::CampaignCap { campaign: campaign(), window, limit },
            Self::HomeCampaignCap(per_home_per_day) => {
                Rejection::HomeCampaignCap { campaign: campaign(), per_home_per_day }
            }
            Self::Converted => Rejection::Converted,
            Self::CategorySuppressed(until) => {
                Rejection::CategorySuppressed { category: offer.category.path().into(), until: long_time(until) }
            }
            Self::DismissedRecently(until) => Rejection::DismissedRecently { until: long_time(until) },
            // The stage fails only where the journey verdicts, kept with the decision, hold one.
            Self::Journey => journeys
                .binary_search_by_key(&i, |(k, _)| *k)
                .map(|k| journeys[k].1.clone())
                .expect("a journey verdict is kept with its decision"),
            Self::Holdout => Rejection::Holdout { campaign: campaign() },
        }
    }
}

pub(crate) use crate::context::short_time;

fn long_time(t: u32) -> UnixTime {
    UnixTime(u64::from(t))
}

/// One offer's verdict as a decision keeps it; a score is kept apart, in [`KeptVerdicts`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kept {
    /// Eligible, not scored (yet): outscored at 0.
    Unscored,
    /// Eligible and outscored, with the score at this index.
    Outscored(u32),
    /// Shown, with the score at this index.
    Chosen(u32),
    /// Eligible and outscored, its score left to be worked out from what is kept at this index
    /// of the pending ones.
    Pending(u32),
    Rejected(Reason),
}

/// Every offer's verdict at a decision, by catalogue position, and the scores of the ones
/// scored.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeptVerdicts {
    kept: Vec<Kept>,
    scores: Vec<f64>,
    /// What the candidates not scored at the decision are scored from when the trace is read.
    pending: Vec<Pending>,
    /// The decision's scoring inputs, kept where any candidate is pending.
    scoring: Option<Box<KeptScoring>>,
}

impl KeptVerdicts {
    /// Room for `offers` verdicts.
    pub fn with_capacity(offers: usize) -> Self {
        Self { kept: Vec::with_capacity(offers), ..Self::default() }
    }

    /// The next offer is eligible; it is scored later.
    pub fn push_eligible(&mut self) {
        self.kept.push(Kept::Unscored);
    }

    /// The next offer is ruled out.
    pub fn push_rejected(&mut self, reason: Reason) {
        self.kept.push(Kept::Rejected(reason));
    }

    /// The offer at `i` was outscored with `score`.
    pub fn outscored(&mut self, i: usize, score: f64) {
        let at = self.keep(score);
        self.kept[i] = Kept::Outscored(at);
    }

    /// The offer at `i` was outscored; its score is worked out from `pending` and the
    /// decision's `scoring` (see [`Self::keep_scoring`]) when the trace is read.
    pub fn pending(&mut self, i: usize, pending: Pending) {
        self.pending.push(pending);
        // At most one per offer, and a catalogue holds at most a few thousand offers.
        self.kept[i] = Kept::Pending(u32::try_from(self.pending.len() - 1).unwrap_or(u32::MAX));
    }

    /// Keeps the decision's scoring inputs, which name the pending candidates' scores.
    pub fn keep_scoring(&mut self, scoring: KeptScoring) {
        if !self.pending.is_empty() {
            self.scoring = Some(Box::new(scoring));
        }
    }

    /// How many candidates were left to be scored when the trace is read.
    #[cfg(test)]
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The score of the offer at `i`, if it was scored.
    pub fn score_of(&self, i: usize) -> Option<f64> {
        match self.kept.get(i) {
            Some(Kept::Outscored(k) | Kept::Chosen(k)) => self.scores.get(*k as usize).copied(),
            _ => None,
        }
    }

    /// What the score of the offer at `i` is worked out from, if it is pending.
    pub fn pending_of(&self, i: usize) -> Option<Pending> {
        match self.kept.get(i) {
            Some(Kept::Pending(k)) => self.pending.get(*k as usize).copied(),
            _ => None,
        }
    }

    /// The offer at `i` is shown, with `score`.
    pub fn chosen(&mut self, i: usize, score: f64) {
        let at = match self.kept[i] {
            Kept::Outscored(at) if self.scores[at as usize].to_bits() == score.to_bits() => at,
            _ => self.keep(score),
        };
        self.kept[i] = Kept::Chosen(at);
    }

    /// The offer at `i`, if it was shown, is outscored instead (a prompt took its place).
    pub fn unchoose(&mut self, i: usize) {
        if let Some(Kept::Chosen(at)) = self.kept.get(i).copied() {
            self.kept[i] = Kept::Outscored(at);
        }
    }

    fn keep(&mut self, score: f64) -> u32 {
        self.scores.push(score);
        // At most one score per offer, and a catalogue holds at most a few thousand offers.
        u32::try_from(self.scores.len() - 1).unwrap_or(u32::MAX)
    }

    /// The verdicts as the protocol says them (see [`Reason::name`]), by catalogue position.
    pub fn named<'a>(
        &'a self,
        catalogue: &'a AppliedCatalogue,
        at: Occasion,
        journeys: &'a [(usize, Rejection)],
    ) -> impl Iterator<Item = Verdict> + 'a {
        let score = |at: u32| self.scores.get(at as usize).copied().unwrap_or(0.0);
        let pending = |i: usize, at: u32| match (self.pending.get(at as usize), &self.scoring) {
            (Some(&pending), Some(scoring)) => scoring.score(&catalogue.offers[i], i, pending),
            _ => 0.0,
        };
        self.kept.iter().enumerate().map(move |(i, kept)| match *kept {
            Kept::Unscored => Verdict::Outscored { score: 0.0 },
            Kept::Outscored(k) => Verdict::Outscored { score: score(k) },
            Kept::Pending(k) => Verdict::Outscored { score: pending(i, k) },
            Kept::Chosen(k) => Verdict::Chosen { score: score(k) },
            Kept::Rejected(reason) => Verdict::Rejected { reason: reason.name(catalogue, i, at, journeys) },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_verdict_takes_8_bytes() {
        assert_eq!(std::mem::size_of::<Kept>(), 8);
    }

    #[test]
    fn a_shown_offer_keeps_its_score_once_and_gives_it_back_when_unchosen() {
        let mut verdicts = KeptVerdicts::with_capacity(3);
        verdicts.push_eligible();
        verdicts.push_eligible();
        verdicts.push_rejected(Reason::Converted);
        verdicts.outscored(0, 0.25);
        verdicts.outscored(1, 0.5);
        verdicts.chosen(1, 0.5);
        assert_eq!(verdicts.scores, [0.25, 0.5]);
        assert_eq!(verdicts.kept[1], Kept::Chosen(1));
        verdicts.unchoose(1);
        assert_eq!(verdicts.kept[1], Kept::Outscored(1));
        // A camouflage draw that was not scored with the others.
        verdicts.chosen(2, 0.125);
        assert_eq!((verdicts.kept[2], verdicts.scores.len()), (Kept::Chosen(2), 3));
    }
}
