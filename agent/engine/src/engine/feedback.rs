//! Feedback and prompt answers: checked against the recent decisions, then applied to what
//! the engine remembers (DESIGN §8 step 10 flowing back into step 2).

use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::{DecisionId, ShownPrompt};
use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
use ledtrad_protocol::{CampaignId, OfferId, Purpose, UnixTime};

use super::{Engine, RECENT_DECISIONS};

/// Feedback that the engine applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackApplied {
    /// The offer the feedback was about.
    pub offer: OfferId,
    /// Its campaign.
    pub campaign: CampaignId,
    /// What the person did.
    pub kind: FeedbackKind,
    /// The offer's category, if the offer is still in the catalogue.
    pub category: Option<String>,
    /// Whether the decision held the offer out (a conversion after a "would have shown"):
    /// counted in the holdout arm, and nothing is learned from it.
    pub held_out: bool,
    /// The version of the catalogue the decision was made on.
    pub catalogue_version: Option<u64>,
}

/// Feedback the engine cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedbackError {
    /// The decision is not among the recent ones.
    #[error("decision {0} is unknown or older than the last {RECENT_DECISIONS} decisions; send feedback for a decision returned by GET /v1/offer")]
    UnknownDecision(u64),
    /// The decision showed nothing (a held-out decision takes only a conversion).
    #[error("decision {0} showed no offer, so there is nothing to give feedback on (a decision that held an offer out takes only 'converted')")]
    NothingShown(u64),
    /// Feedback was already given.
    #[error("decision {0} already has feedback; each shown offer takes one answer")]
    AlreadyGiven(u64),
}

impl Engine {
    /// Checks feedback without applying it: what it is about, or why it cannot be taken. Each
    /// shown offer takes one answer, and a conversion may follow it once.
    /// The agent stores accepted feedback first and then calls [`Engine::handle_feedback`],
    /// so a storage failure leaves both sides unchanged.
    pub fn check_feedback(&self, feedback: Feedback) -> Result<FeedbackApplied, FeedbackError> {
        let id = feedback.decision.0;
        let recent =
            self.recent.iter().find(|r| r.id == feedback.decision).ok_or(FeedbackError::UnknownDecision(id))?;
        // A held-out decision showed nothing, but the person may still do what the offer was
        // about: that conversion is the holdout arm's side of the uplift.
        let subject = match recent.offer() {
            Some(subject) if !recent.held_out || feedback.kind == FeedbackKind::Converted => subject,
            _ => return Err(FeedbackError::NothingShown(id)),
        };
        let (offer, held_out) = (subject.offer(), recent.held_out);
        let converted = self.answers.converted(offer);
        let allowed = if feedback.kind == FeedbackKind::Converted { !converted } else { !recent.answered };
        if !allowed {
            return Err(FeedbackError::AlreadyGiven(id));
        }
        Ok(FeedbackApplied {
            offer: offer.clone(),
            campaign: subject.campaign().clone(),
            kind: feedback.kind,
            category: Some(subject.category()),
            held_out,
            catalogue_version: Some(subject.catalogue_version()),
        })
    }

    /// Applies feedback on a shown offer at `now`: marks it answered, sets what the answer
    /// rules out (a dismissal, a "not for me", a conversion) and, with `personalise`, learns
    /// from it.
    pub fn handle_feedback(&mut self, feedback: Feedback, now: UnixTime) -> Result<FeedbackApplied, FeedbackError> {
        let applied = self.check_feedback(feedback)?;
        if let Some(r) = self.recent.iter_mut().find(|r| r.id == feedback.decision) {
            r.answered = true;
        }
        let before = self.answers.slots();
        self.answers.record(&applied.offer, applied.category.as_deref(), applied.kind, now);
        self.keep_answer_slot(before, &applied.offer);
        if self.consent.allows(Purpose::Personalise) && !applied.held_out {
            self.history.record_feedback(&applied.offer, applied.kind);
        }
        Ok(applied)
    }

    /// Keeps the catalogue in force's answer slots current when an answer gave `offer` its first
    /// slot (the answers had `before` slots), so the next decision need not look every offer's
    /// up again.
    fn keep_answer_slot(&mut self, before: usize, offer: &OfferId) {
        if self.answer_slots_for != Some(before) || self.answers.slots() == before {
            return;
        }
        let position = self.catalogue.as_ref().and_then(|c| c.offers.iter().position(|o| o.offer.id == *offer));
        if let Some(s) = position.and_then(|p| self.answer_slots.get_mut(p)) {
            *s = self.answers.slot(offer);
        }
        self.answer_slots_for = Some(self.answers.slots());
    }

    /// Hands back a stored answer on start, so blocks, suppressions and conversions survive
    /// restarts.
    pub fn restore_answer(&mut self, offer: &OfferId, category: Option<&str>, kind: FeedbackKind, at: UnixTime) {
        self.answers.record(offer, category, kind, at);
    }

    /// The campaign of a recent decision's offer, shown or held out, whichever catalogue it
    /// came from.
    pub fn decision_campaign(&self, id: DecisionId) -> Option<CampaignId> {
        let recent = self.recent.iter().rev().find(|r| r.id == id)?;
        recent.offer().map(|s| s.campaign().clone())
    }

    /// Sets which purposes the people served could grant by answering a prompt.
    pub fn set_askable(&mut self, askable: ConsentState) {
        self.prompts.askable = askable;
    }

    /// Checks an answer to a prompt without applying it: the prompt, or why it cannot be taken.
    pub fn check_prompt_answer(&self, decision: DecisionId) -> Result<ShownPrompt, FeedbackError> {
        let id = decision.0;
        let recent = self.recent.iter().find(|r| r.id == decision).ok_or(FeedbackError::UnknownDecision(id))?;
        let prompt = recent.prompt().cloned().ok_or(FeedbackError::NothingShown(id))?;
        if recent.answered {
            return Err(FeedbackError::AlreadyGiven(id));
        }
        Ok(prompt)
    }

    /// Applies an answer to a prompt: marks it answered and, for a "no", quiets the prompts
    /// for its purpose for 30 days. (A "yes" is a consent change the agent writes.)
    pub fn handle_prompt_answer(
        &mut self,
        decision: DecisionId,
        yes: bool,
        now: UnixTime,
    ) -> Result<ShownPrompt, FeedbackError> {
        let prompt = self.check_prompt_answer(decision)?;
        if let Some(r) = self.recent.iter_mut().find(|r| r.id == decision) {
            r.answered = true;
        }
        if !yes {
            self.prompts.refused(prompt.purpose, now);
        }
        Ok(prompt)
    }

    /// Hands back a stored "no" on start.
    pub fn restore_prompt_refusal(&mut self, purpose: Purpose, at: UnixTime) {
        self.prompts.refused(purpose, at);
    }
}
