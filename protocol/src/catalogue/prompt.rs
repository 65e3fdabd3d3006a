//! Consent prompts (DESIGN §2, "asking can itself be a moment"): a catalogue may say what to
//! ask, for which purpose, with what incentive, and the engine may put the question at a
//! suitable moment — never more than once per purpose in 30 days after a "no".

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::catalogue::Problem;
use crate::consent::Purpose;
use crate::device::{DeviceKind, Moment};
use crate::id::PromptId;

/// The most prompts one catalogue may hold.
pub const MAX_PROMPTS: usize = 20;

/// How long a "no" silences the prompts for its purpose.
pub const QUIET_AFTER_NO_SECS: u64 = 30 * 86_400;

/// A question asking for consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentPrompt {
    /// Unique within the catalogue.
    pub id: PromptId,
    /// The purpose asked for.
    pub purpose: Purpose,
    /// The question, ending in '?'.
    pub question: String,
    /// What the person gets in return, stated plainly.
    pub incentive: String,
    /// The version of the consent text the person sees; recorded in the ledger with a "yes".
    pub text_version: String,
    /// The device kinds that may ask.
    pub device_kinds: Vec<DeviceKind>,
    /// The moments at which it may be asked.
    pub moments: Vec<Moment>,
}

impl ConsentPrompt {
    /// Adds this prompt's problems to `out`.
    pub fn check(&self, out: &mut Vec<Problem>) {
        let mut push = |field: &str, message: String| {
            out.push(Problem { kind: "prompt", offer: Some(self.id.as_str().into()), field: field.into(), message })
        };
        if !self.question.trim_end().ends_with('?') {
            push("question", format!("{:?} is a statement; ask it as a question ending in '?'", self.question));
        }
        if self.question.chars().count() > 200 {
            push("question", "keep the question within 200 characters".into());
        }
        if self.incentive.trim().is_empty() || self.incentive.chars().count() > 200 {
            push("incentive", "state what the person gets in return, in 1 to 200 characters".into());
        }
        if self.text_version.trim().is_empty() || self.text_version.len() > 64 {
            push(
                "text_version",
                "name the version of the consent text, in 1 to 64 characters (e.g. \"2026-11\")".into(),
            );
        }
        crate::catalogue::check_kinds_and_moments(&self.device_kinds, &self.moments, &mut push);
    }

    /// A problem when the prompt asks for a purpose this version does not use (`improve`).
    /// An operator's tools refuse such a catalogue; an agent, which must still apply a fleet's
    /// catalogue signed before, never puts such a prompt.
    pub fn unused_purpose(&self) -> Option<Problem> {
        (!self.purpose.used_by_this_version()).then(|| Problem {
            kind: "prompt",
            offer: Some(self.id.as_str().into()),
            field: "purpose".into(),
            message: format!(
                "{} is not used by this version of ledtrad, so no prompt may ask for it; ask for personalise, request or measure",
                self.purpose
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(purpose: Purpose) -> ConsentPrompt {
        ConsentPrompt {
            id: PromptId::try_new("ask").unwrap(),
            purpose,
            question: "Could the fridge suggest refills?".into(),
            incentive: "10% off".into(),
            text_version: "2026-11".into(),
            device_kinds: alloc::vec![DeviceKind::Fridge],
            moments: alloc::vec![Moment::DoorOpened],
        }
    }

    #[test]
    fn a_prompt_for_a_purpose_this_version_does_not_use_is_named() {
        assert_eq!(prompt(Purpose::Personalise).unused_purpose(), None);
        let problem = prompt(Purpose::Improve).unused_purpose().expect("a problem");
        assert_eq!(problem.field, "purpose");
        assert!(problem.message.contains("improve is not used by this version"), "{}", problem.message);
        assert!(problem.message.contains("ask for personalise, request or measure"));
        // It is not a problem of the catalogue as such: an agent still applies one signed before.
        let mut problems = Vec::new();
        prompt(Purpose::Improve).check(&mut problems);
        assert!(problems.is_empty(), "{problems:?}");
    }
}
