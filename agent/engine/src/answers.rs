//! What people said, and what it rules out (DESIGN §2, "act on feedback"): a dismissal blocks
//! the offer for 48 hours, "not for me" suppresses its category for 90 days, and a conversion
//! excludes the offer for good. These respect explicit choices, so they hold whatever the
//! consent for learning; an erasure forgets them with everything else. The answers of the last
//! 90 days are also kept in time order for journeys to read.

use std::collections::VecDeque;

use crate::maps::FastMap;

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
    /// Each answered offer's slot in `records`: a decision reads records by slot, which the
    /// engine keeps per catalogue position, with no hashing. A slot once given stays (an
    /// expired record is emptied, not removed), so slots stay valid.
    slots: FastMap<OfferId, u32>,
    records: Vec<OfferAnswers>,
    suppressed: FastMap<String, UnixTime>,
}

/// What people answered to one offer, found with one lookup per candidate.
#[derive(Debug, Clone, Default)]
pub struct OfferAnswers {
    /// Blocked by a dismissal until then.
    blocked: UnixTime,
    /// Taken up.
    converted: bool,
    /// Its answers within [`MEMORY_SECS`], oldest first, at most [`MAX_LOGGED`]: 32-bit
    /// seconds (good until 2106; later ones saturate, which keeps their order) and the kind, 8
    /// bytes an answer.
    log: VecDeque<(u32, FeedbackKind)>,
}

/// A time as the log keeps it.
fn short(t: UnixTime) -> u32 {
    u32::try_from(t.secs()).unwrap_or(u32::MAX)
}

impl OfferAnswers {
    /// Until when the offer is blocked by a dismissal, if it is at `now`.
    pub fn blocked_until(&self, now: UnixTime) -> Option<UnixTime> {
        Some(self.blocked).filter(|until| now < *until)
    }

    /// Whether the offer was taken up.
    pub fn converted(&self) -> bool {
        self.converted
    }
}

/// How long answers are kept for journeys.
pub use ledtrad_protocol::journey::MEMORY_SECS;

/// The most answers kept per offer for journeys, however recent.
pub const MAX_LOGGED: usize = 256;

impl Answers {
    /// Records an answer given at `at` to `offer` (of `category`, if known).
    pub fn record(&mut self, offer: &OfferId, category: Option<&str>, kind: FeedbackKind, at: UnixTime) {
        let records = &mut self.records;
        let slot = *self.slots.entry(offer.clone()).or_insert_with(|| {
            records.push(OfferAnswers::default());
            u32::try_from(records.len() - 1).unwrap_or(u32::MAX)
        });
        let Some(record) = self.records.get_mut(slot as usize) else { return };
        // Stored answers come back in the order they were given; keep the log sorted anyway.
        let i = record.log.partition_point(|(t, _)| *t <= short(at));
        record.log.insert(i, (short(at), kind));
        if record.log.len() > MAX_LOGGED {
            record.log.pop_front();
        }
        let extend = |map_until: &mut UnixTime, until: UnixTime| *map_until = (*map_until).max(until);
        match kind {
            FeedbackKind::Accepted => {}
            FeedbackKind::Dismissed => extend(&mut record.blocked, at.plus_secs(DISMISSAL_BLOCK_SECS)),
            FeedbackKind::NotForMe => {
                extend(&mut record.blocked, at.plus_secs(DISMISSAL_BLOCK_SECS));
                if let Some(category) = category {
                    extend(self.suppressed.entry(category.to_string()).or_default(), at.plus_secs(NOT_FOR_ME_SECS));
                }
            }
            FeedbackKind::Converted => record.converted = true,
        }
    }

    /// What was answered to `offer`, if anything.
    pub fn offer(&self, offer: &OfferId) -> Option<&OfferAnswers> {
        self.slot(offer).and_then(|s| self.at(s))
    }

    /// The slot of `offer`'s record, if it was ever answered.
    pub fn slot(&self, offer: &OfferId) -> Option<u32> {
        self.slots.get(offer).copied()
    }

    /// The record in `slot`.
    pub fn at(&self, slot: u32) -> Option<&OfferAnswers> {
        self.records.get(slot as usize)
    }

    /// How many offers have a slot: this changes only when a new offer is answered.
    pub fn slots(&self) -> usize {
        self.records.len()
    }

    /// Until when `offer` is blocked by a dismissal, if it is at `now`.
    pub fn blocked_until(&self, offer: &OfferId, now: UnixTime) -> Option<UnixTime> {
        self.offer(offer)?.blocked_until(now)
    }

    /// Whether any category is suppressed (ended suppressions stay until the next expiry pass).
    pub fn any_suppressed(&self) -> bool {
        !self.suppressed.is_empty()
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
        let log = &self.offer(offer)?.log;
        let (from, after) = (short(from), after.map(short));
        let start = log.partition_point(|(t, _)| *t < from || after.is_some_and(|a| *t <= a));
        let (at, kind) = log.range(start..).find(|(_, k)| kind.is_none_or(|kind| *k == kind)).copied()?;
        Some((UnixTime(u64::from(at)), kind))
    }

    /// Forgets logged answers older than [`MEMORY_SECS`] at `now`, and blocks and suppressions
    /// that have ended.
    pub fn expire(&mut self, now: UnixTime) {
        let from = short(UnixTime(now.secs().saturating_sub(MEMORY_SECS)));
        for record in &mut self.records {
            while record.log.front().is_some_and(|(t, _)| *t < from) {
                record.log.pop_front();
            }
            crate::maps::shrink_spare(&mut record.log);
            // A record that rules nothing out any more and remembers nothing is emptied (its
            // slot stays: decisions find records by slot).
            if !(record.converted || record.blocked > now || !record.log.is_empty()) {
                *record = OfferAnswers::default();
            }
        }
        self.suppressed.retain(|_, until| *until > now);
    }

    /// Whether `offer` was taken up.
    pub fn converted(&self, offer: &OfferId) -> bool {
        self.offer(offer).is_some_and(|r| r.converted)
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
