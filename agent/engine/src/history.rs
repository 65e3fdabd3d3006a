//! What the device remembers about offers (DESIGN §8 step 2): impression times per offer, per
//! campaign and per device for caps (bounded: 30 days and at most [`MAX_KEPT`] each, plus
//! all-time counts), and per-offer Beta posteriors from local feedback. The agent persists the
//! events and hands them back in on start; the engine only holds the counts.

use std::collections::VecDeque;

use crate::answers::Answers;
use crate::home::{DayShown, HomeShown};
use crate::maps::FastMap;

use ledtrad_protocol::caps::Window;
use ledtrad_protocol::feedback::FeedbackKind;
use ledtrad_protocol::time::DAY_SECS;
use ledtrad_protocol::{CampaignId, OfferId, UnixTime};

/// What the device remembers at a decision, borrowed for it: impressions and posteriors, the
/// people's answers, each offer's history slot by position in the offers decided on, and what
/// the home's other screens showed today.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Past<'a> {
    pub history: &'a History,
    pub answers: &'a Answers,
    pub slots: &'a [Option<u32>],
    /// Each offer's answers slot by position.
    pub answer_slots: &'a [Option<u32>],
    /// What the home's other screens showed, as this device last heard.
    pub home: &'a HomeShown,
}

impl<'a> Past<'a> {
    /// The record of the offer at `position`, found by its slot without hashing its id.
    pub fn record(&self, position: usize) -> Option<&'a OfferRecord> {
        self.slots.get(position).copied().flatten().and_then(|s| self.history.record_at(s))
    }

    /// What was answered to the offer at `position`, found by its slot without hashing its id.
    pub fn answers_of(&self, position: usize) -> Option<&'a crate::answers::OfferAnswers> {
        self.answer_slots.get(position).copied().flatten().and_then(|s| self.answers.at(s))
    }
}

/// A Beta(1 + accepts, 1 + rejections) posterior over an offer's acceptance rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Posterior {
    /// Accepted impressions.
    pub accepts: u32,
    /// Dismissed or "not for me" impressions.
    pub rejections: u32,
}

impl Posterior {
    /// The posterior mean, 0.5 with no feedback.
    pub fn mean(self) -> f64 {
        (f64::from(self.accepts) + 1.0) / (f64::from(self.accepts) + f64::from(self.rejections) + 2.0)
    }
}

/// How far back impressions are kept for caps (the longest rolling window).
pub const KEEP_SECS: u64 = 30 * DAY_SECS;

/// The most impressions kept per offer, per campaign and per device, whatever the time span.
pub const MAX_KEPT: usize = 10_000;

/// Impression times of one key, oldest first, within [`KEEP_SECS`], plus an all-time count.
/// Times are kept as 32-bit Unix seconds (good until 2106; later ones saturate, which keeps
/// their order), half the memory of a month of impressions.
#[derive(Debug, Clone, Default)]
pub struct Times {
    at: VecDeque<u32>,
    total: u32,
    /// The last of `at` (0 when it is empty), kept beside it so most counts need not read the
    /// times themselves.
    latest: u32,
}

/// A time as [`Times`] keeps it.
fn short(t: UnixTime) -> u32 {
    u32::try_from(t.secs()).unwrap_or(u32::MAX)
}

impl Times {
    fn push(&mut self, at: UnixTime) {
        let at = short(at);
        // Stored events may come back out of order on start; keep the deque sorted.
        let i = self.at.partition_point(|t| *t <= at);
        self.at.insert(i, at);
        if self.at.len() > MAX_KEPT {
            self.at.pop_front();
        }
        self.latest = self.at.back().copied().unwrap_or(0);
        self.total = self.total.saturating_add(1);
    }

    /// Adds impressions that are counted for good but no longer timed (pruned from storage).
    fn add_untimed(&mut self, count: u32) {
        self.total = self.total.saturating_add(count);
    }

