//! Eligibility (DESIGN §8 step 7, checked while offers are matched in step 6): each rule a named
//! stage with its own [`Rejection`], cheapest and most general first, so the trace names the
//! first stage a candidate fails. The rules that are the same for every offer (the device-wide
//! ones, each campaign's caps and holdout) are worked out once per decision into a [`Standing`].

use ledtrad_protocol::caps::{HomeCap, Window};
use ledtrad_protocol::decision::{Candidate, Rejection, Verdict};
use ledtrad_protocol::{CampaignId, DeviceId};

use crate::answers::OfferAnswers;
use crate::compiled::{kind_bit, moment_bit, AppliedCatalogue, CompiledOffer, ConditionFailed, HotOffer};
use crate::context::{Context, FeaturesRead, Identity, Occasion};
use crate::history::{self, OfferRecord, Past, Posterior};
use crate::maps::FastMap;
use crate::verdict::{short_time, KeptVerdicts, Reason};

/// Where the device stands before any offer is looked at (DESIGN §8 step 2): what it remembers,
/// what the device-wide rules say, and each campaign's caps and holdout.
#[derive(Debug)]
pub(crate) struct Standing<'a> {
    /// Impressions, posteriors and answers.
    pub past: Past<'a>,
    /// The device-wide rules' verdict (quiet hours, gap, device caps), if they rule out all.
    pub device_block: Option<Rejection>,
    /// Each campaign's verdict, by [`AppliedCatalogue::campaign_ids`] index.
    pub campaigns: Vec<CampaignVerdict>,
    /// The device's local day, which the home's counts are of.
    pub day: u64,
}

impl<'a> Standing<'a> {
    /// Works out the rules that are the same for every offer of `catalogue` at `now`.
    pub fn new(
        catalogue: &AppliedCatalogue,
        past: Past<'a>,
        who: &Identity<'_>,
        now: ledtrad_protocol::UnixTime,
    ) -> Self {
        let campaigns = campaign_verdicts(catalogue, past, who, now);
        let device_block = device_rules(catalogue, past, who, now).err();
        Self { past, device_block, campaigns, day: who.day }
    }
}

/// The journeys' verdicts of a decision as its trace keeps them: sorted by offer position, in
/// just the room they take (a decision's map of them keeps room to grow).
pub(crate) fn kept_journeys(journeys: &FastMap<usize, Rejection>) -> Box<[(usize, Rejection)]> {
    let mut kept: Vec<(usize, Rejection)> = journeys.iter().map(|(i, r)| (*i, r.clone())).collect();
    kept.sort_unstable_by_key(|(i, _)| *i);
    kept.into_boxed_slice()
}

/// Each offer's verdict at a decision, by catalogue position.
#[derive(Debug, Clone)]
pub(crate) enum Verdicts {
    /// Worked out offer by offer, kept small and named on request.
    Each {
        /// By catalogue position.
        kept: KeptVerdicts,
        /// The decision's occasion.
        at: Occasion,
        /// The journeys' verdicts by offer position, which [`Reason::Journey`] names (see
        /// [`kept_journeys`]).
        journeys: Box<[(usize, Rejection)]>,
    },
    /// There was no catalogue to decide on.
    NoCatalogue,
    /// The device-wide rules (quiet hours, gap, device caps) ruled every offer out: an offer's
    /// verdict is the first stage before them it fails, else this reason. Worked out when the
    /// trace is asked for, so such a decision costs no pass over the catalogue.
    DeviceBlocked {
        /// The device-wide rules' reason.
        reason: Rejection,
        /// The decision's occasion.
        at: Occasion,
    },
}

impl Verdicts {
    /// Every candidate with its verdict, named from `catalogue`, the one the decision was made on.
    pub fn named(&self, catalogue: &AppliedCatalogue) -> Vec<Candidate> {
        let candidate = |o: &CompiledOffer, verdict| Candidate { offer: o.offer.id.clone(), verdict };
        match self {
            Self::Each { kept, at, journeys } => catalogue
                .offers
                .iter()
                .zip(kept.named(catalogue, *at, journeys))
                .map(|(o, verdict)| candidate(o, verdict))
                .collect(),
            Self::NoCatalogue => Vec::new(),
            Self::DeviceBlocked { reason, at } => catalogue
                .offers
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let reason = match before_device(catalogue, &catalogue.hot[i], *at) {
                        Err(first) => first.name(catalogue, i, *at, &[]),
                        Ok(()) => reason.clone(),
                    };
                    candidate(o, Verdict::Rejected { reason })
                })
                .collect(),
        }
    }

    /// Turns the chosen offer at `i` into an outscored one (a prompt took its place).
    pub fn unchoose(&mut self, i: usize) {
        if let Self::Each { kept, .. } = self {
            kept.unchoose(i);
        }
    }
}

