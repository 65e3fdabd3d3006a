//! When to ask for consent (DESIGN §2): a catalogue's prompt may be put at a moment that fits
//! it, for a purpose not yet in force that the people served could grant, at most one prompt
//! a day, and never within 30 days after a "no" for that purpose.

use std::collections::BTreeMap;

use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::ShownPrompt;
use ledtrad_protocol::prompt::{ConsentPrompt, QUIET_AFTER_NO_SECS};
use ledtrad_protocol::{DeviceKind, Moment, Purpose, UnixTime};

/// What the engine remembers about asking.
#[derive(Debug, Clone)]
pub struct PromptState {
    /// Purposes the people served could grant by answering (a child's device: `measure` only).
    pub askable: ConsentState,
    refusals: BTreeMap<Purpose, UnixTime>,
    last_prompt_day: Option<u64>,
}

impl Default for PromptState {
    fn default() -> Self {
        Self { askable: ConsentState::all(), refusals: BTreeMap::new(), last_prompt_day: None }
    }
}

impl PromptState {
    /// Records a "no" for `purpose` at `at`.
    pub fn refused(&mut self, purpose: Purpose, at: UnixTime) {
        let latest = self.refusals.entry(purpose).or_insert(at);
        *latest = (*latest).max(at);
    }

    /// The prompt due at this moment, if any.
    pub fn due(
        &self,
        prompts: &[ConsentPrompt],
        kind: DeviceKind,
        moment: Moment,
        consent: ConsentState,
        now: UnixTime,
        day: u64,
    ) -> Option<ShownPrompt> {
        if self.last_prompt_day == Some(day) {
            return None;
        }
        prompts
            .iter()
            .find(|p| {
                // A catalogue signed before this version may ask for a purpose it does not use.
                p.purpose.used_by_this_version()
                    && p.device_kinds.contains(&kind)
                    && p.moments.contains(&moment)
                    && !consent.allows(p.purpose)
                    && self.askable.allows(p.purpose)
                    && self.refusals.get(&p.purpose).is_none_or(|at| now.secs() >= at.secs() + QUIET_AFTER_NO_SECS)
            })
            .map(|p| ShownPrompt {
                prompt: p.id.clone(),
                purpose: p.purpose,
                question: p.question.clone(),
                incentive: p.incentive.clone(),
                text_version: p.text_version.clone(),
            })
    }

    /// Forgets the answers and when the last prompt was shown (a person's erasure).
    pub fn forget(&mut self) {
        self.refusals.clear();
        self.last_prompt_day = None;
    }

    /// Notes that a prompt was shown on local day `day`.
    pub fn shown_on(&mut self, day: u64) {
        self.last_prompt_day = Some(day);
    }
}
