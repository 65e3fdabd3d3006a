//! Deciding: the catalogue in force or the offer service's candidates through the pipeline,
//! and the recent decisions kept for "why", "why not" and feedback.

use std::sync::Arc;

use ledtrad_protocol::decision::{Decision, DecisionId};
use ledtrad_protocol::taxonomy::Category;
use ledtrad_protocol::{Moment, Purpose, UnixTime};

use super::{is_personal, Answerable, Engine, Kept, Recent, Trace, RECENT_DECISIONS, RECENT_TRACES};
use crate::compiled::AppliedCatalogue;
use crate::context::Draw;
use crate::eligibility::Verdicts;
use crate::pipeline::{self, CallToAction, Device, Offers, Source};
use crate::remote::{RemoteError, RemoteOffers, ServiceCandidates};

impl Engine {
    /// Works out the history slot of each offer of the catalogue in force, unless the catalogue
    /// and the history's slots are what they were.
    fn refresh_slots(&mut self) {
        let Some(catalogue) = &self.catalogue else { return };
        let key = self.history.slots();
        if self.slots_for != Some(key) {
            self.slots = catalogue.offers.iter().map(|o| self.history.slot(&o.offer.id)).collect();
            self.slots_for = Some(key);
        }
        let key = self.answers.slots();
        if self.answer_slots_for != Some(key) {
            self.answer_slots = catalogue.offers.iter().map(|o| self.answers.slot(&o.offer.id)).collect();
            self.answer_slots_for = Some(key);
        }
    }

    /// Counts an impression of the offer at `position` of `catalogue` and, for the catalogue
    /// in force (`in_force`), keeps the slots current when it gets its first record.
    fn count_impression(&mut self, catalogue: &AppliedCatalogue, position: usize, now: UnixTime, in_force: bool) {
        let o = &catalogue.offers[position].offer;
        let key = self.history.slots();
        let slot = self.history.record_impression(&o.id, &o.campaign, now);
        if !in_force {
            // The catalogue in force's slots stay valid unless the history gained one.
            if self.slots_for == Some(key) && self.history.slots() != key {
                self.slots_for = None;
            }
            return;
        }
        if self.slots_for == Some(key) {
            if let Some(s) = self.slots.get_mut(position) {
                *s = Some(slot);
            }
            self.slots_for = Some(self.history.slots());
        }
    }

    /// Decides what to show at `moment`, counting the impression if something is shown.
    pub fn decide(&mut self, moment: Moment, now: UnixTime, draw: Draw) -> &Decision {
        self.refresh_slots();
        let id = self.next_id();
        let call = match &self.catalogue {
            None => CallToAction::nothing(id, moment, now),
            Some(catalogue) => {
                let offers = Offers {
                    catalogue,
                    slots: &self.slots,
                    answer_slots: &self.answer_slots,
                    source: Source::Catalogue,
                };
                pipeline::run(&self.device(), &offers, id, moment, now, draw)
            }
        };
        let catalogue = self.catalogue.clone();
        self.keep(call, catalogue, now, true)
    }

    /// The decision the engine would make at `moment` on the catalogue in force, without making
    /// it: nothing is counted, kept or numbered. For an audit that decides again beside an
    /// agent, on the history it is handed.
    pub fn preview(&mut self, moment: Moment, now: UnixTime, draw: Draw) -> Decision {
        self.refresh_slots();
        let id = DecisionId(self.next_decision);
        match &self.catalogue {
            None => CallToAction::nothing(id, moment, now).decision,
            Some(catalogue) => {
                let offers = Offers {
                    catalogue,
                    slots: &self.slots,
                    answer_slots: &self.answer_slots,
                    source: Source::Catalogue,
                };
                pipeline::run(&self.device(), &offers, id, moment, now, draw).decision
            }
        }
    }

