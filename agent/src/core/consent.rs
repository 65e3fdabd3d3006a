//! Consent transitions: the ledger write, people, presence and erasure. Each goes through one
//! store transaction that also deletes what the device loses ([`Purge`]); the same purge then
//! puts the change in force in memory, in [`AgentCore::put_in_force`], before the call returns.

use ledtrad_protocol::consent::{ConsentSource, PURPOSES_VERSION};
use ledtrad_protocol::{PersonId, Purpose};
use tracing::info;

use super::{storage, AgentCore};
use crate::clock::Now;
use crate::handle::{AgentError, ConsentChange, ConsentView, PersonChange, PersonView, PromptAnswer, YesNo};
use crate::household::{askable, effective, Sharing};
use crate::purge::Purge;
use crate::store::{Household, LedgerRow};

impl AgentCore {
    /// The consent in force and the household's.
    pub fn consent_view(&self) -> Result<ConsentView, AgentError> {
        let household = self.store.household().map_err(storage)?;
        Ok(ConsentView {
            purposes_version: PURPOSES_VERSION,
            grants: self.engine.consent().into(),
            sharing: self.config.sharing,
            owner: self.config.owner.clone(),
            people: household
                .iter()
                .map(|(id, m)| (id.clone(), PersonView { child: m.child, grants: m.consent.into() }))
                .collect(),
            present: self.present.as_ref().map(|p| p.iter().cloned().collect()),
            not_used_by_this_version: Purpose::ALL.into_iter().filter(|p| !p.used_by_this_version()).collect(),
        })
    }

    /// Grants or revokes `purpose` for `person` (`None`: the owner).
    pub fn set_consent(
        &mut self,
        person: Option<PersonId>,
        purpose: Purpose,
        change: ConsentChange,
        now: Now,
    ) -> Result<ConsentView, AgentError> {
        let person = person.unwrap_or_else(|| self.config.owner.clone());
        let household = self.store.household().map_err(storage)?;
        let member = household.get(&person).ok_or_else(|| AgentError::UnknownPerson(person.clone()))?;
        if member.child && change.granted && !purpose.child_may_grant() {
            return Err(AgentError::BadRequest(format!(
                "person '{person}' is a child profile, which can never grant '{purpose}'"
            )));
        }
        let row = LedgerRow {
            person,
            purpose,
            granted: change.granted,
            at: now.wall,
            source: change.source,
            text_version: change.text_version,
        };
        // The ledger is written first: if that fails, nothing changes.
        let (sharing, owner, present) = (self.config.sharing, self.config.owner.clone(), self.present.clone());
        let stored = self.store.append_consent(&row, &|h| effective(h, sharing, &owner, present.as_ref()));
        let (household, purge) = self.track(stored).map_err(storage)?;
        self.put_in_force(&household, purge, "consent ledger");
        self.tell_home(false);
        self.consent_view()
    }

    /// Applies an answer to a consent prompt.
    pub fn prompt_answer(&mut self, answer: PromptAnswer, now: Now) -> Result<ConsentView, AgentError> {
        let prompt = self.engine.check_prompt_answer(answer.decision)?;
        let yes = answer.answer == YesNo::Yes;
        if yes {
            // On a shared device a "yes" is one person's: it must say whose.
            if self.config.sharing == Sharing::Shared && answer.person.is_none() {
                return Err(AgentError::BadRequest(
                    "this device is shared: say who answered with \"person\", so the consent is theirs".into(),
                ));
            }
            let change = ConsentChange {
                granted: true,
                source: ConsentSource::DeviceUi,
                text_version: prompt.text_version.clone(),
            };
            self.set_consent(answer.person, prompt.purpose, change, now)?;
        }
        let stored = self.store.record_prompt_answer(prompt.prompt.as_str(), prompt.purpose, yes, now.wall);
        self.track(stored).map_err(storage)?;
        self.engine.handle_prompt_answer(answer.decision, yes, now.wall)?;
        self.consent_view()
    }

