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
    matched.to_score.reserve(catalogue.offers.len());
    matched.posteriors.reserve(catalogue.offers.len());
    let mut held: Vec<usize> = Vec::new();
    for i in 0..catalogue.offers.len() {
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
                    && eligibility::after_conditions(catalogue, i, ctx, standing, &matched.journeys).is_ok()
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

/// Step 6 made again with personal inputs withheld (some features' values, the answers'
/// posteriors), from the `first` pass, keeping no verdicts. Only the conditions and the
/// journeys read the features, and a withheld value only takes a condition away (a condition
/// on a feature without a value fails): so only the first pass's candidates with a personal
/// condition are checked again, and the broadly eligible offers stay the same. Where the
/// journeys' verdicts change, the pass is made in full.
pub(crate) fn match_again(
    catalogue: &AppliedCatalogue,
    ctx: &Context<'_>,
    standing: &Standing<'_>,
    first: &Matched,
) -> Matched {
    let mut used = FeaturesRead::default();
    let journeys = journey::verdicts(&catalogue.journeys, &catalogue.offers, ctx, standing.past, &mut used);
    if journeys != first.journeys || standing.device_block.is_some() {
        return match_offers(catalogue, ctx, standing);
    }
    let mut matched = Matched {
        verdicts: KeptVerdicts::default(),
        journeys,
        blocked: None,
        to_score: Vec::with_capacity(first.to_score.len()),
        eligible: 0,
        posteriors: Vec::with_capacity(first.to_score.len()),
        camouflage: ctx.policy.is_clues() && ctx.draw.camouflage < ctx.camouflage_share,
        broad: first.broad.clone(),
        used,
    };
    for (k, (&i, &posterior)) in first.to_score.iter().zip(&first.posteriors).enumerate() {
        if catalogue.hot[i].personal() && !eligibility::conditions_hold(catalogue, i, ctx, &mut matched.used) {
            continue;
        }
        matched.to_score.push(i);
        matched.posteriors.push(posterior);
        if k < first.eligible {
            matched.eligible += 1;
        }
    }
    // Every test that makes a decision again checks the shortcut against the full pass.
    #[cfg(debug_assertions)]
    {
        let full = match_offers(catalogue, ctx, standing);
        let candidates = |m: &Matched| (m.to_score.clone(), m.eligible, m.posteriors.clone(), m.broad.clone());
        debug_assert!(candidates(&full) == candidates(&matched), "step 6 made again differs from the full pass");
    }
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

/// What step 7's scoring found. A candidate that cannot reach the best few (its score's bound
/// is below theirs) is not scored: the trace keeps what its score is worked out from.
struct Scored {
    /// The best held-out candidate that could beat the best eligible one, with its score.
    held_out: Option<(usize, f64)>,
    /// The best few eligible candidates' parts, best first (ties in catalogue order).
    best: Vec<(usize, Parts)>,
    scorer: ScorerUsed,
}

/// Step 7: propensity × value × priority over the eligible and held-out candidates in one
/// batch; where a held-out offer would have won, nothing is shown; else now and then a
/// camouflage draw, else the top score. `keep` says whether the trace is kept; `matched` keeps
/// its candidates, for the same decision made again.
pub(crate) fn decide(
    catalogue: &AppliedCatalogue,
    ctx: &Context<'_>,
    standing: &Standing<'_>,
    propensity: Propensity<'_>,
    matched: &mut Matched,
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
    let mut used = std::mem::take(&mut matched.used);
    if let Some(reason) = matched.blocked.clone() {
        choice.verdicts = Verdicts::DeviceBlocked { reason, at: ctx.occasion() };
        choice.features_used = used.into_list();
        return choice;
    }
    let mut verdicts = std::mem::take(&mut matched.verdicts);
    let scored = score(catalogue, ctx, propensity, matched, &mut used, (keep == Keep::Trace).then_some(&mut verdicts));
    if keep == Keep::Trace {
        verdicts.keep_scoring(KeptScoring::new(&Scoring::new(ctx, propensity)));
        choice.scores = scored.best.iter().map(|&(i, p)| p.trace(&catalogue.offers[i])).collect();
    }
    let best = scored.best.first().map(|&(i, p)| (i, p.score));
    choice.scorer = scored.scorer;
    // Holdout: where an offer of a campaign this device is held out of would have won, the
    // device records it and shows nothing, so the campaign's uplift can be measured.
    let held = scored
        .held_out
        .filter(|&(h, held_score)| best.is_none_or(|(b, s)| held_score > s || (held_score == s && h < b)));
    if let Some((h, _)) = held {
        choice.would_have_shown = Some(h);
    } else if best.is_some() && matched.camouflage && !matched.broad.is_empty() {
        // Camouflage: now and then show one of the broadly eligible offers instead of the top
        // score. Only in place of an offer that would be shown anyway, so the share is a share
        // of shown offers and camouflage never adds an impression.
        let len = u64::try_from(matched.broad.len()).unwrap_or(u64::MAX);
        let i = matched.broad[usize::try_from(ctx.draw.pick % len).unwrap_or(0)];
        if keep == Keep::Trace {
            // Drawn whatever its conditions say, so it may not have been scored yet.
            let scoring = Scoring::new(ctx, propensity);
            let score = verdicts
                .score_of(i)
                .or_else(|| {
                    let pending = verdicts.pending_of(i)?;
                    Some(scoring::pending_score(&catalogue.offers[i], &scoring, i, pending, &mut used))
                })
                .unwrap_or_else(|| score_one(catalogue, ctx, standing, propensity, i, &mut used));
            verdicts.chosen(i, score);
        }
        choice.shown = Some(i);
        choice.camouflage = true;
    } else if let Some((i, score)) = best {
        if keep == Keep::Trace {
            verdicts.chosen(i, score);
        }
        choice.shown = Some(i);
    }
    let journeys = crate::eligibility::kept_journeys(&matched.journeys);
    choice.verdicts = Verdicts::Each { kept: verdicts, at: ctx.occasion(), journeys };
    choice.features_used = used.into_list();
    choice
}

/// How many candidates with the highest bounds are scored first, beyond the best few the
/// decision needs, so the bar the others must clear is high from the start.
const SEEDS_BEYOND_BEST: usize = 3;

/// Scores the candidates in one batch, each only where it could matter: an eligible one whose
/// bound is below the best few scores so far cannot enter them, and a held-out one whose bound
/// is below the best eligible score cannot win. Scores do not depend on the order they are
/// worked out in (each draw is seeded by the offer's position), so the outcome is the same as
/// scoring every candidate. Each eligible candidate's score, or what it is worked out from, goes
/// into `verdicts` where the trace is kept.
fn score(
    catalogue: &AppliedCatalogue,
    ctx: &Context<'_>,
    propensity: Propensity<'_>,
    matched: &Matched,
    used: &mut FeaturesRead,
    mut verdicts: Option<&mut KeptVerdicts>,
) -> Scored {
    let Matched { to_score, eligible, posteriors, .. } = matched;
    let (to_score, eligible) = (to_score.as_slice(), *eligible);
    let priors = scoring::priors(catalogue, to_score, ctx, propensity, used);
    let scoring = Scoring::new(ctx, propensity);
    let offer = |k: usize| &catalogue.offers[to_score[k]];
    let bound = |k: usize| scoring.bound(&catalogue.hot[to_score[k]]);
    let parts = |k: usize, used: &mut FeaturesRead| {
        let prior = priors.prior(k, offer(k), &scoring, used);
        scoring::parts(offer(k), &scoring, to_score[k], prior, posteriors[k])
    };
    // The trace keeps the best few candidates' parts; a decision made again needs its winner.
    let keep = if verdicts.is_some() { TRACE_SCORES } else { 1 };
    let mut best = Best::new(keep);
    let seeds = Seeds::highest((0..eligible).map(bound), keep + SEEDS_BEYOND_BEST);
    for k in seeds.positions() {
        let p = parts(k, used);
        if let Some(v) = verdicts.as_deref_mut() {
            v.outscored(to_score[k], p.score);
        }
        best.offer(to_score[k], p);
    }
    for k in (0..eligible).filter(|&k| !seeds.contains(k)) {
        if bound(k) < best.bar() {
            if let Some(v) = verdicts.as_deref_mut() {
                let model_prior = priors.model_prior(k).unwrap_or(f32::NAN);
                v.pending(to_score[k], Pending { posterior: posteriors[k], model_prior });
            }
        } else {
            let p = parts(k, used);
            if let Some(v) = verdicts.as_deref_mut() {
                v.outscored(to_score[k], p.score);
            }
            best.offer(to_score[k], p);
        }
    }
    // Highest score wins; ties go to the offer listed first.
    let bar = best.list.first().map_or(f64::NEG_INFINITY, |(_, p)| p.score);
    let held_out = (eligible..to_score.len())
        .filter(|&k| bound(k) >= bar)
        .map(|k| (to_score[k], parts(k, used).score))
        .fold(None::<(usize, f64)>, |top, (i, s)| match top {
            Some((_, ts)) if ts >= s => top,
            _ => Some((i, s)),
        });
    Scored { held_out, best: best.list, scorer: priors.scorer }
}

/// The positions of the candidates with the highest bounds, at most a few, found in one pass
/// without allocating.
struct Seeds {
    /// (bound, position), highest first; the first `len` are used.
    top: [(f64, usize); TRACE_SCORES + SEEDS_BEYOND_BEST],
    len: usize,
}

impl Seeds {
    /// The `n` highest of `bounds` (at most the array's length).
    fn highest(bounds: impl Iterator<Item = f64>, n: usize) -> Self {
        let mut seeds = Self { top: [(f64::NEG_INFINITY, 0); TRACE_SCORES + SEEDS_BEYOND_BEST], len: 0 };
        let n = n.min(seeds.top.len());
        for (k, b) in bounds.enumerate() {
            if seeds.len == n && b <= seeds.top[n - 1].0 {
                continue;
            }
            let at = seeds.top[..seeds.len].partition_point(|(t, _)| *t >= b);
            seeds.len = (seeds.len + 1).min(n);
            seeds.top.copy_within(at..seeds.len - 1, at + 1);
            seeds.top[at] = (b, k);
        }
        seeds
    }

    fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.top[..self.len].iter().map(|(_, k)| *k)
    }

    fn contains(&self, k: usize) -> bool {
        self.positions().any(|s| s == k)
    }
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
