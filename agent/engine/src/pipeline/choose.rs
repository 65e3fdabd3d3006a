//! Steps 6 and 7 of the pipeline: match the offers, with the eligibility stages in the same
//! pass, and decide among them (scoring, holdout, camouflage, and a consent prompt in place).

use ledtrad_protocol::decision::{FeatureUse, Rejection, ScoreParts, ScorerUsed, ShownPrompt};

use crate::compiled::AppliedCatalogue;
use crate::context::{Context, FeaturesRead, Identity, Occasion};
use crate::eligibility::{self, Standing, Verdicts};
use crate::history::Posterior;
use crate::journey;
use crate::maps::FastMap;
use crate::prompts::PromptState;
use crate::scoring::{self, Propensity, TRACE_SCORES};
use crate::verdict::{KeptVerdicts, Reason};

/// What step 6 found: each offer's verdict so far and the candidates for step 7.
pub(crate) struct Matched {
    /// Each offer's verdict, by position (an eligible one outscored at 0 until it is scored);
    /// empty when the device-wide rules rule every offer out.
    verdicts: KeptVerdicts,
    /// The journeys' verdicts, by offer position.
    journeys: FastMap<usize, Rejection>,
    /// The device-wide rules' reason, when they rule every offer out.
    blocked: Option<Rejection>,
    /// The eligible offers by position, in catalogue order, then the held-out ones.
    to_score: Vec<usize>,
    /// How many of `to_score` are eligible (the rest are held out).
    eligible: usize,
    /// The posteriors of `to_score`, in the same order.
    posteriors: Vec<Posterior>,
    /// Whether this decision draws a camouflage offer, if it shows one.
    camouflage: bool,
    /// The broadly eligible offers (right device, moment, time, consent and caps, whatever the
    /// feature conditions say), collected only when camouflage is drawn.
    broad: Vec<usize>,
    /// The features read so far.
    used: FeaturesRead,
}

/// Step 6: the journeys' verdicts, then every offer through the eligibility stages in one
/// pass; the trace names the first stage each offer fails.
pub(crate) fn match_offers(catalogue: &AppliedCatalogue, ctx: &Context<'_>, standing: &Standing<'_>) -> Matched {
    let mut used = FeaturesRead::default();
    let journeys = journey::verdicts(&catalogue.journeys, &catalogue.offers, ctx, standing.past, &mut used);
    let camouflage = ctx.policy.is_clues() && ctx.draw.camouflage < ctx.camouflage_share;
    let mut matched = Matched {
        verdicts: KeptVerdicts::default(),
        journeys,
        blocked: standing.device_block.clone(),
        to_score: Vec::new(),
        eligible: 0,
        posteriors: Vec::new(),
        camouflage,
        broad: Vec::new(),
        used,
    };
    if matched.blocked.is_some() {
        // Nothing can be shown; the trace works each offer's verdict out when asked for.
        return matched;
    }
    matched.verdicts = KeptVerdicts::with_capacity(catalogue.offers.len());
    let mut held: Vec<usize> = Vec::new();
    for (i, offer) in catalogue.offers.iter().enumerate() {
        match eligibility::eligibility(catalogue, i, ctx, standing, &matched.journeys, &mut matched.used) {
            Ok(posterior) => {
                matched.to_score.push(i);
                matched.posteriors.push(posterior);
                if camouflage {
                    matched.broad.push(i);
                }
                matched.verdicts.push_eligible();
            }
            Err(reason) => {
                if reason == Reason::Holdout {
                    held.push(i);
                }
                if camouflage
                    && reason.failed_conditions()
                    && eligibility::after_conditions(i, offer, ctx, standing, &matched.journeys).is_ok()
                {
                    matched.broad.push(i);
                }
                matched.verdicts.push_rejected(reason);
            }
        }
    }
    matched.eligible = matched.to_score.len();
    // Held-out candidates are scored too (their posteriors are looked up now).
    matched.posteriors.extend(held.iter().map(|&i| standing.past.history.posterior(&catalogue.offers[i].offer.id)));
    matched.to_score.extend(held);
    matched
}