/// What a campaign's own rules say at this decision.
#[derive(Debug, Clone, Default)]
pub(crate) struct CampaignVerdict {
    /// The first campaign cap reached, if any ([`Reason::CampaignCap`] or
    /// [`Reason::HomeCampaignCap`]).
    caps: Option<Reason>,
    /// Whether this device is in the campaign's holdout arm.
    held_out: bool,
}

/// Works out every campaign's caps and holdout once for a decision.
fn campaign_verdicts(
    catalogue: &AppliedCatalogue,
    past: Past<'_>,
    who: &Identity<'_>,
    now: ledtrad_protocol::UnixTime,
) -> Vec<CampaignVerdict> {
    catalogue
        .campaign_ids
        .iter()
        .map(|campaign| {
            let caps = catalogue
                .campaign_caps
                .get(campaign)
                .and_then(|limits| {
                    let times = past.history.campaign_times(campaign)?;
                    limits.iter().find_map(|&(window, limit)| {
                        (history::count(times, window, now, who.day_start) >= limit)
                            .then_some(Reason::CampaignCap(window, limit))
                    })
                })
                .or_else(|| campaign_home_cap(catalogue, campaign, past, who, now));
            let held_out =
                catalogue.holdouts.get(campaign).is_some_and(|share| in_holdout(who.device, campaign, *share));
            CampaignVerdict { caps, held_out }
        })
        .collect()
}

/// The campaign's cap per home per local day: this device's impressions of its offers today
/// and the home's other screens'.
fn campaign_home_cap(
    catalogue: &AppliedCatalogue,
    campaign: &CampaignId,
    past: Past<'_>,
    who: &Identity<'_>,
    now: ledtrad_protocol::UnixTime,
) -> Option<Reason> {
    let limit = *catalogue.campaign_home_caps.get(campaign)?;
    let here = past.history.campaign_count(campaign, Window::Day, now, who.day_start);
    let home = here.saturating_add(past.home.campaign(who.day, campaign));
    (home >= limit).then_some(Reason::HomeCampaignCap(limit))
}

/// The eligibility stages after the device-wide rules (which the caller checks first, once
/// for every offer), cheapest and most general first. The trace names the first stage a
/// candidate fails; an eligible one comes with its posterior, read with its caps. `journeys`
/// holds what the campaigns' journeys rule out, by offer position.
pub(crate) fn eligibility(
    catalogue: &AppliedCatalogue,
    i: usize,
    ctx: &Context<'_>,
    standing: &Standing<'_>,
    journeys: &FastMap<usize, Rejection>,
    used: &mut FeaturesRead,
) -> Result<Posterior, Reason> {
    let hot = &catalogue.hot[i];
    before_device(catalogue, hot, ctx.occasion())?;
    stage_consent(hot, ctx)?;
    stage_conditions(catalogue, hot, ctx, used)?;
    after_conditions(catalogue, i, ctx, standing, journeys)
}

/// Whether the conditions of the offer at `i` hold (the features read noted in `used`).
pub(crate) fn conditions_hold(
    catalogue: &AppliedCatalogue,
    i: usize,
    ctx: &Context<'_>,
    used: &mut FeaturesRead,
) -> bool {
    stage_conditions(catalogue, &catalogue.hot[i], ctx, used).is_ok()
}

/// The stages before the device-wide rules, which read only the offer and the occasion.
fn before_device(catalogue: &AppliedCatalogue, hot: &HotOffer, at: Occasion) -> Result<(), Reason> {
    stage_catalogue_fresh(catalogue, at)?;
    stage_device_kind(hot, at)?;
    stage_moment(hot, at)?;
    stage_validity(hot, at)
}

/// The stages after the feature conditions: caps and what people's answers, the campaign's
/// journey and the holdout rule out. An offer that fails only its conditions but passes these
/// is broadly eligible (camouflage draws from those). `i` is the offer's catalogue position.
pub(crate) fn after_conditions(
    catalogue: &AppliedCatalogue,
    i: usize,
    ctx: &Context<'_>,
    standing: &Standing<'_>,
    journeys: &FastMap<usize, Rejection>,
) -> Result<Posterior, Reason> {
    let hot = &catalogue.hot[i];
    // One lookup for the offer's impressions and posterior, one for its answers.
    let record = standing.past.record(i);
    stage_offer_caps(hot, record, ctx)?;
    stage_home_caps(catalogue, i, record, ctx, standing)?;
    stage_campaign_caps(hot, standing)?;
    stage_answers(catalogue, i, ctx, standing.past)?;
    stage_journey(i, hot, journeys)?;
    stage_holdout(hot, standing)?;
    Ok(record.map(|r| r.posterior).unwrap_or_default())
}

