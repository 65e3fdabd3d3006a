//! How the simulated people answer offers: from what they like (relevance) and from how
//! intrusive the offer feels (irritation).
//!
//! The model (an assumption, stated so it can be argued with; every number is a named
//! parameter of [`Responses`], settable in a scenario file, and the report lists them):
//!
//! - Each person has a latent liking for every interest category, drawn uniformly from 0 to 1.
//!   The chance they accept a shown offer is `accept_base + accept_relevance × liking`, plus
//!   `accept_personalised` when personal features chose it (it fits their moment better), all
//!   times `1 − irritation`.
//! - An offer *reveals* what the device noticed: nothing when no personal feature chose it
//!   (contextual offers and camouflage), `reveal_personal` when one did, and `reveal_precise`
//!   more when its "why" also states a reading ("… is at 5%").
//! - People expect some of that: those who share when they get something back expect
//!   `expect_sharing`, those who share as little as possible `expect_minimal`. Every step an
//!   offer reveals beyond what the person expects adds `irritation_per_reveal`; an offer put as
//!   a statement instead of a question adds `irritation_statement`. Irritation stays within
//!   0–1 and each night keeps `irritation_overnight` of itself.
//! - An answer that is not an accept is "not for me" with chance
//!   `not_for_me_base + not_for_me_irritation × irritation`, otherwise a dismissal.
//! - Each day a person revokes one grant with chance `revoke_base + revoke_irritation ×
//!   irritation`: `personalise` first where they granted it (it is what irritates), otherwise
//!   one of their other grants.
//! - A quarter of shown offers (`unanswered`) get no answer; they still irritate.

use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::ShownOffer;
use ledtrad_protocol::feedback::FeedbackKind;
use ledtrad_protocol::taxonomy::CATEGORIES;
use ledtrad_protocol::Purpose;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// The response model's parameters (see the module documentation for how they combine).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Responses {
    /// Share of shown offers nobody answers.
    pub unanswered: f64,
    /// Chance of accepting an offer in a category the person does not care for.
    pub accept_base: f64,
    /// What liking a category fully adds to the chance of accepting.
    pub accept_relevance: f64,
    /// What an offer chosen with personal features adds (it fits the moment).
    pub accept_personalised: f64,
    /// How much an offer reveals when its "why" names something personal.
    pub reveal_personal: f64,
    /// How much more it reveals when the "why" states a reading.
    pub reveal_precise: f64,
    /// What people who share for a benefit expect an offer to reveal.
    pub expect_sharing: f64,
    /// What people who share as little as possible expect an offer to reveal.
    pub expect_minimal: f64,
    /// Irritation per step an offer reveals beyond what the person expects.
    pub irritation_per_reveal: f64,
    /// Irritation an offer put as a statement adds.
    pub irritation_statement: f64,
    /// Share of irritation left after a night.
    pub irritation_overnight: f64,
    /// Chance a non-accepting answer is "not for me", unirritated.
    pub not_for_me_base: f64,
    /// What full irritation adds to it.
    pub not_for_me_irritation: f64,
    /// Daily chance of revoking a grant, unirritated.
    pub revoke_base: f64,
    /// What full irritation adds to it.
    pub revoke_irritation: f64,
    /// Chance a household member answers a consent prompt with "no" (otherwise they leave it).
    pub decline_prompt: f64,
    /// Chance an accepted offer is then taken up.
    pub convert_after_accept: f64,
}

impl Default for Responses {
    fn default() -> Self {
        Self {
            unanswered: 0.25,
            accept_base: 0.05,
            accept_relevance: 0.45,
            accept_personalised: 0.10,
            reveal_personal: 1.0,
            reveal_precise: 1.0,
            expect_sharing: 1.0,
            expect_minimal: 0.0,
            irritation_per_reveal: 0.05,
            irritation_statement: 0.01,
            irritation_overnight: 0.5,
            not_for_me_base: 0.10,
            not_for_me_irritation: 0.5,
            revoke_base: 0.005,
            revoke_irritation: 0.10,
            decline_prompt: 0.6,
            convert_after_accept: 0.3,
        }
    }
}

/// A parameter outside its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("response parameter '{field}' is {value}; {expected}")]
pub struct InvalidResponses {
    /// The parameter.
    pub field: &'static str,
    /// Its value.
    pub value: f64,
    /// What it must be.
    pub expected: &'static str,
}