    /// Adds `person` to the household or changes whether they are a child.
    pub fn put_person(&mut self, person: PersonId, change: PersonChange, now: Now) -> Result<ConsentView, AgentError> {
        let (sharing, owner, present) = (self.config.sharing, self.config.owner.clone(), self.present.clone());
        let (household, purge) = self
            .store
            .put_person(&person, change.child, now.wall, &|h| effective(h, sharing, &owner, present.as_ref()))
            .map_err(storage)?;
        self.put_in_force(&household, purge, "household changed");
        self.tell_home(false);
        self.consent_view()
    }

    /// Says who is present at a shared device (`None`: unknown).
    pub fn set_presence(&mut self, present: Option<Vec<PersonId>>) -> Result<ConsentView, AgentError> {
        let (sharing, owner) = (self.config.sharing, self.config.owner.clone());
        let before = self.present.clone();
        let after: Option<std::collections::BTreeSet<PersonId>> = present.map(|p| p.into_iter().collect());
        let (household, purge) = self
            .store
            .change_presence(&|h| effective(h, sharing, &owner, before.as_ref()), &|h| {
                effective(h, sharing, &owner, after.as_ref())
            })
            .map_err(storage)?;
        self.present = after;
        self.put_in_force(&household, purge, "presence changed");
        self.consent_view()
    }

    /// Erases what the device holds about `person` (`None`: the owner).
    pub fn erase(
        &mut self,
        person: Option<PersonId>,
        source: ConsentSource,
        now: Now,
    ) -> Result<crate::handle::MyData, AgentError> {
        let person = person.unwrap_or_else(|| self.config.owner.clone());
        let household = self.store.household().map_err(storage)?;
        if !household.contains_key(&person) {
            return Err(AgentError::UnknownPerson(person));
        }
        let about = self.device_data_about(&person, &household);
        let (sharing, owner, present) = (self.config.sharing, self.config.owner.clone(), self.present.clone());
        let (household, purge) = self
            .store
            .erase(&person, about, now.wall, source, &|h| effective(h, sharing, &owner, present.as_ref()))
            .map_err(storage)?;
        self.put_in_force(&household, purge, "erasure");
        self.tell_home(false);
        if about {
            let purged = self.engine.erase();
            self.tally.clear();
            info!(%person, features = purged.features, decisions = purged.decisions, "erased what the device held about a person");
        }
        self.my_data(Some(person), now)
    }

    /// Puts a transition the store has carried out in force in memory, before the call that
    /// made it returns: the engine drops what it may no longer hold, the egress gate follows,
    /// a request sent under a purpose now lost is dropped, and the tallies go with `measure`.
    pub(super) fn put_in_force(&mut self, household: &Household, purge: Purge, why: &str) {
        let state = purge.after();
        self.engine.set_askable(askable(household, self.config.sharing, &self.config.owner, self.present.as_ref()));
        let before = self.engine.consent();
        let purged = self.engine.set_consent(state);
        self.egress.set_consent(state);
        if !purge.is_empty() {
            // A request waiting for its answer was sent under the consent now withdrawn: its
            // answer is not used, and the caller gets the local decision now.
            self.request_timed_out();
        }
        if !state.allows(Purpose::Measure) {
            self.tally.clear();
        }
        if before != state {
            info!(
                why,
                personalise = state.allows(Purpose::Personalise),
                request = state.allows(Purpose::Request),
                measure = state.allows(Purpose::Measure),
                improve = state.allows(Purpose::Improve),
                features_purged = purged.features,
                posteriors_purged = purged.posteriors,
                decisions_purged = purged.decisions,
                "consent in force changed"
            );
        }
        match self.consent_view() {
            Ok(view) => self.ui_events.push_back(crate::events::UiEvent::Consent(view)),
            Err(e) => tracing::warn!("the consent view for the UI's events: {e}"),
        }
    }
}
