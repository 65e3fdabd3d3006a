//! Scoring and arbitration (DESIGN §8 steps 4 and 7): propensity × value × priority, less an
//! intrusiveness penalty that grows with how personal the features behind a candidate are.
//!
//! Propensity starts from a prior: the fleet's model, run on all candidates in one batch, where
//! one is applied; else the offer's built-in logistic scorer (weights from the catalogue over
//! the features consent allows) or 0.5. With `personalise`, it is updated by the offer's
//! Beta posterior from local feedback. Exploration is Thompson sampling: with a seed from the
//! caller the posterior is sampled, without one its mean is used. The random numbers come from
//! a small generator seeded by the caller, so the engine itself has no random source.

use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::{ScoreParts, ScorerUsed};
use ledtrad_protocol::model::InputSource;
use ledtrad_protocol::Purpose;

use crate::compiled::{AppliedCatalogue, CompiledOffer, HotOffer};
use crate::context::{Context, FeaturesRead};
use crate::history::Posterior;
use crate::model::FleetModel;

/// How much each personal feature behind a candidate takes off its propensity.
pub const INTRUSIVENESS: f64 = 0.05;

/// Pseudo-observations the built-in prior is worth against local feedback.
pub const PRIOR_WEIGHT: f64 = 2.0;

/// How many candidates' score parts a decision's trace keeps.
pub const TRACE_SCORES: usize = 5;

/// How propensity is worked out at a decision: by the fleet's model where one is applied, else
/// by each offer's built-in scorer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Propensity<'a> {
    /// The fleet's scoring model, if one is applied.
    pub model: Option<&'a FleetModel>,
    /// Whether the fleet's model reads a personal feature the consent allows (the same for
    /// every candidate, so worked out once).
    pub model_reads_personal: bool,
}

impl<'a> Propensity<'a> {
    /// The propensity of a decision under `consent`, with the fleet's `model` if one is applied.
    pub fn new(model: Option<&'a FleetModel>, consent: ConsentState) -> Self {
        let model_reads_personal = model.is_some_and(|model| {
            model.inputs.iter().any(
                |(s, _)| matches!(s, InputSource::Feature(f) if f.spec().purpose.is_some_and(|p| consent.allows(p))),
            )
        });
        Self { model, model_reads_personal }
    }

    /// What the intrusiveness penalty counts behind a candidate besides its conditions.
    pub fn behind(self) -> Behind {
        match self.model {
            Some(_) => Behind::Model { reads_personal: self.model_reads_personal },
            None => Behind::Builtin,
        }
    }
}

/// What scores a candidate, as the intrusiveness penalty sees it: the offer's built-in scorer
/// (its personal weights count) or the fleet's model (one, where it reads a personal feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behind {
    Builtin,
    Model { reads_personal: bool },
}

/// What a candidate's score reads of its decision besides the offer, its prior and posterior.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scoring<'a> {
    /// Every feature's value, by [`ledtrad_protocol::feature::FeatureName::index`].
    pub values: &'a [Option<f64>],
    pub consent: ConsentState,
    /// Whether the intrusiveness penalty applies ([`crate::context::Policy::is_clues`]).
    pub clues: bool,
    /// The seed of Thompson sampling, if the decision explores.
    pub explore: Option<u64>,
    /// Whether the posteriors learned from the household's answers are withheld.
    pub answers_withheld: bool,
    pub behind: Behind,
}

impl<'a> Scoring<'a> {
    /// What the candidates of the decision in `ctx` are scored with.
    pub fn new(ctx: &Context<'a>, propensity: Propensity<'_>) -> Self {
        Self {
            values: ctx.values,
            consent: ctx.consent,
            clues: ctx.policy.is_clues(),
            explore: ctx.draw.explore,
            answers_withheld: ctx.answers_withheld,
            behind: propensity.behind(),
        }
    }

    /// The highest score `offer` can reach at this decision, whatever its propensity: every
    /// score is value × priority × (propensity − penalty) with the propensity at most 1.
    /// It reads only the offer's [`HotOffer`], and equals what [`parts`] would give with a
    /// propensity of 1.
    pub fn bound(&self, hot: &HotOffer) -> f64 {
        let penalty = self.penalty(usize::from(hot.personal_conditions), usize::from(hot.personal_weights));
        hot.worth * (1.0 - penalty).max(0.0)
    }

