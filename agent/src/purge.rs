//! What the device loses with a consent change: the one rule, computed once per transition.
//! The store carries out its part inside the transaction that changes the consent (stored
//! learning feedback, queued messages); the agent's core carries out the in-memory part with the
//! same value (the engine's derived data, report tallies, a request sent under the old consent).

use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::Purpose;

/// The purposes a consent transition takes away, and what goes with each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purge {
    before: ConsentState,
    after: ConsentState,
}

impl Purge {
    /// The purge of a transition from `before` to `after`.
    pub fn between(before: ConsentState, after: ConsentState) -> Self {
        Self { before, after }
    }

    /// The consent in force after the transition.
    pub fn after(&self) -> ConsentState {
        self.after
    }

    /// The consent in force before the transition.
    pub fn before(&self) -> ConsentState {
        self.before
    }

    /// Whether `purpose` is lost.
    pub fn loses(&self, purpose: Purpose) -> bool {
        self.before.allows(purpose) && !self.after.allows(purpose)
    }

    /// Every purpose lost, in the protocol's order: queued messages of each go.
    pub fn lost(&self) -> impl Iterator<Item = Purpose> + '_ {
        Purpose::ALL.into_iter().filter(|p| self.loses(*p))
    }

    /// Whether anything is lost.
    pub fn is_empty(&self) -> bool {
        self.lost().next().is_none()
    }

    /// Whether stored learning feedback goes: it was kept for `personalise`.
    pub fn learning(&self) -> bool {
        self.loses(Purpose::Personalise)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_purposes_held_before_and_not_after_are_lost() {
        let before = ConsentState::NONE.with(Purpose::Personalise, true).with(Purpose::Measure, true);
        let after = ConsentState::NONE.with(Purpose::Measure, true).with(Purpose::Request, true);
        let purge = Purge::between(before, after);
        assert_eq!(purge.lost().collect::<Vec<_>>(), vec![Purpose::Personalise]);
        assert!(purge.learning());
        assert!(!purge.loses(Purpose::Request), "a purpose gained is not lost");
        assert!(Purge::between(after, after).is_empty());
    }
}
