//! What a home's screens showed on one local day (DESIGN §6, home-wide caps): counts per offer,
//! per campaign and in all. The agent hands the engine what the home's other screens told it
//! ([`crate::Engine::set_home_shown`]), summed per day, since screens may be on either side of
//! midnight; the engine adds this device's own impressions of its own day from its history. A
//! leaf: it uses no other module of the engine.

use std::collections::BTreeMap;

use ledtrad_protocol::{CampaignId, OfferId};
use serde::{Deserialize, Serialize};

/// Offers shown on local day `day`, by offer, by campaign and in all: one screen's own counts
/// as it tells the home, or the sum of the home's other screens' as a device holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayShown {
    /// The local day, counted from the epoch.
    pub day: u64,
    /// Impressions by offer.
    pub offers: BTreeMap<OfferId, u32>,
    /// Impressions by campaign.
    pub campaigns: BTreeMap<CampaignId, u32>,
    /// Impressions in all.
    pub total: u32,
}

impl DayShown {
    /// Impressions of `offer` on `day` (none when these counts are of another day).
    pub fn offer(&self, day: u64, offer: &OfferId) -> u32 {
        self.on(day).and_then(|d| d.offers.get(offer)).copied().unwrap_or(0)
    }

    /// Impressions of `campaign`'s offers on `day`.
    pub fn campaign(&self, day: u64, campaign: &CampaignId) -> u32 {
        self.on(day).and_then(|d| d.campaigns.get(campaign)).copied().unwrap_or(0)
    }

    /// Impressions on `day`.
    pub fn total(&self, day: u64) -> u32 {
        self.on(day).map_or(0, |d| d.total)
    }

    fn on(&self, day: u64) -> Option<&Self> {
        (self.day == day && self.total > 0).then_some(self)
    }

    /// Adds `other`'s counts of the same day to these (for summing a home's screens).
    pub fn add(&mut self, other: &Self) {
        self.combine(other, u32::saturating_add);
    }

    /// Takes the larger of each of these counts and `other`'s (for the same screen heard
    /// twice: its counts only grow during a day).
    pub fn max(&mut self, other: &Self) {
        self.combine(other, u32::max);
    }

    /// Each count of `other` combined with this one by `with`.
    fn combine(&mut self, other: &Self, with: fn(u32, u32) -> u32) {
        for (offer, n) in &other.offers {
            let mine = self.offers.entry(offer.clone()).or_default();
            *mine = with(*mine, *n);
        }
        for (campaign, n) in &other.campaigns {
            let mine = self.campaigns.entry(campaign.clone()).or_default();
            *mine = with(*mine, *n);
        }
        self.total = with(self.total, other.total);
    }
}

/// What the home's other screens showed, summed per local day (a day or two: screens whose
/// clocks or time zones differ may be on either side of midnight).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HomeShown {
    days: Vec<DayShown>,
}

impl HomeShown {
    /// The counts of each day given (one entry per day; a second for the same day is added).
    pub fn new(days: impl IntoIterator<Item = DayShown>) -> Self {
        let mut out = Self::default();
        for shown in days {
            match out.days.iter_mut().find(|d| d.day == shown.day) {
                Some(held) => held.add(&shown),
                None => out.days.push(shown),
            }
        }
        out
    }

    fn on(&self, day: u64) -> Option<&DayShown> {
        self.days.iter().find(|d| d.day == day)
    }

    /// Impressions of `offer` on `day`.
    pub fn offer(&self, day: u64, offer: &OfferId) -> u32 {
        self.on(day).map_or(0, |d| d.offer(day, offer))
    }

    /// Impressions of `campaign`'s offers on `day`.
    pub fn campaign(&self, day: u64, campaign: &CampaignId) -> u32 {
        self.on(day).map_or(0, |d| d.campaign(day, campaign))
    }

    /// Impressions on `day`.
    pub fn total(&self, day: u64) -> u32 {
        self.on(day).map_or(0, |d| d.total(day))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(day: u64, offers: &[(&str, u32)], total: u32) -> DayShown {
        DayShown {
            day,
            offers: offers.iter().map(|(o, n)| (OfferId::try_new(*o).unwrap(), *n)).collect(),
            campaigns: BTreeMap::new(),
            total,
        }
    }

    #[test]
    fn counts_of_another_day_count_nothing() {
        let butter = OfferId::try_new("butter").unwrap();
        let d = shown(10, &[("butter", 2)], 2);
        assert_eq!((d.offer(10, &butter), d.total(10)), (2, 2));
        assert_eq!((d.offer(11, &butter), d.total(11)), (0, 0));
    }

    #[test]
    fn the_home_holds_each_day_apart() {
        let butter = OfferId::try_new("butter").unwrap();
        let home = HomeShown::new([shown(10, &[("butter", 1)], 1), shown(11, &[("butter", 2)], 2), shown(10, &[], 3)]);
        assert_eq!((home.offer(10, &butter), home.total(10)), (1, 4));
        assert_eq!((home.offer(11, &butter), home.total(11)), (2, 2));
        assert_eq!(home.total(12), 0);
    }

    #[test]
    fn screens_add_up_and_one_screen_heard_twice_takes_the_larger() {
        let butter = OfferId::try_new("butter").unwrap();
        let mut home = shown(10, &[("butter", 1)], 1);
        home.add(&shown(10, &[("butter", 2)], 3));
        assert_eq!((home.offer(10, &butter), home.total(10)), (3, 4));
        let mut screen = shown(10, &[("butter", 2)], 2);
        screen.max(&shown(10, &[("butter", 1)], 4));
        assert_eq!((screen.offer(10, &butter), screen.total(10)), (2, 4));
    }
}