    /// The intrusiveness penalty of a candidate with `conditions` personal conditions and a
    /// built-in scorer with `weights` personal weights.
    fn penalty(&self, conditions: usize, weights: usize) -> f64 {
        if self.clues {
            INTRUSIVENESS * personal_features(conditions, weights, self.behind) as f64
        } else {
            0.0
        }
    }
}

/// The built-in prior of `offer`: its logistic scorer over the features consent allows, or
/// 0.5 without one. Every feature it reads is noted in `used`.
pub(crate) fn builtin_prior(offer: &CompiledOffer, scoring: &Scoring<'_>, used: &mut FeaturesRead) -> f64 {
    offer.logistic.as_ref().map_or(0.5, |l| {
        let mut z = l.bias;
        for w in l.weights.iter().filter(|w| w.purpose.is_none_or(|p| scoring.consent.allows(p))) {
            let index = usize::from(w.index);
            if let Some(feature) = w.feature() {
                used.note_at(index, feature);
            }
            if let Some(v) = scoring.values.get(index).copied().flatten() {
                z += w.weight * v;
            }
        }
        1.0 / (1.0 + (-z).exp())
    })
}

/// Notes in `used` the features the built-in prior of `offer` reads, without working it out
/// (for a candidate whose score is left to be named when the trace is read).
fn note_builtin_reads(offer: &CompiledOffer, consent: ConsentState, used: &mut FeaturesRead) {
    if let Some(l) = &offer.logistic {
        if !used.has_all(l.reads) {
            for w in l.weights.iter().filter(|w| w.purpose.is_none_or(|p| consent.allows(p))) {
                if let Some(feature) = w.feature() {
                    used.note_at(usize::from(w.index), feature);
                }
            }
        }
    }
}

/// The priors of a batch of candidates, and what worked them out.
pub(crate) struct Priors {
    /// The model's, one per candidate in the batch's order, or the built-in scorers'.
    pub source: PriorSource,
    /// The fleet's model, the built-in scorers, or the model's failure.
    pub scorer: ScorerUsed,
}

/// Where a batch's priors come from.
pub(crate) enum PriorSource {
    /// The fleet's model ran on the batch: one prior per candidate.
    Model(Vec<f64>),
    /// Each offer's built-in scorer, worked out per candidate when it is scored
    /// ([`Priors::prior`]); the features they read are noted already.
    Builtin,
}

impl Priors {
    /// The prior of the `k`-th candidate of the batch, `offer`.
    pub fn prior(&self, k: usize, offer: &CompiledOffer, scoring: &Scoring<'_>, used: &mut FeaturesRead) -> f64 {
        match &self.source {
            PriorSource::Model(priors) => priors[k],
            PriorSource::Builtin => builtin_prior(offer, scoring, used),
        }
    }

    /// The model's prior of the `k`-th candidate, if the model worked them out (an `f32`
    /// widened, so kept as one without loss).
    pub fn model_prior(&self, k: usize) -> Option<f32> {
        match &self.source {
            #[allow(clippy::cast_possible_truncation)]
            PriorSource::Model(priors) => Some(priors[k] as f32),
            PriorSource::Builtin => None,
        }
    }
}

/// The priors of `offers` (indices into the catalogue) from the fleet's model, run on one
/// batch, or from the built-in scorers where there is no model or it fails. Every feature the
/// model or the built-in scorers read is recorded in `used` with the consent that allowed it,
/// in the batch's order; a feature consent does not allow is never read and the model gets the
/// input's `missing` value instead.
pub(crate) fn priors(
    catalogue: &AppliedCatalogue,
    offers: &[usize],
    ctx: &Context<'_>,
    propensity: Propensity<'_>,
    used: &mut FeaturesRead,
) -> Priors {
    let builtin = |used: &mut FeaturesRead| {
        for &i in offers {
            note_builtin_reads(&catalogue.offers[i], ctx.consent, used);
        }
        PriorSource::Builtin
    };
    let Some(model) = propensity.model else {
        return Priors { source: builtin(used), scorer: ScorerUsed::Builtin };
    };
    if offers.is_empty() {
        return Priors { source: PriorSource::Builtin, scorer: ScorerUsed::Builtin };
    }
    let rows = model_rows(model, catalogue, offers, ctx, used);
    match model.run(&rows, offers.len()) {
        Ok(out) if out.iter().all(|p| p.is_finite()) => Priors {
            source: PriorSource::Model(out.iter().map(|&p| f64::from(p).clamp(0.0, 1.0)).collect()),
            scorer: ScorerUsed::Model {
                name: model.name.clone(),
                version: model.version,
                runtime: model.runtime().into(),
            },
        },
        Ok(_) => Priors {
            source: builtin(used),
            scorer: ScorerUsed::ModelFailed {
                version: model.version,
                reason: "the model gave a value that is not a number".into(),
            },
        },
        Err(e) => Priors {
            source: builtin(used),
            scorer: ScorerUsed::ModelFailed { version: model.version, reason: e.to_string() },
        },
    }
}