/// What step 7 chose.
pub(crate) struct Choice {
    /// The offer shown, by position.
    pub shown: Option<usize>,
    /// Whether it was drawn from the broadly eligible offers.
    pub camouflage: bool,
    /// The offer held out (shown nothing in its place), by position.
    pub would_have_shown: Option<usize>,
    /// The best few candidates' score parts, best first.
    pub scores: Vec<ScoreParts>,
    /// What scored them.
    pub scorer: ScorerUsed,
    /// Each offer's verdict.
    pub verdicts: Verdicts,
    /// The features read, in the order first read.
    pub features_used: Vec<FeatureUse>,
}

/// The candidates' scores (step 7's arbitration): the eligible ones' and the held-out ones'.
struct Scored {
    eligible: Vec<(usize, f64)>,
    held_out: Vec<(usize, f64)>,
    /// The best few eligible candidates' parts, best first (ties in catalogue order).
    trace: Vec<ScoreParts>,
    scorer: ScorerUsed,
}

/// Step 7: propensity × value × priority over the eligible and held-out candidates in one
/// batch; where a held-out offer would have won, nothing is shown; else now and then a
/// camouflage draw, else the top score.
pub(crate) fn decide(
    catalogue: &AppliedCatalogue,
    ctx: &Context<'_>,
    standing: &Standing<'_>,
    propensity: Propensity<'_>,
    matched: Matched,
) -> Choice {
    let mut choice = Choice {
        shown: None,
        camouflage: false,
        would_have_shown: None,
        scores: Vec::new(),
        scorer: ScorerUsed::Builtin,
        // Set on both ways out below.
        verdicts: Verdicts::NoCatalogue,
        features_used: Vec::new(),
    };
    let Matched { mut verdicts, journeys, blocked, to_score, eligible, posteriors, camouflage, broad, mut used } =
        matched;
    if let Some(reason) = blocked {
        choice.verdicts = Verdicts::DeviceBlocked { reason, at: ctx.occasion() };
        choice.features_used = used.into_list();
        return choice;
    }
    let scored = score(catalogue, ctx, propensity, &to_score, eligible, &posteriors, &mut used);
    for &(i, score) in &scored.eligible {
        verdicts.outscored(i, score);
    }
    let best = top(&scored.eligible);
    choice.scores = scored.trace;
    choice.scorer = scored.scorer;
    // Holdout: where an offer of a campaign this device is held out of would have won, the
    // device records it and shows nothing, so the campaign's uplift can be measured.
    let held = top(&scored.held_out)
        .filter(|&(h, held_score)| best.is_none_or(|(b, s)| held_score > s || (held_score == s && h < b)));
    if let Some((h, _)) = held {
        choice.would_have_shown = Some(h);
    } else if best.is_some() && camouflage && !broad.is_empty() {
        // Camouflage: now and then show one of the broadly eligible offers instead of the top
        // score. Only in place of an offer that would be shown anyway, so the share is a share
        // of shown offers and camouflage never adds an impression.
        let len = u64::try_from(broad.len()).unwrap_or(u64::MAX);
        let i = broad[usize::try_from(ctx.draw.pick % len).unwrap_or(0)];
        // Drawn whatever its conditions say, so it may not have been scored yet.
        let score = match scored.eligible.iter().find(|(j, _)| *j == i) {
            Some((_, score)) => *score,
            None => score_one(catalogue, ctx, standing, propensity, i, &mut used),
        };
        verdicts.chosen(i, score);
        choice.shown = Some(i);
        choice.camouflage = true;
    } else if let Some((i, score)) = best {
        verdicts.chosen(i, score);
        choice.shown = Some(i);
    }
    choice.verdicts = Verdicts::Each { kept: verdicts, at: ctx.occasion(), journeys };
    choice.features_used = used.into_list();
    choice
}

