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
use crate::scoring::{self, KeptScoring, Parts, Pending, Propensity, Scoring, TRACE_SCORES};
use crate::verdict::{KeptVerdicts, Reason};

/// What a decision keeps: its trace (every offer's verdict, the best few candidates' score
/// parts), or only what it shows (the same steps made again with personal inputs withheld).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    Trace,
    ShownOnly,
}

impl Keep {
    /// How many of the best candidates must be scored exactly.
    fn best(self) -> usize {
        match self {
            Self::Trace => TRACE_SCORES,
            Self::ShownOnly => 1,
        }
    }
}

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

/// The candidates' scores (step 7's arbitration). A candidate that cannot reach the best few
/// (its score's bound is below theirs) is not scored: it keeps what its score is worked out
/// from, for the trace.
struct Scored {
    /// The eligible candidates scored, by position.
    eligible: Vec<(usize, f64)>,
    /// The eligible candidates not scored, by position.
    pending: Vec<(usize, Pending)>,
    /// The held-out candidates scored (those that could beat the best eligible one).
    held_out: Vec<(usize, f64)>,
    /// The best few eligible candidates' parts, best first (ties in catalogue order).
    best: Vec<(usize, Parts)>,
    scorer: ScorerUsed,
}

/// Step 7: propensity × value × priority over the eligible and held-out candidates in one
/// batch; where a held-out offer would have won, nothing is shown; else now and then a
/// camouflage draw, else the top score. `keep` says whether the trace is kept.
pub(crate) fn decide(
    catalogue: &AppliedCatalogue,
    ctx: &Context<'_>,
    standing: &Standing<'_>,
    propensity: Propensity<'_>,
    matched: Matched,
    keep: Keep,
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
    let candidates = Candidates { to_score: &to_score, eligible, posteriors: &posteriors };
    let scored = score(catalogue, ctx, propensity, &candidates, &mut used, keep);
    if keep == Keep::Trace {
        for &(i, score) in &scored.eligible {
            verdicts.outscored(i, score);
        }
        for &(i, pending) in &scored.pending {
            verdicts.pending(i, pending);
        }
        verdicts.keep_scoring(KeptScoring::new(&Scoring::new(ctx, propensity)));
        choice.scores = scored.best.iter().map(|&(i, p)| p.trace(&catalogue.offers[i])).collect();
    }
    let best = scored.best.first().map(|&(i, p)| (i, p.score));
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
        let score = match (scored.eligible.iter().find(|(j, _)| *j == i), scored.pending.iter().find(|(j, _)| *j == i))
        {
            (Some(&(_, score)), _) => score,
            (None, Some(&(_, pending))) => {
                let scoring = Scoring::new(ctx, propensity);
                scoring::pending_score(&catalogue.offers[i], &scoring, i, pending, &mut used)
            }
            (None, None) => score_one(catalogue, ctx, standing, propensity, i, &mut used),
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

/// The candidates of step 7 by catalogue position: the first `eligible` of `to_score` are
/// eligible, the rest held out; `posteriors` in the same order.
struct Candidates<'a> {
    to_score: &'a [usize],
    eligible: usize,
    posteriors: &'a [Posterior],
}

/// How many candidates with the highest bounds are scored first, beyond the best few the
/// decision needs, so the bar the others must clear is high from the start.
const SEEDS_BEYOND_BEST: usize = 3;

/// Scores the candidates in one batch, each only where it could matter: an eligible one whose
/// bound is below the best few scores so far cannot enter them, and a held-out one whose bound
/// is below the best eligible score cannot win. Scores do not depend on the order they are
/// worked out in (each draw is seeded by the offer's position), so the outcome is the same as
/// scoring every candidate.
fn score(
    catalogue: &AppliedCatalogue,
    ctx: &Context<'_>,
    propensity: Propensity<'_>,
    candidates: &Candidates<'_>,
    used: &mut FeaturesRead,
    keep: Keep,
) -> Scored {
    let Candidates { to_score, eligible, posteriors } = *candidates;
    let priors = scoring::priors(catalogue, to_score, ctx, propensity, used);
    let scoring = Scoring::new(ctx, propensity);
    let offer = |k: usize| &catalogue.offers[to_score[k]];
    let parts = |k: usize, used: &mut FeaturesRead| {
        let prior = priors.prior(k, offer(k), &scoring, used);
        scoring::parts(offer(k), &scoring, to_score[k], prior, posteriors[k])
    };
    let bounds: Vec<f64> = (0..to_score.len()).map(|k| scoring.bound(offer(k))).collect();
    let mut best = Best::new(keep.best());
    let mut scored = Scored {
        eligible: Vec::new(),
        pending: Vec::new(),
        held_out: Vec::new(),
        best: Vec::new(),
        scorer: ScorerUsed::Builtin,
    };
    let seeds = highest(&bounds[..eligible], keep.best() + SEEDS_BEYOND_BEST);
    for &k in &seeds {
        let p = parts(k, used);
        scored.eligible.push((to_score[k], p.score));
        best.offer(to_score[k], p);
    }
    for k in (0..eligible).filter(|k| seeds.binary_search(k).is_err()) {
        if bounds[k] < best.bar() {
            let model_prior = priors.model_prior(k).unwrap_or(f32::NAN);
            scored.pending.push((to_score[k], Pending { posterior: posteriors[k], model_prior }));
        } else {
            let p = parts(k, used);
            scored.eligible.push((to_score[k], p.score));
            best.offer(to_score[k], p);
        }
    }
    let bar = best.list.first().map_or(f64::NEG_INFINITY, |(_, p)| p.score);
    for k in (eligible..to_score.len()).filter(|&k| bounds[k] >= bar) {
        scored.held_out.push((to_score[k], parts(k, used).score));
    }
    scored.best = best.list;
    scored.scorer = priors.scorer;
    scored
}

/// The positions in `bounds` of its `n` highest values, in ascending order.
fn highest(bounds: &[f64], n: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..bounds.len()).collect();
    if all.len() > n {
        all.select_nth_unstable_by(n - 1, |&a, &b| bounds[b].total_cmp(&bounds[a]));
        all.truncate(n);
        all.sort_unstable();
    }
    all
}

/// The best `n` candidates so far, best first (ties in catalogue order).
struct Best {
    n: usize,
    list: Vec<(usize, Parts)>,
}

impl Best {
    fn new(n: usize) -> Self {
        Self { n, list: Vec::with_capacity(n + 1) }
    }

    /// The score a candidate must reach to enter: the last one's once there are `n`.
    fn bar(&self) -> f64 {
        if self.list.len() < self.n {
            f64::NEG_INFINITY
        } else {
            self.list.last().map_or(f64::NEG_INFINITY, |(_, p)| p.score)
        }
    }

    /// Takes candidate `i` in if it is among the best `n`.
    fn offer(&mut self, i: usize, parts: Parts) {
        let before = |(j, p): &(usize, Parts)| p.score.total_cmp(&parts.score).then(i.cmp(j)).is_gt();
        let at = self.list.partition_point(before);
        if at < self.n {
            self.list.insert(at, (i, parts));
            self.list.truncate(self.n);
        }
    }
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
    let scoring = Scoring::new(ctx, propensity);
    let prior = scoring::priors(catalogue, &[i], ctx, propensity, used).prior(0, offer, &scoring, used);
    let posterior = standing.past.history.posterior(&offer.offer.id);
    scoring::parts(offer, &scoring, i, prior, posterior).score
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
