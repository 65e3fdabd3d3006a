//! Scoring and arbitration (DESIGN §8 steps 4 and 7): propensity × value × priority, less an
//! intrusiveness penalty that grows with how personal the features behind a candidate are.
//!
//! Propensity starts from the offer's built-in logistic scorer (weights from the catalogue over
//! the features consent allows) or 0.5, and, with `personalise`, is updated by the offer's
//! Beta posterior from local feedback. Exploration is Thompson sampling: with a seed from the
//! caller the posterior is sampled, without one its mean is used. The random numbers come from
//! a small generator seeded by the caller, so the engine itself has no random source.

use ledtrad_protocol::decision::ScoreParts;
use ledtrad_protocol::Purpose;

use crate::compiled::CompiledOffer;
use crate::decide::Context;

/// How much each personal feature behind a candidate takes off its propensity.
pub const INTRUSIVENESS: f64 = 0.05;

/// Pseudo-observations the built-in prior is worth against local feedback.
pub const PRIOR_WEIGHT: f64 = 2.0;

/// The score parts of `offer` at this decision; `index` separates the offers' samples.
pub(crate) fn parts(offer: &CompiledOffer, ctx: &Context<'_>, index: usize) -> ScoreParts {
    let prior = offer.logistic.as_ref().map_or(0.5, |l| {
        let z = l.bias
            + l.weights
                .iter()
                .filter(|(f, _)| f.spec().purpose.is_none_or(|p| ctx.consent.allows(p)))
                .filter_map(|(f, w)| ctx.features.value(*f, ctx.now).map(|v| w * v))
                .sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    });
    let propensity = if ctx.consent.allows(Purpose::Personalise) {
        let posterior = ctx.history.posterior(&offer.offer.id);
        let a = 1.0 + f64::from(posterior.accepts) + PRIOR_WEIGHT * prior;
        let b = 1.0 + f64::from(posterior.rejections) + PRIOR_WEIGHT * (1.0 - prior);
        match ctx.draw.explore {
            Some(seed) => {
                let mut rng = SplitMix(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                sample_beta(&mut rng, a, b)
            }
            None => a / (a + b),
        }
    } else {
        prior
    };
    let personal = offer.conditions.iter().filter(|c| c.feature.spec().purpose.is_some()).count()
        + offer.logistic.as_ref().map_or(0, |l| l.weights.iter().filter(|(f, _)| f.spec().purpose.is_some()).count());
    #[allow(clippy::cast_precision_loss)]
    let penalty = INTRUSIVENESS * personal as f64;
    let (value, priority) = (offer.offer.value, offer.offer.priority);
    let score = value * priority * (propensity - penalty).max(0.0);
    ScoreParts { offer: offer.offer.id.clone(), propensity, value, priority, penalty, score }
}

/// SplitMix64: a tiny, well-known generator, seeded per decision by the caller.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    #[allow(clippy::cast_precision_loss)]
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * core::f64::consts::PI * v).cos()
    }
}

/// Gamma(shape, 1) by Marsaglia and Tsang (shape < 1 boosted by a uniform power).
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
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
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
        let mut rng = SplitMix(42);
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
