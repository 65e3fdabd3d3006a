//! A verdict as a decision keeps it: 16 bytes per offer naming the stage the offer failed, with
//! only the values neither the catalogue nor the decision's occasion holds. The trace names them
//! into the protocol's [`Rejection`]s when it is read, so a decision over a large catalogue
//! allocates nothing per offer (no campaign id or category copied into each rejection) and the
//! last [`crate::RECENT_TRACES`] traces keep a quarter of the memory full verdicts would take.

use ledtrad_protocol::caps::Window;
use ledtrad_protocol::decision::{Rejection, Verdict};
use ledtrad_protocol::{Purpose, UnixTime};

use crate::compiled::AppliedCatalogue;
use crate::context::Occasion;
use crate::maps::FastMap;

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
    /// "Not for me" to the offer's category, until then.
    CategorySuppressed(UnixTime),
    DismissedRecently(UnixTime),
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
        journeys: &FastMap<usize, Rejection>,
    ) -> Rejection {
        let offer = &catalogue.offers[i];
        let condition = |k: u16| &offer.conditions[usize::from(k)];
        let campaign = || offer.offer.campaign.clone();
        match self {
            Self::CatalogueExpired => Rejection::CatalogueExpired { at: catalogue.expires_at },
            Self::DeviceKind => Rejection::DeviceKind { kind: at.kind },
            Self::Moment => Rejection::Moment { moment: at.moment },
            Self::NotYetValid => Rejection::NotYetValid { from: offer.hot.valid_from },
            Self::Expired => Rejection::Expired { until: offer.hot.valid_until },
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
                Rejection::CategorySuppressed { category: offer.category.path().into(), until }
            }
            Self::DismissedRecently(until) => Rejection::DismissedRecently { until },
            // The stage fails only where the journey verdicts, kept with the decision, hold one.
            Self::Journey => journeys.get(&i).cloned().expect("a journey verdict is kept with its decision"),
            Self::Holdout => Rejection::Holdout { campaign: campaign() },
        }
    }
}

/// One offer's verdict as a decision keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kept {
    Chosen(f64),
    Outscored(f64),
    Rejected(Reason),
}

impl Kept {
    /// The verdict as the protocol says it (see [`Reason::name`]).
    pub fn name(
        self,
        catalogue: &AppliedCatalogue,
        i: usize,
        at: Occasion,
        journeys: &FastMap<usize, Rejection>,
    ) -> Verdict {
        match self {
            Self::Chosen(score) => Verdict::Chosen { score },
            Self::Outscored(score) => Verdict::Outscored { score },
            Self::Rejected(reason) => Verdict::Rejected { reason: reason.name(catalogue, i, at, journeys) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_verdict_takes_16_bytes() {
        assert_eq!(std::mem::size_of::<Kept>(), 16);
    }
}
