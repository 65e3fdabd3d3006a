//! The decision pipeline (DESIGN §8 steps 5–9): match, eligibility, arbitration, assembly.
//! Each eligibility rule is a named stage with its own [`Rejection`].

use ledtrad_protocol::caps::Window;
use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::{Candidate, FeatureUse, Rejection, ScoreParts, ScorerUsed, ShownOffer, Verdict};
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::{CampaignId, DeviceId, DeviceKind, Moment, UnixTime};

use crate::answers::{Answers, OfferAnswers};
use crate::compiled::{kind_bit, moment_bit, AppliedCatalogue, CompiledCondition, CompiledOffer};
use crate::history::{self, History, OfferRecord, Posterior};
use crate::model::FleetModel;
use crate::scoring;
use crate::why;
use crate::FastMap;

/// Everything a decision reads, borrowed for its duration.
pub(crate) struct Context<'a> {
    pub kind: DeviceKind,
    pub moment: Moment,
    pub now: UnixTime,
    pub day_start: UnixTime,
    pub hour: u64,
    pub consent: ConsentState,
    /// Every feature's value at `now`, by [`FeatureName::index`], worked out once per decision.
    pub values: &'a [Option<f64>],
    pub history: &'a History,
    pub camouflage_share: f64,
    pub policy: crate::Policy,
    pub draw: Draw,
    pub answers: &'a Answers,
    pub device: &'a DeviceId,
    /// The device-wide rules' verdict, worked out once per decision.
    pub device_block: Option<Rejection>,
    /// Each campaign's verdict (by [`AppliedCatalogue::campaign_ids`] index), worked out once
    /// per decision.
    pub campaigns: &'a [CampaignVerdict],
    /// The fleet's scoring model, if one is applied.
    pub model: Option<&'a FleetModel>,
    /// What the campaigns' journeys rule out, by offer position, worked out once per decision.
    pub journeys: &'a FastMap<usize, Rejection>,
    /// Whether the fleet's model reads a personal feature the consent allows.
    pub model_reads_personal: bool,
    /// Each offer's slot in the history, by catalogue position.
    pub slots: &'a [Option<u32>],
}

/// What the first stages read of a decision: the device kind, the moment and the time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Occasion {
    pub kind: DeviceKind,
    pub moment: Moment,
    pub now: UnixTime,
}

/// Each offer's verdict at a decision, by catalogue position.
#[derive(Debug, Clone)]
pub(crate) enum Verdicts {
    /// Worked out offer by offer.
    Each(Vec<Verdict>),
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
            Self::Each(verdicts) => {
                catalogue.offers.iter().zip(verdicts).map(|(o, verdict)| candidate(o, verdict.clone())).collect()
            }
            Self::DeviceBlocked { reason, at } => catalogue
                .offers
                .iter()
                .map(|o| {
                    let reason = before_device(catalogue, o, *at).err().unwrap_or_else(|| reason.clone());
                    candidate(o, Verdict::Rejected { reason })
                })
                .collect(),
        }
    }

    /// Turns the chosen offer at `i` into an outscored one (a prompt took its place).
    pub fn unchoose(&mut self, i: usize) {
        if let Self::Each(verdicts) = self {
            if let Some(Verdict::Chosen { score }) = verdicts.get(i) {
                verdicts[i] = Verdict::Outscored { score: *score };
            }
        }
    }
}

impl Context<'_> {
    /// The decision's occasion.
    pub fn occasion(&self) -> Occasion {
        Occasion { kind: self.kind, moment: self.moment, now: self.now }
    }

    /// A feature's value at this decision.
    pub fn value(&self, feature: FeatureName) -> Option<f64> {
        self.values.get(feature.index()).copied().flatten()
    }
}

/// What a campaign's own rules say at this decision.
#[derive(Debug, Clone, Default)]
pub(crate) struct CampaignVerdict {
    /// The first campaign cap reached, if any.
    caps: Option<Rejection>,
    /// Whether this device is in the campaign's holdout arm.
    held_out: bool,
}