/// The model's input rows for `offers`, one after another. The device-side inputs are the same
/// for every row, so they are read once into a row that each offer's copy then completes with
/// its own inputs, from the catalogue's dense [`AppliedCatalogue::model_inputs`].
fn model_rows(
    model: &FleetModel,
    catalogue: &AppliedCatalogue,
    offers: &[usize],
    ctx: &Context<'_>,
    used: &mut FeaturesRead,
) -> Vec<f32> {
    let device: Vec<f32> = model
        .inputs
        .iter()
        .map(|(source, missing)| match source {
            InputSource::Feature(f) => {
                let purpose = f.spec().purpose;
                if purpose.is_some_and(|p| !ctx.consent.allows(p)) {
                    return *missing as f32;
                }
                used.note(*f);
                ctx.value(*f).unwrap_or(*missing) as f32
            }
            InputSource::Moment(m) => f32::from(u8::from(*m == ctx.moment)),
            // Each offer's own, set below.
            InputSource::OfferValue
            | InputSource::OfferPriority
            | InputSource::OfferPersonalised
            | InputSource::OfferCategory(_) => 0.0,
        })
        .collect();
    let mut rows = Vec::with_capacity(offers.len() * device.len());
    for &i in offers {
        let start = rows.len();
        rows.extend_from_slice(&device);
        let row = &mut rows[start..];
        for &(k, input) in model.offer_inputs() {
            row[k] = input.read(&catalogue.model_inputs[i]);
        }
    }
    rows
}

/// A candidate's score and its parts; [`Parts::trace`] names the offer for the decision's trace
/// (only the best few are named, so scoring clones no ids).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Parts {
    pub propensity: f64,
    pub value: f64,
    pub priority: f64,
    pub penalty: f64,
    pub score: f64,
}

impl Parts {
    /// The parts as the trace shows them.
    pub(crate) fn trace(self, offer: &CompiledOffer) -> ScoreParts {
        let Self { propensity, value, priority, penalty, score } = self;
        ScoreParts { offer: offer.offer.id.clone(), propensity, value, priority, penalty, score }
    }
}

/// The score parts of `offer` at this decision from its `prior` and local `posterior` (learned
/// from the household's answers, so not used where the decision withholds them); `index`
/// separates the offers' samples.
pub(crate) fn parts(
    offer: &CompiledOffer,
    scoring: &Scoring<'_>,
    index: usize,
    prior: f64,
    posterior: Posterior,
) -> Parts {
    let posterior = if scoring.answers_withheld { Posterior::default() } else { posterior };
    let propensity = if scoring.consent.allows(Purpose::Personalise) {
        let a = 1.0 + f64::from(posterior.accepts) + PRIOR_WEIGHT * prior;
        let b = 1.0 + f64::from(posterior.rejections) + PRIOR_WEIGHT * (1.0 - prior);
        match scoring.explore {
            Some(seed) => {
                let mut rng = SplitMix::new(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                sample_beta(&mut rng, a, b)
            }
            None => a / (a + b),
        }
    } else {
        prior
    };
    let penalty = scoring.penalty(offer.personal_conditions, offer.personal_weights);
    let (value, priority) = (offer.offer.value, offer.offer.priority);
    let score = value * priority * (propensity - penalty).max(0.0);
    Parts { propensity, value, priority, penalty, score }
}

/// How many personal features stand behind a candidate: its personal `conditions` and its built-in
/// scorer's personal `weights`, or, where the fleet's model scores and reads personal features,
/// one for the model.
fn personal_features(conditions: usize, weights: usize, behind: Behind) -> usize {
    let model = match behind {
        Behind::Model { reads_personal } => usize::from(reads_personal),
        Behind::Builtin => weights,
    };
    conditions + model
}

/// A candidate whose score was not worked out at its decision (it could not reach the trace's
/// best few): its posterior then and, where the fleet's model scored, its prior (NaN where the
/// built-in scorer did, which works it out again from the decision's features).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pending {
    pub posterior: Posterior,
    pub model_prior: f32,
}

