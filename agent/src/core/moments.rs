//! Moments the agent raises itself, from signals: a shelf level running low
//! (`inventory_low`), the door opened (`door_opened`), a book finished (`book_finished`), the
//! reader put to sleep (`reader_sleep`), the screen woken (`screen_woken`). A raised moment runs
//! the same decision as `GET /v1/offer` (caps, consent, quiet hours and all); what it shows is
//! queued as an `offer` event for the UI.
//!
//! Which signal raises what:
//! - a `fridge.*.level` crossing below the configured level (default 0.2), from the API or a
//!   summary of the sensor board, once the engine took it (it takes personal signals under
//!   `personalise` only): `inventory_low`, at most once per item a local day, and again only
//!   after the level rose [`MomentRules::REARM`] above it;
//! - a door edge from the sensor board, or `fridge.door.opens` posted to the API: `door_opened`;
//! - `ereader.books.finished` taken by the engine: `book_finished`;
//! - `ereader.reading.minutes` (a reading session's minutes, sent as the reader goes to
//!   sleep): `reader_sleep`;
//! - `lockscreen.unlocks`: `screen_woken`.
//!
//! `door_opened`, `reader_sleep` and `screen_woken` say only that someone is at the screen now,
//! so they are raised whatever the consent (the decision then follows it); `inventory_low` and
//! `book_finished` say something about the household, so only a signal the engine took under
//! consent raises them. Counts in a board's summary raise nothing: they are minutes old.
//! One batch of signals raises one moment, the first of: `inventory_low`, `book_finished`,
//! `door_opened`, `reader_sleep`, `screen_woken`, and only moments of the device's own kind.

use std::collections::HashMap;

use ledtrad_engine::SignalOutcome;
use ledtrad_protocol::feature::{Aggregation, FeatureName};
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::{DeviceKind, Moment};
use tracing::debug;

use super::{AgentCore, OfferStep, RequestToken};
use crate::clock::Now;
pub use crate::config::MomentRules;
use crate::events::{OfferBody, UiEvent};

/// Where a signal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// The local API: the device maker's own events, sent as they happen.
    Api,
    /// A summary of the sensor board: minutes old.
    Summary,
}

/// What the core remembers to raise moments.
#[derive(Debug, Default)]
pub(super) struct Moments {
    /// Shelf items that ran low and have not risen [`MomentRules::REARM`] above it since.
    low: HashMap<FeatureName, ()>,
    /// The local day each item last raised `inventory_low`.
    raised_on: HashMap<FeatureName, u32>,
    /// Raised moments whose decision waits for the offer service.
    waiting: Vec<(RequestToken, ledtrad_protocol::Moment)>,
    /// Moments raised, and raised ones that showed something.
    pub(super) raised: u64,
    pub(super) shown: u64,
}

/// Priority among the moments one batch may raise.
const ORDER: [Moment; 5] =
    [Moment::InventoryLow, Moment::BookFinished, Moment::DoorOpened, Moment::ReaderSleep, Moment::ScreenWoken];

impl Moments {
    /// The moment `signal` raises, given what the engine did with it, if any.
    fn moment_of(
        &mut self,
        rules: MomentRules,
        signal: Signal,
        outcome: SignalOutcome,
        origin: Origin,
        day: u32,
    ) -> Option<Moment> {
        let taken = outcome == SignalOutcome::Aggregated;
        let spec = signal.feature.spec();
        if spec.kind == Some(DeviceKind::Fridge) && spec.aggregation == Aggregation::Level {
            return self.level(rules, signal, taken, day);
        }
        if origin == Origin::Summary || signal.value <= 0.0 {
            return None;
        }
        match signal.feature.as_str() {
            "fridge.door.opens" => Some(Moment::DoorOpened),
            "ereader.books.finished" if taken => Some(Moment::BookFinished),
            "ereader.reading.minutes" => Some(Moment::ReaderSleep),
            "lockscreen.unlocks" => Some(Moment::ScreenWoken),
            _ => None,
        }
    }

    /// A shelf level: low once below the threshold, armed again once above it by the margin.
    fn level(&mut self, rules: MomentRules, signal: Signal, taken: bool, day: u32) -> Option<Moment> {
        if signal.value >= rules.low_below + MomentRules::REARM {
            self.low.remove(&signal.feature);
            return None;
        }
        if !taken || signal.value >= rules.low_below || self.low.insert(signal.feature, ()).is_some() {
            return None;
        }
        if self.raised_on.insert(signal.feature, day) == Some(day) {
            debug!(feature = %signal.feature, "ran low again today; inventory_low is raised once a day per item");
            return None;
        }
        Some(Moment::InventoryLow)
    }
}

impl AgentCore {
    /// Raises the moment a batch of signals calls for, if any; `outcomes` says what the engine
    /// did with each signal.
    pub(super) fn raise_from_signals(
        &mut self,
        signals: &[(Signal, SignalOutcome)],
        origin: Origin,
        now: Now,
    ) -> Option<Moment> {
        let rules = self.config.moments?;
        let day = self.local_day(now.wall);
        let kind = self.config.kind;
        let mut raised = Vec::new();
        for (signal, outcome) in signals {
            if let Some(moment) = self.moments.moment_of(rules, *signal, *outcome, origin, day) {
                raised.push(moment);
            }
        }
        let moment = ORDER.into_iter().find(|m| m.device_kind() == kind && raised.contains(m))?;
        self.raise(moment, now);
        Some(moment)
    }