impl Responses {
    fn fields(&self) -> [(&'static str, f64, bool); 17] {
        // (name, value, is a probability); the others are amounts 0 to 10.
        [
            ("unanswered", self.unanswered, true),
            ("accept_base", self.accept_base, true),
            ("accept_relevance", self.accept_relevance, true),
            ("accept_personalised", self.accept_personalised, true),
            ("reveal_personal", self.reveal_personal, false),
            ("reveal_precise", self.reveal_precise, false),
            ("expect_sharing", self.expect_sharing, false),
            ("expect_minimal", self.expect_minimal, false),
            ("irritation_per_reveal", self.irritation_per_reveal, true),
            ("irritation_statement", self.irritation_statement, true),
            ("irritation_overnight", self.irritation_overnight, true),
            ("not_for_me_base", self.not_for_me_base, true),
            ("not_for_me_irritation", self.not_for_me_irritation, true),
            ("revoke_base", self.revoke_base, true),
            ("revoke_irritation", self.revoke_irritation, true),
            ("decline_prompt", self.decline_prompt, true),
            ("convert_after_accept", self.convert_after_accept, true),
        ]
    }

    /// Checks every chance is from 0 to 1 and every amount from 0 to 10.
    pub fn check(&self) -> Result<(), InvalidResponses> {
        for (field, value, probability) in self.fields() {
            let (range, expected) = if probability {
                (0.0..=1.0, "a chance must be from 0 to 1")
            } else {
                (0.0..=10.0, "must be from 0 to 10")
            };
            if !range.contains(&value) {
                return Err(InvalidResponses { field, value, expected });
            }
        }
        Ok(())
    }

    /// The model in sentences, with this run's numbers, for reports.
    pub fn assumptions(&self) -> Vec<String> {
        let pct = |v: f64| format!("{:.1}%", v * 100.0);
        vec![
            format!(
                "A person accepts a shown offer with chance {} + {} × how much they like its category (drawn 0–1 per person and category), {} more when personal features chose it, all times (1 − irritation).",
                pct(self.accept_base), pct(self.accept_relevance), pct(self.accept_personalised)
            ),
            format!(
                "A \"why\" naming something personal reveals {}; stating a reading reveals {} more. People who share for a benefit expect {}, people who share as little as possible {}.",
                self.reveal_personal, self.reveal_precise, self.expect_sharing, self.expect_minimal
            ),
            format!(
                "Each step revealed beyond what the person expects adds {} irritation (0–1), an offer put as a statement {}; a night keeps {} of it.",
                self.irritation_per_reveal, self.irritation_statement, pct(self.irritation_overnight)
            ),
            format!(
                "An answer that is not an accept is \"not for me\" with chance {} + {} × irritation, otherwise a dismissal; {} of shown offers get no answer.",
                pct(self.not_for_me_base), pct(self.not_for_me_irritation), pct(self.unanswered)
            ),
            format!(
                "Each day a person revokes one grant with chance {} + {} × irritation, personalise first.",
                pct(self.revoke_base), pct(self.revoke_irritation)
            ),
            format!(
                "{} of accepted offers are taken up; households also do what an offer is about unprompted, 2–8% of the time by how much they like it (the base rate the holdout measures).",
                pct(self.convert_after_accept)
            ),
        ]
    }

    /// How much a shown offer reveals, from what the person sees: nothing unless personal
    /// features chose it; then one step, and another when its "why" states a reading.
    pub fn reveals(&self, offer: &ShownOffer) -> f64 {
        if !offer.personalised {
            return 0.0;
        }
        let precise = if offer.why.chars().any(|c| c.is_ascii_digit()) { self.reveal_precise } else { 0.0 };
        self.reveal_personal + precise
    }

    /// What `person` expects an offer to reveal.
    pub fn expects(&self, person: &Person) -> f64 {
        if person.minimal {
            self.expect_minimal
        } else {
            self.expect_sharing
        }
    }

    /// `person` sees `offer` (of `category`): their irritation follows, and their answer, if
    /// any.
    pub fn answer(
        &self,
        person: &mut Person,
        offer: &ShownOffer,
        category: &str,
        rng: &mut impl Rng,
    ) -> Option<FeedbackKind> {
        let beyond = (self.reveals(offer) - self.expects(person)).max(0.0);
        let statement = if offer.question.trim_end().ends_with('?') { 0.0 } else { self.irritation_statement };
        person.irritation = (person.irritation + self.irritation_per_reveal * beyond + statement).clamp(0.0, 1.0);
        if rng.random_bool(self.unanswered) {
            return None;
        }
        let liking = person.liking(category);
        let fit = if offer.personalised { self.accept_personalised } else { 0.0 };
        let p_accept =
            ((self.accept_base + self.accept_relevance * liking + fit) * (1.0 - person.irritation)).clamp(0.0, 1.0);
        if rng.random_bool(p_accept) {
            return Some(FeedbackKind::Accepted);
        }
        let p_not_for_me = (self.not_for_me_base + self.not_for_me_irritation * person.irritation).clamp(0.0, 1.0);
        Some(if rng.random_bool(p_not_for_me) { FeedbackKind::NotForMe } else { FeedbackKind::Dismissed })
    }

    /// The purpose `person` revokes today, if any.
    pub fn revocation(&self, person: &Person, rng: &mut impl Rng) -> Option<Purpose> {
        let granted: Vec<Purpose> = Purpose::ALL.into_iter().filter(|p| person.consent.allows(*p)).collect();
        let chance = (self.revoke_base + self.revoke_irritation * person.irritation).clamp(0.0, 1.0);
        if granted.is_empty() || !rng.random_bool(chance) {
            return None;
        }
        if granted.contains(&Purpose::Personalise) {
            return Some(Purpose::Personalise);
        }
        Some(granted[rng.random_range(0..granted.len())])
    }

    /// A night passes.
    pub fn overnight(&self, person: &mut Person) {
        person.irritation *= self.irritation_overnight;
    }
}

/// One simulated person.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// Their id on the household's devices: `p1`, `p2`, ….
    pub id: String,
    /// Age in years.
    pub age: u32,
    /// Under 18: the agents never count a child's grant of anything but `measure`.
    pub child: bool,
    /// Shares as little as possible.
    pub minimal: bool,
    /// What they granted (and have not revoked).
    pub consent: ConsentState,
    /// How irritated offers have made them, 0 to 1.
    pub irritation: f64,
    liking: Vec<f64>,
}

