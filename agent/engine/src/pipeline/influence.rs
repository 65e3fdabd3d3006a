//! Step 7, last: whether personal data influenced what a decision shows, worked out rather
//! than taken from the offer. An offer with personal conditions (or marked personalised by its
//! author) is personal whatever else happened; any other offer is personal when the same steps,
//! run again with the household's personal inputs withheld (its personal features without a
//! value, no posterior learned from its answers), would have shown something else.

use super::Source;
use crate::compiled::CompiledOffer;

/// What personal data did to the offer a decision shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Influence {
    /// The offer itself needs `personalise`: it has personal conditions or is marked
    /// personalised (and was not a camouflage draw).
    pub offer: bool,
    /// Withholding the personal features would have changed what is shown.
    pub noticed: bool,
    /// Withholding the posteriors learned from the household's answers would have changed it.
    pub answered: bool,
    /// The offer service chose it from interests learned from the household's answers.
    pub interests: bool,
}

impl Influence {
    /// Whether personal data influenced the offer shown.
    pub fn any(self) -> bool {
        self.offer || self.noticed || self.answered || self.interests
    }
}

/// Which of the household's personal inputs a decision had, or withholds when made again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PersonalInputs {
    /// The personal features' values.
    pub noticed: bool,
    /// The posteriors learned from its answers (where `personalise` is granted).
    pub answered: bool,
}

/// The influence of personal data on showing `offer` (by position `shown`). `again` makes the
/// decision again with the given inputs withheld and returns the offer it would show. It is
/// called only when the answer is not already known (an offer personal in itself, or no
/// personal input at all), and where the decision had both inputs and withholding both changes
/// what is shown, once more for each, so the "why" names the one that mattered (both where
/// neither alone did).
pub(crate) fn influence(
    shown: usize,
    offer: &CompiledOffer,
    camouflage: bool,
    source: Source,
    inputs: PersonalInputs,
    mut again: impl FnMut(PersonalInputs) -> Option<usize>,
) -> Influence {
    let interests = matches!(source, Source::Service { interests_sent: true });
    let personal_offer = offer.needs.is_some() && !camouflage;
    if interests || personal_offer {
        return Influence { offer: personal_offer, interests, ..Influence::default() };
    }
    let mut changed = |withhold: PersonalInputs| again(withhold) != Some(shown);
    if !(inputs.noticed || inputs.answered) || !changed(inputs) {
        return Influence::default();
    }
    let (mut noticed, mut answered) = (inputs.noticed, inputs.answered);
    if noticed && answered {
        let features_alone = changed(PersonalInputs { noticed: true, answered: false });
        let answers_alone = changed(PersonalInputs { noticed: false, answered: true });
        if features_alone || answers_alone {
            (noticed, answered) = (features_alone, answers_alone);
        }
    }
    Influence { noticed, answered, ..Influence::default() }
}