    /// Raises `moment` (a door edge from the sensor board, say): decides, and queues what
    /// the decision shows for the UI.
    pub(super) fn raise(&mut self, moment: Moment, now: Now) {
        if self.config.moments.is_none() || moment.device_kind() != self.config.kind {
            return;
        }
        self.moments.raised += 1;
        match self.offer(moment, now) {
            OfferStep::Decided(outcome) => self.show_raised(moment, &outcome),
            OfferStep::Waiting(token) => self.moments.waiting.push((token, moment)),
        }
    }

    /// A raised moment's decision: an `offer` event if it shows something.
    fn show_raised(&mut self, moment: Moment, outcome: &crate::handle::OfferOutcome) {
        let body = OfferBody::new(moment, outcome);
        if body.shows_something() {
            self.moments.shown += 1;
            self.ui_events.push_back(UiEvent::Offer(Box::new(body)));
        } else {
            debug!(%moment, decision = outcome.decision.id.0, "raised a moment; nothing to show");
        }
    }

    /// Takes the offer service's answer to a raised moment out of the answers callers wait
    /// for; `false` if `token` is a caller's.
    pub(super) fn answer_raised(&mut self, token: RequestToken, outcome: &crate::handle::OfferOutcome) -> bool {
        let Some(at) = self.moments.waiting.iter().position(|(t, _)| *t == token) else { return false };
        let (_, moment) = self.moments.waiting.remove(at);
        self.show_raised(moment, outcome);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: MomentRules = MomentRules { low_below: 0.2 };

    fn signal(name: &str, value: f64) -> Signal {
        Signal { feature: FeatureName::try_new(name).unwrap(), value }
    }

    fn level(moments: &mut Moments, value: f64, day: u32) -> Option<Moment> {
        let s = signal("fridge.butter.level", value);
        moments.moment_of(RULES, s, SignalOutcome::Aggregated, Origin::Summary, day)
    }

    #[test]
    fn a_level_runs_low_once_until_it_rises_past_the_margin_and_once_a_day() {
        let mut m = Moments::default();
        assert_eq!(level(&mut m, 0.5, 1), None);
        assert_eq!(level(&mut m, 0.19, 1), Some(Moment::InventoryLow));
        assert_eq!(level(&mut m, 0.1, 1), None, "still low: not again");
        assert_eq!(level(&mut m, 0.25, 1), None, "inside the margin: still low");
        assert_eq!(level(&mut m, 0.15, 1), None);
        assert_eq!(level(&mut m, 0.31, 1), None, "rearmed");
        assert_eq!(level(&mut m, 0.15, 1), None, "but once a day per item");
        assert_eq!(level(&mut m, 0.5, 2), None);
        assert_eq!(level(&mut m, 0.15, 2), Some(Moment::InventoryLow), "a new day");
        let milk = signal("fridge.milk.level", 0.1);
        assert_eq!(m.moment_of(RULES, milk, SignalOutcome::Aggregated, Origin::Api, 2), Some(Moment::InventoryLow));
    }

    #[test]
    fn personal_state_raises_nothing_without_consent_but_presence_does() {
        let mut m = Moments::default();
        let dropped = SignalOutcome::DroppedNoConsent;
        assert_eq!(m.moment_of(RULES, signal("fridge.butter.level", 0.1), dropped, Origin::Api, 1), None);
        assert_eq!(m.moment_of(RULES, signal("ereader.books.finished", 1.0), dropped, Origin::Api, 1), None);
        let door = signal("fridge.door.opens", 1.0);
        assert_eq!(m.moment_of(RULES, door, dropped, Origin::Api, 1), Some(Moment::DoorOpened));
        let unlock = signal("lockscreen.unlocks", 1.0);
        assert_eq!(m.moment_of(RULES, unlock, dropped, Origin::Api, 1), Some(Moment::ScreenWoken));
        assert_eq!(
            m.moment_of(RULES, signal("ereader.reading.minutes", 12.0), dropped, Origin::Api, 1),
            Some(Moment::ReaderSleep)
        );
    }

    #[test]
    fn counts_from_a_summary_are_too_old_to_be_a_moment() {
        let mut m = Moments::default();
        let door = signal("fridge.door.opens", 3.0);
        assert_eq!(m.moment_of(RULES, door, SignalOutcome::Aggregated, Origin::Summary, 1), None);
        let none = signal("fridge.door.opens", 0.0);
        assert_eq!(m.moment_of(RULES, none, SignalOutcome::Aggregated, Origin::Api, 1), None);
        let light = signal("context.ambient_light", 0.0);
        assert_eq!(m.moment_of(RULES, light, SignalOutcome::Aggregated, Origin::Api, 1), None);
    }
}
