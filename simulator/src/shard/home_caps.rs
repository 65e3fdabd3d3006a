//! Home-wide caps in a run. The shard keeps its own record of what each screen of a home
//! counted today (shown offers, and held-out "would have shown" ones, which count against the
//! caps as shown ones do), audits every shown offer against the catalogue's home caps on that
//! record (not on the engine's word), and hands the audit's engines the same counts of the
//! home's other screens that the agents hear on the home channel.

use std::collections::BTreeMap;

use anyhow::Context as _;
use ledtrad_agent::engine::home::DayShown;
use ledtrad_protocol::caps::HomeCap;
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::envelope::{Envelope, SignedCatalogue};
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::{codec, CampaignId, OfferId};

/// The catalogue's home caps, as the catalogue states them.
#[derive(Debug, Clone, Default)]
pub(super) struct HomeRules {
    offers: BTreeMap<OfferId, HomeCap>,
    campaigns: BTreeMap<CampaignId, u32>,
    per_day: Option<u32>,
}

impl HomeRules {
    /// The home caps of the run's signed catalogue (its own, so not verified again).
    pub(super) fn of_envelope(envelope: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !envelope.is_empty(),
            "the shard was given no signed catalogue, so the audit cannot read its home caps"
        );
        let envelope: Envelope = codec::from_postcard(envelope, "envelope").context("the run's catalogue")?;
        let signed: SignedCatalogue =
            codec::from_postcard(&envelope.signed, "signed catalogue").context("the run's catalogue")?;
        Ok(Self::of(&signed.catalogue))
    }

    /// The home caps of `catalogue`: an offer's `per_home_per_day`, else one screen a day for
    /// an offer that is personalised or has a personal condition.
    pub(super) fn of(catalogue: &Catalogue) -> Self {
        let personal = |c: &ledtrad_protocol::catalogue::Condition| {
            FeatureName::try_new(&c.feature).is_ok_and(|f| f.spec().purpose.is_some())
        };
        let offers = catalogue
            .offers
            .iter()
            .filter_map(|o| Some((o.id.clone(), o.caps.home(o.personalised || o.conditions.iter().any(personal))?)))
            .collect();
        let campaigns =
            catalogue.campaigns.iter().filter_map(|c| Some((c.id.clone(), c.caps.per_home_per_day?))).collect();
        Self { offers, campaigns, per_day: catalogue.policy.home_per_day }
    }

    /// Whether showing `offer` (of `campaign`) on screen `slot` breaks a home cap, given what
    /// the home counted today before it.
    pub(super) fn broken(&self, today: &HomeToday, slot: usize, offer: &OfferId, campaign: &CampaignId) -> bool {
        let home = today.home();
        let day = today.day;
        let offer_cap = match self.offers.get(offer) {
            Some(HomeCap::OneScreen) => today.others(slot).offer(day, offer) > 0,
            Some(HomeCap::PerDay(n)) => home.offer(day, offer) >= *n,
            None => false,
        };
        let campaign_cap = self.campaigns.get(campaign).is_some_and(|n| home.campaign(day, campaign) >= *n);
        let home_cap = self.per_day.is_some_and(|n| home.total(day) >= n);
        offer_cap || campaign_cap || home_cap
    }
}

/// What each screen of one home counted on the current local day.
#[derive(Debug, Clone, Default)]
pub(super) struct HomeToday {
    day: u64,
    screens: Vec<DayShown>,
}

impl HomeToday {
    /// A home of `screens` screens.
    pub(super) fn new(screens: usize) -> Self {
        Self { day: 0, screens: vec![DayShown::default(); screens] }
    }

    /// Starts local day `day` afresh if it is a new one.
    pub(super) fn on(&mut self, day: u64) {
        if day != self.day {
            self.day = day;
            for screen in &mut self.screens {
                *screen = DayShown { day, ..DayShown::default() };
            }
        }
    }

    /// Screen `slot` counted an impression of `offer` (of `campaign`).
    pub(super) fn count(&mut self, slot: usize, offer: &OfferId, campaign: &CampaignId) {
        let Some(screen) = self.screens.get_mut(slot) else { return };
        let one = DayShown {
            day: self.day,
            offers: [(offer.clone(), 1)].into(),
            campaigns: [(campaign.clone(), 1)].into(),
            total: 1,
        };
        screen.add(&one);
    }

    /// The other screens' counts, summed, as screen `slot` hears them.
    pub(super) fn others(&self, slot: usize) -> DayShown {
        let mut sum = DayShown { day: self.day, ..DayShown::default() };
        for (_, screen) in self.screens.iter().enumerate().filter(|(s, _)| *s != slot) {
            sum.add(screen);
        }
        sum
    }

    /// Every screen's counts, summed.
    pub(super) fn home(&self) -> DayShown {
        self.others(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> OfferId {
        OfferId::try_new(s).unwrap()
    }

    fn rules() -> HomeRules {
        let path = std::path::Path::new("home.toml");
        let mut catalogue = ledtrad_operator::load::parse_catalogue(path, crate::EXAMPLE_CATALOGUE, None).unwrap();
        catalogue.policy.home_per_day = Some(3);
        HomeRules::of(&catalogue)
    }

    #[test]
    fn an_offer_with_personal_conditions_on_a_second_screen_breaks_the_home_cap() {
        let (rules, dairy) = (rules(), CampaignId::try_new("dairy-winter").unwrap());
        let mut today = HomeToday::new(3);
        today.on(20_000);
        assert!(!rules.broken(&today, 0, &id("butter-refill"), &dairy));
        today.count(0, &id("butter-refill"), &dairy);
        assert!(!rules.broken(&today, 0, &id("butter-refill"), &dairy), "its own screen's caps are its own");
        assert!(rules.broken(&today, 1, &id("butter-refill"), &dairy), "a second screen the same day");
        // An offer without personal conditions has no home cap of its own.
        let care = CampaignId::try_new("home-care").unwrap();
        today.count(1, &id("fridge-care"), &care);
        assert!(!rules.broken(&today, 2, &id("fridge-care"), &care));
        // Three offers in the home reach the policy's cap, on every screen; the next day not.
        today.count(2, &id("fridge-care"), &care);
        assert!(rules.broken(&today, 2, &id("fridge-care"), &care));
        today.on(20_001);
        assert!(!rules.broken(&today, 1, &id("butter-refill"), &dairy));
    }
}