    fn since(&self, from: UnixTime) -> u32 {
        let from = short(from);
        // Most offers were last shown before most windows began: no search then.
        if self.at.is_empty() || self.latest < from {
            return 0;
        }
        let i = self.at.partition_point(|t| *t < from);
        u32::try_from(self.at.len() - i).unwrap_or(u32::MAX)
    }

    /// The first impression at or after `from`, and after `after` if given.
    pub fn first_since(&self, from: UnixTime, after: Option<UnixTime>) -> Option<UnixTime> {
        let (from, after) = (short(from), after.map(short));
        let i = self.at.partition_point(|t| *t < from || after.is_some_and(|a| *t <= a));
        self.at.get(i).map(|t| UnixTime(u64::from(*t)))
    }

    fn last(&self) -> Option<UnixTime> {
        self.at.back().map(|t| UnixTime(u64::from(*t)))
    }

    fn forget_before(&mut self, from: UnixTime) {
        let from = short(from);
        while self.at.front().is_some_and(|t| *t < from) {
            self.at.pop_front();
        }
        self.latest = self.at.back().copied().unwrap_or(0);
        crate::maps::shrink_spare(&mut self.at);
    }
}

/// What the device remembers of one offer: its impressions and its posterior, found with one
/// lookup per candidate.
#[derive(Debug, Clone, Default)]
pub struct OfferRecord {
    /// Its impressions.
    pub times: Times,
    /// Its posterior from local feedback.
    pub posterior: Posterior,
}

/// Impressions (per offer, per campaign, per device) and posteriors.
#[derive(Debug, Clone, Default)]
pub struct History {
    // Hash maps: looked up by id, never iterated in an order that could reach a decision.
    /// Each offer's slot in `records`: a decision reads records by slot, which the engine
    /// keeps per catalogue position, with no hashing.
    slots: FastMap<OfferId, u32>,
    records: Vec<OfferRecord>,
    campaigns: FastMap<CampaignId, Times>,
    device: Times,
}

impl History {
    /// The slot of `offer`'s record, made if it has none.
    fn slot_for(&mut self, offer: &OfferId) -> u32 {
        let records = &mut self.records;
        *self.slots.entry(offer.clone()).or_insert_with(|| {
            records.push(OfferRecord::default());
            u32::try_from(records.len() - 1).unwrap_or(u32::MAX)
        })
    }

    /// Counts an impression of `offer` (of `campaign`) at `at`; returns the slot of its record.
    pub fn record_impression(&mut self, offer: &OfferId, campaign: &CampaignId, at: UnixTime) -> u32 {
        let slot = self.slot_for(offer);
        self.records[slot as usize].times.push(at);
        self.campaigns.entry(campaign.clone()).or_default().push(at);
        self.device.push(at);
        slot
    }

    /// Counts `count` impressions of `offer` (of `campaign`) for good, without their times:
    /// what storage folded into lifetime counts, handed back on start so all-time caps hold.
    pub fn record_untimed(&mut self, offer: &OfferId, campaign: &CampaignId, count: u32) {
        let slot = self.slot_for(offer);
        self.records[slot as usize].times.add_untimed(count);
        self.campaigns.entry(campaign.clone()).or_default().add_untimed(count);
        self.device.add_untimed(count);
    }

    /// The slot of `offer`'s record, if it has one.
    pub fn slot(&self, offer: &OfferId) -> Option<u32> {
        self.slots.get(offer).copied()
    }

    /// How many offers have a record: a slot once given stays, so this changes only when a
    /// new offer gets one.
    pub fn slots(&self) -> usize {
        self.records.len()
    }

    /// The record in `slot`.
    pub fn record_at(&self, slot: u32) -> Option<&OfferRecord> {
        self.records.get(slot as usize)
    }

    /// What is remembered of `offer`, to count several windows and read its posterior at once.
    pub fn offer(&self, offer: &OfferId) -> Option<&OfferRecord> {
        self.slot(offer).and_then(|s| self.record_at(s))
    }