/// Highest score wins; ties go to the offer listed first, so the same input gives the same
/// decision.
fn top(list: &[(usize, f64)]) -> Option<(usize, f64)> {
    list.iter().copied().fold(None::<(usize, f64)>, |best, (i, s)| match best {
        Some((_, bs)) if bs >= s => best,
        _ => Some((i, s)),
    })
}

/// Scores `to_score` (the first `eligible` of them eligible, the rest held out) in one batch.
fn score(
    catalogue: &AppliedCatalogue,
    ctx: &Context<'_>,
    propensity: Propensity<'_>,
    to_score: &[usize],
    eligible: usize,
    posteriors: &[Posterior],
    used: &mut FeaturesRead,
) -> Scored {
    let scoring::Priors { priors, scorer } = scoring::priors(catalogue, to_score, ctx, propensity, used);
    let mut scored: Vec<(usize, f64)> = Vec::with_capacity(eligible);
    let mut parts: Vec<(usize, scoring::Parts)> = Vec::with_capacity(eligible);
    let mut held_out: Vec<(usize, f64)> = Vec::new();
    for (k, ((&i, &prior), &posterior)) in to_score.iter().zip(&priors).zip(posteriors).enumerate() {
        let p = scoring::parts(&catalogue.offers[i], ctx, propensity, i, prior, posterior);
        if k < eligible {
            scored.push((i, p.score));
            parts.push((i, p));
        } else {
            held_out.push((i, p.score));
        }
    }
    // The trace keeps the parts of the best few candidates, best first (ties in catalogue order).
    let by_score =
        |a: &(usize, scoring::Parts), b: &(usize, scoring::Parts)| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0));
    if parts.len() > TRACE_SCORES {
        parts.select_nth_unstable_by(TRACE_SCORES - 1, by_score);
        parts.truncate(TRACE_SCORES);
    }
    parts.sort_unstable_by(by_score);
    let trace = parts.into_iter().map(|(i, p)| p.trace(&catalogue.offers[i])).collect();
    Scored { eligible: scored, held_out, trace, scorer }
}

/// The score of one offer drawn outside the batch (a camouflage draw that failed its
/// conditions).
fn score_one(
    catalogue: &AppliedCatalogue,
    ctx: &Context<'_>,
    standing: &Standing<'_>,
    propensity: Propensity<'_>,
    i: usize,
    used: &mut FeaturesRead,
) -> f64 {
    let offer = &catalogue.offers[i];
    let prior = scoring::priors(catalogue, &[i], ctx, propensity, used).priors.first().copied().unwrap_or(0.5);
    let posterior = standing.past.history.posterior(&offer.offer.id);
    scoring::parts(offer, ctx, propensity, i, prior, posterior).score
}

/// Step 7, last: asking is a moment too. A due consent prompt takes the place of a contextual
/// offer (or of nothing), never of one with personal conditions; it follows the device-wide rules (quiet
/// hours, gap, caps) and never comes from an expired catalogue.
pub(crate) fn ask(
    catalogue: &AppliedCatalogue,
    standing: &Standing<'_>,
    who: &Identity<'_>,
    occasion: Occasion,
    prompts: &PromptState,
    choice: &mut Choice,
) -> Option<ShownPrompt> {
    let may_ask = standing.device_block.is_none() && occasion.now < catalogue.expires_at;
    let personalised = choice.shown.is_some_and(|i| catalogue.offers[i].needs.is_some() && !choice.camouflage);
    if !may_ask || personalised {
        return None;
    }
    let prompt = prompts.due(&catalogue.prompts, who.kind, occasion.moment, who.consent, occasion.now, who.day)?;
    if let Some(i) = choice.shown.take() {
        choice.verdicts.unchoose(i);
    }
    choice.camouflage = false;
    Some(prompt)
}