    /// Whether recent decision `id` weighed the catalogue's offers one by one (`Some(true)`),
    /// or the device-wide rules (quiet hours, gap, device and home caps) ruled every offer out
    /// before any was read (`Some(false)`); `None` when it is no longer kept or had no catalogue.
    /// For benchmarks, which time the two apart.
    pub fn weighed_offers(&self, id: DecisionId) -> Option<bool> {
        let trace = self.traces.iter().rev().find(|t| t.decision.id == id)?;
        trace.catalogue.as_ref()?;
        Some(!matches!(trace.verdicts, Verdicts::DeviceBlocked { .. }))
    }

    /// How many of decision `id`'s candidates were not scored at the decision (their scores are
    /// worked out when the trace is read).
    #[cfg(test)]
    pub(crate) fn pending_scores(&self, id: DecisionId) -> Option<usize> {
        let trace = self.traces.iter().rev().find(|t| t.decision.id == id)?;
        match &trace.verdicts {
            Verdicts::Each { kept, .. } => Some(kept.pending_len()),
            _ => None,
        }
    }

    /// Whether asking the offer service is worth it after decision `id` (request mode): it
    /// showed nothing, held nothing out and asked nothing, the device-wide rules (quiet hours,
    /// gap, device and home caps) did not rule the moment out, a catalogue is in force (its rules apply
    /// to the service's offers too) and unexpired, and `request` is granted.
    pub fn request_worthwhile(&self, id: DecisionId, now: UnixTime) -> bool {
        let Some(recent) = self.recent.iter().rev().find(|r| r.id == id) else {
            return false;
        };
        let open = recent.open();
        let blocked = self
            .traces
            .iter()
            .rev()
            .find(|t| t.decision.id == id)
            .is_none_or(|t| matches!(t.verdicts, Verdicts::DeviceBlocked { .. }));
        open && !blocked
            && self.consent.allows(Purpose::Request)
            && self.catalogue.as_ref().is_some_and(|c| now < c.expires_at)
    }