/// Works out every campaign's caps and holdout once for a decision.
pub(crate) fn campaign_verdicts(catalogue: &AppliedCatalogue, ctx: &Context<'_>) -> Vec<CampaignVerdict> {
    catalogue
        .campaign_ids
        .iter()
        .map(|campaign| {
            let caps =
                catalogue.campaign_caps.get(campaign).and_then(|limits| {
                    let times = ctx.history.campaign_times(campaign)?;
                    limits.iter().find_map(|&(window, limit)| {
                        (history::count(times, window, ctx.now, ctx.day_start) >= limit)
                            .then(|| Rejection::CampaignCap { campaign: campaign.clone(), window, limit })
                    })
                });
            let held_out =
                catalogue.holdouts.get(campaign).is_some_and(|share| in_holdout(ctx.device, campaign, *share));
            CampaignVerdict { caps, held_out }
        })
        .collect()
}

/// Randomness for one decision, drawn by the caller (the engine has no random source).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// Uniform in `[0, 1)`: below the camouflage share, the shown offer is drawn from the
    /// broadly eligible offers.
    pub camouflage: f64,
    /// Picks which broadly eligible offer.
    pub pick: u64,
    /// Seeds Thompson sampling of the offers' posteriors; `None` uses their means.
    pub explore: Option<u64>,
}

impl Draw {
    /// A draw that never camouflages nor explores (for callers without randomness, and tests).
    pub const NONE: Self = Self { camouflage: 1.0, pick: 0, explore: None };
}

/// The features a decision read, each listed once in the order first read, with the consent
/// that allowed it; a bit per feature makes noting one a constant-time step.
#[derive(Debug, Default)]
pub(crate) struct FeaturesRead {
    seen: u64,
    list: Vec<FeatureUse>,
}

// One bit per feature.
const _: () = assert!(ledtrad_protocol::feature::FEATURES.len() <= 64);

impl FeaturesRead {
    /// Notes that `feature` was read.
    pub fn note(&mut self, feature: FeatureName) {
        let bit = 1u64 << feature.index();
        if self.seen & bit == 0 {
            self.seen |= bit;
            self.list.push(FeatureUse { feature, allowed_by: feature.spec().purpose });
        }
    }
}

/// The outcome of running the pipeline over a catalogue.
pub(crate) struct Outcome {
    pub scores: Vec<ScoreParts>,
    pub shown: Option<(usize, ShownOffer)>,
    pub camouflage: bool,
    pub would_have_shown: Option<usize>,
    /// Each offer's verdict.
    pub verdicts: Verdicts,
    pub features_used: Vec<FeatureUse>,
    pub scorer: ScorerUsed,
}