/// The campaign's journey: only the offers of its open steps may be shown.
fn stage_journey(i: usize, hot: &HotOffer, journeys: &FastMap<usize, Rejection>) -> Result<(), Reason> {
    if hot.journey && journeys.contains_key(&i) {
        Err(Reason::Journey)
    } else {
        Ok(())
    }
}

/// What people said: a recent dismissal, a "not for me" for the category, a conversion.
fn stage_answers(catalogue: &AppliedCatalogue, i: usize, ctx: &Context<'_>, past: Past<'_>) -> Result<(), Reason> {
    let answers = past.answers_of(i);
    if answers.is_some_and(OfferAnswers::converted) {
        return Err(Reason::Converted);
    }
    if past.answers.any_suppressed() {
        if let Some(until) = past.answers.suppressed_until(catalogue.offers[i].category.path(), ctx.now) {
            return Err(Reason::CategorySuppressed(short_time(until)));
        }
    }
    match answers.and_then(|a| a.blocked_until(ctx.now)) {
        Some(until) => Err(Reason::DismissedRecently(short_time(until))),
        None => Ok(()),
    }
}

/// The campaign's holdout arm: a deterministic hash of the device pseudonym and the campaign
/// puts the device in or out, the same way every time.
fn stage_holdout(hot: &HotOffer, standing: &Standing<'_>) -> Result<(), Reason> {
    if standing.campaigns.get(hot.campaign as usize).is_some_and(|c| c.held_out) {
        Err(Reason::Holdout)
    } else {
        Ok(())
    }
}

/// Whether `device` falls in the first `share` of `campaign`'s devices (FNV-1a over both ids).
pub fn in_holdout(device: &DeviceId, campaign: &CampaignId, share: f64) -> bool {
    let bytes = device.as_str().bytes().chain([b'/']).chain(campaign.as_str().bytes());
    ledtrad_protocol::id::hash_fraction(bytes) < share
}

/// An envelope past its expiry is not used, even if it arrived in time: a device cut off from
/// updates must not keep showing a frozen catalogue.
fn stage_catalogue_fresh(catalogue: &AppliedCatalogue, at: Occasion) -> Result<(), Reason> {
    if at.now >= catalogue.expires_at {
        Err(Reason::CatalogueExpired)
    } else {
        Ok(())
    }
}

fn stage_device_kind(hot: &HotOffer, at: Occasion) -> Result<(), Reason> {
    if hot.kinds & kind_bit(at.kind) != 0 {
        Ok(())
    } else {
        Err(Reason::DeviceKind)
    }
}

fn stage_moment(hot: &HotOffer, at: Occasion) -> Result<(), Reason> {
    if hot.moments & moment_bit(at.moment) != 0 {
        Ok(())
    } else {
        Err(Reason::Moment)
    }
}

fn stage_validity(hot: &HotOffer, at: Occasion) -> Result<(), Reason> {
    let now = short_time(at.now);
    if now < hot.valid_from {
        Err(Reason::NotYetValid)
    } else if now >= hot.valid_until {
        Err(Reason::Expired)
    } else {
        Ok(())
    }
}

fn stage_consent(hot: &HotOffer, ctx: &Context<'_>) -> Result<(), Reason> {
    match hot.needs {
        Some(purpose) if !ctx.consent.allows(purpose) => Err(Reason::NeedsConsent(purpose)),
        _ => Ok(()),
    }
}

/// Checks each condition in turn.
fn stage_conditions(
    catalogue: &AppliedCatalogue,
    hot: &HotOffer,
    ctx: &Context<'_>,
    used: &mut FeaturesRead,
) -> Result<(), Reason> {
    let (start, count) = (hot.conditions.0 as usize, hot.conditions.1 as usize);
    for (k, condition) in catalogue.conditions.get(start..start + count).unwrap_or(&[]).iter().enumerate() {
        // A catalogue holds at most a handful of conditions per offer (`catalogue check`).
        let k = u16::try_from(k).unwrap_or(u16::MAX);
        condition.check(ctx, used).map_err(|failed| match failed {
            ConditionFailed::NeedsConsent(purpose) => Reason::NeedsConsent(purpose),
            ConditionFailed::NoData => Reason::NoData(k),
            ConditionFailed::NotMet => Reason::ConditionNotMet(k),
        })?;
    }
    Ok(())
}