impl Person {
    /// A person whose liking for each category is drawn from `rng`.
    pub fn new(id: String, age: u32, minimal: bool, consent: ConsentState, rng: &mut impl Rng) -> Self {
        let liking = CATEGORIES.iter().map(|_| rng.random_range(0.0..1.0)).collect();
        Self { id, age, child: age < 18, minimal, consent, irritation: 0.0, liking }
    }

    /// How much they like `category` (0 to 1; 0.3 for a category the taxonomy lacks).
    pub fn liking(&self, category: &str) -> f64 {
        CATEGORIES.iter().position(|c| c.path == category).and_then(|i| self.liking.get(i).copied()).unwrap_or(0.3)
    }

    /// What their consent counts for on a device: a child's grants of anything but `measure`
    /// never count (computed here independently of the agent, for the audit).
    pub fn counted(&self) -> ConsentState {
        if self.child {
            ConsentState::NONE.with(Purpose::Measure, self.consent.allows(Purpose::Measure))
        } else {
            self.consent
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_protocol::{CampaignId, OfferId};
    use rand::SeedableRng;

    fn offer(why: &str, question: &str, personalised: bool) -> ShownOffer {
        ShownOffer {
            offer: OfferId::try_new("o").unwrap(),
            campaign: CampaignId::try_new("c").unwrap(),
            title: "Butter".into(),
            question: question.into(),
            body: String::new(),
            image: None,
            why: why.into(),
            personalised,
        }
    }

    fn person(minimal: bool) -> Person {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        Person::new("p1".into(), 40, minimal, ConsentState::all(), &mut rng)
    }

    #[test]
    fn a_precise_statement_irritates_more_than_a_coarse_question_and_irritation_costs_accepts() {
        let model = Responses::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let coarse = offer("Because dairy runs low often in this home.", "Could this be something for you?", true);
        let precise = offer("Because fridge.butter.level is at 5%.", "Butter.", true);
        assert_eq!(model.reveals(&coarse), 1.0);
        assert_eq!(model.reveals(&precise), 2.0);
        assert_eq!(model.reveals(&offer("Because context.hour is 18.00.", "Butter.", false)), 0.0, "nothing personal");
        let (mut calm, mut irritated) = (person(false), person(false));
        let mut accepts = [0u32; 2];
        for _ in 0..2_000 {
            accepts[0] +=
                u32::from(model.answer(&mut calm, &coarse, "food.dairy", &mut rng) == Some(FeedbackKind::Accepted));
            accepts[1] += u32::from(
                model.answer(&mut irritated, &precise, "food.dairy", &mut rng) == Some(FeedbackKind::Accepted),
            );
            model.overnight(&mut calm);
            model.overnight(&mut irritated);
        }
        assert_eq!(calm.irritation, 0.0, "a sharing person expects a coarse personal why");
        assert!(irritated.irritation > 0.05, "{}", irritated.irritation);
        assert!(accepts[1] < accepts[0], "{accepts:?}");
        // Someone who shares as little as possible is irritated by the coarse one too.
        let mut minimal = person(true);
        model.answer(&mut minimal, &coarse, "food.dairy", &mut rng);
        assert!((minimal.irritation - model.irritation_per_reveal).abs() < 1e-12);
    }

    #[test]
    fn irritated_people_revoke_personalise_first() {
        let model = Responses::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut angry = person(false);
        angry.irritation = 1.0;
        let calm = person(false);
        let revoked = |p: &Person, rng: &mut rand_chacha::ChaCha8Rng| {
            (0..10_000).filter_map(|_| model.revocation(p, rng)).collect::<Vec<_>>()
        };
        let angry_revocations = revoked(&angry, &mut rng);
        assert!(angry_revocations.iter().all(|p| *p == Purpose::Personalise));
        assert!(angry_revocations.len() > 5 * revoked(&calm, &mut rng).len());
    }

    #[test]
    fn a_bad_parameter_is_named() {
        let bad = Responses { revoke_base: 2.0, ..Responses::default() };
        assert_eq!(
            bad.check().unwrap_err().to_string(),
            "response parameter 'revoke_base' is 2; a chance must be from 0 to 1"
        );
        assert!(Responses::default().check().is_ok());
        assert_eq!(Responses::default().assumptions().len(), 6);
    }

    #[test]
    fn a_childs_grants_count_for_measure_only() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let child = Person::new("p3".into(), 9, false, ConsentState::all(), &mut rng);
        assert!(child.child);
        assert_eq!(child.counted(), ConsentState::NONE.with(Purpose::Measure, true));
    }
}