/// Runs the pipeline; `features_used` holds what was read before (by the journeys' groups).
pub(crate) fn run(catalogue: &AppliedCatalogue, ctx: &Context<'_>, mut features_used: FeaturesRead) -> Outcome {
    if let Some(reason) = &ctx.device_block {
        // Nothing can be shown; the trace works each offer's verdict out when asked for.
        return Outcome {
            scores: Vec::new(),
            shown: None,
            camouflage: false,
            would_have_shown: None,
            verdicts: Verdicts::DeviceBlocked { reason: reason.clone(), at: ctx.occasion() },
            features_used: features_used.list,
            scorer: ScorerUsed::Builtin,
        };
    }
    let mut verdicts = Vec::with_capacity(catalogue.offers.len());
    // Eligibility first; then the eligible and held-out candidates are scored in one batch.
    let mut to_score: Vec<usize> = Vec::new();
    // Their posteriors, read with the caps (held-out ones are looked up when scored).
    let mut posteriors: Vec<Posterior> = Vec::new();
    let mut held: Vec<usize> = Vec::new();
    // Camouflage needs the broadly eligible offers: right device, moment, time, consent and
    // caps, whatever the feature conditions say. They are collected in the same pass, only
    // when camouflage is drawn.
    let camouflage = ctx.policy.is_clues() && ctx.draw.camouflage < ctx.camouflage_share;
    let mut broad: Vec<usize> = Vec::new();
    for (i, offer) in catalogue.offers.iter().enumerate() {
        let verdict = match eligibility(catalogue, i, offer, ctx, &mut features_used) {
            Ok(posterior) => {
                to_score.push(i);
                posteriors.push(posterior);
                if camouflage {
                    broad.push(i);
                }
                Verdict::Outscored { score: 0.0 }
            }
            Err(reason) => {
                if matches!(reason, Rejection::Holdout { .. }) {
                    held.push(i);
                }
                let failed_conditions = matches!(reason, Rejection::ConditionNotMet { .. } | Rejection::NoData { .. });
                if camouflage && failed_conditions && after_conditions(i, offer, ctx).is_ok() {
                    broad.push(i);
                }
                Verdict::Rejected { reason }
            }
        };
        verdicts.push(verdict);
    }
    let eligible = to_score.len();
    posteriors.extend(held.iter().map(|&i| ctx.history.posterior(&catalogue.offers[i].offer.id)));
    to_score.extend(held);
    let (priors, scorer) = scoring::priors(catalogue, &to_score, ctx, &mut features_used);
    let mut scored: Vec<(usize, f64)> = Vec::with_capacity(eligible);
    let mut parts: Vec<(usize, scoring::Parts)> = Vec::with_capacity(eligible);
    let mut held_out: Vec<(usize, f64)> = Vec::new();
    for (k, ((&i, &prior), &posterior)) in to_score.iter().zip(&priors).zip(&posteriors).enumerate() {
        let p = scoring::parts(&catalogue.offers[i], ctx, i, prior, posterior);
        if k < eligible {
            verdicts[i] = Verdict::Outscored { score: p.score };
            scored.push((i, p.score));
            parts.push((i, p));
        } else {
            held_out.push((i, p.score));
        }
    }
    // Highest score wins; ties go to the offer listed first, so the same input gives the same
    // decision.
    let top = |list: &[(usize, f64)]| {
        list.iter().copied().fold(None::<(usize, f64)>, |best, (i, s)| match best {
            Some((_, bs)) if bs >= s => best,
            _ => Some((i, s)),
        })
    };
    let best = top(&scored);
    // The trace keeps the parts of the best few candidates, best first (ties in catalogue order).
    let by_score =
        |a: &(usize, scoring::Parts), b: &(usize, scoring::Parts)| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0));
    if parts.len() > TRACE_SCORES {
        parts.select_nth_unstable_by(TRACE_SCORES - 1, by_score);
        parts.truncate(TRACE_SCORES);
    }
    parts.sort_unstable_by(by_score);
    let parts: Vec<ScoreParts> = parts.into_iter().map(|(i, p)| p.trace(&catalogue.offers[i])).collect();
    // Holdout: where an offer of a campaign this device is held out of would have won, the
    // device records it and shows nothing, so the campaign's uplift can be measured.
    if let Some((h, held_score)) = top(&held_out) {
        if best.is_none_or(|(b, s)| held_score > s || (held_score == s && h < b)) {
            return Outcome {
                scores: parts,
                shown: None,
                camouflage: false,
                would_have_shown: Some(h),
                verdicts: Verdicts::Each(verdicts),
                features_used: features_used.list,
                scorer,
            };
        }
    }
    // Camouflage: now and then show one of the broadly eligible offers (right device, moment,
    // time, consent and caps, whatever the feature conditions say) instead of the top score.
    // Only in place of an offer that would be shown anyway, so the share is a share of shown
    // offers and camouflage never adds an impression.
    if best.is_some() && camouflage && !broad.is_empty() {
        let len = u64::try_from(broad.len()).unwrap_or(u64::MAX);
        let i = broad[usize::try_from(ctx.draw.pick % len).unwrap_or(0)];
        let offer = &catalogue.offers[i];
        // Drawn whatever its conditions say, so it may not have been scored yet.
        let score = match scored.iter().find(|(j, _)| *j == i) {
            Some((_, score)) => *score,
            None => {
                let (prior, _) = scoring::priors(catalogue, &[i], ctx, &mut features_used);
                let posterior = ctx.history.posterior(&offer.offer.id);
                scoring::parts(offer, ctx, i, prior.first().copied().unwrap_or(0.5), posterior).score
            }
        };
        verdicts[i] = Verdict::Chosen { score };
        let mut shown = assemble(offer, ctx);
        shown.why = why::camouflage(ctx.kind);
        shown.personalised = false;
        return Outcome {
            scores: parts,
            shown: Some((i, shown)),
            camouflage: true,
            would_have_shown: None,
            verdicts: Verdicts::Each(verdicts),
            features_used: features_used.list,
            scorer,
        };
    }
    let shown = best.map(|(i, score)| {
        verdicts[i] = Verdict::Chosen { score };
        let offer = &catalogue.offers[i];
        (i, assemble(offer, ctx))
    });
    Outcome {
        scores: parts,
        shown,
        camouflage: false,
        would_have_shown: None,
        verdicts: Verdicts::Each(verdicts),
        features_used: features_used.list,
        scorer,
    }
}

/// How many candidates' score parts a decision's trace keeps.
pub const TRACE_SCORES: usize = 5;