    /// The impression times of `offer`.
    pub fn offer_times(&self, offer: &OfferId) -> Option<&Times> {
        self.offer(offer).map(|r| &r.times)
    }

    /// The impression times of `campaign`'s offers.
    pub fn campaign_times(&self, campaign: &CampaignId) -> Option<&Times> {
        self.campaigns.get(campaign)
    }

    /// Impressions of `offer` in `window` ending at `now`; `day_start` is the start of the
    /// current local day.
    pub fn offer_count(&self, offer: &OfferId, window: Window, now: UnixTime, day_start: UnixTime) -> u32 {
        self.offer(offer).map_or(0, |r| count(&r.times, window, now, day_start))
    }

    /// Impressions of `campaign`'s offers in `window`.
    pub fn campaign_count(&self, campaign: &CampaignId, window: Window, now: UnixTime, day_start: UnixTime) -> u32 {
        self.campaigns.get(campaign).map_or(0, |t| count(t, window, now, day_start))
    }

    /// Impressions on the device in `window`.
    pub fn device_count(&self, window: Window, now: UnixTime, day_start: UnixTime) -> u32 {
        count(&self.device, window, now, day_start)
    }

    /// This device's impressions on local day `day`, which began at `day_start`: what it tells
    /// the other screens of its home.
    pub fn shown_on(&self, day: u64, day_start: UnixTime) -> DayShown {
        let counted = |times: &Times| times.since(day_start);
        let mut shown = DayShown { day, total: counted(&self.device), ..DayShown::default() };
        if shown.total == 0 {
            return shown;
        }
        for (offer, slot) in self.slots.iter() {
            let n = self.records.get(*slot as usize).map_or(0, |r| counted(&r.times));
            if n > 0 {
                shown.offers.insert(offer.clone(), n);
            }
        }
        for (campaign, times) in self.campaigns.iter() {
            let n = counted(times);
            if n > 0 {
                shown.campaigns.insert(campaign.clone(), n);
            }
        }
        shown
    }

    /// The last impression on the device.
    pub fn last_impression(&self) -> Option<UnixTime> {
        self.device.last()
    }

    /// Drops impressions older than every window but the all-time count.
    pub fn expire(&mut self, now: UnixTime) {
        let from = UnixTime(now.secs().saturating_sub(KEEP_SECS));
        for t in self.records.iter_mut().map(|r| &mut r.times).chain(self.campaigns.values_mut()) {
            t.forget_before(from);
        }
        self.device.forget_before(from);
    }

    /// Updates `offer`'s posterior with feedback.
    pub fn record_feedback(&mut self, offer: &OfferId, kind: FeedbackKind) {
        let slot = self.slot_for(offer);
        let p = &mut self.records[slot as usize].posterior;
        match kind {
            FeedbackKind::Accepted => p.accepts += 1,
            FeedbackKind::Dismissed | FeedbackKind::NotForMe => p.rejections += 1,
            // A conversion follows an acceptance; it says nothing more about the offer's appeal.
            FeedbackKind::Converted => {}
        }
    }

    /// Adds folded feedback counts to `offer`'s posterior (storage folds old learning rows).
    pub fn record_posterior_counts(&mut self, offer: &OfferId, accepts: u32, rejections: u32) {
        let slot = self.slot_for(offer);
        let p = &mut self.records[slot as usize].posterior;
        p.accepts = p.accepts.saturating_add(accepts);
        p.rejections = p.rejections.saturating_add(rejections);
    }

    /// `offer`'s posterior.
    pub fn posterior(&self, offer: &OfferId) -> Posterior {
        self.offer(offer).map(|r| r.posterior).unwrap_or_default()
    }

    /// Whether any offer's posterior has learned from an answer.
    pub fn any_learning(&self) -> bool {
        self.records.iter().any(|r| r.posterior != Posterior::default())
    }