/// What naming a [`Pending`] candidate's score after its decision needs: the decision's
/// [`Scoring`], owned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeptScoring {
    values: Box<[Option<f64>]>,
    consent: ConsentState,
    clues: bool,
    explore: Option<u64>,
    answers_withheld: bool,
    behind: Behind,
}

impl KeptScoring {
    /// Keeps `scoring`.
    pub fn new(scoring: &Scoring<'_>) -> Self {
        let Scoring { values, consent, clues, explore, answers_withheld, behind } = *scoring;
        Self { values: values.into(), consent, clues, explore, answers_withheld, behind }
    }

    /// The score `offer`, at catalogue position `index`, had at the decision: the same
    /// [`parts`] from the same inputs, so the same value.
    pub fn score(&self, offer: &CompiledOffer, index: usize, pending: Pending) -> f64 {
        let scoring = Scoring {
            values: &self.values,
            consent: self.consent,
            clues: self.clues,
            explore: self.explore,
            answers_withheld: self.answers_withheld,
            behind: self.behind,
        };
        pending_score(offer, &scoring, index, pending, &mut FeaturesRead::default())
    }
}

/// The score of a [`Pending`] candidate, `offer` at catalogue position `index`.
pub(crate) fn pending_score(
    offer: &CompiledOffer,
    scoring: &Scoring<'_>,
    index: usize,
    pending: Pending,
    used: &mut FeaturesRead,
) -> f64 {
    let prior =
        if pending.model_prior.is_nan() { builtin_prior(offer, scoring, used) } else { f64::from(pending.model_prior) };
    parts(offer, scoring, index, prior, pending.posterior).score
}

/// SplitMix64: a tiny, well-known generator, seeded per decision by the caller.
struct SplitMix {
    state: u64,
    /// The second normal of the last polar pair, not yet used.
    spare: Option<f64>,
}

impl SplitMix {
    fn new(seed: u64) -> Self {
        Self { state: seed, spare: None }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    #[allow(clippy::cast_precision_loss)]
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal by Marsaglia's polar method: one logarithm and no trigonometry per
    /// two normals.
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        loop {
            let (u, v) = (2.0 * self.uniform() - 1.0, 2.0 * self.uniform() - 1.0);
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let factor = (-2.0 * s.ln() / s).sqrt();
                self.spare = Some(v * factor);
                return u * factor;
            }
        }
    }
}

/// Gamma(shape, 1) by Marsaglia and Tsang, with their squeeze so most draws need no logarithm
/// (shape < 1 boosted by a uniform power).
fn sample_gamma(rng: &mut SplitMix, shape: f64) -> f64 {
    if shape < 1.0 {
        return sample_gamma(rng, shape + 1.0) * rng.uniform().powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    for _ in 0..64 {
        let x = rng.normal();
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = rng.uniform();
        let x2 = x * x;
        if u < 1.0 - 0.0331 * x2 * x2 || u.ln() < 0.5 * x2 + d - d * v + d * v.ln() {
            return d * v;
        }
    }
    shape // the mean; reached with vanishing probability
}

/// Beta(a, b) from two Gamma samples.
fn sample_beta(rng: &mut SplitMix, a: f64, b: f64) -> f64 {
    let x = sample_gamma(rng, a);
    let y = sample_gamma(rng, b);
    if x + y > 0.0 {
        x / (x + y)
    } else {
        0.5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_samples_have_the_right_mean_and_spread() {
        let mut rng = SplitMix::new(42);
        for (a, b) in [(1.0, 1.0), (3.0, 7.0), (20.0, 5.0), (0.5, 0.5)] {
            let n = 20_000;
            let samples: Vec<f64> = (0..n).map(|_| sample_beta(&mut rng, a, b)).collect();
            let mean = samples.iter().sum::<f64>() / f64::from(n);
            let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / f64::from(n);
            let (want_mean, want_var) = (a / (a + b), a * b / ((a + b).powi(2) * (a + b + 1.0)));
            assert!((mean - want_mean).abs() < 0.01, "Beta({a}, {b}) mean {mean} vs {want_mean}");
            assert!((var / want_var - 1.0).abs() < 0.1, "Beta({a}, {b}) variance {var} vs {want_var}");
            assert!(samples.iter().all(|s| (0.0..=1.0).contains(s)));
        }
    }
}