/// The offer's own caps: per local day (its own reason, [`Rejection::DailyCap`]), per hour,
/// week, month and in total.
fn stage_offer_caps(hot: &HotOffer, record: Option<&OfferRecord>, ctx: &Context<'_>) -> Result<(), Reason> {
    let Some(times) = record.map(|r| &r.times) else { return Ok(()) };
    for (window, limit) in hot.caps() {
        if history::count(times, window, ctx.now, ctx.day_start) >= limit {
            return Err(Reason::OfferCap(window, limit));
        }
    }
    Ok(())
}

/// The offer's cap over all the screens of the home today: `per_home_per_day` counts this
/// device's impressions and the other screens'; an offer shown on one screen per day (the
/// default for one with personal conditions) counts the other screens' only.
fn stage_home_caps(
    catalogue: &AppliedCatalogue,
    i: usize,
    record: Option<&OfferRecord>,
    ctx: &Context<'_>,
    standing: &Standing<'_>,
) -> Result<(), Reason> {
    let Some(cap) = catalogue.hot[i].home_cap else { return Ok(()) };
    // The home's other screens' counts are looked up by the offer's id only where there are any.
    let elsewhere = if standing.past.home.total(standing.day) > 0 {
        standing.past.home.offer(standing.day, &catalogue.offers[i].offer.id)
    } else {
        0
    };
    match cap {
        HomeCap::OneScreen if elsewhere > 0 => Err(Reason::ShownOnAnotherScreen),
        HomeCap::OneScreen => Ok(()),
        HomeCap::PerDay(limit) => {
            let here = record.map_or(0, |r| history::count(&r.times, Window::Day, ctx.now, ctx.day_start));
            if here.saturating_add(elsewhere) >= limit {
                Err(Reason::HomeOfferCap(limit))
            } else {
                Ok(())
            }
        }
    }
}

/// The campaign's caps, over all its offers.
fn stage_campaign_caps(hot: &HotOffer, standing: &Standing<'_>) -> Result<(), Reason> {
    match standing.campaigns.get(hot.campaign as usize).and_then(|c| c.caps) {
        Some(reason) => Err(reason),
        None => Ok(()),
    }
}

/// Rules for the whole device: quiet hours, the minimum gap, the device-wide caps and the
/// home-wide one.
fn device_rules(
    catalogue: &AppliedCatalogue,
    past: Past<'_>,
    who: &Identity<'_>,
    now: ledtrad_protocol::UnixTime,
) -> Result<(), Rejection> {
    let policy = &catalogue.policy;
    if let Some(quiet) = policy.quiet_hours {
        if quiet.contains(who.hour) {
            return Err(Rejection::QuietHours { from: quiet.from, to: quiet.to });
        }
    }
    if let (Some(minutes), Some(last)) = (policy.min_gap_minutes, past.history.last_impression()) {
        let until = last.plus_secs(u64::from(minutes) * 60);
        if now < until {
            return Err(Rejection::MinGap { until });
        }
    }
    for (window, limit) in [(Window::Hour, policy.device_per_hour), (Window::Day, policy.device_per_day)] {
        if let Some(limit) = limit {
            if past.history.device_count(window, now, who.day_start) >= limit {
                return Err(Rejection::DeviceCap { window, limit });
            }
        }
    }
    if let Some(per_day) = policy.home_per_day {
        let here = past.history.device_count(Window::Day, now, who.day_start);
        if here.saturating_add(past.home.total(who.day)) >= per_day {
            return Err(Rejection::HomeCap { per_day });
        }
    }
    Ok(())
}

#[cfg(test)]
mod kept {
    use super::*;

    /// A trace keeps a decision's journey verdicts sorted, in just their room, and each is
    /// found by its offer's position.
    #[test]
    fn a_traces_journey_verdicts_are_sorted_and_take_just_their_room() {
        let mut journeys = FastMap::default();
        for i in [9, 2, 5] {
            journeys.insert(i, Rejection::Converted);
        }
        journeys.insert(7, Rejection::ShownOnAnotherScreen);
        let kept = kept_journeys(&journeys);
        assert_eq!(kept.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [2, 5, 7, 9]);
        assert_eq!(
            kept.binary_search_by_key(&7, |(i, _)| *i).map(|k| &kept[k].1),
            Ok(&Rejection::ShownOnAnotherScreen)
        );
        assert!(kept_journeys(&FastMap::default()).is_empty());
    }
}
