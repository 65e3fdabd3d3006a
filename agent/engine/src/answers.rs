//! What people said, and what it rules out (DESIGN §2, "act on feedback"): a dismissal blocks
//! the offer for 48 hours, "not for me" suppresses its category for 90 days, and a conversion
//! excludes the offer for good. These respect explicit choices, so they hold whatever the
//! consent for learning; an erasure forgets them with everything else. The answers of the last
//! 90 days are also kept in time order for journeys to read.

use std::collections::VecDeque;

use crate::{FastMap, FastSet};

use ledtrad_protocol::feedback::FeedbackKind;
use ledtrad_protocol::time::DAY_SECS;
use ledtrad_protocol::{OfferId, UnixTime};

/// How long a dismissal blocks an offer.
pub const DISMISSAL_BLOCK_SECS: u64 = 2 * DAY_SECS;

/// How long "not for me" suppresses a category.
pub const NOT_FOR_ME_SECS: u64 = 90 * DAY_SECS;

/// The rules people's answers set on this device.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    blocked: FastMap<OfferId, UnixTime>,
    suppressed: FastMap<String, UnixTime>,
    converted: FastSet<OfferId>,
    /// Each offer's answers within [`MEMORY_SECS`], oldest first, at most [`MAX_LOGGED`].
    log: FastMap<OfferId, VecDeque<(UnixTime, FeedbackKind)>>,
}

/// How long answers are kept for journeys.
pub use ledtrad_protocol::journey::MEMORY_SECS;

/// The most answers kept per offer for journeys, however recent.
pub const MAX_LOGGED: usize = 256;

impl Answers {
    /// Records an answer given at `at` to `offer` (of `category`, if known).
    pub fn record(&mut self, offer: &OfferId, category: Option<&str>, kind: FeedbackKind, at: UnixTime) {
        let log = self.log.entry(offer.clone()).or_default();
        // Stored answers come back in the order they were given; keep the log sorted anyway.
        let i = log.partition_point(|(t, _)| *t <= at);
        log.insert(i, (at, kind));
        if log.len() > MAX_LOGGED {
            log.pop_front();
        }
        let extend = |map_until: &mut UnixTime, until: UnixTime| *map_until = (*map_until).max(until);
        match kind {
            FeedbackKind::Accepted => {}
            FeedbackKind::Dismissed => {
                extend(self.blocked.entry(offer.clone()).or_default(), at.plus_secs(DISMISSAL_BLOCK_SECS));
            }
            FeedbackKind::NotForMe => {
                extend(self.blocked.entry(offer.clone()).or_default(), at.plus_secs(DISMISSAL_BLOCK_SECS));
                if let Some(category) = category {
                    extend(self.suppressed.entry(category.to_string()).or_default(), at.plus_secs(NOT_FOR_ME_SECS));
                }
            }
            FeedbackKind::Converted => {
                self.converted.insert(offer.clone());
            }
        }
    }

    /// Until when `offer` is blocked by a dismissal, if it is at `now`.
    pub fn blocked_until(&self, offer: &OfferId, now: UnixTime) -> Option<UnixTime> {
        self.blocked.get(offer).copied().filter(|until| now < *until)
    }

    /// Until when `category` is suppressed, if it is at `now`.
    pub fn suppressed_until(&self, category: &str, now: UnixTime) -> Option<UnixTime> {
        self.suppressed.get(category).copied().filter(|until| now < *until)
    }

    /// The first answer to `offer` at or after `from`, and after `after` if given.
    pub fn first_answer(
        &self,
        offer: &OfferId,
        kind: Option<FeedbackKind>,
        from: UnixTime,
        after: Option<UnixTime>,
    ) -> Option<(UnixTime, FeedbackKind)> {
        let log = self.log.get(offer)?;
        let start = log.partition_point(|(t, _)| *t < from || after.is_some_and(|a| *t <= a));
        log.range(start..).find(|(_, k)| kind.is_none_or(|kind| *k == kind)).copied()
    }

    /// Forgets logged answers older than [`MEMORY_SECS`] at `now`.
    pub fn expire(&mut self, now: UnixTime) {
        let from = UnixTime(now.secs().saturating_sub(MEMORY_SECS));
        self.log.retain(|_, log| {
            while log.front().is_some_and(|(t, _)| *t < from) {
                log.pop_front();
            }
            !log.is_empty()
        });
    }

    /// Whether `offer` was taken up.
    pub fn converted(&self, offer: &OfferId) -> bool {
        self.converted.contains(offer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answer_rules_out_what_it_should_for_as_long_as_it_should() {
        let mut a = Answers::default();
        let (milk, butter) = (OfferId::try_new("milk").unwrap(), OfferId::try_new("butter").unwrap());
        let t = UnixTime(1_000_000);
        a.record(&milk, Some("food.dairy"), FeedbackKind::Dismissed, t);
        assert_eq!(a.blocked_until(&milk, t.plus_secs(DAY_SECS)), Some(t.plus_secs(DISMISSAL_BLOCK_SECS)));
        assert_eq!(a.blocked_until(&milk, t.plus_secs(DISMISSAL_BLOCK_SECS)), None);
        assert_eq!(a.suppressed_until("food.dairy", t), None, "a dismissal suppresses no category");
        a.record(&butter, Some("food.dairy"), FeedbackKind::NotForMe, t);
        assert_eq!(a.suppressed_until("food.dairy", t.plus_secs(89 * DAY_SECS)), Some(t.plus_secs(NOT_FOR_ME_SECS)));
        assert_eq!(a.suppressed_until("food.dairy", t.plus_secs(NOT_FOR_ME_SECS)), None);
        a.record(&milk, None, FeedbackKind::Converted, t);
        assert!(a.converted(&milk) && !a.converted(&butter));
        a.record(&butter, None, FeedbackKind::Accepted, t);
        assert!(!a.converted(&butter));
    }
}