    /// Up to [`ledtrad_protocol::offers::MAX_INTERESTS`] coarse interest categories for an
    /// offer request: the categories of the offers accepted most here, from the learning data
    /// kept only under `personalise` (and purged when it is revoked), so none without it.
    pub fn interests(&self) -> Vec<Category> {
        let Some(catalogue) = self.catalogue.as_ref().filter(|_| self.consent.allows(Purpose::Personalise)) else {
            return Vec::new();
        };
        let mut ranked: Vec<(&Category, usize)> = Vec::new();
        for o in &catalogue.offers {
            let n = self.history.posterior(&o.offer.id).accepts as usize;
            match ranked.iter_mut().find(|(c, _)| **c == o.category) {
                _ if n == 0 => {}
                Some((_, count)) => *count += n,
                None => ranked.push((&o.category, n)),
            }
        }
        // Most taken up first; ties by name, so the same answers give the same request.
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.path().cmp(b.0.path())));
        ranked.into_iter().take(ledtrad_protocol::offers::MAX_INTERESTS).map(|(c, _)| *c).collect()
    }

    /// Decides among the offer service's candidates at `moment` (request mode), after a local
    /// decision found nothing: the offers pass the same checks as a catalogue's (those that
    /// fail are dropped), and the same pipeline, under the rules of the catalogue in force
    /// (device-wide rules, campaign holdouts and caps), with this device's consent, caps and
    /// answers. Offers the local catalogue holds, and journey offers, are left to it. When the
    /// request carried interests (`interests_sent`), a shown offer's "why" says it was suggested
    /// for them.
    pub fn decide_remote(
        &mut self,
        moment: Moment,
        now: UnixTime,
        draw: Draw,
        offers: Vec<ledtrad_protocol::catalogue::Offer>,
        interests_sent: bool,
    ) -> Result<(&Decision, RemoteOffers), RemoteError> {
        let in_force = self.catalogue.as_ref().ok_or(RemoteError::NoCatalogue)?;
        let candidates = ServiceCandidates::from_answer(in_force, offers)?;
        let catalogue = Arc::new(candidates.catalogue);
        // The service's few offers look their history and answer slots up.
        let slots: Vec<Option<u32>> = catalogue.offers.iter().map(|o| self.history.slot(&o.offer.id)).collect();
        let answer_slots: Vec<Option<u32>> = catalogue.offers.iter().map(|o| self.answers.slot(&o.offer.id)).collect();
        let id = self.next_id();
        let source = Source::Service { interests_sent };
        let offers = Offers { catalogue: &catalogue, slots: &slots, answer_slots: &answer_slots, source };
        let call = pipeline::run(&self.device(), &offers, id, moment, now, draw);
        Ok((self.keep(call, Some(catalogue), now, false), candidates.counted))
    }

    /// The state a decision reads, borrowed.
    fn device(&self) -> Device<'_> {
        Device {
            profile: &self.profile,
            consent: self.consent,
            features: &self.features,
            history: &self.history,
            answers: &self.answers,
            model: self.model.as_ref(),
            prompts: &self.prompts,
            home: &self.home,
        }
    }

    /// The next decision's id.
    fn next_id(&mut self) -> DecisionId {
        let id = DecisionId(self.next_decision);
        self.next_decision += 1;
        id
    }

    /// Applies what a decision on `catalogue` (the one in force: `in_force`) changes, and keeps
    /// it for feedback and its trace.
    fn keep(
        &mut self,
        call: CallToAction,
        catalogue: Option<Arc<AppliedCatalogue>>,
        now: UnixTime,
        in_force: bool,
    ) -> &Decision {
        let CallToAction { decision, verdicts, impression, subject, prompted_on } = call;
        if let Some(day) = prompted_on {
            self.prompts.shown_on(day);
        }
        // A "would have shown" counts against the caps like a shown offer, so the two arms see
        // the same number of moments.
        if let (Some(i), Some(c)) = (impression, &catalogue) {
            self.count_impression(c, i, now, in_force);
        }
        let held_out = decision.shown.is_none();
        let offer = match (impression, &catalogue, subject) {
            (Some(i), Some(c), _) if in_force => Some(Answerable::Catalogue(c.clone(), i as u32)),
            (Some(i), Some(c), Some(subject)) => {
                Some(Answerable::Service(Box::new((c.offers[i].offer.id.clone(), subject, c.version))))
            }
            _ => None,
        };
        debug_assert!(offer.as_ref().is_none_or(|o| decision.catalogue_version == Some(o.catalogue_version())));
        let held_out = held_out && offer.is_some();
        let subject = Kept::new(offer, decision.prompt.as_deref());
        if self.recent.len() == RECENT_DECISIONS {
            self.recent.pop_front();
        }
        self.recent.push_back(Recent {
            id: decision.id,
            subject,
            held_out,
            personal: is_personal(&decision),
            answered: false,
        });
        // Past the traced window, a decision keeps only what feedback and purges need; the
        // oldest trace makes room for this one's.
        if self.traces.len() == RECENT_TRACES {
            self.traces.pop_front();
        }
        self.traces.push_back(Trace { decision, catalogue, verdicts });
        &self.traces.back().expect("just pushed").decision
    }

    /// Decides, as [`Engine::decide`], and returns the decision with its full trace.
    pub fn decide_traced(&mut self, moment: Moment, now: UnixTime, draw: Draw) -> Decision {
        let id = self.decide(moment, now, draw).id;
        self.decision(id).expect("the decision just made is traced")
    }

    /// A recent decision with its full trace, for "why" and "why not": one of the last
    /// [`RECENT_TRACES`]. The candidates are named from the verdicts recorded at the decision.
    pub fn decision(&self, id: DecisionId) -> Option<Decision> {
        let trace = self.traces.iter().rev().find(|t| t.decision.id == id)?;
        let candidates = trace.catalogue.as_ref().map_or_else(Vec::new, |catalogue| trace.verdicts.named(catalogue));
        Some(Decision { candidates, ..trace.decision.clone() })
    }
}
