//! What the device remembers about offers (DESIGN §8 step 2): impressions per offer per local
//! day for caps, and per-offer Beta posteriors from local feedback. The agent persists the
//! events and hands them back in on start; the engine only holds the counts.

use std::collections::BTreeMap;

use ledtrad_protocol::feedback::FeedbackKind;
use ledtrad_protocol::OfferId;

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

/// Impression counts and posteriors.
#[derive(Debug, Clone, Default)]
pub struct History {
    daily: BTreeMap<OfferId, (u64, u32)>,
    posteriors: BTreeMap<OfferId, Posterior>,
}

impl History {
    /// Counts an impression of `offer` on local day `day`.
    pub fn record_impression(&mut self, offer: &OfferId, day: u64) {
        let entry = self.daily.entry(offer.clone()).or_insert((day, 0));
        if entry.0 == day {
            entry.1 += 1;
        } else if entry.0 < day {
            *entry = (day, 1);
        }
    }

    /// Impressions of `offer` on local day `day`.
    pub fn impressions_on(&self, offer: &OfferId, day: u64) -> u32 {
        match self.daily.get(offer) {
            Some(&(d, n)) if d == day => n,
            _ => 0,
        }
    }

    /// Updates `offer`'s posterior with feedback.
    pub fn record_feedback(&mut self, offer: &OfferId, kind: FeedbackKind) {
        let p = self.posteriors.entry(offer.clone()).or_default();
        match kind {
            FeedbackKind::Accepted => p.accepts += 1,
            FeedbackKind::Dismissed | FeedbackKind::NotForMe => p.rejections += 1,
            // A conversion follows an acceptance; it says nothing more about the offer's appeal.
            FeedbackKind::Converted => {}
        }
    }

    /// `offer`'s posterior.
    pub fn posterior(&self, offer: &OfferId) -> Posterior {
        self.posteriors.get(offer).copied().unwrap_or_default()
    }

    /// Forgets every posterior (learning is derived for `personalise`), returning how many.
    pub fn purge_learning(&mut self) -> usize {
        let n = self.posteriors.len();
        self.posteriors.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impressions_count_per_day() {
        let mut h = History::default();
        let offer = OfferId::try_new("milk").unwrap();
        h.record_impression(&offer, 10);
        h.record_impression(&offer, 10);
        assert_eq!(h.impressions_on(&offer, 10), 2);
        assert_eq!(h.impressions_on(&offer, 11), 0);
        h.record_impression(&offer, 11);
        assert_eq!(h.impressions_on(&offer, 11), 1);
        // An impression restored out of order does not rewind today's count.
        h.record_impression(&offer, 9);
        assert_eq!(h.impressions_on(&offer, 11), 1);
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
