//! People's privacy attitudes from published survey figures, and the consent they give.
//!
//! Source for every figure: Insight Intelligence, *Delade meningar* (2015), a survey of 1,000
//! Swedes on sharing personal data. Each is a named parameter so a scenario can change it and
//! a report can say what it assumed.
//!
//! The model (an assumption, stated so it can be argued with):
//! - A person's age is drawn uniformly from 16 to 70.
//! - They share interests (grant `personalise`) with a probability that falls linearly with age
//!   from [`Survey::interests_young`] at 16–28 to [`Survey::interests_old`] at 65–70, scaled so
//!   the population share matches [`Survey::comfortable_interests`].
//! - A third of people share as little as possible ([`Survey::as_little_as_possible`]): they
//!   grant nothing beyond `personalise`, and that only at half the rate.
//! - The others share when they get something back ([`Survey::share_for_benefit`]): among them,
//!   `measure` (counts that make offers better for everyone) and `request` (asking a service
//!   for more offers) are granted at that rate.
//! - `improve` (noised model updates for the whole fleet) is closest to sharing with others
//!   beyond the household's own offers, so it is granted at the opinions-and-feelings rate
//!   ([`Survey::comfortable_opinions`]), among those who share for a benefit.
//! - [`Survey::third_parties`] is kept for reports: ledtrad has no purpose that shares with
//!   third parties, so no device ever asks for it.

use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::Purpose;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// The survey's figures, each a share of people (0–1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Survey {
    /// Share data when they get something back: 74%.
    pub share_for_benefit: f64,
    /// Share as little as possible: a third.
    pub as_little_as_possible: f64,
    /// 16–28-year-olds who share personal interests: 74%.
    pub interests_young: f64,
    /// 65–70-year-olds who share personal interests: 30%.
    pub interests_old: f64,
    /// Comfortable sharing interests: 53%.
    pub comfortable_interests: f64,
    /// Comfortable sharing opinions and feelings: 23%.
    pub comfortable_opinions: f64,
    /// Accept sharing with third parties: 4%.
    pub third_parties: f64,
}

impl Default for Survey {
    fn default() -> Self {
        Self {
            share_for_benefit: 0.74,
            as_little_as_possible: 1.0 / 3.0,
            interests_young: 0.74,
            interests_old: 0.30,
            comfortable_interests: 0.53,
            comfortable_opinions: 0.23,
            third_parties: 0.04,
        }
    }
}

/// A figure outside 0–1.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("survey figure '{field}' is {value}; a share must be from 0 to 1")]
pub struct InvalidSurvey {
    /// The figure.
    pub field: &'static str,
    /// Its value.
    pub value: f64,
}

impl Survey {
    /// Checks every figure is a share.
    pub fn check(&self) -> Result<(), InvalidSurvey> {
        let fields = [
            ("share_for_benefit", self.share_for_benefit),
            ("as_little_as_possible", self.as_little_as_possible),
            ("interests_young", self.interests_young),
            ("interests_old", self.interests_old),
            ("comfortable_interests", self.comfortable_interests),
            ("comfortable_opinions", self.comfortable_opinions),
            ("third_parties", self.third_parties),
        ];
        match fields.into_iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
            Some((field, value)) => Err(InvalidSurvey { field, value }),
            None => Ok(()),
        }
    }

    /// The chance someone of `age` shares interests, before scaling to the population share.
    fn interests_at(&self, age: u32) -> f64 {
        let (young, old) = (self.interests_young, self.interests_old);
        match age {
            0..=28 => young,
            65.. => old,
            _ => young + (old - young) * f64::from(age - 28) / f64::from(65 - 28),
        }
    }

    /// The mean of [`Self::interests_at`] over ages 16–70 (the uniform age draw).
    fn interests_mean(&self) -> f64 {
        (16..=70).map(|a| self.interests_at(a)).sum::<f64>() / 55.0
    }

    /// Draws a person: their age and the consent they give at set-up.
    pub fn draw(&self, rng: &mut impl Rng) -> (u32, ConsentState) {
        let drawn = self.draw_attitude(rng);
        (drawn.age, drawn.consent)
    }

    /// Draws a person: their age, whether they share as little as possible, and the consent
    /// they give at set-up.
    pub fn draw_attitude(&self, rng: &mut impl Rng) -> Attitude {
        let age = rng.random_range(16..=70);
        let scale = self.comfortable_interests / self.interests_mean().max(1e-9);
        let interests = (self.interests_at(age) * scale).clamp(0.0, 1.0);
        let minimal = rng.random_bool(self.as_little_as_possible.clamp(0.0, 1.0));
        let consent = if minimal {
            ConsentState::NONE.with(Purpose::Personalise, rng.random_bool(interests / 2.0))
        } else {
            let benefit = rng.random_bool(self.share_for_benefit.clamp(0.0, 1.0));
            ConsentState::NONE
                .with(Purpose::Personalise, rng.random_bool(interests))
                .with(Purpose::Measure, benefit)
                .with(Purpose::Request, benefit && rng.random_bool(interests))
                .with(Purpose::Improve, benefit && rng.random_bool(self.comfortable_opinions.clamp(0.0, 1.0)))
        };
        Attitude { age, minimal, consent }
    }
}

/// One drawn person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attitude {
    /// Age, 16 to 70.
    pub age: u32,
    /// Shares as little as possible.
    pub minimal: bool,
    /// What they grant at set-up.
    pub consent: ConsentState,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_population_drawn_from_the_survey_matches_its_figures() {
        let survey = Survey::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let people: Vec<(u32, ConsentState)> = (0..20_000).map(|_| survey.draw(&mut rng)).collect();
        let share = |f: &dyn Fn(&(u32, ConsentState)) -> bool, of: &dyn Fn(&(u32, ConsentState)) -> bool| {
            let group: Vec<_> = people.iter().filter(|p| of(p)).collect();
            group.iter().filter(|p| f(p)).count() as f64 / group.len() as f64
        };
        let personalise = |p: &(u32, ConsentState)| p.1.allows(Purpose::Personalise);
        let everyone = |_: &(u32, ConsentState)| true;
        // Those who share as little as possible grant half as often, so the population share of
        // personalise is below the survey's 53% comfortable with interests, by about a sixth.
        let overall = share(&personalise, &everyone);
        assert!((0.40..=0.50).contains(&overall), "{overall}");
        let young = share(&personalise, &|p| p.0 <= 28);
        let old = share(&personalise, &|p| p.0 >= 65);
        assert!(young > 2.0 * old, "young {young}, old {old}");
        let measure = share(&|p| p.1.allows(Purpose::Measure), &everyone);
        assert!((0.74 * 2.0 / 3.0 - measure).abs() < 0.02, "{measure}");
        assert!(people.iter().all(|p| (16..=70).contains(&p.0)));
    }

    #[test]
    fn a_figure_out_of_range_is_named() {
        let bad = Survey { comfortable_opinions: 1.5, ..Survey::default() };
        assert_eq!(
            bad.check().unwrap_err().to_string(),
            "survey figure 'comfortable_opinions' is 1.5; a share must be from 0 to 1"
        );
        assert!(Survey::default().check().is_ok());
    }
}