    /// Forgets every posterior (learning is derived for `personalise`), returning how many.
    pub fn purge_learning(&mut self) -> usize {
        let mut n = 0;
        for r in self.records.iter_mut().filter(|r| r.posterior != Posterior::default()) {
            r.posterior = Posterior::default();
            n += 1;
        }
        n
    }
}

/// Impressions in `times` within `window` ending at `now` (`day_start`: start of the local day).
pub fn count(times: &Times, window: Window, now: UnixTime, day_start: UnixTime) -> u32 {
    let back = |secs: u64| UnixTime(now.secs().saturating_sub(secs));
    match window {
        Window::Hour => times.since(back(3600)),
        Window::Day => times.since(day_start),
        Window::Week => times.since(back(7 * DAY_SECS)),
        Window::Month => times.since(back(KEEP_SECS)),
        Window::Total => times.total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impressions_count_per_window() {
        let mut h = History::default();
        let offer = OfferId::try_new("milk").unwrap();
        let campaign = CampaignId::try_new("dairy").unwrap();
        let day_start = UnixTime(100 * DAY_SECS);
        for secs in [0, 1800, 4000, 3 * DAY_SECS] {
            h.record_impression(&offer, &campaign, day_start.plus_secs(secs));
        }
        let now = day_start.plus_secs(3 * DAY_SECS + 60);
        let today = day_start.plus_secs(3 * DAY_SECS);
        assert_eq!(h.offer_count(&offer, Window::Hour, now, today), 1);
        assert_eq!(h.offer_count(&offer, Window::Day, now, today), 1);
        assert_eq!(h.offer_count(&offer, Window::Week, now, today), 4);
        assert_eq!(h.campaign_count(&campaign, Window::Total, now, today), 4);
        // Impressions later than `now` (the clock went back) still count: caps stay conservative.
        assert_eq!(h.device_count(Window::Day, day_start.plus_secs(4001), day_start), 4);
        // Restored out of order, the counts are the same.
        let mut r = History::default();
        for secs in [3 * DAY_SECS, 0, 4000, 1800] {
            r.record_impression(&offer, &campaign, day_start.plus_secs(secs));
        }
        assert_eq!(r.offer_count(&offer, Window::Week, now, today), 4);
        assert_eq!(r.last_impression(), Some(day_start.plus_secs(3 * DAY_SECS)));
        // Expiry keeps the all-time count.
        h.expire(day_start.plus_secs(40 * DAY_SECS));
        assert_eq!(h.offer_count(&offer, Window::Month, day_start.plus_secs(40 * DAY_SECS), today), 0);
        assert_eq!(h.offer_count(&offer, Window::Total, now, today), 4);
        // Counts folded from pruned rows add to every all-time total and to no window.
        h.record_untimed(&offer, &campaign, 3);
        assert_eq!(h.offer_count(&offer, Window::Total, now, today), 7);
        assert_eq!(h.campaign_count(&campaign, Window::Total, now, today), 7);
        assert_eq!(h.device_count(Window::Total, now, today), 7);
        assert_eq!(h.device_count(Window::Week, now, today), 0);
    }

    #[test]
    fn feedback_moves_the_posterior() {
        let mut h = History::default();
        let offer = OfferId::try_new("milk").unwrap();
        assert!((h.posterior(&offer).mean() - 0.5).abs() < 1e-12);
        h.record_feedback(&offer, FeedbackKind::Accepted);
        assert!(h.posterior(&offer).mean() > 0.5);
        h.record_feedback(&offer, FeedbackKind::NotForMe);
        h.record_feedback(&offer, FeedbackKind::Dismissed);
        assert!(h.posterior(&offer).mean() < 0.5);
        assert_eq!(h.purge_learning(), 1);
        assert_eq!(h.posterior(&offer), Posterior::default());
    }
}