/// The eligibility stages, cheapest and most general first. The trace names the first stage
/// a candidate fails; an eligible one comes with its posterior, read with its caps.
fn eligibility(
    catalogue: &AppliedCatalogue,
    i: usize,
    offer: &CompiledOffer,
    ctx: &Context<'_>,
    used: &mut FeaturesRead,
) -> Result<Posterior, Rejection> {
    before_device(catalogue, offer, ctx.occasion())?;
    stage_device(ctx)?;
    stage_consent(offer, ctx)?;
    stage_conditions(offer, ctx, used)?;
    after_conditions(i, offer, ctx)
}

/// The stages before the device-wide rules, which read only the offer and the occasion.
fn before_device(catalogue: &AppliedCatalogue, offer: &CompiledOffer, at: Occasion) -> Result<(), Rejection> {
    stage_catalogue_fresh(catalogue, at)?;
    stage_device_kind(offer, at)?;
    stage_moment(offer, at)?;
    stage_validity(offer, at)
}

/// The stages after the feature conditions: caps and what people's answers, the campaign's
/// journey and the holdout rule out. An offer that fails only its conditions but passes these
/// is broadly eligible (camouflage draws from those). `i` is the offer's catalogue position.
fn after_conditions(i: usize, offer: &CompiledOffer, ctx: &Context<'_>) -> Result<Posterior, Rejection> {
    // One lookup for the offer's impressions and posterior, one for its answers.
    let record = ctx.slots.get(i).copied().flatten().and_then(|s| ctx.history.record_at(s));
    stage_offer_caps(offer, record, ctx)?;
    stage_campaign_caps(offer, ctx)?;
    stage_answers(offer, ctx)?;
    stage_journey(i, offer, ctx)?;
    stage_holdout(offer, ctx)?;
    Ok(record.map(|r| r.posterior).unwrap_or_default())
}

/// The campaign's journey: only the offers of its open steps may be shown.
fn stage_journey(i: usize, offer: &CompiledOffer, ctx: &Context<'_>) -> Result<(), Rejection> {
    match offer.journey.then(|| ctx.journeys.get(&i)).flatten() {
        Some(rejection) => Err(rejection.clone()),
        None => Ok(()),
    }
}

/// What people said: a recent dismissal, a "not for me" for the category, a conversion.
fn stage_answers(offer: &CompiledOffer, ctx: &Context<'_>) -> Result<(), Rejection> {
    let answers = ctx.answers.offer(&offer.offer.id);
    if answers.is_some_and(OfferAnswers::converted) {
        return Err(Rejection::Converted);
    }
    if ctx.answers.any_suppressed() {
        if let Some(until) = ctx.answers.suppressed_until(offer.category.path(), ctx.now) {
            return Err(Rejection::CategorySuppressed { category: offer.category.path().into(), until });
        }
    }
    match answers.and_then(|a| a.blocked_until(ctx.now)) {
        Some(until) => Err(Rejection::DismissedRecently { until }),
        None => Ok(()),
    }
}

/// The campaign's holdout arm: a deterministic hash of the device pseudonym and the campaign
/// puts the device in or out, the same way every time.
fn stage_holdout(offer: &CompiledOffer, ctx: &Context<'_>) -> Result<(), Rejection> {
    if ctx.campaigns.get(offer.campaign).is_some_and(|c| c.held_out) {
        Err(Rejection::Holdout { campaign: offer.offer.campaign.clone() })
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
fn stage_catalogue_fresh(catalogue: &AppliedCatalogue, at: Occasion) -> Result<(), Rejection> {
    if at.now >= catalogue.expires_at {
        Err(Rejection::CatalogueExpired { at: catalogue.expires_at })
    } else {
        Ok(())
    }
}

fn stage_device_kind(offer: &CompiledOffer, at: Occasion) -> Result<(), Rejection> {
    if offer.hot.kinds & kind_bit(at.kind) != 0 {
        Ok(())
    } else {
        Err(Rejection::DeviceKind { kind: at.kind })
    }
}

fn stage_moment(offer: &CompiledOffer, at: Occasion) -> Result<(), Rejection> {
    if offer.hot.moments & moment_bit(at.moment) != 0 {
        Ok(())
    } else {
        Err(Rejection::Moment { moment: at.moment })
    }
}

fn stage_validity(offer: &CompiledOffer, at: Occasion) -> Result<(), Rejection> {
    if at.now < offer.hot.valid_from {
        Err(Rejection::NotYetValid { from: offer.hot.valid_from })
    } else if at.now >= offer.hot.valid_until {
        Err(Rejection::Expired { until: offer.hot.valid_until })
    } else {
        Ok(())
    }
}

fn stage_consent(offer: &CompiledOffer, ctx: &Context<'_>) -> Result<(), Rejection> {
    match offer.needs {
        Some(purpose) if !ctx.consent.allows(purpose) => Err(Rejection::NeedsConsent { purpose }),
        _ => Ok(()),
    }
}

/// Checks each condition in turn.
fn stage_conditions(offer: &CompiledOffer, ctx: &Context<'_>, used: &mut FeaturesRead) -> Result<(), Rejection> {
    offer.conditions.iter().try_for_each(|c| check_condition(c, ctx, used))
}

/// Checks a condition: reads its feature only if the consent allows it, and records the
/// feature read in the decision's trace.
pub(crate) fn check_condition(
    c: &CompiledCondition,
    ctx: &Context<'_>,
    used: &mut FeaturesRead,
) -> Result<(), Rejection> {
    let purpose = c.feature.spec().purpose;
    if let Some(purpose) = purpose {
        if !ctx.consent.allows(purpose) {
            return Err(Rejection::NeedsConsent { purpose });
        }
    }
    used.note(c.feature);
    let value = ctx.value(c.feature).ok_or(Rejection::NoData { feature: c.feature })?;
    if c.op.holds(value, c.threshold) {
        Ok(())
    } else {
        Err(Rejection::ConditionNotMet { feature: c.feature, op: c.op, threshold: c.threshold })
    }
}

/// The offer's own caps: per local day (its own reason, [`Rejection::DailyCap`]), per hour,
/// week, month and in total.
fn stage_offer_caps(offer: &CompiledOffer, record: Option<&OfferRecord>, ctx: &Context<'_>) -> Result<(), Rejection> {
    let Some(times) = record.map(|r| &r.times) else { return Ok(()) };
    for (window, limit) in offer.offer.caps.limits() {
        if history::count(times, window, ctx.now, ctx.day_start) >= limit {
            return Err(match window {
                Window::Day => Rejection::DailyCap { per_day: limit },
                window => Rejection::OfferCap { window, limit },
            });
        }
    }
    Ok(())
}

/// The campaign's caps, over all its offers.
fn stage_campaign_caps(offer: &CompiledOffer, ctx: &Context<'_>) -> Result<(), Rejection> {
    match ctx.campaigns.get(offer.campaign).and_then(|c| c.caps.clone()) {
        Some(rejection) => Err(rejection),
        None => Ok(()),
    }
}

/// The device-wide rules, as worked out for this decision.
fn stage_device(ctx: &Context<'_>) -> Result<(), Rejection> {
    ctx.device_block.clone().map_or(Ok(()), Err)
}

/// Rules for the whole device: quiet hours, the minimum gap, the device-wide caps.
pub(crate) fn device_rules(catalogue: &AppliedCatalogue, ctx: &Context<'_>) -> Result<(), Rejection> {
    let policy = &catalogue.policy;
    if let Some(quiet) = policy.quiet_hours {
        if quiet.contains(ctx.hour) {
            return Err(Rejection::QuietHours { from: quiet.from, to: quiet.to });
        }
    }
    if let (Some(minutes), Some(last)) = (policy.min_gap_minutes, ctx.history.last_impression()) {
        let until = last.plus_secs(u64::from(minutes) * 60);
        if ctx.now < until {
            return Err(Rejection::MinGap { until });
        }
    }
    for (window, limit) in [(Window::Hour, policy.device_per_hour), (Window::Day, policy.device_per_day)] {
        if let Some(limit) = limit {
            if ctx.history.device_count(window, ctx.now, ctx.day_start) >= limit {
                return Err(Rejection::DeviceCap { window, limit });
            }
        }
    }
    Ok(())
}

fn assemble(offer: &CompiledOffer, ctx: &Context<'_>) -> ShownOffer {
    let o = &offer.offer;
    ShownOffer {
        offer: o.id.clone(),
        campaign: o.campaign.clone(),
        title: o.title.clone(),
        question: if ctx.policy.is_clues() { o.question.clone() } else { format!("{}.", o.title) },
        body: o.body.clone(),
        image: o.image.clone(),
        why: if ctx.policy.is_clues() {
            why::explain(offer, ctx.kind)
        } else {
            why::precise(offer, ctx.values, ctx.kind)
        },
        personalised: offer.needs.is_some(),
    }
}
